// Cluster roles as real processes for end-to-end tests: an API node started
// with config/cluster-api.ini and a worker node started with
// config/cluster-worker.ini (the files docker/docker-compose.yml uses), on
// free loopback ports, plus a parsed view of GET /api/v1/cluster and the
// client steps (submit, poll, fetch) against any node.
//
// Failure detection is shortened for tests (heartbeat 200 ms, connection
// timeout 1 s, worker reconnect backoff at most 500 ms): see
// cluster_test_args() / worker_test_args(). RESIZED_TEST_CLUSTER_TLS=1 puts
// every node's cluster port on TLS.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "support/fixtures.hpp"
#include "support/http_client.hpp"
#include "support/process.hpp"
#include "support/resized_server.hpp"

namespace resized::test {

/// Short heartbeats and timeouts shared by API and worker nodes in tests;
/// with cluster_tls_everywhere(), also the openssl.* arguments of the test
/// node certificate (test_certs_dir()), so every node speaks TLS.
std::vector<std::string> cluster_test_args();

/// $RESIZED_TEST_CLUSTER_TLS is "1": the cluster suite runs a second time
/// (ctest e2e.cluster_test_tls) with TLS on every cluster port.
bool cluster_tls_everywhere();

/// An API node: `$RESIZED_BIN --config-file=<src>/config/cluster-api.ini
/// --http.port=P --cluster.port=C --cluster.bind-address=127.0.0.1
/// --redis.port=R --cluster.node-name=<name>` + cluster_test_args() +
/// `extra_args` (with short_lease_args() unless they set a lease). Ports are
/// chosen once and kept across restarts, so workers find the node again at the
/// same address.
class api_node {
public:
  /// With `start_now`, starts and waits for GET /healthz 200 (throws
  /// std::runtime_error with the log after 20 s).
  api_node(uint16_t redis_port, std::string name,
           std::vector<std::string> extra_args = {}, bool start_now = true);
  ~api_node();
  api_node(const api_node&) = delete;
  api_node& operator=(const api_node&) = delete;

  const std::string& name() const { return name_; }
  uint16_t http_port() const { return http_port_; }
  uint16_t cluster_port() const { return cluster_port_; }
  /// "127.0.0.1:<cluster port>", for --cluster.api-nodes.
  std::string endpoint() const;
  /// "http://127.0.0.1:<http port><path>".
  std::string url(const std::string& path) const;

  void start();   // on the same ports; waits for /healthz
  void restart(); // SIGTERM (graceful drain), then start()
  void kill9();
  bool running() { return proc_.running(); }
  child_process& process() { return proc_; }
  std::string log() const { return proc_.log(); }

private:
  void pick_ports(); // free http and cluster ports, distinct
  uint16_t redis_port_;
  std::string name_;
  std::vector<std::string> args_;
  std::string dir_;
  uint16_t http_port_ = 0;
  uint16_t cluster_port_ = 0;
  child_process proc_;
};

/// A worker node: `$RESIZED_BIN --config-file=<src>/config/cluster-worker.ini
/// --cluster.api-nodes=<endpoints joined by ','> --cluster.node-name=<name>
/// --cluster.reconnect-max-ms=500` + cluster_test_args() + `extra_args`.
/// It has no HTTP: readiness is "listed by an API node" (wait_joined).
class worker_process {
public:
  worker_process(std::string name, std::vector<std::string> api_endpoints,
                 std::vector<std::string> extra_args = {});
  ~worker_process();
  worker_process(const worker_process&) = delete;
  worker_process& operator=(const worker_process&) = delete;

  const std::string& name() const { return name_; }
  bool running() { return proc_.running(); }
  void kill9() { proc_.kill9(); }
  child_process& process() { return proc_; }
  std::string log() const { return proc_.log(); }

private:
  std::string name_;
  std::string dir_;
  child_process proc_;
};

// -- GET /api/v1/cluster -----------------------------------------------------

struct cluster_node_info {
  std::string id, role, address, up_since;
  std::string version; // "0.1.0 (31c78c02d530)"
  std::string state;   // "ready" or "leaving"
  int64_t workers = -1, busy = -1, tasks_done = -1, tasks_failed = -1;
};

struct cluster_snapshot {
  long http_status = 0;
  std::string body;
  bool ok = false; // 200 and the expected shape
  std::string node, role, version;
  int64_t queue_depth = -1;
  struct {
    int64_t nodes = -1, workers = -1, busy = -1, succeeded = -1, failed = -1,
            retried = -1;
  } totals;
  std::vector<cluster_node_info> nodes;
  /// The node with this id, or nullptr.
  const cluster_node_info* find(const std::string& id) const;
};

/// One GET /api/v1/cluster, parsed (ok = false when the request or the
/// shape is wrong; body kept for messages).
cluster_snapshot get_cluster(const api_node& api);

/// Polls until every one of `ids` is listed by `api` (true) or `timeout`.
bool wait_listed(const api_node& api, const std::vector<std::string>& ids,
                 std::chrono::milliseconds timeout);

/// Polls until `id` is no longer listed by `api` (true) or `timeout`.
bool wait_unlisted(const api_node& api, const std::string& id,
                   std::chrono::milliseconds timeout);

// -- the client steps against a cluster node ---------------------------------

/// "image/jpeg", "image/png", "image/webp" from a file name's extension.
std::string content_type_for(const std::string& file_name);

/// POST /api/v1/resize<query> with raw bytes; returns the token ("" and a
/// failed BOOST_TEST unless 202).
std::string submit_to(const api_node& api, const std::string& bytes,
                      const std::string& content_type,
                      const std::string& query = {});

/// One GET /api/v1/resize/<token>.
task_status poll_status(const api_node& api, const std::string& token);

/// Polls every token until final or `timeout`.
std::map<std::string, task_status>
wait_all_final(const api_node& api, const std::vector<std::string>& tokens,
               std::chrono::milliseconds timeout);

/// GET of resized_image_url from the given status body on `api`; probes it.
struct fetched_image {
  http_response response;
  image_info info;
  bool probed = false;
};
fetched_image fetch_result(const api_node& api, const std::string& status_body);

/// Lines of `log` that report a task's end ("task finished" and its token).
size_t finished_lines(const std::string& log, const std::string& token);

} // namespace resized::test
