#include "common/log.hpp"

#include <cmath>
#include <utility>

#include <unistd.h>

#include <fmt/format.h>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "common/task_record.hpp"

namespace resized::log {

namespace {

std::atomic<int> current{static_cast<int>(level::info)};
std::atomic<int> current_format{static_cast<int>(format::logfmt)};

constexpr std::string_view names[] = {"trace", "debug", "info",
                                      "warn",  "error", "off"};

} // namespace

bool parse(std::string_view text, level& out) {
  for (int i = 0; i < 6; ++i) {
    if (names[i] == text) {
      out = static_cast<level>(i);
      return true;
    }
  }
  return false;
}

level threshold() {
  return static_cast<level>(current.load(std::memory_order_relaxed));
}

void set_threshold(level lvl) {
  current.store(static_cast<int>(lvl), std::memory_order_relaxed);
}

bool parse_format(std::string_view text, format& out) {
  if (text == "logfmt")
    out = format::logfmt;
  else if (text == "json")
    out = format::json;
  else
    return false;
  return true;
}

void set_format(format f) {
  current_format.store(static_cast<int>(f), std::memory_order_relaxed);
}

namespace {

// The bytes a UTF-8 sequence may continue with after its lead byte `lead`
// (Unicode 15, table 3-7): the second byte's range is narrower after E0,
// ED, F0 and F4 (no overlongs, no surrogates, nothing above U+10FFFF).
struct utf8_lead {
  int length; // 0: not a lead byte
  unsigned char second_lo, second_hi;
};

utf8_lead lead_of(unsigned char c) {
  if (c < 0x80)
    return {1, 0, 0};
  if (c < 0xC2)
    return {0, 0, 0}; // a continuation byte or an overlong lead C0/C1
  if (c < 0xE0)
    return {2, 0x80, 0xBF};
  if (c == 0xE0)
    return {3, 0xA0, 0xBF};
  if (c == 0xED)
    return {3, 0x80, 0x9F};
  if (c < 0xF0)
    return {3, 0x80, 0xBF};
  if (c == 0xF0)
    return {4, 0x90, 0xBF};
  if (c < 0xF4)
    return {4, 0x80, 0xBF};
  if (c == 0xF4)
    return {4, 0x80, 0x8F};
  return {0, 0, 0}; // F5..FF: never in UTF-8
}

// The length of the well-formed sequence at `text[i]`, or 0 when it is
// ill-formed; `bad` is then the length of its maximal subpart (the bytes
// that one U+FFFD replaces: at least 1).
size_t sequence_at(std::string_view text, size_t i, size_t& bad) {
  auto c = static_cast<unsigned char>(text[i]);
  auto lead = lead_of(c);
  if (lead.length == 1)
    return 1;
  bad = 1;
  if (lead.length == 0)
    return 0;
  for (int k = 1; k < lead.length; ++k) {
    if (i + k >= text.size())
      return 0;
    auto b = static_cast<unsigned char>(text[i + k]);
    auto lo = k == 1 ? lead.second_lo : 0x80;
    auto hi = k == 1 ? lead.second_hi : 0xBF;
    if (b < lo || b > hi)
      return 0;
    bad = k + 1;
  }
  return static_cast<size_t>(lead.length);
}

} // namespace

std::string_view valid_utf8(std::string_view text, std::string& scratch) {
  size_t i = 0;
  size_t bad = 0;
  size_t n = 0;
  while (i < text.size() && (n = sequence_at(text, i, bad)) != 0)
    i += n;
  if (i == text.size())
    return text; // the common case: nothing to copy
  scratch.assign(text.data(), i);
  while (i < text.size()) {
    if ((n = sequence_at(text, i, bad)) != 0) {
      scratch.append(text.data() + i, n);
      i += n;
    } else {
      scratch += "\xEF\xBF\xBD"; // U+FFFD
      i += bad;
    }
  }
  return scratch;
}

namespace {

std::string real_text(const field& f) {
  return fmt::format("{:.{}f}", f.real(), f.decimals());
}

void put_logfmt(std::string& out, const field& f) {
  out += ' ';
  out += f.key();
  out += '=';
  switch (f.type()) {
  case field::kind::text:
    out += quote(f.text());
    break;
  case field::kind::integer:
    out += std::to_string(f.integer());
    break;
  case field::kind::unsigned_integer:
    out += std::to_string(f.unsigned_integer());
    break;
  case field::kind::real:
    out += real_text(f);
    break;
  case field::kind::boolean:
    out += f.boolean() ? "true" : "false";
    break;
  }
}

// Code points that break or disguise a line though they are no ASCII
// control character, at `text[i]` of valid UTF-8: C1 controls (U+0080..
// U+009F; U+0085 is a line break to many log tools, U+009B a terminal's
// CSI), the line and paragraph separators U+2028/U+2029, and the
// direction marks, embeddings and isolates (U+200E/F, U+202A..E,
// U+2066..9), which reorder what a viewer shows. Their UTF-8 length, 0 for
// anything else; `cp` the code point.
size_t disguising_at(std::string_view text, size_t i, uint32_t& cp) {
  auto at = [&](size_t k) {
    return i + k < text.size() ? static_cast<unsigned char>(text[i + k]) : 0;
  };
  if (at(0) == 0xC2 && at(1) >= 0x80 && at(1) <= 0x9F) {
    cp = at(1);
    return 2;
  }
  if (at(0) != 0xE2 || (at(1) != 0x80 && at(1) != 0x81))
    return 0;
  cp = 0x2000u | ((at(1) & 0x3Fu) << 6) | (at(2) & 0x3Fu);
  bool bad = cp == 0x200E || cp == 0x200F || (cp >= 0x2028 && cp <= 0x202E) ||
             (cp >= 0x2066 && cp <= 0x2069);
  return bad ? 3 : 0;
}

using json_writer = rapidjson::Writer<rapidjson::StringBuffer>;

// RapidJSON's writer copies bytes as they are: ill-formed UTF-8 (a raw
// request line, a file name) would make the line invalid JSON.
void put_json_string(json_writer& out, std::string_view text) {
  std::string scratch;
  text = valid_utf8(text, scratch);
  out.String(text.data(), static_cast<rapidjson::SizeType>(text.size()));
}

void put_json(json_writer& out, const field& f) {
  out.Key(f.key().data(), static_cast<rapidjson::SizeType>(f.key().size()));
  switch (f.type()) {
  case field::kind::text:
    put_json_string(out, f.text());
    break;
  case field::kind::integer:
    out.Int64(f.integer());
    break;
  case field::kind::unsigned_integer:
    out.Uint64(f.unsigned_integer());
    break;
  case field::kind::real:
    if (std::isfinite(f.real())) {
      auto text = real_text(f); // the same digits as in logfmt
      out.RawValue(text.data(), text.size(), rapidjson::kNumberType);
    } else {
      out.Null();
    }
    break;
  case field::kind::boolean:
    out.Bool(f.boolean());
    break;
  }
}

} // namespace

std::string format_line(format fmt, std::string_view ts, level lvl,
                        std::string_view msg, fields fs) {
  auto lvl_name = names[static_cast<int>(lvl)];
  if (fmt == format::json) {
    rapidjson::StringBuffer buf;
    json_writer out{buf};
    out.StartObject();
    out.Key("ts");
    put_json_string(out, ts);
    out.Key("level");
    put_json_string(out, lvl_name);
    out.Key("msg");
    put_json_string(out, msg);
    for (const auto& f : fs)
      put_json(out, f);
    out.EndObject();
    // RapidJSON writes those code points as they are (valid JSON, but a
    // tool that splits lines at U+2028 or U+0085 breaks the line): as
    // \uXXXX they are the same string. They are only ever in strings.
    // Copied a run at a time, and only when there is one to escape.
    std::string_view line{buf.GetString(), buf.GetSize()};
    std::string escaped;
    size_t copied = 0;
    uint32_t cp = 0;
    for (size_t i = 0; i < line.size();) {
      if (auto n = disguising_at(line, i, cp)) {
        escaped.append(line.substr(copied, i - copied));
        escaped += fmt::format("\\u{:04x}", cp);
        i += n;
        copied = i;
      } else {
        ++i;
      }
    }
    if (copied == 0)
      return std::string{line};
    escaped.append(line.substr(copied));
    return escaped;
  }
  auto out = fmt::format("ts={} level={} msg={}", ts, lvl_name, quote(msg));
  for (const auto& f : fs)
    put_logfmt(out, f);
  return out;
}

void write(level lvl, std::string_view msg, fields fs) {
  auto fmt =
      static_cast<format>(current_format.load(std::memory_order_relaxed));
  auto out = format_line(fmt, format_timestamp(now_ms()), lvl, msg, fs);
  out += '\n';
  // One write(2) per line keeps lines whole across threads without a lock.
  auto rc = ::write(STDERR_FILENO, out.data(), out.size());
  static_cast<void>(rc);
}

std::string quote(std::string_view value) {
  std::string scratch;
  value = valid_utf8(value, scratch);
  auto control = [](char c) {
    return static_cast<unsigned char>(c) < 0x20 || c == '\x7f';
  };
  uint32_t cp = 0;
  bool plain = !value.empty();
  for (size_t i = 0; i < value.size() && plain; ++i) {
    char c = value[i];
    if (c == ' ' || c == '"' || c == '=' || c == '\\' || control(c) ||
        disguising_at(value, i, cp) != 0)
      plain = false;
  }
  if (plain)
    return std::string{value};
  std::string out;
  out.reserve(value.size() + 2);
  out += '"';
  for (size_t i = 0; i < value.size(); ++i) {
    char c = value[i];
    if (auto n = disguising_at(value, i, cp)) {
      out += fmt::format("\\u{:04x}", cp); // as a client cannot fake a line
      i += n - 1;
    } else if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += ' '; // a message's line break: the line stays one line
    } else if (c == '\t') {
      out += "\\t";
    } else if (control(c)) {
      // A carriage return or an escape sequence from a client (a path, a
      // header) must not rewrite the terminal or fake a line in a viewer.
      out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
    } else {
      out += c;
    }
  }
  out += '"';
  return out;
}

uint64_t throttle::note(int key, clock::time_point now) {
  std::lock_guard<std::mutex> lock{mutex_};
  auto& e = keys_[key];
  ++e.held;
  if (e.written != clock::time_point{} && now - e.written < every_)
    return 0;
  e.written = now;
  return std::exchange(e.held, 0);
}

} // namespace resized::log
