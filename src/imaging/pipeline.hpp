// The libvips resize pipeline: a plain library with no actors in it.
// All functions are thread-safe once `startup` has run.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include "common/outcome.hpp"
#include "imaging/options.hpp"

namespace resized::imaging {

/// Initialises libvips (VIPS_INIT) once per process, before other threads
/// start: cache off, `concurrency` threads per pipeline (1 is the proven
/// choice with one pipeline per resize worker). Logs nothing; returns false
/// and fills `err` if libvips cannot start.
///
/// `worker_nice`: niceness of libvips' worker threads. libvips creates them
/// on demand from the thread that needs one, and they keep that thread's
/// niceness (Linux: nice is per thread) for the life of the process. The
/// start-up encoding probes are the first to need workers, so with
/// `worker_nice` > 0 start-up runs on a helper thread at that niceness;
/// otherwise those first workers would stay at the caller's priority and
/// compete with the HTTP threads on equal terms.
bool startup(const char* argv0, int concurrency, std::string& err,
             int worker_nice = 0);

/// Shuts libvips down (vips_shutdown). Call once at exit.
void shutdown();

/// Whether this libvips build can encode `format` (checked at startup).
bool can_write(output_format format);

/// Detects the input format from the leading bytes only (pure, no libvips).
input_format sniff(const void* data, size_t size);

/// Roughly the memory one resize of this input holds at its peak: the input
/// bytes, plus what the decoder holds of the whole image: 6 bytes a pixel
/// for a progressive JPEG (the coefficients of three full-size components)
/// or an interlaced PNG (more at 16 bits), 6 for a GIF's canvas, 7 or more
/// for HEIF/AVIF; plus 32 bytes per output pixel for an AVIF result (the
/// AV1 encoder). Measured alone per corpus photo (bench/RESULTS.md): 14.7
/// MP progressive +89 MiB, 9.2 MP progressive +75 MiB, 4.1 MP progressive
/// +16-23 MiB, baseline JPEGs and PNGs +2-15 MiB.
uint64_t decode_estimate(const probe_info& info, size_t input_bytes,
                         const resize_options& opts, const limits& lim);

/// Pixels of the result `opts` asks of this input, at most (a missing side
/// derived from the aspect ratio and capped as the resize does; the larger
/// of the two shapes when the orientation is not certain).
uint64_t output_pixels(const probe_info& info, const resize_options& opts,
                       const limits& lim);

/// invalid_option when the result would pass a limit on outputs
/// (limits.max-avif-pixels); checked on submission and again in resize.
std::optional<failure> check_output(const probe_info& info,
                                    const resize_options& opts,
                                    const limits& lim);

/// Sniffs the format and reads the header (no pixel decode).
/// Errors: unsupported_format (not an accepted format), corrupt_image
/// (header unreadable), image_too_large (pixels over `lim.max_pixels`).
outcome<probe_info> probe(const void* data, size_t size, const limits& lim);

/// Wall-clock seconds spent in each stage of one resize. libvips fuses
/// decoding and shrinking into one pipeline, so the pixel work is counted
/// where libvips runs it: with mode fill, inside its thumbnail call (it
/// holds the shrunk image in memory for the centre crop), i.e. `decode`;
/// with fit and force, inside the save, i.e. `encode`.
struct stage_timings {
  double decode = 0; // header, thumbnail (fill: the decode and the shrink)
  double resize = 0; // colour and alpha steps wired (no pixels yet)
  double encode = 0; // the save (fit, force: the decode and shrink too)
};

struct resize_result {
  std::string bytes; // encoded output
  int width = 0;
  int height = 0;
  output_format format = output_format::jpeg;
  stage_timings timings;
  /// A progressive JPEG decoded from its DC scans only (jpeg_dc_scans.hpp):
  /// the same pixels, most of the decode skipped.
  bool jpeg_dc_scans = false;
  /// Converted from an embedded RGB profile to sRGB. False when there was
  /// none, or it was an sRGB profile (icc_profile.hpp), which is dropped.
  bool profile_converted = false;
};

/// Whether `resize` decodes a progressive JPEG that libvips loads at 1/8
/// scale from its DC scans only. On by default where libvips is 8.14 (the
/// version whose choice of scale the pipeline mirrors), always off
/// elsewhere. Turning it off is for comparisons: the tests (same bytes out)
/// and the benchmark (libvips' plain thumbnail). Call before `startup` or
/// after it; returns whether it is in use (never before `startup`).
bool use_jpeg_dc_scans(bool on);

/// Resizes one image held in memory (`data` must stay alive during the call).
/// Output: upright (EXIF orientation applied), sRGB, metadata stripped,
/// alpha flattened onto white for JPEG. Errors: unsupported_format,
/// corrupt_image, image_too_large, invalid_option, encode_failed.
/// Clears the calling thread's libvips error buffer before returning.
/// `known`: what `probe` said of these bytes earlier (a task carries it from
/// the API node): the header is not read again, only its pixel count is
/// checked against `lim`. Without it (or if its format is not what the
/// bytes are), the header is read here.
outcome<resize_result> resize(const void* data, size_t size,
                              const resize_options& opts, const limits& lim,
                              const probe_info* known = nullptr);

} // namespace resized::imaging
