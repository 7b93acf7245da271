#include "common/memory.hpp"

#include <malloc.h>

namespace resized::memory {

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

uint64_t free_heap_bytes() {
  struct mallinfo2 info = mallinfo2();
  return static_cast<uint64_t>(info.fordblks);
}

bool release_free_memory() {
  return malloc_trim(0) == 1;
}

trimmer::trimmer(std::chrono::milliseconds interval, uint64_t threshold)
    : interval_(interval), threshold_(threshold), thread_([this] { run(); }) {}

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

void trimmer::run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!wake_.wait_for(lock, interval_, [this] { return stop_; })) {
    lock.unlock();
    bool trimmed = free_heap_bytes() >= threshold_ && release_free_memory();
    lock.lock();
    ++checks_;
    if (trimmed)
      ++trims_;
  }
}

} // namespace resized::memory
