#include "http/server.hpp"

#include <atomic>
#include <chrono>
#include <functional>
#include <stdexcept>
#include <string>

#include <restinio/all.hpp>

#include "common/client_identity.hpp"
#include "common/content_key.hpp"
#include "common/cors.hpp"
#include "common/log.hpp"
#include "common/memory.hpp"
#include "common/metrics.hpp"
#include "common/text.hpp"
#include "http/accept_limiter.hpp"
#include "http/assets.hpp"
#include "http/auth.hpp"
#include "http/connection_limit.hpp"
#include "http/expect_continue.hpp"
#include "http/metrics_page.hpp"
#include "http/request_decoding.hpp"
#include "http/responses.hpp"
#include "imaging/pipeline.hpp"
#include "imaging/png_text.hpp"

namespace resized::http {

namespace {

// The level of one of RESTinio's error lines. A parse error is the
// client's, and the socket layer has answered and logged it (400
// malformed_request, 501 method_not_implemented, or one of RESTinio's
// limits, "HPE_CB_*"; expect_continue.hpp), or it is bytes after a
// request that closed the connection: debug. Anyone can send one: at
// error level they would fill the error log. A "prepare
// connection error" is a connection the socket refused for its client's
// share of connections (expect_continue.hpp), which it logs itself: debug.
// A connection its client reset or left (ECONNRESET, EPIPE, ENOTCONN: a
// client that timed out, gave up a long poll or an upload, a TCP health
// check or a port scan, which reset right after connecting) is the
// client's doing, one line each: debug; so is one that closed inside its
// request's head (EOF on the read: a client that gave up, a probe that
// sent a byte). The rest (other socket errors,
// handler and write errors) stay errors. "Software caused connection
// abort" (ECONNABORTED) is what the socket hands RESTinio's read when it
// has refused a request itself, answered and logged it (a body without a
// key, malformed framing, too many chunks; expect_continue.hpp), or the
// network aborted the connection: debug too. (Each such 400 or 401 wrote
// an error line.)
log::level restinio_error_level(std::string_view line) {
  if (line.find("] prepare connection error: ") != std::string_view::npos)
    return log::level::debug;
  for (const char* client_gone :
       {"Connection reset by peer", "Broken pipe",
        "Transport endpoint is not connected",
        "Software caused connection abort", "read socket error: End of file"})
    if (line.find(client_gone) != std::string_view::npos)
      return log::level::debug;
  if (line.find("] parser error ") != std::string_view::npos)
    return log::level::debug;
  return log::level::error;
}

// RESTinio's logger slot, fed into the one logging adapter. RESTinio's info
// lines are per-connection chatter: they go to debug.
class restinio_logger {
public:
  template <class Builder>
  void trace(Builder&& mb) {
    if (log::enabled(log::level::trace))
      log::write(log::level::trace, mb());
  }
  template <class Builder>
  void info(Builder&& mb) {
    if (log::enabled(log::level::debug))
      log::write(log::level::debug, mb());
  }
  template <class Builder>
  void warn(Builder&& mb) {
    if (log::enabled(log::level::warn))
      log::write(log::level::warn, mb());
  }
  template <class Builder>
  void error(Builder&& mb) {
    if (!log::enabled(log::level::error))
      return;
    auto line = mb();
    auto lvl = restinio_error_level(line);
    if (log::enabled(lvl))
      log::write(lvl, line);
  }
};

using router_type = restinio::router::express_router_t<>;
using req_handle = restinio::request_handle_t;
using handling = restinio::request_handling_status_t;

// Set while RESTinio runs the request handler on this thread (see
// impl::finish: an answer ready then is written after the handler returns).
thread_local bool in_request_handler = false;

// The express router normalises a request's path (percent-decoding the
// unreserved characters) before matching, and throws when the decoded
// bytes are not UTF-8 (`/api/v1/images/%ff.jpg`) or an escape is malformed:
// RESTinio then drops the connection without an answer. The path is checked
// here first, with the router's own function, and such a request goes to
// `bad_path`.
class checked_router {
public:
  using bad_path_handler =
      std::function<handling(const req_handle&, std::string_view why)>;
  checked_router(std::unique_ptr<router_type> router, bad_path_handler bad)
      : router_{std::move(router)}, bad_path_{std::move(bad)} {}
  handling operator()(req_handle req) const {
    struct flag {
      flag() { in_request_handler = true; }
      ~flag() { in_request_handler = false; }
    } handling_now;
    try {
      (void)restinio::utils::uri_normalization::unreserved_chars::
          estimate_required_capacity(req->header().path());
    } catch (const std::exception& e) {
      return bad_path_(req, e.what());
    }
    return (*router_)(std::move(req));
  }

private:
  std::unique_ptr<router_type> router_;
  bad_path_handler bad_path_;
};

// RESTinio's connection-state-listener slot: a connection's close ends its
// count against its client (http.max-connections-per-client; the socket
// admits it, expect_continue.hpp).
class connection_closes {
public:
  explicit connection_closes(std::shared_ptr<connection_limit> limit)
      : limit_(std::move(limit)) {}

