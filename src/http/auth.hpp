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

/// Which of `keys` `key` is (its index), nullopt when none; every key is
/// compared, so the time does not reveal which one matched. The index names
/// the client for its share of the queue (common/client_identity.hpp).
std::optional<size_t> matching_key(std::string_view key,
                                   const std::vector<std::string>& keys);

} // namespace resized::http
