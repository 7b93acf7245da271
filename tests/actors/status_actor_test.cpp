// The status actor against a real redis-server: cache hits, misses served
// from Redis (e.g. after a restart), eviction, images, and a Redis outage.
#include <thread>

#include <caf/all.hpp>

#include "actor_fixture.hpp"
#include "actors/actor_backend.hpp"
#include "actors/lookup_reader.hpp"
#include "actors/status_actor.hpp"
#include "common/metrics.hpp"
#include "store/task_store.hpp"
#include "support/fixtures.hpp"
#include "support/redis_server.hpp"

using namespace resized;
using namespace resized::actors;
using namespace std::chrono_literals;

namespace {

struct status_fixture : test::actor_system_fixture {
  test::redis_server redis{true}; // AOF: data survives stop/start
  // Unique keys per test run: a random prefix.
  std::string prefix = "t" + test::random_uuid().substr(0, 8) + ":";

  status_config config(size_t entries = 100) {
    status_config cfg;
    cfg.redis.port = redis.port();
    cfg.redis.key_prefix = prefix;
    cfg.redis.command_timeout = 500ms;
    cfg.redis.connect_timeout = 500ms;
    cfg.result_ttl = 60s;
    cfg.cache_entries = entries;
    return cfg;
  }

  // For tests that pause Redis: a call finds the hang after 1 s, the probe
  // retries every 100 ms, and no idle PING reaches Redis (only the tests'
  // own calls do).
  status_config hung_redis_config() {
    auto cfg = config();
    cfg.redis.command_timeout = 1s;
    cfg.redis.connect_timeout = 1s;
    cfg.retry_interval = 100ms;
    cfg.watch_interval = 0ms;
    return cfg;
  }

  caf::actor start(status_config cfg) {
    return sys.spawn<caf::detached>(status_actor, cfg);
  }

  static task_record make_record(task_status st = task_status::pending) {
    task_record rec;
    rec.token = test::random_uuid();
    rec.status = st;
    rec.input_bytes = 1234;
    rec.submitted_at_ms = now_ms();
    return rec;
  }

  outcome<task_record> lookup(const caf::actor& st, const std::string& token) {
    test::answer<outcome<task_record>> ans;
    caf::anon_send(st, status_atom::value, token, int64_t{0}, ans.make());
    auto res = ans.wait();
    BOOST_REQUIRE(res.has_value());
    return *res;
  }

  // Starts a long poll; its answer arrives in the returned answer.
  test::answer<outcome<task_record>> long_poll(const caf::actor& st,
                                               const std::string& token,
                                               std::chrono::milliseconds wait) {
    test::answer<outcome<task_record>> ans;
    caf::anon_send(st, status_atom::value, token,
                   static_cast<int64_t>(wait.count()), ans.make());
    return ans;
  }

  outcome<image_blob> image(const caf::actor& st, const std::string& token) {
    test::answer<outcome<image_blob>> ans;
    caf::anon_send(st, image_atom::value, token, ans.make());
    auto res = ans.wait();
    BOOST_REQUIRE(res.has_value());
    return *res;
  }

  // Waits (10 s at most) until Redis holds `ok`'s SUCCESS and `bad`'s
  // FAILURE, the writes kept while it was away.
  bool kept_writes_landed(const task_record& ok, const task_record& bad) {
    return test::wait_until(
        [&] {
          return redis_status_is(ok, "SUCCESS") &&
                 redis_status_is(bad, "FAILURE");
        },
        10s);
  }

  // A new task's IN_PROGRESS record, sent to `st` and cached there (open
  // here, as when this node runs it).
  task_record running_here(const caf::actor& st) {
    auto rec = make_record();
    rec.status = task_status::in_progress;
    caf::anon_send(st, update_atom::value, rec);
    BOOST_REQUIRE(lookup(st, rec.token).ok());
    return rec;
  }

  // resized_tasks_total{status=<status>} as this process counts it now.
  static double tasks_total(const std::string& status) {
    return test::metric_value(metrics::global().text(),
                              "resized_tasks_total{status=\"" + status + "\"}");
  }

  // What `ans` was answered with within `timeout`; the test stops when no
  // answer came or it was an error.
  template <class T>
  static T answered(test::answer<outcome<T>>& ans,
                    std::chrono::milliseconds timeout = 10s) {
    auto got = ans.wait(timeout);
    BOOST_REQUIRE(got.has_value());
    BOOST_REQUIRE(got->ok());
    return std::move(got->value());
  }

  // Asks `st` to accept `task` (input "input") with `content`: whether it
  // was stored, and the twin it was told; the test stops on an error.
  std::pair<bool, std::string> accept(const caf::actor& st,
                                      const task_record& task,
                                      const std::string& content,
                                      std::chrono::seconds timeout = 10s) {
    caf::scoped_actor self{sys};
    auto job = caf::make_message(resize_job{task.token, {}, "input", {}, {}});
    std::pair<bool, std::string> out{false, "unanswered"};
    self->request(st, timeout, accept_atom::value, task, job, content)
        .receive(
            [&](bool stored, std::string& twin) {
              out = {stored, twin};
            },
            [&](caf::error& err) { BOOST_FAIL(sys.render(err)); });
    return out;
  }

  // Whether Redis holds `rec`'s record with status `status` (SUCCESS...).
  bool redis_status_is(const task_record& rec, const std::string& status) {
    return redis.command("HGET " + prefix + "task:" + rec.token + " status")
               .find(status) != std::string::npos;
  }

  // A SUCCESS whose 3 MB result the status actor `st` (connected) cannot
  // write: Redis resets the connection of a request past 1 MB from now on
  // (client-query-buffer-limit), so only such a write fails.
  task_record result_past_the_query_limit(const caf::actor& st) {
    BOOST_REQUIRE(lookup(st, running_here(st).token).ok()); // connected
    redis.command("CONFIG SET client-query-buffer-limit 1mb");
    auto rec = make_record(task_status::success);
    rec.width = rec.height = 100;
    caf::anon_send(st, result_atom::value, rec, std::string(3u << 20, 'x'),
                   std::string{});
    return rec;
  }

  // Whether `st` shows `rec`'s task IN_PROGRESS: a final record Redis has
  // not taken is not shown (a node that stops before Redis takes it runs
  // the task again at its next start).
  bool shown_in_progress(const caf::actor& st, const task_record& rec) {
    auto got = lookup(st, rec.token);
    return got.ok() && got->status == task_status::in_progress &&
           got->error_code.empty() && got->finished_at_ms == 0;
  }

  bool redis_has(const std::string& token) {
    return redis.command("EXISTS " + prefix + "task:" + token).find(":1") !=
           std::string::npos;
  }
};

} // namespace

BOOST_FIXTURE_TEST_SUITE(status_actor_suite, status_fixture)

BOOST_AUTO_TEST_CASE(an_update_is_cached_and_written_through) {
  auto st = start(config());
  auto rec = make_record();
  caf::anon_send(st, update_atom::value, rec);
  auto got = lookup(st, rec.token);
  BOOST_REQUIRE(got.ok());
  BOOST_TEST(got->token == rec.token);
  BOOST_TEST((got->status == task_status::pending));
  BOOST_TEST(redis_has(rec.token));
  auto ttl = redis.command("TTL " + prefix + "task:" + rec.token);
  BOOST_TEST(ttl.find(":6") != std::string::npos); // 60 or 59 seconds
  caf::anon_send_exit(st, caf::exit_reason::user_shutdown);
}

BOOST_AUTO_TEST_CASE(a_cache_miss_is_served_from_redis) {
  auto rec = make_record(task_status::success);
  rec.width = 100;
  rec.height = 80;
  rec.etag = "abc";
  {
    auto writer = start(config());
    caf::anon_send(writer, result_atom::value, rec, std::string("\0img", 4),
                   std::string{});
    // Its answer to a lookup proves the write (same mailbox) happened.
    BOOST_REQUIRE(lookup(writer, rec.token).ok());
    caf::anon_send_exit(writer, caf::exit_reason::user_shutdown);
  }
  // A fresh actor has an empty cache, as after a restart.
  auto reader = start(config());
  auto got = lookup(reader, rec.token);
  BOOST_REQUIRE(got.ok());
  BOOST_TEST((got->status == task_status::success));
  BOOST_TEST(got->width == 100);
  BOOST_TEST(got->height == 80);
  auto img = image(reader, rec.token);
  BOOST_REQUIRE(img.ok());
  BOOST_TEST(*img->bytes == std::string("\0img", 4));
  BOOST_TEST(img->etag == "abc");
  caf::anon_send_exit(reader, caf::exit_reason::user_shutdown);
}

