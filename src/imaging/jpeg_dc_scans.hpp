// A progressive JPEG cut down to what libjpeg reads when it decodes it at
// 1/8 scale, the shrink-on-load libvips' thumbnail asks for when it shrinks
// an image 16 times or more (every large photo made into a small thumbnail).
//
// Why: at 1/8 scale libjpeg-turbo's inverse DCT of a component at the
// image's full sampling is 1x1 (jidctred.c, jpeg_idct_1x1): a block's pixel
// is its DC coefficient and nothing else. A progressive JPEG sends the DC
// coefficients in scans of their own (a few % of the file); the AC scans
// after them are most of its bytes and most of its decode time, for
// coefficients that are then never read. libjpeg has no way to be told to
// skip them, so the stream handed to it leaves them out.
//
// What is kept, in order: every segment up to EOI except the AC scans of the
// components that decode 1x1 and XMP (APP1 "http://ns.adobe.com/...", which
// libvips only copies to metadata the output strips); every DC scan;
// the AC scans of a subsampled chroma component that libjpeg decodes with a
// 2x2 IDCT at 1/8 (4:2:0 chroma), which does read AC coefficients. After
// them, one AC scan per dropped component that codes every coefficient as
// zero (end-of-band runs): without it libjpeg, seeing AC coefficients never
// sent, would estimate them and smooth the DC values (jdcoefct.c,
// decompress_smooth_data), and the picture would differ. With it, the 1/8
// decode is the same pixels as the full stream's (tests compare the
// thumbnails byte for byte).
//
// Written by hand: no packaged library rewrites JPEG scans (jpegtran can
// only drop whole scans, and leaves libjpeg smoothing what is missing).
#pragma once

#include <cstddef>
#include <optional>
#include <string>

namespace resized::imaging {

/// The cut-down stream of a progressive, Huffman-coded, 8-bit JPEG for a
/// decode at 1/8 scale, or nullopt when it would not be the same pixels or
/// would gain nothing: not SOF2, a segment or scan cut short or out of
/// place, no EOI, a component without a DC scan or with AC coefficients
/// that no scan sends, no AC scan to drop. Anything after EOI is dropped (as
/// libjpeg ignores it). Pure; safe on any bytes.
std::optional<std::string> jpeg_dc_scans(const void* data, size_t size);

} // namespace resized::imaging
