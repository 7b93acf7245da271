// The operations endpoints of API.md: liveness, readiness (following Redis),
// Prometheus metrics, the cluster view and the web page.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <map>
#include <thread>

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

// The header fields that GET and HEAD must share: all but X-Request-Id
// (generated per request).
// The fields two answers to the same request share: not their request ids,
// nor their Date, which differs when the two straddle a second (a flaky
// failure in CI: 09:00:21 against 09:00:22). Whether a Date is there is
// kept: "present" stands for its value.
std::map<std::string, std::string> shared_fields(const http_response& r) {
  auto fields = r.headers;
  fields.erase("x-request-id");
  if (auto date = fields.find("date"); date != fields.end())
    date->second = "present";
  return fields;
}

std::string fields_text(const std::map<std::string, std::string>& fields) {
  std::string out;
  for (const auto& [name, value] : fields)
    out += name + ": " + value + "; ";
  return out;
}

// HEAD `path` over a raw socket (curl would not show a body after the
// header block): the bytes after the header block, "<no header end>" when
// the block is incomplete.
std::string raw_rest(const std::string& method, const std::string& path,
                     const std::vector<std::string>& headers) {
  std::string request =
      method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  for (const auto& h : headers)
    request += h + "\r\n";
  request += "Connection: close\r\n\r\n";
  auto answer = raw_http(srv().port(), request);
  auto end = answer.find("\r\n\r\n");
  if (end == std::string::npos)
    return "<no header end>";
  return answer.substr(end + 4);
}

