#include "support/process.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <netinet/in.h>
#include <spawn.h>
#include <sstream>
#include <stdexcept>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

extern char** environ;

namespace resized::test {

namespace {

std::runtime_error sys_error(const std::string& what, int err) {
  return std::runtime_error(what + ": " + std::strerror(err));
}

/// The current environment with `extra` ("KEY=value") added; an extra entry
/// replaces an inherited one with the same key.
std::vector<std::string> merged_env(const std::vector<std::string>& extra) {
  auto key_of = [](const std::string& entry) {
    return entry.substr(0, entry.find('='));
  };
  std::vector<std::string> result;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string entry{*e};
    bool overridden = false;
    for (const auto& x : extra)
      if (key_of(x) == key_of(entry))
        overridden = true;
    if (!overridden)
      result.push_back(std::move(entry));
  }
  result.insert(result.end(), extra.begin(), extra.end());
  return result;
}

/// RAII owners for the posix_spawn attribute objects.
struct file_actions {
  posix_spawn_file_actions_t value;
  file_actions() { posix_spawn_file_actions_init(&value); }
  ~file_actions() { posix_spawn_file_actions_destroy(&value); }
};

struct spawn_attr {
  posix_spawnattr_t value;
  spawn_attr() { posix_spawnattr_init(&value); }
  ~spawn_attr() { posix_spawnattr_destroy(&value); }
};

} // namespace

child_process::child_process(std::vector<std::string> argv,
                             std::string log_path,
                             std::vector<std::string> extra_env)
    : log_path_(std::move(log_path)) {
  if (argv.empty())
    throw std::invalid_argument("child_process: empty argv");
  file_actions actions;
  auto* fa = &actions.value;
  int rc = posix_spawn_file_actions_addopen(fa, 0, "/dev/null", O_RDONLY, 0);
  if (rc == 0)
    rc = posix_spawn_file_actions_addopen(fa, 1, log_path_.c_str(),
                                          O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (rc == 0)
    rc = posix_spawn_file_actions_adddup2(fa, 1, 2);
  if (rc != 0)
    throw sys_error("posix_spawn_file_actions", rc);
  // The child starts with default dispositions and an empty signal mask,
  // whatever the test runner did to its own (e.g. ignoring SIGPIPE).
  spawn_attr attr;
  sigset_t defaults;
  sigemptyset(&defaults);
  for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGCHLD})
    sigaddset(&defaults, sig);
  sigset_t empty;
  sigemptyset(&empty);
  posix_spawnattr_setsigdefault(&attr.value, &defaults);
  posix_spawnattr_setsigmask(&attr.value, &empty);
  posix_spawnattr_setflags(&attr.value,
                           POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  std::vector<char*> args;
  for (auto& a : argv)
    args.push_back(a.data());
  args.push_back(nullptr);
  auto env_strings = merged_env(extra_env);
  std::vector<char*> env;
  for (auto& e : env_strings)
    env.push_back(e.data());
  env.push_back(nullptr);
  pid_t pid = -1;
  // A bare name ("redis-server") is looked up in PATH.
  bool has_slash = argv[0].find('/') != std::string::npos;
  rc = has_slash ? posix_spawn(&pid, args[0], fa, &attr.value, args.data(),
                               env.data())
                 : posix_spawnp(&pid, args[0], fa, &attr.value, args.data(),
                                env.data());
  if (rc != 0)
    throw sys_error("posix_spawn " + argv[0], rc);
  pid_ = pid;
}

child_process::~child_process() {
  if (running())
    stop(SIGTERM, std::chrono::milliseconds{10000});
}

child_process::child_process(child_process&& other) noexcept
    : pid_(other.pid_), log_path_(std::move(other.log_path_)) {
  other.pid_ = -1;
}

child_process& child_process::operator=(child_process&& other) noexcept {
  if (this != &other) {
    if (running())
      stop(SIGTERM, std::chrono::milliseconds{10000});
    pid_ = other.pid_;
    log_path_ = std::move(other.log_path_);
    other.pid_ = -1;
  }
  return *this;
}

bool child_process::running() {
  if (pid_ <= 0)
    return false;
  int status = 0;
  pid_t rc = waitpid(pid_, &status, WNOHANG);
  if (rc == 0)
    return true;
  if (rc == -1 && errno == EINTR)
    return true;
  pid_ = -1; // reaped (or not our child any more)
  return false;
}

int child_process::stop(int sig, std::chrono::milliseconds grace) {
  if (!running())
    return -1;
  ::kill(pid_, sig);
  int status = 0;
  if (sig != SIGKILL) {
    auto deadline = std::chrono::steady_clock::now() + grace;
    for (;;) {
      pid_t rc = waitpid(pid_, &status, WNOHANG);
      if (rc == pid_ || (rc == -1 && errno != EINTR)) {
        pid_ = -1;
        return rc == -1 ? -1 : status;
      }
      if (std::chrono::steady_clock::now() >= deadline)
        break;
      std::this_thread::sleep_for(std::chrono::milliseconds{10});
    }
    ::kill(pid_, SIGKILL);
  }
  pid_t rc;
  do {
    rc = waitpid(pid_, &status, 0);
  } while (rc == -1 && errno == EINTR);
  pid_ = -1;
  return rc == -1 ? -1 : status;
}

void child_process::kill9() {
  stop(SIGKILL, std::chrono::milliseconds{0});
}

void child_process::signal(int sig) {
  if (pid_ > 0)
    ::kill(pid_, sig);
}

bool child_process::wait_exit(std::chrono::milliseconds timeout, int& status) {
  status = -1;
  if (pid_ <= 0)
    return false;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int st = 0;
    pid_t rc = waitpid(pid_, &st, WNOHANG);
    if (rc == pid_) {
      pid_ = -1;
      status = st;
      return true;
    }
    if (rc == -1 && errno != EINTR) {
      pid_ = -1;
      return false;
    }
    if (std::chrono::steady_clock::now() >= deadline)
      return false;
    std::this_thread::sleep_for(std::chrono::milliseconds{10});
  }
}

std::string child_process::log() const {
  std::ifstream in{log_path_, std::ios::binary};
  if (!in)
    return {};
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

bool wait_until(const std::function<bool()>& pred,
                std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (pred())
      return true;
    if (std::chrono::steady_clock::now() >= deadline)
      return false;
    std::this_thread::sleep_for(std::chrono::milliseconds{10});
  }
}

uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    throw sys_error("socket", errno);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    int err = errno;
    ::close(fd);
    throw sys_error("free_port", err);
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

std::string make_temp_dir(const std::string& name) {
  std::string base = env_or("TMPDIR", "/tmp");
  std::string safe = name;
  for (auto& c : safe)
    if (c == '/' || c == ' ')
      c = '_';
  std::string path = base + "/resized-" + safe + "-XXXXXX";
  std::vector<char> buf(path.begin(), path.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr)
    throw sys_error("mkdtemp " + path, errno);
  return std::string{buf.data()};
}

std::string read_file(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  if (!in)
    throw std::runtime_error("cannot read " + path);
  std::ostringstream out;
  out << in.rdbuf();
  if (in.bad())
    throw std::runtime_error("error reading " + path);
  return out.str();
}

std::string env_or(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? std::string{value} : fallback;
}

long proc_memory_mib(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  auto prefix = field + ":";
  while (std::getline(in, line))
    if (line.rfind(prefix, 0) == 0)
      return std::atol(line.c_str() + prefix.size()) / 1024;
  return 0;
}

} // namespace resized::test
