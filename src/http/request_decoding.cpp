#include "http/request_decoding.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>

#include <fmt/format.h>
#include <simdjson.h>

#include "http/base64.hpp"

namespace resized::http {

namespace {

std::string lower(std::string_view s) {
  std::string out{s};
  for (auto& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

// A short, printable excerpt of a client-supplied value for messages.
std::string excerpt(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 32))
    out += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (s.size() > 32)
    out += "...";
  return out;
}

failure bad_option(std::string message) {
  return failure{error_code::invalid_option, std::move(message)};
}

// A whole decimal integer (optional '-', digits, nothing else).
bool parse_integer(std::string_view text, int64_t& out) {
  auto* last = text.data() + text.size();
  auto res = std::from_chars(text.data(), last, out);
  return !text.empty() && res.ec == std::errc{} && res.ptr == last;
}

} // namespace

body_kind classify_content_type(std::string_view content_type) {
  auto media = lower(trim(content_type.substr(0, content_type.find(';'))));
  if (media == "application/json")
    return body_kind::json;
  if (media == "application/octet-stream" ||
      (media.size() > 6 && media.compare(0, 6, "image/") == 0))
    return body_kind::raw;
  return body_kind::unsupported;
}

outcome<imaging::resize_options> resolve_options(
    const option_values& given, const imaging::resize_options& defaults,
    const imaging::limits& lim, bool (*can_write)(imaging::output_format)) {
  imaging::resize_options opts = defaults;
  auto dimension = [&](const char* name, int64_t value,
                       int& out) -> std::optional<failure> {
    if (value < 1 || value > lim.max_dimension)
      return bad_option(fmt::format("{} must be an integer in 1..{} (got {})",
                                    name, lim.max_dimension, value));
    out = static_cast<int>(value);
    return std::nullopt;
  };
  if (given.width || given.height) {
    opts.width = 0;
    opts.height = 0;
    if (given.width)
      if (auto err = dimension("width", *given.width, opts.width))
        return *err;
    if (given.height)
      if (auto err = dimension("height", *given.height, opts.height))
        return *err;
  }
  if (given.mode && !imaging::parse(*given.mode, opts.mode))
    return bad_option(
        fmt::format("mode must be one of fill, fit, force (got '{}')",
                    excerpt(*given.mode)));
  if (given.format && !imaging::parse(*given.format, opts.format))
    return bad_option(
        fmt::format("format must be one of jpeg, png, webp, avif (got '{}')",
                    excerpt(*given.format)));
  if (can_write != nullptr && !can_write(opts.format))
    return bad_option(fmt::format("format {} is not available on this server",
                                  imaging::to_string(opts.format)));
  if (given.quality) {
    if (*given.quality < 1 || *given.quality > 100)
      return bad_option(fmt::format(
          "quality must be an integer in 1..100 (got {})", *given.quality));
    opts.quality = static_cast<int>(*given.quality);
  }
  return opts;
}

outcome<json_submission> decode_json_submission(const char* body, size_t size,
                                                size_t capacity) {
  using namespace simdjson;
  padded_string copy;
  padded_string_view input;
  if (capacity >= size + SIMDJSON_PADDING) {
    input = padded_string_view{body, size, capacity};
  } else {
    copy = padded_string{body, size};
    input = padded_string_view{copy};
  }
  // The DOM parser validates the whole document (the on-demand API skips
  // values it is not asked for, so malformed unknown keys would pass). One
  // parser per io thread: its buffers are reused across requests, but not
  // kept at the size of the largest body ever seen (its string buffer alone
  // is as large as the document): after a document over `keep_capacity`,
  // the buffers are freed.
  constexpr size_t keep_capacity = 4u << 20;
  thread_local dom::parser parser;
  struct shrink_after {
    dom::parser& p;
    ~shrink_after() {
      if (p.capacity() > keep_capacity)
        p = dom::parser{};
    }
  } shrink{parser};
  auto invalid = [](std::string what) {
    return failure{error_code::invalid_json, std::move(what)};
  };
  dom::element doc;
  if (auto err = parser.parse(input).get(doc))
    return invalid(std::string{"body is not valid JSON: "} +
                   error_message(err));
  dom::object obj;
  if (doc.get_object().get(obj))
    return invalid("body must be a JSON object");
  json_submission out;
  bool have_image = false;
  auto integer = [&](dom::element v, const char* name,
                     std::optional<int64_t>& dst) -> std::optional<failure> {
    if (v.is_null())
      return std::nullopt;
    int64_t x = 0;
    if (!v.is_int64() || v.get_int64().get(x))
      return bad_option(fmt::format("{} must be an integer", name));
    dst = x;
    return std::nullopt;
  };
  auto text = [&](dom::element v, const char* name,
                  std::optional<std::string>& dst) -> std::optional<failure> {
    if (v.is_null())
      return std::nullopt;
    std::string_view s;
    if (v.get_string().get(s))
      return bad_option(fmt::format("{} must be a string", name));
    dst = std::string{s};
    return std::nullopt;
  };
  // Unknown keys are ignored, as the original service did.
  for (auto [key, v] : obj) {
    std::optional<failure> err;
    if (key == "imageData") {
      std::string_view b64;
      if (v.get_string().get(b64))
        return failure{error_code::missing_image_data,
                       "imageData must be a base64 string"};
      auto skipped = size_t{0};
      // Tolerate a data URL prefix: "data:image/png;base64,".
      if (b64.compare(0, 5, "data:") == 0) {
        auto comma = b64.find(',');
        if (comma == std::string_view::npos ||
            b64.substr(0, comma).find(";base64") == std::string_view::npos)
          return failure{error_code::invalid_base64,
                         "imageData is a data URL without ';base64,'"};
        b64.remove_prefix(comma + 1);
        skipped = comma + 1;
      }
      auto st = base64_decode(b64, out.image);
      if (!st.ok)
        return failure{error_code::invalid_base64,
                       fmt::format("imageData is not valid base64 (offset {}: "
                                   "{})",
                                   skipped + st.offset, st.reason)};
      have_image = true;
    } else if (key == "width") {
      err = integer(v, "width", out.options.width);
    } else if (key == "height") {
      err = integer(v, "height", out.options.height);
    } else if (key == "quality") {
      err = integer(v, "quality", out.options.quality);
    } else if (key == "mode") {
      err = text(v, "mode", out.options.mode);
    } else if (key == "format") {
      err = text(v, "format", out.options.format);
    }
    if (err)
      return *err;
  }
  if (!have_image)
    return failure{error_code::missing_image_data,
                   "imageData is required (base64 image bytes)"};
  if (out.image.empty())
    return failure{error_code::missing_image_data, "imageData is empty"};
  return out;
}

outcome<option_values> decode_query_options(
    const std::vector<std::pair<std::string, std::string>>& params) {
  option_values out;
  auto integer = [](const std::string& name, const std::string& value,
                    std::optional<int64_t>& dst) -> std::optional<failure> {
    int64_t x = 0;
    if (!parse_integer(value, x))
      return bad_option(fmt::format("{} must be an integer (got '{}')", name,
                                    excerpt(value)));
    dst = x;
    return std::nullopt;
  };
  for (const auto& [name, value] : params) {
    std::optional<failure> err;
    if (name == "width")
      err = integer(name, value, out.width);
    else if (name == "height")
      err = integer(name, value, out.height);
    else if (name == "quality")
      err = integer(name, value, out.quality);
    else if (name == "mode")
      out.mode = value;
    else if (name == "format")
      out.format = value;
    else
      err = bad_option(fmt::format("unknown option '{}' (known: width, "
                                   "height, mode, format, quality)",
                                   excerpt(name)));
    if (err)
      return *err;
  }
  return out;
}

outcome<std::chrono::milliseconds>
decode_poll_wait(const std::optional<std::string>& wait,
                 std::chrono::seconds max) {
  if (!wait)
    return std::chrono::milliseconds{0};
  int64_t secs = -1;
  if (!parse_integer(*wait, secs) || secs < 0 || secs > max.count())
    return bad_option(
        fmt::format("wait must be whole seconds in 0..{} (got '{}')",
                    max.count(), excerpt(*wait)));
  return std::chrono::milliseconds{secs * 1000};
}

bool is_uuid(std::string_view text) {
  if (text.size() != 36)
    return false;
  for (size_t i = 0; i < text.size(); ++i) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (text[i] != '-')
        return false;
    } else if (!std::isxdigit(static_cast<unsigned char>(text[i]))) {
      return false;
    }
  }
  return true;
}

std::string normalize_token(std::string_view text) {
  return lower(text);
}

outcome<std::pair<std::string, imaging::output_format>>
parse_image_name(std::string_view name) {
  auto dot = name.rfind('.');
  auto token = name.substr(0, dot);
  if (!is_uuid(token))
    return failure{error_code::invalid_token,
                   fmt::format("'{}' is not <token>.<ext> with a UUID token",
                               excerpt(name))};
  imaging::output_format format;
  if (dot == std::string_view::npos ||
      !imaging::from_extension(lower(name.substr(dot + 1)), format))
    return failure{error_code::unknown_token,
                   fmt::format("no image '{}' (extension must be jpg, png, "
                               "webp or avif)",
                               excerpt(name))};
  return std::make_pair(normalize_token(token), format);
}

} // namespace resized::http
