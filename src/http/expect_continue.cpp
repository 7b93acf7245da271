#include "http/expect_continue.hpp"

#include <algorithm>
#include <atomic>
#include <climits>
#include <strings.h> // strncasecmp

#include <fmt/format.h>

#include "http/responses.hpp"

namespace resized::http {

namespace {

constexpr size_t kept_bytes = 32; // of a header's name and value

continue_tracker& self(http_parser* p) {
  return *static_cast<continue_tracker*>(p->data);
}

void append_capped(std::string& s, const char* at, size_t n) {
  if (s.size() < kept_bytes)
    s.append(at, std::min(n, kept_bytes - s.size() + 1)); // +1: "too long"
}

bool equals_nocase(const std::string& s, const char* word) {
  size_t n = std::char_traits<char>::length(word);
  return s.size() == n && strncasecmp(s.data(), word, n) == 0;
}

std::string trimmed(const std::string& s) {
  auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos)
    return {};
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

std::atomic<uint64_t> socket_body_limit{0};
std::atomic<uint64_t> stated_body_limit{0};

} // namespace

continue_tracker::continue_tracker(uint64_t body_limit)
    : body_limit_{body_limit} {
  http_parser_init(&parser_, HTTP_REQUEST);
  parser_.data = this;
  http_parser_settings_init(&settings_);
  settings_.on_message_begin = &continue_tracker::on_message_begin;
  settings_.on_header_field = &continue_tracker::on_header_field;
  settings_.on_header_value = &continue_tracker::on_header_value;
  settings_.on_headers_complete = &continue_tracker::on_headers_complete;
}

bool continue_tracker::feed(const char* data, size_t size) {
  // (No bytes would tell http_parser the stream has ended.)
  if (stopped_ || size == 0)
    return false;
  due_ = false;
  size_t parsed = http_parser_execute(&parser_, &settings_, data, size);
  if (parser_.upgrade || HTTP_PARSER_ERRNO(&parser_) != HPE_OK ||
      parsed != size)
    stopped_ = true;
  return due_;
}

int continue_tracker::on_message_begin(http_parser* p) {
  auto& t = self(p);
  t.field_.clear();
  t.value_.clear();
  t.in_value_ = false;
  t.expects_continue_ = false;
  return 0;
}

int continue_tracker::on_header_field(http_parser* p, const char* at,
                                      size_t n) {
  auto& t = self(p);
  if (t.in_value_) { // a new header begins: the previous one is complete
    t.header_done();
    t.field_.clear();
    t.value_.clear();
    t.in_value_ = false;
  }
  append_capped(t.field_, at, n);
  return 0;
}

int continue_tracker::on_header_value(http_parser* p, const char* at,
                                      size_t n) {
  auto& t = self(p);
  t.in_value_ = true;
  append_capped(t.value_, at, n);
  return 0;
}

void continue_tracker::header_done() {
  if (equals_nocase(field_, "expect") &&
      equals_nocase(trimmed(value_), "100-continue"))
    expects_continue_ = true;
}

int continue_tracker::on_headers_complete(http_parser* p) {
  auto& t = self(p);
  if (t.in_value_)
    t.header_done();
  bool http11 = p->http_major > 1 || (p->http_major == 1 && p->http_minor >= 1);
  bool length_known = p->content_length != ULLONG_MAX;
  if (length_known && t.body_limit_ > 0 && p->content_length > t.body_limit_) {
    t.too_large_ = true;
    t.announced_ = p->content_length;
    return 1; // stop: the connection ends with the 413
  }
  bool body =
      (p->flags & F_CHUNKED) != 0 || (p->content_length > 0 && length_known);
  if (t.expects_continue_ && http11 && body)
    t.due_ = true;
  return 0;
}

continue_socket::state::state(asio::io_context& io)
    : socket(io), tracker(socket_body_limit.load()) {}

void continue_socket::set_body_limit(uint64_t read_limit,
                                     uint64_t stated_limit) {
  socket_body_limit.store(read_limit);
  stated_body_limit.store(stated_limit);
}

continue_socket::continue_socket(asio::io_context& io)
    : io_{&io}, state_{std::make_unique<state>(io)} {}

continue_socket::continue_socket(continue_socket&& other)
    : io_{other.io_}, state_{std::move(other.state_)} {
  other.state_ = std::make_unique<state>(*other.io_);
}

continue_socket& continue_socket::operator=(continue_socket&& other) {
  if (this != &other) {
    io_ = other.io_;
    state_ = std::move(other.state_);
    other.state_ = std::make_unique<state>(*other.io_);
  }
  return *this;
}

void continue_socket::state::received(const char* data, size_t size) {
  bool interim_due = tracker.feed(data, size);
  if (writing)
    return;
  if (tracker.too_large()) {
    if (refused)
      return;
    refused = true;
    // Before RESTinio sees the header block it will refuse by closing.
    auto body = error_body(
        {error_code::payload_too_large,
         fmt::format("body is {} bytes, limit is {}", tracker.announced(),
                     stated_body_limit.load())});
    auto answer = fmt::format("HTTP/1.1 413 Payload Too Large\r\n"
                              "Content-Type: application/json\r\n"
                              "Content-Length: {}\r\n"
                              "Connection: close\r\n\r\n{}",
                              body.size(), body);
    asio::error_code ignored;
    asio::write(socket, asio::buffer(answer), ignored);
    return;
  }
  if (!interim_due)
    return;
  // 25 bytes into an idle connection's empty send buffer: written at once.
  // On an error the connection is failing anyway; RESTinio's next read or
  // write reports it.
  static constexpr char interim[] = "HTTP/1.1 100 Continue\r\n\r\n";
  asio::error_code ignored;
  asio::write(socket, asio::buffer(interim, sizeof interim - 1), ignored);
}

} // namespace resized::http
