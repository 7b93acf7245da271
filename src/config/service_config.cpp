#include "config/service_config.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <set>
#include <sstream>
#include <tuple>

#include <caf/config_option_adder.hpp>
#include <caf/settings.hpp>
#include <fmt/format.h>

#include "common/log.hpp"
#include "common/socket_ends.hpp"
#include "common/text.hpp"
#include "config/ini_check.hpp"
#include "config/tls_check.hpp"

namespace resized::config {

service_config::service_config() {
  opt_group{custom_options_, "http"}
      .add(http_address_, "address", "listen address (default 0.0.0.0)")
      .add(http_port_, "port", "listen port (default 5000)")
      .add(http_public_url_, "public-url",
           "base of absolute result URLs, e.g. http://host:5000 (default: "
           "relative paths)")
      .add(http_io_threads_, "io-threads", "RESTinio io threads (default 2)")
      .add(http_max_connections_, "max-connections",
           "parallel connections (default 1024)")
      .add(http_max_connections_per_client_, "max-connections-per-client",
           "parallel connections from one client address (an IPv6 /64); "
           "trusted proxies are exempt; 0 = no limit (default 128)")
      .add(http_max_receiving_bytes_, "max-receiving-bytes",
           "request body bytes being received at once, all connections "
           "together; a body that does not fit is answered 503 "
           "too_many_uploads; at least limits.max-body-bytes (default "
           "268435456)")
      .add(http_max_url_bytes_, "max-url-bytes", "URL length (default 8192)")
      .add(http_max_header_bytes_, "max-header-bytes",
           "header field length (default 16384)")
      .add(http_max_poll_wait_, "max-poll-wait",
           "longest ?wait= seconds of GET /api/v1/resize/<token> (default "
           "20; must stay below handle-timeout minus reply-timeout)")
      .add(http_read_buffer_bytes_, "read-buffer-bytes",
           "socket read buffer per connection (default 65536)")
      .add(http_max_header_count_, "max-header-count",
           "header fields per request (default 100)")
      .add(http_read_timeout_, "read-timeout",
           "seconds to receive a whole request (default 30)")
      .add(http_write_timeout_, "write-timeout",
           "seconds to send a response (default 30)")
      .add(http_handle_timeout_, "handle-timeout",
           "seconds before an unanswered request is dropped (default 30)")
      .add(http_reply_timeout_ms_, "reply-timeout-ms",
           "ms the actors have to answer a request before 504 (default 5000)")
      .add(http_trusted_proxies_, "trusted-proxies",
           "reverse proxies whose X-Forwarded-For names the client, for its "
           "share of the queue: addresses or ranges, \"10.0.0.0/8,::1\" "
           "(default: none)")
      .add(http_forwarded_header_, "forwarded-header",
           "the header the trusted proxies name the client in: "
           "X-Forwarded-For or Forwarded (RFC 7239) (default "
           "X-Forwarded-For)")
      .add(http_cors_origins_, "cors-origins",
           "web origins whose pages may call the API from a browser (CORS): "
           "\"https://app.example.com,http://localhost:3000\", or \"*\" "
           "for any (default: none)")
      .add(http_retry_after_, "retry-after",
           "Retry-After seconds on 503 (default 2)");
  opt_group{custom_options_, "redis"}
      .add(redis_host_, "host", "Redis host (default 127.0.0.1)")
      .add(redis_port_, "port", "Redis port (default 6379)")
      .add(redis_db_, "db", "Redis database number (default 0)")
      .add(redis_password_, "password", "Redis AUTH password (default none)")
      .add(redis_key_prefix_, "key-prefix", "key prefix (default resized:)")
      .add(redis_result_ttl_, "result-ttl",
           "seconds records and results live (default 86400)")
      .add(redis_timeout_ms_, "timeout-ms",
           "connect and command timeout in ms (default 2000)");
  opt_group{custom_options_, "cluster"}
      .add(cluster_role_, "role", "standalone (default), api or worker")
      .add(cluster_node_name_, "node-name",
           "unique name of this node (default host:http-port, workers "
           "host/worker-pid)")
      .add(cluster_bind_address_, "bind-address",
           "api: address workers connect to (default 0.0.0.0)")
      .add(cluster_port_, "port", "api: port workers connect to (default 4000)")
      .add(cluster_api_nodes_, "api-nodes",
           "worker: API nodes to join, \"host:port,host:port\"")
      .add(cluster_advertise_, "advertise",
           "worker: address shown in /api/v1/cluster (default hostname)")
      .add(cluster_heartbeat_ms_, "heartbeat-ms",
           "BASP heartbeat interval in ms (default 1000)")
      .add(cluster_connection_timeout_ms_, "connection-timeout-ms",
           "ms without traffic before a node is declared lost (default 5000)")
      .add(cluster_reconnect_max_ms_, "reconnect-max-ms",
           "worker: longest wait between join attempts (default 5000)")
      .add(cluster_max_pending_, "max-pending-connections",
           "api: connections to cluster.port that have not joined as a "
           "worker yet, at most; more are closed at once (default 64)")
      .add(cluster_lease_ms_, "lease-ms",
           "api, standalone: ms the lease on node-name in Redis lives "
           "unless renewed (default 10000)")
      .add(cluster_lease_renew_ms_, "lease-renew-ms",
           "api, standalone: ms between renewals of that lease (default "
           "3000; at most a third of lease-ms)")
      .add(cluster_adopt_ms_, "adopt-ms",
           "api, standalone: ms between looks for the pending tasks of "
           "node names nobody holds a lease on, which this node then takes "
           "over; 0 = never (default: lease-ms)");
  opt_group{custom_options_, "resize"}
      .add(resize_pool_size_, "pool-size",
           "resize actors running at once (default 2)")
      .add(resize_vips_concurrency_, "vips-concurrency",
           "libvips threads per resize (default 1)")
      .add(resize_task_timeout_ms_, "task-timeout-ms",
           "ms one resize may take before FAILURE (default 60000)")
      .add(resize_nice_, "nice",
           "lower CPU priority of resize threads, 0..19 (default 5)")
      .add(resize_decode_bytes_per_worker_, "decode-bytes-per-worker",
           "memory budget per resize worker: a node starts a task only while "
           "the decode estimates of its tasks stay within pool-size x this; "
           "0 = no budget (default 268435456)")
      .add(resize_max_attempts_, "max-attempts",
           "nodes a task is tried on before FAILURE worker_lost (default 3)")
      .add(resize_journal_, "journal",
           "api, standalone: file noting each resize this node starts, so "
           "that a crash counts the attempt (\"\" = $TMPDIR or "
           "/tmp/resized-<node-name>.journal, \"off\" = none)");
  opt_group{custom_options_, "queue"}
      .add(queue_capacity_, "capacity", "tasks waiting (default 256)")
      .add(queue_max_bytes_, "max-bytes",
           "input bytes waiting, at least limits.max-body-bytes (default "
           "268435456)")
      .add(queue_max_per_client_, "max-per-client",
           "tasks one client (API key, else address) may have open on this "
           "node; 0 = no limit (default 0)")
      .add(queue_max_bytes_per_client_, "max-bytes-per-client",
           "input bytes of the tasks one client may have open on this node; "
           "0 = no limit (default 0)");
  opt_group{custom_options_, "status"}
      .add(status_cache_entries_, "cache-entries",
           "task records cached (default 10000)")
      .add(status_image_cache_bytes_, "image-cache-bytes",
           "result bytes cached (default 67108864)")
      .add(status_recheck_ms_, "recheck-ms",
           "ms between looks in Redis for a long-polled task another API node "
           "runs, besides Redis' announcement of its end (default 1000)");
  opt_group{custom_options_, "memory"}
      .add(memory_arenas_, "arenas",
           "glibc malloc arenas, 0 = glibc's default (default 1)")
      .add(memory_trim_interval_ms_, "trim-interval-ms",
           "ms between checks that give free heap memory back to the OS, "
           "0 = never (default 1000)")
      .add(memory_trim_threshold_, "trim-threshold",
           "free heap bytes before a trim (default 16777216)")
      .add(memory_busy_trim_threshold_, "busy-trim-threshold",
           "free heap bytes before a trim while submissions or resizes keep "
           "coming, 0 = trim-threshold (default 134217728)")
      .add(memory_mmap_threshold_, "mmap-threshold",
           "allocations of this many bytes or more are mapped and unmapped "
           "when freed, 0 = glibc's dynamic threshold (default 33554432)")
      .add(memory_heap_top_bytes_, "heap-top-bytes",
           "free bytes at the top of a heap that free() keeps for reuse; "
           "the periodic trim returns them, 0 = glibc's default (default "
           "67108864)")
      .add(memory_huge_pages_, "huge-pages",
           "\"on\" or \"off\": malloc's heap and large buffers in "
           "transparent huge pages (glibc.malloc.hugetlb=1; resized runs "
           "itself again with it in GLIBC_TUNABLES unless that sets it "
           "already) (default \"on\")");
  opt_group{custom_options_, "limits"}
      .add(limits_max_body_bytes_, "max-body-bytes",
           "request body bytes (default 67108864)")
      .add(limits_max_pixels_, "max-pixels",
           "input width*height (default 50000000)")
      .add(limits_max_dimension_, "max-dimension",
           "output width/height (default 4096)")
      .add(limits_max_avif_pixels_, "max-avif-pixels",
           "output width*height of an AVIF result (default 4194304)")
      .add(limits_truncated_, "truncated",
           "an image whose data ends early: fail (FAILURE corrupt_image, "
           "default) or serve (decoded part, rest grey)");
  opt_group{custom_options_, "defaults"}
      .add(defaults_width_, "width", "default width (default 100)")
      .add(defaults_height_, "height", "default height (default 100)")
      .add(defaults_mode_, "mode", "fill, fit or force (default fill)")
      .add(defaults_format_, "format", "jpeg, png, webp or avif (default jpeg)")
      .add(defaults_quality_, "quality", "1..100 (default 85)");
  opt_group{custom_options_, "auth"}
      .add(auth_api_keys_, "api-keys",
           "comma-separated API keys; also $RESIZED_API_KEYS (default: none, "
           "auth off)")
      .add(auth_protect_metrics_, "protect-metrics",
           "require a key for /metrics (default false)")
      .add(auth_protect_cluster_, "protect-cluster",
           "require a key for /api/v1/cluster (default false)");
  opt_group{custom_options_, "shutdown"}.add(
      shutdown_grace_, "grace",
      "seconds in-flight tasks may finish after SIGTERM (default 20)");
  opt_group{custom_options_, "log"}
      .add(log_level_, "level",
           "trace, debug, info, warn, error or off (default info)")
      .add(log_format_, "format",
           "logfmt (default) or json (one JSON object per line)")
      .add(log_access_, "access",
           "access lines (info): all (default), errors (4xx and 5xx "
           "answers only) or off");
}

namespace {

/// Whether `text` is a literal IPv4 or IPv6 address (inet_pton's forms).
bool is_ip_address(const std::string& text) {
  unsigned char buf[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, text.c_str(), buf) == 1 ||
         inet_pton(AF_INET6, text.c_str(), buf) == 1;
}

/// Whether listening on `a` and on `b` (literal addresses) at one port
/// collides: the same address (an IPv4-mapped IPv6 address is its IPv4
/// one), 0.0.0.0 and any IPv4 address, or :: (dual-stack) and anything.
bool addresses_overlap(const std::string& a, const std::string& b) {
  struct parsed {
    bool v4 = false;
    std::string bytes;
  };
  auto parse = [](const std::string& text) {
    parsed out;
    unsigned char buf[sizeof(struct in6_addr)] = {};
    if (inet_pton(AF_INET, text.c_str(), buf) == 1) {
      out.v4 = true;
      out.bytes.assign(reinterpret_cast<char*>(buf), sizeof(struct in_addr));
    } else if (inet_pton(AF_INET6, text.c_str(), buf) == 1) {
      const auto* v6 = reinterpret_cast<const struct in6_addr*>(buf);
      out.v4 = IN6_IS_ADDR_V4MAPPED(v6);
      out.bytes = out.v4 ? std::string(reinterpret_cast<char*>(buf) + 12, 4)
                         : std::string(reinterpret_cast<char*>(buf), 16);
    } else {
      out.bytes = text; // not an address: refused on its own
    }
    return out;
  };
  auto any = [](const parsed& p) {
    return p.bytes.find_first_not_of('\0') == std::string::npos;
  };
  auto x = parse(a), y = parse(b);
  if (x.v4 == y.v4 && x.bytes == y.bytes)
    return true;
  if ((!x.v4 && any(x)) || (!y.v4 && any(y)))
    return true; // :: takes IPv4 too (Linux' default bindv6only=0)
  return x.v4 && y.v4 && (any(x) || any(y));
}

} // namespace

namespace {

// Collects range problems, each naming its key.
struct checker {
  std::vector<std::string>& errors;

