// The multi-node cluster end to end: API nodes started with
// config/cluster-api.ini and workers with config/cluster-worker.ini (the
// files docker/docker-compose.yml uses), as real processes on loopback
// ports with a real redis-server. Failure detection is shortened (heartbeat
// 200 ms, connection timeout 3 s, reconnect backoff <= 500 ms).
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
//   worker_sigterm  SIGTERM a worker mid-task: the API node places nothing
//                   more there, the task ends SUCCESS on that worker
//                   without a retry, the worker exits 0 and is gone
//   cut_short       SIGTERM mid-task with shutdown.grace=0, or twice: the
//                   worker exits 3 at once, the task is re-queued (one
//                   attempt lost) and runs on another worker
//   idle_sigterm    an idle worker exits 0 at once on SIGTERM and leaves
//                   without being "lost"
//   api_name_in_use a second API node under a running one's name exits 4
//                   before recovering anything; the first's pending tasks
//                   and its lease are untouched
//   name_in_use     a second worker with a name in use is refused (logged
//                   on both sides), the original keeps its task and place
//   restarted       a worker restarted under its name after kill -9, or
//                   while its silent old self is still connected, gets in
//   shown_leaving   /api/v1/cluster: "state" leaving / ready per node
//   past_grace      a resize outlasting shutdown.grace: the worker exits 3
//                   at the grace, the task runs again elsewhere
//   api_policy      the API node that accepted a task decides its policy:
//                   its limits.truncated, max-dimension and max-pixels
//                   apply on a worker configured otherwise (which warns
//                   that its own are not used), and its task timeout
//                   stops the resize inside libvips on a worker whose own
//                   timeout is long
//   adopt_drained   an API node drained (SIGTERM) with queued tasks and not
//                   restarted: a live peer adopts them (no lease on the
//                   name) and runs them all
//   adopt_killed    the same after kill -9: adopted once its lease ran out,
//                   the interrupted task too (attempt 1)
//   adopt_or_restart an API node restarted at once after a drain: its
//                   queued tasks run once each, on it or on the peer that
//                   adopted them, never both
//   tls             openssl.* set: a worker with a certificate from the CA
//                   joins over TLS and runs every task; a plain worker,
//                   one with another CA's certificate and plain bytes are
//                   refused (logged on both sides) without disturbing it
//   tls_idle        connections to the TLS port that send nothing are cut
//                   off after the connection timeout
//   tls_read_once   the TLS files removed after the start: a new worker
//                   still joins, the API node is unharmed
//   tls_files       a key that is not the certificate's: exit 2, named
#include <boost/algorithm/string/join.hpp>
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <netinet/in.h>
#include <poll.h>
#include <regex>
#include <sstream>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include "support/cluster.hpp"
#include "support/loopback.hpp"
#include "support/redis_server.hpp"

using namespace resized::test;
using namespace std::chrono_literals;

