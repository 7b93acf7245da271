#include "actors/agent.hpp"

#include <algorithm>
#include <chrono>

#include "actors/resize_actor.hpp"
#include "common/log.hpp"

namespace resized::actors {

namespace {

using self_ptr = agent_actor_type*;

void spawn_worker(self_ptr self) {
  auto& st = self->state;
  auto w = self->spawn<caf::detached + caf::linked>(resize_actor, st.cfg.node,
                                                    st.cfg.nice);
  st.workers.push_back(w);
  st.idle.push_back(std::move(w));
}

void log_job(const std::string& token, const resize_done& done,
             std::chrono::steady_clock::duration took) {
  auto ms = std::chrono::duration<double, std::milli>(took).count();
  if (done.ok)
    log::info("resize done", {{"token", token},
                              {"width", done.width},
                              {"height", done.height},
                              {"bytes", done.output.size()},
                              {"ms", ms, 1}});
  else if (done.error_code != node_busy)
    log::info("resize failed", {{"token", token},
                                {"code", done.error_code},
                                {"reason", done.error_message},
                                {"ms", ms, 1}});
}

void run(self_ptr self, caf::message job, std::string token,
         caf::typed_response_promise<resize_done> promise) {
  auto& st = self->state;
  auto worker = st.idle.back();
  st.idle.pop_back();
  st.jobs[worker.address()] = token;
  auto started = std::chrono::steady_clock::now();
  self->request(worker, caf::infinite, std::move(job))
      .then(
          [=](resize_done& done) mutable {
            auto& st = self->state;
            if (st.cfg.log_jobs)
              log_job(token, done, std::chrono::steady_clock::now() - started);
            promise.deliver(std::move(done));
            ++st.done;
            st.jobs.erase(worker.address());
            st.idle.push_back(worker);
          },
          [=](caf::error& err) mutable {
            // The worker died mid-job (it is replaced by the exit handler).
            self->state.jobs.erase(worker.address());
            promise.deliver(std::move(err));
          });
}

} // namespace

caf::behavior agent(agent_actor_type* self, agent_config cfg) {
  auto& st = self->state;
  cfg.pool_size = std::max<size_t>(cfg.pool_size, 1);
  st.cfg = std::move(cfg);
  self->set_exit_handler([=](caf::exit_msg& msg) {
    auto& st = self->state;
    auto i = std::find_if(
        st.workers.begin(), st.workers.end(),
        [&](const caf::actor& w) { return w.address() == msg.source; });
    if (i == st.workers.end()) {
      self->quit(msg.reason); // the agent is told to stop: workers follow
      return;
    }
    log::warn("resize worker died, replacing it",
              {{"node", st.cfg.node},
               {"reason", describe(self->system(), msg.reason)}});
    auto dead = *i;
    st.workers.erase(i);
    st.idle.erase(std::remove(st.idle.begin(), st.idle.end(), dead),
                  st.idle.end());
    spawn_worker(self);
  });
  for (size_t i = 0; i < st.cfg.pool_size; ++i)
    spawn_worker(self);
  return {
      [=](const resize_job& job) -> caf::result<resize_done> {
        auto& st = self->state;
        if (st.idle.empty() || st.draining) {
          ++st.refused;
          resize_done busy;
          busy.token = job.token;
          busy.error_code = node_busy;
          busy.error_message = st.draining
                                   ? "this node is shutting down"
                                   : "all resize workers of this node are busy";
          busy.node = st.cfg.node;
          return busy;
        }
        log::debug("resize started", {{"token", job.token},
                                      {"node", st.cfg.node},
                                      {"running", st.running() + 1}});
        // The asker's record of the task says IN_PROGRESS from here, not
        // from when it placed the job: one turned away above never started.
        // (Before the promise, which takes the request's sender over; the
        // answer follows on the same path, so this arrives first.)
        if (auto asker = caf::actor_cast<caf::actor>(self->current_sender()))
          self->send(asker, started_atom::value, job.token);
        auto token = job.token;
        auto msg = self->current_mailbox_element()->move_content_to_message();
        auto promise = self->make_response_promise<resize_done>();
        run(self, std::move(msg), std::move(token), promise);
        return promise;
      },
      [=](drain_atom) -> size_t {
        auto& st = self->state;
        if (!st.draining)
          log::info("draining: no new tasks, finishing the "
                    "running ones",
                    {{"node", st.cfg.node}, {"in_flight", st.running()}});
        st.draining = true;
        return st.running();
      },
      [=](running_atom) {
        std::vector<std::string> tokens;
        for (auto& [worker, token] : self->state.jobs)
          tokens.push_back(token);
        return tokens;
      },
  };
}

} // namespace resized::actors
