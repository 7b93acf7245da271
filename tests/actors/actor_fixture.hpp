// Shared set-up of the actor-level suites: libvips started once, one actor
// system per test, and a thread-safe capture of replier answers.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>

#include <boost/test/results_collector.hpp>
#include <boost/test/unit_test.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include "actors/messages.hpp"
#include "imaging/pipeline.hpp"
#include "support/fixtures.hpp"

namespace resized::test {

struct vips_global {
  vips_global() {
    std::string err;
    if (!imaging::startup("actor_tests", 1, err))
      throw std::runtime_error("libvips: " + err);
  }
};

struct actor_system_fixture {
  struct config : caf::actor_system_config {
    config() {
      actors::announce_message_types(*this);
      set("scheduler.max-threads", 2);
      set("logger.verbosity", caf::atom("quiet"));
    }
  };
  config cfg;
  caf::actor_system sys{cfg};

  ~actor_system_fixture() {
    // A test stopped by a failed requirement leaves its actors running, and
    // the system's destructor would wait for them until ctest's timeout
    // (600 s): a failed test ends at once instead.
    namespace utf = boost::unit_test;
    auto id = utf::framework::current_test_case().p_id;
    if (!utf::results_collector.results(id).passed())
      sys.await_actors_before_shutdown(false);
  }
};

/// Collects the one answer of a replier; `wait` polls it with a deadline.
template <class T>
class answer {
public:
  answer() : state_(std::make_shared<state>()) {}

  /// A replier that stores its answer here (fallback: internal_error).
  replier<T> make() {
    auto st = state_;
    return replier<T>{[st](T value) {
                        std::lock_guard<std::mutex> guard{st->mtx};
                        st->value.emplace(std::move(value));
                        st->cv.notify_all();
                      },
                      T{failure{error_code::internal_error, "dropped"}}};
  }

  /// The answer, or nullopt if none arrived within `timeout`.
  std::optional<T>
  wait(std::chrono::milliseconds timeout = std::chrono::milliseconds{10000}) {
    std::unique_lock<std::mutex> guard{state_->mtx};
    state_->cv.wait_for(guard, timeout,
                        [&] { return state_->value.has_value(); });
    return state_->value;
  }

private:
  struct state {
    std::mutex mtx;
    std::condition_variable cv;
    std::optional<T> value;
  };
  std::shared_ptr<state> state_;
};

} // namespace resized::test