namespace {

constexpr auto join_timeout = 10s;
constexpr auto batch_timeout = 60s;

/// Precondition of the cases that set their own openssl.* arguments: the
/// TLS-everywhere run reports them as skipped (the plain run has them).
boost::test_tools::assertion_result
outside_the_tls_everywhere_run(boost::unit_test::test_unit_id) {
  boost::test_tools::assertion_result ok{!cluster_tls_everywhere()};
  ok.message() << "the TLS-everywhere run leaves it out: it sets its own "
                  "openssl.* arguments";
  return ok;
}
const auto sets_its_own_tls =
    boost::unit_test::precondition(outside_the_tls_everywhere_run);

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

/// Submits one long task (the largest box of the largest corpus photo, as
/// PNG: seconds of work on one libvips thread; as AVIF: about 11 s on a
/// 2.6 GHz EPYC core) to `api`, which has only `worker` (started with
/// --log.level=debug) to run it; waits until the worker runs it, not only
/// until it is placed (its 8 MB may still be on the way). Returns its token
/// ("" and a failed check on timeout).
std::string start_long_task(const api_node& api, worker_process& worker,
                            const std::string& format = "png") {
  static int counter = 0;
  auto big = photos_sized(7'000'000, 8'000'000); // gnome__pixels-l.webp
  BOOST_TEST_REQUIRE(big.size() == 1u);
  auto token = submit_to(api, big.front().bytes, big.front().type,
                         "?width=" + std::to_string(4000 + counter++) +
                             "&height=4096&mode=fill&format=" + format);
  BOOST_TEST_REQUIRE(!token.empty());
  bool running = wait_until(
      [&] {
        return lines_with(worker.log(), {"resize started", "token=" + token}) ==
               1;
      },
      20s);
  BOOST_TEST_REQUIRE(running, "the long task never started on "
                                  << worker.name() << ": "
                                  << get_cluster(api).body);
  return token;
}

/// "exit 0", "exit 2" or "signal 9", from a waitpid status.
std::string describe_exit(int status) {
  if (WIFEXITED(status))
    return "exit " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status))
    return "signal " + std::to_string(WTERMSIG(status));
  return "status " + std::to_string(status);
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

  // Each node's build, as `resized --version` names it: "0.1.0 (commit)".
  std::string text;
  BOOST_TEST_REQUIRE(
      run_to_exit({env_or("RESIZED_BIN", "resized"), "--version"}, text,
                  std::chrono::seconds{15}) == 0,
      text);
  std::smatch m;
  BOOST_TEST_REQUIRE(
      std::regex_search(text, m,
                        std::regex{"^resized ([^ ]+) \\(commit ([^)]+)\\)"}),
      text);
  const std::string build = m[1].str() + " (" + m[2].str() + ")";
  // The worker's hello was answered with the API node's build.
  BOOST_TEST(wait_until(
      [&] { return log_has(w1.log(), "api_version=\"" + build + "\""); },
      join_timeout));

  auto before = get_cluster(api);
  BOOST_TEST_CONTEXT("cluster " << before.body) {
    BOOST_TEST_REQUIRE(before.ok);
    BOOST_TEST(before.node == "api-1");
    BOOST_TEST(before.role == "api");
    BOOST_TEST(before.version == build);
    // resize.pool-size=0 in cluster-api.ini: no local node, only workers.
    BOOST_TEST(before.totals.nodes == 2);
    BOOST_TEST(before.totals.workers == 4);
    for (const auto* id : {"worker-1", "worker-2"}) {
      const auto* n = before.find(id);
      BOOST_TEST_REQUIRE(n != nullptr);
      BOOST_TEST(n->role == "worker");
      BOOST_TEST(n->workers == 2); // cluster-worker.ini: pool-size=2
      BOOST_TEST(n->version == build);
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

namespace {

// The statuses written into task `token`'s record, in order, from a
// redis_monitor's text: the HSETs that ran, sent by a client (the accepting
// transaction) or by a record script ("[0 lua]"; a script that refuses a
// write, as after a final record, runs none).
std::vector<std::string> statuses_written(const std::string& monitor_text,
                                          const std::string& token) {
  std::vector<std::string> out;
  std::istringstream lines{monitor_text};
  const std::string field = "\"status\" \"";
  for (std::string line; std::getline(lines, line);) {
    auto command = line.find("] ");
    if (command == std::string::npos ||
        line.compare(command + 2, 7, "\"HSET\" ") != 0 ||
        line.find(token) == std::string::npos)
      continue;
    auto at = line.find(field);
    if (at == std::string::npos)
      continue;
    at += field.size();
    out.push_back(line.substr(at, line.find('"', at) - at));
  }
  return out;
}

} // namespace

BOOST_AUTO_TEST_CASE(two_api_nodes_share_redis_and_a_worker) {
  redis_server redis;
  api_node a(redis.port(), "api-a");
  api_node b(redis.port(), "api-b");
  worker_process shared("worker-shared", {a.endpoint(), b.endpoint()});
  note_logs({&a.process(), &b.process(), &shared.process()});
  BOOST_TEST_REQUIRE(wait_listed(a, {"worker-shared"}, join_timeout));
  BOOST_TEST_REQUIRE(wait_listed(b, {"worker-shared"}, join_timeout));
  redis_monitor monitor(redis); // every status written, in order

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

  // The shared worker, busy with the other node's tasks, turns tasks away
  // (each API node counts its two slots there). A task turned away was
  // never started: Redis, which every API node answers from, shows it
  // PENDING until the worker takes it, then IN_PROGRESS, then SUCCESS,
  // never IN_PROGRESS and PENDING again; the node logs "task started" once.
  auto written = monitor.text();
  for (const auto& [api, tokens] :
       {std::make_pair(&a, tokens_a), std::make_pair(&b, tokens_b)})
    for (const auto& token : tokens) {
      auto statuses = statuses_written(written, token);
      BOOST_TEST_CONTEXT("token " << token << " of " << api->name()
                                  << ", statuses written: "
                                  << boost::algorithm::join(statuses, " ")) {
        BOOST_TEST((statuses == std::vector<std::string>{
                                    "PENDING", "IN_PROGRESS", "SUCCESS"}));
        BOOST_TEST(lines_with(api->log(), {"task started", "token=" + token}) ==
                   1u);
      }
    }

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

// API.md: 503 when no worker is available. An API node without a pool and
// without workers takes nothing it could only park; once one joins, it does.
BOOST_AUTO_TEST_CASE(an_api_node_without_workers_refuses_work) {
  redis_server redis;
  api_node api(redis.port(), "api-alone");
  note_logs({&api.process()});
  auto refused =
      http_post(api.url("/api/v1/resize"), small_photo_bytes(), "image/jpeg");
  check_error(refused, 503, "no_workers");
  BOOST_TEST(!refused.header("retry-after").empty());
  worker_process joins("worker-joins", {api.endpoint()});
  note_logs({&joins.process()});
  BOOST_TEST_REQUIRE(wait_listed(api, {"worker-joins"}, join_timeout));
  auto token = accepted_token(
      http_post(api.url("/api/v1/resize"), small_photo_bytes(), "image/jpeg"));
  BOOST_TEST_REQUIRE(!token.empty());
  expect_all_success(api, {token});
  // The worker's own log says what it ran.
  BOOST_TEST(wait_until(
                 [&] {
                   return lines_with(joins.log(),
                                     {"level=info", "msg=\"resize done\"",
                                      "token=" + token}) == 1;
                 },
                 10s),
             joins.log());
}

// An API node whose cluster port is open beyond this host without TLS is
// warned of at start: any node that connects is sent uploads and returns
// results. On loopback (as the other tests run) it is not.
BOOST_AUTO_TEST_CASE(an_open_cluster_port_without_tls_is_warned_of,
                     *sets_its_own_tls) {
  redis_server redis;
  const std::vector<std::string> warning{"level=warn",
                                         "the cluster port takes any node"};
  api_node open(redis.port(), "open-api", {"--cluster.bind-address=0.0.0.0"});
  BOOST_TEST(
      lines_with(open.log(), {warning[0], warning[1],
                              "cluster=0.0.0.0:" +
                                  std::to_string(open.cluster_port())}) == 1u,
      open.log());
  api_node local(redis.port(), "loopback-api");
  BOOST_TEST(lines_with(local.log(), warning) == 0u, local.log());
  BOOST_TEST(lines_with(local.log(), {"resized started", "cluster_tls=off"}) ==
             1u);
}

BOOST_AUTO_TEST_CASE(worker_started_before_api_node) {
  redis_server redis;
  api_node api(redis.port(), "api-late", {}, /*start_now=*/false);
  // At debug: the tries past the warning are logged there.
  worker_process early("worker-early", {api.endpoint()}, {"--log.level=debug"});
  note_logs({&early.process()});
  // The worker tried, failed (nothing listens yet) and keeps trying.
  BOOST_TEST_REQUIRE(
      wait_until([&] { return log_has(early.log(), "cluster link down"); },
                 10s),
      "worker log: " << early.log());
  BOOST_TEST_REQUIRE(early.running());
  // Said in words, not as CAF's system_error(cannot_connect_to_node, ...).
  BOOST_TEST(
      lines_with(early.log(), {"cluster link down",
                               "reason=\"cannot connect to " + api.endpoint() +
                                   " (nothing listens there"}) >= 1u,
      early.log());
  // Still down at the fifth try: said once at warn, where operators look.
  BOOST_TEST_REQUIRE(
      wait_until(
          [&] {
            return log_has(early.log(), "cluster link still down: not joined");
          },
          30s),
      "worker log: " << early.log());
  BOOST_TEST(lines_with(early.log(), {"level=warn", "cluster link still down",
                                      "tries=5"}) == 1u,
             early.log());
  // The next at debug: a node gone for good would fill the log (once a
  // minute at info).
  BOOST_TEST_REQUIRE(
      wait_until([&] { return log_has(early.log(), "tries=6"); }, 15s),
      "worker log: " << early.log());
  BOOST_TEST(lines_with(early.log(),
                        {"level=debug", "cluster link down", "tries=6"}) == 1u,
             early.log());

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

// A node's name is its identity. A second worker started with a name in
// use is turned away while the first one is connected: the API node logs
// both addresses, the newcomer logs why and keeps asking (it may be the
// restart of a crashed node that the API node has not yet noticed is dead),
// and the original keeps its task, its place and its work.
// The operator's finding: a second API node started under a running one's
// cluster.node-name adopted its pending set (resized:pending:<name>) and
// ran its tasks again. Now the name's lease in Redis is the running node's:
// the second one waits for it (at most cluster.lease-ms + lease-renew-ms,
// 1 s + 0.3 s here, in case it is a crashed predecessor's), sees it still
// renewed, and exits 4 with an error naming the holder, before it recovers
// anything. The tasks in the first node's pending set stay as they were
// (written straight into Redis after the first node started, so only an
// impostor would recover them: without their input, recovery would end
// them FAILURE), and the first node keeps its lease and its work.
BOOST_AUTO_TEST_CASE(a_second_api_node_with_a_name_in_use_is_refused) {
  redis_server redis;
  api_node real(redis.port(), "api-dup");
  worker_process worker("worker-dup", {real.endpoint()});
  note_logs({&real.process(), &worker.process()});
  BOOST_TEST_REQUIRE(wait_listed(real, {"worker-dup"}, join_timeout));
  auto taken = wait_log_line(real.process(), "node name lease taken", 10s);
  BOOST_TEST_REQUIRE(!taken.empty(), real.log());
  auto instance = log_value(taken, "instance");
  BOOST_TEST_REQUIRE(!instance.empty(), taken);
  std::vector<std::string> pending;
  for (int i = 0; i < 3; ++i) {
    auto token = random_uuid();
    put_orphan_pending_record(redis, token);
    redis.command("SADD resized:pending:api-dup " + token);
    pending.push_back(token);
  }

  api_node impostor(redis.port(), "api-dup", {}, false); // its own ports
  std::vector<std::string> argv{
      env_or("RESIZED_BIN", "resized"),
      "--config-file=" + env_or("RESIZED_SOURCE_DIR", ".") +
          "/config/cluster-api.ini",
      "--http.port=" + std::to_string(impostor.http_port()),
      "--cluster.port=" + std::to_string(impostor.cluster_port()),
      "--cluster.bind-address=127.0.0.1",
      "--redis.port=" + std::to_string(redis.port()),
      "--cluster.node-name=api-dup"};
  for (auto& a : cluster_test_args())
    argv.push_back(a);
  for (auto& a : short_lease_args())
    argv.push_back(a);
  std::string output;
  auto t0 = std::chrono::steady_clock::now();
  int rc = run_to_exit(argv, output, 20s);
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - t0);
  BOOST_TEST_MESSAGE("the second api-dup exited " << rc << " after "
                                                  << took.count() << " ms");
  BOOST_TEST_CONTEXT("exit " << rc << ", output:\n" << output) {
    BOOST_TEST(rc == 4);
    BOOST_TEST(lines_with(output, {"level=warn",
                                   "node name held by another "
                                   "instance: waiting",
                                   "holder=" + instance}) == 1u);
    BOOST_TEST(lines_with(output, {"level=error",
                                   "node name in use by a running instance",
                                   "node=api-dup", "holder=" + instance,
                                   "exit_code=4"}) == 1u);
    BOOST_TEST(!log_has(output, "resized started"));
    BOOST_TEST(!log_has(output, "recovered tasks"));
    BOOST_TEST(!log_has(output, "task failed"));
  }

  // The first node's pending tasks: still in its set, still PENDING.
  for (const auto& token : pending) {
    BOOST_TEST_CONTEXT("token " << token) {
      BOOST_TEST(redis.command("SISMEMBER resized:pending:api-dup " + token) ==
                 ":1\r\n");
      BOOST_TEST(redis.command("HGET resized:task:" + token + " status") ==
                 "$7\r\nPENDING\r\n");
    }
  }
  // Its lease is still its own, and it still works.
  BOOST_TEST(redis.command("GET resized:node:api-dup") ==
             "$" + std::to_string(instance.size()) + "\r\n" + instance +
                 "\r\n");
  BOOST_TEST(real.running());
  BOOST_TEST(!log_has(real.log(), "lease on this node's name lost"));
  auto small = photos_sized(50'000, 200'000);
  BOOST_TEST_REQUIRE(!small.empty());
  BOOST_TEST(expect_all_success(real, submit_batch(real, small, 2)).size() ==
             2u);
}

BOOST_AUTO_TEST_CASE(a_worker_with_a_name_in_use_is_refused) {
  redis_server redis;
  // AVIF results of 4096 x 4096 (limits.max-avif-pixels): long tasks
  api_node api(redis.port(), "api-n", {"--limits.max-avif-pixels=16777216"});
  worker_process original("worker-same", {api.endpoint()},
                          {"--log.level=debug", "--cluster.advertise=first"});
  note_logs({&api.process(), &original.process()});
  BOOST_TEST_REQUIRE(wait_listed(api, {"worker-same"}, join_timeout));
  auto before = get_cluster(api);
  const auto* listed = before.find("worker-same");
  BOOST_TEST_REQUIRE(listed != nullptr, before.body);
  BOOST_TEST_REQUIRE(listed->address == "first");
  // AVIF: seconds of work, still running while the twin is turned away.
  auto token = start_long_task(api, original, "avif");

  worker_process twin("worker-same", {api.endpoint()},
                      {"--log.level=debug", "--cluster.advertise=second"});
  note_logs({&twin.process()});
  // Refused, and said so on both sides; asked again (backoff <= 500 ms).
  // The twin logs each refusal after the API node does: wait for both.
  auto refusals_logged = [&] {
    return lines_with(api.log(),
                      {"node name taken", "worker-same", "holder_address=first",
                       "newcomer_address=second"}) >= 2 &&
           lines_with(twin.log(), {"join refused: node name in use",
                                   "level=error", "worker-same", "first"}) >= 2;
  };
  BOOST_TEST(wait_until(refusals_logged, join_timeout), "API log:\n"
                                                            << api.log()
                                                            << "\ntwin log:\n"
                                                            << twin.log());
  auto tlog = twin.log();
  BOOST_TEST(!log_has(tlog, "joined API node"), tlog);
  BOOST_TEST(twin.running()); // it keeps asking, in case the name frees up

  // One entry, still the original's, since the same moment.
  auto during = get_cluster(api);
  BOOST_TEST_CONTEXT("cluster " << during.body) {
    BOOST_TEST_REQUIRE(during.ok);
    BOOST_TEST(during.nodes.size() == 1u);
    const auto* n = during.find("worker-same");
    BOOST_TEST_REQUIRE(n != nullptr);
    BOOST_TEST(n->address == "first");
    BOOST_TEST(n->up_since == listed->up_since);
    BOOST_TEST(n->busy == 1); // its task is still its own
  }

  // The original finishes its task and takes new ones; the twin runs none.
  auto small = photos_sized(50'000, 200'000);
  BOOST_TEST_REQUIRE(!small.empty());
  auto more = submit_batch(api, small, 3);
  more.push_back(token);
  auto done = expect_all_success(api, more);
  BOOST_TEST(done.size() == 4u);
  BOOST_TEST(lines_with(original.log(), {"resize started"}) == 4u);
  BOOST_TEST(lines_with(twin.log(), {"resize started"}) == 0u);
  auto after = get_cluster(api);
  auto log = api.log();
  BOOST_TEST_CONTEXT("cluster " << after.body << "\nAPI log:\n" << log) {
    BOOST_TEST(after.nodes.size() == 1u);
    const auto* n = after.find("worker-same");
    BOOST_TEST_REQUIRE(n != nullptr);
    BOOST_TEST(n->address == "first");
    BOOST_TEST(n->tasks_done == 4);
    BOOST_TEST(after.totals.retried == 0);
    BOOST_TEST(!log_has(log, "node lost"));
    BOOST_TEST(!log_has(log, "task re-queued"));
    BOOST_TEST(finished_lines(log, token) == 1u);
  }
  BOOST_TEST(original.running());
}

namespace {

// After `api` refused `refused` for its heartbeat settings: it stays out
// (running, asking again, not listed), and a worker of the tests' settings
// named `fitting` joins and runs tasks, none of them on `refused`.
void refused_stays_out_and_a_fitting_worker_works(api_node& api,
                                                  worker_process& refused,
                                                  const std::string& fitting) {
  BOOST_TEST(!log_has(refused.log(), "joined API node"));
  BOOST_TEST(refused.running());
  BOOST_TEST(get_cluster(api).find(refused.name()) == nullptr);
  worker_process joining(fitting, {api.endpoint()});
  note_logs({&joining.process()});
  BOOST_TEST_REQUIRE(wait_listed(api, {fitting}, join_timeout));
  auto small = photos_sized(50'000, 200'000);
  BOOST_TEST_REQUIRE(!small.empty());
  BOOST_TEST(expect_all_success(api, submit_batch(api, small, 2)).size() == 2u);
  BOOST_TEST(lines_with(refused.log(), {"resize started"}) == 0u);
}

} // namespace

// A worker whose heartbeats are as far apart as the API node's connection
// timeout would be cut off between two of them, join again and lose its
// tasks, over and over: refused at join, said on both sides with both
// values; it keeps asking. A worker with closer heartbeats joins and works.
BOOST_AUTO_TEST_CASE(a_worker_whose_heartbeats_are_too_far_apart_is_refused) {
  redis_server redis;
  api_node api(redis.port(), "api-hb"); // connection timeout 3000 ms
  worker_process slow(
      "worker-slow", {api.endpoint()},
      {"--cluster.heartbeat-ms=3000", "--cluster.connection-timeout-ms=9000"});
  note_logs({&api.process(), &slow.process()});
  auto refusals_logged = [&] {
    return lines_with(api.log(),
                      {"worker refused: its heartbeats are too far apart",
                       "worker=worker-slow", "worker_heartbeat_ms=3000",
                       "connection_timeout_ms=3000"}) >= 2 &&
           lines_with(slow.log(),
                      {"join refused: heartbeats too far apart", "level=error",
                       "a heartbeat every 3000 ms", "silent for 3000 ms"}) >= 2;
  };
  BOOST_TEST(wait_until(refusals_logged, join_timeout), "API log:\n"
                                                            << api.log()
                                                            << "\nworker log:\n"
                                                            << slow.log());
  refused_stays_out_and_a_fitting_worker_works(api, slow, "worker-quick");
}

// The other way round: a worker that cuts a connection silent for as long
// as the API node's heartbeat interval would cut the API node off in every
// quiet spell, join again and have its tasks placed again, over and over:
// refused at join, said on both sides with both values and which setting
// to change; it keeps asking. A worker with a longer timeout joins and
// works.
BOOST_AUTO_TEST_CASE(a_worker_that_would_cut_the_api_node_off_is_refused) {
  redis_server redis;
  // Heartbeats every 2000 ms; its own connection timeout 3000 ms.
  api_node api(redis.port(), "api-slow-beat", {"--cluster.heartbeat-ms=2000"});
  worker_process hasty("worker-hasty", {api.endpoint()},
                       {"--cluster.connection-timeout-ms=1500"});
  note_logs({&api.process(), &hasty.process()});
  auto refusals_logged = [&] {
    return lines_with(
               api.log(),
               {"worker refused: this node's heartbeats are too far apart "
                "for it",
                "worker=worker-hasty", "heartbeat_ms=2000",
                "worker_connection_timeout_ms=1500"}) >= 2 &&
           lines_with(hasty.log(),
                      {"join refused: heartbeats too far apart", "level=error",
                       "the API node sends a heartbeat every 2000 ms",
                       "silent for 1500 ms",
                       "cluster.connection-timeout-ms above 2000"}) >= 2;
  };
  BOOST_TEST(wait_until(refusals_logged, join_timeout), "API log:\n"
                                                            << api.log()
                                                            << "\nworker log:\n"
                                                            << hasty.log());
  refused_stays_out_and_a_fitting_worker_works(api, hasty, "worker-patient");
  BOOST_TEST(!log_has(api.log(), "node lost"));
}

// A worker restarted under its own name is not locked out by its old self:
// after kill -9 (the API node sees the connection close) it is back at
// once; when its old self is still connected but silent (a lost machine,
// here SIGSTOP), it is refused until the API node's heartbeat timeout
// (cluster.connection-timeout-ms, 3 s here) declares the old one dead,
// and then gets in on its next try.
BOOST_AUTO_TEST_CASE(a_worker_restarted_under_its_name_gets_back_in) {
  redis_server redis;
  api_node api(redis.port(), "api-p");
  note_logs({&api.process()});
  auto small = photos_sized(50'000, 200'000);
  BOOST_TEST_REQUIRE(!small.empty());
  auto listed_at = [&](const std::string& address) {
    return wait_until(
        [&] {
          auto s = get_cluster(api);
          const auto* n = s.find("worker-phoenix");
          return n != nullptr && n->address == address && s.nodes.size() == 1;
        },
        join_timeout);
  };
  worker_process first("worker-phoenix", {api.endpoint()},
                       {"--cluster.advertise=life-1"});
  note_logs({&first.process()});
  BOOST_TEST_REQUIRE(listed_at("life-1"), get_cluster(api).body);

  // Crash and restart: the connection closed, so the name is free at once.
  first.kill9();
  worker_process second("worker-phoenix", {api.endpoint()},
                        {"--cluster.advertise=life-2"});
  note_logs({&second.process()});
  BOOST_TEST_REQUIRE(listed_at("life-2"),
                     "not back after kill -9: " << get_cluster(api).body
                                                << "\nits log:\n"
                                                << second.log());
  BOOST_TEST(expect_all_success(api, submit_batch(api, small, 2)).size() == 2u);

  // A lost machine: the old process still holds the connection but says
  // nothing. Its restart is refused while the API node believes it alive
  // (refused at least once: it knocked before the silence began) ...
  worker_process third("worker-phoenix", {api.endpoint()},
                       {"--cluster.advertise=life-3"});
  note_logs({&third.process()});
  BOOST_TEST_REQUIRE(wait_until(
                         [&] {
                           return lines_with(api.log(),
                                             {"node name taken",
                                              "holder_address=life-2",
                                              "newcomer_address=life-3"}) >= 1;
                         },
                         join_timeout),
                     api.log());
  ::kill(second.process().pid(), SIGSTOP);
  auto t0 = std::chrono::steady_clock::now();
  // ... and gets in once the heartbeat timeout declared the old one dead.
  bool back = listed_at("life-3");
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - t0);
  second.kill9();
  BOOST_TEST_REQUIRE(back, "not back after the old one went silent: "
                               << get_cluster(api).body << "\nAPI log:\n"
                               << api.log() << "\nits log:\n"
                               << third.log());
  BOOST_TEST_MESSAGE("the restarted worker got in " << took.count()
                                                    << " ms after the silence");
  BOOST_TEST(lines_with(api.log(), {"node lost", "worker-phoenix"}) >= 1u);
  BOOST_TEST(lines_with(third.log(), {"joined API node"}) == 1u);
  BOOST_TEST(expect_all_success(api, submit_batch(api, small, 2)).size() == 2u);
  auto view = get_cluster(api);
  const auto* n = view.find("worker-phoenix");
  BOOST_TEST_REQUIRE(n != nullptr, view.body);
  BOOST_TEST(n->tasks_done == 2); // the third life's
}

// A rolling restart of a worker: SIGTERM while it runs a long task. The
// worker tells the API node it leaves (nothing more is placed there, though
// it has a free slot), finishes the task and delivers the result over the
// still open link, then exits 0; the API node never counts the task as lost.
BOOST_AUTO_TEST_CASE(worker_sigterm_finishes_its_task_then_exits) {
  redis_server redis;
  api_node api(redis.port(), "api-d");
  // log.level=debug: the worker logs each resize it starts.
  worker_process leaver("worker-leaver", {api.endpoint()},
                        {"--log.level=debug"});
  note_logs({&api.process(), &leaver.process()});
  BOOST_TEST_REQUIRE(wait_listed(api, {"worker-leaver"}, join_timeout));

  auto token = start_long_task(api, leaver);
  std::vector<std::string> long_task{token};
  leaver.process().signal(SIGTERM); // mid-task

  // The API node learns that the worker leaves, while the worker still
  // runs the task and has a free slot (pool-size=2) ...
  BOOST_TEST(
      wait_until([&] { return log_has(api.log(), "node leaving"); }, 10s),
      "API node never heard the worker leave:\n"
          << api.log() << "\nworker log:\n"
          << leaver.log());
  // ... so it is not offered new work: with no other worker, the API node
  // has none that takes tasks and says so (503 no_workers) ...
  auto small = photos_sized(50'000, 200'000);
  BOOST_TEST_REQUIRE(!small.empty());
  check_error(http_post(api.url("/api/v1/resize"), small.front().bytes,
                        small.front().type),
              503, "no_workers");
  // /readyz says why, in words that count right (1 node, not "1 nodes").
  auto why = check_error(http_get(api.url("/readyz")), 503, "no_workers");
  BOOST_TEST(why.find("(1 node known: none with workers taking tasks, 1 "
                      "leaving)") != std::string::npos,
             why);
  auto view = get_cluster(api);
  BOOST_TEST_CONTEXT("cluster right after the submissions: " << view.body) {
    const auto* n = view.find("worker-leaver");
    BOOST_TEST(n != nullptr); // still connected: it is draining
    if (n != nullptr)
      BOOST_TEST(n->busy == 1); // the long task only
  }
  // ... and once another worker joins, new tasks go there, not to the
  // leaving one's free slot.
  worker_process stayer("worker-stayer", {api.endpoint()});
  note_logs({&stayer.process()});
  BOOST_TEST_REQUIRE(wait_listed(api, {"worker-stayer"}, join_timeout));
  auto later = submit_batch(api, small, 3);
  auto later_done = expect_all_success(api, later);
  BOOST_TEST(later_done.size() == later.size());

  int status = -1;
  BOOST_TEST_REQUIRE(leaver.process().wait_exit(30s, status),
                     "the worker did not exit: " << leaver.log());
  BOOST_TEST(describe_exit(status) == "exit 0", leaver.log());
  auto wlog = leaver.log();
  // The signal came while the task ran.
  BOOST_TEST(lines_with(wlog, {"draining", "in_flight=1"}) == 1u, wlog);

  auto finals = expect_all_success(api, long_task);
  BOOST_TEST(finals.size() == 1u);
  // The record names the worker that was shut down: it ran the task.
  BOOST_TEST(redis.command("HGET resized:task:" + token + " node")
                 .find("worker-leaver") != std::string::npos);
  BOOST_TEST(wait_unlisted(api, "worker-leaver", 10s),
             "gone worker still listed: " << get_cluster(api).body);

  auto after = get_cluster(api);
  auto log = api.log();
  BOOST_TEST_CONTEXT("cluster " << after.body << "\nAPI log:\n" << log) {
    BOOST_TEST_REQUIRE(after.ok);
    BOOST_TEST(after.totals.retried == 0); // no attempt counted as lost
    BOOST_TEST(after.totals.failed == 0);
    BOOST_TEST(after.totals.succeeded == 4);
    const auto* s = after.find("worker-stayer");
    BOOST_TEST_REQUIRE(s != nullptr);
    BOOST_TEST(s->tasks_done == 3);
    BOOST_TEST(!log_has(log, "task re-queued"));
    BOOST_TEST(!log_has(log, "node lost"));
    BOOST_TEST(log_has(log, "node left"));
    // Said as what it was, not as a lost connection.
    BOOST_TEST(lines_with(log, {"node left", "shut down after leaving"}) == 1u);
    // Placed once, on the leaving worker, and finished once; nothing else
    // was placed there.
    BOOST_TEST(lines_with(log, {"task started", "token=" + token}) == 1u);
    BOOST_TEST(finished_lines(log, token) == 1u);
    BOOST_TEST(lines_with(log, {"task started", "worker-leaver"}) == 1u);
  }
}

// GET /api/v1/cluster says which nodes are shutting down: a worker that got
// SIGTERM is "leaving" while it finishes its task (it still counts its busy
// slot), the others "ready"; once it is gone it is not listed.
BOOST_AUTO_TEST_CASE(a_leaving_worker_shows_leaving_in_the_cluster_view) {
  redis_server redis;
  api_node api(redis.port(), "api-s");
  worker_process leaver("worker-shown-leaving", {api.endpoint()},
                        {"--log.level=debug"});
  note_logs({&api.process(), &leaver.process()});
  BOOST_TEST_REQUIRE(wait_listed(api, {"worker-shown-leaving"}, join_timeout));
  // The long task runs on the leaver (the only worker yet), then a second
  // worker joins that stays.
  auto token = start_long_task(api, leaver);
  worker_process stayer("worker-shown-ready", {api.endpoint()});
  note_logs({&stayer.process()});
  BOOST_TEST_REQUIRE(wait_listed(api, {"worker-shown-ready"}, join_timeout));
  auto before = get_cluster(api);
  BOOST_TEST_CONTEXT("cluster " << before.body) {
    BOOST_TEST(before.nodes.size() == 2u);
    for (const auto& n : before.nodes)
      BOOST_TEST(n.state == "ready", n.id);
  }

  leaver.process().signal(SIGTERM);
  cluster_snapshot seen;
  bool shown = wait_until(
      [&] {
        seen = get_cluster(api);
        const auto* n = seen.find("worker-shown-leaving");
        return n != nullptr && n->state == "leaving";
      },
      10s);
  BOOST_TEST_CONTEXT("cluster " << seen.body) {
    BOOST_TEST_REQUIRE(shown, "never shown leaving");
    const auto* n = seen.find("worker-shown-leaving");
    BOOST_TEST(n->busy == 1); // still finishing its task
    const auto* s = seen.find("worker-shown-ready");
    BOOST_TEST_REQUIRE(s != nullptr);
    BOOST_TEST(s->state == "ready");
    // So does /metrics: the leaver's free workers are leaving, not idle
    // capacity; a node that stays has no leaving workers.
    auto metrics = http_get(api.url("/metrics")).body;
    auto sample = [&](const std::string& node, const std::string& state) {
      return metric_value(metrics, "resized_workers{node=\"" + node +
                                       "\",state=\"" + state + "\"}");
    };
    BOOST_TEST_CONTEXT("metrics " << metrics) {
      BOOST_TEST(sample("worker-shown-leaving", "busy") == 1);
      BOOST_TEST(sample("worker-shown-leaving", "idle") == 0);
      BOOST_TEST(sample("worker-shown-leaving", "leaving") ==
                 n->workers - n->busy);
      BOOST_TEST(sample("worker-shown-ready", "idle") == s->workers - s->busy);
      BOOST_TEST(sample("worker-shown-ready", "leaving") == 0);
    }
    // /readyz counts only the workers that take tasks, as POST does.
    auto ready = http_get(api.url("/readyz"));
    BOOST_TEST_CONTEXT("readyz " << ready.body) {
      BOOST_TEST(ready.status == 200);
      auto doc = parse_json(ready.body);
      BOOST_TEST_REQUIRE(doc.IsObject());
      BOOST_TEST(doc["workers"].GetUint64() == s->workers);
      BOOST_TEST(doc["nodes"].GetUint64() == 1u);
      // ... and their busy slots only (the leaver's counted: busy 1 of
      // the stayer's 2 workers, with none running there).
      BOOST_TEST(doc["busy"].GetUint64() == s->busy);
    }
  }
  expect_all_success(api, {token});
  BOOST_TEST(wait_unlisted(api, "worker-shown-leaving", 30s),
             "gone worker still listed: " << get_cluster(api).body);
  auto after = get_cluster(api);
  BOOST_TEST_REQUIRE(after.nodes.size() == 1u, after.body);
  BOOST_TEST(after.nodes.front().state == "ready");
}

// A rolling restart: the old worker drains after SIGTERM while its
// replacement, under the same name, knocks. That is no mistake: the API
// node warns (not an error), the newcomer logs at info that it waits, and
// it joins once the old one has left.
BOOST_AUTO_TEST_CASE(a_rolling_restart_under_the_same_name_waits_quietly) {
  redis_server redis;
  api_node api(redis.port(), "api-r");
  worker_process old_one("worker-rolling", {api.endpoint()},
                         {"--log.level=debug"});
  note_logs({&api.process(), &old_one.process()});
  BOOST_TEST_REQUIRE(wait_listed(api, {"worker-rolling"}, join_timeout));
  auto token = start_long_task(api, old_one);
  old_one.process().signal(SIGTERM);
  BOOST_TEST_REQUIRE(wait_until(
      [&] {
        auto view = get_cluster(api);
        const auto* n = view.find("worker-rolling");
        return n != nullptr && n->state == "leaving";
      },
      10s));
  worker_process new_one("worker-rolling", {api.endpoint()},
                         {"--log.level=debug"});
  note_logs({&new_one.process()});
  BOOST_TEST(wait_until(
                 [&] {
                   return lines_with(new_one.log(),
                                     {"level=info", "join deferred",
                                      "is leaving", "worker-rolling"}) >= 1;
                 },
                 join_timeout),
             new_one.log());
  expect_all_success(api, {token});
  int status = -1;
  BOOST_TEST_REQUIRE(old_one.process().wait_exit(30s, status));
  BOOST_TEST(describe_exit(status) == "exit 0");
  BOOST_TEST(wait_until(
                 [&] {
                   return log_has(new_one.log(), "joined API node") &&
                          get_cluster(api).find("worker-rolling") != nullptr;
                 },
                 20s),
             new_one.log());
  auto alog = api.log();
  BOOST_TEST(lines_with(alog, {"level=warn", "node name taken",
                               "holder_leaving=true"}) >= 1u,
             alog);
  BOOST_TEST(lines_with(alog, {"level=error", "node name taken"}) == 0u, alog);
  BOOST_TEST(lines_with(new_one.log(), {"level=error"}) == 0u, new_one.log());
}

// Past the grace (here shutdown.grace=0) or on a second signal a worker
// goes without waiting for its task, exit status 3: the API node re-queues
// it, counting the attempt as lost, and another worker runs it.
BOOST_AUTO_TEST_CASE(worker_shutdown_cut_short_requeues_its_task) {
  redis_server redis;
  api_node api(redis.port(), "api-c");
  note_logs({&api.process()});
  for (bool second_signal : {false, true}) {
    std::string name = second_signal ? "worker-twice" : "worker-nograce";
    BOOST_TEST_CONTEXT(name) {
      std::vector<std::string> args{"--log.level=debug"};
      if (!second_signal)
        args.push_back("--shutdown.grace=0");
      worker_process leaver(name, {api.endpoint()}, args);
      note_logs({&leaver.process()});
      BOOST_TEST_REQUIRE(wait_listed(api, {name}, join_timeout));
      auto token = start_long_task(api, leaver);
      leaver.process().signal(SIGTERM);
      if (second_signal) {
        // Once it waits for its task, a second signal ends the wait.
        BOOST_TEST(wait_until(
            [&] {
              return lines_with(api.log(), {"node leaving", name}) == 1;
            },
            10s));
        leaver.process().signal(SIGTERM);
      }
      int status = -1;
      BOOST_TEST_REQUIRE(leaver.process().wait_exit(10s, status),
                         "the worker did not exit: " << leaver.log());
      // It gave up on a task: not a clean exit.
      BOOST_TEST(describe_exit(status) == "exit 3", leaver.log());
      auto wlog = leaver.log();
      BOOST_TEST(
          log_has(wlog, second_signal ? "second signal" : "grace period over"),
          wlog);
      BOOST_TEST(lines_with(wlog, {"tasks abandoned", token}) == 1u, wlog);
      BOOST_TEST(wait_unlisted(api, name, 10s));

      worker_process stayer(name + "-stayer", {api.endpoint()});
      note_logs({&stayer.process()});
      auto finals = expect_all_success(api, {token});
      BOOST_TEST(finals.size() == 1u);
      auto log = api.log();
      BOOST_TEST_CONTEXT("API log:\n" << log) {
        BOOST_TEST(lines_with(log, {"node lost", name, "in_flight=1"}) == 1u);
        BOOST_TEST(lines_with(log, {"task re-queued", token, "attempt=1"}) ==
                   1u);
        BOOST_TEST(finished_lines(log, token) == 1u);
      }
      BOOST_TEST(redis.command("HGET resized:task:" + token + " node")
                     .find(name + "-stayer") != std::string::npos);
    }
  }
}

// libvips cannot be interrupted: a worker whose resize outlasts its grace
// (1 s here; the AVIF task takes seconds more) exits when the grace is
// over, not when the resize ends, with status 3 and the abandoned token in
// its log; the API node runs the task again on another worker.
BOOST_AUTO_TEST_CASE(
    a_worker_past_its_grace_exits_without_waiting_for_libvips) {
  redis_server redis;
  api_node api(redis.port(), "api-g", {"--limits.max-avif-pixels=16777216"});
  worker_process stuck("worker-stuck", {api.endpoint()},
                       {"--log.level=debug", "--shutdown.grace=1"});
  note_logs({&api.process(), &stuck.process()});
  BOOST_TEST_REQUIRE(wait_listed(api, {"worker-stuck"}, join_timeout));
  auto token = start_long_task(api, stuck, "avif");

  auto t0 = std::chrono::steady_clock::now();
  stuck.process().signal(SIGTERM);
  int status = -1;
  // grace + a margin for the scheduling of a loaded machine; the resize
  // itself needs several seconds more.
  bool exited = stuck.process().wait_exit(3s, status);
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - t0);
  auto wlog = stuck.log();
  BOOST_TEST_REQUIRE(exited, "still running 3 s after SIGTERM (grace 1 s):\n"
                                 << wlog);
  BOOST_TEST_MESSAGE("worker-stuck exited " << took.count()
                                            << " ms after SIGTERM");
  BOOST_TEST(took.count() >= 1000); // it did give the task its grace
  BOOST_TEST(describe_exit(status) == "exit 3", wlog);
  BOOST_TEST(lines_with(wlog, {"grace period over", "in_flight=1"}) == 1u,
             wlog);
  BOOST_TEST(lines_with(wlog, {"tasks abandoned", "tasks=1", token}) == 1u,
             wlog);

  // The API node saw it go and runs the task again on the next worker.
  BOOST_TEST(wait_unlisted(api, "worker-stuck", 10s), get_cluster(api).body);
  worker_process rescuer("worker-rescuer", {api.endpoint()});
  note_logs({&rescuer.process()});
  auto finals = expect_all_success(api, {token}, 120s);
  BOOST_TEST(finals.size() == 1u);
  auto log = api.log();
  BOOST_TEST_CONTEXT("API log:\n" << log) {
    BOOST_TEST(lines_with(log, {"node lost", "worker-stuck", "in_flight=1"}) ==
               1u);
    BOOST_TEST(lines_with(log, {"task re-queued", token, "attempt=1"}) == 1u);
    BOOST_TEST(finished_lines(log, token) == 1u);
  }
  BOOST_TEST(redis.command("HGET resized:task:" + token + " node")
                 .find("worker-rescuer") != std::string::npos);
}

// An idle worker has nothing to wait for: SIGTERM and it is gone at once
// (well inside shutdown.grace, 20 s), having told the API node first.
BOOST_AUTO_TEST_CASE(idle_worker_sigterm_exits_at_once) {
  redis_server redis;
  api_node api(redis.port(), "api-i");
  worker_process idle("worker-idle", {api.endpoint()});
  note_logs({&api.process(), &idle.process()});
  BOOST_TEST_REQUIRE(wait_listed(api, {"worker-idle"}, join_timeout));

  auto t0 = std::chrono::steady_clock::now();
  idle.process().signal(SIGTERM);
  int status = -1;
  BOOST_TEST_REQUIRE(idle.process().wait_exit(20s, status),
                     "the worker did not exit: " << idle.log());
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - t0);
  BOOST_TEST_MESSAGE("idle worker exited after " << took.count() << " ms");
  BOOST_TEST(describe_exit(status) == "exit 0", idle.log());
  BOOST_TEST(took.count() < 3000, "took " << took.count() << " ms");
  BOOST_TEST(wait_unlisted(api, "worker-idle", 10s));
  auto log = api.log();
  BOOST_TEST(log_has(log, "node left"), log);
  BOOST_TEST(!log_has(log, "node lost"), log);
}

