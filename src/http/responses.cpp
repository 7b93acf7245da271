#include "http/responses.hpp"

#include <algorithm>
#include <atomic>
#include <random>
#include <vector>

#include <fmt/format.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "common/log.hpp"
#include "common/metrics.hpp"

namespace resized::http {

namespace {

using writer_type = rapidjson::Writer<rapidjson::StringBuffer>;

// A string member; bytes that are not UTF-8 (a client's path or field
// quoted in a message) become U+FFFD, so that the body is JSON text.
void put(writer_type& w, const char* key, std::string_view value) {
  std::string scratch;
  value = log::valid_utf8(value, scratch);
  w.Key(key);
  w.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
}

} // namespace

std::string error_body(const failure& err) {
  rapidjson::StringBuffer buf;
  writer_type w{buf};
  w.StartObject();
  w.Key("success");
  w.Bool(false);
  w.Key("error");
  w.StartObject();
  put(w, "code", to_string(err.code));
  put(w, "message", err.message);
  w.EndObject();
  w.EndObject();
  return buf.GetString();
}

std::string accepted_body(const std::string& token) {
  rapidjson::StringBuffer buf;
  writer_type w{buf};
  w.StartObject();
  w.Key("success");
  w.Bool(true);
  put(w, "token", token);
  w.EndObject();
  return buf.GetString();
}

std::string image_path(const task_record& rec) {
  // A twin's own token too: the image route finds the image it shares
  // through its record (stored_image_token). Naming the other task's token
  // told one client another's (which any key could then poll).
  return "/api/v1/images/" + rec.token + "." +
         std::string{imaging::extension(rec.options.format)};
}

std::string status_body(const task_record& rec, const std::string& public_url) {
  rapidjson::StringBuffer buf;
  writer_type w{buf};
  w.StartObject();
  put(w, "token", rec.token);
  put(w, "status", to_string(rec.status));
  w.Key("resized_image_url");
  if (rec.status == task_status::success) {
    auto url = public_url + image_path(rec);
    w.String(url.data(), static_cast<rapidjson::SizeType>(url.size()));
  } else {
    w.Null();
  }
  if (rec.status == task_status::success) {
    w.Key("width");
    w.Int(rec.width);
    w.Key("height");
    w.Int(rec.height);
    w.Key("bytes");
    w.Uint64(rec.output_bytes);
  }
  put(w, "format", imaging::to_string(rec.options.format));
  w.Key("input_bytes");
  w.Uint64(rec.input_bytes);
  put(w, "submitted_at", format_timestamp(rec.submitted_at_ms));
  if (rec.started_at_ms != 0)
    put(w, "started_at", format_timestamp(rec.started_at_ms));
  if (rec.finished_at_ms != 0)
    put(w, "finished_at", format_timestamp(rec.finished_at_ms));
  if (rec.status == task_status::failure) {
    w.Key("error");
    w.StartObject();
    put(w, "code", rec.error_code);
    put(w, "message", rec.error_message);
    w.EndObject();
  }
  w.EndObject();
  return buf.GetString();
}

std::string cluster_body(const cluster_view& view) {
  rapidjson::StringBuffer buf;
  writer_type w{buf};
  auto count = [&](const char* key, uint64_t value) {
    w.Key(key);
    w.Uint64(value);
  };
  w.StartObject();
  put(w, "node", view.node);
  put(w, "role", view.role);
  put(w, "version", view.build);
  put(w, "up_since", format_timestamp(view.up_since_ms));
  count("queue_depth", view.queue_depth);
  count("queued_bytes", view.queued_bytes);
  count("clients", view.clients);
  uint64_t workers = 0;
  uint64_t busy = 0;
  for (const auto& n : view.nodes) {
    workers += n.workers;
    busy += n.busy;
  }
  w.Key("totals");
  w.StartObject();
  count("nodes", view.nodes.size());
  count("workers", workers);
  count("busy", busy);
  count("succeeded", view.succeeded);
  count("failed", view.failed);
  count("retried", view.retried);
  count("reused", view.reused);
  w.EndObject();
  w.Key("nodes");
  w.StartArray();
  for (const auto& n : view.nodes) {
    w.StartObject();
    put(w, "id", n.id);
    put(w, "role", n.role);
    put(w, "address", n.address);
    put(w, "version", n.build);
    count("workers", n.workers);
    count("busy", n.busy);
    count("tasks_done", n.done);
    count("tasks_failed", n.failed);
    put(w, "up_since", format_timestamp(n.since_ms));
    put(w, "state", n.state);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return buf.GetString();
}

std::string ready_body(size_t nodes, size_t workers, size_t busy,
                       size_t queue_depth) {
  rapidjson::StringBuffer buf;
  writer_type w{buf};
  w.StartObject();
  put(w, "status", "ready");
  w.Key("store");
  w.String("ok");
  w.Key("nodes");
  w.Uint64(nodes);
  w.Key("workers");
  w.Uint64(workers);
  w.Key("busy");
  w.Uint64(busy);
  w.Key("queue_depth");
  w.Uint64(queue_depth);
  w.EndObject();
  return buf.GetString();
}

const char* reason_phrase(int status) {
  switch (status) {
  case 200:
    return "OK";
  case 202:
    return "Accepted";
  case 304:
    return "Not Modified";
  case 400:
    return "Bad Request";
  case 401:
    return "Unauthorized";
  case 403:
    return "Forbidden";
  case 404:
    return "Not Found";
  case 408:
    return "Request Timeout";
  case 405:
    return "Method Not Allowed";
  case 413:
    return "Payload Too Large";
  case 414:
    return "URI Too Long";
  case 415:
    return "Unsupported Media Type";
  case 422:
    return "Unprocessable Entity";
  case 431:
    return "Request Header Fields Too Large";
  case 500:
    return "Internal Server Error";
  case 501:
    return "Not Implemented";
  case 503:
    return "Service Unavailable";
  case 504:
    return "Gateway Timeout";
  case 507:
    return "Insufficient Storage";
  default:
    return "Unknown";
  }
}

std::string new_request_id() {
  // Not a secret (it is echoed to the client and logged; tokens, which
  // are, come from getrandom): a seeded PRNG is enough.
  thread_local std::mt19937_64 gen{std::random_device{}()};
  return fmt::format("{:016x}", gen());
}

// By hand rather than RESTinio's make_date_field_value: that is strftime,
// whose %a and %b follow the process's locale, and the field's day and
// month names are English whatever the locale.
std::string http_date(std::time_t t) {
  static constexpr const char* days[] = {"Sun", "Mon", "Tue", "Wed",
                                         "Thu", "Fri", "Sat"};
  static constexpr const char* months[] = {"Jan", "Feb", "Mar", "Apr",
                                           "May", "Jun", "Jul", "Aug",
                                           "Sep", "Oct", "Nov", "Dec"};
  thread_local std::time_t cached_at = -1;
  thread_local std::string cached;
  if (t == cached_at)
    return cached;
  std::tm tm{};
  gmtime_r(&t, &tm);
  cached = fmt::format("{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
                       days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon],
                       tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  cached_at = t;
  return cached;
}

bool usable_request_id(std::string_view id) {
  return !id.empty() && id.size() <= max_request_id_bytes &&
         std::all_of(id.begin(), id.end(),
                     [](char c) { return c > 0x20 && c < 0x7f; });
}

std::string clipped(std::string_view text, size_t size) {
  constexpr size_t max = 200;
  if (size <= max)
    return std::string{text.substr(0, size)};
  return fmt::format("{}...({} bytes)", text.substr(0, max), size);
}

namespace {
// log.access, as a status floor: an answer below it gets no access line
// (0 = all, 400 = errors only, 1000 = none).
std::atomic<int> access_floor{0};
} // namespace

void set_access_lines(const std::string& which) {
  access_floor = which == "off" ? 1000 : which == "errors" ? 400 : 0;
}

void record_access(const access_entry& e) {
  metrics::http_request(e.route, e.status, e.seconds);
  if (e.status < access_floor.load(std::memory_order_relaxed) ||
      !log::enabled(log::level::info))
    return;
  auto path = clipped(e.path, e.path_bytes);
  auto token = clipped(e.token);
  std::vector<log::field> fs{
      {"request_id", e.request_id}, {"method", e.method}, {"path", path},
      {"route", e.route},           {"status", e.status}, {"bytes", e.bytes},
      {"ms", e.seconds * 1000}};
  if (!e.code.empty())
    fs.emplace_back("code", e.code);
  if (!e.token.empty())
    fs.emplace_back("token", token);
  log::write(log::level::info, "request", fs);
}

} // namespace resized::http
