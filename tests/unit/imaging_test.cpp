// The imaging layer on its own: fixture images built in the test with
// libvips, plus the photo corpus from RESIZED_CORPUS_DIR when it is set.

#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <ostream>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <cstdio> // jpeglib.h needs FILE
#include <jpeglib.h>
#include <lcms2.h>
#include <vips/vips.h>
#include <zlib.h>

#include <vips/vector.h> // after vips.h, which it needs; vips_vector_isenabled

#include "imaging/icc_profile.hpp"
#include "imaging/jpeg_dc_scans.hpp"
#include "imaging/jpeg_header.hpp"
#include "imaging/pipeline.hpp"
#include "imaging/png_data.hpp"
#include "imaging/png_text.hpp"
#include "support/printing.hpp"

using namespace resized;
using namespace resized::imaging;

namespace {

// -- global fixture: libvips once per test process ----------------------------

struct vips_fixture {
  vips_fixture() {
    std::string err;
    if (!startup("unit_imaging_test", 1, err))
      throw std::runtime_error("imaging::startup failed: " + err);
    vips_leak_set(TRUE); // reports leaked objects on stderr at shutdown
  }
  ~vips_fixture() { shutdown(); }
};

// -- helpers
// --------------------------------------------------------------------

struct image_unref {
  void operator()(VipsImage* ptr) const noexcept { g_object_unref(ptr); }
};
using image_ptr = std::unique_ptr<VipsImage, image_unref>;

struct g_free_deleter {
  void operator()(void* ptr) const noexcept { g_free(ptr); }
};

/// An image from raw interleaved pixels.
image_ptr from_pixels(const void* px, size_t bytes, int w, int h, int bands,
                      VipsBandFormat format, VipsInterpretation interp) {
  image_ptr raw{
      vips_image_new_from_memory_copy(px, bytes, w, h, bands, format)};
  BOOST_REQUIRE(raw);
  VipsImage* out = nullptr;
  BOOST_REQUIRE_EQUAL(
      vips_copy(raw.get(), &out, "interpretation", interp, nullptr), 0);
  return image_ptr{out};
}

image_ptr from_pixels(const std::vector<uint8_t>& px, int w, int h, int bands,
                      VipsInterpretation interp = VIPS_INTERPRETATION_sRGB) {
  return from_pixels(px.data(), px.size(), w, h, bands, VIPS_FORMAT_UCHAR,
                     interp);
}

/// Encodes with the saver for `suffix`, e.g. ".png" or ".jpg[Q=90]".
std::string save(VipsImage* img, const char* suffix) {
  void* buf = nullptr;
  size_t len = 0;
  BOOST_REQUIRE_EQUAL(
      vips_image_write_to_buffer(img, suffix, &buf, &len, nullptr), 0);
  std::unique_ptr<void, g_free_deleter> owner{buf};
  return std::string{static_cast<const char*>(buf), len};
}

/// Decodes bytes fully (pixels in memory) with whatever loader libvips picks.
image_ptr decode(const std::string& bytes) {
  image_ptr img{
      vips_image_new_from_buffer(bytes.data(), bytes.size(), "", nullptr)};
  BOOST_REQUIRE_MESSAGE(img, "cannot decode: " << vips_error_buffer());
  image_ptr memory{vips_image_copy_memory(img.get())};
  BOOST_REQUIRE_MESSAGE(memory, "cannot decode: " << vips_error_buffer());
  return memory;
}

std::vector<double> pixel(VipsImage* img, int x, int y) {
  double* values = nullptr;
  int n = 0;
  BOOST_REQUIRE_EQUAL(vips_getpoint(img, &values, &n, x, y, nullptr), 0);
  std::vector<double> out(values, values + n);
  g_free(values);
  return out;
}

/// A w x h RGB picture with smooth gradients and some noise (compresses
/// like a photo, so quality matters).
image_ptr photo_like(int w, int h) {
  std::vector<uint8_t> px(static_cast<size_t>(w) * h * 3);
  std::mt19937 rng{42};
  std::uniform_int_distribution<int> noise{-20, 20};
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      auto* p = &px[(static_cast<size_t>(y) * w + x) * 3];
      p[0] = static_cast<uint8_t>(std::clamp(x * 255 / w + noise(rng), 0, 255));
      p[1] = static_cast<uint8_t>(std::clamp(y * 255 / h + noise(rng), 0, 255));
      p[2] = static_cast<uint8_t>(std::clamp(128 + noise(rng), 0, 255));
    }
  return from_pixels(px, w, h, 3);
}

std::string photo_jpeg(int w, int h) {
  auto img = photo_like(w, h);
  return save(img.get(), ".jpg[Q=90]");
}

/// Left half: transparent pure red (alpha 0). Right half: opaque green.
std::string transparent_png(int w, int h) {
  std::vector<uint8_t> px(static_cast<size_t>(w) * h * 4);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      auto* p = &px[(static_cast<size_t>(y) * w + x) * 4];
      bool left = x < w / 2;
      p[0] = left ? 255 : 0;
      p[1] = left ? 0 : 255;
      p[2] = 0;
      p[3] = left ? 0 : 255;
    }
  auto img = from_pixels(px, w, h, 4);
  return save(img.get(), ".png");
}

/// CMYK JPEG: left half paper white (0,0,0,0), right half red (0,M,Y,0).
std::string cmyk_jpeg(int w, int h) {
  std::vector<uint8_t> px(static_cast<size_t>(w) * h * 4);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      auto* p = &px[(static_cast<size_t>(y) * w + x) * 4];
      bool left = x < w / 2;
      p[0] = 0;
      p[1] = left ? 0 : 255;
      p[2] = left ? 0 : 255;
      p[3] = 0;
    }
  auto img = from_pixels(px, w, h, 4, VIPS_INTERPRETATION_CMYK);
  return save(img.get(), ".jpg[Q=95]");
}

/// 16-bit RGB PNG: a horizontal ramp over the full 0..65535 range.
std::string png16(int w, int h) {
  std::vector<uint16_t> px(static_cast<size_t>(w) * h * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      auto* p = &px[(static_cast<size_t>(y) * w + x) * 3];
      p[0] = static_cast<uint16_t>(x * 65535 / (w - 1));
      p[1] = 32768;
      p[2] = static_cast<uint16_t>(65535 - x * 65535 / (w - 1));
    }
  auto img = from_pixels(px.data(), px.size() * 2, w, h, 3, VIPS_FORMAT_USHORT,
                         VIPS_INTERPRETATION_RGB16);
  return save(img.get(), ".png");
}

/// 200x100 landscape JPEG tagged with EXIF orientation 6 (rotate 90 CW to
/// display): upright it is a 100x200 portrait.
std::string rotated_jpeg() {
  auto img = photo_like(200, 100);
  VipsImage* copy = nullptr;
  BOOST_REQUIRE_EQUAL(vips_copy(img.get(), &copy, nullptr), 0);
  image_ptr tagged{copy};
  vips_image_set_int(tagged.get(), VIPS_META_ORIENTATION, 6);
  return save(tagged.get(), ".jpg[strip=false]");
}

/// Two 40x20 frames stacked (page-height 20): red, then blue.
std::string two_frame_gif() {
  const int w = 40, h = 20;
  std::vector<uint8_t> px(static_cast<size_t>(w) * h * 2 * 3);
  for (int y = 0; y < 2 * h; ++y)
    for (int x = 0; x < w; ++x) {
      auto* p = &px[(static_cast<size_t>(y) * w + x) * 3];
      bool first = y < h;
      p[0] = first ? 255 : 0;
      p[1] = 0;
      p[2] = first ? 0 : 255;
    }
  auto img = from_pixels(px, w, 2 * h, 3);
  vips_image_set_int(img.get(), VIPS_META_PAGE_HEIGHT, h);
  return save(img.get(), ".gif");
}

std::string solid_png(int w, int h) {
  std::vector<uint8_t> px(static_cast<size_t>(w) * h * 3, 200);
  auto img = from_pixels(px, w, h, 3);
  return save(img.get(), ".png");
}

uint32_t crc32(const uint8_t* data, size_t size) {
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 0; i < size; ++i) {
    crc ^= data[i];
    for (int k = 0; k < 8; ++k)
      crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

void put_be32(std::string& out, uint32_t v) {
  out += static_cast<char>(v >> 24);
  out += static_cast<char>(v >> 16);
  out += static_cast<char>(v >> 8);
  out += static_cast<char>(v);
}

void put_chunk(std::string& out, const char* type, const std::string& body) {
  put_be32(out, static_cast<uint32_t>(body.size()));
  std::string typed = std::string{type, 4} + body;
  out += typed;
  put_be32(out,
           crc32(reinterpret_cast<const uint8_t*>(typed.data()), typed.size()));
}

/// A ~70-byte PNG whose IHDR declares width x height RGB: a
/// decompression bomb's header.
std::string bomb_png(uint32_t width, uint32_t height) {
  std::string png = "\x89PNG\r\n\x1A\n";
  std::string ihdr;
  put_be32(ihdr, width);
  put_be32(ihdr, height);
  ihdr += std::string{"\x08\x02\x00\x00\x00", 5}; // 8-bit RGB, no interlace
  put_chunk(png, "IHDR", ihdr);
  put_chunk(png, "IDAT", std::string{"\x78\x9C\x03\x00\x00\x00\x00\x01", 8});
  put_chunk(png, "IEND", "");
  return png;
}

/// `jpeg` with its DQT segments (quantisation tables) removed.
std::string without_quant_tables(const std::string& jpeg) {
  std::string out = jpeg.substr(0, 2); // SOI
  size_t pos = 2;
  while (pos + 4 <= jpeg.size()) {
    auto marker = static_cast<uint8_t>(jpeg[pos + 1]);
    size_t length = (static_cast<uint8_t>(jpeg[pos + 2]) << 8) |
                    static_cast<uint8_t>(jpeg[pos + 3]);
    if (marker == 0xDA) { // SOS: the rest is entropy-coded data
      out += jpeg.substr(pos);
      break;
    }
    if (marker != 0xDB)
      out += jpeg.substr(pos, 2 + length);
    pos += 2 + length;
  }
  BOOST_REQUIRE(out.size() < jpeg.size());
  return out;
}

/// RESIZED_CORPUS_DIR (ctest sets it). A missing corpus fails the case: a
/// case that checked nothing must not pass.
std::filesystem::path corpus_dir() {
  const char* dir = std::getenv("RESIZED_CORPUS_DIR");
  BOOST_TEST_REQUIRE(dir != nullptr, "RESIZED_CORPUS_DIR is not set");
  BOOST_TEST_REQUIRE(std::filesystem::is_directory(dir),
                     "RESIZED_CORPUS_DIR " << dir << " is not a directory");
  return std::filesystem::path{dir};
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in{path, std::ios::binary};
  return std::string{std::istreambuf_iterator<char>{in}, {}};
}

/// The JPEGs in `dir`: file name and bytes, by name.
std::vector<std::pair<std::string, std::string>>
jpegs_in(const std::filesystem::path& dir) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& entry : std::filesystem::directory_iterator{dir}) {
    auto bytes = read_file(entry.path());
    if (sniff(bytes.data(), bytes.size()) == input_format::jpeg)
      out.emplace_back(entry.path().filename().string(), std::move(bytes));
  }
  std::sort(out.begin(), out.end());
  return out;
}

outcome<resize_result> run(const std::string& bytes, resize_options opts,
                           limits lim = {}) {
  return resize(bytes.data(), bytes.size(), opts, lim);
}

probe_info probe_of(const std::string& bytes) {
  auto info = probe(bytes.data(), bytes.size(), limits{});
  BOOST_REQUIRE(info.ok());
  return *info;
}

resize_options opts_of(int w, int h, fit_mode mode = fit_mode::fill,
                       output_format format = output_format::jpeg,
                       int quality = 85) {
  resize_options opts;
  opts.width = w;
  opts.height = h;
  opts.mode = mode;
  opts.format = format;
  opts.quality = quality;
  return opts;
}

/// "ok" or "<code>: <message>" (Boost evaluates messages even on success).
template <class T>
std::string describe(const outcome<T>& r) {
  if (r.ok())
    return "ok";
  return std::string{to_string(r.error().code)} + ": " + r.error().message;
}

/// Checks that `r` succeeded with w x h and that its bytes decode back to
/// the same size in the requested format.
void require_output(const outcome<resize_result>& r, int w, int h,
                    output_format format) {
  BOOST_REQUIRE_MESSAGE(r.ok(), "resize failed: " << describe(r));
  BOOST_TEST(r->width == w);
  BOOST_TEST(r->height == h);
  BOOST_TEST(r->format == format);
  auto img = decode(r->bytes);
  BOOST_TEST(vips_image_get_width(img.get()) == w);
  BOOST_TEST(vips_image_get_height(img.get()) == h);
  auto sniffed = sniff(r->bytes.data(), r->bytes.size());
  switch (format) {
  case output_format::jpeg:
    BOOST_TEST(sniffed == input_format::jpeg);
    break;
  case output_format::png:
    BOOST_TEST(sniffed == input_format::png);
    break;
  case output_format::webp:
    BOOST_TEST(sniffed == input_format::webp);
    break;
  case output_format::avif:
    BOOST_TEST(sniffed == input_format::heif);
    break;
  }
}

void require_error(const outcome<resize_result>& r, error_code code) {
  BOOST_REQUIRE(!r.ok());
  BOOST_TEST(r.error().code == code, "message: " << r.error().message);
  BOOST_TEST(!r.error().message.empty());
  BOOST_TEST(r.error().message.find('\n') == std::string::npos);
}

std::string bytes_of(std::initializer_list<int> values) {
  std::string out;
  for (int v : values)
    out += static_cast<char>(v);
  return out;
}

input_format sniff_str(const std::string& s) {
  return sniff(s.data(), s.size());
}

} // namespace

BOOST_TEST_GLOBAL_FIXTURE(vips_fixture);

BOOST_AUTO_TEST_SUITE(imaging)

// -- sniff
// ------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(sniff_recognises_each_signature) {
  BOOST_TEST(sniff_str(bytes_of({0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10})) ==
             input_format::jpeg);
  BOOST_TEST(sniff_str(bytes_of({0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A,
                                 0x0A})) == input_format::png);
  BOOST_TEST(sniff_str(std::string{"RIFF\x10\0\0\0WEBPVP8 ", 16}) ==
             input_format::webp);
  BOOST_TEST(sniff_str("GIF87a\x01\x00") == input_format::gif);
  BOOST_TEST(sniff_str("GIF89a\x01\x00") == input_format::gif);
  BOOST_TEST(sniff_str(std::string{"II*\0\x08\0\0\0", 8}) ==
             input_format::tiff);
  BOOST_TEST(sniff_str(std::string{"MM\0*\0\0\0\x08", 8}) ==
             input_format::tiff);
  for (const char* brand :
       {"heic", "heix", "hevc", "hevx", "mif1", "msf1", "avif", "avis"}) {
    std::string box = std::string{"\0\0\0\x1C"
                                  "ftyp",
                                  8} +
                      brand + std::string{"\0\0\0\0", 4};
    BOOST_TEST(sniff_str(box) == input_format::heif, brand);
  }
}

