// Observability end to end, against the real binary and a real redis-server:
//  - /metrics parsed with a strict Prometheus text-format parser (below),
//    with every metric name of API.md present after one task;
//  - /readyz: 200 with Redis up, 503 store_unavailable without it, 503
//    no_workers on an api node without workers;
//  - X-Request-Id echoed (given or generated) and found in the service log
//    with the token;
//  - the OpenAPI document served at /api/v1/openapi.json checked against
//    real answers: every documented route, status and error code is
//    exercised, every answer's status and JSON fields are documented and
//    every required field is there.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <thread>
#include <tuple>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "support/fixtures.hpp"
#include "support/loopback.hpp"

using namespace resized::test;

namespace {

// -- a strict parser of the Prometheus text format 0.0.4 ----------------------

struct prom_sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

struct prom_text {
  std::map<std::string, std::string> types; // family -> type
  std::vector<prom_sample> samples;
  std::vector<std::string> problems; // empty when the text is valid

  // Sum of the samples named `name` whose labels include `match`.
  double sum(const std::string& name,
             const std::map<std::string, std::string>& match = {}) const {
    double total = 0;
    for (const auto& s : samples) {
      if (s.name != name)
        continue;
      bool ok = true;
      for (const auto& [k, v] : match) {
        auto i = s.labels.find(k);
        ok = ok && i != s.labels.end() && i->second == v;
      }
      if (ok)
        total += s.value;
    }
    return total;
  }
  bool has(const std::string& name) const {
    return std::any_of(samples.begin(), samples.end(),
                       [&](const prom_sample& s) { return s.name == name; });
  }
};

bool metric_name_ok(const std::string& n, bool label) {
  if (n.empty())
    return false;
  for (size_t i = 0; i < n.size(); ++i) {
    char c = n[i];
    bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                 (!label && c == ':');
    if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
      return false;
  }
  return true;
}

bool parse_prom_value(const std::string& text, double& out) {
  if (text == "+Inf" || text == "Inf") {
    out = HUGE_VAL;
    return true;
  }
  if (text == "-Inf") {
    out = -HUGE_VAL;
    return true;
  }
  if (text == "NaN") {
    out = std::nan("");
    return true;
  }
  if (text.empty())
    return false;
  char* end = nullptr;
  out = std::strtod(text.c_str(), &end);
  return end == text.c_str() + text.size();
}

// The family a sample belongs to: histogram and summary samples carry a
// suffix.
std::string family_of(const std::string& name,
                      const std::map<std::string, std::string>& types) {
  if (types.count(name))
    return name;
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    std::string s{suffix};
    if (name.size() > s.size() &&
        name.compare(name.size() - s.size(), s.size(), s) == 0) {
      auto base = name.substr(0, name.size() - s.size());
      auto t = types.find(base);
      if (t != types.end() && (t->second == "histogram" ||
                               (t->second == "summary" && s != "_bucket")))
        return base;
    }
  }
  return name;
}

prom_text parse_prometheus(const std::string& text) {
  prom_text out;
  auto fail = [&](size_t line_no, const std::string& line,
                  const std::string& why) {
    out.problems.push_back("line " + std::to_string(line_no) + ": " + why +
                           ": " + line);
  };
  std::set<std::string> closed; // families whose samples are over
  std::string current;          // family of the previous sample
  std::set<std::string> helped;
  if (!text.empty() && text.back() != '\n')
    out.problems.push_back("the text does not end with a newline");
  std::istringstream in{text};
  std::string line;
  size_t no = 0;
  while (std::getline(in, line)) {
    ++no;
    if (line.empty())
      continue;
    if (line[0] == '#') {
      std::istringstream words{line};
      std::string hash, keyword, name;
      words >> hash >> keyword >> name;
      if (hash != "#")
        continue; // a plain comment
      if (keyword == "HELP" || keyword == "TYPE") {
        if (!metric_name_ok(name, false)) {
          fail(no, line, "bad metric name in " + keyword);
          continue;
        }
        if (keyword == "HELP") {
          if (!helped.insert(name).second)
            fail(no, line, "second HELP for " + name);
          continue;
        }
        std::string type, extra;
        words >> type >> extra;
        static const std::set<std::string> kinds{
            "counter", "gauge", "histogram", "summary", "untyped"};
        if (!kinds.count(type) || !extra.empty())
          fail(no, line, "bad TYPE");
        if (out.types.count(name))
          fail(no, line, "second TYPE for " + name);
        bool sampled = std::any_of(
            out.samples.begin(), out.samples.end(), [&](const prom_sample& s) {
              return family_of(s.name, out.types) == name;
            });
        if (sampled)
          fail(no, line, "TYPE after samples of " + name);
        out.types[name] = type;
      }
      continue;
    }
    // name{label="value",...} value [timestamp]
    prom_sample s;
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ')
      ++i;
    s.name = line.substr(0, i);
    if (!metric_name_ok(s.name, false)) {
      fail(no, line, "bad metric name");
      continue;
    }
    bool ok = true;
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (ok && i < line.size() && line[i] != '}') {
        size_t start = i;
        while (i < line.size() && line[i] != '=')
          ++i;
        auto label = line.substr(start, i - start);
        if (!metric_name_ok(label, true) || i + 1 >= line.size() ||
            line[i + 1] != '"') {
          ok = false;
          break;
        }
        i += 2;
        std::string value;
        while (i < line.size() && line[i] != '"') {
          if (line[i] == '\\') {
            if (i + 1 >= line.size()) {
              ok = false;
              break;
            }
            char e = line[i + 1];
            if (e == 'n')
              value += '\n';
            else if (e == '\\' || e == '"')
              value += e;
            else
              ok = false; // only \\, \" and \n are escapes
            i += 2;
          } else {
            value += line[i++];
          }
        }
        if (i >= line.size()) {
          ok = false;
          break;
        }
        ++i; // closing quote
        if (!s.labels.emplace(label, value).second)
          ok = false; // duplicate label
        if (i < line.size() && line[i] == ',')
          ++i;
        else if (i < line.size() && line[i] != '}')
          ok = false;
      }
      if (i >= line.size() || line[i] != '}')
        ok = false;
      ++i;
    }
    if (!ok) {
      fail(no, line, "bad label set");
      continue;
    }
    if (i >= line.size() || line[i] != ' ') {
      fail(no, line, "no space before the value");
      continue;
    }
    std::istringstream rest{line.substr(i + 1)};
    std::string value, timestamp, extra;
    rest >> value >> timestamp >> extra;
    if (!parse_prom_value(value, s.value) || !extra.empty()) {
      fail(no, line, "bad value");
      continue;
    }
    auto family = family_of(s.name, out.types);
    if (!out.types.count(family))
      fail(no, line, "sample before (or without) the TYPE of its family");
    if (family != current) {
      if (closed.count(family))
        fail(no, line, "samples of " + family + " are not together");
      if (!current.empty())
        closed.insert(current);
      current = family;
    }
    out.samples.push_back(std::move(s));
  }
  // Histograms: per label set, buckets cumulative, +Inf == _count.
  for (const auto& [family, type] : out.types) {
    if (type != "histogram")
      continue;
    std::map<std::map<std::string, std::string>, std::vector<prom_sample>>
        series;
    for (const auto& s : out.samples) {
      if (s.name != family + "_bucket")
        continue;
      auto key = s.labels;
      key.erase("le");
      series[key].push_back(s);
    }
    for (const auto& [key, buckets] : series) {
      double last = -1;
      double inf = -1;
      double prev_le = -HUGE_VAL;
      for (const auto& b : buckets) {
        double le = 0;
        if (!b.labels.count("le") || !parse_prom_value(b.labels.at("le"), le))
          out.problems.push_back(family + ": bucket without a valid le");
        if (le <= prev_le)
          out.problems.push_back(family + ": le not ascending");
        prev_le = le;
        if (b.value < last)
          out.problems.push_back(family + ": buckets not cumulative");
        last = b.value;
        if (std::isinf(le))
          inf = b.value;
      }
      auto count = out.sum(family + "_count", key);
      if (inf < 0)
        out.problems.push_back(family + ": no le=\"+Inf\" bucket");
      else if (inf != count)
        out.problems.push_back(family + ": +Inf bucket != _count");
    }
  }
  return out;
}

// -- the suite's service ------------------------------------------------------

struct observability_tag {
  static std::vector<std::string> args() { return {}; }
  static std::string name() { return "observability"; }
};

using env = suite_env<observability_tag>;