// A task runs under the policy of the API node that accepted it, on any
// worker: here the worker's own [limits] say the opposite of the API
// node's, and the tasks end as the API node's settings say (on a
// standalone node with the API node's settings they end alike).
BOOST_AUTO_TEST_CASE(the_api_nodes_limits_apply_on_its_workers) {
  redis_server redis;
  api_node api(redis.port(), "api-policy", {"--limits.truncated=serve"});
  worker_process strict("worker-strict", {api.endpoint()},
                        {"--limits.truncated=fail",
                         "--limits.max-dimension=300",
                         "--limits.max-pixels=2000000"});
  note_logs({&api.process(), &strict.process()});
  BOOST_TEST_REQUIRE(wait_listed(api, {"worker-strict"}, join_timeout));
  // The worker says at start-up that these keys are not its to decide.
  auto warned = wait_log_line(strict.process(),
                              "config keys not used on a worker node", 10s);
  BOOST_TEST(warned.find("limits.truncated") != std::string::npos, warned);
  BOOST_TEST(warned.find("limits.max-dimension") != std::string::npos, warned);
  BOOST_TEST(warned.find("limits.max-pixels") != std::string::npos, warned);
  BOOST_TEST(warned.find("level=warn") != std::string::npos, warned);

  // A JPEG cut short (its scans end early): the API node serves it.
  auto cut = read_file(corpus_dir() + "/opencv__aloeL.jpg").substr(0, 150000);
  auto truncated = submit_to(api, cut, "image/jpeg", "?width=120");
  // Wider than the worker's max-dimension, within the API node's.
  auto wide = submit_to(api, small_photo_bytes(), "image/jpeg", "?width=400");
  // 16.8 MP, over the worker's max-pixels, within the API node's.
  auto big = photos_sized(7'000'000, 8'000'000); // gnome__pixels-l.webp
  BOOST_TEST_REQUIRE(big.size() == 1u);
  auto many_pixels =
      submit_to(api, big.front().bytes, big.front().type, "?width=140");
  BOOST_TEST_REQUIRE(!truncated.empty());
  BOOST_TEST_REQUIRE(!wide.empty());
  BOOST_TEST_REQUIRE(!many_pixels.empty());
  auto bodies = expect_all_success(api, {truncated, wide, many_pixels});
  BOOST_TEST(bodies.size() == 3u);
  BOOST_TEST(json_int(parse_json(bodies[wide]), "width") == 400);
  BOOST_TEST(json_int(parse_json(bodies[truncated]), "width") == 120);
  for (const auto& token : {truncated, wide, many_pixels})
    BOOST_TEST(lines_with(strict.log(), {"resize done", "token=" + token}) ==
                   1u,
               strict.log());
}