  void state_changed(const restinio::connection_state::notice_t& n) noexcept {
    const auto cause = n.cause();
    if (!restinio::get_if<restinio::connection_state::closed_t>(&cause))
      return;
    limit_->closed(n.connection_id());
  }

private:
  std::shared_ptr<connection_limit> limit_;
};

struct traits : restinio::default_traits_t {
  using stream_socket_t = continue_socket; // answers Expect: 100-continue
  // Selects resized's limiter of parallel connections (accept_limiter.hpp).
  using strand_t = accept_strand;
  using logger_t = restinio_logger;
  using request_handler_t = checked_router;
  using connection_state_listener_t = connection_closes;
  static constexpr bool use_connection_count_limiter = true;
};

using clock_type = std::chrono::steady_clock;

// Route templates: the `route` label of the HTTP metrics (low cardinality:
// never a raw path) and the access log's route= field.
namespace route {
constexpr const char* submit = "/api/v1/resize";
constexpr const char* status = "/api/v1/resize/:token";
// A long poll (?wait=N, N > 0): its duration is mostly the wait, kept apart
// so that the status route's histogram still shows service time.
constexpr const char* status_wait = "/api/v1/resize/:token?wait";
constexpr const char* image = "/api/v1/images/:name";
constexpr const char* healthz = "/healthz";
constexpr const char* readyz = "/readyz";
constexpr const char* metrics = "/metrics";
constexpr const char* cluster = "/api/v1/cluster";
constexpr const char* openapi = "/api/v1/openapi.json";
constexpr const char* page = "/";
constexpr const char* assets = "/static/:name";
constexpr const char* other = "other";
} // namespace route

// What every answer needs to know about its request, for headers, metrics
// and the access log line.
struct request_ctx {
  request_ctx(req_handle r, const char* route_name, std::string tok = {});
  req_handle req;
  std::string id; // X-Request-Id: the client's, or generated
  clock_type::time_point started;
  const char* route; // a route:: template
  std::string token; // for the access log, where the route has one
  bool head;         // HEAD: GET's status and headers, no body
  std::optional<size_t> key_index; // the API key presented (check_key)
};

std::string request_id_of(const req_handle& req) {
  auto given = req->header().opt_value_of("X-Request-Id");
  if (!given)
    return new_request_id();
  // Blanks around a field's value are not part of it (RFC 9110 §5.5), as
  // the socket's own refusals read it (expect_continue.cpp).
  auto id = trim_blanks(std::string_view{given->data(), given->size()});
  return usable_request_id(id) ? std::string{id} : new_request_id();
}

request_ctx::request_ctx(req_handle r, const char* route_name, std::string tok)
    : req(std::move(r)),
      id(request_id_of(req)),
      started(clock_type::now()),
      route(route_name),
      token(std::move(tok)),
      head(req->header().method() == restinio::http_method_head()) {}

} // namespace

struct server::impl {
  config::service_settings cfg;
  backend& api;
  asio::io_context io;
  restinio::running_server_handle_t<traits> running;
  uint64_t raw_body_limit = 0; // RESTinio's hard cap, see start()
  // Set when the server is being destroyed: late answers (replier fallbacks
  // run while pending timers are destroyed) must not touch RESTinio then.
  std::atomic<bool> closed{false};
  // Readiness as /readyz last found it: the error_code of its 503, none
  // when ready, -1 before the first probe. Only its changes are logged (a
  // load balancer polls a node that is not ready every second or so).
  std::atomic<int> readiness{-1};
  // 503 warnings (overload and outages: queue_full, no_workers,
  // store_unavailable, shutting_down) come in floods, one per refused
  // request: at most one line per code per 10 s, counting the refusals
  // since that code's last line. The access log and the metrics still have
  // each one.
  log::throttle refusal_log{std::chrono::seconds{10}};
  // The page at `/` (and /static/index.html): the embedded index.html
  // rendered by start() with this node's limits and writable formats; its
  // ETag is the rendered bytes'.
  std::string page_bytes;
  asset page;
  // Every shed_every while the node holds http.max-connections, up to a
  // sixteenth of them that are stalled are closed to make room
  // (continue_socket::shed_stalled). On a strand of its own: io has
  // several threads, and stop() cancels it from another.
  static constexpr std::chrono::milliseconds shed_every{250};
  asio::strand<asio::io_context::executor_type> shed_strand{
      asio::make_strand(io)};
  asio::steady_timer shed_timer{shed_strand};
  std::atomic<bool> shed_stopped{false};
  std::atomic<bool> shutting_down{false}; // begin_shutdown()

  impl(const config::service_settings& c, backend& b) : cfg(c), api(b) {}

  void shed_stalled_connections_every_while() {
    shed_timer.expires_after(shed_every);
    shed_timer.async_wait([this](const asio::error_code& ec) {
      if (ec || shed_stopped.load() || closed.load())
        return;
      if (acceptor_full())
        continue_socket::shed_stalled(
            clock_type::now(),
            std::max<size_t>(1, cfg.http.max_connections / 16));
      shed_stalled_connections_every_while();
    });
  }

  // Renders the page once: the config is validated and libvips probed
  // (imaging::can_write) before the server starts.
  void render_page_once() {
    const auto* tmpl = find_asset("index.html");
    if (tmpl == nullptr)
      throw std::logic_error("index.html is not embedded");
    page_facts facts;
    facts.max_dimension = cfg.limits.max_dimension;
    facts.max_upload_bytes = cfg.max_body_bytes;
    facts.max_poll_wait = static_cast<int>(cfg.http.max_poll_wait.count());
    using imaging::output_format;
    for (auto f : {output_format::jpeg, output_format::webp, output_format::png,
                   output_format::avif})
      if (imaging::can_write(f))
        facts.formats.push_back(f);
    page_bytes = render_page(tmpl->bytes, facts);
    page = make_asset(tmpl->name, page_bytes);
  }

  // An asset by name; the page's template is never served as it is.
  const asset* asset_named(std::string_view name) const {
    return name == page.name ? &page : find_asset(name);
  }

  // -- answering --------------------------------------------------------------

  static restinio::http_status_line_t status_line(int status) {
    return restinio::http_status_line_t{
        restinio::http_status_code_t{static_cast<uint16_t>(status)},
        reason_phrase(status)};
  }

  // Every answer ends here: one access log line and the HTTP metrics,
  // recorded just before the response is handed to RESTinio — after it, the
  // client could read the answer and scrape /metrics before they exist.
  // Error answers name their code (4xx included: which bad input it was).
  void access_log(const request_ctx& ctx, int status, size_t bytes,
                  std::string_view code = {}) {
    const auto& h = ctx.req->header();
    record_access(
        {ctx.id, h.method().c_str(), h.path(), h.path().size(), ctx.route,
         status, bytes,
         std::chrono::duration<double>(clock_type::now() - ctx.started).count(),
         code, ctx.token});
  }

