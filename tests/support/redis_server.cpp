#include "support/redis_server.hpp"

#include "support/loopback.hpp"

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <sys/socket.h>
#include <unistd.h>

namespace resized::test {

namespace {

constexpr auto startup_deadline = std::chrono::milliseconds{10000};

/// Where the RESP2/3 value starting at `pos` ends, or npos while incomplete.
size_t resp_end(const std::string& buf, size_t pos) {
  if (pos >= buf.size())
    return std::string::npos;
  auto eol = buf.find("\r\n", pos);
  if (eol == std::string::npos)
    return std::string::npos;
  char type = buf[pos];
  auto header_end = eol + 2;
  switch (type) {
  case '$':   // bulk string
  case '=':   // verbatim string (RESP3)
  case '!': { // bulk error (RESP3)
    long len = std::strtol(buf.c_str() + pos + 1, nullptr, 10);
    if (len < 0)
      return header_end;
    auto end = header_end + static_cast<size_t>(len) + 2;
    return end <= buf.size() ? end : std::string::npos;
  }
  case '*':   // array
  case '~':   // set (RESP3)
  case '>':   // push (RESP3)
  case '%': { // map (RESP3): key and value per entry
    long n = std::strtol(buf.c_str() + pos + 1, nullptr, 10);
    if (n < 0)
      return header_end;
    if (type == '%')
      n *= 2;
    auto next = header_end;
    for (long i = 0; i < n; ++i) {
      next = resp_end(buf, next);
      if (next == std::string::npos)
        return next;
    }
    return next;
  }
  default: // + - : and RESP3's single-line types
    return header_end;
  }
}

/// Sends one inline command and reads one full reply. Returns false (with
/// `error` set) on connection or I/O failure.
bool exchange(uint16_t port, const std::string& inline_cmd, std::string& reply,
              std::string& error) {
  socket_guard sock{connect_loopback(port)};
  if (sock.fd < 0) {
    error = std::string{"connect: "} + std::strerror(errno);
    return false;
  }
  if (!send_all(sock.fd, inline_cmd + "\r\n", error))
    return false;
  reply.clear();
  char buf[16384];
  while (resp_end(reply, 0) == std::string::npos) {
    auto n = ::recv(sock.fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      error = n == 0 ? std::string{"connection closed before a full reply"}
                     : std::string{"recv: "} + std::strerror(errno);
      return false;
    }
    reply.append(buf, static_cast<size_t>(n));
  }
  return true;
}

} // namespace

redis_server::redis_server(bool appendonly) : appendonly_(appendonly) {
  dir_ = make_temp_dir("redis");
  // The port was free when asked, but another process may take it before
  // redis-server binds: try a few ports before giving up.
  for (int attempt = 1;; ++attempt) {
    port_ = free_port();
    try {
      start();
      return;
    } catch (const std::runtime_error&) {
      if (attempt == 3)
        throw;
    }
  }
}

redis_server::~redis_server() {
  proc_.kill9();
  if (env_or("RESIZED_KEEP_TEST_DIRS", "").empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
}

void redis_server::stop() {
  proc_.kill9();
}

void redis_server::pause() {
  ::kill(proc_.pid(), SIGSTOP);
}

void redis_server::resume() {
  ::kill(proc_.pid(), SIGCONT);
}

void redis_server::start() {
  proc_.kill9();
  auto port = std::to_string(port_);
  // clang-format off
  std::vector<std::string> argv{
    env_or("REDIS_SERVER_BIN", "redis-server"),
    "--port", port,
    "--bind", "127.0.0.1",
    "--dir", dir_,
    "--save", "",                         // no RDB snapshots
    "--appendonly", appendonly_ ? "yes" : "no",
    "--daemonize", "no",
    "--protected-mode", "no",
    "--logfile", "",                      // stdout: the child's log file
  };
  // clang-format on
  proc_ = child_process{std::move(argv), dir_ + "/redis.log"};
  bool up = wait_until(
      [this] {
        if (!proc_.running())
          return true; // exited: stop polling, reported below
        std::string reply;
        std::string error;
        return exchange(port_, "PING", reply, error) && reply == "+PONG\r\n";
      },
      startup_deadline);
  if (!up || !proc_.running()) {
    proc_.kill9();
    throw std::runtime_error("redis-server on port " + port +
                             " did not answer PING; log:\n" + proc_.log());
  }
}

std::string redis_server::command(const std::string& inline_cmd) {
  std::string reply;
  std::string error;
  if (!exchange(port_, inline_cmd, reply, error))
    throw std::runtime_error("redis 127.0.0.1:" + std::to_string(port_) + " " +
                             inline_cmd + ": " + error);
  return reply;
}

redis_monitor::redis_monitor(const redis_server& server) {
  auto bin = env_or("REDIS_SERVER_BIN", "redis-server");
  auto slash = bin.rfind('/');
  auto cli = slash == std::string::npos
                 ? std::string{"redis-cli"}
                 : bin.substr(0, slash + 1) + "redis-cli";
  static std::atomic<int> monitors{0};
  auto log = server.dir() + "/monitor-" + std::to_string(++monitors) + ".log";
  proc_ = child_process{
      {cli, "-p", std::to_string(server.port()), "--no-raw", "monitor"}, log};
  // Commands sent before MONITOR's OK are not shown: wait for it.
  if (!wait_until([this] { return proc_.log().rfind("OK", 0) == 0; },
                  startup_deadline))
    throw std::runtime_error("redis-cli monitor did not start; log:\n" +
                             proc_.log());
}

} // namespace resized::test
