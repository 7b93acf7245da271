// Configuration: CAF parses the INI file and --section.key=value arguments,
// service_config::load checks every entry of the INI file (check_ini),
// validates every key and fills service_settings.

#include <algorithm>
#include <boost/test/unit_test.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <ostream>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include <unistd.h>

#include "config/service_config.hpp"

using resized::config::service_config;
using resized::config::service_settings;

namespace {

struct loaded {
  std::vector<std::string> errors;
  service_settings settings;
};

/// Runs `resized <args...>` through `cfg`, which must be fresh (CAF's
/// config objects are meant to be parsed once); the errors.
std::vector<std::string> load_into(service_config& cfg,
                                   std::vector<std::string> args,
                                   service_settings& settings) {
  args.insert(args.begin(), "resized");
  std::vector<char*> argv;
  for (auto& arg : args)
    argv.push_back(arg.data());
  argv.push_back(nullptr);
  return cfg.load(static_cast<int>(args.size()), argv.data(), settings);
}

/// Runs `resized <args...>` through a fresh service_config.
loaded load(std::vector<std::string> args) {
  loaded out;
  service_config cfg;
  out.errors = load_into(cfg, std::move(args), out.settings);
  return out;
}

std::string joined(const std::vector<std::string>& errors) {
  std::string out;
  for (auto& e : errors)
    out += "[" + e + "] ";
  return out;
}

/// True if some error message names `key`.
bool names(const std::vector<std::string>& errors, const std::string& key) {
  for (auto& e : errors)
    if (e.find(key) != std::string::npos)
      return true;
  return false;
}

std::string source_dir() {
  if (auto dir = std::getenv("RESIZED_SOURCE_DIR"); dir != nullptr && *dir)
    return dir;
  // tests/unit/config_test.cpp -> the source root.
  return std::filesystem::path{__FILE__}
      .parent_path()
      .parent_path()
      .parent_path()
      .string();
}

std::string development_ini() {
  return source_dir() + "/config/development.ini";
}

std::string production_ini() {
  return source_dir() + "/config/production.ini";
}

/// A private INI file, removed at the end of the test.
struct temp_ini {
  std::string path =
      (std::filesystem::temp_directory_path() /
       ("resized_config_test_" + std::to_string(::getpid()) + ".ini"))
          .string();
  void write(const std::string& text) {
    std::ofstream out{path, std::ios::trunc};
    out << text;
  }
  ~temp_ini() {
    std::error_code ignored;
    std::filesystem::remove(path, ignored);
  }
};

/// Expects exactly one problem, naming `key`.
void expect_rejected(const std::string& arg, const std::string& key) {
  BOOST_TEST_CONTEXT("argument " << arg) {
    auto res = load({arg});
    BOOST_TEST(res.errors.size() == 1u, joined(res.errors));
    BOOST_TEST(names(res.errors, key), joined(res.errors));
  }
}

/// Loads `text` as the config file; expects exactly one problem, naming
/// the file, `where` ("<line>:" or "<line>:<column>:") and every `part`.
void expect_ini_rejected(const std::string& text, const std::string& where,
                         const std::vector<std::string>& parts) {
  BOOST_TEST_CONTEXT("INI file:\n" << text) {
    temp_ini ini;
    ini.write(text);
    auto res = load({"--config-file=" + ini.path});
    BOOST_TEST(res.errors.size() == 1u, joined(res.errors));
    BOOST_TEST(names(res.errors, ini.path + ":" + where), joined(res.errors));
    for (auto& part : parts)
      BOOST_TEST(names(res.errors, part), joined(res.errors));
  }
}

/// The only problem of loading `args` (or of the INI `text`, if given):
/// its message, or what went wrong instead.
std::string only_error(std::vector<std::string> args,
                       const std::string& text = {}) {
  temp_ini ini;
  if (!text.empty()) {
    ini.write(text);
    args.push_back("--config-file=" + ini.path);
  }
  auto res = load(std::move(args));
  if (res.errors.size() != 1u)
    return "expected one problem, got: " + joined(res.errors);
  auto message = res.errors.front();
  if (!text.empty() && message.rfind(ini.path + ":", 0) == 0)
    message.erase(0, ini.path.size() + 1); // "<line>:<column>: ..."
  return message;
}

} // namespace

BOOST_AUTO_TEST_SUITE(config)

BOOST_AUTO_TEST_CASE(defaults_without_arguments) {
  auto res = load({});
  BOOST_REQUIRE_MESSAGE(res.errors.empty(), joined(res.errors));
  auto& s = res.settings;
  BOOST_TEST(s.http.address == "0.0.0.0");
  BOOST_TEST(s.http.port == 5000);
  BOOST_TEST(s.http.public_url.empty());
  BOOST_TEST(s.http.io_threads == 2u);
  BOOST_TEST(s.http.max_connections == 1024u);
  BOOST_TEST(s.http.max_connections_per_client == 128u);
  BOOST_TEST(s.http.read_buffer_bytes == 65536u);
  BOOST_TEST(s.http.max_poll_wait.count() == 20);
  BOOST_TEST(s.http.read_timeout.count() == 30);
  BOOST_TEST(s.http.handle_timeout.count() == 30);
  BOOST_TEST(s.http.reply_timeout.count() == 5000);
  BOOST_TEST(s.http.retry_after == 2);
  BOOST_TEST(s.redis.store.host == "127.0.0.1");
  BOOST_TEST(s.redis.store.port == 6379);
  BOOST_TEST(s.redis.store.key_prefix == "resized:");
  BOOST_TEST(s.redis.result_ttl.count() == 86400);
  BOOST_TEST(s.cluster.role == "standalone");
  BOOST_TEST(s.cluster.lease.count() == 10000);
  BOOST_TEST(s.cluster.lease_renew.count() == 3000);
  BOOST_TEST(s.cluster.max_pending == 64u);
  BOOST_TEST(s.resize.pool_size == 2);
  BOOST_TEST(s.resize.vips_concurrency == 1);
  BOOST_TEST(s.resize.task_timeout.count() == 60000);
  BOOST_TEST(s.resize.decode_bytes_per_worker == 256ull << 20);
  BOOST_TEST(s.queue.capacity == 256u);
  BOOST_TEST(s.queue.max_bytes == 256ull << 20);
  BOOST_TEST(s.status.cache_entries == 10000u);
  BOOST_TEST(s.memory.arenas == 1);
  BOOST_TEST(s.memory.trim_interval.count() == 1000);
  BOOST_TEST(s.memory.trim_threshold == 16ull << 20);
  BOOST_TEST(s.memory.busy_trim_threshold == 128ull << 20);
  BOOST_TEST(s.memory.mmap_threshold == 32u << 20);
  BOOST_TEST(s.memory.heap_top_bytes == 64u << 20);
  BOOST_TEST(s.memory.huge_pages);
  BOOST_TEST(s.max_body_bytes == 64ull << 20);
  BOOST_TEST(s.limits.max_input_bytes == s.max_body_bytes);
  BOOST_TEST(s.limits.max_pixels == 50'000'000u);
  BOOST_TEST(s.limits.max_dimension == 4096);
  BOOST_TEST(s.defaults.width == 100);
  BOOST_TEST(s.defaults.height == 100);
  BOOST_TEST((s.defaults.mode == resized::imaging::fit_mode::fill));
  BOOST_TEST((s.defaults.format == resized::imaging::output_format::jpeg));
  BOOST_TEST(s.defaults.quality == 85);
  BOOST_TEST(s.log_level == "info");
}

BOOST_AUTO_TEST_CASE(development_ini_loads) {
  auto res = load({"--config-file=" + development_ini()});
  BOOST_REQUIRE_MESSAGE(res.errors.empty(), joined(res.errors));
  BOOST_TEST(res.settings.http.port == 5000);
  BOOST_TEST(res.settings.http.address == "127.0.0.1");
  BOOST_TEST(res.settings.redis.store.key_prefix == "resized:");
  BOOST_TEST(res.settings.resize.pool_size == 2);
  BOOST_TEST(res.settings.queue.max_bytes == 268435456u);
}

// resized's own keys, as (section, key) in `out`: development.ini's,
// loaded; the file itself is checked below.
void own_keys(std::vector<std::pair<std::string, std::string>>& out) {
  service_config cfg;
  service_settings settings;
  auto errors =
      load_into(cfg, {"--config-file=" + development_ini()}, settings);
  BOOST_REQUIRE_MESSAGE(errors.empty(), joined(errors));
  auto dump = cfg.dump_content();
  for (std::string category :
       {"http", "redis", "cluster", "resize", "queue", "status", "memory",
        "limits", "defaults", "auth", "shutdown", "log"}) {
    auto found = dump.find(category);
    BOOST_REQUIRE_MESSAGE((found != dump.end()), category);
    for (const auto& entry : found->second.as_dictionary())
      out.emplace_back(category,
                       std::string{entry.first.begin(), entry.first.end()});
  }
}

std::string file_text(const std::string& path) {
  std::ifstream in{path};
  return {std::istreambuf_iterator<char>{in}, std::istreambuf_iterator<char>{}};
}

// README: "every key is commented with its default in
// config/development.ini": each of resized's own keys has a line there,
// `key=` or, for a key left unset, `; key=`, in its section.
BOOST_AUTO_TEST_CASE(development_ini_lists_every_key) {
  std::vector<std::pair<std::string, std::string>> keys;
  own_keys(keys);
  BOOST_TEST_REQUIRE(!keys.empty());
  auto text = file_text(development_ini());
  for (const auto& [category, key] : keys) {
    auto begin = text.find("\n[" + category + "]\n");
    BOOST_TEST_REQUIRE(begin != std::string::npos, "[" << category << "]");
    auto section = text.substr(begin, text.find("\n[", begin + 1) - begin);
    BOOST_TEST((section.find("\n" + key + "=") != std::string::npos ||
                section.find("\n; " + key + "=") != std::string::npos),
               category << "." << key << " is not in development.ini");
  }
}

// README's settings tables: a row naming `section.key` (alone or with
// others) for each of resized's own keys, so that a key added to the code
// is documented too.
BOOST_AUTO_TEST_CASE(readme_has_a_row_for_every_key) {
  std::vector<std::pair<std::string, std::string>> keys;
  own_keys(keys);
  BOOST_TEST_REQUIRE(!keys.empty());
  auto text = file_text(source_dir() + "/README.md");
  BOOST_TEST_REQUIRE(!text.empty());
  std::string rows; // the first cell of every table row
  for (size_t at = text.find("\n| `"); at != std::string::npos;
       at = text.find("\n| `", at + 1))
    rows += text.substr(at, text.find(" | ", at + 3) - at);
  for (const auto& [category, key] : keys)
    BOOST_TEST(rows.find("`" + category + "." + key + "`") != std::string::npos,
               category << "." << key << " has no row in README.md");
}

