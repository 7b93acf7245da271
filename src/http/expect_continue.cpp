#include "http/expect_continue.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <climits>
#include <cstring>
#include <optional>
#include <string_view>
#include <utility>

#include <fmt/format.h>

#include "common/log.hpp"
#include "common/metrics.hpp"
#include "common/text.hpp"
#include "http/auth.hpp"
#include "http/responses.hpp"

namespace resized::http {

namespace {

constexpr size_t kept_bytes = 32; // of a header's name and value

continue_tracker& self(http_parser* p) {
  return *static_cast<continue_tracker*>(p->data);
}

// Keeps up to `cap` + 1 bytes of a text however it arrives (one byte more
// than kept says "too long"): byte by byte or in one piece, the same.
// (It kept 32 bytes of a value fed byte by byte and 33 fed at once, and a
// longer Expect value whose 33rd byte was not blank then matched one way
// only; the fuzzer found it.)
void append_capped(std::string& s, const char* at, size_t n,
                   size_t cap = kept_bytes) {
  if (s.size() <= cap)
    s.append(at, std::min(n, cap + 1 - s.size()));
}

bool ascii_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9');
}

// A Host field's value as RFC 9112 §3.2 takes it: uri-host [":" port] of
// RFC 3986 (an IP literal in brackets, or a name or IPv4 address of
// unreserved, sub-delims and %-escapes), or empty (a target without an
// authority). Written here: neither libhttp-parser nor RESTinio checks it.
bool valid_host(std::string_view v) {
  auto name_char = [](char c) {
    return ascii_alnum(c) || std::string_view{"-._~!$&'()*+,;=%"}.find(c) !=
                                 std::string_view::npos;
  };
  size_t i = 0;
  if (!v.empty() && v.front() == '[') {
    auto close = v.find(']');
    if (close == std::string_view::npos || close == 1)
      return false;
    for (i = 1; i < close; ++i)
      if (!name_char(v[i]) && v[i] != ':')
        return false;
    i = close + 1;
  } else {
    for (; i < v.size() && v[i] != ':'; ++i)
      if (!name_char(v[i]))
        return false;
  }
  if (i == v.size())
    return true;
  if (v[i] != ':')
    return false;
  for (++i; i < v.size(); ++i)
    if (v[i] < '0' || v[i] > '9')
      return false;
  return true;
}

// Set once before the server accepts connections (set_limits), read by each
// new socket.
request_limits socket_limits;
uint64_t stated_body_limit = 0;
// Likewise (set_api_keys).
std::vector<std::string> socket_api_keys;
// Likewise (set_cors).
cors_policy socket_cors;
// Likewise (set_read_timeout).
std::chrono::seconds socket_read_timeout{30};
// Likewise (set_upload_budget).
std::shared_ptr<upload_budget> socket_budget;

// The CORS fields of an answer written here for a request from `origin`
// ("" when not read), as the server's add_cors() gives them: Vary whenever
// origins are listed, the rest for an allowed origin.
std::string cors_fields(const std::string& origin) {
  if (!socket_cors.enabled())
    return {};
  std::string out = socket_cors.any ? "" : "Vary: Origin\r\n";
  if (origin.empty())
    return out;
  if (auto allow = allowed_origin(socket_cors, origin))
    out += fmt::format("Access-Control-Allow-Origin: {}\r\n"
                       "Access-Control-Expose-Headers: {}\r\n",
                       *allow, cors_exposed_headers);
  return out;
}

// An answer the socket writes itself, before RESTinio reads the request,
// and then closes the connection: `status` with the JSON `body`, and
// `fields` (each ending in CRLF) after X-Request-Id. For a HEAD request the
// same status and fields, Content-Length the size of the body GET would
// get, no body (RFC 9110 §9.3.2), as respond() answers HEAD.
std::string refusal_answer(int status, const std::string& id,
                           const std::string& fields, const std::string& body,
                           bool head) {
  return fmt::format("HTTP/1.1 {} {}\r\n"
                     "Date: {}\r\n"
                     "Content-Type: application/json\r\n"
                     "Cache-Control: no-store\r\n"
                     "X-Request-Id: {}\r\n"
                     "{}"
                     "Content-Length: {}\r\n"
                     "Connection: close\r\n\r\n{}",
                     status, reason_phrase(status), http_date_now(), id, fields,
                     body.size(),
                     head ? std::string_view{} : std::string_view{body});
}

// Likewise (set_connection_limit).
std::shared_ptr<connection_limit> connection_cap;
int cap_retry_after = 2;
// Refusals for the cap come in floods (a client over it keeps opening
// connections): one line per 10 s, counting the ones since the last.
log::throttle cap_log{std::chrono::seconds{10}};
// Likewise for bodies refused for the upload budget.
log::throttle budget_log{std::chrono::seconds{10}};
// And for connections closed to make room (shed_stalled).
log::throttle shed_log{std::chrono::seconds{10}};

// Writes `bytes` on `socket` now, without waiting: what the socket's send
// buffer does not take is dropped (a client that does not read its answers
// gets no more of this one; its connection is ending). asio's synchronous
// write would wait for a non-reading client with no time limit, holding an
// io thread. (Non-blocking mode is asio's user flag: RESTinio's
// asynchronous operations on the socket are not affected.)
void write_without_waiting(asio::ip::tcp::socket& socket,
                           std::string_view bytes) {
  asio::error_code ec;
  socket.non_blocking(true, ec);
  while (!ec && !bytes.empty()) {
    auto n = socket.write_some(asio::buffer(bytes.data(), bytes.size()), ec);
    bytes.remove_prefix(std::min(n, bytes.size()));
  }
}

ip_address to_ip_address(const asio::ip::address& addr) {
  ip_address a;
  if (addr.is_v4()) {
    // As client_identity holds IPv4: mapped into IPv6 (::ffff:a.b.c.d).
    a.bytes[10] = a.bytes[11] = 0xff;
    auto v4 = addr.to_v4().to_bytes();
    std::copy(v4.begin(), v4.end(), a.bytes.begin() + 12);
  } else {
    auto v6 = addr.to_v6().to_bytes();
    std::copy(v6.begin(), v6.end(), a.bytes.begin());
  }
  return a;
}

// The answer to a request that broke one of the limits.
failure refusal_of(const continue_tracker& tracker) {
  switch (tracker.refused()) {
  case continue_tracker::refusal::body:
    if (tracker.chunked()) // its length is not known
      return {error_code::payload_too_large,
              fmt::format("body is over {} bytes, limit is {}",
                          socket_limits.body, stated_body_limit)};
    return {error_code::payload_too_large,
            fmt::format("body is {} bytes, limit is {}", tracker.announced(),
                        stated_body_limit)};
  case continue_tracker::refusal::chunks:
    return {error_code::payload_too_large,
            fmt::format("a chunked body in more than {} chunks: send it in "
                        "fewer, larger chunks (or with a Content-Length)",
                        socket_limits.chunks)};
  case continue_tracker::refusal::unauthorized:
    // The handler's words (server.cpp, check_key).
    return {error_code::unauthorized,
            tracker.key_presented()
                ? "the API key is not valid"
                : "an API key is required: send Authorization: Bearer <key> "
                  "or X-API-Key: <key>"};
  case continue_tracker::refusal::malformed:
    return {error_code::malformed_request,
            fmt::format("the request is malformed ({}): refused, as RFC "
                        "9112 asks",
                        tracker.malformed_why())};
  case continue_tracker::refusal::busy: {
    uint64_t capacity = socket_budget ? socket_budget->capacity() : 0;
    if (tracker.busy_midway())
      return {error_code::too_many_uploads,
              fmt::format("this node holds the most request body bytes it "
                          "takes at once, {} (http.max-receiving-bytes), in "
                          "uploads under way: this body was refused after {} "
                          "bytes; send it again after Retry-After",
                          capacity, tracker.announced())};
    return {error_code::too_many_uploads,
            fmt::format("a body of {} bytes does not fit now in the {} bytes "
                        "of request bodies this node takes at once "
                        "(http.max-receiving-bytes), held by uploads under "
                        "way; send it again after Retry-After",
                        tracker.announced(), capacity)};
  }
  case continue_tracker::refusal::unknown_method:
    return {error_code::method_not_implemented,
            "the request's method is not one HTTP/1.1 defines (this server "
            "answers GET, HEAD, POST and OPTIONS), or the bytes are not an "
            "HTTP request"};
  case continue_tracker::refusal::unparsable:
    return {error_code::malformed_request,
            fmt::format("the request cannot be read as HTTP/1.1: {}",
                        tracker.parse_error())};
  case continue_tracker::refusal::url:
    return {error_code::uri_too_long,
            fmt::format("the request target is longer than {} bytes",
                        socket_limits.url)};
  default:
    return {error_code::headers_too_large,
            fmt::format("the request's header fields are over the limits: "
                        "at most {} fields, names of at most {} bytes, "
                        "values of at most {} bytes, {} bytes in all",
                        socket_limits.field_count, socket_limits.field_name,
                        socket_limits.field_value, max_head_bytes)};
  }
}

// The access line and the HTTP metrics of a refused request, as the
// server's access_log() writes them for the requests it answers. The
// request never reached the router: its route label is refused_route. Its
// path is what was read of the target (a 414's is cut at the limit), at
// most kept_target_bytes of it. Its request id is the client's
// X-Request-Id when that field was read before the refusal (and is usable,
// as the server's own answers take it), else a new one.
void log_refusal(const continue_tracker& tracker, const std::string& id,
                 int status, size_t bytes, error_code code) {
  // The path is the target up to its query; only the target's first
  // kept_target_bytes were kept.
  std::string_view kept = tracker.target();
  auto query = kept.find('?');
  auto path = kept.substr(0, query);
  record_access(
      {id, tracker.method(), path,
       query != std::string_view::npos ? path.size() : tracker.target_bytes(),
       refused_route, status, bytes,
       std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                     tracker.started())
           .count(),
       to_string(code)});
}

