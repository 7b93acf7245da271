// The libvips thumbnail pipeline (libvips 8.14 C API).
//
// One resize is a chain of small stages, composed in `resize()` at the end of
// this file:
//
//   check_options -> read_header (sniff + format loader or, for JPEG,
//                    libjpeg directly; pixel limit)
//     -> plan_thumbnail -> [jpeg_dc_scans: a progressive JPEG that libvips
//        will load at 1/8 scale is cut down to its DC scans]
//     -> load_thumbnail (shrink-on-load, orientation, colour import,
//        fit/fill/force)
//     -> to_srgb_8bit -> from_embedded_profile (tagged RGB to sRGB)
//     -> flatten_for (JPEG only) -> encode
//
// libvips builds a lazy graph: the pixels are decoded, shrunk and encoded
// when the save pulls them, except that its thumbnail computes the shrunk
// image itself when it crops (mode fill: it keeps it in memory for the
// crop). Stage timings follow that split (stage_timings in pipeline.hpp).
//
// Safety: only six format-specific loaders can run. `startup` blocks every
// other libvips loader (ImageMagick, PDF, SVG, ...), `read_header` opens the
// header with the loader that `sniff` chose, and `load_thumbnail` refuses to
// call `vips_thumbnail_buffer` (which picks its loader itself) unless libvips
// would pick that very loader.
//
// Threads: every function here may run on any thread once `startup` ran.
// libvips keeps per-thread buffers; the worker thread that runs `resize`
// calls `vips_thread_shutdown()` when it ends, not `resize` itself (that
// would throw the buffers away after every image).
// libvips' error buffer is process-wide: under concurrent resizes a message
// may carry text from another thread's failure. Codes are always right.

#include "imaging/pipeline.hpp"
#include "imaging/icc_profile.hpp"
#include "imaging/jpeg_dc_scans.hpp"
#include "imaging/jpeg_header.hpp"
#include "imaging/png_data.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>

#include <sys/resource.h>
#include <unistd.h>

#include <fmt/format.h>
#include <vips/vips.h>

#include <vips/vector.h> // after vips.h, which it needs; vips_vector_set_enabled

#include "common/log.hpp"