// The content index: the first task accepted with a content key is its
// entry; what one status actor wrote, another (another API node, or this one
// after a restart) is told when it accepts the same content; a SUCCESS, and
// then a clone of it, take the entry over.
BOOST_AUTO_TEST_CASE(the_content_index_is_shared_through_redis) {
  auto rec = make_record(task_status::success);
  std::string content = "k" + test::random_uuid() + ":100x100:fill:jpeg:85";
  caf::scoped_actor self{sys};
  // Accepts a new task with `content`: (its token, the twin it was told).
  auto accept = [&](const caf::actor& st) {
    auto task = make_record();
    auto [stored, twin] = this->accept(st, task, content, 5s);
    BOOST_TEST(stored);
    return std::make_pair(task.token, twin);
  };
  auto a = start(config());
  auto first = accept(a);
  BOOST_TEST(first.second.empty());
  BOOST_TEST(accept(a).second == first.first);
  caf::anon_send(a, result_atom::value, rec, std::string("img"), content);
  BOOST_TEST(accept(a).second == rec.token); // same mailbox: after the write
  auto b = start(config());
  BOOST_TEST(accept(b).second == rec.token);
  auto copy = make_record();
  bool cloned = false;
  self->request(b, 5s, clone_atom::value, rec.token, copy, content)
      .receive([&](bool ok) { cloned = ok; },
               [&](caf::error& err) { BOOST_FAIL(sys.render(err)); });
  BOOST_TEST(cloned);
  BOOST_TEST(accept(a).second == copy.token);
  // A record written without a content key indexes nothing.
  auto other = make_record(task_status::success);
  caf::anon_send(a, result_atom::value, other, std::string("img"),
                 std::string{});
  BOOST_TEST(accept(a).second == copy.token);
  caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(b, caf::exit_reason::user_shutdown);
}

// A task was queued when the copy of its twin's result was not answered
// in time, and the copy was made after all: the task is that copy, its own
// run's result is dropped and its image never stored. A duplicate that
// followed the run points at the image the copy points at, not at one that
// never existed (it ended FAILURE result_not_stored).
BOOST_AUTO_TEST_CASE(a_twin_of_a_copy_points_where_the_copy_points) {
  auto st = start(config());
  std::string content = "k" + test::random_uuid() + ":100x100:fill:jpeg:85";
  auto first = make_record(task_status::success);
  first.width = first.height = 100;
  caf::anon_send(st, result_atom::value, first, std::string("img"), content);
  auto queued = make_record();
  caf::scoped_actor self{sys};
  bool cloned = false;
  self->request(st, 5s, clone_atom::value, first.token, queued, content)
      .receive([&](bool ok) { cloned = ok; },
               [&](caf::error& err) { BOOST_FAIL(sys.render(err)); });
  BOOST_REQUIRE(cloned);
  auto run = queued; // its own run, ended after the copy
  run.status = task_status::success;
  run.width = run.height = 100;
  caf::anon_send(st, result_atom::value, run, std::string("img2"), content);
  auto follower = make_record();
  copy_result(run, follower);
  BOOST_TEST(follower.image_token == queued.token);
  caf::anon_send(st, result_atom::value, follower, std::string{},
                 std::string{});
  auto got = lookup(st, follower.token);
  BOOST_REQUIRE(got.ok());
  BOOST_TEST((got->status == task_status::success));
  BOOST_TEST(got->image_token == first.token);
  BOOST_TEST(image(st, got->image_token).ok());
  BOOST_TEST(
      redis
          .command("HGET " + prefix + "task:" + follower.token + " image_token")
          .find(first.token) != std::string::npos);
  caf::anon_send_exit(st, caf::exit_reason::user_shutdown);
}

// A cached record past its time here may still be in Redis: a twin's copy
// lengthened it there (EXPIRE GT). Another twin then copies it too instead
// of being resized again.
BOOST_AUTO_TEST_CASE(a_record_expired_here_is_looked_for_in_redis) {
  auto cfg = config();
  cfg.result_ttl = 2s;
  auto st = start(cfg);
  std::string content = "k" + test::random_uuid() + ":100x100:fill:jpeg:85";
  auto first = make_record(task_status::success);
  first.width = first.height = 100;
  auto written = std::chrono::steady_clock::now();
  caf::anon_send(st, result_atom::value, first, std::string("img"), content);
  BOOST_REQUIRE(lookup(st, first.token).ok());
  caf::scoped_actor self{sys};
  auto clone = [&] {
    bool cloned = false;
    self->request(st, 5s, clone_atom::value, first.token, make_record(),
                  content)
        .receive([&](bool ok) { cloned = ok; },
                 [&](caf::error& err) { BOOST_FAIL(sys.render(err)); });
    return cloned;
  };
  // A second later a copy keeps the first's record 2 s from then...
  BOOST_REQUIRE(test::wait_until(
      [&] { return std::chrono::steady_clock::now() >= written + 1s; }, 5s));
  BOOST_TEST(clone());
  // ...past the time its cache entry here ends.
  BOOST_REQUIRE(test::wait_until(
      [&] { return std::chrono::steady_clock::now() >= written + 2500ms; },
      5s));
  BOOST_TEST_REQUIRE(redis_has(first.token));
  BOOST_TEST(clone());
  caf::anon_send_exit(st, caf::exit_reason::user_shutdown);
}

BOOST_AUTO_TEST_CASE(an_unknown_token_is_unknown) {
  auto st = start(config());
  auto got = lookup(st, test::random_uuid());
  BOOST_REQUIRE(!got.ok());
  BOOST_TEST((got.error().code == error_code::unknown_token));
  auto img = image(st, test::random_uuid());
  BOOST_REQUIRE(!img.ok());
  BOOST_TEST((img.error().code == error_code::unknown_token));
  caf::anon_send_exit(st, caf::exit_reason::user_shutdown);
}

BOOST_AUTO_TEST_CASE(no_image_before_success) {
  auto st = start(config());
  auto rec = make_record(task_status::in_progress);
  caf::anon_send(st, update_atom::value, rec);
  auto img = image(st, rec.token);
  BOOST_REQUIRE(!img.ok());
  BOOST_TEST((img.error().code == error_code::unknown_token));
  caf::anon_send_exit(st, caf::exit_reason::user_shutdown);
}

BOOST_AUTO_TEST_CASE(eviction_keeps_the_newest_and_redis_the_rest) {
  auto st = start(config(2));
  auto a = make_record();
  auto b = make_record();
  auto c = make_record();
  for (auto* rec : {&a, &b, &c})
    caf::anon_send(st, update_atom::value, *rec);
  BOOST_REQUIRE(lookup(st, c.token).ok()); // all three written by now
  // Take Redis away: only cached records can still be answered.
  redis.stop();
  auto got_c = lookup(st, c.token);
  BOOST_TEST(got_c.ok()); // cached
  auto got_a = lookup(st, a.token);
  BOOST_REQUIRE(!got_a.ok()); // evicted (cache of 2), Redis is down
  BOOST_TEST((got_a.error().code == error_code::store_unavailable));
  redis.start();
  auto again = lookup(st, a.token);
  BOOST_TEST(again.ok()); // reconnected, served from Redis
  caf::anon_send_exit(st, caf::exit_reason::user_shutdown);
}

BOOST_AUTO_TEST_CASE(a_redis_outage_does_not_lose_cached_state) {
  auto st = start(config());
  redis.stop();
  auto rec = make_record();
  caf::anon_send(st, update_atom::value, rec); // write fails, cache keeps it
  auto got = lookup(st, rec.token);
  BOOST_REQUIRE(got.ok());
  BOOST_TEST(got->token == rec.token);
  redis.start();
  caf::anon_send_exit(st, caf::exit_reason::user_shutdown);
}

