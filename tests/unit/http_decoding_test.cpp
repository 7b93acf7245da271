// The HTTP layer's pure functions: base64, request decoding (content types,
// JSON and query submissions, options, tokens, image names) and the JSON
// bodies of responses. No server, no actors.

#include <boost/test/unit_test.hpp>

#include <cstdint>
#include <ostream>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <rapidjson/document.h>

#include "http/base64.hpp"
#include "http/request_decoding.hpp"
#include "http/responses.hpp"
#include "support/printing.hpp"

namespace resized::http {
static std::ostream& operator<<(std::ostream& out, body_kind kind) {
  switch (kind) {
  case body_kind::json:
    return out << "json";
  case body_kind::raw:
    return out << "raw";
  case body_kind::unsupported:
    return out << "unsupported";
  }
  return out << "?";
}
} // namespace resized::http

using namespace resized;
using namespace resized::http;
using imaging::fit_mode;
using imaging::output_format;

namespace {

// -- helpers ------------------------------------------------------------------

/// Reference encoder (RFC 4648, with padding) to build inputs.
std::string encode(std::string_view in, bool padding = true) {
  static const char* alphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    uint32_t v = (static_cast<uint8_t>(in[i]) << 16) |
                 (static_cast<uint8_t>(in[i + 1]) << 8) |
                 static_cast<uint8_t>(in[i + 2]);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += alphabet[v & 63];
  }
  if (in.size() - i == 1) {
    uint32_t v = static_cast<uint8_t>(in[i]) << 16;
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    if (padding)
      out += "==";
  } else if (in.size() - i == 2) {
    uint32_t v = (static_cast<uint8_t>(in[i]) << 16) |
                 (static_cast<uint8_t>(in[i + 1]) << 8);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    if (padding)
      out += '=';
  }
  return out;
}

/// Every byte value, so the whole alphabet is exercised.
std::string all_bytes(size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i)
    out += static_cast<char>((i * 7 + 3) & 0xff);
  return out;
}

struct decoded {
  base64_status status;
  std::string bytes;
};

decoded b64(std::string_view in) {
  decoded d;
  d.bytes = "garbage from before"; // must be replaced, not appended to
  d.status = base64_decode(in, d.bytes);
  return d;
}

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

/// Decodes `text` preceded by 0..16 spaces, so that its strings start at
/// every alignment of RapidJSON's 16-byte scan, checks that all answers
/// agree, and returns the first. The body is moved in, as the server does.
outcome<json_submission> decode_json(std::string_view text) {
  auto first = decode_json_submission(std::string{text});
  BOOST_TEST_CONTEXT("body: " << text) {
    for (size_t shift = 1; shift <= 16; ++shift) {
      auto other =
          decode_json_submission(std::string(shift, ' ') + std::string{text});
      BOOST_TEST_CONTEXT("preceded by " << shift << " spaces") {
        BOOST_TEST(first.ok() == other.ok());
        if (first.ok() && other.ok()) {
          BOOST_TEST(first->image == other->image);
          BOOST_TEST((first->options.width == other->options.width));
          BOOST_TEST((first->options.height == other->options.height));
          BOOST_TEST((first->options.quality == other->options.quality));
          BOOST_TEST((first->options.mode == other->options.mode));
          BOOST_TEST((first->options.format == other->options.format));
        } else if (!first.ok() && !other.ok()) {
          BOOST_TEST(first.error().code == other.error().code);
          // syntax errors name their offset, which the spaces move
          if (first.error().code != error_code::invalid_json)
            BOOST_TEST(first.error().message == other.error().message);
        }
      }
    }
  }
  return first;
}

/// The error code of a failed outcome; error_code::none if it succeeded.
template <class T>
error_code code_of(const outcome<T>& res) {
  return res.ok() ? error_code::none : res.error().code;
}

const imaging::resize_options default_opts{};
const imaging::limits default_limits{};

bool all_but_avif(output_format format) {
  return format != output_format::avif;
}

bool everything(output_format) {
  return true;
}

outcome<imaging::resize_options>
resolve(const option_values& given,
        bool (*can_write)(output_format) = everything) {
  return resolve_options(given, default_opts, default_limits, can_write);
}

using params = std::vector<std::pair<std::string, std::string>>;

const std::string uuid = "123e4567-e89b-42d3-a456-426614174000";
const std::string uuid_upper = "123E4567-E89B-42D3-A456-426614174000";

rapidjson::Document parse_json(const std::string& text) {
  rapidjson::Document doc;
  doc.Parse(text.c_str());
  BOOST_REQUIRE_MESSAGE(!doc.HasParseError(), "not valid JSON: " << text);
  BOOST_REQUIRE(doc.IsObject());
  return doc;
}

std::string str(const rapidjson::Value& v) {
  BOOST_REQUIRE(v.IsString());
  return {v.GetString(), v.GetStringLength()};
}

task_record sample_record(task_status status) {
  task_record rec;
  rec.token = uuid;
  rec.status = status;
  rec.options.format = output_format::jpeg;
  rec.input_bytes = 12345;
  rec.submitted_at_ms = 1795930801123; // 2026-11-29T05:40:01.123Z
  if (status != task_status::pending)
    rec.started_at_ms = 1795930801130;
  if (is_final(status))
    rec.finished_at_ms = 1795930801161;
  if (status == task_status::success) {
    rec.width = 100;
    rec.height = 80;
    rec.output_bytes = 3187;
  }
  if (status == task_status::failure) {
    rec.error_code = "corrupt_image";
    rec.error_message = "the \"image\" is broken";
  }
  return rec;
}

} // namespace

BOOST_AUTO_TEST_SUITE(http_decoding)

// -- base64 -------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(base64_known_vectors) {
  // RFC 4648 section 10.
  const std::pair<const char*, const char*> vectors[] = {
      {"", ""},
      {"f", "Zg=="},
      {"fo", "Zm8="},
      {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="},
      {"fooba", "Zm9vYmE="},
      {"foobar", "Zm9vYmFy"},
  };
  for (auto [plain, encoded] : vectors) {
    BOOST_TEST_CONTEXT("encoded: '" << encoded << "'") {
      auto d = b64(encoded);
      BOOST_TEST(d.status.ok);
      BOOST_TEST(d.bytes == plain);
    }
  }
}