resized_server& srv() {
  return env::get().server;
}

// Arguments of an API node without workers (no pool, none joined): every
// submission is refused 503 no_workers. `extra` comes after them.
std::vector<std::string>
workerless_api_args(std::vector<std::string> extra = {}) {
  std::vector<std::string> args{"--cluster.role=api", "--resize.pool-size=0",
                                "--cluster.port=" +
                                    std::to_string(free_port())};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

// The whole log line of request `id` (waits up to 5 s for it; "" if none).
std::string access_line(const std::string& id) {
  auto line = wait_log_line(srv().process(), "request_id=" + id,
                            std::chrono::seconds{5});
  BOOST_TEST(!line.empty(), "no log line with request_id=" << id);
  return line;
}

// Each call asks for a different size: identical work would be answered
// from the first result (no stages run, nothing to count).
std::string submit_and_finish(resized_server& server) {
  static int width = 120;
  auto query = "?width=" + std::to_string(width++) + "&height=90";
  auto token = accepted_token(
      submit_raw(server, corpus_photo(small_photo), "image/jpeg", query));
  if (!token.empty())
    finish(server, token);
  return token;
}

} // namespace

BOOST_AUTO_TEST_SUITE(observability, *boost::unit_test::fixture<env>())

BOOST_AUTO_TEST_CASE(strict_parser_rejects_malformed_text) {
  // The parser itself: a valid text passes, each kind of mistake is caught.
  auto good = parse_prometheus("# HELP a_total A.\n# TYPE a_total counter\n"
                               "a_total{x=\"q\\\"\\\\\\n\"} 1\n"
                               "# TYPE h histogram\n"
                               "h_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\n"
                               "h_sum 3.5\nh_count 2\n");
  BOOST_TEST(good.problems.empty());
  BOOST_TEST(good.samples.at(0).labels.at("x") == "q\"\\\n");
  for (const char* bad : {
           "a_total 1\n",                                     // no TYPE
           "# TYPE a gauge\n1a 1\n",                          // bad name
           "# TYPE a gauge\na{x=\"1} 1\n",                    // open quote
           "# TYPE a gauge\na{x=\"\\t\"} 1\n",                // bad escape
           "# TYPE a gauge\na one\n",                         // bad value
           "# TYPE a gauge\n# TYPE b gauge\na 1\nb 1\na 2\n", // split family
           "# TYPE a gauge\na 1\n# TYPE a gauge\n",           // TYPE twice
           "# TYPE h histogram\nh_bucket{le=\"1\"} 2\n"
           "h_bucket{le=\"+Inf\"} 1\nh_count 1\n", // not cumulative
           "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_count 3\n", // count
       }) {
    BOOST_TEST_CONTEXT(bad) {
      BOOST_TEST(!parse_prometheus(bad).problems.empty());
    }
  }
}

BOOST_AUTO_TEST_CASE(metrics_parse_strictly_with_every_api_md_name) {
  auto token = submit_and_finish(srv());
  BOOST_TEST_REQUIRE(!token.empty());
  // a long poll (answered at once: the task is final) has its own route
  BOOST_TEST_REQUIRE(
      http_get(srv().url("/api/v1/resize/" + token + "?wait=5")).status == 200);
  auto res = http_get(srv().url("/metrics"));
  BOOST_TEST_REQUIRE(res.status == 200);
  BOOST_TEST(res.header("content-type").rfind("text/plain; version=0.0.4", 0) ==
             0);
  auto prom = parse_prometheus(res.body);
  for (const auto& p : prom.problems)
    BOOST_ERROR(p);
  const std::map<std::string, std::string> want{
      // API.md
      {"resized_http_requests_total", "counter"},
      {"resized_http_request_duration_seconds", "histogram"},
      {"resized_tasks_total", "counter"},
      {"resized_task_duration_seconds", "histogram"},
      {"resized_queue_depth", "gauge"},
      {"resized_workers", "gauge"},
      {"resized_nodes", "gauge"},
      {"resized_redis_errors_total", "counter"},
      {"resized_input_bytes_total", "counter"},
      {"resized_output_bytes_total", "counter"},
      // process and libvips memory
      {"process_resident_memory_bytes", "gauge"},
      {"process_virtual_memory_bytes", "gauge"},
      {"process_cpu_seconds_total", "counter"},
      {"process_start_time_seconds", "gauge"},
      {"resized_vips_memory_bytes", "gauge"},
      {"resized_vips_memory_highwater_bytes", "gauge"},
  };
  for (const auto& [name, type] : want) {
    BOOST_TEST_CONTEXT("metric " << name) {
      auto t = prom.types.find(name);
      BOOST_TEST_REQUIRE((t != prom.types.end()));
      BOOST_TEST(t->second == type);
      BOOST_TEST((prom.has(name) || prom.has(name + "_count")));
    }
  }
  // The submit of this test was counted under its route template.
  BOOST_TEST(prom.sum("resized_http_requests_total",
                      {{"route", "/api/v1/resize"}, {"code", "202"}}) >= 1);
  BOOST_TEST(prom.sum("resized_http_request_duration_seconds_count",
                      {{"route", "/api/v1/resize/:token"}}) >= 1);
  // long polls apart: their duration is mostly the wait, not service time
  BOOST_TEST(prom.sum("resized_http_request_duration_seconds_count",
                      {{"route", "/api/v1/resize/:token?wait"}}) >= 1);
  // Labels stay low-cardinality: no raw token in any route label.
  for (const auto& s : prom.samples)
    if (s.labels.count("route"))
      BOOST_TEST(s.labels.at("route").find('-') == std::string::npos);
  // Scrape-time gauges agree with the cluster view.
  auto cluster = parse_json(http_get(srv().url("/api/v1/cluster")).body);
  BOOST_TEST_REQUIRE(cluster.IsObject());
  const auto& totals = cluster["totals"];
  BOOST_TEST(prom.sum("resized_workers") ==
             static_cast<double>(json_int(totals, "workers")));
  BOOST_TEST(prom.sum("resized_nodes") ==
             static_cast<double>(json_int(totals, "nodes")));
  BOOST_TEST(prom.sum("process_resident_memory_bytes") > 0);
  BOOST_TEST(prom.sum("resized_vips_memory_highwater_bytes") > 0);
}

// Needs the actors to report finished tasks (metrics::task_finished).
// One build, named the same three ways: `resized --version`, the
// resized_build_info series of /metrics (version, commit and libvips as
// labels, value 1) and the "resized started" line.
BOOST_AUTO_TEST_CASE(build_info_names_the_same_build_everywhere) {
  std::string text;
  int rc = run_to_exit({env_or("RESIZED_BIN", "resized"), "--version"}, text,
                       std::chrono::seconds{15});
  BOOST_TEST_REQUIRE(rc == 0, text);
  std::smatch m;
  BOOST_TEST_REQUIRE(
      std::regex_search(text, m,
                        std::regex{"^resized ([0-9]+\\.[0-9]+\\.[0-9]+) "
                                   "\\(commit ([A-Za-z0-9._+-]+)\\)\n"
                                   "libvips ([0-9][0-9.]*), .*CAF 0\\.17\\."}),
      text);
  const std::string version = m[1], commit = m[2], libvips = m[3];
  auto res = http_get(srv().url("/metrics"));
  BOOST_TEST_REQUIRE(res.status == 200);
  auto prom = parse_prometheus(res.body);
  for (const auto& p : prom.problems)
    BOOST_ERROR(p);
  BOOST_TEST(prom.types["resized_build_info"] == "gauge");
  BOOST_TEST(prom.sum("resized_build_info", {{"version", version},
                                             {"commit", commit},
                                             {"libvips", libvips}}) == 1.0,
             res.body);
  // Logged just after HTTP starts: wait for it rather than assume it.
  BOOST_TEST(
      wait_until(
          [&] {
            return lines_with(
                       srv().process().log(),
                       {"msg=\"resized started\"", " version=" + version + " ",
                        " commit=" + commit + " ", " libvips=" + libvips + " ",
                        // what API nodes sharing tasks
                        // need the same
                        " redis=\"127.0.0.1:", " db=0", " key_prefix="}) == 1u;
          },
          std::chrono::seconds{10}),
      srv().process().log());
}