// The answer the socket writes for the tracker's current request, refused
// for `why`: logged and counted before it is written, as every other
// answer is.
std::string logged_refusal(const continue_tracker& tracker,
                           const failure& why) {
  auto status = http_status(why.code);
  auto body = error_body(why);
  auto id =
      tracker.request_id().empty() ? new_request_id() : tracker.request_id();
  auto fields = cors_fields(tracker.origin());
  if (status == 503) // as every 503 of the server's (responses.cpp)
    fields += fmt::format("Retry-After: {}\r\n", cap_retry_after);
  if (status == 401) // as the server's own 401 (server.cpp)
    fields += "WWW-Authenticate: Bearer realm=\"resized\"\r\n";
  log_refusal(tracker, id, status, tracker.head() ? 0 : body.size(), why.code);
  return refusal_answer(status, id, fields, body, tracker.head());
}

} // namespace

continue_tracker::continue_tracker(uint64_t body_limit)
    : continue_tracker(request_limits{body_limit}) {}

continue_tracker::continue_tracker(const request_limits& limits,
                                   const std::vector<std::string>* api_keys,
                                   std::shared_ptr<upload_budget> budget)
    : api_keys_{api_keys}, limits_{limits}, budget_{std::move(budget)} {
  // A field holding a key: "Bearer ", blanks and the longest key. A value
  // cut at this size is longer than any key, blanks aside: never taken
  // for one.
  if (api_keys_ != nullptr)
    for (const auto& key : *api_keys_)
      key_field_bytes_ = std::max(key_field_bytes_, key.size() + 1024);
  http_parser_init(&parser_, HTTP_REQUEST);
  parser_.data = this;
  http_parser_settings_init(&settings_);
  settings_.on_message_begin = &continue_tracker::on_message_begin;
  settings_.on_url = &continue_tracker::on_url;
  settings_.on_header_field = &continue_tracker::on_header_field;
  settings_.on_header_value = &continue_tracker::on_header_value;
  settings_.on_headers_complete = &continue_tracker::on_headers_complete;
  settings_.on_body = &continue_tracker::on_body;
  settings_.on_chunk_header = &continue_tracker::on_chunk_header;
  settings_.on_message_complete = &continue_tracker::on_message_complete;
  http_parser_settings_init(&ahead_settings_);
  ahead_settings_.on_body = &continue_tracker::on_body_ahead;
}

