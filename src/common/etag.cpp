#include "common/etag.hpp"

#include <cstdint>

#include <fmt/format.h>

namespace resized {

std::string strong_etag(std::string_view bytes) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return fmt::format("{:016x}-{:x}", h, bytes.size());
}

} // namespace resized
