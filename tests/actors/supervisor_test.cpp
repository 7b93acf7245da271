// The supervisor with a scoped actor standing in for the status actor: every
// record change it announces is received and checked here.
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <optional>

#include <caf/all.hpp>

#include "actor_fixture.hpp"
#include "actors/agent.hpp"
#include "actors/supervisor.hpp"
#include "common/metrics.hpp"

using namespace resized;
using namespace resized::actors;
using namespace std::chrono_literals;

using resized::test::vips_global;
BOOST_TEST_GLOBAL_FIXTURE(vips_global);

namespace {

// A task a recovery reads from Redis: PENDING, submitted now, `input`.
store::pending_task pending_of(const std::string& input) {
  store::pending_task p;
  p.record.token = make_token();
  p.record.status = task_status::pending;
  p.record.submitted_at_ms = now_ms();
  p.record.input_bytes = input.size();
  p.input = input;
  return p;
}

// The file at `path` ("" if it cannot be read).
std::string read_file_or_empty(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Stands in for the status actor: stores nothing, accepts everything, has
// nothing to recover, and forwards every record change to `sink` in order.
caf::behavior fake_status(caf::event_based_actor* self, caf::actor sink) {
  return {
      [=](accept_atom, task_record& rec, const caf::message&,
          const std::string&) {
        self->send(sink, update_atom::value, rec);
        return std::make_tuple(true, std::string{}); // no twin in an index
      },
      [=](recover_atom) { return std::vector<store::pending_task>{}; },
      [=](update_atom, task_record& rec) {
        self->send(sink, update_atom::value, rec);
      },
      [=](result_atom, task_record& rec, std::string& bytes,
          const std::string&) {
        self->send(sink, result_atom::value, rec, bytes);
      },
  };
}

// Stands in for a status actor slow to store: reports each accept (token,
// content key), forget and record change to `sink`, has nothing to recover,
// and answers an accept "stored" `delay` late, or never (nullopt).
caf::behavior slow_status(caf::event_based_actor* self, caf::actor sink,
                          std::optional<std::chrono::milliseconds> delay) {
  return {
      [=](accept_atom, task_record& rec, const caf::message&,
          const std::string& content) {
        self->send(sink, accept_atom::value, rec.token, content);
        auto promise = self->make_response_promise();
        if (delay) {
          self->delayed_send(self, *delay, twin_atom::value, rec.token);
          self->become(caf::keep_behavior,
                       [=](twin_atom, std::string&) mutable {
                         promise.deliver(true, std::string{});
                         self->unbecome();
                       });
        }
        return promise;
      },
      [=](forget_atom, std::string& token, std::string& content) {
        self->send(sink, forget_atom::value, token, content);
      },
      [=](update_atom, task_record& rec) {
        self->send(sink, update_atom::value, rec);
      },
      [=](recover_atom) { return std::vector<store::pending_task>{}; },
  };
}

// What a status actor standing in for Redis was asked for inputs.
struct input_asks {
  std::mutex mutex;
  std::vector<std::vector<std::string>> asks; // tokens of each ask, in order
};

// The tasks of `pending` whose tokens are asked for, in the asked order.
std::vector<store::pending_task>
asked_for(const std::vector<std::string>& tokens,
          const std::vector<store::pending_task>& pending) {
  std::vector<store::pending_task> out;
  for (const auto& token : tokens)
    for (const auto& p : pending)
      if (p.record.token == token)
        out.push_back(p);
  return out;
}

// Stands in for the status actor over a Redis holding a backlog: recovery
// gets `listed`'s records (no inputs); an ask for inputs (recorded in
// `seen`) fails the first time (Redis away), then returns the asked tasks
// with their inputs, those of them still `pending`, and the others as
// `gone` (their records expired meanwhile), as task_store::load_pending
// does. Record changes are forwarded to `sink`.
caf::behavior backlog_status(caf::event_based_actor* self, caf::actor sink,
                             std::vector<store::pending_task> listed,
                             std::vector<store::pending_task> pending,
                             std::shared_ptr<input_asks> seen) {
  auto asked = std::make_shared<int>(0);
  return {
      [=](recover_atom) {
        auto records = listed;
        for (auto& p : records)
          p.input.reset();
        return records;
      },
      [=](inputs_atom, const std::vector<std::string>& tokens)
          -> caf::result<std::vector<store::pending_task>> {
        {
          std::lock_guard<std::mutex> lock{seen->mutex};
          seen->asks.push_back(tokens);
        }
        if ((*asked)++ == 0)
          return caf::make_error(caf::sec::runtime_error, "redis away");
        auto out = asked_for(tokens, pending);
        for (const auto& token : tokens)
          if (std::none_of(out.begin(), out.end(), [&](const auto& p) {
                return p.record.token == token;
              })) {
            store::pending_task gone;
            gone.record.token = token;
            gone.gone = true;
            out.push_back(std::move(gone));
          }
        return out;
      },
      [=](update_atom, task_record& rec) {
        self->send(sink, update_atom::value, rec);
      },
      [=](result_atom, task_record& rec, std::string& bytes,
          const std::string&) {
        self->send(sink, result_atom::value, rec, bytes);
      },
  };
}

// Stands in for the status actor: holds every accept until the test
// answers it "not stored" (a twin_atom with its token; Redis failed),
// reports each accept's token to `sink`, recovers nothing at start, gives
// the inputs of `backlog` when asked for them, and forwards record changes
// to `sink`.
struct held_accepts {
  std::map<std::string, caf::response_promise> held;
};
caf::behavior held_accept_status(caf::stateful_actor<held_accepts>* self,
                                 caf::actor sink,
                                 std::vector<store::pending_task> backlog) {
  return {
      [=](accept_atom, task_record& rec, const caf::message&,
          const std::string&) {
        auto promise = self->make_response_promise();
        self->state.held.emplace(rec.token, promise);
        self->send(sink, accept_atom::value, rec.token, std::string{});
        return promise;
      },
      [=](twin_atom, const std::string& token) {
        auto i = self->state.held.find(token);
        if (i == self->state.held.end())
          return;
        i->second.deliver(false, std::string{});
        self->state.held.erase(i);
      },
      [=](forget_atom, std::string&, std::string&) {},
      [=](recover_atom) { return std::vector<store::pending_task>{}; },
      [=](inputs_atom, const std::vector<std::string>& tokens) {
        return asked_for(tokens, backlog);
      },
      [=](update_atom, task_record& rec) {
        self->send(sink, update_atom::value, rec);
      },
      [=](result_atom, task_record& rec, std::string& bytes,
          const std::string&) {
        self->send(sink, result_atom::value, rec, bytes);
      },
  };
}

// Stands in for the status actor over a Redis that keeps each accepted
// task's input until the task is final, as the pending set does: accepts
// everything (no twin), copies no result (clone_atom: false), recovers
// nothing at start, and answers an ask for inputs with the asked tasks
// still pending there. The first ask is held until the test sends
// twin_atom (Redis slow); every ask's tokens go to `seen`. Record changes
// are forwarded to `sink`.
struct kept_inputs {
  std::map<std::string, store::pending_task> pending;
  std::optional<std::pair<caf::response_promise, std::vector<std::string>>>
      held;
  bool asked = false;
};
caf::behavior kept_inputs_status(caf::stateful_actor<kept_inputs>* self,
                                 caf::actor sink,
                                 std::shared_ptr<input_asks> seen) {
  auto still_pending = [self](const std::vector<std::string>& tokens) {
    std::vector<store::pending_task> out;
    for (const auto& t : tokens)
      if (auto i = self->state.pending.find(t); i != self->state.pending.end())
        out.push_back(i->second);
    return out;
  };
  return {
      [=](accept_atom, task_record& rec, const caf::message& job,
          const std::string&) {
        store::pending_task p;
        p.record = rec;
        if (job.match_elements<resize_job>())
          p.input = job.get_as<resize_job>(0).input;
        self->state.pending[rec.token] = std::move(p);
        self->send(sink, update_atom::value, rec);
        return std::make_tuple(true, std::string{});
      },
      [=](recover_atom) { return std::vector<store::pending_task>{}; },
      [=](clone_atom, const std::string&, task_record&, const std::string&) {
        return false;
      },
      [=](inputs_atom, const std::vector<std::string>& tokens)
          -> caf::result<std::vector<store::pending_task>> {
        {
          std::lock_guard<std::mutex> lock{seen->mutex};
          seen->asks.push_back(tokens);
        }
        if (!std::exchange(self->state.asked, true)) {
          auto promise = self->make_response_promise();
          self->state.held.emplace(promise, tokens);
          return promise;
        }
        return still_pending(tokens);
      },
      [=](twin_atom) {
        if (auto& h = self->state.held) {
          h->first.deliver(still_pending(h->second));
          h.reset();
        }
      },
      [=](update_atom, task_record& rec) {
        if (is_final(rec.status))
          self->state.pending.erase(rec.token);
        self->send(sink, update_atom::value, rec);
      },
      [=](result_atom, task_record& rec, std::string& bytes,
          const std::string&) {
        self->state.pending.erase(rec.token);
        self->send(sink, result_atom::value, rec, bytes);
      },
  };
}

struct supervisor_fixture : test::actor_system_fixture {
  caf::scoped_actor status{sys};
  // Every record change seen, in order: (token, status), and in full.
  std::vector<std::pair<std::string, task_status>> seen;
  std::vector<task_record> history;
  std::map<std::string, task_record> last;
  std::map<std::string, std::string> images;

  // A supervisor with a local agent of `pool` resize actors (0 = none).
  // A supervisor with a local pool of `pool` recovers `tasks` at start
  // (backlog_status, whose first read of inputs fails); runs them until
  // each is final, then stops.
  void recover_until_final(const supervisor_config& cfg,
                           const std::vector<store::pending_task>& tasks,
                           size_t pool) {
    std::vector<std::string> tokens;
    for (const auto& t : tasks)
      tokens.push_back(t.record.token);
    auto local = sys.spawn(agent, agent_config{pool, cfg.node});
    auto store_actor =
        sys.spawn(backlog_status, caf::actor_cast<caf::actor>(status), tasks,
                  tasks, std::make_shared<input_asks>());
    auto sup = sys.spawn(supervisor, cfg, store_actor, local, pool);
    run_until_final(tokens);
    for (auto* x : {&sup, &local, &store_actor})
      caf::anon_send_exit(*x, caf::exit_reason::user_shutdown);
  }

  caf::actor start(supervisor_config cfg, size_t pool = 2) {
    caf::actor local;
    if (pool > 0)
      local = sys.spawn(agent, agent_config{pool, cfg.node});
    auto fake = sys.spawn(fake_status, caf::actor_cast<caf::actor>(status));
    return sys.spawn(supervisor, cfg, fake, local, pool);
  }

  // Joins `node_agent` as a worker node, as a cluster_link would.
  void join(const caf::actor& sup, const caf::actor& node_agent,
            const std::string& name, uint32_t pool) {
    caf::scoped_actor self{sys};
    bool welcomed = false;
    self->request(sup, 5s, join_atom::value, node_agent,
                  node_info{name, "127.0.0.1", pool, "9.9.9 (" + name + ")"})
        .receive([&](welcome_atom) { welcomed = true; },
                 [&](caf::error& err) { BOOST_FAIL(sys.render(err)); });
    BOOST_REQUIRE(welcomed);
  }

  // Asks `sup` to let `node_agent` join as `info`, as a cluster_link
  // would: whether it was welcomed, else the refusal.
  std::pair<bool, caf::error> ask_join(const caf::actor& sup,
                                       const caf::actor& node_agent,
                                       const node_info& info) {
    caf::scoped_actor self{sys};
    caf::error refusal;
    bool welcomed = false;
    self->request(sup, 5s, join_atom::value, node_agent, info)
        .receive([&](welcome_atom) { welcomed = true; },
                 [&](caf::error& err) { refusal = std::move(err); });
    return {welcomed, std::move(refusal)};
  }

  // Asserts that `answer` (ask_join's) is a refusal with `code`; its
  // context, the reason given to the worker.
  std::string join_refused(const std::pair<bool, caf::error>& answer,
                           cluster_error code) {
    BOOST_TEST(!answer.first);
    std::string why;
    BOOST_TEST(is_error(answer.second, code, why), sys.render(answer.second));
    return why;
  }

  // Says hello to `to` in this build's protocol, as build `build`, as a
  // cluster_link would; the build it answers with.
  std::string hello(const caf::actor& to, const std::string& build) {
    caf::scoped_actor self{sys};
    std::string answered;
    self->request(to, 5s, hello_atom::value, cluster_protocol, build)
        .receive([&](hello_atom, std::string& theirs) { answered = theirs; },
                 [&](caf::error& err) { BOOST_FAIL(sys.render(err)); });
    return answered;
  }

  cluster_view view(const caf::actor& sup) {
    test::answer<outcome<cluster_view>> ans;
    caf::anon_send(sup, cluster_atom::value, ans.make());
    auto res = ans.wait();
    BOOST_REQUIRE(res && res->ok());
    return res->value();
  }

  // SUCCESS records seen per token.
  int successes(const std::string& token) {
    int n = 0;
    for (auto& [t, s] : seen)
      n += t == token && s == task_status::success;
    return n;
  }

  outcome<std::string> submit(const caf::actor& sup, std::string image,
                              imaging::resize_options opts = {},
                              uint64_t decode_bytes = 0,
                              std::string client = "") {
    test::answer<outcome<std::string>> ans;
    // no header (the worker reads it), no content key (unshared)
    submit_request req{opts, std::move(image), imaging::probe_info{}, "test",
                       "",   decode_bytes,     std::move(client)};
    caf::anon_send(sup, submit_atom::value, std::move(req), ans.make());
    auto res = ans.wait();
    BOOST_REQUIRE(res.has_value());
    return *res;
  }

  // Submits `image` with the content key "same" (identical work) for
  // `client`; the token, or the test stops if it was refused.
  std::string submit_same(const caf::actor& sup, const std::string& image,
                          const std::string& client) {
    test::answer<outcome<std::string>> ans;
    submit_request req{{}, image, imaging::probe_info{}, "test", "same",
                       0,  client};
    caf::anon_send(sup, submit_atom::value, std::move(req), ans.make());
    auto res = ans.wait();
    BOOST_REQUIRE(res.has_value());
    BOOST_REQUIRE(res->ok());
    return res->value();
  }

  void record(task_record& rec) {
    seen.emplace_back(rec.token, rec.status);
    history.push_back(rec);
    last[rec.token] = rec;
  }

  /// Receives record changes until every token in `tokens` is final.
  void run_until_final(const std::vector<std::string>& tokens,
                       std::chrono::seconds timeout = 60s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    auto all_final = [&] {
      for (auto& t : tokens)
        if (last.count(t) == 0 || !is_final(last[t].status))
          return false;
      return true;
    };
    while (!all_final()) {
      BOOST_REQUIRE_MESSAGE(std::chrono::steady_clock::now() < deadline,
                            "tasks did not finish in time");
      status->receive([&](update_atom, task_record& rec) { record(rec); },
                      [&](result_atom, task_record& rec, std::string& bytes) {
                        images[rec.token] = bytes;
                        record(rec);
                      },
                      caf::after(std::chrono::milliseconds{200}) >> [] {});
    }
  }
};

} // namespace

BOOST_FIXTURE_TEST_SUITE(supervisor_suite, supervisor_fixture)

BOOST_AUTO_TEST_CASE(a_task_goes_pending_in_progress_success) {
  supervisor_config cfg;
  cfg.node = "n1";
  auto sup = start(cfg);
  auto token = submit(sup, test::corpus_photo(test::small_photo));
  BOOST_REQUIRE(token.ok());
  BOOST_TEST(test::is_uuid(token.value()));
  run_until_final({token.value()});
  std::vector<task_status> states;
  for (auto& [t, s] : seen)
    if (t == token.value())
      states.push_back(s);
  BOOST_REQUIRE_EQUAL(states.size(), 3u);
  BOOST_TEST((states[0] == task_status::pending));
  BOOST_TEST((states[1] == task_status::in_progress));
  BOOST_TEST((states[2] == task_status::success));
  auto& rec = last[token.value()];
  BOOST_TEST(rec.width == 100);
  BOOST_TEST(rec.height == 100);
  BOOST_TEST(rec.node == "n1");
  BOOST_TEST(rec.output_bytes == images[token.value()].size());
  BOOST_TEST(rec.submitted_at_ms <= rec.started_at_ms);
  BOOST_TEST(rec.started_at_ms <= rec.finished_at_ms);
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
}

BOOST_AUTO_TEST_CASE(never_more_than_pool_size_at_once) {
  supervisor_config cfg;
  auto sup = start(cfg, 2);
  std::vector<std::string> tokens;
  for (int i = 0; i < 6; ++i) {
    auto t = submit(sup, test::corpus_photo("plasma__Kite.jpg"));
    BOOST_REQUIRE(t.ok());
    tokens.push_back(t.value());
  }
  run_until_final(tokens);
  int running = 0;
  int peak = 0;
  for (auto& [t, s] : seen) {
    if (s == task_status::in_progress)
      peak = std::max(peak, ++running);
    else if (is_final(s))
      --running;
  }
  BOOST_TEST(peak == 2);
  for (auto& t : tokens)
    BOOST_TEST((last[t].status == task_status::success));
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
}

// The status actor does not answer an accept in time (a backlog in its
// mailbox, a slow Redis): the client is told 503 "not accepted", nothing is
// queued, and the status actor is told to forget the task, after the accept
// (so an accept it stores late is undone: status_actor_test).
BOOST_AUTO_TEST_CASE(an_accept_not_answered_in_time_is_refused_and_forgotten) {
  auto sink = caf::actor_cast<caf::actor>(status);
  // Takes accepts without ever answering them.
  auto slow =
      sys.spawn(slow_status, sink, std::optional<std::chrono::milliseconds>{});
  supervisor_config cfg;
  cfg.store_timeout = 200ms;
  auto local = sys.spawn(agent, agent_config{1, cfg.node});
  auto sup = sys.spawn(supervisor, cfg, slow, local, size_t{1});
  test::answer<outcome<std::string>> ans;
  submit_request req{{}, "img", imaging::probe_info{}, "test", "key-1", 0, ""};
  caf::anon_send(sup, submit_atom::value, std::move(req), ans.make());
  auto res = ans.wait();
  BOOST_REQUIRE(res.has_value());
  BOOST_REQUIRE(!res->ok());
  BOOST_TEST((res->error().code == error_code::store_unavailable));
  std::string accepted, forgotten, forgotten_content;
  status->receive(
      [&](accept_atom, std::string& token, std::string&) { accepted = token; },
      caf::after(5s) >> [] {});
  status->receive(
      [&](forget_atom, std::string& token, std::string& content) {
        forgotten = token;
        forgotten_content = content;
      },
      caf::after(5s) >> [] {});
  BOOST_TEST(!accepted.empty());
  BOOST_TEST(forgotten == accepted);
  BOOST_TEST(forgotten_content == "key-1");
  // Nothing queued: the share and the queue are free again.
  auto v = view(sup);
  BOOST_TEST(v.queue_depth == 0u);
  BOOST_TEST(v.queued_bytes == 0u);
  // A recovery that reads the task from Redis before the undo lands (the
  // status actor stored it late) does not run it either.
  store::pending_task ghost;
  ghost.record.token = accepted;
  ghost.record.status = task_status::pending;
  ghost.record.submitted_at_ms = now_ms();
  ghost.input = test::corpus_photo("opencv__fruits.jpg");
  caf::anon_send(sup, adopt_atom::value, std::string("elsewhere"),
                 std::vector<store::pending_task>{ghost});
  bool ran = false;
  status->receive([&](update_atom,
                      task_record& rec) { ran = ran || rec.token == accepted; },
                  caf::after(1s) >> [] {});
  BOOST_TEST(!ran);
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(slow, caf::exit_reason::kill);
  caf::anon_send_exit(local, caf::exit_reason::user_shutdown);
}

// The accept is stored, but only after the client's answer went out
// without the token (the HTTP deadline's 504): the task is not queued (it
// would run for nobody) and the status actor is told to forget it.
BOOST_AUTO_TEST_CASE(an_accept_stored_after_the_clients_answer_is_forgotten) {
  auto sink = caf::actor_cast<caf::actor>(status);
  // Answers each accept "stored" 300 ms late.
  auto late = sys.spawn(slow_status, sink,
                        std::optional<std::chrono::milliseconds>{300ms});
  supervisor_config cfg;
  auto local = sys.spawn(agent, agent_config{1, cfg.node});
  auto sup = sys.spawn(supervisor, cfg, late, local, size_t{1});
  test::answer<outcome<std::string>> ans;
  auto reply = ans.make();
  submit_request req{{}, "img", imaging::probe_info{}, "test", "key-2", 0, ""};
  caf::anon_send(sup, submit_atom::value, std::move(req), reply);
  reply(failure{error_code::timeout, "the service did not answer in time"});
  std::string forgotten;
  status->receive(
      [&](forget_atom, std::string& token, std::string&) { forgotten = token; },
      caf::after(5s) >> [] {});
  BOOST_TEST(!forgotten.empty());
  // Nothing queued, nothing started.
  auto v = view(sup);
  BOOST_TEST(v.queue_depth == 0u);
  BOOST_TEST(v.queued_bytes == 0u);
  bool changed = false;
  status->receive([&](update_atom, task_record&) { changed = true; },
                  caf::after(500ms) >> [] {});
  BOOST_TEST(!changed);
  auto got = ans.wait(1s);
  BOOST_REQUIRE(got.has_value());
  BOOST_TEST((!got->ok() && got->error().code == error_code::timeout));
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(late, caf::exit_reason::kill);
  caf::anon_send_exit(local, caf::exit_reason::user_shutdown);
}

// A photo whose resize takes a few hundred ms (16.7 MP WebP: no
// shrink-on-load to speak of), so the tasks submitted after it are still
// open when the share is checked.
constexpr const char* slow_photo = "gnome__pixels-l.webp";

BOOST_AUTO_TEST_CASE(each_client_has_its_share_of_the_queue) {
  supervisor_config cfg;
  cfg.client_max_tasks = 2;
  auto sup = start(cfg, 1);
  auto big = test::corpus_photo(slow_photo);
  // Client A: a photo that runs, a corrupt one (its FAILURE frees the share
  // too), then a third refused while both are open.
  auto a1 = submit(sup, big, {}, 0, "ip:192.0.2.1");
  auto a2 = submit(sup, test::corrupt_jpeg(), {}, 0, "ip:192.0.2.1");
  auto a3 = submit(sup, big, {}, 0, "ip:192.0.2.1");
  BOOST_REQUIRE(a1.ok());
  BOOST_REQUIRE(a2.ok());
  BOOST_REQUIRE(!a3.ok());
  BOOST_TEST((a3.error().code == error_code::client_queue_full));
  BOOST_TEST(a3.error().message.find("ip:192.0.2.1 already has 2 tasks open") !=
                 std::string::npos,
             a3.error().message);
  // Client B and submissions counted against nobody still get in.
  auto b1 = submit(sup, big, {}, 0, "key:1");
  auto n1 = submit(sup, big);
  BOOST_REQUIRE(b1.ok());
  BOOST_REQUIRE(n1.ok());
  BOOST_TEST(view(sup).clients == 2u);
  run_until_final({a1.value(), a2.value(), b1.value(), n1.value()});
  BOOST_TEST((last[a2.value()].status == task_status::failure));
  // Every share is free once its tasks are final: A may submit again.
  BOOST_TEST(view(sup).clients == 0u);
  auto a4 = submit(sup, big, {}, 0, "ip:192.0.2.1");
  BOOST_REQUIRE(a4.ok());
  run_until_final({a4.value()});
  BOOST_TEST(view(sup).clients == 0u);
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
}

BOOST_AUTO_TEST_CASE(a_clients_share_of_input_bytes_is_bounded) {
  supervisor_config cfg;
  auto big = test::corpus_photo(slow_photo);
  auto small = test::corpus_photo(test::small_photo);
  cfg.client_max_bytes = big.size() + small.size();
  auto sup = start(cfg, 1);
  // One task is always allowed, however large; the limit counts from there.
  auto huge = big + big;
  auto first = submit(sup, huge, {}, 0, "ip:192.0.2.1");
  BOOST_REQUIRE(first.ok());
  auto second = submit(sup, small, {}, 0, "ip:192.0.2.1");
  BOOST_REQUIRE(!second.ok());
  BOOST_TEST((second.error().code == error_code::client_queue_full));
  BOOST_TEST(second.error().message.find("bytes") != std::string::npos,
             second.error().message);
  run_until_final({first.value()});
  auto third = submit(sup, big, {}, 0, "ip:192.0.2.1");
  auto fourth = submit(sup, small, {}, 0, "ip:192.0.2.1");
  BOOST_REQUIRE(third.ok());
  BOOST_REQUIRE(fourth.ok()); // exactly at the limit
  run_until_final({third.value(), fourth.value()});
  BOOST_TEST(view(sup).clients == 0u);
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
}

// A recovery or adoption that names a task this supervisor has in hand
// already (here: one following an identical task that runs) leaves it
// alone: it is not started a second time.
BOOST_AUTO_TEST_CASE(a_recovery_leaves_the_tasks_in_hand_alone) {
  auto sup = start(supervisor_config{}, 1);
  auto big = test::corpus_photo(slow_photo);
  std::vector<std::string> tokens;
  for (int i = 0; i < 2; ++i)
    tokens.push_back(submit_same(sup, big, ""));
  // The second follows the first, which runs for a while (a 16.7 MP WebP).
  store::pending_task follower;
  follower.record.token = tokens[1];
  follower.record.status = task_status::pending;
  follower.record.submitted_at_ms = now_ms();
  follower.input = big;
  caf::anon_send(sup, adopt_atom::value, std::string("elsewhere"),
                 std::vector<store::pending_task>{follower});
  run_until_final(tokens);
  // A second start would follow at once (the pool is free now).
  for (auto until = std::chrono::steady_clock::now() + 1500ms;
       std::chrono::steady_clock::now() < until;)
    status->receive(
        [&](update_atom, task_record& rec) { record(rec); },
        [&](result_atom, task_record& rec, std::string&) { record(rec); },
        caf::after(100ms) >> [] {});
  BOOST_TEST(successes(tokens[0]) == 1);
  BOOST_TEST(successes(tokens[1]) == 1);
  size_t started = 0;
  for (auto& [token, status] : seen)
    started += token == tokens[1] && status == task_status::in_progress;
  BOOST_TEST(started == 0u); // its result is the first's, copied
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
}

// A task recovered from Redis (at a restart, or adopted from a node with
// no owner: the same path) runs under the policy its record keeps, the
// accepting API node's, not this node's: a JPEG cut short that was
// accepted where limits.truncated=serve ends SUCCESS here, where the
// setting is fail, and a 300 ms task timeout kept with a slow task stops
// it where this node's own would let it run for a minute. A record written
// before policies were kept runs under this node's (the cut JPEG fails),
// which its records then keep.
BOOST_AUTO_TEST_CASE(a_recovered_task_runs_under_the_policy_its_record_keeps) {
  auto cut = test::corpus_photo("opencv__aloeL.jpg").substr(0, 150000);
  auto recovered = [](const std::string& input,
                      std::optional<imaging::limits> policy) {
    auto p = pending_of(input);
    p.record.policy = policy;
    return p;
  };
  imaging::limits serve;
  serve.fail_on_truncated = false;
  serve.max_processing_ms = 60000;
  imaging::limits hurried; // the default limits, with a 300 ms deadline
  hurried.max_processing_ms = 300;
  std::vector<store::pending_task> tasks{
      recovered(cut, serve),
      recovered(test::corpus_photo(slow_photo), hurried),
      recovered(cut, std::nullopt),
  };
  std::vector<std::string> tokens;
  for (const auto& t : tasks)
    tokens.push_back(t.record.token);
  supervisor_config cfg; // limits.truncated=fail, task timeout 60 s
  BOOST_TEST_REQUIRE(cfg.limits.fail_on_truncated);
  recover_until_final(cfg, tasks, 2);

  const auto& served = last[tokens[0]];
  BOOST_TEST((served.status == task_status::success), served.error_message);
  BOOST_TEST(served.width == 100);
  BOOST_TEST_REQUIRE(served.policy.has_value()); // written back as it came
  BOOST_TEST(!served.policy->fail_on_truncated);

  const auto& stopped = last[tokens[1]];
  BOOST_TEST((stopped.status == task_status::failure));
  BOOST_TEST(stopped.error_code == "processing_timeout");
  BOOST_TEST(stopped.error_message.find("300 ms") != std::string::npos,
             stopped.error_message);
  BOOST_TEST(stopped.finished_at_ms - stopped.started_at_ms < 10000);

  const auto& older = last[tokens[2]];
  BOOST_TEST((older.status == task_status::failure));
  BOOST_TEST(older.error_code == "corrupt_image", older.error_message);
  BOOST_TEST_REQUIRE(older.policy.has_value());
  BOOST_TEST(older.policy->fail_on_truncated);
  BOOST_TEST(older.policy->max_processing_ms == cfg.task_timeout.count());
}

// The resize journal: a task placed on this node's own pool is noted
// before it runs and cleared when it ends; at a restart, what an earlier
// process left there counts as attempts the records may not show (Redis
// had not heard of the start yet when it crashed), never twice.
BOOST_AUTO_TEST_CASE(the_journal_counts_starts_redis_never_heard_of) {
  auto path = test::make_temp_dir("journal") + "/resize.journal";
  auto small = test::corpus_photo(test::small_photo);
  auto recovered = [&](uint32_t attempts_in_redis) {
    auto p = pending_of(small);
    p.record.attempts = attempts_in_redis;
    return p;
  };
  // Redis: no attempt, one (it heard of the start), none, and none.
  std::vector<store::pending_task> tasks{recovered(0), recovered(1),
                                         recovered(0), recovered(0)};
  std::vector<std::string> tokens;
  for (const auto& t : tasks)
    tokens.push_back(t.record.token);
  {
    auto crashed = store::attempt_journal::open(path);
    BOOST_TEST_REQUIRE(crashed.ok());
    crashed.value()->started(tokens[0], 1);    // unheard of
    crashed.value()->started(tokens[1], 1);    // heard of
    crashed.value()->started(tokens[2], 2);    // unheard of, at max_attempts
    crashed.value()->started(make_token(), 1); // a task not pending any more
  }
  auto journal = store::attempt_journal::open(path);
  BOOST_TEST_REQUIRE(journal.ok());
  BOOST_TEST(journal.value()->left().size() == 4u);
  supervisor_config cfg;
  cfg.max_attempts = 2;
  cfg.journal = journal.value();
  recover_until_final(cfg, tasks, 1);

  // Each ran as the attempt after the larger count (the final record's
  // attempts count the run that ended it)...
  BOOST_TEST((last[tokens[0]].status == task_status::success));
  BOOST_TEST(last[tokens[0]].attempts == 2u);
  BOOST_TEST((last[tokens[1]].status == task_status::success));
  BOOST_TEST(last[tokens[1]].attempts == 2u); // not counted twice
  BOOST_TEST((last[tokens[3]].status == task_status::success));
  BOOST_TEST(last[tokens[3]].attempts == 1u);
  // ... and the one the journal shows lost max_attempts times ends.
  BOOST_TEST((last[tokens[2]].status == task_status::failure));
  BOOST_TEST(last[tokens[2]].error_code == "worker_lost");
  BOOST_TEST(last[tokens[2]].error_message.find("lost the worker 2 times") !=
                 std::string::npos,
             last[tokens[2]].error_message);
  // Counted, the entries left went; the tasks run here came and went.
  BOOST_TEST(read_file_or_empty(path).find_first_not_of(" \n") ==
             std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_task_on_the_own_pool_is_in_the_journal_while_it_runs) {
  auto path = test::make_temp_dir("journal") + "/resize.journal";
  auto journal = store::attempt_journal::open(path);
  BOOST_TEST_REQUIRE(journal.ok());
  supervisor_config cfg;
  cfg.journal = journal.value();
  auto sup = start(cfg, 1);
  auto slow = submit(sup, test::corpus_photo(slow_photo));
  BOOST_TEST_REQUIRE(slow.ok());
  BOOST_TEST(test::wait_until(
      [&] {
        return read_file_or_empty(path).find("1 " + slow.value()) !=
               std::string::npos;
      },
      10s));
  run_until_final({slow.value()});
  BOOST_TEST((last[slow.value()].status == task_status::success));
  BOOST_TEST(read_file_or_empty(path).find(slow.value()) == std::string::npos);
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
}

// A recovery works from a snapshot of the pending set, which may list a
// task that ended here since it was read. That task is not opened again:
// an identical submission made meanwhile would follow it, and then nothing
// would answer it once the task's input turned out to be gone.
BOOST_AUTO_TEST_CASE(a_recovery_does_not_reopen_a_task_ended_since_its_read) {
  auto photo = test::corpus_photo(test::small_photo);
  auto asks = std::make_shared<input_asks>();
  auto store_actor =
      sys.spawn(kept_inputs_status, caf::actor_cast<caf::actor>(status), asks);
  supervisor_config cfg;
  auto local = sys.spawn(agent, agent_config{1, cfg.node});
  auto sup = sys.spawn(supervisor, cfg, store_actor, local, size_t{1});
  auto first = submit_same(sup, photo, "ip:192.0.2.1");
  run_until_final({first});
  BOOST_TEST((last[first].status == task_status::success));
  // The snapshot read before it ended, as an adoption or a recovery
  // retried after a timeout delivers it.
  store::pending_task stale;
  stale.record = last[first];
  stale.record.status = task_status::in_progress;
  caf::anon_send(sup, adopt_atom::value, std::string{},
                 std::vector<store::pending_task>{stale});
  auto second = submit_same(sup, photo, "ip:192.0.2.1");
  caf::anon_send(store_actor, twin_atom::value); // Redis answers now
  run_until_final({second}, 20s);
  BOOST_TEST((last[second].status == task_status::success));
  {
    std::lock_guard<std::mutex> lock{asks->mutex};
    for (const auto& ask : asks->asks)
      for (const auto& token : ask)
        BOOST_TEST(token != first); // never opened again
  }
  auto v = view(sup);
  BOOST_TEST(v.clients == 0u);
  BOOST_TEST(v.queue_depth == 0u);
  for (auto* x : {&sup, &local, &store_actor})
    caf::anon_send_exit(*x, caf::exit_reason::user_shutdown);
}

BOOST_AUTO_TEST_CASE(identical_tasks_free_their_clients_share_once_final) {
  supervisor_config cfg;
  cfg.client_max_tasks = 3;
  auto sup = start(cfg, 1);
  auto big = test::corpus_photo(slow_photo);
  // Three submissions of the same work by one client: the first runs, the
  // others follow it (one resize); each holds a place in the share until
  // the result is theirs.
  std::vector<std::string> tokens;
  for (int i = 0; i < 3; ++i)
    tokens.push_back(submit_same(sup, big, "ip:192.0.2.1"));
  BOOST_TEST(view(sup).clients == 1u);
  run_until_final(tokens);
  for (auto& t : tokens)
    BOOST_TEST((last[t].status == task_status::success));
  BOOST_TEST(view(sup).clients == 0u);
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
}

// The queue is fair between clients: a client with one task waits behind
// one task of a busy client, not behind everything it queued; each
// client's own tasks keep their order.
BOOST_AUTO_TEST_CASE(the_queue_takes_clients_in_turn) {
  supervisor_config cfg;
  auto sup = start(cfg, 1);
  auto photo = test::corpus_photo(test::small_photo);
  auto slow = test::corpus_photo(slow_photo);
  // A's first task keeps the only worker busy while the rest queue up.
  std::vector<std::string> a;
  a.push_back(submit(sup, slow, {}, 0, "ip:192.0.2.1").value());
  for (int i = 0; i < 3; ++i)
    a.push_back(submit(sup, photo, {}, 0, "ip:192.0.2.1").value());
  auto b1 = submit(sup, photo, {}, 0, "ip:192.0.2.2").value();
  auto c1 = submit(sup, photo, {}, 0, "key:1").value();
  auto b2 = submit(sup, photo, {}, 0, "ip:192.0.2.2").value();
  std::vector<std::string> all = a;
  all.insert(all.end(), {b1, c1, b2});
  run_until_final(all);
  std::vector<std::string> started;
  for (auto& [t, s] : seen)
    if (s == task_status::in_progress)
      started.push_back(t);
  // Rounds: a[0] runs; a[1] b1 c1 (round 2 of the clients waiting), a[2]
  // b2, a[3].
  std::vector<std::string> expected{a[0], a[1], b1, c1, a[2], b2, a[3]};
  BOOST_TEST(started == expected, boost::test_tools::per_element());
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
}

BOOST_AUTO_TEST_CASE(a_bad_image_ends_failure_and_the_pool_goes_on) {
  supervisor_config cfg;
  auto sup = start(cfg, 1);
  auto bad = submit(sup, test::corrupt_jpeg());
  auto good = submit(sup, test::corpus_photo(test::small_photo));
  BOOST_REQUIRE(bad.ok());
  BOOST_REQUIRE(good.ok());
  run_until_final({bad.value(), good.value()});
  BOOST_TEST((last[bad.value()].status == task_status::failure));
  BOOST_TEST(last[bad.value()].error_code == "corrupt_image");
  BOOST_TEST((last[good.value()].status == task_status::success));
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
}

BOOST_AUTO_TEST_CASE(a_task_past_its_deadline_is_stopped_inside_libvips) {
  supervisor_config cfg;
  // The deadline every job carries, enforced by the worker inside libvips.
  cfg.task_timeout = 1ms;
  auto sup = start(cfg, 1);
  auto t = submit(sup, test::corpus_photo("ukui__rhythm.jpg"));
  BOOST_REQUIRE(t.ok());
  run_until_final({t.value()});
  BOOST_TEST((last[t.value()].status == task_status::failure));
  BOOST_TEST(last[t.value()].error_code == "processing_timeout");
  // The worker was not abandoned: the same pool runs the next task.
  auto next = submit(sup, test::corpus_photo(test::small_photo), [] {
    imaging::resize_options o;
    o.width = 64; // other work than the first task
    return o;
  }());
  BOOST_REQUIRE(next.ok());
  run_until_final({next.value()});
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
}

BOOST_AUTO_TEST_CASE(tasks_spread_over_joined_nodes) {
  supervisor_config cfg;
  auto sup = start(cfg, 0); // an api node without a local pool
  auto a = sys.spawn(agent, agent_config{1, "w1"});
  auto b = sys.spawn(agent, agent_config{1, "w2"});
  join(sup, a, "w1", 1);
  join(sup, b, "w2", 1);
  std::vector<std::string> tokens;
  for (int i = 0; i < 8; ++i)
    tokens.push_back(
        submit(sup, test::corpus_photo("plasma__Kite.jpg")).value());
  run_until_final(tokens);
  for (auto& t : tokens) {
    BOOST_TEST((last[t].status == task_status::success));
    BOOST_TEST((last[t].node == "w1" || last[t].node == "w2"));
  }
  auto v = view(sup);
  BOOST_REQUIRE_EQUAL(v.nodes.size(), 2u);
  for (auto& n : v.nodes) {
    BOOST_TEST(n.role == "worker");
    BOOST_TEST(n.build == "9.9.9 (" + n.id + ")"); // as each one joined
    BOOST_TEST(n.workers == 1u);
    BOOST_TEST(n.done > 0u); // both nodes did some
    BOOST_TEST(n.busy == 0u);
  }
  BOOST_TEST(v.succeeded == 8u);
  for (auto* x : {&sup, &a, &b})
    caf::anon_send_exit(*x, caf::exit_reason::user_shutdown);
}

namespace {

// A node that takes jobs and never answers: a machine that hangs or dies
// with work in flight.
// What the real agent does when it takes a job, before it answers: tells
// the asker (started_atom), whose record of the task says IN_PROGRESS then.
template <class Self>
void say_started(Self* self, const resize_job& job) {
  if (auto asker = caf::actor_cast<caf::actor>(self->current_sender()))
    self->send(asker, started_atom::value, job.token);
}

caf::behavior black_hole(caf::event_based_actor* self) {
  return {
      [=](const resize_job& job) {
        say_started(self, job);
        return self->make_response_promise(); // never delivered
      },
  };
}

} // namespace

BOOST_AUTO_TEST_CASE(a_node_that_never_answers_hits_the_backstop) {
  supervisor_config cfg;
  cfg.task_timeout = std::chrono::milliseconds{100};
  auto sup = start(cfg, 0);
  auto hole = sys.spawn(black_hole);
  join(sup, hole, "silent", 1);
  auto t = submit(sup, test::corpus_photo(test::small_photo)).value();
  run_until_final({t});
  BOOST_TEST((last[t].status == task_status::failure));
  BOOST_TEST(last[t].error_code == "processing_timeout");
  for (auto* x : {&sup, &hole})
    caf::anon_send_exit(*x, caf::exit_reason::user_shutdown);
}

namespace {

// Stands in for a worker node's agent: shows `sink` every job it is sent,
// then lets `real` run it.
caf::behavior job_spy(caf::event_based_actor* self, caf::actor sink,
                      caf::actor real) {
  return {
      [=](const resize_job& job) {
        self->send(sink, job);
        return self->delegate(real, job);
      },
  };
}

} // namespace

// The API node that accepted a task decides its policy: every job it sends
// carries its limits, and its task timeout as the deadline in libvips (the
// one its backstop follows), whatever the node that runs it is configured
// with.
BOOST_AUTO_TEST_CASE(every_job_carries_the_api_nodes_policy) {
  supervisor_config cfg;
  cfg.task_timeout = 7000ms;
  cfg.limits.max_pixels = 1234567;
  cfg.limits.max_dimension = 2345;
  cfg.limits.fail_on_truncated = false;
  cfg.limits.max_processing_ms = 99; // task_timeout is the one deadline
  auto sup = start(cfg, 0);
  caf::scoped_actor sink{sys};
  auto node = sys.spawn(agent, agent_config{1, "w"});
  auto spy = sys.spawn(job_spy, caf::actor_cast<caf::actor>(sink), node);
  join(sup, spy, "w", 1);
  auto t = submit(sup, test::corpus_photo(test::small_photo));
  BOOST_REQUIRE(t.ok());
  bool seen = false;
  sink->receive(
      [&](const resize_job& job) {
        seen = true;
        BOOST_TEST(job.token == t.value());
        BOOST_TEST(job.policy.max_pixels == 1234567u);
        BOOST_TEST(job.policy.max_dimension == 2345);
        BOOST_TEST(!job.policy.fail_on_truncated);
        BOOST_TEST(job.policy.max_processing_ms == 7000);
      },
      caf::after(10s) >> [] {});
  BOOST_REQUIRE(seen);
  run_until_final({t.value()});
  BOOST_TEST((last[t.value()].status == task_status::success));
  for (auto* x : {&sup, &spy, &node})
    caf::anon_send_exit(*x, caf::exit_reason::user_shutdown);
}

// A joined node stops a task at the API node's deadline, inside libvips:
// the answer comes from the node, well before the backstop (deadline + 2 s).
BOOST_AUTO_TEST_CASE(a_joined_node_stops_at_the_api_nodes_deadline) {
  supervisor_config cfg;
  cfg.task_timeout = 300ms;
  auto sup = start(cfg, 0);
  auto node = sys.spawn(agent, agent_config{1, "w"});
  join(sup, node, "w", 1);
  // A 3840x2160 PNG re-encoded as a 3800-wide PNG: seconds of work.
  imaging::resize_options slow;
  slow.width = 3800;
  slow.height = 0;
  slow.mode = imaging::fit_mode::fit;
  slow.format = imaging::output_format::png;
  auto t =
      submit(sup, test::corpus_photo("plasma__Canopee_3840x2160.png"), slow);
  BOOST_REQUIRE(t.ok());
  run_until_final({t.value()});
  const auto& rec = last[t.value()];
  BOOST_TEST((rec.status == task_status::failure));
  BOOST_TEST(rec.error_code == "processing_timeout");
  BOOST_TEST(rec.node == "w");
  BOOST_TEST(rec.finished_at_ms - rec.started_at_ms < 2000,
             "took " << rec.finished_at_ms - rec.started_at_ms
                     << " ms: " << rec.error_message);
  for (auto* x : {&sup, &node})
    caf::anon_send_exit(*x, caf::exit_reason::user_shutdown);
}

BOOST_AUTO_TEST_CASE(a_lost_nodes_tasks_run_elsewhere_exactly_once) {
  supervisor_config cfg;
  auto sup = start(cfg, 1);
  auto hole = sys.spawn(black_hole);
  join(sup, hole, "doomed", 4);
  std::vector<std::string> tokens;
  for (int i = 0; i < 5; ++i)
    tokens.push_back(
        submit(sup, test::corpus_photo(test::small_photo)).value());
  // Wait until the doomed node holds work, then kill it.
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (view(sup).nodes.size() == 2 && [&] {
    for (auto& n : view(sup).nodes)
      if (n.id == "doomed")
        return n.busy == 0;
    return false;
  }())
    BOOST_REQUIRE(std::chrono::steady_clock::now() < deadline);
  caf::anon_send_exit(hole, caf::exit_reason::kill);
  run_until_final(tokens);
  for (auto& t : tokens) {
    BOOST_TEST((last[t].status == task_status::success));
    BOOST_TEST(successes(t) == 1);
  }
  auto v = view(sup);
  BOOST_TEST(v.nodes.size() == 1u); // the lost node is gone
  BOOST_TEST(v.retried > 0u);
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
}

BOOST_AUTO_TEST_CASE(
    a_node_shared_by_two_api_nodes_never_takes_more_than_its_pool) {
  // Two supervisors (two API nodes) offered the same one-slot worker: the
  // second one's task is turned away (node_busy) and placed again once the
  // slot is free; both end SUCCESS.
  supervisor_config cfg;
  auto a = start(cfg, 0);
  auto b = start(cfg, 0);
  auto shared = sys.spawn(agent, agent_config{1, "shared"});
  join(a, shared, "shared", 1);
  join(b, shared, "shared", 1);
  auto big = test::corpus_photo("ukui__rhythm.jpg");
  auto ta = submit(a, big).value();
  auto tb =
      submit(b, big,
             [] {
               imaging::resize_options o;
               o.width =
                   90; // other work: no sharing of results between the two
               return o;
             }())
          .value();
  run_until_final({ta, tb});
  BOOST_TEST((last[ta].status == task_status::success));
  BOOST_TEST((last[tb].status == task_status::success));
  BOOST_TEST(successes(ta) == 1);
  BOOST_TEST(successes(tb) == 1);
  for (auto* x : {&a, &b, &shared})
    caf::anon_send_exit(*x, caf::exit_reason::user_shutdown);
}

namespace {

// A node whose only slot is held (by a resize given up on, or by another
// API node) for `held_for` after the first job it sees: it turns jobs away
// as node_busy until then and counts them in `turned_away`, then resizes
// nothing and answers success.
struct held_slot {
  std::optional<std::chrono::steady_clock::time_point> free_at;
  int turned_away = 0;
};

caf::behavior held_slot_agent(caf::stateful_actor<held_slot>* self,
                              std::chrono::milliseconds held_for) {
  return {
      [=](const resize_job& job) {
        auto& st = self->state;
        auto now = std::chrono::steady_clock::now();
        if (!st.free_at)
          st.free_at = now + held_for;
        resize_done done;
        done.token = job.token;
        done.node = "held-slot";
        if (now < *st.free_at) {
          ++st.turned_away;
          done.error_code = node_busy;
          done.error_message = "all resize workers of this node are busy";
          return done;
        }
        say_started(self, job);
        done.ok = true;
        done.output = "out";
        done.width = done.height = 1;
        done.etag = "e";
        return done;
      },
      [=](caf::get_atom) { return self->state.turned_away; },
  };
}

} // namespace

// A task turned away as node_busy is queued again: its record stays PENDING
// (it never said IN_PROGRESS on a node that does not run it), and a node that
// keeps turning tasks away is tried less and less often, not every 50 ms.
BOOST_AUTO_TEST_CASE(a_task_turned_away_is_pending_again_and_retried_slower) {
  supervisor_config cfg;
  auto sup = start(cfg, 0);
  auto node = sys.spawn(held_slot_agent, 1500ms);
  join(sup, node, "held-slot", 1);
  auto token = submit(sup, "a").value();
  run_until_final({token});
  BOOST_TEST((last[token].status == task_status::success));
  BOOST_TEST(last[token].attempts == 1u); // turn-aways are not attempts
  // 50, 100, 200, 400, 800 ms pauses fit in 1.5 s: at most six turn-aways
  // (a pause of 50 ms each would be about thirty).
  int turned_away = 0;
  caf::scoped_actor self{sys};
  self->request(node, 5s, caf::get_atom::value)
      .receive([&](int n) { turned_away = n; },
               [&](caf::error& err) { BOOST_FAIL(sys.render(err)); });
  BOOST_TEST(turned_away >= 1);
  BOOST_TEST(turned_away <= 6);
  // A job turned away was never started: the record says PENDING until
  // the node takes the job, never IN_PROGRESS and PENDING again.
  std::vector<task_status> changes;
  for (auto& [t, s] : seen)
    if (t == token)
      changes.push_back(s);
  BOOST_TEST((changes == std::vector<task_status>{task_status::pending,
                                                  task_status::in_progress,
                                                  task_status::success}));
  // Nor are they attempts in Redis, where a restart counts the attempts of
  // an open record as lost (with max-attempts 1, one turn-away would fail
  // the task as worker_lost there).
  for (const auto& rec : history)
    if (rec.token == token && rec.status == task_status::pending)
      BOOST_TEST(rec.attempts == 0u);
  for (auto* x : {&sup, &node})
    caf::anon_send_exit(*x, caf::exit_reason::user_shutdown);
}

BOOST_AUTO_TEST_CASE(a_task_losing_max_attempts_nodes_ends_worker_lost) {
  supervisor_config cfg;
  cfg.max_attempts = 2;
  auto sup = start(cfg, 0);
  std::string token;
  for (int i = 0; i < 2; ++i) {
    auto hole = sys.spawn(black_hole);
    join(sup, hole, "doomed-" + std::to_string(i), 1);
    if (i == 0) // with a worker there: no node at all is a 503 no_workers
      token = submit(sup, test::corpus_photo(test::small_photo)).value();
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (view(sup).nodes.empty() || view(sup).nodes.front().busy == 0)
      BOOST_REQUIRE(std::chrono::steady_clock::now() < deadline);
    caf::anon_send_exit(hole, caf::exit_reason::kill);
    deadline = std::chrono::steady_clock::now() + 10s;
    while (!view(sup).nodes.empty())
      BOOST_REQUIRE(std::chrono::steady_clock::now() < deadline);
  }
  run_until_final({token});
  BOOST_TEST((last[token].status == task_status::failure));
  BOOST_TEST(last[token].error_code == "worker_lost");
  // A task shown running on a node that is lost is shown waiting again
  // before it runs on the next one.
  std::vector<task_status> changes;
  for (auto& [t, s] : seen)
    if (t == token)
      changes.push_back(s);
  for (size_t i = 0; i + 1 < changes.size(); ++i)
    BOOST_TEST(!(changes[i] == task_status::in_progress &&
                 changes[i + 1] == task_status::in_progress),
               "change " << i);
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
}

namespace {

// A node that holds every job until the test releases it (a message with
// the token), and tells `observer` each token it receives, in order.
struct held_jobs {
  std::map<std::string, caf::response_promise> held;
};

caf::behavior holding_agent(caf::stateful_actor<held_jobs>* self,
                            caf::actor observer) {
  return {
      [=](const resize_job& job) {
        say_started(self, job);
        auto promise = self->make_response_promise();
        // The latest dispatch of a token is the one answered.
        self->state.held.insert_or_assign(job.token, promise);
        self->send(observer, job.token);
        return promise;
      },
      [=](const std::string& token) {
        auto i = self->state.held.find(token);
        if (i == self->state.held.end())
          return;
        resize_done done;
        done.token = token;
        done.ok = true;
        done.output = "out";
        done.width = done.height = 1;
        done.etag = "e";
        done.node = "held";
        i->second.deliver(done);
        self->state.held.erase(i);
      },
  };
}

// A holding_agent and the scoped actor it reports to.
struct held_node {
  explicit held_node(caf::actor_system& sys)
      : dispatched{sys},
        actor{sys.spawn(holding_agent,
                        caf::actor_cast<caf::actor>(dispatched))} {}
  // The next token it received, or "" if none comes within `within`.
  std::string next(std::chrono::milliseconds within) {
    std::string token;
    dispatched->receive([&](std::string& t) { token = t; },
                        caf::after(within) >> [] {});
    return token;
  }
  caf::scoped_actor dispatched;
  caf::actor actor;
};

} // namespace

// The only worker holds the first task: the second waits in the queue of
// one, the third finds it full. (With a real resize of a photo the first
// could finish before the third came, under load: it failed so once.)
BOOST_AUTO_TEST_CASE(a_full_queue_answers_queue_full) {
  supervisor_config cfg;
  cfg.queue_capacity = 1;
  auto sup = start(cfg, 0);
  held_node held{sys};
  auto& node = held.actor;
  join(sup, node, "held", 1);
  auto first = submit(sup, "a");
  BOOST_REQUIRE(first.ok());
  BOOST_TEST(held.next(10s) == first.value());
  auto second = submit(sup, "b");
  BOOST_REQUIRE(second.ok());
  auto third = submit(sup, "c");
  BOOST_REQUIRE(!third.ok());
  BOOST_TEST((third.error().code == error_code::queue_full));
  BOOST_TEST(third.error().message == "queue is full (1 tasks waiting)");
  caf::anon_send(node, first.value());
  BOOST_TEST(held.next(10s) == second.value());
  caf::anon_send(node, second.value());
  run_until_final({first.value(), second.value()});
  // Room again.
  auto fourth = submit(sup, "d");
  BOOST_TEST(fourth.ok());
  BOOST_TEST(held.next(10s) == fourth.value());
  caf::anon_send(node, fourth.value());
  run_until_final({fourth.value()});
  for (auto* x : {&sup, &node})
    caf::anon_send_exit(*x, caf::exit_reason::user_shutdown);
}

// Likewise for the bytes waiting: room for one input of 1000 bytes.
BOOST_AUTO_TEST_CASE(queue_bytes_are_bounded_too) {
  supervisor_config cfg;
  cfg.queue_capacity = 100;
  cfg.queue_max_bytes = 1500;
  auto sup = start(cfg, 0);
  held_node held{sys};
  auto& node = held.actor;
  join(sup, node, "held", 1);
  const std::string input(1000, 'x');
  auto first = submit(sup, input); // runs at once
  BOOST_REQUIRE(first.ok());
  BOOST_TEST(held.next(10s) == first.value());
  auto second = submit(sup, input); // waits
  BOOST_REQUIRE(second.ok());
  auto third = submit(sup, input); // over the byte limit
  BOOST_REQUIRE(!third.ok());
  BOOST_TEST((third.error().code == error_code::queue_full));
  BOOST_TEST(third.error().message ==
             "queue is full (1000 bytes waiting, limit 1500)");
  // Smaller inputs still fit beside the waiting one.
  auto small = submit(sup, std::string(500, 'y'));
  BOOST_TEST(small.ok());
  caf::anon_send(node, first.value());
  BOOST_TEST(held.next(10s) == second.value());
  caf::anon_send(node, second.value());
  BOOST_TEST(held.next(10s) == small.value());
  caf::anon_send(node, small.value());
  run_until_final({first.value(), second.value(), small.value()});
  for (auto* x : {&sup, &node})
    caf::anon_send_exit(*x, caf::exit_reason::user_shutdown);
}

// Memory budget (resize.decode-bytes-per-worker): a node of pool 2 with
// 100 bytes per worker holds decodes of at most 200 bytes at once. A second
// large task waits while the first runs; a small one behind it passes; the
// large one starts when the first ends; a task larger than the whole budget
// runs alone.
BOOST_AUTO_TEST_CASE(large_decodes_wait_for_memory_and_small_ones_pass) {
  supervisor_config cfg;
  cfg.decode_bytes_per_worker = 100;
  auto sup = start(cfg, 0);
  held_node held{sys};
  auto& node = held.actor;
  join(sup, node, "held", 2);
  auto big1 = submit(sup, "a", {}, 150).value();
  BOOST_TEST(held.next(10s) == big1);
  auto big2 = submit(sup, "b", {}, 150).value();
  auto small = submit(sup, "c", {}, 10).value();
  BOOST_TEST(held.next(10s) == small);
  // big2 stays queued while big1 runs (a bounded wait for nothing), and
  // the wait is counted.
  BOOST_TEST(held.next(300ms).empty());
  BOOST_TEST(metrics::global().text().find(
                 "resized_decode_budget_waits_total 0\n") == std::string::npos);
  caf::anon_send(node, big1);
  BOOST_TEST(held.next(10s) == big2);
  caf::anon_send(node, small);
  caf::anon_send(node, big2);
  run_until_final({big1, big2, small});
  auto huge = submit(sup, "d", {}, 1000).value();
  BOOST_TEST(held.next(10s) == huge);
  caf::anon_send(node, huge);
  run_until_final({huge});
  BOOST_TEST((last[huge].status == task_status::success));
  for (auto* x : {&sup, &node})
    caf::anon_send_exit(*x, caf::exit_reason::user_shutdown);
}

// A worker node shutting down gracefully (its link sends leave_atom): it
// gets nothing new, even in a free slot; the task it runs finishes there
// and counts; when it then goes, nothing is re-queued.
BOOST_AUTO_TEST_CASE(a_leaving_node_finishes_its_task_and_gets_no_new_ones) {
  supervisor_config cfg;
  auto sup = start(cfg, 0);
  held_node held{sys};
  auto& leaver = held.actor;
  join(sup, leaver, "leaver", 2);
  auto first = submit(sup, "a").value();
  BOOST_TEST(held.next(10s) == first);
  caf::scoped_actor self{sys};
  uint64_t in_flight = 99;
  self->request(sup, 5s, leave_atom::value, leaver)
      .receive([&](uint64_t n) { in_flight = n; },
               [&](caf::error& err) { BOOST_FAIL(sys.render(err)); });
  BOOST_TEST(in_flight == 1u); // this API node's task on it
  // New work is not offered its free slot: with no other node there is no
  // worker that takes tasks (503 no_workers) ...
  auto refused = submit(sup, test::corpus_photo(test::small_photo));
  BOOST_TEST_REQUIRE(!refused.ok());
  BOOST_TEST((refused.error().code == error_code::no_workers));
  BOOST_TEST(held.next(300ms).empty());
  // ... and once another node joins, new work goes there.
  auto other = sys.spawn(agent, agent_config{1, "other"});
  join(sup, other, "other", 1);
  auto second = submit(sup, test::corpus_photo(test::small_photo)).value();
  run_until_final({second});
  BOOST_TEST((last[second].status == task_status::success));
  BOOST_TEST(last[second].node == "other");
  // The leaving node's task ends there, once.
  caf::anon_send(leaver, first);
  run_until_final({first});
  BOOST_TEST((last[first].status == task_status::success));
  BOOST_TEST(last[first].node == "held");
  BOOST_TEST(successes(first) == 1);
  // Then it goes: gone from the view, nothing re-queued or lost.
  caf::anon_send_exit(leaver, caf::exit_reason::user_shutdown);
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (view(sup).nodes.size() != 1u)
    BOOST_REQUIRE(std::chrono::steady_clock::now() < deadline);
  auto v = view(sup);
  BOOST_TEST(v.nodes.front().id == "other");
  BOOST_TEST(v.retried == 0u);
  BOOST_TEST(v.failed == 0u);
  BOOST_TEST(v.succeeded == 2u);
  BOOST_TEST(held.next(0ms).empty()); // nothing else was placed on it
  for (auto* x : {&sup, &other})
    caf::anon_send_exit(*x, caf::exit_reason::user_shutdown);
}

// A shutdown past its grace (abandon_atom from main, which then exits
// without waiting): the supervisor names the tasks still running and gives
// them up. An answer that comes after is not recorded (the record stays
// IN_PROGRESS in Redis, for the next start), the queued task does not
// start, new work is refused.
BOOST_AUTO_TEST_CASE(abandoned_tasks_are_named_and_their_answers_dropped) {
  supervisor_config cfg;
  auto sup = start(cfg, 0);
  held_node held{sys};
  auto& node = held.actor;
  join(sup, node, "holder", 1);
  auto running = submit(sup, "a").value();
  auto queued = submit(sup, "b").value();
  BOOST_TEST(held.next(10s) == running);
  caf::scoped_actor self{sys};
  std::vector<std::string> tokens;
  self->request(sup, 5s, abandon_atom::value, false)
      .receive([&](std::vector<std::string>& t) { tokens = std::move(t); },
               [&](caf::error& err) { BOOST_FAIL(sys.render(err)); });
  BOOST_TEST(tokens == std::vector<std::string>{running});
  auto refused = submit(sup, "c");
  BOOST_TEST_REQUIRE(!refused.ok());
  BOOST_TEST((refused.error().code == error_code::shutting_down));
  caf::anon_send(node, running); // its result comes: too late
  BOOST_TEST(held.next(300ms).empty());
  bool quiet = false;
  while (!quiet)
    status->receive(
        [&](update_atom, task_record& rec) { record(rec); },
        [&](result_atom, task_record& rec, std::string&) { record(rec); },
        caf::after(std::chrono::milliseconds{300}) >> [&] { quiet = true; });
  BOOST_TEST((last[running].status == task_status::in_progress));
  BOOST_TEST(successes(running) == 0);
  BOOST_TEST((last[queued].status == task_status::pending));
  BOOST_TEST(view(sup).nodes.front().busy == 1u); // given up, not finished
  for (auto* x : {&sup, &node})
    caf::anon_send_exit(*x, caf::exit_reason::user_shutdown);
}

// The agent of a worker node shutting down (drain_atom from main): the job
// it runs finishes and answers; a new one is turned away as node_busy (the
// API node places it elsewhere without counting an attempt).
BOOST_AUTO_TEST_CASE(
    a_draining_agent_finishes_its_job_and_turns_new_ones_away) {
  auto node = sys.spawn(agent, agent_config{2, "w"});
  caf::scoped_actor self{sys};
  auto photo = test::corpus_photo(test::small_photo);
  auto running = self->request(node, 30s, resize_job{"t1", {}, photo, {}, {}});
  // Queued behind the job: the agent has handed it to a worker by then.
  size_t in_flight = 99;
  self->request(node, 5s, drain_atom::value)
      .receive([&](size_t n) { in_flight = n; },
               [&](caf::error& err) { BOOST_FAIL(sys.render(err)); });
  BOOST_TEST(in_flight == 1u);
  resize_done refused;
  self->request(node, 5s, resize_job{"t2", {}, photo, {}, {}})
      .receive([&](resize_done& d) { refused = std::move(d); },
               [&](caf::error& err) { BOOST_FAIL(sys.render(err)); });
  BOOST_TEST(refused.token == "t2");
  BOOST_TEST(!refused.ok);
  BOOST_TEST(refused.error_code == node_busy);
  resize_done first;
  running.receive([&](resize_done& d) { first = std::move(d); },
                  [&](caf::error& err) { BOOST_FAIL(sys.render(err)); });
  BOOST_TEST(first.token == "t1");
  BOOST_TEST(first.ok);
  self->request(node, 5s, drain_atom::value)
      .receive([&](size_t n) { in_flight = n; },
               [&](caf::error& err) { BOOST_FAIL(sys.render(err)); });
  BOOST_TEST(in_flight == 0u);
  caf::anon_send_exit(node, caf::exit_reason::user_shutdown);
}

// A worker whose heartbeats are as far apart as the API node's connection
// timeout, or further, would be cut off between two of them again and
// again: refused at join with cluster_error::heartbeat_too_slow naming both
// values; one whose heartbeats come closer joins, and so does one that
// does not say (0).
BOOST_AUTO_TEST_CASE(a_worker_whose_heartbeats_are_too_far_apart_is_refused) {
  supervisor_config cfg;
  cfg.connection_timeout = std::chrono::milliseconds{2000};
  auto sup = start(cfg, 0);
  auto try_join = [&](const std::string& name, uint32_t heartbeat_ms) {
    return ask_join(sup, sys.spawn(agent, agent_config{1, name}),
                    node_info{name, "elsewhere", 1, "9.9.9 (x)", heartbeat_ms});
  };
  for (uint32_t slow : {2000u, 5000u}) {
    auto why =
        join_refused(try_join("slow", slow), cluster_error::heartbeat_too_slow);
    BOOST_TEST(why.find("a heartbeat every " + std::to_string(slow) + " ms") !=
                   std::string::npos,
               why);
    BOOST_TEST(why.find("silent for 2000 ms") != std::string::npos, why);
  }
  BOOST_TEST(view(sup).nodes.empty());
  BOOST_TEST(try_join("quick", 1999).first);
  BOOST_TEST(try_join("unsaid", 0).first);
  BOOST_TEST(view(sup).nodes.size() == 2u);
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
}

// The other way round: a worker that cuts a connection silent for as long
// as the API node's heartbeat interval, or less, would cut the API node off
// between two of its heartbeats: refused alike (heartbeat_too_slow, both
// values, which setting to change); one with a longer timeout joins, and
// so does one that does not say (0).
BOOST_AUTO_TEST_CASE(a_worker_that_would_cut_the_api_node_off_is_refused) {
  supervisor_config cfg;
  cfg.heartbeat = std::chrono::milliseconds{1500};
  cfg.connection_timeout = std::chrono::milliseconds{6000};
  auto sup = start(cfg, 0);
  auto try_join = [&](const std::string& name, uint32_t timeout_ms) {
    return ask_join(
        sup, sys.spawn(agent, agent_config{1, name}),
        node_info{name, "elsewhere", 1, "9.9.9 (x)", 100, timeout_ms});
  };
  for (uint32_t hasty : {1500u, 400u}) {
    auto why = join_refused(try_join("hasty", hasty),
                            cluster_error::heartbeat_too_slow);
    BOOST_TEST(why.find("the API node sends a heartbeat every 1500 ms") !=
                   std::string::npos,
               why);
    BOOST_TEST(why.find("silent for " + std::to_string(hasty) + " ms") !=
                   std::string::npos,
               why);
    BOOST_TEST(why.find("cluster.connection-timeout-ms above 1500") !=
                   std::string::npos,
               why);
  }
  BOOST_TEST(view(sup).nodes.empty());
  BOOST_TEST(try_join("patient", 1501).first);
  BOOST_TEST(try_join("unsaid", 0).first);
  BOOST_TEST(view(sup).nodes.size() == 2u);
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
}

// A node name is an identity: a second agent joining under a name held by
// a live node is refused with cluster_error::name_taken (the holder's
// description as context), the holder keeps its task and its entry; once
// the holder is gone (down), the name is free for the newcomer.
BOOST_AUTO_TEST_CASE(a_name_held_by_a_live_node_is_refused_until_it_goes) {
  supervisor_config cfg;
  auto sup = start(cfg, 0);
  held_node held{sys};
  auto& holder = held.actor;
  join(sup, holder, "same", 2);
  auto since = view(sup).nodes.at(0).since_ms;
  auto first = submit(sup, "a").value();
  BOOST_TEST(held.next(10s) == first);

  auto newcomer = sys.spawn(agent, agent_config{1, "same"});
  auto try_join = [&](const node_info& info) {
    return ask_join(sup, newcomer, info);
  };
  for (int i = 0; i < 2; ++i) { // asked again: still refused
    auto holder_text = join_refused(
        try_join(node_info{"same", "elsewhere", 1, "9.9.9 (same)"}),
        cluster_error::name_taken);
    BOOST_TEST(holder_text.find("same") != std::string::npos, holder_text);
    BOOST_TEST(holder_text.find("127.0.0.1") != std::string::npos,
               holder_text); // the holder's address
    BOOST_TEST(holder_text.find("elsewhere") != std::string::npos,
               holder_text); // and the newcomer's
  }
  auto v = view(sup);
  BOOST_TEST_REQUIRE(v.nodes.size() == 1u);
  BOOST_TEST(v.nodes.front().address == "127.0.0.1");
  BOOST_TEST(v.nodes.front().since_ms == since);
  BOOST_TEST(v.nodes.front().busy == 1u);
  // The holder's task is still its own and ends there, once.
  caf::anon_send(holder, first);
  run_until_final({first});
  BOOST_TEST((last[first].status == task_status::success));
  BOOST_TEST(last[first].node == "held");
  BOOST_TEST(v.retried == 0u);

  // The holder goes: the name is free, the newcomer gets in and works.
  caf::anon_send_exit(holder, caf::exit_reason::kill);
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!try_join(node_info{"same", "elsewhere", 1, "9.9.9 (same)"}).first)
    BOOST_REQUIRE(std::chrono::steady_clock::now() < deadline);
  v = view(sup);
  BOOST_TEST_REQUIRE(v.nodes.size() == 1u);
  BOOST_TEST(v.nodes.front().address == "elsewhere");
  auto second = submit(sup, test::corpus_photo(test::small_photo)).value();
  run_until_final({second});
  BOOST_TEST((last[second].status == task_status::success));
  BOOST_TEST(last[second].node == "same");
  for (auto* x : {&sup, &newcomer})
    caf::anon_send_exit(*x, caf::exit_reason::user_shutdown);
}

// Operators' logs and task messages name cluster failures in words; CAF's
// rendering only for what has no words here.
// Before joining, a worker says which cluster protocol it speaks: one of
// another build is told why it cannot join, with both builds, and may ask
// again; the same protocol gets the API node's build back.
BOOST_AUTO_TEST_CASE(a_worker_of_another_cluster_protocol_is_refused) {
  supervisor_config cfg;
  cfg.node = "api";
  cfg.build = "1.2.3 (abc)";
  auto sup = start(cfg, 1);
  caf::scoped_actor self{sys};
  for (int i = 0; i < 2; ++i) { // asked again: refused again
    caf::error refusal;
    self->request(sup, 5s, hello_atom::value, cluster_protocol + 1,
                  std::string{"7.0.0 (def)"})
        .receive([&](hello_atom, const std::string&) {},
                 [&](caf::error& err) { refusal = std::move(err); });
    std::string why;
    BOOST_TEST_REQUIRE(is_error(refusal, cluster_error::protocol_mismatch, why),
                       sys.render(refusal));
    BOOST_TEST(why.find("resized 1.2.3 (abc) (cluster protocol " +
                        std::to_string(cluster_protocol) + ")") !=
                   std::string::npos,
               why);
    BOOST_TEST(why.find("resized 7.0.0 (def) (cluster protocol " +
                        std::to_string(cluster_protocol + 1) + ")") !=
                   std::string::npos,
               why);
  }
  BOOST_TEST(hello(sup, "1.2.3 (abc)") == "1.2.3 (abc)");
  // Its own pool is listed with its build.
  auto v = view(sup);
  BOOST_TEST_REQUIRE(v.nodes.size() == 1u);
  BOOST_TEST(v.nodes.front().build == "1.2.3 (abc)");
  BOOST_TEST(v.build == "1.2.3 (abc)");
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
}

// The cluster port publishes the gateway, not the supervisor: a peer's
// hello, join and leave pass; the supervisor's other messages (drain,
// abandon, ...) do not, so no peer can stop the node taking tasks.
BOOST_AUTO_TEST_CASE(the_gateway_passes_only_a_workers_messages) {
  supervisor_config cfg;
  cfg.build = "1.2.3 (abc)";
  auto sup = start(cfg, 0);
  auto gate = sys.spawn(cluster_gateway, sup);
  caf::scoped_actor self{sys};
  for (auto refused : {caf::make_message(drain_atom::value),
                       caf::make_message(abandon_atom::value, false),
                       caf::make_message(recover_atom::value),
                       caf::make_message(restore_atom::value)}) {
    caf::error err;
    self->request(gate, 5s, refused)
        .receive([&](caf::message&) {},
                 [&](caf::error& e) { err = std::move(e); });
    BOOST_TEST((err == caf::sec::unexpected_message), sys.render(err));
  }
  BOOST_TEST(hello(gate, "1.2.3 (abc)") == "1.2.3 (abc)");
  held_node held{sys};
  join(gate, held.actor, "through-the-gate", 1);
  // Still taking tasks: none of the above drained it.
  auto token = submit(sup, "a");
  BOOST_TEST_REQUIRE(token.ok());
  BOOST_TEST(held.next(10s) == token.value());
  uint64_t in_flight = 0;
  self->request(gate, 5s, leave_atom::value, held.actor)
      .receive([&](uint64_t n) { in_flight = n; },
               [&](caf::error& err) { BOOST_FAIL(sys.render(err)); });
  BOOST_TEST(in_flight == 1u);
  caf::anon_send(held.actor, token.value());
  run_until_final({token.value()});
  BOOST_TEST((last[token.value()].status == task_status::success));
  for (auto* x : {&sup, &held.actor})
    caf::anon_send_exit(*x, caf::exit_reason::user_shutdown);
}

// A worker whose connection to this node broke joins again with the same
// agent, possibly before this node saw the old connection go (then CAF
// never reports it down). What it ran answers over the old connection, that
// is never: it runs again at once instead of failing at the backstop.
BOOST_AUTO_TEST_CASE(a_worker_joining_again_gets_its_tasks_again) {
  supervisor_config cfg;
  cfg.task_timeout = 60s; // the backstop is far off
  auto sup = start(cfg, 0);
  held_node held{sys};
  join(sup, held.actor, "flaky", 1);
  auto token = submit(sup, "a").value();
  BOOST_TEST_REQUIRE(held.next(10s) == token);
  join(sup, held.actor, "flaky", 1);
  BOOST_TEST_REQUIRE(held.next(10s) == token); // sent again
  caf::anon_send(held.actor, token);
  run_until_final({token});
  BOOST_TEST((last[token].status == task_status::success));
  BOOST_TEST(last[token].attempts == 2u);
  auto v = view(sup);
  BOOST_TEST(v.retried == 1u);
  BOOST_TEST_REQUIRE(v.nodes.size() == 1u);
  BOOST_TEST(v.nodes.front().busy == 0u);
  for (auto* x : {&sup, &held.actor})
    caf::anon_send_exit(*x, caf::exit_reason::user_shutdown);
}

BOOST_AUTO_TEST_CASE(cluster_errors_are_described_in_words) {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  BOOST_TEST(describe(sys, caf::make_error(caf::exit_reason::user_shutdown)) ==
             "the node shut down");
  BOOST_TEST(describe(sys, caf::make_error(
                               caf::exit_reason::remote_link_unreachable)) ==
             "the connection to the node was lost");
  // The middleman's context for a failed connect.
  BOOST_TEST(describe(sys, caf::make_error(caf::sec::cannot_connect_to_node,
                                           "ip_connect failed",
                                           std::string{"127.0.0.1"},
                                           uint16_t{5810})) ==
             "cannot connect to 127.0.0.1:5810 (nothing listens there, or "
             "the host name does not resolve)");
  BOOST_TEST(
      describe(sys, caf::make_error(caf::sec::cannot_connect_to_node,
                                    "ip_connect failed", std::string{"fd00::2"},
                                    uint16_t{5810})) ==
      "cannot connect to [fd00::2]:5810 (nothing listens there, or "
      "the host name does not resolve)");
  BOOST_TEST(describe(sys, caf::make_error(caf::sec::connection_timeout))
                 .find("cluster.port") != std::string::npos);
  BOOST_TEST(describe(sys, make_error(cluster_error::name_taken, "held")) ==
             "held");
  BOOST_TEST(describe(sys, make_error(cluster_error::protocol_mismatch,
                                      "runs 1.0, this 2.0")) ==
             "runs 1.0, this 2.0");
  // An old peer without a handler for a message (hello before it existed).
  BOOST_TEST(describe(sys, caf::make_error(caf::sec::unexpected_message))
                 .find("a different resized build") != std::string::npos);
  auto other = caf::make_error(caf::sec::invalid_argument);
  BOOST_TEST(describe(sys, other) == sys.render(other));
}

// A restart finds a backlog three times the queue's byte bound: the
// supervisor reads the inputs a batch at a time as the queue has room (here
// one task per batch: two inputs would pass half the bound), reads again
// after a failed read, runs every task, ends the one whose record expired
// before its read (before, it stayed PENDING here for good), and ends the
// one that lost its node max_attempts times without reading its input.
BOOST_AUTO_TEST_CASE(
    a_backlog_is_read_a_batch_at_a_time_as_the_queue_has_room) {
  auto photo = test::corpus_photo(test::small_photo);
  std::vector<store::pending_task> pending;
  std::vector<std::string> runs;
  for (int i = 0; i < 7; ++i) {
    store::pending_task p;
    p.record.token = make_token();
    p.record.status = task_status::pending;
    p.record.submitted_at_ms = now_ms() - 1000 + i;
    p.record.input_bytes = photo.size();
    p.record.options.quality = 70 + i;
    p.input = photo;
    pending.push_back(p);
    runs.push_back(p.record.token);
  }
  auto lost = pending.back();
  lost.record.attempts = 3; // max_attempts
  lost.record.node = "gone";
  runs.back() = lost.record.token = make_token();
  pending.back() = lost;
  runs.pop_back();
  auto expired = pending.front();
  runs.erase(runs.begin());
  supervisor_config cfg;
  cfg.queue_max_bytes = 5 * photo.size() / 2; // half: 1.25 inputs
  auto caf_sink = caf::actor_cast<caf::actor>(status);
  auto seen_asks = std::make_shared<input_asks>();
  auto local = sys.spawn(agent, agent_config{1, cfg.node});
  // The recovery lists the expired task too: its record went between.
  std::vector<store::pending_task> in_redis(pending.begin() + 1, pending.end());
  auto store_actor =
      sys.spawn(backlog_status, caf_sink, pending, in_redis, seen_asks);
  auto sup = sys.spawn(supervisor, cfg, store_actor, local, size_t{1});
  std::vector<std::string> finals = runs;
  finals.push_back(lost.record.token);
  run_until_final(finals);
  for (const auto& token : runs)
    BOOST_TEST(successes(token) == 1);
  BOOST_TEST((last[lost.record.token].status == task_status::failure));
  BOOST_TEST(last[lost.record.token].error_code == "worker_lost");
  run_until_final({expired.record.token});
  BOOST_TEST((last[expired.record.token].status == task_status::failure));
  BOOST_TEST(last[expired.record.token].error_code == "worker_lost");
  BOOST_TEST(last[expired.record.token].error_message.find("gone from redis") !=
             std::string::npos);
  // the record it ended with is the recovered one, not a blank
  BOOST_TEST(last[expired.record.token].submitted_at_ms ==
             expired.record.submitted_at_ms);
  std::lock_guard<std::mutex> lock{seen_asks->mutex};
  // One failed read, the expired task, five to run: one at a time.
  BOOST_TEST(seen_asks->asks.size() == 7u);
  for (const auto& ask : seen_asks->asks) {
    BOOST_TEST(ask.size() == 1u);
    for (const auto& token : ask)
      BOOST_TEST(token != lost.record.token);
  }
  BOOST_TEST(view(sup).queue_depth == 0u);
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(local, caf::exit_reason::user_shutdown);
}

// Adopted tasks wait in Redis while the queue's bytes are held, here by a
// submission Redis has not stored yet. When that accept fails (Redis), the
// bytes come back without any dispatch, no task running: the adopted task
// is read then all the same, and runs.
BOOST_AUTO_TEST_CASE(an_adopted_task_is_read_when_a_failed_accept_frees_room) {
  auto photo = test::corpus_photo(test::small_photo);
  auto adopted = pending_of(photo);
  supervisor_config cfg;
  cfg.queue_max_bytes = 2 * photo.size(); // half: one input
  auto caf_sink = caf::actor_cast<caf::actor>(status);
  auto store_actor = sys.spawn(held_accept_status, caf_sink,
                               std::vector<store::pending_task>{adopted});
  auto local = sys.spawn(agent, agent_config{1, cfg.node});
  auto sup = sys.spawn(supervisor, cfg, store_actor, local, size_t{1});
  // A submission as large as half the bound, its accept held.
  test::answer<outcome<std::string>> ans;
  submit_request req{{}, photo, imaging::probe_info{}, "test", "", 0, ""};
  caf::anon_send(sup, submit_atom::value, std::move(req), ans.make());
  std::string held;
  status->receive(
      [&](accept_atom, std::string& token, std::string&) { held = token; },
      caf::after(10s) >> [] {});
  BOOST_TEST_REQUIRE(!held.empty());
  // Another node's task is adopted meanwhile: no room to read its input.
  caf::anon_send(sup, adopt_atom::value, std::string("gone"),
                 std::vector<store::pending_task>{adopted});
  // Redis fails the held accept: the client hears so, and the room is free.
  caf::anon_send(store_actor, twin_atom::value, held);
  auto res = ans.wait();
  BOOST_REQUIRE(res.has_value());
  BOOST_REQUIRE(!res->ok());
  BOOST_TEST((res->error().code == error_code::store_unavailable));
  run_until_final({adopted.record.token}, 20s);
  BOOST_TEST((last[adopted.record.token].status == task_status::success));
  BOOST_TEST(last.count(held) == 0u); // the refused one never started
  auto v = view(sup);
  BOOST_TEST(v.queue_depth == 0u);
  BOOST_TEST(v.queued_bytes == 0u);
  for (auto* x : {&sup, &local, &store_actor})
    caf::anon_send_exit(*x, caf::exit_reason::user_shutdown);
}

BOOST_AUTO_TEST_SUITE_END()
