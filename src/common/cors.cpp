#include "common/cors.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <charconv>

#include "common/text.hpp"

namespace resized {

namespace {

char lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

bool is_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

// A DNS name or IPv4 address, already lowercased: dot-separated labels of
// letters, digits and inner hyphens (RFC 1123), none empty.
bool valid_name(std::string_view host) {
  if (host.empty() || host.size() > 253)
    return false;
  size_t start = 0;
  while (start <= host.size()) {
    auto dot = host.find('.', start);
    auto label = host.substr(start, dot == std::string_view::npos
                                        ? std::string_view::npos
                                        : dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' ||
        label.back() == '-')
      return false;
    if (!std::all_of(label.begin(), label.end(),
                     [](char c) { return is_alnum(c) || c == '-'; }))
      return false;
    if (dot == std::string_view::npos)
      break;
    start = dot + 1;
  }
  return true;
}

bool valid_ipv6_literal(std::string_view bracketed) {
  if (bracketed.size() < 3 || bracketed.front() != '[' ||
      bracketed.back() != ']')
    return false;
  auto inner_view = bracketed.substr(1, bracketed.size() - 2);
  // inet_pton reads a C string: a NUL inside would end it early (found by
  // fuzz/cors_origin.cpp), so only an address's characters get there.
  if (!std::all_of(inner_view.begin(), inner_view.end(), [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || c == ':' ||
               c == '.';
      }))
    return false;
  std::string inner{inner_view};
  in6_addr addr{};
  return inet_pton(AF_INET6, inner.c_str(), &addr) == 1;
}

} // namespace

std::optional<std::string> normalize_origin(std::string_view text) {
  text = trim_blanks(text);
  std::string s(text.size(), '\0');
  std::transform(text.begin(), text.end(), s.begin(), lower);
  std::string_view v{s};
  int default_port = 0;
  if (v.substr(0, 7) == "http://") {
    default_port = 80;
    v.remove_prefix(7);
  } else if (v.substr(0, 8) == "https://") {
    default_port = 443;
    v.remove_prefix(8);
  } else {
    return std::nullopt;
  }
  // host[:port]; an IPv6 literal's colons are inside its brackets.
  if (v.empty())
    return std::nullopt;
  auto host_end = v.front() == '[' ? v.find(']') : v.find(':');
  if (v.front() == '[' && host_end == std::string_view::npos)
    return std::nullopt;
  if (v.front() == '[')
    ++host_end;
  auto host = v.substr(0, host_end);
  auto rest = host_end == std::string_view::npos ? std::string_view{}
                                                 : v.substr(host_end);
  if (host.front() == '[' ? !valid_ipv6_literal(host) : !valid_name(host))
    return std::nullopt;
  std::string out{s.substr(0, s.size() - v.size())}; // the scheme and "://"
  out += host;
  if (!rest.empty()) {
    if (rest.front() != ':' || rest.size() < 2 || rest[1] == '0')
      return std::nullopt;
    auto digits = rest.substr(1);
    unsigned port = 0;
    auto [end, ec] =
        std::from_chars(digits.data(), digits.data() + digits.size(), port);
    if (ec != std::errc{} || end != digits.data() + digits.size() ||
        port == 0 || port > 65535)
      return std::nullopt;
    if (static_cast<int>(port) != default_port)
      out += ":" + std::to_string(port);
  }
  return out;
}

std::optional<std::string> allowed_origin(const cors_policy& policy,
                                          std::string_view origin) {
  if (policy.any)
    return std::string{"*"};
  auto normal = normalize_origin(origin);
  if (!normal)
    return std::nullopt;
  if (std::find(policy.origins.begin(), policy.origins.end(), *normal) ==
      policy.origins.end())
    return std::nullopt;
  // The origin as the browser sent it: it compares the value byte for byte.
  return std::string{trim_blanks(origin)};
}

} // namespace resized