BOOST_AUTO_TEST_CASE(base64_all_remainders_with_and_without_padding) {
  for (size_t n = 0; n < 70; ++n) {
    auto plain = all_bytes(n);
    for (bool padding : {true, false}) {
      BOOST_TEST_CONTEXT("n = " << n << ", padding = " << padding) {
        auto d = b64(encode(plain, padding));
        BOOST_TEST(d.status.ok);
        BOOST_TEST(d.bytes == plain);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(base64_whole_alphabet) {
  auto plain = all_bytes(256 * 3);
  auto encoded = encode(plain);
  for (char c : std::string_view{"+/09azAZ"})
    BOOST_TEST(contains(encoded, std::string(1, c)));
  auto d = b64(encoded);
  BOOST_TEST(d.status.ok);
  BOOST_TEST(d.bytes == plain);
}

BOOST_AUTO_TEST_CASE(base64_whitespace_and_newlines_inside) {
  auto d = b64("TW Fu\nTW\r\nFu\tT\fW\vE=\n");
  BOOST_TEST(d.status.ok);
  BOOST_TEST(d.bytes == "ManManMa");
  // Line-wrapped like MIME (76 columns) and PEM (64 columns).
  auto plain = all_bytes(1000);
  auto encoded = encode(plain);
  for (size_t width : {64, 76}) {
    std::string wrapped;
    for (size_t i = 0; i < encoded.size(); i += width)
      wrapped += encoded.substr(i, width) + "\r\n";
    auto w = b64(wrapped);
    BOOST_TEST(w.status.ok);
    BOOST_TEST(w.bytes == plain);
  }
  // Whitespace between padding characters.
  auto p = b64("TQ=\n=");
  BOOST_TEST(p.status.ok);
  BOOST_TEST(p.bytes == "M");
}

BOOST_AUTO_TEST_CASE(base64_invalid_character_reports_exact_offset) {
  struct bad {
    const char* in;
    size_t offset;
  };
  const bad cases[] = {
      {"*WFu", 0},     {"TWFu*WFu", 4}, {"TWFu\nTW!u", 7},
      {"TWFuTWF-", 7}, {"TWFu_", 4},    {"TW Fu\xc3\xa9", 5},
  };
  for (auto [in, offset] : cases) {
    BOOST_TEST_CONTEXT("input: '" << in << "'") {
      auto d = b64(in);
      BOOST_TEST(!d.status.ok);
      BOOST_TEST(d.status.offset == offset);
      BOOST_TEST(!d.status.reason.empty());
    }
  }
  // Printable characters are quoted, others shown as bytes.
  BOOST_TEST(contains(b64("TW!u").status.reason, "'!'"));
  BOOST_TEST(contains(b64(std::string_view{"TW\0u", 4}).status.reason, "0x00"));
}

// The decoder takes whole groups of four characters at a time and falls back
// to one character at a time around whitespace, padding and errors: random
// lengths, random whitespace anywhere and one bad character anywhere must
// give the same bytes and the exact offset of the bad character.
BOOST_AUTO_TEST_CASE(base64_random_whitespace_and_errors_anywhere) {
  std::mt19937 rng{7};
  const std::string spaces = " \n\r\t";
  for (int round = 0; round < 3000; ++round) {
    std::string plain(rng() % 200, '\0');
    for (auto& c : plain)
      c = static_cast<char>(rng());
    auto text = encode(plain, rng() % 2 == 0);
    for (int k = static_cast<int>(rng() % 6); k > 0; --k)
      text.insert(rng() % (text.size() + 1), 1, spaces[rng() % spaces.size()]);
    BOOST_TEST_CONTEXT("round " << round << " text '" << text << "'") {
      auto d = b64(text);
      BOOST_TEST_REQUIRE(d.status.ok, d.status.reason);
      BOOST_TEST((d.bytes == plain));
      if (text.empty())
        continue;
      auto at = rng() % text.size();
      text[at] = '!';
      auto bad = b64(text);
      BOOST_TEST(!bad.status.ok);
      BOOST_TEST(bad.status.offset == at);
    }
  }
}

// The decoder takes 32 characters at a time where the CPU allows (AVX2):
// every byte value at every position of such blocks must be treated as the
// one-character-at-a-time path treats it.
BOOST_AUTO_TEST_CASE(base64_every_byte_at_every_block_position) {
  const std::string plain = all_bytes(72); // 96 characters: three blocks
  const std::string text = encode(plain);
  BOOST_REQUIRE_EQUAL(text.size(), 96u);
  const std::string alphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (size_t pos = 0; pos < text.size(); ++pos)
    for (int b = 0; b < 256; ++b) {
      auto c = static_cast<char>(b);
      std::string in = text;
      in[pos] = c;
      std::string out;
      auto st = base64_decode(in, out);
      BOOST_TEST_CONTEXT("byte " << b << " at " << pos) {
        auto value = alphabet.find(c);
        if (value != std::string::npos) {
          BOOST_REQUIRE(st.ok);
          // the sextet at `pos` is `value`, the rest as before
          std::string again;
          BOOST_REQUIRE(base64_decode(text, again).ok);
          size_t bit = pos * 6;
          for (int k = 0; k < 6; ++k, ++bit) {
            auto mask = static_cast<unsigned char>(0x80u >> (bit % 8));
            if ((value >> (5 - k)) & 1)
              again[bit / 8] = static_cast<char>(again[bit / 8] | mask);
            else
              again[bit / 8] = static_cast<char>(again[bit / 8] & ~mask);
          }
          BOOST_REQUIRE(out == again);
        } else if (c == ' ' || c == '\n' || c == '\r' || c == '\t' ||
                   c == '\f' || c == '\v') {
          // skipped: 95 characters left, the last group of three gives two
          // bytes
          BOOST_REQUIRE(st.ok);
          BOOST_REQUIRE_EQUAL(out.size(), 71u);
        } else if (c == '=' && pos == 95) {
          BOOST_REQUIRE(st.ok); // valid padding of the last group
          BOOST_REQUIRE_EQUAL(out.size(), 71u);
        } else if (c == '=') {
          BOOST_REQUIRE(!st.ok); // the next character is data after '='
          BOOST_REQUIRE_EQUAL(st.offset, pos + 1);
        } else {
          BOOST_REQUIRE(!st.ok);
          BOOST_REQUIRE_EQUAL(st.offset, pos);
        }
      }
    }
}

BOOST_AUTO_TEST_CASE(base64_decodes_in_place) {
  // the JSON decoder writes the bytes over their own base64 text
  for (size_t lead : {0, 1, 13, 40})
    for (size_t n : {0, 1, 2, 3, 23, 24, 25, 100, 1000}) {
      auto plain = all_bytes(n);
      std::string buf = std::string(lead, '{') + encode(plain);
      size_t written = 0;
      auto st = base64_decode_to(std::string_view{buf}.substr(lead), buf.data(),
                                 written);
      BOOST_TEST_CONTEXT("lead " << lead << ", " << n << " bytes") {
        BOOST_REQUIRE(st.ok);
        BOOST_TEST(buf.substr(0, written) == plain);
      }
    }
}

BOOST_AUTO_TEST_CASE(base64_data_after_padding) {
  auto d = b64("TQ==TWFu");
  BOOST_TEST(!d.status.ok);
  BOOST_TEST(d.status.offset == 4u);
  BOOST_TEST(contains(d.status.reason, "after"));
  auto e = b64("TWE=\nTWFu");
  BOOST_TEST(!e.status.ok);
  BOOST_TEST(e.status.offset == 5u);
}

BOOST_AUTO_TEST_CASE(base64_bad_padding) {
  // Too much padding: the offset is the first '='.
  auto three = b64("TQ===");
  BOOST_TEST(!three.status.ok);
  BOOST_TEST(three.status.offset == 2u);
  auto two = b64("TWE==");
  BOOST_TEST(!two.status.ok);
  BOOST_TEST(two.status.offset == 3u);
  // Padding after a complete quantum.
  auto extra = b64("TWFu=");
  BOOST_TEST(!extra.status.ok);
  BOOST_TEST(extra.status.offset == 4u);
  auto only = b64("==");
  BOOST_TEST(!only.status.ok);
  BOOST_TEST(only.status.offset == 0u);
}

BOOST_AUTO_TEST_CASE(base64_lone_final_character) {
  auto d = b64("TWFuT");
  BOOST_TEST(!d.status.ok);
  BOOST_TEST(d.status.offset == 5u);
  BOOST_TEST(contains(d.status.reason, "truncated"));
  auto p = b64("TWFuT===");
  BOOST_TEST(!p.status.ok);
  auto one = b64("T");
  BOOST_TEST(!one.status.ok);
  BOOST_TEST(one.status.offset == 1u);
}

BOOST_AUTO_TEST_CASE(base64_empty_input) {
  auto d = b64("");
  BOOST_TEST(d.status.ok);
  BOOST_TEST(d.bytes.empty());
  auto ws = b64(" \n\r\n ");
  BOOST_TEST(ws.status.ok);
  BOOST_TEST(ws.bytes.empty());
}

BOOST_AUTO_TEST_CASE(base64_max_decoded_is_an_upper_bound) {
  for (size_t n = 0; n < 100; ++n) {
    auto encoded = encode(all_bytes(n), false);
    BOOST_TEST(base64_max_decoded(encoded.size()) >= n);
  }
}

// -- content types
// --------------------------------------------------------------

BOOST_AUTO_TEST_CASE(content_type_classification) {
  const std::pair<const char*, body_kind> cases[] = {
      {"application/json", body_kind::json},
      {"application/json; charset=utf-8", body_kind::json},
      {"Application/JSON;charset=UTF-8", body_kind::json},
      {" application/json ", body_kind::json},
      {"image/png", body_kind::raw},
      {"IMAGE/PNG", body_kind::raw},
      {"image/jpeg", body_kind::raw},
      {"image/webp; q=1", body_kind::raw},
      {"application/octet-stream", body_kind::raw},
      {"text/plain", body_kind::unsupported},
      {"", body_kind::unsupported},
      {"image/", body_kind::unsupported},
      {"application/jsonp", body_kind::unsupported},
      {"multipart/form-data; boundary=x", body_kind::unsupported},
  };
  for (auto [type, kind] : cases)
    BOOST_TEST_CONTEXT("Content-Type: '" << type << "'") {
      BOOST_TEST(classify_content_type(type) == kind);
    }
}

BOOST_AUTO_TEST_CASE(content_codings_other_than_identity) {
  const std::pair<const char*, const char*> cases[] = {
      {"gzip", "gzip"},
      {"identity", ""},
      {"IDENTITY", ""},
      {"", ""},
      {" , ,", ""},
      {"identity, gzip", "gzip"},
      {" identity ,\tbr ", "br"},
      {"deflate, identity", "deflate"},
      {"x\x01y", "x?y"},
  };
  for (auto [value, coding] : cases)
    BOOST_TEST_CONTEXT("Content-Encoding: '" << value << "'") {
      BOOST_TEST(coding_other_than_identity(value) == coding);
    }
}

// -- JSON submissions
// -----------------------------------------------------------

BOOST_AUTO_TEST_CASE(json_minimal) {
  auto res = decode_json(R"({"imageData": "TWFu"})");
  BOOST_REQUIRE(res.ok());
  BOOST_TEST(res->image == "Man");
  BOOST_TEST(!res->options.width);
  BOOST_TEST(!res->options.height);
  BOOST_TEST(!res->options.mode);
  BOOST_TEST(!res->options.format);
  BOOST_TEST(!res->options.quality);
}

// The io thread's parser frees its buffers after a document over 4 MiB:
// the next documents, large and small, still parse on the same thread.
BOOST_AUTO_TEST_CASE(json_parser_after_a_large_document) {
  for (size_t size :
       {size_t{6u << 20}, size_t{100}, size_t{5u << 20}, size_t{10}}) {
    BOOST_TEST_CONTEXT("image bytes " << size) {
      auto plain = all_bytes(size);
      auto res = decode_json(R"({"width": 7, "imageData":")" + encode(plain) +
                             R"("})");
      BOOST_REQUIRE(res.ok());
      BOOST_TEST((res->image == plain));
      BOOST_TEST((res->options.width == 7));
    }
  }
}

BOOST_AUTO_TEST_CASE(json_binary_image_round_trips) {
  auto plain = all_bytes(3000);
  auto res = decode_json(R"({"imageData":")" + encode(plain) + "\"}");
  BOOST_REQUIRE(res.ok());
  BOOST_TEST(res->image == plain);
  // Without padding as well.
  auto unpadded = all_bytes(3001);
  auto res2 =
      decode_json(R"({"imageData":")" + encode(unpadded, false) + "\"}");
  BOOST_REQUIRE(res2.ok());
  BOOST_TEST(res2->image == unpadded);
}