BOOST_AUTO_TEST_CASE(sniff_rejects_junk) {
  BOOST_TEST(sniff(nullptr, 0) == input_format::unknown);
  BOOST_TEST(sniff_str("") == input_format::unknown);
  BOOST_TEST(sniff_str(bytes_of({0xFF, 0xD8})) == input_format::unknown);
  BOOST_TEST(sniff_str(std::string{"RIFF\x10\0\0\0WAVEfmt ", 16}) ==
             input_format::unknown);
  BOOST_TEST(sniff_str("GIF88a") == input_format::unknown);
  BOOST_TEST(sniff_str(std::string{"\0\0\0\x1C"
                                   "ftypisom\0\0\0\0",
                                   16}) == input_format::unknown); // MP4 video
  BOOST_TEST(sniff_str("<svg xmlns=\"http://www.w3.org/2000/svg\"/>") ==
             input_format::unknown);
  BOOST_TEST(sniff_str("%PDF-1.7\n") == input_format::unknown);
  BOOST_TEST(sniff_str("P6\n1 1\n255\n\0\0\0") == input_format::unknown);
  BOOST_TEST(sniff_str("hello world, this is not an image") ==
             input_format::unknown);
}

// -- start-up
// ----------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(common_formats_are_writable) {
  BOOST_TEST(can_write(output_format::jpeg));
  BOOST_TEST(can_write(output_format::png));
  BOOST_TEST(can_write(output_format::webp));
  BOOST_TEST_MESSAGE("avif writable: " << can_write(output_format::avif));
  BOOST_TEST(!can_write(static_cast<output_format>(9)));
}

// A HEIF whose primary image is not its first: libvips' heifload reads the
// primary without page=, the first with page=0. Here the first is 512x512
// and the primary declares 10x10 (its ispe; its pixels are 512x512 too).
// The pixel limit must measure the image that is decoded: the primary,
// which then fails for its false size, instead of the first, which would
// pass unmeasured.
BOOST_AUTO_TEST_CASE(a_heif_is_decoded_as_the_image_its_header_measured) {
  if (!can_write(output_format::avif))
    return; // no AV1 encoder to make the file with
  VipsImage* black = nullptr;
  BOOST_REQUIRE_EQUAL(vips_black(&black, 512, 1024, "bands", 3, nullptr), 0);
  image_ptr pages{black};
  VipsImage* copy = nullptr;
  BOOST_REQUIRE_EQUAL(vips_copy(pages.get(), &copy, nullptr), 0);
  image_ptr two{copy};
  vips_image_set_int(two.get(), VIPS_META_PAGE_HEIGHT, 512);
  vips_image_set_int(two.get(), VIPS_META_N_PAGES, 2);
  auto heif = save(two.get(), ".avif[effort=0,strip=true]");
  // item ids of the two images (infe version 2: id at +8, type at +12)
  std::vector<unsigned char> images;
  for (auto at = heif.find("infe"); at != std::string::npos;
       at = heif.find("infe", at + 4))
    if (heif.compare(at + 12, 4, "av01") == 0)
      images.push_back(static_cast<unsigned char>(heif[at + 9]));
  BOOST_REQUIRE_EQUAL(images.size(), 2u);
  auto pitm = heif.find("pitm"); // version 0: a 16-bit item id at +8
  auto first_ispe = heif.find("ispe");
  auto second_ispe = heif.find("ispe", first_ispe + 4);
  BOOST_REQUIRE(pitm != std::string::npos && second_ispe != std::string::npos);
  heif[pitm + 9] = static_cast<char>(images[1]);
  heif.replace(second_ispe + 8, 8, std::string{"\0\0\0\x0a\0\0\0\x0a", 8});
  auto info = probe_of(heif);
  BOOST_REQUIRE_EQUAL(info.width, 10);
  BOOST_REQUIRE_EQUAL(info.height, 10);
  limits lim;
  lim.max_pixels = 100 * 100;
  auto r = run(heif, opts_of(100, 100), lim);
  BOOST_TEST(!r.ok(), "the first image, 512x512, was resized");
}

BOOST_AUTO_TEST_CASE(other_loaders_are_blocked) {
  // Even libvips' own generic loader can no longer reach SVG or PPM.
  std::string svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"10\" "
                    "height=\"10\"><rect width=\"10\" height=\"10\"/></svg>";
  VipsImage* img =
      vips_image_new_from_buffer(svg.data(), svg.size(), "", nullptr);
  BOOST_TEST(img == nullptr);
  if (img != nullptr)
    g_object_unref(img);
  vips_error_clear();
}

BOOST_AUTO_TEST_CASE(orc_is_off) {
  // liborc 0.4.33 crashed resize threads compiling ORC programs at once
  // (src/imaging/pipeline.cpp, startup): libvips' C paths only.
  BOOST_TEST(!vips_vector_isenabled());
}

// -- probe
// --------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(probe_reads_dimensions) {
  auto jpeg = photo_jpeg(64, 48);
  auto info = probe(jpeg.data(), jpeg.size(), limits{});
  BOOST_REQUIRE(info.ok());
  BOOST_TEST(info->format == input_format::jpeg);
  BOOST_TEST(info->width == 64);
  BOOST_TEST(info->height == 48);
  BOOST_TEST(info->pages == 1);

  auto png = transparent_png(30, 20);
  auto pinfo = probe(png.data(), png.size(), limits{});
  BOOST_REQUIRE(pinfo.ok());
  BOOST_TEST(pinfo->format == input_format::png);
  BOOST_TEST(pinfo->width == 30);
  BOOST_TEST(pinfo->height == 20);
}

// Progressive JPEGs and interlaced PNGs are flagged: their decoders hold the
// whole image, and decode_estimate (the supervisor's memory budget) counts
// 6 bytes a pixel for them on top of the input; others only the input.
BOOST_AUTO_TEST_CASE(probe_flags_progressive_inputs_for_the_memory_budget) {
  auto img = photo_like(320, 200);
  auto baseline = save(img.get(), ".jpg[Q=90]");
  auto progressive = save(img.get(), ".jpg[Q=90,interlace]");
  auto png = save(img.get(), ".png");
  auto adam7 = save(img.get(), ".png[interlace]");
  for (auto* bytes : {&baseline, &progressive, &png, &adam7}) {
    bool expect = bytes == &progressive || bytes == &adam7;
    BOOST_TEST_CONTEXT("progressive expected: " << expect) {
      auto info = probe(bytes->data(), bytes->size(), limits{});
      BOOST_REQUIRE(info.ok());
      BOOST_TEST(info->progressive == expect);
      auto estimate =
          decode_estimate(*info, bytes->size(), resize_options{}, limits{});
      BOOST_TEST(estimate == bytes->size() + (expect ? 6u * 320u * 200u : 0u));
    }
  }
}

// Decoders that hold the whole image count it, by their pixel size; an
// AVIF result counts its encoder.
BOOST_AUTO_TEST_CASE(decode_estimates_count_whole_image_decoders) {
  auto img = photo_like(320, 200);
  const uint64_t px = 320 * 200;
  auto estimate = [&](const std::string& bytes, resize_options opts = {}) {
    auto info = probe(bytes.data(), bytes.size(), limits{});
    BOOST_REQUIRE(info.ok());
    return decode_estimate(*info, bytes.size(), opts, limits{});
  };
  auto gif = save(img.get(), ".gif");
  BOOST_TEST(estimate(gif) == gif.size() + 6 * px); // the frame's canvas
  VipsImage* wide = nullptr;
  BOOST_REQUIRE(vips_cast(img.get(), &wide, VIPS_FORMAT_USHORT, nullptr) == 0);
  image_ptr wide_ptr{wide};
  VipsImage* rgb16 = nullptr;
  BOOST_REQUIRE(vips_copy(wide, &rgb16, "interpretation",
                          VIPS_INTERPRETATION_RGB16, nullptr) == 0);
  image_ptr rgb16_ptr{rgb16};
  VipsImage* alpha = nullptr;
  BOOST_REQUIRE(vips_bandjoin_const1(rgb16, &alpha, 65535, nullptr) == 0);
  image_ptr alpha_ptr{alpha};
  auto png16 = save(alpha, ".png[interlace]"); // 16-bit RGBA: 8 B/px
  BOOST_TEST(estimate(png16) == png16.size() + 10 * px);
  auto png8 = save(img.get(), ".png[interlace]");
  BOOST_TEST(estimate(png8) == png8.size() + 6 * px);
  auto baseline = save(img.get(), ".jpg");
  BOOST_TEST(estimate(baseline) == baseline.size());
  resize_options avif;
  avif.format = output_format::avif;
  avif.width = 64;
  avif.height = 0; // 64x40
  BOOST_TEST(estimate(baseline, avif) == baseline.size() + 32 * 64 * 40);
}

BOOST_AUTO_TEST_CASE(output_pixels_follow_the_mode_and_the_aspect_ratio) {
  probe_info wide;
  wide.format = input_format::jpeg;
  wide.width = 4000;
  wide.height = 1000;
  auto opts = [](int w, int h, fit_mode mode) {
    resize_options o;
    o.width = w;
    o.height = h;
    o.mode = mode;
    return o;
  };
  limits lim;
  BOOST_TEST(output_pixels(wide, opts(100, 100, fit_mode::fill), lim) ==
             10000u);
  BOOST_TEST(output_pixels(wide, opts(100, 100, fit_mode::force), lim) ==
             10000u);
  BOOST_TEST(output_pixels(wide, opts(100, 100, fit_mode::fit), lim) ==
             100u * 25u);
  BOOST_TEST(output_pixels(wide, opts(0, 1000, fit_mode::fill), lim) ==
             4000u * 1000u);
  BOOST_TEST(output_pixels(wide, opts(0, 2000, fit_mode::fill), lim) ==
             4096u * 1024u);    // the derived side is capped
  wide.orientation_swap = true; // upright it is 1000x4000
  BOOST_TEST(output_pixels(wide, opts(100, 100, fit_mode::fit), lim) ==
             25u * 100u);
}

// An AVIF result costs its encoder ~30 bytes and 0.25 us per pixel and
// cannot be stopped: limits.max-avif-pixels bounds it, on submission and in
// the resize (a task from another node).
BOOST_AUTO_TEST_CASE(avif_results_are_bounded) {
  auto tiny = save(photo_like(8, 8).get(), ".png");
  auto info = probe(tiny.data(), tiny.size(), limits{});
  BOOST_REQUIRE(info.ok());
  resize_options big;
  big.format = output_format::avif;
  big.width = big.height = 4096;
  big.mode = fit_mode::force;
  auto bad = check_output(*info, big, limits{});
  BOOST_REQUIRE(bad.has_value());
  BOOST_TEST(bad->code == error_code::invalid_option);
  BOOST_TEST(bad->message ==
             "an AVIF result is at most 4194304 pixels "
             "(limits.max-avif-pixels), this one would be 16777216: ask for "
             "a smaller size or another format");
  BOOST_TEST(!check_output(
      *info,
      [&] {
        auto o = big;
        o.width = o.height = 2048;
        return o;
      }(),
      limits{}));
  auto jpeg = big;
  jpeg.format = output_format::jpeg;
  BOOST_TEST(!check_output(*info, jpeg, limits{}));
  if (can_write(output_format::avif))
    require_error(run(tiny, big), error_code::invalid_option);
}

BOOST_AUTO_TEST_CASE(probe_counts_gif_frames) {
  auto gif = two_frame_gif();
  auto info = probe(gif.data(), gif.size(), limits{});
  BOOST_REQUIRE_MESSAGE(info.ok(), describe(info));
  BOOST_TEST(info->format == input_format::gif);
  BOOST_TEST(info->width == 40);
  BOOST_TEST(info->height == 20); // one frame
  BOOST_TEST(info->pages == 2);
}

BOOST_AUTO_TEST_CASE(probe_rejects_pixel_bomb_from_header) {
  auto png = bomb_png(50000, 50000);
  BOOST_TEST(png.size() < 100u);
  // A probe that decoded pixels would need 7.5 GB here and never return
  // within ctest's timeout; the answer comes from the header alone.
  auto info = probe(png.data(), png.size(), limits{});
  BOOST_REQUIRE(!info.ok());
  BOOST_TEST(info.error().code == error_code::image_too_large);
  BOOST_TEST(info.error().message ==
             "image is 50000x50000 = 2500000000 pixels, limit is 50000000 "
             "(limits.max-pixels)");

  // resize stops at the same check, before any pixel is decoded
  require_error(run(png, opts_of(100, 100)), error_code::image_too_large);
}

// libvips loads no image with a side over 10,000,000 pixels, and its PNG
// loader failed such a header as damaged data ("corrupt_image ... cut short
// or damaged") even within limits.max-pixels.
BOOST_AUTO_TEST_CASE(a_png_side_libvips_cannot_load_is_too_large) {
  auto tall = bomb_png(1, 12000000);
  auto info = probe(tall.data(), tall.size(), limits{});
  BOOST_REQUIRE(!info.ok());
  BOOST_TEST((info.error().code == error_code::image_too_large));
  BOOST_TEST(info.error().message ==
             "image is 1x12000000: a side over 10000000 pixels, which libvips "
             "does not load");
  // Over the pixel limit too: that limit's words come first.
  auto taller = bomb_png(2, 30000000);
  info = probe(taller.data(), taller.size(), limits{});
  BOOST_REQUIRE(!info.ok());
  BOOST_TEST(info.error().message.find("(limits.max-pixels)") !=
             std::string::npos);
  // At the side limit the header is libvips' to read, as before.
  auto at = bomb_png(1, 10000000);
  info = probe(at.data(), at.size(), limits{});
  BOOST_TEST(info.ok(), describe(info));
}

// A PNG whose header (IHDR) is damaged or declares what PNG does not
// define is refused at the probe saying what is wrong with it: libvips
// failed each of these "cannot read the png header: its pixel data is cut
// short or damaged (libvips gave no reason)".
BOOST_AUTO_TEST_CASE(a_damaged_png_header_is_named) {
  auto with_ihdr = [](uint32_t w, uint32_t h, std::string rest) {
    std::string png = "\x89PNG\r\n\x1A\n";
    std::string ihdr;
    put_be32(ihdr, w);
    put_be32(ihdr, h);
    ihdr += rest;
    put_chunk(png, "IHDR", ihdr);
    put_chunk(png, "IDAT", std::string{"\x78\x9C\x03\x00\x00\x00\x00\x01", 8});
    put_chunk(png, "IEND", "");
    return png;
  };
  const std::string rgb8{"\x08\x02\x00\x00\x00", 5};
  auto refused = [](const std::string& png, const std::string& words) {
    auto info = probe(png.data(), png.size(), limits{});
    BOOST_REQUIRE(!info.ok());
    BOOST_TEST((info.error().code == error_code::corrupt_image));
    BOOST_TEST(info.error().message == words);
  };
  auto bad_crc = with_ihdr(16, 16, rgb8);
  bad_crc[8 + 8 + 13] ^= 0x5A; // the IHDR's CRC
  refused(bad_crc,
          "PNG header (IHDR) damaged: its CRC does not match its contents");
  refused(with_ihdr(0, 16, rgb8), "PNG header (IHDR) declares a 0x16 image: "
                                  "a PNG's sides are 1 to 2147483647 pixels");
  refused(with_ihdr(16, 0x80000000u, rgb8),
          "PNG header (IHDR) declares a 16x2147483648 image: a PNG's sides "
          "are 1 to 2147483647 pixels");
  refused(with_ihdr(16, 16, std::string{"\x07\x02\x00\x00\x00", 5}),
          "PNG header (IHDR) declares bit depth 7 with colour type 2, which "
          "PNG does not define");
  refused(with_ihdr(16, 16, std::string{"\x08\x05\x00\x00\x00", 5}),
          "PNG header (IHDR) declares bit depth 8 with colour type 5, which "
          "PNG does not define");
  refused(with_ihdr(16, 16, std::string{"\x08\x02\x01\x00\x00", 5}),
          "PNG header (IHDR) declares compression method 1 and filter method "
          "0: PNG defines only 0 for each");
  refused(with_ihdr(16, 16, std::string{"\x08\x02\x00\x00\x02", 5}),
          "PNG header (IHDR) declares interlace method 2: PNG defines 0 "
          "(none) and 1 (Adam7)");
  auto png = solid_png(8, 8);
  refused(png.substr(0, 8), "PNG cut short before its header (IHDR)");
  refused(png.substr(0, 20), "PNG cut short inside its header (IHDR)");
  std::string no_ihdr = "\x89PNG\r\n\x1A\n";
  put_chunk(no_ihdr, "IEND", "");
  refused(no_ihdr, "PNG does not start with its header: its first chunk is "
                   "not an IHDR of 13 bytes");
  // Sound headers pass to libvips, as before: an encoder's, and Adam7.
  BOOST_TEST(probe(png.data(), png.size(), limits{}).ok());
  BOOST_TEST(!png_header_problem(png.data(), png.size()));
  auto adam7 = with_ihdr(16, 16, std::string{"\x08\x02\x00\x00\x01", 5});
  BOOST_TEST(!png_header_problem(adam7.data(), adam7.size()));
  BOOST_TEST(!png_header_problem("GIF89a", 6)); // no PNG: not its to judge
}

