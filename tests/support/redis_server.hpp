// A private redis-server for one test (or suite): own port on 127.0.0.1,
// own data directory, no persistence unless asked; stopped on destruction.
// The binary is $REDIS_SERVER_BIN (set by CMake) or "redis-server".
#pragma once

#include <cstdint>
#include <string>

#include "support/process.hpp"

namespace resized::test {

class redis_server {
public:
  /// Starts redis-server and polls until it answers PING (throws
  /// std::runtime_error after 10 s). `appendonly` turns AOF on.
  explicit redis_server(bool appendonly = false);
  ~redis_server();

  uint16_t port() const { return port_; }
  const std::string& dir() const { return dir_; }

  /// Stops the server (SHUTDOWN NOSAVE semantics: SIGKILL) / starts it again
  /// on the same port and directory, for outage tests.
  void stop();
  void start();
  /// SIGSTOP / SIGCONT: a server that hangs (commands time out unanswered,
  /// then run when it resumes).
  void pause();
  void resume();

  /// Runs one command through a fresh hiredis-free socket (RESP inline) and
  /// returns the raw reply; for assertions like "EXISTS resized:task:x".
  std::string command(const std::string& inline_cmd);

private:
  uint16_t port_ = 0;
  bool appendonly_ = false;
  std::string dir_;
  child_process proc_;
};

/// `redis-cli monitor` on `server`, from construction (it waits for the
/// MONITOR's OK) until destruction: every command Redis runs, one per line
/// in the log (a Lua script's own commands on lines with "[0 lua]"), for
/// tests that check what was written to Redis in which order. redis-cli is
/// taken from beside $REDIS_SERVER_BIN (Debian's redis-tools).
class redis_monitor {
public:
  explicit redis_monitor(const redis_server& server);
  std::string text() const { return proc_.log(); }

private:
  child_process proc_;
};

} // namespace resized::test