  // Writes an answer: `add_headers(builder)` adds its header fields, `body`
  // is what GET sends. A HEAD request gets the same status and fields,
  // Content-Length the size of that body, and no body (RFC 9110, 9.3.2).
  // A 304 is sent alike: no body, and Content-Length the 200's (a 304 must
  // not send another one, RFC 9110 §8.6), so its `body` is the 200's.
  // RESTinio 0.6 knows nothing of HEAD: its default builder writes any body
  // it is given and sets Content-Length from it, so these answers go
  // through the user-controlled builder, where Content-Length is ours.
  template <class AddHeaders>
  void respond(const request_ctx& ctx, int status,
               restinio::writable_item_t body, AddHeaders add_headers,
               std::string_view code = {}) {
    auto size = body.size();
    bool no_body = ctx.head || status == 304;
    // bytes= in the log: the body bytes written (none for HEAD and 304)
    access_log(ctx, status, no_body ? 0 : size, code);
    if (no_body) {
      auto resp = ctx.req->create_response<restinio::user_controlled_output_t>(
          status_line(status));
      resp.append_header(restinio::http_field::date, http_date_now());
      add_headers(resp);
      add_cors(ctx, resp);
      resp.set_content_length(size);
      if (shutting_down.load())
        resp.connection_close();
      finish(ctx, status, std::move(resp));
      return;
    }
    auto resp = ctx.req->create_response(status_line(status));
    resp.append_header(restinio::http_field::date, http_date_now());
    add_headers(resp);
    add_cors(ctx, resp);
    resp.set_body(std::move(body));
    if (shutting_down.load())
      resp.connection_close();
    finish(ctx, status, std::move(resp));
  }

  // CORS (http.cors-origins, common/cors.hpp): a page of a listed origin may
  // read the answer, and the fields clients need (Location, Retry-After,
  // ETag, X-Request-Id). Vary: the answer differs by Origin, and a shared
  // cache (result images are cacheable for a year) must keep them apart.
  template <class Response>
  void add_cors(const request_ctx& ctx, Response& resp) const {
    const auto& policy = cfg.http.cors;
    if (!policy.enabled())
      return;
    if (!policy.any)
      resp.append_header(restinio::http_field::vary, "Origin");
    auto origin = ctx.req->header().opt_value_of(restinio::http_field::origin);
    if (!origin)
      return;
    auto allow = allowed_origin(policy, {origin->data(), origin->size()});
    if (!allow)
      return;
    resp.append_header(restinio::http_field::access_control_allow_origin,
                       std::move(*allow));
    resp.append_header("Access-Control-Expose-Headers",
                       std::string{cors_exposed_headers});
  }

  // Hands a built answer to RESTinio. One completed while RESTinio 0.6 still
  // runs the request handler breaks the connection's next request: with
  // one request at a time per connection (max_pipelined_requests 1),
  // RESTinio starts reading the next request both when the handler returns
  // (the answer already went out) and when the answer's write completes, so
  // two reads share the connection's buffer and parser. Seen as
  // `parser error HPE_INVALID_METHOD` in the log and a client's broken pipe
  // on its next request over that keep-alive connection, about once in 400
  // requests once finished polls were answered from the cache inside the
  // handler (and rarely after a 4xx answered there). Such an answer is
  // posted to the io_context instead, and written after the handler
  // returned, as the actors' answers always are.
  //
  // The access line was written as the answer was handed over; if its
  // write then fails (the client does not read it within
  // http.write-timeout, or left), a second line says it was not delivered.
  template <class Response>
  void finish(const request_ctx& ctx, int status, Response&& resp) {
    auto delivered = [id = ctx.id, route = ctx.route,
                      status](const asio::error_code& ec) {
      if (!ec)
        return;
      metrics::http_answer_not_delivered();
      log::info("answer not delivered: the connection ended before it was "
                "written whole",
                {{"request_id", id},
                 {"route", route},
                 {"status", status},
                 {"error", ec.message()}});
    };
    if (!in_request_handler) {
      resp.done(std::move(delivered));
      return;
    }
    asio::post(io,
               [r = std::forward<Response>(resp),
                d = std::move(delivered)]() mutable { r.done(std::move(d)); });
  }

  // A body that is not JSON (metrics text, embedded assets).
  void send_text(const request_ctx& ctx, int status,
                 std::string_view content_type, std::string body,
                 const char* cache_control = "no-store") {
    respond(ctx, status, std::move(body), [&](auto& resp) {
      resp.append_header(restinio::http_field::content_type,
                         std::string{content_type});
      resp.append_header(restinio::http_field::cache_control, cache_control);
      resp.append_header("X-Request-Id", ctx.id);
    });
  }

  void send_json(const request_ctx& ctx, int status, std::string body,
                 const char* location = nullptr) {
    respond(ctx, status, std::move(body), [&](auto& resp) {
      resp.append_header(restinio::http_field::content_type,
                         "application/json");
      // Task records change, and may be a client's own (auth): no cache
      // along the way keeps them.
      resp.append_header(restinio::http_field::cache_control, "no-store");
      resp.append_header("X-Request-Id", ctx.id);
      if (location != nullptr)
        resp.append_header(restinio::http_field::location, location);
    });
  }

  // An error answer; a 5xx is also logged as a warning (the access line
  // alone is info, so at log.level=warn this is all that is left of it), a
  // 503 at most once per 10 s and code.
  void send_error(const request_ctx& ctx, const failure& err) {
    if (log::enabled(log::level::warn) && http_status(err.code) >= 500)
      warn_failed(ctx, err);
    answer_error(ctx, err);
  }

  void warn_failed(const request_ctx& ctx, const failure& err) {
    if (http_status(err.code) != 503) {
      log::warn("request failed", {{"request_id", ctx.id},
                                   {"code", to_string(err.code)},
                                   {"reason", err.message}});
      return;
    }
    auto count =
        refusal_log.note(static_cast<int>(err.code), clock_type::now());
    if (count == 0)
      return;
    log::warn("request failed",
              {{"request_id", ctx.id},
               {"code", to_string(err.code)},
               {"reason", err.message},
               {"refused", count}, // with this code since its last line
               {"log_every_s", refusal_log.every_seconds()}});
  }