continue_tracker::~continue_tracker() {
  give_back_body();
}

void continue_tracker::give_back_body() {
  if (budget_ && held_ > 0)
    budget_->give_back(held_);
  held_ = 0;
}

bool continue_tracker::feed(const char* data, size_t size) {
  // (No bytes would tell http_parser the stream has ended.)
  if (stopped_ || size == 0)
    return false;
  due_ = false;
  ended_in_feed_ = 0;
  // A copy of the parser finds where the bodies are, then the framing's
  // line ends are checked; the parser itself reads up to a bad one only:
  // a refusal there comes in byte order, and requests after it are not
  // seen (it would read on).
  body_runs_.clear();
  http_parser ahead = parser_;
  size_t seen = http_parser_execute(&ahead, &ahead_settings_, data, size);
  size_t bad = bad_line_end(data, seen);
  size_t parsed = 0;
  if (bad > 0)
    parsed =
        http_parser_execute(&parser_, &settings_, data, std::min(bad, size));
  if (bad < size && parsed == bad && refused_ == refusal::none &&
      HTTP_PARSER_ERRNO(&parser_) == HPE_OK && !parser_.upgrade) {
    refused_ = refusal::malformed;
    malformed_why_ = bad_line_end_why_;
  }
  // A parse error of the parser's own (the callbacks' errors, HPE_CB_*,
  // come with a refusal set): RESTinio's parser fails on the same bytes
  // and closes the connection unanswered; answered here. Bytes after a
  // request that closed the connection (HPE_CLOSED_CONNECTION) are not a
  // request: RESTinio closes after that request's answer anyway.
  auto err = HTTP_PARSER_ERRNO(&parser_);
  if (refused_ == refusal::none && err != HPE_OK && err != HPE_PAUSED &&
      err != HPE_CLOSED_CONNECTION &&
      !(err >= HPE_CB_message_begin && err <= HPE_CB_chunk_complete))
    refused_ = err == HPE_INVALID_METHOD ? refusal::unknown_method
                                         : refusal::unparsable;
  if (parser_.upgrade || HTTP_PARSER_ERRNO(&parser_) != HPE_OK ||
      parsed != size || refused_ != refusal::none)
    stopped_ = true; // a refusal is final: the connection ends with it
  if (refused_ != refusal::none)
    refused_behind_ = ended_in_feed_ > 0;
  return due_;
}

int continue_tracker::on_message_begin(http_parser* p) {
  auto& t = self(p);
  t.field_.clear();
  t.value_.clear();
  t.in_value_ = false;
  t.expects_continue_ = false;
  t.url_bytes_ = t.name_bytes_ = t.value_bytes_ = t.fields_ = 0;
  t.head_bytes_ = 0;
  t.body_bytes_ = 0;
  t.chunks_ = 0;
  t.target_.clear();
  t.hosts_ = 0;
  t.host_value_.clear();
  t.origin_value_.clear();
  t.origin_.clear();
  t.request_id_value_.clear();
  t.request_id_.clear();
  t.request_ids_ = 0;
  t.authorization_.clear();
  t.x_api_key_.clear();
  t.has_authorization_ = t.has_x_api_key_ = false;
  t.key_value_ = nullptr;
  t.key_presented_ = false;
  t.malformed_why_ = "";
  t.in_request_ = true;
  t.head_complete_ = false;
  t.method_known_ = false;
  t.started_ = std::chrono::steady_clock::now();
  return 0;
}

