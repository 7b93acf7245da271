// The real `resized` binary ($RESIZED_BIN) started for an end-to-end test on
// a free loopback port, pointed at a test redis_server, with extra
// `--section.key=value` arguments; waits until GET /healthz answers 200.
#pragma once

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/process.hpp"

namespace resized::test {

/// resized exited before answering /healthz (bad arguments, or a port taken
/// between free_port() and bind): the only case worth another try.
struct exited_early : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Starts `argv` (its log at `log_path`, `extra_env` "KEY=value" entries
/// added to its environment) and waits up to 20 s until `health_url`
/// answers 200. Throws exited_early if it exits first, else
/// std::runtime_error on timeout (the process killed); messages start with
/// `label` and carry the log.
child_process
start_until_healthy(const std::vector<std::string>& argv,
                    const std::string& log_path, const std::string& health_url,
                    const std::string& label,
                    const std::vector<std::string>& extra_env = {});

/// A short lease on the node name (1 s, renewed every 300 ms) so that a
/// test restarting a node after kill -9 waits about a second for its old
/// lease, not the default 10 s. resized_server and api_node add these unless
/// their extra arguments set cluster.lease-ms themselves.
std::vector<std::string> short_lease_args();

/// `args` with short_lease_args() in front, unless `args` sets
/// cluster.lease-ms or cluster.lease-renew-ms.
std::vector<std::string> with_short_lease(std::vector<std::string> args);

/// Runs `pick_ports_and_start` up to three times while it throws
/// exited_early: a port free when asked may be taken before resized binds it.
void with_fresh_ports(const std::function<void()>& pick_ports_and_start);

class resized_server {
public:
  /// Starts resized with --config-file=<source>/config/development.ini,
  /// --http.port=<free>, --redis.port=<redis_port> and `extra_args`, in
  /// which "{http-port}" stands for that port; `extra_env` ("KEY=value")
  /// is added to its environment, at every start.
  /// Throws std::runtime_error (with the log) if /healthz is not 200 in 20 s.
  resized_server(uint16_t redis_port, std::vector<std::string> extra_args = {},
                 const std::string& name = "resized",
                 std::vector<std::string> extra_env = {});
  ~resized_server();

  uint16_t port() const { return port_; }
  std::string url(const std::string& path) const; // http://127.0.0.1:port+path
  child_process& process() { return proc_; }
  void restart(); // SIGTERM, wait, start again with the same arguments
  void kill9();   // SIGKILL
  void start();   // after kill9/stop
  /// After kill9/stop: starts with `extra_args` in place of the ones given
  /// so far (and keeps them for later starts).
  void start(std::vector<std::string> extra_args);

private:
  uint16_t redis_port_;
  std::vector<std::string> args_;
  std::string name_;
  std::vector<std::string> env_;
  std::string dir_;
  uint16_t port_ = 0;
  child_process proc_;
};

} // namespace resized::test
