// Embedded RGB profiles that describe sRGB itself.
//
// Why: converting a tagged thumbnail to sRGB (pipeline.cpp,
// from_embedded_profile) makes libvips build a new lcms transform for every
// image: 3.5-5 ms of CPU on a 100x100 result, more than encoding it. Most
// tagged photos carry an sRGB profile (the 1998 HP "sRGB IEC61966-2.1",
// lcms' or libvips' own), whose conversion changes nothing. Which profiles
// those are is worked out once per distinct profile, by lcms itself, and
// remembered; no library keeps such a cache (libvips 8.14 keeps none for
// its transforms).
#pragma once

#include <cstddef>
#include <string_view>

namespace resized::imaging {

/// Whether converting 8-bit RGB from `profile` to libvips' sRGB profile, the
/// way `vips_icc_transform` does (relative colorimetric intent, no black
/// point compensation), leaves every value within one level of where it
/// was: checked on a 17x17x17 grid of colours and on all 256 greys. False
/// for a profile lcms cannot read, for one that is not RGB, and when the
/// transform cannot be built. Costs about as much as one transform (3-5 ms).
bool converts_to_srgb_unchanged(std::string_view profile);

/// converts_to_srgb_unchanged, remembered for the last 32 distinct profiles
/// of at most 64 KiB (larger ones, lookup tables rather than curves, are
/// never sRGB in practice and get false at once). Thread-safe.
bool srgb_profile(std::string_view profile);

} // namespace resized::imaging