// zTXt and iTXt chunks are cut out before a decoder sees the PNG (libpng
// inflates them all, without limit); everything else stays, byte for byte.
BOOST_AUTO_TEST_CASE(compressed_png_text_is_dropped_and_the_rest_kept) {
  auto png = solid_png(8, 8);
  auto iend = png.rfind("IEND") - 4; // its length field
  std::string text;
  put_chunk(text, "zTXt", std::string{"Comment\0\0", 9} + "not even zlib");
  put_chunk(text, "iTXt", std::string{"XML:com.adobe.xmp\0\1\0\0\0", 22});
  std::string kept;
  put_chunk(kept, "tEXt", std::string{"Title\0", 6} + "stays");
  auto with = png.substr(0, iend) + text + kept + text + png.substr(iend);
  auto expected = png.substr(0, iend) + kept + png.substr(iend);
  auto dropped = drop_compressed_png_text(with);
  BOOST_TEST(dropped == 2 * text.size());
  BOOST_TEST((with == expected));
  BOOST_TEST(probe(with.data(), with.size(), limits{}).ok());
  // Nothing to drop: nothing changes.
  auto plain = png;
  BOOST_TEST(drop_compressed_png_text(plain) == 0u);
  BOOST_TEST((plain == png));
  // Not a PNG, or a chunk that does not fit: left to the decoder.
  std::string jpeg = "\xff\xd8\xff\xe0zTXtzTXt";
  auto same = jpeg;
  BOOST_TEST(drop_compressed_png_text(same) == 0u);
  BOOST_TEST((same == jpeg));
  auto cut = png.substr(0, iend) + text + kept;
  cut.resize(cut.size() - 3); // the tEXt chunk's CRC cut short
  auto cut_expected = png.substr(0, iend) + kept.substr(0, kept.size() - 3);
  BOOST_TEST(drop_compressed_png_text(cut) == text.size());
  BOOST_TEST((cut == cut_expected));
}

// A PNG whose data inflates to far more than its header calls for is
// refused before libpng inflates all of it at the image's end, out of the
// deadline's reach (a 42 MB 1x1 PNG held a worker 84 s); what encoders
// write, interlaced or not, is exactly what the header calls for.
BOOST_AUTO_TEST_CASE(png_data_inflating_past_its_image_is_refused) {
  BOOST_TEST(png_image_data_bytes(8, 8, 8, 2, false).value() == 200u);
  BOOST_TEST(png_image_data_bytes(8, 8, 8, 2, true).value() == 207u);
  BOOST_TEST(png_image_data_bytes(10, 3, 1, 0, false).value() == 9u);
  BOOST_TEST(png_image_data_bytes(1, 1, 16, 6, false).value() == 9u);
  BOOST_TEST(png_image_data_bytes(1, 1, 8, 0, true).value() == 2u);
  BOOST_TEST(!png_image_data_bytes(8, 8, 16, 3, false)); // 16-bit palette
  BOOST_TEST(!png_image_data_bytes(8, 8, 8, 5, false));  // no such type
  // 1x1 8-bit grey: a filter byte and a pixel, then 4 MiB of zeros in the
  // same zlib stream, over three IDAT chunks.
  std::string raw(2 + (size_t{4} << 20), '\0');
  raw[1] = '\x80';
  uLongf length = compressBound(static_cast<uLong>(raw.size()));
  std::string z(length, '\0');
  BOOST_REQUIRE(compress2(reinterpret_cast<Bytef*>(z.data()), &length,
                          reinterpret_cast<const Bytef*>(raw.data()),
                          static_cast<uLong>(raw.size()), 9) == Z_OK);
  z.resize(length);
  std::string png = "\x89PNG\r\n\x1A\n";
  std::string ihdr;
  put_be32(ihdr, 1);
  put_be32(ihdr, 1);
  ihdr += std::string{"\x08\x00\x00\x00\x00", 5}; // 8-bit grey
  put_chunk(png, "IHDR", ihdr);
  auto third = z.size() / 3;
  put_chunk(png, "IDAT", z.substr(0, third));
  put_chunk(png, "IDAT", z.substr(third, third));
  put_chunk(png, "IDAT", z.substr(2 * third));
  put_chunk(png, "IEND", "");
  BOOST_TEST(png.size() < 10000u);
  auto overrun = png_data_overrun(png.data(), png.size(), uint64_t{1} << 20);
  BOOST_REQUIRE(overrun);
  BOOST_TEST(*overrun == "its compressed pixel data inflates to more than "
                         "the 2 bytes its 1x1 header calls for (refused "
                         "before decoding: the decoder would inflate all of "
                         "it)");
  auto r = run(png, opts_of(10, 10));
  require_error(r, error_code::corrupt_image);
  BOOST_TEST(r.error().message == "cannot decode the image: " + *overrun);
  // Within the slack it is the decoder's (libpng warns and decodes it).
  BOOST_TEST(!png_data_overrun(png.data(), png.size(), uint64_t{8} << 20));
  // The bomb in a last IDAT cut short, which libpng inflates before it
  // finds the chunk incomplete: without its CRC (and IEND), or with a
  // length past the end. Both passed the check at first.
  std::string head = "\x89PNG\r\n\x1A\n";
  put_chunk(head, "IHDR", ihdr);
  std::string no_crc = head;
  put_be32(no_crc, static_cast<uint32_t>(z.size()));
  no_crc += "IDAT" + z;
  std::string too_long = head;
  put_be32(too_long, static_cast<uint32_t>(z.size() + 1000000));
  too_long += "IDAT" + z;
  for (const auto* cut : {&no_crc, &too_long}) {
    BOOST_TEST(png_data_overrun(cut->data(), cut->size(), uint64_t{1} << 20)
                   .has_value());
    require_error(run(*cut, opts_of(10, 10)), error_code::corrupt_image);
  }
  // Not a PNG, or cut short: the decoder's to judge.
  BOOST_TEST(!png_data_overrun("GIF89a", 6, 0));
  BOOST_TEST(!png_data_overrun(png.data(), 40, 0));
  // Encoders' PNGs need no slack at all.
  auto photo = photo_like(300, 200);
  for (const auto& [name, file] :
       std::vector<std::pair<std::string, std::string>>{
           {"rgb", save(photo.get(), ".png")},
           {"rgb interlaced", save(photo.get(), ".png[interlace]")},
           {"rgba", transparent_png(201, 99)},
           {"16-bit", png16(97, 31)},
           {"grey 1x1", solid_png(1, 1)},
           {"palette", save(photo.get(), ".png[palette,bitdepth=4]")}})
    BOOST_TEST_CONTEXT(name) {
      BOOST_TEST(sniff(file.data(), file.size()) == input_format::png);
      BOOST_TEST(!png_data_overrun(file.data(), file.size(), 0));
    }
  size_t corpus_pngs = 0;
  for (const auto& entry : std::filesystem::directory_iterator{corpus_dir()}) {
    auto bytes = read_file(entry.path());
    if (sniff(bytes.data(), bytes.size()) != input_format::png)
      continue;
    ++corpus_pngs;
    BOOST_TEST_CONTEXT(entry.path().filename()) {
      BOOST_TEST(!png_data_overrun(bytes.data(), bytes.size(), 0));
    }
  }
  BOOST_TEST(corpus_pngs > 0u);
}

BOOST_AUTO_TEST_CASE(probe_honours_configured_pixel_limit) {
  auto jpeg = photo_jpeg(64, 48);
  limits lim;
  lim.max_pixels = 64 * 48 - 1;
  auto info = probe(jpeg.data(), jpeg.size(), lim);
  BOOST_REQUIRE(!info.ok());
  BOOST_TEST(info.error().code == error_code::image_too_large);
  lim.max_pixels = 64 * 48;
  BOOST_TEST(probe(jpeg.data(), jpeg.size(), lim).ok());
}

BOOST_AUTO_TEST_CASE(probe_classifies_bad_input) {
  std::string junk(256, '\x42');
  auto a = probe(junk.data(), junk.size(), limits{});
  BOOST_REQUIRE(!a.ok());
  BOOST_TEST(a.error().code == error_code::unsupported_format);
  BOOST_TEST(a.error().message ==
             "bytes are not a JPEG, PNG, WebP, GIF, TIFF or HEIF/AVIF image");

  auto fake = bytes_of({0xFF, 0xD8, 0xFF, 0xE0}) + junk;
  auto b = probe(fake.data(), fake.size(), limits{});
  BOOST_REQUIRE(!b.ok());
  BOOST_TEST(b.error().code == error_code::corrupt_image);
  BOOST_TEST(b.error().message.find('\n') == std::string::npos);
  BOOST_TEST_MESSAGE("garbage JPEG: " << b.error().message);
}

// -- modes
// --------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(fill_crops_to_the_box) {
  auto jpeg = photo_jpeg(400, 300);
  require_output(run(jpeg, opts_of(100, 100, fit_mode::fill)), 100, 100,
                 output_format::jpeg);
  require_output(run(jpeg, opts_of(50, 120, fit_mode::fill)), 50, 120,
                 output_format::jpeg);
}

BOOST_AUTO_TEST_CASE(fill_enlarges_small_images) {
  // left half red, right half blue: the centre crop of a wide image that
  // must grow keeps both halves, split in the middle
  const int w = 80, h = 20;
  std::vector<uint8_t> px(static_cast<size_t>(w) * h * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      auto* p = &px[(static_cast<size_t>(y) * w + x) * 3];
      p[0] = x < w / 2 ? 255 : 0;
      p[1] = 0;
      p[2] = x < w / 2 ? 0 : 255;
    }
  auto png = save(from_pixels(px, w, h, 3).get(), ".png");
  auto r = run(png, opts_of(100, 100, fit_mode::fill, output_format::png));
  require_output(r, 100, 100, output_format::png);
  auto img = decode(r->bytes);
  BOOST_TEST(pixel(img.get(), 10, 50)[0] > 200);
  BOOST_TEST(pixel(img.get(), 90, 50)[2] > 200);
  // the orientation is applied before the crop: 200x100 tagged 6 is a
  // 100x200 portrait, so 300x300 takes its middle third
  require_output(run(rotated_jpeg(), opts_of(300, 300)), 300, 300,
                 output_format::jpeg);
  require_output(run(rotated_jpeg(), opts_of(400, 100)), 400, 100,
                 output_format::jpeg);
}

BOOST_AUTO_TEST_CASE(fit_keeps_aspect_inside_the_box) {
  auto jpeg = photo_jpeg(400, 300);
  require_output(run(jpeg, opts_of(100, 100, fit_mode::fit)), 100, 75,
                 output_format::jpeg);
  // small images grow to the box
  auto small = photo_jpeg(40, 30);
  require_output(run(small, opts_of(100, 100, fit_mode::fit)), 100, 75,
                 output_format::jpeg);
}

BOOST_AUTO_TEST_CASE(force_stretches_to_the_box) {
  auto jpeg = photo_jpeg(400, 300);
  require_output(run(jpeg, opts_of(100, 100, fit_mode::force)), 100, 100,
                 output_format::jpeg);
  require_output(run(jpeg, opts_of(30, 200, fit_mode::force)), 30, 200,
                 output_format::jpeg);
}

BOOST_AUTO_TEST_CASE(one_side_keeps_aspect_in_every_mode) {
  auto jpeg = photo_jpeg(400, 300);
  for (auto mode : {fit_mode::fill, fit_mode::fit, fit_mode::force}) {
    BOOST_TEST_CONTEXT("mode " << to_string(mode)) {
      require_output(run(jpeg, opts_of(200, 0, mode)), 200, 150,
                     output_format::jpeg);
      require_output(run(jpeg, opts_of(0, 60, mode)), 80, 60,
                     output_format::jpeg);
      require_output(run(jpeg, opts_of(800, 0, mode)), 800, 600,
                     output_format::jpeg);
    }
  }
}

BOOST_AUTO_TEST_CASE(tiny_and_extreme_inputs) {
  auto one = solid_png(1, 1);
  require_output(run(one, opts_of(100, 100)), 100, 100, output_format::jpeg);
  require_output(run(one, opts_of(100, 100, fit_mode::fit)), 100, 100,
                 output_format::jpeg);

  // fill cuts the centre before enlarging: no 2000000x100 intermediate.
  // libvips counts every pixel buffer it allocates; one strip of such an
  // intermediate (2000000 x 16 rows x 3 bands) would be 96 MB, the crop
  // first keeps the whole run to a few.
  auto strip = solid_png(20000, 1);
  require_output(run(strip, opts_of(100, 100)), 100, 100, output_format::jpeg);
  auto tall = solid_png(1, 20000);
  require_output(run(tall, opts_of(100, 100)), 100, 100, output_format::jpeg);
  BOOST_TEST_MESSAGE("libvips memory high-water mark: "
                     << vips_tracked_get_mem_highwater() << " bytes");
  BOOST_TEST(vips_tracked_get_mem_highwater() < 32u * 1024 * 1024);
  require_output(run(strip, opts_of(100, 0)), 100, 1, output_format::jpeg);
  // the derived side is capped at limits.max_dimension (4096)
  require_output(run(strip, opts_of(0, 100)), 4096, 1, output_format::jpeg);
}

// -- formats
// --------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(every_writable_format_decodes_back) {
  auto jpeg = photo_jpeg(400, 300);
  for (auto format : {output_format::jpeg, output_format::png,
                      output_format::webp, output_format::avif}) {
    BOOST_TEST_CONTEXT("format " << to_string(format)) {
      if (!can_write(format)) {
        BOOST_TEST_MESSAGE("skipping " << to_string(format)
                                       << ": not writable here");
        continue;
      }
      auto r = run(jpeg, opts_of(120, 90, fit_mode::fill, format));
      require_output(r, 120, 90, format);
      BOOST_TEST(r->timings.decode >= 0);
      BOOST_TEST(r->timings.resize >= 0);
      BOOST_TEST(r->timings.encode > 0);
    }
  }
}

BOOST_AUTO_TEST_CASE(every_input_format_is_read) {
  auto src = photo_like(80, 60);
  for (const char* suffix : {".jpg", ".png", ".webp", ".gif", ".tif"}) {
    BOOST_TEST_CONTEXT("input " << suffix) {
      auto bytes = save(src.get(), suffix);
      require_output(run(bytes, opts_of(40, 30)), 40, 30, output_format::jpeg);
    }
  }
  if (can_write(output_format::avif)) {
    auto avif = run(save(src.get(), ".png"),
                    opts_of(80, 60, fit_mode::fill, output_format::avif));
    BOOST_REQUIRE(avif.ok());
    require_output(run(avif->bytes, opts_of(40, 30)), 40, 30,
                   output_format::jpeg);
  }
}

