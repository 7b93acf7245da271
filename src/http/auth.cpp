#include "http/auth.hpp"

#include "common/text.hpp"

namespace resized::http {

bool constant_time_equal(std::string_view a, std::string_view b) {
  auto n = a.size() > b.size() ? a.size() : b.size();
  unsigned diff = a.size() == b.size() ? 0u : 1u;
  for (size_t i = 0; i < n; ++i) {
    auto x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0u;
    auto y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0u;
    diff |= x ^ y;
  }
  return diff == 0;
}

std::optional<std::string_view>
presented_key(std::optional<std::string_view> authorization,
              std::optional<std::string_view> x_api_key) {
  if (authorization) {
    auto v = *authorization;
    constexpr std::string_view scheme = "bearer ";
    if (v.size() > scheme.size() &&
        equals_nocase(v.substr(0, scheme.size()), scheme)) {
      v.remove_prefix(scheme.size());
      while (!v.empty() && v.front() == ' ')
        v.remove_prefix(1);
      while (!v.empty() && v.back() == ' ')
        v.remove_suffix(1);
      if (!v.empty())
        return v;
    }
  }
  if (x_api_key && !x_api_key->empty())
    return x_api_key;
  return std::nullopt;
}

std::optional<size_t> matching_key(std::string_view key,
                                   const std::vector<std::string>& keys) {
  std::optional<size_t> found;
  for (size_t i = 0; i < keys.size(); ++i)
    if (constant_time_equal(key, keys[i]) && !found) // no early exit
      found = i;
  return found;
}

} // namespace resized::http