namespace resized::imaging {

namespace {

// -- RAII owners for libvips handles -----------------------------------------

struct image_unref {
  void operator()(VipsImage* ptr) const noexcept { g_object_unref(ptr); }
};

/// Owns one reference to a VipsImage.
using image_ptr = std::unique_ptr<VipsImage, image_unref>;

struct g_free_deleter {
  void operator()(void* ptr) const noexcept { g_free(ptr); }
};

/// Owns a buffer that libvips allocated with g_malloc (saver output).
using vips_buffer = std::unique_ptr<void, g_free_deleter>;

struct area_unref {
  void operator()(VipsArrayDouble* ptr) const noexcept {
    vips_area_unref(VIPS_AREA(ptr));
  }
};

using double_array = std::unique_ptr<VipsArrayDouble, area_unref>;

/// Clears libvips' error buffer on every path out of a public function, so
/// no message leaks into the next job.
struct error_buffer_guard {
  error_buffer_guard() = default;
  error_buffer_guard(const error_buffer_guard&) = delete;
  error_buffer_guard& operator=(const error_buffer_guard&) = delete;
  ~error_buffer_guard() { vips_error_clear(); }
};

/// libvips' error buffer as one trimmed line ("a; b; c"), or `fallback`.
std::string vips_message(std::string_view fallback) {
  constexpr size_t max_length = 300;
  std::string out;
  std::string_view last;
  std::string_view text = vips_error_buffer();
  while (!text.empty()) {
    auto eol = text.find('\n');
    auto line = text.substr(0, eol);
    while (!line.empty() && (line.back() == ' ' || line.back() == '\r'))
      line.remove_suffix(1);
    if (!line.empty() && line != last) { // libjpeg repeats itself
      if (!out.empty())
        out += "; ";
      out += line;
      last = line;
    }
    if (eol == std::string_view::npos)
      break;
    text.remove_prefix(eol + 1);
  }
  vips_error_clear();
  if (out.empty())
    return std::string{fallback};
  if (out.size() > max_length) {
    out.resize(max_length - 3);
    out += "...";
  }
  return out;
}

failure vips_failure(error_code code, std::string_view what) {
  // libvips fails some reads without a word (a cut-short interlaced PNG
  // read for a fill said "cannot decode the image: unknown")
  return failure{
      code, fmt::format("{}: {}", what,
                        vips_message(code == error_code::corrupt_image
                                         ? "its pixel data is cut short or "
                                           "damaged (libvips gave no reason)"
                                         : "libvips gave no reason"))};
}

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point start) {
  return std::chrono::duration<double>(clock_type::now() - start).count();
}

// -- process-wide state, written once by startup ------------------------------

constexpr size_t format_count = 4; // output_format values

struct library_state {
  std::mutex mutex;
  std::atomic<bool> started{false};
  bool stopped = false; // libvips cannot start again after vips_shutdown
  std::array<std::atomic<bool>, format_count> writable{};
  /// jpeg_dc_scans in use: libvips is the version whose choice of JPEG
  /// shrink-on-load `loads_at_one_eighth` mirrors, and no one turned it off.
  std::atomic<bool> dc_scans{false};
  bool dc_scans_wanted = true;
};

library_state& state() {
  static library_state instance;
  return instance;
}

/// libjpeg decodes that warned, counted on this thread (see
/// `data_ended_early`): libvips 8.14's JPEG loader counts libjpeg's
/// warnings and, when it frees its decoder, says "read gave N warnings"
/// through GLib (jpeg2vips.c, readjpeg_free), which `forward_glib_log`
/// receives. The decoder goes with the last reference to the graph, which
/// the thread that ran the resize drops: with the operation cache off,
/// nothing else holds one once the save has returned.
thread_local unsigned long jpeg_warned_reads = 0;

/// The only loaders allowed to run, by libvips nickname.
constexpr std::array<const char*, 6> allowed_loaders{
    "jpegload_buffer", "pngload_buffer",  "webpload_buffer",
    "gifload_buffer",  "tiffload_buffer", "heifload_buffer",
};

const char* loader_nickname(input_format format) {
  switch (format) {
  case input_format::jpeg:
    return "jpegload_buffer";
  case input_format::png:
    return "pngload_buffer";
  case input_format::webp:
    return "webpload_buffer";
  case input_format::gif:
    return "gifload_buffer";
  case input_format::tiff:
    return "tiffload_buffer";
  case input_format::heif:
    return "heifload_buffer";
  case input_format::unknown:
    break;
  }
  return nullptr;
}

/// Encodes `img` as `format`; the stage `encode` and the startup probe share
/// it so that `can_write` tells exactly what `resize` can do.
int save_buffer(VipsImage* img, output_format format, int quality, void** buf,
                size_t* len) {
  switch (format) {
  case output_format::jpeg:
    // optimize_coding: a second Huffman pass, cheap at thumbnail sizes and
    // a few percent smaller. Chroma subsampling follows Q (libvips auto).
    return vips_jpegsave_buffer(img, buf, len, "Q", quality, "strip", TRUE,
                                "optimize_coding", TRUE, nullptr);
  case output_format::png:
    return vips_pngsave_buffer(img, buf, len, "strip", TRUE, "compression", 6,
                               nullptr);
  case output_format::webp:
    return vips_webpsave_buffer(img, buf, len, "Q", quality, "strip", TRUE,
                                nullptr);
  case output_format::avif:
    // bitdepth 8: 8.14 defaults to 12 bits, slower and less compatible.
    // effort 2 of 0..9: AV1 is the slowest encoder we run by far.
    return vips_heifsave_buffer(
        img, buf, len, "compression", VIPS_FOREIGN_HEIF_COMPRESSION_AV1, "Q",
        quality, "bitdepth", 8, "effort", 2, "strip", TRUE, nullptr);
  }
  vips_error("resized", "unknown output format");
  return -1;
}

/// Whether this libvips build can encode `format`: encodes a tiny image.
bool try_encode(output_format format) {
  VipsImage* black = nullptr;
  if (vips_black(&black, 8, 8, "bands", 3, nullptr) != 0)
    return false;
  image_ptr img{black};
  VipsImage* copy = nullptr;
  if (vips_copy(img.get(), &copy, "interpretation", VIPS_INTERPRETATION_sRGB,
                nullptr) != 0)
    return false;
  image_ptr srgb{copy};
  void* buf = nullptr;
  size_t len = 0;
  int rc = save_buffer(srgb.get(), format, 50, &buf, &len);
  vips_buffer owner{buf};
  return rc == 0 && len > 0;
}

/// Lets only `allowed_loaders` run, whatever libvips picks.
void restrict_loaders() {
  vips_block_untrusted_set(TRUE);
  vips_operation_block_set("VipsForeignLoad", TRUE);
  // vips_operation_block_set wants class names ("VipsForeignLoadJpegBuffer")
  // and unblocking one class leaves its siblings (the file and source
  // loaders) blocked.
  for (auto nickname : allowed_loaders) {
    GType type = vips_type_find("VipsOperation", nickname);
    if (type != 0)
      vips_operation_block_set(g_type_name(type), FALSE);
  }
}

// -- stage: options -----------------------------------------------------------

std::optional<failure> check_options(const resize_options& opts,
                                     const limits& lim) {
  auto bad = [](std::string msg) {
    return failure{error_code::invalid_option, std::move(msg)};
  };
  if (opts.width < 0 || opts.width > lim.max_dimension)
    return bad(fmt::format("width must be 1..{} or 0 to derive it from the "
                           "height, got {}",
                           lim.max_dimension, opts.width));
  if (opts.height < 0 || opts.height > lim.max_dimension)
    return bad(fmt::format("height must be 1..{} or 0 to derive it from the "
                           "width, got {}",
                           lim.max_dimension, opts.height));
  if (opts.width == 0 && opts.height == 0)
    return bad("width and height cannot both be 0");
  if (opts.quality < 1 || opts.quality > 100)
    return bad(fmt::format("quality must be 1..100, got {}", opts.quality));
  switch (opts.mode) {
  case fit_mode::fill:
  case fit_mode::fit:
  case fit_mode::force:
    break;
  default:
    return bad("mode must be fill, fit or force");
  }
  if (static_cast<size_t>(opts.format) >= format_count)
    return bad("format must be jpeg, png, webp or avif");
  if (!can_write(opts.format))
    return bad(fmt::format("format {} is not supported by this server",
                           to_string(opts.format)));
  return std::nullopt;
}

// -- stage: header ------------------------------------------------------------

/// Opens the header of `data` with the format's own loader; no pixels are
/// decoded (sequential access: the loader reads lazily).
int open_header(input_format format, const void* data, size_t size,
                VipsImage** out) {
  // The loaders take a non-const pointer but never write through it.
  void* buf = const_cast<void*>(data);
  const auto seq = VIPS_ACCESS_SEQUENTIAL;
  switch (format) {
  case input_format::jpeg:
    return vips_jpegload_buffer(buf, size, out, "access", seq, nullptr);
  case input_format::png:
    return vips_pngload_buffer(buf, size, out, "access", seq, nullptr);
  case input_format::webp:
    return vips_webpload_buffer(buf, size, out, "access", seq, nullptr);
  case input_format::gif:
    return vips_gifload_buffer(buf, size, out, "access", seq, nullptr);
  case input_format::tiff:
    return vips_tiffload_buffer(buf, size, out, "access", seq, nullptr);
  case input_format::heif:
    return vips_heifload_buffer(buf, size, out, "access", seq, nullptr);
  case input_format::unknown:
    break;
  }
  vips_error("resized", "no loader for this format");
  return -1;
}

/// image_too_large when the header's pixel count is over the limit.
std::optional<failure> check_pixels(const probe_info& info, const limits& lim) {
  auto pixels =
      static_cast<uint64_t>(info.width) * static_cast<uint64_t>(info.height);
  if (pixels <= lim.max_pixels)
    return std::nullopt;
  return failure{error_code::image_too_large,
                 fmt::format("image is {}x{} = {} pixels, limit is {} "
                             "(limits.max-pixels)",
                             info.width, info.height, pixels, lim.max_pixels)};
}

/// Scans a progressive JPEG may have. libjpeg decodes every scan over the
/// whole image before the first row comes out (where neither the task
/// deadline nor anything else can stop it), so a crafted file of thousands
/// of tiny scans costs minutes of CPU; encoders write about 10 (libjpeg's
/// progressive script: 10 for colour, 6 for grey), and djpeg's -maxscans
/// and libjpeg-turbo 3's scan limit guard against the same.
constexpr size_t max_jpeg_scans = 500;

/// A JPEG's header, read with libjpeg directly: see jpeg_header.hpp for why
/// not libvips' loader.
outcome<probe_info> read_jpeg(const void* data, size_t size) {
  std::string why;
  bool unsupported = false;
  auto jpeg = read_jpeg_header(data, size, why, &unsupported);
  if (!jpeg && unsupported)
    return failure{error_code::unsupported_format,
                   fmt::format("a JPEG of a kind libjpeg does not decode: {} "
                               "(8-bit baseline, progressive and "
                               "arithmetic-coded JPEGs are)",
                               why)};
  if (!jpeg)
    return failure{error_code::corrupt_image,
                   fmt::format("cannot read the jpeg header: {}", why)};
  if (jpeg->progressive &&
      count_jpeg_scans(data, size, max_jpeg_scans) > max_jpeg_scans)
    return failure{error_code::image_too_large,
                   fmt::format("the progressive JPEG has more than {} scans "
                               "(encoders write about 10): decoding it would "
                               "cost that many passes over the image",
                               max_jpeg_scans)};
  return *jpeg;
}

/// Any other format's header, through its own libvips loader.
outcome<probe_info> read_vips_header(input_format format, const void* data,
                                     size_t size) {
  VipsImage* raw = nullptr;
  if (open_header(format, data, size, &raw) != 0)
    return vips_failure(
        error_code::corrupt_image,
        fmt::format("cannot read the {} header", to_string(format)));
  image_ptr img{raw};
  probe_info info;
  info.format = format;
  info.width = vips_image_get_width(img.get());
  info.height = vips_image_get_page_height(img.get());
  int interlaced = 0;
  if (vips_image_get_typeof(img.get(), "interlaced") != 0 &&
      vips_image_get_int(img.get(), "interlaced", &interlaced) == 0)
    info.progressive = interlaced != 0;
  if (vips_image_get_typeof(img.get(), VIPS_META_N_PAGES) != 0) {
    int pages = 1;
    if (vips_image_get_int(img.get(), VIPS_META_N_PAGES, &pages) == 0 &&
        pages > 0)
      info.pages = pages;
  }
  info.orientation_swap = vips_image_get_orientation_swap(img.get());
  info.bytes_per_pixel =
      static_cast<int>(vips_image_get_bands(img.get()) *
                       vips_format_sizeof(vips_image_get_format(img.get())));
  return info;
}

outcome<probe_info> read_header(const void* data, size_t size,
                                const limits& lim) {
  auto format = sniff(data, size);
  if (format == input_format::unknown)
    return failure{error_code::unsupported_format,
                   "bytes are not a JPEG, PNG, WebP, GIF, TIFF or HEIF/AVIF "
                   "image"};
  if (format == input_format::png) {
    // libvips loads no image with a side over VIPS_MAX_COORD (10,000,000
    // pixels): its PNG loader fails such a header as if the data were
    // damaged. Said from the IHDR here, after the pixel limit's own words.
    constexpr uint32_t max_side = VIPS_MAX_COORD;
    if (auto bad = png_header_problem(data, size))
      return failure{error_code::corrupt_image, std::move(*bad)};
    if (auto dims = png_dimensions(data, size)) {
      probe_info declared;
      declared.width =
          static_cast<int>(std::min<uint32_t>(dims->first, INT32_MAX));
      declared.height =
          static_cast<int>(std::min<uint32_t>(dims->second, INT32_MAX));
      if (auto too_large = check_pixels(declared, lim))
        return std::move(*too_large);
      if (dims->first > max_side || dims->second > max_side)
        return failure{error_code::image_too_large,
                       fmt::format("image is {}x{}: a side over {} pixels, "
                                   "which libvips does not load",
                                   dims->first, dims->second, max_side)};
    }
  }
  auto info = format == input_format::jpeg
                  ? read_jpeg(data, size)
                  : read_vips_header(format, data, size);
  if (!info)
    return info;
  if (auto too_large = check_pixels(*info, lim))
    return std::move(*too_large);
  return info;
}

// -- stage: thumbnail ---------------------------------------------------------

/// The arguments of vips_thumbnail_buffer for one request.
std::string loader_options(input_format format, bool fail_on_truncated);

struct thumbnail_plan {
  int width = 1;
  int height = 1;
  VipsSize size = VIPS_SIZE_BOTH;
  VipsInteresting crop = VIPS_INTERESTING_NONE;
  /// fill that enlarges: crop the centre at the input's scale, then enlarge
  /// (see `load_cropped_then_enlarged`).
  bool crop_first = false;
  /// Loader option string: first page only, and fail_on=truncated unless
  /// limits.fail-on-truncated is off.
  std::string loader_options;
};

/// Maps the request onto libvips' thumbnail box. Both sizes allow upscaling:
/// the API promises the requested dimensions. A missing side (0) is derived
/// from the aspect ratio, but capped at `max_dimension`, so a 20000x1 strip
/// asked for height 100 gives 4096x1, not 2000000x100.
/// `swap`: whether libvips will turn the image (EXIF orientation 5-8);
/// nullopt when that is not certain (jpeg_exif_orientation).
thumbnail_plan plan_thumbnail(const resize_options& opts, const limits& lim,
                              const probe_info& head,
                              std::optional<bool> swap) {
  thumbnail_plan plan;
  plan.loader_options = loader_options(head.format, lim.fail_on_truncated);
  if (opts.width == 0 || opts.height == 0) {
    plan.width = opts.width == 0 ? lim.max_dimension : opts.width;
    plan.height = opts.height == 0 ? lim.max_dimension : opts.height;
    return plan; // fit inside (given side, cap): mode does not matter
  }
  plan.width = opts.width;
  plan.height = opts.height;
  switch (opts.mode) {
  case fit_mode::fill: {
    plan.crop = VIPS_INTERESTING_CENTRE;
    // thumbnail would first enlarge the whole image to cover the box:
    // 20000x1 to 100x100 becomes a 2000000x100 intermediate (1 GB, 5 s).
    // the size of one page once EXIF orientation is applied; either way
    // when that is not certain (cropping first is right for both, only
    // slower where the other way would shrink)
    auto enlarges = [&](bool turned) {
      int upright_width = turned ? head.height : head.width;
      int upright_height = turned ? head.width : head.height;
      return std::max(double(opts.width) / upright_width,
                      double(opts.height) / upright_height) > 1.0;
    };
    plan.crop_first =
        swap ? enlarges(*swap) : enlarges(false) || enlarges(true);
    break;
  }
  case fit_mode::fit:
    break;
  case fit_mode::force:
    plan.size = VIPS_SIZE_FORCE;
    break;
  }
  return plan;
}

/// The JPEG shrink-on-load of libvips 8.14's thumbnail is a fixed function
/// of the header and the box (thumbnail.c): `loads_at_one_eighth` mirrors
/// it, so only that version gets the DC-scans stream.
bool dc_scans_supported() {
  return vips_version(0) == 8 && vips_version(1) == 14;
}

/// Whether libvips' thumbnail will load a `width` x `height` JPEG at 1/8
/// scale for `plan`: vips_thumbnail_find_jpegshrink returns 8 when the
/// common shrink of vips_thumbnail_calculate_shrink is 16 or more (never in
/// linear mode, which we do not use). The same arithmetic, with the box
/// turned when the EXIF orientation turns the image (`swap`), or for both
/// orientations when it is not certain how libvips reads the tag (nullopt).
/// Cropped enlargements (crop_first) load at 1:1.
bool loads_at_one_eighth(const thumbnail_plan& plan, int width, int height,
                         std::optional<bool> swap) {
  if (plan.crop_first || plan.size == VIPS_SIZE_UP)
    return false;
  auto common_shrink = [&](int box_w, int box_h) {
    double h = double(width) / box_w;
    double v = double(height) / box_h;
    bool horizontal = plan.crop != VIPS_INTERESTING_NONE ? h < v : !(h < v);
    if (plan.size != VIPS_SIZE_FORCE) {
      if (horizontal)
        v = h;
      else
        h = v;
    }
    return std::min(std::min(h, double(width)), std::min(v, double(height)));
  };
  bool upright = common_shrink(plan.width, plan.height) >= 16;
  bool turned = common_shrink(plan.height, plan.width) >= 16;
  if (!swap)
    return upright && turned;
  return *swap ? turned : upright;
}

/// Loader options for vips_thumbnail_buffer: multi-page formats use their
/// first page (frame) only; an animation becomes a still image. A HEIF's
/// is its primary image, as the header read (open_header) measured it:
/// heifload takes the primary (one) only when neither page= nor n= is
/// given; page=0, or n=1 alone, is the first image in the file, which may
/// be another (and larger than the pixel limit). With
/// `fail_on_truncated`, an image whose data ends early fails (corrupt_image)
/// instead of being served with its missing part grey.
std::string loader_options(input_format format, bool fail_on_truncated) {
  std::string out;
  switch (format) {
  case input_format::gif:
  case input_format::webp:
  case input_format::tiff:
    out = "page=0,n=1";
    break;
  case input_format::heif: // the primary: nothing to say
    break;
  default:
    break;
  }
  if (fail_on_truncated)
    out += out.empty() ? "fail_on=truncated" : ",fail_on=truncated";
  return out;
}

// -- stage: embedded profile
// ---------------------------------------------------

/// The ICC profile `img` carries for RGB data (the colour space field of
/// the profile's header, ICC.1 7.2.6, is 'RGB '); empty if none.
std::string_view rgb_profile(VipsImage* img) {
  if (vips_image_get_typeof(img, VIPS_META_ICC_NAME) == 0)
    return {};
  const void* data = nullptr;
  size_t length = 0;
  if (vips_image_get_blob(img, VIPS_META_ICC_NAME, &data, &length) != 0) {
    vips_error_clear();
    return {};
  }
  if (length < 128 ||
      std::memcmp(static_cast<const char*>(data) + 16, "RGB ", 4) != 0)
    return {};
  return {static_cast<const char*>(data), length};
}

/// A copy of `img` (the same pixels, lazily) without its ICC profile.
outcome<image_ptr> without_profile(VipsImage* img) {
  VipsImage* out = nullptr;
  if (vips_copy(img, &out, nullptr) != 0)
    return vips_failure(error_code::corrupt_image,
                        "cannot convert the image from its ICC profile");
  image_ptr untagged{out};
  vips_image_remove(untagged.get(), VIPS_META_ICC_NAME);
  return untagged;
}

/// 8-bit RGB tagged with an embedded profile (Display P3, Adobe RGB, ...)
/// converted from it to sRGB. libvips 8.14's thumbnail colour-manages CMYK
/// (and tagged images in linear mode, which we do not use) but passes RGB
/// values through as they are, profile ignored, unless it is given a profile
/// to export to; and given one, it converts untagged images too, which
/// would cost every input a transform. Here only tagged ones pay, on the
/// resized image (one transform per output pixel, not per input pixel). The
/// profile goes with the conversion: the pixels are sRGB now. CMYK (already
/// imported by thumbnail, its profile still attached) and grey are left
/// alone: their profiles do not describe RGB.
///
/// The lcms transform is built once per profile and kept (icc_profile.hpp:
/// building it is 3.5-5 ms, more than the rest of a 100x100 thumbnail); an
/// sRGB profile, whose conversion would move no value by more than one
/// level, is only dropped. What lcms cannot use here is left to libvips'
/// vips_icc_transform as before (a profile lcms cannot read stands for
/// sRGB there, libvips' fallback: nothing changes).
outcome<image_ptr> from_embedded_profile(image_ptr img, bool& converted) {
  if (vips_image_get_interpretation(img.get()) != VIPS_INTERPRETATION_sRGB ||
      vips_image_get_bands(img.get()) < 3)
    return img;
  auto profile = rgb_profile(img.get());
  if (profile.empty())
    return img;
  auto how = conversion_for(profile, vips_image_get_bands(img.get()));
  if (how.what == profile_conversion::kind::drop)
    return without_profile(img.get());
  VipsImage* out = nullptr;
  if (how.what == profile_conversion::kind::convert &&
      vips_image_get_format(img.get()) == VIPS_FORMAT_UCHAR)
    out = apply_conversion(img.get(), how);
  else if (vips_icc_transform(img.get(), &out, "srgb", "embedded", TRUE,
                              nullptr) != 0)
    out = nullptr;
  if (out == nullptr)
    return vips_failure(error_code::corrupt_image,
                        "cannot convert the image from its ICC profile");
  image_ptr result{out};
  converted = true;
  return without_profile(result.get());
}

/// Fill when the box is larger than the image along some axis: no
/// shrink-on-load is possible, so take the image upright at 1:1, cut the
/// centre with the box's aspect ratio, and only then enlarge it to exactly
/// the box. Same picture as thumbnail's cover-then-crop, without the huge
/// intermediate for extreme aspect ratios.
outcome<image_ptr> load_cropped_then_enlarged(const void* data, size_t size,
                                              input_format format,
                                              const thumbnail_plan& plan,
                                              bool& converted) {
  VipsImage* raw = nullptr;
  if (vips_thumbnail_buffer(const_cast<void*>(data), size, &raw, VIPS_MAX_COORD,
                            "height", VIPS_MAX_COORD, "size", VIPS_SIZE_DOWN,
                            "option_string", plan.loader_options.c_str(),
                            nullptr) != 0)
    return vips_failure(error_code::corrupt_image, "cannot decode the image");
  image_ptr full{raw};
  int w = vips_image_get_width(full.get());
  int h = vips_image_get_height(full.get());
  double cover = std::max(double(plan.width) / w, double(plan.height) / h);
  auto side = [](double exact, int limit) {
    return std::clamp(static_cast<int>(std::lround(exact)), 1, limit);
  };
  int cw = side(plan.width / cover, w);
  int ch = side(plan.height / cover, h);
  if (vips_extract_area(full.get(), &raw, (w - cw) / 2, (h - ch) / 2, cw, ch,
                        nullptr) != 0)
    return vips_failure(error_code::corrupt_image, "cannot crop the image");
  image_ptr centre{raw};
  // colour-managed before the enlargement: fewer pixels to transform
  auto managed = from_embedded_profile(std::move(centre), converted);
  if (!managed)
    return std::move(managed).error();
  centre = std::move(managed).value();
  if (vips_thumbnail_image(centre.get(), &raw, plan.width, "height",
                           plan.height, "size", VIPS_SIZE_FORCE, nullptr) != 0)
    return vips_failure(error_code::corrupt_image, "cannot enlarge the image");
  return image_ptr{raw};
}

/// Shrink-on-load thumbnail. It reads the header and builds the graph;
/// libvips applies the EXIF orientation (no_rotate defaults to false) and
/// imports CMYK through its profile into sRGB; tagged RGB keeps its values
/// and its profile (from_embedded_profile converts them; `converted` is
/// set when the crop-then-enlarge path did it here).
outcome<image_ptr> load_thumbnail(const void* data, size_t size,
                                  input_format format,
                                  const thumbnail_plan& plan, bool& converted) {
  // vips_thumbnail_buffer chooses its loader itself: make sure it is the one
  // `sniff` chose, so nothing else can parse these bytes.
  const char* expected = loader_nickname(format);
  const char* found = vips_foreign_find_load_buffer(data, size);
  const char* nickname = nullptr;
  if (found != nullptr) {
    GType type = g_type_from_name(found);
    nickname = type != 0 ? vips_nickname_find(type) : nullptr;
  }
  if (expected == nullptr || nickname == nullptr ||
      std::strcmp(expected, nickname) != 0) {
    vips_error_clear();
    return failure{error_code::unsupported_format,
                   fmt::format("bytes look like {} but libvips would not "
                               "read them as {}",
                               to_string(format), to_string(format))};
  }
  if (plan.crop_first)
    return load_cropped_then_enlarged(data, size, format, plan, converted);
  VipsImage* raw = nullptr;
  if (vips_thumbnail_buffer(const_cast<void*>(data), size, &raw, plan.width,
                            "height", plan.height, "size", plan.size, "crop",
                            plan.crop, "option_string",
                            plan.loader_options.c_str(), nullptr) != 0)
    return vips_failure(error_code::corrupt_image, "cannot decode the image");
  return image_ptr{raw};
}

// -- stage: colour ------------------------------------------------------------

/// 8-bit sRGB, alpha kept. Thumbnail has already imported CMYK; this
/// catches what it leaves (grey, 16-bit RGB/grey, Lab, float ...). Tagged
/// RGB is still in its own profile's space here. Grey comes out as three
/// equal bands: the output is sRGB whatever the input (API.md), as the
/// original service's (Pillow's convert("RGB")) was, so a client always
/// gets the same number of channels; the thumbnail costs a few hundred bytes
/// more (JPEG: its two chroma channels are flat).
outcome<image_ptr> to_srgb_8bit(image_ptr img) {
  if (vips_image_get_interpretation(img.get()) != VIPS_INTERPRETATION_sRGB) {
    VipsImage* out = nullptr;
    if (vips_colourspace(img.get(), &out, VIPS_INTERPRETATION_sRGB, nullptr) !=
        0)
      return vips_failure(error_code::corrupt_image,
                          "cannot convert the image to sRGB");
    img.reset(out);
  }
  if (vips_image_get_format(img.get()) == VIPS_FORMAT_USHORT) {
    // 16-bit data still tagged 8-bit sRGB/grey: keep the top byte.
    VipsImage* out = nullptr;
    if (vips_rshift_const1(img.get(), &out, 8, nullptr) != 0)
      return vips_failure(error_code::corrupt_image, "cannot reduce to 8 bit");
    img.reset(out);
  }
  if (vips_image_get_format(img.get()) != VIPS_FORMAT_UCHAR) {
    VipsImage* out = nullptr;
    if (vips_cast_uchar(img.get(), &out, nullptr) != 0)
      return vips_failure(error_code::corrupt_image, "cannot reduce to 8 bit");
    img.reset(out);
  }
  return img;
}

// -- stage: alpha
// ---------------------------------------------------------------

/// JPEG has no alpha: flatten onto white. Other formats keep their alpha.
outcome<image_ptr> flatten_for(output_format format, image_ptr img) {
  if (format != output_format::jpeg || !vips_image_hasalpha(img.get()))
    return img;
  double_array white{vips_array_double_newv(1, 255.0)};
  VipsImage* out = nullptr;
  if (vips_flatten(img.get(), &out, "background", white.get(), nullptr) != 0)
    return vips_failure(error_code::corrupt_image, "cannot flatten alpha");
  img.reset(out);
  if (vips_image_get_format(img.get()) != VIPS_FORMAT_UCHAR) {
    if (vips_cast_uchar(img.get(), &out, nullptr) != 0)
      return vips_failure(error_code::corrupt_image, "cannot reduce to 8 bit");
    img.reset(out);
  }
  return img;
}

// -- stage: encode
// --------------------------------------------------------------

/// Whether a failed save died in the encoder rather than in the loader. The
/// pixels are decoded during the save (libvips is lazy), so a cut or broken
/// input fails there too. libvips' error buffer lists the first failure
/// first: the loader's ("vipspng: libpng read error", "VipsJpeg: Premature
/// end of input file"), then the saver's consequence ("vips2png: unable to
/// write to target target"), which is also all there is when the loader
/// fails silently (libpng's interlaced path). So the encoder is at fault
/// only when the first entry names a saver ("heifsave: ...",
/// "vips2webp: ...") for a reason of its own, not for the pixels it could
/// not get. Everything else is the input's fault: our encoders are given
/// valid pixels, broken inputs are what clients send.
bool failed_in_encoder(std::string_view message) {
  auto first = message.substr(0, message.find("; "));
  if (first.find("unable to write to target") != std::string_view::npos)
    return false;
  for (std::string_view mark : {"save", "vips2"})
    if (first.find(mark) != std::string_view::npos)
      return true;
  return false;
}

/// A deadline watched from libvips' "eval" signal, which fires as the pixel
/// pipeline computes: past it, the computation is killed (vips_image_set_kill)
/// and the save fails. No thread is abandoned.
struct eval_deadline {
  clock_type::time_point at;
  bool fired = false;
};

void on_eval(VipsImage* image, VipsProgress*, void* data) {
  auto* d = static_cast<eval_deadline*>(data);
  if (!d->fired && clock_type::now() >= d->at) {
    d->fired = true;
    vips_image_set_kill(image, TRUE);
  }
}

/// Whether the header field `name` carries metadata of the input (Exif,
/// XMP, IPTC, a colour profile, text chunks) rather than how its pixels are
/// laid out.
bool is_metadata_field(std::string_view name) {
  for (std::string_view prefix :
       {"exif-", "xmp-", "iptc-", "icc-", "png-comment-", "gif-comment",
        "photoshop-", "heif-", "orientation"})
    if (name.substr(0, prefix.size()) == prefix)
      return true;
  return false;
}

/// A copy of `img` (a header copy: the pixels stay lazy) without the input's
/// metadata. Every saver is asked to strip, but libvips 8.14.1's webpsave
/// ignores it: it rebuilds the Exif block from the exif-* fields (GPS
/// position included) and writes it, the XMP packet and the colour profile.
/// Without the fields there is nothing any saver could write.
outcome<image_ptr> without_metadata(VipsImage* img) {
  VipsImage* copy = nullptr;
  if (vips_copy(img, &copy, nullptr) != 0)
    return failure{error_code::internal_error,
                   fmt::format("cannot copy the image header: {}",
                               vips_message("libvips gave no reason"))};
  image_ptr bare{copy};
  gchar** fields = vips_image_get_fields(bare.get());
  for (gchar** f = fields; *f != nullptr; ++f)
    if (is_metadata_field(*f))
      vips_image_remove(bare.get(), *f);
  g_strfreev(fields);
  return bare;
}

/// Runs the whole graph: decodes, resizes and encodes the pixels, within
/// `deadline` when it is set.
outcome<std::string> encode(VipsImage* input, const resize_options& opts,
                            std::optional<clock_type::time_point> deadline,
                            int64_t budget_ms) {
  auto bare = without_metadata(input);
  if (!bare)
    return bare.error();
  VipsImage* img = bare->get();
  void* buf = nullptr;
  size_t len = 0;
  eval_deadline watch{deadline.value_or(clock_type::time_point::max())};
  gulong handler = 0;
  if (deadline) {
    vips_image_set_progress(img, TRUE);
    handler = g_signal_connect(img, "eval", G_CALLBACK(on_eval), &watch);
  }
  int rc = save_buffer(img, opts.format, opts.quality, &buf, &len);
  if (handler != 0)
    g_signal_handler_disconnect(img, handler);
  vips_buffer owner{buf};
  if (rc != 0 && watch.fired) {
    vips_error_clear();
    return failure{error_code::processing_timeout,
                   fmt::format("processing took longer than {} ms (stopped "
                               "inside libvips)",
                               budget_ms)};
  }
  if (rc != 0) {
    auto message = vips_message("");
    if (failed_in_encoder(message))
      return failure{error_code::encode_failed,
                     fmt::format("cannot encode the image: {}", message)};
    // The saver's "unable to write to target" only echoes the loader.
    auto echo = message.find("; vips2");
    if (message.find("unable to write to target") != std::string::npos)
      message.resize(echo == std::string::npos ? 0 : echo);
    return failure{error_code::corrupt_image,
                   message.empty()
                       ? std::string{"cannot decode the image: its pixel data "
                                     "is cut short or damaged"}
                       : fmt::format("cannot decode the image: {}", message)};
  }
  return std::string{static_cast<const char*>(buf), len};
}

// -- stage: data that ends early
// ------------------------------------------------

/// Whether a JPEG resize that succeeded decoded made-up blocks for data that
/// ended early. libvips 8.14's fail_on=truncated fails a JPEG whose bytes
/// run out (libjpeg asks for more), but libjpeg only warns when a scan's
/// data stops at a marker before its last block, as it does in a file cut
/// short that still ends with EOI (FF D9), or whose header claims more
/// blocks than its scan codes: the rest came out grey and was served.
/// libvips reports warnings into its process-wide error buffer (shared
/// with concurrent resizes, and cleared by each of them), and fail_on=
/// warning also fails harmless ones (extraneous bytes before a marker,
/// common in camera files). So: a decode that warned (`warned_reads`, this
/// thread's count before the resize) is decoded again here with libjpeg at
/// 1/8 scale, whose warnings we read ourselves (jpeg_data_ends_early). An
/// input without warnings costs nothing more.
std::optional<failure> data_ended_early(const void* data, size_t size,
                                        const probe_info& head,
                                        const limits& lim,
                                        unsigned long warned_reads) {
  if (head.format != input_format::jpeg || !lim.fail_on_truncated ||
      jpeg_warned_reads == warned_reads || !jpeg_data_ends_early(data, size))
    return std::nullopt;
  return failure{error_code::corrupt_image,
                 "cannot decode the image: its data ends early (libjpeg: "
                 "premature end of data segment)"};
}

} // namespace

