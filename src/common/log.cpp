#include "common/log.hpp"

#include <unistd.h>

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

std::string logfmt_to_json(std::string_view line) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> out{buf};
  auto put = [&](std::string_view key, std::string_view value) {
    out.Key(key.data(), static_cast<rapidjson::SizeType>(key.size()));
    out.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
  };
  out.StartObject();
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && line[i] == ' ')
      ++i;
    if (i >= line.size())
      break;
    size_t key_start = i;
    while (i < line.size() && line[i] != '=' && line[i] != ' ')
      ++i;
    std::string_view key = line.substr(key_start, i - key_start);
    std::string value;
    if (i < line.size() && line[i] == '=') {
      ++i;
      if (i < line.size() && line[i] == '"') { // quoted: \" and \\ escapes
        ++i;
        while (i < line.size() && line[i] != '"') {
          if (line[i] == '\\' && i + 1 < line.size())
            ++i;
          value += line[i++];
        }
        ++i;
      } else {
        size_t start = i;
        while (i < line.size() && line[i] != ' ')
          ++i;
        value = std::string{line.substr(start, i - start)};
      }
    } else { // a bare word: part of the message
      value = std::string{key};
      key = "msg";
    }
    put(key, value);
  }
  out.EndObject();
  return {buf.GetString(), buf.GetSize()};
}

void write(level lvl, std::string_view line) {
  auto out = fmt::format("ts={} level={} {}\n", format_timestamp(now_ms()),
                         names[static_cast<int>(lvl)], line);
  if (current_format.load(std::memory_order_relaxed) ==
      static_cast<int>(format::json))
    out =
        logfmt_to_json(std::string_view{out}.substr(0, out.size() - 1)) + '\n';
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