// The API node's task timeout is the deadline the worker enforces inside
// libvips: the worker (its own timeout 60 s) stops the resize at about the
// API node's 300 ms and answers processing_timeout itself, before the API
// node's backstop (deadline + 2 s), and does not run on for seconds.
BOOST_AUTO_TEST_CASE(the_api_nodes_deadline_stops_the_worker_inside_libvips) {
  redis_server redis;
  api_node api(
      redis.port(), "api-hasty",
      {"--resize.task-timeout-ms=300", "--limits.max-avif-pixels=16777216"});
  worker_process patient("worker-patient", {api.endpoint()},
                         {"--resize.task-timeout-ms=60000"});
  note_logs({&api.process(), &patient.process()});
  BOOST_TEST_REQUIRE(wait_listed(api, {"worker-patient"}, join_timeout));
  // A 14.7 MP photo as the largest AVIF box: seconds of work on one libvips
  // thread (1.5-4.4 s measured on 2 shared cores), far past 300 ms.
  auto token =
      submit_to(api, read_file(corpus_dir() + "/plasma__Volna_5120x2880.jpg"),
                "image/jpeg", "?width=4096&height=4096&mode=fill&format=avif");
  BOOST_TEST_REQUIRE(!token.empty());
  auto finals = wait_all_final(api, {token}, 30s);
  auto st = finals[token];
  BOOST_TEST_CONTEXT("status " << st.body) {
    BOOST_TEST(st.status == "FAILURE");
    auto doc = parse_json(st.body);
    BOOST_TEST_REQUIRE(doc.IsObject());
    BOOST_TEST_REQUIRE(doc.HasMember("error"));
    BOOST_TEST(json_string(doc["error"], "code") == "processing_timeout");
    // The worker's answer, with the API node's deadline in it.
    BOOST_TEST(json_string(doc["error"], "message").find("300 ms") !=
               std::string::npos);
  }
  // The worker's own line for the job: stopped at about 300 ms.
  std::string line;
  BOOST_TEST(wait_until(
                 [&] {
                   std::istringstream in{patient.log()};
                   for (std::string l; std::getline(in, l);)
                     if (l.find("token=" + token) != std::string::npos &&
                         (l.find("resize failed") != std::string::npos ||
                          l.find("resize done") != std::string::npos)) {
                       line = l;
                       return true;
                     }
                   return false;
                 },
                 10s),
             "the worker logged no end of the job:\n"
                 << patient.log());
  BOOST_TEST_CONTEXT("worker line: " << line) {
    BOOST_TEST(line.find("resize failed") != std::string::npos);
    BOOST_TEST(line.find("code=processing_timeout") != std::string::npos);
    BOOST_TEST(line.find("300 ms (stopped inside libvips)") !=
               std::string::npos);
    auto at = line.find(" ms=");
    BOOST_TEST_REQUIRE(at != std::string::npos);
    double ms = std::atof(line.c_str() + at + 4);
    BOOST_TEST(ms >= 300.0);
    BOOST_TEST(ms < 2000.0); // not the 60 s of its own config
  }
  // The API node got the worker's answer before its backstop (300 ms +
  // 2 s after the task started) would have ended the task.
  auto finished = wait_log_line(api.process(), "task finished", 1s);
  BOOST_TEST_CONTEXT("API line: " << finished) {
    BOOST_TEST(finished.find(token) != std::string::npos);
    BOOST_TEST(finished.find("code=processing_timeout") != std::string::npos);
    auto at = finished.find(" total_ms=");
    BOOST_TEST_REQUIRE(at != std::string::npos);
    BOOST_TEST(std::atol(finished.c_str() + at + 10) < 2300);
  }
}