// -- public interface
// -----------------------------------------------------------

namespace {

// libvips warns through GLib (e.g. "unknown EXIF resolution unit" on many
// camera photos): route those lines into our log at debug level instead of
// raw stderr.
void forward_glib_log(const gchar* domain, GLogLevelFlags level,
                      const gchar* message, gpointer) {
  // jpeg2vips.c's g_warning (untranslated: the process keeps the C locale)
  if (message != nullptr && std::strncmp(message, "read gave ", 10) == 0)
    ++jpeg_warned_reads;
  auto lvl = (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL)) != 0
                 ? log::level::warn
                 : log::level::debug;
  if (log::enabled(lvl))
    log::write(lvl, message, {{"domain", domain != nullptr ? domain : "glib"}});
}

} // namespace

bool startup(const char* argv0, int concurrency, std::string& err,
             int worker_nice) {
  auto& st = state();
  std::lock_guard<std::mutex> guard{st.mutex};
  if (st.stopped) {
    err = "libvips was shut down and cannot start again";
    return false;
  }
  if (!st.started) {
    auto start = [&] {
      g_log_set_handler("VIPS",
                        static_cast<GLogLevelFlags>(G_LOG_LEVEL_MASK |
                                                    G_LOG_FLAG_FATAL |
                                                    G_LOG_FLAG_RECURSION),
                        forward_glib_log, nullptr);
      if (VIPS_INIT(argv0 != nullptr ? argv0 : "resized") != 0) {
        err = vips_message("vips_init failed");
        return;
      }
      // Every job is a different image: caching operations only costs
      // memory.
      vips_cache_set_max(0);
      vips_cache_set_max_mem(0);
      vips_cache_set_max_files(0);
      // No ORC. libvips 8.14 JIT-compiles an ORC program for the reduce of
      // every thumbnail it builds (with the cache off: every task), and
      // liborc 0.4.33's code memory is not safe for threads compiling and
      // freeing programs at once: a bench run of small photos crashed the
      // service (SIGSEGV inside liborc's code memory allocator, next to
      // orc_code_allocate_codemem, on a resize thread). libvips' C paths
      // make the thumbnails without the per-task compile, and measured no
      // slower (raw_pipeline, 3 pairs: corpus 63.6-67.6 → 65.1-68.0
      // images/s, small photos 250-258 → 256-267).
      vips_vector_set_enabled(FALSE);
      restrict_loaders();
      st.dc_scans = st.dc_scans_wanted && dc_scans_supported();
      for (size_t i = 0; i < format_count; ++i)
        st.writable[i] = try_encode(static_cast<output_format>(i));
      vips_error_clear();
      st.started = true;
    };
    if (worker_nice > 0) {
      std::thread helper{[&] {
        setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), worker_nice);
        start();
        vips_thread_shutdown();
      }};
      helper.join();
    } else {
      start();
    }
    if (!st.started)
      return false;
  }
  vips_concurrency_set(concurrency > 0 ? concurrency : 1);
  return true;
}

