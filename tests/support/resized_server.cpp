#include "support/resized_server.hpp"

#include <csignal>
#include <stdexcept>
#include <utility>

#include "support/http_client.hpp"

namespace resized::test {

namespace {

constexpr std::chrono::milliseconds startup_timeout{20000};

// resized exited before answering /healthz (bad arguments, or the port was
// taken between free_port() and bind): the only case worth a second try.
struct exited_early : std::runtime_error {
  using std::runtime_error::runtime_error;
};

} // namespace

resized_server::resized_server(uint16_t redis_port,
                               std::vector<std::string> extra_args,
                               const std::string& name)
    : redis_port_(redis_port),
      args_(std::move(extra_args)),
      name_(name),
      dir_(make_temp_dir(name)) {
  // The port was free when asked, but another process may take it before
  // resized binds it: try a few fresh ports before giving up.
  for (int attempt = 0;; ++attempt) {
    port_ = free_port();
    try {
      start();
      return;
    } catch (const exited_early&) {
      if (attempt >= 2)
        throw;
    }
  }
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
  argv.insert(argv.end(), args_.begin(), args_.end());
  proc_ = child_process(argv, dir_ + "/" + name_ + ".log");
  auto health = url("/healthz");
  bool exited = false;
  bool up = wait_until(
      [&] {
        if (!proc_.running()) {
          exited = true;
          return true;
        }
        auto res = http_request("GET", health, {}, {},
                                std::chrono::milliseconds{1000});
        return res.status == 200;
      },
      startup_timeout);
  if (up && !exited)
    return;
  auto what = [&](const char* why) {
    return "resized (" + name_ + ", port " + std::to_string(port_) + ") " +
           why + "; log " + proc_.log_path() + ":\n" + proc_.log();
  };
  if (exited)
    throw exited_early(what("exited during start-up"));
  proc_.kill9();
  throw std::runtime_error(
      what("did not answer GET /healthz with 200 in time"));
}

void resized_server::restart() {
  if (proc_.running())
    proc_.stop(SIGTERM, std::chrono::milliseconds{15000});
  start();
}

void resized_server::kill9() {
  proc_.kill9();
}

} // namespace resized::test
