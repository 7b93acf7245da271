// `Expect: 100-continue` for RESTinio 0.6, which never sends the interim
// "100 Continue": a client that asks for it (curl does for every body over
// 1 MiB) waits for it before sending the body, up to its own timeout (curl:
// one second), so every large upload started a second late.
//
// Written here because no packaged library does it: RESTinio 0.6 has no hook
// between a request's header block and its body. It does let the server
// choose its socket type (traits::stream_socket_t, the hook its own TLS
// support uses), so `continue_socket` wraps the TCP socket: every byte
// RESTinio reads passes through a `continue_tracker`, which runs the same
// HTTP parser RESTinio parses them with (libhttp-parser) to find the end of
// each request's header block, and when that block asked for 100-continue
// and announced a body, the socket writes "HTTP/1.1 100 Continue" before
// RESTinio sees the bytes. The interim answer is only written while none of
// RESTinio's writes is under way (asio serialises the connection's reads and
// writes on its strand, and a response is written by one composed write), so
// it never lands inside a response; a 1xx before an earlier request's final
// answer is allowed (RFC 9110 §15.2: clients must accept unexpected 1xx).
//
// The same parse also tells when a request breaks one of RESTinio's limits
// (incoming_http_msg_limits: body, URL, header field sizes and count), which
// RESTinio meets by dropping the connection without a word: the socket
// answers first — 413 payload_too_large (instead of "100 Continue" when the
// client asked, so it never sends the body; for a chunked body, which
// announces no length, as soon as the bytes received pass the limit), 414
// uri_too_long, 431
// headers_too_large — with the same limits and the same comparisons as
// RESTinio's parser callbacks, so nothing RESTinio accepts is refused.
// With CORS on (http.cors-origins) these answers carry the CORS fields the
// server's own answers do, for the request's Origin when the refusal came
// after it was read (a 413 does, the header block being whole): a page on
// a listed origin reads the 413 instead of a network error.
//
// The socket is also where a connection starts (RESTinio calls
// prepare_connection_and_start_read on it before its first read): a
// connection from a client address that holds its share of connections
// already (http.max-connections-per-client, connection_limit.hpp) is
// answered 503 too_many_connections there and closed the way refusals are.
// (RESTinio's own IP-blocker hook would close it unanswered, and in 0.6.16
// its refusal leaks a slot of the max-connections count: the acceptor
// counts an accept as under way until a connection is made of it, and none
// is for a refused socket.)
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <list>
#include <memory>
#include <string>
#include <vector>

#include <http_parser.h>
#include <restinio/asio_include.hpp>
#include <restinio/tls_fwd.hpp>

#include "common/cors.hpp"
#include "http/connection_limit.hpp"
#include "http/upload_budget.hpp"

