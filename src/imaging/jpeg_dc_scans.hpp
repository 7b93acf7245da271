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
// Two forms, both decoding at 1/8 to the same pixels as the whole stream
// (tests compare the thumbnails byte for byte; a fuzzer compares libjpeg's
// 1/8 decodes):
//
// - Baseline, wherever it can be: the scans libjpeg's 1/8 decode reads are
//   decoded here (Huffman, restart intervals, successive approximation,
//   end-of-band runs) and written again as one sequential scan, after the
//   input's segments up to its first scan (SOF2 made SOF0, XMP left out):
//   each block its DC value and an end-of-block, and for a component
//   libjpeg decodes with a larger IDCT at 1/8 (4:2:0 chroma, 2x2) its AC
//   coefficients too. libjpeg decodes that a row of blocks at a time, where
//   a progressive stream makes it allocate and zero every coefficient of
//   the image first (6 bytes a pixel: 88 MB for a 14.7 MP photo).
// - Progressive, when the baseline form cannot say the same (a kept
//   component's AC coefficients not refined to their last bit, which
//   libjpeg then smooths; a quantisation table redefined between scans; a
//   scan out of T.81's order; values past 8-bit baseline coding): every
//   segment up to EOI except XMP and the AC scans of the components that
//   decode 1x1; every DC scan and the other components' AC scans; then one
//   AC scan per dropped component that codes every coefficient as zero
//   (end-of-band runs). Without it libjpeg, seeing AC coefficients never
//   sent, would estimate them and smooth the DC values too (jdcoefct.c,
//   decompress_smooth_data), and the picture would differ.
//
// XMP (APP1 "http://ns.adobe.com/...") is metadata libvips only copies to
// the output, which strips it.
//
// Written by hand: no packaged library rewrites JPEG scans (jpegtran can
// only drop whole scans, and leaves libjpeg smoothing what is missing).
#pragma once

#include <cstddef>
#include <optional>
#include <string>

namespace resized::imaging {

/// The cut-down stream of a progressive, Huffman-coded, 8-bit JPEG for a
/// decode at 1/8 scale (baseline where it can be, else progressive), or
/// nullopt when it would not be the same pixels or would gain nothing: not
/// SOF2, a segment or scan cut short or out of place, no EOI, a component
/// without a DC scan or with AC coefficients that no scan sends, no AC scan
/// to drop. Anything after EOI is dropped (as libjpeg ignores it). Pure;
/// safe on any bytes; allocates at most about 32 bytes per input byte.
std::optional<std::string> jpeg_dc_scans(const void* data, size_t size);

} // namespace resized::imaging
