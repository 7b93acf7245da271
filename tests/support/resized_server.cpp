#include "support/resized_server.hpp"

#include <csignal>
#include <stdexcept>
#include <utility>

#include "support/http_client.hpp"

namespace resized::test {

namespace {

constexpr std::chrono::milliseconds startup_timeout{20000};

} // namespace

child_process start_until_healthy(const std::vector<std::string>& argv,
                                  const std::string& log_path,
                                  const std::string& health_url,
                                  const std::string& label,
                                  const std::vector<std::string>& extra_env) {
  child_process proc(argv, log_path, extra_env);
  bool exited = false;
  bool up = wait_until(
      [&] {
        if (!proc.running()) {
          exited = true;
          return true;
        }
        return http_request("GET", health_url, {}, {},
                            std::chrono::milliseconds{1000})
                   .status == 200;
      },
      startup_timeout);
  if (up && !exited)
    return proc;
  auto what = [&](const char* why) {
    return label + " " + why + "; log " + proc.log_path() + ":\n" + proc.log();
  };
  if (exited)
    throw exited_early(what("exited during start-up"));
  proc.kill9();
  throw std::runtime_error(
      what("did not answer GET /healthz with 200 in time"));
}

void with_fresh_ports(const std::function<void()>& pick_ports_and_start) {
  for (int attempt = 0;; ++attempt) {
    try {
      pick_ports_and_start();
      return;
    } catch (const exited_early&) {
      if (attempt >= 2)
        throw;
    }
  }
}

std::vector<std::string> short_lease_args() {
  return {"--cluster.lease-ms=1000", "--cluster.lease-renew-ms=300"};
}

std::vector<std::string> with_short_lease(std::vector<std::string> args) {
  for (const auto& a : args)
    if (a.rfind("--cluster.lease-", 0) == 0)
      return args;
  auto out = short_lease_args();
  out.insert(out.end(), args.begin(), args.end());
  return out;
}

resized_server::resized_server(uint16_t redis_port,
                               std::vector<std::string> extra_args,
                               const std::string& name,
                               std::vector<std::string> extra_env)
    : redis_port_(redis_port),
      args_(std::move(extra_args)),
      name_(name),
      env_(std::move(extra_env)),
      dir_(make_temp_dir(name)) {
  with_fresh_ports([this] {
    port_ = free_port();
    start();
  });
}

resized_server::~resized_server() {
  if (proc_.running())
    proc_.stop(SIGTERM, std::chrono::milliseconds{10000});
}

std::string resized_server::url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(port_) + path;
}

void resized_server::start() {
  auto source_dir = env_or("RESIZED_SOURCE_DIR", ".");
  std::vector<std::string> argv{
      env_or("RESIZED_BIN", "resized"),
      "--config-file=" + source_dir + "/config/development.ini",
      "--http.port=" + std::to_string(port_),
      "--redis.port=" + std::to_string(redis_port_),
  };
  for (auto& a : with_short_lease(args_)) {
    // An argument may name the port picked here: "{http-port}".
    for (auto at = a.find("{http-port}"); at != std::string::npos;
         at = a.find("{http-port}"))
      a.replace(at, 11, std::to_string(port_));
    argv.push_back(std::move(a));
  }
  proc_ = start_until_healthy(
      argv, dir_ + "/" + name_ + ".log", url("/healthz"),
      "resized (" + name_ + ", port " + std::to_string(port_) + ")", env_);
}

void resized_server::restart() {
  if (proc_.running())
    proc_.stop(SIGTERM, std::chrono::milliseconds{15000});
  start();
}

void resized_server::start(std::vector<std::string> extra_args) {
  args_ = std::move(extra_args);
  start();
}

void resized_server::kill9() {
  proc_.kill9();
}

} // namespace resized::test