  template <class T>
  bool range(const char* key, int64_t value, int64_t lo, int64_t hi, T& out) {
    if (value < lo || value > hi) {
      errors.push_back(
          fmt::format("{} = {} is out of range [{}, {}]", key, value, lo, hi));
      return false;
    }
    out = static_cast<T>(value);
    return true;
  }
};

constexpr int64_t max_i64 = std::numeric_limits<int64_t>::max();

// What --dump-config writes in place of a secret (dump_content). Read back,
// each would be taken for the secret itself.
const std::string secret_placeholder = "(set, not shown)";
const std::string keys_placeholder_env_too =
    "(set, and more in $RESIZED_API_KEYS; not shown)";
const std::string keys_placeholder_env =
    "(set in $RESIZED_API_KEYS, not shown)";

// CAF 0.17 prints a duration in its largest whole unit, days included
// ("0d"), which its own parser does not read; these units it does.
std::string duration_text(caf::timespan t) {
  auto ns = t.count();
  if (ns % 1000000000 == 0)
    return fmt::format("{}s", ns / 1000000000);
  if (ns % 1000000 == 0)
    return fmt::format("{}ms", ns / 1000000);
  if (ns % 1000 == 0)
    return fmt::format("{}us", ns / 1000);
  return fmt::format("{}ns", ns);
}

// http.public-url: scheme://host[:port][/path] with scheme http or https,
// nothing in it a URL would have to percent-encode, no query or fragment
// (result paths are appended to it). The problem, or "" if valid.
std::string public_url_problem(const std::string& url) {
  const char* form = "expected http(s)://host[:port][/path]";
  size_t scheme = url.rfind("http://", 0) == 0    ? 7
                  : url.rfind("https://", 0) == 0 ? 8
                                                  : 0;
  if (scheme == 0)
    return fmt::format("must start with http:// or https:// ({})", form);
  auto rest = url.substr(scheme);
  for (unsigned char ch : url)
    if (ch <= 0x20 || ch >= 0x7f)
      return fmt::format("contains a space, a control character or a "
                         "non-ASCII byte ({}; percent-encode the path)",
                         form);
  if (url.find_first_of("?#") != std::string::npos)
    return fmt::format("must not have a query or a fragment: result paths "
                       "are appended to it ({})",
                       form);
  auto slash = rest.find('/');
  auto authority = rest.substr(0, slash);
  if (authority.empty())
    return fmt::format("has no host ({})", form);
  std::string host = authority;
  std::string port;
  if (authority.front() == '[') { // [IPv6]
    auto close = authority.find(']');
    if (close == std::string::npos ||
        authority.find_first_not_of("0123456789abcdefABCDEF:.", 1) != close)
      return fmt::format("has a bad IPv6 host ({})", form);
    host = authority.substr(0, close + 1);
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':')
        return fmt::format("has a bad host ({})", form);
      port = authority.substr(close + 2);
      if (port.empty())
        return fmt::format("has an empty port ({})", form);
    }
  } else if (auto colon = authority.rfind(':'); colon != std::string::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
    if (port.empty())
      return fmt::format("has an empty port ({})", form);
  }
  if (host.empty())
    return fmt::format("has no host ({})", form);
  if (host.front() != '[' &&
      host.find_first_not_of("abcdefghijklmnopqrstuvwxyz"
                             "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._") !=
          std::string::npos)
    return fmt::format("has a bad host '{}' ({})", host, form);
  if (!port.empty() &&
      (port.size() > 5 ||
       port.find_first_not_of("0123456789") != std::string::npos ||
       std::stoi(port) < 1 || std::stoi(port) > 65535))
    return fmt::format("has a bad port '{}' ({})", port, form);
  return {};
}

