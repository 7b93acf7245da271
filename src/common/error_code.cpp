#include "common/error_code.hpp"

#include <array>

namespace resized {

namespace {

struct entry {
  error_code code;
  std::string_view name;
  int status;
};

// The single table from error code to name and HTTP status.
constexpr std::array<entry, 35> table{{
    {error_code::none, "none", 200},
    {error_code::invalid_json, "invalid_json", 400},
    {error_code::missing_image_data, "missing_image_data", 400},
    {error_code::invalid_base64, "invalid_base64", 400},
    {error_code::invalid_option, "invalid_option", 400},
    {error_code::invalid_token, "invalid_token", 400},
    {error_code::unauthorized, "unauthorized", 401},
    {error_code::not_found, "not_found", 404},
    {error_code::unknown_token, "unknown_token", 404},
    {error_code::method_not_allowed, "method_not_allowed", 405},
    {error_code::payload_too_large, "payload_too_large", 413},
    {error_code::image_too_large, "image_too_large", 413},
    {error_code::uri_too_long, "uri_too_long", 414},
    {error_code::unsupported_media_type, "unsupported_media_type", 415},
    {error_code::unsupported_format, "unsupported_format", 415},
    {error_code::headers_too_large, "headers_too_large", 431},
    {error_code::queue_full, "queue_full", 503},
    {error_code::no_workers, "no_workers", 503},
    {error_code::store_unavailable, "store_unavailable", 503},
    {error_code::shutting_down, "shutting_down", 503},
    {error_code::timeout, "timeout", 504},
    {error_code::internal_error, "internal_error", 500},
    {error_code::corrupt_image, "corrupt_image", 415},
    {error_code::processing_timeout, "processing_timeout", 504},
    {error_code::worker_lost, "worker_lost", 500},
    {error_code::encode_failed, "encode_failed", 500},
    {error_code::result_not_stored, "result_not_stored", 507},
    {error_code::store_full, "store_full", 503},
    {error_code::client_queue_full, "client_queue_full", 503},
    {error_code::origin_not_allowed, "origin_not_allowed", 403},
    {error_code::too_many_connections, "too_many_connections", 503},
    {error_code::malformed_request, "malformed_request", 400},
    {error_code::request_timeout, "request_timeout", 408},
    {error_code::too_many_uploads, "too_many_uploads", 503},
    {error_code::method_not_implemented, "method_not_implemented", 501},
}};

const entry& lookup(error_code code) {
  for (const auto& e : table)
    if (e.code == code)
      return e;
  return table[static_cast<size_t>(error_code::internal_error)];
}

} // namespace

std::string_view to_string(error_code code) {
  return lookup(code).name;
}

bool from_string(std::string_view name, error_code& code) {
  for (const auto& e : table) {
    if (e.name == name) {
      code = e.code;
      return true;
    }
  }
  return false;
}

int http_status(error_code code) {
  return lookup(code).status;
}

} // namespace resized