// -- adoption of the pending tasks of a name nobody holds ---------------------

namespace {

/// An API node with a local pool of one, for tasks that stay queued: one
/// long task (as in start_long_task, on the local pool) holds the only slot
/// while `count` small ones wait behind it. Returns the small ones' tokens;
/// `long_token` gets the long one's.
std::vector<std::string> queue_behind_a_long_task(api_node& api, size_t count,
                                                  std::string& long_token) {
  static int counter = 0;
  auto big = photos_sized(7'000'000, 8'000'000); // gnome__pixels-l.webp
  BOOST_TEST_REQUIRE(big.size() == 1u);
  long_token = submit_to(api, big.front().bytes, big.front().type,
                         "?width=" + std::to_string(4000 + counter++) +
                             "&height=4096&mode=fill&format=png");
  BOOST_TEST_REQUIRE(!long_token.empty());
  bool running = wait_until(
      [&] {
        return lines_with(api.log(), {"task started", long_token}) == 1;
      },
      20s);
  BOOST_TEST_REQUIRE(running, api.log());
  auto small = photos_sized(50'000, 200'000);
  BOOST_TEST_REQUIRE(!small.empty());
  auto queued = submit_batch(api, small, count, 300);
  auto view = get_cluster(api);
  BOOST_TEST_REQUIRE(view.queue_depth == static_cast<int64_t>(count),
                     view.body);
  return queued;
}

/// The adoption line of `log` from node `from` ("" when there is none).
std::string adoption_line(const std::string& log, const std::string& from) {
  std::istringstream lines{log};
  for (std::string line; std::getline(lines, line);)
    if (line.find("adopted pending tasks of a node with no owner") !=
            std::string::npos &&
        line.find(" from=" + from) != std::string::npos)
      return line;
  return {};
}

} // namespace

