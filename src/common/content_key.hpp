#pragma once

#include <string>
#include <string_view>

#include "imaging/options.hpp"

namespace resized {

/// Identity of a piece of work: SHA-256 of the input bytes plus everything
/// else that shapes the output: the options, the limits that can change a
/// result rather than refuse the task (limits.max-dimension caps a side
/// left to the aspect ratio; limits.truncated=serve serves what a cut-off
/// file decodes to, where fail ends the task), and the pipeline's
/// imaging::output_revision. Equal keys give identical results, so a second
/// submission reuses the first one's result, but never one made under other
/// settings (another API node's) or by a build that made other pixels. A
/// cryptographic hash on purpose: a client must not be able to craft a
/// collision and receive somebody else's image.
std::string content_key(std::string_view input,
                        const imaging::resize_options& opts,
                        const imaging::limits& lim);

} // namespace resized
