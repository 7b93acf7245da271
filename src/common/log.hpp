// The one logging adapter: a message and typed fields per line, level
// checked before anything is written, logfmt or JSON lines on stderr. Used
// by the actors, main and RESTinio's logger slot.
//
//   log::info("task done", {{"token", token}, {"ms", 38}});
//   ts=2026-11-29T05:40:01.123Z level=info msg="task done" token=... ms=38
//   {"ts":"2026-11-29T05:40:01.123Z","level":"info","msg":"task done",
//    "token":"...","ms":38}
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <fmt/format.h>

namespace resized::log {

enum class level : int { trace = 0, debug, info, warn, error, off };

/// Parses "trace", "debug", "info", "warn", "error", "off".
bool parse(std::string_view text, level& out);

/// Current threshold (default info).
level threshold();
void set_threshold(level lvl);

inline bool enabled(level lvl) {
  return static_cast<int>(lvl) >= static_cast<int>(threshold());
}

/// Output format: logfmt (default) or JSON lines.
enum class format : int { logfmt = 0, json };

/// Parses "logfmt" or "json".
bool parse_format(std::string_view text, format& out);
void set_format(format fmt);

/// One key=value of a line. The value keeps the type it was given, so JSON
/// lines carry numbers and booleans as such and text always as a string
/// (a token or a path that looks like a number stays a string). A field
/// borrows its key and text: build fields in the call that writes them.
class field {
public:
  enum class kind : uint8_t { text, integer, unsigned_integer, real, boolean };

  field(std::string_view key, std::string_view value)
      : key_(key), kind_(kind::text), text_(value) {}
  field(std::string_view key, const char* value)
      : field(key, std::string_view{value}) {}
  field(std::string_view key, const std::string& value)
      : field(key, std::string_view{value}) {}
  field(std::string_view key, bool value)
      : key_(key), kind_(kind::boolean), b_(value) {}
  template <class T,
            std::enable_if_t<std::is_integral_v<T> && std::is_signed_v<T> &&
                                 !std::is_same_v<T, bool>,
                             int> = 0>
  field(std::string_view key, T value)
      : key_(key), kind_(kind::integer), i_(value) {}
  template <class T,
            std::enable_if_t<std::is_integral_v<T> && std::is_unsigned_v<T> &&
                                 !std::is_same_v<T, bool>,
                             int> = 0>
  field(std::string_view key, T value)
      : key_(key), kind_(kind::unsigned_integer), u_(value) {}
  /// A real number written with `decimals` digits after the point.
  field(std::string_view key, double value, int decimals = 2)
      : key_(key), kind_(kind::real), d_(value), decimals_(decimals) {}

  std::string_view key() const { return key_; }
  kind type() const { return kind_; }
  std::string_view text() const { return text_; } // kind::text
  bool boolean() const { return b_; }
  int64_t integer() const { return i_; }
  uint64_t unsigned_integer() const { return u_; }
  double real() const { return d_; }
  int decimals() const { return decimals_; }

private:
  std::string_view key_;
  kind kind_;
  std::string_view text_;
  union {
    bool b_;
    int64_t i_;
    uint64_t u_;
    double d_ = 0;
  };
  int decimals_ = 0;
};

/// The fields of one line, borrowed: a braced list written in the call
/// (the overloads below take it as a std::initializer_list parameter, whose
/// array lives until the call returns), or a vector built when some fields
/// are optional.
class fields {
public:
  fields() = default;
  fields(const field* first, const field* last) : begin_(first), end_(last) {}
  fields(const std::vector<field>& fs)
      : begin_(fs.data()), end_(fs.data() + fs.size()) {}
  const field* begin() const { return begin_; }
  const field* end() const { return end_; }

private:
  const field* begin_ = nullptr;
  const field* end_ = nullptr;
};

using field_list = std::initializer_list<field>;

/// One line as written, without the newline: ts, level, msg, then `fs` in
/// order. logfmt quotes text when needed; JSON writes text as strings
/// (escaped), numbers as numbers (non-finite reals as null), booleans as
/// true/false.
std::string format_line(format fmt, std::string_view ts, level lvl,
                        std::string_view msg, fields fs);
inline std::string format_line(format fmt, std::string_view ts, level lvl,
                               std::string_view msg, field_list fs) {
  return format_line(fmt, ts, lvl, msg, fields{fs.begin(), fs.end()});
}

/// Writes one line (now, in the current format); thread-safe, one write(2)
/// per line. Does not check the level: the helpers below do.
void write(level lvl, std::string_view msg, fields fs);
inline void write(level lvl, std::string_view msg, field_list fs = {}) {
  write(lvl, msg, fields{fs.begin(), fs.end()});
}

/// `text` itself when it is well-formed UTF-8; otherwise a copy of it in
/// `scratch`, each ill-formed sequence (its maximal subpart: a stray byte,
/// a truncated sequence, an overlong, a surrogate) replaced by U+FFFD.
/// Every line goes through it: JSON lines stay valid JSON, logfmt lines
/// valid UTF-8, whatever bytes a client sent.
std::string_view valid_utf8(std::string_view text, std::string& scratch);

/// Quotes a logfmt value when it contains spaces, quotes or '='; ill-formed
/// UTF-8 in it becomes U+FFFD.
std::string quote(std::string_view value);

inline void emit(level lvl, std::string_view msg, fields fs) {
  if (enabled(lvl))
    write(lvl, msg, fs);
}
inline void emit(level lvl, std::string_view msg, field_list fs = {}) {
  emit(lvl, msg, fields{fs.begin(), fs.end()});
}

inline void debug(std::string_view msg, field_list fs = {}) {
  emit(level::debug, msg, fs);
}
inline void debug(std::string_view msg, fields fs) {
  emit(level::debug, msg, fs);
}

inline void info(std::string_view msg, field_list fs = {}) {
  emit(level::info, msg, fs);
}
inline void info(std::string_view msg, fields fs) {
  emit(level::info, msg, fs);
}

inline void warn(std::string_view msg, field_list fs = {}) {
  emit(level::warn, msg, fs);
}
inline void warn(std::string_view msg, fields fs) {
  emit(level::warn, msg, fs);
}

inline void error(std::string_view msg, field_list fs = {}) {
  emit(level::error, msg, fs);
}
inline void error(std::string_view msg, fields fs) {
  emit(level::error, msg, fs);
}

/// Lets one line per key through every `every`, for events that come in
/// floods (a refusal per request under overload), and counts the ones held
/// back in between. Thread-safe.
class throttle {
public:
  using clock = std::chrono::steady_clock;
  explicit throttle(clock::duration every) : every_(every) {}
  /// Counts one event of `key` at `now`. Returns how many events of `key`
  /// the line to write now stands for (this one and those held back since
  /// the key's last line), or 0: hold this one back.
  uint64_t note(int key, clock::time_point now);
  int64_t every_seconds() const {
    return std::chrono::duration_cast<std::chrono::seconds>(every_).count();
  }

private:
  struct entry {
    clock::time_point written{};
    uint64_t held = 0;
  };
  clock::duration every_;
  std::mutex mutex_;
  std::map<int, entry> keys_;
};

} // namespace resized::log
