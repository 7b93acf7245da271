// The lease actor against a real redis-server: a free name is taken and only
// then is recovery asked for; a crashed holder's lease is waited for; a live
// holder keeps the name (start-up refused, nothing recovered); a lease taken
// by another instance while held ends in on_lost; with Redis away at start
// the node may start and the lease is taken once Redis answers.
#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

#include <caf/all.hpp>

#include "actor_fixture.hpp"
#include "actors/lease_actor.hpp"
#include "store/task_store.hpp"
#include "support/redis_server.hpp"

using namespace resized;
using namespace resized::actors;
using namespace std::chrono_literals;

namespace {

struct lease_fixture : test::actor_system_fixture {
  test::redis_server redis;
  std::string prefix = "t" + test::random_uuid().substr(0, 8) + ":";
  std::string node = "node-" + test::random_uuid().substr(0, 8);
  std::string key = prefix + "node:" + node;
  caf::scoped_actor self{sys}; // stands in for the supervisor
  std::atomic<int> lost{0};

  lease_config config(std::chrono::milliseconds ttl = 1000ms,
                      std::chrono::milliseconds renew = 300ms) {
    lease_config cfg;
    cfg.redis.port = redis.port();
    cfg.redis.key_prefix = prefix;
    cfg.redis.command_timeout = 500ms;
    cfg.redis.connect_timeout = 500ms;
    cfg.node = node;
    cfg.instance = "me-" + test::random_uuid();
    cfg.ttl = ttl;
    cfg.renew = renew;
    cfg.supervisor = caf::actor_cast<caf::actor>(self);
    cfg.on_lost = [this] { ++lost; };
    return cfg;
  }

  caf::actor start(lease_config cfg) {
    started.push_back(sys.spawn<caf::detached>(lease_actor, std::move(cfg)));
    return started.back();
  }
  std::vector<caf::actor> started;

  /// main's question: may start-up go on? nullopt: no answer in `timeout`.
  std::optional<bool> may_start(const caf::actor& lease,
                                std::chrono::milliseconds timeout = 10s) {
    std::optional<bool> out;
    self->request(lease, timeout, lease_atom::value)
        .receive([&](bool ok) { out = ok; }, [](caf::error&) {});
    return out;
  }

  /// Whether the supervisor was told to recover within `timeout`.
  bool recovery_asked(std::chrono::milliseconds timeout) {
    bool asked = false;
    self->receive([&](recover_atom) { asked = true; },
                  caf::after(timeout) >> [] {});
    return asked;
  }

  std::string holder() {
    auto reply = redis.command("GET " + key);
    if (reply.rfind("$-1", 0) == 0)
      return {};
    auto body = reply.find("\r\n");
    return reply.substr(body + 2, reply.size() - body - 4);
  }

  ~lease_fixture() {
    // Also after a failed check: the system waits for every actor.
    for (auto& a : started)
      caf::anon_send_exit(a, caf::exit_reason::kill);
  }
};

} // namespace

BOOST_FIXTURE_TEST_SUITE(lease_actor_suite, lease_fixture)

BOOST_AUTO_TEST_CASE(a_free_name_is_taken_then_recovery_is_asked_for) {
  auto cfg = config();
  auto instance = cfg.instance;
  auto lease = start(cfg);
  auto ok = may_start(lease);
  BOOST_TEST_REQUIRE(ok.has_value());
  BOOST_TEST(*ok);
  BOOST_TEST(recovery_asked(5s));
  BOOST_TEST(holder() == instance);
  // Renewed: still ours well past one lease (1 s), never recovered twice.
  BOOST_TEST(!recovery_asked(2500ms));
  BOOST_TEST(holder() == instance);
  BOOST_TEST(lost == 0);
  caf::anon_send_exit(lease, caf::exit_reason::user_shutdown);
}

BOOST_AUTO_TEST_CASE(a_crashed_holders_lease_is_waited_for) {
  // From before the SET: the old lease lives at least 600 ms from t0.
  auto t0 = std::chrono::steady_clock::now();
  redis.command("SET " + key + " crashed-one PX 600");
  auto cfg = config();
  auto instance = cfg.instance;
  auto lease = start(cfg);
  auto ok = may_start(lease);
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::steady_clock::now() - t0)
                  .count();
  BOOST_TEST_REQUIRE(ok.has_value());
  BOOST_TEST(*ok);
  BOOST_TEST(took >= 400); // ms: it did wait for the old lease
  BOOST_TEST(recovery_asked(5s));
  BOOST_TEST(holder() == instance);
  caf::anon_send_exit(lease, caf::exit_reason::user_shutdown);
}