// A task that finishes while Redis is away: its result and final record are
// written once Redis is back, not dropped (other API nodes read Redis).
// Until then this node shows the task IN_PROGRESS, as Redis does, and its
// long polls wait: they get the final record once Redis has taken it. (It
// showed SUCCESS from memory before, which a node stopping before Redis
// returned took back: the task ran again at its next start.)
BOOST_AUTO_TEST_CASE(final_writes_during_an_outage_land_when_redis_returns) {
  auto cfg = config();
  cfg.retry_interval = 100ms;
  auto st = start(cfg);
  auto ok = running_here(st);
  auto bad = running_here(st);
  redis.stop();
  ok.status = task_status::success;
  ok.finished_at_ms = ok.started_at_ms + 5;
  ok.width = ok.height = 100;
  bad.status = task_status::failure;
  bad.error_code = "corrupt_image";
  bad.finished_at_ms = bad.started_at_ms + 5;
  caf::anon_send(st, result_atom::value, ok, std::string("img"), std::string{});
  caf::anon_send(st, update_atom::value, bad);
  BOOST_TEST(shown_in_progress(st, ok));
  BOOST_TEST(shown_in_progress(st, bad));
  // Neither the image (not written) nor a later change (the final record
  // stands) shows meanwhile.
  BOOST_TEST(!image(st, ok.token).ok());
  auto late = ok;
  late.status = task_status::pending;
  caf::anon_send(st, update_atom::value, late);
  BOOST_TEST(shown_in_progress(st, ok));
  auto poll_ok = long_poll(st, ok.token, 10s);
  auto poll_bad = long_poll(st, bad.token, 10s);
  BOOST_TEST(!poll_ok.wait(300ms).has_value()); // held
  redis.start();
  BOOST_TEST(kept_writes_landed(ok, bad));
  BOOST_TEST((answered(poll_ok).status == task_status::success));
  auto failed = answered(poll_bad);
  BOOST_TEST((failed.status == task_status::failure));
  BOOST_TEST(failed.error_code == "corrupt_image");
  BOOST_TEST(redis.command("GET " + prefix + "image:" + ok.token) ==
             "$3\r\nimg\r\n");
  auto img = image(st, ok.token);
  BOOST_REQUIRE(img.ok());
  BOOST_TEST(*img->bytes == "img");
  caf::anon_send_exit(st, caf::exit_reason::user_shutdown);
}

// A kept final write whose earlier try Redis ran after all (its answer
// lost: a timeout, a dropped connection): the retry finds that record, its
// own, and counts the task, without the "ran on two nodes" warning (before,
// the task went uncounted in resized_tasks_total).
BOOST_AUTO_TEST_CASE(a_kept_write_that_had_landed_is_counted_once) {
  auto cfg = config();
  cfg.retry_interval = 1500ms;
  auto st = start(cfg);
  auto ok = make_record(task_status::success);
  auto before = tasks_total("SUCCESS");
  redis.stop();
  caf::anon_send(st, result_atom::value, ok, std::string("img"), std::string{});
  BOOST_TEST(shown_in_progress(st, ok)); // kept: not shown until stored
  redis.start();
  {
    // What the lost try wrote (the actor retries only after 1.5 s).
    store::task_store writer{config().redis};
    BOOST_REQUIRE(writer.put_result(ok, "img", 60s).value());
  }
  BOOST_TEST(test::wait_until(
      [&] { return tasks_total("SUCCESS") == before + 1; }, 10s));
  auto got = lookup(st, ok.token);
  BOOST_REQUIRE(got.ok());
  BOOST_TEST((got->status == task_status::success));
  caf::anon_send_exit(st, caf::exit_reason::user_shutdown);
}

// A task that starts while Redis is away: its IN_PROGRESS record, with
// the node and the attempts it has used, is written once Redis is back (a
// restart counts those attempts against a crashing input; other API nodes
// see where it runs). The latest change wins, and a task that ended
// meanwhile gets its final record. Before, progress writes were dropped:
// Redis showed PENDING, attempts 0.
BOOST_AUTO_TEST_CASE(progress_during_an_outage_lands_when_redis_returns) {
  auto cfg = config();
  cfg.retry_interval = 100ms;
  auto st = start(cfg);
  auto running = make_record();
  auto ended = make_record();
  caf::anon_send(st, update_atom::value, running);
  caf::anon_send(st, update_atom::value, ended);
  BOOST_REQUIRE(test::wait_until(
      [&] { return redis_has(running.token) && redis_has(ended.token); }, 10s));
  redis.stop();
  running.status = task_status::in_progress;
  running.node = "node-a";
  running.attempts = 1;
  caf::anon_send(st, update_atom::value, running);
  running.node = "node-b"; // lost with node-a, started again
  running.attempts = 2;
  caf::anon_send(st, update_atom::value, running);
  ended.status = task_status::in_progress;
  ended.node = "node-a";
  ended.attempts = 1;
  caf::anon_send(st, update_atom::value, ended);
  ended.status = task_status::failure;
  ended.error_code = "corrupt_image";
  caf::anon_send(st, update_atom::value, ended);
  BOOST_TEST(lookup(st, running.token)->node == "node-b");
  redis.start();
  auto field = [&](const task_record& rec, const std::string& name) {
    return redis.command("HGET " + prefix + "task:" + rec.token + " " + name);
  };
  BOOST_TEST(test::wait_until(
      [&] {
        return field(running, "status").find("IN_PROGRESS") !=
                   std::string::npos &&
               field(ended, "status").find("FAILURE") != std::string::npos;
      },
      10s));
  BOOST_TEST(field(running, "node") == "$6\r\nnode-b\r\n");
  BOOST_TEST(field(running, "attempts") == "$1\r\n2\r\n");
  caf::anon_send_exit(st, caf::exit_reason::user_shutdown);
}

// A result Redis did not take is kept for a retry; a twin's result that
// points at it comes after it, not before (it would find no image there and
// end FAILURE while its twin ends SUCCESS). Redis here resets the
// connection of a request past 1 MB, so only the large result fails.
BOOST_AUTO_TEST_CASE(a_twins_result_waits_behind_its_images_kept_write) {
  auto cfg = hung_redis_config();
  cfg.retry_interval = 1s; // the limit lifted long before a give-up
  auto st = start(cfg);
  auto first = result_past_the_query_limit(st);
  auto twin = make_record();
  copy_result(first, twin);
  caf::anon_send(st, result_atom::value, twin, std::string{}, std::string{});
  BOOST_TEST(shown_in_progress(st, twin)); // kept behind its image's write
  BOOST_TEST(!redis_has(first.token));
  redis.command("CONFIG SET client-query-buffer-limit 1gb");
  BOOST_TEST(test::wait_until(
      [&] {
        return redis_status_is(first, "SUCCESS") &&
               redis_status_is(twin, "SUCCESS");
      },
      10s));
  BOOST_TEST((lookup(st, twin.token)->status == task_status::success));
  caf::anon_send_exit(st, caf::exit_reason::user_shutdown);
}

// A result Redis fails every time while it answers otherwise (here: past
// its client-query-buffer-limit) is given up after a few tries: its task
// ends FAILURE result_not_stored, and submissions, refused while a kept
// write fails, are taken again.
BOOST_AUTO_TEST_CASE(a_result_redis_keeps_failing_alone_is_given_up) {
  auto cfg = hung_redis_config();
  cfg.retry_interval = 500ms;
  auto st = start(cfg);
  auto first = result_past_the_query_limit(st);
  // Submissions flush the kept writes too: three at once, each refused,
  // count once (tries are a retry interval apart), not three times.
  for (int i = 0; i < 3; ++i)
    BOOST_TEST(!accept(st, make_record(), std::string{}).first);
  BOOST_TEST(!redis_status_is(first, "FAILURE"));
  BOOST_TEST(shown_in_progress(st, first));
  BOOST_TEST_REQUIRE(
      test::wait_until([&] { return redis_status_is(first, "FAILURE"); }, 10s));
  auto got = lookup(st, first.token);
  BOOST_REQUIRE(got.ok());
  BOOST_TEST(got->error_code == "result_not_stored");
  BOOST_TEST(got->error_message.find("client-query-buffer-limit") !=
             std::string::npos);
  BOOST_TEST(accept(st, make_record(), std::string{}).first);
  caf::anon_send_exit(st, caf::exit_reason::user_shutdown);
}

// A Redis that answers PING but refuses writes for a while (READONLY: a
// replica during a failover) keeps a result waiting, however many retries
// fail meanwhile: it lands once Redis takes writes again, as in an outage.
BOOST_AUTO_TEST_CASE(a_result_kept_through_a_failover_is_not_given_up) {
  auto st = start(hung_redis_config()); // a retry every 100 ms
  BOOST_REQUIRE(lookup(st, running_here(st).token).ok()); // connected
  redis.command("REPLICAOF 127.0.0.1 1"); // nothing there: read-only
  auto rec = make_record(task_status::success);
  rec.width = rec.height = 100;
  auto sent = std::chrono::steady_clock::now();
  caf::anon_send(st, result_atom::value, rec, std::string("img"),
                 std::string{});
  BOOST_TEST(shown_in_progress(st, rec));
  BOOST_REQUIRE(test::wait_until(
      [&] { return std::chrono::steady_clock::now() >= sent + 1500ms; }, 5s));
  BOOST_TEST(!redis_has(rec.token)); // refused all along
  redis.command("REPLICAOF NO ONE");
  BOOST_TEST(
      test::wait_until([&] { return redis_status_is(rec, "SUCCESS"); }, 10s));
  BOOST_TEST((lookup(st, rec.token)->status == task_status::success));
  caf::anon_send_exit(st, caf::exit_reason::user_shutdown);
}

