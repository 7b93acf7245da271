// API key checks: constant-time comparison and where a key is read from.
#include <boost/test/unit_test.hpp>

#include "http/auth.hpp"

using namespace resized::http;

BOOST_AUTO_TEST_SUITE(auth)

BOOST_AUTO_TEST_CASE(constant_time_equal_compares_whole_strings) {
  BOOST_TEST(constant_time_equal("secret-key-0001", "secret-key-0001"));
  BOOST_TEST(!constant_time_equal("secret-key-0001", "secret-key-0002"));
  BOOST_TEST(!constant_time_equal("secret-key", "secret-key-0001"));
  BOOST_TEST(!constant_time_equal("secret-key-0001", "secret-key"));
  BOOST_TEST(!constant_time_equal("", "x"));
  BOOST_TEST(constant_time_equal("", ""));
  // A NUL inside does not end the comparison.
  BOOST_TEST(!constant_time_equal(std::string_view{"ab\0c", 4},
                                  std::string_view{"ab\0d", 4}));
}

BOOST_AUTO_TEST_CASE(bearer_and_x_api_key_are_read) {
  using opt = std::optional<std::string_view>;
  BOOST_TEST(*presented_key(opt{"Bearer k1"}, std::nullopt) == "k1");
  BOOST_TEST(*presented_key(opt{"bearer   k2  "}, std::nullopt) == "k2");
  BOOST_TEST(*presented_key(std::nullopt, opt{"k3"}) == "k3");
  // Bearer wins over X-API-Key when both are sent.
  BOOST_TEST(*presented_key(opt{"Bearer k1"}, opt{"k3"}) == "k1");
  // Other schemes and empty values present no key (X-API-Key still can).
  BOOST_TEST(!presented_key(opt{"Basic dXNlcjpwYXNz"}, std::nullopt));
  BOOST_TEST(*presented_key(opt{"Basic dXNlcjpwYXNz"}, opt{"k4"}) == "k4");
  BOOST_TEST(!presented_key(opt{"Bearer "}, std::nullopt));
  BOOST_TEST(!presented_key(opt{""}, opt{""}));
  BOOST_TEST(!presented_key(std::nullopt, std::nullopt));
}

BOOST_AUTO_TEST_CASE(any_configured_key_is_accepted_and_named_by_its_index) {
  std::vector<std::string> keys{"first-key-0123456", "second-key-012345"};
  BOOST_TEST(
      (matching_key("first-key-0123456", keys) == std::optional<size_t>{0}));
  BOOST_TEST(
      (matching_key("second-key-012345", keys) == std::optional<size_t>{1}));
  BOOST_TEST(!matching_key("third-key-0123456", keys));
  BOOST_TEST(!matching_key("", keys));
  BOOST_TEST(!matching_key("first-key-0123456", {}));
  // A key listed twice is its first entry.
  keys.push_back("first-key-0123456");
  BOOST_TEST(
      (matching_key("first-key-0123456", keys) == std::optional<size_t>{0}));
}

BOOST_AUTO_TEST_SUITE_END()
