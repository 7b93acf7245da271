#include "http/base64.hpp"

#include <array>

#include <fmt/format.h>

namespace resized::http {

namespace {

constexpr uint8_t invalid = 0xff;
constexpr uint8_t skip = 0xfe;
constexpr uint8_t pad = 0xfd;

constexpr std::array<uint8_t, 256> make_table() {
  std::array<uint8_t, 256> t{};
  for (auto& x : t)
    x = invalid;
  const char* alphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (uint8_t i = 0; i < 64; ++i)
    t[static_cast<uint8_t>(alphabet[i])] = i;
  t[' '] = t['\n'] = t['\r'] = t['\t'] = t['\f'] = t['\v'] = skip;
  t['='] = pad;
  return t;
}

constexpr auto table = make_table();

std::string describe(unsigned char c) {
  if (c >= 0x20 && c < 0x7f)
    return fmt::format("'{}'", static_cast<char>(c));
  return fmt::format("byte 0x{:02x}", c);
}

} // namespace

base64_status base64_decode(std::string_view in, std::string& out) {
  out.clear();
  out.resize(base64_max_decoded(in.size()));
  auto* dst = reinterpret_cast<unsigned char*>(out.data());
  size_t n = 0;      // bytes written
  uint32_t acc = 0;  // accumulated sextets
  int count = 0;     // sextets in acc
  size_t pads = 0;   // '=' seen
  size_t pad_at = 0; // offset of the first '='
  for (size_t i = 0; i < in.size(); ++i) {
    auto c = static_cast<unsigned char>(in[i]);
    auto v = table[c];
    if (v == skip)
      continue;
    if (v == pad) {
      if (pads == 0)
        pad_at = i;
      ++pads;
      continue;
    }
    if (v == invalid)
      return {false, i, describe(c) + " is not a base64 character"};
    if (pads > 0)
      return {false, i, "data after '=' padding"};
    acc = (acc << 6) | v;
    if (++count == 4) {
      dst[n++] = static_cast<unsigned char>(acc >> 16);
      dst[n++] = static_cast<unsigned char>(acc >> 8);
      dst[n++] = static_cast<unsigned char>(acc);
      acc = 0;
      count = 0;
    }
  }
  switch (count) {
  case 0:
    if (pads > 0)
      return {false, pad_at, "unexpected '=' padding"};
    break;
  case 1:
    return {false, in.size(), "truncated: a lone final base64 character"};
  case 2:
    if (pads > 2)
      return {false, pad_at, "too much '=' padding"};
    dst[n++] = static_cast<unsigned char>(acc >> 4);
    break;
  case 3:
    if (pads > 1)
      return {false, pad_at, "too much '=' padding"};
    dst[n++] = static_cast<unsigned char>(acc >> 10);
    dst[n++] = static_cast<unsigned char>(acc >> 2);
    break;
  }
  out.resize(n);
  return {};
}

} // namespace resized::http