BOOST_AUTO_TEST_CASE(quality_changes_size) {
  auto jpeg = photo_jpeg(600, 400);
  for (auto format :
       {output_format::jpeg, output_format::webp, output_format::avif}) {
    if (!can_write(format))
      continue;
    BOOST_TEST_CONTEXT("format " << to_string(format)) {
      auto low = run(jpeg, opts_of(300, 200, fit_mode::fill, format, 20));
      auto high = run(jpeg, opts_of(300, 200, fit_mode::fill, format, 95));
      BOOST_REQUIRE(low.ok());
      BOOST_REQUIRE(high.ok());
      BOOST_TEST(low->bytes.size() < high->bytes.size());
    }
  }
}

/// rotated_jpeg() with an Exif artist, a GPS latitude and an XMP packet.
std::string jpeg_with_private_metadata() {
  auto img = decode(rotated_jpeg());
  VipsImage* copy = nullptr;
  BOOST_REQUIRE_EQUAL(vips_copy(img.get(), &copy, nullptr), 0);
  image_ptr tagged{copy};
  vips_image_set_string(tagged.get(), "exif-ifd0-Artist",
                        "SECRET-ARTIST (SECRET-ARTIST, ASCII, 14 components, "
                        "14 bytes)");
  vips_image_set_string(tagged.get(), "exif-ifd3-GPSLatitude",
                        "48/1 51/1 2400/100 (48, 51, 24, Rational, 3 "
                        "components, 24 bytes)");
  static const char xmp[] = "<x:xmpmeta>SECRET-XMP</x:xmpmeta>";
  vips_image_set_blob_copy(tagged.get(), VIPS_META_XMP_NAME, xmp,
                           sizeof xmp - 1);
  return save(tagged.get(), ".jpg[strip=false]");
}

BOOST_AUTO_TEST_CASE(metadata_is_stripped_in_every_format) {
  auto jpeg = jpeg_with_private_metadata();
  // The input does carry what must not come out.
  BOOST_REQUIRE(jpeg.find("SECRET-ARTIST") != std::string::npos);
  BOOST_REQUIRE(jpeg.find("SECRET-XMP") != std::string::npos);
  for (auto format : {output_format::jpeg, output_format::png,
                      output_format::webp, output_format::avif}) {
    if (!can_write(format))
      continue;
    BOOST_TEST_CONTEXT("format " << to_string(format)) {
      auto r = run(jpeg, opts_of(60, 60, fit_mode::fit, format));
      BOOST_REQUIRE(r.ok());
      // libvips 8.14.1's webpsave wrote all of it despite strip=TRUE.
      BOOST_TEST(r->bytes.find("SECRET") == std::string::npos);
      auto img = decode(r->bytes);
      BOOST_TEST(vips_image_get_typeof(img.get(), VIPS_META_XMP_NAME) == 0u);
      BOOST_TEST(vips_image_get_typeof(img.get(), "exif-ifd0-Artist") == 0u);
      BOOST_TEST(vips_image_get_typeof(img.get(), "exif-ifd3-GPSLatitude") ==
                 0u);
      if (format == output_format::webp) {
        // webpsave still writes the Exif block it makes up from nothing:
        // resolution and orientation 1, nothing of the input's.
        int orientation = 1;
        if (vips_image_get_typeof(img.get(), VIPS_META_ORIENTATION) != 0)
          vips_image_get_int(img.get(), VIPS_META_ORIENTATION, &orientation);
        BOOST_TEST(orientation == 1);
      } else {
        BOOST_TEST(vips_image_get_typeof(img.get(), VIPS_META_EXIF_NAME) == 0u);
        BOOST_TEST(vips_image_get_typeof(img.get(), VIPS_META_ORIENTATION) ==
                   0u);
      }
      // Upright: the 200x100 landscape tagged 6 is a portrait.
      BOOST_TEST(r->width == 30);
      BOOST_TEST(r->height == 60);
    }
  }
}

// -- colour and alpha
// ---------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(transparent_png_to_jpeg_is_flattened_onto_white) {
  auto png = transparent_png(200, 100);
  auto r = run(png, opts_of(100, 50, fit_mode::force));
  require_output(r, 100, 50, output_format::jpeg);
  auto img = decode(r->bytes);
  BOOST_TEST(vips_image_get_bands(img.get()) == 3);
  auto left = pixel(img.get(), 10, 25);
  BOOST_TEST(left[0] > 245);
  BOOST_TEST(left[1] > 245); // no red shows through
  BOOST_TEST(left[2] > 245);
  auto right = pixel(img.get(), 90, 25);
  BOOST_TEST(right[0] < 40);
  BOOST_TEST(right[1] > 200);
  BOOST_TEST(right[2] < 40);
}

BOOST_AUTO_TEST_CASE(alpha_is_kept_for_png_and_webp) {
  auto png = transparent_png(200, 100);
  for (auto format : {output_format::png, output_format::webp}) {
    BOOST_TEST_CONTEXT("format " << to_string(format)) {
      auto r = run(png, opts_of(100, 50, fit_mode::force, format));
      require_output(r, 100, 50, format);
      auto img = decode(r->bytes);
      BOOST_TEST(vips_image_get_bands(img.get()) == 4);
      BOOST_TEST(pixel(img.get(), 10, 25)[3] == 0);
      BOOST_TEST(pixel(img.get(), 90, 25)[3] == 255);
    }
  }
}

