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
#pragma once

#include <chrono>
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
  explicit redis_connection(redis_settings settings);

  /// Connects (TCP, timeouts, keepalive, AUTH, SELECT) unless connected.
  /// On failure `last_error()` says why.
  bool connect();
  bool connected() const { return ctx_ != nullptr; }
  /// Since the last connect or run ended.
  std::chrono::steady_clock::duration idle_for() const {
    return std::chrono::steady_clock::now() - last_used_;
  }
  void disconnect() { ctx_.reset(); }

  /// Why the last connect or run failed.
  const failure& last_error() const { return last_error_; }

  /// Sends `cmds` in one write and reads one reply per command
  /// (pipelining). Only idempotent commands: may send them twice (see the
  /// retry rule above). Redis error replies are returned as replies of type
  /// REDIS_REPLY_ERROR, not as failures.
  outcome<std::vector<reply_ptr>> run(const std::vector<command>& cmds);

  /// failure{store_unavailable, "redis <host>:<port>: <what>"}.
  failure error(std::string_view what) const;

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
  std::chrono::steady_clock::time_point down_since_{};
  std::chrono::steady_clock::time_point last_used_{};
};

/// The text of a status, error or string reply ("" for other types).
std::string reply_text(const redisReply& reply);

} // namespace resized::store
