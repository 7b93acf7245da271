// The multi-node cluster end to end: API nodes started with
// config/cluster-api.ini and workers with config/cluster-worker.ini (the
// files docker/docker-compose.yml uses), as real processes on loopback
// ports with a real redis-server. Failure detection is shortened (heartbeat
// 200 ms, connection timeout 1 s, reconnect backoff <= 500 ms).
//
//   spread          1 API (no local pool) + 2 workers: 60 corpus photos all
//                   SUCCESS, both workers did some (/api/v1/cluster)
//   worker_kill9    kill -9 a busy worker mid-batch: every task SUCCESS,
//                   exactly one result each, retried > 0, node gone
//   api_restart     kill -9 + start and a graceful restart of the API node:
//                   workers rejoin unrestarted, old tokens answer, tasks in
//                   flight at the crash finish, new tasks run
//   two_api_nodes   one Redis, two API nodes, one worker joining both: any
//                   node answers any token (status and bytes identical)
//   worker_first    a worker started before its API node joins it later
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <filesystem>

#include "support/cluster.hpp"

using namespace resized::test;
using namespace std::chrono_literals;

namespace {

constexpr auto join_timeout = 10s;
constexpr auto batch_timeout = 60s;

struct photo {
  std::string name;
  std::string bytes;
  std::string type;
};

photo load_photo(const std::string& path) {
  auto name = std::filesystem::path{path}.filename().string();
  return {name, read_file(path), content_type_for(name)};
}

/// Every corpus photo, sorted by name.
std::vector<photo> all_photos() {
  std::vector<photo> out;
  for (const auto& path : corpus_photos())
    out.push_back(load_photo(path));
  return out;
}

/// Corpus photos between `min_bytes` and `max_bytes`, sorted by name.
std::vector<photo> photos_sized(size_t min_bytes, size_t max_bytes) {
  std::vector<photo> out;
  for (const auto& path : corpus_photos()) {
    auto size = std::filesystem::file_size(path);
    if (size >= min_bytes && size <= max_bytes)
      out.push_back(load_photo(path));
  }
  return out;
}

/// Submits `count` tasks, photos taken round-robin; returns the tokens.
/// Every task in this file gets its own width (`base_width` plus a counter
/// shared by the whole file), so no two tasks are identical work: each one
/// really runs on a node, whatever the service does with duplicates.
std::vector<std::string> submit_batch(const api_node& api,
                                      const std::vector<photo>& photos,
                                      size_t count, int base_width = 100,
                                      const std::string& extra_query = {}) {
  static int counter = 0;
  std::vector<std::string> tokens;
  for (size_t i = 0; i < count; ++i) {
    const auto& p = photos[i % photos.size()];
    auto query =
        "?width=" + std::to_string(base_width + counter++) + extra_query;
    BOOST_TEST_CONTEXT("submitting " << p.name << query << " to "
                                     << api.name()) {
      auto token = submit_to(api, p.bytes, p.type, query);
      BOOST_TEST_REQUIRE(!token.empty());
      tokens.push_back(token);
    }
  }
  return tokens;
}

/// Waits for every token on `api` and asserts SUCCESS and a fetchable
/// image that matches its record; returns the final status bodies.
std::map<std::string, std::string>
expect_all_success(const api_node& api, const std::vector<std::string>& tokens,
                   std::chrono::milliseconds timeout = batch_timeout) {
  auto finals = wait_all_final(api, tokens, timeout);
  std::map<std::string, std::string> bodies;
  for (const auto& token : tokens) {
    const auto& st = finals[token];
    BOOST_TEST_CONTEXT("token " << token << " on " << api.name() << ": "
                                << st.http_status << " " << st.error << " "
                                << st.body) {
      BOOST_TEST(st.http_status == 200);
      BOOST_TEST(st.status == "SUCCESS");
      if (st.status != "SUCCESS")
        continue;
      auto img = fetch_result(api, st.body);
      BOOST_TEST(img.response.status == 200);
      BOOST_TEST(img.probed);
      auto doc = parse_json(st.body);
      BOOST_TEST(json_int(doc, "width") == img.info.width);
      BOOST_TEST(json_int(doc, "height") == img.info.height);
      BOOST_TEST(json_int(doc, "bytes") ==
                 static_cast<int64_t>(img.response.body.size()));
      bodies[token] = st.body;
    }
  }
  return bodies;
}

/// Logs where to find the nodes' logs (shown with --log_level=message).
void note_logs(const std::vector<const child_process*>& procs) {
  for (const auto* p : procs)
    BOOST_TEST_MESSAGE("log: " << p->log_path());
}

bool log_has(const std::string& log, const std::string& text) {
  return log.find(text) != std::string::npos;
}

} // namespace

