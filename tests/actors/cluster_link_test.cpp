// A worker node's link to an API node, against a stand-in API node published
// on a loopback port through CAF's middleman (real BASP over a socket): it
// says hello with its cluster protocol and build before it joins, and a
// refusal for another protocol keeps it out, asking again with backoff.
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include "actor_fixture.hpp"
#include "actors/cluster_link.hpp"
#include "support/process.hpp"

using namespace resized;
using namespace resized::actors;
using namespace std::chrono_literals;
using resized::test::wait_until;

namespace {

struct middleman_config : caf::actor_system_config {
  middleman_config() {
    load<caf::io::middleman>();
    actors::announce_message_types(*this);
    set("scheduler.max-threads", 2);
    set("logger.verbosity", caf::atom("quiet"));
  }
};

// What the stand-in API node saw.
struct seen {
  std::atomic<int> hellos{0};
  std::atomic<int> joins{0};
  std::mutex mtx;
  uint32_t protocol = 0;
  std::string build;
  std::string joined_build;
};

// An API node that refuses every hello (`refuse`) or welcomes the worker.
caf::behavior api_stand_in(caf::event_based_actor*, std::shared_ptr<seen> s,
                           bool refuse) {
  return {
      [=](hello_atom, uint32_t protocol,
          const std::string& build) -> caf::result<hello_atom, std::string> {
        {
          std::lock_guard<std::mutex> lock{s->mtx};
          s->protocol = protocol;
          s->build = build;
        }
        ++s->hellos;
        if (refuse)
          return make_error(cluster_error::protocol_mismatch,
                            "the API node runs resized 9.9.9 (other)");
        return {hello_atom::value, std::string{"9.9.9 (same)"}};
      },
      [=](join_atom, const caf::actor&, const node_info& info) {
        {
          std::lock_guard<std::mutex> lock{s->mtx};
          s->joined_build = info.build;
        }
        ++s->joins;
        return welcome_atom::value;
      },
  };
}

// An API node of a build from before the hello: no handler for it.
caf::behavior api_before_hello(caf::event_based_actor* self,
                               std::shared_ptr<seen> s) {
  self->set_default_handler(
      [s](caf::scheduled_actor*,
          caf::message_view& msg) -> caf::result<caf::message> {
        if (msg.content().match_element<hello_atom>(0))
          ++s->hellos;
        return caf::sec::unexpected_message;
      });
  return {
      [=](join_atom, const caf::actor&, const node_info&) {
        ++s->joins;
        return welcome_atom::value;
      },
  };
}

// An API node that takes the first join and never answers it (its answer
// lost with the node); later joins are welcomed.
caf::behavior api_losing_first_join(caf::event_based_actor* self,
                                    std::shared_ptr<seen> s) {
  auto held = std::make_shared<std::vector<caf::response_promise>>();
  return {
      [=](hello_atom, uint32_t, const std::string&) {
        ++s->hellos;
        return caf::make_message(hello_atom::value, std::string{"9.9.9"});
      },
      [=](join_atom, const caf::actor&,
          const node_info&) -> caf::result<welcome_atom> {
        if (++s->joins == 1) {
          held->push_back(self->make_response_promise());
          return caf::delegated<welcome_atom>{};
        }
        return welcome_atom::value;
      },
  };
}

// Something to stand for the worker's agent: the link only passes it on.
caf::behavior idle_agent(caf::event_based_actor*) {
  return {[](int) {}};
}

struct link_fixture {
  middleman_config cfg;
  caf::actor_system sys{cfg};
  std::shared_ptr<seen> api_saw = std::make_shared<seen>();