// The output is sRGB whatever the input (API.md): a grey photo comes out
// with three equal bands, as the original service's did (Pillow's
// convert("RGB")), in every format; grey with alpha keeps its alpha where
// the format has one.
BOOST_AUTO_TEST_CASE(grey_inputs_come_out_in_srgb) {
  const int w = 200, h = 100;
  std::vector<uint8_t> grey(static_cast<size_t>(w) * h);
  std::vector<uint8_t> grey_alpha(static_cast<size_t>(w) * h * 2);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      auto i = static_cast<size_t>(y) * w + x;
      grey[i] = x < w / 2 ? 40 : 210;
      grey_alpha[2 * i] = grey[i];
      grey_alpha[2 * i + 1] = x < w / 2 ? 0 : 255;
    }
  auto plain = from_pixels(grey, w, h, 1, VIPS_INTERPRETATION_B_W);
  auto with_alpha = from_pixels(grey_alpha, w, h, 2, VIPS_INTERPRETATION_B_W);
  const std::vector<std::pair<std::string, std::string>> inputs = {
      {"grey JPEG", save(plain.get(), ".jpg[Q=95]")},
      {"grey PNG", save(plain.get(), ".png")},
      {"16-bit grey PNG",
       [&] {
         VipsImage* wide = nullptr;
         BOOST_REQUIRE_EQUAL(vips_colourspace(plain.get(), &wide,
                                              VIPS_INTERPRETATION_GREY16,
                                              nullptr),
                             0);
         image_ptr owner{wide};
         return save(wide, ".png");
       }()},
      {"grey + alpha PNG", save(with_alpha.get(), ".png")}};
  for (const auto& [name, bytes] : inputs) {
    bool alpha = name == "grey + alpha PNG";
    for (auto format :
         {output_format::jpeg, output_format::png, output_format::webp}) {
      BOOST_TEST_CONTEXT(name << " to " << to_string(format)) {
        auto r = run(bytes, opts_of(100, 50, fit_mode::force, format));
        require_output(r, 100, 50, format);
        auto img = decode(r->bytes);
        bool kept_alpha = alpha && format != output_format::jpeg;
        BOOST_TEST(vips_image_get_bands(img.get()) == (kept_alpha ? 4 : 3));
        BOOST_TEST(vips_image_get_interpretation(img.get()) ==
                   VIPS_INTERPRETATION_sRGB);
        auto right = pixel(img.get(), 90, 25);
        BOOST_TEST(std::abs(right[0] - 210) <= 4);
        BOOST_TEST(std::abs(right[1] - right[0]) <= 2); // still grey
        BOOST_TEST(std::abs(right[2] - right[0]) <= 2);
        if (kept_alpha) {
          BOOST_TEST(pixel(img.get(), 10, 25)[3] == 0);
          BOOST_TEST(right[3] == 255);
        } else if (!alpha) {
          BOOST_TEST(std::abs(pixel(img.get(), 10, 25)[0] - 40) <= 4);
        }
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(exif_orientation_is_applied) {
  auto jpeg = rotated_jpeg();
  auto info = probe(jpeg.data(), jpeg.size(), limits{});
  BOOST_REQUIRE(info.ok());
  BOOST_TEST(info->width == 200); // probe reports the stored raster
  BOOST_TEST(info->height == 100);
  BOOST_TEST(info->orientation_swap);
  // upright the picture is a 100x200 portrait: fit into 100x100 gives 50x100
  require_output(run(jpeg, opts_of(100, 100, fit_mode::fit)), 50, 100,
                 output_format::jpeg);
  BOOST_TEST(!probe_of(photo_jpeg(40, 30)).orientation_swap);
}

BOOST_AUTO_TEST_CASE(a_known_header_is_not_read_again) {
  // The probe from the API node gives the same picture as reading the header
  // here, also where the upright size decides the plan (fill that enlarges).
  for (auto& bytes :
       {rotated_jpeg(), photo_jpeg(400, 300), solid_png(20000, 1)})
    for (auto opts : {opts_of(100, 100), opts_of(300, 300),
                      opts_of(100, 100, fit_mode::fit), opts_of(0, 50)}) {
      auto head = probe_of(bytes);
      auto read = run(bytes, opts);
      auto known = resize(bytes.data(), bytes.size(), opts, limits{}, &head);
      BOOST_REQUIRE(read.ok());
      BOOST_REQUIRE(known.ok());
      BOOST_TEST(read->bytes == known->bytes);
    }
  // its pixel count is still checked against this node's limits
  auto jpeg = photo_jpeg(400, 300);
  auto head = probe_of(jpeg);
  limits small;
  small.max_pixels = 400 * 300 - 1;
  require_error(
      resize(jpeg.data(), jpeg.size(), opts_of(100, 100), small, &head),
      error_code::image_too_large);
  // a header of another format than the bytes is not trusted: read again
  auto other = head;
  other.format = input_format::png;
  other.width = other.height = 1000000;
  require_output(
      resize(jpeg.data(), jpeg.size(), opts_of(100, 100), limits{}, &other),
      100, 100, output_format::jpeg);
}

BOOST_AUTO_TEST_CASE(cmyk_jpeg_becomes_srgb) {
  auto jpeg = cmyk_jpeg(200, 100);
  {
    image_ptr in{
        vips_image_new_from_buffer(jpeg.data(), jpeg.size(), "", nullptr)};
    BOOST_REQUIRE(in);
    BOOST_TEST(vips_image_get_bands(in.get()) == 4);
    BOOST_TEST(vips_image_get_interpretation(in.get()) ==
               VIPS_INTERPRETATION_CMYK);
  }
  for (auto format : {output_format::jpeg, output_format::png}) {
    BOOST_TEST_CONTEXT("format " << to_string(format)) {
      auto r = run(jpeg, opts_of(100, 50, fit_mode::force, format));
      require_output(r, 100, 50, format);
      auto img = decode(r->bytes);
      BOOST_TEST(vips_image_get_bands(img.get()) == 3);
      BOOST_TEST(vips_image_get_interpretation(img.get()) ==
                 VIPS_INTERPRETATION_sRGB);
      auto white = pixel(img.get(), 10, 25);
      BOOST_TEST(white[0] > 230);
      BOOST_TEST(white[1] > 230);
      BOOST_TEST(white[2] > 230);
      auto red = pixel(img.get(), 90, 25);
      BOOST_TEST(red[0] > 180);
      BOOST_TEST(red[1] < 100);
      BOOST_TEST(red[2] < 100);
    }
  }
}

/// libvips' built-in profile `name` ("srgb", "p3", "cmyk") as bytes.
std::string builtin_profile(const char* name) {
  VipsBlob* blob = nullptr;
  BOOST_REQUIRE_EQUAL(vips_profile_load(name, &blob, nullptr), 0);
  size_t length = 0;
  const void* data = vips_blob_get(blob, &length);
  std::string out{static_cast<const char*>(data), length};
  vips_area_unref(VIPS_AREA(blob));
  return out;
}

/// Attaches `profile` (ICC bytes) to `img` as its embedded profile.
void tag_with(VipsImage* img, const std::string& profile) {
  vips_image_set_blob_copy(img, VIPS_META_ICC_NAME, profile.data(),
                           profile.size());
}

/// A w x h image of one colour, tagged with libvips' built-in profile
/// `profile` ("p3": Display P3), or untagged when it is null.
image_ptr solid_tagged(int w, int h, std::array<uint8_t, 3> rgb,
                       const char* profile) {
  std::vector<uint8_t> px(static_cast<size_t>(w) * h * 3);
  for (size_t i = 0; i < px.size(); ++i)
    px[i] = rgb[i % 3];
  auto img = from_pixels(px, w, h, 3);
  if (profile != nullptr)
    tag_with(img.get(), builtin_profile(profile));
  return img;
}

// API.md: the output is sRGB. A Display P3 (200,100,50) is about
// (215,93,32) in sRGB; libvips 8.14's thumbnail passed tagged RGB values
// through unchanged and dropped the profile, whatever the input format and
// whichever path decoded it (libvips' thumbnail, the crop-then-enlarge of
// fill, the DC scans of a progressive JPEG).
BOOST_AUTO_TEST_CASE(embedded_rgb_profiles_are_converted_to_srgb) {
  // libvips' own conversion of one tagged pixel: what every output must be
  auto one = solid_tagged(1, 1, {200, 100, 50}, "p3");
  VipsImage* out = nullptr;
  BOOST_REQUIRE_EQUAL(
      vips_icc_transform(one.get(), &out, "srgb", "embedded", TRUE, nullptr),
      0);
  image_ptr converted{out};
  auto want = pixel(converted.get(), 0, 0);
  BOOST_TEST_MESSAGE("P3 (200,100,50) in sRGB: " << want[0] << "," << want[1]
                                                 << "," << want[2]);
  BOOST_REQUIRE(std::abs(want[0] - 215) <= 2); // not (200,100,50)
  BOOST_REQUIRE(std::abs(want[1] - 93) <= 2);
  BOOST_REQUIRE(std::abs(want[2] - 32) <= 2);
  auto near = [](const std::vector<double>& got, std::vector<double> ref) {
    for (size_t i = 0; i < 3; ++i)
      if (std::abs(got[i] - ref[i]) > 3)
        return false;
    return true;
  };

  // 3200x2400 to 100x100: 24 times smaller, so a progressive JPEG is
  // decoded from its DC scans
  auto big = solid_tagged(3200, 2400, {200, 100, 50}, "p3");
  auto small = solid_tagged(60, 40, {200, 100, 50}, "p3");
  struct input {
    const char* name;
    std::string bytes;
    resize_options opts;
    bool dc_scans;
  };
  const input inputs[] = {
      {"baseline jpeg", save(big.get(), ".jpg[Q=95,strip=false]"),
       opts_of(100, 100), false},
      {"progressive jpeg (DC scans)",
       save(big.get(), ".jpg[Q=95,interlace,strip=false]"), opts_of(100, 100),
       true},
      {"progressive jpeg (whole)",
       save(big.get(), ".jpg[Q=95,interlace,strip=false]"), opts_of(400, 300),
       false},
      {"png", save(big.get(), ".png[strip=false]"), opts_of(100, 100), false},
      {"webp", save(big.get(), ".webp[Q=95,strip=false]"), opts_of(100, 100),
       false},
      {"tiff", save(big.get(), ".tif[strip=false]"),
       opts_of(100, 100, fit_mode::fit), false},
      {"png, fill that enlarges", save(small.get(), ".png[strip=false]"),
       opts_of(200, 200), false},
  };
  for (const auto& in : inputs) {
    BOOST_TEST_CONTEXT(in.name) {
      BOOST_REQUIRE(in.bytes.find("ICC_PROFILE") != std::string::npos ||
                    in.bytes.find("iCCP") != std::string::npos ||
                    in.bytes.find("ICCP") != std::string::npos ||
                    sniff_str(in.bytes) == input_format::tiff);
      for (auto format : {output_format::jpeg, output_format::png}) {
        BOOST_TEST_CONTEXT("to " << to_string(format)) {
          auto opts = in.opts;
          opts.format = format;
          auto r = run(in.bytes, opts);
          BOOST_REQUIRE_MESSAGE(r.ok(), describe(r));
          BOOST_TEST(r->jpeg_dc_scans == in.dc_scans);
          BOOST_TEST(r->profile_converted);
          auto img = decode(r->bytes);
          BOOST_TEST(vips_image_get_typeof(img.get(), VIPS_META_ICC_NAME) ==
                     0u); // stripped: sRGB is what a viewer assumes
          auto got = pixel(img.get(), r->width / 2, r->height / 2);
          BOOST_TEST(near(got, want),
                     "got " << got[0] << "," << got[1] << "," << got[2]);
        }
      }
    }
  }

  // untagged: the values are sRGB already and stay as they are
  auto plain = solid_tagged(800, 600, {200, 100, 50}, nullptr);
  auto r = run(save(plain.get(), ".png"), opts_of(100, 100));
  BOOST_REQUIRE_MESSAGE(r.ok(), describe(r));
  auto got = pixel(decode(r->bytes).get(), 50, 50);
  BOOST_TEST(near(got, {200, 100, 50}),
             "got " << got[0] << "," << got[1] << "," << got[2]);
}

/// The ICC profile of `img` as bytes ("" when it has none).
std::string profile_of(VipsImage* img) {
  const void* data = nullptr;
  size_t length = 0;
  if (vips_image_get_typeof(img, VIPS_META_ICC_NAME) == 0 ||
      vips_image_get_blob(img, VIPS_META_ICC_NAME, &data, &length) != 0)
    return {};
  return {static_cast<const char*>(data), length};
}

/// A grey ICC profile (gamma 2.2), made by lcms.
std::string grey_profile() {
  cmsToneCurve* gamma = cmsBuildGamma(nullptr, 2.2);
  cmsHPROFILE p = cmsCreateGrayProfile(cmsD50_xyY(), gamma);
  cmsUInt32Number length = 0;
  std::string out;
  if (p != nullptr && cmsSaveProfileToMem(p, nullptr, &length) && length > 0) {
    out.resize(length);
    if (!cmsSaveProfileToMem(p, out.data(), &length))
      out.clear();
  }
  if (p != nullptr)
    cmsCloseProfile(p);
  cmsFreeToneCurve(gamma);
  return out;
}

// icc_profile.hpp: a profile whose conversion to sRGB changes nothing is
// dropped (libvips' own, and the 1998 HP profile most tagged photos carry,
// here from a corpus photo); P3 is converted; what lcms cannot use as RGB
// is left to libvips. Each profile is worked out once while remembered.
BOOST_AUTO_TEST_CASE(profiles_are_worked_out_once) {
  using kind = profile_conversion::kind;
  forget_conversions();
  auto srgb = builtin_profile("srgb");
  auto p3 = builtin_profile("p3");
  BOOST_TEST((conversion_for(srgb, 3).what == kind::drop));
  BOOST_TEST((conversion_for(srgb, 4).what == kind::drop));
  auto n = conversions_worked_out();
  auto rgb = conversion_for(p3, 3);
  BOOST_TEST((rgb.what == kind::convert));
  BOOST_TEST(rgb.transform != nullptr);
  BOOST_TEST(conversions_worked_out() == n + 1);
  BOOST_TEST(conversion_for(p3, 3).transform == rgb.transform); // kept
  BOOST_TEST(conversions_worked_out() == n + 1);
  auto rgba = conversion_for(p3, 4); // its RGBA transform, made once
  BOOST_TEST((rgba.what == kind::convert));
  BOOST_TEST(rgba.transform != rgb.transform);
  BOOST_TEST(conversion_for(p3, 4).transform == rgba.transform);
  BOOST_TEST((conversion_for(p3, 2).what == kind::libvips));
  // one lcms cannot use as RGB: worked out once too, whatever the bands
  auto grey = grey_profile();
  BOOST_REQUIRE(grey.size() >= 128);
  n = conversions_worked_out();
  BOOST_TEST((conversion_for(grey, 4).what == kind::libvips));
  BOOST_TEST((conversion_for(grey, 4).what == kind::libvips));
  BOOST_TEST((conversion_for(grey, 3).what == kind::libvips));
  BOOST_TEST(conversions_worked_out() == n + 1);
  BOOST_TEST((conversion_for("", 3).what == kind::libvips));
  BOOST_TEST((conversion_for(std::string(512, 'x'), 3).what == kind::libvips));
  BOOST_TEST((conversion_for(srgb.substr(0, srgb.size() / 2), 3).what ==
              kind::libvips));
  BOOST_TEST((conversion_for(std::string(80 * 1024, 'x'), 3).what ==
              kind::libvips)); // never worked out

  auto kite = read_file(corpus_dir() / "plasma__Kite.jpg");
  auto hp = profile_of(decode(kite).get());
  BOOST_REQUIRE(hp.find("sRGB IEC61966-2.1") != std::string::npos);
  BOOST_TEST((conversion_for(hp, 3).what == kind::drop));

  // more distinct profiles than are kept (the header's date field tells
  // them apart): P3 is forgotten and worked out again
  for (int i = 0; i < 20; ++i) {
    auto variant = srgb;
    variant[24 + 5] = static_cast<char>(i); // the day in dateTimeNumber
    BOOST_TEST_CONTEXT("variant " << i) {
      BOOST_TEST((conversion_for(variant, 3).what == kind::drop));
    }
  }
  n = conversions_worked_out();
  BOOST_TEST((conversion_for(p3, 3).what == kind::convert));
  BOOST_TEST(conversions_worked_out() == n + 1);
}

// The kept transform gives what libvips' vips_icc_transform gives, to the
// value, for RGB and for RGBA (alpha as it was), on every pixel.
BOOST_AUTO_TEST_CASE(kept_transforms_match_libvips) {
  auto p3 = builtin_profile("p3");
  for (int bands : {3, 4}) {
    BOOST_TEST_CONTEXT(bands << " bands") {
      const int w = 256, h = 256;
      std::vector<uint8_t> px(static_cast<size_t>(w) * h * bands);
      for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
          auto* p = &px[(static_cast<size_t>(y) * w + x) * bands];
          p[0] = static_cast<uint8_t>(x);
          p[1] = static_cast<uint8_t>(y);
          p[2] = static_cast<uint8_t>((x * 7 + y * 3) & 255);
          if (bands == 4)
            p[3] = static_cast<uint8_t>((x + y) & 255);
        }
      auto img = from_pixels(px, w, h, bands);
      tag_with(img.get(), p3);
      auto how = conversion_for(p3, bands);
      BOOST_REQUIRE((how.what == profile_conversion::kind::convert));
      image_ptr ours{apply_conversion(img.get(), how)};
      BOOST_REQUIRE(ours.get() != nullptr);
      VipsImage* raw = nullptr;
      BOOST_REQUIRE_EQUAL(vips_icc_transform(img.get(), &raw, "srgb",
                                             "embedded", TRUE, nullptr),
                          0);
      image_ptr theirs{raw};
      size_t a_len = 0, b_len = 0;
      std::unique_ptr<void, g_free_deleter> a{
          vips_image_write_to_memory(ours.get(), &a_len)};
      std::unique_ptr<void, g_free_deleter> b{
          vips_image_write_to_memory(theirs.get(), &b_len)};
      BOOST_REQUIRE(a != nullptr);
      BOOST_REQUIRE(b != nullptr);
      BOOST_REQUIRE_EQUAL(a_len, b_len);
      BOOST_REQUIRE_EQUAL(a_len, px.size());
      BOOST_TEST(std::memcmp(a.get(), b.get(), a_len) == 0);
      BOOST_TEST(std::memcmp(a.get(), px.data(), a_len) != 0); // converted
      if (bands == 4) {
        auto* out = static_cast<const uint8_t*>(a.get());
        bool alpha_kept = true;
        for (size_t i = 3; i < a_len; i += 4)
          alpha_kept = alpha_kept && out[i] == px[i];
        BOOST_TEST(alpha_kept);
      }
    }
  }
  // one that lcms does not convert here is refused, not guessed at
  image_ptr none{
      apply_conversion(from_pixels(std::vector<uint8_t>(12), 2, 2, 3).get(),
                       profile_conversion{})};
  BOOST_TEST(none.get() == nullptr);
  vips_error_clear();
}

// An sRGB-tagged image is not converted: its pixels come out as the same
// image untagged gives, to the value, and without the profile.
BOOST_AUTO_TEST_CASE(srgb_tagged_images_keep_their_values) {
  // the 1998 HP profile: libvips' transform from it to its own sRGB moves
  // some values by one level
  auto hp =
      profile_of(decode(read_file(corpus_dir() / "plasma__Kite.jpg")).get());
  BOOST_REQUIRE(!hp.empty());
  auto gradient = [&](bool tagged) {
    std::vector<uint8_t> px(static_cast<size_t>(640) * 480 * 3);
    for (int y = 0; y < 480; ++y)
      for (int x = 0; x < 640; ++x) {
        auto* p = &px[(static_cast<size_t>(y) * 640 + x) * 3];
        p[0] = static_cast<uint8_t>(x * 255 / 639);
        p[1] = static_cast<uint8_t>(y * 255 / 479);
        p[2] = static_cast<uint8_t>(255 - x * 255 / 639);
      }
    auto img = from_pixels(px, 640, 480, 3);
    if (tagged)
      tag_with(img.get(), hp);
    return save(img.get(), ".png[strip=false]");
  };
  auto plain = run(gradient(false),
                   opts_of(100, 100, fit_mode::fill, output_format::png));
  auto tagged = run(gradient(true),
                    opts_of(100, 100, fit_mode::fill, output_format::png));
  BOOST_REQUIRE_MESSAGE(plain.ok(), describe(plain));
  BOOST_REQUIRE_MESSAGE(tagged.ok(), describe(tagged));
  auto a = decode(plain->bytes);
  auto b = decode(tagged->bytes);
  BOOST_TEST(profile_of(b.get()).empty());
  BOOST_TEST(!tagged->profile_converted);
  BOOST_TEST(!plain->profile_converted);
  int differ = 0;
  for (int y = 0; y < 100; ++y)
    for (int x = 0; x < 100; ++x)
      if (pixel(a.get(), x, y) != pixel(b.get(), x, y))
        ++differ;
  BOOST_TEST(differ == 0);
}

BOOST_AUTO_TEST_CASE(sixteen_bit_png_becomes_8_bit) {
  auto png = png16(256, 64);
  for (auto format :
       {output_format::jpeg, output_format::png, output_format::webp}) {
    BOOST_TEST_CONTEXT("format " << to_string(format)) {
      auto r = run(png, opts_of(128, 32, fit_mode::fill, format));
      require_output(r, 128, 32, format);
      auto img = decode(r->bytes);
      BOOST_TEST(vips_image_get_format(img.get()) == VIPS_FORMAT_UCHAR);
      BOOST_TEST(vips_image_get_bands(img.get()) == 3);
      auto left = pixel(img.get(), 2, 16);
      auto right = pixel(img.get(), 125, 16);
      BOOST_TEST(left[0] < 20);
      BOOST_TEST(left[2] > 235);
      BOOST_TEST(right[0] > 235);
      BOOST_TEST(right[2] < 20);
    }
  }
}

BOOST_AUTO_TEST_CASE(animated_gif_uses_the_first_frame) {
  auto r = run(two_frame_gif(), opts_of(100, 100, fit_mode::fit));
  // one 40x20 frame, not the 40x40 strip of both
  require_output(r, 100, 50, output_format::jpeg);
  auto img = decode(r->bytes);
  auto p = pixel(img.get(), 50, 25);
  BOOST_TEST(p[0] > 200); // red: frame 1
  BOOST_TEST(p[2] < 60);
}

// -- errors
// ---------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(invalid_options_are_rejected) {
  auto jpeg = photo_jpeg(40, 30);
  limits lim;
  lim.max_dimension = 1000;
  struct bad_case {
    resize_options opts;
    const char* message;
  };
  std::vector<bad_case> cases{
      {opts_of(-1, 100),
       "width must be 1..1000 or 0 to derive it from the height, got -1"},
      {opts_of(1001, 100),
       "width must be 1..1000 or 0 to derive it from the height, got 1001"},
      {opts_of(100, -5),
       "height must be 1..1000 or 0 to derive it from the width, got -5"},
      {opts_of(100, 5000),
       "height must be 1..1000 or 0 to derive it from the width, got 5000"},
      {opts_of(0, 0), "width and height cannot both be 0"},
      {opts_of(10, 10, fit_mode::fill, output_format::jpeg, 0),
       "quality must be 1..100, got 0"},
      {opts_of(10, 10, fit_mode::fill, output_format::jpeg, 101),
       "quality must be 1..100, got 101"},
      {opts_of(10, 10, static_cast<fit_mode>(7)),
       "mode must be fill, fit or force"},
      {opts_of(10, 10, fit_mode::fill, static_cast<output_format>(9)),
       "format must be jpeg, png, webp or avif"},
  };
  for (const auto& c : cases) {
    auto r = run(jpeg, c.opts, lim);
    require_error(r, error_code::invalid_option);
    BOOST_TEST(r.error().message == c.message);
  }
  // limits are inclusive
  require_output(run(jpeg, opts_of(1000, 1, fit_mode::force), lim), 1000, 1,
                 output_format::jpeg);
  require_output(
      run(jpeg, opts_of(1, 1, fit_mode::fill, output_format::jpeg, 1), lim), 1,
      1, output_format::jpeg);
}

BOOST_AUTO_TEST_CASE(random_bytes_are_unsupported) {
  std::mt19937 rng{7};
  std::string junk(4096, '\0');
  for (auto& c : junk)
    c = static_cast<char>(rng() & 0xFF);
  junk[0] = 'x'; // make sure no magic matches by chance
  require_error(run(junk, opts_of(100, 100)), error_code::unsupported_format);
  require_error(run(std::string{}, opts_of(100, 100)),
                error_code::unsupported_format);
}

BOOST_AUTO_TEST_CASE(jpeg_header_then_garbage_is_corrupt) {
  std::mt19937 rng{11};
  std::string bytes = bytes_of({0xFF, 0xD8, 0xFF, 0xE0});
  for (int i = 0; i < 2000; ++i)
    bytes += static_cast<char>(rng() & 0xFF);
  require_error(run(bytes, opts_of(100, 100)), error_code::corrupt_image);
}

BOOST_AUTO_TEST_CASE(other_formats_with_garbage_are_corrupt) {
  std::string junk(500, '\x5A');
  for (std::string head :
       {std::string{"\x89PNG\r\n\x1A\n", 8}, std::string{"GIF89a"},
        std::string{"RIFF\x10\x00\x00\x00WEBP", 12}, std::string{"II*\0", 4}}) {
    BOOST_TEST_CONTEXT("head " << head.substr(0, 4)) {
      require_error(run(head + junk, opts_of(100, 100)),
                    error_code::corrupt_image);
    }
  }
}

BOOST_AUTO_TEST_CASE(truncated_images_fail_by_default) {
  // limits.truncated = "fail" (the default): an upload cut short is
  // corrupt_image, not a thumbnail with a grey half.
  auto jpeg = photo_jpeg(400, 300);
  require_error(run(jpeg.substr(0, jpeg.size() / 2), opts_of(100, 100)),
                error_code::corrupt_image);
  auto png = save(photo_like(300, 200).get(), ".png");
  require_error(run(png.substr(0, png.size() / 2), opts_of(100, 100)),
                error_code::corrupt_image);
  // cut inside the header: nothing to decode either way
  require_error(run(jpeg.substr(0, 100), opts_of(100, 100)),
                error_code::corrupt_image);
}

BOOST_AUTO_TEST_CASE(truncated_images_are_corrupt_wherever_they_stop) {
  // libvips decodes lazily: a cut inside the pixel data is only met while
  // the result is being written. Whatever the format and wherever the cut,
  // the failure is the input's (corrupt_image), never the encoder's.
  auto img = photo_like(512, 512);
  std::vector<std::pair<std::string, std::string>> inputs{
      {"png", save(img.get(), ".png")},
      {"interlaced png", save(img.get(), ".png[interlace]")},
      {"progressive jpeg", save(img.get(), ".jpg[Q=90,interlace]")},
      {"webp", save(img.get(), ".webp[Q=90]")},
      {"gif", save(img.get(), ".gif")}};
  // A small box fails inside thumbnail's shrink, one at or above the
  // input's size only while the result is written.
  std::vector<std::pair<std::string, resize_options>> boxes{
      {"100x100 fill", opts_of(100, 100)},
      {"500x500 fit", opts_of(500, 500, fit_mode::fit)},
      {"512x512 force png",
       opts_of(512, 512, fit_mode::force, output_format::png)},
      {"1000x1000 fill", opts_of(1000, 1000)}};
  for (auto& [name, bytes] : inputs)
    for (auto& [box, opts] : boxes)
      for (int percent : {30, 50, 75, 90, 99}) {
        BOOST_TEST_CONTEXT(name << " cut at " << percent << " %, " << box) {
          auto cut = bytes.substr(0, bytes.size() * percent / 100);
          auto r = run(cut, opts);
          require_error(r, error_code::corrupt_image);
          BOOST_TEST(r.error().message.find("encode") == std::string::npos,
                     r.error().message);
          // a reason, always ("cannot decode the image: unknown" was one)
          BOOST_TEST(r.error().message.find("unknown") == std::string::npos,
                     r.error().message);
        }
      }
}

/// `jpeg` with the width and height of its first frame header (SOF0/SOF2)
/// replaced.
std::string with_frame_size(std::string jpeg, int w, int h) {
  size_t pos = 2;
  while (pos + 9 <= jpeg.size()) {
    auto marker = static_cast<uint8_t>(jpeg[pos + 1]);
    size_t length = (static_cast<uint8_t>(jpeg[pos + 2]) << 8) |
                    static_cast<uint8_t>(jpeg[pos + 3]);
    if (marker == 0xC0 || marker == 0xC2) {
      jpeg[pos + 5] = static_cast<char>(h >> 8);
      jpeg[pos + 6] = static_cast<char>(h & 0xFF);
      jpeg[pos + 7] = static_cast<char>(w >> 8);
      jpeg[pos + 8] = static_cast<char>(w & 0xFF);
      return jpeg;
    }
    pos += 2 + length;
  }
  BOOST_FAIL("no frame header");
  return jpeg;
}

// A JPEG cut short that still ends with EOI: libjpeg meets the marker
// before the scan's last block, warns "premature end of data segment" and
// makes the rest up (grey). libvips' fail_on=truncated only sees bytes that
// run out, so this was served. As the EOI-less cut above, it must fail.
BOOST_AUTO_TEST_CASE(jpeg_cut_short_then_eoi_is_corrupt) {
  auto img = photo_like(512, 512);
  std::vector<std::pair<std::string, std::string>> inputs{
      {"baseline", save(img.get(), ".jpg[Q=90]")},
      {"baseline, restart markers",
       save(img.get(), ".jpg[Q=90,restart_interval=4]")},
      {"progressive (whole)", save(img.get(), ".jpg[Q=90,interlace]")}};
  std::vector<std::pair<std::string, resize_options>> boxes{
      {"100x100 fill", opts_of(100, 100)},
      {"500x500 fit", opts_of(500, 500, fit_mode::fit)},
      {"512x512 force png",
       opts_of(512, 512, fit_mode::force, output_format::png)},
      {"1000x1000 fill (crop, then enlarge)", opts_of(1000, 1000)}};
  for (auto& [name, bytes] : inputs)
    for (auto& [box, opts] : boxes)
      for (int percent : {30, 50, 90, 99}) {
        BOOST_TEST_CONTEXT(name << " cut at " << percent << " % + EOI, "
                                << box) {
          auto cut = bytes.substr(0, bytes.size() * percent / 100) +
                     std::string{"\xFF\xD9"};
          require_error(run(cut, opts), error_code::corrupt_image);
        }
      }
  // a 16x16 scan under a header that says 7000x7000: 803 bytes, 49 MP
  auto tiny = save(photo_like(16, 16).get(), ".jpg[Q=90]");
  auto liar = with_frame_size(tiny, 7000, 7000);
  BOOST_TEST(probe_of(liar).width == 7000);
  require_error(run(liar, opts_of(100, 100)), error_code::corrupt_image);
  // limits.truncated = "serve": served, as before
  limits serve;
  serve.fail_on_truncated = false;
  auto cut = inputs[0].second.substr(0, inputs[0].second.size() / 2) +
             std::string{"\xFF\xD9"};
  require_output(resize(cut.data(), cut.size(), opts_of(100, 100), serve), 100,
                 100, output_format::jpeg);
  require_output(resize(liar.data(), liar.size(), opts_of(100, 100), serve),
                 100, 100, output_format::jpeg);
}

// What libjpeg only warns about and is not data ending early (camera files
// have such) is still served: bytes between segments in the header, bytes
// between the last scan and EOI.
BOOST_AUTO_TEST_CASE(jpeg_warnings_that_lose_no_data_are_served) {
  auto img = photo_like(512, 512);
  for (const char* save_as : {".jpg[Q=90]", ".jpg[Q=90,interlace]"}) {
    BOOST_TEST_CONTEXT(save_as) {
      auto jpeg = save(img.get(), save_as);
      // garbage before the first DQT: "extraneous bytes before marker 0xdb"
      auto dqt = jpeg.find("\xFF\xDB");
      BOOST_REQUIRE(dqt != std::string::npos);
      auto early = jpeg.substr(0, dqt) + "junk" + jpeg.substr(dqt);
      // and before EOI (a progressive decode reads up to it)
      auto late =
          jpeg.substr(0, jpeg.size() - 2) + "junk" + std::string{"\xFF\xD9"};
      for (const auto& bytes : {early, late})
        for (const auto& opts :
             {opts_of(100, 100), opts_of(500, 500, fit_mode::fit)})
          require_output(run(bytes, opts), opts.width, opts.height,
                         output_format::jpeg);
    }
  }
}

BOOST_AUTO_TEST_CASE(truncated_images_are_served_when_configured) {
  // limits.truncated = "serve": libvips decodes what is there and fills the
  // rest, as browsers do.
  limits lim;
  lim.fail_on_truncated = false;
  auto jpeg = photo_jpeg(400, 300);
  auto cut = jpeg.substr(0, jpeg.size() / 2);
  require_output(resize(cut.data(), cut.size(), opts_of(100, 100), lim), 100,
                 100, output_format::jpeg);
  auto png = save(photo_like(300, 200).get(), ".png");
  auto half = png.substr(0, png.size() / 2);
  require_output(resize(half.data(), half.size(), opts_of(100, 100), lim), 100,
                 100, output_format::jpeg);
}

BOOST_AUTO_TEST_CASE(undecodable_pixels_fail_during_encode) {
  // The header is fine (probe succeeds) but the quantisation tables are
  // gone: libjpeg fails once the pixels are read, inside the save call.
  auto jpeg = without_quant_tables(photo_jpeg(300, 200));
  auto info = probe(jpeg.data(), jpeg.size(), limits{});
  BOOST_REQUIRE_MESSAGE(info.ok(), describe(info));
  BOOST_TEST(info->width == 300);
  auto r = run(jpeg, opts_of(100, 100));
  require_error(r, error_code::corrupt_image);
  BOOST_TEST_MESSAGE("no DQT: " << r.error().message);
}

BOOST_AUTO_TEST_CASE(parallel_resizes_on_worker_threads) {
  // one pipeline per worker thread, as the resize actors run them
  auto jpeg = photo_jpeg(640, 480);
  auto png = transparent_png(300, 200);
  std::atomic<int> failures{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < 4; ++t)
    workers.emplace_back([&, t] {
      for (int i = 0; i < 5; ++i) {
        const auto& bytes = (t + i) % 2 == 0 ? jpeg : png;
        auto r = resize(bytes.data(), bytes.size(), opts_of(64, 64), limits{});
        if (!r.ok() || r->width != 64 || r->height != 64)
          ++failures;
      }
      vips_thread_shutdown();
    });
  for (auto& worker : workers)
    worker.join();
  BOOST_TEST(failures.load() == 0);
}

// -- corpus
// ---------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(every_corpus_photo_resizes) {
  auto dir = corpus_dir();
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator{dir})
    if (entry.is_regular_file())
      files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  BOOST_TEST(!files.empty());
  for (const auto& path : files) {
    BOOST_TEST_CONTEXT("photo " << path.filename().string()) {
      auto bytes = read_file(path);
      auto info = probe(bytes.data(), bytes.size(), limits{});
      BOOST_REQUIRE_MESSAGE(info.ok(), describe(info));
      require_output(run(bytes, opts_of(100, 100)), 100, 100,
                     output_format::jpeg);
      // The same upload cut short: the input's fault, whatever the loader
      // (libpng, libwebp, libjpeg) and wherever its decode stops.
      for (int percent : {50, 90}) {
        BOOST_TEST_CONTEXT("cut at " << percent << " %") {
          auto cut = bytes.substr(0, bytes.size() * percent / 100);
          require_error(run(cut, opts_of(100, 100)), error_code::corrupt_image);
        }
      }
    }
  }
  BOOST_TEST_MESSAGE("corpus photos resized: " << files.size());
}

