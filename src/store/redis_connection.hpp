// One blocking hiredis connection (hiredis 0.14 API) with its handles in
// RAII owners, hiredis errors mapped once to `store_unavailable`, and the
// reconnect policy. Internal to src/store: task_store is the public face.
//
// States:
//
//   disconnected ──connect() ok──▶ connected
//        ▲                             │
//        └──── I/O error, EOF, ────────┘
//              protocol error, timeout
//
// After any I/O error the context is dropped (hiredis leaves it unusable);
// the next call reconnects. `run` retries once on a *reused* connection
// that turned out dead (e.g. Redis restarted since the last call), never on
// a fresh one or after a timeout, so an outage costs one connect attempt.
//
// Redis' availability, as the calls find it, is logged on its changes only
// (not per failed call or retry): `redis connection lost` (warn, with the
// first error) when a call fails after Redis was reachable, `redis
// connection back` (info, with how long it was down) at the first reply
// after that (a connection alone proves nothing: a hung server accepts it).
// A connection made `quiet` logs neither (a probe beside a connection that
// does).
//
// Holding (off unless `hold_after_timeouts` is called): a call that times
// out (a hung server, a network black hole: the connect or the reply does
// not come within its timeout) puts the connection on hold, and while held
// every call fails at once with that failure, without touching the network,
// until `release()`:
//
//   connected ──a call times out──▶ held ──release()──▶ disconnected
//                                (calls fail at once)  (next call connects)
//
// For an owner that must not wait out those timeouts call after call: it
// learns from a probe elsewhere when Redis answers again, then releases. A
// refusal (Redis stopped, the port closed) fails at once anyway: it holds
// nothing, and the next call tries again and finds Redis back at once.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <hiredis/hiredis.h>

#include "common/outcome.hpp"
#include "store/task_store.hpp"

namespace resized::store {

struct context_deleter {
  void operator()(redisContext* ctx) const noexcept {
    if (ctx != nullptr)
      redisFree(ctx);
  }
};

struct reply_deleter {
  void operator()(redisReply* reply) const noexcept {
    if (reply != nullptr)
      freeReplyObject(reply);
  }
};

using context_ptr = std::unique_ptr<redisContext, context_deleter>;
using reply_ptr = std::unique_ptr<redisReply, reply_deleter>;

/// One command as binary-safe arguments (may contain NUL bytes). The viewed
/// bytes must outlive the `run` call.
using command = std::vector<std::string_view>;

class redis_connection {
public:
  explicit redis_connection(redis_settings settings, bool quiet = false);

  /// Connects (TCP, timeouts, keepalive, AUTH, SELECT) unless connected.
  /// On failure `last_error()` says why.
  bool connect();
  bool connected() const { return ctx_ != nullptr; }
  /// Since the last connect or run ended.
  std::chrono::steady_clock::duration idle_for() const {
    return std::chrono::steady_clock::now() - last_used_;
  }
  void disconnect() { ctx_.reset(); }

  /// Holds from now on after each timeout (see the top of this file);
  /// `on_hold` runs, inside the failing call, when a hold starts.
  void hold_after_timeouts(std::function<void()> on_hold) {
    hold_ = true;
    on_hold_ = std::move(on_hold);
  }
  /// Whether calls fail at once, awaiting `release()`.
  bool held() const { return held_; }
  /// Ends a hold: the next call connects and tries Redis again.
  void release() { held_ = false; }
  /// Whether the last run() failed before any byte of its commands left
  /// (held, or no connection could be made): Redis cannot have run them.
  bool last_run_unsent() const { return unsent_; }

  /// Why the last connect or run failed.
  const failure& last_error() const { return last_error_; }

  /// Sends `cmds` in one write and reads one reply per command
  /// (pipelining). Only idempotent commands: may send them twice (see the
  /// retry rule above). Redis error replies are returned as replies of type
  /// REDIS_REPLY_ERROR, not as failures.
  outcome<std::vector<reply_ptr>> run(const std::vector<command>& cmds);

  /// failure{store_unavailable, "redis <host>:<port>: <what>"}.
  failure error(std::string_view what) const;

  // -- subscriber mode (Redis pub/sub): after `subscribe` a connection takes
  // no other commands; a failure drops it, and `subscribe` starts again.
  /// Connects if needed and subscribes to `channel`.
  outcome<bool> subscribe(std::string_view channel);
  bool subscribed() const { return subscribed_ && connected(); }
  /// The payloads published to the subscribed channel, waiting up to `wait`
  /// for the first (none when nothing came).
  outcome<std::vector<std::string>>
  next_messages(std::chrono::milliseconds wait);

private:
  enum class io_result { ok, failed, timed_out };
  io_result exchange(const std::vector<command>& cmds,
                     std::vector<reply_ptr>& replies);
  /// Fails with the context's error and drops the context.
  failure drop(std::string_view during);
  bool open();
  /// Availability changes, logged once each (see the top of this file).
  void note_reached();
  const failure& note_failed();

  enum class link { unknown, up, down };
  redis_settings settings_;
  context_ptr ctx_;
  failure last_error_;
  link link_ = link::unknown;
  bool quiet_ = false;
  bool hold_ = false;
  bool held_ = false;
  bool unsent_ = false;    // see last_run_unsent()
  bool timed_out_ = false; // the last failure was a timeout
  bool subscribed_ = false;
  std::function<void()> on_hold_;
  std::chrono::steady_clock::time_point down_since_{};
  std::chrono::steady_clock::time_point last_used_{};
};

/// The text of a status, error or string reply ("" for other types).
std::string reply_text(const redisReply& reply);

} // namespace resized::store