BOOST_AUTO_TEST_CASE(task_metrics_count_finished_tasks) {
  auto before = parse_prometheus(http_get(srv().url("/metrics")).body);
  BOOST_TEST_REQUIRE(!submit_and_finish(srv()).empty());
  auto after = parse_prometheus(http_get(srv().url("/metrics")).body);
  auto delta = [&](const std::string& name,
                   const std::map<std::string, std::string>& labels = {}) {
    return after.sum(name, labels) - before.sum(name, labels);
  };
  BOOST_TEST(delta("resized_tasks_total", {{"status", "SUCCESS"}}) == 1);
  BOOST_TEST(
      delta("resized_task_duration_seconds_count", {{"stage", "total"}}) == 1);
  for (const char* stage : {"queue", "decode", "resize", "encode"})
    BOOST_TEST_CONTEXT("stage " << stage) {
      BOOST_TEST(delta("resized_task_duration_seconds_count",
                       {{"stage", stage}}) == 1);
    }
  BOOST_TEST(delta("resized_input_bytes_total") ==
             static_cast<double>(corpus_photo(small_photo).size()));
  BOOST_TEST(delta("resized_output_bytes_total") > 0);
}

BOOST_AUTO_TEST_CASE(request_id_is_echoed_and_logged) {
  // Given: echoed unchanged and on the access log line, with the token.
  auto token = submit_and_finish(srv());
  BOOST_TEST_REQUIRE(!token.empty());
  auto given = "obs-" + random_uuid();
  auto res = http_get(srv().url("/api/v1/resize/" + token),
                      {"X-Request-Id: " + given});
  BOOST_TEST(res.status == 200);
  BOOST_TEST(res.header("x-request-id") == given);
  auto line = access_line(given);
  BOOST_TEST_MESSAGE("access line: " << line);
  BOOST_TEST(line.find("msg=request") != std::string::npos);
  BOOST_TEST(line.find("token=" + token) != std::string::npos);
  BOOST_TEST(line.find("status=200") != std::string::npos);
  BOOST_TEST(line.find("route=/api/v1/resize/:token") != std::string::npos);
  BOOST_TEST(line.find(" ms=") != std::string::npos);
  // Generated when absent, different per request, on every kind of answer
  // (JSON, error, text, asset, image).
  std::set<std::string> seen;
  for (auto path : {"/healthz", "/nope", "/metrics", "/", "/static/app.js",
                    "/api/v1/openapi.json"}) {
    auto r = http_get(srv().url(path));
    BOOST_TEST_CONTEXT(path) {
      // Every answer is dated (RFC 9110 §6.6.1; there was none).
      BOOST_TEST(r.header("date").size() == 29u, r.header("date"));
      BOOST_TEST(r.header("date").substr(25) == " GMT");
      auto id = r.header("x-request-id");
      BOOST_TEST(id.size() == 16u);
      BOOST_TEST(seen.insert(id).second);
      BOOST_TEST(wait_until(
          [&] {
            return srv().process().log().find("request_id=" + id) !=
                   std::string::npos;
          },
          std::chrono::seconds{5}));
    }
  }
  // A submit: its id and the new token on one line.
  auto sid = "obs-submit-" + random_uuid();
  auto sub = http_request("POST", srv().url("/api/v1/resize"),
                          corpus_photo(small_photo),
                          {"Content-Type: image/jpeg", "X-Request-Id: " + sid});
  auto stoken = accepted_token(sub);
  BOOST_TEST(sub.header("x-request-id") == sid);
  BOOST_TEST(wait_until(
      [&] {
        auto log = srv().process().log();
        auto at = log.find("msg=request request_id=" + sid);
        return at != std::string::npos &&
               log.find("token=" + stoken, at) < log.find('\n', at);
      },
      std::chrono::seconds{5}));
  // An unusable id (too long) is replaced by a generated one.
  auto huge = std::string(200, 'x');
  auto r = http_get(srv().url("/healthz"), {"X-Request-Id: " + huge});
  BOOST_TEST(r.header("x-request-id").size() == 16u);
  // No image bytes in the log: the base64 of the photo never appears.
  auto b64 = base64_encode(corpus_photo(small_photo)).substr(100, 40);
  BOOST_TEST(srv().process().log().find(b64) == std::string::npos);
  // An error answer names its code on its line (4xx too), and a client's
  // long URL is cut short there.
  auto eid = "obs-error-" + random_uuid();
  auto bad = http_get(srv().url("/api/v1/resize/" + std::string(3000, 'z')),
                      {"X-Request-Id: " + eid});
  BOOST_TEST(bad.status == 400);
  auto error_line = access_line(eid);
  BOOST_TEST(error_line.find("status=400 ") != std::string::npos, error_line);
  BOOST_TEST(error_line.find(" code=invalid_token") != std::string::npos,
             error_line);
  BOOST_TEST(error_line.size() < 800u, error_line.size());
}

// The socket layer's own answers (400, 413, 414, 431: expect_continue.hpp) get
// an access line and count in resized_http_requests_total like every other
// answer, under route "(refused before routing)"; RESTinio's parse error
// for them is not an error line (debug), nor the read the socket stops
// after a refusal of its own, and a malformed request's is info.
BOOST_AUTO_TEST_CASE(early_refusals_are_logged_and_counted) {
  const std::string route = "(refused before routing)";
  auto counted = [&](const std::string& code) {
    auto prom = parse_prometheus(http_get(srv().url("/metrics")).body);
    BOOST_TEST(prom.problems.empty());
    return prom.sum("resized_http_requests_total",
                    {{"route", route}, {"code", code}});
  };
  std::map<std::string, double> before;
  for (auto code : {"400", "413", "414", "431"})
    before[code] = counted(code);
  struct refusal {
    std::string request, method, path, code;
    long status;
  };
  auto long_path = "/api/v1/resize/" + std::string(9000, 'a');
  for (const auto& r : {
           refusal{"GET " + long_path + "?x=1 HTTP/1.1\r\nHost: x\r\n\r\n",
                   "GET", "\"" + long_path.substr(0, 200) + "...(",
                   "uri_too_long", 414},
           refusal{"HEAD /healthz?a=b HTTP/1.1\r\nHost: x\r\nX-Padding: " +
                       std::string(17000, 'p') + "\r\n\r\n",
                   "HEAD", "/healthz", "headers_too_large", 431},
           refusal{"POST /api/v1/resize HTTP/1.1\r\nHost: x\r\n"
                   "Content-Type: image/jpeg\r\n"
                   "Content-Length: 999999999999\r\n\r\n",
                   "POST", "/api/v1/resize", "payload_too_large", 413},
           // Refused by the socket, which stops RESTinio's read.
           refusal{"GET /healthz?a=b HTTP/1.1\r\nX: y\r\n\r\n", "GET",
                   "/healthz", "malformed_request", 400},
       }) {
    BOOST_TEST_CONTEXT(r.code) {
      // Read to the end: RESTinio has logged its parse error by then (it
      // logs, then closes).
      auto seen = send_whole_request(srv().port(), r.request);
      BOOST_TEST(seen.recv_error.empty());
      auto res = parse_http_answer(seen.answer);
      BOOST_TEST(res.status == r.status);
      auto status = std::to_string(r.status);
      BOOST_TEST(counted(status) == before[status] + 1);
      BOOST_TEST(res.header("cache-control") == "no-store");
      auto id = res.header("x-request-id");
      BOOST_TEST(id.size() == 16u);
      if (id.empty())
        continue;
      auto line = access_line(id);
      BOOST_TEST(line.find("level=info") != std::string::npos, line);
      BOOST_TEST(line.find("msg=request") != std::string::npos, line);
      BOOST_TEST(line.find(" method=" + r.method + " ") != std::string::npos,
                 line);
      BOOST_TEST(line.find(" path=" + r.path) != std::string::npos, line);
      BOOST_TEST(line.find(" route=\"" + route + "\" ") != std::string::npos,
                 line);
      BOOST_TEST(line.find(" status=" + std::to_string(r.status) + " ") !=
                     std::string::npos,
                 line);
      BOOST_TEST(line.find(" code=" + r.code) != std::string::npos, line);
      BOOST_TEST(line.size() < 800u, line.size());
    }
  }
  // A client's X-Request-Id read before the refusal is echoed and on the
  // access line, as the server's own answers do (a new one was sent).
  auto given = "obs-early-" + random_uuid();
  auto early = parse_http_answer(
      send_whole_request(srv().port(),
                         "POST /api/v1/resize HTTP/1.1\r\nHost: x\r\n"
                         "X-Request-Id: " +
                             given +
                             "\r\nContent-Type: image/jpeg\r\n"
                             "Content-Length: 999999999999\r\n\r\n")
          .answer);
  BOOST_TEST(early.status == 413);
  BOOST_TEST(early.header("x-request-id") == given);
  BOOST_TEST(early.header("date").size() == 29u);
  BOOST_TEST(access_line(given).find(" status=413 ") != std::string::npos);
  // A request that is not HTTP (or has a method HTTP/1.1 does not define):
  // answered 501 and closed, one access line; RESTinio's own parse error
  // line is debug (it closed such a connection unanswered before).
  auto garbage = send_whole_request(srv().port(), "HELLO\r\n\r\n");
  BOOST_TEST(garbage.recv_error.empty());
  auto not_http = parse_http_answer(garbage.answer);
  BOOST_TEST(not_http.status == 501, garbage.answer);
  BOOST_TEST(json_string(parse_json(not_http.body)["error"], "code") ==
                 "method_not_implemented",
             not_http.body);
  auto log_text = srv().process().log();
  BOOST_TEST_CONTEXT("log:\n" << log_text) {
    BOOST_TEST(lines_with(log_text, {"parser error"}) == 0u);
    BOOST_TEST(lines_with(log_text, {"level=error", "read socket error"}) ==
               0u);
    BOOST_TEST(lines_with(log_text, {"msg=request", "method=-", "status=501",
                                     "code=method_not_implemented"}) >= 1u);
  }
}