// Keys only the node that accepts a task uses: its HTTP layer checks the
// request against them, its supervisor queues and places the task, and
// every job carries the resulting policy to whichever node runs it; and
// resize.journal, which only a node with a supervisor keeps.
constexpr const char* task_policy_keys[] = {
    "limits.max-body-bytes", "limits.max-pixels",
    "limits.max-dimension",  "limits.max-avif-pixels",
    "limits.truncated",      "resize.task-timeout-ms",
    "resize.max-attempts",   "resize.decode-bytes-per-worker",
    "resize.journal",        "defaults.width",
    "defaults.height",       "defaults.mode",
    "defaults.format",       "defaults.quality",
};

// CAF's own logger is compiled out of Debian's libcaf 0.17 (its
// caf/detail/build_config.hpp sets CAF_LOG_LEVEL_QUIET): the keys of this
// section are read and checked, but change nothing on any node. A key set
// is warned about at start; the dump leaves the section out. resized's own
// log is set in [log].
constexpr const char* caf_logger_section = "logger";

// A worker has no HTTP server, Redis connection or queue: its API nodes do.
bool http_side_section(const std::string& section) {
  return section == "http" || section == "redis" || section == "queue" ||
         section == "status" || section == "auth";
}

// A key (section.name) a worker node does not use: the task policy or the
// HTTP side. Warned about at a worker's start, left out of its dump.
bool unused_on_a_worker(const std::string& key) {
  for (const char* k : task_policy_keys)
    if (key == k)
      return true;
  return http_side_section(key.substr(0, key.find('.')));
}

// The keys the command line sets (--section.key=value or a bare flag).
std::set<std::string> command_line_keys(int argc, char** argv) {
  std::set<std::string> keys;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.compare(0, 2, "--") != 0)
      continue;
    auto key = arg.substr(2, arg.find('=') - 2);
    // CAF 0.17 takes --caf#section.key for its own and our options alike.
    if (key.compare(0, 4, "caf#") == 0)
      key.erase(0, 4);
    keys.insert(std::move(key));
  }
  return keys;
}

// A value refused after CAF read it (a range, a cross-key check) is named
// with the file and line it came from, as check_ini names a type mistake:
// "prod.ini:12: resize.pool-size = 0 is out of range [1, 1024]". A
// message's first word is the key it is about; one the command line sets
// (over the file's) or that the file does not set is left as it is.
void name_file_lines(std::vector<std::string>& errors, const std::string& path,
                     const std::map<std::string, int32_t>& lines,
                     const std::set<std::string>& on_command_line) {
  for (auto& e : errors) {
    auto key = e.substr(0, e.find_first_of(" :"));
    auto line = lines.find(key);
    if (line != lines.end() && on_command_line.count(key) == 0)
      e = fmt::format("{}:{}: {}", path, line->second, e);
  }
}

// "a, b,c" → {"a", "b", "c"}: comma-separated, blanks trimmed, empty
// entries skipped.
std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> items;
  size_t pos = 0;
  while (pos <= text.size()) {
    auto comma = text.find(',', pos);
    if (comma == std::string::npos)
      comma = text.size();
    auto item = text.substr(pos, comma - pos);
    pos = comma + 1;
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (!item.empty())
      items.push_back(std::move(item));
  }
  return items;
}

// "host:port,host:port" (spaces allowed, empty entries skipped); an IPv6
// address in brackets, "[::1]:4000", gives the host without them (CAF
// connects to the address as written: "[::1]" resolves to nothing).
bool parse_endpoint_list(const std::string& text,
                         std::vector<std::pair<std::string, uint16_t>>& out,
                         std::string& bad) {
  for (const auto& item : split_list(text)) {
    auto colon = item.rfind(':');
    int64_t port = 0;
    try {
      size_t used = 0;
      if (colon != std::string::npos && colon > 0)
        port = std::stoll(item.substr(colon + 1), &used);
      if (used == 0 || colon + 1 + used != item.size())
        port = 0;
    } catch (const std::exception&) {
      port = 0;
    }
    auto host = colon == std::string::npos ? item : item.substr(0, colon);
    bool bracketed = !host.empty() && host.front() == '[';
    if (bracketed) {
      unsigned char buf[sizeof(struct in6_addr)];
      if (host.size() < 3 || host.back() != ']' ||
          inet_pton(AF_INET6, host.substr(1, host.size() - 2).c_str(), buf) !=
              1)
        port = 0; // "[" without "]", or not an IPv6 address inside
      else
        host = host.substr(1, host.size() - 2);
    } else if (host.find_first_not_of(
                   "abcdefghijklmnopqrstuvwxyz"
                   "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") !=
               std::string::npos) {
      // A host name or IPv4 address: "fd00::1" (IPv6 without brackets, read
      // as host "fd00:" port 1), "http://x:4000" or "a b:4000" is refused.
      port = 0;
    }
    if (port < 1 || port > 65535) {
      bad = item;
      return false;
    }
    out.emplace_back(std::move(host), static_cast<uint16_t>(port));
  }
  return true;
}

} // namespace