BOOST_AUTO_TEST_CASE(json_all_options) {
  auto res = decode_json(R"({"imageData": "TWE=", "width": 300,
    "height": 200, "mode": "fit", "format": "webp", "quality": 70})");
  BOOST_REQUIRE(res.ok());
  BOOST_TEST(res->image == "Ma");
  auto& o = res->options;
  BOOST_TEST((o.width == 300));
  BOOST_TEST((o.height == 200));
  BOOST_TEST((o.mode == std::string{"fit"}));
  BOOST_TEST((o.format == std::string{"webp"}));
  BOOST_TEST((o.quality == 70));
  // Order does not matter: options before imageData.
  auto first = decode_json(R"({"width":-5,"imageData":"TQ"})");
  BOOST_REQUIRE(first.ok());
  BOOST_TEST(first->image == "M");
  BOOST_TEST((first->options.width == -5)); // range checked by resolve
}

BOOST_AUTO_TEST_CASE(json_data_url_prefix) {
  auto res = decode_json(R"({"imageData": "data:image/png;base64,TWFu"})");
  BOOST_REQUIRE(res.ok());
  BOOST_TEST(res->image == "Man");
  auto no_b64 = decode_json(R"({"imageData": "data:image/png,TWFu"})");
  BOOST_TEST(code_of(no_b64) == error_code::invalid_base64);
}

BOOST_AUTO_TEST_CASE(json_line_wrapped_with_escapes) {
  auto res =
      decode_json(R"({"imageData": "TWFu\nTWFu\r\nTWE=\n", "width": 10})");
  BOOST_REQUIRE(res.ok());
  BOOST_TEST(res->image == "ManManMa");
  BOOST_TEST((res->options.width == 10));
  // Escaped slashes, as some JSON encoders write them.
  auto slash = decode_json(R"({"imageData": "\/\/\/\/"})");
  BOOST_REQUIRE(slash.ok());
  BOOST_TEST(slash->image == std::string(3, '\xff'));
  // A realistic client: 76-column lines joined with \n.
  auto plain = all_bytes(2000);
  auto encoded = encode(plain);
  std::string wrapped;
  for (size_t i = 0; i < encoded.size(); i += 76)
    wrapped += encoded.substr(i, 76) + "\\n";
  auto big = decode_json(R"({"imageData":")" + wrapped + "\"}");
  BOOST_REQUIRE(big.ok());
  BOOST_TEST(big->image == plain);
}

