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

using json_writer = rapidjson::Writer<rapidjson::StringBuffer>;

void put_json_string(json_writer& out, std::string_view text) {
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
    return {buf.GetString(), buf.GetSize()};
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