void service_config::check_caf_keys(std::vector<std::string>& errors) const {
  // CAF 0.17 checks none of these; each value refused here starts a node
  // that logs "resized started", answers /healthz and then nothing else
  // (no actor runs, no BASP message arrives), or crashes at its first work
  // steal.
  struct bound {
    const char* key;
    int64_t lo;
    int64_t hi;
    const char* why;
  };
  for (auto b : {
           bound{"scheduler.max-threads", 1, 4096,
                 "with no scheduler thread no actor would ever run"},
           bound{"scheduler.max-throughput", 1, max_i64,
                 "an actor would handle no message per run"},
           bound{"middleman.max-consecutive-reads", 1, max_i64,
                 "no connection between nodes would ever be read"},
           bound{"work-stealing.aggressive-steal-interval", 1, max_i64,
                 "CAF divides by it"},
           bound{"work-stealing.moderate-steal-interval", 1, max_i64,
                 "CAF divides by it"},
           bound{"work-stealing.relaxed-steal-interval", 1, max_i64,
                 "CAF divides by it"},
       }) {
    auto value = caf::get_if<int64_t>(&content, b.key);
    if (!value || (*value >= b.lo && *value <= b.hi))
      continue;
    if (b.hi == max_i64)
      errors.push_back(fmt::format("{} = {} must be at least {}: {}", b.key,
                                   *value, b.lo, b.why));
    else
      errors.push_back(fmt::format("{} = {} is out of range [{}, {}]: {}",
                                   b.key, *value, b.lo, b.hi, b.why));
  }
  // CAF 0.17 takes any atom: an unknown policy or backend falls back to the
  // default (or, for 'testing', to a scheduler or network loop nothing
  // drives); an unknown verbosity means quiet.
  for (const char* key : {"scheduler.policy", "middleman.network-backend",
                          "logger.verbosity", "logger.file-verbosity",
                          "logger.console-verbosity", "logger.console"}) {
    auto value = caf::get_if<caf::atom_value>(&content, key);
    if (!value)
      continue;
    auto choices = atom_choices(key);
    auto text = caf::to_string(*value);
    if (std::find(choices.begin(), choices.end(), text) == choices.end()) {
      std::string list;
      for (auto& choice : choices)
        list += (list.empty() ? "'" : ", '") + choice + "'";
      errors.push_back(
          fmt::format("{} = '{}' is not one of {}", key, text, list));
    }
  }
  if (caf::get_or(content, "middleman.manual-multiplexing", false))
    errors.push_back("middleman.manual-multiplexing = true: nothing would "
                     "run CAF's network loop (no node could join another)");
}

