#include "http/assets.hpp"

#include <iterator>
#include <stdexcept>
#include <utility>
#include <vector>

#include <fmt/format.h>

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
      out.push_back(
          make_asset(f.name, {reinterpret_cast<const char*>(f.data), f.size}));
    }
    return out;
  }();
  return table;
}

// The menu label of an output format.
std::string_view label_of(imaging::output_format format) {
  switch (format) {
  case imaging::output_format::jpeg:
    return "JPEG";
  case imaging::output_format::png:
    return "PNG";
  case imaging::output_format::webp:
    return "WebP";
  case imaging::output_format::avif:
    return "AVIF";
  }
  return "?";
}

// The whitespace that starts the line `at` is on.
std::string_view indent_at(std::string_view text, size_t at) {
  auto start = text.rfind('\n', at);
  start = start == std::string_view::npos ? 0 : start + 1;
  auto end = start;
  while (end < at && (text[end] == ' ' || text[end] == '\t'))
    ++end;
  return text.substr(start, end - start);
}

} // namespace

asset make_asset(std::string_view name, std::string_view bytes) {
  return asset{name, bytes, content_type_of(name), strong_etag(bytes)};
}

std::string render_page(std::string_view page_template,
                        const page_facts& facts) {
  std::string options;
  for (auto format : facts.formats) {
    if (!options.empty())
      options += '\n';
    // Format names and labels are ours: nothing to escape.
    options += fmt::format("<option value=\"{}\">{}</option>",
                           imaging::to_string(format), label_of(format));
  }
  const std::pair<std::string_view, std::string> values[] = {
      {"max-dimension", std::to_string(facts.max_dimension)},
      {"max-upload-bytes", std::to_string(facts.max_upload_bytes)},
      {"format-options", std::move(options)},
      {"max-poll-wait", std::to_string(facts.max_poll_wait)}};
  bool used[std::size(values)] = {};
  std::string out;
  out.reserve(page_template.size() + 256);
  size_t pos = 0;
  for (;;) {
    auto open = page_template.find("{{", pos);
    if (open == std::string_view::npos)
      break;
    auto close = page_template.find("}}", open);
    if (close == std::string_view::npos)
      throw std::invalid_argument("page template: '{{' without '}}'");
    auto name = page_template.substr(open + 2, close - open - 2);
    size_t i = 0;
    while (i < std::size(values) && values[i].first != name)
      ++i;
    if (i == std::size(values))
      throw std::invalid_argument(
          fmt::format("page template: unknown placeholder {{{{{}}}}}", name));
    used[i] = true;
    out.append(page_template.substr(pos, open - pos));
    // A value of several lines keeps the placeholder's indentation.
    auto indent = indent_at(page_template, open);
    for (char c : values[i].second) {
      out += c;
      if (c == '\n')
        out.append(indent);
    }
    pos = close + 2;
  }
  out.append(page_template.substr(pos));
  for (size_t i = 0; i < std::size(values); ++i)
    if (!used[i])
      throw std::invalid_argument(fmt::format(
          "page template: placeholder {{{{{}}}}} missing", values[i].first));
  return out;
}

const asset* find_asset(std::string_view name) {
  for (const auto& a : all_assets())
    if (a.name == name)
      return &a;
  return nullptr;
}

} // namespace resized::http