bool use_jpeg_dc_scans(bool on) {
  auto& st = state();
  std::lock_guard<std::mutex> guard{st.mutex};
  st.dc_scans_wanted = on;
  if (st.started)
    st.dc_scans = on && dc_scans_supported();
  return st.dc_scans;
}

void shutdown() {
  auto& st = state();
  std::lock_guard<std::mutex> guard{st.mutex};
  if (st.started) {
    vips_shutdown();
    st.started = false;
    st.stopped = true;
  }
}

bool can_write(output_format format) {
  auto index = static_cast<size_t>(format);
  return index < format_count && state().writable[index].load();
}

input_format sniff(const void* data, size_t size) {
  if (data == nullptr)
    return input_format::unknown;
  auto* p = static_cast<const unsigned char*>(data);
  auto starts = [&](size_t offset, std::string_view magic) {
    return size >= offset + magic.size() &&
           std::memcmp(p + offset, magic.data(), magic.size()) == 0;
  };
  using namespace std::string_view_literals;
  if (starts(0, "\xFF\xD8\xFF"sv))
    return input_format::jpeg;
  if (starts(0, "\x89PNG\r\n\x1A\n"sv))
    return input_format::png;
  if (starts(0, "RIFF"sv) && starts(8, "WEBP"sv))
    return input_format::webp;
  if (starts(0, "GIF87a"sv) || starts(0, "GIF89a"sv))
    return input_format::gif;
  if (starts(0, "II*\0"sv) || starts(0, "MM\0*"sv))
    return input_format::tiff;
  if (starts(4, "ftyp"sv)) {
    constexpr std::array<std::string_view, 8> brands{
        "heic", "heix", "hevc", "hevx", "mif1", "msf1", "avif", "avis"};
    for (auto brand : brands)
      if (starts(8, brand))
        return input_format::heif;
  }
  return input_format::unknown;
}

