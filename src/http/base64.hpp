// Base64 decoding for request bodies.
//
// Hand-written on purpose: no Debian 12 library decodes base64 the way the
// contract needs in one pass — padding optional, whitespace skipped, the
// exact offset of the first bad character reported, and the output written
// straight into the buffer that libvips will read (no intermediate copy of a
// multi-megabyte string).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace resized::http {

struct base64_status {
  bool ok = true;
  size_t offset = 0;  // offset of the offending character in the input
  std::string reason; // human-readable, for the error message
};

/// Decodes standard base64 (RFC 4648 alphabet) from `in` into `out`
/// (replacing its content). ASCII whitespace is ignored anywhere.
base64_status base64_decode(std::string_view in, std::string& out);

/// Decodes `in` into `dst`, which needs base64_max_decoded(in.size())
/// bytes, and sets `written`. `dst` may point into `in` itself, at or
/// before its first character (decoding in place): each group of input
/// characters is read before its bytes are written, and the output never
/// gets ahead of the input.
base64_status base64_decode_to(std::string_view in, char* dst, size_t& written);

/// Upper bound of the decoded size of `n` base64 characters.
inline size_t base64_max_decoded(size_t n) {
  return (n / 4 + 1) * 3;
}

} // namespace resized::http
