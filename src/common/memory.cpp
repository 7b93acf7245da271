#include "common/memory.hpp"

#include <malloc.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <atomic>
#include <fstream>
#include <utility>

#include <fmt/format.h>

namespace resized::memory {

namespace {
std::atomic<uint64_t> work_done{0};
} // namespace

void note_work() {
  work_done.fetch_add(1, std::memory_order_relaxed);
}

uint64_t work_count() {
  return work_done.load(std::memory_order_relaxed);
}

bool limit_arenas(int arenas) {
  if (arenas <= 0)
    return true;
  return mallopt(M_ARENA_MAX, arenas) == 1;
}

bool set_mmap_threshold(size_t bytes) {
  if (bytes == 0)
    return true;
  return mallopt(M_MMAP_THRESHOLD, static_cast<int>(bytes)) == 1;
}

bool set_heap_top_bytes(size_t bytes) {
  if (bytes == 0)
    return true;
  return mallopt(M_TRIM_THRESHOLD, static_cast<int>(bytes)) == 1;
}

namespace {
constexpr std::string_view hugetlb_name = "glibc.malloc.hugetlb=";

/// The value glibc.malloc.hugetlb has in a GLIBC_TUNABLES string
/// ("name=value:name=value"), or nullopt. glibc takes the last one.
std::optional<std::string_view> hugetlb_value(std::string_view tunables) {
  std::optional<std::string_view> value;
  while (!tunables.empty()) {
    auto end = tunables.find(':');
    auto item = tunables.substr(0, end);
    if (item.substr(0, hugetlb_name.size()) == hugetlb_name)
      value = item.substr(hugetlb_name.size());
    if (end == std::string_view::npos)
      break;
    tunables.remove_prefix(end + 1);
  }
  return value;
}
} // namespace

std::optional<std::string> tunables_with_huge_pages(const char* current) {
  if (current == nullptr || *current == '\0')
    return std::string{hugetlb_name} + "1";
  if (hugetlb_value(current))
    return std::nullopt;
  return std::string{current} + ":" + std::string{hugetlb_name} + "1";
}

bool huge_pages_tuned(const char* current) {
  if (current == nullptr)
    return false;
  auto value = hugetlb_value(current);
  return value && (*value == "1" || *value == "2");
}

std::string run_with_huge_pages(bool wanted, char** argv) {
  constexpr const char* marker = "RESIZED_HUGE_PAGES_EXEC";
  const bool again = std::getenv(marker) != nullptr;
  unsetenv(marker);
  const bool usable = thp_usable(thp_mode());
  const char* now = std::getenv("GLIBC_TUNABLES");
  const std::optional<std::string> before =
      now ? std::optional<std::string>{now} : std::nullopt;
  if (huge_pages_tuned(now))
    return usable ? "on" : "off (the kernel has no transparent huge pages)";
  if (!wanted)
    return "off";
#if defined(__SANITIZE_ADDRESS__)
  return "off (AddressSanitizer replaces glibc's malloc)";
#endif
  if (!usable)
    return "off (the kernel has no transparent huge pages)";
  auto value = tunables_with_huge_pages(now);
  if (!value)
    return "off (GLIBC_TUNABLES sets glibc.malloc.hugetlb)";
  if (again) // set, yet glibc did not keep it (a secure-execution start)
    return "off (glibc did not take GLIBC_TUNABLES)";
  // The binary's own path, not "/proc/self/exe": the kernel names the
  // process after the file exec'ed (ps, top and pgrep would show "exe").
  std::string self(4096, '\0');
  ssize_t n = readlink("/proc/self/exe", self.data(), self.size() - 1);
  if (n <= 0)
    return fmt::format("off (cannot read /proc/self/exe: {})",
                       std::strerror(errno));
  self.resize(static_cast<size_t>(n));
  setenv("GLIBC_TUNABLES", value->c_str(), 1);
  setenv(marker, "1", 1);
  execv(self.c_str(), argv);
  const int err = errno; // still here: the exec failed, go on without
  unsetenv(marker);
  if (before)
    setenv("GLIBC_TUNABLES", before->c_str(), 1);
  else
    unsetenv("GLIBC_TUNABLES");
  return fmt::format("off (cannot run {} again: {})", self, std::strerror(err));
}

std::string thp_mode() {
  std::string mode;
  std::ifstream in{"/sys/kernel/mm/transparent_hugepage/enabled"};
  std::getline(in, mode);
  return mode;
}

bool thp_usable(std::string_view mode) {
  return mode.find("[always]") != std::string_view::npos ||
         mode.find("[madvise]") != std::string_view::npos;
}

uint64_t free_heap_bytes() {
  struct mallinfo2 info = mallinfo2();
  return static_cast<uint64_t>(info.fordblks);
}

bool release_free_memory() {
  return malloc_trim(0) == 1;
}

trimmer::trimmer(std::chrono::milliseconds interval, uint64_t threshold,
                 uint64_t busy_threshold, std::function<uint64_t()> activity)
    : interval_(interval),
      threshold_(threshold),
      busy_threshold_(busy_threshold),
      activity_(std::move(activity)),
      thread_([this] { run(); }) {}

uint64_t trimmer::threshold_for(uint64_t threshold, uint64_t busy_threshold,
                                bool busy) {
  return busy && busy_threshold != 0 ? busy_threshold : threshold;
}

trimmer::~trimmer() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

uint64_t trimmer::trims() const {
  std::lock_guard<std::mutex> lock(mu_);
  return trims_;
}

uint64_t trimmer::checks() const {
  std::lock_guard<std::mutex> lock(mu_);
  return checks_;
}

uint64_t trimmer::busy_checks() const {
  std::lock_guard<std::mutex> lock(mu_);
  return busy_checks_;
}

void trimmer::run() {
  uint64_t seen = activity_ ? activity_() : 0;
  std::unique_lock<std::mutex> lock(mu_);
  while (!wake_.wait_for(lock, interval_, [this] { return stop_; })) {
    lock.unlock();
    uint64_t now = activity_ ? activity_() : 0;
    bool busy = now != seen;
    seen = now;
    bool trimmed =
        free_heap_bytes() >= threshold_for(threshold_, busy_threshold_, busy) &&
        release_free_memory();
    lock.lock();
    ++checks_;
    if (busy)
      ++busy_checks_;
    if (trimmed)
      ++trims_;
  }
}

} // namespace resized::memory
