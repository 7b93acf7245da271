// The request body bytes that all of a node's connections hold while they
// are received (http.max-receiving-bytes). RESTinio keeps each request's
// body in memory until the whole of it is in and the handler takes it, and
// limits.max-body-bytes bounds one body only: without this, 1024
// connections uploading at once may hold 1024 bodies of up to twice that
// (a chunked one), 128 GiB with the defaults, before the queue's own
// limit (queue.max-bytes) counts a byte of them.
//
// The socket layer (expect_continue.hpp) asks it about every body: a
// declared Content-Length that does not fit in what is left now is refused
// 503 too_many_uploads at its header block (instead of "100 Continue", so a
// client that asked never sends it), and every body byte read is taken
// from the budget as it arrives: a body whose next bytes do not fit
// (chunked bodies, or bodies that were admitted together) is refused there
// and its connection closed. A request's bytes are given back once its
// body is whole (the handler then decodes it and the queue counts it), or
// when its connection ends.
//
// Counting the bytes received rather than those declared is what keeps a
// slow client from holding the budget by declaring large bodies and
// trickling them (RESTinio reserves the declared length, but only the
// pages written are memory). Pure bookkeeping, no sockets: unit-tested as
// it is; thread-safe (bodies arrive on every io thread).
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>

namespace resized::http {

class upload_budget {
public:
  /// `capacity`: the most body bytes held at once. `on_change` is told the
  /// bytes held after each change, under the lock, so that what it records
  /// (a gauge) ends on the last value.
  explicit upload_budget(uint64_t capacity,
                         std::function<void(uint64_t)> on_change = {});
  upload_budget(const upload_budget&) = delete;
  upload_budget& operator=(const upload_budget&) = delete;

  /// Whether `n` more bytes fit now (nothing is taken).
  bool fits(uint64_t n) const;
  /// Takes `n` bytes when they fit: true; else takes nothing, false.
  bool take(uint64_t n);
  /// Gives back `n` bytes taken before.
  void give_back(uint64_t n);

  uint64_t capacity() const { return capacity_; }
  uint64_t held() const;

private:
  const uint64_t capacity_;
  const std::function<void(uint64_t)> on_change_;
  mutable std::mutex mutex_;
  uint64_t held_ = 0;
};

} // namespace resized::http