namespace {

/// output_pixels() of the image upright as `swap` says.
uint64_t output_pixels_turned(const probe_info& info,
                              const resize_options& opts, const limits& lim,
                              bool swap) {
  auto plan = plan_thumbnail(opts, lim, info, swap);
  uint64_t box = uint64_t(plan.width) * uint64_t(plan.height);
  if (plan.size == VIPS_SIZE_FORCE || plan.crop != VIPS_INTERESTING_NONE)
    return box; // the box exactly
  // fit inside the box: the upright image scaled by the smaller ratio,
  // rounded up (libvips rounds to the nearest pixel)
  double w = swap ? info.height : info.width;
  double h = swap ? info.width : info.height;
  if (w < 1 || h < 1)
    return box;
  double scale = std::min(plan.width / w, plan.height / h);
  auto side = [&](double x) {
    return static_cast<uint64_t>(std::max(1.0, std::ceil(x * scale)));
  };
  return std::min(box, side(w) * side(h));
}

} // namespace

uint64_t output_pixels(const probe_info& info, const resize_options& opts,
                       const limits& lim) {
  if (info.orientation_certain)
    return output_pixels_turned(info, opts, lim, info.orientation_swap);
  // libvips may turn it or not: the larger of the two
  return std::max(output_pixels_turned(info, opts, lim, false),
                  output_pixels_turned(info, opts, lim, true));
}

