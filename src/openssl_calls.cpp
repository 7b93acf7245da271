// The four OpenSSL calls CAF 0.17's OpenSSL module makes on a connection
// (SSL_accept, SSL_connect, SSL_read, SSL_write), defined by resized's
// executable in front of libssl's.
//
// Why by hand: CAF's module (libcaf_openssl in Debian's libcaf-dev) never
// empties OpenSSL's per-thread error queue after a failed call: it reads
// the queue only inside its log statements, which Debian's build compiles
// out (CAF_LOG_LEVEL quiet). Every TLS connection of a node runs on CAF's
// one network thread, and SSL_get_error reports a queued error as the
// failure of whichever call comes next on that thread. So one refused
// handshake (a port scanner, a worker holding another CA's certificate)
// closed the next healthy connection to be read: a joined worker was
// "lost" and rejoined once per refused attempt. OpenSSL asks callers to
// clear the queue before each I/O call; these definitions do that and then
// call libssl's own (found with dlsym(RTLD_NEXT): the executable comes first
// in symbol lookup, so the module's calls land here). They also log a
// handshake that fails, with the peer and OpenSSL's reason, which CAF does
// not (throttled: a scanner could otherwise fill the log).
//
// This file is compiled into the executable itself (CMakeLists.txt), not
// into a layer library: the linker would leave out an archive member that
// only a shared library refers to.
#include "openssl_calls.hpp"

#include <dlfcn.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "common/log.hpp"
#include "common/socket_ends.hpp"

namespace {

/// libssl's definition of `name`, the one after the executable's.
template <class Fn>
Fn libssl(const char* name) {
  auto* fn = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, name));
  if (fn == nullptr) {
    resized::log::error("cannot find libssl's function", {{"name", name}});
    std::abort();
  }
  return fn;
}

/// "host:port" of the socket's peer, or "unknown".
std::string peer_of(const SSL* ssl) {
  resized::socket_ends ends;
  if (!resized::read_ends(SSL_get_fd(ssl), ends))
    return "unknown";
  return resized::address_text(ends.peer, ends.peer_len);
}

/// SSL_get_error for a handshake call's `ret` (SSL_ERROR_NONE when done).
int handshake_error(const SSL* ssl, int ret) {
  return ret == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl, ret);
}

bool in_progress(int err) {
  return err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE;
}

/// Said after a connecting node's handshake ends with the connection
/// closed: a plain API node cuts a TLS handshake off (cluster_guard.cpp).
constexpr const char* closed_during_handshake_hint =
    "a plain cluster port does so: is openssl.* set on both nodes? Else the "
    "API node may be restarting, or holding its most connections not joined "
    "yet";

/// Why the handshake on `ssl` failed with `err`, read from the queue
/// (left in place: the caller's SSL_get_error reads it next).
std::string handshake_failure(const SSL* ssl, int err, bool accepting) {
  auto verify = SSL_get_verify_result(ssl);
  if (verify != X509_V_OK)
    return fmt::format("the peer's certificate: {}",
                       X509_verify_cert_error_string(verify));
  if (auto code = ERR_peek_last_error(); code != 0)
    if (const char* reason = ERR_reason_error_string(code)) {
      // What OpenSSL says when the other end answers in anything but TLS
      // (a plain node's BASP), or, connecting, when it closes at once (a
      // plain API node cuts a TLS handshake off, cluster_guard.cpp): the
      // likely cause, in words.
      auto why = ERR_GET_LIB(code) == ERR_LIB_SSL ? ERR_GET_REASON(code) : 0;
      if (why == SSL_R_WRONG_VERSION_NUMBER)
        return fmt::format("{}: the peer does not speak TLS (set openssl.* "
                           "on both nodes, or on neither)",
                           reason);
      if (why == SSL_R_UNEXPECTED_EOF_WHILE_READING && !accepting)
        return fmt::format("{}: the API node closed the connection during "
                           "the handshake ({})",
                           reason, closed_during_handshake_hint);
      return reason;
    }
  if (err == SSL_ERROR_SYSCALL)
    return accepting ? std::string{"the connection closed during the handshake"}
                     : fmt::format("the connection closed during the "
                                   "handshake ({})",
                                   closed_during_handshake_hint);
  return "no reason given";
}

// State shared with the watchdog thread (detached, it runs until the
// process ends) is allocated once and never destroyed: static destructors
// at exit must not pull it from under that thread.
resized::log::throttle& handshake_log =
    *new resized::log::throttle{std::chrono::seconds{10}};

// -- the handshake deadline -----------------------------------------------
// Accepted handshakes not finished yet, by session. An entry leaves when its
// handshake ends (either way), when its session is freed, or when the
// watchdog cuts it off. The socket is identified by its peer as well as its
// descriptor: a descriptor closed and reused meanwhile is left alone.