BOOST_AUTO_TEST_CASE(command_line_overrides_file) {
  for (bool file_first : {true, false}) {
    BOOST_TEST_CONTEXT("file first: " << file_first) {
      std::vector<std::string> args{"--config-file=" + development_ini(),
                                    "--http.port=6000"};
      if (!file_first)
        std::swap(args[0], args[1]);
      auto res = load(args);
      BOOST_REQUIRE_MESSAGE(res.errors.empty(), joined(res.errors));
      BOOST_TEST(res.settings.http.port == 6000);
      BOOST_TEST(res.settings.http.address == "127.0.0.1"); // from the file
    }
  }
}

BOOST_AUTO_TEST_CASE(command_line_values) {
  auto res =
      load({"--http.address=::1", "--http.public-url=https://img.x/",
            "--resize.pool-size=8", "--defaults.mode=fit",
            "--defaults.format=webp", "--defaults.width=0", "--log.level=debug",
            "--redis.key-prefix=t1:", "--memory.arenas=0",
            "--memory.trim-interval-ms=0", "--memory.mmap-threshold=0",
            "--memory.huge-pages=off"});
  BOOST_REQUIRE_MESSAGE(res.errors.empty(), joined(res.errors));
  auto& s = res.settings;
  BOOST_TEST(s.http.address == "::1");
  BOOST_TEST(s.http.public_url == "https://img.x"); // trailing '/' dropped
  BOOST_TEST(s.resize.pool_size == 8);
  BOOST_TEST((s.defaults.mode == resized::imaging::fit_mode::fit));
  BOOST_TEST((s.defaults.format == resized::imaging::output_format::webp));
  BOOST_TEST(s.defaults.width == 0);
  BOOST_TEST(s.defaults.height == 100);
  BOOST_TEST(s.log_level == "debug");
  BOOST_TEST(s.redis.store.key_prefix == "t1:");
  BOOST_TEST(s.memory.arenas == 0);
  BOOST_TEST(s.memory.trim_interval.count() == 0);
  BOOST_TEST(s.memory.mmap_threshold == 0u);
  BOOST_TEST(!s.memory.huge_pages);
}

BOOST_AUTO_TEST_CASE(invalid_values_name_their_key) {
  expect_rejected("--resize.pool-size=0", "resize.pool-size");
  expect_rejected("--http.port=70000", "http.port");
  expect_rejected("--http.port=0",
                  "http.port"); // the start line and node name would say 0
  expect_rejected("--http.port=-1", "http.port");
  expect_rejected("--memory.huge-pages=yes", "memory.huge-pages");
  expect_rejected("--defaults.mode=stretch", "defaults.mode");
  expect_rejected("--defaults.format=gif", "defaults.format");
  expect_rejected("--defaults.quality=0", "defaults.quality");
  expect_rejected("--defaults.width=5000", "defaults.width");
  expect_rejected("--log.level=loud", "log.level");
  expect_rejected("--log.access=some", "log.access");
  expect_rejected("--cluster.role=leader", "cluster.role");
  expect_rejected("--http.public-url=ftp://x", "http.public-url");
  expect_rejected("--queue.capacity=0", "queue.capacity");
  expect_rejected("--redis.port=0", "redis.port");
  expect_rejected("--http.reply-timeout-ms=30000", "http.reply-timeout-ms");
  expect_rejected("--memory.arenas=-1", "memory.arenas");
  expect_rejected("--http.read-buffer-bytes=100", "http.read-buffer-bytes");
  expect_rejected("--resize.decode-bytes-per-worker=-1",
                  "resize.decode-bytes-per-worker");
  expect_rejected("--http.max-poll-wait=-1", "http.max-poll-wait");
  // 26 s + 5 s reply-timeout would outlive the 30 s handle-timeout.
  expect_rejected("--http.max-poll-wait=26", "http.max-poll-wait");
  expect_rejected("--memory.trim-interval-ms=-5", "memory.trim-interval-ms");
  expect_rejected("--memory.trim-threshold=-1", "memory.trim-threshold");
  expect_rejected("--memory.busy-trim-threshold=-1",
                  "memory.busy-trim-threshold");
  expect_rejected("--memory.mmap-threshold=67108864", "memory.mmap-threshold");
  expect_rejected("--memory.heap-top-bytes=-1", "memory.heap-top-bytes");
  expect_rejected("--cluster.lease-ms=100", "cluster.lease-ms");
  expect_rejected("--cluster.lease-renew-ms=50", "cluster.lease-renew-ms");
  // Renewed less often than three times a lease (10 s by default).
  expect_rejected("--cluster.lease-renew-ms=4000", "cluster.lease-renew-ms");
  expect_rejected("--cluster.max-pending-connections=0",
                  "cluster.max-pending-connections");
  expect_rejected("--queue.max-per-client=-1", "queue.max-per-client");
  expect_rejected("--queue.max-bytes-per-client=-1",
                  "queue.max-bytes-per-client");
  expect_rejected("--http.trusted-proxies=10.0.0.0/33", "http.trusted-proxies");
  expect_rejected("--http.max-connections-per-client=-1",
                  "http.max-connections-per-client");
  expect_rejected("--http.forwarded-header=X-Real-IP", "http.forwarded-header");
}

BOOST_AUTO_TEST_CASE(client_shares_and_trusted_proxies) {
  auto none = load({});
  BOOST_REQUIRE_MESSAGE(none.errors.empty(), joined(none.errors));
  BOOST_TEST(none.settings.queue.max_per_client == 0u); // no limit
  BOOST_TEST(none.settings.queue.max_bytes_per_client == 0u);
  BOOST_TEST(none.settings.http.trusted_proxies.empty());
  auto res = load({"--queue.max-per-client=16",
                   "--queue.max-bytes-per-client=67108864",
                   "--http.trusted-proxies=10.0.0.0/8, ::1,192.0.2.10",
                   "--http.max-connections-per-client=0"});
  BOOST_REQUIRE_MESSAGE(res.errors.empty(), joined(res.errors));
  BOOST_TEST(res.settings.http.max_connections_per_client == 0u); // no limit
  BOOST_TEST(!none.settings.http.forwarded_rfc7239);
  BOOST_TEST(load({"--http.forwarded-header=forwarded"})
                 .settings.http.forwarded_rfc7239);
  BOOST_TEST(!load({"--http.forwarded-header=X-Forwarded-For"})
                  .settings.http.forwarded_rfc7239);
  BOOST_TEST(res.settings.queue.max_per_client == 16u);
  BOOST_TEST(res.settings.queue.max_bytes_per_client == 67108864u);
  BOOST_TEST(res.settings.http.trusted_proxies.size() == 3u);
  // Each bad entry is named, host names included (never resolved).
  auto bad = load({"--http.trusted-proxies=10.0.0.1,proxy.example,fd00::/200"});
  BOOST_TEST(bad.errors.size() == 2u, joined(bad.errors));
  BOOST_TEST(names(bad.errors, "'proxy.example'"), joined(bad.errors));
  BOOST_TEST(names(bad.errors, "'fd00::/200'"), joined(bad.errors));
}

BOOST_AUTO_TEST_CASE(cors_origins) {
  auto none = load({});
  BOOST_REQUIRE_MESSAGE(none.errors.empty(), joined(none.errors));
  BOOST_TEST(!none.settings.http.cors.enabled()); // off by default
  auto res = load({"--http.cors-origins=https://App.example.com:443, "
                   "http://localhost:3000,https://app.example.com"});
  BOOST_REQUIRE_MESSAGE(res.errors.empty(), joined(res.errors));
  const auto& origins = res.settings.http.cors.origins; // normalized, once
  BOOST_TEST(origins.size() == 2u);
  BOOST_TEST(origins.at(0) == "https://app.example.com");
  BOOST_TEST(origins.at(1) == "http://localhost:3000");
  BOOST_TEST(!res.settings.http.cors.any);
  auto any = load({"--http.cors-origins=*"});
  BOOST_REQUIRE_MESSAGE(any.errors.empty(), joined(any.errors));
  BOOST_TEST(any.settings.http.cors.any);
  // Each bad entry is named; "*" must stand alone.
  auto bad = load({"--http.cors-origins=https://app.example.com/,"
                   "app.example.com,http://localhost:3000"});
  BOOST_TEST(bad.errors.size() == 2u, joined(bad.errors));
  BOOST_TEST(names(bad.errors, "'https://app.example.com/'"),
             joined(bad.errors));
  BOOST_TEST(names(bad.errors, "'app.example.com'"), joined(bad.errors));
  auto mixed = load({"--http.cors-origins=*,https://app.example.com"});
  BOOST_TEST(names(mixed.errors, "alone"), joined(mixed.errors));
}

BOOST_AUTO_TEST_CASE(max_pending_connections) {
  auto res = load({"--cluster.max-pending-connections=2"});
  BOOST_REQUIRE_MESSAGE(res.errors.empty(), joined(res.errors));
  BOOST_TEST(res.settings.cluster.max_pending == 2u);
}

BOOST_AUTO_TEST_CASE(lease_values) {
  auto res = load({"--cluster.lease-ms=1000", "--cluster.lease-renew-ms=300"});
  BOOST_REQUIRE_MESSAGE(res.errors.empty(), joined(res.errors));
  BOOST_TEST(res.settings.cluster.lease.count() == 1000);
  BOOST_TEST(res.settings.cluster.lease_renew.count() == 300);
  // Cross-key refusals give both values.
  BOOST_TEST(
      only_error({"--cluster.lease-ms=1000", "--cluster.lease-renew-ms=400"}) ==
      "cluster.lease-renew-ms (400) must be at most a third of "
      "cluster.lease-ms (1000)");
  BOOST_TEST(only_error({"--cluster.heartbeat-ms=2000",
                         "--cluster.connection-timeout-ms=2000"}) ==
             "cluster.connection-timeout-ms (2000) must be longer than "
             "cluster.heartbeat-ms (2000)");
}