  void answer_error(const request_ctx& ctx, const failure& err) {
    auto status = http_status(err.code);
    respond(
        ctx, status, error_body(err),
        [&](auto& resp) {
          resp.append_header(restinio::http_field::content_type,
                             "application/json");
          resp.append_header(restinio::http_field::cache_control, "no-store");
          resp.append_header("X-Request-Id", ctx.id);
          if (status == 503)
            resp.append_header(restinio::http_field::retry_after,
                               std::to_string(cfg.http.retry_after));
          if (status == 401)
            resp.append_header(restinio::http_field::www_authenticate,
                               "Bearer realm=\"resized\"");
          if (err.code == error_code::method_not_allowed)
            resp.append_header(restinio::http_field::allow,
                               allowed_methods(ctx));
        },
        to_string(err.code));
  }

  // By the route the request matched (the router also matches a path with
  // a trailing slash: "/api/v1/resize/" is the submit route).
  static std::string allowed_methods(const request_ctx& ctx) {
    return std::string_view{ctx.route} == route::submit ? "POST" : "GET, HEAD";
  }

  handling reject(const request_ctx& ctx, failure err) {
    send_error(ctx, err);
    return restinio::request_accepted();
  }

  // Arms the actor-side deadline: past http.reply-timeout the request is
  // answered 504 (RESTinio would otherwise close the socket silently).
  // `extra`: a long poll's wait, on top.
  template <class T>
  void arm_deadline(const replier<T>& reply,
                    std::chrono::milliseconds extra = {}) {
    auto timer = std::make_shared<asio::steady_timer>(
        io, cfg.http.reply_timeout + extra);
    timer->async_wait([reply, timer](const asio::error_code& ec) {
      if (!ec)
        reply(
            failure{error_code::timeout, "the service did not answer in time"});
    });
  }

  // A replier that calls on_result(ctx, T) with the value or the error.
  template <class T, class F>
  replier<T> make_result_replier(const request_ctx& ctx, F on_result,
                                 std::chrono::milliseconds extra = {}) {
    replier<T> reply{[this, ctx, on_result](T result) {
                       if (closed.load())
                         return;
                       on_result(ctx, std::move(result));
                     },
                     T{failure{error_code::internal_error,
                               "the request was dropped without an answer"}}};
    arm_deadline(reply, extra);
    return reply;
  }

  // A replier that answers errors with send_error, values with on_value.
  template <class T, class F>
  replier<T> make_replier(const request_ctx& ctx, F on_value,
                          std::chrono::milliseconds extra = {}) {
    return make_result_replier<T>(
        ctx,
        [this, on_value](const request_ctx& ctx, T result) {
          if (!result)
            send_error(ctx, result.error());
          else
            on_value(ctx, std::move(result.value()));
        },
        extra);
  }

  // ?wait=<seconds> of a status poll (long poll), 0 without it. The rest
  // of the query is not read (poll_wait_value), as before the long poll
  // existed.
  outcome<std::chrono::milliseconds> poll_wait(const req_handle& req) {
    auto wait = poll_wait_value(req->header().query());
    if (!wait)
      return std::move(wait).error();
    return decode_poll_wait(wait.value(), cfg.http.max_poll_wait);
  }

  // -- auth -------------------------------------------------------------------

  // True when the request may go on; otherwise it has been answered 401.
  // With no keys configured auth is off (development).
  bool check_key(request_ctx& ctx) {
    if (cfg.auth.api_keys.empty())
      return true;
    const auto& h = ctx.req->header();
    auto view = [](const auto& opt) -> std::optional<std::string_view> {
      if (!opt)
        return std::nullopt;
      return std::string_view{opt->data(), opt->size()};
    };
    auto key =
        presented_key(view(h.opt_value_of(restinio::http_field::authorization)),
                      view(h.opt_value_of("X-API-Key")));
    if (key)
      ctx.key_index = matching_key(*key, cfg.auth.api_keys);
    if (ctx.key_index)
      return true;
    send_error(ctx, {error_code::unauthorized,
                     key ? "the API key is not valid"
                         : "an API key is required: send Authorization: "
                           "Bearer <key> or X-API-Key: <key>"});
    return false;
  }

  // The client whose share of the queue a submission takes
  // (common/client_identity.hpp).
  std::string client_of(const request_ctx& ctx) const {
    // Read only when a proxy could have written it, and only the header
    // the proxies write (http.forwarded-header): a client can write either.
    std::string forwarded;
    const bool rfc7239 = cfg.http.forwarded_rfc7239;
    if (!ctx.key_index && !cfg.http.trusted_proxies.empty())
      ctx.req->header().for_each_value_of(
          rfc7239 ? "Forwarded" : "X-Forwarded-For",
          [&](restinio::string_view_t v) {
            if (!forwarded.empty())
              forwarded += ',';
            std::string_view line{v.data(), v.size()};
            if (rfc7239)
              forwarded += forwarded_for_list(line);
            else
              forwarded.append(line);
            return restinio::http_header_fields_t::continue_enumeration();
          });
    return client_identity(ctx.key_index,
                           ctx.req->remote_endpoint().address().to_string(),
                           forwarded, cfg.http.trusted_proxies);
  }

  // -- routes -----------------------------------------------------------------