BOOST_AUTO_TEST_CASE(json_invalid) {
  const char* bodies[] = {
      "",
      "not json",
      R"({"imageData": "TWFu")",
      R"({"imageData": "TWFu",})",
      R"({"imageData" "TWFu"})",
      R"({imageData: "TWFu"})",
      R"({"imageData": "TWFu"} trailing)",
      R"({"imageData": "TWFu"}])",
  };
  for (auto body : bodies)
    BOOST_TEST_CONTEXT("body: '" << body << "'") {
      auto res = decode_json(body);
      BOOST_TEST(code_of(res) == error_code::invalid_json);
    }
}

BOOST_AUTO_TEST_CASE(json_syntax_error_names_what_and_where) {
  auto res = decode_json_submission(R"({"imageData": "TWFu" "width": 5})");
  BOOST_REQUIRE(code_of(res) == error_code::invalid_json);
  BOOST_TEST(res.error().message ==
             "body is not valid JSON: missing a comma or '}' after an object "
             "member (offset 21)");
}

BOOST_AUTO_TEST_CASE(json_raw_control_characters_are_named) {
  // Base64 wrapped with real line breaks: it was "invalid escape character
  // in string".
  auto wrapped = decode_json("{\"imageData\": \"TWFu\nTWFu\"}");
  BOOST_REQUIRE(code_of(wrapped) == error_code::invalid_json);
  BOOST_TEST(wrapped.error().message ==
             "body is not valid JSON: a raw line break inside a string "
             "(offset 19); JSON writes it escaped (\\n)");
  auto crlf = decode_json("{\"imageData\": \"TWFu\r\nTWFu\"}");
  BOOST_TEST(contains(crlf.error().message, "a raw carriage return inside "
                                            "a string (offset 19)"));
  auto tab = decode_json("{\"imageData\": \"TW\tFu\"}");
  BOOST_TEST(contains(tab.error().message, "a raw tab inside a string"));
  auto bell = decode_json("{\"imageData\": \"TW\x07"
                          "Fu\"}");
  BOOST_TEST(contains(bell.error().message,
                      "a raw control character 0x07 inside a string "
                      "(offset 17); JSON writes it escaped (\\u0007)"));
  // A real bad escape keeps RapidJSON's words.
  auto escape = decode_json(R"({"imageData": "TW\qFu"})");
  BOOST_TEST(contains(escape.error().message, "invalid escape character"));
}

// A UTF-8 byte order mark before the document is skipped (RFC 8259 §8.1);
// anywhere else, or a UTF-16 one, it is not JSON.
BOOST_AUTO_TEST_CASE(json_utf8_byte_order_mark_is_skipped) {
  auto res = decode_json_submission("\xEF\xBB\xBF{\"imageData\": \"TWFu\"}");
  BOOST_REQUIRE(res.ok());
  BOOST_TEST(res.value().image == "Man");
  auto late = decode_json_submission("\xEF\xBB\xBF{\"imageData\": \"TWFu\" x}");
  BOOST_REQUIRE(code_of(late) == error_code::invalid_json);
  BOOST_TEST(late.error().message ==
             "body is not valid JSON: missing a comma or '}' after an object "
             "member (offset 24)");
  for (std::string body : {std::string{" \xEF\xBB\xBF{}"},
                           std::string{"\xEF\xBB\xBF\xEF\xBB\xBF{}"},
                           std::string{"\xFF\xFE{\0}\0", 6}})
    BOOST_TEST(code_of(decode_json_submission(body)) ==
               error_code::invalid_json);
}

// Malformed values of unknown keys and trailing tokens are still invalid:
// the whole document is validated, not only the keys we read.
BOOST_AUTO_TEST_CASE(json_malformed_but_ignored_parts) {
  const char* bodies[] = {
      R"({"imageData": "TWFu", "x": [1,}})",
      R"({"imageData": "TWFu", "x": tru})",
      R"({"x": {"a":}, "imageData": "TWFu"})",
      R"({"imageData": "TWFu"}})",
  };
  for (auto body : bodies)
    BOOST_TEST_CONTEXT("body: '" << body << "'") {
      BOOST_TEST(code_of(decode_json(body)) == error_code::invalid_json);
    }
}

BOOST_AUTO_TEST_CASE(json_root_must_be_an_object) {
  for (auto body : {R"(["TWFu"])", R"("TWFu")", "null", "42", "true"})
    BOOST_TEST_CONTEXT("body: '" << body << "'") {
      auto res = decode_json(body);
      BOOST_TEST(code_of(res) == error_code::invalid_json);
    }
}

BOOST_AUTO_TEST_CASE(json_missing_image_data) {
  const char* bodies[] = {
      "{}",
      R"({"width": 10})",
      R"({"imagedata": "TWFu"})",
      R"({"imageData": 5})",
      R"({"imageData": null})",
      R"({"imageData": ["TWFu"]})",
      R"({"imageData": ""})",
      R"({"imageData": "\n"})",
  };
  for (auto body : bodies)
    BOOST_TEST_CONTEXT("body: '" << body << "'") {
      auto res = decode_json(body);
      BOOST_TEST(code_of(res) == error_code::missing_image_data);
    }
}

BOOST_AUTO_TEST_CASE(json_bad_base64_reports_offset) {
  // Offsets count characters of imageData's string value (after JSON
  // unescaping: "\n" is one character).
  const std::pair<const char*, const char*> cases[] = {
      {R"({"imageData": "TW!u"})", "offset 2"},
      {R"({"imageData": "TWFu TW!u"})", "offset 7"},
      {R"({"imageData": "TWFu\nTW!u"})", "offset 7"},
      {R"({"imageData": "data:image/png;base64,TW!u"})", "offset 24"},
      {R"({"imageData": "TWFuT"})", "offset 5"},
      {R"({"imageData": "TQ==TQ=="})", "offset 4"},
      {R"({"imageData": "TW\"Fu"})", "offset 2"},
  };
  for (auto [body, offset] : cases)
    BOOST_TEST_CONTEXT("body: '" << body << "'") {
      auto res = decode_json(body);
      BOOST_REQUIRE(code_of(res) == error_code::invalid_base64);
      BOOST_TEST(contains(res.error().message, offset),
                 "message: " << res.error().message);
      BOOST_TEST(contains(res.error().message, "imageData"));
    }
}

BOOST_AUTO_TEST_CASE(json_option_of_wrong_type) {
  const char* bodies[] = {
      R"({"imageData": "TWFu", "width": "100"})",
      R"({"imageData": "TWFu", "height": 1.5})",
      R"({"imageData": "TWFu", "quality": true})",
      R"({"imageData": "TWFu", "width": 1e30})",
      R"({"imageData": "TWFu", "width": [100]})",
      R"({"imageData": "TWFu", "mode": 1})",
      R"({"imageData": "TWFu", "format": {"x": "png"}})",
  };
  for (auto body : bodies)
    BOOST_TEST_CONTEXT("body: '" << body << "'") {
      auto res = decode_json(body);
      BOOST_TEST(code_of(res) == error_code::invalid_option);
    }
}