BOOST_AUTO_TEST_CASE(a_live_holder_keeps_the_name) {
  // A holder whose lease does not run out within the wait: one that renews.
  redis.command("SET " + key + " alive-one PX 60000");
  auto lease = start(config(500ms, 100ms));
  auto ok = may_start(lease);
  BOOST_TEST_REQUIRE(ok.has_value());
  BOOST_TEST(!*ok);
  BOOST_TEST(!recovery_asked(300ms));
  BOOST_TEST(holder() == "alive-one");
  BOOST_TEST(lost == 0); // refused before start-up went on: main's to say
  caf::anon_send_exit(lease, caf::exit_reason::user_shutdown);
}

BOOST_AUTO_TEST_CASE(a_lease_taken_while_held_is_lost) {
  auto lease = start(config(1000ms, 100ms));
  auto ok = may_start(lease);
  BOOST_TEST_REQUIRE(ok.has_value());
  BOOST_TEST_REQUIRE(*ok);
  BOOST_TEST(recovery_asked(5s));
  redis.command("SET " + key + " thief PX 60000");
  BOOST_TEST(test::wait_until([&] { return lost == 1; }, 5000ms));
  BOOST_TEST(holder() == "thief"); // left alone
  BOOST_TEST(!recovery_asked(300ms));
  BOOST_TEST(lost == 1); // once
  caf::anon_send_exit(lease, caf::exit_reason::user_shutdown);
}

// This node was paused (or cut off from Redis) past its lease and a peer
// adopted its tasks: its next renewal finds the adoption mark, does not
// take the name again, and the node is lost (main exits 4). Before, it
// took the name back and ran the adopted tasks alongside the peer.
BOOST_AUTO_TEST_CASE(a_lease_whose_tasks_were_adopted_is_lost) {
  auto lease = start(config(1000ms, 100ms));
  auto ok = may_start(lease);
  BOOST_TEST_REQUIRE(ok.has_value());
  BOOST_TEST_REQUIRE(*ok);
  BOOST_TEST(recovery_asked(5s));
  // What the peer's adoption leaves: no lease, the mark.
  redis.command("SET " + prefix + "adopted:" + node + " peer PX 60000");
  redis.command("DEL " + key);
  BOOST_TEST(test::wait_until([&] { return lost == 1; }, 5000ms));
  BOOST_TEST(holder().empty()); // not taken again
  BOOST_TEST(!recovery_asked(300ms));
  BOOST_TEST(lost == 1);
  caf::anon_send_exit(lease, caf::exit_reason::user_shutdown);
}

// What a node found its lease gone tells from what it saw since its last
// renewal: renewed in time means Redis lost the key; renewals failing for
// longer than the lease, Redis away; none tried that long, the node itself
// stalled (it blamed Redis for all three).
BOOST_AUTO_TEST_CASE(a_lapsed_lease_is_told_apart_by_cause) {
  BOOST_TEST(to_string(why_lease_lapsed(false, 999ms, 1000ms)) ==
             std::string{"redis_lost_it"});
  BOOST_TEST(to_string(why_lease_lapsed(true, 999ms, 1000ms)) ==
             std::string{"redis_lost_it"});
  BOOST_TEST(to_string(why_lease_lapsed(true, 1000ms, 1000ms)) ==
             std::string{"redis_away"});
  BOOST_TEST(to_string(why_lease_lapsed(false, 1000ms, 1000ms)) ==
             std::string{"node_stalled"});
  BOOST_TEST(to_string(why_lease_lapsed(false, 30000ms, 1000ms)) ==
             std::string{"node_stalled"});
}

BOOST_AUTO_TEST_CASE(redis_away_at_start_the_lease_is_taken_later) {
  redis.stop();
  auto cfg = config();
  auto instance = cfg.instance;
  auto lease = start(cfg);
  auto ok = may_start(lease);
  BOOST_TEST_REQUIRE(ok.has_value());
  BOOST_TEST(*ok); // as for every Redis outage at start-up
  BOOST_TEST(!recovery_asked(300ms));
  redis.start();
  BOOST_TEST(recovery_asked(10s));
  BOOST_TEST(holder() == instance);
  caf::anon_send_exit(lease, caf::exit_reason::user_shutdown);
}

