// Every tunable of resized in one place (STYLE point 10). Each field is a
// config key "<section>.<key>" (INI section [section], or --section.key=value
// on the command line); its default and meaning are documented here and in
// config/development.ini. `validate` checks all of them at start-up.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "common/client_identity.hpp"
#include "common/cors.hpp"
#include "common/memory.hpp"
#include "imaging/options.hpp"
#include "store/task_store.hpp"

namespace resized::config {

struct http_settings {
  std::string address = "0.0.0.0"; // http.address: listen address
  uint16_t port = 5000;            // http.port
  std::string public_url;          // http.public-url: "" = relative URLs
  size_t io_threads = 2;           // http.io-threads: RESTinio asio threads
  size_t max_connections = 1024;   // http.max-connections: parallel sockets
  size_t max_connections_per_client = 128; // http.max-connections-per-
                                           // client: from one address (an
                                           // IPv6 /64); 0 = no limit
  // http.max-receiving-bytes: request body bytes being received, all
  // connections together (upload_budget.hpp); at least
  // limits.max-body-bytes.
  uint64_t max_receiving_bytes = 256ull << 20;
  size_t max_url_bytes = 8192;      // http.max-url-bytes
  size_t max_header_bytes = 16384;  // http.max-header-bytes: per field value
  size_t max_header_count = 100;    // http.max-header-count
  size_t read_buffer_bytes = 65536; // http.read-buffer-bytes: per connection;
                                    // bodies arrive in reads of this size
  std::chrono::seconds read_timeout{30};   // http.read-timeout: slow clients
  std::chrono::seconds write_timeout{30};  // http.write-timeout
  std::chrono::seconds handle_timeout{30}; // http.handle-timeout: socket
                                           // closed if no answer by then
  std::chrono::milliseconds reply_timeout{5000}; // http.reply-timeout: actors
                                                 // answer 504 past this
  int retry_after = 2;                    // http.retry-after: seconds, on 503
  std::chrono::seconds max_poll_wait{20}; // http.max-poll-wait: longest
                                          // ?wait= of a status long poll
  // http.trusted-proxies: addresses or ranges ("10.0.0.0/8") of reverse
  // proxies whose X-Forwarded-For names the client (for its share of the
  // queue); empty = the connection's peer is the client.
  std::vector<ip_network> trusted_proxies;
  // http.forwarded-header: "Forwarded" (RFC 7239) instead of
  // X-Forwarded-For is the header the trusted proxies write.
  bool forwarded_rfc7239 = false;
  // http.cors-origins: web origins whose pages may call the API from a
  // browser ("https://app.example.com", or "*"); empty = none (no CORS).
  cors_policy cors;
};

struct redis_settings_ext {
  store::redis_settings store; // redis.host/port/db/password/key-prefix
  std::chrono::seconds result_ttl{86400}; // redis.result-ttl
};

struct resize_settings {
  int pool_size = 2;        // resize.pool-size: concurrent resize actors
                            // (0 allowed on an api node: no local pool)
  int vips_concurrency = 1; // resize.vips-concurrency: libvips threads each
  std::chrono::milliseconds task_timeout{60000}; // resize.task-timeout-ms
  int max_attempts = 3; // resize.max-attempts: nodes tried per task
  int nice = 5;         // resize.nice: resize threads' lower priority
  // resize.journal: the file noting each resize this node starts until it
  // ends (store/attempt_journal.hpp); "" = the default path, "off" = none
  std::string journal;
  // resize.decode-bytes-per-worker: a node starts a task only while the
  // decode estimates of its tasks in flight stay within pool-size x this
  // (0 = no budget)
  uint64_t decode_bytes_per_worker = 256ull << 20;
};

struct queue_settings {
  size_t capacity = 256;             // queue.capacity: tasks waiting
  uint64_t max_bytes = 256ull << 20; // queue.max-bytes: input bytes waiting
                                     // (>= limits.max-body-bytes)
  // queue.max-per-client, queue.max-bytes-per-client: tasks (and their
  // input bytes) one client may have open (accepted, not final) on this API
  // node; 0 = no limit. A client with nothing open may always submit one.
  size_t max_per_client = 0;
  uint64_t max_bytes_per_client = 0;
};

struct status_settings {
  size_t cache_entries = 10000;             // status.cache-entries: records
  uint64_t image_cache_bytes = 64ull << 20; // status.image-cache-bytes
  // status.recheck-ms: how often a long poll of a task another API node
  // runs looks in Redis, besides the end Redis announces (finished_feed)
  std::chrono::milliseconds recheck{1000};
};

struct memory_settings {
  int arenas =
      memory::default_arenas; // memory.arenas: glibc malloc arenas (0 = glibc
                              // default, 8 x cores): fewer arenas, less
                              // fragmentation; 1, the main heap only, is the
                              // one malloc_trim empties whole
  std::chrono::milliseconds trim_interval{1000}; // memory.trim-interval-ms:
                                                 // 0 = never trim
  uint64_t trim_threshold = 16ull << 20; // memory.trim-threshold: free heap
                                         // bytes before a trim is worth it
  uint64_t busy_trim_threshold = 128ull << 20; // memory.busy-trim-threshold:
                                               // the same while work goes on
                                               // (0 = trim-threshold)
  size_t mmap_threshold =
      memory::default_mmap_threshold; // memory.mmap-threshold: allocations this
                                      // big are mapped, and unmapped when freed
                                      // (0 = glibc's dynamic threshold)
  size_t heap_top_bytes =
      memory::default_heap_top_bytes; // memory.heap-top-bytes: free bytes at
                                      // a heap's top that free() keeps
  bool huge_pages = true; // memory.huge-pages: malloc's heap and mappings in
                          // transparent huge pages (glibc.malloc.hugetlb=1)
};

struct endpoint {
  std::string host;
  uint16_t port = 0;
};

// openssl.* (CAF's own keys): TLS on the cluster port, each side checking
// the other's certificate against the CA. On as soon as any key is set;
// then certificate, key and cafile or capath are all needed (tls_problems).
struct tls_files {
  std::string certificate; // openssl.certificate: PEM, this node's chain
  std::string key;         // openssl.key: PEM private key of the certificate
  std::string passphrase;  // openssl.passphrase: of an encrypted key; secret
  std::string cafile;      // openssl.cafile: PEM CA certificate(s) trusted
  std::string capath;      // openssl.capath: directory of hashed CA files
  /// The openssl.* keys that are set, by name.
  std::vector<std::string> keys_set() const {
    std::vector<std::string> out;
    for (auto [name, value] : {std::pair{"openssl.certificate", &certificate},
                               std::pair{"openssl.key", &key},
                               std::pair{"openssl.passphrase", &passphrase},
                               std::pair{"openssl.cafile", &cafile},
                               std::pair{"openssl.capath", &capath}})
      if (!value->empty())
        out.emplace_back(name);
    return out;
  }
  bool on() const { return !keys_set().empty(); }
};

struct cluster_settings {
  std::string role = "standalone";      // cluster.role: standalone, api, worker
  std::string node_name;                // cluster.node-name: "" = host:port
  std::string bind_address = "0.0.0.0"; // cluster.bind-address (api)
  uint16_t port = 4000;                 // cluster.port: BASP listen port (api)
  std::vector<endpoint> api_nodes;      // cluster.api-nodes: "h:p,h:p" (worker)
  std::string advertise;                // cluster.advertise: address shown
  std::chrono::milliseconds heartbeat{1000}; // cluster.heartbeat-ms
  std::chrono::milliseconds connection_timeout{
      5000};                                     // ...connection-timeout-ms
  std::chrono::milliseconds reconnect_max{5000}; // ...reconnect-max-ms
  // api: connections to `port` whose peer has not said hello (a worker
  // does within milliseconds of connecting) at most; more are closed at
  // once, and one still silent after connection_timeout is cut off.
  size_t max_pending = 64; // cluster.max-pending-connections
  // api, standalone: the lease on node-name in Redis (one running instance
  // per name). It lives lease-ms unless renewed, renewed every renew-ms; a
  // restart after a crash waits at most about lease-ms for it.
  std::chrono::milliseconds lease{10000};      // cluster.lease-ms
  std::chrono::milliseconds lease_renew{3000}; // cluster.lease-renew-ms
  // api, standalone: every adopt (plus up to renew at random) a node adopts
  // the pending sets of names with no lease; 0 = never (they wait for their
  // own node's restart).
  std::chrono::milliseconds adopt{10000}; // cluster.adopt-ms (= lease-ms)
  tls_files tls; // api, worker: TLS on the cluster port when tls.on()
};

struct auth_settings {
  // auth.api-keys (comma-separated) plus $RESIZED_API_KEYS; empty = auth off.
  // Never logged.
  std::vector<std::string> api_keys;
  bool protect_metrics = false; // auth.protect-metrics: /metrics needs a key
  bool protect_cluster = false; // auth.protect-cluster: /api/v1/cluster too
};

struct service_settings {
  http_settings http;
  redis_settings_ext redis;
  cluster_settings cluster;
  auth_settings auth;
  resize_settings resize;
  queue_settings queue;
  status_settings status;
  memory_settings memory;
  uint64_t max_body_bytes = 64ull << 20; // limits.max-body-bytes
  imaging::limits limits;           // limits.max-pixels, limits.max-dimension
  imaging::resize_options defaults; // defaults.width/height/mode/format/quality
  // The config file read: --config-file's, or CAF's default
  // caf-application.ini found in the working directory; "" = none.
  std::string config_file;
  bool config_file_implicit = false;       // CAF's default, not --config-file
  std::string log_level = "info";          // log.level
  std::string log_format = "logfmt";       // log.format: logfmt or json
  std::string log_access = "all";          // log.access: all, errors or off
  std::chrono::seconds shutdown_grace{20}; // shutdown.grace: in-flight tasks
                                           // may finish for this long
  /// cluster.role = worker: the keys of the task policy ([limits],
  /// [defaults], resize.task-timeout-ms, resize.max-attempts,
  /// resize.decode-bytes-per-worker) its config sets, which it does not use:
  /// a task runs under the policy of the API node that accepted it. main
  /// warns once at start-up.
  std::vector<std::string> unused_on_worker;
  /// cluster.role = standalone: the openssl.* keys set (TLS is for the
  /// cluster port, which a standalone node does not open).
  std::vector<std::string> unused_on_standalone;
  /// cluster.role = worker: the keys of the sections a worker has no use
  /// for ([http], [redis], [queue], [status], [auth]: it has no HTTP
  /// server, Redis connection or queue) its config sets. main warns once.
  std::vector<std::string> unused_without_http;
  /// [logger] keys set in the file or on the command line: CAF's logger is
  /// compiled out of the libcaf built against, so they change nothing.
  std::vector<std::string> caf_logger_keys;
};

} // namespace resized::config
