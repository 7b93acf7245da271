#include "store/attempt_journal.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include "common/log.hpp"

namespace resized::store {

namespace {

std::string errno_text(int err) {
  return std::strerror(err);
}

// The text of one slot, its padding cut: "" for a free slot; false when
// it does not end in a newline.
bool slot_text(const char* p, std::string& line) {
  if (p[attempt_journal::slot_bytes - 1] != '\n')
    return false;
  line.assign(p, attempt_journal::slot_bytes - 1);
  auto end = line.find_last_not_of(' ');
  line.resize(end == std::string::npos ? 0 : end + 1);
  return true;
}

// "<attempts> <token>" of an entry (a slot's text, not empty); false if it
// is not that.
bool parse_entry(const std::string& line, std::string& token,
                 uint32_t& attempts) {
  auto space = line.find(' ');
  if (space == 0 || space == std::string::npos || space + 1 >= line.size())
    return false;
  auto count = line.substr(0, space);
  if (count.size() > 10 ||
      count.find_first_not_of("0123456789") != std::string::npos)
    return false;
  auto n = std::strtoull(count.c_str(), nullptr, 10);
  token = line.substr(space + 1);
  if (n == 0 || n > UINT32_MAX ||
      token.find_first_of(" \t\r\n") != std::string::npos)
    return false;
  attempts = static_cast<uint32_t>(n);
  return true;
}

} // namespace

attempt_journal::attempt_journal(std::string path, int fd)
    : path_(std::move(path)), fd_(fd) {}

attempt_journal::~attempt_journal() {
  if (fd_ >= 0)
    ::close(fd_); // releases the lock
}

outcome<std::shared_ptr<attempt_journal>>
attempt_journal::open(const std::string& path, bool* in_use) {
  auto fail = [&](const std::string& what) {
    return failure{error_code::internal_error,
                   fmt::format("resize.journal {}: {}", path, what)};
  };
  std::shared_ptr<attempt_journal> j;
  struct stat st {};
  for (;;) {
    int fd =
        ::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
      return fail(errno == ELOOP ? "is a symbolic link (refused)"
                                 : "cannot open: " + errno_text(errno));
    j.reset(new attempt_journal(path, fd));
    if (::fstat(fd, &st) != 0)
      return fail("cannot stat: " + errno_text(errno));
    if (!S_ISREG(st.st_mode))
      return fail("is not a regular file");
    if (st.st_uid != ::geteuid())
      return fail(fmt::format("belongs to uid {}, not this process' {}",
                              st.st_uid, ::geteuid()));
    // Held until the process ends, however it ends.
    int locked;
    do
      locked = ::flock(fd, LOCK_EX | LOCK_NB);
    while (locked != 0 && errno == EINTR);
    if (locked != 0 && errno == EWOULDBLOCK) {
      if (in_use != nullptr)
        *in_use = true;
      return fail("in use by another running process (a node of the same "
                  "name on this host?)");
    }
    if (locked != 0)
      return fail("cannot lock: " + errno_text(errno));
    // A holder that exited cleanly between our open and our lock removed
    // the file (close_if_empty): this one is nameless then; open anew.
    struct stat now {};
    if (::stat(path.c_str(), &now) == 0 && now.st_dev == st.st_dev &&
        now.st_ino == st.st_ino && ::fstat(fd, &st) == 0)
      break;
  }
  auto fd = j->fd_;
  auto size = static_cast<size_t>(st.st_size);
  std::string bytes(size, '\0');
  size_t got = 0;
  while (got < size) {
    auto n =
        ::pread(fd, bytes.data() + got, size - got, static_cast<off_t>(got));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return fail("cannot read: " +
                  (n < 0 ? errno_text(errno) : std::string{"cut short"}));
    got += static_cast<size_t>(n);
  }
  // Every write here is one whole slot, so anything else is not a journal
  // (resize.journal naming some other file): refused, never written over.
  auto foreign = [&](size_t at) {
    return fail(fmt::format("is not a resize journal (byte {} is neither a "
                            "free slot nor an entry): remove it, or set "
                            "resize.journal to another file",
                            at));
  };
  if (size % slot_bytes != 0)
    return foreign(size - size % slot_bytes);
  j->slots_ = size / slot_bytes;
  std::string line, token;
  for (size_t slot = 0; slot < j->slots_; ++slot) {
    uint32_t attempts = 0;
    if (!slot_text(bytes.data() + slot * slot_bytes, line))
      return foreign(slot * slot_bytes);
    if (line.empty()) {
      j->free_.insert(slot);
      continue;
    }
    if (!parse_entry(line, token, attempts) || j->slot_of_.count(token) != 0)
      return foreign(slot * slot_bytes);
    j->left_[token] = attempts;
    j->slot_of_[token] = slot;
  }
  return j;
}

bool attempt_journal::write_slot(size_t slot, const std::string& text) {
  char buf[slot_bytes];
  std::memset(buf, ' ', sizeof buf);
  std::memcpy(buf, text.data(), std::min(text.size(), slot_bytes - 1));
  buf[slot_bytes - 1] = '\n';
  ssize_t n;
  do
    n = ::pwrite(fd_, buf, sizeof buf, static_cast<off_t>(slot * slot_bytes));
  while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(sizeof buf))
    return true;
  // Disk full, or a filesystem gone read-only: the task runs all the same,
  // only without this protection. Said once, then every 1000th time.
  if (write_failures_++ % 1000 == 0)
    log::warn("resize journal not written: a crash now may not count this "
              "attempt",
              {{"path", path_},
               {"error", n < 0 ? errno_text(errno) : "short write"},
               {"failures", write_failures_}});
  return false;
}

bool attempt_journal::started(const std::string& token, uint32_t attempts) {
  auto text = fmt::format("{} {}", attempts, token);
  if (fd_ < 0 || token.empty() || text.size() >= slot_bytes ||
      token.find_first_of(" \t\r\n") != std::string::npos)
    return false;
  size_t slot;
  if (auto i = slot_of_.find(token); i != slot_of_.end()) {
    slot = i->second; // a later attempt of a task left here, or restarted
    left_.erase(token);
  } else if (!free_.empty()) {
    slot = *free_.begin();
    free_.erase(free_.begin());
  } else {
    slot = slots_++;
  }
  slot_of_[token] = slot;
  return write_slot(slot, text);
}

void attempt_journal::free_slot(const std::string& token) {
  auto i = slot_of_.find(token);
  if (i == slot_of_.end())
    return;
  auto slot = i->second;
  slot_of_.erase(i);
  write_slot(slot, {});
  free_.insert(slot);
}

void attempt_journal::ended(const std::string& token) {
  if (left_.count(token) != 0)
    return; // not started by this process: forget_left frees it
  free_slot(token);
}

void attempt_journal::forget_left() {
  for (const auto& [token, attempts] : left_)
    free_slot(token);
  left_.clear();
}

bool attempt_journal::close_if_empty() {
  if (fd_ < 0)
    return false;
  bool removed = slot_of_.empty() && ::unlink(path_.c_str()) == 0;
  ::close(fd_);
  fd_ = -1;
  return removed;
}

std::string default_journal_path(const std::string& node_name) {
  const char* tmp = std::getenv("TMPDIR");
  std::string dir = tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
  std::string name = node_name;
  for (auto& c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' ||
          c == '-'))
      c = '_';
  return fmt::format("{}/resized-{}.journal", dir, name);
}

} // namespace resized::store
