// accept(2) as CAF's middleman calls it, defined by resized's executable in
// front of libc's, to watch the connections to the cluster port until their
// peer says hello (cluster_guard.hpp).
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
#include <netinet/in.h>
#include <sys/socket.h>

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

accept_fn libc_accept() {
  static auto fn = reinterpret_cast<accept_fn>(dlsym(RTLD_NEXT, "accept"));
  if (fn == nullptr) {
    resized::log::error("cannot find libc's accept", {});
    std::abort();
  }
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
};

// Shared with the watchdog thread (detached, it runs until the process
// ends): allocated once and never destroyed, so static destructors at exit
// cannot pull it from under that thread.
struct guard_state {
  std::atomic<uint16_t> port{0};
  std::atomic<int64_t> deadline_ms{0};
  std::atomic<size_t> max_pending{0};
  std::mutex mutex;
  std::unordered_map<int, pending_connection> pending; // by descriptor
  // Peers that said hello, until their connection is found (or for two
  // deadlines: a hello on a connection accepted before the guard).
  std::map<std::pair<std::string, uint16_t>, clock_type::time_point> greeted;
  std::once_flag watchdog_started;
  resized::log::throttle log{std::chrono::seconds{10}};
};

guard_state& guard = *new guard_state;

// Once a quarter of the deadline: forgets connections whose peer said
// hello, shuts down those past the deadline.
void watchdog() {
  for (;;) {
    auto limit = std::chrono::milliseconds{guard.deadline_ms.load()};
    std::this_thread::sleep_for(
        std::max(limit / 4, std::chrono::milliseconds{50}));
    auto now = clock_type::now();
    std::lock_guard<std::mutex> lock{guard.mutex};
    for (auto i = guard.pending.begin(); i != guard.pending.end();) {
      auto hello = guard.greeted.find(i->second.peer_endpoint);
      if (hello != guard.greeted.end()) {
        guard.greeted.erase(hello);
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
              "cluster connection cut off: no hello in time",
              {{"peer", resized::address_text(i->second.ends.peer,
                                              i->second.ends.peer_len)},
               {"deadline_ms", limit.count()},
               {"connections", count},
               {"log_every_s", guard.log.every_seconds()}});
      }
      i = guard.pending.erase(i);
    }
    for (auto i = guard.greeted.begin(); i != guard.greeted.end();)
      i = now - i->second > 2 * limit ? guard.greeted.erase(i) : std::next(i);
  }
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
          "cluster connection refused: too many without a hello",
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
                        size_t max_pending) {
  guard.deadline_ms = deadline.count();
  guard.max_pending = max_pending;
  guard.port = port;
  std::call_once(guard.watchdog_started,
                 [] { std::thread{watchdog}.detach(); });
}

void note_cluster_hello(const std::string& host, uint16_t port) {
  if (guard.port.load() == 0)
    return;
  std::lock_guard<std::mutex> lock{guard.mutex};
  guard.greeted[{host, port}] = clock_type::now();
}

} // namespace resized

extern "C" {

int accept(int fd, sockaddr* addr, socklen_t* len) {
  int s = libc_accept()(fd, addr, len);
  if (s >= 0 && guard.port.load() != 0)
    note_accepted(fd, s);
  return s;
}

} // extern "C"
