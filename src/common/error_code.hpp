// Every error that crosses a layer boundary in resized, and the one table
// that maps it to an HTTP status. Codes are stable snake_case identifiers:
// clients match on them, so never rename one.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace resized {

enum class error_code : uint8_t {
  none = 0,
  // -- request errors (answered by the HTTP layer) --------------------------
  invalid_json,           // 400 body is not valid JSON / not an object
  missing_image_data,     // 400 JSON body without a string "imageData"
  invalid_base64,         // 400 imageData is not valid base64
  invalid_option,         // 400 width/height/mode/format/quality out of range
  invalid_token,          // 400 token in the path is not a UUID
  unauthorized,           // 401 API key missing or wrong
  not_found,              // 404 no such route
  unknown_token,          // 404 token unknown or expired
  method_not_allowed,     // 405 route exists, method does not
  payload_too_large,      // 413 body or decoded bytes over limits
  image_too_large,        // 413 pixel count or dimension over limits
  uri_too_long,           // 414 request target over http.max-url-bytes
  unsupported_media_type, // 415 Content-Type not accepted
  unsupported_format,     // 415 bytes are not an accepted image format
  headers_too_large,      // 431 a header field, or their count, over limits
  queue_full,             // 503 queue count or bytes limit reached
  no_workers,             // 503 no resize worker available
  store_unavailable,      // 503 Redis unreachable
  shutting_down,          // 503 node is stopping
  timeout,                // 504 internal deadline passed
  internal_error,         // 500 a bug: should never be seen
  // -- task failures (status FAILURE, carried in the task record) -----------
  corrupt_image,      // decoder rejected the bytes
  processing_timeout, // resize.task-timeout passed while processing
  worker_lost,        // the task's worker died resize.max-attempts times
  encode_failed,      // encoder failed (e.g. format not writable)
  result_not_stored,  // Redis refused the result (e.g. maxmemory reached)
  // -- store errors, inside the service -------------------------------------
  store_full, // 503 Redis at maxmemory refused a write (-OOM): it was not
              // made, and the same write again would be refused again
  // -- request errors added later (appended: the numbering stays) ----------
  client_queue_full,      // 503 this client's share of the queue is taken
                          // (queue.max-per-client, queue.max-bytes-per-client)
  origin_not_allowed,     // 403 a CORS preflight from an origin not listed in
                          // http.cors-origins
  too_many_connections,   // 503 the client's address holds
                          // http.max-connections-per-client connections
                          // already: answered before the request is read
  malformed_request,      // 400 framing a proxy could read otherwise
                          // (RFC 9112: blanks in a field name, Transfer-
                          // Encoding on HTTP/1.0): refused at the header block
  request_timeout,        // 408 a request not received whole within
                          // http.read-timeout: answered, then closed
  too_many_uploads,       // 503 the request bodies being received hold
                          // http.max-receiving-bytes: refused at the header
                          // block, or as the body's bytes arrive
  method_not_implemented, // 501 a method the HTTP parser does not know
};

/// Stable snake_case name of `code`, e.g. "invalid_base64".
std::string_view to_string(error_code code);

/// Parses a name produced by `to_string`; returns false for unknown names.
bool from_string(std::string_view name, error_code& code);

/// HTTP status a request answers with when it fails with `code`.
int http_status(error_code code);

/// An error code with a human-readable message.
struct failure {
  error_code code = error_code::none;
  std::string message;
};

} // namespace resized
