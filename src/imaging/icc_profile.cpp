#include "imaging/icc_profile.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <lcms2.h>
#include <vips/vips.h>

namespace resized::imaging {

namespace {

struct profile_close {
  void operator()(void* p) const noexcept { cmsCloseProfile(p); }
};
using profile_ptr = std::unique_ptr<void, profile_close>;

struct transform_delete {
  void operator()(void* t) const noexcept { cmsDeleteTransform(t); }
};
using transform_ptr = std::unique_ptr<void, transform_delete>;

/// libvips' own sRGB profile, the one `vips_icc_transform(..., "srgb")`
/// converts to, opened for lcms (a new handle per call: lcms handles are
/// not meant to be shared between threads building transforms).
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

constexpr size_t cache_entries = 32;
constexpr size_t cache_max_profile_bytes = 64 * 1024;

struct cache_entry {
  std::string profile;
  bool srgb;
};

std::mutex cache_mutex;
std::list<cache_entry> cache; // most recently used first

} // namespace

bool converts_to_srgb_unchanged(std::string_view profile) {
  if (profile.size() < 128 || profile.size() > UINT32_MAX)
    return false;
  profile_ptr in{cmsOpenProfileFromMem(
      profile.data(), static_cast<cmsUInt32Number>(profile.size()))};
  if (!in || cmsGetColorSpace(in.get()) != cmsSigRgbData)
    return false;
  auto out = libvips_srgb();
  if (!out)
    return false;
  transform_ptr t{cmsCreateTransform(in.get(), TYPE_RGB_8, out.get(),
                                     TYPE_RGB_8, INTENT_RELATIVE_COLORIMETRIC,
                                     cmsFLAGS_NOCACHE)};
  if (!t)
    return false;

  // 17 levels per channel, 0 to 255 in steps of 16 and 255, then every grey
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
  cmsDoTransform(t.get(), colours.data(), converted.data(),
                 static_cast<cmsUInt32Number>(colours.size() / 3));
  for (size_t i = 0; i < colours.size(); ++i)
    if (std::abs(int{colours[i]} - int{converted[i]}) > 1)
      return false;
  return true;
}

bool srgb_profile(std::string_view profile) {
  if (profile.size() > cache_max_profile_bytes)
    return false;
  {
    std::lock_guard<std::mutex> lock(cache_mutex);
    for (auto it = cache.begin(); it != cache.end(); ++it)
      if (it->profile == profile) {
        cache.splice(cache.begin(), cache, it);
        return it->srgb;
      }
  }
  // Worked out without the lock: two threads meeting a new profile at once
  // both work it out, and one answer is kept.
  bool srgb = converts_to_srgb_unchanged(profile);
  std::lock_guard<std::mutex> lock(cache_mutex);
  auto known =
      std::find_if(cache.begin(), cache.end(),
                   [&](const cache_entry& e) { return e.profile == profile; });
  if (known == cache.end()) {
    cache.push_front({std::string{profile}, srgb});
    if (cache.size() > cache_entries)
      cache.pop_back();
  }
  return srgb;
}

} // namespace resized::imaging