  handling on_submit(const req_handle& req) {
    // A body was read: the heap trimmer keeps freed memory for the next
    // one while submissions keep coming (probes and polls do not count).
    memory::note_work();
    request_ctx ctx{req, route::submit};
    if (!check_key(ctx))
      return restinio::request_accepted();
    auto ct = req->header().opt_value_of(restinio::http_field::content_type);
    // Content-Type is no list: two that differ leave it to each reader
    // which one counts (the first, here; a proxy may take the last).
    bool ct_conflict = false;
    req->header().for_each_value_of(
        restinio::http_field::content_type, [&](std::string_view value) {
          ct_conflict =
              trim_blanks(value) != trim_blanks({ct->data(), ct->size()});
          return ct_conflict
                     ? restinio::http_header_fields_t::stop_enumeration()
                     : restinio::http_header_fields_t::continue_enumeration();
        });
    if (ct_conflict)
      return reject(ctx, {error_code::malformed_request,
                          "Content-Type is given more than once, with "
                          "different values: send one"});
    auto kind = classify_content_type(
        ct ? std::string_view{ct->data(), ct->size()} : std::string_view{});
    if (kind == body_kind::unsupported)
      return reject(ctx, {error_code::unsupported_media_type,
                          "Content-Type must be application/json, image/* or "
                          "application/octet-stream"});
    // A coded body (gzip, ...) is not decoded here: refused as such, not
    // as "invalid JSON" or "not an image". Every Content-Encoding field
    // counts (the first alone let "identity" hide a "gzip" after it).
    std::string coded;
    req->header().for_each_value_of(
        restinio::http_field::content_encoding, [&](std::string_view value) {
          coded = coding_other_than_identity(value);
          return coded.empty()
                     ? restinio::http_header_fields_t::continue_enumeration()
                     : restinio::http_header_fields_t::stop_enumeration();
        });
    if (!coded.empty())
      return reject(
          ctx, {error_code::unsupported_media_type,
                fmt::format("Content-Encoding '{}' is not supported: send the "
                            "body as it is (identity)",
                            coded)});
    // The body's buffer is taken instead of copying megabytes: RESTinio 0.6
    // only offers a const view of it, but the request object is ours from
    // here on (RESTinio never reads the body after handing the request to
    // its handler), so moving out of it is safe; nothing below looks at
    // req->body() again. A JSON body is decoded in place; a raw body
    // already is the image.
    auto& body = const_cast<std::string&>(req->body());
    if (body.size() > cfg.max_body_bytes)
      return reject(ctx, {error_code::payload_too_large,
                          fmt::format("body is {} bytes, limit is {}",
                                      body.size(), cfg.max_body_bytes)});
    option_values given;
    std::string image;
    if (kind == body_kind::json) {
      // Options in the query would be silently ignored: a JSON submission
      // carries them in its body. Anything else there is ignored, as the
      // original stack did (a cache buster, a tracking parameter).
      if (names_an_option(req->header().query()))
        return reject(ctx, {error_code::invalid_option,
                            "a JSON submission takes its options in the body "
                            "(\"width\", \"format\", ...), not in the query "
                            "string"});
      auto dec = decode_json_submission(std::move(body));
      if (!dec)
        return reject(ctx, dec.error());
      given = std::move(dec->options);
      image = std::move(dec->image);
    } else {
      auto params = parse_query_params(req->header().query());
      if (!params)
        return reject(ctx, params.error());
      auto opts = decode_query_options(params.value());
      if (!opts)
        return reject(ctx, opts.error());
      given = std::move(opts.value());
      if (body.empty())
        return reject(ctx, {error_code::missing_image_data,
                            "the request body is empty: send the image bytes"});
      image = std::move(body);
    }
    auto opts =
        resolve_options(given, cfg.defaults, cfg.limits, &imaging::can_write);
    if (!opts)
      return reject(ctx, opts.error());
    // Before any decoder reads it: see png_text.hpp.
    imaging::drop_compressed_png_text(image);
    auto probe = imaging::probe(image.data(), image.size(), cfg.limits);
    if (!probe)
      return reject(ctx, probe.error());
    if (auto bad = imaging::check_output(*probe, opts.value(), cfg.limits))
      return reject(ctx, std::move(*bad));
    // Hashed here, on the io threads, so the supervisor's one thread never
    // reads megabytes.
    auto key = content_key(image, opts.value(), cfg.limits);
    submit_request sub{opts.value(),  std::move(image), *probe,
                       ctx.id,        std::move(key),   0,
                       client_of(ctx)};
    sub.decode_bytes = imaging::decode_estimate(*probe, sub.image.size(),
                                                sub.options, cfg.limits);
    api.submit(std::move(sub),
               make_replier<outcome<std::string>>(
                   ctx, [this](const request_ctx& ctx, std::string token) {
                     auto location = "/api/v1/resize/" + token;
                     auto with_token = ctx;
                     with_token.token = token;
                     send_json(with_token, 202, accepted_body(token),
                               location.c_str());
                   }));
    return restinio::request_accepted();
  }

  handling on_status(const req_handle& req, std::string_view token) {
    request_ctx ctx{req, route::status, std::string{token}};
    if (!check_key(ctx))
      return restinio::request_accepted();
    if (!is_uuid(token))
      return reject(ctx, {error_code::invalid_token,
                          "token must be a UUID like "
                          "3f2b8c1e-9a4d-4e2f-8b1a-2c3d4e5f6a7b"});
    auto wait = poll_wait(req);
    if (!wait)
      return reject(ctx, wait.error());
    // HEAD is a plain status lookup: the wait is checked as for GET, but
    // not waited (a HEAD answer carries no record to wait for).
    if (ctx.head)
      wait = std::chrono::milliseconds{0};
    if (wait.value().count() > 0)
      ctx.route = route::status_wait;
    api.status(normalize_token(token), wait.value(),
               make_replier<outcome<task_record>>(
                   ctx,
                   [this](const request_ctx& ctx, task_record rec) {
                     send_json(ctx, 200, status_body(rec, cfg.http.public_url));
                   },
                   wait.value()));
    return restinio::request_accepted();
  }

  handling on_image(const req_handle& req, std::string_view name) {
    request_ctx ctx{req, route::image};
    auto parsed = parse_image_name(name);
    if (!parsed)
      return reject(ctx, parsed.error());
    auto [token, format] = parsed.value();
    ctx.token = token;
    api.image(token, make_replier<outcome<image_blob>>(
                         ctx, [this, format = format](const request_ctx& ctx,
                                                      image_blob blob) {
                           send_image(ctx, format, std::move(blob));
                         }));
    return restinio::request_accepted();
  }

