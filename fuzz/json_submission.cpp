// Fuzzes the JSON submission decoder (RapidJSON in place + base64 in place)
// and the option resolution that follows it in the POST handler.
//
// Differential: every input is also decoded by a reference written here on
// simdjson's DOM (a different parser, the decoder this project used before
// the in-place one), with the same rules — syntax and UTF-8 first, nesting
// at most 64 levels, the root an object, the first wrong type of a known
// field, the last imageData — and both must give the same error code, or
// the same image and options. The input is decoded once more behind 1..16
// spaces (strings at another alignment of RapidJSON's 16-byte scan; behind
// a leading byte order mark, which is skipped); that answer must agree too.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <string>

#include <simdjson.h>

#include "fuzz_support.hpp"
#include "http/base64.hpp"
#include "http/request_decoding.hpp"

using namespace resized;

namespace {

bool is_request_error(error_code code) {
  switch (code) {
  case error_code::invalid_json:
  case error_code::missing_image_data:
  case error_code::invalid_base64:
  case error_code::invalid_option:
    return true;
  default:
    return false;
  }
}

void check_resolved(const imaging::resize_options& o,
                    const imaging::limits& lim) {
  fuzz::check(o.width >= 0 && o.width <= lim.max_dimension, "width range");
  fuzz::check(o.height >= 0 && o.height <= lim.max_dimension, "height range");
  fuzz::check(o.width > 0 || o.height > 0, "both sides 0");
  fuzz::check(o.quality >= 1 && o.quality <= 100, "quality range");
}

int depth_of(simdjson::dom::element e) {
  int deepest = 0;
  if (auto arr = e.get_array(); !arr.error())
    for (auto v : arr.value())
      deepest = std::max(deepest, depth_of(v));
  else if (auto obj = e.get_object(); !obj.error())
    for (auto [k, v] : obj.value())
      deepest = std::max(deepest, depth_of(v));
  else
    return 0;
  return deepest + 1;
}

bool has_low_surrogate(const std::string& body) {
  for (size_t i = 0; i + 3 < body.size(); ++i)
    if (body[i] == '\\' && body[i + 1] == 'u' &&
        (body[i + 2] == 'd' || body[i + 2] == 'D') &&
        std::strchr("cdefCDEF", body[i + 3]) != nullptr && body[i + 3] != 0)
      return true;
  return false;
}

struct reference_answer {
  bool skip = false; // a case where the two parsers legitimately differ
  resized::error_code code = resized::error_code::none;
  http::json_submission sub;
};

// The reference decoder: simdjson DOM, same rules as the real one.
reference_answer reference(const std::string& body) {
  using simdjson::dom::element;
  using simdjson::dom::object;
  reference_answer out;
  auto fail = [&](resized::error_code code) {
    out.code = code;
    return out;
  };
  thread_local simdjson::dom::parser parser;
  element doc;
  if (auto err = parser.parse(simdjson::padded_string{body}).get(doc)) {
    // simdjson 3.0 rejects integers beyond 64 bits; JSON allows them and
    // RapidJSON reads them as doubles. simdjson also rejects a lone low
    // surrogate escape (\udc00-\udfff), which RapidJSON lets through; the
    // grammar allows both.
    out.skip = err == simdjson::NUMBER_ERROR ||
               (err == simdjson::STRING_ERROR && has_low_surrogate(body));
    return fail(error_code::invalid_json);
  }
  if (depth_of(doc) > 64)
    return fail(error_code::invalid_json);
  object obj;
  if (doc.get_object().get(obj))
    return fail(error_code::invalid_json);
  // Per key, the last value counts (README): a wrong type met before is
  // replaced by a later value, null is the default again; of the wrong
  // types left, the first met is reported.
  std::map<std::string, std::pair<int, resized::error_code>> type_errors;
  int met = 0;
  auto wrong = [&](std::string_view k, resized::error_code c) {
    type_errors[std::string{k}] = {met++, c};
  };
  auto right = [&](std::string_view k) { type_errors.erase(std::string{k}); };
  std::optional<std::string_view> image;
  for (auto [key, v] : obj) {
    if (key == "imageData") {
      std::string_view s;
      if (v.get_string().get(s)) {
        wrong(key, error_code::missing_image_data);
      } else {
        image = s;
        right(key);
      }
    } else if (key == "width" || key == "height" || key == "quality") {
      auto& option = key == "width"    ? out.sub.options.width
                     : key == "height" ? out.sub.options.height
                                       : out.sub.options.quality;
      int64_t x = 0;
      if (v.is_null()) {
        option.reset();
        right(key);
      } else if (!v.is_int64() || v.get_int64().get(x)) {
        wrong(key, error_code::invalid_option);
      } else {
        option = x;
        right(key);
      }
    } else if (key == "mode" || key == "format") {
      auto& option =
          key == "mode" ? out.sub.options.mode : out.sub.options.format;
      std::string_view s;
      if (v.is_null()) {
        option.reset();
        right(key);
      } else if (v.get_string().get(s)) {
        wrong(key, error_code::invalid_option);
      } else {
        option = std::string{s};
        right(key);
      }
    }
  }
  std::optional<resized::error_code> type_error;
  int first_met = met;
  for (const auto& [k, e] : type_errors)
    if (e.first < first_met) {
      first_met = e.first;
      type_error = e.second;
    }
  if (type_error)
    return fail(*type_error);
  if (!image)
    return fail(error_code::missing_image_data);
  auto b64 = *image;
  if (b64.compare(0, 5, "data:") == 0) {
    auto comma = b64.find(',');
    if (comma == std::string_view::npos ||
        b64.substr(0, comma).find(";base64") == std::string_view::npos)
      return fail(error_code::invalid_base64);
    b64.remove_prefix(comma + 1);
  }
  if (!http::base64_decode(b64, out.sub.image).ok)
    return fail(error_code::invalid_base64);
  if (out.sub.image.empty())
    return fail(error_code::missing_image_data);
  return out;
}

bool same_options(const http::option_values& a, const http::option_values& b) {
  return a.width == b.width && a.height == b.height && a.quality == b.quality &&
         a.mode == b.mode && a.format == b.format;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string body(reinterpret_cast<const char*>(data), size);
  auto a = http::decode_json_submission(body);
  // A UTF-8 byte order mark at the very start is skipped (RFC 8259 §8.1):
  // the spaces go behind it, and the reference gets the document without
  // it (the rule is the decoder's, not simdjson's).
  size_t bom = body.compare(0, 3, "\xEF\xBB\xBF") == 0 ? 3 : 0;
  size_t shift = size == 0 ? 1 : 1 + data[0] % 16;
  auto b = http::decode_json_submission(
      body.substr(0, bom) + std::string(shift, ' ') + body.substr(bom));
  fuzz::check(a.ok() == b.ok(), "decoding behind spaces disagrees");
  auto ref = reference(body.substr(bom));
  // RapidJSON rejects an exponent beyond its range even when the number is
  // 0 or representable (0e+400); simdjson takes it. Grammar-valid, rare.
  if (!a && a.error().message.find("number too big") != std::string::npos)
    ref.skip = true;
  if (!ref.skip)
    fuzz::check(a.ok() == (ref.code == error_code::none),
                "decoder and simdjson reference disagree on success");
  if (!a) {
    fuzz::check(a.error().code == b.error().code,
                "error codes behind spaces differ");
    fuzz::check(ref.skip || a.error().code == ref.code,
                "decoder and simdjson reference give different error codes");
    fuzz::check(is_request_error(a.error().code),
                "decoding failed with a non-request error code");
    fuzz::check(!a.error().message.empty(), "error without a message");
    return 0;
  }
  fuzz::check(a->image == b->image, "images behind spaces differ");
  fuzz::check(same_options(a->options, b->options),
              "options behind spaces differ");
  if (!ref.skip) {
    fuzz::check(a->image == ref.sub.image, "image differs from the reference");
    fuzz::check(same_options(a->options, ref.sub.options),
                "options differ from the reference");
  }
  fuzz::check(!a->image.empty(), "accepted an empty imageData");
  fuzz::check(a->image.size() <= http::base64_max_decoded(size),
              "image larger than the body allows");
  const auto& lim = fuzz::default_limits();
  for (auto can_write : {fuzz::can_write_no_avif, fuzz::can_write_all}) {
    auto opts = http::resolve_options(a->options, fuzz::default_options(), lim,
                                      can_write);
    if (opts)
      check_resolved(*opts, lim);
    else
      fuzz::check(opts.error().code == error_code::invalid_option,
                  "resolve_options failed with a code other than "
                  "invalid_option");
  }
  return 0;
}