// Adoption of pending sets with no lease: every lease-ms unless set; 0 = off.
BOOST_AUTO_TEST_CASE(adopt_ms) {
  auto by_default =
      load({"--cluster.lease-ms=1000", "--cluster.lease-renew-ms=300"});
  BOOST_REQUIRE_MESSAGE(by_default.errors.empty(), joined(by_default.errors));
  BOOST_TEST(by_default.settings.cluster.adopt.count() == 1000);
  auto off = load({"--cluster.adopt-ms=0"});
  BOOST_REQUIRE_MESSAGE(off.errors.empty(), joined(off.errors));
  BOOST_TEST(off.settings.cluster.adopt.count() == 0);
  auto set = load({"--cluster.adopt-ms=2500"});
  BOOST_REQUIRE_MESSAGE(set.errors.empty(), joined(set.errors));
  BOOST_TEST(set.settings.cluster.adopt.count() == 2500);
  expect_rejected("--cluster.adopt-ms=50", "cluster.adopt-ms");
  expect_rejected("--cluster.adopt-ms=-5", "cluster.adopt-ms");
  BOOST_TEST(only_error({"--cluster.adopt-ms=50"}) ==
             "cluster.adopt-ms = 50 is out of range: 0 (never adopt), or 100 "
             "to 3600000; leave it out to follow cluster.lease-ms");
}

BOOST_AUTO_TEST_CASE(max_dimension_bounds_the_defaults) {
  auto zero = load({"--limits.max-dimension=0"});
  BOOST_TEST(names(zero.errors, "limits.max-dimension"), joined(zero.errors));
  // The default box must fit the limit.
  auto small = load({"--limits.max-dimension=64"});
  BOOST_TEST(names(small.errors, "defaults.width"), joined(small.errors));
  BOOST_TEST(names(small.errors, "defaults.height"), joined(small.errors));
  auto ok = load({"--limits.max-dimension=64", "--defaults.width=64",
                  "--defaults.height=0"});
  BOOST_TEST(ok.errors.empty(), joined(ok.errors));
  BOOST_TEST(ok.settings.limits.max_dimension == 64);
  auto both_zero = load({"--defaults.width=0", "--defaults.height=0"});
  BOOST_TEST(both_zero.errors.size() == 1u, joined(both_zero.errors));
  BOOST_TEST(names(both_zero.errors, "defaults.width"));
}

// A default AVIF box over limits.max-avif-pixels would refuse every request
// that leaves its size out: refused at start-up instead.
BOOST_AUTO_TEST_CASE(a_default_avif_box_fits_the_avif_pixel_limit) {
  auto big = load({"--defaults.format=avif", "--defaults.width=4096",
                   "--defaults.height=4096"});
  BOOST_TEST(names(big.errors, "limits.max-avif-pixels"), joined(big.errors));
  BOOST_TEST(names(big.errors, "4096 x 4096 = 16777216"), joined(big.errors));
  // a missing side counts as limits.max-dimension
  auto open_side = load({"--defaults.format=avif", "--defaults.width=2048",
                         "--defaults.height=0"});
  BOOST_TEST(names(open_side.errors, "2048 x 4096"), joined(open_side.errors));
  for (auto ok :
       {load({"--defaults.format=avif"}),
        load({"--defaults.format=avif", "--defaults.width=4096",
              "--defaults.height=4096", "--limits.max-avif-pixels=16777216"}),
        load({"--defaults.width=4096", "--defaults.height=4096"})})
    BOOST_TEST(ok.errors.empty(), joined(ok.errors));
}

// An API node listens for workers on cluster.bind-address: an IPv4 or IPv6
// address, as http.address (anything else failed only at CAF's publish,
// after the HTTP side had started).
BOOST_AUTO_TEST_CASE(cluster_bind_address_is_an_address) {
  BOOST_TEST(
      only_error({"--cluster.role=api", "--cluster.bind-address=localhost"}) ==
      "cluster.bind-address = 'localhost' is not an IPv4 or IPv6 "
      "address (e.g. 0.0.0.0, 127.0.0.1, ::)");
  for (std::string ok : {"::", "::1", "10.0.0.5"}) {
    auto api = load({"--cluster.role=api", "--cluster.bind-address=" + ok});
    BOOST_TEST(api.errors.empty(), ok << ": " << joined(api.errors));
    BOOST_TEST(api.settings.cluster.bind_address == ok);
  }
}

BOOST_AUTO_TEST_CASE(cluster_roles) {
  // A worker must know the API nodes it joins.
  auto lonely = load({"--cluster.role=worker"});
  BOOST_TEST(lonely.errors.size() == 1u, joined(lonely.errors));
  BOOST_TEST(names(lonely.errors, "cluster.api-nodes"), joined(lonely.errors));
  auto worker = load({"--cluster.role=worker",
                      R"(--cluster.api-nodes="a:4000, b.example:4001")"});
  BOOST_REQUIRE_MESSAGE(worker.errors.empty(), joined(worker.errors));
  auto& cl = worker.settings.cluster;
  BOOST_TEST(cl.role == "worker");
  BOOST_REQUIRE(cl.api_nodes.size() == 2u);
  BOOST_TEST(cl.api_nodes[0].host == "a");
  BOOST_TEST(cl.api_nodes[0].port == 4000);
  BOOST_TEST(cl.api_nodes[1].host == "b.example");
  BOOST_TEST(cl.api_nodes[1].port == 4001);
  auto bad_ep = load({"--cluster.role=worker", "--cluster.api-nodes=a:x"});
  BOOST_TEST(names(bad_ep.errors, "cluster.api-nodes"), joined(bad_ep.errors));
  // An IPv6 API node in brackets: the host is the address without them
  // (with them the worker resolved nothing and never joined).
  auto v6 = load({"--cluster.role=worker",
                  "--cluster.api-nodes=[::1]:4000, [fd00::7]:4001,a:4002"});
  BOOST_REQUIRE_MESSAGE(v6.errors.empty(), joined(v6.errors));
  BOOST_REQUIRE(v6.settings.cluster.api_nodes.size() == 3u);
  BOOST_TEST(v6.settings.cluster.api_nodes[0].host == "::1");
  BOOST_TEST(v6.settings.cluster.api_nodes[0].port == 4000);
  BOOST_TEST(v6.settings.cluster.api_nodes[1].host == "fd00::7");
  BOOST_TEST(v6.settings.cluster.api_nodes[1].port == 4001);
  BOOST_TEST(v6.settings.cluster.api_nodes[2].host == "a");
  // An unbracketed IPv6 address was read as host "fd00:" port 1, a URL as
  // host "http://x".
  for (std::string bad :
       {"[::1]", "[::1:4000", "::1]:4000", "[nohost]:4000", "[]:4000",
        "[127.0.0.1]:4000", "[::1]x:4000", "fd00::1", "fd00::1:4000",
        "http://x:4000", "a b:4000", "x/y:4000"})
    BOOST_TEST_CONTEXT("cluster.api-nodes=" << bad) {
      // (Also "must name at least one API node": none was read.)
      auto res = load({"--cluster.role=worker", "--cluster.api-nodes=" + bad});
      BOOST_TEST(!res.errors.empty());
      if (!res.errors.empty())
        BOOST_TEST(res.errors.front() ==
                   "cluster.api-nodes: '" + bad +
                       "' is not host:port (an IPv6 address in brackets: "
                       "[::1]:4000)");
    }
  // An API node may run without a local pool; others need one.
  auto api = load({"--cluster.role=api", "--resize.pool-size=0"});
  BOOST_TEST(api.errors.empty(), joined(api.errors));
  BOOST_TEST(api.settings.resize.pool_size == 0);
  BOOST_TEST(api.settings.cluster.role == "api");
}

BOOST_AUTO_TEST_CASE(help_lists_the_log_levels_the_validation_takes) {
  // CAF prints --long-help (main's --help) to std::cout while it parses.
  std::ostringstream help;
  auto* cout_buf = std::cout.rdbuf(help.rdbuf());
  auto res = load({"--long-help"});
  std::cout.rdbuf(cout_buf);
  BOOST_TEST(res.errors.empty(), joined(res.errors));
  // It used to leave out "off", which the validation and the INI comments
  // have.
  auto text = help.str();
  auto line = text.find("--log.level=<string>");
  BOOST_REQUIRE_MESSAGE(line != std::string::npos, text);
  BOOST_TEST(text.substr(line, text.find('\n', line) - line)
                     .find(": trace, debug, info, warn, error or off (default "
                           "info)") != std::string::npos,
             text);
  for (std::string level : {"trace", "debug", "info", "warn", "error", "off"})
    BOOST_TEST_CONTEXT("level " << level) {
      auto taken = load({"--log.level=" + level});
      BOOST_TEST(taken.errors.empty(), joined(taken.errors));
    }
  BOOST_TEST(only_error({"--log.level=loud"}) ==
             "log.level = 'loud' is not one of trace, debug, info, warn, "
             "error, off");
}

// A task runs under the policy of the API node that accepted it: a worker
// names the policy keys its config sets (main warns once), from the file or
// the command line; other roles, and a worker's own keys, are not named.
BOOST_AUTO_TEST_CASE(a_worker_names_the_policy_keys_it_does_not_use) {
  temp_ini ini;
  ini.write("[limits]\nmax-dimension=300\n[resize]\npool-size=3\n");
  auto worker = load({"--config-file=" + ini.path, "--cluster.role=worker",
                      "--cluster.api-nodes=a:4000", "--limits.truncated=serve",
                      "--resize.task-timeout-ms=9000", "--defaults.width=50"});
  BOOST_REQUIRE_MESSAGE(worker.errors.empty(), joined(worker.errors));
  BOOST_TEST(worker.settings.unused_on_worker ==
                 (std::vector<std::string>{
                     "limits.max-dimension", "limits.truncated",
                     "resize.task-timeout-ms", "defaults.width"}),
             boost::test_tools::per_element());
  auto quiet = load({"--cluster.role=worker", "--cluster.api-nodes=a:4000",
                     "--resize.pool-size=4", "--shutdown.grace=5"});
  BOOST_TEST(quiet.settings.unused_on_worker.empty());
  auto api = load({"--config-file=" + ini.path, "--cluster.role=api",
                   "--limits.truncated=serve"});
  BOOST_TEST(api.settings.unused_on_worker.empty());
  // Still validated: one file may serve every role.
  auto bad = load({"--cluster.role=worker", "--cluster.api-nodes=a:4000",
                   "--limits.truncated=maybe"});
  BOOST_TEST(names(bad.errors, "limits.truncated"), joined(bad.errors));
  // The shipped worker file sets none of them.
  auto shipped =
      load({"--config-file=" + source_dir() + "/config/cluster-worker.ini"});
  BOOST_REQUIRE_MESSAGE(shipped.errors.empty(), joined(shipped.errors));
  BOOST_TEST(shipped.settings.unused_on_worker.empty(),
             shipped.settings.unused_on_worker.size() << " keys");
}

