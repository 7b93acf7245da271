#include "support/cluster.hpp"

#include <csignal>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <utility>

namespace resized::test {

namespace {

constexpr std::chrono::milliseconds poll_every{50};

std::string source_dir() {
  return env_or("RESIZED_SOURCE_DIR", ".");
}

std::string join(const std::vector<std::string>& parts, const char* sep) {
  std::string out;
  for (const auto& p : parts) {
    if (!out.empty())
      out += sep;
    out += p;
  }
  return out;
}

} // namespace

bool cluster_tls_everywhere() {
  return env_or("RESIZED_TEST_CLUSTER_TLS", "") == "1";
}

std::vector<std::string> cluster_test_args() {
  // 3 s without a heartbeat declares a node lost: with 1 s, a live worker
  // starved of the CPU on a loaded 2-core machine was taken for lost.
  std::vector<std::string> out{"--cluster.heartbeat-ms=200",
                               "--cluster.connection-timeout-ms=3000"};
  if (cluster_tls_everywhere()) {
    const auto& dir = test_certs_dir();
    out.push_back("--openssl.certificate=" + dir + "/node.pem");
    out.push_back("--openssl.key=" + dir + "/node.key");
    out.push_back("--openssl.cafile=" + dir + "/ca.pem");
  }
  return out;
}

// -- api_node ----------------------------------------------------------------

api_node::api_node(uint16_t redis_port, std::string name,
                   std::vector<std::string> extra_args, bool start_now)
    : redis_port_(redis_port),
      name_(std::move(name)),
      args_(std::move(extra_args)),
      dir_(make_temp_dir(name_)) {
  if (!start_now) {
    pick_ports();
    return;
  }
  with_fresh_ports([this] {
    pick_ports();
    start();
  });
}

void api_node::pick_ports() {
  http_port_ = free_port();
  do
    cluster_port_ = free_port();
  while (cluster_port_ == http_port_);
}

api_node::~api_node() {
  if (proc_.running())
    proc_.stop(SIGTERM, std::chrono::milliseconds{10000});
}

std::string api_node::endpoint() const {
  return "127.0.0.1:" + std::to_string(cluster_port_);
}

std::string api_node::url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(http_port_) + path;
}

void api_node::start() {
  std::vector<std::string> argv{
      env_or("RESIZED_BIN", "resized"),
      "--config-file=" + source_dir() + "/config/cluster-api.ini",
      "--http.port=" + std::to_string(http_port_),
      "--cluster.port=" + std::to_string(cluster_port_),
      "--cluster.bind-address=127.0.0.1",
      "--redis.port=" + std::to_string(redis_port_),
      "--cluster.node-name=" + name_,
  };
  for (auto& a : cluster_test_args())
    argv.push_back(a);
  for (auto& a : with_short_lease(args_))
    argv.push_back(std::move(a));
  proc_ = start_until_healthy(
      argv, dir_ + "/" + name_ + ".log", url("/healthz"),
      "API node " + name_ + " (http " + std::to_string(http_port_) +
          ", cluster " + std::to_string(cluster_port_) + ")");
}

void api_node::restart() {
  if (proc_.running())
    proc_.stop(SIGTERM, std::chrono::milliseconds{15000});
  start();
}

void api_node::kill9() {
  proc_.kill9();
}

// -- worker_process ----------------------------------------------------------

worker_process::worker_process(std::string name,
                               std::vector<std::string> api_endpoints,
                               std::vector<std::string> extra_args)
    : name_(std::move(name)), dir_(make_temp_dir(name_)) {
  std::vector<std::string> argv{
      env_or("RESIZED_BIN", "resized"),
      "--config-file=" + source_dir() + "/config/cluster-worker.ini",
      "--cluster.api-nodes=" + join(api_endpoints, ","),
      "--cluster.node-name=" + name_,
      "--cluster.reconnect-max-ms=500",
  };
  for (auto& a : cluster_test_args())
    argv.push_back(a);
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  proc_ = child_process(argv, dir_ + "/" + name_ + ".log");
}

worker_process::~worker_process() {
  if (proc_.running())
    proc_.stop(SIGTERM, std::chrono::milliseconds{10000});
}

// -- GET /api/v1/cluster -----------------------------------------------------

const cluster_node_info* cluster_snapshot::find(const std::string& id) const {
  for (const auto& n : nodes)
    if (n.id == id)
      return &n;
  return nullptr;
}

