#include "common/client_identity.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

#include <fmt/format.h>

#include "common/text.hpp"

namespace resized {

namespace {

constexpr std::array<uint8_t, 12> v4_mapped_prefix{0, 0, 0, 0, 0,    0,
                                                   0, 0, 0, 0, 0xff, 0xff};

// inet_pton wants a NUL-terminated string; addresses are short. A NUL
// inside `text` would end it early ("::1\0junk" read as ::1), as
// fuzz/cors_origin.cpp found in the CORS origin check: refused.
std::optional<ip_address> parse_plain(std::string_view text) {
  char buf[INET6_ADDRSTRLEN + 1];
  if (text.empty() || text.size() >= sizeof buf ||
      text.find('\0') != std::string_view::npos)
    return std::nullopt;
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  ip_address a;
  unsigned char v4[4];
  if (inet_pton(AF_INET, buf, v4) == 1) {
    std::copy(v4_mapped_prefix.begin(), v4_mapped_prefix.end(),
              a.bytes.begin());
    std::copy(v4, v4 + 4, a.bytes.begin() + 12);
    return a;
  }
  if (inet_pton(AF_INET6, buf, a.bytes.data()) == 1)
    return a;
  return std::nullopt;
}

bool all_digits(std::string_view s) {
  if (s.empty() || s.size() > 5)
    return false;
  for (char c : s)
    if (c < '0' || c > '9')
      return false;
  return true;
}

// `a` with every bit past the first `prefix` cleared.
ip_address masked(ip_address a, unsigned prefix) {
  for (unsigned i = 0; i < 16; ++i) {
    unsigned keep = prefix > i * 8 ? std::min(prefix - i * 8, 8u) : 0u;
    a.bytes[i] &= static_cast<uint8_t>(keep == 0 ? 0 : 0xff << (8 - keep));
  }
  return a;
}

std::string format_ip(const ip_address& a) {
  char buf[INET6_ADDRSTRLEN];
  if (a.v4())
    inet_ntop(AF_INET, a.bytes.data() + 12, buf, sizeof buf);
  else
    inet_ntop(AF_INET6, a.bytes.data(), buf, sizeof buf);
  return buf;
}

} // namespace

ip_address client_block(const ip_address& a) {
  return a.v4() ? a : masked(a, 64);
}

std::string address_identity(const ip_address& a) {
  if (a.v4())
    return "ip:" + format_ip(a);
  return "ip:" + format_ip(client_block(a)) + "/64";
}

namespace {

// RFC 9110 tchar.
bool token_char(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
         (c >= 'A' && c <= 'Z') ||
         std::string_view{"!#$%&'*+-.^_`|~"}.find(c) != std::string_view::npos;
}

bool blank(char c) {
  return c == ' ' || c == '\t';
}

} // namespace

// Written here: no Debian-packaged library parses RFC 7239 (RESTinio 0.6's
// header helpers know neither it nor quoted-string values in general).
std::string forwarded_for_list(std::string_view line) {
  std::string out;
  auto add = [&](std::string_view entry) {
    if (!out.empty())
      out += ',';
    out.append(entry.data(), entry.size());
  };
  size_t i = 0;
  const size_t n = line.size();
  auto skip_blanks = [&] {
    while (i < n && blank(line[i]))
      ++i;
  };
  for (;;) { // one element per turn
    std::string node = "unknown";
    bool empty = true; // ", ," : list elements may be empty (RFC 9110 5.6.1)
    for (;;) {         // one pair per turn, each may be empty
      skip_blanks();
      if (i < n && line[i] != ';' && line[i] != ',') {
        empty = false;
        size_t name_at = i;
        while (i < n && token_char(line[i]))
          ++i;
        auto name = line.substr(name_at, i - name_at);
        if (name.empty() || i >= n || line[i] != '=') {
          add("unknown");
          return out;
        }
        ++i;
        std::string value;
        bool quoted = i < n && line[i] == '"';
        if (quoted) {
          ++i;
          bool closed = false;
          while (i < n) {
            char c = line[i++];
            if (c == '"') {
              closed = true;
              break;
            }
            if (c == '\\' && i < n)
              c = line[i++];
            value += c;
          }
          if (!closed) {
            add("unknown");
            return out;
          }
        } else {
          // A token; ':' and brackets too, for an IPv6 node left unquoted.
          size_t value_at = i;
          while (i < n && (token_char(line[i]) || line[i] == ':' ||
                           line[i] == '[' || line[i] == ']'))
            ++i;
          value.assign(line.substr(value_at, i - value_at));
          if (value.empty()) {
            add("unknown");
            return out;
          }
        }
        if (equals_nocase(name, "for"))
          node = value.find(',') == std::string::npos ? value : "unknown";
        skip_blanks();
      }
      if (i < n && line[i] == ';') {
        ++i;
        empty = false;
        continue;
      }
      break;
    }
    if (i < n && line[i] != ',') { // junk after a pair
      add("unknown");
      return out;
    }
    if (!empty)
      add(node);
    if (i >= n)
      return out;
    ++i; // ','
  }
}

bool in_networks(const std::vector<ip_network>& networks, const ip_address& a) {
  for (const auto& net : networks)
    if (net.contains(a))
      return true;
  return false;
}

bool ip_address::v4() const {
  return std::equal(v4_mapped_prefix.begin(), v4_mapped_prefix.end(),
                    bytes.begin());
}

std::optional<ip_address> parse_ip(std::string_view text) {
  text = trim_blanks(text);
  if (auto a = parse_plain(text))
    return a;
  // "[v6]:port" or "[v6]"
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos)
      return std::nullopt;
    auto rest = text.substr(close + 1);
    if (!rest.empty() && !(rest.front() == ':' && all_digits(rest.substr(1))))
      return std::nullopt;
    auto a = parse_plain(text.substr(1, close - 1));
    if (a && a->v4())
      return std::nullopt; // "[1.2.3.4]" is no form anyone writes
    return a;
  }
  // "a.b.c.d:port" (one colon: a bare IPv6 address has several)
  auto colon = text.find(':');
  if (colon != std::string_view::npos &&
      text.find(':', colon + 1) == std::string_view::npos &&
      all_digits(text.substr(colon + 1))) {
    auto a = parse_plain(text.substr(0, colon));
    if (a && a->v4())
      return a;
  }
  return std::nullopt;
}

