// A JPEG's header read with libjpeg directly (no libvips, no pixels).
//
// Why not libvips' loader, as for the other formats: it asks libjpeg to keep
// every APPn segment (EXIF, XMP, ICC, ...), and libjpeg copies kept segments
// one byte at a time — 6 ms for a photo with 7 MB of XMP, on the io thread of
// every submission. Here the first APP1 that starts "Exif" (the one libvips
// takes) is read in place for its orientation tag (by libexif), and every
// other segment is skipped unread.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include "imaging/options.hpp"

namespace resized::imaging {

/// Size, progressive mode and EXIF orientation of a JPEG, or nullopt and a
/// message (libjpeg's words) when the header cannot be read; `unsupported`
/// (when given) says whether it is a JPEG libjpeg does not decode (12- or
/// 16-bit samples, lossless or hierarchical) rather than a damaged one.
/// Safe on any bytes and on any thread.
std::optional<probe_info> read_jpeg_header(const void* data, size_t size,
                                           std::string& error,
                                           bool* unsupported = nullptr);

/// Whether libjpeg, decoding `data`, runs out of entropy-coded data: it
/// meets a marker (EOI, say, appended to a cut file) before the last block
/// of a scan (JWRN_HIT_MARKER, "premature end of data segment"), or the
/// bytes end without EOI (JWRN_JPEG_EOF). libjpeg only warns of either and
/// makes up the missing blocks (grey); libvips 8.14's fail_on=truncated
/// catches the second only. Other warnings (extraneous bytes before a
/// marker, many camera files have them) do not count. Decodes at 1/8 scale
/// (every scan's data is still read; a progressive JPEG holds its
/// coefficients meanwhile, as libvips' own decode does) and stops at the
/// first such warning; false as well when libjpeg fails outright. Safe on
/// any bytes and on any thread.
bool jpeg_data_ends_early(const void* data, size_t size);

/// Offset of the marker that ends the entropy-coded data starting at `pos`
/// in `data`: the first 0xFF not followed by a stuffed 0x00, a restart
/// marker or another 0xFF (fill). jpeg_data_runs_on when the data runs to
/// the end. Pure; safe on any bytes.
inline constexpr size_t jpeg_data_runs_on = static_cast<size_t>(-1);
size_t jpeg_entropy_end(const void* data, size_t pos, size_t size);

/// How many scans (SOS markers) a JPEG has, counting no further than
/// `stop_after` + 1: each marker's segment is skipped by its length, each
/// scan's entropy-coded data up to the next marker (stuffed FF 00 and
/// restart markers are data). Stops at EOI or where the bytes end. Pure;
/// safe on any bytes.
size_t count_jpeg_scans(const void* data, size_t size, size_t stop_after);

/// The EXIF orientation (1-8) in an APP1 segment's data ("Exif\0\0..."),
/// 0 when there is none, it is out of range, of a type other than an
/// integer, or the data is not EXIF.
int exif_orientation(const unsigned char* app1, size_t size);

/// A JPEG's EXIF orientation as libvips 8.14 will apply it, only when that
/// is certain: 1-8, or 0 for none; nullopt when the Orientation entry is of
/// a type libvips reads through its text form and we do not ("6", "6/1"),
/// or the segments before the first scan are not laid out as expected.
/// Pure; safe on any bytes.
std::optional<int> jpeg_exif_orientation(const void* data, size_t size);

} // namespace resized::imaging