// An answer the client does not read within http.write-timeout is cut
// off. Its access line was written when it was handed over (status 200);
// a second line, and resized_http_answers_not_delivered_total, say it was
// not delivered (before, the log showed a full 200 and nothing else).
BOOST_AUTO_TEST_CASE(an_answer_not_read_in_time_is_logged_as_not_delivered) {
  resized_server node(env::get().redis.port(), {"--http.write-timeout=1"},
                      "write-timeout");
  // A result of some 20 MB: more than the socket buffers hold.
  auto token = accepted_token(
      submit_raw(node, corpus_photo("plasma__Volna_5120x2880.jpg"),
                 "image/jpeg", "?width=4000&height=4000&mode=fit&format=png"));
  BOOST_TEST_REQUIRE(!token.empty());
  auto done = wait_final(node, token, std::chrono::seconds{60});
  BOOST_TEST_REQUIRE(done.status == "SUCCESS", done.body);
  auto path = url_path(json_string(parse_json(done.body), "resized_image_url"));
  // A client with a small receive buffer that never reads.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  BOOST_TEST_REQUIRE(fd >= 0);
  socket_guard guard{fd};
  int small = 4096;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(node.port());
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  BOOST_TEST_REQUIRE(
      ::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) == 0);
  std::string error;
  BOOST_TEST_REQUIRE(
      send_all(fd, "GET " + path + " HTTP/1.1\r\nHost: t\r\n\r\n", error));
  auto cut = [&] {
    return lines_with(node.process().log(),
                      {"answer not delivered", "status=200",
                       "route=/api/v1/images/:name"}) == 1u;
  };
  BOOST_TEST(wait_until(cut, std::chrono::seconds{15}), node.process().log());
  BOOST_TEST(lines_with(node.process().log(), {"msg=request", "status=200",
                                               "route=/api/v1/images/:name"}) ==
             1u);
  BOOST_TEST(metric(node, "resized_http_answers_not_delivered_total") == 1);
}

BOOST_AUTO_TEST_CASE(readyz_answers_ready_then_store_unavailable) {
  auto& e = env::get();
  auto errors = [&] {
    return parse_prometheus(http_get(e.server.url("/metrics")).body)
        .sum("resized_redis_errors_total");
  };
  auto errors_before = errors();
  auto res = http_get(e.server.url("/readyz"));
  BOOST_TEST(res.status == 200);
  auto doc = parse_json(res.body);
  BOOST_TEST_REQUIRE(doc.IsObject());
  BOOST_TEST(json_string(doc, "status") == "ready");
  BOOST_TEST(json_int(doc, "workers") >= 1);
  // A successful PING is not a Redis error.
  BOOST_TEST(errors() == errors_before);
  e.redis.stop();
  http_response down;
  BOOST_TEST(wait_until(
      [&] {
        down = http_get(e.server.url("/readyz"));
        return down.status == 503;
      },
      std::chrono::seconds{15}));
  auto message = check_error(down, 503, "store_unavailable");
  BOOST_TEST(message.find("not ready") != std::string::npos);
  BOOST_TEST(!down.header("retry-after").empty());
  BOOST_TEST(http_get(e.server.url("/healthz")).status == 200);
  e.redis.start();
  BOOST_TEST(wait_until(
      [&] { return http_get(e.server.url("/readyz")).status == 200; },
      std::chrono::seconds{15}));
}

BOOST_AUTO_TEST_CASE(refusals_are_warned_once_per_burst) {
  // A node without workers refuses every submission (503 no_workers): a
  // burst of refusals is one warning, not one per request; each refusal
  // still has its access line.
  redis_server redis;
  resized_server bare{redis.port(), workerless_api_args(), "obs-refusals"};
  std::vector<std::string> ids;
  for (int i = 0; i < 20; ++i) {
    ids.push_back("refused-" + random_uuid());
    auto r = http_post(bare.url("/api/v1/resize"), small_photo_bytes(),
                       "image/jpeg", {"X-Request-Id: " + ids.back()});
    check_error(r, 503, "no_workers");
  }
  BOOST_TEST(wait_until(
      [&] {
        return bare.process().log().find("request_id=" + ids.back()) !=
               std::string::npos;
      },
      std::chrono::seconds{5}));
  auto log_text = bare.process().log();
  BOOST_TEST_CONTEXT("log:\n" << log_text) {
    BOOST_TEST(lines_with(log_text, {"level=warn", "msg=\"request failed\"",
                                     "code=no_workers", "refused=1",
                                     "log_every_s=10"}) == 1u);
    BOOST_TEST(lines_with(log_text, {"msg=\"request failed\""}) == 1u);
    for (const auto& id : ids)
      BOOST_TEST(
          lines_with(log_text, {"level=info", "msg=request", "request_id=" + id,
                                "status=503", "code=no_workers"}) == 1u);
  }
}