namespace resized::http {

/// RESTinio's incoming_http_msg_limits as the tracker checks them (0: none).
struct request_limits {
  uint64_t body = 0;      // Content-Length, or body bytes read, over this: 413
  size_t url = 0;         // request target over this: 414
  size_t field_name = 0;  // a header name over this: 431
  size_t field_value = 0; // a header value over this: 431 (RESTinio
                          // refuses one of its limit or more: give it
                          // this + 1)
  size_t field_count = 0; // more header fields than this: 431
  // A chunked body in more chunks than this: 413. RESTinio has no such
  // limit, and keeps a record of every chunk (16 bytes) however small:
  // a body of one-byte chunks would cost 16 times its size (server.cpp).
  uint64_t chunks = 0;
  // A declared Content-Length over this: 413 at the header block, before
  // a byte of the body (and instead of "100 Continue"); 0: `body`.
  uint64_t declared_body = 0;
};

/// The `route` label (metrics, access log) of a request the socket refused
/// before RESTinio routed it.
inline constexpr const char* refused_route = "(refused before routing)";

/// A request's head (target, header names and values) over this: 431.
/// libhttp-parser fails a head over 80 KiB (HTTP_MAX_HEADER_SIZE, counting
/// the line ends and separators too) as a parse error, and RESTinio closes
/// the connection without an answer: whatever the per-field limits allow,
/// the tracker refuses first, with room for 100 fields' separators.
inline constexpr size_t max_head_bytes = 64 * 1024;

/// Follows the requests of one connection's incoming byte stream.
class continue_tracker {
public:
  /// The limit that a request broke, if any. `chunks` is the tracker's
  /// own (request_limits::chunks): RESTinio would read on.
  /// `unauthorized` too: with API keys set, a request announced a body
  /// without a valid key (RESTinio would read the whole body before the
  /// handler refused it).
  /// And `malformed`: what RFC 9112 says to refuse and libhttp-parser (as
  /// RESTinio uses it) takes: blanks in a header field name
  /// ("Content-Length : 5" is obeyed), Transfer-Encoding on HTTP/1.0, a CR
  /// in the framing not followed by LF (the byte after it is taken for the
  /// LF), a chunk's data not followed by CRLF (any two bytes are skipped).
  /// A proxy in front that forwards such a request as it is may frame it
  /// otherwise (request smuggling). And an HTTP/1.1 request without a
  /// Host field, with more than one, or with one that is not host[:port]
  /// (RFC 9112 §3.2).
  /// And `busy`: a body that does not fit in the node's upload budget
  /// (upload_budget.hpp), at its header block (its Content-Length does not
  /// fit now) or as its bytes arrive.
  /// And what libhttp-parser cannot parse, which RESTinio meets by closing
  /// the connection unanswered: `unknown_method` (a method it does not
  /// know: 501), `unparsable` (any other parse error: 400; which one in
  /// parse_error()). Not a connection's bytes after a request that ended
  /// it ("Connection: close").
  enum class refusal {
    none,
    body,
    url,
    headers,
    chunks,
    unauthorized,
    malformed,
    busy,
    unknown_method,
    unparsable
  };

  /// `body_limit`: the most body bytes the server reads (0 = no limit).
  explicit continue_tracker(uint64_t body_limit = 0);
  /// `api_keys` (null or empty: auth off) must outlive the tracker.
  /// `budget` (null: none): every body byte read is taken from it, and
  /// given back when the body is whole or the tracker ends.
  explicit continue_tracker(const request_limits& limits,
                            const std::vector<std::string>* api_keys = nullptr,
                            std::shared_ptr<upload_budget> budget = nullptr);
  ~continue_tracker();
  continue_tracker(const continue_tracker&) = delete;
  continue_tracker& operator=(const continue_tracker&) = delete;

  /// Feeds the next received bytes; true when a request whose header block
  /// ended in them asked `Expect: 100-continue` (HTTP/1.1, a body announced
  /// by Content-Length > 0 or chunked transfer coding). After a parse error
  /// or a protocol upgrade the tracker stops (RESTinio answers or closes
  /// those connections itself) and always answers false.
  bool feed(const char* data, size_t size);