  void send_image(const request_ctx& ctx, imaging::output_format asked,
                  image_blob blob) {
    if (blob.format != asked) {
      send_error(ctx, {error_code::unknown_token,
                       fmt::format("no such image: this result is {}",
                                   imaging::to_string(blob.format))});
      return;
    }
    auto etag = "\"" + blob.etag + "\"";
    auto inm =
        ctx.req->header().opt_value_of(restinio::http_field::if_none_match);
    bool not_modified = inm && (std::string_view{inm->data(), inm->size()}.find(
                                    etag) != std::string_view::npos ||
                                *inm == "*");
    auto status = not_modified ? 304 : 200;
    // (A 304 is sent without it: respond() takes its Content-Length.)
    restinio::writable_item_t body{std::move(blob.bytes)};
    respond(ctx, status, std::move(body), [&](auto& resp) {
      resp.append_header(restinio::http_field::etag, etag);
      resp.append_header(restinio::http_field::cache_control,
                         "public, max-age=31536000, immutable");
      resp.append_header("X-Request-Id", ctx.id);
      if (!not_modified)
        resp.append_header(restinio::http_field::content_type,
                           std::string{imaging::mime_type(blob.format)});
    });
  }

  handling on_health(const req_handle& req) {
    request_ctx ctx{req, route::healthz};
    send_json(ctx, 200, R"({"status":"ok"})");
    return restinio::request_accepted();
  }

  // Ready: Redis takes a write (a PING answers at maxmemory too, where
  // every submission is refused) and some node has resize workers. Otherwise
  // 503 store_unavailable or no_workers, with the reason; never 504 (a
  // probe wants ready or not: a late answer is "not ready").
  handling on_ready(const req_handle& req) {
    request_ctx ctx{req, route::readyz};
    api.ping_store(make_result_replier<outcome<bool>>(
        ctx, [this](const request_ctx& ctx, outcome<bool> pong) {
          if (!pong || !pong.value()) {
            // Redis' address and its words go to the log, not to whoever
            // asks (/readyz is open): as for submissions and lookups.
            auto why = pong ? std::string{"Redis did not take a write"}
                            : pong.error().message;
            send_not_ready(ctx,
                           {error_code::store_unavailable,
                            "not ready: the task store (Redis) is unavailable"},
                           why);
            return;
          }
          api.cluster(make_result_replier<outcome<cluster_view>>(
              ctx, [this](const request_ctx& ctx, outcome<cluster_view> view) {
                if (view)
                  send_ready(ctx, view.value());
                else
                  send_not_ready(ctx,
                                 {error_code::no_workers,
                                  "not ready: the supervisor did not answer: " +
                                      view.error().message});
              }));
        }));
    return restinio::request_accepted();
  }

  void send_ready(const request_ctx& ctx, const cluster_view& view) {
    size_t nodes = 0;
    size_t workers = 0;
    size_t busy = 0;    // of the workers counted
    size_t running = 0; // every task running, a leaving node's too
    size_t leaving = 0;
    for (const auto& n : view.nodes) {
      running += n.busy;
      // A leaving node takes no new task (POST answers no_workers when
      // only such nodes are left): ready means someone takes the next one.
      // Its busy slots are not counted with the workers either (the answer
      // said "workers":2,"busy":4 while one drained).
      if (n.state == "leaving") {
        leaving += n.workers > 0 ? 1 : 0;
        continue;
      }
      nodes += n.workers > 0 ? 1 : 0;
      workers += n.workers;
      busy += n.busy;
    }
    if (view.draining) {
      // A load balancer must stop sending work here as soon as the drain
      // starts, not when the process is gone.
      send_not_ready(ctx, {error_code::shutting_down,
                           fmt::format("not ready: this node is shutting down "
                                       "({} task{} still running, {} queued)",
                                       running, running == 1 ? "" : "s",
                                       view.queue_depth)});
      return;
    }
    if (workers == 0) {
      send_not_ready(
          ctx,
          {error_code::no_workers,
           fmt::format("not ready: no resize worker is available "
                       "({} node{} known: none with workers taking tasks, {} "
                       "leaving)",
                       view.nodes.size(), view.nodes.size() == 1 ? "" : "s",
                       leaving)});
      return;
    }
    note_readiness(nullptr);
    send_json(ctx, 200, ready_body(nodes, workers, busy, view.queue_depth));
  }

  // A 503 of /readyz is the answer to "are you ready?", not a failed
  // request: its access line is all it gets; a change of readiness is
  // logged once, by note_readiness.
  void send_not_ready(const request_ctx& ctx, const failure& why,
                      std::string_view detail = {}) {
    note_readiness(&why, detail);
    answer_error(ctx, why);
  }

  // Logs readiness changes as probes observe them: to not ready (warn, with
  // the code and reason; a change of reason is logged too), back to ready
  // (info), and the first probe's finding.
  void note_readiness(const failure* why, std::string_view detail = {}) {
    auto now = static_cast<int>(why != nullptr ? why->code : error_code::none);
    if (readiness.exchange(now) == now)
      return;
    if (why != nullptr)
      log::warn("readiness changed: not ready",
                {{"code", to_string(why->code)},
                 {"reason", why->message},
                 {"detail", detail.empty() ? std::string_view{"-"} : detail}});
    else
      log::info("readiness changed: ready");
  }

  handling on_metrics(const req_handle& req) {
    request_ctx ctx{req, route::metrics};
    if (cfg.auth.protect_metrics && !check_key(ctx))
      return restinio::request_accepted();
    // The cluster gauges come from the supervisor; if it does not answer,
    // everything else is still served (a scrape should not fail for it).
    api.cluster(make_result_replier<outcome<cluster_view>>(
        ctx, [this](const request_ctx& ctx, outcome<cluster_view> view) {
          send_text(ctx, 200, metrics_content_type,
                    metrics_text(view ? &view.value() : nullptr));
        }));
    return restinio::request_accepted();
  }

