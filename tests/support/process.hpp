// A child process owned by a test: started with posix_spawn, its stdout and
// stderr appended to a log file, killed (SIGTERM, then SIGKILL after a
// deadline) when the owner is destroyed. No sleeps as synchronisation:
// callers poll with `wait_until`.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace resized::test {

class child_process {
public:
  child_process() = default;
  /// Starts `argv[0]` (a path) with `argv`; output goes to `log_path`.
  child_process(std::vector<std::string> argv, std::string log_path,
                std::vector<std::string> extra_env = {});
  ~child_process();
  child_process(child_process&&) noexcept;
  child_process& operator=(child_process&&) noexcept;
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  pid_t pid() const { return pid_; }
  bool running(); // false once it has exited (reaped)
  /// Sends `sig`; with SIGTERM/SIGINT waits up to `grace` then SIGKILLs.
  /// Returns the exit status as from waitpid (or -1 if not running).
  int stop(int sig = 15,
           std::chrono::milliseconds grace = std::chrono::milliseconds{10000});
  void kill9(); // SIGKILL and reap
  /// Sends `sig` and returns at once (see wait_exit).
  void signal(int sig);
  /// Waits up to `timeout` for the process to exit; then true, the status
  /// as from waitpid in `status`, and the process reaped. False if it still
  /// runs (or was not running: status -1).
  bool wait_exit(std::chrono::milliseconds timeout, int& status);
  const std::string& log_path() const { return log_path_; }
  std::string log() const; // contents of the log file

private:
  pid_t pid_ = -1;
  std::string log_path_;
};

/// Polls `pred` every few milliseconds until it is true or `timeout` passes.
bool wait_until(const std::function<bool()>& pred,
                std::chrono::milliseconds timeout);

/// A TCP port on 127.0.0.1 that was free when asked (bind to port 0).
uint16_t free_port();

/// A fresh directory under $TMPDIR (or /tmp) for one test's files.
std::string make_temp_dir(const std::string& name);

/// Reads a whole file into a string (throws std::runtime_error on failure).
std::string read_file(const std::string& path);

/// Environment variable or `fallback`.
std::string env_or(const char* name, const std::string& fallback);

/// A memory figure of process `pid` from /proc/<pid>/status, in MiB:
/// `field` "VmRSS" (now) or "VmHWM" (its peak); 0 if it cannot be read.
long proc_memory_mib(pid_t pid, const std::string& field);

} // namespace resized::test