// A drained API node that is not restarted (a scale-down): its queued
// tasks, left in its pending set, are adopted by the live peer sharing its
// Redis, within about a lease, and all end SUCCESS there.
BOOST_AUTO_TEST_CASE(a_drained_api_nodes_queued_tasks_are_adopted) {
  redis_server redis;
  api_node a(redis.port(), "adopt-a", {"--resize.pool-size=1"});
  api_node b(redis.port(), "adopt-b", {"--resize.pool-size=1"});
  note_logs({&a.process(), &b.process()});
  std::string long_token;
  auto queued = queue_behind_a_long_task(a, 4, long_token);
  int status = a.process().stop(SIGTERM, 30000ms);
  BOOST_TEST_REQUIRE(describe_exit(status) == "exit 0", a.log());
  BOOST_TEST(lines_with(a.log(), {"queued tasks not started", "queued=4"}) ==
             1u);
  auto t0 = std::chrono::steady_clock::now();
  expect_all_success(b, queued);
  auto took = std::chrono::steady_clock::now() - t0;
  BOOST_TEST_MESSAGE(
      "adopted and ran in "
      << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
      << " ms");
  auto line = adoption_line(b.log(), "adopt-a");
  BOOST_TEST(!line.empty(), b.log());
  BOOST_TEST(log_value(line, "tasks") == "4", line);
  // Counted, or B's final counts exceeded what it accepted unexplained.
  auto metrics = http_get(b.url("/metrics")).body;
  BOOST_TEST(metric_value(metrics,
                          "resized_tasks_recovered_total{how=\"adoption\"}") ==
                 4,
             metrics);
  BOOST_TEST(metric_value(metrics, "resized_tasks_retried_total") == 0);
  for (const auto& token : queued) {
    BOOST_TEST(lines_with(b.log(), {"task started", token, "attempt=0"}) == 1u);
    BOOST_TEST(lines_with(a.log(), {"task started", token}) == 0u);
  }
  // Nothing is left in either pending set but what B is still doing.
  BOOST_TEST(redis.command("EXISTS resized:pending:adopt-a") == ":0\r\n");
  BOOST_TEST(wait_until(
      [&] {
        return redis.command("SCARD resized:pending:adopt-b") == ":0\r\n";
      },
      10s));
}

// An adopted task runs under the policy of the API node that accepted it,
// kept with its record in Redis, not under the adopter's: a JPEG cut short,
// accepted by A whose limits.truncated is serve, is served by B, whose
// setting is fail (which would end it FAILURE corrupt_image).
BOOST_AUTO_TEST_CASE(an_adopted_task_keeps_its_accepting_nodes_policy) {
  redis_server redis;
  api_node a(redis.port(), "policy-a",
             {"--resize.pool-size=1", "--limits.truncated=serve"});
  api_node b(redis.port(), "policy-b",
             {"--resize.pool-size=1", "--limits.truncated=fail"});
  note_logs({&a.process(), &b.process()});
  std::string long_token;
  queue_behind_a_long_task(a, 0, long_token);
  auto cut = read_file(corpus_dir() + "/opencv__aloeL.jpg").substr(0, 150000);
  auto truncated = submit_to(a, cut, "image/jpeg", "?width=120");
  BOOST_TEST_REQUIRE(!truncated.empty());
  BOOST_TEST(redis.command("HGET resized:task:" + truncated +
                           " limit_truncated") == "$5\r\nserve\r\n");
  int status = a.process().stop(SIGTERM, 30000ms);
  BOOST_TEST_REQUIRE(describe_exit(status) == "exit 0", a.log());
  BOOST_TEST(lines_with(a.log(), {"queued tasks not started", "queued=1"}) ==
             1u);
  auto bodies = expect_all_success(b, {truncated});
  BOOST_TEST(json_int(parse_json(bodies[truncated]), "width") == 120);
  BOOST_TEST(!adoption_line(b.log(), "policy-a").empty(), b.log());
  BOOST_TEST(lines_with(b.log(), {"task started", truncated}) == 1u);
  BOOST_TEST(lines_with(a.log(), {"task started", truncated}) == 0u);
}

// kill -9 of an API node with queued tasks and one running: its lease runs
// out (lease-ms), then the peer adopts every one, the interrupted one as
// at a restart (one attempt lost).
BOOST_AUTO_TEST_CASE(a_dead_api_nodes_tasks_are_adopted_after_its_lease) {
  redis_server redis;
  api_node a(redis.port(), "dead-a", {"--resize.pool-size=1"});
  api_node b(redis.port(), "dead-b", {"--resize.pool-size=1"});
  note_logs({&a.process(), &b.process()});
  std::string long_token;
  auto queued = queue_behind_a_long_task(a, 3, long_token);
  a.kill9();
  auto all = queued;
  all.push_back(long_token);
  expect_all_success(b, all, 90s);
  auto line = adoption_line(b.log(), "dead-a");
  BOOST_TEST(!line.empty(), b.log());
  BOOST_TEST(log_value(line, "tasks") == "4", line);
  BOOST_TEST(lines_with(b.log(), {"task started", long_token, "attempt=1"}) ==
             1u);
  for (const auto& token : queued)
    BOOST_TEST(lines_with(b.log(), {"task started", token, "attempt=0"}) == 1u);
  // Counted: four taken up, the one that was running with an attempt lost,
  // in /metrics and in the cluster view alike.
  auto metrics = http_get(b.url("/metrics")).body;
  BOOST_TEST(metric_value(metrics,
                          "resized_tasks_recovered_total{how=\"adoption\"}") ==
                 4,
             metrics);
  BOOST_TEST(metric_value(metrics, "resized_tasks_retried_total") == 1,
             metrics);
  auto view = get_cluster(b);
  BOOST_TEST(view.totals.retried == 1, view.body);
}

// An API node restarted at once after a drain gets its own queued tasks
// back unless the peer adopted them first (whichever wins, the set moves
// whole): every task runs once, on one of them.
BOOST_AUTO_TEST_CASE(a_restarted_api_node_or_its_peer_runs_each_task_once) {
  redis_server redis;
  api_node a(redis.port(), "again-a", {"--resize.pool-size=1"});
  api_node b(redis.port(), "again-b", {"--resize.pool-size=1"});
  note_logs({&a.process(), &b.process()});
  std::string long_token;
  auto queued = queue_behind_a_long_task(a, 4, long_token);
  a.restart(); // SIGTERM, then started again under its name
  expect_all_success(a, queued);
  auto adopted = adoption_line(b.log(), "again-a");
  auto recovered = lines_with(
      a.log(), {"recovered tasks accepted before the restart", "resumed=4"});
  BOOST_TEST_MESSAGE((adopted.empty() ? "the restarted node recovered them"
                                      : "the peer adopted them"));
  BOOST_TEST((adopted.empty() ? recovered == 1u : recovered == 0u),
             "adopted: " << adopted);
  auto logs = a.log() + b.log();
  for (const auto& token : queued)
    BOOST_TEST(lines_with(logs, {"task started", token}) == 1u, token);
  BOOST_TEST(lines_with(logs, {"task started", long_token}) == 1u);
}

// -- TLS on the cluster port (openssl.*) -------------------------------------

namespace {

/// True, with a message, in the run with TLS everywhere (ctest
/// e2e.cluster_test_tls): a case that sets its own openssl.* arguments is
/// left out of it.
/// `n` connections to `port` on 127.0.0.1 that send nothing (reads time
/// out at 5 s); the caller closes them.
std::vector<int> connect_silently(uint16_t port, int n) {
  std::vector<int> fds;
  for (int i = 0; i < n; ++i) {
    int fd = connect_loopback(port);
    BOOST_TEST_REQUIRE(fd >= 0);
    fds.push_back(fd);
  }
  return fds;
}

/// The openssl.* arguments for certificate `name` (with its key) and the
/// CA `ca`, from test_certs_dir().
std::vector<std::string> tls_args(const std::string& name,
                                  const std::string& ca = "ca",
                                  const std::string& key = {}) {
  const auto& dir = test_certs_dir();
  return {"--openssl.certificate=" + dir + "/" + name + ".pem",
          "--openssl.key=" + dir + "/" + (key.empty() ? name + ".key" : key),
          "--openssl.cafile=" + dir + "/" + ca + ".pem"};
}

/// Opens a TCP connection to `port`, writes `bytes` and closes it.
void send_and_close(uint16_t port, const std::string& bytes) {
  int fd = connect_loopback(port);
  BOOST_TEST_REQUIRE(fd >= 0);
  BOOST_TEST(::write(fd, bytes.data(), bytes.size()) ==
             static_cast<ssize_t>(bytes.size()));
  ::close(fd);
}

} // namespace

