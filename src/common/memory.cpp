#include "common/memory.hpp"

#include <malloc.h>

#include <atomic>
#include <fstream>
#include <utility>

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
