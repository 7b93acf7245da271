// The operations endpoints of API.md: liveness, readiness (following Redis),
// Prometheus metrics, the cluster view and the web page.
#include <boost/test/unit_test.hpp>

#include <algorithm>

#include "support/fixtures.hpp"

using namespace resized::test;

namespace {

struct operations_tag {
  static std::vector<std::string> args() { return {}; }
  static std::string name() { return "operations"; }
};

using env = suite_env<operations_tag>;

resized_server& srv() {
  return env::get().server;
}

} // namespace

BOOST_AUTO_TEST_SUITE(operations, *boost::unit_test::fixture<env>())

BOOST_AUTO_TEST_CASE(healthz_answers_ok) {
  auto res = http_get(srv().url("/healthz"));
  BOOST_TEST(res.status == 200);
  auto doc = parse_json(res.body);
  BOOST_TEST_REQUIRE(doc.IsObject());
  BOOST_TEST(json_string(doc, "status") == "ok");
}

BOOST_AUTO_TEST_CASE(readyz_with_redis_and_workers) {
  auto res = http_get(srv().url("/readyz"));
  BOOST_TEST(res.status == 200);
}

BOOST_AUTO_TEST_CASE(metrics_exposition) {
  // After one finished task, so the task metrics have samples.
  auto token = accepted_token(
      submit_raw(srv(), corpus_photo(small_photo), "image/jpeg"));
  BOOST_TEST_REQUIRE(!token.empty());
  finish(srv(), token);
  auto res = http_get(srv().url("/metrics"));
  BOOST_TEST(res.status == 200);
  BOOST_TEST(res.header("content-type").rfind("text/plain", 0) == 0);
  for (auto name :
       {"resized_http_requests_total", "resized_http_request_duration_seconds",
        "resized_tasks_total", "resized_task_duration_seconds",
        "resized_queue_depth", "resized_input_bytes_total",
        "resized_output_bytes_total"}) {
    BOOST_TEST_CONTEXT("metric " << name) {
      BOOST_TEST(res.body.find(name) != std::string::npos);
    }
  }
}

BOOST_AUTO_TEST_CASE(cluster_view) {
  // After one finished task, so the counters have moved.
  auto token = accepted_token(
      submit_raw(srv(), corpus_photo(small_photo), "image/jpeg"));
  BOOST_TEST_REQUIRE(!token.empty());
  finish(srv(), token);
  auto res = http_get(srv().url("/api/v1/cluster"));
  BOOST_TEST(res.status == 200);
  BOOST_TEST(res.header("content-type").rfind("application/json", 0) == 0);
  auto doc = parse_json(res.body);
  BOOST_TEST_CONTEXT("body " << res.body) {
    BOOST_TEST_REQUIRE(doc.IsObject());
    BOOST_TEST(json_int(doc, "queue_depth") >= 0);
    BOOST_TEST((doc.HasMember("totals") && doc["totals"].IsObject()));
    BOOST_TEST_REQUIRE((doc.HasMember("nodes") && doc["nodes"].IsArray()));
    const auto& nodes = doc["nodes"];
    BOOST_TEST_REQUIRE(nodes.Size() >= 1u);
    int64_t done = 0;
    for (const auto& node : nodes.GetArray()) {
      BOOST_TEST(!json_string(node, "id").empty());
      BOOST_TEST(!json_string(node, "role").empty());
      BOOST_TEST(node.HasMember("address"));
      BOOST_TEST(json_int(node, "workers") >= 1);
      BOOST_TEST(json_int(node, "busy") >= 0);
      BOOST_TEST(is_iso8601_ms(json_string(node, "up_since")));
      done += std::max<int64_t>(json_int(node, "tasks_done"), 0);
    }
    BOOST_TEST(done >= 1);
  }
}

BOOST_AUTO_TEST_CASE(web_page) {
  auto res = http_get(srv().url("/"));
  BOOST_TEST(res.status == 200);
  BOOST_TEST(res.header("content-type").rfind("text/html", 0) == 0);
}

BOOST_AUTO_TEST_CASE(status_lookups_during_a_redis_outage) {
  auto& e = env::get();
  // A finished task: its record is in the status cache.
  auto token = accepted_token(
      submit_raw(e.server, corpus_photo(small_photo), "image/jpeg"));
  BOOST_TEST_REQUIRE(!token.empty());
  finish(e.server, token);
  e.redis.stop();
  // A token the cache does not know cannot be called unknown while Redis
  // is unreachable: 503 store_unavailable, not 404.
  http_response res;
  auto unknown = random_uuid();
  BOOST_TEST(wait_until(
      [&] {
        res = http_get(e.server.url("/api/v1/resize/" + unknown));
        return res.status != 404;
      },
      std::chrono::seconds{10}));
  check_error(res, 503, "store_unavailable");
  BOOST_TEST(!res.header("retry-after").empty());
  // New work cannot be made durable: refused, to be retried later.
  auto refused = submit_raw(e.server, corpus_photo(small_photo), "image/jpeg");
  check_error(refused, 503, "store_unavailable");
  BOOST_TEST(!refused.header("retry-after").empty());
  // Cached records are still answered.
  auto cached = http_get(e.server.url("/api/v1/resize/" + token));
  BOOST_TEST(cached.status == 200);
  BOOST_TEST(json_string(parse_json(cached.body), "status") == "SUCCESS");
  e.redis.start();
  // Back to normal once Redis answers again (its data is gone: no AOF).
  BOOST_TEST(wait_until(
      [&] {
        return http_get(e.server.url("/api/v1/resize/" + unknown)).status ==
               404;
      },
      std::chrono::seconds{15}));
  auto again = accepted_token(
      submit_raw(e.server, corpus_photo(small_photo), "image/jpeg"));
  BOOST_TEST_REQUIRE(!again.empty());
  finish(e.server, again);
}

// Last in the suite: stops and restarts the suite's Redis.
BOOST_AUTO_TEST_CASE(readyz_follows_redis) {
  auto& e = env::get();
  auto ready = [&](long want) {
    return wait_until(
        [&] { return http_get(e.server.url("/readyz")).status == want; },
        std::chrono::seconds{15});
  };
  // Fail fast (and leave Redis alone) when /readyz is missing altogether.
  BOOST_TEST_REQUIRE(ready(200));
  e.redis.stop();
  BOOST_TEST(ready(503));
  auto res = http_get(e.server.url("/readyz"));
  BOOST_TEST(res.status == 503);
  BOOST_TEST(!res.body.empty()); // "with the reason"
  // Liveness does not depend on Redis.
  BOOST_TEST(http_get(e.server.url("/healthz")).status == 200);
  e.redis.start();
  BOOST_TEST(ready(200));
  // And work flows again.
  auto token = accepted_token(
      submit_raw(e.server, corpus_photo(small_photo), "image/jpeg"));
  BOOST_TEST_REQUIRE(!token.empty());
  finish(e.server, token);
}

BOOST_AUTO_TEST_SUITE_END()
