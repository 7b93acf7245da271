// What a client asks of one resize, and the limits that bound every resize.
// Plain values: they cross actor and node boundaries (see actors/messages.hpp).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace resized::imaging {

/// How the image is fitted into the width x height box.
enum class fit_mode : uint8_t {
  fill,  // cover the box, centre-crop to exactly width x height
  fit,   // largest size inside the box, aspect ratio kept
  force, // stretch to exactly width x height (the original service)
};

/// Output encodings. avif only where the libvips build can write it.
enum class output_format : uint8_t { jpeg, png, webp, avif };

/// Input formats we recognise from their leading bytes.
enum class input_format : uint8_t { unknown, jpeg, png, webp, gif, tiff, heif };

/// What the header of an image says; nothing is decoded (imaging::probe).
/// Plain data: it travels with a task, so the worker need not read the
/// header again.
struct probe_info {
  input_format format = input_format::unknown; // unknown: not probed
  int width = 0;
  int height = 0;
  int pages = 1;
  /// Progressive (or multi-scan) JPEG or interlaced PNG: the decoder holds
  /// the whole image (JPEG: every DCT coefficient) however small the
  /// thumbnail.
  bool progressive = false;
  /// EXIF orientation 5-8: the upright image is height x width.
  bool orientation_swap = false;
  /// False when the header's orientation may turn out either way: a JPEG
  /// Orientation entry stored as text or a fraction, which libvips reads
  /// ("6", 6/1) and the header reader does not. Limits then hold for both
  /// shapes.
  bool orientation_certain = true;
  /// Bytes of one decoded pixel as the header says (bands x sample size:
  /// 3 for 8-bit RGB, 8 for 16-bit RGBA); 0 when not read.
  int bytes_per_pixel = 0;
};

struct resize_options {
  int width = 100;  // target box width in pixels; 0 = derive from height
  int height = 100; // target box height in pixels; 0 = derive from width
  fit_mode mode = fit_mode::fill;
  output_format format = output_format::jpeg;
  int quality = 85; // 1..100, for lossy encoders
};

/// What `resize` (pipeline.hpp) makes of given bytes, options and limits,
/// as a number in every content key (common/content_key.hpp). Bump it with
/// any change that makes the pipeline answer otherwise for the same input
/// (other pixels, bands or encoding): a result made before the change, kept
/// in Redis under the old key, is then not reused for a submission after
/// it. 2: grey inputs come out as three-band sRGB.
inline constexpr int output_revision = 2;

/// Bounds on any single image; every field is a config key (limits.*,
/// resize.task-timeout-ms). They are a task's policy: the node that accepts
/// the task decides them, and they travel with it to the node that runs it
/// (actors::resize_job::policy).
struct limits {
  uint64_t max_pixels = 50'000'000; // input width*height (limits.max-pixels)
  int max_dimension = 4096; // output width/height (limits.max-dimension)
  /// Output pixels of an AVIF result (limits.max-avif-pixels): the AV1
  /// encoder takes about 30 bytes and 0.25 us of a core per pixel, and
  /// cannot be stopped once it runs.
  uint64_t max_avif_pixels = 4'194'304;
  uint64_t max_input_bytes = 50u << 20;
  /// Longest a resize may compute (resize.task-timeout-ms); 0 = no limit.
  /// Enforced inside libvips: the pixel pipeline is killed through its eval
  /// signal, and the task ends processing_timeout.
  int64_t max_processing_ms = 0;
  bool fail_on_truncated = true; // limits.truncated = "fail": an image whose
                                 // data ends early is FAILURE corrupt_image
                                 // ("serve": served, missing part grey)
};

std::string_view to_string(fit_mode mode);
std::string_view to_string(output_format format);
std::string_view to_string(input_format format);
bool parse(std::string_view text, fit_mode& out);
/// Accepts "jpeg", "jpg", "png", "webp", "avif" (case-sensitive, lower).
bool parse(std::string_view text, output_format& out);

/// MIME type of an output format, e.g. "image/jpeg".
std::string_view mime_type(output_format format);
/// File extension without dot, e.g. "jpg".
std::string_view extension(output_format format);
/// Output format of a file extension ("jpg", "jpeg", "png", "webp", "avif").
bool from_extension(std::string_view ext, output_format& out);

} // namespace resized::imaging
