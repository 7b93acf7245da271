// The supervisor: one per API node. Owns the bounded queue of accepted tasks
// and spawns one resize actor per task, at most `pool_size` at a time, each
// detached (own thread) and monitored.
//
// A task's life as the supervisor sees it:
//
//   submit ─▶ [queue] ─dispatch─▶ running ─resize_done─▶ finished ─down─▶ gone
//     │ full: queue_full              │ timeout / error ─▶ FAILURE
//     ▼                               │ down before answer ─▶ FAILURE worker_lost
//   503
//
// A pool slot is freed by the worker's down message, not by its answer, so a
// worker still stuck in libvips after a timeout keeps counting as busy.
#pragma once

#include <chrono>
#include <deque>
#include <string>
#include <unordered_map>

#include <caf/actor.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "actors/messages.hpp"

namespace resized::actors {

struct supervisor_config {
  size_t pool_size = 2;
  size_t queue_capacity = 256;
  uint64_t queue_max_bytes = 256ull << 20;
  std::chrono::milliseconds task_timeout{60000};
  imaging::limits limits;
  std::string node; // this node's name, recorded in task records
};

struct supervisor_state {
  struct queued {
    task_record record;
    std::string image;
  };
  struct running {
    task_record record;
    bool finished = false; // answered (or timed out) but not yet down
  };

  supervisor_config cfg;
  caf::actor status;
  std::deque<queued> queue;
  uint64_t queued_bytes = 0;
  std::unordered_map<caf::actor_addr, running> workers;
  uint64_t succeeded = 0;
  uint64_t failed = 0;

  static inline const char* name = "supervisor";
};

using supervisor_actor_type = caf::stateful_actor<supervisor_state>;

caf::behavior supervisor(supervisor_actor_type* self, supervisor_config cfg,
                         caf::actor status);

/// A random (version 4) UUID, lower-case, 36 characters.
std::string make_token();

} // namespace resized::actors