// Results kept through an outage are bounded in bytes (queue.max-bytes on
// a node): one past the bound ends its task FAILURE result_not_stored, here
// at once and in Redis once it returns; those within it land as SUCCESS.
// Before, only their count was bounded (100000): 24 results of 20 MB took
// an API node from 44 to 561 MiB.
BOOST_AUTO_TEST_CASE(results_kept_through_an_outage_are_bounded_in_bytes) {
  auto cfg = config();
  cfg.retry_interval = 100ms;
  cfg.max_unwritten_bytes = 1000;
  auto st = start(cfg);
  auto first = make_record(task_status::success);
  auto second = make_record(task_status::success);
  redis.stop();
  caf::anon_send(st, result_atom::value, first, std::string(600, 'a'),
                 std::string{});
  caf::anon_send(st, result_atom::value, second, std::string(600, 'b'),
                 std::string{});
  // Both kept (the second as its FAILURE record): shown once stored.
  BOOST_TEST(shown_in_progress(st, first));
  BOOST_TEST(shown_in_progress(st, second));
  redis.start();
  BOOST_TEST(kept_writes_landed(first, second));
  auto got = lookup(st, second.token);
  BOOST_REQUIRE(got.ok());
  BOOST_TEST((got->status == task_status::failure));
  BOOST_TEST(got->error_code == "result_not_stored");
  got = lookup(st, first.token);
  BOOST_REQUIRE(got.ok());
  BOOST_TEST((got->status == task_status::success));
  BOOST_TEST(redis.command("EXISTS " + prefix + "image:" + second.token) ==
             ":0\r\n");
  BOOST_TEST(redis.command("STRLEN " + prefix + "image:" + first.token) ==
             ":600\r\n");
  caf::anon_send_exit(st, caf::exit_reason::user_shutdown);
}

// A result kept while Redis hung, then refused for lack of memory when
// Redis answers again (maxmemory): it may never fit, so its task ends
// FAILURE result_not_stored instead, in Redis and in this node's cache,
// and the kept write behind it lands too (the small records wait out any
// moment Redis is over its limit).
BOOST_AUTO_TEST_CASE(a_kept_result_redis_refuses_becomes_a_failure) {
  BOOST_TEST(redis.command("CONFIG SET maxmemory 8388608").find("OK") !=
             std::string::npos);
  BOOST_TEST(
      redis.command("CONFIG SET maxmemory-policy noeviction").find("OK") !=
      std::string::npos);
  auto cfg = config();
  cfg.retry_interval = 100ms;
  auto st = start(cfg);
  auto big = make_record(task_status::success);
  auto bad = make_record(task_status::failure);
  auto succeeded = tasks_total("SUCCESS"), failed = tasks_total("FAILURE");
  redis.pause();
  caf::anon_send(st, result_atom::value, big, std::string(6 << 20, 'x'),
                 std::string{});
  caf::anon_send(st, update_atom::value, bad);
  BOOST_TEST(shown_in_progress(st, big)); // both kept: not shown yet
  BOOST_TEST(shown_in_progress(st, bad));
  redis.resume();
  auto field = [&](const task_record& rec, const std::string& name) {
    return redis.command("HGET " + prefix + "task:" + rec.token + " " + name);
  };
  BOOST_TEST(test::wait_until(
      [&] {
        return field(big, "status").find("FAILURE") != std::string::npos &&
               field(bad, "status").find("FAILURE") != std::string::npos;
      },
      10s));
  BOOST_TEST(field(big, "error_code").find("result_not_stored") !=
             std::string::npos);
  // Counted once written, as what Redis took: two failures, no success.
  BOOST_TEST(test::wait_until(
      [&] { return tasks_total("FAILURE") == failed + 2; }, 10s));
  BOOST_TEST(tasks_total("SUCCESS") == succeeded);
  auto cached = lookup(st, big.token);
  BOOST_TEST_REQUIRE(cached.ok());
  BOOST_TEST((cached.value().status == task_status::failure));
  BOOST_TEST(cached.value().error_code == "result_not_stored");
  BOOST_TEST(!image(st, big.token).ok());
  caf::anon_send_exit(st, caf::exit_reason::user_shutdown);
}

// Redis out of memory refuses a kept write: a submission behind it is told
// Redis is out of memory, as one refused itself is (it was told "the store
// is unavailable").
BOOST_AUTO_TEST_CASE(a_submission_behind_a_write_refused_for_memory_says_so) {
  BOOST_TEST(
      redis.command("CONFIG SET maxmemory-policy noeviction").find("OK") !=
      std::string::npos);
  BOOST_TEST(redis.command("CONFIG SET maxmemory 1").find("OK") !=
             std::string::npos);
  auto cfg = config();
  cfg.retry_interval = 100ms;
  auto st = start(cfg);
  auto bad = make_record(task_status::failure);
  caf::anon_send(st, update_atom::value, bad); // refused: kept
  auto [stored, why] = accept(st, make_record(), "");
  BOOST_TEST(!stored);
  BOOST_TEST(why.find("out of memory") != std::string::npos, why);
  BOOST_TEST(redis.command("CONFIG SET maxmemory 0").find("OK") !=
             std::string::npos);
  BOOST_TEST(test::wait_until([&] { return redis_has(bad.token); },
                              10s)); // the kept write lands
  caf::anon_send_exit(st, caf::exit_reason::user_shutdown);
}

// Redis hangs: the accept times out and the client is told 503, but Redis
// runs the transaction when it wakes up. The actor undoes it, so no task
// nobody knows of stays PENDING and holds the content index.
BOOST_AUTO_TEST_CASE(an_accept_that_timed_out_is_undone) {
  auto cfg = config();
  cfg.retry_interval = 100ms;
  cfg.redis.command_timeout = 300ms;
  cfg.node = "undo-" + test::random_uuid().substr(0, 8);
  auto st = start(cfg);
  std::string content = "k" + test::random_uuid() + ":100x100:fill:jpeg:85";
  auto accept = [&](const task_record& task) {
    return this->accept(st, task, content).first;
  };
  BOOST_REQUIRE(lookup(st, make_record().token).error().code ==
                error_code::unknown_token); // connected
  auto lost = make_record();
  redis.pause();
  BOOST_TEST(!accept(lost));
  redis.resume();
  BOOST_TEST(test::wait_until(
      [&] {
        return !redis_has(lost.token) &&
               redis.command("EXISTS " + prefix + "content:" + content) ==
                   ":0\r\n" &&
               redis.command("EXISTS " + prefix + "input:" + lost.token) ==
                   ":0\r\n";
      },
      10s));
  BOOST_TEST(redis.command("SISMEMBER " + prefix + "pending:" + cfg.node + " " +
                           lost.token) == ":0\r\n");
  // The next task with that content is the first again, not a twin.
  auto next = make_record();
  BOOST_TEST(accept(next));
  BOOST_TEST(
      redis.command("GET " + prefix + "content:" + content).find(next.token) !=
      std::string::npos);
  caf::anon_send_exit(st, caf::exit_reason::user_shutdown);
}

// The supervisor gave up on an accept (its request timed out: the client
// was told 503) that this actor stored later all the same: the forget that
// follows it undoes it, so no task waits in the pending set for a client
// that never got its token, and the content's next task is the first
// again. A forget of an accept that was never stored changes nothing.
BOOST_AUTO_TEST_CASE(an_accept_given_up_on_is_undone_when_stored_late) {
  auto cfg = config();
  cfg.node = "late-" + test::random_uuid().substr(0, 8);
  auto st = start(cfg);
  std::string content = "k" + test::random_uuid() + ":100x100:fill:jpeg:85";
  auto accept = [&](const task_record& task) {
    return this->accept(st, task, content).first;
  };
  auto late = make_record();
  BOOST_REQUIRE(accept(late)); // stored: the supervisor had given up
  BOOST_REQUIRE(redis_has(late.token));
  caf::anon_send(st, forget_atom::value, late.token, content);
  // Same mailbox: the lookup is answered after the undo.
  auto gone = lookup(st, late.token);
  BOOST_TEST(!gone.ok());
  BOOST_TEST((!gone.ok() && gone.error().code == error_code::unknown_token));
  BOOST_TEST(!redis_has(late.token));
  BOOST_TEST(redis.command("EXISTS " + prefix + "input:" + late.token) ==
             ":0\r\n");
  BOOST_TEST(redis.command("EXISTS " + prefix + "content:" + content) ==
             ":0\r\n");
  BOOST_TEST(redis.command("SISMEMBER " + prefix + "pending:" + cfg.node + " " +
                           late.token) == ":0\r\n");
  // Never stored: nothing to undo, the content's entry stays.
  auto kept = make_record();
  BOOST_REQUIRE(accept(kept));
  caf::anon_send(st, forget_atom::value, make_record().token, content);
  BOOST_TEST(lookup(st, kept.token).ok());
  BOOST_TEST(
      redis.command("GET " + prefix + "content:" + content).find(kept.token) !=
      std::string::npos);
  caf::anon_send_exit(st, caf::exit_reason::user_shutdown);
}

