// make_variants — "photos like them" (issue 6's acceptance: the targets must
// hold on the shared corpus and on photos like it). For every photo in --dir
// it writes one new photo to --out: a different crop (aspect and pixel count
// change), every fourth one turned 90 degrees, every fifth one scaled up by a
// quarter (while it stays under 20 MP), and re-encoded with other settings
// than the original's: JPEG at quality 85-97, progressive and baseline
// alternating, 4:2:0 and 4:4:4 chroma; PNG with and without Adam7
// interlacing; WebP at quality 80-95. Deterministic: the same corpus gives
// the same files. Nothing here is part of the service.
//
//   make_variants --dir=../shared/corpus/photos --out=build-bench/variants
//
// Prints one line per file written, then "variants N".
#include <cerrno>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <sys/stat.h>

#include <vips/vips.h>

#include "bench_util.hpp"

namespace {

struct image_ref { // owns one VipsImage reference
  VipsImage* p = nullptr;
  image_ref() = default;
  explicit image_ref(VipsImage* i) : p(i) {}
  image_ref(const image_ref&) = delete;
  image_ref& operator=(const image_ref&) = delete;
  ~image_ref() {
    if (p)
      g_object_unref(p);
  }
  void reset(VipsImage* i) {
    if (p)
      g_object_unref(p);
    p = i;
  }
};

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error(what + ": " + vips_error_buffer());
}

std::string extension(const std::string& name) {
  auto dot = name.rfind('.');
  return dot == std::string::npos ? "" : name.substr(dot + 1);
}

// The variant of photo number i (in name order) of `in`, written to `path`.
void make_variant(const bench::photo& p, size_t i, const std::string& path) {
  image_ref img{
      vips_image_new_from_buffer(p.bytes.data(), p.bytes.size(), "", nullptr)};
  if (!img.p)
    fail("load " + p.name);
  // A centred crop: 80-90 % of the width, 75-90 % of the height.
  int w = img.p->Xsize * (90 - 5 * static_cast<int>(i % 3)) / 100;
  int h = img.p->Ysize * (75 + 5 * static_cast<int>(i % 4)) / 100;
  VipsImage* out = nullptr;
  if (vips_crop(img.p, &out, (img.p->Xsize - w) / 2, (img.p->Ysize - h) / 2, w,
                h, nullptr))
    fail("crop " + p.name);
  img.reset(out);
  if (i % 4 == 3) {
    if (vips_rot(img.p, &out, VIPS_ANGLE_D90, nullptr))
      fail("rotate " + p.name);
    img.reset(out);
  }
  if (i % 5 == 4 && 1.5625 * w * h < 20e6) {
    if (vips_resize(img.p, &out, 1.25, nullptr))
      fail("scale " + p.name);
    img.reset(out);
  }
  auto ext = extension(p.name);
  int rc;
  if (ext == "png")
    rc = vips_pngsave(img.p, path.c_str(), "interlace", i % 2 == 0,
                      "compression", 6, nullptr);
  else if (ext == "webp")
    rc = vips_webpsave(img.p, path.c_str(), "Q",
                       80 + static_cast<int>(i * 5 % 16), nullptr);
  else
    rc = vips_jpegsave(
        img.p, path.c_str(), "Q", 85 + static_cast<int>(i * 7 % 13),
        "interlace", i % 2 == 0, "subsample_mode",
        i % 3 == 0 ? VIPS_FOREIGN_SUBSAMPLE_OFF : VIPS_FOREIGN_SUBSAMPLE_ON,
        nullptr);
  if (rc)
    fail("save " + path);
}

} // namespace

int main(int argc, char** argv) try {
  bench::args a(argc, argv);
  auto dir = a.str("dir", "../shared/corpus/photos");
  auto out = a.str("out", "build-bench/variants");
  if (VIPS_INIT(argv[0]))
    fail("libvips");
  vips_cache_set_max(0);
  if (mkdir(out.c_str(), 0755) != 0 && errno != EEXIST)
    throw std::runtime_error("cannot create " + out);
  auto corpus = bench::load_corpus(dir);
  size_t i = 0;
  for (const auto& p : corpus) {
    auto dot = p.name.rfind('.');
    auto name = p.name.substr(0, dot) + "~like." + extension(p.name);
    auto path = out + "/" + name;
    make_variant(p, i++, path);
    std::printf("%s\n", name.c_str());
  }
  std::printf("variants %zu\n", corpus.size());
  vips_shutdown();
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "make_variants: %s\n", e.what());
  return 1;
}