int continue_tracker::on_url(http_parser* p, const char* at, size_t n) {
  auto& t = self(p);
  t.method_known_ = true;
  if (t.target_.size() < kept_target_bytes)
    t.target_.append(at, std::min(n, kept_target_bytes - t.target_.size()));
  t.url_bytes_ += n;
  t.head_bytes_ += n;
  if (t.limits_.url > 0 && t.url_bytes_ > t.limits_.url) {
    t.refused_ = refusal::url;
    return 1;
  }
  if (t.head_bytes_ > max_head_bytes) {
    t.refused_ = refusal::headers;
    return 1;
  }
  return 0;
}

int continue_tracker::on_header_field(http_parser* p, const char* at,
                                      size_t n) {
  auto& t = self(p);
  bool begins = t.in_value_ || t.fields_ == 0; // a new header begins
  if (t.in_value_) { // the previous one is complete (before its counts go)
    if (t.header_done() != 0)
      return 1;
    t.field_.clear();
    t.value_.clear();
    t.origin_value_.clear();
    t.request_id_value_.clear();
    t.host_value_.clear();
    t.key_value_ = nullptr;
    t.in_value_ = false;
  }
  if (begins) {
    if (t.limits_.field_count > 0 && t.fields_ == t.limits_.field_count) {
      t.refused_ = refusal::headers;
      return 1;
    }
    ++t.fields_;
    t.name_bytes_ = t.value_bytes_ = 0;
  }
  // libhttp-parser, lenient, takes blanks as part of a name (and obeys
  // "Content-Length " as Content-Length); RFC 9112 §5.1 says refuse. In
  // byte order, as if fed a byte at a time: a blank before the name passes
  // its limit is malformed, one after is over the limit.
  auto before = t.name_bytes_;
  t.name_bytes_ += n;
  auto blank = static_cast<size_t>(
      std::find_if(at, at + n, [](char c) { return c == ' ' || c == '\t'; }) -
      at);
  bool over = t.limits_.field_name > 0 && t.name_bytes_ > t.limits_.field_name;
  size_t over_at = over ? t.limits_.field_name - before : n;
  if (blank < n && blank < over_at) {
    t.refused_ = refusal::malformed;
    t.malformed_why_ = "blanks in a header field name";
    return 1;
  }
  t.head_bytes_ += n;
  if (over || t.head_bytes_ > max_head_bytes) {
    t.refused_ = refusal::headers;
    return 1;
  }
  append_capped(t.field_, at, n);
  return 0;
}

int continue_tracker::on_header_value(http_parser* p, const char* at,
                                      size_t n) {
  auto& t = self(p);
  if (!t.in_value_ && t.key_field_bytes_ > 0) {
    // The first piece of this value: is it one that may hold a key?
    if (equals_nocase(t.field_, "authorization") && !t.has_authorization_) {
      t.has_authorization_ = true;
      t.key_value_ = &t.authorization_;
    } else if (equals_nocase(t.field_, "x-api-key") && !t.has_x_api_key_) {
      t.has_x_api_key_ = true;
      t.key_value_ = &t.x_api_key_;
    }
  }
  t.in_value_ = true;
  t.value_bytes_ += n;
  t.head_bytes_ += n;
  if ((t.limits_.field_value > 0 && t.value_bytes_ > t.limits_.field_value) ||
      t.head_bytes_ > max_head_bytes) {
    t.refused_ = refusal::headers;
    return 1;
  }
  append_capped(t.value_, at, n);
  if (t.key_value_ != nullptr)
    append_capped(*t.key_value_, at, n, t.key_field_bytes_);
  if (equals_nocase(t.field_, "origin"))
    append_capped(t.origin_value_, at, n, max_origin_bytes);
  if (equals_nocase(t.field_, "host"))
    append_capped(t.host_value_, at, n, max_host_bytes);
  if (equals_nocase(t.field_, "x-request-id"))
    append_capped(t.request_id_value_, at, n, max_request_id_bytes);
  return 0;
}

int continue_tracker::header_done() {
  // A value longer than what is kept is not 100-continue, whatever blanks
  // end the part kept.
  if (equals_nocase(field_, "expect") && value_bytes_ <= kept_bytes &&
      equals_nocase(trim_blanks(value_), "100-continue"))
    expects_continue_ = true;
  if (equals_nocase(field_, "origin"))
    origin_ = origin_value_.size() <= max_origin_bytes
                  ? std::string{trim_blanks(origin_value_)}
                  : std::string{};
  // The first one, as the server reads it (opt_value_of).
  if (equals_nocase(field_, "x-request-id") && request_ids_++ == 0) {
    auto id = trim_blanks(request_id_value_);
    if (usable_request_id(id))
      request_id_ = std::string{id};
  }
  if (equals_nocase(field_, "host")) {
    if (++hosts_ > 1) {
      refused_ = refusal::malformed;
      malformed_why_ = "more than one Host header field";
      return 1;
    }
    if (host_value_.size() > max_host_bytes ||
        !valid_host(trim_blanks(host_value_))) {
      refused_ = refusal::malformed;
      malformed_why_ = "a Host header field that is not host[:port]";
      return 1;
    }
  }
  return 0;
}