// A final record never changes: a progress change that comes after it (a
// copy of a twin's result made after the supervisor gave up waiting for it
// and queued the task) is dropped, whether this actor has the final record
// cached or only Redis has it (written by another API node).
BOOST_AUTO_TEST_CASE(a_progress_change_after_a_final_record_is_dropped) {
  auto st = start(config());
  auto failed = make_record(task_status::failure);
  failed.error_code = "corrupt_image";
  failed.error_message = "bad";
  caf::anon_send(st, update_atom::value, failed);
  auto late = failed;
  late.status = task_status::in_progress;
  late.error_code.clear();
  late.error_message.clear();
  caf::anon_send(st, update_atom::value, late);
  auto got = lookup(st, failed.token);
  BOOST_REQUIRE(got.ok());
  BOOST_TEST((got->status == task_status::failure));
  BOOST_TEST(redis_status_is(failed, "FAILURE"));
  // So is a second final record, or a result (a run that followed a copy
  // of a twin's result it was queued for when the copy timed out).
  auto again = failed;
  again.status = task_status::success;
  again.error_code.clear();
  again.error_message.clear();
  caf::anon_send(st, result_atom::value, again, std::string("img"),
                 std::string{});
  got = lookup(st, failed.token);
  BOOST_REQUIRE(got.ok());
  BOOST_TEST((got->status == task_status::failure));
  BOOST_TEST(redis.command("EXISTS " + prefix + "image:" + failed.token) ==
             ":0\r\n");
  // Final in Redis only: another node's write.
  auto other = make_record(task_status::success);
  other.width = other.height = 100;
  {
    store::task_store writer{config().redis};
    BOOST_REQUIRE(writer.put_result(other, "img", 60s).ok());
  }
  auto stale = other;
  stale.status = task_status::in_progress;
  caf::anon_send(st, update_atom::value, stale);
  got = lookup(st, other.token);
  BOOST_REQUIRE(got.ok());
  BOOST_TEST((got->status == task_status::success));
  BOOST_TEST(redis_status_is(other, "SUCCESS"));
  caf::anon_send_exit(st, caf::exit_reason::user_shutdown);
}

// A task this node runs that another node ended first (this API node was
// paused past its lease, a peer took its tasks over and ended them): the
// first final record stands in Redis and here, the later result writes
// nothing, and the long poll held here gets the stored record. Before, the
// result overwrote the FAILURE and the nodes answered differently for good.
BOOST_AUTO_TEST_CASE(a_result_after_another_nodes_final_record_is_not_stored) {
  auto st = start(config());
  auto rec = running_here(st);
  auto poll = long_poll(st, rec.token, 30s);
  auto lost = rec;
  lost.status = task_status::failure;
  lost.error_code = "worker_lost";
  lost.error_message = "lost the worker 1 times";
  {
    store::task_store writer{config().redis};
    BOOST_REQUIRE(writer.put_record(lost, 60s).value());
  }
  auto done = rec;
  done.status = task_status::success;
  done.width = done.height = 100;
  caf::anon_send(st, result_atom::value, done, std::string("img"),
                 std::string{});
  auto got = answered(poll, 10s);
  BOOST_TEST((got.status == task_status::failure));
  BOOST_TEST(got.error_code == "worker_lost");
  auto again = lookup(st, rec.token);
  BOOST_REQUIRE(again.ok());
  BOOST_TEST((again->status == task_status::failure));
  BOOST_TEST(redis_status_is(rec, "FAILURE"));
  BOOST_TEST(redis.command("EXISTS " + prefix + "image:" + rec.token) ==
             ":0\r\n");
  // A final record (not a result) likewise.
  auto other = make_record();
  other.status = task_status::in_progress;
  caf::anon_send(st, update_atom::value, other);
  BOOST_REQUIRE(lookup(st, other.token).ok());
  auto first = other;
  first.status = task_status::success;
  first.width = first.height = 100;
  {
    store::task_store writer{config().redis};
    BOOST_REQUIRE(writer.put_result(first, "img", 60s).value());
  }
  auto second = other;
  second.status = task_status::failure;
  second.error_code = "processing_timeout";
  caf::anon_send(st, update_atom::value, second);
  auto now = lookup(st, other.token);
  BOOST_REQUIRE(now.ok());
  BOOST_TEST((now->status == task_status::success));
  caf::anon_send_exit(st, caf::exit_reason::user_shutdown);
}

// A task open here whose final record another node wrote (it ran on two
// nodes): the next progress write here is refused, and a long poll held
// for the task gets Redis' final record then, not at its deadline (the
// other node's announcement was ignored while the task was open here).
BOOST_AUTO_TEST_CASE(
    a_long_poll_is_answered_when_progress_finds_a_final_record) {
  auto st = start(config());
  auto rec = running_here(st);
  auto poll = long_poll(st, rec.token, 30s);
  // The other node's final record, written without its announcement (a
  // message this node may miss: it would answer the poll by itself).
  redis.command("HSET " + prefix + "task:" + rec.token +
                " status FAILURE error_code worker_lost");
  auto again = rec; // started again here: a progress change
  again.attempts = rec.attempts + 1;
  caf::anon_send(st, update_atom::value, again);
  auto got = answered(poll, 5s);
  BOOST_TEST((got.status == task_status::failure));
  BOOST_TEST(got.error_code == "worker_lost");
  caf::anon_send_exit(st, caf::exit_reason::user_shutdown);
}

// Redis hangs: the call that finds it waits out the command timeout, and
// that is all. Until Redis answers again nothing waits for it: cached records
// are answered, lookups Redis must answer and PINGs (/readyz) are refused at
// once, final writes are kept. Then the kept writes land in order and
// lookups reach Redis again. (Before: each lookup and PING reconnected and
// waited out the timeout, here 1 s apiece.)
BOOST_AUTO_TEST_CASE(a_hung_redis_costs_one_timeout_not_one_per_call) {
  auto cfg = hung_redis_config();
  auto st = start(cfg);
  auto cached = make_record(task_status::success);
  caf::anon_send(st, result_atom::value, cached, std::string("img"),
                 std::string{});
  BOOST_REQUIRE(lookup(st, cached.token).ok()); // written
  auto ping = [&] {
    test::answer<outcome<bool>> ans;
    caf::anon_send(st, ping_atom::value, ans.make());
    auto res = ans.wait();
    BOOST_REQUIRE(res.has_value());
    return *res;
  };
  auto unavailable = [](const auto& res) {
    return !res.ok() && res.error().code == error_code::store_unavailable;
  };
  redis.pause();
  // The one wait.
  BOOST_TEST(unavailable(lookup(st, test::random_uuid())));
  auto ok = make_record(task_status::success);
  auto bad = make_record(task_status::failure);
  auto started = std::chrono::steady_clock::now();
  caf::anon_send(st, result_atom::value, ok, std::string("img2"),
                 std::string{});
  caf::anon_send(st, update_atom::value, bad);
  for (int i = 0; i < 5; ++i) {
    BOOST_TEST(lookup(st, cached.token).ok());
    BOOST_TEST(shown_in_progress(st, ok)); // kept: not shown until stored
    BOOST_TEST(unavailable(lookup(st, test::random_uuid())));
    BOOST_TEST(unavailable(ping()));
  }
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started);
  BOOST_TEST(took.count() < cfg.redis.command_timeout.count(),
             "20 lookups and PINGs took " << took.count() << " ms");
  redis.resume();
  BOOST_TEST(kept_writes_landed(ok, bad));
  BOOST_TEST(redis.command("GET " + prefix + "image:" + ok.token) ==
             "$4\r\nimg2\r\n");
  auto unknown = test::random_uuid();
  BOOST_TEST(test::wait_until(
      [&] {
        auto res = lookup(st, unknown);
        return !res.ok() && res.error().code == error_code::unknown_token;
      },
      10s));
  BOOST_TEST(ping().ok());
  caf::anon_send_exit(st, caf::exit_reason::user_shutdown);
}

