// The web page at `/` shows the node it is served from: its width/height
// bound (limits.max-dimension), its upload limit (limits.max-body-bytes, the
// page uploads raw bytes) and the output formats its libvips can write.
// Each value is checked against what the same node answers to the API.
#include <boost/test/unit_test.hpp>

#include <set>
#include <string>
#include <vector>

#include "support/fixtures.hpp"

using namespace resized::test;

namespace {

constexpr int max_dimension = 1234;
constexpr size_t max_body_bytes = 300000;

struct page_tag {
  static std::vector<std::string> args() {
    return {"--limits.max-dimension=" + std::to_string(max_dimension),
            "--limits.max-body-bytes=" + std::to_string(max_body_bytes)};
  }
  static std::string name() { return "page"; }
};

using env = suite_env<page_tag>;

resized_server& srv() {
  return env::get().server;
}

// The values of the <option>s of the page's <select id="format">.
std::set<std::string> offered_formats(const std::string& page) {
  std::set<std::string> out;
  auto begin = page.find("<select id=\"format\"");
  auto end = page.find("</select>", begin);
  if (begin == std::string::npos || end == std::string::npos)
    return out;
  const std::string marker = "<option value=\"";
  for (auto at = page.find(marker, begin); at != std::string::npos && at < end;
       at = page.find(marker, at + 1)) {
    auto from = at + marker.size();
    out.insert(page.substr(from, page.find('"', from) - from));
  }
  return out;
}

} // namespace

BOOST_AUTO_TEST_SUITE(page, *boost::unit_test::fixture<env>())

BOOST_AUTO_TEST_CASE(the_page_carries_this_nodes_limits) {
  auto res = http_get(srv().url("/"));
  BOOST_TEST_REQUIRE(res.status == 200);
  BOOST_TEST(res.header("content-type").rfind("text/html", 0) == 0);
  const auto& page = res.body;
  // Both the width and the height input.
  auto max_attr = "max=\"" + std::to_string(max_dimension) + "\"";
  BOOST_TEST(occurrences(page, max_attr) == 2u);
  BOOST_TEST(occurrences(page, "max=\"4096\"") == 0u);
  BOOST_TEST(occurrences(page, "data-max-bytes=\"" +
                                   std::to_string(max_body_bytes) + "\"") ==
             1u);
  BOOST_TEST(page.find("{{") == std::string::npos); // nothing left unfilled
  // /static/index.html is the same page, never the template.
  auto same = http_get(srv().url("/static/index.html"));
  BOOST_TEST(same.status == 200);
  BOOST_TEST((same.body == page));
  BOOST_TEST(same.header("etag") == res.header("etag"));
}

// The bounds the page shows are the ones the API enforces.
BOOST_AUTO_TEST_CASE(the_limits_shown_are_the_limits_enforced) {
  auto at_max = submit_raw(srv(), small_photo_bytes(), "image/jpeg",
                           "?mode=fit&width=" + std::to_string(max_dimension));
  BOOST_TEST(!accepted_token(at_max).empty());
  auto over_max =
      submit_raw(srv(), small_photo_bytes(), "image/jpeg",
                 "?mode=fit&width=" + std::to_string(max_dimension + 1));
  check_error(over_max, 400, "invalid_option");
  // A body of exactly the limit is read (and is no image); one byte more is
  // refused before anything is decoded.
  auto at_limit = submit_raw(srv(), garbage_bytes(max_body_bytes),
                             "application/octet-stream");
  check_error(at_limit, 415, "unsupported_format");
  auto over_limit = submit_raw(srv(), garbage_bytes(max_body_bytes + 1),
                               "application/octet-stream");
  check_error(over_limit, 413, "payload_too_large");
}

// The format menu offers what this node writes: a format is offered if and
// only if a submission asking for it is accepted and succeeds.
BOOST_AUTO_TEST_CASE(the_formats_offered_are_the_formats_written) {
  auto offered = offered_formats(http_get(srv().url("/")).body);
  BOOST_TEST_MESSAGE("offered: " << offered.size() << " formats");
  // Every libvips build writes these three.
  for (const std::string format : {"jpeg", "png", "webp"})
    BOOST_TEST(offered.count(format) == 1u, format << " is offered");
  for (const std::string format : {"jpeg", "png", "webp", "avif"}) {
    BOOST_TEST_CONTEXT("format " << format) {
      auto res = submit_raw(srv(), small_photo_bytes(), "image/jpeg",
                            "?width=60&height=40&format=" + format);
      if (offered.count(format) == 0) {
        check_error(res, 400, "invalid_option");
        continue;
      }
      auto token = accepted_token(res);
      BOOST_TEST_REQUIRE(!token.empty());
      auto out = finish(srv(), token, std::chrono::seconds{60});
      BOOST_TEST(out.info.format == format);
    }
  }
  BOOST_TEST(offered.size() <= 4u);
}

// The page is rendered from the node's config: another config, another
// page and another ETag, so a cache never keeps one node's page for another
// node's.
BOOST_AUTO_TEST_CASE(another_config_gives_another_etag) {
  auto ours = http_get(srv().url("/"));
  BOOST_TEST_REQUIRE(ours.status == 200);
  resized_server other{env::get().redis.port(), {}, "page-default"};
  auto theirs = http_get(other.url("/"));
  BOOST_TEST_REQUIRE(theirs.status == 200);
  BOOST_TEST(theirs.body.find("max=\"4096\"") != std::string::npos);
  BOOST_TEST((theirs.body != ours.body));
  BOOST_TEST(theirs.header("etag") != ours.header("etag"));
  // Revalidating one node's page at the other gets the other's page.
  auto cross =
      http_get(other.url("/"), {"If-None-Match: " + ours.header("etag")});
  BOOST_TEST(cross.status == 200);
  BOOST_TEST((cross.body == theirs.body));
  auto again =
      http_get(srv().url("/"), {"If-None-Match: " + ours.header("etag")});
  BOOST_TEST(again.status == 304);
}

// The page's long poll asks for ?wait= at most the node's http.max-poll-wait,
// which the page carries (app.js takes min(1, it), and polls plainly at 0):
// a wait over the node's maximum is refused, and a page that sent one saw
// "Rejected" for a task that succeeded.
BOOST_AUTO_TEST_CASE(the_page_carries_the_nodes_longest_poll_wait) {
  auto ours = http_get(srv().url("/"));
  BOOST_TEST_REQUIRE(ours.status == 200);
  BOOST_TEST(occurrences(ours.body, "data-max-poll-wait=\"20\"") == 1u);
  resized_server no_wait{
      env::get().redis.port(), {"--http.max-poll-wait=0"}, "page-no-wait"};
  auto page = http_get(no_wait.url("/"));
  BOOST_TEST_REQUIRE(page.status == 200);
  BOOST_TEST(occurrences(page.body, "data-max-poll-wait=\"0\"") == 1u);
  BOOST_TEST(page.body.find("{{") == std::string::npos);
  // What the page would send there: ?wait=1 is refused, a plain poll is
  // answered and reaches SUCCESS.
  auto token = accepted_token(
      submit_raw(no_wait, small_photo_bytes(), "image/jpeg", "?width=60"));
  BOOST_TEST_REQUIRE(!token.empty());
  check_error(http_get(no_wait.url("/api/v1/resize/" + token + "?wait=1")), 400,
              "invalid_option");
  auto last = wait_final(no_wait, token, std::chrono::seconds{60});
  BOOST_TEST(last.status == "SUCCESS");
}

BOOST_AUTO_TEST_SUITE_END()