int continue_tracker::on_headers_complete(http_parser* p) {
  auto& t = self(p);
  t.head_complete_ = true;
  if (t.in_value_ && t.header_done() != 0)
    return -1;
  bool http11 = p->http_major > 1 || (p->http_major == 1 && p->http_minor >= 1);
  bool length_known = p->content_length != ULLONG_MAX;
  bool body =
      (p->flags & F_CHUNKED) != 0 || (p->content_length > 0 && length_known);
  // RFC 9112 §6.1: a Transfer-Encoding on HTTP/1.0 is faulty framing
  // (libhttp-parser honours chunked there).
  if ((p->flags & F_CHUNKED) != 0 && !http11) {
    t.refused_ = refusal::malformed;
    t.malformed_why_ = "Transfer-Encoding: chunked on an HTTP/1.0 request";
    return -1;
  }
  if (http11 && t.hosts_ == 0) {
    t.refused_ = refusal::malformed;
    t.malformed_why_ = "an HTTP/1.1 request without a Host header field";
    return -1;
  }
  if (body && t.key_field_bytes_ > 0 && !t.valid_key()) {
    // Every route that reads a body needs a key (POST /api/v1/resize; on
    // the others a body is refused after it was read): refused before a
    // byte of it is, so a client without a key cannot make the server
    // hold bodies (a chunked one up to twice the body limit) on each of its
    // connections. Stop, as for a body too large.
    t.refused_ = refusal::unauthorized;
    return -1;
  }
  // After the key: a client without one learns nothing of the limits.
  auto declared_limit =
      t.limits_.declared_body > 0 ? t.limits_.declared_body : t.limits_.body;
  if (length_known && declared_limit > 0 &&
      p->content_length > declared_limit) {
    t.refused_ = refusal::body;
    t.announced_ = p->content_length;
    // Stop: the connection ends with the 413. (1 would only tell
    // http_parser to skip the body: it went on with the bytes after it as
    // the next request, whose own refusal then replaced this one.)
    return -1;
  }
  // A body that cannot fit in the upload budget now is not read: 503 and
  // Retry-After instead of "100 Continue". A chunked one must find room
  // for its first byte. (Its bytes are taken as they arrive, on_body.)
  if (body && t.budget_ &&
      !t.budget_->fits(length_known ? p->content_length : 1)) {
    t.refused_ = refusal::busy;
    t.announced_ = length_known ? p->content_length : 0;
    t.chunked_ = !length_known;
    return -1;
  }
  if (t.expects_continue_ && http11 && body)
    t.due_ = true;
  return 0;
}

bool continue_tracker::valid_key() {
  auto view = [&](bool has,
                  const std::string& value) -> std::optional<std::string_view> {
    if (!has)
      return std::nullopt;
    return std::string_view{value};
  };
  auto key = presented_key(view(has_authorization_, authorization_),
                           view(has_x_api_key_, x_api_key_));
  key_presented_ = key.has_value();
  return key && matching_key(*key, *api_keys_).has_value();
}

const char* continue_tracker::method() const {
  if (!method_known_)
    return "-";
  return http_method_str(static_cast<http_method>(parser_.method));
}

bool continue_tracker::restinio_refuses_too() const {
  switch (refused_) {
  case refusal::body:
  case refusal::url:
  case refusal::unparsable:
  case refusal::unknown_method:
    return true;
  case refusal::headers:
    // A field over its limit, or too many; not the head over 64 KiB in
    // all, which libhttp-parser takes up to 80 KiB. (Found by a review:
    // RESTinio answered such a request after the 431, and read the
    // connection's next requests with no tracker watching.)
    return head_bytes_ <= max_head_bytes;
  default:
    return false;
  }
}

const char* continue_tracker::parse_error() const {
  return http_errno_description(HTTP_PARSER_ERRNO(&parser_));
}

// RESTinio's restinio_body_cb: the body so far plus this piece, over the
// limit, fails the parse. Only a chunked body gets there (a Content-Length
// over the limit was refused at the header block).
int continue_tracker::on_body(http_parser* p, const char*, size_t n) {
  auto& t = self(p);
  t.body_bytes_ += n;
  if (t.limits_.body > 0 && t.body_bytes_ > t.limits_.body) {
    t.refused_ = refusal::body;
    t.announced_ = t.body_bytes_;
    t.chunked_ = true;
    return 1;
  }
  // The bytes RESTinio is about to append to the request's body.
  if (t.budget_) {
    if (!t.budget_->take(n)) {
      t.refused_ = refusal::busy;
      t.announced_ = t.body_bytes_ - n;
      t.chunked_ = (p->flags & F_CHUNKED) != 0;
      t.busy_midway_ = true;
      return 1;
    }
    t.held_ += n;
  }
  return 0;
}