BOOST_AUTO_TEST_SUITE(cluster)

BOOST_AUTO_TEST_CASE(spread_over_two_workers) {
  redis_server redis;
  api_node api(redis.port(), "api-1");
  worker_process w1("worker-1", {api.endpoint()});
  worker_process w2("worker-2", {api.endpoint()});
  note_logs({&api.process(), &w1.process(), &w2.process()});
  BOOST_TEST_REQUIRE(wait_listed(api, {"worker-1", "worker-2"}, join_timeout));

  auto before = get_cluster(api);
  BOOST_TEST_CONTEXT("cluster " << before.body) {
    BOOST_TEST_REQUIRE(before.ok);
    BOOST_TEST(before.node == "api-1");
    BOOST_TEST(before.role == "api");
    // resize.pool-size=0 in cluster-api.ini: no local node, only workers.
    BOOST_TEST(before.totals.nodes == 2);
    BOOST_TEST(before.totals.workers == 4);
    for (const auto* id : {"worker-1", "worker-2"}) {
      const auto* n = before.find(id);
      BOOST_TEST_REQUIRE(n != nullptr);
      BOOST_TEST(n->role == "worker");
      BOOST_TEST(n->workers == 2); // cluster-worker.ini: pool-size=2
      BOOST_TEST(n->tasks_done == 0);
      BOOST_TEST(!n->up_since.empty());
    }
  }

  constexpr size_t tasks = 60;
  auto photos = all_photos();
  BOOST_TEST_REQUIRE(!photos.empty());
  auto tokens = submit_batch(api, photos, tasks);
  auto bodies = expect_all_success(api, tokens);
  BOOST_TEST(bodies.size() == tasks);

  auto after = get_cluster(api);
  BOOST_TEST_CONTEXT("cluster " << after.body) {
    BOOST_TEST_REQUIRE(after.ok);
    BOOST_TEST(after.totals.succeeded == static_cast<int64_t>(tasks));
    BOOST_TEST(after.totals.failed == 0);
    BOOST_TEST(after.totals.retried == 0);
    BOOST_TEST(after.totals.busy == 0);
    BOOST_TEST(after.queue_depth == 0);
    const auto* n1 = after.find("worker-1");
    const auto* n2 = after.find("worker-2");
    BOOST_TEST_REQUIRE(n1 != nullptr);
    BOOST_TEST_REQUIRE(n2 != nullptr);
    BOOST_TEST(n1->tasks_done > 0);
    BOOST_TEST(n2->tasks_done > 0);
    BOOST_TEST(n1->tasks_done + n2->tasks_done == static_cast<int64_t>(tasks));
    BOOST_TEST_MESSAGE("worker-1 did " << n1->tasks_done << ", worker-2 did "
                                       << n2->tasks_done);
  }
}

