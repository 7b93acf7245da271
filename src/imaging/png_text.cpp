#include "imaging/png_text.hpp"

#include <cstdint>
#include <cstring>

namespace resized::imaging {

namespace {

constexpr char signature[] = "\x89PNG\r\n\x1a\n";
constexpr size_t signature_size = 8;
// length, type, CRC
constexpr size_t chunk_overhead = 12;

uint32_t be32(const char* p) {
  auto b = reinterpret_cast<const unsigned char*>(p);
  return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) |
         (uint32_t{b[2]} << 8) | uint32_t{b[3]};
}

} // namespace

size_t drop_compressed_png_text(std::string& png) {
  if (png.size() < signature_size ||
      std::memcmp(png.data(), signature, signature_size) != 0)
    return 0;
  size_t read = signature_size;
  size_t write = signature_size;
  while (png.size() - read >= chunk_overhead) {
    uint64_t length = be32(png.data() + read);
    if (length > png.size() - read - chunk_overhead)
      break; // does not fit: left, with what follows, to the decoder
    const char* type = png.data() + read + 4;
    size_t whole = static_cast<size_t>(length) + chunk_overhead;
    bool drop =
        std::memcmp(type, "zTXt", 4) == 0 || std::memcmp(type, "iTXt", 4) == 0;
    bool last = std::memcmp(type, "IEND", 4) == 0;
    if (!drop) {
      if (write != read)
        std::memmove(png.data() + write, png.data() + read, whole);
      write += whole;
    }
    read += whole;
    if (last)
      break;
  }
  if (write == read)
    return 0;
  // What follows the last chunk read (trailing bytes, or a chunk that did
  // not fit) stays as it was, after the chunks kept.
  std::memmove(png.data() + write, png.data() + read, png.size() - read);
  png.resize(png.size() - (read - write));
  return read - write;
}

} // namespace resized::imaging
