// Pure decoding of requests: content types, JSON and raw submissions, option
// values, tokens and image names. No RESTinio, no actors: unit-tested alone.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/outcome.hpp"
#include "imaging/options.hpp"

namespace resized::http {

enum class body_kind { json, raw, unsupported };

/// Classifies a Content-Type value: application/json (any parameters) is
/// json; image/* and application/octet-stream are raw; anything else,
/// including a missing header, is unsupported.
body_kind classify_content_type(std::string_view content_type);

/// The first content coding other than identity in one Content-Encoding
/// field value (a comma-separated list, RFC 9110 8.4), as a short printable
/// excerpt for a message, or empty if it names none. A request may carry
/// the field more than once: each is to be read (the codings of all apply).
std::string coding_other_than_identity(std::string_view field_value);

/// Options as given by a client, before defaults are applied.
struct option_values {
  std::optional<int64_t> width;
  std::optional<int64_t> height;
  std::optional<std::string> mode;
  std::optional<std::string> format;
  std::optional<int64_t> quality;
};

/// Applies defaults and checks every value; errors: invalid_option.
/// One of width/height given: the other is derived from the aspect ratio.
/// `can_write` says whether an output format is available in this build.
outcome<imaging::resize_options> resolve_options(
    const option_values& given, const imaging::resize_options& defaults,
    const imaging::limits& lim, bool (*can_write)(imaging::output_format));

struct json_submission {
  option_values options;
  std::string image; // decoded bytes of imageData
};

/// Decodes a JSON body {"imageData": base64, "width": .., ...}, taking
/// the body's buffer: it is parsed in place and imageData decoded to its
/// front, so the decoded image is the body's own buffer (no copy of either).
/// Unknown keys are ignored, as the original service did; a repeated key's
/// last value counts. Errors: invalid_json, missing_image_data,
/// invalid_base64, invalid_option (wrong JSON type of an option).
outcome<json_submission> decode_json_submission(std::string body);

/// Reads options from query parameters (name, value). Unknown names,
/// non-integer numbers and a name given twice are invalid_option.
outcome<option_values> decode_query_options(
    const std::vector<std::pair<std::string, std::string>>& params);

/// A submission's query string as (name, value) parameters, in order,
/// percent-decoded. Separated by '&'; an empty one ("?&width=1",
/// "a=1&&b=2", a trailing '&') is skipped. invalid_option, naming the
/// parameter: a ';' between parameters (RESTinio's parser would split
/// there), a name without '=' (it would drop it), a bare '=' or '%' that is
/// not a percent-encoded byte, or anything else RESTinio's parser refuses.
outcome<std::vector<std::pair<std::string, std::string>>>
parse_query_params(std::string_view query);

/// Whether a query string has one of the options' names (width, height,
/// mode, format, quality) as a parameter: in a JSON submission's URL it
/// would be ignored, so it is refused; other parameters are ignored there,
/// as the original stack ignored every query.
bool names_an_option(std::string_view query);

/// A query string's parameters as written, split at each '&' (empty ones
/// too: "a=1&&b" gives "a=1", "", "b"; "" gives one empty part).
std::vector<std::string_view> query_parts(std::string_view query);

/// The raw value of the `wait` parameter of a status poll's query string
/// (`wait=<value>`; a bare `wait` gives ""), nullopt if there is none;
/// invalid_option if it is given more than once (as a submission's
/// options: which one a client meant is anyone's guess). Nothing else of
/// the query is read: whatever a client or a proxy adds to a poll (a cache
/// buster, a name with no value, characters a strict query parser refuses)
/// is ignored, as the original stack ignored every query of a poll.
/// Parameters are separated by '&'.
outcome<std::optional<std::string>> poll_wait_value(std::string_view query);

/// The `wait` parameter of a status poll: whole seconds, 0..`max`; none
/// means 0 (answer at once). Errors: invalid_option.
outcome<std::chrono::milliseconds>
decode_poll_wait(const std::optional<std::string>& wait,
                 std::chrono::seconds max);

/// True for a canonical UUID (8-4-4-4-12 hex digits).
bool is_uuid(std::string_view text);

/// Lower-cases a UUID.
std::string normalize_token(std::string_view text);

/// Splits "<uuid>.<ext>" into the token and the output format of ext.
/// Errors: invalid_token, unknown_token (unknown extension).
outcome<std::pair<std::string, imaging::output_format>>
parse_image_name(std::string_view name);

} // namespace resized::http
