// API keys end to end: submit and poll need a key, image fetches and health
// stay open, /metrics and /api/v1/cluster close when configured, and the
// key never reaches the log.
#include <boost/test/unit_test.hpp>

#include <thread>

#include "support/fixtures.hpp"

using namespace resized::test;

namespace {

const std::string key_a = "resized-test-key-aaaaaaaa";
const std::string key_b = "resized-test-key-bbbbbbbb";

struct auth_tag {
  static std::vector<std::string> args() {
    return {"--auth.api-keys=" + key_a + "," + key_b, "--auth.protect-metrics"};
  }
  static std::string name() { return "auth"; }
};

using env = suite_env<auth_tag>;

std::string submit_body() {
  return "{\"imageData\":\"" + base64_encode(corpus_photo(small_photo)) + "\"}";
}

} // namespace

BOOST_AUTO_TEST_SUITE(auth_e2e, *boost::unit_test::fixture<env>())

BOOST_AUTO_TEST_CASE(submit_without_or_with_a_wrong_key_is_401) {
  auto& srv = env::get().server;
  auto url = srv.url("/api/v1/resize");
  auto none = http_post(url, submit_body(), "application/json");
  check_error(none, 401, "unauthorized");
  BOOST_TEST(none.header("www-authenticate").find("Bearer") == 0u);
  auto wrong = http_post(url, submit_body(), "application/json",
                         {"Authorization: Bearer " + key_a + "x"});
  check_error(wrong, 401, "unauthorized");
  auto prefix = http_post(url, submit_body(), "application/json",
                          {"X-API-Key: " + key_a.substr(0, 10)});
  check_error(prefix, 401, "unauthorized");
}

// A body from a client without a valid key is not read: the header block
// is answered 401 (instead of "100 Continue") and the connection closed.
// Before, the whole body (up to twice the body limit) was read into memory
// and then refused: 8 connections without a key held 480 MiB.
BOOST_AUTO_TEST_CASE(a_body_without_a_key_is_refused_before_it_is_read) {
  auto& srv = env::get().server;
  // 60 MB, under the body limit (64 MiB): without this refusal it would be
  // read whole, then answered 401.
  auto ask = [&](const std::string& key_field,
                 std::chrono::milliseconds wait = std::chrono::seconds{10},
                 const std::string& length = "60000000") {
    return raw_http(srv.port(),
                    "POST /api/v1/resize HTTP/1.1\r\nHost: x\r\n"
                    "Content-Type: image/jpeg\r\n" +
                        key_field + "Content-Length: " + length +
                        "\r\n"
                        "Expect: 100-continue\r\n\r\n",
                    wait);
  };
  // Past the body limit too: 401 first, so that a client without a key
  // learns nothing of the limits (it was told 413 and the limit).
  for (const char* length : {"60000000", "70000000"})
    for (const std::string& key_field :
         {std::string{}, "X-API-Key: " + key_a + "x\r\n"})
      BOOST_TEST_CONTEXT("key field '" << key_field << "', length " << length) {
        auto answer = ask(key_field, std::chrono::seconds{10}, length);
        // The whole answer came, and the server closed: no body was awaited.
        BOOST_TEST(answer.rfind("HTTP/1.1 401 ", 0) == 0u, answer);
        BOOST_TEST(answer.find("100 Continue") == std::string::npos, answer);
        BOOST_TEST(answer.find("WWW-Authenticate: Bearer") != std::string::npos,
                   answer);
        BOOST_TEST(answer.find("\"code\":\"unauthorized\"") !=
                       std::string::npos,
                   answer);
      }
  // With its key, the same header block is told to go on (and the body is
  // awaited: what came in a second is all there is).
  auto go_on = ask("X-API-Key: " + key_a + "\r\n", std::chrono::seconds{1});
  BOOST_TEST(go_on.rfind("HTTP/1.1 100 Continue", 0) == 0u, go_on);
}

BOOST_AUTO_TEST_CASE(either_key_and_either_header_works_end_to_end) {
  auto& srv = env::get().server;
  auto url = srv.url("/api/v1/resize");
  auto by_bearer = http_post(url, submit_body(), "application/json",
                             {"Authorization: Bearer " + key_a});
  BOOST_TEST_REQUIRE(by_bearer.status == 202);
  auto by_header = http_post(url, submit_body(), "application/json",
                             {"X-API-Key: " + key_b});
  BOOST_TEST_REQUIRE(by_header.status == 202);
  auto token = accepted_token(by_bearer);
  // Polling needs the key too.
  auto poll = http_get(srv.url("/api/v1/resize/" + token));
  check_error(poll, 401, "unauthorized");
  // A client's records and answers are kept by no cache along the way.
  BOOST_TEST(poll.header("cache-control") == "no-store");
  BOOST_TEST(by_bearer.header("cache-control") == "no-store");
  std::string url_path;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{20};
  while (std::chrono::steady_clock::now() < deadline) {
    auto res =
        http_get(srv.url("/api/v1/resize/" + token), {"X-API-Key: " + key_b});
    BOOST_TEST_REQUIRE(res.status == 200);
    BOOST_TEST(res.header("cache-control") == "no-store");
    auto doc = parse_json(res.body);
    if (json_string(doc, "status") == "SUCCESS") {
      url_path = json_string(doc, "resized_image_url");
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds{20}); // poll pace
  }
  BOOST_TEST_REQUIRE(!url_path.empty());
  // Image URLs are unguessable: fetching stays open.
  auto img = http_get(srv.url(url_path));
  BOOST_TEST(img.status == 200);
}