std::optional<failure> check_output(const probe_info& info,
                                    const resize_options& opts,
                                    const limits& lim) {
  if (opts.format != output_format::avif)
    return std::nullopt;
  auto pixels = output_pixels(info, opts, lim);
  if (pixels <= lim.max_avif_pixels)
    return std::nullopt;
  return failure{error_code::invalid_option,
                 fmt::format("an AVIF result is at most {} pixels "
                             "(limits.max-avif-pixels), this one would be {}: "
                             "ask for a smaller size or another format",
                             lim.max_avif_pixels, pixels)};
}

uint64_t decode_estimate(const probe_info& info, size_t input_bytes,
                         const resize_options& opts, const limits& lim) {
  uint64_t pixels = static_cast<uint64_t>(std::max(info.width, 0)) *
                    static_cast<uint64_t>(std::max(info.height, 0));
  uint64_t bpp = static_cast<uint64_t>(std::max(info.bytes_per_pixel, 0));
  uint64_t per_pixel = 0; // what the decoder holds of the whole image
  switch (info.format) {
  case input_format::jpeg:
    per_pixel = info.progressive ? 6 : 0; // every DCT coefficient
    break;
  case input_format::png:
    per_pixel = info.progressive ? std::max<uint64_t>(6, bpp + 2) : 0;
    break;
  case input_format::gif:
    per_pixel = 6; // the frame's whole canvas (measured 5.3)
    break;
  case input_format::heif:
    // the whole decoded image (measured 6.4 at 8 bits)
    per_pixel = std::max<uint64_t>(7, 2 * bpp);
    break;
  default:
    break;
  }
  uint64_t bytes = input_bytes + per_pixel * pixels;
  if (opts.format == output_format::avif)
    bytes += 32 * output_pixels(info, opts, lim); // the AV1 encoder
  return bytes;
}

