#include "imaging/icc_profile.hpp"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <list>
#include <mutex>
#include <string>
#include <vector>

#include <lcms2.h>

namespace resized::imaging {

namespace {

struct profile_close {
  void operator()(void* p) const noexcept { cmsCloseProfile(p); }
};
using profile_ptr = std::unique_ptr<void, profile_close>;

/// libvips' own sRGB profile, the one `vips_icc_transform(..., "srgb")`
/// converts to, opened for lcms (a new handle per call: lcms profile
/// handles are not meant to be shared between threads).
profile_ptr libvips_srgb() {
  VipsBlob* blob = nullptr;
  if (vips_profile_load("srgb", &blob, nullptr) != 0 || blob == nullptr) {
    vips_error_clear();
    return nullptr;
  }
  size_t length = 0;
  const void* data = vips_blob_get(blob, &length);
  profile_ptr p{
      cmsOpenProfileFromMem(data, static_cast<cmsUInt32Number>(length))};
  vips_area_unref(VIPS_AREA(blob));
  return p;
}

/// The transform from `profile` to libvips' sRGB for 3 or 4 bands; null if
/// lcms cannot build it. (libvips routes lcms' complaints into its error
/// buffer; a refusal here is an answer, not an error, so they are cleared.)
std::shared_ptr<void> make_transform(std::string_view profile, int bands) {
  auto refused = [] {
    vips_error_clear();
    return nullptr;
  };
  profile_ptr in{cmsOpenProfileFromMem(
      profile.data(), static_cast<cmsUInt32Number>(profile.size()))};
  if (!in || cmsGetColorSpace(in.get()) != cmsSigRgbData)
    return refused();
  auto out = libvips_srgb();
  if (!out)
    return refused();
  auto format = bands == 4 ? TYPE_RGBA_8 : TYPE_RGB_8;
  auto flags = cmsFLAGS_NOCACHE | (bands == 4 ? cmsFLAGS_COPY_ALPHA : 0);
  void* t = cmsCreateTransform(in.get(), format, out.get(), format,
                               INTENT_RELATIVE_COLORIMETRIC, flags);
  if (t == nullptr)
    return refused();
  return std::shared_ptr<void>{t, [](void* p) { cmsDeleteTransform(p); }};
}

/// Whether the RGB transform `t` moves none of 17x17x17 colours (0 to 255
/// in steps of 16, and 255) and 256 greys by more than one level.
bool changes_nothing(void* t) {
  std::vector<uint8_t> colours;
  colours.reserve((17 * 17 * 17 + 256) * 3);
  auto level = [](int i) {
    return static_cast<uint8_t>(std::min(i * 16, 255));
  };
  for (int r = 0; r < 17; ++r)
    for (int g = 0; g < 17; ++g)
      for (int b = 0; b < 17; ++b)
        colours.insert(colours.end(), {level(r), level(g), level(b)});
  for (int v = 0; v < 256; ++v)
    colours.insert(colours.end(), 3, static_cast<uint8_t>(v));
  std::vector<uint8_t> converted(colours.size());
  cmsDoTransform(t, colours.data(), converted.data(),
                 static_cast<cmsUInt32Number>(colours.size() / 3));
  for (size_t i = 0; i < colours.size(); ++i)
    if (std::abs(int{colours[i]} - int{converted[i]}) > 1)
      return false;
  return true;
}

constexpr size_t cache_entries = 16;
constexpr size_t cache_max_profile_bytes = 64 * 1024;

/// One profile: dropped, or its transforms (the RGBA one made when first
/// asked for), or unusable by lcms.
struct cache_entry {
  std::string profile;
  bool srgb = false;
  std::shared_ptr<void> rgb;  // null: lcms could not build it
  std::shared_ptr<void> rgba; // made on first use
  bool rgba_tried = false;
};

std::mutex cache_mutex;
std::list<cache_entry> cache; // most recently used first
std::atomic<size_t> worked_out{0};

profile_conversion answer(const cache_entry& e, int bands) {
  profile_conversion c;
  if (e.srgb) {
    c.what = profile_conversion::kind::drop;
    return c;
  }
  auto& t = bands == 4 ? e.rgba : e.rgb;
  if (t) {
    c.what = profile_conversion::kind::convert;
    c.transform = t;
  }
  return c;
}

/// The entry for `profile`, moved to the front; nullptr if none.
cache_entry* find_locked(std::string_view profile) {
  for (auto it = cache.begin(); it != cache.end(); ++it)
    if (it->profile == profile) {
      cache.splice(cache.begin(), cache, it);
      return &cache.front();
    }
  return nullptr;
}

} // namespace

profile_conversion conversion_for(std::string_view profile, int bands) {
  if ((bands != 3 && bands != 4) || profile.size() < 128 ||
      profile.size() > cache_max_profile_bytes)
    return {};
  {
    std::lock_guard<std::mutex> lock(cache_mutex);
    if (auto* e = find_locked(profile);
        e != nullptr && (bands == 3 || e->srgb || !e->rgb || e->rgba_tried))
      return answer(*e, bands);
  }
  // Worked out without the lock (a few ms): two threads meeting a new
  // profile at once both work it out, and the first answer is kept.
  cache_entry fresh;
  fresh.profile = std::string{profile};
  fresh.rgb = make_transform(profile, 3);
  fresh.srgb = fresh.rgb && changes_nothing(fresh.rgb.get());
  if (bands == 4 && !fresh.srgb && fresh.rgb)
    fresh.rgba = make_transform(profile, 4);
  fresh.rgba_tried = bands == 4;
  ++worked_out;
  std::lock_guard<std::mutex> lock(cache_mutex);
  auto* e = find_locked(profile);
  if (e == nullptr) {
    cache.push_front(std::move(fresh));
    if (cache.size() > cache_entries)
      cache.pop_back();
    e = &cache.front();
  } else if (bands == 4 && !e->rgba_tried) {
    e->rgba = fresh.rgba;
    e->rgba_tried = true;
  }
  return answer(*e, bands);
}

void forget_conversions() {
  std::lock_guard<std::mutex> lock(cache_mutex);
  cache.clear();
}

size_t conversions_worked_out() {
  return worked_out.load();
}

// -- the lazy stage
// ------------------------------------------------------------

namespace {

/// Each output region: the same region of the input, transformed a row at
/// a time.
int convert_region(VipsRegion* out, void* seq, void* a, void* b,
                   gboolean* stop) {
  (void)a;
  (void)stop;
  auto* in = static_cast<VipsRegion*>(seq);
  auto* transform = static_cast<std::shared_ptr<void>*>(b)->get();
  const VipsRect* r = &out->valid;
  if (vips_region_prepare(in, r) != 0)
    return -1;
  for (int y = 0; y < r->height; ++y)
    cmsDoTransform(transform, VIPS_REGION_ADDR(in, r->left, r->top + y),
                   VIPS_REGION_ADDR(out, r->left, r->top + y),
                   static_cast<cmsUInt32Number>(r->width));
  return 0;
}

void release_transform(VipsImage*, void* holder) {
  delete static_cast<std::shared_ptr<void>*>(holder);
}

void release_input(VipsImage*, void* in) {
  g_object_unref(in);
}

} // namespace

VipsImage* apply_conversion(VipsImage* in, const profile_conversion& c) {
  int bands = vips_image_get_bands(in);
  if (c.what != profile_conversion::kind::convert || !c.transform ||
      vips_image_get_format(in) != VIPS_FORMAT_UCHAR ||
      (bands != 3 && bands != 4)) {
    vips_error("resized", "%s", "no conversion for this image");
    return nullptr;
  }
  VipsImage* out = vips_image_new();
  if (vips_image_pipelinev(out, VIPS_DEMAND_STYLE_THINSTRIP, in, nullptr) !=
      0) {
    g_object_unref(out);
    return nullptr;
  }
  // `in` and the transform live as long as `out` does
  g_object_ref(in);
  g_signal_connect(out, "close", G_CALLBACK(release_input), in);
  auto* holder = new std::shared_ptr<void>{c.transform};
  g_signal_connect(out, "close", G_CALLBACK(release_transform), holder);
  if (vips_image_generate(out, vips_start_one, convert_region, vips_stop_one,
                          in, holder) != 0) {
    g_object_unref(out);
    return nullptr;
  }
  return out;
}

} // namespace resized::imaging