BOOST_AUTO_TEST_CASE(operations_endpoints_follow_the_config) {
  auto& srv = env::get().server;
  BOOST_TEST(http_get(srv.url("/healthz")).status == 200);
  auto metrics = http_get(srv.url("/metrics"));
  check_error(metrics, 401, "unauthorized");
  BOOST_TEST(http_get(srv.url("/metrics"), {"Authorization: Bearer " + key_a})
                 .status == 200);
  // protect-cluster is off here: the cluster view stays open.
  BOOST_TEST(http_get(srv.url("/api/v1/cluster")).status == 200);
}

BOOST_AUTO_TEST_CASE(each_key_has_its_own_share_of_the_queue) {
  // Both keys come from the same address: the key, not the address, names
  // the client.
  resized_server shared(env::get().redis.port(),
                        {"--auth.api-keys=" + key_a + "," + key_b,
                         "--resize.pool-size=1", "--queue.max-per-client=1"},
                        "auth-share");
  auto big = corpus_photo("plasma__Volna_5120x2880.jpg");
  // Each submission other work (its own quality): none is answered with
  // an identical task's result.
  int quality = 90;
  auto post_as = [&](const std::string& key) {
    auto url =
        shared.url("/api/v1/resize?width=4000&height=4000&mode=fit&quality=" +
                   std::to_string(quality--));
    return http_post(url, big, "image/jpeg", {"X-API-Key: " + key});
  };
  std::vector<std::pair<std::string, std::string>> tokens; // key, token
  bool refused = false;
  // The first task must still be open when the second arrives: a few tries.
  for (int attempt = 0; attempt < 5 && !refused; ++attempt) {
    auto first = post_as(key_a);
    BOOST_TEST_REQUIRE(first.status == 202, first.body);
    tokens.emplace_back(key_a, accepted_token(first));
    auto second = post_as(key_a);
    if (second.status == 202) {
      tokens.emplace_back(key_a, accepted_token(second));
      continue;
    }
    refused = true;
    check_error(second, 503, "client_queue_full");
    auto other = post_as(key_b);
    BOOST_TEST_REQUIRE(other.status == 202, other.body);
    tokens.emplace_back(key_b, accepted_token(other));
  }
  BOOST_TEST(refused);
  // Every accepted task completes (any key may poll any token).
  std::vector<std::string> all;
  for (const auto& kt : tokens)
    all.push_back(kt.second);
  auto finals = poll_all_final(
      [&](const std::string& token) {
        task_status st;
        auto res = http_get(shared.url("/api/v1/resize/" + token + "?wait=5"),
                            {"X-API-Key: " + key_b});
        st.http_status = res.status;
        st.body = res.body;
        if (res.status == 200)
          st.status = json_string(parse_json(res.body), "status");
        return st;
      },
      all, std::chrono::seconds{90}, std::chrono::milliseconds{0});
  for (const auto& token : all)
    BOOST_TEST(finals[token].status == "SUCCESS",
               token << " " << finals[token].body);
  // The key's index names the client in the log, never the key.
  auto log = shared.process().log();
  BOOST_TEST_CONTEXT("log:\n" << log) {
    BOOST_TEST(lines_with(log, {"task accepted", "client=key:1"}) >= 1u);
    BOOST_TEST(lines_with(log, {"task accepted", "client=key:2"}) >= 1u);
    BOOST_TEST(lines_with(log, {"task accepted", "client=ip:"}) == 0u);
    BOOST_TEST(log.find(key_a) == std::string::npos);
    BOOST_TEST(log.find(key_b) == std::string::npos);
  }
}

// Right keys, wrong keys and a key's prefix, by either header: their
// access lines are logged, and no key is.
BOOST_AUTO_TEST_CASE(keys_never_reach_the_log) {
  auto& srv = env::get().server;
  auto url = srv.url("/api/v1/resize");
  auto marker = random_uuid(); // an unknown token, polled once per header
  std::vector<std::vector<std::string>> headers{
      {"Authorization: Bearer " + key_a},
      {"X-API-Key: " + key_b},
      {"Authorization: Bearer " + key_a + "x"},
      {"X-API-Key: " + key_b.substr(0, 20)}};
  for (const auto& header : headers) {
    http_post(url, submit_body(), "application/json", header);
    http_get(srv.url("/api/v1/resize/" + marker), header);
  }
  std::string log;
  BOOST_TEST(wait_until(
      [&] {
        log = srv.process().log();
        return lines_with(log, {"msg=request", "path=/api/v1/resize/" +
                                                   marker}) == headers.size();
      },
      std::chrono::seconds{10}));
  BOOST_TEST_CONTEXT("log:\n" << log) {
    BOOST_TEST(lines_with(log, {"msg=request", "status=401"}) >= 4u);
    BOOST_TEST(log.find(key_a) == std::string::npos);
    BOOST_TEST(log.find(key_b) == std::string::npos);
    BOOST_TEST(log.find(key_b.substr(0, 20)) == std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(short_keys_are_refused_at_start) {
  std::string out;
  auto rc = run_to_exit({env_or("RESIZED_BIN", "resized"),
                         "--config-file=" + env_or("RESIZED_SOURCE_DIR", ".") +
                             "/config/development.ini",
                         "--auth.api-keys=short"},
                        out, std::chrono::milliseconds{10000});
  BOOST_TEST(rc == 2);
  BOOST_TEST(out.find("auth.api-keys") != std::string::npos);
  BOOST_TEST(out.find("=short") == std::string::npos); // value not echoed
}

BOOST_AUTO_TEST_SUITE_END()