  /// True once a header block announced a Content-Length over the body
  /// limit (no interim answer is due then, and the tracker stops), or a
  /// chunked body's bytes passed it.
  bool too_large() const { return refused_ == refusal::body; }
  /// Which limit a request broke (the tracker stops there), or none.
  refusal refused() const { return refused_; }
  /// Whether RESTinio's own parser refuses the same request (and closes
  /// the connection after the answers before it): its own limits and
  /// parse errors. Every other refusal is the tracker's alone (the 64 KiB
  /// head, chunk count, key, framing, upload budget): RESTinio would read
  /// and handle the request, so it must be stopped.
  bool restinio_refuses_too() const;
  /// Whether the tracker stopped (a limit, a parse error, an upgrade).
  bool stopped() const { return stopped_; }
  /// Whether the refused request came after another request that ended in
  /// the same bytes fed: pipelined behind a request RESTinio has not
  /// answered yet (it reads a connection's next request only once the one
  /// before is answered, max_pipelined_requests 1), so the refusal must
  /// wait for that answer.
  bool refused_behind() const { return refused_behind_; }
  /// The Content-Length that was too large, or for a chunked body the
  /// bytes of it received when they passed the limit. For `busy`: the
  /// Content-Length refused at the header block, or the body bytes read
  /// when the next ones did not fit (then `busy_midway()`).
  uint64_t announced() const { return announced_; }
  bool busy_midway() const { return busy_midway_; }
  /// The body bytes of the current request taken from the budget.
  uint64_t budget_held() const { return held_; }
  /// Whether the body that was too large was chunked (no length announced).
  bool chunked() const { return chunked_; }
  /// Whether the request refused as unauthorized presented a key at all.
  bool key_presented() const { return key_presented_; }
  /// Why a request was refused as malformed.
  const char* malformed_why() const { return malformed_why_; }
  /// The parse error of an `unparsable` request (libhttp-parser's words).
  const char* parse_error() const;
  /// The current request's method ("GET", "HEAD"...) once read, "-" before
  /// (or when it is not one libhttp-parser knows).
  const char* method() const;
  /// Whether a request has begun and not ended (its bytes are arriving).
  bool in_request() const { return in_request_; }
  /// Whether a request has begun and its header block has not ended.
  bool in_head() const { return in_request_ && !head_complete_; }
  /// Whether the current request is a HEAD request.
  bool head() const { return method_known_ && parser_.method == HTTP_HEAD; }
  /// The first `kept_target_bytes` of the current request's target, and
  /// how many bytes of it were read.
  const std::string& target() const { return target_; }
  size_t target_bytes() const { return url_bytes_; }
  /// When the current request's first byte was read.
  std::chrono::steady_clock::time_point started() const { return started_; }
  /// The current request's Origin field, once read whole ("" if none, or
  /// if longer than max_origin_bytes: no such origin is ever allowed).
  const std::string& origin() const { return origin_; }
  static constexpr size_t max_origin_bytes = 512;
  /// The current request's X-Request-Id, once read whole and if usable
  /// (usable_request_id); "" otherwise.
  const std::string& request_id() const { return request_id_; }
  /// Target bytes kept for the access log (its path is clipped there too).
  static constexpr size_t kept_target_bytes = 200;
  /// The longest Host value taken (a longer one is refused as malformed).
  static constexpr size_t max_host_bytes = 1024;

private:
  static int on_message_begin(http_parser* p);
  static int on_url(http_parser* p, const char* at, size_t n);
  static int on_header_field(http_parser* p, const char* at, size_t n);
  static int on_header_value(http_parser* p, const char* at, size_t n);
  static int on_headers_complete(http_parser* p);
  static int on_body(http_parser* p, const char* at, size_t n);
  static int on_chunk_header(http_parser* p);
  static int on_message_complete(http_parser* p);
  // Returns 1 (stop) when the header just read makes the request
  // malformed.
  int header_done();
  bool valid_key();      // of the current request (sets key_presented_)
  void give_back_body(); // the budget held for the current body
  static int on_body_ahead(http_parser* p, const char* at, size_t n);
  // The offset of the first line end among the framing bytes of the
  // first `seen` of `data` (every byte no body run holds) that
  // libhttp-parser takes leniently and RFC 9112 refuses, or SIZE_MAX.
  size_t bad_line_end(const char* data, size_t seen);
  bool framing_byte(char c); // false: a bad line end (why in ..._why_)

