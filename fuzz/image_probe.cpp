// Fuzzes the imaging header probe: imaging::png_data_overrun (the resize's
// first look at a PNG), imaging::png_header_problem, imaging::sniff (pure) and
// imaging::probe (the format's own libvips loader, header only; libjpeg itself
// for JPEG, checked against libvips' loader) with the default limits. A probe
// must answer with one of its documented codes, and what it accepts must be
// within the pixel limit.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "fuzz_support.hpp"
#include "imaging/jpeg_header.hpp"
#include "imaging/pipeline.hpp"
#include "imaging/png_data.hpp"

#include <vips/vips.h>

using namespace resized;

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  std::string err;
  if (!imaging::startup((*argv)[0], 1, err)) {
    std::fprintf(stderr, "imaging::startup failed: %s\n", err.c_str());
    std::abort();
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The PNG data check the resize runs first (imaging/png_data): safe on
  // any bytes, and a larger slack never refuses what a smaller one takes.
  auto tight = imaging::png_data_overrun(data, size, 0);
  auto loose = imaging::png_data_overrun(data, size, 1024);
  fuzz::check(!loose || tight, "png_data_overrun: more slack refused more");
  fuzz::check(!tight || !tight->empty(), "png_data_overrun: empty message");
  auto sniffed = imaging::sniff(data, size);
  // The PNG header check: safe on any bytes, only a PNG's to find fault
  // with, and what it finds is the probe's answer.
  auto header = imaging::png_header_problem(data, size);
  fuzz::check(!header || !header->empty(), "png_header_problem: empty message");
  fuzz::check(!header || sniffed == imaging::input_format::png,
              "png_header_problem found fault with no PNG");
  const auto& lim = fuzz::default_limits();
  auto res = imaging::probe(data, size, lim);
  fuzz::check(!header ||
                  (!res && res.error().code == error_code::corrupt_image &&
                   res.error().message == *header),
              "a PNG header found at fault, not the probe's answer");
  if (!res) {
    auto code = res.error().code;
    fuzz::check(code == error_code::unsupported_format ||
                    code == error_code::corrupt_image ||
                    code == error_code::image_too_large,
                "probe failed with an undocumented code");
    // unsupported_format for bytes of no accepted format, or a JPEG of a
    // kind libjpeg does not decode (12-bit, lossless, hierarchical).
    fuzz::check(code != error_code::unsupported_format ||
                    sniffed == imaging::input_format::unknown ||
                    (sniffed == imaging::input_format::jpeg &&
                     res.error().message.rfind("a JPEG of a kind", 0) == 0),
                "unsupported_format for sniffed bytes");
    fuzz::check(!res.error().message.empty(), "error without a message");
    return 0;
  }
  fuzz::check(res->format == sniffed, "probe and sniff disagree");
  fuzz::check(res->format != imaging::input_format::unknown,
              "probe accepted an unknown format");
  fuzz::check(res->width > 0 && res->height > 0, "accepted an empty image");
  fuzz::check(res->pages >= 1, "pages < 1");
  fuzz::check(uint64_t(res->width) * uint64_t(res->height) <= lim.max_pixels,
              "accepted an image over max_pixels");
  if (res->format == imaging::input_format::jpeg) {
    // The pipeline's second reading of the orientation (which decides
    // whether a progressive JPEG is decoded from its DC scans), where it
    // says it is certain, agrees with the probe's.
    if (auto orientation = imaging::jpeg_exif_orientation(data, size))
      fuzz::check((*orientation >= 5) == res->orientation_swap,
                  "jpeg_exif_orientation and probe disagree");
    // JPEG headers are read with libjpeg directly (imaging/jpeg_header);
    // where libvips' own loader reads the header too, the sizes must agree
    // (the pixel limit rests on them). The progressive flag and the EXIF
    // orientation only steer the decode-memory estimate and the fill plan;
    // hostile bytes keep finding corners where libvips reads them otherwise
    // (two so far, both fixed), so they are compared only with
    // FUZZ_STRICT_JPEG=1, for long runs by hand, not in every CI run.
    static const bool strict = std::getenv("FUZZ_STRICT_JPEG") != nullptr;
    VipsImage* img = nullptr;
    if (vips_jpegload_buffer(const_cast<uint8_t*>(data), size, &img, "access",
                             VIPS_ACCESS_SEQUENTIAL, nullptr) == 0) {
      int interlaced = 0;
      vips_image_get_int(img, "interlaced", &interlaced);
      fuzz::check(res->width == vips_image_get_width(img) &&
                      res->height == vips_image_get_height(img),
                  "JPEG size differs from libvips' header");
      fuzz::check(!strict || res->progressive == (interlaced != 0),
                  "JPEG progressive flag differs from libvips'");
      // Orientation as an integer (what both read the same way); libvips
      // also takes text and fractions ("6", "6/1"), which we leave alone:
      // the swap only steers the fill-enlarge plan, never the picture.
      const char* tag = nullptr;
      bool integer_tag =
          vips_image_get_typeof(img, "exif-ifd0-Orientation") == 0 ||
          (vips_image_get_string(img, "exif-ifd0-Orientation", &tag) == 0 &&
           tag != nullptr &&
           (std::strstr(tag, ", Short, ") != nullptr ||
            std::strstr(tag, ", SShort, ") != nullptr ||
            std::strstr(tag, ", Long, ") != nullptr ||
            std::strstr(tag, ", SLong, ") != nullptr));
      if (strict && integer_tag)
        fuzz::check(res->orientation_swap ==
                        static_cast<bool>(vips_image_get_orientation_swap(img)),
                    "JPEG orientation differs from libvips'");
      // Where jpeg_exif_orientation says it is certain, libvips must agree
      // in every run: a progressive JPEG's DC-scan decode rests on it.
      if (auto orientation = imaging::jpeg_exif_orientation(data, size))
        fuzz::check((*orientation >= 5) ==
                        static_cast<bool>(vips_image_get_orientation_swap(img)),
                    "a certain orientation differs from libvips'");
      g_object_unref(img);
    }
    vips_error_clear();
  }
  return 0;
}
