// CORS origins (common/cors.hpp): what http.cors-origins accepts, and which
// request Origin gets which Access-Control-Allow-Origin.
#include <boost/test/unit_test.hpp>

#include "common/cors.hpp"

using namespace resized;

namespace {

std::string norm(std::string_view text) {
  auto o = normalize_origin(text);
  return o ? *o : "<none>";
}

} // namespace

BOOST_AUTO_TEST_SUITE(cors)

BOOST_AUTO_TEST_CASE(origins_are_normalized_as_browsers_send_them) {
  BOOST_TEST(norm("https://app.example.com") == "https://app.example.com");
  BOOST_TEST(norm(" HTTPS://App.Example.COM ") == "https://app.example.com");
  BOOST_TEST(norm("http://localhost:3000") == "http://localhost:3000");
  // Default ports are left out of a serialized origin.
  BOOST_TEST(norm("https://app.example.com:443") == "https://app.example.com");
  BOOST_TEST(norm("http://app.example.com:80") == "http://app.example.com");
  BOOST_TEST(norm("http://app.example.com:443") ==
             "http://app.example.com:443");
  BOOST_TEST(norm("http://127.0.0.1:8080") == "http://127.0.0.1:8080");
  BOOST_TEST(norm("http://[::1]:8080") == "http://[::1]:8080");
  BOOST_TEST(norm("http://[::1]") == "http://[::1]");
}

BOOST_AUTO_TEST_CASE(what_is_not_an_origin_is_refused) {
  for (const char* bad : {
           "",
           "*",
           "null",
           "app.example.com",                 // no scheme
           "ftp://app.example.com",           // not http(s)
           "https://",                        // no host
           "https://app.example.com/",        // a path, even "/"
           "https://app.example.com/page",    //
           "https://app.example.com?q=1",     //
           "https://user@app.example.com",    // credentials
           "https://app.example.com:",        // empty port
           "https://app.example.com:0",       //
           "https://app.example.com:65536",   //
           "https://app.example.com:080",     // leading zero
           "https://app.example.com:8080x",   //
           "https://app..example.com",        // empty label
           "https://-app.example.com",        // hyphen at a label's edge
           "https://app_1.example.com",       // underscore
           "https://[::1",                    // unclosed literal
           "https://[not-v6]:80",             //
           "https://app.example.com:80:80",   //
           "https://app.example.com\r\nX: y", // header injection
       })
    BOOST_TEST_CONTEXT("'" << bad << "'") {
      BOOST_TEST(!normalize_origin(bad).has_value());
    }
}

BOOST_AUTO_TEST_CASE(an_address_with_a_nul_inside_is_refused) {
  // inet_pton stops at a NUL: "[::0" would pass for the whole literal
  // (found by fuzz/cors_origin.cpp).
  using namespace std::string_literals;
  BOOST_TEST(!normalize_origin("http://[::0\0\0]:8080"s).has_value());
  BOOST_TEST(!normalize_origin("http://[::1%eth0]"s).has_value());
}

BOOST_AUTO_TEST_CASE(listed_origins_get_themselves_back) {
  cors_policy p;
  p.origins = {"https://app.example.com", "http://localhost:3000"};
  BOOST_TEST(p.enabled());
  BOOST_TEST(allowed_origin(p, "https://app.example.com").value() ==
             "https://app.example.com");
  BOOST_TEST(allowed_origin(p, "http://localhost:3000").value() ==
             "http://localhost:3000");
  // The same origin written with its default port still matches; the
  // answer repeats the request's value, which the browser compares.
  BOOST_TEST(allowed_origin(p, "https://app.example.com:443").value() ==
             "https://app.example.com:443");
  for (const char* other :
       {"https://evil.example", "http://app.example.com",
        "https://app.example.com:8443", "http://localhost:3001", "null", ""})
    BOOST_TEST_CONTEXT(other) {
      BOOST_TEST(!allowed_origin(p, other).has_value());
    }
}

BOOST_AUTO_TEST_CASE(a_star_allows_every_origin) {
  cors_policy p;
  p.any = true;
  BOOST_TEST(allowed_origin(p, "https://anyone.example").value() == "*");
  BOOST_TEST(allowed_origin(p, "null").value() == "*");
}

BOOST_AUTO_TEST_CASE(no_policy_allows_nothing) {
  cors_policy p;
  BOOST_TEST(!p.enabled());
  BOOST_TEST(!allowed_origin(p, "https://app.example.com").has_value());
}

BOOST_AUTO_TEST_SUITE_END()