// The HTTP layer's lookups (actor_backend) are urgent messages: while the
// actor is held in a Redis call, writes queue behind it, and a client's
// lookup must not wait for all of them.
BOOST_AUTO_TEST_CASE(clients_lookups_overtake_queued_writes) {
  auto cfg = hung_redis_config();
  auto st = start(cfg);
  auto rec = make_record(task_status::in_progress);
  caf::anon_send(st, update_atom::value, rec);
  BOOST_REQUIRE(lookup(st, rec.token).ok()); // written
  actor_backend backend{caf::actor{}, st};
  constexpr uint32_t writes = 20;
  redis.pause();
  // A lookup only Redis can answer: the actor waits in it (the timeout, 1
  // s) while the writes and the client's lookup below queue up.
  test::answer<outcome<task_record>> held;
  caf::anon_send(st, status_atom::value, test::random_uuid(), int64_t{0},
                 held.make());
  for (uint32_t i = 1; i <= writes; ++i) {
    auto newer = rec;
    newer.attempts = i;
    caf::anon_send(st, update_atom::value, newer);
  }
  test::answer<outcome<task_record>> client;
  backend.status(rec.token, 0ms, client.make());
  test::answer<outcome<image_blob>> client_image;
  backend.image(rec.token, client_image.make());
  auto seen = answered(client);
  // In order it would have come after every write (attempts == writes);
  // CAF's mailbox takes at most a few normal messages per round.
  BOOST_TEST(seen.attempts < writes / 2,
             "the lookup saw " << seen.attempts << " of " << writes
                               << " writes queued before it");
  auto image_seen = client_image.wait();
  BOOST_REQUIRE(image_seen.has_value());
  BOOST_TEST(!image_seen->ok()); // no result yet: answered, not held
  BOOST_REQUIRE(held.wait().has_value());
  redis.resume();
  // The writes were all made, in order: the last one is the record.
  BOOST_TEST(lookup(st, rec.token).value().attempts == writes);
  caf::anon_send_exit(st, caf::exit_reason::user_shutdown);
}