BOOST_AUTO_TEST_CASE(json_null_option_means_default) {
  auto res = decode_json(R"({"imageData": "TWFu", "width": null,
    "height": null, "mode": null, "format": null, "quality": null})");
  BOOST_REQUIRE(res.ok());
  BOOST_TEST(!res->options.width);
  BOOST_TEST(!res->options.height);
  BOOST_TEST(!res->options.mode);
  BOOST_TEST(!res->options.format);
  BOOST_TEST(!res->options.quality);
}

BOOST_AUTO_TEST_CASE(json_duplicate_keys_last_wins) {
  auto res = decode_json(R"({"imageData": "TWFu", "imageData": "TQ",
    "width": 1, "width": 2})");
  BOOST_REQUIRE(res.ok());
  BOOST_TEST(res->image == "M");
  BOOST_TEST((res->options.width == 2));
  // Whatever came before: a wrong type is replaced by a later value, and
  // a later null is the default again (both used to stick: the first
  // wrong type was reported, a null left the earlier value).
  auto mended = decode_json(R"({"imageData": 5, "imageData": "TWFu",
    "width": "x", "width": 30, "mode": 7, "mode": null})");
  BOOST_REQUIRE(mended.ok());
  BOOST_TEST((mended->options.width == 30));
  BOOST_TEST(!mended->options.mode);
  auto reset = decode_json(R"({"imageData": "TWFu", "width": 300,
    "width": null, "quality": 50, "quality": null, "format": "png",
    "format": null})");
  BOOST_REQUIRE(reset.ok());
  BOOST_TEST(!reset->options.width);
  BOOST_TEST(!reset->options.quality);
  BOOST_TEST(!reset->options.format);
  // A wrong type as the last value counts; of several, the first met.
  auto broken = decode_json(R"({"imageData": "TWFu", "width": 30,
    "height": true, "width": "x", "height": 40, "quality": [1]})");
  BOOST_REQUIRE(code_of(broken) == error_code::invalid_option);
  BOOST_TEST(broken.error().message == "width must be an integer");
  auto image = decode_json(R"({"imageData": "TWFu", "imageData": null})");
  BOOST_TEST(code_of(image) == error_code::missing_image_data);
}

BOOST_AUTO_TEST_CASE(json_decoded_in_the_body_buffer) {
  // The image is the body's own buffer, decoded to its front: no copy.
  std::string body = R"({"imageData":")" + encode(all_bytes(3000)) + "\"}";
  const char* buffer = body.data();
  auto res = decode_json_submission(std::move(body));
  BOOST_REQUIRE(res.ok());
  BOOST_TEST(res->image == all_bytes(3000));
  BOOST_TEST(static_cast<const void*>(res->image.data()) ==
             static_cast<const void*>(buffer));
}

BOOST_AUTO_TEST_CASE(json_nesting_is_limited) {
  auto nested = [](int levels) {
    // the root object is the first level
    return R"({"imageData": "TWFu", "x": )" + std::string(levels - 1, '[') +
           std::string(levels - 1, ']') + "}";
  };
  BOOST_TEST(decode_json(nested(64)).ok());
  auto deep = decode_json(nested(65));
  BOOST_REQUIRE(code_of(deep) == error_code::invalid_json);
  BOOST_TEST(contains(deep.error().message, "nested deeper than 64"));
  // a hostile body: a million levels, rejected without a million frames
  auto bomb = decode_json(std::string(1000000, '['));
  BOOST_TEST(code_of(bomb) == error_code::invalid_json);
}

BOOST_AUTO_TEST_CASE(json_bytes_outside_the_grammar) {
  using namespace std::string_literals;
  const std::string bodies[] = {
      "{\"imageData\": \"TWFu\"}\0trailing"s,
      "{\"imageData\": \"TW\0Fu\"}"s,
      "{\"imageData\": \"TWFu\"\0}"s,
      "{\"imageData\": \"TWFu\", \"x\": \"\xff\xfe\"}"s,
      "{\"imageData\": \"TWFu\", \"\xc3\x28\": 1}"s,
      "{\"imageData\": \"TWFu\t\"}"s,
  };
  for (const auto& body : bodies)
    BOOST_TEST_CONTEXT("body: '" << body << "'") {
      auto res = decode_json(body);
      BOOST_TEST(code_of(res) == error_code::invalid_json);
    }
  // valid UTF-8 in other strings is fine
  auto ok = decode_json("{\"imageData\": \"TWFu\", \"note\": "
                        "\"caf\xc3\xa9 \xe2\x82\xac\"}");
  BOOST_TEST(ok.ok());
}

BOOST_AUTO_TEST_CASE(json_syntax_errors_come_before_type_errors) {
  // the whole document is checked before a wrong type is reported
  auto res = decode_json(R"({"width": "100", "imageData": "TWFu", "x": tru})");
  BOOST_TEST(code_of(res) == error_code::invalid_json);
  auto typed = decode_json(R"({"width": "100", "imageData": 5})");
  BOOST_REQUIRE(code_of(typed) == error_code::invalid_option);
  BOOST_TEST(typed.error().message == "width must be an integer");
  auto huge =
      decode_json(R"({"imageData": "TWFu", "width": 99999999999999999999})");
  BOOST_TEST(code_of(huge) == error_code::invalid_option);
}

BOOST_AUTO_TEST_CASE(json_unknown_keys_ignored) {
  auto res = decode_json(R"({"filename": "cat.png",
    "meta": {"a": [1, 2, {"b": null}], "c": "d\"e"}, "imageData": "TWFu",
    "tags": ["x", "y"], "n": 3.25, "ok": false, "height": 20})");
  BOOST_REQUIRE(res.ok());
  BOOST_TEST(res->image == "Man");
  BOOST_TEST((res->options.height == 20));
  BOOST_TEST(!res->options.width);
}

// -- options ------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(resolve_applies_defaults) {
  auto res = resolve(option_values{});
  BOOST_REQUIRE(res.ok());
  BOOST_TEST(res->width == 100);
  BOOST_TEST(res->height == 100);
  BOOST_TEST(res->mode == fit_mode::fill);
  BOOST_TEST(res->format == output_format::jpeg);
  BOOST_TEST(res->quality == 85);
  // Configured defaults are used as given.
  imaging::resize_options custom;
  custom.width = 640;
  custom.height = 480;
  custom.mode = fit_mode::fit;
  custom.format = output_format::png;
  custom.quality = 50;
  auto c = resolve_options(option_values{}, custom, default_limits, nullptr);
  BOOST_REQUIRE(c.ok());
  BOOST_TEST(c->width == 640);
  BOOST_TEST(c->height == 480);
  BOOST_TEST(c->mode == fit_mode::fit);
  BOOST_TEST(c->format == output_format::png);
  BOOST_TEST(c->quality == 50);
}

BOOST_AUTO_TEST_CASE(resolve_all_given) {
  option_values v;
  v.width = 300;
  v.height = 200;
  v.mode = "force";
  v.format = "webp";
  v.quality = 70;
  auto res = resolve(v);
  BOOST_REQUIRE(res.ok());
  BOOST_TEST(res->width == 300);
  BOOST_TEST(res->height == 200);
  BOOST_TEST(res->mode == fit_mode::force);
  BOOST_TEST(res->format == output_format::webp);
  BOOST_TEST(res->quality == 70);
  v.format = "jpg";
  BOOST_TEST(resolve(v)->format == output_format::jpeg);
}

