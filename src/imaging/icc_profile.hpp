// Converting thumbnails from their embedded RGB profile to sRGB, with the
// lcms transform built once per profile.
//
// Why: libvips 8.14's vips_icc_transform builds a new lcms transform for
// every image it converts: 3.5-5 ms of CPU, more than resizing and
// encoding a 100x100 thumbnail. Photos come with few distinct profiles
// (phones' Display P3, cameras' Adobe RGB, and above all sRGB itself), so
// the transform is built once per profile, kept, and applied by a small
// lazy libvips stage of our own; libvips keeps no such cache and takes no
// transform from outside. A profile whose conversion changes nothing (the
// 1998 HP "sRGB IEC61966-2.1", lcms' or libvips' own sRGB) is only dropped.
#pragma once

#include <cstddef>
#include <memory>
#include <string_view>

#include <vips/vips.h>

namespace resized::imaging {

/// What converting 8-bit pixels tagged with one profile to sRGB takes.
struct profile_conversion {
  enum class kind {
    drop,    // the profile describes sRGB: no value would move (see below)
    convert, // apply `transform` (apply_conversion)
    libvips, // lcms cannot use the profile here: leave it to libvips
  };
  kind what = kind::libvips;
  /// An lcms transform from the profile to libvips' sRGB profile, as
  /// vips_icc_transform builds it (relative colorimetric intent, no black
  /// point compensation), for RGB or RGBA (alpha copied) bytes; shared by
  /// every image being converted with it (lcms' 1-pixel cache off, so
  /// threads may share it).
  std::shared_ptr<void> transform;
};

/// The conversion from `profile` for `bands`-band 8-bit pixels (3: RGB,
/// 4: RGBA; other counts get kind::libvips). `drop` when converting would
/// move none of 17x17x17 colours and 256 greys by more than one level.
/// Remembered for the last 16 distinct profiles of at most 64 KiB; larger
/// ones get kind::libvips at once. Thread-safe. A new profile costs about
/// one transform (3-5 ms), once.
profile_conversion conversion_for(std::string_view profile, int bands);

/// `in` (8-bit RGB or RGBA with `c.transform`'s band count) converted by
/// `c.transform`, lazily: the pixels are transformed as libvips pulls
/// them, a region at a time, on its threads. The result holds a reference
/// to `in` and to the transform. nullptr (libvips' error set) on failure.
VipsImage* apply_conversion(VipsImage* in, const profile_conversion& c);

/// Forgets every remembered conversion (tests).
void forget_conversions();

/// How many conversions were worked out since the start (tests: that one
/// was remembered).
size_t conversions_worked_out();

} // namespace resized::imaging
