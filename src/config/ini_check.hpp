// Checks an INI config file before CAF loads it.
//
// CAF 0.17's INI loader (actor_system_config::parse with its
// detail::ini_consumer) keeps going past three kinds of mistakes without a
// word: a value of the wrong type for a declared option (its type-mismatch
// warnings go to a private list nothing reads), a key or a section no option
// declares (stored in `content`, read by nobody), and a key set twice. Its
// parser errors carry a line and column but neither the file nor the key.
// `check_ini` reads the same text with CAF's own INI parser and checks every
// entry against the declared options, so each mistake becomes one message
// naming the file, the line and the section.key.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <caf/config_option_set.hpp>
#include <caf/error.hpp>

namespace resized::config {

/// Problems in the INI text `text` read from `path` (named in every
/// message), each entry checked against `options`: CAF's and ours alike,
/// since CAF 0.17 reads no key it does not declare. Empty = CAF will load
/// every entry of the file.
std::vector<std::string> check_ini(const std::string& path,
                                   const std::string& text,
                                   const caf::config_option_set& options);

/// The line (1-based) each `section.key` of the INI text `text` is first
/// set on, read with CAF's own INI parser as check_ini reads it. Empty when
/// the text does not parse (check_ini says why).
std::map<std::string, int32_t> ini_key_lines(const std::string& text);

/// Why the integer written `value` (a file's or a command line's text)
/// is refused: CAF 0.17 reads a leading 0 as octal ("027110" is 11848,
/// "09" fails) and 0x / 0b as hex / binary, which nobody writes in a port
/// or a size meaning that. Empty for a plain decimal.
std::string non_decimal_integer(std::string_view value);

/// The values CAF 0.17 understands for its atom option `key` (e.g.
/// "scheduler.policy": stealing, sharing); empty for a key that is not
/// one of CAF's atom options with a fixed set of values.
std::vector<std::string> atom_choices(const std::string& key);

/// A command-line mistake CAF 0.17's parser reported (`err`, category
/// "parser", its context naming the argument) in words, e.g.
/// "--resize.pool-size = 'two': expected an integer"; CAF's own rendering
/// of anything else.
std::string command_line_error(const caf::error& err,
                               const caf::config_option_set& options);

} // namespace resized::config