int continue_tracker::on_chunk_header(http_parser* p) {
  auto& t = self(p);
  if (t.limits_.chunks > 0 && ++t.chunks_ > t.limits_.chunks) {
    t.refused_ = refusal::chunks;
    t.chunked_ = true;
    return 1;
  }
  return 0;
}

int continue_tracker::on_message_complete(http_parser* p) {
  ++self(p).ended_in_feed_;
  self(p).in_request_ = false;
  // The body is whole: RESTinio hands it to the handler, which decodes it
  // into the queue (queue.max-bytes counts it from there) or refuses it.
  self(p).give_back_body();
  return 0;
}

// The parser's copy that runs ahead: where the bodies are. In chunked
// transfer coding, content_length is what is left of the chunk.
int continue_tracker::on_body_ahead(http_parser* p, const char* at, size_t n) {
  self(p).body_runs_.push_back(
      {at, n, (p->flags & F_CHUNKED) != 0 && p->content_length == 0});
  return 0;
}

// libhttp-parser, built lenient as Debian ships it, takes any byte after
// the CR that ends the header block, a chunk-size line or a trailer for
// its LF, and any two bytes after a chunk's data for its CRLF (a bare CR
// inside a header line it does refuse). A proxy that reads those bytes
// otherwise frames the stream otherwise: RFC 9112 §2.2 and §7.1 make
// them invalid. Only the framing bytes are checked, as they arrive;
// bodies may hold any byte.
size_t continue_tracker::bad_line_end(const char* data, size_t seen) {
  const char* p = data;
  const char* end = data + seen;
  for (size_t r = 0; p < end; ++r) {
    const char* stop =
        r < body_runs_.size() ? std::min(body_runs_[r].at, end) : end;
    while (p < stop) {
      if (!lf_due_ && !cr_due_) { // to the next CR
        auto cr = static_cast<const char*>(
            std::memchr(p, '\r', static_cast<size_t>(stop - p)));
        if (cr == nullptr) {
          p = stop;
          break;
        }
        p = cr;
      }
      if (!framing_byte(*p))
        return static_cast<size_t>(p - data);
      ++p;
    }
    if (r >= body_runs_.size())
      break;
    p = std::max(p, std::min(body_runs_[r].at + body_runs_[r].size, end));
    if (body_runs_[r].ends_chunk)
      cr_due_ = true;
  }
  return SIZE_MAX;
}

bool continue_tracker::framing_byte(char c) {
  const char* why = nullptr;
  if (lf_due_) {
    if (c != '\n')
      why = "a CR not followed by LF";
    lf_due_ = false;
  } else if (cr_due_) {
    if (c != '\r')
      why = "a chunk's data not followed by CRLF";
    cr_due_ = false;
    lf_due_ = c == '\r';
  } else {
    lf_due_ = c == '\r';
  }
  if (why != nullptr)
    bad_line_end_why_ = why;
  return why == nullptr;
}

continue_socket::state::state(asio::io_context& io)
    : socket(io), tracker(socket_limits, &socket_api_keys, socket_budget) {}

namespace {

// The admitted connections, for shed_stalled: entries are added by admit()
// and removed by the state's destructor. Its lock also guards each state's
// `strand` and `has_strand`.
std::mutex registry_mutex;

} // namespace

std::list<std::weak_ptr<continue_socket::state>>& continue_socket::registry() {
  static std::list<std::weak_ptr<state>> entries;
  return entries;
}

continue_socket::state::~state() {
  if (!enlisted)
    return;
  std::lock_guard<std::mutex> lock{registry_mutex};
  registry().erase(entry);
}

void continue_socket::state::note_executor(const asio::any_io_executor& ex) {
  if (has_strand || !enlisted)
    return;
  std::lock_guard<std::mutex> lock{registry_mutex};
  strand = ex;
  has_strand = true;
}

bool continue_socket::stalled(const state& st, int64_t now) {
  if (!st.reading || st.writing || st.shed)
    return false;
  if (now - st.quiet_since.load() >= ns_of_duration(shed_quiet))
    return true;
  int64_t head = st.head_since.load();
  return head != 0 && now - head >= ns_of_duration(shed_slow_head);
}

size_t continue_socket::shed_stalled(std::chrono::steady_clock::time_point t,
                                     size_t most) {
  int64_t now = ns_of(t);
  // Every state locked here is released after the lock is: the last
  // reference's release runs the state's destructor, which takes the lock.
  std::vector<std::shared_ptr<state>> seen;
  std::vector<std::pair<std::shared_ptr<state>, asio::any_io_executor>> due;
  {
    std::lock_guard<std::mutex> lock{registry_mutex};
    seen.reserve(registry().size());
    for (auto& weak : registry()) {
      seen.push_back(weak.lock());
      auto& st = seen.back();
      if (st && st->has_strand && stalled(*st, now))
        due.emplace_back(st, st->strand);
    }
  }
  // The longest quiet first: a pool of keep-alive clients that fills the
  // limit loses a few of its idle connections a tick, not all at once.
  if (due.size() > most) {
    std::partial_sort(due.begin(), due.begin() + static_cast<long>(most),
                      due.end(), [](const auto& a, const auto& b) {
                        return a.first->quiet_since.load() <
                               b.first->quiet_since.load();
                      });
    due.resize(most);
  }
  for (auto& [st, strand] : due)
    asio::post(strand, [st = st, now] { st->shed_if_stalled(now); });
  return due.size();
}