// log.access=errors: access lines for 4xx and 5xx answers only (the rest
// of the info lines stay); log.access=off: none. /metrics counts all.
BOOST_AUTO_TEST_CASE(access_lines_can_be_limited_to_errors_or_off) {
  redis_server redis;
  for (std::string which : {"errors", "off"}) {
    resized_server node{
        redis.port(), {"--log.access=" + which}, "obs-access-" + which};
    auto ok_id = "fine-" + random_uuid();
    auto bad_id = "missing-" + random_uuid();
    BOOST_TEST(
        http_get(node.url("/healthz"), {"X-Request-Id: " + ok_id}).status ==
        200);
    BOOST_TEST(http_get(node.url("/api/v1/resize/" + random_uuid()),
                        {"X-Request-Id: " + bad_id})
                   .status == 404);
    // A line after both: the access lines, if any, are written by then.
    auto token =
        accepted_token(submit_raw(node, small_photo_bytes(), "image/jpeg"));
    BOOST_TEST_REQUIRE(!token.empty());
    BOOST_TEST_REQUIRE(!wait_log_line(node.process(), "task accepted",
                                      std::chrono::milliseconds{5000})
                            .empty());
    auto log_text = node.process().log();
    BOOST_TEST_CONTEXT(which << " log:\n" << log_text) {
      BOOST_TEST(lines_with(log_text, {"request_id=" + ok_id}) == 0u);
      BOOST_TEST(lines_with(log_text, {"msg=request", "request_id=" + bad_id,
                                       "status=404"}) ==
                 (which == "errors" ? 1u : 0u));
      BOOST_TEST(lines_with(log_text, {"level=info", "task accepted"}) >= 1u);
    }
    auto metrics = http_get(node.url("/metrics")).body;
    BOOST_TEST(metrics.find("code=\"404\"") != std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(failed_requests_are_warned_at_log_level_warn) {
  // An operator who turns the access lines off (log.level=warn) still sees
  // the failures: the warning does not depend on the info level.
  redis_server redis;
  resized_server quiet{redis.port(), workerless_api_args({"--log.level=warn"}),
                       "obs-warn-level"};
  auto id = "quiet-" + random_uuid();
  check_error(http_post(quiet.url("/api/v1/resize"), small_photo_bytes(),
                        "image/jpeg", {"X-Request-Id: " + id}),
              503, "no_workers");
  auto line = wait_log_line(quiet.process(), "request_id=" + id,
                            std::chrono::seconds{5});
  BOOST_TEST(line.find("level=warn") != std::string::npos, line);
  BOOST_TEST(line.find("msg=\"request failed\"") != std::string::npos, line);
  BOOST_TEST(lines_with(quiet.process().log(), {"level=info"}) == 0u,
             quiet.process().log());
}

BOOST_AUTO_TEST_CASE(readyz_logs_changes_not_every_probe) {
  // A load balancer polls /readyz on a node that is not ready: one warning
  // when it becomes not ready, one info line when it is ready again, and
  // per probe only the access line (info), never a warning.
  redis_server redis;
  resized_server node{redis.port(), {}, "obs-readiness"};
  BOOST_TEST(http_get(node.url("/readyz")).status == 200);
  redis.stop();
  BOOST_TEST(
      wait_until([&] { return http_get(node.url("/readyz")).status == 503; },
                 std::chrono::seconds{15}));
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    ids.push_back("probe-" + random_uuid());
    auto r = http_get(node.url("/readyz"), {"X-Request-Id: " + ids.back()});
    BOOST_TEST(r.status == 503);
  }
  redis.start();
  BOOST_TEST(
      wait_until([&] { return http_get(node.url("/readyz")).status == 200; },
                 std::chrono::seconds{15}));
  auto last = "probe-" + random_uuid();
  BOOST_TEST(http_get(node.url("/readyz"), {"X-Request-Id: " + last}).status ==
             200);
  // Every probe's access line is in before the log is read.
  BOOST_TEST(wait_until(
      [&] {
        return node.process().log().find("request_id=" + last) !=
               std::string::npos;
      },
      std::chrono::seconds{5}));
  auto log_text = node.process().log();
  auto count = [&](const std::vector<std::string>& parts) {
    return lines_with(log_text, parts);
  };
  BOOST_TEST_CONTEXT("log:\n" << log_text) {
    BOOST_TEST(count({"level=warn", "msg=\"readiness changed: not ready\"",
                      "code=store_unavailable"}) == 1);
    BOOST_TEST(count({"readiness changed: not ready"}) == 1);
    // the first probe's finding, then the way back
    BOOST_TEST(count({"level=info", "msg=\"readiness changed: ready\""}) == 2);
    BOOST_TEST(count({"route=/readyz", "level=warn"}) == 0);
    BOOST_TEST(count({"msg=\"request failed\""}) == 0);
    for (const auto& id : ids)
      BOOST_TEST_CONTEXT("probe " << id) {
        BOOST_TEST(count({"level=info", "msg=request", "request_id=" + id,
                          "route=/readyz", "status=503",
                          "code=store_unavailable"}) == 1);
      }
  }
}

BOOST_AUTO_TEST_CASE(redis_outage_is_logged_once_lost_and_once_back) {
  // Redis goes away while the node is idle: the node says so once (not per
  // retry, nor only when /readyz is probed), clients are told the store is
  // unavailable (the cause stays in the log), and the node says when Redis
  // is back and how long it was away.
  redis_server redis;
  resized_server srv{redis.port(), {}, "obs-outage"};
  BOOST_TEST_REQUIRE(http_get(srv.url("/readyz")).status == 200);
  auto log_has = [&](const std::vector<std::string>& parts) {
    return wait_until(
        [&] { return lines_with(srv.process().log(), parts) > 0; },
        std::chrono::seconds{10});
  };
  redis.stop();
  BOOST_TEST(
      log_has({"level=warn", "msg=\"redis connection lost\"",
               "redis=127.0.0.1:" + std::to_string(redis.port()), "error="}));
  // Polls during the outage: 503 with a message for clients.
  for (int i = 0; i < 3; ++i) {
    auto res = http_get(srv.url("/api/v1/resize/" + random_uuid()));
    auto message = check_error(res, 503, "store_unavailable");
    BOOST_TEST(message.find("unavailable") != std::string::npos, message);
    BOOST_TEST(message.find("try again") != std::string::npos, message);
    BOOST_TEST(message.find("127.0.0.1") == std::string::npos, message);
    BOOST_TEST(message.find("refused") == std::string::npos, message);
  }
  redis.start();
  BOOST_TEST(
      log_has({"level=info", "msg=\"redis connection back\"", "down_s="}));
  BOOST_TEST(wait_until(
      [&] {
        return http_get(srv.url("/api/v1/resize/" + random_uuid())).status ==
               404;
      },
      std::chrono::seconds{10}));
  auto log_text = srv.process().log();
  BOOST_TEST_CONTEXT("log:\n" << log_text) {
    // Once each, though every poll and the node's watch retried meanwhile.
    BOOST_TEST(lines_with(log_text, {"msg=\"redis connection lost\""}) == 1u);
    BOOST_TEST(lines_with(log_text, {"msg=\"redis connection back\""}) == 1u);
  }
}

// A write that is not retried (here: the copy of a finished twin's result
// for a second submission of the same image, refused 503 since Redis is
// away) says nothing of kept writes: no "redis writes failing" stretch,
// and no "made again" while Redis is still down.
BOOST_AUTO_TEST_CASE(a_write_not_retried_opens_no_stretch_of_failing_writes) {
  redis_server redis;
  resized_server srv{redis.port(), {}, "obs-skipped"};
  const auto photo = corpus_photo(small_photo);
  auto token = accepted_token(submit_raw(srv, photo, "image/jpeg"));
  BOOST_TEST_REQUIRE(!token.empty());
  BOOST_TEST_REQUIRE(
      wait_all_final(srv, {token}, std::chrono::seconds{30}).at(token).status ==
      "SUCCESS");
  redis.stop();
  check_error(submit_raw(srv, photo, "image/jpeg"), 503, "store_unavailable");
  auto text = srv.process().log();
  BOOST_TEST_CONTEXT("log:\n" << text) {
    BOOST_TEST(lines_with(text, {"msg=\"request failed\"",
                                 "code=store_unavailable"}) == 1u);
    BOOST_TEST(lines_with(text, {"msg=\"redis writes failing\""}) == 0u);
    BOOST_TEST(lines_with(text, {"msg=\"redis writes made again\""}) == 0u);
  }
}

BOOST_AUTO_TEST_CASE(writes_failing_under_load_are_logged_once_then_summed) {
  // Tasks finish while Redis is away: each one's progress record and
  // result are kept for later, and the result supersedes the progress
  // record, which is not written then. The log says so once, and
  // sums up when the kept writes are made, instead of a line or two per
  // task through the whole outage.
  redis_server redis{true}; // AOF: the accepted tasks survive the restart
  resized_server srv{redis.port(), {"--resize.pool-size=1"}, "obs-writes"};
  // 8.3 MP: about 100 ms per resize, so most of them run after the stop.
  const auto photo = corpus_photo("plasma__Canopee_3840x2160.png");
  constexpr size_t tasks = 6;
  std::vector<std::string> tokens;
  for (size_t i = 0; i < tasks; ++i) {
    tokens.push_back(accepted_token(submit_raw(
        srv, photo, "image/png", "?width=" + std::to_string(100 + i))));
    BOOST_TEST_REQUIRE(!tokens.back().empty());
  }
  redis.stop();
  auto log = [&] { return srv.process().log(); };
  BOOST_TEST_REQUIRE(wait_until(
      [&] { return lines_with(log(), {"msg=\"task finished\""}) == tasks; },
      std::chrono::seconds{60}));
  redis.start();
  BOOST_TEST_REQUIRE(wait_until(
      [&] {
        return lines_with(log(), {"msg=\"redis writes made again\""}) > 0;
      },
      std::chrono::seconds{15}));
  auto results = wait_all_final(srv, tokens, std::chrono::seconds{30});
  for (const auto& token : tokens)
    BOOST_TEST(results[token].status == "SUCCESS", token);
  auto text = log();
  BOOST_TEST_CONTEXT("log:\n" << text) {
    BOOST_TEST(lines_with(text, {"level=warn", "msg=\"redis writes failing\"",
                                 "error="}) == 1u);
    BOOST_TEST(lines_with(text, {"msg=\"redis writes made again\""}) == 1u);
    BOOST_TEST(lines_with(text, {"msg=\"redis write failed"}) == 0u);
    BOOST_TEST(lines_with(text, {"msg=\"redis write made after"}) == 0u);
    std::smatch m;
    static const std::regex counts{
        R"(msg="redis writes made again" failing_s=[0-9.]+ kept=([0-9]+) )"
        R"(made=([0-9]+) superseded=([0-9]+) dropped=0 skipped=0)"};
    BOOST_TEST_REQUIRE(std::regex_search(text, m, counts));
    BOOST_TEST_MESSAGE(m.str(0));
    auto kept = std::stoul(m[1]), made = std::stoul(m[2]),
         superseded = std::stoul(m[3]);
    // At least two results kept (several tasks ran in the outage), all
    // of them made; the progress records before them were superseded.
    BOOST_TEST(made >= 2u);
    BOOST_TEST(superseded >= 1u);
    BOOST_TEST(made + superseded == kept);
  }
}

BOOST_AUTO_TEST_CASE(a_hung_redis_is_logged_lost_once_not_per_retry) {
  // A server that hangs (SIGSTOP) still accepts connections: only a reply
  // means it is back. The call that finds the hang times out; after it,
  // the node's probe connects and times out again and again (the polls fail
  // at once); the log says lost once and back only after resume.
  redis_server redis;
  resized_server srv{redis.port(), {}, "obs-hang"};
  BOOST_TEST_REQUIRE(http_get(srv.url("/readyz")).status == 200);
  auto count = [&](const std::string& msg) {
    return lines_with(srv.process().log(), {"msg=\"" + msg + "\""});
  };
  redis.pause();
  BOOST_TEST(wait_until([&] { return count("redis connection lost") > 0; },
                        std::chrono::seconds{15}));
  // Two polls during the hang, while the probe retries.
  for (int i = 0; i < 2; ++i) {
    auto res = http_get(srv.url("/api/v1/resize/" + random_uuid()));
    BOOST_TEST(res.status >= 500, res.status);
  }
  BOOST_TEST_CONTEXT("log:\n" << srv.process().log()) {
    BOOST_TEST(count("redis connection lost") == 1u);
    BOOST_TEST(count("redis connection back") == 0u);
  }
  redis.resume();
  BOOST_TEST(wait_until([&] { return count("redis connection back") > 0; },
                        std::chrono::seconds{15}));
  BOOST_TEST_CONTEXT("log:\n" << srv.process().log()) {
    BOOST_TEST(count("redis connection lost") == 1u);
    BOOST_TEST(count("redis connection back") == 1u);
  }
}

BOOST_AUTO_TEST_CASE(json_log_lines_carry_typed_values) {
  // log.format = json: every line is one JSON object; counts, sizes and
  // durations are numbers, flags booleans, and text stays a string even
  // when it looks like a number (this request id).
  redis_server redis;
  resized_server json_srv{redis.port(), {"--log.format=json"}, "obs-json"};
  auto token = submit_and_finish(json_srv);
  BOOST_TEST_REQUIRE(!token.empty());
  std::string id = "20261129";
  BOOST_TEST(
      http_get(json_srv.url("/api/v1/resize/" + token), {"X-Request-Id: " + id})
          .status == 200);
  // Each line by a marker it holds; "" if none within 5 s.
  auto line_with = [&](const std::string& marker) {
    return wait_log_line(json_srv.process(), marker, std::chrono::seconds{5});
  };
  auto access = line_with("\"request_id\":\"" + id + "\"");
  BOOST_TEST_CONTEXT("access line " << access) {
    auto doc = parse_json(access);
    BOOST_TEST_REQUIRE(doc.IsObject());
    BOOST_TEST(json_string(doc, "msg") == "request");
    BOOST_TEST(json_string(doc, "request_id") == id); // a string
    BOOST_TEST(json_string(doc, "token") == token);
    BOOST_TEST((doc.HasMember("status") && doc["status"].IsInt()));
    BOOST_TEST(json_int(doc, "status") == 200);
    BOOST_TEST((doc.HasMember("bytes") && doc["bytes"].IsUint64()));
    BOOST_TEST(json_int(doc, "bytes") > 0);
    BOOST_TEST((doc.HasMember("ms") && doc["ms"].IsNumber()));
  }
  auto finished =
      line_with("\"msg\":\"task finished\",\"token\":\"" + token + "\"");
  BOOST_TEST_CONTEXT("task line " << finished) {
    auto doc = parse_json(finished);
    BOOST_TEST_REQUIRE(doc.IsObject());
    // A task's state is `task_status`: `status` is the access lines'
    // number, and a log store maps one key to one type.
    BOOST_TEST(json_string(doc, "task_status") == "SUCCESS");
    BOOST_TEST(!doc.HasMember("status"));
    for (auto key : {"width", "height", "bytes", "queue_ms", "total_ms"})
      BOOST_TEST_CONTEXT(key) {
        BOOST_TEST((doc.HasMember(key) && doc[key].IsInt64()));
      }
    for (auto key : {"decode_ms", "resize_ms", "encode_ms"})
      BOOST_TEST_CONTEXT(key) {
        BOOST_TEST((doc.HasMember(key) && doc[key].IsNumber()));
      }
  }
  auto formats = line_with("\"msg\":\"output formats\"");
  BOOST_TEST_CONTEXT("formats line " << formats) {
    auto doc = parse_json(formats);
    BOOST_TEST_REQUIRE(doc.IsObject());
    BOOST_TEST((doc.HasMember("jpeg") && doc["jpeg"].IsBool()));
  }
  auto started =
      line_with("\"msg\":\"task started\",\"token\":\"" + token + "\"");
  BOOST_TEST_CONTEXT("task line " << started) {
    auto doc = parse_json(started);
    BOOST_TEST(json_string(doc, "task_status") == "IN_PROGRESS");
    BOOST_TEST(!doc.HasMember("status"));
  }
  // A request line with bytes that are not UTF-8 (and a quote, a
  // backslash): its access line is still valid JSON, the bytes replaced by
  // U+FFFD.
  auto bad_id = "bad-utf8-" + random_uuid();
  raw_http(json_srv.port(), "GET /\xFF\xFE\"\\ HTTP/1.1\r\nHost: x\r\n"
                            "X-Request-Id: " +
                                bad_id + "\r\nConnection: close\r\n\r\n");
  auto bad = line_with("\"request_id\":\"" + bad_id + "\"");
  BOOST_TEST_CONTEXT("access line " << bad) {
    BOOST_TEST_REQUIRE(!bad.empty());
    rapidjson::Document doc;
    doc.Parse<rapidjson::kParseValidateEncodingFlag>(bad.c_str(), bad.size());
    BOOST_TEST_REQUIRE(!doc.HasParseError());
    BOOST_TEST(json_string(doc, "path") == "/\xEF\xBF\xBD\xEF\xBF\xBD\"\\");
  }
  // Every line of the log: valid UTF-8 and JSON, `status` only a number.
  auto log = json_srv.process().log();
  std::istringstream lines{log};
  std::string line;
  size_t n = 0;
  while (std::getline(lines, line)) {
    ++n;
    BOOST_TEST_CONTEXT("line " << line) {
      rapidjson::Document doc;
      doc.Parse<rapidjson::kParseValidateEncodingFlag>(line.c_str(),
                                                       line.size());
      BOOST_TEST_REQUIRE(!doc.HasParseError());
      BOOST_TEST_REQUIRE(doc.IsObject());
      if (doc.HasMember("status"))
        BOOST_TEST(doc["status"].IsInt());
    }
  }
  BOOST_TEST(n > 5u);
}

BOOST_AUTO_TEST_SUITE_END()

// -- the OpenAPI document against the real service ----------------------------

namespace {

using rapidjson::Value;

// Resolves a local "$ref" ("#/components/schemas/X") against `root`.
const Value& deref(const Value& root, const Value& v) {
  if (!v.IsObject() || !v.HasMember("$ref"))
    return v;
  std::string ref = v["$ref"].GetString();
  BOOST_TEST_REQUIRE(ref.rfind("#/", 0) == 0);
  const Value* at = &root;
  std::istringstream parts{ref.substr(2)};
  std::string part;
  while (std::getline(parts, part, '/')) {
    BOOST_TEST_REQUIRE(at->HasMember(part.c_str()), "dangling $ref " << ref);
    at = &(*at)[part.c_str()];
  }
  return deref(root, *at);
}

std::string json_text(const Value& v) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w{buf};
  v.Accept(w);
  return buf.GetString();
}

// Checks `v` against an OpenAPI 3.0 schema (the subset the document uses:
// $ref, allOf, type, nullable, enum, properties, required, items, format
// uuid/date-time, minimum/maximum). Objects with properties are closed:
// a field the schema does not name is a problem ("nothing undocumented").
void check_schema(const Value& root, const Value& schema_in, const Value& v,
                  const std::string& where, std::vector<std::string>& out) {
  const Value& schema = deref(root, schema_in);
  if (schema.HasMember("allOf"))
    for (const auto& s : schema["allOf"].GetArray())
      check_schema(root, s, v, where, out);
  if (v.IsNull()) {
    bool nullable =
        schema.HasMember("nullable") && schema["nullable"].GetBool();
    if (!nullable)
      out.push_back(where + ": null is not allowed");
    return;
  }
  if (schema.HasMember("type")) {
    std::string type = schema["type"].GetString();
    bool ok = (type == "object" && v.IsObject()) ||
              (type == "array" && v.IsArray()) ||
              (type == "string" && v.IsString()) ||
              (type == "integer" && (v.IsInt64() || v.IsUint64())) ||
              (type == "number" && v.IsNumber()) ||
              (type == "boolean" && v.IsBool());
    if (!ok) {
      out.push_back(where + ": " + json_text(v) + " is not " + type);
      return;
    }
  }
  if (schema.HasMember("enum")) {
    bool found = false;
    for (const auto& e : schema["enum"].GetArray())
      found = found || e == v;
    if (!found)
      out.push_back(where + ": " + json_text(v) + " is not in the enum");
  }
  if (v.IsString() && schema.HasMember("format")) {
    std::string f = schema["format"].GetString();
    if (f == "uuid" && !is_uuid(v.GetString()))
      out.push_back(where + ": not a uuid");
    if (f == "date-time" && !is_iso8601_ms(v.GetString()))
      out.push_back(where + ": not a date-time");
  }
  if (v.IsNumber() && schema.HasMember("minimum") &&
      v.GetDouble() < schema["minimum"].GetDouble())
    out.push_back(where + ": below minimum");
  if (v.IsNumber() && schema.HasMember("maximum") &&
      v.GetDouble() > schema["maximum"].GetDouble())
    out.push_back(where + ": above maximum");
  if (v.IsArray() && schema.HasMember("items"))
    for (rapidjson::SizeType i = 0; i < v.Size(); ++i)
      check_schema(root, schema["items"], v[i],
                   where + "[" + std::to_string(i) + "]", out);
  if (v.IsObject()) {
    if (schema.HasMember("required"))
      for (const auto& r : schema["required"].GetArray())
        if (!v.HasMember(r.GetString()))
          out.push_back(where + ": required field " + r.GetString() +
                        " is missing");
    if (schema.HasMember("properties")) {
      const auto& props = schema["properties"];
      for (const auto& m : v.GetObject()) {
        std::string key = m.name.GetString();
        if (!props.HasMember(key.c_str()))
          out.push_back(where + ": field " + key + " is not documented");
        else
          check_schema(root, props[key.c_str()], m.value, where + "." + key,
                       out);
      }
    }
  }
}

// One exercised answer: (path template, method, status).
using answer_key = std::tuple<std::string, std::string, std::string>;

struct openapi_checker {
  rapidjson::Document doc;
  std::set<answer_key> exercised;

  // The documented response for an answer, or null.
  const Value* response(const std::string& path, const std::string& method,
                        long status) {
    auto code = std::to_string(status);
    const auto& paths = doc["paths"];
    if (!paths.HasMember(path.c_str()))
      return nullptr;
    const auto& item = paths[path.c_str()];
    if (item.HasMember(method.c_str())) {
      const auto& responses = item[method.c_str()]["responses"];
      if (responses.HasMember(code.c_str()))
        return &deref(doc, responses[code.c_str()]);
    }
    return nullptr;
  }

  // Checks a real answer against the document: status documented, content
  // type documented, documented headers present, JSON body valid, error code
  // listed for this status.
  void check(const std::string& path, const std::string& method,
             const http_response& res, long expected_status,
             const Value* common = nullptr) {
    BOOST_TEST_CONTEXT(method << " " << path << " -> " << res.status << " "
                              << res.body.substr(0, 300)) {
      BOOST_TEST(res.status == expected_status);
      const Value* r =
          common != nullptr ? common : response(path, method, res.status);
      BOOST_TEST_REQUIRE(r != nullptr,
                         "status " << res.status << " is not documented");
      if (common == nullptr)
        exercised.emplace(path, method, std::to_string(res.status));
      if (r->HasMember("headers"))
        for (const auto& h : (*r)["headers"].GetObject()) {
          std::string name = h.name.GetString();
          std::transform(name.begin(), name.end(), name.begin(), ::tolower);
          BOOST_TEST(!res.header(name).empty(), "header " << name);
        }
      if (!r->HasMember("content")) {
        BOOST_TEST(res.body.empty());
        return;
      }
      auto ctype = res.header("content-type");
      ctype = ctype.substr(0, ctype.find(';'));
      const auto& content = (*r)["content"];
      BOOST_TEST_REQUIRE(content.HasMember(ctype.c_str()),
                         "content type " << ctype << " is not documented");
      if (ctype != "application/json")
        return;
      auto body = parse_json(res.body);
      BOOST_TEST_REQUIRE(!body.HasParseError());
      std::vector<std::string> problems;
      check_schema(doc, content[ctype.c_str()]["schema"], body, "body",
                   problems);
      for (const auto& p : problems)
        BOOST_ERROR(p);
      if (r->HasMember("x-error-codes")) {
        auto code = json_string(body["error"], "code");
        bool listed = false;
        for (const auto& c : (*r)["x-error-codes"].GetArray())
          listed = listed || code == c.GetString();
        BOOST_TEST(listed, "error code " << code << " is not listed for "
                                         << res.status);
      }
    }
  }

  const Value& common(const char* name) {
    return deref(doc, doc["components"]["responses"][name]);
  }
};

struct openapi_tag {
  static std::vector<std::string> args() { return {}; }
  static std::string name() { return "openapi"; }
};

using openapi_env = suite_env<openapi_tag>;

} // namespace

BOOST_AUTO_TEST_SUITE(openapi, *boost::unit_test::fixture<openapi_env>())

BOOST_AUTO_TEST_CASE(document_matches_the_real_answers) {
  auto& s = openapi_env::get().server;
  openapi_checker api;
  auto spec = http_get(s.url("/api/v1/openapi.json"));
  BOOST_TEST_REQUIRE(spec.status == 200);
  api.doc.Parse(spec.body.c_str());
  BOOST_TEST_REQUIRE(!api.doc.HasParseError());
  BOOST_TEST(json_string(api.doc, "openapi").rfind("3.0", 0) == 0);
  // The served document is the file in the repo.
  auto file = read_file(env_or("RESIZED_SOURCE_DIR", ".") +
                        "/src/http/static/openapi.json");
  BOOST_TEST((file == spec.body));
  api.check("/api/v1/openapi.json", "get", spec, 200);

  const std::string photo = corpus_photo(small_photo);
  const std::string post = "post";
  const std::string get = "get";

  // -- POST /api/v1/resize ----------------------------------------------------
  auto accepted = submit_raw(s, photo, "image/jpeg", "?width=64&format=webp");
  api.check("/api/v1/resize", post, accepted, 202);
  auto token = accepted_token(accepted);
  BOOST_TEST_REQUIRE(!token.empty());
  api.check("/api/v1/resize", post,
            http_post(s.url("/api/v1/resize"), "{", "application/json"), 400);
  api.check("/api/v1/resize", post, submit_json(s, "@@@"), 400);
  api.check("/api/v1/resize", post,
            submit_raw(s, photo, "image/jpeg", "?mode=sideways"), 400);
  api.check("/api/v1/resize", post,
            submit_raw(s, png_header_only(30000, 30000), "image/png"), 413);
  api.check("/api/v1/resize", post,
            http_post(s.url("/api/v1/resize"), "hello", "text/plain"), 415);
  api.check("/api/v1/resize", post,
            submit_raw(s, garbage_bytes(4096), "application/octet-stream"),
            415);
  // A JSON submission too: same answer.
  auto json_accepted = submit_json(s, base64_encode(photo), ", \"width\": 50");
  api.check("/api/v1/resize", post, json_accepted, 202);

  // -- GET /api/v1/resize/{token}: PENDING..SUCCESS and FAILURE records -------
  auto done = finish(s, token);
  auto status_res = http_get(s.url("/api/v1/resize/" + token));
  api.check("/api/v1/resize/{token}", get, status_res, 200);
  auto failing = accepted_token(submit_raw(s, corrupt_jpeg(), "image/jpeg"));
  if (!failing.empty()) {
    auto last = wait_final(s, failing);
    BOOST_TEST(last.status == "FAILURE");
    api.check("/api/v1/resize/{token}", get,
              http_get(s.url("/api/v1/resize/" + failing)), 200);
  }
  api.check("/api/v1/resize/{token}", get,
            http_get(s.url("/api/v1/resize/not-a-token")), 400);
  api.check("/api/v1/resize/{token}", get,
            http_get(s.url("/api/v1/resize/" + token + "?wait=x")), 400);
  api.check("/api/v1/resize/{token}", get,
            http_get(s.url("/api/v1/resize/" + token + "?wait=1")), 200);
  api.check("/api/v1/resize/{token}", get,
            http_get(s.url("/api/v1/resize/" + random_uuid())), 404);

  // -- GET /api/v1/images/{name} ----------------------------------------------
  auto image_path = url_path(done.url);
  auto image = http_get(s.url(image_path));
  api.check("/api/v1/images/{name}", get, image, 200);
  api.check(
      "/api/v1/images/{name}", get,
      http_get(s.url(image_path), {"If-None-Match: " + image.header("etag")}),
      304);
  api.check("/api/v1/images/{name}", get,
            http_get(s.url("/api/v1/images/nothing.jpg")), 400);
  api.check("/api/v1/images/{name}", get,
            http_get(s.url("/api/v1/images/" + random_uuid() + ".jpg")), 404);

  // -- operations and the page ------------------------------------------------
  api.check("/healthz", get, http_get(s.url("/healthz")), 200);
  api.check("/readyz", get, http_get(s.url("/readyz")), 200);
  api.check("/metrics", get, http_get(s.url("/metrics")), 200);
  api.check("/api/v1/cluster", get, http_get(s.url("/api/v1/cluster")), 200);
  auto page = http_get(s.url("/"));
  api.check("/", get, page, 200);
  BOOST_TEST(page.body.find("/static/app.js") != std::string::npos);
  api.check("/", get,
            http_get(s.url("/"), {"If-None-Match: " + page.header("etag")}),
            304);
  auto js = http_get(s.url("/static/app.js"));
  api.check("/static/{name}", get, js, 200);
  api.check("/static/{name}", get, http_get(s.url("/static/style.css")), 200);
  api.check("/static/{name}", get,
            http_get(s.url("/static/app.js"),
                     {"If-None-Match: " + js.header("etag")}),
            304);
  api.check("/static/{name}", get, http_get(s.url("/static/nope.js")), 404);

  // -- answers common to every route ------------------------------------------
  for (auto [method, path] :
       {std::pair{"DELETE", "/healthz"}, std::pair{"GET", "/api/v1/resize"},
        std::pair{"POST", "/metrics"}, std::pair{"PUT", "/"},
        std::pair{"POST", "/api/v1/images/x.jpg"}}) {
    auto r = http_request(method, s.url(path));
    api.check(path, method, r, 405, &api.common("MethodNotAllowed"));
    BOOST_TEST(r.header("allow") ==
               (std::string{path} == "/api/v1/resize" ? "POST" : "GET, HEAD"));
  }
  api.check("/nope", "get", http_get(s.url("/nope")), 404,
            &api.common("NotFound"));

  // -- 503 and 504: a node with one worker, a queue of one, short deadlines ---
  {
    redis_server redis;
    resized_server tight{redis.port(),
                         {"--resize.pool-size=1", "--queue.capacity=1",
                          "--http.reply-timeout-ms=300"},
                         "openapi-tight"};
    // Fill the worker and the queue with the largest photo, slowly encoded.
    auto photos = corpus_photos();
    auto biggest = *std::max_element(
        photos.begin(), photos.end(), [](const auto& a, const auto& b) {
          return read_file(a).size() < read_file(b).size();
        });
    auto big = read_file(biggest);
    std::vector<std::string> tokens;
    http_response full;
    for (int i = 0; i < 40 && full.status != 503; ++i) {
      // Distinct options each time: identical work would share one resize.
      auto r = submit_raw(tight, big, "application/octet-stream",
                          "?width=3000&height=3000&mode=fit&format=png"
                          "&quality=" +
                              std::to_string(1 + i));
      if (r.status == 202)
        tokens.push_back(json_string(parse_json(r.body), "token"));
      else
        full = r;
    }
    api.check("/api/v1/resize", post, full, 503);
    wait_all_final(tight, tokens, std::chrono::seconds{120});
    // Redis stalls (CLIENT PAUSE): lookups pass http.reply-timeout -> 504.
    // Long enough for the three requests below under load (each lookup
    // waits its 300 ms); the pause ends with Redis itself (kill -9) below.
    redis.command("CLIENT PAUSE 10000 ALL");
    api.check("/api/v1/resize/{token}", get,
              http_get(tight.url("/api/v1/resize/" + random_uuid())), 504);
    api.check("/api/v1/images/{name}", get,
              http_get(tight.url("/api/v1/images/" + random_uuid() + ".jpg")),
              504);
    // Readiness never answers 504: a store that does not answer in time is
    // unavailable.
    auto stalled = http_get(tight.url("/readyz"));
    api.check("/readyz", get, stalled, 503);
    check_error(stalled, 503, "store_unavailable");
    // Redis gone: 503 store_unavailable for lookups and readiness.
    redis.stop();
    http_response r;
    BOOST_TEST(wait_until(
        [&] {
          r = http_get(tight.url("/api/v1/resize/" + random_uuid()));
          return r.status == 503;
        },
        std::chrono::seconds{15}));
    api.check("/api/v1/resize/{token}", get, r, 503);
    BOOST_TEST(wait_until(
        [&] {
          r = http_get(tight.url("/api/v1/images/" + random_uuid() + ".png"));
          return r.status == 503;
        },
        std::chrono::seconds{15}));
    api.check("/api/v1/images/{name}", get, r, 503);
    BOOST_TEST(wait_until(
        [&] {
          r = http_get(tight.url("/readyz"));
          return r.status == 503;
        },
        std::chrono::seconds{15}));
    api.check("/readyz", get, r, 503);
  }

  // -- an api node without workers: not ready; small body limit: 413 ----------
  {
    redis_server redis;
    resized_server bare{redis.port(),
                        workerless_api_args({"--limits.max-body-bytes=65536"}),
                        "openapi-no-workers"};
    auto r = http_get(bare.url("/readyz"));
    api.check("/readyz", get, r, 503);
    check_error(r, 503, "no_workers");
    api.check(
        "/api/v1/resize", post,
        submit_raw(bare, garbage_bytes(100000), "application/octet-stream"),
        413);
  }

  // -- auth on: 401 where a key is needed ------------------------------------
  {
    redis_server redis;
    resized_server locked{redis.port(),
                          {"--auth.api-keys=openapi-test-key-0123456789",
                           "--auth.protect-metrics", "--auth.protect-cluster"},
                          "openapi-auth"};
    auto r = submit_raw(locked, photo, "image/jpeg");
    api.check("/api/v1/resize", post, r, 401);
    check_error(r, 401, "unauthorized");
    api.check("/api/v1/resize/{token}", get,
              http_get(locked.url("/api/v1/resize/" + random_uuid())), 401);
    api.check("/metrics", get, http_get(locked.url("/metrics")), 401);
    api.check("/api/v1/cluster", get, http_get(locked.url("/api/v1/cluster")),
              401);
  }

  // -- coverage: every documented answer was exercised
  // ---------------------------- Not reachable from outside without a stalled
  // supervisor (it answers submits and the cluster view without Redis).
  const std::set<answer_key> unreachable{
      {"/api/v1/resize", "post", "504"},
      {"/api/v1/cluster", "get", "504"},
  };
  for (const auto& p : api.doc["paths"].GetObject())
    for (const auto& op : p.value.GetObject())
      for (const auto& resp : op.value["responses"].GetObject()) {
        answer_key key{p.name.GetString(), op.name.GetString(),
                       resp.name.GetString()};
        if (unreachable.count(key))
          continue;
        BOOST_TEST_CONTEXT(std::get<1>(key) << " " << std::get<0>(key) << " "
                                            << std::get<2>(key)) {
          BOOST_TEST(api.exercised.count(key) == 1u,
                     "documented but never answered in this test");
        }
      }
}

BOOST_AUTO_TEST_SUITE_END()
