#include "http/upload_budget.hpp"

#include <algorithm>

namespace resized::http {

upload_budget::upload_budget(uint64_t capacity,
                             std::function<void(uint64_t)> on_change)
    : capacity_(capacity), on_change_(std::move(on_change)) {}

bool upload_budget::fits(uint64_t n) const {
  std::lock_guard<std::mutex> lock{mutex_};
  return n <= capacity_ - held_;
}

bool upload_budget::take(uint64_t n) {
  std::lock_guard<std::mutex> lock{mutex_};
  if (n > capacity_ - held_)
    return false;
  held_ += n;
  if (on_change_ && n > 0)
    on_change_(held_);
  return true;
}

void upload_budget::give_back(uint64_t n) {
  std::lock_guard<std::mutex> lock{mutex_};
  held_ -= std::min(n, held_);
  if (on_change_ && n > 0)
    on_change_(held_);
}

uint64_t upload_budget::held() const {
  std::lock_guard<std::mutex> lock{mutex_};
  return held_;
}

} // namespace resized::http