void continue_socket::state::shed_if_stalled(int64_t now) {
  // On the connection's strand: nothing of RESTinio's runs meanwhile.
  if (refused || !socket.is_open() || !stalled(*this, now))
    return;
  bool in_request = tracker.in_request() && !tracker.stopped();
  metrics::http_connection_shed();
  if (auto count = shed_log.note(0, std::chrono::steady_clock::now()))
    log::warn("connections closed to make room: the node holds "
              "http.max-connections and these were stalled",
              {{"closed", count}, // since the last such line
               {"quiet_s", static_cast<int64_t>(shed_quiet.count())},
               {"slow_head_s", static_cast<int64_t>(shed_slow_head.count())},
               {"log_every_s", shed_log.every_seconds()}});
  if (in_request) {
    refused = true; // the close lingers: the client reads the answer
    write_without_waiting(
        socket,
        logged_refusal(
            tracker,
            {error_code::request_timeout,
             fmt::format("the node holds its most connections "
                         "(http.max-connections) and this request was "
                         "stalled (nothing for {} s, or its header block "
                         "unfinished after {} s): closed to make room; send "
                         "it again, at once",
                         shed_quiet.count(), shed_slow_head.count())}));
  }
  shed = true;
  asio::error_code ignored;
  socket.cancel(ignored); // RESTinio's read ends, aborted: it closes
}

void continue_socket::set_cors(const cors_policy& policy) {
  socket_cors = policy;
}

void continue_socket::set_upload_budget(std::shared_ptr<upload_budget> budget) {
  socket_budget = std::move(budget);
}

void continue_socket::set_read_timeout(std::chrono::seconds timeout) {
  socket_read_timeout = timeout;
}

void continue_socket::set_api_keys(std::vector<std::string> keys) {
  socket_api_keys = std::move(keys);
}

void continue_socket::set_limits(const request_limits& limits,
                                 uint64_t stated_body_limit_bytes) {
  socket_limits = limits;
  stated_body_limit = stated_body_limit_bytes;
}

continue_socket::continue_socket(asio::io_context& io)
    : io_{&io}, state_{std::make_shared<state>(io)} {}

continue_socket::continue_socket(continue_socket&& other)
    : io_{other.io_}, state_{std::move(other.state_)} {
  other.state_ = std::make_shared<state>(*other.io_);
}

continue_socket& continue_socket::operator=(continue_socket&& other) {
  if (this != &other) {
    io_ = other.io_;
    state_ = std::move(other.state_);
    other.state_ = std::make_shared<state>(*other.io_);
  }
  return *this;
}

namespace {

std::atomic<int> lingering{0};

// One refused connection being drained: the socket, a timer bounding the
// drain, a scratch buffer; its handlers run on one strand, so the timer's
// close never overlaps a read.
struct drain : std::enable_shared_from_this<drain> {
  drain(asio::ip::tcp::socket s, asio::io_context& io)
      : socket(std::move(s)), strand(asio::make_strand(io)), deadline(strand) {
    ++lingering;
  }
  ~drain() { --lingering; }
  void start() {
    deadline.expires_after(linger_limit);
    deadline.async_wait([self = shared_from_this()](const asio::error_code&) {
      asio::error_code ignored;
      self->socket.close(ignored);
    });
    read();
  }
  void read() {
    socket.async_read_some(
        asio::buffer(scratch),
        asio::bind_executor(strand, [self = shared_from_this()](
                                        const asio::error_code& ec, size_t) {
          if (!ec)
            return self->read();
          // The client closed (or the deadline did): done.
          asio::error_code ignored;
          self->deadline.cancel(ignored);
          self->socket.close(ignored);
        }));
  }
  asio::ip::tcp::socket socket;
  asio::strand<asio::io_context::executor_type> strand;
  asio::steady_timer deadline;
  std::array<char, 16384> scratch;
};

} // namespace

int lingering_connections() {
  return lingering.load();
}

void continue_socket::set_connection_limit(
    std::shared_ptr<connection_limit> limit, int retry_after) {
  connection_cap = std::move(limit);
  cap_retry_after = retry_after;
}

void continue_socket::enlist() {
  std::lock_guard<std::mutex> lock{registry_mutex};
  if (state_->enlisted)
    return;
  state_->entry = registry().insert(registry().end(), state_);
  state_->enlisted = true;
  state_->quiet_since = now_ns();
}