// With openssl.* set, the cluster port speaks TLS and each side checks the
// other's certificate against the CA: a worker holding a certificate from
// it joins and runs tasks (its key encrypted, with openssl.passphrase); a
// worker without TLS, one with another CA's certificate, and plain bytes
// are refused and logged, and never disturb the joined worker (CAF's
// OpenSSL module let a refused handshake close the next healthy connection:
// src/openssl_calls.cpp).
BOOST_AUTO_TEST_CASE(tls_lets_in_only_nodes_with_a_certificate_from_the_ca,
                     *sets_its_own_tls) {
  redis_server redis;
  api_node api(redis.port(), "tls-api", tls_args("node"));
  auto good_args = tls_args("node", "ca", "node-encrypted.key");
  good_args.push_back("--openssl.passphrase=test-passphrase");
  worker_process good("tls-worker", {api.endpoint()}, good_args);
  note_logs({&api.process(), &good.process()});
  BOOST_TEST_REQUIRE(wait_listed(api, {"tls-worker"}, join_timeout));
  // Logged just after HTTP starts, which a worker's join need not wait for.
  BOOST_TEST(wait_until(
      [&] {
        return lines_with(api.log(), {"resized started", "cluster_tls=on"}) ==
               1u;
      },
      std::chrono::seconds{10}));

  worker_process plain("plain-worker", {api.endpoint()});
  worker_process rogue("rogue-worker", {api.endpoint()},
                       tls_args("rogue", "other-ca"));
  note_logs({&plain.process(), &rogue.process()});
  for (int i = 0; i < 3; ++i)
    send_and_close(api.cluster_port(), "GET / HTTP/1.1\r\n\r\n");
  // The rogue worker finds the API node's certificate unknown to its CA;
  // the API node refuses the plain bytes, the plain worker's BASP and
  // (had it got that far) the rogue's certificate.
  auto failed = wait_log_line(rogue.process(), "cluster TLS handshake failed",
                              join_timeout);
  BOOST_TEST(failed.find("reason=\"the peer's certificate: ") !=
                 std::string::npos,
             failed);
  auto refused = wait_log_line(api.process(), "cluster TLS handshake refused",
                               join_timeout);
  BOOST_TEST(!refused.empty());
  BOOST_TEST(wait_until(
      [&] {
        return lines_with(plain.log(), {"cluster link down"}) >= 3 &&
               lines_with(rogue.log(), {"cluster link down"}) >= 3;
      },
      join_timeout));

  // While the refused ones keep knocking, the joined worker does the work.
  auto photos = photos_sized(0, 2 << 20);
  BOOST_TEST_REQUIRE(!photos.empty());
  auto tokens = submit_batch(api, photos, 8);
  expect_all_success(api, tokens);
  auto view = get_cluster(api);
  BOOST_TEST_CONTEXT("cluster " << view.body) {
    BOOST_TEST_REQUIRE(view.ok);
    BOOST_TEST(view.nodes.size() == 1u);
    BOOST_TEST(view.find("tls-worker") != nullptr);
    BOOST_TEST(view.totals.retried == 0);
  }
  BOOST_TEST(lines_with(api.log(), {"node lost"}) == 0u);
  BOOST_TEST(lines_with(api.log(), {"node joined"}) == 1u);
  BOOST_TEST(lines_with(plain.log(), {"joined API node"}) == 0u);
  // The plain worker is told what is likely wrong.
  BOOST_TEST(lines_with(plain.log(), {"cluster link down",
                                      "is openssl.* set on both nodes"}) > 0u,
             plain.log());
  BOOST_TEST(lines_with(rogue.log(), {"joined API node"}) == 0u);
}

// A connection to the TLS port that never starts its handshake is cut off
// after cluster.connection-timeout-ms (1 s here), as a joined peer that
// falls silent is. (CAF keeps it, with a TLS context of its own, for as
// long as the peer keeps it open.)
BOOST_AUTO_TEST_CASE(a_tls_handshake_that_never_comes_is_cut_off,
                     *sets_its_own_tls) {
  redis_server redis;
  auto args = tls_args("node");
  args.push_back("--cluster.connection-timeout-ms=1000");
  api_node api(redis.port(), "tls-idle-api", args);
  note_logs({&api.process()});
  auto idle = connect_silently(api.cluster_port(), 3);
  auto t0 = std::chrono::steady_clock::now();
  for (int fd : idle) {
    char byte = 0;
    BOOST_TEST(::recv(fd, &byte, 1, 0) == 0); // closed, not timed out
    ::close(fd);
  }
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - t0);
  BOOST_TEST_MESSAGE("cut off after " << took.count() << " ms");
  BOOST_TEST(!wait_log_line(api.process(), "cluster TLS handshake cut off", 5s)
                  .empty());
  BOOST_TEST(api.running());
}

/// Reads `fd` until the peer ends the connection (true: EOF or reset) or
/// its 5 s receive timeout passes (false); bytes the peer sent first (BASP's
/// handshake) are read and dropped.
bool closed_by_peer(int fd) {
  char buf[4096];
  for (;;) {
    auto n = ::recv(fd, buf, sizeof(buf), 0);
    if (n > 0)
      continue;
    return n == 0 || errno == ECONNRESET;
  }
}

// The plain cluster port holds no connection that never says hello (a port
// scanner, a stalled or hostile client): at most
// cluster.max-pending-connections (2 here) wait for it, more are closed as
// soon as accepted, and those still silent after
// cluster.connection-timeout-ms (1 s here) are cut off. A worker then joins and
// works, and HTTP is unharmed.
BOOST_AUTO_TEST_CASE(silent_connections_to_the_cluster_port_are_cut_off,
                     *sets_its_own_tls) {
  redis_server redis;
  api_node api(redis.port(), "guard-api",
               {"--cluster.max-pending-connections=2",
                "--cluster.connection-timeout-ms=1000"});
  note_logs({&api.process()});
  auto idle = connect_silently(api.cluster_port(), 3);
  // The third is over the limit: closed at once, well before the deadline.
  auto t0 = std::chrono::steady_clock::now();
  BOOST_TEST(closed_by_peer(idle[2]));
  BOOST_TEST((std::chrono::steady_clock::now() - t0 < 900ms));
  BOOST_TEST(!wait_log_line(api.process(),
                            "cluster connection refused: too many not "
                            "joined",
                            5s)
                  .empty());
  // The first two: cut off at the deadline.
  for (int i = 0; i < 2; ++i)
    BOOST_TEST(closed_by_peer(idle[i]));
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - t0);
  BOOST_TEST_MESSAGE("cut off after " << took.count() << " ms");
  BOOST_TEST(!wait_log_line(api.process(),
                            "cluster connection cut off: not joined in time",
                            5s)
                  .empty());
  for (int fd : idle)
    ::close(fd);
  BOOST_TEST(api.running());
  BOOST_TEST(http_get(api.url("/healthz")).status == 200);

  worker_process w("guard-worker", {api.endpoint()});
  note_logs({&w.process()});
  BOOST_TEST_REQUIRE(wait_listed(api, {"guard-worker"}, join_timeout));
  auto joined = std::chrono::steady_clock::now();
  // Its connection said hello, so it outlives the deadline: let twice the
  // deadline pass (the time is what is tested), then it still works.
  wait_until([&] { return std::chrono::steady_clock::now() - joined > 2s; },
             3s);
  auto tokens = submit_batch(api, all_photos(), 4);
  BOOST_TEST(expect_all_success(api, tokens).size() == 4u);
  BOOST_TEST(lines_with(w.log(), {"cluster link down"}) == 0u, w.log());
  BOOST_TEST(lines_with(w.log(), {"joined API node"}) == 1u, w.log());
}

// A connection to `api`'s cluster port was cut off for announcing too large
// a message: the node says so, runs on with its memory (VmRSS, MiB) where it
// was `before`, and answers HTTP.
void expect_cut_off_for_its_size(api_node& api, long before) {
  BOOST_TEST(!wait_log_line(api.process(),
                            "cluster connection cut off: a message too large "
                            "before it joined",
                            5s)
                  .empty());
  BOOST_TEST(api.running());
  auto now = proc_memory_mib(api.process().pid(), "VmRSS");
  BOOST_TEST(now < before + 200, "RSS " << before << " -> " << now << " MiB");
  BOOST_TEST(http_get(api.url("/healthz")).status == 200);
}

// 32 bytes from anyone on the plain cluster port: a BASP header announcing
// a 4 GiB payload, before any hello. CAF would size its read buffer to it
// (the node's memory went from 46 MB to 3.3 GB, or it aborted on
// bad_alloc); the guard cuts the connection off at the header instead, and
// the node goes on serving and taking workers.
BOOST_AUTO_TEST_CASE(a_huge_message_before_hello_is_cut_off,
                     *sets_its_own_tls) {
  redis_server redis;
  // A long hello deadline: the guard's watchdog forgets a greeted
  // connection only every quarter of it (5 s here).
  api_node api(redis.port(), "bomb-api",
               {"--cluster.connection-timeout-ms=20000"});
  note_logs({&api.process()});
  auto before = proc_memory_mib(api.process().pid(), "VmRSS");
  int fd = connect_loopback(api.cluster_port());
  BOOST_TEST_REQUIRE(fd >= 0);
  unsigned char header[32] = {};
  header[0] = 0x01; // any operation: the length is what counts
  header[4] = 0xff;
  header[5] = 0xff;
  header[6] = 0xff;
  header[7] = 0xf0;
  BOOST_TEST_REQUIRE(::send(fd, header, sizeof header, MSG_NOSIGNAL) == 32);
  BOOST_TEST(closed_by_peer(fd));
  ::close(fd);
  expect_cut_off_for_its_size(api, before);
  worker_process w("bomb-worker", {api.endpoint()});
  note_logs({&w.process()});
  BOOST_TEST_REQUIRE(wait_listed(api, {"bomb-worker"}, join_timeout));
  // Its results are larger than 64 KiB (1600-pixel PNGs), and come at once,
  // before the watchdog's next round: the hello counts, not the round.
  auto tokens = submit_batch(api, all_photos(), 2, 1600,
                             "&height=1600&mode=fit&format=png");
  BOOST_TEST(expect_all_success(api, tokens).size() == 2u);
  BOOST_TEST(lines_with(api.log(), {"a message too large"}) == 1u, api.log());
  BOOST_TEST(lines_with(w.log(), {"cluster link down"}) == 0u, w.log());
}

// A worker with openssl.* set, pointed at a plain API node: each side says
// that TLS is on one side only. (The API node read the TLS record header as
// a BASP one and logged "a message too large before it joined"; the worker
// had OpenSSL's bare "wrong version number".)
BOOST_AUTO_TEST_CASE(a_tls_worker_at_a_plain_api_node_is_told_so,
                     *sets_its_own_tls) {
  redis_server redis;
  api_node api(redis.port(), "plain-api");
  worker_process w("tls-at-plain", {api.endpoint()}, tls_args("node"));
  note_logs({&api.process(), &w.process()});
  auto cut = wait_log_line(
      api.process(), "cluster connection cut off: it began a TLS handshake",
      join_timeout);
  BOOST_TEST(cut.find("set openssl.* on both nodes, or on neither") !=
                 std::string::npos,
             cut);
  auto failed =
      wait_log_line(w.process(), "cluster TLS handshake failed", join_timeout);
  BOOST_TEST(
      (failed.find("set openssl.* on both nodes, or on neither") !=
           std::string::npos ||
       failed.find("is openssl.* set on both nodes?") != std::string::npos),
      failed);
  BOOST_TEST(lines_with(api.log(), {"a message too large"}) == 0u, api.log());
  BOOST_TEST(lines_with(w.log(), {"joined API node"}) == 0u);
  BOOST_TEST(http_get(api.url("/healthz")).status == 200);
}

// Runs tests/tools/cluster_peer (a CAF node of its own) against `port`
// with `args`; its output once it has exited.
std::string run_cluster_peer(uint16_t port, std::vector<std::string> args) {
  std::vector<std::string> argv{env_or("CLUSTER_PEER_BIN", "cluster_peer"),
                                std::to_string(port)};
  argv.insert(argv.end(), args.begin(), args.end());
  std::string output;
  int rc = run_to_exit(argv, output, 30s);
  BOOST_TEST(rc == 0, "cluster_peer exited " << rc << ":\n" << output);
  return output;
}