// A worker has no HTTP server, Redis connection or queue: the keys of
// those sections its config sets are named (main warns once); the shipped
// worker file sets none, and other roles name none.
BOOST_AUTO_TEST_CASE(a_worker_names_the_http_side_keys_it_does_not_use) {
  auto worker =
      load({"--cluster.role=worker", "--cluster.api-nodes=a:4000",
            "--http.port=7000", "--redis.port=7001", "--queue.capacity=5",
            "--auth.api-keys=0123456789abcdef", "--resize.pool-size=2"});
  BOOST_REQUIRE_MESSAGE(worker.errors.empty(), joined(worker.errors));
  auto unused = worker.settings.unused_without_http;
  std::sort(unused.begin(), unused.end());
  BOOST_TEST(unused ==
                 (std::vector<std::string>{"auth.api-keys", "http.port",
                                           "queue.capacity", "redis.port"}),
             boost::test_tools::per_element());
  auto shipped =
      load({"--config-file=" + source_dir() + "/config/cluster-worker.ini"});
  BOOST_REQUIRE_MESSAGE(shipped.errors.empty(), joined(shipped.errors));
  BOOST_TEST(shipped.settings.unused_without_http.empty());
  auto api = load({"--cluster.role=api", "--http.port=7000"});
  BOOST_TEST(api.settings.unused_without_http.empty());
}

// A value refused after CAF read it (a range, a cross-key check) is named
// with the file and line it came from, as a type mistake is; a value from
// the command line, over the file's or not, is named as written there.
BOOST_AUTO_TEST_CASE(a_value_refused_is_named_with_its_file_and_line) {
  temp_ini ini;
  ini.write("; tuning\n[resize]\npool-size=2000\n[http]\nport=4100\n"
            "[cluster]\nrole=\"api\"\nport=4100\n");
  auto res = load({"--config-file=" + ini.path});
  BOOST_TEST(res.errors.size() == 2u, joined(res.errors));
  BOOST_TEST(names(res.errors, ini.path + ":3: resize.pool-size = 2000 is "
                                          "out of range"),
             joined(res.errors));
  BOOST_TEST(names(res.errors, ini.path + ":5: http.port and cluster.port "
                                          "are both 4100"),
             joined(res.errors));
  auto cli = load({"--config-file=" + ini.path, "--resize.pool-size=3000",
                   "--http.port=4200"});
  BOOST_TEST(cli.errors.size() == 1u, joined(cli.errors));
  BOOST_TEST(names(cli.errors, "resize.pool-size = 3000 is out of range"),
             joined(cli.errors));
  BOOST_TEST(!names(cli.errors, ini.path), joined(cli.errors));
  // CAF's own spelling of a command-line key counts as the command line.
  auto prefixed = load({"--config-file=" + ini.path,
                        "--caf#resize.pool-size=3000", "--http.port=4200"});
  BOOST_TEST(names(prefixed.errors, "resize.pool-size = 3000 is out of range"),
             joined(prefixed.errors));
  BOOST_TEST(!names(prefixed.errors, ini.path), joined(prefixed.errors));
  // A limit out of its own range is said once, not again for the box.
  auto limit = load({"--limits.max-dimension=0"});
  BOOST_TEST(limit.errors.size() == 1u, joined(limit.errors));
}

// Lowering limits.max-dimension below the default box names both keys
// and says whether the default side was set or is the built-in one (it
// was "defaults.width = 100 is out of range [0, 50]", for a 100 set
// nowhere); on a worker too, which validates the policy it does not use.
BOOST_AUTO_TEST_CASE(a_limit_below_the_default_box_names_both_keys) {
  for (std::string role : {"standalone", "worker"})
    BOOST_TEST_CONTEXT(role) {
      auto res =
          load({"--cluster.role=" + role, "--cluster.api-nodes=127.0.0.1:4000",
                "--limits.max-dimension=50", "--defaults.height=60"});
      BOOST_TEST(res.errors.size() == 2u, joined(res.errors));
      BOOST_TEST(names(res.errors,
                       "defaults.width = 100 (its default) is above "
                       "limits.max-dimension = 50: every request that leaves "
                       "its size out would be refused; lower defaults.width "
                       "too, or raise the limit"),
                 joined(res.errors));
      BOOST_TEST(names(res.errors, "defaults.height = 60 is above "
                                   "limits.max-dimension = 50"),
                 joined(res.errors));
    }
  BOOST_TEST(only_error({"--defaults.width=70000"}) ==
             "defaults.width = 70000 is out of range [0, 65535]");
  BOOST_TEST(load({"--limits.max-dimension=50", "--defaults.width=50",
                   "--defaults.height=0"})
                 .errors.empty());
}

// CAF's own logger is compiled out of Debian's libcaf 0.17: [logger] keys
// set in a file or on the command line are named (main warns once, on any
// role), a wrong value is still refused, and no node's dump (an API node's
// here; a worker's below) writes the section.
BOOST_AUTO_TEST_CASE(caf_logger_keys_are_named_as_changing_nothing) {
  temp_ini ini;
  ini.write("[logger]\nfile-verbosity='trace'\n");
  auto set = load({"--config-file=" + ini.path, "--logger.console='colored'"});
  BOOST_REQUIRE_MESSAGE(set.errors.empty(), joined(set.errors));
  auto keys = set.settings.caf_logger_keys;
  std::sort(keys.begin(), keys.end());
  BOOST_TEST(keys == (std::vector<std::string>{"logger.console",
                                               "logger.file-verbosity"}),
             boost::test_tools::per_element());
  BOOST_TEST(load({}).settings.caf_logger_keys.empty());
  auto bad = load({"--logger.verbosity='loud'"});
  BOOST_TEST(names(bad.errors, "logger.verbosity"), joined(bad.errors));
  service_config cfg;
  service_settings settings;
  auto errors = load_into(cfg, {"--cluster.role=api"}, settings);
  BOOST_REQUIRE_MESSAGE(errors.empty(), joined(errors));
  auto text = resized::config::dump_text(cfg.dump_content(), {});
  BOOST_TEST(text.find("[logger]") == std::string::npos, text);
  BOOST_TEST(text.find("verbosity=") == std::string::npos, text);
  BOOST_TEST(text.find("[http]") != std::string::npos, text);
  temp_ini back_ini;
  back_ini.write(text);
  auto back = load({"--config-file=" + back_ini.path});
  BOOST_TEST(back.errors.empty(), joined(back.errors));
  BOOST_TEST(back.settings.caf_logger_keys.empty());
}

BOOST_AUTO_TEST_CASE(every_problem_is_reported) {
  auto res =
      load({"--resize.pool-size=0", "--http.port=70000", "--log.level=loud"});
  BOOST_TEST(res.errors.size() == 3u, joined(res.errors));
  BOOST_TEST(names(res.errors, "resize.pool-size"));
  BOOST_TEST(names(res.errors, "http.port"));
  BOOST_TEST(names(res.errors, "log.level"));
}

BOOST_AUTO_TEST_CASE(missing_config_file) {
  auto res = load({"--config-file=/nonexistent/resized.ini"});
  BOOST_TEST(res.errors.size() == 1u, joined(res.errors));
  BOOST_TEST(names(res.errors, "config-file"));
  BOOST_TEST(names(res.errors, "/nonexistent/resized.ini"));
}

BOOST_AUTO_TEST_CASE(unparsable_number) {
  auto res = load({"--http.port=abc"});
  // CAF's own words were "parser_error(unexpected_character,
  // ({"argument" = "--http.port=abc"}))".
  BOOST_TEST(res.errors.size() == 1u, joined(res.errors));
  BOOST_TEST(names(res.errors, "--http.port = 'abc': expected an integer"),
             joined(res.errors));
}

BOOST_AUTO_TEST_CASE(a_word_that_is_not_an_option_is_refused) {
  // CAF 0.17 stops at the first word that is not an option and leaves the
  // rest unread: "resized production.ini --auth.api-keys=…" (a forgotten
  // --config-file=) would run on built-in defaults with auth off.
  BOOST_TEST(only_error({"positional"}) ==
             "unexpected argument 'positional': options are "
             "--section.key=value, a config file is --config-file=PATH");
  auto res = load({"--http.port=5001", "config/production.ini",
                   "--auth.api-keys=0123456789abcdef0123", "--http.port=7"});
  BOOST_TEST(res.errors.size() == 1u, joined(res.errors));
  BOOST_TEST(names(res.errors, "unexpected argument 'config/production.ini' "
                               "(and the 2 after it, not read)"),
             joined(res.errors));
}

BOOST_AUTO_TEST_CASE(http_address_is_an_ip_address) {
  BOOST_TEST(only_error({"--http.address=not-an-ip"}) ==
             "http.address = 'not-an-ip' is not an IPv4 or IPv6 address (e.g. "
             "0.0.0.0, 127.0.0.1, ::)");
  for (std::string ok : {"0.0.0.0", "127.0.0.1", "::", "::1"}) {
    auto res = load({"--http.address=" + ok});
    BOOST_TEST(res.errors.empty(), ok << ": " << joined(res.errors));
  }
}

BOOST_AUTO_TEST_CASE(api_keys_that_name_no_key_are_refused) {
  // "$K1,$K2" with both unset: auth would be off while believed on.
  for (std::string keys : {",", " , ", ",,,"})
    BOOST_TEST(only_error({"--auth.api-keys=" + keys}) ==
                   "auth.api-keys names no key (only commas and blanks): set "
                   "keys, or leave it empty for auth off",
               "keys '" << keys << "'");
  ::setenv("RESIZED_API_KEYS", " ,", 1);
  auto env = load({});
  ::unsetenv("RESIZED_API_KEYS");
  BOOST_TEST(env.errors.size() == 1u, joined(env.errors));
  BOOST_TEST(names(env.errors, "$RESIZED_API_KEYS names no key"),
             joined(env.errors));
  // A short key is named by where it came from.
  ::setenv("RESIZED_API_KEYS", "short", 1);
  auto short_env = load({"--auth.api-keys=0123456789abcdef0123"});
  ::unsetenv("RESIZED_API_KEYS");
  BOOST_TEST(short_env.errors.size() == 1u, joined(short_env.errors));
  BOOST_TEST(names(short_env.errors,
                   "$RESIZED_API_KEYS: every key must have at least 16"),
             joined(short_env.errors));
  BOOST_TEST(only_error({"--auth.api-keys=short,0123456789abcdef0123"}) ==
             "auth.api-keys: every key must have at least 16 characters (one "
             "is shorter; keys are not shown)");
  // Empty is auth off, and an empty variable is no mistake.
  ::setenv("RESIZED_API_KEYS", "", 1);
  temp_ini ini;
  ini.write("[auth]\napi-keys=\"\"\n");
  auto off = load({"--config-file=" + ini.path});
  ::unsetenv("RESIZED_API_KEYS");
  BOOST_TEST(off.errors.empty(), joined(off.errors));
  BOOST_TEST(off.settings.auth.api_keys.empty());
}