BOOST_AUTO_TEST_CASE(worker_kill9_mid_batch) {
  redis_server redis;
  api_node api(redis.port(), "api-k");
  worker_process victim("worker-victim", {api.endpoint()});
  worker_process survivor("worker-survivor", {api.endpoint()});
  note_logs({&api.process(), &victim.process(), &survivor.process()});
  BOOST_TEST_REQUIRE(
      wait_listed(api, {"worker-victim", "worker-survivor"}, join_timeout));

  // Larger photos resized to a large box: each task takes a while, so the
  // victim has tasks in flight when it dies.
  auto photos = photos_sized(400'000, 5'000'000);
  BOOST_TEST_REQUIRE(photos.size() >= 4u);
  constexpr size_t tasks = 12;
  auto tokens = submit_batch(api, photos, tasks, 1600, "&height=1600&mode=fit");

  cluster_snapshot at_kill;
  bool busy = wait_until(
      [&] {
        at_kill = get_cluster(api);
        const auto* n = at_kill.find("worker-victim");
        return n != nullptr && n->busy > 0;
      },
      20s);
  BOOST_TEST_REQUIRE(busy, "worker-victim never busy: " << at_kill.body);
  victim.kill9();
  BOOST_TEST_MESSAGE("killed worker-victim; cluster before: " << at_kill.body);
  BOOST_TEST(wait_unlisted(api, "worker-victim", 10s),
             "dead node still listed: " << get_cluster(api).body);

  auto bodies = expect_all_success(api, tokens);
  BOOST_TEST(bodies.size() == tasks);

  auto after = get_cluster(api);
  BOOST_TEST_CONTEXT("cluster " << after.body) {
    BOOST_TEST_REQUIRE(after.ok);
    BOOST_TEST(after.find("worker-victim") == nullptr);
    BOOST_TEST(after.find("worker-survivor") != nullptr);
    BOOST_TEST(after.totals.retried > 0);
    BOOST_TEST(after.totals.succeeded == static_cast<int64_t>(tasks));
    BOOST_TEST(after.totals.failed == 0);
    BOOST_TEST(after.totals.busy == 0);
  }
  // Exactly one result per task: the API node finished each token once
  // (a late answer from the dead node would be a second "task finished").
  auto log = api.log();
  BOOST_TEST(log_has(log, "task re-queued"));
  for (const auto& token : tokens)
    BOOST_TEST(finished_lines(log, token) == 1u, "token " << token);
}

BOOST_AUTO_TEST_CASE(api_node_restart) {
  redis_server redis;
  api_node api(redis.port(), "api-r");
  worker_process w1("worker-r1", {api.endpoint()});
  worker_process w2("worker-r2", {api.endpoint()});
  note_logs({&api.process(), &w1.process(), &w2.process()});
  BOOST_TEST_REQUIRE(
      wait_listed(api, {"worker-r1", "worker-r2"}, join_timeout));
  auto w1_pid = w1.process().pid();
  auto w2_pid = w2.process().pid();

  auto small = photos_sized(50'000, 200'000);
  BOOST_TEST_REQUIRE(!small.empty());
  auto done_before = expect_all_success(api, submit_batch(api, small, 4));
  BOOST_TEST_REQUIRE(done_before.size() == 4u);

  // Tasks in flight when the API node dies (kill -9): the workers lose their
  // supervisor; the accepted tasks are in Redis.
  auto large = photos_sized(400'000, 5'000'000);
  auto in_flight = submit_batch(api, large, 6, 1600, "&height=1600&mode=fit");
  bool busy = wait_until([&] { return get_cluster(api).totals.busy > 0; }, 20s);
  BOOST_TEST(busy);
  api.kill9();
  api.start();

  // The workers were not restarted: same processes, joined again.
  BOOST_TEST_REQUIRE(wait_listed(api, {"worker-r1", "worker-r2"}, join_timeout),
                     "workers did not rejoin: " << get_cluster(api).body);
  BOOST_TEST(w1.running());
  BOOST_TEST(w2.running());
  BOOST_TEST(w1.process().pid() == w1_pid);
  BOOST_TEST(w2.process().pid() == w2_pid);

  // Tokens finished before the crash still answer, unchanged, from Redis.
  for (const auto& [token, body] : done_before) {
    auto st = poll_status(api, token);
    BOOST_TEST(st.status == "SUCCESS", "token " << token << ": " << st.body);
    BOOST_TEST(st.body == body);
    auto img = fetch_result(api, st.body);
    BOOST_TEST(img.response.status == 200, "token " << token);
    BOOST_TEST(img.probed);
  }
  // Tasks accepted but unfinished at the crash are recovered and finish.
  expect_all_success(api, in_flight);
  // New tasks run on the rejoined workers.
  auto fresh = submit_batch(api, small, 4);
  expect_all_success(api, fresh);

  // A graceful restart (SIGTERM): the workers rejoin again.
  api.restart();
  BOOST_TEST_REQUIRE(wait_listed(api, {"worker-r1", "worker-r2"}, join_timeout),
                     "workers did not rejoin: " << get_cluster(api).body);
  expect_all_success(api, submit_batch(api, small, 4));
  auto view = get_cluster(api);
  BOOST_TEST_CONTEXT("cluster " << view.body) {
    BOOST_TEST(view.totals.succeeded == 4);
    BOOST_TEST(view.totals.failed == 0);
    // ... and they ran on the rejoined workers.
    int64_t done = 0;
    for (const auto& n : view.nodes)
      done += n.tasks_done;
    BOOST_TEST(done == 4);
  }
  BOOST_TEST(w1.process().pid() == w1_pid);
  BOOST_TEST(w2.process().pid() == w2_pid);
}

BOOST_AUTO_TEST_CASE(two_api_nodes_share_redis_and_a_worker) {
  redis_server redis;
  api_node a(redis.port(), "api-a");
  api_node b(redis.port(), "api-b");
  worker_process shared("worker-shared", {a.endpoint(), b.endpoint()});
  note_logs({&a.process(), &b.process(), &shared.process()});
  BOOST_TEST_REQUIRE(wait_listed(a, {"worker-shared"}, join_timeout));
  BOOST_TEST_REQUIRE(wait_listed(b, {"worker-shared"}, join_timeout));

  auto photos = photos_sized(50'000, 600'000);
  BOOST_TEST_REQUIRE(photos.size() >= 3u);
  std::vector<photo> for_a(photos.begin(), photos.begin() + 3);
  std::vector<photo> for_b(photos.end() - 3, photos.end());
  auto tokens_a = submit_batch(a, for_a, 3, 300, "&mode=fit&format=webp");
  auto tokens_b = submit_batch(b, for_b, 3, 200, "&height=150");
  auto bodies_a = expect_all_success(a, tokens_a);
  auto bodies_b = expect_all_success(b, tokens_b);

  // Each token, asked of the node that did not accept it: the same status
  // record and the same bytes.
  auto cross_check = [](const api_node& origin, const api_node& other,
                        const std::map<std::string, std::string>& bodies) {
    for (const auto& [token, body] : bodies) {
      BOOST_TEST_CONTEXT("token " << token << " from " << origin.name()
                                  << " asked of " << other.name()) {
        auto st = poll_status(other, token);
        BOOST_TEST(st.http_status == 200);
        BOOST_TEST(st.status == "SUCCESS");
        BOOST_TEST(st.body == body);
        auto here = fetch_result(origin, body);
        auto there = fetch_result(other, st.body);
        BOOST_TEST(here.response.status == 200);
        BOOST_TEST(there.response.status == 200);
        BOOST_TEST((here.response.body == there.response.body));
        BOOST_TEST(here.response.header("etag") ==
                   there.response.header("etag"));
        BOOST_TEST(here.response.header("content-type") ==
                   there.response.header("content-type"));
      }
    }
  };
  cross_check(a, b, bodies_a);
  cross_check(b, a, bodies_b);

  // Both API nodes' tasks ran on the one worker.
  for (const auto* api : {&a, &b}) {
    auto view = get_cluster(*api);
    BOOST_TEST_CONTEXT("cluster of " << api->name() << ": " << view.body) {
      BOOST_TEST_REQUIRE(view.ok);
      BOOST_TEST(view.node == api->name());
      BOOST_TEST(view.totals.succeeded == 3);
      const auto* n = view.find("worker-shared");
      BOOST_TEST_REQUIRE(n != nullptr);
      BOOST_TEST(n->tasks_done == 3);
    }
  }
}

// A client polling through a load balancer: the node it asks first may not
// be the one running the task. That node must follow the task to its end
// (plain GETs, no long poll) and serve the image once it is there.
BOOST_AUTO_TEST_CASE(another_api_node_follows_a_task_to_its_end) {
  redis_server redis;
  resized_server runs(redis.port(), {"--resize.pool-size=1"}, "follow-runs");
  resized_server asks(redis.port(), {"--resize.pool-size=1"}, "follow-asks");
  // The 16 MP photo keeps the one worker busy: the next task stays open
  // while the other node is asked about it.
  auto busy =
      accepted_token(submit_raw(runs, corpus_photo("gnome__pixels-l.webp"),
                                "image/webp", "?width=73&quality=71"));
  auto token = accepted_token(
      submit_raw(runs, small_photo_bytes(), "image/jpeg", "?width=81"));
  BOOST_REQUIRE(!busy.empty());
  BOOST_REQUIRE(!token.empty());
  auto status_on = [&](const resized_server& srv) {
    auto res = http_get(srv.url("/api/v1/resize/" + token));
    BOOST_REQUIRE(res.status == 200);
    return json_string(parse_json(res.body), "status");
  };
  BOOST_TEST_REQUIRE(status_on(asks) == "PENDING");
  auto done = finish(runs, token);
  BOOST_TEST(status_on(asks) == "SUCCESS");
  auto there = http_get(asks.url(url_path(done.url)));
  BOOST_TEST(there.status == 200);
  BOOST_TEST((there.body == done.image.body));
  finish(runs, busy);
}

BOOST_AUTO_TEST_CASE(worker_started_before_api_node) {
  redis_server redis;
  api_node api(redis.port(), "api-late", {}, /*start_now=*/false);
  worker_process early("worker-early", {api.endpoint()});
  note_logs({&early.process()});
  // The worker tried, failed (nothing listens yet) and keeps trying.
  BOOST_TEST_REQUIRE(
      wait_until([&] { return log_has(early.log(), "cluster link down"); },
                 10s),
      "worker log: " << early.log());
  BOOST_TEST_REQUIRE(early.running());

  api.start();
  note_logs({&api.process()});
  BOOST_TEST_REQUIRE(wait_listed(api, {"worker-early"}, join_timeout),
                     "worker did not join: " << get_cluster(api).body
                                             << "\nworker log:\n"
                                             << early.log());
  auto small = photos_sized(50'000, 200'000);
  BOOST_TEST_REQUIRE(!small.empty());
  expect_all_success(api, submit_batch(api, small, 2));
  auto view = get_cluster(api);
  const auto* n = view.find("worker-early");
  BOOST_TEST_REQUIRE(n != nullptr, view.body);
  BOOST_TEST(n->tasks_done == 2);
}

BOOST_AUTO_TEST_SUITE_END()