  // Publishes a stand-in API node on a free loopback port and links a
  // worker of build "1.0.0 (mine)" to it.
  void start(bool refuse, bool before_hello = false) {
    api = before_hello ? sys.spawn(api_before_hello, api_saw)
                       : sys.spawn(api_stand_in, api_saw, refuse);
    auto port = sys.middleman().publish(api, 0, "127.0.0.1", true);
    if (!port)
      BOOST_FAIL(sys.render(port.error()));
    link_config lc;
    lc.host = "127.0.0.1";
    lc.port = *port;
    lc.backoff_min = 20ms;
    lc.backoff_max = 50ms;
    lc.connect_timeout = 5s;
    agent = sys.spawn(idle_agent);
    link = sys.spawn(cluster_link, lc, agent,
                     node_info{"w1", "here", 1, "1.0.0 (mine)"});
  }

  // The actor system waits for every actor when it goes.
  ~link_fixture() {
    for (auto* a : {&link, &agent, &api})
      if (*a)
        caf::anon_send_exit(*a, caf::exit_reason::user_shutdown);
  }

  caf::actor api, agent, link;
};

} // namespace

BOOST_FIXTURE_TEST_SUITE(cluster_link_suite, link_fixture)

BOOST_AUTO_TEST_CASE(a_worker_says_hello_then_joins) {
  start(false);
  BOOST_TEST_REQUIRE(
      wait_until([&] { return api_saw->joins.load() == 1; }, 10s));
  BOOST_TEST(api_saw->hellos.load() == 1);
  {
    std::lock_guard<std::mutex> lock{api_saw->mtx};
    BOOST_TEST(api_saw->protocol == cluster_protocol);
    BOOST_TEST(api_saw->build == "1.0.0 (mine)");
    BOOST_TEST(api_saw->joined_build == "1.0.0 (mine)");
  }
}

BOOST_AUTO_TEST_CASE(a_worker_refused_for_its_protocol_asks_again_never_joins) {
  start(true);
  // Backoff 20-50 ms: several refusals in a short while, each one a new
  // connection attempt, and never a join.
  BOOST_TEST_REQUIRE(
      wait_until([&] { return api_saw->hellos.load() >= 3; }, 10s));
  BOOST_TEST(api_saw->joins.load() == 0);
}

BOOST_AUTO_TEST_CASE(an_api_node_that_does_not_know_hello_is_not_joined) {
  start(false, true);
  BOOST_TEST_REQUIRE(
      wait_until([&] { return api_saw->hellos.load() >= 3; }, 10s));
  BOOST_TEST(api_saw->joins.load() == 0);
}

// The API node went down while the link's join to it was unanswered; the
// link joined its successor on the same port. The first join's timeout,
// when it fires, is about a session that is gone: it must leave the new
// one alone (it cleared it, and the link joined again).
BOOST_AUTO_TEST_CASE(a_late_answer_to_a_lost_join_leaves_the_new_session_be) {
  auto first_saw = std::make_shared<seen>();
  auto first = sys.spawn(api_losing_first_join, first_saw);
  auto port = sys.middleman().publish(first, 0, "127.0.0.1", true);
  BOOST_REQUIRE(port);
  link_config lc;
  lc.host = "127.0.0.1";
  lc.port = *port;
  lc.backoff_min = 20ms;
  lc.backoff_max = 50ms;
  lc.connect_timeout = 2s; // the first join's timeout
  agent = sys.spawn(idle_agent);
  link = sys.spawn(cluster_link, lc, agent,
                   node_info{"w1", "here", 1, "1.0.0 (mine)"});
  BOOST_TEST_REQUIRE(
      wait_until([&] { return first_saw->joins.load() == 1; }, 10s));
  // The API node goes; another takes its port.
  BOOST_REQUIRE(sys.middleman().unpublish(first, *port));
  caf::anon_send_exit(first, caf::exit_reason::kill);
  api = sys.spawn(api_stand_in, api_saw, false);
  auto again = sys.middleman().publish(api, *port, "127.0.0.1", true);
  BOOST_REQUIRE(again);
  BOOST_TEST_REQUIRE(
      wait_until([&] { return api_saw->joins.load() == 1; }, 10s));
  // Past the first join's timeout (2 s from it), and a retry's backoff:
  // still the one join.
  BOOST_TEST(!wait_until([&] { return api_saw->joins.load() > 1; }, 4s));
}

BOOST_AUTO_TEST_SUITE_END()
