// The PNG file layout that the chunk walks ahead of the decoders read
// (png_text: compressed text chunks dropped; png_data: the image data's
// inflated size bounded).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace resized::imaging::png {

inline constexpr char signature[] = "\x89PNG\r\n\x1a\n";
inline constexpr size_t signature_size = 8;
/// A chunk's length, type and CRC around its data.
inline constexpr size_t chunk_overhead = 12;

/// Whether `data` starts with the PNG signature.
inline bool has_signature(const void* data, size_t size) {
  return data != nullptr && size >= signature_size &&
         std::memcmp(data, signature, signature_size) == 0;
}

/// The big-endian 32-bit number at `p` (chunk lengths, IHDR's sizes).
inline uint32_t be32(const void* p) {
  auto b = static_cast<const unsigned char*>(p);
  return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) |
         (uint32_t{b[2]} << 8) | uint32_t{b[3]};
}

} // namespace resized::imaging::png
