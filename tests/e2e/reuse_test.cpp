// Identical work done once: the same bytes with the same options reuse the
// first result through a content hash (while the first runs, or after it
// finished), each submission keeping its own token and record; different
// options are different work.
#include <boost/test/unit_test.hpp>

#include "support/fixtures.hpp"

using namespace resized::test;

namespace {

struct reuse_tag {
  // No adoption (cluster.adopt-ms=0): a_twin_lost_with_its_node_... kills
  // a node sharing this Redis, whose open tasks must stay unadopted.
  static std::vector<std::string> args() {
    return {"--resize.pool-size=1", "--cluster.adopt-ms=0"};
  }
  static std::string name() { return "reuse"; }
};

using env = suite_env<reuse_tag>;

int64_t cluster_total(const resized_server& srv, const char* name) {
  auto res = http_get(srv.url("/api/v1/cluster"));
  BOOST_REQUIRE(res.status == 200);
  auto doc = parse_json(res.body);
  return json_int(doc["totals"], name);
}

// Resizes run by the one node of a standalone or API node with its own pool.
int64_t resizes_done(const resized_server& srv) {
  auto res = http_get(srv.url("/api/v1/cluster"));
  BOOST_REQUIRE(res.status == 200);
  auto doc = parse_json(res.body);
  BOOST_REQUIRE(doc["nodes"].IsArray() && doc["nodes"].Size() == 1);
  return json_int(doc["nodes"][0], "tasks_done");
}

// The status of `token`'s record as the first request (no wait) sees it.
std::string status_now(const resized_server& srv, const std::string& token) {
  auto res = http_get(srv.url("/api/v1/resize/" + token));
  BOOST_REQUIRE(res.status == 200);
  return json_string(parse_json(res.body), "status");
}

// Redis' count of bytes received from clients (INFO stats).
int64_t redis_bytes_in(redis_server& redis) {
  auto info = redis.command("INFO stats");
  auto at = info.find("total_net_input_bytes:");
  BOOST_REQUIRE(at != std::string::npos);
  return std::stoll(info.substr(at + 22));
}

// Whether `out` (fetched through its record's URL) was found by a URL
// naming `token`, its own, and not `first`, the token of the task whose
// image it shares: a client learns no other client's token.
bool own_url(const resize_outcome& out, const std::string& token,
             const std::string& first) {
  auto path = url_path(out.url);
  return path.find(token) != std::string::npos &&
         (token == first || path.find(first) == std::string::npos) &&
         out.image.status == 200;
}

} // namespace

BOOST_AUTO_TEST_SUITE(reuse, *boost::unit_test::fixture<env>())

BOOST_AUTO_TEST_CASE(duplicates_share_one_resize) {
  auto& srv = env::get().server;
  // A large photo keeps the single worker busy while the twins arrive.
  auto photo = corpus_photo("ukui__rhythm.jpg");
  auto before = cluster_total(srv, "reused");
  std::vector<std::string> tokens;
  for (int i = 0; i < 3; ++i)
    tokens.push_back(accepted_token(submit_raw(srv, photo, "image/jpeg")));
  for (auto& t : tokens)
    BOOST_TEST_REQUIRE(!t.empty());
  BOOST_TEST(tokens[0] != tokens[1]);
  std::vector<resize_outcome> outs;
  for (auto& t : tokens)
    outs.push_back(finish(srv, t));
  for (auto& o : outs) {
    BOOST_TEST(o.info.width == 100);
    BOOST_TEST((o.image.body == outs[0].image.body));
    BOOST_TEST(o.image.header("etag") == outs[0].image.header("etag"));
  }
  // One image: the twins' records point at the first one's, and Redis
  // holds no copy under their tokens. Each is fetched by its own URL,
  // which names its own token, not the first one's.
  for (int i = 0; i < 3; ++i)
    BOOST_TEST(own_url(outs[i], tokens[i], tokens[0]));
  for (int i = 1; i < 3; ++i)
    BOOST_TEST(env::get().redis.command("EXISTS resized:image:" + tokens[i]) ==
               ":0\r\n");
  for (auto& t : tokens) { // a twin never starts before it was submitted
    auto rec = parse_json(wait_final(srv, t).body);
    BOOST_TEST(json_string(rec, "started_at") >=
               json_string(rec, "submitted_at"));
    BOOST_TEST(json_string(rec, "finished_at") >=
               json_string(rec, "started_at"));
  }
  BOOST_TEST(cluster_total(srv, "reused") - before == 2);
  // After the first finished: reused again, no new resize.
  auto late = accepted_token(submit_raw(srv, photo, "image/jpeg"));
  auto out = finish(srv, late);
  BOOST_TEST((out.image.body == outs[0].image.body));
  BOOST_TEST(cluster_total(srv, "reused") - before == 3);
}