cluster_snapshot get_cluster(const api_node& api) {
  cluster_snapshot s;
  auto res = http_request("GET", api.url("/api/v1/cluster"), {}, {},
                          std::chrono::milliseconds{5000});
  s.http_status = res.status;
  s.body = res.body.empty() ? res.error : res.body;
  if (res.status != 200)
    return s;
  auto doc = parse_json(res.body);
  if (doc.HasParseError() || !doc.IsObject())
    return s;
  s.node = json_string(doc, "node");
  s.role = json_string(doc, "role");
  s.version = json_string(doc, "version");
  s.queue_depth = json_int(doc, "queue_depth");
  auto totals = doc.FindMember("totals");
  auto nodes = doc.FindMember("nodes");
  if (totals == doc.MemberEnd() || !totals->value.IsObject() ||
      nodes == doc.MemberEnd() || !nodes->value.IsArray())
    return s;
  const auto& t = totals->value;
  s.totals.nodes = json_int(t, "nodes");
  s.totals.workers = json_int(t, "workers");
  s.totals.busy = json_int(t, "busy");
  s.totals.succeeded = json_int(t, "succeeded");
  s.totals.failed = json_int(t, "failed");
  s.totals.retried = json_int(t, "retried");
  for (const auto& n : nodes->value.GetArray()) {
    if (!n.IsObject())
      return s;
    cluster_node_info info;
    info.id = json_string(n, "id");
    info.role = json_string(n, "role");
    info.address = json_string(n, "address");
    info.version = json_string(n, "version");
    info.up_since = json_string(n, "up_since");
    info.state = json_string(n, "state");
    info.workers = json_int(n, "workers");
    info.busy = json_int(n, "busy");
    info.tasks_done = json_int(n, "tasks_done");
    info.tasks_failed = json_int(n, "tasks_failed");
    s.nodes.push_back(std::move(info));
  }
  s.ok = true;
  return s;
}

bool wait_listed(const api_node& api, const std::vector<std::string>& ids,
                 std::chrono::milliseconds timeout) {
  return wait_until(
      [&] {
        auto s = get_cluster(api);
        if (!s.ok)
          return false;
        for (const auto& id : ids)
          if (s.find(id) == nullptr)
            return false;
        return true;
      },
      timeout);
}

bool wait_unlisted(const api_node& api, const std::string& id,
                   std::chrono::milliseconds timeout) {
  return wait_until(
      [&] {
        auto s = get_cluster(api);
        return s.ok && s.find(id) == nullptr;
      },
      timeout);
}

// -- the client steps
// ----------------------------------------------------------

std::string content_type_for(const std::string& file_name) {
  auto dot = file_name.rfind('.');
  auto ext =
      dot == std::string::npos ? std::string{} : file_name.substr(dot + 1);
  if (ext == "png")
    return "image/png";
  if (ext == "webp")
    return "image/webp";
  return "image/jpeg";
}

std::string submit_to(const api_node& api, const std::string& bytes,
                      const std::string& content_type,
                      const std::string& query) {
  auto res = http_post(api.url("/api/v1/resize" + query), bytes, content_type);
  return accepted_token(res);
}

task_status poll_status(const api_node& api, const std::string& token) {
  task_status st;
  auto res = http_request("GET", api.url("/api/v1/resize/" + token), {}, {},
                          std::chrono::milliseconds{5000});
  st.http_status = res.status;
  st.error = res.error;
  st.body = res.body;
  if (res.status != 200)
    return st;
  auto doc = parse_json(res.body);
  if (!doc.HasParseError() && doc.IsObject())
    st.status = json_string(doc, "status");
  return st;
}

std::map<std::string, task_status>
wait_all_final(const api_node& api, const std::vector<std::string>& tokens,
               std::chrono::milliseconds timeout) {
  return poll_all_final(
      [&](const std::string& token) { return poll_status(api, token); }, tokens,
      timeout, poll_every);
}

fetched_image fetch_result(const api_node& api,
                           const std::string& status_body) {
  fetched_image out;
  auto doc = parse_json(status_body);
  if (doc.HasParseError() || !doc.IsObject())
    return out;
  auto url = url_path(json_string(doc, "resized_image_url"));
  if (url.empty())
    return out;
  out.response = http_request("GET", api.url(url), {}, {},
                              std::chrono::milliseconds{10000});
  if (out.response.status == 200)
    out.probed = probe_image(out.response.body, out.info);
  return out;
}

size_t finished_lines(const std::string& log, const std::string& token) {
  size_t count = 0;
  std::istringstream in{log};
  std::string line;
  while (std::getline(in, line))
    if (line.find("task finished") != std::string::npos &&
        line.find("token=" + token) != std::string::npos)
      ++count;
  return count;
}

} // namespace resized::test
