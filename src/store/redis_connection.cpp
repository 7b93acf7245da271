#include "store/redis_connection.hpp"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <utility>

#include <fmt/format.h>

#include "common/log.hpp"
#include "common/socket_ends.hpp"

namespace resized::store {

namespace {

timeval to_timeval(std::chrono::milliseconds ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

/// hiredis 0.14 writes with write(2) (here: the connect handshake, AUTH and
/// SELECT; commands go through send_frames): a write to a socket the peer has
/// reset raises SIGPIPE, which kills the process unless someone ignores it.
/// A library must not change the process' dispositions, so (as libpq does)
/// block SIGPIPE on this thread for the duration of the I/O and swallow one
/// that our write raised.
class sigpipe_guard {
public:
  sigpipe_guard() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
    sigset_t pending;
    sigemptyset(&pending);
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
  }
  ~sigpipe_guard() {
    int saved_errno = errno;
    if (!was_pending_) {
      sigset_t pending;
      sigemptyset(&pending);
      sigpending(&pending);
      if (sigismember(&pending, SIGPIPE) == 1) {
        timespec zero{0, 0};
        sigtimedwait(&pipe_, nullptr, &zero);
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
    errno = saved_errno;
  }
  sigpipe_guard(const sigpipe_guard&) = delete;
  sigpipe_guard& operator=(const sigpipe_guard&) = delete;

private:
  sigset_t pipe_;
  sigset_t old_;
  bool was_pending_ = false;
};

/// Makes the close of `fd` drop what it has not sent yet (SO_LINGER 0: a
/// reset). A command given up on after a timeout (a network that went
/// black) must not reach Redis later from the kernel's retransmissions,
/// after the writes made since on a new connection (a final record turned
/// back to open, an undone accept made again).
void discard_unsent(int fd) {
  linger now{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &now, sizeof now);
}

/// Runs one command synchronously on `ctx`; nullptr on I/O error.
reply_ptr run_one(redisContext* ctx, const command& cmd) {
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (auto arg : cmd) {
    argv.push_back(arg.data());
    lens.push_back(arg.size());
  }
  return reply_ptr{static_cast<redisReply*>(redisCommandArgv(
      ctx, static_cast<int>(argv.size()), argv.data(), lens.data()))};
}

/// Sends `cmds` as RESP frames straight from the callers' memory with
/// sendmsg (gathering), MSG_NOSIGNAL.
///
/// Why not hiredis' own writer: hiredis 0.14 formats every argument into a
/// new string, appends that to its output buffer (a second copy), and after
/// each partial write(2) moves the unsent rest to the front of the buffer.
/// A multi-MB input image written on accept cost two copies plus a memmove
/// per socket buffer's worth, all on fresh pages (bench/RESULTS.md). The
/// protocol side is small: "*<argc>\r\n", then "$<len>\r\n<bytes>\r\n" per
/// argument. Small arguments are copied into the framing; large ones are
/// sent from where they are. Replies are still read and parsed by hiredis.
/// Returns 0, or errno of the failed send (EAGAIN: the send timeout hit).
int send_frames(int fd, const std::vector<command>& cmds) {
  constexpr size_t inline_limit = 4096;
  struct piece {
    const char* external; // nullptr: bytes [offset, offset+size) of framing
    size_t offset;
    size_t size;
  };
  std::string framing;
  std::vector<piece> pieces;
  size_t framed_from = 0;
  auto close_framing = [&] {
    if (framing.size() > framed_from)
      pieces.push_back({nullptr, framed_from, framing.size() - framed_from});
    framed_from = framing.size();
  };
  for (const auto& cmd : cmds) {
    framing += fmt::format("*{}\r\n", cmd.size());
    for (auto arg : cmd) {
      framing += fmt::format("${}\r\n", arg.size());
      if (arg.size() <= inline_limit) {
        framing.append(arg.data(), arg.size());
      } else {
        close_framing();
        pieces.push_back({arg.data(), 0, arg.size()});
      }
      framing += "\r\n";
    }
  }
  close_framing();
  // iovecs only now: `framing` no longer reallocates.
  std::vector<iovec> iov;
  iov.reserve(pieces.size());
  for (const auto& p : pieces)
    iov.push_back(
        {const_cast<char*>(p.external ? p.external : framing.data() + p.offset),
         p.size});
  size_t first = 0;
  while (first < iov.size()) {
    msghdr msg{};
    msg.msg_iov = iov.data() + first;
    msg.msg_iovlen = std::min<size_t>(iov.size() - first, IOV_MAX);
    ssize_t sent = sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (sent < 0) {
      if (errno == EINTR)
        continue;
      return errno == EWOULDBLOCK ? EAGAIN : errno;
    }
    auto left = static_cast<size_t>(sent);
    while (first < iov.size() && left >= iov[first].iov_len)
      left -= iov[first++].iov_len;
    if (left > 0) {
      iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + left;
      iov[first].iov_len -= left;
    }
  }
  return 0;
}

} // namespace

std::string reply_text(const redisReply& reply) {
  switch (reply.type) {
  case REDIS_REPLY_STRING:
  case REDIS_REPLY_STATUS:
  case REDIS_REPLY_ERROR:
    return std::string{reply.str, reply.len};
  default:
    return {};
  }
}

redis_connection::redis_connection(redis_settings settings, bool quiet)
    : settings_(std::move(settings)), quiet_(quiet) {
  // Nothing to do until the first call: connecting is lazy.
}

failure redis_connection::error(std::string_view what) const {
  return failure{error_code::store_unavailable,
                 fmt::format("redis {}: {}",
                             endpoint_text(settings_.host, settings_.port),
                             what)};
}

failure redis_connection::drop(std::string_view during) {
  std::string reason = ctx_ && ctx_->err != 0 ? std::string{ctx_->errstr}
                                              : std::string{"unknown error"};
  if (!during.empty())
    reason = fmt::format("{}: {}", during, reason);
  ctx_.reset();
  last_error_ = error(reason);
  return last_error_;
}

namespace {

// Stamps the end of a call (however it returns): the watch measures idle
// time from there, so a call that timed out is not followed at once by a
// PING that waits as long again.
struct used_guard {
  std::chrono::steady_clock::time_point& at;
  ~used_guard() { at = std::chrono::steady_clock::now(); }
};

} // namespace

void redis_connection::note_reached() {
  auto was = std::exchange(link_, link::up);
  if (was != link::down || quiet_)
    return;
  std::chrono::duration<double> down =
      std::chrono::steady_clock::now() - down_since_;
  log::info("redis connection back",
            {{"redis", endpoint_text(settings_.host, settings_.port)},
             {"down_s", down.count(), 1}});
}

const failure& redis_connection::note_failed() {
  auto was = std::exchange(link_, link::down);
  if (was != link::down) {
    down_since_ = std::chrono::steady_clock::now();
    // At start-up (never reached yet) the owner says it will retry; this
    // is the news that a working store went away.
    if (was == link::up && !quiet_)
      log::warn("redis connection lost",
                {{"redis", endpoint_text(settings_.host, settings_.port)},
                 {"error", last_error_.message}});
  }
  if (hold_ && timed_out_ && !held_) {
    held_ = true;
    if (on_hold_)
      on_hold_();
  }
  return last_error_;
}

bool redis_connection::connect() {
  if (ctx_)
    return true;
  if (held_)
    return false;
  used_guard used{last_used_};
  if (!open()) {
    note_failed();
    return false;
  }
  // Only a reply says Redis is back: a server that hangs still accepts
  // connections (its kernel does), then lets the command time out.
  if (link_ == link::unknown)
    link_ = link::up;
  return true;
}

bool redis_connection::open() {
  sigpipe_guard guard;
  timed_out_ = false;
  errno = 0;
  ctx_.reset(redisConnectWithTimeout(settings_.host.c_str(), settings_.port,
                                     to_timeval(settings_.connect_timeout)));
  if (!ctx_) {
    last_error_ = error("cannot allocate a hiredis context");
    return false;
  }
  if (ctx_->err != 0) {
    // hiredis 0.14 sets ETIMEDOUT when its poll for the connect expires.
    timed_out_ = errno == ETIMEDOUT;
    drop("");
    return false;
  }
  if (redisSetTimeout(ctx_.get(), to_timeval(settings_.command_timeout)) !=
          REDIS_OK ||
      redisEnableKeepAlive(ctx_.get()) != REDIS_OK) {
    drop("socket options");
    return false;
  }
  // AUTH and SELECT: a refusal is a configuration problem, reported with
  // Redis' own words; the context is dropped so nothing runs half-set-up.
  auto handshake = [this](const command& cmd, std::string_view what) {
    errno = 0;
    auto reply = run_one(ctx_.get(), cmd);
    if (!reply) {
      timed_out_ = errno == EAGAIN || errno == EWOULDBLOCK; // as exchange()
      drop(what);
      return false;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
      ctx_.reset();
      last_error_ =
          error(fmt::format("{} failed: {}", what, reply_text(*reply)));
      return false;
    }
    return true;
  };
  if (!settings_.password.empty() &&
      !handshake({"AUTH", settings_.password}, "AUTH"))
    return false;
  if (settings_.db != 0) {
    auto db = std::to_string(settings_.db);
    if (!handshake({"SELECT", db}, "SELECT"))
      return false;
  }
  return true;
}

outcome<bool> redis_connection::subscribe(std::string_view channel) {
  subscribed_ = false;
  auto replies = run({{"SUBSCRIBE", channel}});
  if (!replies)
    return std::move(replies).error();
  const auto& r = *replies.value().front();
  if (r.type != REDIS_REPLY_ARRAY || r.elements < 1 ||
      reply_text(*r.element[0]) != "subscribe") {
    ctx_.reset();
    return error(fmt::format("SUBSCRIBE failed: {}", reply_text(r)));
  }
  subscribed_ = true;
  return true;
}

// hiredis 0.14's blocking redisGetReply cannot wait with a deadline and
// keep the connection (a timeout leaves the context unusable): poll(2) the
// socket, let hiredis read what is there, and take every whole reply.
outcome<std::vector<std::string>>
redis_connection::next_messages(std::chrono::milliseconds wait) {
  std::vector<std::string> out;
  if (!subscribed())
    return error("not subscribed");
  auto take = [&]() -> bool {
    for (;;) {
      void* raw = nullptr;
      if (redisGetReplyFromReader(ctx_.get(), &raw) != REDIS_OK)
        return false;
      if (raw == nullptr)
        return true;
      reply_ptr r{static_cast<redisReply*>(raw)};
      // ["message", channel, payload]; confirmations and pongs are not.
      if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
          reply_text(*r->element[0]) == "message")
        out.push_back(reply_text(*r->element[2]));
    }
  };
  if (!take()) {
    subscribed_ = false;
    return drop("reading a message");
  }
  if (!out.empty())
    return out;
  pollfd pfd{ctx_->fd, POLLIN, 0};
  int ready = ::poll(&pfd, 1, static_cast<int>(wait.count()));
  if (ready < 0 && errno == EINTR)
    return out;
  if (ready == 0)
    return out;
  if (ready < 0 || redisBufferRead(ctx_.get()) != REDIS_OK || !take()) {
    subscribed_ = false;
    if (ctx_ && ctx_->err == 0) {
      ctx_->err = REDIS_ERR_IO;
      std::snprintf(ctx_->errstr, sizeof(ctx_->errstr), "%s",
                    ready < 0 ? std::strerror(errno) : "connection closed");
    }
    return drop("reading a message");
  }
  return out;
}

redis_connection::io_result
redis_connection::exchange(const std::vector<command>& cmds,
                           std::vector<reply_ptr>& replies) {
  if (int err = send_frames(ctx_->fd, cmds); err != 0) {
    if (err == EAGAIN)
      return io_result::timed_out;
    // Reported like hiredis' own I/O errors (see drop()).
    ctx_->err = REDIS_ERR_IO;
    std::snprintf(ctx_->errstr, sizeof(ctx_->errstr), "%s", std::strerror(err));
    return io_result::failed;
  }
  // hiredis' output buffer is empty: redisGetReply only reads.
  for (size_t i = 0; i < cmds.size(); ++i) {
    void* raw = nullptr;
    errno = 0;
    if (redisGetReply(ctx_.get(), &raw) != REDIS_OK) {
      bool timed_out = ctx_->err == REDIS_ERR_IO &&
                       (errno == EAGAIN || errno == EWOULDBLOCK);
      return timed_out ? io_result::timed_out : io_result::failed;
    }
    replies.emplace_back(static_cast<redisReply*>(raw));
  }
  return io_result::ok;
}

outcome<std::vector<reply_ptr>>
redis_connection::run(const std::vector<command>& cmds) {
  unsent_ = true;
  if (held_)
    return last_error_; // no I/O: not a use either
  used_guard used{last_used_};
  for (int attempt = 0;; ++attempt) {
    bool reused = connected();
    if (!connect())
      return last_error_; // unsent only if no attempt before this one
    unsent_ = false;
    std::vector<reply_ptr> replies;
    // No SIGPIPE here: commands go out with send_frames (MSG_NOSIGNAL),
    // hiredis only reads.
    auto result = exchange(cmds, replies);
    if (result == io_result::ok) {
      note_reached();
      return replies;
    }
    if (result == io_result::timed_out) {
      timed_out_ = true;
      discard_unsent(ctx_->fd);
      ctx_.reset();
      last_error_ = error(fmt::format("no reply within {} ms",
                                      settings_.command_timeout.count()));
      return note_failed();
    }
    timed_out_ = false;
    drop("");
    if (!reused || attempt > 0)
      return note_failed();
    // A connection from an earlier call died meanwhile: reconnect once.
  }
}

} // namespace resized::store
