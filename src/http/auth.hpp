// API keys: who may submit and poll (API.md "Auth"). Pure functions, so
// the rules are unit-tested without HTTP.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace resized::http {

/// True when `a` equals `b`, in time that depends only on the lengths (the
/// longer one is scanned fully): no timing signal about how much matched.
bool constant_time_equal(std::string_view a, std::string_view b);

/// The key a request presents: `Authorization: Bearer <key>` (scheme
/// case-insensitive) or else `X-API-Key: <key>`; nullopt when neither.
std::optional<std::string_view>
presented_key(std::optional<std::string_view> authorization,
              std::optional<std::string_view> x_api_key);

/// True when `key` matches one of `keys`; every key is compared, so the
/// time does not reveal which one matched.
bool key_accepted(std::string_view key, const std::vector<std::string>& keys);

} // namespace resized::http
