// A PNG whose compressed image data inflates to more than its header's
// image needs, found before any decoder reads it.
//
// Why: libpng, as libvips 8.14 drives it, reads the rows the header calls
// for and then, at the image's end, inflates whatever compressed data is
// left to find the stream's end ("IDAT: Too much image data" is only a
// warning). That tail is out of the task deadline's reach (libvips checks
// it between regions, libpng does not return meanwhile): a 42 MB upload of
// a 1x1 PNG whose data inflates to 43 GB held a worker for 84 s of CPU,
// 20 s past its deadline. zlib inflates the stream here first into a small
// scratch buffer and stops as soon as the output passes what the header
// calls for. It costs one inflate of a PNG's data (about 70 ms for the
// corpus' 8.3 MP PNG). No library bounds this, hence the chunk walk.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

namespace resized::imaging {

/// Bytes of filtered image data (a filter byte per row, Adam7's passes
/// each in full) a PNG of this header holds; nullopt for a colour type or
/// bit depth the PNG standard does not define. Pure.
std::optional<uint64_t> png_image_data_bytes(uint32_t width, uint32_t height,
                                             int bit_depth, int colour_type,
                                             bool interlaced);

/// Width and height from a PNG's IHDR chunk (the first, as the standard
/// has it), nullopt when `png` does not start with one. Pure.
std::optional<std::pair<uint32_t, uint32_t>> png_dimensions(const void* png,
                                                            size_t size);

/// What is wrong with the header (IHDR) of `png`, a PNG by its signature:
/// missing, cut short, its CRC not matching, a side of 0 or past 2^31-1
/// pixels, a bit depth and colour type PNG does not define, or a method
/// (compression, filter, interlace) it does not define; nullopt when it is
/// sound or `png` is no PNG. libvips fails all of these with no reason of
/// its own ("cut short or damaged"). Pure.
std::optional<std::string> png_header_problem(const void* png, size_t size);

/// A message when the IDAT stream of `png` inflates to more than its IHDR
/// calls for plus `slack` bytes (inflating no further than that), nullopt
/// otherwise: less (cut short), damaged, or not a PNG at all are the
/// decoder's to judge.
std::optional<std::string> png_data_overrun(const void* png, size_t size,
                                            uint64_t slack);

} // namespace resized::imaging
