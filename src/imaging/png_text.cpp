#include "imaging/png_text.hpp"

#include <cstdint>
#include <cstring>

#include "imaging/png_chunks.hpp"

namespace resized::imaging {

using png::be32;
using png::chunk_overhead;
using png::signature_size;

size_t drop_compressed_png_text(std::string& png) {
  if (!png::has_signature(png.data(), png.size()))
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
