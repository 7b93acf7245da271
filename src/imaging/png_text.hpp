// Compressed text chunks taken out of a PNG before any decoder sees it.
//
// Why: libpng, as libvips 8.14 drives it, inflates every zTXt and iTXt
// chunk into image metadata, with no limit, while reading the header. A
// 5 MB upload of 300 zTXt chunks that each inflate to 16 MiB held both io
// threads for 8 s and took the process to 6 GiB (twice: probe, then the
// resize). Outputs carry no metadata, so these chunks never change a
// result. No library does this, hence the chunk walk below.
#pragma once

#include <cstddef>
#include <string>

namespace resized::imaging {

/// Removes every zTXt and iTXt chunk from `png` in place (the chunks after
/// them move up; nothing moves when there is none) and returns the bytes
/// removed. Anything that is not a PNG, or the rest of one from a chunk
/// that does not fit in it, is left as it is for the decoder to judge.
size_t drop_compressed_png_text(std::string& png);

} // namespace resized::imaging