// probe reads JPEG headers with libjpeg directly; libvips' loader must agree
// on every corpus JPEG (size, progressive, EXIF orientation).
BOOST_AUTO_TEST_CASE(jpeg_headers_agree_with_libvips_on_the_corpus) {
  auto dir = corpus_dir();
  auto jpegs = jpegs_in(dir);
  BOOST_TEST(!jpegs.empty());
  for (const auto& [name, bytes] : jpegs) {
    BOOST_TEST_CONTEXT("photo " << name) {
      auto info = probe(bytes.data(), bytes.size(), limits{});
      BOOST_REQUIRE_MESSAGE(info.ok(), describe(info));
      image_ptr vips{
          vips_image_new_from_buffer(bytes.data(), bytes.size(), "", nullptr)};
      BOOST_REQUIRE(vips);
      int interlaced = 0;
      vips_image_get_int(vips.get(), "interlaced", &interlaced);
      BOOST_TEST(info->width == vips_image_get_width(vips.get()));
      BOOST_TEST(info->height == vips_image_get_height(vips.get()));
      BOOST_TEST(info->progressive == (interlaced != 0));
      BOOST_TEST(
          info->orientation_swap ==
          static_cast<bool>(vips_image_get_orientation_swap(vips.get())));
    }
  }
}

// A baseline JPEG whose first scan holds one of its three components: libjpeg
// keeps every coefficient for it as for a progressive one, and libvips calls
// it interlaced. (Found by the image_probe fuzzer; kept in its seed corpus.)
BOOST_AUTO_TEST_CASE(a_multi_scan_baseline_jpeg_counts_as_progressive) {
  const char* src = std::getenv("RESIZED_SOURCE_DIR");
  BOOST_REQUIRE(src != nullptr);
  auto bytes = read_file(std::filesystem::path{src} /
                         "fuzz/corpus/image_probe/multiscan_baseline.jpg");
  BOOST_REQUIRE(!bytes.empty());
  auto info = probe(bytes.data(), bytes.size(), limits{});
  BOOST_REQUIRE_MESSAGE(info.ok(), describe(info));
  BOOST_TEST(info->progressive);
  image_ptr vips{
      vips_image_new_from_buffer(bytes.data(), bytes.size(), "", nullptr)};
  BOOST_REQUIRE(vips);
  int interlaced = 0;
  vips_image_get_int(vips.get(), "interlaced", &interlaced);
  BOOST_TEST(interlaced == 1);
  // and a plain baseline one is not
  auto plain = photo_jpeg(64, 48);
  BOOST_TEST(!probe_of(plain).progressive);
}

// Of several EXIF blocks, libvips uses the first: so does the probe.
BOOST_AUTO_TEST_CASE(the_first_exif_block_counts) {
  auto app1 = [](unsigned char orientation) {
    std::string exif{"Exif\0\0II*\0\x08\0\0\0\x01\0"
                     "\x12\x01\x03\0\x01\0\0\0",
                     24};
    exif += static_cast<char>(orientation);
    exif += std::string(7, '\0');
    auto length = exif.size() + 2;
    return std::string{"\xff\xe1", 2} + static_cast<char>(length >> 8) +
           static_cast<char>(length & 0xff) + exif;
  };
  auto plain = photo_jpeg(64, 48);
  for (auto [first, second, swap] :
       {std::tuple{1, 6, false}, std::tuple{6, 1, true}}) {
    auto jpeg = plain.substr(0, 2) + app1(static_cast<unsigned char>(first)) +
                app1(static_cast<unsigned char>(second)) + plain.substr(2);
    BOOST_TEST_CONTEXT("orientations " << first << ", " << second) {
      BOOST_TEST(probe_of(jpeg).orientation_swap == swap);
      image_ptr vips{
          vips_image_new_from_buffer(jpeg.data(), jpeg.size(), "", nullptr)};
      BOOST_REQUIRE(vips);
      BOOST_TEST(static_cast<bool>(
                     vips_image_get_orientation_swap(vips.get())) == swap);
    }
  }
}

// JPEGs libjpeg-turbo 2.1 has no decoder for are a format not accepted,
// not damaged files: unsupported_format, with libjpeg's reason.
BOOST_AUTO_TEST_CASE(jpeg_kinds_libjpeg_does_not_decode_are_unsupported) {
  auto jpeg = photo_jpeg(64, 48);
  auto sof = jpeg.find("\xff\xc0");
  BOOST_REQUIRE(sof != std::string::npos);
  struct variant {
    const char* name;
    char marker;
    char precision;
    const char* says;
  };
  for (auto v : {variant{"lossless (SOF3)", '\xc3', 8, "SOF type 0xc3"},
                 variant{"hierarchical (SOF5)", '\xc5', 8, "SOF type 0xc5"},
                 variant{"12-bit extended (SOF1)", '\xc1', 12, "precision 12"},
                 variant{"16-bit", '\xc0', 16, "precision 16"}}) {
    BOOST_TEST_CONTEXT(v.name) {
      auto bad = jpeg;
      bad[sof + 1] = v.marker;
      bad[sof + 4] = v.precision;
      auto info = probe(bad.data(), bad.size(), limits{});
      BOOST_REQUIRE(!info.ok());
      BOOST_TEST((info.error().code == error_code::unsupported_format));
      BOOST_TEST(info.error().message.rfind("a JPEG of a kind libjpeg does "
                                            "not decode: ",
                                            0) == 0);
      BOOST_TEST(info.error().message.find(v.says) != std::string::npos,
                 info.error().message);
    }
  }
}