bool ip_network::contains(const ip_address& a) const {
  return masked(a, prefix).bytes == masked(base, prefix).bytes;
}

std::optional<ip_network> parse_network(std::string_view text) {
  text = trim_blanks(text);
  auto slash = text.find('/');
  auto a = parse_plain(text.substr(0, slash));
  if (!a)
    return std::nullopt;
  unsigned width = a->v4() ? 32 : 128;
  unsigned prefix = width;
  if (slash != std::string_view::npos) {
    auto digits = text.substr(slash + 1);
    auto [end, ec] =
        std::from_chars(digits.data(), digits.data() + digits.size(), prefix);
    if (digits.empty() || ec != std::errc{} ||
        end != digits.data() + digits.size() || prefix > width)
      return std::nullopt;
  }
  return ip_network{*a, prefix + (128 - width)};
}

std::string client_identity(std::optional<size_t> key_index,
                            std::string_view peer,
                            std::string_view forwarded_for,
                            const std::vector<ip_network>& trusted_proxies) {
  if (key_index)
    return fmt::format("key:{}", *key_index + 1);
  auto from = parse_ip(peer);
  if (!from)
    return "ip:?";
  // Right to left: each entry was appended by the hop after it, so an entry
  // is believed only while every hop to its right is a trusted proxy.
  auto rest = forwarded_for;
  while (in_networks(trusted_proxies, *from) && !trim_blanks(rest).empty()) {
    auto comma = rest.rfind(',');
    auto entry =
        comma == std::string_view::npos ? rest : rest.substr(comma + 1);
    rest = comma == std::string_view::npos ? std::string_view{}
                                           : rest.substr(0, comma);
    if (trim_blanks(entry).empty())
      continue;
    auto hop = parse_ip(entry);
    if (!hop)
      break; // not an address: the proxy that wrote it is the client known
    from = hop;
  }
  return address_identity(*from);
}

} // namespace resized