BOOST_AUTO_TEST_CASE(protecting_an_endpoint_needs_a_key) {
  BOOST_TEST(only_error({"--auth.protect-metrics"}) ==
             "auth.protect-metrics needs auth.api-keys (or $RESIZED_API_KEYS): "
             "no key is set, so /metrics would stay open");
  BOOST_TEST(only_error({"--auth.protect-cluster"}) ==
             "auth.protect-cluster needs auth.api-keys (or "
             "$RESIZED_API_KEYS): no key is set, so /api/v1/cluster would "
             "stay open");
  auto on = load({"--auth.protect-metrics", "--auth.protect-cluster",
                  "--auth.api-keys=0123456789abcdef0123"});
  BOOST_TEST(on.errors.empty(), joined(on.errors));
  ::setenv("RESIZED_API_KEYS", "0123456789abcdef0123", 1);
  auto env = load({"--auth.protect-metrics"});
  ::unsetenv("RESIZED_API_KEYS");
  BOOST_TEST(env.errors.empty(), joined(env.errors));
}

// Every key can be given as --section.key=value, booleans too: =true and
// =false (CAF 0.17 itself takes only the bare flag), the command line over
// the file, the last of a key's arguments counting.
BOOST_AUTO_TEST_CASE(booleans_on_the_command_line) {
  const std::string key = "--auth.api-keys=0123456789abcdef0123";
  auto on = load({"--auth.protect-metrics=true", key});
  BOOST_TEST(on.errors.empty(), joined(on.errors));
  BOOST_TEST(on.settings.auth.protect_metrics);
  auto off = load({"--auth.protect-metrics=false", key});
  BOOST_TEST(off.errors.empty(), joined(off.errors));
  BOOST_TEST(!off.settings.auth.protect_metrics);
  temp_ini ini;
  ini.write("[auth]\napi-keys=\"0123456789abcdef0123\"\n"
            "protect-metrics=true\nprotect-cluster=true\n");
  auto over_file =
      load({"--config-file=" + ini.path, "--auth.protect-metrics=false"});
  BOOST_TEST(over_file.errors.empty(), joined(over_file.errors));
  BOOST_TEST(!over_file.settings.auth.protect_metrics);
  BOOST_TEST(over_file.settings.auth.protect_cluster); // from the file
  auto last =
      load({"--auth.protect-metrics=false", "--auth.protect-metrics",
            "--auth.protect-cluster", "--auth.protect-cluster=false", key});
  BOOST_TEST(last.errors.empty(), joined(last.errors));
  BOOST_TEST(last.settings.auth.protect_metrics);
  BOOST_TEST(!last.settings.auth.protect_cluster);
  // Anything else is refused, in words that fit the command line.
  BOOST_TEST(only_error({"--auth.protect-metrics=yes"}) ==
             "--auth.protect-metrics = 'yes': expected true or false "
             "(--auth.protect-metrics=true, --auth.protect-metrics=false, or "
             "--auth.protect-metrics alone for true)");
}

BOOST_AUTO_TEST_CASE(malformed_arguments) {
  // CAF's parser errors, in words, name the option.
  for (std::string arg : {"--http.port=5000x", "--http.port"})
    BOOST_TEST_CONTEXT("argument " << arg) {
      auto res = load({arg});
      BOOST_TEST(res.errors.size() == 1u, joined(res.errors));
      BOOST_TEST(names(res.errors, "--http.port"), joined(res.errors));
    }
  // Strings may be quoted on the command line.
  auto quoted = load({R"(--http.address="1.2.3.4")"});
  BOOST_REQUIRE_MESSAGE(quoted.errors.empty(), joined(quoted.errors));
  BOOST_TEST(quoted.settings.http.address == "1.2.3.4");
}

BOOST_AUTO_TEST_CASE(unknown_key_on_command_line) {
  // CAF 0.17 rejects unknown options (pec::not_an_option), in a declared
  // section or not; the error names the option.
  for (std::string arg : {"--http.bogus=1", "--nosuch.key=1", "--bogus=1"})
    BOOST_TEST_CONTEXT("argument " << arg) {
      auto res = load({arg});
      BOOST_TEST(res.errors.size() == 1u, joined(res.errors));
      BOOST_TEST(
          names(res.errors, arg.substr(0, arg.find('=')) + ": no such option"),
          joined(res.errors));
    }
}

BOOST_AUTO_TEST_CASE(ini_file_values_are_validated) {
  temp_ini ini;
  ini.write("[http]\nport=6001\n");
  auto ok = load({"--config-file=" + ini.path});
  BOOST_REQUIRE_MESSAGE(ok.errors.empty(), joined(ok.errors));
  BOOST_TEST(ok.settings.http.port == 6001);
  // Values from the file are range-checked like the command line's.
  ini.write("[resize]\npool-size=0\n");
  auto bad = load({"--config-file=" + ini.path});
  BOOST_TEST(bad.errors.size() == 1u, joined(bad.errors));
  BOOST_TEST(names(bad.errors, "resize.pool-size"));
}

// Each INI mistake below used to be ignored by CAF 0.17 (the default value
// stayed in effect) or reported without file and key.

BOOST_AUTO_TEST_CASE(ini_value_of_the_wrong_type) {
  expect_ini_rejected("[resize]\npool-size=\"two\"\n", "2:",
                      {"resize.pool-size = \"two\"", "expected an integer"});
  expect_ini_rejected("[auth]\nprotect-metrics=\"yes\"\n", "2:",
                      {"auth.protect-metrics = \"yes\"", "true or false"});
  expect_ini_rejected("[http]\nport=5000\nio-threads=2.5\n",
                      "3:", {"http.io-threads = 2.5", "expected an integer"});
  expect_ini_rejected("[redis]\nhost=127\n",
                      "2:", {"redis.host = 127", "string in double quotes"});
  // As written, not as CAF renders it ("1min", "1000.000000").
  expect_ini_rejected("[resize]\ntask-timeout-ms=60s ; a minute\n", "2:",
                      {"resize.task-timeout-ms = 60s: expected an integer"});
  expect_ini_rejected("[resize]\npool-size=1e3\n",
                      "2:", {"resize.pool-size = 1e3: expected an integer"});
  expect_ini_rejected("[resize]\npool-size=\"a;b\" ; c\n", "2:",
                      {"resize.pool-size = \"a;b\": expected an integer"});
}

BOOST_AUTO_TEST_CASE(ini_unknown_key) {
  // The message lists the section's keys: the typo is easy to spot.
  expect_ini_rejected("[resize]\npoolsize=2\n",
                      "2:", {"unknown key resize.poolsize", "pool-size"});
  expect_ini_rejected("; comment\n[http]\nport=6001\nbogus=1\n",
                      "4:", {"unknown key http.bogus"});
  // Before the first [section] only command-line options exist, and a
  // file takes none of them.
  expect_ini_rejected("port=5000\n[http]\n",
                      "1:", {"port is outside any [section]"});
}

BOOST_AUTO_TEST_CASE(ini_unknown_section) {
  expect_ini_rejected("[http]\nport=6001\n\n[nosuch]\nkey=2\n",
                      "4:", {"unknown section '[nosuch]'"});
  // CAF 0.18's spelling; 0.17 reads [scheduler] only.
  expect_ini_rejected("[caf.scheduler]\nmax-threads=2\n",
                      "1:", {"[caf.scheduler]", "no caf. prefix"});
}

BOOST_AUTO_TEST_CASE(ini_unquoted_string_names_key_and_line) {
  // CAF alone: "parser_error(trailing_character, 3, 15)".
  expect_ini_rejected("; listen\n[http]\naddress=127.0.0.1\n", "3:14:",
                      {"http.address", "'address=127.0.0.1'",
                       "trailing_character", "string in double quotes"});
  expect_ini_rejected("[http]\naddress=localhost\n",
                      "2:9:", {"http.address", "string in double quotes"});
}

BOOST_AUTO_TEST_CASE(ini_syntax_errors) {
  // An error on a last line without '\n': CAF alone loads the file without
  // that entry.
  expect_ini_rejected("[http]\nport=5000x",
                      "2:11:", {"http.port", "unexpected_eof", "an integer"});
  expect_ini_rejected("[http]\nport=", "2:6:", {"http.port"});
  expect_ini_rejected("[http]\nport=5000x\n",
                      "2:11:", {"http.port", "an integer"});
  expect_ini_rejected("[http\nport=5000\n", "1:6:", {"'[http'"});
  expect_ini_rejected("[http]\npo rt=1\n", "2:4:", {"'po rt=1'"});
  // '#' is the comment of many INI dialects; CAF's is ';'.
  expect_ini_rejected("# listen\n[http]\nport=5000\n",
                      "1:", {"'# listen'", "comments start with ';'"});
}

