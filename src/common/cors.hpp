// Cross-origin requests from browsers (CORS): which web origins may call the
// API from their pages (http.cors-origins). Off unless configured: a page
// on another origin then cannot read any answer, as before. Pure functions,
// unit-tested without sockets; the HTTP layer adds the header fields.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace resized {

/// http.cors-origins, parsed.
struct cors_policy {
  bool any = false;                 // "*": every origin
  std::vector<std::string> origins; // normalized "scheme://host[:port]"
  bool enabled() const { return any || !origins.empty(); }
};

/// One configured origin in the form a browser sends it in `Origin`:
/// "http" or "https", "://", a host name, IPv4 address or bracketed IPv6
/// address, an optional port, nothing else (no path, no trailing slash).
/// Scheme and host are lowercased and a default port (80, 443) dropped, as
/// browsers serialize origins. nullopt when `text` is not such an origin.
std::optional<std::string> normalize_origin(std::string_view text);

/// The Access-Control-Allow-Origin value for a request whose `Origin` is
/// `origin`: "*" when every origin is allowed (even "null", a sandboxed
/// page's), the origin itself when it is listed, nullopt otherwise.
std::optional<std::string> allowed_origin(const cors_policy& policy,
                                          std::string_view origin);

/// The request header fields a cross-origin page may send (preflight's
/// Access-Control-Allow-Headers), and the answer's it may read beyond the
/// CORS-safelisted ones (Access-Control-Expose-Headers).
inline constexpr std::string_view cors_allowed_headers =
    "Authorization, Content-Type, X-API-Key, If-None-Match, X-Request-Id";
inline constexpr std::string_view cors_exposed_headers =
    "Location, Retry-After, X-Request-Id, ETag";
/// How long a browser may reuse a preflight's answer (seconds).
inline constexpr int cors_max_age_s = 600;

} // namespace resized
