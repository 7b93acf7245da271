#pragma once

#include <string>
#include <string_view>

#include "imaging/options.hpp"

namespace resized {

/// Identity of a piece of work: SHA-256 of the input bytes plus the options
/// that shape the output. Equal keys give byte-identical results, so a
/// second submission reuses the first one's result. A cryptographic hash on
/// purpose: a client must not be able to craft a collision and receive
/// somebody else's image.
std::string content_key(std::string_view input,
                        const imaging::resize_options& opts);

} // namespace resized
