#include "config/ini_check.hpp"

#include <algorithm>
#include <map>
#include <utility>

#include <caf/config_option.hpp>
#include <caf/config_value.hpp>
#include <caf/detail/ini_consumer.hpp>
#include <caf/detail/parser/read_ini.hpp>
#include <caf/message.hpp>
#include <caf/parser_state.hpp>
#include <caf/pec.hpp>
#include <fmt/format.h>

namespace resized::config {

namespace {

using text_state =
    caf::parser_state<std::string::const_iterator, std::string::const_iterator>;

/// One `key=value` of the file, where it stands.
struct ini_entry {
  std::string section;
  std::string key;
  int32_t line;
  caf::config_value value;
};

/// One `[section]` header (or the implicit "global" before the first one).
struct ini_section {
  std::string name;
  int32_t line;
};

/// 1-based line and column of `text[offset]`. Unlike caf::parser_state,
/// which counts a '\n' as the start of the next line, a '\n' here ends its
/// line: an error at the end of a line is reported on that line.
std::pair<int32_t, int32_t> position(const std::string& text, size_t offset) {
  int32_t line = 1;
  size_t line_start = 0;
  for (size_t i = 0; i < offset && i < text.size(); ++i)
    if (text[i] == '\n') {
      ++line;
      line_start = i + 1;
    }
  return {line, static_cast<int32_t>(offset - line_start) + 1};
}

class ini_recorder;

/// Receives the entries of one section from CAF's read_ini. Lists and maps
/// inside a value go through CAF's own ini_list_consumer/ini_map_consumer
/// (inherited begin_list/begin_map), which hand the finished value back to
/// value_impl.
class section_recorder : public caf::detail::abstract_ini_consumer {
public:
  section_recorder(ini_recorder* top, std::string section)
      : top_(top), section_(std::move(section)) {
    // nop
  }

  void key(std::string name);

  void value_impl(caf::config_value&& x) override;

  void end_map() {
    // nop: entries are recorded one by one
  }

private:
  ini_recorder* top_;
  std::string section_;
  std::string key_;
  int32_t line_ = 0;
};

/// Consumer for caf::detail::parser::read_ini that only records. CAF's
/// detail::ini_consumer would do the type checks but drops their result and
/// keeps no positions: read_ini takes any consumer of this shape, and this
/// one notes the parser's line for every section and key.
class ini_recorder {
public:
  ini_recorder(const std::string& text, const text_state& ps)
      : text_(text), ps_(ps) {
    // nop
  }

  void key(std::string name) { section_ = std::move(name); }

  section_recorder begin_map() {
    sections.push_back(ini_section{section_, line()});
    return section_recorder{this, section_};
  }

  /// Line of the parser's position (called after a key's '=' or a
  /// section's ']').
  int32_t line() const {
    return position(text_, static_cast<size_t>(ps_.i - text_.cbegin())).first;
  }