  http_parser parser_{};
  http_parser_settings settings_{};
  http_parser_settings ahead_settings_{}; // on_body_ahead only
  // The header being read, cut at 32 bytes: only "Expect: 100-continue"
  // matters, and both may arrive split over several reads.
  std::string field_, value_;
  // The Origin field's value as it arrives, then whole.
  std::string origin_value_, origin_;
  // The first X-Request-Id field's value as it arrives, then whole.
  std::string request_id_value_, request_id_;
  int request_ids_ = 0;
  // The first Authorization and X-API-Key fields' values, as RESTinio
  // keeps them (the handler reads the first of each), up to
  // key_field_bytes_; longer ones hold no configured key.
  const std::vector<std::string>* api_keys_ = nullptr;
  size_t key_field_bytes_ = 0;
  std::string authorization_, x_api_key_;
  bool has_authorization_ = false, has_x_api_key_ = false;
  std::string* key_value_ = nullptr; // the one being read, if any
  bool key_presented_ = false;
  const char* malformed_why_ = "";
  bool in_value_ = false;
  bool in_request_ = false;
  bool head_complete_ = false;
  bool method_known_ = false; // of the current request (its target began)
  bool expects_continue_ = false;
  bool due_ = false;
  bool stopped_ = false;
  refusal refused_ = refusal::none;
  request_limits limits_;
  uint64_t announced_ = 0;
  bool chunked_ = false;
  // Body bytes of the current request, as RESTinio counts them (the data
  // of all chunks of a chunked body).
  uint64_t body_bytes_ = 0;
  uint64_t chunks_ = 0; // of the current request's chunked body
  std::shared_ptr<upload_budget> budget_;
  uint64_t held_ = 0; // taken from budget_ for the current body
  bool busy_midway_ = false;
  // Requests that ended in the bytes of the current feed().
  size_t ended_in_feed_ = 0;
  bool refused_behind_ = false;
  std::string target_;
  // The Host fields of the current request, and the value of the one
  // being read (up to max_host_bytes + 1).
  size_t hosts_ = 0;
  std::string host_value_;
  // The body bytes of the current feed (as the parser's copy running
  // ahead finds them), and whether a run ends a chunk's data: the framing
  // bytes are the others.
  struct body_run {
    const char* at;
    size_t size;
    bool ends_chunk;
  };
  std::vector<body_run> body_runs_;
  // What the next framing byte must be: LF after a CR, CR after a chunk's
  // data (across feeds: a line end may arrive split).
  bool lf_due_ = false, cr_due_ = false;
  const char* bad_line_end_why_ = "";
  std::chrono::steady_clock::time_point started_{};
  // Sizes so far in the current request, as RESTinio counts them, and the
  // head's in all (max_head_bytes).
  size_t url_bytes_ = 0, name_bytes_ = 0, value_bytes_ = 0, fields_ = 0;
  size_t head_bytes_ = 0;
};

/// RESTinio's stream socket (traits::stream_socket_t): a plain TCP socket
/// that answers `Expect: 100-continue` (see the top of this file).
class continue_socket {
public:
  using socket_type = asio::ip::tcp::socket;
  using executor_type = socket_type::executor_type;

  explicit continue_socket(asio::io_context& io);
  /// RESTinio's limits, for every socket made from now on (RESTinio
  /// constructs them; it has no way to pass them settings), and the body
  /// limit the 413's message names (`stated_body_limit`).
  static void set_limits(const request_limits& limits,
                         uint64_t stated_body_limit);
  /// http.cors-origins, for the CORS fields of the answers written here.
  static void set_cors(const cors_policy& policy);
  /// The upload budget (http.max-receiving-bytes) every socket made from
  /// now on takes its bodies' bytes from (null: none).
  static void set_upload_budget(std::shared_ptr<upload_budget> budget);
  /// http.read-timeout, which the 408 of a request cut off names.
  static void set_read_timeout(std::chrono::seconds timeout);
  /// auth.api-keys (empty: auth off): a request that announces a body
  /// without one of them is answered 401 before its body is read.
  static void set_api_keys(std::vector<std::string> keys);
  /// The per-client connection cap every connection made from now on
  /// asks (null: none), and the Retry-After seconds of its 503.
  static void set_connection_limit(std::shared_ptr<connection_limit> limit,
                                   int retry_after);
  /// Connection `id` on this socket is starting: true when its client may
  /// have one more; else the socket has written 503 too_many_connections
  /// and is to be closed (as a refused one: lingering).
  bool admit(uint64_t id);

  /// While the node holds http.max-connections (acceptor_full()), the
  /// server calls this a few times a second: up to `most` of the admitted
  /// connections that are stalled at `now`, the longest quiet first, are
  /// closed, to make room for connections that may be waiting to be
  /// accepted (the acceptor cannot tell). Stalled: RESTinio waits for its
  /// bytes (no answer being written or awaited) and none came for
  /// shed_quiet, or its request's header block began shed_slow_head ago
  /// and is not whole. A connection idle between requests is closed as a
  /// keep-alive connection may be (RFC 9112 §9.3); one inside a request is
  /// answered 408 request_timeout first. Returns how many it closes. Each
  /// is closed on its own strand, after its state is checked again there.
  static size_t shed_stalled(std::chrono::steady_clock::time_point now,
                             size_t most);
  continue_socket(const continue_socket&) = delete;
  continue_socket& operator=(const continue_socket&) = delete;
  // RESTinio's acceptor moves each accepted socket out and accepts the next
  // connection on the moved-from one: it is left with a fresh socket.
  continue_socket(continue_socket&& other);
  continue_socket& operator=(continue_socket&& other);

