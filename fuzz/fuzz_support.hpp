// Helpers shared by the fuzz targets: an invariant check that libFuzzer
// reports as a crash, the default options and limits of the service, and a
// reference base64 encoder (independent of src/http/base64.cpp).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "imaging/options.hpp"

namespace resized::fuzz {

/// Aborts (a crash for libFuzzer, with the input saved) when `ok` is false.
inline void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz invariant violated: %s\n", what);
    std::abort();
  }
}

/// The defaults and limits of config/development.ini.
inline const imaging::resize_options& default_options() {
  static const imaging::resize_options opts{};
  return opts;
}

inline const imaging::limits& default_limits() {
  static const imaging::limits lim{};
  return lim;
}

/// Every format but avif, as on a build without an AV1 encoder.
inline bool can_write_no_avif(imaging::output_format f) {
  return f != imaging::output_format::avif;
}

inline bool can_write_all(imaging::output_format) {
  return true;
}

/// Standard base64 with padding.
inline std::string base64_encode(std::string_view in) {
  static constexpr char alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  auto byte = [&](size_t k) { return static_cast<unsigned char>(in[k]); };
  for (; i + 3 <= in.size(); i += 3) {
    unsigned v = (byte(i) << 16) | (byte(i + 1) << 8) | byte(i + 2);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += alphabet[v & 63];
  }
  if (in.size() - i == 1) {
    unsigned v = byte(i) << 16;
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += "==";
  } else if (in.size() - i == 2) {
    unsigned v = (byte(i) << 16) | (byte(i + 1) << 8);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

} // namespace resized::fuzz
