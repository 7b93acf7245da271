#include "http/assets.hpp"

#include <vector>

#include "common/etag.hpp"

namespace resized::http {

namespace {

std::string_view content_type_of(std::string_view name) {
  auto ends = [&](std::string_view ext) {
    return name.size() >= ext.size() &&
           name.substr(name.size() - ext.size()) == ext;
  };
  if (ends(".html"))
    return "text/html; charset=utf-8";
  if (ends(".css"))
    return "text/css; charset=utf-8";
  if (ends(".js") || ends(".mjs"))
    return "text/javascript; charset=utf-8";
  if (ends(".json"))
    return "application/json";
  if (ends(".svg"))
    return "image/svg+xml";
  if (ends(".png"))
    return "image/png";
  if (ends(".ico"))
    return "image/x-icon";
  return "application/octet-stream";
}

const std::vector<asset>& all_assets() {
  static const std::vector<asset> table = [] {
    std::vector<asset> out;
    for (std::size_t i = 0; i < embedded::file_count; ++i) {
      const auto& f = embedded::files[i];
      std::string_view bytes{reinterpret_cast<const char*>(f.data), f.size};
      out.push_back(
          asset{f.name, bytes, content_type_of(f.name), strong_etag(bytes)});
    }
    return out;
  }();
  return table;
}

} // namespace

const asset* find_asset(std::string_view name) {
  for (const auto& a : all_assets())
    if (a.name == name)
      return &a;
  return nullptr;
}

} // namespace resized::http