  // An embedded file (src/http/static/), revalidated by ETag.
  handling on_asset(const req_handle& req, const char* route_name,
                    std::string_view name) {
    request_ctx ctx{req, route_name};
    const auto* a = asset_named(name);
    if (a == nullptr)
      return reject(
          ctx, {error_code::not_found,
                fmt::format("no route {}", std::string{req->header().path()})});
    auto etag = "\"" + a->etag + "\"";
    auto inm = req->header().opt_value_of(restinio::http_field::if_none_match);
    bool not_modified = inm && std::string_view{inm->data(), inm->size()}.find(
                                   etag) != std::string_view::npos;
    // The bytes live as long as the server: no copy. (A 304 is sent without
    // them: respond() takes its Content-Length.)
    restinio::writable_item_t body{
        restinio::const_buffer(a->bytes.data(), a->bytes.size())};
    respond(ctx, not_modified ? 304 : 200, std::move(body), [&](auto& resp) {
      if (!not_modified)
        resp.append_header(restinio::http_field::content_type,
                           std::string{a->content_type});
      resp.append_header(restinio::http_field::etag, etag);
      // On a 304 too (RFC 9110 §15.4.5): a cache updates its copy's
      // headers from the 304.
      resp.append_header(restinio::http_field::cache_control, "no-cache");
      resp.append_header("X-Request-Id", ctx.id);
    });
    return restinio::request_accepted();
  }

  handling on_cluster(const req_handle& req) {
    request_ctx ctx{req, route::cluster};
    if (cfg.auth.protect_cluster && !check_key(ctx))
      return restinio::request_accepted();
    api.cluster(make_replier<outcome<cluster_view>>(
        ctx, [this](const request_ctx& ctx, cluster_view view) {
          send_json(ctx, 200, cluster_body(view));
        }));
    return restinio::request_accepted();
  }

  handling on_not_allowed(const req_handle& req, const char* route_name) {
    request_ctx ctx{req, route_name};
    if (req->header().method() == restinio::http_method_options() &&
        cfg.http.cors.enabled()) {
      auto origin = req->header().opt_value_of(restinio::http_field::origin);
      auto asked = req->header().opt_value_of(
          restinio::http_field::access_control_request_method);
      if (origin && asked)
        return on_preflight(ctx, {origin->data(), origin->size()},
                            {asked->data(), asked->size()});
    }
    return reject(ctx, {error_code::method_not_allowed,
                        fmt::format("method {} is not allowed here",
                                    req->header().method().c_str())});
  }

  // A browser asks whether a page of `origin` may send `method` here (a CORS
  // preflight). Not checked for an API key: a preflight never carries one.
  handling on_preflight(const request_ctx& ctx, std::string_view origin,
                        std::string_view method) {
    if (!allowed_origin(cfg.http.cors, origin))
      return reject(ctx, {error_code::origin_not_allowed,
                          fmt::format("origin {} may not call this API from "
                                      "a browser (http.cors-origins lists "
                                      "the origins that may)",
                                      clipped(origin))});
    auto methods = allowed_methods(ctx);
    bool listed = false; // one of the route's methods, as 405's Allow has them
    for (std::string_view rest{methods}; !rest.empty() && !listed;) {
      auto comma = rest.find(',');
      listed = trim_blanks(rest.substr(0, comma)) == method;
      rest = comma == std::string_view::npos ? std::string_view{}
                                             : rest.substr(comma + 1);
    }
    if (!listed)
      return reject(
          ctx, {error_code::method_not_allowed,
                fmt::format("method {} is not allowed here", clipped(method))});
    // 200 with an empty body rather than 204: RESTinio 0.6 writes
    // Content-Length on every answer, which a 204 must not carry (RFC 9110
    // §8.6); any 2xx passes a preflight.
    respond(ctx, 200, std::string{}, [&](auto& resp) {
      resp.append_header("X-Request-Id", ctx.id);
      resp.append_header(restinio::http_field::access_control_allow_methods,
                         methods);
      resp.append_header(restinio::http_field::access_control_allow_headers,
                         std::string{cors_allowed_headers});
      resp.append_header(restinio::http_field::access_control_max_age,
                         std::to_string(cors_max_age_s));
    });
    return restinio::request_accepted();
  }

  // A path whose percent-encoding is malformed or decodes to bytes that are
  // not UTF-8 names nothing here: 404, as a raw non-UTF-8 byte gets.
  handling on_bad_path(const req_handle& req, std::string_view why) {
    request_ctx ctx{req, route::other};
    return reject(ctx, {error_code::not_found,
                        fmt::format("no route {}: its percent-encoding is "
                                    "invalid ({})",
                                    clipped(req->header().path()), why)});
  }

  handling on_not_found(const req_handle& req) {
    request_ctx ctx{req, route::other};
    return reject(
        ctx, {error_code::not_found,
              fmt::format("no route {}", std::string{req->header().path()})});
  }

