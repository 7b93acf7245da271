// A node's agent: the one actor through which an API node's supervisor runs
// resizes on a node, local or remote. It owns a fixed pool of `pool_size`
// resize workers (detached actors: one OS thread each, so libvips never
// blocks CAF's scheduler) and never runs or holds more jobs than that: a
// worker node serving several API nodes, each offered its whole pool, turns
// the excess away at once so that API node places it elsewhere.
//
//   resize_job ─▶ idle worker? ─yes─▶ request(worker) ─▶ deliver the answer,
//                     │                                  worker idle again
//                     └─no──▶ answer resize_done{error_code = "node_busy"}
//
// On a worker node's graceful shutdown main sends drain_atom: from then on
// every job is turned away as node_busy (the API nodes, told through
// their links that this node leaves, place it elsewhere without counting
// an attempt), while the jobs already running finish and answer; the
// answer to drain_atom is how many still run, running_atom's their tokens
// (main logs them when it gives up on them).
//
// Workers are linked to the agent: a worker that dies is replaced (its job
// answers with an error, so the supervisor runs it again); when the agent
// goes, its workers go with it. The job message is passed on as is: its
// bytes are never copied here.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <caf/event_based_actor.hpp>
#include <caf/response_promise.hpp>
#include <caf/stateful_actor.hpp>

#include "actors/messages.hpp"

namespace resized::actors {

// No limits here: each job carries the policy of the API node that
// accepted it (resize_job::policy), on a worker node as on a standalone one.
struct agent_config {
  size_t pool_size = 1;
  std::string node;
  int nice = 5; // resize.nice: CPU priority of resize threads (0 = as is)
  // One info line per job it ran: on a worker node, whose API nodes log
  // the tasks, its own log then says what ran there (a node with its own
  // pool logs each task once, in the supervisor).
  bool log_jobs = false;
};

/// error_code of a resize_done that means "no free slot here, place it
/// elsewhere": not a failure of the task.
inline constexpr const char* node_busy = "node_busy";

struct agent_state {
  agent_config cfg;
  std::vector<caf::actor> workers; // all of them
  std::vector<caf::actor> idle;
  std::map<caf::actor_addr, std::string> jobs; // running: worker → token
  uint64_t done = 0;
  uint64_t refused = 0;
  bool draining = false; // shutting down: no new jobs

  size_t running() const { return workers.size() - idle.size(); }

  static inline const char* name = "agent";
};

using agent_actor_type = caf::stateful_actor<agent_state>;

caf::behavior agent(agent_actor_type* self, agent_config cfg);

} // namespace resized::actors