BOOST_AUTO_TEST_CASE(a_finished_twin_is_copied_before_the_202) {
  auto& e = env::get();
  auto photo = corpus_photo("ukui__rhythm.jpg"); // 8.9 MB
  auto first =
      finish(e.server, accepted_token(submit_raw(e.server, photo, "image/jpeg",
                                                 "?width=90&height=90")));
  BOOST_REQUIRE(first.info.width == 90);
  auto before = redis_bytes_in(e.redis);
  auto late = accepted_token(
      submit_raw(e.server, photo, "image/jpeg", "?width=90&height=90"));
  BOOST_REQUIRE(!late.empty());
  // final at once: the first status request (no wait) is already SUCCESS
  BOOST_TEST(status_now(e.server, late) == "SUCCESS");
  // and its 8.9 MB input never went to Redis (only the result's copy did)
  BOOST_TEST(redis_bytes_in(e.redis) - before < 1000000);
  auto out = finish(e.server, late);
  BOOST_TEST((out.image.body == first.image.body));
  // The first one's image (not a copy), by a URL of its own.
  BOOST_TEST(own_url(out, late, url_path(first.url).substr(15, 36)));
  BOOST_TEST(e.redis.command("EXISTS resized:image:" + late) == ":0\r\n");
}

// A twin's record points at the first one's image (no copy), which then
// lives a full result-ttl from the twin's submission. Fifty of them store
// no image of their own (each was a full copy: 50 x 20 MB for a 62 KB
// upload asked for as a 4096x4096 PNG). When that image is gone (expired,
// evicted), the next twin is resized again and stores its own.
BOOST_AUTO_TEST_CASE(twins_of_a_finished_task_store_no_copies) {
  auto& e = env::get();
  auto photo = corpus_photo("opencv__squirrel_cls.jpg");
  const std::string query = "?width=1200&height=1200&mode=force&format=png";
  auto first =
      finish(e.server,
             accepted_token(submit_raw(e.server, photo, "image/jpeg", query)));
  auto first_token = url_path(first.url).substr(15, 36);
  BOOST_TEST(e.redis.command("EXPIRE resized:image:" + first_token + " 100") ==
             ":1\r\n");
  std::vector<std::string> twins;
  for (int i = 0; i < 50; ++i) {
    auto token =
        accepted_token(submit_raw(e.server, photo, "image/jpeg", query));
    BOOST_TEST_REQUIRE(!token.empty());
    twins.push_back(token);
  }
  for (const auto& token : twins) {
    auto out = finish(e.server, token);
    BOOST_TEST(own_url(out, token, first_token));
    BOOST_TEST((out.image.body == first.image.body));
    BOOST_TEST(e.redis.command("EXISTS resized:image:" + token) == ":0\r\n");
  }
  // The image lives as long as the twins' records now.
  auto ttl = e.redis.command("TTL resized:image:" + first_token);
  BOOST_TEST(std::stol(ttl.substr(1)) > 1000, ttl);
  // Gone: the next twin is resized and keeps an image of its own.
  e.redis.command("DEL resized:image:" + first_token);
  auto again = accepted_token(submit_raw(e.server, photo, "image/jpeg", query));
  auto out = finish(e.server, again);
  BOOST_TEST(url_path(out.url).find(again) != std::string::npos, out.url);
  BOOST_TEST((out.image.body == first.image.body));
}

// Another API node on the same Redis (or this one after a restart: an empty
// memory either way) finds the finished twin through Redis' content index,
// read in the transaction that accepts the task: no second resize. From
// then on it knows the twin itself: the next one is copied before its 202.
BOOST_AUTO_TEST_CASE(a_twin_finished_on_another_api_node_is_reused) {
  auto& e = env::get();
  auto photo = corpus_photo("ukui__rhythm.jpg"); // 8.9 MB
  const std::string query = "?width=80&height=70&format=webp";
  auto first =
      finish(e.server,
             accepted_token(submit_raw(e.server, photo, "image/jpeg", query)));
  BOOST_REQUIRE(first.info.width == 80);
  resized_server other(e.redis.port(), {"--resize.pool-size=1"}, "reuse-other");
  auto late = accepted_token(submit_raw(other, photo, "image/jpeg", query));
  BOOST_REQUIRE(!late.empty());
  auto out = finish(other, late);
  BOOST_TEST((out.image.body == first.image.body));
  // Its image (not a copy), by a URL of its own.
  BOOST_TEST(own_url(out, late, url_path(first.url).substr(15, 36)));
  BOOST_TEST(e.redis.command("EXISTS resized:image:" + late) == ":0\r\n");
  BOOST_TEST(cluster_total(other, "reused") == 1);
  BOOST_TEST(resizes_done(other) == 0);
  // Its stored input is gone with the copy.
  BOOST_TEST(e.redis.command("EXISTS resized:input:" + late) == ":0\r\n");

  auto before = redis_bytes_in(e.redis);
  auto third = accepted_token(submit_raw(other, photo, "image/jpeg", query));
  BOOST_REQUIRE(!third.empty());
  BOOST_TEST(status_now(other, third) == "SUCCESS"); // copied before its 202
  BOOST_TEST(redis_bytes_in(e.redis) - before < 1000000);
}

