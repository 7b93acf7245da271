// Browsers on other origins (http.cors-origins): preflights answered for
// listed origins only, and the answers of the API readable by their pages.
// The real binary over real sockets; tests/browser checks the same with a
// real browser enforcing the rules.
#include <boost/test/unit_test.hpp>

#include <sys/socket.h>

#include "support/fixtures.hpp"
#include "support/loopback.hpp"

using namespace resized::test;

namespace {

const std::string app = "https://app.example.com";
const std::string dev = "http://localhost:3000";

struct cors_tag {
  static std::vector<std::string> args() {
    return {"--http.cors-origins=" + app + ", " + dev};
  }
  static std::string name() { return "cors"; }
};

using env = suite_env<cors_tag>;

resized_server& srv() {
  return env::get().server;
}

http_response preflight(const resized_server& s, const std::string& path,
                        const std::string& origin, const std::string& method,
                        const std::string& headers = "content-type") {
  return http_request("OPTIONS", s.url(path), {},
                      {"Origin: " + origin,
                       "Access-Control-Request-Method: " + method,
                       "Access-Control-Request-Headers: " + headers});
}

// The fields an answer a page of `origin` may read carries.
void check_readable_by(const http_response& r, const std::string& origin) {
  BOOST_TEST(r.header("access-control-allow-origin") == origin);
  auto exposed = r.header("access-control-expose-headers");
  for (const char* field : {"Location", "Retry-After", "X-Request-Id", "ETag"})
    BOOST_TEST(exposed.find(field) != std::string::npos, exposed);
  BOOST_TEST(r.header("vary") == "Origin");
}

} // namespace

BOOST_AUTO_TEST_SUITE(cors, *boost::unit_test::fixture<env>())

BOOST_AUTO_TEST_CASE(a_listed_origin_passes_the_preflight_of_every_route) {
  auto token = random_uuid();
  const std::pair<std::string, std::string> routes[] = {
      {"/api/v1/resize", "POST"},
      {"/api/v1/resize/" + token, "GET"},
      {"/api/v1/images/" + token + ".jpg", "GET"},
      {"/api/v1/cluster", "GET"},
  };
  for (const auto& [path, method] : routes)
    BOOST_TEST_CONTEXT(method << " " << path) {
      auto r = preflight(srv(), path, app, method,
                         "content-type, authorization, x-api-key");
      BOOST_TEST(r.status == 200, r.body);
      BOOST_TEST(r.body.empty());
      BOOST_TEST(r.header("access-control-allow-origin") == app);
      BOOST_TEST(r.header("access-control-allow-methods") ==
                 (method == "POST" ? "POST" : "GET, HEAD"));
      auto allowed = r.header("access-control-allow-headers");
      for (const char* field : {"Authorization", "Content-Type", "X-API-Key"})
        BOOST_TEST(allowed.find(field) != std::string::npos, allowed);
      BOOST_TEST(r.header("access-control-max-age") == "600");
      BOOST_TEST(r.header("vary") == "Origin");
    }
  // The other listed origin, written with its port.
  auto r = preflight(srv(), "/api/v1/resize", dev, "POST");
  BOOST_TEST(r.status == 200, r.body);
  BOOST_TEST(r.header("access-control-allow-origin") == dev);
}

BOOST_AUTO_TEST_CASE(another_origin_is_refused_403_origin_not_allowed) {
  for (const std::string origin :
       {"https://evil.example", "http://app.example.com",
        "http://localhost:3001", "null"})
    BOOST_TEST_CONTEXT(origin) {
      auto r = preflight(srv(), "/api/v1/resize", origin, "POST");
      auto message = check_error(r, 403, "origin_not_allowed");
      BOOST_TEST(message.find("http.cors-origins") != std::string::npos,
                 message);
      // Nothing a browser would take as permission.
      BOOST_TEST(r.header("access-control-allow-origin").empty());
      BOOST_TEST(r.header("access-control-allow-methods").empty());
    }
}

BOOST_AUTO_TEST_CASE(a_method_the_route_does_not_take_is_405) {
  auto r = preflight(srv(), "/api/v1/resize", app, "DELETE");
  check_error(r, 405, "method_not_allowed");
  BOOST_TEST(r.header("allow") == "POST");
  BOOST_TEST(r.header("access-control-allow-methods").empty());
  // OPTIONS that is not a preflight (no Origin): 405 as before.
  auto plain = http_request("OPTIONS", srv().url("/api/v1/resize"));
  check_error(plain, 405, "method_not_allowed");
}