BOOST_AUTO_TEST_CASE(resolve_one_dimension_keeps_aspect) {
  option_values w;
  w.width = 300;
  auto rw = resolve(w);
  BOOST_REQUIRE(rw.ok());
  BOOST_TEST(rw->width == 300);
  BOOST_TEST(rw->height == 0);
  option_values h;
  h.height = 50;
  auto rh = resolve(h);
  BOOST_REQUIRE(rh.ok());
  BOOST_TEST(rh->width == 0);
  BOOST_TEST(rh->height == 50);
}

BOOST_AUTO_TEST_CASE(resolve_dimension_range) {
  const int64_t max = default_limits.max_dimension;
  for (int64_t bad : {int64_t{0}, int64_t{-1}, max + 1, int64_t{1} << 40}) {
    BOOST_TEST_CONTEXT("value " << bad) {
      option_values w;
      w.width = bad;
      auto rw = resolve(w);
      BOOST_REQUIRE(code_of(rw) == error_code::invalid_option);
      BOOST_TEST(contains(rw.error().message, "width"));
      option_values h;
      h.height = bad;
      auto rh = resolve(h);
      BOOST_REQUIRE(code_of(rh) == error_code::invalid_option);
      BOOST_TEST(contains(rh.error().message, "height"));
    }
  }
  option_values edge;
  edge.width = 1;
  edge.height = max;
  auto ok = resolve(edge);
  BOOST_REQUIRE(ok.ok());
  BOOST_TEST(ok->width == 1);
  BOOST_TEST(ok->height == max);
  // The limit comes from the config.
  imaging::limits small;
  small.max_dimension = 64;
  option_values big;
  big.width = 65;
  BOOST_TEST(code_of(resolve_options(big, default_opts, small, nullptr)) ==
             error_code::invalid_option);
}

BOOST_AUTO_TEST_CASE(resolve_bad_mode_and_format) {
  option_values m;
  m.mode = "stretch";
  auto rm = resolve(m);
  BOOST_REQUIRE(code_of(rm) == error_code::invalid_option);
  BOOST_TEST(contains(rm.error().message, "mode"));
  BOOST_TEST(contains(rm.error().message, "stretch"));
  option_values f;
  f.format = "gif";
  auto rf = resolve(f);
  BOOST_REQUIRE(code_of(rf) == error_code::invalid_option);
  BOOST_TEST(contains(rf.error().message, "format"));
  option_values e;
  e.format = "";
  BOOST_TEST(code_of(resolve(e)) == error_code::invalid_option);
}

BOOST_AUTO_TEST_CASE(resolve_quality_range) {
  for (int64_t bad : {0, 101, -1}) {
    option_values q;
    q.quality = bad;
    auto res = resolve(q);
    BOOST_REQUIRE(code_of(res) == error_code::invalid_option);
    BOOST_TEST(contains(res.error().message, "quality"));
  }
  for (int64_t good : {1, 100}) {
    option_values q;
    q.quality = good;
    auto res = resolve(q);
    BOOST_REQUIRE(res.ok());
    BOOST_TEST(res->quality == good);
  }
}

BOOST_AUTO_TEST_CASE(resolve_unwritable_format) {
  option_values a;
  a.format = "avif";
  auto res = resolve(a, all_but_avif);
  BOOST_REQUIRE(code_of(res) == error_code::invalid_option);
  BOOST_TEST(contains(res.error().message, "avif"));
  // Writable: accepted.
  auto ok = resolve(a, everything);
  BOOST_REQUIRE(ok.ok());
  BOOST_TEST(ok->format == output_format::avif);
  option_values w;
  w.format = "webp";
  BOOST_TEST(resolve(w, all_but_avif).ok());
}

BOOST_AUTO_TEST_CASE(query_options) {
  auto res = decode_query_options(params{{"width", "300"},
                                         {"height", "200"},
                                         {"quality", "90"},
                                         {"mode", "fit"},
                                         {"format", "png"}});
  BOOST_REQUIRE(res.ok());
  BOOST_TEST((res->width == 300));
  BOOST_TEST((res->height == 200));
  BOOST_TEST((res->quality == 90));
  BOOST_TEST((res->mode == std::string{"fit"}));
  BOOST_TEST((res->format == std::string{"png"}));
  auto none = decode_query_options(params{});
  BOOST_REQUIRE(none.ok());
  BOOST_TEST(!none->width);
  BOOST_TEST(!none->mode);
  // Negative numbers parse; the range is resolve_options' business.
  auto neg = decode_query_options(params{{"width", "-1"}});
  BOOST_REQUIRE(neg.ok());
  BOOST_TEST((neg->width == -1));
}

BOOST_AUTO_TEST_CASE(query_string_parameters) {
  auto res = parse_query_params("width=300&format=web%70&mode=f%69t");
  BOOST_REQUIRE(res.ok());
  BOOST_TEST((res.value() ==
              params{{"width", "300"}, {"format", "webp"}, {"mode", "fit"}}));
  // Empty parameters are nothing: RESTinio's parser refused a leading or
  // doubled '&' in its words ("invalid non-escaped char with code 0X26 at
  // pos: 0") while a trailing one passed.
  for (std::string_view query :
       {"", "&", "&width=300", "width=300&&height=5", "width=300&"})
    BOOST_TEST_CONTEXT("query '" << query << "'") {
      BOOST_TEST(parse_query_params(query).ok());
    }
  BOOST_TEST(parse_query_params("&&width=300&&").value().size() == 1u);
  // Each mistake named with its parameter, in words.
  for (auto [query, message] : std::vector<std::pair<std::string, std::string>>{
           {"width=300;height=3",
            "query string is malformed: parameters are separated by '&', not "
            "';'"},
           {"format=png&width", "query parameter 'width' has no value "
                                "(name=value)"},
           {"width==5", "query parameter 'width==5' is malformed: a '=' in a "
                        "value is written %3D"},
           {"mode=fit&width=%zz", "query parameter 'width=%zz' is malformed: "
                                  "'%' starts a percent-encoded byte (%XX); a "
                                  "'%' itself is written %25"},
           {"width=5%", "query parameter 'width=5%' is malformed: '%' starts "
                        "a percent-encoded byte (%XX); a '%' itself is "
                        "written %25"}})
    BOOST_TEST_CONTEXT("query '" << query << "'") {
      auto bad = parse_query_params(query);
      BOOST_REQUIRE(code_of(bad) == error_code::invalid_option);
      BOOST_TEST(bad.error().message == message);
    }
  // Whatever else RESTinio's parser refuses is still refused, named.
  auto other = parse_query_params("width=3 00");
  BOOST_REQUIRE(code_of(other) == error_code::invalid_option);
  BOOST_TEST(contains(other.error().message,
                      "query parameter 'width=3 00' is malformed: "));
}

BOOST_AUTO_TEST_CASE(a_query_naming_an_option) {
  for (std::string_view query :
       {"width=5", "_=1&format=png", "quality", "mode=&x=1", "height=1&"})
    BOOST_TEST(names_an_option(query), query);
  // Read as the raw-bytes path reads names (percent-decoded).
  BOOST_TEST(names_an_option("wi%64th=3"));
  for (std::string_view query :
       {"", "_=1712345", "widths=5", "utm_source=x&y", "x=width"})
    BOOST_TEST(!names_an_option(query), query);
}

