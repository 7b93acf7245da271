#include "common/log.hpp"

#include <unistd.h>

#include "common/task_record.hpp"

namespace resized::log {

namespace {

std::atomic<int> current{static_cast<int>(level::info)};

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

void write(level lvl, std::string_view line) {
  auto out = fmt::format("ts={} level={} {}\n", format_timestamp(now_ms()),
                         names[static_cast<int>(lvl)], line);
  // One write(2) per line keeps lines whole across threads without a lock.
  auto rc = ::write(STDERR_FILENO, out.data(), out.size());
  static_cast<void>(rc);
}

std::string quote(std::string_view value) {
  bool plain = !value.empty();
  for (char c : value)
    if (c == ' ' || c == '"' || c == '=' || c == '\n' || c == '\\')
      plain = false;
  if (plain)
    return std::string{value};
  std::string out;
  out.reserve(value.size() + 2);
  out += '"';
  for (char c : value) {
    if (c == '"' || c == '\\')
      out += '\\';
    out += c == '\n' ? ' ' : c;
  }
  out += '"';
  return out;
}

} // namespace resized::log