BOOST_AUTO_TEST_CASE(a_pages_journey_is_readable_by_its_origin) {
  auto posted =
      http_post(srv().url("/api/v1/resize?width=64&height=48"),
                small_photo_bytes(), "image/jpeg", {"Origin: " + app});
  auto token = accepted_token(posted);
  BOOST_TEST_REQUIRE(!token.empty());
  check_readable_by(posted, app);
  BOOST_TEST(!posted.header("location").empty());
  auto final = wait_final(srv(), token);
  BOOST_TEST_REQUIRE(final.status == "SUCCESS", final.body);
  auto status =
      http_get(srv().url("/api/v1/resize/" + token), {"Origin: " + app});
  BOOST_TEST(status.status == 200);
  check_readable_by(status, app);
  auto image = http_get(srv().url("/api/v1/images/" + token + ".jpg"),
                        {"Origin: " + dev});
  BOOST_TEST(image.status == 200);
  check_readable_by(image, dev);
  BOOST_TEST(!image.header("etag").empty());
  // Errors too: a page can read why it was refused.
  auto bad = http_post(srv().url("/api/v1/resize?width=0"), small_photo_bytes(),
                       "image/jpeg", {"Origin: " + app});
  check_error(bad, 400, "invalid_option");
  check_readable_by(bad, app);
}

BOOST_AUTO_TEST_CASE(other_origins_and_plain_clients_get_no_permission) {
  auto other =
      http_get(srv().url("/healthz"), {"Origin: https://evil.example"});
  BOOST_TEST(other.status == 200);
  BOOST_TEST(other.header("access-control-allow-origin").empty());
  // Vary all the same: a cache must not hand this answer to a listed
  // origin's page, nor the other way round.
  BOOST_TEST(other.header("vary") == "Origin");
  auto plain = http_get(srv().url("/healthz"));
  BOOST_TEST(plain.header("access-control-allow-origin").empty());
  BOOST_TEST(plain.header("vary") == "Origin");
}

BOOST_AUTO_TEST_CASE(a_preflight_needs_no_key_and_a_401_is_readable) {
  resized_server keyed(env::get().redis.port(),
                       {"--http.cors-origins=" + app,
                        "--auth.api-keys=cors-test-key-0123456789"},
                       "cors-keyed");
  auto r = preflight(keyed, "/api/v1/resize", app, "POST",
                     "content-type, authorization");
  BOOST_TEST(r.status == 200, r.body);
  auto refused = http_post(keyed.url("/api/v1/resize"), small_photo_bytes(),
                           "image/jpeg", {"Origin: " + app});
  check_error(refused, 401, "unauthorized");
  BOOST_TEST(refused.header("access-control-allow-origin") == app);
  auto ok = http_post(
      keyed.url("/api/v1/resize"), small_photo_bytes(), "image/jpeg",
      {"Origin: " + app, "Authorization: Bearer cors-test-key-0123456789"});
  BOOST_TEST(ok.status == 202, ok.body);
  BOOST_TEST(ok.header("access-control-allow-origin") == app);
}

// An upload over twice limits.max-body-bytes is refused at its header
// block by the socket, before RESTinio reads it: a page of a listed origin
// still reads that 413 (and others do not get permission).
BOOST_AUTO_TEST_CASE(a_413_before_the_body_is_read_is_readable) {
  auto over_limit = [](const std::string& origin) {
    socket_guard sock{connect_loopback(srv().port())};
    BOOST_TEST_REQUIRE(sock.fd >= 0);
    std::string error;
    BOOST_TEST_REQUIRE(send_all(sock.fd,
                                "POST /api/v1/resize HTTP/1.1\r\n"
                                "Host: t\r\nOrigin: " +
                                    origin +
                                    "\r\nContent-Type: image/jpeg\r\n"
                                    "Content-Length: 1000000000000\r\n\r\n",
                                error),
                       error);
    // The answer, then the server lingers until this side closes.
    std::string raw;
    char buf[4096];
    while (raw.find("}") == std::string::npos) {
      auto n = ::recv(sock.fd, buf, sizeof buf, 0);
      if (n <= 0)
        break;
      raw.append(buf, static_cast<size_t>(n));
    }
    return parse_http_answer(raw);
  };
  auto r = over_limit(app);
  BOOST_TEST(r.status == 413, r.body);
  BOOST_TEST(r.body.find("payload_too_large") != std::string::npos, r.body);
  check_readable_by(r, app);
  auto other = over_limit("https://elsewhere.example");
  BOOST_TEST(other.status == 413, other.body);
  BOOST_TEST(other.header("access-control-allow-origin").empty());
  BOOST_TEST(other.header("vary") == "Origin");
}

BOOST_AUTO_TEST_CASE(without_cors_origins_nothing_changes) {
  resized_server plain(env::get().redis.port(), {}, "cors-off");
  auto r = preflight(plain, "/api/v1/resize", app, "POST");
  check_error(r, 405, "method_not_allowed");
  BOOST_TEST(r.header("access-control-allow-origin").empty());
  auto got = http_get(plain.url("/healthz"), {"Origin: " + app});
  BOOST_TEST(got.header("access-control-allow-origin").empty());
  BOOST_TEST(got.header("vary").empty());
}

BOOST_AUTO_TEST_SUITE_END()
