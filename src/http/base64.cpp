#include "http/base64.hpp"

#include <array>
#include <cstdint>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

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

// -- AVX2: 32 characters to 24 bytes per step ------------------------------
//
// Written here because no Debian 12 library decodes base64 with SIMD. A
// block of 32 alphabet characters is validated and translated in vector
// registers; a block holding anything else (whitespace, '=', invalid) is
// left to the scalar code, which reports the exact offset.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define RESIZED_BASE64_AVX2 1

// Validity by nibbles: the characters valid with each high nibble form
// five patterns of low nibbles (0x2_: '+' '/'; 0x3_: digits; 0x4_/0x6_:
// 1-F; 0x5_/0x7_: 0-A; others: none). hi_class[h] is the bit of h's
// pattern, lo_invalid[l] the bits of the patterns in which l is invalid:
// c is valid iff lo_invalid[c & 15] & hi_class[c >> 4] == 0.
constexpr uint8_t pattern_of(unsigned hi) {
  switch (hi) {
  case 2:
    return 1;
  case 3:
    return 2;
  case 4:
  case 6:
    return 4;
  case 5:
  case 7:
    return 8;
  default:
    return 16;
  }
}

constexpr std::array<uint8_t, 16> make_hi_class() {
  std::array<uint8_t, 16> t{};
  for (unsigned h = 0; h < 16; ++h)
    t[h] = pattern_of(h);
  return t;
}

constexpr std::array<uint8_t, 16> make_lo_invalid() {
  std::array<uint8_t, 16> t{};
  auto plain = make_table();
  for (unsigned l = 0; l < 16; ++l)
    for (unsigned h = 0; h < 16; ++h)
      if (plain[h << 4 | l] >= 64)
        t[l] |= pattern_of(h);
  return t;
}

// value = c + offset[c >> 4], and '/' (0x2F) 3 less than '+' (0x2B) needs.
constexpr std::array<int8_t, 16> make_offsets() {
  std::array<int8_t, 16> t{};
  t[2] = 62 - '+';
  t[3] = 52 - '0';
  t[4] = t[5] = -'A';
  t[6] = t[7] = 26 - 'a';
  return t;
}

constexpr auto hi_class = make_hi_class();
constexpr auto lo_invalid = make_lo_invalid();
constexpr auto offsets = make_offsets();

// Every table entry agrees with the scalar alphabet table.
constexpr bool tables_agree() {
  auto plain = make_table();
  for (unsigned c = 0; c < 256; ++c) {
    bool valid = (lo_invalid[c & 15] & hi_class[c >> 4]) == 0;
    if (valid != (plain[c] < 64))
      return false;
    int value = static_cast<int>(c) + offsets[c >> 4] - (c == '/' ? 3 : 0);
    if (valid && value != plain[c])
      return false;
  }
  return true;
}
static_assert(tables_agree(), "AVX2 base64 tables disagree with the alphabet");

__attribute__((target("avx2"))) __m256i broadcast16(const void* table) {
  return _mm256_broadcastsi128_si256(
      _mm_loadu_si128(static_cast<const __m128i*>(table)));
}

/// Decodes 32 characters at `src` into 24 bytes at `dst` if all are in the
/// alphabet; false (nothing written) otherwise. `dst` may be at or before
/// `src` (in place): the block is read before anything is written.
__attribute__((target("avx2"))) bool decode_block_avx2(const unsigned char* src,
                                                       unsigned char* dst) {
  const __m256i in = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src));
  const __m256i nibble = _mm256_set1_epi8(0x0f);
  const __m256i hi = _mm256_and_si256(_mm256_srli_epi32(in, 4), nibble);
  const __m256i lo = _mm256_and_si256(in, nibble);
  const __m256i bad =
      _mm256_and_si256(_mm256_shuffle_epi8(broadcast16(lo_invalid.data()), lo),
                       _mm256_shuffle_epi8(broadcast16(hi_class.data()), hi));
  if (!_mm256_testz_si256(bad, bad))
    return false;
  const __m256i slash = _mm256_cmpeq_epi8(in, _mm256_set1_epi8('/'));
  __m256i shift = _mm256_shuffle_epi8(broadcast16(offsets.data()), hi);
  shift = _mm256_add_epi8(shift, _mm256_and_si256(slash, _mm256_set1_epi8(-3)));
  const __m256i sextets = _mm256_add_epi8(in, shift);
  // aaaaaa bbbbbb -> 12 bits per 16-bit lane, two of those -> 24 bits
  const __m256i pairs =
      _mm256_maddubs_epi16(sextets, _mm256_set1_epi32(0x01400140));
  const __m256i words = _mm256_madd_epi16(pairs, _mm256_set1_epi32(0x00011000));
  // each 32-bit lane holds its 3 bytes little-endian: take them big-endian
  const __m256i packed = _mm256_shuffle_epi8(
      words,
      _mm256_setr_epi8(2, 1, 0, 6, 5, 4, 10, 9, 8, 14, 13, 12, -1, -1, -1, -1,
                       2, 1, 0, 6, 5, 4, 10, 9, 8, 14, 13, 12, -1, -1, -1, -1));
  const __m256i joined = _mm256_permutevar8x32_epi32(
      packed, _mm256_setr_epi32(0, 1, 2, 4, 5, 6, 3, 7));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(dst),
                   _mm256_castsi256_si128(joined));
  _mm_storel_epi64(reinterpret_cast<__m128i*>(dst + 16),
                   _mm256_extracti128_si256(joined, 1));
  return true;
}

bool have_avx2() {
  static const bool yes = __builtin_cpu_supports("avx2");
  return yes;
}
#endif

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
#ifdef RESIZED_BASE64_AVX2
  const bool simd = have_avx2();
#endif
  for (size_t i = 0; i < in.size(); ++i) {
    // Whole groups of four alphabet characters, while aligned on a group.
    if (count == 0 && pads == 0) {
#ifdef RESIZED_BASE64_AVX2
      while (simd && i + 32 <= in.size() &&
             decode_block_avx2(src + i, dst + n)) {
        i += 32;
        n += 24;
      }
#endif
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
