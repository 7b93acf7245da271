// Small text helpers shared by the layers that read client-supplied text.
#pragma once

#include <cctype>
#include <string_view>

namespace resized {

/// `s` without leading and trailing blanks (spaces and tabs: HTTP's OWS).
inline std::string_view trim_blanks(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

/// Whether `a` and `b` are the same ASCII text but for letter case (HTTP
/// field names, tokens and schemes).
inline bool equals_nocase(std::string_view a, std::string_view b) {
  if (a.size() != b.size())
    return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

} // namespace resized