// A final record, its result, and a plain poll of a task this node runs are
// read from the shared cache by the HTTP side (actor_backend): they do not
// wait for the actor even while it is held in a Redis call. A long poll of
// an open task, and another node's open task, still go to the actor.
BOOST_AUTO_TEST_CASE(current_records_are_answered_while_the_actor_waits) {
  auto cfg = hung_redis_config();
  cfg.cache = std::make_shared<lookup_cache>(100, 1 << 20);
  auto st = start(cfg);
  auto rec = make_record(task_status::success);
  rec.width = rec.height = 100;
  rec.etag = "e1";
  caf::anon_send(st, result_atom::value, rec, std::string("img"),
                 std::string{});
  BOOST_REQUIRE(lookup(st, rec.token).ok()); // written and cached
  auto open = make_record(task_status::in_progress);
  caf::anon_send(st, update_atom::value, open);
  BOOST_REQUIRE(lookup(st, open.token).ok());
  // A task another API node runs (its own status actor, same Redis).
  auto other_cfg = config();
  other_cfg.node = "other-node";
  auto other = start(other_cfg);
  auto elsewhere = make_record(task_status::in_progress);
  caf::anon_send(other, update_atom::value, elsewhere);
  BOOST_REQUIRE(lookup(other, elsewhere.token).ok());
  BOOST_REQUIRE(lookup(st, elsewhere.token).ok()); // read from Redis
  actor_backend backend{caf::actor{}, st, cfg.cache};
  redis.pause();
  // A lookup only Redis can answer: the actor waits in it for the 1 s
  // timeout.
  test::answer<outcome<task_record>> held;
  caf::anon_send(st, status_atom::value, test::random_uuid(), int64_t{0},
                 held.make());
  // Answered at once, on this thread (not the actor's), long before the
  // hang ends.
  const auto here = std::this_thread::get_id();
  std::thread::id status_from, image_from;
  test::answer<outcome<task_record>> status;
  backend.status(rec.token, 10000ms,
                 status_replier{[&, fwd = status.make()](auto v) mutable {
                                  status_from = std::this_thread::get_id();
                                  fwd(std::move(v));
                                },
                                failure{error_code::internal_error, "none"}});
  test::answer<outcome<image_blob>> image;
  backend.image(rec.token,
                image_replier{[&, fwd = image.make()](auto v) mutable {
                                image_from = std::this_thread::get_id();
                                fwd(std::move(v));
                              },
                              failure{error_code::internal_error, "none"}});
  BOOST_TEST((status_from == here));
  BOOST_TEST((image_from == here));
  auto seen = answered(status, 0ms);
  BOOST_TEST((seen.status == task_status::success));
  auto blob = answered(image, 0ms);
  BOOST_TEST(*blob.bytes == "img");
  BOOST_TEST(blob.etag == "e1");
  // An open task this node runs: a plain poll is answered at once too (the
  // actor writes its every change), on this thread.
  std::thread::id open_from;
  test::answer<outcome<task_record>> open_status;
  backend.status(open.token, 0ms,
                 status_replier{[&, fwd = open_status.make()](auto v) mutable {
                                  open_from = std::this_thread::get_id();
                                  fwd(std::move(v));
                                },
                                failure{error_code::internal_error, "none"}});
  BOOST_TEST((open_from == here));
  auto now = answered(open_status, 0ms);
  BOOST_TEST((now.status == task_status::in_progress));
  // Its long poll is the actor's to hold: answered at its deadline, once
  // the actor is out of the Redis call.
  test::answer<outcome<task_record>> open_wait;
  backend.status(open.token, 200ms, open_wait.make());
  BOOST_TEST(!open_wait.wait(0ms).has_value());
  // Another API node's open task (read from Redis before the pause) moves
  // on in Redis: only the actor answers for it.
  test::answer<outcome<task_record>> elsewhere_status;
  backend.status(elsewhere.token, 0ms, elsewhere_status.make());
  BOOST_TEST(!elsewhere_status.wait(0ms).has_value());
  BOOST_REQUIRE(held.wait().has_value());
  auto later = answered(open_wait);
  BOOST_TEST((later.status == task_status::in_progress));
  BOOST_REQUIRE(elsewhere_status.wait().has_value());
  redis.resume();
  caf::anon_send_exit(other, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(st, caf::exit_reason::user_shutdown);
}

// -- long polls (GET /api/v1/resize/<token>?wait=N)
// ----------------------------

BOOST_AUTO_TEST_CASE(a_long_poll_is_answered_when_its_task_finishes) {
  auto st = start(config());
  auto rec = make_record();
  caf::anon_send(st, update_atom::value, rec);
  auto poll = long_poll(st, rec.token, 30s);
  // A plain lookup behind it in the mailbox is answered: the long poll was
  // handled, and it is still waiting.
  BOOST_REQUIRE(lookup(st, rec.token).ok());
  BOOST_TEST(!poll.wait(0ms).has_value());
  rec.status = task_status::success;
  rec.width = rec.height = 100;
  caf::anon_send(st, result_atom::value, rec, std::string("img"),
                 std::string{});
  // Long before its 30 s deadline.
  auto got = answered(poll, 10s);
  BOOST_TEST((got.status == task_status::success));
  BOOST_TEST(got.width == 100);
  caf::anon_send_exit(st, caf::exit_reason::user_shutdown);
}

// A client told SUCCESS fetches the image at once, and the io thread
// (lookup_cache::result) or the lookup reader answers that from the shared
// cache: it must hold the final record and the image by the time the long
// poll is answered, not the open record (found by the benchmark: one image
// fetch in twenty answered 404 "not finished" once the reader existed).
BOOST_AUTO_TEST_CASE(
    a_finished_tasks_image_is_cached_before_its_poll_is_answered) {
  auto cfg = config();
  cfg.cache = std::make_shared<lookup_cache>(100, 1 << 20);
  auto st = start(cfg);
  auto rec = make_record();
  caf::anon_send(st, update_atom::value, rec);
  BOOST_REQUIRE(lookup(st, rec.token).ok());
  test::answer<outcome<bool>> cached_at_answer;
  auto seen = cached_at_answer.make();
  auto cache = cfg.cache;
  auto token = rec.token;
  // Runs where the actor answers, before it handles anything else.
  status_replier poll{
      [cache, token, seen](outcome<task_record> got) {
        seen(got.ok() && cache->result(token).has_value());
      },
      outcome<task_record>{failure{error_code::internal_error, "dropped"}}};
  caf::anon_send(st, status_atom::value, rec.token, int64_t{30000},
                 std::move(poll));
  BOOST_REQUIRE(lookup(st, rec.token).ok()); // the poll is held
  rec.status = task_status::success;
  rec.width = rec.height = 100;
  rec.etag = "e1";
  caf::anon_send(st, result_atom::value, rec, std::string("img"),
                 std::string{});
  auto got = answered(cached_at_answer, 10s);
  BOOST_TEST(got);
  caf::anon_send_exit(st, caf::exit_reason::user_shutdown);
}

BOOST_AUTO_TEST_CASE(a_long_poll_answers_the_current_record_at_its_deadline) {
  auto st = start(config());
  auto rec = make_record();
  caf::anon_send(st, update_atom::value, rec);
  auto poll = long_poll(st, rec.token, 200ms);
  auto got = answered(poll, 10s);
  BOOST_TEST((got.status == task_status::pending));
  caf::anon_send_exit(st, caf::exit_reason::user_shutdown);
}

BOOST_AUTO_TEST_CASE(a_long_poll_of_a_final_or_unknown_task_answers_at_once) {
  auto st = start(config());
  auto rec = make_record(task_status::failure);
  rec.error_code = "corrupt_image";
  caf::anon_send(st, update_atom::value, rec);
  auto done = long_poll(st, rec.token, 30s).wait(10s);
  BOOST_REQUIRE(done.has_value());
  BOOST_REQUIRE(done->ok());
  BOOST_TEST(((*done)->status == task_status::failure));
  auto unknown = long_poll(st, test::random_uuid(), 30s).wait(10s);
  BOOST_REQUIRE(unknown.has_value());
  BOOST_REQUIRE(!unknown->ok());
  BOOST_TEST((unknown->error().code == error_code::unknown_token));
  caf::anon_send_exit(st, caf::exit_reason::user_shutdown);
}

// API node B long-polls a task that API node A runs: B never sees A's
// writes, so it looks in Redis (every `recheck`) and answers when A's result
// lands there, long before the deadline.
BOOST_AUTO_TEST_CASE(a_long_poll_sees_another_nodes_result_in_redis) {
  auto cfg_a = config();
  cfg_a.node = "node-a";
  auto cfg_b = config();
  cfg_b.node = "node-b";
  cfg_b.recheck = 50ms;
  auto a = start(cfg_a);
  auto b = start(cfg_b);
  auto rec = make_record();
  caf::anon_send(a, update_atom::value, rec);
  BOOST_REQUIRE(lookup(a, rec.token).ok()); // written to Redis
  auto poll = long_poll(b, rec.token, 30s);
  BOOST_REQUIRE(lookup(b, rec.token).ok());
  BOOST_TEST(!poll.wait(0ms).has_value());
  rec.status = task_status::success;
  caf::anon_send(a, result_atom::value, rec, std::string("img"), std::string{});
  auto got = answered(poll, 10s);
  BOOST_TEST((got.status == task_status::success));
  caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(b, caf::exit_reason::user_shutdown);
}

// Redis announces each final record (finished_channel): B answers its long
// poll of A's task then, not at its next look in Redis, a minute away here.
BOOST_AUTO_TEST_CASE(a_long_poll_hears_of_another_nodes_result_at_once) {
  auto cfg_a = config();
  cfg_a.node = "node-a";
  auto cfg_b = config();
  cfg_b.node = "node-b";
  cfg_b.recheck = 60s;
  auto a = start(cfg_a);
  auto b = start(cfg_b);
  // Both listeners subscribed: what is announced before that is lost.
  auto subscribers = [&] {
    return redis.command("PUBSUB NUMSUB " + prefix + "finished");
  };
  BOOST_REQUIRE_MESSAGE(
      test::wait_until(
          [&] { return subscribers().find(":2\r\n") != std::string::npos; },
          10s),
      subscribers());
  auto rec = make_record();
  caf::anon_send(a, update_atom::value, rec);
  BOOST_REQUIRE(lookup(a, rec.token).ok()); // written to Redis
  auto poll = long_poll(b, rec.token, 30s);
  BOOST_REQUIRE(lookup(b, rec.token).ok()); // the poll is held
  BOOST_TEST(!poll.wait(0ms).has_value());
  rec.status = task_status::success;
  caf::anon_send(a, result_atom::value, rec, std::string("img"), std::string{});
  auto got = answered(poll, 5s);
  BOOST_TEST((got.status == task_status::success));
  // A FAILURE record is announced too.
  auto bad = make_record();
  caf::anon_send(a, update_atom::value, bad);
  BOOST_REQUIRE(lookup(a, bad.token).ok());
  auto bad_poll = long_poll(b, bad.token, 30s);
  BOOST_REQUIRE(lookup(b, bad.token).ok());
  bad.status = task_status::failure;
  bad.error_code = "corrupt_image";
  bad.error_message = "broken";
  caf::anon_send(a, update_atom::value, bad);
  auto failed = answered(bad_poll, 5s);
  BOOST_TEST((failed.status == task_status::failure));
  caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(b, caf::exit_reason::user_shutdown);
}

// Held long polls are bounded: past max_waiters a poll is answered at once.
BOOST_AUTO_TEST_CASE(long_polls_are_bounded) {
  auto cfg = config();
  cfg.max_waiters = 1;
  auto st = start(cfg);
  auto rec = make_record();
  caf::anon_send(st, update_atom::value, rec);
  auto held = long_poll(st, rec.token, 30s);
  auto second = long_poll(st, rec.token, 30s).wait(10s);
  BOOST_REQUIRE(second.has_value());
  BOOST_REQUIRE(second->ok());
  BOOST_TEST(((*second)->status == task_status::pending));
  BOOST_TEST(!held.wait(0ms).has_value());
  // Stopping the actor drops the held replier: it answers, never hangs.
  caf::anon_send_exit(st, caf::exit_reason::user_shutdown);
  auto dropped = held.wait(10s);
  BOOST_REQUIRE(dropped.has_value());
  BOOST_TEST(!dropped->ok());
}

// Shutdown (drain_atom from main): held long polls get their record at once,
// later ones are not held.
BOOST_AUTO_TEST_CASE(drain_answers_held_long_polls) {
  auto st = start(config());
  auto rec = make_record();
  caf::anon_send(st, update_atom::value, rec);
  auto held = long_poll(st, rec.token, 30s);
  BOOST_REQUIRE(lookup(st, rec.token).ok());
  BOOST_TEST(!held.wait(0ms).has_value());
  caf::scoped_actor self{sys};
  bool drained = false;
  self->request(st, 10s, drain_atom::value)
      .receive([&](bool ok) { drained = ok; }, [](caf::error&) {});
  BOOST_TEST(drained);
  auto got = held.wait(0ms); // answered before drain's own answer
  BOOST_REQUIRE(got.has_value());
  BOOST_REQUIRE(got->ok());
  BOOST_TEST(((*got)->status == task_status::pending));
  auto later = long_poll(st, rec.token, 30s).wait(10s);
  BOOST_REQUIRE(later.has_value());
  BOOST_TEST(((*later)->status == task_status::pending));
  caf::anon_send_exit(st, caf::exit_reason::user_shutdown);
}

// Plain polls and image fetches the cache cannot answer (another API node's
// open task, its result, an unknown token) hold nothing, nor does a long
// poll of a final or unknown task: the lookup reader reads them on its own
// connection, so they are answered while the status actor waits in a write
// (here: Redis' writes paused, its reads not). A long poll of an open task
// goes on to the actor, which holds it.
BOOST_AUTO_TEST_CASE(
    lookups_that_hold_nothing_are_read_while_the_actor_writes) {
  auto cfg = config();
  cfg.redis.command_timeout = 5s; // the write waits the pause out
  cfg.cache = std::make_shared<lookup_cache>(100, 1 << 20);
  auto st = start(cfg);
  auto other_cfg = config();
  other_cfg.node = "other-node";
  auto other = start(other_cfg);
  auto elsewhere = make_record(task_status::in_progress);
  caf::anon_send(other, update_atom::value, elsewhere);
  auto done = make_record(task_status::success);
  done.width = done.height = 100;
  done.etag = "e2";
  caf::anon_send(other, result_atom::value, done, std::string("img2"),
                 std::string{});
  auto finished = make_record(task_status::failure);
  finished.error_code = "corrupt_image";
  caf::anon_send(other, update_atom::value, finished);
  BOOST_REQUIRE(lookup(other, elsewhere.token).ok());
  BOOST_REQUIRE(lookup(other, done.token).ok());
  BOOST_REQUIRE(lookup(other, finished.token).ok());
  reader_config rcfg;
  rcfg.redis = cfg.redis;
  rcfg.result_ttl = cfg.result_ttl;
  rcfg.cache = cfg.cache;
  rcfg.status = st;
  auto reader = sys.spawn<caf::detached>(lookup_reader, rcfg);
  actor_backend backend{caf::actor{}, st, cfg.cache, reader};
  BOOST_REQUIRE(redis.command("CLIENT PAUSE 3000 WRITE").find("OK") !=
                std::string::npos);
  caf::anon_send(st, update_atom::value, make_record(task_status::in_progress));
  // The actor's own lookups come after that write.
  test::answer<outcome<task_record>> behind;
  caf::anon_send(st, status_atom::value, test::random_uuid(), int64_t{0},
                 behind.make());
  test::answer<outcome<task_record>> plain, missing, final_wait, missing_wait,
      open_wait;
  test::answer<outcome<image_blob>> img;
  backend.status(elsewhere.token, 0ms, plain.make());
  backend.image(done.token, img.make());
  backend.status(test::random_uuid(), 0ms, missing.make());
  backend.status(finished.token, 20s, final_wait.make());
  backend.status(test::random_uuid(), 20s, missing_wait.make());
  backend.status(elsewhere.token, 1s, open_wait.make());
  auto rec = answered(plain, 1500ms);
  BOOST_TEST((rec.status == task_status::in_progress));
  auto blob = answered(img, 1500ms);
  BOOST_TEST(*blob.bytes == "img2");
  BOOST_TEST(blob.etag == "e2");
  auto none = missing.wait(1500ms);
  BOOST_REQUIRE(none.has_value());
  BOOST_TEST((!none->ok() && none->error().code == error_code::unknown_token));
  auto ended = answered(final_wait, 1500ms);
  BOOST_TEST((ended.status == task_status::failure));
  auto none_waited = missing_wait.wait(1500ms);
  BOOST_REQUIRE(none_waited.has_value());
  BOOST_TEST((!none_waited->ok() &&
              none_waited->error().code == error_code::unknown_token));
  // All while the actor was still in its write; the open task's long poll
  // waits for it, then for its own second.
  BOOST_TEST(!behind.wait(0ms).has_value());
  BOOST_TEST(!open_wait.wait(0ms).has_value());
  BOOST_TEST(behind.wait(10s).has_value());
  auto still_open = answered(open_wait, 10s);
  BOOST_TEST((still_open.status == task_status::in_progress));
  // What the reader read that never changes is cached: a SUCCESS and its
  // image, not the open task.
  BOOST_TEST(cfg.cache->result(done.token).has_value());
  BOOST_TEST(!cfg.cache->current_record(elsewhere.token).has_value());
  for (auto* a : {&reader, &other, &st})
    caf::anon_send_exit(*a, caf::exit_reason::user_shutdown);
}

// A client that heard its task ended (from another API node, say) fetches
// the image here while this node's cache still holds the open record: the
// status actor caches a result only after Redis took it. The reader reads
// Redis again instead of answering "not finished" from the cache.
BOOST_AUTO_TEST_CASE(an_image_fetch_reads_past_a_cached_open_record) {
  auto cfg = config();
  cfg.cache = std::make_shared<lookup_cache>(100, 1 << 20);
  auto other = start(config());
  auto rec = make_record(task_status::success);
  rec.width = rec.height = 100;
  rec.etag = "e3";
  caf::anon_send(other, result_atom::value, rec, std::string("img3"),
                 std::string{});
  BOOST_REQUIRE(lookup(other, rec.token).ok()); // in Redis now
  auto open = rec;
  open.status = task_status::in_progress;
  cfg.cache->put_record(rec.token, {open, now_ms() + 60000});
  reader_config rcfg;
  rcfg.redis = cfg.redis;
  rcfg.result_ttl = cfg.result_ttl;
  rcfg.cache = cfg.cache;
  auto reader = sys.spawn<caf::detached>(lookup_reader, rcfg);
  actor_backend backend{caf::actor{}, caf::actor{}, cfg.cache, reader};
  test::answer<outcome<image_blob>> img;
  backend.image(rec.token, img.make());
  auto blob = answered(img);
  BOOST_TEST(*blob.bytes == "img3");
  BOOST_TEST(blob.etag == "e3");
  // The final record it read replaced the open one in the cache.
  test::answer<outcome<task_record>> poll;
  backend.status(rec.token, 0ms, poll.make());
  auto got = answered(poll);
  BOOST_TEST((got.status == task_status::success));
  for (auto* a : {&reader, &other})
    caf::anon_send_exit(*a, caf::exit_reason::user_shutdown);
}

// What a node reads from Redis (another node's result, or its own after
// an eviction or a restart) is cached no longer than Redis keeps it: once
// Redis has let a task expire, every node answers it unknown, this one too,
// through the status actor, the lookup reader and the io threads' cache.
BOOST_AUTO_TEST_CASE(
    what_is_read_from_redis_is_cached_no_longer_than_it_lives) {
  auto cfg = config(); // result TTL 60 s here
  cfg.cache = std::make_shared<lookup_cache>(100, 1 << 20);
  auto st = start(cfg);
  reader_config rcfg;
  rcfg.redis = cfg.redis;
  rcfg.result_ttl = cfg.result_ttl;
  rcfg.cache = std::make_shared<lookup_cache>(100, 1 << 20);
  auto reader = sys.spawn<caf::detached>(lookup_reader, rcfg);
  actor_backend backend{caf::actor{}, caf::actor{}, rcfg.cache, reader};
  auto rec = make_record(task_status::success);
  rec.width = rec.height = 100;
  rec.etag = "e4";
  {
    store::task_store other_node{cfg.redis}; // a TTL of 2 s there
    BOOST_REQUIRE(other_node.put_result(rec, "img4", 2s).ok());
  }
  BOOST_TEST(lookup(st, rec.token).ok());
  BOOST_TEST(image(st, rec.token).ok());
  test::answer<outcome<image_blob>> img;
  backend.image(rec.token, img.make());
  BOOST_TEST(*answered(img).bytes == "img4");
  BOOST_REQUIRE(test::wait_until([&] { return !redis_has(rec.token); }, 10s));
  auto gone = lookup(st, rec.token);
  BOOST_TEST((!gone.ok() && gone.error().code == error_code::unknown_token));
  auto no_image = image(st, rec.token);
  BOOST_TEST(!no_image.ok());
  test::answer<outcome<task_record>> poll;
  backend.status(rec.token, 0ms, poll.make());
  auto polled = poll.wait(10s);
  BOOST_REQUIRE(polled.has_value());
  BOOST_TEST(!polled->ok());
  test::answer<outcome<image_blob>> img2;
  backend.image(rec.token, img2.make());
  auto fetched = img2.wait(10s);
  BOOST_REQUIRE(fetched.has_value());
  BOOST_TEST(!fetched->ok());
  for (auto* a : {&reader, &st})
    caf::anon_send_exit(*a, caf::exit_reason::user_shutdown);
}

// A long poll of another node's task whose record leaves Redis while it
// waits (it expired, or its accept was undone) is answered unknown_token at
// the next recheck, not at its deadline.
BOOST_AUTO_TEST_CASE(a_long_poll_of_a_task_that_leaves_redis_is_answered_then) {
  auto cfg = config();
  cfg.recheck = 200ms;
  auto st = start(cfg);
  auto rec = make_record(task_status::in_progress);
  {
    store::task_store other_node{cfg.redis};
    BOOST_REQUIRE(other_node.put_record(rec, 60s).ok());
  }
  auto started = std::chrono::steady_clock::now();
  auto poll = long_poll(st, rec.token, 20s);
  BOOST_TEST(!poll.wait(300ms).has_value()); // held: the task is open
  redis.command("DEL " + prefix + "task:" + rec.token);
  auto got = poll.wait(5s);
  BOOST_REQUIRE(got.has_value());
  BOOST_TEST(!got->ok());
  BOOST_TEST((!got->ok() && got->error().code == error_code::unknown_token));
  BOOST_TEST((std::chrono::steady_clock::now() - started < 10s));
  caf::anon_send_exit(st, caf::exit_reason::user_shutdown);
}

BOOST_AUTO_TEST_SUITE_END()