BOOST_AUTO_TEST_CASE(query_options_invalid) {
  for (const char* value :
       {"abc", "12x", "", " 12", "1.5", "0x10", "99999999999999999999"}) {
    BOOST_TEST_CONTEXT("width=" << value) {
      auto res = decode_query_options(params{{"width", value}});
      BOOST_REQUIRE(code_of(res) == error_code::invalid_option);
      BOOST_TEST(contains(res.error().message, "width"));
    }
  }
  auto q = decode_query_options(params{{"quality", "high"}});
  BOOST_TEST(code_of(q) == error_code::invalid_option);
  auto unknown = decode_query_options(params{{"width", "10"}, {"size", "1"}});
  BOOST_REQUIRE(code_of(unknown) == error_code::invalid_option);
  BOOST_TEST(contains(unknown.error().message, "size"));
  auto twice = decode_query_options(
      params{{"width", "300"}, {"mode", "fit"}, {"width", "200"}});
  BOOST_REQUIRE(code_of(twice) == error_code::invalid_option);
  BOOST_TEST(twice.error().message == "width is given more than once");
}

// -- tokens and image names
// -----------------------------------------------------

BOOST_AUTO_TEST_CASE(poll_wait_parameter) {
  using std::chrono::milliseconds;
  using std::chrono::seconds;
  auto ok = [](std::optional<std::string> v) {
    auto res = decode_poll_wait(v, seconds{20});
    BOOST_TEST_REQUIRE(res.ok());
    return res.value();
  };
  BOOST_TEST(ok(std::nullopt).count() == 0);
  BOOST_TEST(ok("0").count() == 0);
  BOOST_TEST(ok("1").count() == 1000);
  BOOST_TEST(ok("20").count() == 20000);
  for (std::string bad :
       {"", "21", "-1", "1.5", "5s", " 5", "99999999999999999999"}) {
    BOOST_TEST_CONTEXT("wait='" << bad << "'") {
      auto res = decode_poll_wait(bad, seconds{20});
      BOOST_TEST_REQUIRE(!res.ok());
      BOOST_TEST((res.error().code == error_code::invalid_option));
      BOOST_TEST(
          contains(res.error().message, "wait must be whole seconds in 0..20"));
    }
  }
}

BOOST_AUTO_TEST_CASE(query_parts_split_at_each_ampersand) {
  using parts = std::vector<std::string_view>;
  BOOST_TEST((query_parts("") == parts{""}));
  BOOST_TEST((query_parts("a=1") == parts{"a=1"}));
  BOOST_TEST((query_parts("a=1&&b") == parts{"a=1", "", "b"}));
  BOOST_TEST((query_parts("a=1;b=2&") == parts{"a=1;b=2", ""}));
}

// Only wait is read from a poll's query; the rest may be anything.
BOOST_AUTO_TEST_CASE(poll_wait_value_reads_only_wait) {
  auto value = [](std::string_view q) {
    auto v = poll_wait_value(q);
    if (!v.ok())
      return v.error().code == error_code::invalid_option
                 ? "refused: " + v.error().message
                 : std::string{"other error"};
    return v.value() ? "[" + *v.value() + "]" : std::string{"none"};
  };
  BOOST_TEST(value("") == "none");
  BOOST_TEST(value("wait=5") == "[5]");
  BOOST_TEST(value("wait=") == "[]");
  BOOST_TEST(value("wait") == "[]");
  // Twice, even with the same value: refused, as a submission's options.
  BOOST_TEST(value("wait=1&wait=2") == "refused: wait is given more than once");
  BOOST_TEST(value("wait=1&x&wait=1") ==
             "refused: wait is given more than once");
  BOOST_TEST(value("wait&wait=3") == "refused: wait is given more than once");
  BOOST_TEST(value("t=12:00&wait=3") == "[3]");
  BOOST_TEST(value("nocache&wait=3&q=a+b") == "[3]");
  BOOST_TEST(value("&wait=1") == "[1]");
  BOOST_TEST(value("x=1&&wait=20&") == "[20]");
  BOOST_TEST(value("wait=abc") == "[abc]"); // refused by decode_poll_wait
  // Percent-decoded as an upload's options are; a malformed escape is left
  // as written (refused by decode_poll_wait if it is wait's).
  BOOST_TEST(value("wait=%35") == "[5]");
  BOOST_TEST(value("w%61it=5") == "[5]");
  BOOST_TEST(value("w%61it=%31%30&x=%zz") == "[10]");
  BOOST_TEST(value("wait=%3") == "[%3]");
  BOOST_TEST(value("wait=5&w%61it=6") ==
             "refused: wait is given more than once");
  for (std::string_view other :
       {"nocache", "t=12:00", "q=a+b", "cb=1,2", "a=1;wait=2", "awaits=3",
        "waiting=3", "Wait=3", "%zz", "_=1700000000000"})
    BOOST_TEST(value(other) == "none", other);
}

BOOST_AUTO_TEST_CASE(uuid_syntax) {
  BOOST_TEST(is_uuid(uuid));
  BOOST_TEST(is_uuid(uuid_upper));
  BOOST_TEST(is_uuid("00000000-0000-0000-0000-000000000000"));
  BOOST_TEST(!is_uuid(""));
  BOOST_TEST(!is_uuid(uuid.substr(1)));
  BOOST_TEST(!is_uuid(uuid + "0"));
  BOOST_TEST(!is_uuid("{" + uuid.substr(1, 34) + "}"));
  BOOST_TEST(!is_uuid("123e4567xe89b-42d3-a456-426614174000"));
  BOOST_TEST(!is_uuid("123e4567-e89b-42d3-a456-42661417400g"));
  BOOST_TEST(!is_uuid("123e4567e89b42d3a456426614174000"));
  BOOST_TEST(!is_uuid("../../../../../../../../etc/passwd00"));
  BOOST_TEST(normalize_token(uuid_upper) == uuid);
  BOOST_TEST(normalize_token(uuid) == uuid);
}

BOOST_AUTO_TEST_CASE(image_names) {
  const std::pair<const char*, output_format> good[] = {
      {".jpg", output_format::jpeg},  {".jpeg", output_format::jpeg},
      {".png", output_format::png},   {".webp", output_format::webp},
      {".avif", output_format::avif}, {".JPG", output_format::jpeg},
  };
  for (auto [ext, format] : good)
    BOOST_TEST_CONTEXT("ext " << ext) {
      auto res = parse_image_name(uuid + ext);
      BOOST_REQUIRE(res.ok());
      BOOST_TEST(res->first == uuid);
      BOOST_TEST(res->second == format);
    }
  auto upper = parse_image_name(uuid_upper + ".png");
  BOOST_REQUIRE(upper.ok());
  BOOST_TEST(upper->first == uuid); // normalized
}

BOOST_AUTO_TEST_CASE(image_names_bad_token) {
  for (std::string name :
       {std::string{"nope.jpg"}, std::string{".jpg"}, std::string{""},
        "../" + uuid + ".jpg", uuid.substr(1) + ".jpg", uuid + ".jpg.png"}) {
    BOOST_TEST_CONTEXT("name '" << name << "'") {
      BOOST_TEST(code_of(parse_image_name(name)) == error_code::invalid_token);
    }
  }
}

