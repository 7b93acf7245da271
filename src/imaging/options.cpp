#include "imaging/options.hpp"

namespace resized::imaging {

namespace {

// One row per value: every name, MIME type and extension lives here once.
struct mode_row {
  fit_mode mode;
  std::string_view name;
};
constexpr mode_row modes[] = {{fit_mode::fill, "fill"},
                              {fit_mode::fit, "fit"},
                              {fit_mode::force, "force"}};

struct output_row {
  output_format format;
  std::string_view name;
  std::string_view mime;
  std::string_view extension;
};
constexpr output_row outputs[] = {
    {output_format::jpeg, "jpeg", "image/jpeg", "jpg"},
    {output_format::png, "png", "image/png", "png"},
    {output_format::webp, "webp", "image/webp", "webp"},
    {output_format::avif, "avif", "image/avif", "avif"}};

struct input_row {
  input_format format;
  std::string_view name;
};
constexpr input_row inputs[] = {
    {input_format::jpeg, "jpeg"}, {input_format::png, "png"},
    {input_format::webp, "webp"}, {input_format::gif, "gif"},
    {input_format::tiff, "tiff"}, {input_format::heif, "heif"}};

const output_row* row_of(output_format format) {
  for (const auto& row : outputs)
    if (row.format == format)
      return &row;
  return nullptr;
}

} // namespace

std::string_view to_string(fit_mode mode) {
  for (const auto& row : modes)
    if (row.mode == mode)
      return row.name;
  return "fill";
}

std::string_view to_string(output_format format) {
  const auto* row = row_of(format);
  return row != nullptr ? row->name : "jpeg";
}

std::string_view to_string(input_format format) {
  for (const auto& row : inputs)
    if (row.format == format)
      return row.name;
  return "unknown";
}

bool parse(std::string_view text, fit_mode& out) {
  for (const auto& row : modes)
    if (row.name == text) {
      out = row.mode;
      return true;
    }
  return false;
}

bool parse(std::string_view text, output_format& out) {
  for (const auto& row : outputs)
    if (row.name == text || row.extension == text) {
      out = row.format;
      return true;
    }
  return false;
}

std::string_view mime_type(output_format format) {
  const auto* row = row_of(format);
  return row != nullptr ? row->mime : "application/octet-stream";
}

std::string_view extension(output_format format) {
  const auto* row = row_of(format);
  return row != nullptr ? row->extension : "bin";
}

bool from_extension(std::string_view ext, output_format& out) {
  return parse(ext, out);
}

} // namespace resized::imaging
