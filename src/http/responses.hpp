// JSON bodies of the API (RapidJSON writer: correct escaping for free).
#pragma once

#include <ctime>
#include <string>
#include <string_view>

#include "common/error_code.hpp"
#include "common/service.hpp"
#include "common/task_record.hpp"

namespace resized::http {

/// {"success": false, "error": {"code": ..., "message": ...}}
std::string error_body(const failure& err);

/// {"success": true, "token": ...}
std::string accepted_body(const std::string& token);

/// Path of a result image: /api/v1/images/<token>.<ext>
std::string image_path(const task_record& rec);

/// The poll answer of API.md for `rec`; `public_url` ("" = relative URLs).
std::string status_body(const task_record& rec, const std::string& public_url);

/// GET /api/v1/cluster: this node, its queue, every node it places work on.
std::string cluster_body(const cluster_view& view);

/// GET /readyz when ready: {"status": "ready", "nodes", "workers", "busy",
/// "queue_depth"} (nodes with at least one worker).
std::string ready_body(size_t nodes, size_t workers, size_t busy,
                       size_t queue_depth);

/// HTTP reason phrase of a status code.
const char* reason_phrase(int status);

/// A fresh request id (16 hex digits) for a request that brought none.
std::string new_request_id();

/// The Date field's value for an answer sent at `t` (RFC 9110 §5.6.7
/// IMF-fixdate, "Sun, 06 Nov 1994 08:49:37 GMT"): every answer carries one
/// (RFC 9110 §6.6.1, an origin server with a clock). Made once a second per
/// thread.
std::string http_date(std::time_t t);
inline std::string http_date_now() {
  return http_date(std::time(nullptr));
}

/// Whether a client's X-Request-Id value is echoed (else a fresh one is
/// made): 1..max_request_id_bytes printable ASCII characters, no blanks.
bool usable_request_id(std::string_view id);
constexpr size_t max_request_id_bytes = 128;

/// One answered request, as the access log and the HTTP metrics see it.
/// `code` and `token` are left out of the line when empty. Client-chosen
/// strings (path, token) are cut at 200 bytes in the line, so an 8 KB URL
/// cannot make a 16 KB line.
struct access_entry {
  std::string_view request_id;
  std::string_view method;
  std::string_view path;
  size_t path_bytes;      // the whole path's size (`path` may be its start)
  std::string_view route; // a route template: the metrics' label
  int status = 0;
  size_t bytes = 0; // body bytes written
  double seconds = 0;
  std::string_view code = {};
  std::string_view token = {};
};

/// A client-chosen string of `size` bytes that starts with `text`, for a
/// log line or a message: at most 200 bytes of it, then "...(N bytes)".
std::string clipped(std::string_view text, size_t size);
inline std::string clipped(std::string_view text) {
  return clipped(text, text.size());
}

/// Counts `e` in the HTTP metrics and, at info level, writes its access
/// line (as set_access_lines says): the one place both the router's
/// answers and the socket layer's early ones go through.
void record_access(const access_entry& e);

/// log.access: "all" (default), "errors" (4xx and 5xx answers only) or
/// "off". Set once at start-up.
void set_access_lines(const std::string& which);

} // namespace resized::http
