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

// Fast path: four characters per step through tables that hold each
// character's sextet already shifted to its place in the 24-bit group, or
// `not_alphabet` for anything else (whitespace, '=', invalid), which sends
// that group to the one-character-at-a-time loop below.
constexpr uint32_t not_alphabet = 0x01000000;

constexpr std::array<uint32_t, 256> make_shifted(int shift) {
  std::array<uint32_t, 256> t{};
  auto plain = make_table();
  for (size_t c = 0; c < 256; ++c)
    t[c] =
        plain[c] < 64 ? static_cast<uint32_t>(plain[c]) << shift : not_alphabet;
  return t;
}

constexpr auto shifted0 = make_shifted(18);
constexpr auto shifted1 = make_shifted(12);
constexpr auto shifted2 = make_shifted(6);
constexpr auto shifted3 = make_shifted(0);

std::string describe(unsigned char c) {
  if (c >= 0x20 && c < 0x7f)
    return fmt::format("'{}'", static_cast<char>(c));
  return fmt::format("byte 0x{:02x}", c);
}

} // namespace

base64_status base64_decode(std::string_view in, std::string& out) {
  out.clear();
  out.resize(base64_max_decoded(in.size()));
  size_t n = 0;
  auto st = base64_decode_to(in, out.data(), n);
  out.resize(st.ok ? n : 0);
  return st;
}

base64_status base64_decode_to(std::string_view in, char* out,
                               size_t& written) {
  written = 0;
  auto* dst = reinterpret_cast<unsigned char*>(out);
  size_t n = 0;      // bytes written
  uint32_t acc = 0;  // accumulated sextets
  int count = 0;     // sextets in acc
  size_t pads = 0;   // '=' seen
  size_t pad_at = 0; // offset of the first '='
  const auto* src = reinterpret_cast<const unsigned char*>(in.data());
  for (size_t i = 0; i < in.size(); ++i) {
    // Whole groups of four alphabet characters, while aligned on a group.
    if (count == 0 && pads == 0) {
      while (i + 4 <= in.size()) {
        uint32_t group = shifted0[src[i]] | shifted1[src[i + 1]] |
                         shifted2[src[i + 2]] | shifted3[src[i + 3]];
        if (group & not_alphabet)
          break;
        dst[n++] = static_cast<unsigned char>(group >> 16);
        dst[n++] = static_cast<unsigned char>(group >> 8);
        dst[n++] = static_cast<unsigned char>(group);
        i += 4;
      }
      if (i == in.size())
        break;
    }
    auto c = src[i];
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
  written = n;
  return {};
}

} // namespace resized::http