// Redis away for longer than the leases: every name's lease runs out, the
// live nodes' with the rest. Once Redis is back, a node adopts nothing for
// a lease and a renewal, in which each live owner takes its name again:
// node b never adopts live node a's task (which a still has, and would run
// twice), while the task of a node with no owner (c) is adopted after it.
BOOST_AUTO_TEST_CASE(after_redis_was_away_live_nodes_keep_their_tasks) {
  test::redis_server aof{true}; // the pending sets survive its restart
  auto node_cfg = [&](const std::string& name, const caf::scoped_actor& sup,
                      std::chrono::milliseconds renew) {
    auto cfg = config(1000ms, renew);
    cfg.redis.port = aof.port();
    cfg.node = name;
    cfg.instance = name + "-" + test::random_uuid();
    cfg.adopt = 300ms;
    cfg.supervisor = caf::actor_cast<caf::actor>(sup);
    return cfg;
  };
  auto pending = [&](const std::string& name) {
    store::task_store ts{node_cfg(name, self, 100ms).redis};
    task_record rec;
    rec.token = test::random_uuid();
    rec.status = task_status::pending;
    rec.submitted_at_ms = now_ms();
    BOOST_REQUIRE(ts.put_accepted(rec, "input", name, 60s).ok());
    return rec.token;
  };
  auto a_name = "a-" + test::random_uuid().substr(0, 8);
  auto b_name = "b-" + test::random_uuid().substr(0, 8);
  auto c_name = "c-" + test::random_uuid().substr(0, 8);
  pending(a_name);
  caf::scoped_actor sa{sys}, sb{sys};
  start(node_cfg(a_name, sa, 300ms));
  start(node_cfg(b_name, sb, 100ms)); // b renews, and so looks, first
  for (auto* sup : {&sa, &sb}) {
    bool asked = false;
    (*sup)->receive([&](recover_atom) { asked = true; },
                    caf::after(5s) >> [] {});
    BOOST_REQUIRE(asked);
  }
  aof.stop();
  std::this_thread::sleep_for(2500ms); // longer than the leases
  aof.start();
  pending(c_name); // a name with no owner
  std::vector<std::string> adopted_from;
  auto until = std::chrono::steady_clock::now() + 5s;
  while (std::chrono::steady_clock::now() < until)
    sb->receive(
        [&](adopt_atom, std::string& from, std::vector<store::pending_task>&) {
          adopted_from.push_back(from);
        },
        caf::after(200ms) >> [] {});
  BOOST_TEST(std::count(adopted_from.begin(), adopted_from.end(), a_name) == 0);
  BOOST_TEST(std::count(adopted_from.begin(), adopted_from.end(), c_name) == 1);
  BOOST_TEST(lost == 0);
}

// An adoption Redis ran whose answer never reached the adopter (a timeout
// after the script ran, a dropped connection): the tasks are in the
// adopter's pending set, the name they came from is gone from the set of
// names, and a second adoption finds nothing. The next pass hands them
// over all the same (before, they waited for the adopter's restart).
BOOST_AUTO_TEST_CASE(an_adoption_whose_answer_was_lost_is_handed_over) {
  auto cfg = config(1000ms, 100ms);
  cfg.adopt = 200ms;
  cfg.supervisor = caf::actor_cast<caf::actor>(self);
  store::task_store ts{cfg.redis};
  auto orphan = "orphan-" + test::random_uuid().substr(0, 8);
  task_record rec;
  rec.token = test::random_uuid();
  rec.status = task_status::pending;
  rec.submitted_at_ms = now_ms();
  BOOST_REQUIRE(ts.put_accepted(rec, "input", orphan, 60s).ok());
  // The adoption as this node ran it, its answer lost (done before the
  // actor starts, so that its own pass cannot adopt the name first).
  auto ran = ts.adopt_pending(orphan, cfg.node);
  BOOST_REQUIRE(ran.ok());
  BOOST_REQUIRE(ran.value().tokens == std::vector<std::string>{rec.token});
  BOOST_REQUIRE(ts.adopt_pending(orphan, cfg.node).value().tokens.empty());
  start(cfg);
  BOOST_REQUIRE(recovery_asked(5s));
  std::vector<std::string> handed;
  std::string from;
  self->receive(
      [&](adopt_atom, std::string& f, std::vector<store::pending_task>& tasks) {
        from = f;
        for (const auto& t : tasks)
          handed.push_back(t.record.token);
      },
      caf::after(5s) >> [] {});
  BOOST_TEST(from == orphan);
  BOOST_TEST(handed == std::vector<std::string>{rec.token},
             boost::test_tools::per_element());
  // Once: crossed off.
  bool again = false;
  self->receive([&](adopt_atom, std::string&,
                    std::vector<store::pending_task>&) { again = true; },
                caf::after(1s) >> [] {});
  BOOST_TEST(!again);
  BOOST_TEST(ts.adopted_not_handed(cfg.node).value().empty());
}

BOOST_AUTO_TEST_SUITE_END()
