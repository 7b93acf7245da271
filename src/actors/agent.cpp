#include "actors/agent.hpp"

#include "actors/resize_actor.hpp"
#include "common/log.hpp"

namespace resized::actors {

namespace {

void run(agent_actor_type* self, caf::message job,
         caf::response_promise promise) {
  auto& st = self->state;
  ++st.busy;
  auto worker = self->spawn<caf::detached + caf::monitored>(
    resize_actor, st.limits, st.node);
  promise.delegate(worker, std::move(job));
}

} // namespace

caf::behavior agent(agent_actor_type* self, size_t pool_size,
                    imaging::limits limits, std::string node) {
  self->state.pool_size = std::max<size_t>(pool_size, 1);
  self->state.limits = limits;
  self->state.node = std::move(node);
  self->set_down_handler([=](caf::down_msg&) {
    auto& st = self->state;
    --st.busy;
    ++st.done;
    if (!st.queue.empty()) {
      auto next = std::move(st.queue.front());
      st.queue.pop_front();
      run(self, std::move(next.job), std::move(next.promise));
    }
  });
  return {
    [=](const resize_job&) -> caf::response_promise {
      auto& st = self->state;
      auto job = self->current_mailbox_element()->move_content_to_message();
      auto promise = self->make_response_promise();
      if (st.busy < st.pool_size)
        run(self, std::move(job), promise);
      else
        st.queue.push_back({std::move(job), promise});
      return promise;
    },
  };
}

} // namespace resized::actors