bool continue_socket::admit(uint64_t id) {
  if (!connection_cap) {
    enlist();
    return true;
  }
  asio::error_code ec;
  auto peer_endpoint = state_->socket.remote_endpoint(ec);
  if (ec)
    return true; // gone already: RESTinio's first read finds out
  auto peer = to_ip_address(peer_endpoint.address());
  if (connection_cap->admit(id, peer)) {
    enlist();
    return true;
  }
  metrics::http_connection_refused();
  auto client = address_identity(peer);
  auto limit = connection_cap->per_client();
  if (auto count = cap_log.note(0, std::chrono::steady_clock::now()))
    log::warn("connection refused: its client holds its share of "
              "connections",
              {{"client", client},
               {"limit", static_cast<uint64_t>(limit)},
               {"refused", count}, // since the last such line
               {"log_every_s", cap_log.every_seconds()}});
  // Written before anything is read: a client that sends its request
  // first reads it after (the close lingers, see linger()).
  failure why{error_code::too_many_connections,
              fmt::format("{} has {} connections open to this node, the most "
                          "one client may (http.max-connections-per-client); "
                          "reuse one (keep-alive) or retry later",
                          client, limit)};
  auto answer = refusal_answer(
      http_status(why.code), new_request_id(),
      fmt::format("Retry-After: {}\r\n{}", cap_retry_after, cors_fields({})),
      error_body(why), false);
  state_->refused = true;
  write_without_waiting(state_->socket, answer);
  return false;
}

void continue_socket::close(asio::error_code& ec) {
  if (!state_->refused || !state_->socket.is_open()) {
    state_->socket.close(ec);
    return;
  }
  // RESTinio's own read is cancelled (it completes with operation_aborted);
  // from here the drain owns the socket and RESTinio keeps a closed one.
  linger(std::exchange(state_, std::make_shared<state>(*io_)), *io_);
  ec = {};
}

void continue_socket::linger(std::shared_ptr<state> st, asio::io_context& io) {
  asio::error_code ignored;
  if (lingering.load() >= max_lingering) {
    st->socket.close(ignored);
    return;
  }
  st->socket.cancel(ignored);
  auto d = std::make_shared<drain>(std::move(st->socket), io);
  asio::post(d->strand, [d] { d->start(); });
}

bool continue_socket::state::received(const char* data, size_t size) {
  quiet_since = now_ns();
  bool interim_due = tracker.feed(data, size);
  head_since =
      tracker.in_head() && !tracker.stopped() ? ns_of(tracker.started()) : 0;
  if (tracker.refused() != continue_tracker::refusal::none) {
    bool stop_restinio = !tracker.restinio_refuses_too();
    if (refused)
      return stop_restinio;
    refused = true;
    if (tracker.refused() == continue_tracker::refusal::busy) {
      metrics::http_upload_refused();
      if (auto count = budget_log.note(0, std::chrono::steady_clock::now()))
        log::warn("upload refused: the node holds its most request body "
                  "bytes at once",
                  {{"held", socket_budget ? socket_budget->held() : 0},
                   {"limit", socket_budget ? socket_budget->capacity() : 0},
                   {"refused", count}, // since the last such line
                   {"log_every_s", budget_log.every_seconds()}});
    }
    auto answer = logged_refusal(tracker, refusal_of(tracker));
    if (writing || tracker.refused_behind()) {
      // Behind an answer still to be written: it would be taken for that
      // request's answer. Written when RESTinio reaches this request and
      // shuts the connection down (shutdown()). Unless RESTinio is to be
      // stopped now: the answer before it is never written then, and the
      // connection ends unanswered.
      if (!stop_restinio) {
        waiting_answer = std::move(answer);
        writes_at_waiting = writes_done;
      }
      return stop_restinio;
    }
    // Before RESTinio sees the bytes it will refuse by closing.
    write_without_waiting(socket, answer);
    return stop_restinio;
  }
  if (writing || !interim_due)
    return false;
  // 25 bytes into an idle connection's empty send buffer: written at once.
  // On an error the connection is failing anyway; RESTinio's next read or
  // write reports it.
  static constexpr std::string_view interim = "HTTP/1.1 100 Continue\r\n\r\n";
  write_without_waiting(socket, interim);
  return false;
}

// RESTinio reads a connection's next request only once the one before is
// answered, and then only http.read-timeout runs: a shutdown while one of
// its reads is under way and a request has begun arriving is that timeout
// (a client that leaves ends the read first, with an error; a request the
// parser cannot take stops the tracker too). The client is told why, as
// RFC 9110 §15.5.9 has it, instead of finding the connection closed; the
// request gets its access line and is counted.
void continue_socket::state::answer_cut_off_request() {
  if (refused || !reading || writing || !tracker.in_request() ||
      tracker.stopped() || !socket.is_open())
    return;
  refused = true; // the close lingers: the client reads the answer
  write_without_waiting(
      socket,
      logged_refusal(
          tracker,
          {error_code::request_timeout,
           fmt::format("the request was not received whole within {} s "
                       "(http.read-timeout): send it at once, or faster",
                       socket_read_timeout.count())}));
}

void continue_socket::state::write_waiting_answer() {
  if (waiting_answer.empty() || !socket.is_open())
    return;
  // Not while RESTinio is cutting an answer off (a write timeout), nor
  // before the answer it waits behind was written (a handler timeout).
  if (!writing && writes_done > writes_at_waiting)
    write_without_waiting(socket, waiting_answer);
  waiting_answer.clear();
}

} // namespace resized::http
