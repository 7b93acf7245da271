// Files of src/http/static/ (the web page and the OpenAPI document),
// embedded in the binary at build time by src/http/embed_assets.cmake: the
// service serves them without touching the file system.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace resized::http {

namespace embedded {

/// One embedded file; the generated table ends with {nullptr, nullptr, 0}.
struct file {
  const char* name; // file name, no directory
  const unsigned char* data;
  std::size_t size;
};

extern const file files[];
extern const std::size_t file_count;

} // namespace embedded

/// An embedded file ready to serve.
struct asset {
  std::string_view name;
  std::string_view bytes;
  std::string_view content_type; // from the extension
  std::string etag;              // strong, without quotes
};

/// The asset called `name` (e.g. "index.html"), or nullptr. Names are
/// looked up in the table, never joined into a path.
const asset* find_asset(std::string_view name);

} // namespace resized::http
