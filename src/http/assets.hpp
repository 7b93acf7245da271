// Files of src/http/static/ (the web page and the OpenAPI document),
// embedded in the binary at build time by src/http/embed_assets.cmake: the
// service serves them without touching the file system. The page
// (index.html) is a template: the server renders it once at start-up with
// what depends on the node (render_page).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "imaging/options.hpp"

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

/// An asset called `name` (its content type from the extension) over
/// `bytes`, which must outlive it; its ETag is computed from `bytes`.
asset make_asset(std::string_view name, std::string_view bytes);

/// What the web page shows that depends on the node serving it.
struct page_facts {
  int max_dimension = 0;         // limits.max-dimension: width/height max
  uint64_t max_upload_bytes = 0; // limits.max-body-bytes: the page uploads
                                 // raw bytes, so this bounds the file
  std::vector<imaging::output_format> formats; // writable here, menu order
  int max_poll_wait = 0; // http.max-poll-wait: the page's long-poll ?wait=
                         // must not exceed it (0: the node takes no wait)
};

/// The placeholders of `page_template` filled in from `facts`:
///   {{max-dimension}}     the number, for the width/height inputs' max
///   {{max-upload-bytes}}  the number, for app.js's size check
///   {{format-options}}    one <option> per format of facts.formats
///   {{max-poll-wait}}     the number, for app.js's long-poll wait
/// Throws std::invalid_argument when the template holds a placeholder not
/// listed here or lacks one of them (the page would lie about the node).
std::string render_page(std::string_view page_template,
                        const page_facts& facts);

} // namespace resized::http
