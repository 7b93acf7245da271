// accept(2), recv(2) and connect(2) as CAF's middleman calls them, defined
// by resized's executable in front of libc's, to watch the connections to
// the cluster port until their peer has joined as a node, and to bound a
// worker's connects (cluster_guard.hpp).
//
// Why by hand: CAF 0.17's middleman has no limit on connections waiting in
// BASP's handshake and no deadline for it, and tells nothing about a
// connection before the handshake is done. The executable comes first in
// symbol lookup, so libcaf_io's accept calls land here (asio's for the HTTP
// port too: those are passed through untouched, told apart by the
// listening socket's port). libc's own is found with dlsym(RTLD_NEXT).
//
// This file is compiled into the executable itself (CMakeLists.txt), like
// openssl_calls.cpp.
#include "cluster_guard.hpp"

#include <dlfcn.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>

#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>

#include "common/log.hpp"
#include "common/socket_ends.hpp"

namespace {

using clock_type = std::chrono::steady_clock;
using accept_fn = int (*)(int, sockaddr*, socklen_t*);
using recv_fn = ssize_t (*)(int, void*, size_t, int);
using connect_fn = int (*)(int, const sockaddr*, socklen_t);

template <class Fn>
Fn libc(const char* name) {
  auto fn = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, name));
  if (fn == nullptr) {
    resized::log::error("cannot find a libc function", {{"name", name}});
    std::abort();
  }
  return fn;
}

accept_fn libc_accept() {
  static auto fn = libc<accept_fn>("accept");
  return fn;
}

recv_fn libc_recv() {
  static auto fn = libc<recv_fn>("recv");
  return fn;
}

connect_fn libc_connect() {
  static auto fn = libc<connect_fn>("connect");
  return fn;
}

uint16_t local_port(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    return 0;
  if (addr.ss_family == AF_INET)
    return ntohs(reinterpret_cast<const sockaddr_in&>(addr).sin_port);
  if (addr.ss_family == AF_INET6)
    return ntohs(reinterpret_cast<const sockaddr_in6&>(addr).sin6_port);
  return 0;
}

// A connection accepted on the cluster port, its peer not heard from yet.
// The socket is identified by both ends as well as its descriptor: one
// closed and reused meanwhile is left alone.
struct pending_connection {
  resized::socket_ends ends;
  std::pair<std::string, uint16_t> peer_endpoint;
  clock_type::time_point since;
  // Where the peer's byte stream is in BASP's framing: a 32-byte header
  // (payload_len, big-endian, at bytes 4-7), then that many payload bytes.
  uint8_t header[32];
  size_t header_bytes = 0;
  uint64_t payload_left = 0;
  bool heard = false; // any byte received yet
};

// Whether a connection's first bytes are a TLS record's header (type 22,
// a handshake; version 3.x): a node with openssl.* set knocking on a plain
// cluster port. No BASP message starts so (its first byte is the
// operation, 0 to 6 in CAF 0.17).
bool tls_record_start(const uint8_t* data, size_t n) {
  return n >= 3 && data[0] == 0x16 && data[1] == 0x03 && data[2] <= 0x04;
}

constexpr size_t basp_header_size = 32;

// Follows `n` received bytes through `p`'s framing; false when a header
// announces more than max_payload_before_join.
bool frames_ok(pending_connection& p, const uint8_t* data, size_t n) {
  while (n > 0) {
    if (p.payload_left > 0) {
      auto skip = std::min<uint64_t>(p.payload_left, n);
      p.payload_left -= skip;
      data += skip;
      n -= skip;
      continue;
    }
    auto take = std::min(n, basp_header_size - p.header_bytes);
    std::copy(data, data + take, p.header + p.header_bytes);
    p.header_bytes += take;
    data += take;
    n -= take;
    if (p.header_bytes < basp_header_size)
      return true;
    uint32_t len = (uint32_t{p.header[4]} << 24) |
                   (uint32_t{p.header[5]} << 16) |
                   (uint32_t{p.header[6]} << 8) | uint32_t{p.header[7]};
    if (len > resized::max_payload_before_join)
      return false;
    p.payload_left = len;
    p.header_bytes = 0;
  }
  return true;
}

