// The HTTP acceptor's limit on parallel connections (http.max-connections),
// in place of RESTinio 0.6's own.
//
// Why by hand: RESTinio's limiter (connection_count_limiter.hpp) counts an
// accept against the limit when it starts one, and gives the count back
// only when the accepted socket becomes a connection. Between the two the
// acceptor asks the socket for its peer's address, which throws for a
// client that reset the connection right after connecting (a TCP health
// check, `nmap -sT`): RESTinio logs the exception and accepts the next one,
// and the count is never given back. 1024 such resets (the default limit)
// left a node that accepted nothing any more, for good. RESTinio picks its
// limiter by the traits' strand type, so resized's traits name a strand
// type of its own (accept_strand: RESTinio's default one under another
// name) and this specialization is the limiter RESTinio uses.
//
// What it does differently: it remembers which socket slot each counted
// accept is on. The acceptor always asks for the slot's next accept right
// after it handled the last one (accept_next), on the same thread, and a
// connection made from that accept was counted by then
// (increment_parallel_connections, on that thread too): an accept neither
// made into a connection nor given back then was lost, and is given back.
#pragma once

#include <atomic>
#include <cstddef>
#include <mutex>
#include <vector>

#include <restinio/all.hpp>

namespace resized::http {

/// RESTinio's default strand under a name of resized's own (see above).
class accept_strand : public restinio::default_strand_t {
public:
  using restinio::default_strand_t::default_strand_t;
  accept_strand(const restinio::default_strand_t& other)
      : restinio::default_strand_t(other) {}
};

/// The accounting, apart from RESTinio's types (unit-tested alone).
class accept_counter {
public:
  explicit accept_counter(size_t max_connections) : max_(max_connections) {}

  /// Slot `index` wants to accept: true if it may now (counted), false if
  /// it waits for a connection to close (then take_waiting gives it). An
  /// accept of this slot counted before and neither made into a connection
  /// (connection_made on this thread since) is given back first.
  bool want_accept(size_t index) noexcept;
  /// The accept just handled on this thread became a connection.
  void connection_made() noexcept;
  /// A connection closed: true with a waiting slot that may accept now
  /// (the acceptor then asks want_accept for it again), else false.
  bool connection_closed(size_t& index) noexcept;

  size_t connections() const noexcept;
  size_t accepting() const noexcept;
  /// Whether the node holds http.max-connections connections. (Not "a
  /// slot waits": with several accept slots, each accept under way counts,
  /// and a slot waited with one connection to go.)
  bool full() const noexcept;

private:
  bool has_room() const noexcept { return accepting_ + connections_ < max_; }

  mutable std::mutex lock_;
  size_t max_;
  size_t accepting_ = 0;
  size_t connections_ = 0;
  std::vector<bool> counted_;   // by slot: an accept of it is counted
  std::vector<size_t> waiting_; // slots waiting for room
};

/// Whether the server holds http.max-connections now (its accept_counter
/// is full): the socket layer then closes stalled connections to make room
/// (continue_socket::shed_stalled). One server per process.
bool acceptor_full() noexcept;

} // namespace resized::http

namespace restinio::connection_count_limits {

template <>
class connection_count_limiter_t<resized::http::accept_strand> {
public:
  connection_count_limiter_t(
      not_null_pointer_t<impl::acceptor_callback_iface_t> acceptor,
      max_parallel_connections_t max_connections, max_active_accepts_t)
      : acceptor_{acceptor}, counter_{max_connections.value()} {}

  connection_count_limiter_t(const connection_count_limiter_t&) = delete;
  connection_count_limiter_t(connection_count_limiter_t&&) = delete;

  void increment_parallel_connections() noexcept { counter_.connection_made(); }

  void decrement_parallel_connections() noexcept {
    size_t index = 0;
    if (counter_.connection_closed(index))
      acceptor_->schedule_next_accept_attempt(index);
  }

  void accept_next(std::size_t index) noexcept {
    if (counter_.want_accept(index))
      acceptor_->call_accept_now(index);
  }

private:
  not_null_pointer_t<impl::acceptor_callback_iface_t> acceptor_;
  resized::http::accept_counter counter_;
};

} // namespace restinio::connection_count_limits