// The timeouts that must add up say what they add up to.
BOOST_AUTO_TEST_CASE(timeout_sums_quote_their_values) {
  auto res = load({"--http.reply-timeout-ms=29999"});
  BOOST_TEST_REQUIRE(res.errors.size() == 1u, joined(res.errors));
  BOOST_TEST(res.errors[0] ==
             "http.max-poll-wait (20 s) plus http.reply-timeout-ms (29999 ms) "
             "must be shorter than http.handle-timeout (30 s; RESTinio drops "
             "the socket then): lower either, or raise http.handle-timeout");
  res = load({"--http.reply-timeout-ms=31000"});
  BOOST_TEST_REQUIRE(res.errors.size() == 1u, joined(res.errors));
  BOOST_TEST(res.errors[0].find("(31000 ms)") != std::string::npos);
  BOOST_TEST(res.errors[0].find("(30 s;") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(ini_line_endings_and_byte_order_mark_are_named) {
  // CAF's reader refused them as "cannot read ''" on a blank line, or a
  // value that looks right.
  expect_ini_rejected("[http]\r\nport=5000\r\n",
                      "1:7:", {"CR LF (Windows line endings)", "dos2unix"});
  expect_ini_rejected("[http]\nport=5000\rx\n",
                      "2:10:", {"a carriage return (CR) character"});
  expect_ini_rejected("\xEF\xBB\xBF; comment\n[http]\nport=5000\n",
                      "1:1:", {"byte order mark"});
}

BOOST_AUTO_TEST_CASE(ini_a_key_before_any_section_is_named_so) {
  expect_ini_rejected("pool-size=3\n[resize]\n",
                      "1:", {"pool-size is outside any [section]"});
}

BOOST_AUTO_TEST_CASE(ini_a_carriage_return_caf_reads_is_no_mistake) {
  // In a comment or a string CAF takes it: such files loaded before.
  temp_ini ini;
  ini.write("; written on Windows\r\n[resize]\npool-size=3 ; x\r\n"
            "[redis]\nkey-prefix=\"a\rb\"\n");
  auto res = load({"--config-file=" + ini.path});
  BOOST_TEST(res.errors.empty(), joined(res.errors));
  BOOST_TEST(res.settings.resize.pool_size == 3);
}

BOOST_AUTO_TEST_CASE(ini_command_line_options_are_refused_in_a_file) {
  // dump-config=true or help=true in a file made a start exit 0 without
  // starting or validating; config-file= there was not read.
  for (std::string key : {"dump-config=true", "help=true", "long-help=true",
                          "config-file=\"other.ini\""})
    expect_ini_rejected(key + "\n[http]\nport=5000\n", "1:",
                        {"is a command-line option (--", "not a config file"});
}

BOOST_AUTO_TEST_CASE(integers_are_written_in_decimal) {
  // CAF reads a leading 0 as octal: port=027110 listened on 11848.
  BOOST_TEST(only_error({"--http.port=027110"}) ==
             "http.port = 027110: write integers in decimal: a leading 0 "
             "reads as octal");
  BOOST_TEST(only_error({"--resize.nice=0x5"}) ==
             "resize.nice = 0x5: write integers in decimal, not in hex or "
             "binary");
  expect_ini_rejected("[resize]\nnice=010 ; ten?\n",
                      "2:", {"resize.nice = 010: write integers in decimal"});
  expect_ini_rejected("[resize]\nnice=09\n",
                      "2:", {"resize.nice = 09: write integers in decimal"});
  // 0 and plain decimals, also negative ones and with blanks, are fine.
  auto ok = load({"--resize.nice=0", "--http.port=5010"});
  BOOST_TEST(ok.errors.empty(), joined(ok.errors));
  BOOST_TEST(ok.settings.http.port == 5010);
  temp_ini ini;
  ini.write("[resize]\nnice = 0\n[cluster]\nadopt-ms = -1\n");
  auto file = load({"--config-file=" + ini.path});
  BOOST_TEST(file.errors.empty(), joined(file.errors));
}

BOOST_AUTO_TEST_CASE(an_api_node_needs_two_ports) {
  // The same port for both passed --dump-config and failed at the HTTP
  // bind, after the lease was taken.
  auto same =
      load({"--cluster.role=api", "--http.port=4100", "--cluster.port=4100",
            "--http.address=127.0.0.1", "--cluster.bind-address=0.0.0.0"});
  BOOST_TEST(names(same.errors, "http.port and cluster.port are both 4100"),
             joined(same.errors));
  // Different addresses (neither the wildcard) may share a port number.
  auto apart =
      load({"--cluster.role=api", "--http.port=4100", "--cluster.port=4100",
            "--http.address=127.0.0.1", "--cluster.bind-address=127.0.0.2"});
  BOOST_TEST(apart.errors.empty(), joined(apart.errors));
  // 0.0.0.0 is IPv4's wildcard only; :: takes both; a mapped address is
  // its IPv4 one.
  for (auto [http, cluster, clash] :
       std::vector<std::tuple<std::string, std::string, bool>>{
           {"0.0.0.0", "::1", false},
           {"::", "127.0.0.1", true},
           {"::ffff:127.0.0.1", "127.0.0.1", true},
           {"0.0.0.0", "127.0.0.5", true},
           {"::1", "::1", true}})
    BOOST_TEST_CONTEXT(http << " and " << cluster) {
      auto res =
          load({"--cluster.role=api", "--http.port=4100", "--cluster.port=4100",
                "--http.address=" + http, "--cluster.bind-address=" + cluster});
      BOOST_TEST(names(res.errors, "http.port and cluster.port") == clash,
                 joined(res.errors));
    }
  // A standalone node binds no cluster port.
  auto alone = load({"--http.port=4000", "--cluster.port=4000"});
  BOOST_TEST(alone.errors.empty(), joined(alone.errors));
}

BOOST_AUTO_TEST_CASE(a_workers_dump_leaves_out_what_it_does_not_use) {
  // Started from its own dump, a worker warned about some 45 keys.
  service_config cfg;
  service_settings settings;
  auto errors = load_into(
      cfg, {"--cluster.role=worker", "--cluster.api-nodes=127.0.0.1:4000"},
      settings);
  BOOST_REQUIRE_MESSAGE(errors.empty(), joined(errors));
  auto text = resized::config::dump_text(cfg.dump_content(), {});
  for (std::string gone :
       {"[http]", "[redis]", "[queue]", "[status]", "[auth]", "[logger]",
        "max-dimension=", "max-attempts=", "quality="})
    BOOST_TEST(text.find(gone) == std::string::npos, gone << " in\n" << text);
  BOOST_TEST(text.find("pool-size=") != std::string::npos, text);
  temp_ini ini;
  ini.write(text);
  auto back = load({"--config-file=" + ini.path});
  BOOST_TEST(back.errors.empty(), joined(back.errors));
  BOOST_TEST(back.settings.unused_on_worker.empty());
  BOOST_TEST(back.settings.unused_without_http.empty());
  BOOST_TEST(back.settings.caf_logger_keys.empty());
  BOOST_TEST(back.settings.cluster.role == "worker");
}

BOOST_AUTO_TEST_CASE(the_file_read_is_named) {
  // Without --config-file CAF reads caf-application.ini from the working
  // directory: the start line and the dump name it.
  auto dir = std::filesystem::temp_directory_path() /
             ("resized_cwd_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto before = std::filesystem::current_path();
  std::filesystem::current_path(dir);
  { std::ofstream{"caf-application.ini"} << "[resize]\npool-size=3\n"; }
  auto implicit = load({});
  std::filesystem::remove("caf-application.ini");
  auto none = load({});
  std::filesystem::current_path(before);
  std::filesystem::remove_all(dir);
  BOOST_TEST(implicit.errors.empty(), joined(implicit.errors));
  BOOST_TEST(implicit.settings.config_file == "caf-application.ini");
  BOOST_TEST(implicit.settings.config_file_implicit);
  BOOST_TEST(implicit.settings.resize.pool_size == 3);
  BOOST_TEST(none.settings.config_file.empty());
  temp_ini ini;
  ini.write("[resize]\npool-size=2\n");
  auto given = load({"--config-file=" + ini.path});
  BOOST_TEST(given.settings.config_file == ini.path);
  BOOST_TEST(!given.settings.config_file_implicit);
}

BOOST_AUTO_TEST_CASE(decode_budget_fits_in_64_bits) {
  // 2^62 times a pool of 4 wrapped to a budget of 0: one task at a time.
  auto huge = load({"--resize.decode-bytes-per-worker=4611686018427387904"});
  BOOST_TEST(names(huge.errors, "resize.decode-bytes-per-worker"),
             joined(huge.errors));
  auto tib = load({"--resize.decode-bytes-per-worker=1099511627776",
                   "--resize.pool-size=1024"});
  BOOST_TEST(tib.errors.empty(), joined(tib.errors));
  BOOST_TEST(tib.settings.resize.decode_bytes_per_worker == 1099511627776u);
}

BOOST_AUTO_TEST_CASE(ini_key_set_twice) {
  // CAF keeps one value in its settings and the other in the variable.
  expect_ini_rejected("[http]\nport=6001\n[redis]\nport=1\n[http]\nport=6002\n",
                      "6:", {"http.port is set twice (first on line 2)"});
}

BOOST_AUTO_TEST_CASE(ini_every_mistake_is_reported) {
  temp_ini ini;
  ini.write("[resize]\npool-size=\"two\"\npoolsize=2\n[auth]\n"
            "protect-metrics=\"yes\"\n[nosuch]\nkey=1\n");
  auto res = load({"--config-file=" + ini.path});
  BOOST_TEST(res.errors.size() == 4u, joined(res.errors));
  BOOST_TEST(names(res.errors, "resize.pool-size"), joined(res.errors));
  BOOST_TEST(names(res.errors, "resize.poolsize"), joined(res.errors));
  BOOST_TEST(names(res.errors, "auth.protect-metrics"), joined(res.errors));
  BOOST_TEST(names(res.errors, "[nosuch]"), joined(res.errors));
}

BOOST_AUTO_TEST_CASE(ini_caf_sections_are_checked_too) {
  temp_ini ini;
  ini.write("[scheduler]\npolicy='sharing'\nmax-threads=2\n"
            "[middleman]\nheartbeat-interval=1s\nworkers=1\n"
            "[logger]\nverbosity='quiet'\n");
  auto ok = load({"--config-file=" + ini.path});
  BOOST_TEST(ok.errors.empty(), joined(ok.errors));
  // CAF 0.17 reads no key it does not declare and ignores a wrong type.
  expect_ini_rejected("[scheduler]\npolicy=\"sharing\"\n",
                      "2:", {"scheduler.policy", "atom in single quotes"});
  expect_ini_rejected("[scheduler]\nmax-threads=-1\n",
                      "2:", {"scheduler.max-threads", "non-negative integer"});
  expect_ini_rejected("[middleman]\nheartbeat=1s\n",
                      "2:", {"unknown key middleman.heartbeat"});
}

BOOST_AUTO_TEST_CASE(caf_keys_a_node_cannot_run_with) {
  // CAF 0.17 takes each of these: the node logs "resized started" and
  // answers /healthz, then nothing else (no actor runs, no BASP message
  // is read), or it crashes at its first work steal.
  BOOST_TEST(only_error({"--scheduler.max-threads=0"}) ==
             "scheduler.max-threads = 0 is out of range [1, 4096]: with no "
             "scheduler thread no actor would ever run");
  BOOST_TEST(only_error({}, "[scheduler]\nmax-threads=0\n") ==
             "2: scheduler.max-threads = 0 is out of range [1, 4096]: with no "
             "scheduler thread no actor would ever run");
  BOOST_TEST(only_error({"--scheduler.max-throughput=0"}) ==
             "scheduler.max-throughput = 0 must be at least 1: an actor "
             "would handle no message per run");
  BOOST_TEST(only_error({}, "[middleman]\nmax-consecutive-reads=0\n") ==
             "2: middleman.max-consecutive-reads = 0 must be at least 1: no "
             "connection between nodes would ever be read");
  BOOST_TEST(only_error({"--work-stealing.relaxed-steal-interval=0"}) ==
             "work-stealing.relaxed-steal-interval = 0 must be at least 1: "
             "CAF divides by it");
  BOOST_TEST(only_error({}, "[scheduler]\npolicy='testing'\n") ==
             "2: scheduler.policy = 'testing' is not one of 'stealing', "
             "'sharing'");
  BOOST_TEST(only_error({"--middleman.network-backend=testing"}) ==
             "middleman.network-backend = 'testing' is not one of "
             "'default'");
  BOOST_TEST(only_error({"--middleman.manual-multiplexing"}) ==
             "middleman.manual-multiplexing = true: nothing would run CAF's "
             "network loop (no node could join another)");
  BOOST_TEST(only_error({}, "[logger]\nverbosity='loud'\n") ==
             "2: logger.verbosity = 'loud' is not one of 'quiet', 'error', "
             "'warning', 'info', 'debug', 'trace'");
  // What the shipped files set, and the bounds themselves, are fine.
  auto ok = load({"--scheduler.max-threads=1", "--scheduler.policy=sharing",
                  "--scheduler.max-throughput=1",
                  "--middleman.max-consecutive-reads=1",
                  "--logger.file-verbosity=debug"});
  BOOST_TEST(ok.errors.empty(), joined(ok.errors));
}

BOOST_AUTO_TEST_CASE(ini_atom_suggests_the_values_of_its_key) {
  // It used to suggest "e.g. 'sharing'" for every atom.
  BOOST_TEST(only_error({}, "[logger]\nverbosity=loud\n") ==
             "2:11: logger.verbosity: cannot read the value in "
             "'verbosity=loud' (unexpected_character); expected an atom in "
             "single quotes: one of 'quiet', 'error', 'warning', 'info', "
             "'debug', 'trace'");
  BOOST_TEST(only_error({}, "[scheduler]\npolicy=\"sharing\"\n") ==
             "2: scheduler.policy = \"sharing\": expected an atom in single "
             "quotes: one of 'stealing', 'sharing'");
}

BOOST_AUTO_TEST_CASE(heartbeat_keys_of_caf_and_ours_must_agree) {
  // cluster.heartbeat-ms is handed to CAF as middleman.heartbeat-interval:
  // both given with different values, one of them would silently win.
  BOOST_TEST(only_error({"--cluster.heartbeat-ms=2000",
                         "--middleman.heartbeat-interval=500ms"}) ==
             "cluster.heartbeat-ms (2000) and middleman.heartbeat-interval "
             "(500ms) disagree: both set the same BASP setting; give only "
             "cluster.heartbeat-ms");
  BOOST_TEST(only_error({}, "[cluster]\nconnection-timeout-ms=8000\n"
                            "[middleman]\nconnection-timeout=5s\n") ==
             "2: cluster.connection-timeout-ms (8000) and "
             "middleman.connection-timeout (5s) disagree: both set the same "
             "BASP setting; give only cluster.connection-timeout-ms");
  // Heartbeats off would leave a lost node unnoticed.
  BOOST_TEST(only_error({"--middleman.heartbeat-interval=0s"}) ==
             "middleman.heartbeat-interval = 0s is out of range [50ms, "
             "600000ms] in whole milliseconds (it stands for "
             "cluster.heartbeat-ms; 0 would turn off what resized relies on "
             "to notice a lost node)");
  // The same value twice is no contradiction; CAF's key alone is taken.
  auto same = load(
      {"--cluster.heartbeat-ms=2000", "--middleman.heartbeat-interval=2s"});
  BOOST_TEST(same.errors.empty(), joined(same.errors));
  BOOST_TEST(same.settings.cluster.heartbeat.count() == 2000);
  auto cafs = load({"--middleman.heartbeat-interval=500ms",
                    "--middleman.connection-timeout=3s"});
  BOOST_TEST(cafs.errors.empty(), joined(cafs.errors));
  BOOST_TEST(cafs.settings.cluster.heartbeat.count() == 500);
  BOOST_TEST(cafs.settings.cluster.connection_timeout.count() == 3000);
}

BOOST_AUTO_TEST_CASE(dump_placeholders_are_not_secrets) {
  // A dump made with secrets set, read back: the placeholders used to be
  // split at their comma into "short keys", or used as the password.
  BOOST_TEST(only_error({}, "[auth]\napi-keys=\"(set, not shown)\"\n") ==
             "2: auth.api-keys is the placeholder --dump-config writes for a "
             "secret: set the real value here or in $RESIZED_API_KEYS");
  BOOST_TEST(only_error({}, "[redis]\npassword=\"(set, not shown)\"\n") ==
             "2: redis.password is the placeholder --dump-config writes for a "
             "secret: set the real password here (or with --redis.password)");
  // Keys that came from the environment come from it again.
  const std::string from_env =
      "[auth]\napi-keys=\"(set in $RESIZED_API_KEYS, not shown)\"\n";
  BOOST_TEST(
      only_error({}, from_env) ==
      "2: auth.api-keys is the placeholder --dump-config writes for keys "
      "from $RESIZED_API_KEYS, which is not set here: set the real "
      "value here or in $RESIZED_API_KEYS");
  ::setenv("RESIZED_API_KEYS", "0123456789abcdef0123", 1);
  temp_ini ini;
  ini.write(from_env);
  auto res = load({"--config-file=" + ini.path});
  ::unsetenv("RESIZED_API_KEYS");
  BOOST_TEST(res.errors.empty(), joined(res.errors));
  BOOST_TEST(res.settings.auth.api_keys ==
                 std::vector<std::string>{"0123456789abcdef0123"},
             boost::test_tools::per_element());
  // The whole round trip: dump with both secrets set, read back.
  service_config first;
  service_settings s1;
  auto errors = load_into(first,
                          {"--redis.password=hunter2",
                           "--auth.api-keys=0123456789abcdef0123,"
                           "fedcba9876543210fedc"},
                          s1);
  BOOST_REQUIRE_MESSAGE(errors.empty(), joined(errors));
  ini.write(resized::config::dump_text(first.dump_content()));
  auto again = load({"--config-file=" + ini.path});
  BOOST_TEST(again.errors.size() == 2u, joined(again.errors));
  BOOST_TEST(names(again.errors, "auth.api-keys is the placeholder"),
             joined(again.errors));
  BOOST_TEST(names(again.errors, "redis.password is the placeholder"),
             joined(again.errors));
  BOOST_TEST(!names(again.errors, "16 characters"), joined(again.errors));
}

BOOST_AUTO_TEST_CASE(public_url_is_scheme_host_port_path) {
  BOOST_TEST(only_error({"--http.public-url=http://"}) ==
             "http.public-url = 'http://' has no host (expected "
             "http(s)://host[:port][/path])");
  BOOST_TEST(only_error({"--http.public-url=https:///x"}) ==
             "http.public-url = 'https:///x' has no host (expected "
             "http(s)://host[:port][/path])");
  BOOST_TEST(only_error({"--http.public-url=http://a b"}) ==
             "http.public-url = 'http://a b' contains a space, a control "
             "character or a non-ASCII byte (expected "
             "http(s)://host[:port][/path]; percent-encode the path)");
  BOOST_TEST(only_error({"--http.public-url=http://img.x/a\tb"}) ==
             "http.public-url = 'http://img.x/a\tb' contains a space, a "
             "control character or a non-ASCII byte (expected "
             "http(s)://host[:port][/path]; percent-encode the path)");
  BOOST_TEST(only_error({"--http.public-url=http://img.x:0"}) ==
             "http.public-url = 'http://img.x:0' has a bad port '0' "
             "(expected http(s)://host[:port][/path])");
  BOOST_TEST(only_error({"--http.public-url=http://img.x/?a=1"}) ==
             "http.public-url = 'http://img.x/?a=1' must not have a query or "
             "a fragment: result paths are appended to it (expected "
             "http(s)://host[:port][/path])");
  BOOST_TEST(only_error({"--http.public-url=ftp://img.x"}) ==
             "http.public-url = 'ftp://img.x' must start with http:// or "
             "https:// (expected http(s)://host[:port][/path])");
  for (std::string url : {"https://img.x:8443/base/", "http://[::1]:5000",
                          "http://10.0.0.1", "http://my_host.local/a/b"}) {
    BOOST_TEST_CONTEXT("url " << url) {
      auto res = load({"--http.public-url=" + url});
      BOOST_TEST(res.errors.empty(), joined(res.errors));
    }
  }
}

BOOST_AUTO_TEST_CASE(api_nodes_listed_twice) {
  // A worker joins every entry: the same node twice would be joined twice.
  BOOST_TEST(only_error({"--cluster.role=worker",
                         "--cluster.api-nodes=127.0.0.1:5711,localhost:5711,"
                         "127.0.0.1:5711"}) ==
             "cluster.api-nodes names 127.0.0.1:5711 more than once: a "
             "worker would join that API node once per entry; list each "
             "node once");
  BOOST_TEST(only_error({"--cluster.role=worker",
                         "--cluster.api-nodes=API1:4000, api1:4000"}) ==
             "cluster.api-nodes names api1:4000 more than once: a worker "
             "would join that API node once per entry; list each node once");
  // Other spellings of one host cannot be told apart before connecting.
  auto ok = load({"--cluster.role=worker",
                  "--cluster.api-nodes=127.0.0.1:5711,localhost:5711,"
                  "127.0.0.1:5712"});
  BOOST_TEST(ok.errors.empty(), joined(ok.errors));
  BOOST_TEST(ok.settings.cluster.api_nodes.size() == 3u);
}

BOOST_AUTO_TEST_CASE(queue_holds_at_least_one_upload) {
  // The supervisor refuses an input that would pass queue.max-bytes even
  // into an empty queue: below the largest upload (a raw body of
  // limits.max-body-bytes), uploads near that size got 503 queue_full
  // forever.
  const std::string message =
      "queue.max-bytes (1048576) is below limits.max-body-bytes (67108864): "
      "an upload of the allowed size could never be queued (503 queue_full "
      "even with an empty queue); lower limits.max-body-bytes too";
  BOOST_TEST(only_error({"--queue.max-bytes=1048576"}) == message);
  BOOST_TEST(only_error({}, "[queue]\nmax-bytes=1048576\n") == "2: " + message);
  BOOST_TEST(only_error({"--cluster.role=api", "--queue.max-bytes=1048576"}) ==
             message);
  // Room for exactly one upload of the limit is enough.
  for (auto args : std::vector<std::vector<std::string>>{
           {"--queue.max-bytes=67108864"},
           {"--queue.max-bytes=1048576", "--limits.max-body-bytes=1048576"},
           // A worker has no queue.
           {"--cluster.role=worker", "--cluster.api-nodes=a:4000",
            "--queue.max-bytes=1048576"}}) {
    auto res = load(args);
    BOOST_TEST(res.errors.empty(), joined(res.errors));
  }
}

BOOST_AUTO_TEST_CASE(uploads_under_way_hold_at_least_one_upload) {
  // A body of limits.max-body-bytes must fit in http.max-receiving-bytes
  // alone, or it is refused 503 too_many_uploads on an idle node.
  const std::string message =
      "http.max-receiving-bytes (1048576) is below limits.max-body-bytes "
      "(67108864): an upload of the allowed size would never fit (503 "
      "too_many_uploads even with no other upload under way); lower "
      "limits.max-body-bytes too";
  BOOST_TEST(only_error({"--http.max-receiving-bytes=1048576"}) == message);
  BOOST_TEST(only_error({"--http.max-receiving-bytes=100"}) ==
             "http.max-receiving-bytes = 100 is out of range [1024, "
             "1099511627776]");
  auto at_limit =
      load({"--http.max-receiving-bytes=1048576",
            "--limits.max-body-bytes=1048576", "--queue.max-bytes=1048576"});
  BOOST_TEST(at_limit.errors.empty(), joined(at_limit.errors));
  BOOST_TEST(at_limit.settings.http.max_receiving_bytes == 1048576u);
  BOOST_TEST(load({}).settings.http.max_receiving_bytes == 256u << 20);
}

BOOST_AUTO_TEST_CASE(every_shipped_ini_loads) {
  size_t files = 0;
  for (auto& file :
       std::filesystem::directory_iterator{source_dir() + "/config"}) {
    if (file.path().extension() != ".ini")
      continue;
    ++files;
    BOOST_TEST_CONTEXT("file " << file.path()) {
      auto res = load({"--config-file=" + file.path().string()});
      BOOST_TEST(res.errors.empty(), joined(res.errors));
    }
  }
  BOOST_TEST(files >= 4u);
}

BOOST_AUTO_TEST_CASE(config_file_given_twice) {
  // CAF reads only the first one.
  auto res = load({"--config-file=" + development_ini(),
                   "--config-file=" + development_ini()});
  BOOST_TEST(res.errors.size() == 1u, joined(res.errors));
  BOOST_TEST(names(res.errors, "more than once"), joined(res.errors));
}

BOOST_AUTO_TEST_CASE(dump_shows_every_value_in_effect) {
  temp_ini ini;
  ini.write("[http]\nport=6001\n");
  service_config cfg;
  service_settings settings;
  auto errors =
      load_into(cfg, {"--config-file=" + ini.path, "--redis.db=3"}, settings);
  BOOST_REQUIRE_MESSAGE(errors.empty(), joined(errors));
  auto dump = cfg.dump_content();
  // From the file, from the command line, and defaults never mentioned.
  BOOST_TEST(caf::get_or(dump, "http.port", int64_t{0}) == 6001);
  BOOST_TEST(caf::get_or(dump, "redis.db", int64_t{0}) == 3);
  BOOST_TEST(caf::get_or(dump, "resize.pool-size", int64_t{0}) == 2);
  BOOST_TEST(caf::get_or(dump, "http.address", std::string{}) == "0.0.0.0");
  BOOST_TEST(caf::get_or(dump, "auth.protect-metrics", true) == false);
  // CAF's own defaults stay.
  BOOST_TEST(caf::get_or(dump, "scheduler.max-threads", int64_t{0}) > 0);
}

BOOST_AUTO_TEST_CASE(dump_text_is_an_ini_file) {
  // What --dump-config prints once the configuration is valid: sections
  // with their keys, values in CAF's notation, durations in units CAF's
  // parser reads (its own printing says "0d"), notes as comments.
  caf::settings xs;
  caf::put(xs, "http.port", int64_t{5000});
  caf::put(xs, "http.address", std::string{"0.0.0.0"});
  caf::put(xs, "verbose", true);
  caf::put(xs, "ids",
           caf::config_value::list{caf::config_value{int64_t{1}},
                                   caf::config_value{int64_t{2}}});
  caf::put(xs, "middleman.heartbeat-interval", caf::timespan{0});
  caf::put(xs, "middleman.connection-timeout",
           caf::timespan{std::chrono::milliseconds{1500}});
  caf::put(xs, "scheduler.max-throughput", int64_t{-1});
  caf::put(xs, "scheduler.policy", caf::atom("sharing"));
  BOOST_TEST(resized::config::dump_text(xs, {{"http.port", "a note"}}) ==
             "ids=[1, 2]\nverbose=true\n"
             "\n[http]\naddress=\"0.0.0.0\"\n; a note\nport=5000\n"
             "\n[middleman]\nconnection-timeout=1500ms\n"
             "heartbeat-interval=0s\n"
             "\n[scheduler]\n; max-throughput: unlimited (CAF's default)\n"
             "policy='sharing'\n");
}

BOOST_AUTO_TEST_CASE(dump_reads_back_as_the_same_configuration) {
  for (auto file : {development_ini(), production_ini()}) {
    BOOST_TEST_CONTEXT(file) {
      service_config first;
      service_settings s1;
      auto errors = load_into(first, {"--config-file=" + file}, s1);
      BOOST_REQUIRE_MESSAGE(errors.empty(), joined(errors));
      auto dump = resized::config::dump_text(first.dump_content());
      temp_ini again;
      again.write(dump);
      service_config second;
      service_settings s2;
      errors = load_into(second, {"--config-file=" + again.path}, s2);
      BOOST_TEST(errors.empty(), joined(errors) << "\n" << dump);
      auto redump = resized::config::dump_text(second.dump_content());
      // Only the line naming the file read differs.
      auto without_source = [](std::string text) {
        auto at = text.find("; read from ");
        if (at != std::string::npos)
          text.erase(at, text.find('\n', at) + 1 - at);
        return text;
      };
      BOOST_TEST(without_source(redump) == without_source(dump));
      // A key whose default follows another is left out, so that the file
      // follows it too, and the value in use is said.
      BOOST_TEST(dump.find("; adopt-ms: left out, so it follows lease-ms "
                           "(here " +
                           std::to_string(s1.cluster.lease.count()) + ")\n") !=
                     std::string::npos,
                 dump);
      BOOST_TEST(dump.find("\nadopt-ms=") == std::string::npos, dump);
    }
  }
  // Read back, a dump of a lease-ms left to adoption follows a new lease-ms
  // (it used to write adopt-ms=10000 down).
  {
    service_config first;
    service_settings s1;
    BOOST_REQUIRE(load_into(first, {}, s1).empty());
    temp_ini again;
    again.write(resized::config::dump_text(first.dump_content()));
    auto later =
        load({"--config-file=" + again.path, "--cluster.lease-ms=30000"});
    BOOST_REQUIRE_MESSAGE(later.errors.empty(), joined(later.errors));
    BOOST_TEST(later.settings.cluster.adopt.count() == 30000);
    // Set, it is written down as any key.
    service_config set;
    service_settings s2;
    BOOST_REQUIRE(load_into(set, {"--cluster.adopt-ms=2500"}, s2).empty());
    BOOST_TEST(resized::config::dump_text(set.dump_content())
                   .find("\nadopt-ms=2500\n") != std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(dump_says_keys_from_the_environment_are_set) {
  ::setenv("RESIZED_API_KEYS", "0123456789abcdef0123", 1);
  service_config cfg;
  service_settings settings;
  auto errors = load_into(cfg, {}, settings);
  auto dump = cfg.dump_content();
  ::unsetenv("RESIZED_API_KEYS");
  BOOST_REQUIRE_MESSAGE(errors.empty(), joined(errors));
  BOOST_TEST(caf::get_or(dump, "auth.api-keys", std::string{}) ==
             "(set in $RESIZED_API_KEYS, not shown)");
}

BOOST_AUTO_TEST_CASE(command_line_mistakes_are_named_in_words) {
  auto first_error = [](std::vector<std::string> args) {
    auto res = load(std::move(args));
    return res.errors.empty() ? std::string{} : res.errors.front();
  };
  BOOST_TEST(first_error({"--resize.pool-size=two"}) ==
             "--resize.pool-size = 'two': expected an integer");
  BOOST_TEST(first_error({"--http.prot=1"}) ==
             "--http.prot: no such option; did you mean --http.port? (resized "
             "--help lists them)");
  // The global option, and keys without their section: a key that starts
  // with the name ranks above keys two edits away (--http.port).
  BOOST_TEST(first_error({"--config=x.ini"}) ==
             "--config: no such option; did you mean --config-file? (resized "
             "--help lists them)");
  BOOST_TEST(first_error({"--pool=2"}) ==
             "--pool: no such option; did you mean --resize.pool-size? "
             "(resized --help lists them)");
  BOOST_TEST(first_error({"--nothing-like-it=1"}) ==
             "--nothing-like-it: no such option (resized --help lists them)");
  BOOST_TEST(first_error({"--http.port"}) ==
             "--http.port: the value is missing (--http.port=<value>)");
  BOOST_TEST(first_error({"--redis.key-prefix="}) ==
             "--redis.key-prefix: the value is missing; for an empty string "
             "write --redis.key-prefix='\"\"' (quotes the shell passes on)");
  // Written so, it is taken.
  auto empty = load({"--redis.key-prefix=\"\""});
  BOOST_TEST(empty.errors.empty(), joined(empty.errors));
}

BOOST_AUTO_TEST_SUITE_END()

// TLS on the cluster port (openssl.*): checked on api and worker nodes,
// listed as unused on a standalone node, the passphrase kept out of the
// dump and its placeholder refused.
BOOST_AUTO_TEST_CASE(openssl_keys_by_role) {
  auto worker =
      load({"--cluster.role=worker", "--cluster.api-nodes=127.0.0.1:4000",
            "--openssl.certificate=/nonexistent/node.pem"});
  BOOST_TEST(names(worker.errors, "openssl.key is not set"),
             joined(worker.errors));
  auto standalone = load({"--openssl.certificate=/nonexistent/node.pem",
                          "--openssl.cafile=/nonexistent/ca.pem"});
  BOOST_TEST(standalone.errors.empty(), joined(standalone.errors));
  BOOST_TEST(
      standalone.settings.unused_on_standalone ==
          (std::vector<std::string>{"openssl.certificate", "openssl.cafile"}),
      boost::test_tools::per_element());
  BOOST_TEST(standalone.settings.cluster.tls.on());
  auto placeholder = load({"--openssl.passphrase=(set, not shown)"});
  BOOST_TEST(names(placeholder.errors, "openssl.passphrase is the placeholder"),
             joined(placeholder.errors));
}

BOOST_AUTO_TEST_CASE(dump_hides_the_key_passphrase) {
  service_config cfg;
  service_settings settings;
  auto errors =
      load_into(cfg, {"--openssl.passphrase=hunter2-secret"}, settings);
  BOOST_TEST(errors.empty(), joined(errors));
  auto dumped = caf::to_string(cfg.dump_content());
  BOOST_TEST(dumped.find("hunter2-secret") == std::string::npos, dumped);
  BOOST_TEST(dumped.find("(set, not shown)") != std::string::npos, dumped);
}