std::vector<std::string> service_config::load(int argc, char** argv,
                                              service_settings& out) {
  std::vector<std::string> errors;
  // The file CAF would read: the first --config-file=, else its default
  // (caf-application.ini in the working directory, if there is one).
  const std::string flag = "--config-file=";
  std::string path = config_file_path;
  int given = 0;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.compare(0, flag.size(), flag) == 0 && given++ == 0)
      path = arg.substr(flag.size());
  }
  if (given > 1)
    errors.push_back("config-file: given more than once (CAF reads only the "
                     "first one)");
  // Read once; CAF parses the same text below. CAF silently ignores a
  // --config-file it cannot open: refuse instead.
  std::string text;
  std::error_code ec;
  std::ifstream file{path};
  if (!file || std::filesystem::is_directory(path, ec)) {
    if (given > 0)
      errors.push_back(fmt::format("config-file: cannot read '{}'", path));
  } else {
    text.assign(std::istreambuf_iterator<char>{file},
                std::istreambuf_iterator<char>{});
    out.config_file = path;
    out.config_file_implicit = given == 0;
    if (file.bad())
      errors.push_back(fmt::format("config-file: cannot read '{}'", path));
    else
      for (auto& problem : check_ini(path, text, custom_options_))
        errors.push_back(std::move(problem));
  }
  if (!errors.empty())
    return errors;
  string_list args;
  // CAF 0.17 takes a boolean on the command line only as a bare flag
  // (--auth.protect-metrics) and refuses --key=true and --key=false, though
  // every key can be given as --section.key=value: =true becomes the bare
  // flag, =false is set after CAF's parse (over the file's value), the last
  // of a key's arguments counting.
  std::vector<std::pair<std::string, bool>> flags_given;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto eq = arg.find('=');
    auto value = eq == std::string::npos ? std::string{} : arg.substr(eq + 1);
    const caf::config_option* opt = nullptr;
    if (arg.compare(0, 2, "--") == 0)
      opt = custom_options_.cli_long_name_lookup(arg.substr(2, eq - 2));
    bool flag =
        opt != nullptr && opt->is_flag() &&
        (eq == std::string::npos || value == "true" || value == "false");
    if (opt != nullptr && eq != std::string::npos) {
      std::string type{opt->type_name().begin(), opt->type_name().end()};
      bool integer = type.rfind("int", 0) == 0 || type.rfind("uint", 0) == 0;
      if (auto why = integer ? non_decimal_integer(value) : std::string{};
          !why.empty())
        errors.push_back(
            fmt::format("{} = {}: {}", arg.substr(2, eq - 2), value, why));
    }
    if (arg == "--dump-config" || arg == "--dump-config=true") {
      dump_requested_ = true;
    } else if (arg == "--dump-config=false") {
      // nop
    } else if (flag) {
      auto name = arg.substr(2, eq - 2);
      flags_given.emplace_back(name, value != "false");
      if (value != "false")
        args.push_back("--" + name);
    } else {
      args.push_back(std::move(arg));
    }
  }
  std::istringstream ini{text};
  if (auto err = parse(std::move(args), ini)) {
    errors.push_back(command_line_error(err, custom_options_));
    return errors;
  }
  for (size_t i = 0; i < flags_given.size(); ++i) {
    const auto& [name, on] = flags_given[i];
    bool later = std::any_of(flags_given.begin() + i + 1, flags_given.end(),
                             [&](const auto& f) { return f.first == name; });
    if (on || later)
      continue;
    const auto* opt = custom_options_.cli_long_name_lookup(name);
    caf::config_value off{false};
    opt->store(off);
    std::string key{opt->long_name().begin(), opt->long_name().end()};
    if (opt->category() != "global")
      key = std::string{opt->category().begin(), opt->category().end()} + "." +
            key;
    caf::put(content, key, false);
  }
  // CAF stops at the first word that is not an option and leaves it and
  // every word after it unread (`remainder`): refused, or a forgotten
  // "--config-file=" would start the node on built-in defaults with the
  // options after it (API keys among them) ignored.
  if (!remainder.empty()) {
    errors.push_back(fmt::format(
        "unexpected argument '{}'{}: options are --section.key=value, a "
        "config file is --config-file=PATH",
        remainder.front().substr(0, 200),
        remainder.size() > 1 ? fmt::format(" (and the {} after it, not read)",
                                           remainder.size() - 1)
                             : std::string{}));
    return errors;
  }
  checker c{errors};
  auto& h = out.http;
  h.address = http_address_;
  // RESTinio binds it as an IP address: anything else failed only at the
  // bind (exit 1, "Invalid argument"), after --dump-config had taken it.
  if (!is_ip_address(h.address))
    errors.push_back(fmt::format(
        "http.address = '{}' is not an IPv4 or IPv6 address (e.g. 0.0.0.0, "
        "127.0.0.1, ::)",
        http_address_));
  c.range("http.port", http_port_, 1, 65535, h.port);
  h.public_url = http_public_url_;
  if (!h.public_url.empty())
    if (auto problem = public_url_problem(h.public_url); !problem.empty())
      errors.push_back(
          fmt::format("http.public-url = '{}' {}", http_public_url_, problem));
  while (!h.public_url.empty() && h.public_url.back() == '/')
    h.public_url.pop_back();
  c.range("http.io-threads", http_io_threads_, 1, 256, h.io_threads);
  c.range("http.max-connections", http_max_connections_, 1, 1000000,
          h.max_connections);
  c.range("http.max-connections-per-client", http_max_connections_per_client_,
          0, 1000000, h.max_connections_per_client);
  c.range("http.max-receiving-bytes", http_max_receiving_bytes_, 1024,
          1ll << 40, h.max_receiving_bytes);
  c.range("http.max-url-bytes", http_max_url_bytes_, 256, 1 << 20,
          h.max_url_bytes);
  c.range("http.max-header-bytes", http_max_header_bytes_, 256, 1 << 20,
          h.max_header_bytes);
  c.range("http.max-header-count", http_max_header_count_, 8, 10000,
          h.max_header_count);
  c.range("http.read-buffer-bytes", http_read_buffer_bytes_, 1024, 16 << 20,
          h.read_buffer_bytes);
  int64_t secs = 0;
  if (c.range("http.read-timeout", http_read_timeout_, 1, 3600, secs))
    h.read_timeout = std::chrono::seconds{secs};
  if (c.range("http.write-timeout", http_write_timeout_, 1, 3600, secs))
    h.write_timeout = std::chrono::seconds{secs};
  if (c.range("http.handle-timeout", http_handle_timeout_, 1, 3600, secs))
    h.handle_timeout = std::chrono::seconds{secs};
  if (c.range("http.reply-timeout-ms", http_reply_timeout_ms_, 10, 3600000,
              secs))
    h.reply_timeout = std::chrono::milliseconds{secs};
  if (h.reply_timeout >= h.handle_timeout)
    errors.push_back(fmt::format(
        "http.reply-timeout-ms ({} ms) must be shorter than "
        "http.handle-timeout ({} s; RESTinio drops the socket then)",
        h.reply_timeout.count(), h.handle_timeout.count()));
  c.range("http.retry-after", http_retry_after_, 1, 3600, h.retry_after);
  if (equals_nocase(http_forwarded_header_, "forwarded"))
    h.forwarded_rfc7239 = true;
  else if (!equals_nocase(http_forwarded_header_, "x-forwarded-for"))
    errors.push_back(fmt::format(
        "http.forwarded-header = '{}': must be X-Forwarded-For or Forwarded "
        "(the header the proxies in http.trusted-proxies write; the other "
        "one is then not read, since a client could write it)",
        http_forwarded_header_));
  for (const auto& item : split_list(http_trusted_proxies_)) {
    if (auto net = parse_network(item))
      h.trusted_proxies.push_back(*net);
    else
      errors.push_back(fmt::format(
          "http.trusted-proxies: '{}' is not an IP address or range "
          "(\"10.0.0.0/8\", \"fd00::/8\", \"192.0.2.10\")",
          item));
  }
  for (const auto& item : split_list(http_cors_origins_)) {
    if (item == "*") {
      h.cors.any = true;
    } else if (auto origin = normalize_origin(item)) {
      if (std::find(h.cors.origins.begin(), h.cors.origins.end(), *origin) ==
          h.cors.origins.end())
        h.cors.origins.push_back(*origin);
    } else {
      errors.push_back(fmt::format(
          "http.cors-origins: '{}' is not a web origin: scheme, host and "
          "optional port, no path (\"https://app.example.com\", "
          "\"http://localhost:3000\"), or \"*\"",
          item));
    }
  }
  if (h.cors.any && !h.cors.origins.empty())
    errors.push_back("http.cors-origins: \"*\" allows every origin; list "
                     "origins or give \"*\" alone");
  if (c.range("http.max-poll-wait", http_max_poll_wait_, 0, 3600, secs)) {
    h.max_poll_wait = std::chrono::seconds{secs};
    // A long poll is answered by wait + reply-timeout at the latest.
    if (h.reply_timeout < h.handle_timeout &&
        h.max_poll_wait + h.reply_timeout >= h.handle_timeout)
      errors.push_back(fmt::format(
          "http.max-poll-wait ({} s) plus http.reply-timeout-ms ({} ms) "
          "must be shorter than http.handle-timeout ({} s; RESTinio drops "
          "the socket then): lower either, or raise http.handle-timeout",
          h.max_poll_wait.count(), h.reply_timeout.count(),
          h.handle_timeout.count()));
  }

  auto& r = out.redis;
  if (redis_host_.empty())
    errors.push_back("redis.host must not be empty");
  r.store.host = redis_host_;
  c.range("redis.port", redis_port_, 1, 65535, r.store.port);
  c.range("redis.db", redis_db_, 0, 1024, r.store.db);
  r.store.password = redis_password_;
  if (redis_password_ == secret_placeholder)
    errors.push_back("redis.password is the placeholder --dump-config writes "
                     "for a secret: set the real password here (or with "
                     "--redis.password)");
  r.store.key_prefix = redis_key_prefix_;
  if (c.range("redis.result-ttl", redis_result_ttl_, 1, 365ll * 86400, secs))
    r.result_ttl = std::chrono::seconds{secs};
  if (c.range("redis.timeout-ms", redis_timeout_ms_, 10, 600000, secs)) {
    r.store.connect_timeout = std::chrono::milliseconds{secs};
    r.store.command_timeout = std::chrono::milliseconds{secs};
  }

  auto& cl = out.cluster;
  if (cluster_role_ != "standalone" && cluster_role_ != "api" &&
      cluster_role_ != "worker")
    errors.push_back(
        fmt::format("cluster.role = '{}' is not one of standalone, api, worker",
                    cluster_role_));
  cl.role = cluster_role_;
  cl.node_name = cluster_node_name_;
  cl.bind_address = cluster_bind_address_;
  // An API node listens there (CAF's publish): anything but an address
  // failed only then, after the HTTP side had started.
  if (cl.role == "api" && !is_ip_address(cl.bind_address))
    errors.push_back(fmt::format(
        "cluster.bind-address = '{}' is not an IPv4 or IPv6 address (e.g. "
        "0.0.0.0, 127.0.0.1, ::)",
        cluster_bind_address_));
  c.range("cluster.port", cluster_port_, 1, 65535, cl.port);
  // An API node listens on both: one port for both failed only at the HTTP
  // bind, after the node had taken its name's lease.
  if (cl.role == "api" && http_port_ == cluster_port_ &&
      addresses_overlap(http_address_, cluster_bind_address_))
    errors.push_back(fmt::format(
        "http.port and cluster.port are both {} on overlapping addresses "
        "({} and {}): an API node listens on both, give them different "
        "ports",
        http_port_, http_address_, cluster_bind_address_));
  cl.advertise = cluster_advertise_;
  {
    std::vector<std::pair<std::string, uint16_t>> eps;
    std::string bad;
    if (!parse_endpoint_list(cluster_api_nodes_, eps, bad))
      errors.push_back(fmt::format("cluster.api-nodes: '{}' is not host:port "
                                   "(an IPv6 address in brackets: "
                                   "[::1]:4000)",
                                   bad));
    // Each entry is joined on its own: one named twice would be joined
    // twice. Only the same spelling is caught here (two names of one host
    // resolve alike only at connect time); host names ignore case.
    std::vector<std::string> seen;
    for (auto& [host, port] : eps) {
      auto id = fmt::format("{}:{}", host, port);
      std::transform(id.begin(), id.end(), id.begin(),
                     [](unsigned char ch) { return std::tolower(ch); });
      if (std::find(seen.begin(), seen.end(), id) != seen.end()) {
        errors.push_back(fmt::format(
            "cluster.api-nodes names {} more than once: a worker would "
            "join that API node once per entry; list each node once",
            endpoint_text(host, port)));
        continue;
      }
      seen.push_back(std::move(id));
      cl.api_nodes.push_back(endpoint{host, port});
    }
    if (cl.role == "worker" && cl.api_nodes.empty())
      errors.push_back("cluster.api-nodes must name at least one API node "
                       "(host:port) for cluster.role = worker");
  }
  // CAF's middleman.heartbeat-interval and middleman.connection-timeout
  // are the same settings as cluster.heartbeat-ms and
  // cluster.connection-timeout-ms (main hands ours to CAF). Both given with
  // different values, one would silently win: refuse. CAF's alone is taken
  // as ours.
  struct twin_key {
    const char* ours;
    int64_t& raw;
    const char* cafs;
    int64_t lo_ms;
    int64_t hi_ms;
  };
  for (auto twin : {twin_key{"cluster.heartbeat-ms", cluster_heartbeat_ms_,
                             "middleman.heartbeat-interval", 50, 600000},
                    twin_key{"cluster.connection-timeout-ms",
                             cluster_connection_timeout_ms_,
                             "middleman.connection-timeout", 100, 3600000}}) {
    auto cafs = caf::get_if<caf::timespan>(&content, twin.cafs);
    if (!cafs)
      continue;
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(*cafs);
    bool whole_ms = caf::timespan{ms} == *cafs;
    if (caf::get_if(&content, twin.ours) != nullptr) {
      if (!whole_ms || ms.count() != twin.raw)
        errors.push_back(fmt::format(
            "{} ({}) and {} ({}) disagree: both set the same BASP setting; "
            "give only {}",
            twin.ours, twin.raw, twin.cafs, duration_text(*cafs), twin.ours));
    } else if (!whole_ms || ms.count() < twin.lo_ms ||
               ms.count() > twin.hi_ms) {
      errors.push_back(fmt::format(
          "{} = {} is out of range [{}ms, {}ms] in whole milliseconds (it "
          "stands for {}; 0 would turn off what resized relies on to "
          "notice a lost node)",
          twin.cafs, duration_text(*cafs), twin.lo_ms, twin.hi_ms, twin.ours));
    } else {
      twin.raw = ms.count();
    }
  }
  if (c.range("cluster.heartbeat-ms", cluster_heartbeat_ms_, 50, 600000, secs))
    cl.heartbeat = std::chrono::milliseconds{secs};
  if (c.range("cluster.connection-timeout-ms", cluster_connection_timeout_ms_,
              100, 3600000, secs))
    cl.connection_timeout = std::chrono::milliseconds{secs};
  if (cl.connection_timeout <= cl.heartbeat)
    errors.push_back(
        fmt::format("cluster.connection-timeout-ms ({}) must be longer than "
                    "cluster.heartbeat-ms ({})",
                    cl.connection_timeout.count(), cl.heartbeat.count()));
  if (c.range("cluster.reconnect-max-ms", cluster_reconnect_max_ms_, 100,
              600000, secs))
    cl.reconnect_max = std::chrono::milliseconds{secs};
  c.range("cluster.max-pending-connections", cluster_max_pending_, 1, 100000,
          cl.max_pending);
  check_caf_keys(errors);
  if (c.range("cluster.lease-ms", cluster_lease_ms_, 500, 600000, secs))
    cl.lease = std::chrono::milliseconds{secs};
  if (c.range("cluster.lease-renew-ms", cluster_lease_renew_ms_, 100, 200000,
              secs))
    cl.lease_renew = std::chrono::milliseconds{secs};
  if (cluster_adopt_ms_ == -1) // unset
    cl.adopt = cl.lease;
  else if (cluster_adopt_ms_ == 0) // never
    cl.adopt = std::chrono::milliseconds{0};
  else if (cluster_adopt_ms_ < 100 || cluster_adopt_ms_ > 3600000)
    // (0 is valid too: a range [100, ...] alone told otherwise.)
    errors.push_back(fmt::format(
        "cluster.adopt-ms = {} is out of range: 0 (never adopt), or 100 to "
        "3600000; leave it out to follow cluster.lease-ms",
        cluster_adopt_ms_));
  else
    cl.adopt = std::chrono::milliseconds{cluster_adopt_ms_};
  // Two renewals may fail (a Redis hiccup) before the lease runs out.
  if (3 * cl.lease_renew > cl.lease)
    errors.push_back(
        fmt::format("cluster.lease-renew-ms ({}) must be at most a third of "
                    "cluster.lease-ms ({})",
                    cl.lease_renew.count(), cl.lease.count()));
  c.range("resize.max-attempts", resize_max_attempts_, 1, 100,
          out.resize.max_attempts);
  c.range("resize.nice", resize_nice_, 0, 19, out.resize.nice);
  if (resize_journal_ != "off" && !resize_journal_.empty() &&
      resize_journal_.front() != '/')
    errors.push_back(fmt::format(
        "resize.journal = \"{}\" must be an absolute path, \"off\", or left "
        "out for the default",
        resize_journal_));
  out.resize.journal = resize_journal_;
  // Up to 1 TiB a worker: times a pool of up to 1024 it still fits in 64
  // bits (INT64_MAX wrapped the budget to 0, one task at a time).
  c.range("resize.decode-bytes-per-worker", resize_decode_bytes_per_worker_, 0,
          int64_t{1} << 40, out.resize.decode_bytes_per_worker);

  // An api node may run no local pool: workers join it.
  c.range("resize.pool-size", resize_pool_size_, cluster_role_ == "api" ? 0 : 1,
          1024, out.resize.pool_size);
  c.range("resize.vips-concurrency", resize_vips_concurrency_, 1, 64,
          out.resize.vips_concurrency);
  if (c.range("resize.task-timeout-ms", resize_task_timeout_ms_, 100, 3600000,
              secs))
    out.resize.task_timeout = std::chrono::milliseconds{secs};
  out.limits.max_processing_ms = resize_task_timeout_ms_;
  c.range("queue.capacity", queue_capacity_, 1, 1000000, out.queue.capacity);
  c.range("queue.max-bytes", queue_max_bytes_, 1024, max_i64,
          out.queue.max_bytes);
  c.range("queue.max-per-client", queue_max_per_client_, 0, 1000000,
          out.queue.max_per_client);
  c.range("queue.max-bytes-per-client", queue_max_bytes_per_client_, 0, max_i64,
          out.queue.max_bytes_per_client);
  c.range("status.cache-entries", status_cache_entries_, 1, 10000000,
          out.status.cache_entries);
  c.range("status.image-cache-bytes", status_image_cache_bytes_, 0, max_i64,
          out.status.image_cache_bytes);
  if (int64_t ms = 0;
      c.range("status.recheck-ms", status_recheck_ms_, 10, 60000, ms))
    out.status.recheck = std::chrono::milliseconds{ms};
  c.range("memory.arenas", memory_arenas_, 0, 1024, out.memory.arenas);
  if (c.range("memory.trim-interval-ms", memory_trim_interval_ms_, 0, 3600000,
              secs))
    out.memory.trim_interval = std::chrono::milliseconds{secs};
  c.range("memory.trim-threshold", memory_trim_threshold_, 0, max_i64,
          out.memory.trim_threshold);
  c.range("memory.busy-trim-threshold", memory_busy_trim_threshold_, 0, max_i64,
          out.memory.busy_trim_threshold);
  // glibc caps the threshold at 32 MiB (HEAP_MAX/2 on 64-bit).
  c.range("memory.mmap-threshold", memory_mmap_threshold_, 0, 32ll << 20,
          out.memory.mmap_threshold);
  c.range("memory.heap-top-bytes", memory_heap_top_bytes_, 0, 1ll << 30,
          out.memory.heap_top_bytes);
  if (memory_huge_pages_ == "on" || memory_huge_pages_ == "off")
    out.memory.huge_pages = memory_huge_pages_ == "on";
  else
    errors.push_back(fmt::format(
        "memory.huge-pages = '{}' is not one of on, off", memory_huge_pages_));

  bool body_ok = c.range("limits.max-body-bytes", limits_max_body_bytes_, 1024,
                         1ll << 32, out.max_body_bytes);
  out.limits.max_input_bytes = out.max_body_bytes;
  // The supervisor counts an input's image bytes against queue.max-bytes
  // and refuses one that would pass it, even into an empty queue. The
  // largest image is a raw body of limits.max-body-bytes (a JSON body's
  // decoded image is smaller than its body). Workers have no queue.
  if (body_ok && queue_max_bytes_ >= 1024 && cluster_role_ != "worker" &&
      queue_max_bytes_ < limits_max_body_bytes_)
    errors.push_back(fmt::format(
        "queue.max-bytes ({}) is below limits.max-body-bytes ({}): an "
        "upload of the allowed size could never be queued (503 queue_full "
        "even with an empty queue); lower limits.max-body-bytes too",
        queue_max_bytes_, limits_max_body_bytes_));
  // A body of the allowed size must fit alone, or it is refused 503
  // too_many_uploads however idle the node.
  if (body_ok && http_max_receiving_bytes_ >= 1024 &&
      http_max_receiving_bytes_ < limits_max_body_bytes_)
    errors.push_back(fmt::format(
        "http.max-receiving-bytes ({}) is below limits.max-body-bytes ({}): "
        "an upload of the allowed size would never fit (503 "
        "too_many_uploads even with no other upload under way); lower "
        "limits.max-body-bytes too",
        http_max_receiving_bytes_, limits_max_body_bytes_));
  c.range("limits.max-pixels", limits_max_pixels_, 1, 1ll << 40,
          out.limits.max_pixels);
  c.range("limits.max-dimension", limits_max_dimension_, 1, 65535,
          out.limits.max_dimension);
  c.range("limits.max-avif-pixels", limits_max_avif_pixels_, 1, 1ll << 32,
          out.limits.max_avif_pixels);
  if (limits_truncated_ != "fail" && limits_truncated_ != "serve")
    errors.push_back(
        fmt::format("limits.truncated = '{}' is not one of fail, serve",
                    limits_truncated_));
  out.limits.fail_on_truncated = limits_truncated_ == "fail";

  auto& d = out.defaults;
  // The default box within limits.max-dimension (or every request leaving
  // its size out would be refused), said with both keys: lowering the
  // limit alone used to be answered as the default side's own range, e.g.
  // "defaults.width = 100 is out of range [0, 50]", for a 100 set nowhere.
  for (auto [key, value, side] :
       {std::tuple{"defaults.width", defaults_width_, &d.width},
        std::tuple{"defaults.height", defaults_height_, &d.height}}) {
    if (!c.range(key, value, 0, 65535, *side))
      continue;
    // (A limit out of its own range is said once, above.)
    if (value > limits_max_dimension_ && limits_max_dimension_ >= 1 &&
        limits_max_dimension_ <= 65535)
      errors.push_back(fmt::format(
          "{} = {}{} is above limits.max-dimension = {}: every request that "
          "leaves its size out would be refused; lower {} too, or raise the "
          "limit",
          key, value,
          caf::get_if(&content, key) == nullptr ? " (its default)" : "",
          limits_max_dimension_, key));
  }
  if (defaults_width_ == 0 && defaults_height_ == 0)
    errors.push_back("defaults.width and defaults.height cannot both be 0");
  if (!imaging::parse(defaults_mode_, d.mode))
    errors.push_back(fmt::format(
        "defaults.mode = '{}' is not one of fill, fit, force", defaults_mode_));
  if (!imaging::parse(defaults_format_, d.format))
    errors.push_back(fmt::format(
        "defaults.format = '{}' is not one of jpeg, png, webp, avif",
        defaults_format_));
  c.range("defaults.quality", defaults_quality_, 1, 100, d.quality);
  // A default AVIF box over the AVIF pixel limit would refuse every request
  // that leaves the size out (invalid_option, for options it did not give).
  if (d.format == imaging::output_format::avif &&
      defaults_width_ <= limits_max_dimension_ &&
      defaults_height_ <= limits_max_dimension_) {
    auto side = [&](int64_t v) { return v == 0 ? limits_max_dimension_ : v; };
    auto box = side(defaults_width_) * side(defaults_height_);
    if (box > limits_max_avif_pixels_)
      errors.push_back(fmt::format(
          "defaults.format = avif with a box of {} x {} = {} pixels is over "
          "limits.max-avif-pixels ({}): every request that leaves its size "
          "out would be refused; give a smaller default size or raise the "
          "limit",
          side(defaults_width_), side(defaults_height_), box,
          limits_max_avif_pixels_));
  }

  {
    // Keys come from the config and the environment (the safer place: not
    // on the command line, not in a file under version control).
    std::vector<std::string> env_keys;
    // Text that names no key (commas and blanks only: "$K1,$K2" with both
    // unset, say) is refused: taken as "no keys", it would turn auth off
    // while whoever set it believes it on. Empty text is auth off.
    auto names_no_key = [](const std::string& text) {
      return text.find_first_not_of(" \t") != std::string::npos &&
             split_list(text).empty();
    };
    if (const char* env = std::getenv("RESIZED_API_KEYS")) {
      env_keys = split_list(env);
      if (names_no_key(env))
        errors.push_back("$RESIZED_API_KEYS names no key (only commas and "
                         "blanks): set keys, or leave it empty for auth off");
    }
    if (names_no_key(auth_api_keys_))
      errors.push_back("auth.api-keys names no key (only commas and blanks): "
                       "set keys, or leave it empty for auth off");
    // A --dump-config read back: its placeholders are not keys (split at
    // their comma, they would be refused as short keys).
    if (auth_api_keys_ == secret_placeholder ||
        auth_api_keys_ == keys_placeholder_env_too)
      errors.push_back("auth.api-keys is the placeholder --dump-config "
                       "writes for a secret: set the real value here or in "
                       "$RESIZED_API_KEYS");
    else if (auth_api_keys_ == keys_placeholder_env) {
      // The dump's keys all came from the environment: so do these.
      if (env_keys.empty())
        errors.push_back("auth.api-keys is the placeholder --dump-config "
                         "writes for keys from $RESIZED_API_KEYS, which is "
                         "not set here: set the real value here or in "
                         "$RESIZED_API_KEYS");
    } else
      out.auth.api_keys = split_list(auth_api_keys_);
    for (auto& k : env_keys)
      out.auth.api_keys.push_back(k);
    // Named by where the short key came from: the file or command line,
    // or the environment.
    auto configured = out.auth.api_keys.size() - env_keys.size();
    bool short_in[2] = {false, false}; // configured, environment
    for (size_t i = 0; i < out.auth.api_keys.size(); ++i)
      if (out.auth.api_keys[i].size() < 16)
        short_in[i < configured ? 0 : 1] = true;
    for (int from = 0; from < 2; ++from)
      if (short_in[from])
        errors.push_back(fmt::format(
            "{}: every key must have at least 16 characters (one is "
            "shorter; keys are not shown)",
            from == 0 ? "auth.api-keys" : "$RESIZED_API_KEYS"));
    out.auth.protect_metrics = auth_protect_metrics_;
    out.auth.protect_cluster = auth_protect_cluster_;
    // Asked to close an endpoint with no key to open it: refused rather
    // than left open without a word.
    bool no_keys = out.auth.api_keys.empty();
    if (no_keys && auth_protect_metrics_)
      errors.push_back("auth.protect-metrics needs auth.api-keys (or "
                       "$RESIZED_API_KEYS): no key is set, so /metrics "
                       "would stay open");
    if (no_keys && auth_protect_cluster_)
      errors.push_back("auth.protect-cluster needs auth.api-keys (or "
                       "$RESIZED_API_KEYS): no key is set, so "
                       "/api/v1/cluster would stay open");
  }
  if (c.range("shutdown.grace", shutdown_grace_, 0, 3600, secs))
    out.shutdown_grace = std::chrono::seconds{secs};

  log::level lvl;
  if (!log::parse(log_level_, lvl))
    errors.push_back(fmt::format(
        "log.level = '{}' is not one of trace, debug, info, warn, error, off",
        log_level_));
  out.log_level = log_level_;
  log::format fmt_out;
  if (!log::parse_format(log_format_, fmt_out))
    errors.push_back(fmt::format("log.format = '{}' is not one of logfmt, json",
                                 log_format_));
  out.log_format = log_format_;
  if (log_access_ != "all" && log_access_ != "errors" && log_access_ != "off")
    errors.push_back(fmt::format(
        "log.access = '{}' is not one of all, errors, off", log_access_));
  out.log_access = log_access_;

  // TLS on the cluster port: CAF's openssl.* keys, which CAF only reads
  // once its OpenSSL module is loaded (main does when they are set on an
  // api or worker node). A standalone node has no cluster port.
  cl.tls = {openssl_certificate, openssl_key, openssl_passphrase,
            openssl_cafile, openssl_capath};
  if (openssl_passphrase == secret_placeholder)
    errors.push_back("openssl.passphrase is the placeholder --dump-config "
                     "writes for a secret: set the real passphrase here (or "
                     "with --openssl.passphrase)");
  else if (cluster_role_ == "api" || cluster_role_ == "worker")
    for (auto& problem : tls_problems(cl.tls, cluster_role_))
      errors.push_back(std::move(problem));
  if (cluster_role_ == "standalone")
    out.unused_on_standalone = cl.tls.keys_set();

  // Read and checked, but nothing reads them (caf_logger_section).
  if (auto logger = caf::get_if<caf::settings>(&content, caf_logger_section))
    for (const auto& [key, value] : *logger)
      out.caf_logger_keys.push_back(
          fmt::format("{}.{}", caf_logger_section, key));
  // A worker node runs each task under the policy of the API node that
  // accepted it (actors/messages.hpp, resize_job::policy): these keys, set
  // in its file or on its command line, change nothing there (still
  // validated above, so the same file can serve any role).
  if (cluster_role_ == "worker") {
    for (const char* key : task_policy_keys)
      if (caf::get_if(&content, key) != nullptr)
        out.unused_on_worker.emplace_back(key);
    for (const auto& opt : custom_options_) {
      std::string category(opt.category().data(), opt.category().size());
      if (!http_side_section(category))
        continue;
      auto key = category + "." +
                 std::string(opt.long_name().data(), opt.long_name().size());
      if (caf::get_if(&content, key) != nullptr)
        out.unused_without_http.push_back(std::move(key));
    }
  }
  if (!out.config_file.empty())
    name_file_lines(errors, out.config_file, ini_key_lines(text),
                    command_line_keys(argc, argv));
  return errors;
}

