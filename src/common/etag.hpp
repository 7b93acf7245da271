#pragma once

#include <string>
#include <string_view>

namespace resized {

/// A strong ETag value (without quotes) for `bytes`: 64-bit FNV-1a and the
/// length, in hex. Results are immutable, so content identity is enough.
std::string strong_etag(std::string_view bytes);

} // namespace resized
