#include "imaging/png_data.hpp"

#include <array>
#include <cstring>
#include <memory>

#include <fmt/format.h>
#include <zlib.h>

#include "imaging/png_chunks.hpp"

namespace resized::imaging {

namespace {

using png::be32;
using png::chunk_overhead;
using png::signature_size;
constexpr size_t ihdr_size = 13;

/// Bytes of `rows` filtered rows of `width` pixels of `bits` bits each.
unsigned __int128 rows_bytes(uint64_t width, uint64_t rows, uint64_t bits) {
  if (width == 0 || rows == 0)
    return 0;
  unsigned __int128 row =
      (static_cast<unsigned __int128>(width) * bits + 7) / 8;
  return (row + 1) * rows;
}

/// The IHDR chunk (its length field) of a PNG that starts with one, as the
/// standard has it; nullptr otherwise.
const unsigned char* ihdr_of(const unsigned char* p, size_t size) {
  if (size < signature_size + chunk_overhead + ihdr_size ||
      !png::has_signature(p, size))
    return nullptr;
  const unsigned char* ihdr = p + signature_size;
  if (be32(ihdr) != ihdr_size || std::memcmp(ihdr + 4, "IHDR", 4) != 0)
    return nullptr;
  return ihdr;
}

} // namespace

std::optional<uint64_t> png_image_data_bytes(uint32_t width, uint32_t height,
                                             int bit_depth, int colour_type,
                                             bool interlaced) {
  int channels = 0;
  bool depth_ok = false;
  switch (colour_type) {
  case 0: // grey: 1, 2, 4, 8, 16
    channels = 1;
    depth_ok = bit_depth == 1 || bit_depth == 2 || bit_depth == 4 ||
               bit_depth == 8 || bit_depth == 16;
    break;
  case 3: // palette: 1, 2, 4, 8
    channels = 1;
    depth_ok =
        bit_depth == 1 || bit_depth == 2 || bit_depth == 4 || bit_depth == 8;
    break;
  case 2: // RGB
  case 4: // grey + alpha
  case 6: // RGBA
    channels = colour_type == 2 ? 3 : colour_type == 4 ? 2 : 4;
    depth_ok = bit_depth == 8 || bit_depth == 16;
    break;
  default:
    return std::nullopt;
  }
  if (!depth_ok)
    return std::nullopt;
  uint64_t bits = static_cast<uint64_t>(channels) * bit_depth;
  unsigned __int128 total = 0;
  if (!interlaced) {
    total = rows_bytes(width, height, bits);
  } else {
    // Adam7: each pass's first column and row, and its steps across and
    // down.
    constexpr std::array<std::array<uint32_t, 4>, 7> passes{{{0, 0, 8, 8},
                                                             {4, 0, 8, 8},
                                                             {0, 4, 4, 8},
                                                             {2, 0, 4, 4},
                                                             {0, 2, 2, 4},
                                                             {1, 0, 2, 2},
                                                             {0, 1, 1, 2}}};
    for (const auto& [x0, y0, dx, dy] : passes) {
      uint64_t w = width > x0 ? (uint64_t{width} - x0 + dx - 1) / dx : 0;
      uint64_t h = height > y0 ? (uint64_t{height} - y0 + dy - 1) / dy : 0;
      total += rows_bytes(w, h, bits);
    }
  }
  if (total > UINT64_MAX / 2)
    return std::nullopt;
  return static_cast<uint64_t>(total);
}

std::optional<std::pair<uint32_t, uint32_t>> png_dimensions(const void* png,
                                                            size_t size) {
  const auto* ihdr = ihdr_of(static_cast<const unsigned char*>(png), size);
  if (ihdr == nullptr)
    return std::nullopt;
  return std::make_pair(be32(ihdr + 8), be32(ihdr + 12));
}

std::optional<std::string> png_header_problem(const void* png, size_t size) {
  const auto* p = static_cast<const unsigned char*>(png);
  if (!png::has_signature(p, size))
    return std::nullopt;
  const unsigned char* ihdr = ihdr_of(p, size);
  if (ihdr == nullptr) { // which of ihdr_of's conditions failed
    const unsigned char* first = p + signature_size;
    if (size < signature_size + 8)
      return "PNG cut short before its header (IHDR)";
    if (be32(first) != ihdr_size || std::memcmp(first + 4, "IHDR", 4) != 0)
      return "PNG does not start with its header: its first chunk is not an "
             "IHDR of 13 bytes";
    return "PNG cut short inside its header (IHDR)";
  }
  // The CRC covers the chunk's type and data.
  auto crc = ::crc32(0L, ihdr + 4, 4 + ihdr_size);
  if (crc != be32(ihdr + 8 + ihdr_size))
    return "PNG header (IHDR) damaged: its CRC does not match its contents";
  uint32_t width = be32(ihdr + 8), height = be32(ihdr + 12);
  if (width == 0 || height == 0 || width > INT32_MAX || height > INT32_MAX)
    return fmt::format("PNG header (IHDR) declares a {}x{} image: a PNG's "
                       "sides are 1 to {} pixels",
                       width, height, INT32_MAX);
  int depth = ihdr[16], colour = ihdr[17];
  if (!png_image_data_bytes(1, 1, depth, colour, false))
    return fmt::format("PNG header (IHDR) declares bit depth {} with colour "
                       "type {}, which PNG does not define",
                       depth, colour);
  if (ihdr[18] != 0 || ihdr[19] != 0)
    return fmt::format("PNG header (IHDR) declares compression method {} and "
                       "filter method {}: PNG defines only 0 for each",
                       ihdr[18], ihdr[19]);
  if (ihdr[20] > 1)
    return fmt::format("PNG header (IHDR) declares interlace method {}: PNG "
                       "defines 0 (none) and 1 (Adam7)",
                       ihdr[20]);
  return std::nullopt;
}

std::optional<std::string> png_data_overrun(const void* png, size_t size,
                                            uint64_t slack) {
  const auto* p = static_cast<const unsigned char*>(png);
  const auto* ihdr = ihdr_of(p, size);
  if (ihdr == nullptr)
    return std::nullopt;
  uint32_t width = be32(ihdr + 8);
  uint32_t height = be32(ihdr + 12);
  int bit_depth = ihdr[16];
  int colour_type = ihdr[17];
  bool interlaced = ihdr[20] == 1;
  auto needed =
      png_image_data_bytes(width, height, bit_depth, colour_type, interlaced);
  if (!needed)
    return std::nullopt;
  uint64_t bound = *needed > UINT64_MAX - slack ? UINT64_MAX : *needed + slack;

  z_stream zs{};
  if (inflateInit(&zs) != Z_OK)
    return std::nullopt;
  std::unique_ptr<z_stream, int (*)(z_stream*)> end{&zs, inflateEnd};
  // Where the inflated bytes go: nowhere, only their count matters.
  constexpr size_t scratch_size = size_t{1} << 16;
  auto scratch = std::make_unique<unsigned char[]>(scratch_size);
  uint64_t produced = 0;
  size_t pos = signature_size;
  while (size - pos >= chunk_overhead) {
    uint64_t length = be32(p + pos);
    // A chunk cut short (no CRC, or a length past the end): libpng reads
    // and inflates the data that is there before it finds out, so that
    // data counts; nothing after it does.
    bool cut = length > size - pos - chunk_overhead;
    if (cut)
      length = size - pos - 8;
    const unsigned char* type = p + pos + 4;
    if (std::memcmp(type, "IEND", 4) == 0)
      break;
    if (std::memcmp(type, "IDAT", 4) == 0) {
      zs.next_in = const_cast<unsigned char*>(p + pos + 8);
      zs.avail_in = static_cast<uInt>(length);
      while (zs.avail_in > 0) {
        zs.next_out = scratch.get();
        zs.avail_out = static_cast<uInt>(scratch_size);
        int rc = inflate(&zs, Z_NO_FLUSH);
        produced += scratch_size - zs.avail_out;
        if (produced > bound)
          return fmt::format(
              "its compressed pixel data inflates to more than the {} bytes "
              "its {}x{} header calls for (refused before decoding: the "
              "decoder would inflate all of it)",
              *needed, width, height);
        if (rc == Z_STREAM_END)
          return std::nullopt;
        if (rc != Z_OK)
          return std::nullopt; // damaged: the decoder says how
      }
    }
    if (cut)
      break;
    pos += static_cast<size_t>(length) + chunk_overhead;
  }
  return std::nullopt;
}

} // namespace resized::imaging