caf::settings service_config::dump_content() const {
  auto result = caf::actor_system_config::dump_content();
  // config_option::get reads the variable an option stores into (none for
  // CAF's options without one); CAF 0.17 offers no other generic read-back.
  for (const auto& opt : custom_options_) {
    if (opt.category() == "global")
      continue;
    if (auto value = opt.get())
      caf::put_missing(result, opt.full_name(), std::move(*value));
  }
  // CAF's heartbeat keys hold what main hands CAF, ours (load refuses the
  // two disagreeing): CAF's default 0s here would contradict ours.
  caf::put(result, "middleman.heartbeat-interval",
           caf::timespan{std::chrono::milliseconds{cluster_heartbeat_ms_}});
  caf::put(
      result, "middleman.connection-timeout",
      caf::timespan{std::chrono::milliseconds{cluster_connection_timeout_ms_}});
  // adopt-ms unset is -1 inside ("as lease-ms"): dump_text says so, with
  // the value that runs, and leaves the key out, so that a file made from
  // the dump still follows lease-ms.
  if (cluster_adopt_ms_ == -1)
    caf::put(result, "cluster.adopt-ms", int64_t{-1});
  // Secrets are not printed: a dump ends up in tickets and chat.
  for (const char* secret :
       {"redis.password", "auth.api-keys", "openssl.passphrase"}) {
    auto value = caf::get_if(&result, secret);
    if (value != nullptr && caf::to_string(*value) != R"("")" &&
        caf::to_string(*value) != "[]")
      caf::put(result, secret, secret_placeholder);
  }
  // Keys from the environment count too (they are added to the file's).
  if (const char* env = std::getenv("RESIZED_API_KEYS");
      env != nullptr && !split_list(env).empty()) {
    bool in_file = caf::get_or(result, "auth.api-keys", std::string{}) != "";
    caf::put(result, "auth.api-keys",
             in_file ? keys_placeholder_env_too : keys_placeholder_env);
  }
  // Left out: [logger] on every node (caf_logger_section: it changes
  // nothing), and on a worker its task policy (its API nodes' applies) and
  // the HTTP side's sections, or a worker started from its own dump warned
  // about some 45 keys it does not use. (caf::dictionary has no erase:
  // copied without them.)
  bool worker = cluster_role_ == "worker";
  caf::settings kept;
  for (const auto& [name, value] : result) {
    auto section = caf::get_if<caf::settings>(&value);
    if (section == nullptr) {
      kept[name] = value;
      continue;
    }
    if (name == caf_logger_section)
      continue;
    caf::settings keys;
    for (const auto& [key, x] : *section)
      if (!worker || !unused_on_a_worker(name + "." + key))
        keys[key] = x;
    if (!keys.empty())
      kept[name] = std::move(keys);
  }
  return kept;
}

