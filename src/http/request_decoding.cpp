#include "http/request_decoding.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdint>

#include <fmt/format.h>
#include <rapidjson/error/en.h>
#include <rapidjson/reader.h>
#include <restinio/uri_helpers.hpp>
#include <simdjson.h>

#include "common/text.hpp"
#include "http/base64.hpp"

namespace resized::http {

namespace {

std::string lower(std::string_view s) {
  std::string out{s};
  for (auto& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
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
  auto media =
      lower(trim_blanks(content_type.substr(0, content_type.find(';'))));
  if (media == "application/json")
    return body_kind::json;
  if (media == "application/octet-stream" ||
      (media.size() > 6 && media.compare(0, 6, "image/") == 0))
    return body_kind::raw;
  return body_kind::unsupported;
}

std::string coding_other_than_identity(std::string_view field_value) {
  while (!field_value.empty()) {
    auto comma = field_value.find(',');
    auto coding = trim_blanks(field_value.substr(0, comma));
    if (!coding.empty() && !equals_nocase(coding, "identity"))
      return excerpt(coding);
    if (comma == std::string_view::npos)
      break;
    field_value.remove_prefix(comma + 1);
  }
  return {};
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

namespace {

/// The fields of a submission as RapidJSON's SAX reader meets them in the
/// body, parsed in place: strings are unescaped inside the body itself and
/// handed over as pointers into it, so imageData's base64 text is never
/// copied. Only the root object's keys are read; values elsewhere are
/// validated by the reader and skipped. A wrong type is remembered and the
/// parse goes on, so that a malformed document is reported as such whatever
/// it holds. A repeated key's last value counts (README): a later value of
/// the same key, null (the default) among them, replaces a wrong type or a
/// value met before it; the first wrong type left is reported.
class submission_reader
    : public rapidjson::BaseReaderHandler<rapidjson::UTF8<>,
                                          submission_reader> {
public:
  /// Deeper nesting is rejected. The reader recurses once per level (its
  /// iterative mode does pointer arithmetic on a null stack, which UBSan
  /// rejects), and the handler is called before each level is entered, so
  /// this bounds the recursion too.
  static constexpr int max_depth = 64;

  explicit submission_reader(option_values& options) : options_(options) {}

  bool too_deep = false;
  bool have_image = false;
  std::string_view image; // imageData's text, inside the body (last one)

  bool Null() { return value(kind::null); }
  bool Bool(bool) { return value(kind::other); }
  bool Int(int v) { return integer(v); }
  bool Uint(unsigned v) { return integer(v); }
  bool Int64(int64_t v) { return integer(v); }
  bool Uint64(uint64_t v) {
    return v > static_cast<uint64_t>(INT64_MAX)
               ? value(kind::other)
               : integer(static_cast<int64_t>(v));
  }
  bool Double(double) { return value(kind::other); }
  bool String(const char* str, rapidjson::SizeType length, bool) {
    if (depth_ != 1)
      return depth_ == 0 ? value(kind::other) : true;
    std::string_view text{str, length};
    switch (key_) {
    case field::image:
      have_image = true;
      image = text;
      return set(key_);
    case field::mode:
      options_.mode = std::string{text};
      return set(key_);
    case field::format:
      options_.format = std::string{text};
      return set(key_);
    default:
      return value(kind::other);
    }
  }
  bool StartObject() {
    if (depth_ == 0) {
      ++depth_;
      return true;
    }
    return open();
  }
  bool Key(const char* str, rapidjson::SizeType length, bool) {
    if (depth_ == 1)
      key_ = field_of({str, length});
    return true;
  }
  bool EndObject(rapidjson::SizeType) { return close(); }
  bool StartArray() { return open(); }
  bool EndArray(rapidjson::SizeType) { return close(); }

  /// The first wrong type left when the parse is done: the body's own
  /// (not an object), else the earliest among the fields' last values.
  std::optional<failure> error() const {
    if (body_error_)
      return body_error_;
    const field_error* first = nullptr;
    for (const auto& e : field_errors_)
      if (e && (first == nullptr || e->order < first->order))
        first = &*e;
    if (first == nullptr)
      return std::nullopt;
    return first->why;
  }

private:
  enum class field { other, image, width, height, quality, mode, format };
  enum class kind { null, other };

  struct field_error {
    int order; // when it was met
    failure why;
  };

  // The keys read, by name; the rest are ignored, as the original did.
  static constexpr std::pair<std::string_view, field> fields_[] = {
      {"imageData", field::image}, {"width", field::width},
      {"height", field::height},   {"quality", field::quality},
      {"mode", field::mode},       {"format", field::format}};

  static field field_of(std::string_view key) {
    for (const auto& [name, f] : fields_)
      if (name == key)
        return f;
    return field::other;
  }

  static std::string_view name_of(field f) {
    for (const auto& [name, known] : fields_)
      if (known == f)
        return name;
    return "?";
  }

  /// Field `f` got a value of the right type: any wrong type met before
  /// for the same key no longer counts.
  bool set(field f) {
    field_errors_[static_cast<size_t>(f)].reset();
    return true;
  }

  /// Field `f` got a value of the wrong type; the parse goes on.
  bool fail(field f, failure why) {
    field_errors_[static_cast<size_t>(f)] =
        field_error{errors_met_++, std::move(why)};
    return true;
  }

  /// null: the default applies, as if the key were not there.
  bool unset(field f) {
    switch (f) {
    case field::width:
      options_.width.reset();
      break;
    case field::height:
      options_.height.reset();
      break;
    case field::quality:
      options_.quality.reset();
      break;
    case field::mode:
      options_.mode.reset();
      break;
    case field::format:
      options_.format.reset();
      break;
    default:
      break;
    }
    return set(f);
  }

  /// An array anywhere, or an object below the root.
  bool open() {
    value(kind::other);
    if (++depth_ > max_depth) {
      too_deep = true;
      return false; // stops the reader
    }
    return true;
  }

  bool close() {
    --depth_;
    return true;
  }

  /// A value other than a string or an integer (or one of those where it
  /// does not belong) at the root's level: the known fields' type errors.
  bool value(kind k) {
    if (depth_ == 0) {
      if (!body_error_)
        body_error_ =
            failure{error_code::invalid_json, "body must be a JSON object"};
      return true;
    }
    if (depth_ != 1)
      return true;
    switch (key_) {
    case field::image:
      return fail(key_, {error_code::missing_image_data,
                         "imageData must be a base64 string"});
    case field::width:
    case field::height:
    case field::quality:
      return k == kind::null
                 ? unset(key_)
                 : fail(key_, bad_option(fmt::format("{} must be an integer",
                                                     name_of(key_))));
    case field::mode:
    case field::format:
      return k == kind::null
                 ? unset(key_)
                 : fail(key_, bad_option(fmt::format("{} must be a string",
                                                     name_of(key_))));
    case field::other:
      return true;
    }
    return true;
  }

  bool integer(int64_t v) {
    if (depth_ == 0)
      return value(kind::other);
    if (depth_ != 1)
      return true;
    switch (key_) {
    case field::width:
      options_.width = v;
      return set(key_);
    case field::height:
      options_.height = v;
      return set(key_);
    case field::quality:
      options_.quality = v;
      return set(key_);
    default:
      return value(kind::other);
    }
  }

  option_values& options_;
  int depth_ = 0;
  field key_ = field::other;
  std::optional<failure> body_error_;
  std::optional<field_error> field_errors_[7]; // by field
  int errors_met_ = 0;
};

bool json_whitespace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

} // namespace

outcome<json_submission> decode_json_submission(std::string body) {
  auto invalid = [](std::string what) {
    return failure{error_code::invalid_json, std::move(what)};
  };
  // RapidJSON, unlike simdjson's parser, does not check UTF-8 at SIMD speed
  // itself; simdjson's validator does, without needing padding.
  if (!simdjson::validate_utf8(body.data(), body.size()))
    return invalid("body is not valid JSON: it is not valid UTF-8");

  json_submission out;
  submission_reader handler{out.options};
  // A UTF-8 byte order mark is skipped (RFC 8259 §8.1 lets a parser ignore
  // it): editors on Windows, PowerShell 5's Out-File among them, write one
  // at the start of a saved request file.
  size_t start = body.compare(0, 3, "\xEF\xBB\xBF") == 0 ? 3 : 0;
  // In place: the body is ours (moved in) and ends in '\0' like every
  // std::string. StopWhenDone, then the rest is checked below, so that a
  // '\0' inside the body cannot end the document early.
  constexpr unsigned flags =
      rapidjson::kParseInsituFlag | rapidjson::kParseStopWhenDoneFlag;
  rapidjson::InsituStringStream stream{body.data() + start};
  rapidjson::Reader reader;
  auto parsed = reader.Parse<flags>(stream, handler);
  if (handler.too_deep)
    return invalid(fmt::format("body is not valid JSON: nested deeper than "
                               "{} levels",
                               submission_reader::max_depth));
  if (parsed.IsError()) {
    // A raw control character in a string is RapidJSON's "invalid escape
    // character": most often a client's base64 wrapped at 76 columns with
    // real line breaks, which JSON writes as \n.
    auto at = start + parsed.Offset();
    if (parsed.Code() == rapidjson::kParseErrorStringEscapeInvalid &&
        at < body.size() && static_cast<unsigned char>(body[at]) < 0x20) {
      auto c = body[at];
      return invalid(fmt::format(
          "body is not valid JSON: a raw {} inside a string (offset {}); "
          "JSON writes it escaped ({})",
          c == '\n'   ? "line break"
          : c == '\r' ? "carriage return"
          : c == '\t' ? "tab"
                      : fmt::format("control character 0x{:02X}", c),
          at,
          c == '\n'   ? "\\n"
          : c == '\r' ? "\\r"
          : c == '\t' ? "\\t"
                      : fmt::format("\\u{:04X}", c)));
    }
    // RapidJSON's words as a clause: "Missing a name." -> "missing a name"
    std::string why = rapidjson::GetParseError_En(parsed.Code());
    if (!why.empty() && why.back() == '.')
      why.pop_back();
    if (!why.empty())
      why[0] =
          static_cast<char>(std::tolower(static_cast<unsigned char>(why[0])));
    return invalid(fmt::format("body is not valid JSON: {} (offset {})", why,
                               start + parsed.Offset()));
  }
  for (size_t i = start + stream.Tell(); i < body.size(); ++i)
    if (!json_whitespace(body[i]))
      return invalid(fmt::format("body is not valid JSON: data after the "
                                 "document (offset {})",
                                 i));
  if (auto error = handler.error())
    return std::move(*error);
  if (!handler.have_image)
    return failure{error_code::missing_image_data,
                   "imageData is required (base64 image bytes)"};

  auto b64 = handler.image;
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
  // Decoded in place, to the front of the body, which then is the image:
  // no buffer is allocated for it. (It keeps the body's capacity, a third
  // more than the image, until the task ends.)
  size_t n = 0;
  auto st = base64_decode_to(b64, body.data(), n);
  if (!st.ok)
    return failure{error_code::invalid_base64,
                   fmt::format("imageData is not valid base64 (offset {}: {})",
                               skipped + st.offset, st.reason)};
  if (n == 0)
    return failure{error_code::missing_image_data, "imageData is empty"};
  body.resize(n);
  out.image = std::move(body);
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
  std::vector<std::string_view> seen; // at most the five known names
  for (const auto& [name, value] : params) {
    // A repeated option is refused rather than one of its values picked:
    // `?width=300&width=200` is a bug in the URL's builder, and frameworks
    // disagree on which value wins (Flask's args.get takes the first).
    if (std::find(seen.begin(), seen.end(), name) != seen.end())
      return bad_option(
          fmt::format("{} is given more than once", excerpt(name)));
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
    seen.push_back(name);
  }
  return out;
}

std::vector<std::string_view> query_parts(std::string_view query) {
  std::vector<std::string_view> parts;
  for (size_t start = 0; start <= query.size();) {
    auto end = std::min(query.find('&', start), query.size());
    parts.push_back(query.substr(start, end - start));
    start = end + 1;
  }
  return parts;
}

outcome<std::vector<std::pair<std::string, std::string>>>
parse_query_params(std::string_view query) {
  std::vector<std::pair<std::string, std::string>> params;
  for (auto part : query_parts(query)) {
    if (part.empty())
      continue;
    auto malformed = [&](std::string_view why) {
      return bad_option(fmt::format("query parameter '{}' is malformed: {}",
                                    excerpt(part), why));
    };
    if (part.find(';') != std::string_view::npos)
      return bad_option("query string is malformed: parameters are separated "
                        "by '&', not ';'");
    auto eq = part.find('=');
    if (eq == std::string_view::npos)
      return bad_option(fmt::format(
          "query parameter '{}' has no value (name=value)", excerpt(part)));
    if (part.find('=', eq + 1) != std::string_view::npos)
      return malformed("a '=' in a value is written %3D");
    for (size_t i = part.find('%'); i != std::string_view::npos;
         i = part.find('%', i + 1))
      if (i + 2 >= part.size() ||
          !std::isxdigit(static_cast<unsigned char>(part[i + 1])) ||
          !std::isxdigit(static_cast<unsigned char>(part[i + 2])))
        return malformed("'%' starts a percent-encoded byte (%XX); a '%' "
                         "itself is written %25");
    // One parameter at a time, so that a position in RESTinio's words is
    // one in the parameter named.
    auto parsed = restinio::try_parse_query<
        restinio::parse_query_traits::javascript_compatible>(
        restinio::string_view_t{part.data(), part.size()});
    if (!parsed)
      return malformed(parsed.error().description());
    for (const auto& [name, value] : *parsed)
      params.emplace_back(std::string{name.data(), name.size()},
                          std::string{value.data(), value.size()});
  }
  return params;
}

bool names_an_option(std::string_view query) {
  auto is_option = [](std::string_view name) {
    for (std::string_view option :
         {"width", "height", "mode", "format", "quality"})
      if (name == option)
        return true;
    return false;
  };
  // As the raw-bytes path reads the names (percent-decoded: ?wi%64th=3 is
  // width there), when the query parses; else as written.
  if (auto params = parse_query_params(query))
    for (const auto& [name, value] : *params)
      if (is_option(name))
        return true;
  for (auto part : query_parts(query))
    if (is_option(part.substr(0, part.find('='))))
      return true;
  return false;
}

outcome<std::optional<std::string>> poll_wait_value(std::string_view query) {
  constexpr std::string_view name = "wait";
  std::optional<std::string> found;
  for (auto part : query_parts(query)) {
    auto eq = part.find('=');
    std::string key{part.substr(0, eq)};
    std::string written = eq == std::string_view::npos
                              ? std::string{}
                              : std::string{part.substr(eq + 1)};
    // Percent-decoded as an upload's options are (?w%61it=%35 is wait=5)
    // when the parameter parses; one that does not is left as written (the
    // rest of a poll's query is not read: a malformed cache buster is no
    // error).
    if (eq != std::string_view::npos &&
        part.find('%') != std::string_view::npos) {
      auto parsed = restinio::try_parse_query<
          restinio::parse_query_traits::javascript_compatible>(
          restinio::string_view_t{part.data(), part.size()});
      if (parsed && parsed->size() == 1u) {
        const auto& [n, v] = *parsed->begin();
        key.assign(n.data(), n.size());
        written.assign(v.data(), v.size());
      }
    }
    if (key != name)
      continue;
    std::optional<std::string> value = std::move(written);
    if (found)
      return bad_option("wait is given more than once");
    found = std::move(value);
  }
  return found;
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
