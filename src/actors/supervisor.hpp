// The supervisor: one per API node. Owns the bounded queue of accepted tasks
// and places each task on a node with a free slot: its own local agent or
// the agent of a worker node that joined over CAF's middleman. Never more
// tasks in flight on a node than its pool size. The queue takes clients in
// turn (enqueue_fair), and each client may hold only its share of it
// (client_max_tasks, client_max_bytes).
//
// A task's life as the supervisor sees it:
//
//   submit ─▶ stored in Redis (record + input) ─▶ 202 ─▶ [queue]
//              same content key as an open task: wait for its result;
//              as a finished one: the status actor copies its result ─place─▶
//              in flight on node N ─resize_done─▶ final
//     │ full: queue_full  ▲        │ deadline passed ─▶ FAILURE
//     processing_timeout ▼                   │        │ node N lost (down) or
//     the request failed:
//   503                   └────────┘ attempt += 1, back to the queue front;
//                                    attempt == max_attempts ─▶ FAILURE
//                                    worker_lost
//
// A worker node that shuts down gracefully first says so (leave_atom): it
// gets no new tasks, finishes and answers the ones it runs, then
// disconnects. Only tasks still on it when it goes (its shutdown grace ran
// out) count as lost.
//
// At a shutdown past the grace (abandon_atom) the supervisor gives up on
// the tasks in flight: it drops their answers from then on, so their
// records stay as they are in Redis (IN_PROGRESS, in this node's pending
// set) and the next start resumes them, and main exits without waiting.
//
// Every placement carries an attempt number; an answer for an attempt that
// is no longer the current one (a late result from a node declared dead) is
// dropped, so a task ends exactly once.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include <caf/actor.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "actors/lru_cache.hpp"
#include "actors/messages.hpp"
#include "store/attempt_journal.hpp"

namespace resized::actors {

struct supervisor_config {
  size_t queue_capacity = 256;
  uint64_t queue_max_bytes = 256ull << 20;
  /// One client's share (submit_request::client): tasks, and their input
  /// bytes, it may have open here (accepted, not final); 0 = no limit. A
  /// client with nothing open may always submit one task.
  size_t client_max_tasks = 0;
  uint64_t client_max_bytes = 0;
  /// resize.task-timeout-ms: every job carries it as its libvips deadline
  /// (policy.max_processing_ms), on whichever node it runs; the answer is
  /// awaited that long plus a backstop for a node that does not answer.
  std::chrono::milliseconds task_timeout{60000};
  /// This node's [limits]: the policy every job it places carries
  /// (resize_job::policy). Worker nodes apply it instead of their own.
  imaging::limits limits;
  uint32_t max_attempts = 3;
  std::string node = "local"; // this node's name, recorded in task records
  std::string role = "standalone";
  /// This node's version and commit, "0.1.0 (31c78c02d530)": shown for its
  /// own pool in /api/v1/cluster, and told to workers in answer to hello.
  std::string build;
  /// Called with the remote end of a worker's BASP connection (numeric
  /// host, port) when it has joined, before it is told so (main: the
  /// cluster port's guard, cluster_guard.hpp).
  std::function<void(const std::string&, uint16_t)> on_joined;
  std::chrono::milliseconds store_timeout{5000}; // accept / recover writes
  /// cluster.connection-timeout-ms: a worker whose heartbeats are not
  /// closer together than this is refused at join (heartbeat_too_slow).
  std::chrono::milliseconds connection_timeout{5000};
  /// cluster.heartbeat-ms: a worker that would cut a connection silent for
  /// this long or less (its connection timeout, node_info) is refused at
  /// join (heartbeat_too_slow).
  std::chrono::milliseconds heartbeat{1000};
  /// Memory budget per resize worker of a node: a node starts a task only
  /// while the decode estimates of its tasks in flight, this one included,
  /// stay within pool size x this (or when it runs nothing). 0 = no budget.
  uint64_t decode_bytes_per_worker = 256ull << 20;
  /// Recovers the node's pending tasks at once (false: when told
  /// recover_atom, i.e. once the lease actor holds the node's name).
  bool recover_at_start = true;
  /// Notes each task placed on this node's own pool before it runs, and
  /// clears it when it ends; what an earlier process left there counts at
  /// recovery as attempts its records may not show (resize.journal).
  /// Null: none (worker-less tests, resize.journal = off).
  std::shared_ptr<store::attempt_journal> journal;
};

struct supervisor_state {
  struct queued {
    task_record record;
    caf::message job; // holds a resize_job; shared, never copied
    uint32_t attempt = 0;
    std::string content;       // content key ("" = none, e.g. recovered tasks)
    uint64_t decode_bytes = 0; // imaging::decode_estimate of the input
    uint64_t round = 0;        // its place in the fair order (enqueue_fair)
    uint32_t turned_away = 0;  // times a busy node turned this attempt away
  };
  struct in_flight {
    queued task;
    std::string node; // key in `nodes`
    /// When it was placed. Its record says PENDING until its node takes it
    /// (started_atom: IN_PROGRESS, `started`).
    int64_t placed_at_ms = 0;
    bool started() const {
      return task.record.status == task_status::in_progress;
    }
  };
  struct node_entry {
    caf::actor agent;
    node_info info;
    std::string role; // "local" or "worker"
    size_t busy = 0;
    uint64_t decoding = 0; // decode estimates of its tasks in flight
    uint64_t done = 0;
    uint64_t failed = 0;
    int64_t since_ms = 0;
    // The node turned a task away (its slots are taken by other API nodes):
    // place nothing there until it answers a task or a short pause passes.
    bool saturated = false;
    // Turn-aways in a row: the pause before the next try doubles with each
    // (a node held by a resize that outlived task_timeout answers node_busy
    // until libvips lets go of it).
    uint32_t turned_away = 0;
    // The node is shutting down (leave_atom): place nothing more there; its
    // tasks finish and answer as usual, and when it then disconnects with
    // none left here it is gone without any task being re-queued.
    bool leaving = false;
  };