  // Every route that answers GET answers HEAD alike (respond() leaves the
  // body out); other methods get 405 with the Allow field.
  std::unique_ptr<checked_router> make_router() {
    using namespace restinio::router;
    auto get = [] {
      return any_of_methods(restinio::http_method_get(),
                            restinio::http_method_head());
    };
    auto not_get = [] {
      return none_of_methods(restinio::http_method_get(),
                             restinio::http_method_head());
    };
    auto r = std::make_unique<router_type>();
    r->http_post("/api/v1/resize",
                 [this](auto req, auto) { return on_submit(req); });
    r->add_handler(
        none_of_methods(restinio::http_method_post()), "/api/v1/resize",
        [this](auto req, auto) { return on_not_allowed(req, route::submit); });
    r->add_handler(
        get(), "/api/v1/resize/:token", [this](auto req, auto params) {
          auto t = params["token"];
          return on_status(req, std::string_view{t.data(), t.size()});
        });
    r->add_handler(not_get(), "/api/v1/resize/:token", [this](auto req, auto) {
      return on_not_allowed(req, route::status);
    });
    r->add_handler(get(), "/api/v1/images/:name",
                   [this](auto req, auto params) {
                     auto n = params["name"];
                     return on_image(req, std::string_view{n.data(), n.size()});
                   });
    r->add_handler(not_get(), "/api/v1/images/:name", [this](auto req, auto) {
      return on_not_allowed(req, route::image);
    });
    r->add_handler(get(), "/healthz",
                   [this](auto req, auto) { return on_health(req); });
    r->add_handler(get(), "/readyz",
                   [this](auto req, auto) { return on_ready(req); });
    r->add_handler(get(), "/metrics",
                   [this](auto req, auto) { return on_metrics(req); });
    r->add_handler(get(), "/api/v1/cluster",
                   [this](auto req, auto) { return on_cluster(req); });
    r->add_handler(get(), "/api/v1/openapi.json", [this](auto req, auto) {
      return on_asset(req, route::openapi, "openapi.json");
    });
    r->add_handler(get(), "/", [this](auto req, auto) {
      return on_asset(req, route::page, "index.html");
    });
    r->add_handler(get(), "/static/:name", [this](auto req, auto params) {
      auto n = params["name"];
      return on_asset(req, route::assets, std::string_view{n.data(), n.size()});
    });
    for (const char* path :
         {route::healthz, route::readyz, route::metrics, route::cluster,
          route::openapi, route::page, route::assets})
      r->add_handler(not_get(), path, [this, path](auto req, auto) {
        return on_not_allowed(req, path);
      });
    r->non_matched_request_handler(
        [this](auto req) { return on_not_found(req); });
    return std::make_unique<checked_router>(
        std::move(r), [this](const req_handle& req, std::string_view why) {
          return on_bad_path(req, why);
        });
  }
};

server::server(const config::service_settings& cfg, backend& api)
    : impl_(std::make_unique<impl>(cfg, api)) {}

server::~server() {
  stop();
  impl_->closed = true;
}

void server::start() {
  auto& h = impl_->cfg.http;
  impl_->render_page_once();
  // RESTinio drops (closes without an answer) a request whose declared body
  // exceeds its cap before reading it. A body that declares more than the
  // configured limit is refused at its header block: the socket
  // (expect_continue.hpp) writes its 413 (instead of "100 Continue") before
  // a byte of it is read. A chunked body declares nothing: it is read up
  // to twice the limit and answered 413 payload_too_large by the handler
  // past the limit; past twice, the socket answers before RESTinio closes.
  impl_->raw_body_limit = impl_->cfg.max_body_bytes * 2;
  // The same limits as incoming_http_msg_limits below, and one of the
  // socket's own: a chunked body may come in at most 1024 chunks plus one
  // per KiB of the cap (RESTinio keeps 16 bytes per chunk: at most 1/64 of
  // the body's bytes, instead of 16 times them for one-byte chunks; curl
  // sends 64 KiB chunks, browsers' streams a few KiB).
  continue_socket::set_limits(
      request_limits{impl_->raw_body_limit, h.max_url_bytes, 1024,
                     h.max_header_bytes, h.max_header_count,
                     1024 + impl_->raw_body_limit / 1024,
                     impl_->cfg.max_body_bytes},
      impl_->cfg.max_body_bytes);
  auto limit = std::make_shared<connection_limit>(
      h.max_connections_per_client, h.trusted_proxies,
      [](size_t open) { metrics::http_connections(open); });
  continue_socket::set_connection_limit(limit, h.retry_after);
  continue_socket::set_upload_budget(
      std::make_shared<upload_budget>(h.max_receiving_bytes, [](uint64_t held) {
        metrics::http_receiving_bytes(held);
      }));
  continue_socket::set_cors(h.cors);
  continue_socket::set_api_keys(impl_->cfg.auth.api_keys);
  continue_socket::set_read_timeout(h.read_timeout);
  auto settings = restinio::server_settings_t<traits>{}
                      .address(h.address)
                      .port(h.port)
                      .request_handler(impl_->make_router())
                      .read_next_http_message_timelimit(h.read_timeout)
                      .write_http_response_timelimit(h.write_timeout)
                      .handle_request_timeout(h.handle_timeout)
                      .max_parallel_connections(h.max_connections)
                      .incoming_http_msg_limits(
                          restinio::incoming_http_msg_limits_t{}
                              .max_url_size(h.max_url_bytes)
                              .max_field_name_size(1024)
                              // RESTinio refuses a value of its limit or
                              // more; http.max-header-bytes is inclusive,
                              // as max-url-bytes is.
                              .max_field_value_size(h.max_header_bytes + 1)
                              .max_field_count(h.max_header_count)
                              .max_body_size(impl_->raw_body_limit))
                      .buffer_size(h.read_buffer_bytes)
                      .concurrent_accepts_count(h.io_threads)
                      .separate_accept_and_create_connect(true)
                      .connection_state_listener(
                          std::make_shared<connection_closes>(limit));
  impl_->running =
      restinio::run_async<traits>(restinio::external_io_context(impl_->io),
                                  std::move(settings), h.io_threads);
  asio::post(impl_->shed_strand,
             [i = impl_.get()] { i->shed_stalled_connections_every_while(); });
}

void server::begin_shutdown() {
  if (impl_)
    impl_->shutting_down = true;
}

void server::stop() {
  if (impl_ && impl_->running) {
    impl_->shed_stopped = true;
    asio::post(impl_->shed_strand, [i = impl_.get()] {
      asio::error_code ignored;
      i->shed_timer.cancel(ignored);
    });
    impl_->running->stop();
    impl_->running->wait();
    // Kept, not freed: operations still queued on the io_context (a read on
    // an idle keep-alive connection, say) hold connections, which tell
    // RESTinio's connection limiter, inside the server instance, when the
    // io_context destroys them with `impl`. Freeing the instance first made
    // that a use after free (AddressSanitizer, at every shutdown with an
    // open connection); its asio objects cannot outlive the io_context
    // either. It is stopped, and the process is ending.
    static_cast<void>(impl_->running.release());
  }
}

} // namespace resized::http
