// A small blocking HTTP client for tests, on libcurl.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace resized::test {

struct http_response {
  long status = 0; // 0 = transport error
  std::string body;
  std::map<std::string, std::string> headers; // keys lower-cased
  std::vector<std::string> status_lines;      // every one, 1xx included
  std::string error;                          // curl's message on failure
  long new_connections = 0; // connections opened for it (0: one reused)
  std::string header(const std::string& lower_name) const;
};

/// One request. `headers` like {"Content-Type: application/json"}. A body
/// goes without `Expect: 100-continue` unless `headers` asks for it; then
/// curl waits up to 30 s for the interim answer before sending the body.
http_response http_request(
    const std::string& method, const std::string& url,
    const std::string& body = {}, const std::vector<std::string>& headers = {},
    std::chrono::milliseconds timeout = std::chrono::milliseconds{30000});

inline http_response http_get(const std::string& url,
                              const std::vector<std::string>& headers = {}) {
  return http_request("GET", url, {}, headers);
}

inline http_response http_post(const std::string& url, const std::string& body,
                               const std::string& content_type,
                               const std::vector<std::string>& headers = {}) {
  auto all = headers;
  all.push_back("Content-Type: " + content_type);
  return http_request("POST", url, body, all);
}

/// Writes `request` as is to 127.0.0.1:`port` and returns every byte the
/// server sends until it closes the connection (ask it to with
/// `Connection: close`) or `timeout` passes. For what curl hides, e.g. a
/// body after a HEAD answer.
std::string
raw_http(uint16_t port, const std::string& request,
         std::chrono::milliseconds timeout = std::chrono::milliseconds{10000});

/// Standard base64 with padding (test-side encoder, independent of src/).
std::string base64_encode(const std::string& bytes);

} // namespace resized::test