// Shared with the watchdog thread (detached, it runs until the process
// ends): allocated once and never destroyed, so static destructors at exit
// cannot pull it from under that thread.
struct guard_state {
  std::atomic<uint16_t> port{0};
  std::atomic<int64_t> deadline_ms{0};
  std::atomic<size_t> max_pending{0};
  std::mutex mutex;
  std::unordered_map<int, pending_connection> pending; // by descriptor
  // Peers that joined, until their connection is found (or for two
  // deadlines: a join on a connection accepted before the guard).
  std::map<std::pair<std::string, uint16_t>, clock_type::time_point> joined;
  std::once_flag watchdog_started;
  resized::log::throttle log{std::chrono::seconds{10}};
  std::atomic<bool> check_frames{false};
  // limit_blocking_connects (0: none).
  std::atomic<int64_t> connect_limit_ms{0};
};

guard_state& guard = *new guard_state;

// Whether the peer of pending connection `p` has joined (its connection is
// a node's: the caller forgets it); the note is used up.
// Under guard.mutex.
bool take_join(const pending_connection& p) {
  auto join = guard.joined.find(p.peer_endpoint);
  if (join == guard.joined.end())
    return false;
  guard.joined.erase(join);
  return true;
}

// Once a quarter of the deadline: forgets connections whose peer said
// joined, shuts down those past the deadline.
void watchdog() {
  for (;;) {
    auto limit = std::chrono::milliseconds{guard.deadline_ms.load()};
    std::this_thread::sleep_for(
        std::max(limit / 4, std::chrono::milliseconds{50}));
    auto now = clock_type::now();
    std::lock_guard<std::mutex> lock{guard.mutex};
    for (auto i = guard.pending.begin(); i != guard.pending.end();) {
      if (take_join(i->second)) {
        i = guard.pending.erase(i);
        continue;
      }
      if (now - i->second.since < limit) {
        ++i;
        continue;
      }
      if (resized::same_ends(i->first, i->second.ends)) {
        ::shutdown(i->first, SHUT_RDWR);
        if (auto count = guard.log.note(0, now); count > 0)
          resized::log::warn(
              "cluster connection cut off: not joined in time",
              {{"peer", resized::address_text(i->second.ends.peer,
                                              i->second.ends.peer_len)},
               {"deadline_ms", limit.count()},
               {"connections", count},
               {"log_every_s", guard.log.every_seconds()}});
      }
      i = guard.pending.erase(i);
    }
    for (auto i = guard.joined.begin(); i != guard.joined.end();)
      i = now - i->second > 2 * limit ? guard.joined.erase(i) : std::next(i);
  }
}

// `fd` received `n` bytes at `data`: if it is a connection waiting for its
// peer's join whose framing announces too large a payload, it is shut
// down (and true is answered: the caller reports a reset).
bool refuse_oversized(int fd, const void* data, size_t n) {
  std::lock_guard<std::mutex> lock{guard.mutex};
  auto i = guard.pending.find(fd);
  if (i == guard.pending.end())
    return false;
  if (!resized::same_ends(fd, i->second.ends)) {
    // Closed by CAF and the number reused (accept drops such notes; this is
    // for a descriptor made otherwise, by socket(2)).
    guard.pending.erase(i);
    return false;
  }
  // Joined since (the watchdog forgets it at its next round only): a
  // node's, whose messages may be as large as results are.
  if (take_join(i->second)) {
    guard.pending.erase(i);
    return false;
  }
  auto bytes = static_cast<const uint8_t*>(data);
  bool first = !std::exchange(i->second.heard, true);
  if (first && tls_record_start(bytes, n)) {
    // Cut off at once (its record header read as BASP's announced some
    // 64 KiB or more, and was logged as "a message too large").
    ::shutdown(fd, SHUT_RDWR);
    if (auto count = guard.log.note(3, clock_type::now()); count > 0)
      resized::log::warn(
          "cluster connection cut off: it began a TLS handshake, and this "
          "node's cluster port is plain (set openssl.* on both nodes, or on "
          "neither)",
          {{"peer", resized::address_text(i->second.ends.peer,
                                          i->second.ends.peer_len)},
           {"connections", count},
           {"log_every_s", guard.log.every_seconds()}});
    guard.pending.erase(i);
    return true;
  }
  if (frames_ok(i->second, bytes, n))
    return false;
  ::shutdown(fd, SHUT_RDWR);
  if (auto count = guard.log.note(2, clock_type::now()); count > 0)
    resized::log::warn(
        "cluster connection cut off: a message too large before it joined",
        {{"peer",
          resized::address_text(i->second.ends.peer, i->second.ends.peer_len)},
         {"max_bytes", static_cast<uint64_t>(resized::max_payload_before_join)},
         {"connections", count},
         {"log_every_s", guard.log.every_seconds()}});
  guard.pending.erase(i);
  return true;
}