// A twin sent to another API node while the first is still queued or
// running on this one: it waits for the first's result (through Redis)
// instead of being resized again.
BOOST_AUTO_TEST_CASE(a_twin_open_on_another_api_node_is_awaited) {
  auto& e = env::get();
  resized_server other(e.redis.port(), {"--resize.pool-size=1"}, "reuse-wait");
  // The suite's server has one worker: a 16 MP photo keeps it busy, so the
  // first task is still open when its twin reaches the other node.
  auto busy =
      accepted_token(submit_raw(e.server, corpus_photo("gnome__pixels-l.webp"),
                                "image/webp", "?width=71&quality=77"));
  auto photo = corpus_photo("plasma__Volna_5120x2880.jpg");
  const std::string query = "?width=70&height=60&quality=76";
  auto first = accepted_token(submit_raw(e.server, photo, "image/jpeg", query));
  auto late = accepted_token(submit_raw(other, photo, "image/jpeg", query));
  BOOST_REQUIRE(!busy.empty());
  BOOST_REQUIRE(!first.empty());
  BOOST_REQUIRE(!late.empty());
  auto a = finish(e.server, first);
  auto b = finish(other, late);
  BOOST_TEST(b.info.width == 70);
  BOOST_TEST((b.image.body == a.image.body));
  BOOST_TEST(cluster_total(other, "reused") == 1);
  BOOST_TEST(resizes_done(other) == 0);
  finish(e.server, busy);
}

// The node that accepted the first twin is lost (kill -9) with it open: a
// twin sent elsewhere waits one task timeout for it, then is resized there.
// Neither the survivor nor the suite's node adopts the lost node's tasks
// (cluster.adopt-ms=0): they would resume the original, which the twin
// would then reuse.
BOOST_AUTO_TEST_CASE(a_twin_lost_with_its_node_is_resized_after_a_wait) {
  auto& e = env::get();
  auto photo = corpus_photo("plasma__Volna_5120x2880.jpg");
  const std::string query = "?width=69&height=59&quality=75";
  std::string lost;
  {
    resized_server doomed(e.redis.port(), {"--resize.pool-size=1"},
                          "reuse-doomed");
    auto busy =
        accepted_token(submit_raw(doomed, corpus_photo("gnome__pixels-l.webp"),
                                  "image/webp", "?width=72&quality=74"));
    lost = accepted_token(submit_raw(doomed, photo, "image/jpeg", query));
    BOOST_REQUIRE(!busy.empty());
    BOOST_REQUIRE(!lost.empty());
    doomed.kill9();
  }
  resized_server other(e.redis.port(),
                       {"--resize.pool-size=1", "--resize.task-timeout-ms=4000",
                        "--cluster.adopt-ms=0"},
                       "reuse-survivor");
  auto late = accepted_token(submit_raw(other, photo, "image/jpeg", query));
  BOOST_REQUIRE(!late.empty());
  auto out = finish(other, late);
  BOOST_TEST(out.info.width == 69);
  BOOST_TEST(cluster_total(other, "reused") == 0);
  BOOST_TEST(resizes_done(other) == 1);
  // The lost task is still PENDING: its node has not come back.
  BOOST_TEST(status_now(other, lost) == "PENDING");
}

BOOST_AUTO_TEST_CASE(other_options_are_other_work) {
  auto& srv = env::get().server;
  auto photo = corpus_photo(small_photo);
  auto before = cluster_total(srv, "reused");
  auto a = finish(
      srv, accepted_token(submit_raw(srv, photo, "image/jpeg", "?width=120")));
  auto b = finish(
      srv, accepted_token(submit_raw(srv, photo, "image/jpeg", "?width=121")));
  BOOST_TEST(a.info.width == 120);
  BOOST_TEST(b.info.width == 121);
  BOOST_TEST(cluster_total(srv, "reused") == before);
}

BOOST_AUTO_TEST_SUITE_END()