std::string raw_head_rest(const std::string& path,
                          const std::vector<std::string>& headers) {
  return raw_rest("HEAD", path, headers);
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

// RFC 9110: HEAD wherever GET is answered, with GET's status and header
// fields (Content-Length: the size of GET's body) and no body at all.
BOOST_AUTO_TEST_CASE(head_answers_like_get_without_a_body) {
  auto token = accepted_token(
      submit_raw(srv(), corpus_photo(small_photo), "image/jpeg"));
  BOOST_TEST_REQUIRE(!token.empty());
  auto done = finish(srv(), token);
  auto image = url_path(done.url);
  auto etag = done.image.header("etag");
  struct probe {
    std::string path;
    std::vector<std::string> headers;
    long status;
  };
  for (const auto& [path, headers, status] : {
           probe{"/healthz", {}, 200},
           probe{"/readyz", {}, 200},
           probe{"/", {}, 200},
           probe{"/static/app.js", {}, 200},
           probe{"/static/style.css", {}, 200},
           probe{"/api/v1/openapi.json", {}, 200},
           probe{"/api/v1/resize/" + token, {}, 200},
           probe{"/api/v1/resize/" + token + "?wait=5", {}, 200},
           probe{image, {}, 200},
           probe{image, {"If-None-Match: " + etag}, 304},
           probe{"/api/v1/resize/" + random_uuid(), {}, 404},
           probe{"/api/v1/resize/not-a-token", {}, 400},
           probe{"/api/v1/images/" + random_uuid() + ".jpg", {}, 404},
           probe{"/static/nope.js", {}, 404},
           probe{"/nope", {}, 404},
       }) {
    BOOST_TEST_CONTEXT("HEAD " << path) {
      auto get = http_request("GET", srv().url(path), {}, headers);
      auto head = http_request("HEAD", srv().url(path), {}, headers);
      BOOST_TEST(get.status == status);
      BOOST_TEST(head.status == get.status);
      // (A 304's is the 200's, see not_modified_carries_the_200s_length.)
      BOOST_TEST(head.header("content-length") ==
                 std::to_string(status == 304 ? done.image.body.size()
                                              : get.body.size()));
      BOOST_TEST(shared_fields(head) == shared_fields(get),
                 "HEAD " << fields_text(shared_fields(head)) << "\nGET  "
                         << fields_text(shared_fields(get)));
      BOOST_TEST(head.header("x-request-id").size() == 16u);
      BOOST_TEST(raw_head_rest(path, headers).empty());
    }
  }
  // Bodies that change from one request to the next: the same fields, a
  // length, no body.
  for (std::string path : {"/metrics", "/api/v1/cluster"}) {
    BOOST_TEST_CONTEXT("HEAD " << path) {
      auto get = http_get(srv().url(path));
      auto head = http_request("HEAD", srv().url(path));
      BOOST_TEST(head.status == 200);
      BOOST_TEST(head.header("content-type") == get.header("content-type"));
      BOOST_TEST(std::atol(head.header("content-length").c_str()) > 0);
      BOOST_TEST(raw_head_rest(path, {}).empty());
    }
  }
  // HEAD where only POST is answered: 405 as for GET (its message names
  // HEAD), Allow: POST, no body.
  auto post_only = http_request("HEAD", srv().url("/api/v1/resize"));
  BOOST_TEST(post_only.status == 405);
  BOOST_TEST(post_only.header("allow") == "POST");
  BOOST_TEST(std::atol(post_only.header("content-length").c_str()) > 0);
  BOOST_TEST(raw_head_rest("/api/v1/resize", {}).empty());
  // Other methods: 405, and Allow names HEAD beside GET.
  auto del = http_request("DELETE", srv().url("/api/v1/resize/" + token));
  BOOST_TEST(del.status == 405);
  BOOST_TEST(del.header("allow") == "GET, HEAD");
}

// RFC 9110 §8.6: a 304 sends no Content-Length but the 200's (curl hides
// what a 304 says; RESTinio wrote "Content-Length: 0"). Results, the page
// and its assets: the 304 has the 200's length, its Cache-Control and no
// body, GET and HEAD.
BOOST_AUTO_TEST_CASE(not_modified_carries_the_200s_length) {
  auto token = accepted_token(
      submit_raw(srv(), corpus_photo(small_photo), "image/jpeg"));
  BOOST_TEST_REQUIRE(!token.empty());
  auto image = url_path(finish(srv(), token).url);
  for (const std::string& path :
       {image, std::string{"/"}, std::string{"/static/app.js"},
        std::string{"/api/v1/openapi.json"}}) {
    BOOST_TEST_CONTEXT("GET " << path) {
      auto full = http_get(srv().url(path));
      BOOST_TEST_REQUIRE(full.status == 200);
      auto length = full.header("content-length");
      BOOST_TEST(length == std::to_string(full.body.size()));
      std::vector<std::string> cond{"If-None-Match: " + full.header("etag")};
      for (const std::string method : {"GET", "HEAD"}) {
        BOOST_TEST_CONTEXT(method) {
          auto res = http_request(method, srv().url(path), {}, cond);
          BOOST_TEST(res.status == 304);
          BOOST_TEST(res.body.empty());
          BOOST_TEST(res.header("content-length") == length);
          BOOST_TEST(res.header("etag") == full.header("etag"));
          // RFC 9111 §4.3.4: the stored response takes the 304's
          // Cache-Control; without it a cache keeps what the 200 said.
          BOOST_TEST(res.header("cache-control") ==
                     full.header("cache-control"));
          BOOST_TEST(raw_rest(method, path, cond).empty());
        }
      }
    }
  }
}

// HEAD on a long poll is a plain lookup: the wait is not held.
BOOST_AUTO_TEST_CASE(head_does_not_hold_a_long_poll) {
  auto& e = env::get();
  auto token = random_uuid();
  // A record no node runs: GET ?wait=N holds it N seconds.
  put_orphan_pending_record(e.redis, token);
  auto path = "/api/v1/resize/" + token;
  auto start = std::chrono::steady_clock::now();
  auto held = http_get(srv().url(path + "?wait=1"));
  auto held_for = std::chrono::steady_clock::now() - start;
  BOOST_TEST(held.status == 200);
  BOOST_TEST((held_for >= std::chrono::milliseconds{900}));
  start = std::chrono::steady_clock::now();
  auto head = http_request("HEAD", srv().url(path + "?wait=20"));
  auto took = std::chrono::steady_clock::now() - start;
  BOOST_TEST(head.status == 200);
  BOOST_TEST((took < std::chrono::seconds{2}));
  BOOST_TEST(head.header("content-length") == std::to_string(held.body.size()));
  // The wait is still checked.
  auto bad = http_request("HEAD", srv().url(path + "?wait=abc"));
  BOOST_TEST(bad.status == 400);
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

// Redis hangs (SIGSTOP: its kernel still accepts connections, commands time
// out after redis.timeout-ms, 2 s here). The call that finds the hang waits
// that out once; from then on, what the status cache holds is answered at
// once, and what needs Redis is refused at once, until Redis answers again.
// (Before: every idle-watch PING and every reconnect blocked the status
// actor for the whole timeout, so cached answers took up to 2 s.)
BOOST_AUTO_TEST_CASE(a_hung_redis_does_not_delay_cached_answers) {
  using namespace std::chrono;
  redis_server redis;
  resized_server node{redis.port(), {}, "operations-hang"};
  auto token =
      accepted_token(submit_raw(node, corpus_photo(small_photo), "image/jpeg"));
  BOOST_TEST_REQUIRE(!token.empty());
  BOOST_TEST_REQUIRE(finish(node, token).status.status == "SUCCESS");
  auto count = [&](const std::string& msg) {
    return lines_with(node.process().log(), {"msg=\"" + msg + "\""});
  };
  redis.pause();
  // The node's idle watch finds the hang: one PING that times out.
  BOOST_TEST_REQUIRE(wait_until(
      [&] { return count("redis connection lost") > 0; }, seconds{15}));
  // Each answer timed; a poll every 20 ms for 5 s.
  milliseconds slowest{0};
  auto timed = [&](auto&& request) {
    auto start = steady_clock::now();
    auto res = request();
    slowest = std::max(
        slowest, duration_cast<milliseconds>(steady_clock::now() - start));
    return res;
  };
  int polls = 0;
  for (auto end = steady_clock::now() + seconds{5}; steady_clock::now() < end;
       ++polls) {
    auto res =
        timed([&] { return http_get(node.url("/api/v1/resize/" + token)); });
    BOOST_TEST_REQUIRE(res.status == 200, res.status << " " << res.body);
    BOOST_TEST(json_string(parse_json(res.body), "status") == "SUCCESS");
    std::this_thread::sleep_for(milliseconds{20}); // poll pace
  }
  BOOST_TEST_MESSAGE("cached polls during the hang: "
                     << polls << ", slowest " << slowest.count() << " ms");
  // Well under redis.timeout-ms (2000): none waited for Redis. (Not
  // tighter: one poll may lose the CPU for a while on a loaded machine.)
  BOOST_TEST(slowest.count() < 1500,
             "slowest poll " << slowest.count() << " ms");
  // Not ready, with the documented reason; refused at once, not after the
  // timeout, and so is what only Redis can answer.
  slowest = milliseconds{0};
  auto ready = timed([&] { return http_get(node.url("/readyz")); });
  check_error(ready, 503, "store_unavailable");
  auto unknown = timed(
      [&] { return http_get(node.url("/api/v1/resize/" + random_uuid())); });
  check_error(unknown, 503, "store_unavailable");
  auto refused = timed([&] {
    return submit_raw(node, corpus_photo(small_photo), "image/jpeg");
  });
  check_error(refused, 503, "store_unavailable");
  BOOST_TEST(slowest.count() < 1500,
             "slowest refusal " << slowest.count() << " ms");
  auto resumed = steady_clock::now();
  redis.resume();
  BOOST_TEST_REQUIRE(wait_until(
      [&] { return count("redis connection back") > 0; }, seconds{10}));
  BOOST_TEST_MESSAGE(
      "redis connection back logged after "
      << duration_cast<milliseconds>(steady_clock::now() - resumed).count()
      << " ms");
  BOOST_TEST(lines_with(node.process().log(),
                        {"level=info", "msg=\"redis connection back\"",
                         "down_s="}) == 1u);
  BOOST_TEST(count("redis connection lost") == 1u);
  auto again =
      accepted_token(submit_raw(node, corpus_photo(small_photo), "image/jpeg"));
  BOOST_TEST_REQUIRE(!again.empty());
  BOOST_TEST(finish(node, again).status.status == "SUCCESS");
  BOOST_TEST(
      wait_until([&] { return http_get(node.url("/readyz")).status == 200; },
                 seconds{10}));
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
  check_error(res, 503, "store_unavailable"); // "with the reason"
  // Redis' address and words stay in the log: /readyz is open to anyone.
  BOOST_TEST(res.body.find("127.0.0.1") == std::string::npos, res.body);
  BOOST_TEST(res.body.find(std::to_string(e.redis.port())) == std::string::npos,
             res.body);
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

// Redis at maxmemory (noeviction) refuses a 20 MB result (a 62 KB photo
// asked for as a 4000x4000 PNG). The task ends FAILURE result_not_stored,
// in the status cache and in Redis, instead of a SUCCESS whose image URL
// answers 404; and the node goes on accepting work (a submission Redis
// has no room for is told so in its 503). (Before: the record
// said SUCCESS, the image was "expired", and the refused write was kept
// for retry, refusing every later submission with 503 store_unavailable.)
BOOST_AUTO_TEST_CASE(a_result_redis_refuses_fails_its_task_and_nothing_else) {
  redis_server redis;
  BOOST_TEST(redis.command("CONFIG SET maxmemory 41943040").find("OK") !=
             std::string::npos);
  BOOST_TEST(
      redis.command("CONFIG SET maxmemory-policy noeviction").find("OK") !=
      std::string::npos);
  resized_server srv(redis.port(), {}, "maxmemory");
  auto photo = corpus_photo("opencv__squirrel_cls.jpg");
  auto token = accepted_token(
      submit_raw(srv, photo, "image/jpeg",
                 "?width=4000&height=4000&mode=force&format=png"));
  BOOST_TEST_REQUIRE(!token.empty());
  // A duplicate while it runs: it shares that result, so it fails with it,
  // saying why (not that a shared image expired).
  auto twin = accepted_token(
      submit_raw(srv, photo, "image/jpeg",
                 "?width=4000&height=4000&mode=force&format=png"));
  BOOST_TEST_REQUIRE(!twin.empty());
  auto st = wait_final(srv, token);
  BOOST_TEST_REQUIRE(st.status == "FAILURE", st.body);
  auto doc = parse_json(st.body);
  BOOST_TEST(json_string(doc["error"], "code") == "result_not_stored");
  BOOST_TEST(json_string(doc["error"], "message")
                     .find("refused to store the result") != std::string::npos,
             st.body);
  BOOST_TEST(doc["resized_image_url"].IsNull());
  auto twin_st = wait_final(srv, twin);
  BOOST_TEST(twin_st.status == "FAILURE", twin_st.body);
  BOOST_TEST(twin_st.body.find("refused to store the result") !=
                 std::string::npos,
             twin_st.body);
  BOOST_TEST(
      redis.command("HGET resized:task:" + token + " status").find("FAILURE") !=
      std::string::npos);
  BOOST_TEST(lines_with(srv.process().log(), {"redis refused a result", token,
                                              "OOM command not allowed"}) ==
             1u);
  check_error(http_get(srv.url("/api/v1/images/" + token + ".png")), 404,
              "unknown_token");
  auto metrics = http_get(srv.url("/metrics")).body;
  BOOST_TEST_CONTEXT(metrics) {
    // 2 if the duplicate came after the first had ended, and was resized.
    BOOST_TEST(metric_value(metrics, "resized_results_refused_total") >= 1);
    // Counted as what their records say.
    BOOST_TEST(
        metric_value(metrics, "resized_tasks_total{status=\"FAILURE\"}") == 2);
    BOOST_TEST(
        metric_value(metrics, "resized_tasks_total{status=\"SUCCESS\"}") == 0);
  }
  // A submission Redis has no room for at all: 503, saying why.
  BOOST_TEST(redis.command("CONFIG SET maxmemory 1").find("OK") !=
             std::string::npos);
  auto full = submit_raw(srv, corpus_photo(small_photo), "image/jpeg");
  BOOST_TEST(
      check_error(full, 503, "store_unavailable").find("out of memory") !=
          std::string::npos,
      full.body);
  // Not ready meanwhile (Redis still answers PING): a load balancer sends
  // the next submission elsewhere. Redis' words go to the log only.
  check_error(http_get(srv.url("/readyz")), 503, "store_unavailable");
  BOOST_TEST(lines_with(srv.process().log(),
                        {"readiness changed", "OOM command not allowed"}) >= 1u,
             srv.process().log());
  BOOST_TEST(redis.command("CONFIG SET maxmemory 41943040").find("OK") !=
             std::string::npos);
  BOOST_TEST(http_get(srv.url("/readyz")).status == 200);
  // The node still takes and finishes work that fits.
  auto next =
      accepted_token(submit_raw(srv, corpus_photo(small_photo), "image/jpeg"));
  BOOST_TEST_REQUIRE(!next.empty());
  finish(srv, next);
}

BOOST_AUTO_TEST_SUITE_END()