// connect(2) on blocking socket `fd`, waiting at most `limit_ms`.
int connect_within(int fd, const sockaddr* addr, socklen_t len,
                   int64_t limit_ms) {
  int flags = fcntl(fd, F_GETFL, 0);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0)
    return libc_connect()(fd, addr, len);
  int rc = libc_connect()(fd, addr, len);
  int err = rc == 0 ? 0 : errno;
  if (rc != 0 && err == EINPROGRESS) {
    pollfd p{fd, POLLOUT, 0};
    auto deadline = clock_type::now() + std::chrono::milliseconds{limit_ms};
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                      deadline - clock_type::now())
                      .count();
      int ready = left > 0 ? poll(&p, 1, static_cast<int>(left)) : 0;
      if (ready < 0 && errno == EINTR)
        continue;
      if (ready <= 0) {
        err = ready == 0 ? ETIMEDOUT : errno;
        break;
      }
      socklen_t elen = sizeof err;
      if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0)
        err = errno;
      break;
    }
    rc = err == 0 ? 0 : -1;
  }
  fcntl(fd, F_SETFL, flags);
  errno = err;
  return rc;
}

void forget(int fd) {
  std::lock_guard<std::mutex> lock{guard.mutex};
  guard.pending.erase(fd);
}

void note_accepted(int listener, int fd) {
  if (local_port(listener) != guard.port.load())
    return;
  pending_connection p;
  if (!resized::read_ends(fd, p.ends))
    return;
  p.peer_endpoint = resized::numeric_endpoint(p.ends.peer, p.ends.peer_len);
  p.since = clock_type::now();
  std::lock_guard<std::mutex> lock{guard.mutex};
  if (guard.pending.size() >= guard.max_pending.load()) {
    // CAF owns the descriptor: end the stream, CAF closes it.
    ::shutdown(fd, SHUT_RDWR);
    if (auto count = guard.log.note(1, p.since); count > 0)
      resized::log::warn(
          "cluster connection refused: too many not joined",
          {{"peer", resized::address_text(p.ends.peer, p.ends.peer_len)},
           {"max_pending", guard.max_pending.load()},
           {"connections", count},
           {"log_every_s", guard.log.every_seconds()}});
    return;
  }
  guard.pending[fd] = std::move(p);
}

} // namespace

namespace resized {

void guard_cluster_port(uint16_t port, std::chrono::milliseconds deadline,
                        size_t max_pending, bool plain) {
  guard.check_frames = plain;
  guard.deadline_ms = deadline.count();
  guard.max_pending = max_pending;
  guard.port = port;
  std::call_once(guard.watchdog_started,
                 [] { std::thread{watchdog}.detach(); });
}

void limit_blocking_connects(std::chrono::milliseconds limit) {
  guard.connect_limit_ms = limit.count();
}

void note_cluster_join(const std::string& host, uint16_t port) {
  if (guard.port.load() == 0)
    return;
  std::lock_guard<std::mutex> lock{guard.mutex};
  guard.joined[{host, port}] = clock_type::now();
}

} // namespace resized

extern "C" {

int accept(int fd, sockaddr* addr, socklen_t* len) {
  int s = libc_accept()(fd, addr, len);
  if (s >= 0 && guard.port.load() != 0) {
    // A note on descriptor `s` is of a connection closed since (its peer
    // left without joining, and CAF closed it): whatever `s` is now, an
    // HTTP connection too, it is not that one.
    forget(s);
    note_accepted(fd, s);
  }
  return s;
}

// CAF's BASP reads with recv (asio and hiredis do not: recvmsg, read).
ssize_t recv(int fd, void* buf, size_t len, int flags) {
  ssize_t n = libc_recv()(fd, buf, len, flags);
  if (n > 0 && (flags & MSG_PEEK) == 0 && guard.check_frames.load() &&
      refuse_oversized(fd, buf, static_cast<size_t>(n))) {
    errno = ECONNRESET;
    return -1;
  }
  return n;
}

// Only blocking sockets (CAF's middleman's) are bounded: asio, hiredis and
// the resolver connect non-blocking and keep their own deadlines.
int connect(int fd, const sockaddr* addr, socklen_t len) {
  int64_t limit = guard.connect_limit_ms.load();
  if (limit <= 0)
    return libc_connect()(fd, addr, len);
  int flags = fcntl(fd, F_GETFL, 0);
  if (flags < 0 || (flags & O_NONBLOCK) != 0)
    return libc_connect()(fd, addr, len);
  return connect_within(fd, addr, len, limit);
}

} // extern "C"