  // A task recovered at start-up or adopted whose input is still only in
  // Redis: inputs are read a batch at a time as the queue has room
  // (read_deferred_inputs), so that a backlog larger than queue_max_bytes
  // (adopted from other nodes, or left by a run with a larger bound) never
  // sits in memory at once.
  struct deferred {
    task_record record;
    uint32_t attempt = 0; // attempts lost with their node so far
    std::string from;     // adopted from that node ("": this one's restart)
  };

  supervisor_config cfg;
  caf::actor status;
  std::deque<queued> queue;
  std::deque<deferred> deferred_tasks; // oldest first; tokens are in `open`
  std::vector<deferred> reading;       // their inputs asked of the status
                                       // actor (one batch at a time)
  uint32_t reads_failed = 0;           // those asks failed in a row
  uint64_t queued_bytes = 0;           // includes tasks being accepted
  size_t accepting = 0; // submissions waiting for Redis to store them
  std::unordered_map<std::string, in_flight> running; // by token
  std::map<std::string, node_entry> nodes;            // by node name
  // Identical work done once: content key → the token that computes (or
  // computed) it; duplicates of a task still open wait for its result.
  lru_cache<std::string, std::string> by_content{10000};
  std::unordered_map<std::string, std::vector<task_record>> followers;
  std::unordered_set<std::string> open; // tokens queued, deferred or in
                                        // flight
  // Accepted tasks whose twin another API node (or this one before a
  // restart) accepted first, by token: they wait, at most one task timeout,
  // for that twin's final record instead of being resized again.
  struct awaiting_twin {
    queued task;
    uint64_t size = 0;    // its input, counted in queued_bytes
    std::string original; // the twin's token
  };
  std::unordered_map<std::string, awaiting_twin> awaiting;
  // Tasks whose twin's result is being copied to them (clone_atom asked).
  std::unordered_set<std::string> cloning;
  // Accepts undone (forget_atom sent): their client has no token. A
  // recovery that reads one before its undo lands must not run it.
  // Cleared past 10000 (accepts undone are rare: Redis timeouts).
  std::unordered_set<std::string> forgotten;
  // Tokens that ended here lately (final, or never accepted), in two
  // generations of up to 10000 each: a recovery works from a snapshot of
  // the pending set read before they ended, and must not open one again
  // (its input is gone from Redis by then, and twins following it here
  // would never be answered).
  std::unordered_set<std::string> ended, ended_before;
  // Each client's share in use: its tasks accepted (or being accepted) and
  // not final, and their input bytes; and whose each such task is, by
  // token. Released once, when the task ends (counted_done).
  struct client_use {
    size_t tasks = 0;
    uint64_t bytes = 0;
    uint64_t last_round = 0; // the round of its task queued last
  };
  std::unordered_map<std::string, client_use> clients;
  struct counted_task {
    std::string client;
    uint64_t bytes = 0;
  };
  std::unordered_map<std::string, counted_task> counted;
  // The queue's fair order (enqueue_fair): the round of the task started
  // last, and the last round given to tasks counted against no client
  // (recovered after a restart).
  uint64_t round_now = 0;
  uint64_t anonymous_round = 0;
  uint64_t reused = 0;
  uint64_t succeeded = 0;
  uint64_t failed = 0;
  uint64_t retried = 0;
  int64_t up_since_ms = 0;
  bool draining = false; // shutting down: no new tasks taken or started
  // Past the shutdown grace: the tasks in flight were given up, their
  // answers are dropped (main exits before they would be written).
  bool abandoned = false;
  // Given up because this node lost its name: its queued tasks are another
  // instance's or an adopter's, not left for this node's next start.
  bool name_lost = false;

  static inline const char* name = "supervisor";
};

using supervisor_actor_type = caf::stateful_actor<supervisor_state>;

/// `local_agent` may be invalid (an API node without a local pool).
caf::behavior supervisor(supervisor_actor_type* self, supervisor_config cfg,
                         caf::actor status, caf::actor local_agent,
                         size_t local_pool_size);

/// What the cluster port publishes in front of `supervisor`: a worker's
/// hello, join and leave are passed on; anything else a peer sends (drain,
/// abandon, submit, ...: the supervisor's own, from this process) is
/// refused as an unexpected message.
caf::behavior cluster_gateway(caf::event_based_actor* self,
                              caf::actor supervisor);

/// A random (version 4) UUID, lower-case, 36 characters.
std::string make_token();

} // namespace resized::actors