// The cluster port publishes a gateway: a stranger that says hello like a
// worker and then asks the node to drain (or, without the hello, to do
// anything but hello, join or leave) is refused, and the node goes on
// taking tasks. It was the supervisor itself: one drain from anyone who
// could reach the port made every POST 503 shutting_down.
BOOST_AUTO_TEST_CASE(a_stranger_on_the_cluster_port_cannot_drain_the_node,
                     *sets_its_own_tls) {
  redis_server redis;
  api_node api(redis.port(), "gate-api");
  note_logs({&api.process()});
  worker_process w("gate-worker", {api.endpoint()});
  note_logs({&w.process()});
  BOOST_TEST_REQUIRE(wait_listed(api, {"gate-worker"}, join_timeout));
  for (bool hello : {true, false}) {
    std::vector<std::string> args;
    if (hello)
      args.push_back("--hello");
    args.push_back("drain");
    auto out = run_cluster_peer(api.cluster_port(), args);
    BOOST_TEST_CONTEXT("hello " << hello << ": " << out) {
      BOOST_TEST(out.find("drain refused") != std::string::npos);
      BOOST_TEST(out.find("drain answered") == std::string::npos);
    }
  }
  BOOST_TEST(http_get(api.url("/readyz")).status == 200);
  auto tokens = submit_batch(api, all_photos(), 2);
  BOOST_TEST(expect_all_success(api, tokens).size() == 2u);
}

// A hello proves nothing: the guard holds a connection to 64 KiB messages
// until its peer has joined. A stranger that said hello and then announced
// a 1 GiB message is cut off at the header (it made the node allocate the
// gigabyte when the hello lifted the guard).
BOOST_AUTO_TEST_CASE(a_hello_alone_does_not_lift_the_guard, *sets_its_own_tls) {
  redis_server redis;
  api_node api(redis.port(), "hello-api",
               {"--cluster.connection-timeout-ms=20000"});
  note_logs({&api.process()});
  auto before = proc_memory_mib(api.process().pid(), "VmRSS");
  auto out = run_cluster_peer(api.cluster_port(), {"--hello", "oversized"});
  BOOST_TEST(out.find("hello answered") != std::string::npos, out);
  BOOST_TEST(out.find("closed after") != std::string::npos, out);
  expect_cut_off_for_its_size(api, before);
}

// A connection to the plain cluster port that closes without a word (a
// TCP health check, a port scan) left the guard's note of its descriptor
// behind until the hello deadline; the HTTP connection accepted next on the
// same descriptor number had its request line read as a BASP header
// announcing gigabytes, and was cut off (9 of 10 requests, before the
// fix). The note is dropped when the descriptor is accepted again, and
// checked against the socket's ends before it is acted on.
BOOST_AUTO_TEST_CASE(a_closed_probe_of_the_cluster_port_leaves_http_alone,
                     *sets_its_own_tls) {
  redis_server redis;
  // A long hello deadline: the watchdog would not drop the note meanwhile.
  api_node api(redis.port(), "probe-api",
               {"--cluster.connection-timeout-ms=20000"});
  note_logs({&api.process()});
  // Whether the node's end of the connection from local port `from` to
  // its cluster port is closed: /proc/net/tcp lists it no more as
  // established or waiting for the node to close (CLOSE_WAIT), whether
  // accepted yet or not.
  auto node_end_closed = [&](uint16_t from) {
    std::ifstream tcp("/proc/net/tcp");
    std::string line;
    std::getline(tcp, line); // the header
    while (std::getline(tcp, line)) {
      std::istringstream in(line);
      std::string slot, local, remote, state;
      in >> slot >> local >> remote >> state;
      auto port_of = [](const std::string& address) {
        return static_cast<uint16_t>(
            std::stoul(address.substr(address.find(':') + 1), nullptr, 16));
      };
      if (port_of(local) == api.cluster_port() && port_of(remote) == from &&
          (state == "01" || state == "08"))
        return false;
    }
    return true;
  };
  // A new HTTP connection each time (test support's client keeps one).
  auto healthz_ok = [&] {
    int fd = connect_loopback(api.http_port());
    if (fd < 0)
      return false;
    std::string request =
        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    std::string answer;
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
        static_cast<ssize_t>(request.size())) {
      char buf[4096];
      ssize_t n;
      while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0)
        answer.append(buf, static_cast<size_t>(n));
    }
    ::close(fd);
    return answer.rfind("HTTP/1.1 200", 0) == 0;
  };
  BOOST_TEST_REQUIRE(healthz_ok());
  int failed = 0;
  for (int round = 0; round < 6; ++round) {
    int fd = connect_loopback(api.cluster_port());
    BOOST_TEST_REQUIRE(fd >= 0);
    sockaddr_in local{};
    socklen_t len = sizeof local;
    BOOST_TEST_REQUIRE(
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) == 0);
    ::close(fd);
    // The node closed its end too: its descriptor number is free again.
    BOOST_TEST_REQUIRE(
        wait_until([&] { return node_end_closed(ntohs(local.sin_port)); }, 5s));
    if (!healthz_ok())
      ++failed;
  }
  BOOST_TEST(failed == 0);
  BOOST_TEST(lines_with(api.log(), {"a message too large"}) == 0u, api.log());
}

// A worker with two API nodes, one of whose hosts drops packets (here: a
// listener whose accept queue is full, so the kernel drops the SYNs): it
// joins the other within the usual time, and SIGTERM ends it at once. (CAF
// connects on a blocking socket, in the one actor every link shares: the
// dark host's connect held the other's, and the worker's exit, for the
// kernel's SYN retries, about two minutes.)
BOOST_AUTO_TEST_CASE(one_dark_api_host_does_not_keep_a_worker_from_the_other) {
  redis_server redis;
  api_node api(redis.port(), "dark-other-api");
  note_logs({&api.process()});
  uint16_t dark_port = 0;
  int dark = listen_loopback(0, dark_port);
  BOOST_TEST_REQUIRE(dark >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(dark_port);
  // Fill its accept queue (never accepted) until a connect goes unanswered
  // for half a second: the host is dark, its SYNs are dropped.
  std::vector<int> fillers;
  bool dark_confirmed = false;
  for (int i = 0; i < 16 && !dark_confirmed; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    BOOST_TEST_REQUIRE(fd >= 0);
    fillers.push_back(fd);
    ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    pollfd connecting{fd, POLLOUT, 0};
    dark_confirmed = ::poll(&connecting, 1, 500) == 0;
  }
  BOOST_TEST_REQUIRE(dark_confirmed);
  auto dark_endpoint = "127.0.0.1:" + std::to_string(dark_port);
  worker_process w("dark-worker", {dark_endpoint, api.endpoint()});
  note_logs({&w.process()});
  BOOST_TEST(wait_listed(api, {"dark-worker"}, 3 * join_timeout));
  auto t0 = std::chrono::steady_clock::now();
  int status = w.process().stop(SIGTERM, 30000ms);
  auto took = std::chrono::steady_clock::now() - t0;
  BOOST_TEST(describe_exit(status) == "exit 0", w.log());
  BOOST_TEST((took < 10s));
  for (int fd : fillers)
    ::close(fd);
  ::close(dark);
}

// The TLS files are read once, at start-up: removing them afterwards (a
// certificate renewal done carelessly) changes nothing. (CAF's module reads
// them again for each connection; one it could not read threw on its
// network thread and aborted the node at the next connection.)
BOOST_AUTO_TEST_CASE(tls_files_removed_at_run_time_change_nothing,
                     *sets_its_own_tls) {
  auto dir = make_temp_dir("tls-files");
  for (const char* f : {"node.pem", "node.key", "ca.pem"})
    std::filesystem::copy_file(test_certs_dir() + "/" + f, dir + "/" + f);
  redis_server redis;
  api_node api(redis.port(), "tls-files-api",
               {"--openssl.certificate=" + dir + "/node.pem",
                "--openssl.key=" + dir + "/node.key",
                "--openssl.cafile=" + dir + "/ca.pem"});
  std::filesystem::remove_all(dir);
  send_and_close(api.cluster_port(), "GET / HTTP/1.1\r\n\r\n");
  worker_process worker("tls-files-worker", {api.endpoint()}, tls_args("node"));
  note_logs({&api.process(), &worker.process()});
  BOOST_TEST_REQUIRE(wait_listed(api, {"tls-files-worker"}, join_timeout),
                     api.log());
  auto photos = photos_sized(0, 1 << 20);
  BOOST_TEST_REQUIRE(!photos.empty());
  expect_all_success(api, submit_batch(api, photos, 2));
  BOOST_TEST(api.running());
}

// An API node whose cluster port is taken exits 1, and releases the lease
// on its name that it took first: started again under that name at once
// (the port free by then), it does not wait cluster.lease-ms for it.
BOOST_AUTO_TEST_CASE(a_node_that_cannot_open_its_cluster_port_frees_its_name) {
  redis_server redis;
  uint16_t taken_port = 0;
  int taken = listen_loopback(1, taken_port);
  BOOST_TEST_REQUIRE(taken >= 0);
  std::string output;
  int rc = run_to_exit({env_or("RESIZED_BIN", "resized"),
                        "--config-file=" + env_or("RESIZED_SOURCE_DIR", ".") +
                            "/config/cluster-api.ini",
                        "--redis.port=" + std::to_string(redis.port()),
                        "--http.port=" + std::to_string(free_port()),
                        "--cluster.port=" + std::to_string(taken_port),
                        "--cluster.node-name=port-taken"},
                       output, 30s);
  ::close(taken);
  BOOST_TEST(rc == 1, output);
  BOOST_TEST(output.find("cannot start node") != std::string::npos, output);
  BOOST_TEST(redis.command("EXISTS resized:node:port-taken") == ":0\r\n",
             output);
}

// A TLS file that cannot work stops the node at start-up (exit 2), named.
BOOST_AUTO_TEST_CASE(a_node_with_unusable_tls_files_does_not_start,
                     *sets_its_own_tls) {
  const auto& dir = test_certs_dir();
  std::string output;
  int rc = run_to_exit({env_or("RESIZED_BIN", "resized"),
                        "--config-file=" + env_or("RESIZED_SOURCE_DIR", ".") +
                            "/config/cluster-worker.ini",
                        "--cluster.api-nodes=127.0.0.1:1",
                        "--openssl.certificate=" + dir + "/node.pem",
                        "--openssl.key=" + dir + "/rogue.key",
                        "--openssl.cafile=" + dir + "/ca.pem"},
                       output, 20s);
  BOOST_TEST(rc == 2, output);
  BOOST_TEST(output.find("openssl.key = '" + dir +
                         "/rogue.key' is not the key of the certificate") !=
                 std::string::npos,
             output);
}

BOOST_AUTO_TEST_SUITE_END()