namespace {

std::string value_text(const caf::config_value& value) {
  if (auto t = caf::get_if<caf::timespan>(&value))
    return duration_text(*t);
  if (auto list = caf::get_if<caf::config_value::list>(&value)) {
    std::string out = "[";
    for (const auto& x : *list)
      out += (out.size() > 1 ? ", " : "") + value_text(x);
    return out + "]";
  }
  return caf::to_string(value);
}

void dump_section(std::string& out, const std::string& name,
                  const caf::settings& xs,
                  const std::map<std::string, std::string>& notes) {
  auto full = [&](const std::string& key) {
    return name.empty() ? key : name + "." + key;
  };
  // The section's own keys first: an INI section ends where the next
  // header starts.
  bool header = name.empty();
  for (const auto& [key, value] : xs) {
    if (caf::holds_alternative<caf::settings>(value))
      continue;
    if (!header) {
      out += fmt::format("\n[{}]\n", name);
      header = true;
    }
    if (auto note = notes.find(full(key)); note != notes.end())
      out += fmt::format("; {}\n", note->second);
    if (auto n = caf::get_if<int64_t>(&value);
        full(key) == "scheduler.max-throughput" && n != nullptr && *n < 0) {
      out += fmt::format("; {}: unlimited (CAF's default)\n", key);
      continue;
    }
    if (auto n = caf::get_if<int64_t>(&value);
        full(key) == "cluster.adopt-ms" && n != nullptr && *n < 0) {
      auto lease = xs.find("lease-ms");
      out += fmt::format("; {}: left out, so it follows lease-ms{}\n", key,
                         lease != xs.end()
                             ? " (here " + value_text(lease->second) + ")"
                             : std::string{});
      continue;
    }
    if (full(key) == "config-file") { // read it with --config-file, not in it
      out += fmt::format("; read from {}\n", value_text(value));
      continue;
    }
    out += fmt::format("{}={}\n", key, value_text(value));
  }
  for (const auto& [key, value] : xs)
    if (auto section = caf::get_if<caf::settings>(&value))
      dump_section(out, full(key), *section, notes);
}

} // namespace

std::string dump_text(const caf::settings& settings,
                      const std::map<std::string, std::string>& notes) {
  std::string out;
  dump_section(out, "", settings, notes);
  if (!out.empty() && out.front() == '\n')
    out.erase(0, 1);
  return out;
}

} // namespace resized::config