  std::vector<ini_section> sections;
  std::vector<ini_entry> entries;
  // The key whose value is being read (names it in a parser error).
  std::string current_key;
  int32_t current_key_line = 0;

private:
  const std::string& text_;
  const text_state& ps_;
  std::string section_;
};

void section_recorder::key(std::string name) {
  key_ = std::move(name);
  line_ = top_->line();
  top_->current_key = section_ + "." + key_;
  top_->current_key_line = line_;
}

void section_recorder::value_impl(caf::config_value&& x) {
  top_->entries.push_back(ini_entry{section_, key_, line_, std::move(x)});
}

/// "'a', 'b', 'c'".
std::string join_atoms(const std::vector<std::string>& atoms) {
  std::string out;
  for (auto& atom : atoms)
    out += (out.empty() ? "'" : ", '") + atom + "'";
  return out;
}

/// What a value of option `key` (CAF type `type_name`) looks like in INI.
std::string expected_form(const std::string& key, caf::string_view type_name) {
  std::string name{type_name.begin(), type_name.end()};
  if (name.rfind("uint", 0) == 0)
    return "a non-negative integer";
  if (name.rfind("int", 0) == 0)
    return "an integer";
  if (name == "boolean")
    return "true or false (unquoted)";
  if (name == "string")
    return "a string in double quotes";
  if (name == "atom") {
    auto choices = atom_choices(key);
    if (choices.empty())
      return "an atom in single quotes";
    return "an atom in single quotes: one of " + join_atoms(choices);
  }
  if (name == "timespan")
    return "a duration, e.g. 500ms or 2s";
  return "a value of type " + name;
}

/// The text of line `line` (1-based) of `text`, blanks trimmed.
std::string line_text(const std::string& text, int32_t line) {
  size_t begin = 0;
  for (int32_t i = 1; i < line && begin != std::string::npos; ++i) {
    begin = text.find('\n', begin);
    if (begin != std::string::npos)
      ++begin;
  }
  if (begin == std::string::npos || begin >= text.size())
    return {};
  auto end = text.find('\n', begin);
  auto out = text.substr(begin, end == std::string::npos ? end : end - begin);
  out.erase(0, out.find_first_not_of(" \t\r"));
  out.erase(out.find_last_not_of(" \t\r") + 1);
  return out;
}

/// The value of a `key=value` line as written: up to a comment or the
/// end, blanks trimmed (a quoted value up to its closing quote).
std::string written_value(const std::string& line) {
  auto out = line.substr(line.find('=') + 1);
  out.erase(0, out.find_first_not_of(" \t"));
  // A quoted value ends at its closing quote (';' may be inside it).
  if (!out.empty() && (out.front() == '"' || out.front() == '\'')) {
    for (size_t i = 1; i < out.size(); ++i) {
      if (out[i] == '\\')
        ++i;
      else if (out[i] == out.front())
        return out.substr(0, i + 1);
    }
    return out;
  }
  out = out.substr(0, out.find_first_of(";#"));
  out.erase(out.find_last_not_of(" \t") + 1);
  return out;
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (auto& item : items)
    out += (out.empty() ? "" : ", ") + item;
  return out;
}

// Edits (insert, delete, replace a character) between two option names.
// Written here: it is a dozen lines, and no packaged C++ library offers it
// without far more than this needs.
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j)
    row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      row[j] = std::min({above + 1, row[j - 1] + 1,
                         diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// The options a mistyped name most likely meant, at most three of the
// closest: within two edits of the name ("--http.prot"), or, for a name
// without a section, options whose key is it, starts with it, or is within
// two edits of it ("--port", "--config", "--pool").
std::vector<std::string>
similar_options(const std::string& typed,
                const caf::config_option_set& options) {
  constexpr size_t far = 3;
  auto bare = typed.find('.') == std::string::npos;
  size_t best = far;
  std::vector<std::pair<size_t, std::string>> found;
  for (const auto& opt : options) {
    std::string key{opt.long_name().begin(), opt.long_name().end()};
    std::string category{opt.category().begin(), opt.category().end()};
    auto full = category == "global" ? key : category + "." + key;
    // 0: the key itself, 1: a key starting with it, else 1 + edits.
    auto score = 1 + edit_distance(typed, full);
    if (bare)
      score = key == typed ? 0
              : key.rfind(typed, 0) == 0
                  ? 1
                  : std::min(score, 1 + edit_distance(typed, key));
    if (score <= far) {
      best = std::min(best, score);
      found.emplace_back(score, "--" + full);
    }
  }
  std::vector<std::string> names;
  for (auto& [score, name] : found)
    if (score == best && names.size() < 3)
      names.push_back(name);
  return names;
}

} // namespace

std::vector<std::string> atom_choices(const std::string& key) {
  // CAF 0.17.6: actor_system.cpp (scheduler), logger.cpp (to_level_int and
  // the console setting), middleman.cpp (network backend).
  if (key == "scheduler.policy")
    return {"stealing", "sharing"};
  if (key == "logger.verbosity" || key == "logger.file-verbosity" ||
      key == "logger.console-verbosity")
    return {"quiet", "error", "warning", "info", "debug", "trace"};
  if (key == "logger.console")
    return {"none", "colored", "uncolored"};
  if (key == "middleman.network-backend")
    return {"default"};
  return {};
}

std::string non_decimal_integer(std::string_view value) {
  auto v = value;
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t'))
    v.remove_prefix(1);
  if (!v.empty() && (v.front() == '-' || v.front() == '+'))
    v.remove_prefix(1);
  if (v.size() < 2 || v[0] != '0')
    return {};
  char next = v[1];
  if (next >= '0' && next <= '9')
    return "write integers in decimal: a leading 0 reads as octal";
  if (next == 'x' || next == 'X' || next == 'b' || next == 'B')
    return "write integers in decimal, not in hex or binary";
  return {};
}

std::map<std::string, int32_t> ini_key_lines(const std::string& text) {
  text_state ps{text.begin(), text.end()};
  ini_recorder rec{text, ps};
  caf::detail::parser::read_ini(ps, rec);
  std::map<std::string, int32_t> lines;
  if (ps.i != ps.e || ps.code != caf::pec::success)
    return lines;
  for (const auto& e : rec.entries)
    lines.emplace(e.section + "." + e.key, e.line);
  return lines;
}

std::vector<std::string> check_ini(const std::string& path,
                                   const std::string& text,
                                   const caf::config_option_set& options) {
  std::vector<std::string> errors;
  text_state ps{text.begin(), text.end()};
  ini_recorder rec{text, ps};
  caf::detail::parser::read_ini(ps, rec);
  // actor_system_config::parse_config tests only ps.i != ps.e, which misses
  // an error on a last line without '\n' (ps.i is at the end then, the
  // code says unexpected_eof): CAF would load the file without that entry.
  if (ps.i != ps.e || ps.code != caf::pec::success) {
    auto offset = static_cast<size_t>(ps.i - text.cbegin());
    auto [line_no, column] = position(text, offset);
    // CAF's reader stops at a byte order mark, or at a carriage return
    // outside a comment or a string, and names neither: a CRLF file was
    // refused for a "blank line it cannot read".
    if (text.compare(0, 3, "\xEF\xBB\xBF") == 0)
      return {fmt::format("{}:1:1: the file starts with a UTF-8 byte order "
                          "mark: save it without one (plain UTF-8)",
                          path)};
    if (auto cr = text.rfind('\r', offset);
        cr != std::string::npos && offset - cr <= 1) {
      auto [cr_line, cr_column] = position(text, cr);
      bool crlf = cr + 1 < text.size() && text[cr + 1] == '\n';
      return {fmt::format(
          "{}:{}:{}: {}: the reader takes LF line endings only; save the "
          "file with them (e.g. dos2unix, or sed -i 's/\\r$//')",
          path, cr_line, cr_column,
          crlf ? "the line ends in CR LF (Windows line endings)"
               : "a carriage return (CR) character")};
    }
    auto where = fmt::format("{}:{}:{}", path, line_no, column);
    auto code = to_string(ps.code);
    auto line = line_text(text, line_no);
    auto written = written_value(line);
    auto not_decimal = non_decimal_integer(written);
    if (!rec.current_key.empty() && rec.current_key_line == line_no &&
        !not_decimal.empty()) {
      // "09": CAF's octal reading fails on the 9.
      errors.push_back(fmt::format("{}: {} = {}: {}", where, rec.current_key,
                                   written, not_decimal));
    } else if (!rec.current_key.empty() && rec.current_key_line == line_no) {
      auto opt = options.qualified_name_lookup(rec.current_key);
      errors.push_back(fmt::format(
          "{}: {}: cannot read the value in '{}' ({}); expected {}", where,
          rec.current_key, line, code,
          opt != nullptr ? expected_form(rec.current_key, opt->type_name())
                         : std::string{"a quoted string, a number, true or "
                                       "false"}));
    } else {
      errors.push_back(fmt::format(
          "{}: cannot read '{}' ({}); expected [section] or key=value{}", where,
          line, code,
          !line.empty() && line.front() == '#'
              ? " (comments start with ';' in CAF's INI, not '#')"
              : ""));
    }
    return errors;
  }

  // Sections and keys CAF declares (our opt_groups and CAF's own), in
  // declaration order.
  std::vector<std::string> known_sections;
  std::map<std::string, std::vector<std::string>> keys_of;
  for (const auto& opt : options) {
    std::string category{opt.category().begin(), opt.category().end()};
    if (keys_of.count(category) == 0)
      known_sections.push_back(category);
    keys_of[category].emplace_back(opt.long_name().begin(),
                                   opt.long_name().end());
  }

  for (const auto& s : rec.sections)
    if (keys_of.count(s.name) == 0)
      errors.push_back(fmt::format(
          "{}:{}: unknown section '{}'{}; known sections: {}", path, s.line,
          line_text(text, s.line),
          // CAF 0.18+ spells its sections [caf.scheduler] etc.; 0.17 does not.
          s.name == "caf" ? " (CAF 0.17 has no caf. prefix: [scheduler], "
                            "[middleman], [logger])"
                          : "",
          join(known_sections)));

  std::map<std::string, int32_t> first_line;
  for (const auto& e : rec.entries) {
    auto name = e.section + "." + e.key;
    auto where = fmt::format("{}:{}", path, e.line);
    if (keys_of.count(e.section) == 0)
      continue; // reported with its section
    // CAF stores every occurrence into the option's variable (the last
    // wins) but keeps the first of a section in its settings: they would
    // disagree. Refuse rather than pick one.
    auto [first, fresh] = first_line.emplace(name, e.line);
    if (!fresh) {
      errors.push_back(fmt::format("{}: {} is set twice (first on line {})",
                                   where, name, first->second));
      continue;
    }
    auto opt = options.qualified_name_lookup(e.section, e.key);
    // help, dump-config, config-file, ...: read from a file, dump-config
    // or help made a start exit 0 without starting (or validating), and a
    // config-file there was not read.
    if (opt != nullptr && e.section == "global") {
      errors.push_back(fmt::format(
          "{}: {} is a command-line option (--{}), not a config file setting",
          where, e.key, e.key));
      continue;
    }
    if (opt == nullptr && e.section == "global") {
      // Before any [section]: its keys are command-line options only.
      errors.push_back(fmt::format(
          "{}: {} is outside any [section]: put it under its section (e.g. "
          "pool-size under [resize]; resized --help lists every key)",
          where, e.key));
      continue;
    }
    if (opt == nullptr) {
      errors.push_back(fmt::format("{}: unknown key {}; [{}] has: {}", where,
                                   name, e.section, join(keys_of[e.section])));
      continue;
    }
    // The value as written: the text after the line's '=' (CAF's rendering
    // turned "60s" into "1min" and "1e3" into "1000.000000").
    auto written = written_value(line_text(text, e.line));
    if (opt->check(e.value)) {
      errors.push_back(
          fmt::format("{}: {} = {}: expected {}", where, name,
                      written.empty() ? to_string(e.value) : written,
                      expected_form(name, opt->type_name())));
      continue;
    }
    if (caf::holds_alternative<caf::config_value::integer>(e.value)) {
      if (auto why = non_decimal_integer(written); !why.empty())
        errors.push_back(
            fmt::format("{}: {} = {}: {}", where, name, written, why));
    }
  }
  return errors;
}

std::string command_line_error(const caf::error& err,
                               const caf::config_option_set& options) {
  std::string arg;
  const auto& ctx = err.context();
  if (ctx.size() == 1 && ctx.match_element<caf::settings>(0))
    arg = caf::get_or(ctx.get_as<caf::settings>(0), "argument", std::string{});
  if (err.category() != caf::atom("parser") || arg.empty())
    return caf::to_string(err);
  auto eq = arg.find('=');
  auto name = arg.substr(0, eq);
  switch (static_cast<caf::pec>(err.code())) {
  case caf::pec::not_an_option: {
    auto similar =
        similar_options(name.substr(name.find_first_not_of('-')), options);
    std::string hint;
    for (size_t i = 0; i < similar.size(); ++i)
      hint += (i == 0                    ? "; did you mean "
               : i + 1 == similar.size() ? " or "
                                         : ", ") +
              similar[i];
    return fmt::format("{}: no such option{} (resized --help lists them)", name,
                       hint.empty() ? hint : hint + "?");
  }
  case caf::pec::missing_argument: {
    // "--redis.key-prefix=": CAF takes no empty value; an empty string is
    // written in quotes.
    const auto* opt =
        options.qualified_name_lookup(name.substr(name.find_first_not_of('-')));
    std::string type = opt != nullptr ? std::string{opt->type_name().begin(),
                                                    opt->type_name().end()}
                                      : std::string{};
    if (type == "string" && eq != std::string::npos)
      return fmt::format("{}: the value is missing; for an empty string write "
                         "{}='\"\"' (quotes the shell passes on)",
                         name, name);
    return fmt::format("{}: the value is missing ({}=<value>)", name, name);
  }
  default: {
    auto value = eq == std::string::npos ? std::string{} : arg.substr(eq + 1);
    auto long_name = name.substr(name.find_first_not_of('-'));
    const auto* opt = options.qualified_name_lookup(long_name);
    // A boolean on the command line: no quotes there to speak of.
    if (opt != nullptr && opt->is_flag())
      return fmt::format("{} = '{}': expected true or false ({}=true, "
                         "{}=false, or {} alone for true)",
                         name, value, name, name, name);
    return fmt::format("{} = '{}': expected {}", name, value,
                       opt != nullptr
                           ? expected_form(long_name, opt->type_name())
                           : std::string{"another value"});
  }
  }
}

} // namespace resized::config