BOOST_AUTO_TEST_CASE(jpeg_header_errors_are_corrupt_image) {
  auto jpeg = photo_jpeg(64, 48);
  // cut inside the header, after the SOI only, and a bad marker after SOI
  for (auto cut : {size_t{3}, size_t{20}, size_t{100}}) {
    auto info = probe(jpeg.data(), cut, limits{});
    BOOST_TEST_CONTEXT("cut at " << cut) {
      BOOST_REQUIRE(!info.ok());
      BOOST_TEST(info.error().code == error_code::corrupt_image);
      BOOST_TEST(
          info.error().message.rfind("cannot read the jpeg header: ", 0) == 0);
    }
  }
  // a frame header (SOF0) that says 0 pixels wide
  auto sof = jpeg.find("\xff\xc0");
  BOOST_REQUIRE(sof != std::string::npos);
  std::string bad = jpeg;
  bad[sof + 7] = bad[sof + 8] = 0;
  auto info = probe(bad.data(), bad.size(), limits{});
  BOOST_REQUIRE(!info.ok());
  BOOST_TEST(info.error().code == error_code::corrupt_image);
}

// libvips reads an Orientation entry of any type through its text form;
// ours reads integers only, so the pipeline treats any other type as
// unknown (and asks the shrink-on-load question for both orientations).
BOOST_AUTO_TEST_CASE(jpeg_exif_orientation_is_certain_for_integer_tags) {
  // SOI, APP1 with `app1`, SOS
  auto jpeg_with = [](const std::vector<unsigned char>& app1) {
    std::string out = "\xFF\xD8\xFF\xE1";
    out += static_cast<char>((app1.size() + 2) >> 8);
    out += static_cast<char>((app1.size() + 2) & 0xFF);
    out.append(app1.begin(), app1.end());
    return out + std::string{"\xFF\xDA\x00\x08\x01\x01\x00\x00\x3F\x00", 10};
  };
  // "Exif\0\0", little-endian TIFF header, IFD0 with one entry: tag 0x0112,
  // `type`, count `count`, value bytes
  auto app1 = [](unsigned char type, unsigned char count,
                 std::array<unsigned char, 4> value) {
    return std::vector<unsigned char>{
        'E',      'x',      'i',      'f',      0,     0, 'I', 'I',
        42,       0,        8,        0,        0,     0, 1,   0,
        0x12,     0x01,     type,     0,        count, 0, 0,   0,
        value[0], value[1], value[2], value[3], 0,     0, 0,   0};
  };
  // -1: not certain
  auto orientation = [](const std::string& jpeg) {
    return jpeg_exif_orientation(jpeg.data(), jpeg.size()).value_or(-1);
  };
  BOOST_TEST(orientation(jpeg_with(app1(3, 1, {6, 0, 0, 0}))) == 6);    // SHORT
  BOOST_TEST(orientation(jpeg_with(app1(2, 2, {'6', 0, 0, 0}))) == -1); // "6"
  BOOST_TEST(orientation(std::string{"\xFF\xD8\xFF\xDA\x00\x08", 6}) == 0);
  BOOST_TEST(orientation(rotated_jpeg()) == 6); // written by libvips
  BOOST_TEST(orientation("garbage") == -1);
  // A stuffed FF 00 before the EXIF, which libjpeg skips as garbage: not
  // read as a segment whose "length" (here 38) would jump over the APP1 to
  // the scan and call the orientation certainly 0 (libvips reads 6).
  auto skipped = jpeg_with(app1(3, 1, {6, 0, 0, 0}));
  skipped.insert(2, std::string{"\xFF\x00\x00\x26", 4});
  BOOST_TEST(orientation(skipped) == -1);
}

// An Orientation entry written as text ("6") is one libvips applies and
// ours does not read: fill must then plan for either orientation. Planned
// as upright, a 2000x100 strip asked for 2000x100 was turned by libvips to
// 100x2000 and enlarged whole to 2000x40000 before the crop (6 s, 500 MB,
// inside the thumbnail where the deadline cannot stop it); cropped first
// it takes a fraction of a second.
/// `jpeg` with an APP1 whose IFD0 Orientation entry is the text "6".
std::string with_text_orientation(std::string jpeg) {
  // "Exif\0\0", little-endian TIFF header, IFD0: Orientation, ASCII, "6"
  const unsigned char exif[] = {
      'E',  'x',  'i', 'f', 0, 0, 'I', 'I', 42,  0, 8, 0, 0, 0, 1, 0,
      0x12, 0x01, 2,   0,   2, 0, 0,   0,   '6', 0, 0, 0, 0, 0, 0, 0};
  std::string app1 = "\xFF\xE1";
  app1 += static_cast<char>(0);
  app1 += static_cast<char>(sizeof exif + 2);
  app1.append(reinterpret_cast<const char*>(exif), sizeof exif);
  jpeg.insert(2, app1);
  return jpeg;
}

BOOST_AUTO_TEST_CASE(fill_plans_for_either_orientation_when_unsure) {
  auto strip = with_text_orientation(photo_jpeg(2000, 100));
  BOOST_REQUIRE(!jpeg_exif_orientation(strip.data(), strip.size()));
  limits lim;
  lim.max_processing_ms = 3000;
  auto r = run(strip, opts_of(2000, 100), lim);
  require_output(r, 2000, 100, output_format::jpeg);
}

// The AVIF cap on an image libvips may turn: fit into 200x400, a 200x100
// JPEG stays 200x100 (20,000 pixels), turned it becomes 200x400 (80,000).
// Checked as upright only, an Orientation stored as text or as 6/1 let
// results of 2.5 times limits.max-avif-pixels through to the AV1 encoder.
BOOST_AUTO_TEST_CASE(the_avif_cap_holds_for_either_orientation_when_unsure) {
  limits lim;
  lim.max_avif_pixels = 40000;
  auto opts = opts_of(200, 400, fit_mode::fit, output_format::avif);
  auto plain = photo_jpeg(200, 100);
  auto unsure = with_text_orientation(plain);
  auto plain_info = probe_of(plain);
  auto unsure_info = probe_of(unsure);
  BOOST_TEST(plain_info.orientation_certain);
  BOOST_TEST(!unsure_info.orientation_certain);
  BOOST_TEST(output_pixels(plain_info, opts, lim) == 20000u);
  BOOST_TEST(output_pixels(unsure_info, opts, lim) == 80000u);
  BOOST_TEST(!check_output(plain_info, opts, lim));
  auto refused = check_output(unsure_info, opts, lim);
  BOOST_REQUIRE(refused);
  BOOST_TEST((refused->code == error_code::invalid_option));
  BOOST_TEST(refused->message.find("would be 80000") != std::string::npos);
  if (can_write(output_format::avif)) {
    // and in resize itself, where the probe runs again
    auto r = run(unsure, opts, lim);
    BOOST_REQUIRE(!r.ok());
    BOOST_TEST((r.error().code == error_code::invalid_option));
  }
}

// A restart marker out of its RST0-RST7 cycle in a progressive JPEG's DC
// scan: libjpeg warns and makes up blocks (corrupt_image by default), and
// the DC-scans stream must not read past it as if the marker were right,
// or a small thumbnail succeeds where a large one fails.
BOOST_AUTO_TEST_CASE(restart_markers_must_come_in_turn) {
  auto jpeg = save(photo_like(256, 256).get(),
                   ".jpg[Q=90,interlace,restart-interval=2]");
  auto scan = jpeg.find("\xFF\xDA"); // the first scan: DC
  BOOST_REQUIRE(scan != std::string::npos);
  size_t seen = 0;
  for (size_t i = scan + 2; i + 1 < jpeg.size(); ++i)
    if (static_cast<unsigned char>(jpeg[i]) == 0xFF &&
        (static_cast<unsigned char>(jpeg[i + 1]) & 0xF8) == 0xD0 &&
        ++seen == 4) {
      jpeg[i + 1] = static_cast<char>(0xD0 | ((jpeg[i + 1] + 1) & 7));
      break;
    }
  BOOST_REQUIRE_EQUAL(seen, 4u);
  for (int side : {16, 200})
    BOOST_TEST_CONTEXT(side << "x" << side) {
      auto r = run(jpeg, opts_of(side, side));
      BOOST_TEST_REQUIRE(!r.ok());
      BOOST_TEST((r.error().code == error_code::corrupt_image));
    }
}

BOOST_AUTO_TEST_CASE(jpeg_scans_are_counted) {
  auto scans = [](const std::string& jpeg, size_t stop_after = 1000) {
    return count_jpeg_scans(jpeg.data(), jpeg.size(), stop_after);
  };
  BOOST_TEST(scans(photo_jpeg(64, 48)) == 1u);
  auto progressive = save(photo_like(64, 48).get(), ".jpg[interlace]");
  BOOST_TEST(scans(progressive) == 10u);   // libjpeg's script for colour
  BOOST_TEST(scans(progressive, 3) == 4u); // stops past the limit
  // restart markers and stuffed bytes are a scan's data
  BOOST_TEST(scans(save(photo_like(256, 256).get(),
                        ".jpg[interlace,restart-interval=1]")) == 10u);
  BOOST_TEST(scans("") == 0u);
  BOOST_TEST(scans(std::string{"\xFF\xD8\xFF\xDA\x00", 5}) == 0u);
  BOOST_TEST(scans(std::string{"\xFF\xD8\xFF\xDA\x00\x02", 6}) == 1u);
}

// libjpeg decodes every scan of a progressive JPEG over the whole image
// before the first row, out of the deadline's reach: a file of more than
// 500 scans is refused from its header, before anything is decoded.
BOOST_AUTO_TEST_CASE(a_progressive_jpeg_of_too_many_scans_is_refused) {
  auto jpeg = save(photo_like(64, 48).get(), ".jpg[interlace]");
  // the last scan (an AC refinement), repeated before EOI
  auto last = jpeg.rfind("\xFF\xDA");
  BOOST_REQUIRE(last != std::string::npos && jpeg.size() >= last + 2);
  auto scan = jpeg.substr(last, jpeg.size() - 2 - last);
  std::string many = jpeg.substr(0, jpeg.size() - 2);
  for (int i = 0; i < 495; ++i)
    many += scan;
  BOOST_REQUIRE_EQUAL(count_jpeg_scans(many.data(), many.size() + 0, 1000),
                      505u);
  many += "\xFF\xD9";
  auto info = probe(many.data(), many.size(), limits{});
  BOOST_TEST_REQUIRE(!info.ok());
  BOOST_TEST((info.error().code == error_code::image_too_large));
  BOOST_TEST(info.error().message.find("more than 500 scans") !=
                 std::string::npos,
             info.error().message);
  // 500 pass the header (what libjpeg makes of the repeats is its own)
  std::string fewer = jpeg.substr(0, jpeg.size() - 2);
  for (int i = 0; i < 490; ++i)
    fewer += scan;
  fewer += "\xFF\xD9";
  BOOST_TEST(probe(fewer.data(), fewer.size(), limits{}).ok());
}

BOOST_AUTO_TEST_CASE(exif_orientation_from_app1) {
  BOOST_TEST(exif_orientation(nullptr, 0) == 0);
  const unsigned char not_exif[] = "XMP\0 data";
  BOOST_TEST(exif_orientation(not_exif, sizeof not_exif) == 0);
  // "Exif\0\0", little-endian TIFF header, IFD0 with one entry:
  // tag 0x0112 (orientation), SHORT, count 1, value
  auto app1 = [](unsigned char value) {
    return std::vector<unsigned char>{
        'E',  'x',  'i', 'f', 0, 0, 'I', 'I', 42,    0, 8, 0, 0, 0, 1, 0,
        0x12, 0x01, 3,   0,   1, 0, 0,   0,   value, 0, 0, 0, 0, 0, 0, 0};
  };
  for (unsigned char v = 1; v <= 8; ++v) {
    auto data = app1(v);
    BOOST_TEST(exif_orientation(data.data(), data.size()) == v);
  }
  auto out_of_range = app1(9);
  BOOST_TEST(exif_orientation(out_of_range.data(), out_of_range.size()) == 0);
  auto cut = app1(6);
  BOOST_TEST(exif_orientation(cut.data(), 12) == 0);
}

// -- progressive JPEGs from their DC scans (imaging/jpeg_dc_scans)
// -------------------------------------------------

namespace {

/// One scan of a JPEG: where it starts (its SOS marker) and ends (the next
/// marker), its components and spectral band.
struct scan_info {
  size_t start = 0, end = 0;
  std::vector<int> components;
  int ss = 0, se = 0, ah = 0, al = 0;
};

/// The scans of a JPEG, read as T.81 lays them out (a test oracle, kept
/// apart from the code under test).
std::vector<scan_info> scans_of(const std::string& jpeg) {
  std::vector<scan_info> scans;
  auto byte = [&](size_t i) { return static_cast<uint8_t>(jpeg[i]); };
  size_t pos = 2;
  while (pos + 4 <= jpeg.size() && byte(pos) == 0xFF && byte(pos + 1) != 0xD9) {
    size_t length = (byte(pos + 2) << 8) | byte(pos + 3);
    if (byte(pos + 1) != 0xDA) {
      pos += 2 + length;
      continue;
    }
    scan_info scan;
    scan.start = pos;
    int count = byte(pos + 4);
    for (int i = 0; i < count; ++i)
      scan.components.push_back(byte(pos + 5 + 2 * i));
    scan.ss = byte(pos + 5 + 2 * count);
    scan.se = byte(pos + 6 + 2 * count);
    scan.ah = byte(pos + 7 + 2 * count) >> 4;
    scan.al = byte(pos + 7 + 2 * count) & 15;
    pos += 2 + length;
    while (pos + 1 < jpeg.size() &&
           !(byte(pos) == 0xFF && byte(pos + 1) != 0 &&
             (byte(pos + 1) < 0xD0 || byte(pos + 1) > 0xD7)))
      ++pos;
    scan.end = pos;
    scans.push_back(scan);
  }
  return scans;
}

/// `jpeg` without the scans `drop` says to leave out.
template <class Pred>
std::string without_scans(const std::string& jpeg, Pred drop) {
  std::string out;
  size_t from = 0;
  for (const auto& scan : scans_of(jpeg))
    if (drop(scan)) {
      out += jpeg.substr(from, scan.start - from);
      from = scan.end;
    }
  return out + jpeg.substr(from);
}

/// The same request with the DC-scans path on and off: the same bytes out
/// whichever runs; returns whether the DC scans were used.
bool same_thumbnail_either_way(const std::string& bytes,
                               const resize_options& opts) {
  BOOST_REQUIRE(!use_jpeg_dc_scans(false));
  auto whole = run(bytes, opts);
  BOOST_REQUIRE(use_jpeg_dc_scans(true));
  auto dc = run(bytes, opts);
  BOOST_REQUIRE_MESSAGE(whole.ok(), describe(whole));
  BOOST_REQUIRE_MESSAGE(dc.ok(), describe(dc));
  BOOST_TEST(!whole->jpeg_dc_scans);
  BOOST_TEST((dc->bytes == whole->bytes), "thumbnails differ");
  BOOST_TEST(dc->width == whole->width);
  BOOST_TEST(dc->height == whole->height);
  return dc->jpeg_dc_scans;
}

/// A progressive JPEG written with libjpeg itself, for the sampling factors
/// libvips' saver cannot ask for: luma `h` x `v`, chroma 1 x 1.
std::string libjpeg_progressive(int w, int h, int luma_h, int luma_v) {
  auto img = photo_like(w, h);
  image_ptr memory{vips_image_copy_memory(img.get())};
  BOOST_REQUIRE(memory);
  auto* pixels =
      static_cast<const unsigned char*>(vips_image_get_data(memory.get()));
  jpeg_compress_struct cinfo{};
  jpeg_error_mgr err{};
  cinfo.err = jpeg_std_error(&err);
  jpeg_create_compress(&cinfo);
  unsigned char* buf = nullptr;
  unsigned long len = 0;
  jpeg_mem_dest(&cinfo, &buf, &len);
  cinfo.image_width = static_cast<JDIMENSION>(w);
  cinfo.image_height = static_cast<JDIMENSION>(h);
  cinfo.input_components = 3;
  cinfo.in_color_space = JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, 85, TRUE);
  cinfo.comp_info[0].h_samp_factor = luma_h;
  cinfo.comp_info[0].v_samp_factor = luma_v;
  for (int c = 1; c < 3; ++c)
    cinfo.comp_info[c].h_samp_factor = cinfo.comp_info[c].v_samp_factor = 1;
  jpeg_simple_progression(&cinfo);
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    auto* row =
        const_cast<JSAMPROW>(pixels + size_t{cinfo.next_scanline} * w * 3);
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  std::string out{reinterpret_cast<char*>(buf), len};
  std::free(buf);
  return out;
}

