// A node's agent: the one actor through which an API node's supervisor runs
// resizes on a node, local or remote. It spawns one detached resize actor
// per job, at most `pool_size` at a time, and queues the rest (a worker
// serving several API nodes may get more than its pool at once).
//
//   resize_job ─▶ slot free? ─yes─▶ spawn resize actor, delegate the job
//                     └─no──▶ wait in the agent's queue until a resize actor
//                             ends (down message frees its slot)
//
// The job message is delegated as is: its bytes are never copied here.
#pragma once

#include <deque>

#include <caf/event_based_actor.hpp>
#include <caf/response_promise.hpp>
#include <caf/stateful_actor.hpp>

#include "actors/messages.hpp"

namespace resized::actors {

struct agent_state {
  struct waiting {
    caf::message job;
    caf::response_promise promise;
  };
  size_t pool_size = 1;
  imaging::limits limits;
  std::string node;
  size_t busy = 0;
  uint64_t done = 0;
  std::deque<waiting> queue;

  static inline const char* name = "agent";
};

using agent_actor_type = caf::stateful_actor<agent_state>;

caf::behavior agent(agent_actor_type* self, size_t pool_size,
                    imaging::limits limits, std::string node);

} // namespace resized::actors
