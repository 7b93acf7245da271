// The one logging adapter: logfmt lines built with fmt, level checked before
// anything is formatted. Used by the actors, main and RESTinio's logger slot.
//
//   ts=2026-11-29T05:40:01.123Z level=info msg="task done" token=... ms=38
#pragma once

#include <atomic>
#include <string>
#include <string_view>

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

/// Output format: logfmt (default) or JSON lines. Callers always build
/// logfmt; with json each line is converted field by field when written.
enum class format : int { logfmt = 0, json };

/// Parses "logfmt" or "json".
bool parse_format(std::string_view text, format& out);
void set_format(format fmt);

/// Writes one line (adds ts= and level=); thread-safe, one write(2) per line.
void write(level lvl, std::string_view line);

/// A logfmt line (key=value or key="quoted value" pairs) as one JSON object,
/// keys in order, values as strings; a value without a key is kept under
/// "msg".
std::string logfmt_to_json(std::string_view line);

/// Quotes a logfmt value when it contains spaces, quotes or '='.
std::string quote(std::string_view value);

template <class... Ts>
void emit(level lvl, fmt::format_string<Ts...> format, Ts&&... xs) {
  if (enabled(lvl))
    write(lvl, fmt::format(format, std::forward<Ts>(xs)...));
}

template <class... Ts>
void debug(fmt::format_string<Ts...> format, Ts&&... xs) {
  emit(level::debug, format, std::forward<Ts>(xs)...);
}

template <class... Ts>
void info(fmt::format_string<Ts...> format, Ts&&... xs) {
  emit(level::info, format, std::forward<Ts>(xs)...);
}

template <class... Ts>
void warn(fmt::format_string<Ts...> format, Ts&&... xs) {
  emit(level::warn, format, std::forward<Ts>(xs)...);
}

template <class... Ts>
void error(fmt::format_string<Ts...> format, Ts&&... xs) {
  emit(level::error, format, std::forward<Ts>(xs)...);
}

} // namespace resized::log