BOOST_AUTO_TEST_CASE(image_names_unknown_extension) {
  for (std::string ext : {".gif", ".", "", ".jp", ".tiff"})
    BOOST_TEST_CONTEXT("ext '" << ext << "'") {
      BOOST_TEST(code_of(parse_image_name(uuid + ext)) ==
                 error_code::unknown_token);
    }
}

// -- response bodies
// ------------------------------------------------------------

BOOST_AUTO_TEST_CASE(error_body_exact) {
  BOOST_TEST(error_body(failure{error_code::invalid_base64,
                                "imageData is not valid base64 (offset 7)"}) ==
             R"x({"success":false,"error":{"code":"invalid_base64",)x"
             R"x("message":"imageData is not valid base64 (offset 7)"}})x");
  BOOST_TEST(error_body(failure{error_code::queue_full, R"(say "hi" \ now)"}) ==
             R"({"success":false,"error":{"code":"queue_full",)"
             R"("message":"say \"hi\" \\ now"}})");
  // Control characters are escaped: the body stays one valid JSON line.
  auto body = error_body(failure{error_code::invalid_option, "a\nb\tc"});
  BOOST_TEST(!contains(body, "\n"));
  auto doc = parse_json(body);
  BOOST_TEST(str(doc["error"]["message"]) == "a\nb\tc");
  // Bytes that are not UTF-8 (a raw path "/\xff\xfe") become U+FFFD: the
  // body is JSON text (RFC 8259 §8.1).
  body = error_body(failure{error_code::not_found, "no route /\xff\xfe"});
  BOOST_TEST(body.find('\xff') == std::string::npos);
  doc = parse_json(body);
  BOOST_TEST(str(doc["error"]["message"]) ==
             "no route /\xef\xbf\xbd\xef\xbf\xbd");
}

BOOST_AUTO_TEST_CASE(accepted_body_shape) {
  auto doc = parse_json(accepted_body(uuid));
  BOOST_TEST(doc["success"].IsTrue());
  BOOST_TEST(str(doc["token"]) == uuid);
}

BOOST_AUTO_TEST_CASE(status_body_pending) {
  auto doc = parse_json(status_body(sample_record(task_status::pending), ""));
  BOOST_TEST(str(doc["status"]) == "PENDING");
  BOOST_REQUIRE(doc.HasMember("resized_image_url"));
  BOOST_TEST(doc["resized_image_url"].IsNull());
  BOOST_TEST(str(doc["submitted_at"]) == "2026-11-29T05:40:01.123Z");
  BOOST_TEST(!doc.HasMember("finished_at"));
  BOOST_TEST(!doc.HasMember("error"));
  BOOST_TEST(!doc.HasMember("width"));
  BOOST_TEST(!doc.HasMember("bytes"));
  auto prog = parse_json(
      status_body(sample_record(task_status::in_progress), "http://h"));
  BOOST_TEST(str(prog["status"]) == "IN_PROGRESS");
  BOOST_TEST(prog["resized_image_url"].IsNull());
}

BOOST_AUTO_TEST_CASE(status_body_success) {
  auto rec = sample_record(task_status::success);
  auto rel = parse_json(status_body(rec, ""));
  BOOST_TEST(str(rel["status"]) == "SUCCESS");
  BOOST_TEST(str(rel["resized_image_url"]) ==
             "/api/v1/images/" + uuid + ".jpg");
  BOOST_TEST(rel["width"].GetInt() == 100);
  BOOST_TEST(rel["height"].GetInt() == 80);
  BOOST_TEST(rel["bytes"].GetUint64() == 3187u);
  BOOST_TEST(str(rel["format"]) == "jpeg");
  BOOST_TEST(str(rel["submitted_at"]) == "2026-11-29T05:40:01.123Z");
  BOOST_TEST(str(rel["finished_at"]) == "2026-11-29T05:40:01.161Z");
  BOOST_TEST(!rel.HasMember("error"));
  auto abs = parse_json(status_body(rec, "http://host:5000"));
  BOOST_TEST(str(abs["resized_image_url"]) ==
             "http://host:5000/api/v1/images/" + uuid + ".jpg");
  rec.options.format = output_format::webp;
  auto webp = parse_json(status_body(rec, "https://img.example.com"));
  BOOST_TEST(str(webp["resized_image_url"]) ==
             "https://img.example.com/api/v1/images/" + uuid + ".webp");
  BOOST_TEST(str(webp["format"]) == "webp");
  BOOST_TEST(image_path(rec) == "/api/v1/images/" + uuid + ".webp");
  // A twin's URL names its own token, never the task's whose image it
  // shares (the image route finds that one through the record).
  rec.image_token = "0f1c2f7e-9a43-4b1a-8f3e-0c2d4e5f6a7b";
  BOOST_TEST(image_path(rec) == "/api/v1/images/" + uuid + ".webp");
  BOOST_TEST(str(parse_json(status_body(rec, ""))["resized_image_url"]) ==
             "/api/v1/images/" + uuid + ".webp");
}

BOOST_AUTO_TEST_CASE(status_body_failure) {
  auto doc =
      parse_json(status_body(sample_record(task_status::failure), "http://h"));
  BOOST_TEST(str(doc["status"]) == "FAILURE");
  BOOST_TEST(doc["resized_image_url"].IsNull());
  BOOST_REQUIRE(doc.HasMember("error"));
  BOOST_REQUIRE(doc["error"].IsObject());
  BOOST_TEST(str(doc["error"]["code"]) == "corrupt_image");
  BOOST_TEST(str(doc["error"]["message"]) == "the \"image\" is broken");
  BOOST_TEST(!doc.HasMember("width"));
}

BOOST_AUTO_TEST_CASE(date_fields) {
  // RFC 9110's own example, and English names whatever the locale.
  BOOST_TEST(http_date(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT");
  BOOST_TEST(http_date(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT");
  BOOST_TEST(http_date(0) == "Thu, 01 Jan 1970 00:00:00 GMT");
  BOOST_TEST(http_date(951782400) == "Tue, 29 Feb 2000 00:00:00 GMT");
  BOOST_TEST(http_date(1796256000) == "Thu, 03 Dec 2026 00:00:00 GMT");
  BOOST_TEST(http_date_now().size() == 29u);
}

BOOST_AUTO_TEST_CASE(reason_phrases) {
  BOOST_TEST(std::string{reason_phrase(202)} == "Accepted");
  BOOST_TEST(std::string{reason_phrase(413)} == "Payload Too Large");
  BOOST_TEST(std::string{reason_phrase(415)} == "Unsupported Media Type");
  BOOST_TEST(std::string{reason_phrase(503)} == "Service Unavailable");
  // Every status an error code answers with, and the preflight's 200.
  BOOST_TEST(std::string{reason_phrase(200)} == "OK");
  for (int i = 1; i <= static_cast<int>(error_code::too_many_connections); ++i)
    BOOST_TEST_CONTEXT(to_string(static_cast<error_code>(i))) {
      BOOST_TEST(std::string{reason_phrase(
                     http_status(static_cast<error_code>(i)))} != "Unknown");
    }
}

BOOST_AUTO_TEST_SUITE_END()
