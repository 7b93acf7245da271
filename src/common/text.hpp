// Small text helpers shared by the layers that read client-supplied text.
#pragma once

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

} // namespace resized
