#include "http/accept_limiter.hpp"

namespace resized::http {

namespace {

// Set by connection_made, read and cleared by the want_accept that follows
// it on the same thread (the acceptor's handler of that accept).
thread_local bool made_here = false;

std::atomic<bool> any_full{false};

} // namespace

bool accept_counter::want_accept(size_t index) noexcept {
  std::lock_guard<std::mutex> lock{lock_};
  bool made = made_here;
  made_here = false;
  if (index >= counted_.size())
    counted_.resize(index + 1, false);
  if (counted_[index]) {
    counted_[index] = false;
    // Made into a connection: connection_made moved its count there.
    // Otherwise lost (the acceptor gave up on it): given back here.
    if (!made && accepting_ > 0)
      --accepting_;
  }
  if (!has_room()) {
    waiting_.push_back(index);
    return false;
  }
  counted_[index] = true;
  ++accepting_;
  return true;
}

void accept_counter::connection_made() noexcept {
  std::lock_guard<std::mutex> lock{lock_};
  if (accepting_ > 0)
    --accepting_;
  ++connections_;
  any_full = connections_ >= max_;
  made_here = true;
}

bool accept_counter::connection_closed(size_t& index) noexcept {
  std::lock_guard<std::mutex> lock{lock_};
  if (connections_ > 0)
    --connections_;
  any_full = connections_ >= max_;
  if (!has_room() || waiting_.empty())
    return false;
  // Not counted yet: the acceptor asks for it again (want_accept).
  index = waiting_.back();
  waiting_.pop_back();
  return true;
}

bool accept_counter::full() const noexcept {
  std::lock_guard<std::mutex> lock{lock_};
  return connections_ >= max_;
}

bool acceptor_full() noexcept {
  return any_full.load();
}

size_t accept_counter::connections() const noexcept {
  std::lock_guard<std::mutex> lock{lock_};
  return connections_;
}

size_t accept_counter::accepting() const noexcept {
  std::lock_guard<std::mutex> lock{lock_};
  return accepting_;
}

} // namespace resized::http