struct pending_handshake {
  int fd = -1;
  resized::socket_ends ends;
  std::chrono::steady_clock::time_point since;
};

std::atomic<int64_t> deadline_ms{0};
std::mutex& pending_mutex = *new std::mutex;
std::unordered_map<const SSL*, pending_handshake>& pending =
    *new std::unordered_map<const SSL*, pending_handshake>;
std::once_flag watchdog_started;

// Once a quarter of the deadline, shuts down the sockets of handshakes
// past it. CAF's network thread then sees the connection end and closes it.
void watchdog() {
  for (;;) {
    auto limit = std::chrono::milliseconds{deadline_ms.load()};
    std::this_thread::sleep_for(
        std::max(limit / 4, std::chrono::milliseconds{50}));
    auto now = std::chrono::steady_clock::now();
    std::lock_guard<std::mutex> lock{pending_mutex};
    for (auto i = pending.begin(); i != pending.end();) {
      if (now - i->second.since < limit) {
        ++i;
        continue;
      }
      if (resized::same_ends(i->second.fd, i->second.ends)) {
        ::shutdown(i->second.fd, SHUT_RDWR);
        if (auto count = handshake_log.note(2, now); count > 0) {
          resized::log::warn(
              "cluster TLS handshake cut off: not finished in time",
              {{"peer", resized::address_text(i->second.ends.peer,
                                              i->second.ends.peer_len)},
               {"deadline_ms", limit.count()},
               {"failures", count},
               {"log_every_s", handshake_log.every_seconds()}});
        }
      }
      i = pending.erase(i);
    }
  }
}

// Called before each SSL_accept on `ssl`: the first one starts its clock.
void note_accepting(const SSL* ssl) {
  if (deadline_ms.load() <= 0)
    return;
  std::lock_guard<std::mutex> lock{pending_mutex};
  if (pending.count(ssl) != 0)
    return;
  pending_handshake p;
  p.fd = SSL_get_fd(ssl);
  if (!resized::read_ends(p.fd, p.ends))
    return;
  p.since = std::chrono::steady_clock::now();
  pending.emplace(ssl, p);
  std::call_once(watchdog_started, [] { std::thread{watchdog}.detach(); });
}

void forget_handshake(const SSL* ssl) {
  std::lock_guard<std::mutex> lock{pending_mutex};
  pending.erase(ssl);
}

/// Logs a failed handshake (`err` from handshake_error; not one done or
/// still in progress).
void note_handshake(const SSL* ssl, int err, bool accepting) {
  if (err == SSL_ERROR_NONE || in_progress(err))
    return;
  auto count = handshake_log.note(accepting ? 0 : 1,
                                  resized::log::throttle::clock::now());
  if (count == 0)
    return;
  resized::log::warn(accepting ? "cluster TLS handshake refused"
                               : "cluster TLS handshake failed",
                     {{"peer", peer_of(ssl)},
                      {"reason", handshake_failure(ssl, err, accepting)},
                      {"failures", count}, // since the last line of its kind
                      {"log_every_s", handshake_log.every_seconds()}});
}

} // namespace

extern "C" {

int SSL_accept(SSL* ssl) {
  static auto real = libssl<int (*)(SSL*)>("SSL_accept");
  note_accepting(ssl);
  ERR_clear_error();
  int ret = real(ssl);
  auto err = handshake_error(ssl, ret);
  note_handshake(ssl, err, true);
  if (!in_progress(err))
    forget_handshake(ssl); // finished, or failed
  return ret;
}

void SSL_free(SSL* ssl) {
  static auto real = libssl<void (*)(SSL*)>("SSL_free");
  forget_handshake(ssl);
  real(ssl);
}

int SSL_connect(SSL* ssl) {
  static auto real = libssl<int (*)(SSL*)>("SSL_connect");
  ERR_clear_error();
  int ret = real(ssl);
  note_handshake(ssl, handshake_error(ssl, ret), false);
  return ret;
}

int SSL_read(SSL* ssl, void* buf, int num) {
  static auto real = libssl<int (*)(SSL*, void*, int)>("SSL_read");
  ERR_clear_error();
  return real(ssl, buf, num);
}

int SSL_write(SSL* ssl, const void* buf, int num) {
  static auto real = libssl<int (*)(SSL*, const void*, int)>("SSL_write");
  ERR_clear_error();
  return real(ssl, buf, num);
}

} // extern "C"

void resized::set_tls_handshake_deadline(std::chrono::milliseconds deadline) {
  deadline_ms.store(deadline.count());
}