outcome<probe_info> probe(const void* data, size_t size, const limits& lim) {
  if (!state().started)
    return failure{error_code::internal_error, "imaging::startup has not run"};
  error_buffer_guard clear_errors;
  try {
    return read_header(data, size, lim);
  } catch (const std::exception& ex) {
    return failure{error_code::internal_error, ex.what()};
  } catch (...) {
    return failure{error_code::internal_error, "unknown exception in probe"};
  }
}

outcome<resize_result> resize(const void* data, size_t size,
                              const resize_options& opts, const limits& lim,
                              const probe_info* known) {
  if (!state().started)
    return failure{error_code::internal_error, "imaging::startup has not run"};
  error_buffer_guard clear_errors;
  try {
    if (auto bad = check_options(opts, lim))
      return std::move(*bad);

    // decode: header, limits, thumbnail graph with shrink-on-load
    auto start = clock_type::now();
    std::optional<clock_type::time_point> deadline;
    if (lim.max_processing_ms > 0)
      deadline = start + std::chrono::milliseconds{lim.max_processing_ms};
    auto too_slow = [&] {
      return failure{error_code::processing_timeout,
                     fmt::format("processing took longer than {} ms",
                                 lim.max_processing_ms)};
    };
    probe_info head;
    if (known != nullptr && known->format != input_format::unknown &&
        known->format == sniff(data, size)) {
      if (auto too_large = check_pixels(*known, lim))
        return std::move(*too_large);
      head = *known;
    } else {
      auto read = read_header(data, size, lim);
      if (!read)
        return std::move(read).error();
      head = *read;
    }
    if (auto bad = check_output(head, opts, lim))
      return std::move(*bad);
    // How libvips will turn the image: a JPEG's orientation is certain only
    // for an integer Orientation entry (libvips reads "6" and 6/1 too).
    std::optional<bool> swap = head.orientation_swap;
    if (head.format == input_format::jpeg) {
      swap.reset();
      if (auto orientation = jpeg_exif_orientation(data, size))
        swap = *orientation >= 5;
    }
    auto plan = plan_thumbnail(opts, lim, head, swap);
    if (head.format == input_format::png) {
      // See png_data.hpp. An encoder's output is exact; 1 MiB over it costs
      // nothing to inflate and lets an odd one through.
      constexpr uint64_t png_slack = uint64_t{1} << 20;
      if (auto overrun = png_data_overrun(data, size, png_slack))
        return failure{error_code::corrupt_image,
                       fmt::format("cannot decode the image: {}", *overrun)};
    }

    // The graph on `bytes`: thumbnail, colour, alpha, encode.
    auto run = [&](const void* bytes, size_t n) -> outcome<resize_result> {
      resize_result result;
      result.format = opts.format;
      auto thumb =
          load_thumbnail(bytes, n, head.format, plan, result.profile_converted);
      if (!thumb)
        return std::move(thumb).error();
      result.timings.decode = seconds_since(start);
      if (deadline && clock_type::now() >= *deadline)
        return too_slow();

      // resize: the rest of the graph (colour, alpha)
      auto step = clock_type::now();
      auto srgb = to_srgb_8bit(std::move(thumb).value());
      if (!srgb)
        return std::move(srgb).error();
      auto managed = from_embedded_profile(std::move(srgb).value(),
                                           result.profile_converted);
      if (!managed)
        return std::move(managed).error();
      auto ready = flatten_for(opts.format, std::move(managed).value());
      if (!ready)
        return std::move(ready).error();
      result.timings.resize = seconds_since(step);

      // encode: runs the pixels through the whole graph
      step = clock_type::now();
      auto encoded =
          encode(ready->get(), opts, deadline, lim.max_processing_ms);
      if (!encoded)
        return std::move(encoded).error();
      result.timings.encode = seconds_since(step);

      result.bytes = std::move(encoded).value();
      result.width = vips_image_get_width(ready->get());
      result.height = vips_image_get_height(ready->get());
      return result;
    };

    // `run`, then the check for data that ended early, which needs the
    // graph released (its images are gone when `run` returns)
    auto run_checked = [&](const void* bytes,
                           size_t n) -> outcome<resize_result> {
      auto warned = jpeg_warned_reads;
      auto done = run(bytes, n);
      if (done)
        if (auto cut = data_ended_early(bytes, n, head, lim, warned))
          return std::move(*cut);
      return done;
    };

    std::optional<std::string> dc;
    if (head.format == input_format::jpeg && head.progressive &&
        state().dc_scans) {
      if (loads_at_one_eighth(plan, head.width, head.height, swap))
        dc = jpeg_dc_scans(data, size);
    }
    if (dc) {
      auto done = run_checked(dc->data(), dc->size());
      if (done) {
        done->jpeg_dc_scans = true;
        return done;
      }
      if (done.error().code == error_code::processing_timeout)
        return done;
      // Not expected: the cut-down stream is the input's own DC scans and
      // tables. The full stream decides; say so if it decodes.
      auto full = run_checked(data, size);
      if (full)
        log::write(log::level::warn,
                   "progressive JPEG: its DC scans failed where the whole "
                   "image decodes",
                   {{"error", done.error().message}});
      return full;
    }
    return run_checked(data, size);
  } catch (const std::exception& ex) {
    return failure{error_code::internal_error, ex.what()};
  } catch (...) {
    return failure{error_code::internal_error, "unknown exception in resize"};
  }
}

} // namespace resized::imaging
