// The supervisor with a scoped actor standing in for the status actor: every
// record change it announces is received and checked here.
#include <map>

#include <caf/all.hpp>

#include "actor_fixture.hpp"
#include "actors/supervisor.hpp"

using namespace resized;
using namespace resized::actors;
using namespace std::chrono_literals;

using resized::test::vips_global;
BOOST_TEST_GLOBAL_FIXTURE(vips_global);

namespace {

struct supervisor_fixture : test::actor_system_fixture {
  caf::scoped_actor status{sys};
  // Every record change seen, in order: (token, status).
  std::vector<std::pair<std::string, task_status>> seen;
  std::map<std::string, task_record> last;
  std::map<std::string, std::string> images;

  caf::actor start(supervisor_config cfg) {
    return sys.spawn(supervisor, cfg,
                     caf::actor_cast<caf::actor>(status));
  }

  outcome<std::string> submit(const caf::actor& sup, std::string image,
                              imaging::resize_options opts = {}) {
    test::answer<outcome<std::string>> ans;
    submit_request req{opts, std::move(image), imaging::input_format::jpeg,
                       "test"};
    caf::anon_send(sup, submit_atom::value, std::move(req), ans.make());
    auto res = ans.wait();
    BOOST_REQUIRE(res.has_value());
    return *res;
  }

  void record(task_record& rec) {
    seen.emplace_back(rec.token, rec.status);
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
      status->receive(
        [&](update_atom, task_record& rec) { record(rec); },
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
  cfg.pool_size = 2;
  auto sup = start(cfg);
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

BOOST_AUTO_TEST_CASE(a_full_queue_answers_queue_full) {
  supervisor_config cfg;
  cfg.pool_size = 1;
  cfg.queue_capacity = 1;
  auto sup = start(cfg);
  // A 16 MP photo keeps the only worker busy while the next two arrive:
  // the first runs, the second waits, the third finds the queue full.
  auto big = test::corpus_photo("ukui__rhythm.jpg");
  auto first = submit(sup, big);
  auto second = submit(sup, big);
  auto third = submit(sup, big);
  BOOST_TEST(first.ok());
  BOOST_TEST(second.ok());
  BOOST_REQUIRE(!third.ok());
  BOOST_TEST((third.error().code == error_code::queue_full));
  run_until_final({first.value(), second.value()});
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
}

BOOST_AUTO_TEST_CASE(queue_bytes_are_bounded_too) {
  supervisor_config cfg;
  cfg.pool_size = 1;
  cfg.queue_capacity = 100;
  auto big = test::corpus_photo("ukui__rhythm.jpg");
  cfg.queue_max_bytes = big.size() + 1000; // room for one waiting photo
  auto sup = start(cfg);
  auto first = submit(sup, big);  // runs at once
  auto second = submit(sup, big); // waits
  auto third = submit(sup, big);  // over the byte limit
  BOOST_TEST(first.ok());
  BOOST_TEST(second.ok());
  BOOST_REQUIRE(!third.ok());
  BOOST_TEST((third.error().code == error_code::queue_full));
  BOOST_TEST(third.error().message.find("bytes") != std::string::npos);
  run_until_final({first.value(), second.value()});
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
}

BOOST_AUTO_TEST_CASE(a_bad_image_ends_failure_and_the_pool_goes_on) {
  supervisor_config cfg;
  cfg.pool_size = 1;
  auto sup = start(cfg);
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

BOOST_AUTO_TEST_CASE(a_task_past_its_deadline_ends_processing_timeout) {
  supervisor_config cfg;
  cfg.pool_size = 1;
  cfg.task_timeout = std::chrono::milliseconds{1};
  auto sup = start(cfg);
  auto t = submit(sup, test::corpus_photo("ukui__rhythm.jpg"));
  BOOST_REQUIRE(t.ok());
  run_until_final({t.value()});
  BOOST_TEST((last[t.value()].status == task_status::failure));
  BOOST_TEST(last[t.value()].error_code == "processing_timeout");
  // The slot frees itself when the stuck worker returns: a later task runs.
  auto next = submit(sup, test::corpus_photo(test::small_photo));
  BOOST_REQUIRE(next.ok());
  run_until_final({next.value()});
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
}

BOOST_AUTO_TEST_SUITE_END()