  // The state is shared with the callbacks of the reads and writes under
  // way: a refused connection's socket is handed to its drain (linger())
  // while RESTinio's operations on it still complete (aborted), and their
  // callbacks must find the state they started with.
  socket_type::lowest_layer_type& lowest_layer() {
    return state_->socket.lowest_layer();
  }
  const socket_type::lowest_layer_type& lowest_layer() const {
    return state_->socket.lowest_layer();
  }
  executor_type get_executor() { return state_->socket.get_executor(); }
  auto remote_endpoint() const { return state_->socket.remote_endpoint(); }
  bool is_open() const { return state_->socket.is_open(); }
  template <typename... Args>
  void cancel(Args&&... args) {
    state_->socket.cancel(std::forward<Args>(args)...);
  }
  // After a refusal (413, 414, 431) RESTinio closes the connection while
  // the client may still be sending the request it refused. Closing a
  // socket with unread bytes resets the connection (RST): a client that
  // writes its whole body before reading (Python's http.client and
  // requests, most simple clients) then fails with "broken pipe" or
  // "connection reset" and never reads the answer. So a refused connection
  // is closed the way web servers do it (nginx's lingering close): only the
  // sending side is shut down, and the rest is read and thrown away until
  // the client closes, for at most `linger_limit` (see linger()).
  // A refusal that had to wait for an earlier request's answer is written
  // here: RESTinio shuts the connection down when its own parser reaches
  // the refused request, so after that answer (unless it is still writing
  // one, cut off by a timeout: then the refusal would land inside it).
  void shutdown(socket_type::shutdown_type what, asio::error_code& ec) {
    state_->answer_cut_off_request();
    state_->write_waiting_answer();
    state_->socket.shutdown(state_->refused ? socket_type::shutdown_send : what,
                            ec);
  }
  void close() {
    asio::error_code ec;
    close(ec);
    if (ec)
      throw asio::system_error(ec);
  }
  void close(asio::error_code& ec);

  template <typename Buffers, typename Handler>
  void async_read_some(const Buffers& buffers, Handler&& handler) {
    // RESTinio reads into one buffer; the tracker sees what arrived there.
    asio::mutable_buffer first = *asio::buffer_sequence_begin(buffers);
    auto ex = asio::get_associated_executor(handler, get_executor());
    state_->reading = true;
    state_->note_executor(ex);
    state_->socket.async_read_some(
        buffers,
        asio::bind_executor(
            ex, [st = state_, first, h = std::forward<Handler>(handler)](
                    const asio::error_code& ec, size_t n) mutable {
              st->reading = false;
              if (st->shed) {
                // Closed to make room (shed_stalled): RESTinio ends it.
                h(asio::error::connection_aborted, 0);
                return;
              }
              if (!ec && n > 0 &&
                  st->received(static_cast<const char*>(first.data()), n)) {
                // A limit RESTinio does not know: it ends the
                // connection as if the client had gone.
                h(asio::error::connection_aborted, 0);
                return;
              }
              h(ec, n);
            }));
  }

  template <typename Buffers, typename Handler>
  void async_write_some(const Buffers& buffers, Handler&& handler) {
    auto ex = asio::get_associated_executor(handler, get_executor());
    state_->writing = true;
    state_->socket.async_write_some(
        buffers, asio::bind_executor(
                     ex, [st = state_, h = std::forward<Handler>(handler)](
                             const asio::error_code& ec, size_t n) mutable {
                       st->writing = false;
                       st->quiet_since = now_ns();
                       ++st->writes_done;
                       h(ec, n);
                     }));
  }

private:
  static int64_t ns_of(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               t.time_since_epoch())
        .count();
  }
  static int64_t now_ns() { return ns_of(std::chrono::steady_clock::now()); }