image_ptr tagged(image_ptr img, int orientation) {
  VipsImage* copy = nullptr;
  BOOST_REQUIRE_EQUAL(vips_copy(img.get(), &copy, nullptr), 0);
  image_ptr out{copy};
  vips_image_set_int(out.get(), VIPS_META_ORIENTATION, orientation);
  return out;
}

image_ptr converted(image_ptr img, VipsInterpretation space) {
  VipsImage* out = nullptr;
  BOOST_REQUIRE_EQUAL(vips_colourspace(img.get(), &out, space, nullptr), 0);
  return image_ptr{out};
}

} // namespace

BOOST_AUTO_TEST_CASE(dc_scans_make_the_same_thumbnail_as_the_whole_jpeg) {
  struct variant {
    const char* name;
    std::function<image_ptr()> image;
    const char* save_as;
    resize_options opts;
    bool dc; // libvips loads it at 1/8 scale: the DC scans are used
  };
  auto photo = [](int w, int h) { return [=] { return photo_like(w, h); }; };
  const variant variants[] = {
      {"4:4:4", photo(1700, 1650), ".jpg[Q=90,interlace]", opts_of(100, 100),
       true},
      {"4:2:0: chroma AC kept", photo(1700, 1650),
       ".jpg[Q=75,interlace,subsample_mode=on]", opts_of(100, 100), true},
      {"restart markers", photo(1700, 1650),
       ".jpg[Q=85,interlace,restart_interval=3]", opts_of(100, 100), true},
      {"restart markers, 4:4:4: the baseline form", photo(1700, 1650),
       ".jpg[Q=85,interlace,subsample_mode=off,restart_interval=5]",
       opts_of(100, 100), true},
      {"odd size, partial blocks", photo(1621, 1609),
       ".jpg[Q=80,interlace,subsample_mode=on]", opts_of(100, 100), true},
      {"shrink just under 16: loaded at 1/4", photo(1700, 1599),
       ".jpg[Q=90,interlace]", opts_of(100, 100), false},
      {"grey",
       [] {
         return converted(photo_like(1700, 1650), VIPS_INTERPRETATION_B_W);
       },
       ".jpg[Q=90,interlace]", opts_of(100, 100), true},
      {"CMYK",
       [] {
         return converted(photo_like(1700, 1650), VIPS_INTERPRETATION_CMYK);
       },
       ".jpg[Q=90,interlace]", opts_of(100, 100), true},
      {"EXIF orientation 6", [] { return tagged(photo_like(1800, 1650), 6); },
       ".jpg[Q=90,interlace,strip=false]", opts_of(100, 100), true},
      {"EXIF orientation 6, a box too wide once turned",
       [] { return tagged(photo_like(3300, 1700), 6); },
       ".jpg[Q=90,interlace,strip=false]", opts_of(200, 100), false},
      {"a wide box on an upright photo", photo(3300, 1700),
       ".jpg[Q=90,interlace]", opts_of(200, 100), true},
      {"EXIF orientation 6, a wide box that fits once turned",
       [] { return tagged(photo_like(1700, 3300), 6); },
       ".jpg[Q=90,interlace,strip=false]", opts_of(200, 100), true},
      {"fit", photo(3300, 1700), ".jpg[Q=90,interlace]",
       opts_of(200, 100, fit_mode::fit), true},
      {"force", photo(1700, 1650), ".jpg[Q=90,interlace]",
       opts_of(100, 100, fit_mode::force), true},
      {"width only", photo(1700, 1650), ".jpg[Q=90,interlace]", opts_of(100, 0),
       true},
      {"PNG out", photo(1700, 1650), ".jpg[Q=90,interlace]",
       opts_of(100, 100, fit_mode::fill, output_format::png), true},
  };
  for (const auto& v : variants) {
    BOOST_TEST_CONTEXT("variant " << v.name) {
      auto img = v.image();
      auto bytes = save(img.get(), v.save_as);
      BOOST_REQUIRE(probe_of(bytes).progressive);
      BOOST_TEST(same_thumbnail_either_way(bytes, v.opts) == v.dc);
    }
  }
  // Samplings libvips does not write, at odd sizes so that MCUs have
  // padding blocks: 4:2:2, 4:4:0 and 4:1:1 (chroma 1x1 at 1/8), luma 4x2
  // (chroma 2x2 at 1/8, as in 4:2:0: its AC coefficients kept). All become
  // the baseline form.
  struct sampling {
    int h, v;
    bool baseline;
  };
  for (auto s : {sampling{2, 1, true}, sampling{1, 2, true},
                 sampling{4, 1, true}, sampling{4, 2, true}}) {
    BOOST_TEST_CONTEXT("luma sampling " << s.h << "x" << s.v) {
      auto bytes = libjpeg_progressive(1651, 1637, s.h, s.v);
      BOOST_REQUIRE(probe_of(bytes).progressive);
      BOOST_TEST(same_thumbnail_either_way(bytes, opts_of(100, 100)));
      auto dc = jpeg_dc_scans(bytes.data(), bytes.size());
      BOOST_REQUIRE(dc.has_value());
      BOOST_TEST((scans_of(*dc).size() == 1u) == s.baseline);
    }
  }
}

BOOST_AUTO_TEST_CASE(dc_scans_make_the_same_thumbnails_on_the_corpus) {
  auto dir = corpus_dir();
  int used = 0;
  for (const auto& [name, bytes] : jpegs_in(dir)) {
    if (!probe_of(bytes).progressive)
      continue;
    BOOST_TEST_CONTEXT("photo " << name) {
      for (const auto& opts : {opts_of(100, 100), opts_of(160, 90),
                               opts_of(120, 120, fit_mode::fit)})
        used += same_thumbnail_either_way(bytes, opts) ? 1 : 0;
    }
  }
  // the four large progressive photos, for every request they are 16 x or
  // more (12 of 12: 2560x1600 is 16 x 100 and 16 x 90 on its short side)
  BOOST_TEST(used >= 12);
}

// The DC values (and, for 4:2:0 chroma, which libjpeg decodes 2x2 at 1/8,
// every coefficient) travel in a baseline JPEG, which libjpeg decodes a row
// at a time.
BOOST_AUTO_TEST_CASE(dc_scans_become_one_baseline_scan) {
  auto img = photo_like(1700, 1650);
  for (const char* save_as :
       {".jpg[Q=90,interlace]",
        ".jpg[Q=85,interlace,subsample_mode=off,restart_interval=3]",
        ".jpg[Q=75,interlace,subsample_mode=on]",
        ".jpg[Q=75,interlace,subsample_mode=on,restart_interval=2]"}) {
    BOOST_TEST_CONTEXT(save_as) {
      auto jpeg = save(img.get(), save_as);
      auto dc = jpeg_dc_scans(jpeg.data(), jpeg.size());
      BOOST_REQUIRE(dc.has_value());
      BOOST_TEST(dc->size() < jpeg.size() / 2);
      BOOST_TEST(dc->find("\xFF\xC0") != std::string::npos); // SOF0
      BOOST_TEST(dc->find("\xFF\xC2") == std::string::npos);
      BOOST_TEST(dc->substr(dc->size() - 2) == "\xFF\xD9");
      auto scans = scans_of(*dc);
      BOOST_REQUIRE(scans.size() == 1u);
      BOOST_TEST(scans[0].components.size() == 3u);
      BOOST_TEST(scans[0].ss == 0);
      BOOST_TEST(scans[0].se == 63);
      auto info = probe_of(*dc);
      BOOST_TEST(!info.progressive);
      BOOST_TEST(info.width == 1700);
      BOOST_TEST(info.height == 1650);
    }
  }
}

// 4:2:0 whose chroma AC coefficients never get their last bit: libjpeg
// smooths what it lacks, which a baseline stream cannot say, so the stream
// stays progressive: the DC scans, the chroma AC scans as they are, and a
// zero AC scan for luma.
BOOST_AUTO_TEST_CASE(dc_scans_stay_progressive_when_chroma_is_not_refined) {
  auto img = photo_like(1700, 1650);
  auto whole = save(img.get(), ".jpg[Q=75,interlace,subsample_mode=on]");
  auto jpeg = without_scans(whole, [](const scan_info& s) {
    return s.ss > 0 && s.components[0] != 1 && s.ah != 0;
  });
  BOOST_REQUIRE(jpeg.size() < whole.size());
  BOOST_TEST(same_thumbnail_either_way(jpeg, opts_of(100, 100)));
  auto dc = jpeg_dc_scans(jpeg.data(), jpeg.size());
  BOOST_REQUIRE(dc.has_value());
  BOOST_TEST(dc->size() < jpeg.size() / 2);
  BOOST_TEST(dc->find("\xFF\xC2") != std::string::npos); // SOF2
  BOOST_TEST(dc->substr(dc->size() - 2) == "\xFF\xD9");
  auto scans = scans_of(*dc);
  int zero_ac = 0, kept_ac = 0;
  for (const auto& scan : scans) {
    if (scan.ss == 0)
      continue;
    BOOST_REQUIRE(scan.components.size() == 1u);
    if (scan.ss == 1 && scan.se == 63 && scan.ah == 0 && scan.al == 0 &&
        scan.end - scan.start < 64) {
      ++zero_ac; // all 40,000-odd luma blocks in two end-of-band runs
      BOOST_TEST(scan.components[0] == 1);
    } else {
      ++kept_ac;
      BOOST_TEST(scan.components[0] != 1); // luma AC is never read
    }
  }
  BOOST_TEST(zero_ac == 1);
  BOOST_TEST(kept_ac > 0);
  auto dc_scans = [](const std::vector<scan_info>& all) {
    return std::count_if(all.begin(), all.end(),
                         [](const scan_info& s) { return s.ss == 0; });
  };
  BOOST_TEST(dc_scans(scans) == dc_scans(scans_of(jpeg)));
}

BOOST_AUTO_TEST_CASE(dc_scans_leave_out_xmp_and_what_follows_eoi) {
  auto img = photo_like(1700, 1650);
  const std::string xmp = "<x:xmpmeta xmlns:x=\"adobe:ns:meta/\"/>";
  vips_image_set_blob_copy(img.get(), VIPS_META_XMP_NAME, xmp.data(),
                           xmp.size());
  auto jpeg = save(img.get(), ".jpg[Q=90,interlace,strip=false]");
  BOOST_REQUIRE(jpeg.find("http://ns.adobe.com/") != std::string::npos);
  auto dc = jpeg_dc_scans(jpeg.data(), jpeg.size());
  BOOST_REQUIRE(dc.has_value());
  BOOST_TEST(dc->find("http://ns.adobe.com/") == std::string::npos);
  auto trailed = jpeg + "trailing bytes, as some cameras append";
  BOOST_TEST((jpeg_dc_scans(trailed.data(), trailed.size()) == dc));
  BOOST_TEST(same_thumbnail_either_way(jpeg, opts_of(100, 100)));
}

BOOST_AUTO_TEST_CASE(dc_scans_refuse_what_they_cannot_reproduce) {
  auto img = photo_like(1700, 1650);
  auto progressive = save(img.get(), ".jpg[Q=90,interlace]");
  auto none = [](const std::string& bytes) {
    return !jpeg_dc_scans(bytes.data(), bytes.size()).has_value();
  };
  BOOST_TEST(!none(progressive));
  BOOST_TEST(none(save(img.get(), ".jpg[Q=90]"))); // baseline
  BOOST_TEST(none(""));
  BOOST_TEST(none("\xFF\xD8\xFF\xD9"));
  for (size_t cut : {progressive.size() / 10, progressive.size() / 2,
                     progressive.size() - 2})
    BOOST_TEST_CONTEXT("cut at " << cut) {
      BOOST_TEST(none(progressive.substr(0, cut))); // no EOI
    }
  // every AC scan gone: nothing left to drop
  BOOST_TEST(none(
      without_scans(progressive, [](const scan_info& s) { return s.ss > 0; })));
  // luma AC never sent at all: libjpeg estimates the missing coefficients
  // from the DC values and smooths those too (change_dc in jdcoefct.c),
  // which a stream that says "all zero" cannot reproduce
  auto gap = without_scans(progressive, [](const scan_info& s) {
    return s.ss > 0 && s.components[0] == 1;
  });
  BOOST_REQUIRE(gap.size() < progressive.size());
  BOOST_TEST(none(gap));
  BOOST_TEST(same_thumbnail_either_way(gap, opts_of(100, 100)) == false);
}

// A progressive JPEG decoded from its DC scans (cut down by
// jpeg_dc_scans), cut short inside a scan that stream keeps (DC, 4:2:0
// chroma AC) and ended with EOI: corrupt_image, as the whole stream is.
BOOST_AUTO_TEST_CASE(dc_scans_of_a_jpeg_cut_short_then_eoi_are_corrupt) {
  auto img = photo_like(1700, 1650);
  auto jpeg = save(img.get(), ".jpg[Q=75,interlace,subsample_mode=on]");
  BOOST_REQUIRE(same_thumbnail_either_way(jpeg, opts_of(100, 100)));
  int cuts = 0;
  for (const auto& scan : scans_of(jpeg)) {
    bool kept = scan.ss == 0 || scan.components[0] != 1; // not luma AC
    if (!kept)
      continue;
    BOOST_TEST_CONTEXT("cut in the scan at " << scan.start << " (Ss " << scan.ss
                                             << ", Ah " << scan.ah << ")") {
      size_t middle = scan.start + (scan.end - scan.start) / 2;
      auto cut = jpeg.substr(0, middle) + std::string{"\xFF\xD9"};
      for (bool dc : {true, false}) {
        BOOST_TEST_CONTEXT((dc ? "DC scans on" : "DC scans off")) {
          use_jpeg_dc_scans(dc);
          require_error(run(cut, opts_of(100, 100)), error_code::corrupt_image);
        }
      }
      use_jpeg_dc_scans(true);
      ++cuts;
    }
  }
  BOOST_TEST(cuts >= 3);
}

BOOST_AUTO_TEST_SUITE_END()