  struct state {
    explicit state(asio::io_context& io);
    ~state();
    socket_type socket;
    continue_tracker tracker;
    // Read without the strand by shed_stalled, hence atomic.
    std::atomic<bool> writing{false}; // one of RESTinio's writes is under way
    std::atomic<bool> reading{false}; // one of RESTinio's reads is under way
    // Since when no bytes arrived and none were written (steady clock, ns).
    std::atomic<int64_t> quiet_since{now_ns()};
    // When the current request's header block began, while it is not whole
    // (0: none).
    std::atomic<int64_t> head_since{0};
    std::atomic<bool> shed{false}; // closed to make room: end RESTinio's read
    // The executor of RESTinio's reads (the connection's strand), for
    // shed_stalled; set at the first read, under the registry's lock.
    asio::any_io_executor strand;
    bool has_strand = false;
    // Its entry among the admitted connections (shed_stalled's registry).
    std::list<std::weak_ptr<state>>::iterator entry;
    bool enlisted = false;
    void note_executor(const asio::any_io_executor& ex);
    // On the strand: closes the connection if it is still stalled.
    void shed_if_stalled(int64_t now);
    bool refused = false; // a refusal was written, or waits (below)
    // A refusal waiting for the answer to a request before it, written at
    // shutdown (see shutdown()) if RESTinio wrote since (that answer): a
    // shutdown with no write since is a connection cut off before it.
    std::string waiting_answer;
    uint64_t writes_done = 0;       // RESTinio's writes completed
    uint64_t writes_at_waiting = 0; // ... when waiting_answer was set
    /// Feeds the tracker and writes what is due; true when RESTinio must
    /// be stopped (a refusal only the tracker makes: see
    /// continue_tracker::restinio_refuses_too).
    bool received(const char* data, size_t size);
    void write_waiting_answer();
    // At RESTinio's shutdown of the connection: a request cut off while
    // its bytes were arriving is answered 408 (see the definition).
    void answer_cut_off_request();
  };
  /// Reads and drops what a refused connection still sends, then closes it.
  static void linger(std::shared_ptr<state> st, asio::io_context& io);
  /// Whether `st` is stalled at `now` (see shed_stalled).
  static bool stalled(const state& st, int64_t now);
  static std::list<std::weak_ptr<state>>& registry();
  /// Adds this socket's connection to the registry (admit()).
  void enlist();
  template <class Rep, class Period>
  static int64_t ns_of_duration(std::chrono::duration<Rep, Period> d) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
  }
  asio::io_context* io_;
  std::shared_ptr<state> state_;
};

/// How long a refused connection is drained before it is closed anyway, and
/// how many are drained at once (beyond that they are closed at once).
inline constexpr std::chrono::seconds linger_limit{5};
inline constexpr int max_lingering = 64;

/// When the node holds http.max-connections, a connection that sent
/// nothing for this long while RESTinio waited for its bytes is closed to
/// make room (continue_socket::shed_stalled)...
inline constexpr std::chrono::seconds shed_quiet{2};
/// ... and so is one whose request's header block began this long ago and
/// is not whole (a client sending it a byte at a time: "slowloris").
inline constexpr std::chrono::seconds shed_slow_head{10};

// RESTinio's connection calls these two for its socket type, unqualified
// (found here by argument-dependent lookup): a plain TCP connection needs no
// handshake and is no TLS socket.
// A connection over its client's share is failed before its first read:
// RESTinio closes it (and logs the error, at debug: server.cpp).
template <typename Connection, typename StartRead, typename Failed>
void prepare_connection_and_start_read(continue_socket& socket,
                                       Connection& connection,
                                       StartRead start_read, Failed failed) {
  if (socket.admit(connection.connection_id()))
    start_read();
  else
    failed(asio::error::make_error_code(asio::error::connection_refused));
}
inline restinio::tls_socket_t*
make_tls_socket_pointer_for_state_listener(continue_socket&) noexcept {
  return nullptr;
}

} // namespace resized::http
