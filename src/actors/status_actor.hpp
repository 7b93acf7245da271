// The status actor: one per API node, spawned detached because it does
// blocking Redis I/O on its own hiredis connection. Holds task records in a
// bounded LRU cache and result images in a byte-bounded LRU cache (a
// lookup_cache, which the HTTP side reads final records and results from
// without asking this actor); writes every change through to Redis; answers
// lookups from the cache, then Redis.
//
// Messages (see messages.hpp):
//   (accept_atom, task_record, job, content key)
//                                           record + input + pending set,
//                                           one transaction, which also
//                                           reads the content index →
//                                           (stored, finished twin or ""),
//                                           or (false, why for the client
//                                           or "")
//   (forget_atom, token, content key)       an accept its supervisor gave
//                                           up on (the client got a 503):
//                                           undone if it was stored
//   recover_atom                            this node's pending tasks'
//                                           records (no inputs)
//   (inputs_atom, tokens)                   records and inputs of these
//                                           of this node's pending tasks
//   (update_atom, task_record)              cache + HSET/EXPIRE; a
//                                           progress change after a
//                                           final record is dropped
//   (result_atom, task_record, bytes, content key)
//                                           SET image, HSET, and the
//                                           content index (MULTI), then
//                                           cache (a final record or
//                                           result Redis did not take is
//                                           kept, and shown once taken)
//   (clone_atom, original, task_record, content key) → bool
//                                           the record becomes a copy of
//                                           the original's SUCCESS; the
//                                           content index moves to it
//   (status_atom, token, wait_ms, status_replier)
//                                           cache → Redis → unknown_token;
//                                           wait_ms > 0 and not final: the
//                                           replier waits (long poll) until
//                                           a final record is written here,
//                                           or, for a task run by another
//                                           API node, seen in Redis (when
//                                           Redis announces it, and every
//                                           recheck interval), or until
//                                           wait_ms → current record
//   (wake_atom, token, waiter id)           a waiter's recheck or deadline
//   (finished_atom, token)                  from the listener: Redis
//                                           announced the token's final
//                                           record; its waiters here (a
//                                           task another node runs) get it
//                                           from Redis at once
//   flush_atom                              the writes Redis failed, tried
//                                           again in order (final records,
//                                           results, undone accepts) until
//                                           they succeed
//   watch_atom                              every watch interval: PING
//                                           when no call reached Redis
//                                           meanwhile, so an outage (and
//                                           its end) is logged while idle
//   back_atom                               from the probe: Redis
//                                           answered; the store is tried
//                                           again (below)
//   drain_atom → true                       shutdown: held long polls get
//                                           their current record, new ones
//                                           are answered at once
//   (image_atom, token, image_replier)      cache → Redis → unknown_token
//
// Redis availability. A call that times out puts the store on hold until
// Redis answers a probe:
//
//   up ──a call times out──▶ held ──back_atom──▶ PING here ──ok──▶ up
//                             ▲                      │
//                             └───── times out ──────┘
//
// While held, no call waits for Redis: each fails at once (the cache still
// answers, the rest is told store_unavailable), and a probe actor, detached
// with a connection of its own, PINGs Redis at most once per retry interval
// until it gets a reply. A hung Redis (stopped, or a network black hole:
// connects and commands time out rather than fail) thus costs this actor
// one timeout, in the call that finds it, instead of one per watch tick,
// retry and lookup; and its return is seen at the probe's first reply (the
// PING a stopped server resumes to). Backing the attempts off here instead
// would still block the actor a whole timeout per attempt, and see Redis
// back only at the next one. A refusal (Redis stopped, port closed) holds
// nothing: it costs no wait, so each call tries again and sees Redis back
// at once. The PING after back_atom logs `redis connection back` (the probe
// logs nothing); the kept writes follow at once.
#pragma once

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <caf/actor.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "actors/lookup_cache.hpp"
#include "actors/messages.hpp"
#include "store/task_store.hpp"

namespace resized::actors {

struct status_config {
  store::redis_settings redis;
  std::chrono::seconds result_ttl{86400};
  size_t cache_entries = 10000;
  uint64_t image_cache_bytes = 64ull << 20;
  /// The caches, shared with actor_backend; null: the actor makes its own
  /// of cache_entries and image_cache_bytes.
  std::shared_ptr<lookup_cache> cache;
  std::string node; // API node name: key of its pending set
  /// Long polls on a task this node does not run look at Redis this often,
  /// besides when Redis announces its end (a listener actor, detached with
  /// a subscriber connection of its own, hears finished_channel).
  std::chrono::milliseconds recheck{1000};
  size_t max_waiters = 4096; // long polls held at once; beyond: answered now
  /// Writes Redis failed are tried again this often until they succeed;
  /// while the store is on hold, the probe PINGs Redis at most this often.
  std::chrono::milliseconds retry_interval{1000};
  /// Redis is PINGed after this long without a call (0: never).
  std::chrono::milliseconds watch_interval{1000};
  /// Result images kept for Redis while it is away, in bytes at most
  /// (queue.max-bytes); a result beyond ends its task FAILURE
  /// result_not_stored instead (a small record, kept like the others).
  uint64_t max_unwritten_bytes = 256ull << 20;
};

struct status_state {
  /// A long poll waiting for its task to finish.
  struct waiter {
    uint64_t id;
    /// Monotonic: a wall-clock deadline in whole ms ended a wait up to 1 ms
    /// early (and would follow clock steps).
    std::chrono::steady_clock::time_point deadline;
    status_replier reply;
  };

  std::shared_ptr<lookup_cache> cache; // records and result images
  /// Long polls by token.
  std::unordered_map<std::string, std::vector<waiter>> waiters;
  size_t waiter_count = 0;
  uint64_t next_waiter = 1;
  /// Tasks accepted or updated by this node and not final yet: their final
  /// record is written through this actor, so their waiters need no
  /// rechecks in Redis.
  std::unordered_set<std::string> open_here;
  /// A write Redis failed (or did not confirm in time), kept to be made
  /// when it answers again: nothing a client was told may be lost.
  struct unwritten_write {
    enum class kind {
      record, // a final record (FAILURE)
      result, // a SUCCESS record with its image
      forget, // undo an accept whose client was told 503 (Redis may have
              // run the transaction after the timeout all the same)
    };
    kind what;
    task_record record; // forget: only the token
    std::shared_ptr<const std::string> image;
    std::string content; // content key (result, forget)
    uint32_t tries = 0;  // result writes in a row Redis cut off while it
                         // answered a PING (flush_unwritten), counted a
                         // retry interval apart
    std::chrono::steady_clock::time_point counted_at{}; // the last counted
  };
  /// In the order they were to be made; bounded by max_unwritten.
  std::deque<unwritten_write> unwritten;
  /// The tokens of the final records and results among them. Until Redis
  /// takes it, a task's final record is not shown: lookups here get the
  /// task IN_PROGRESS (shown_until_stored), as every other API node sees
  /// it in Redis, and its long polls wait on. A node that stops before
  /// Redis is back runs the task again at its next start, so a SUCCESS or
  /// FAILURE shown from memory would be taken back. Changes of the task
  /// after it are dropped, as after a cached final record.
  std::unordered_set<std::string> final_kept;
  /// The latest progress record (IN_PROGRESS with its node and attempts,
  /// or PENDING again) of each open task whose write Redis failed, made
  /// after the kept writes: other API nodes then see where the task is, and
  /// a restart counts the attempts a crashing input has used. Its task's
  /// final record replaces it. Bounded by max_unwritten.
  std::map<std::string, task_record> unwritten_progress;
  static constexpr size_t max_unwritten = 100000;
  uint64_t unwritten_bytes = 0; // their images' bytes
  /// The last kept write tried failed for lack of memory in Redis (a
  /// submission refused behind it is told so, not "unavailable").
  bool flush_refused = false;
  uint64_t max_unwritten_bytes = 256ull << 20;
  bool flush_scheduled = false;
  /// The writes Redis failed since it last took them all: the first is
  /// logged (`redis writes failing`), the rest counted, and the counts
  /// logged once the kept ones are made (`redis writes made again`), so an
  /// outage under load is a few lines, not a few per task.
  struct failing_writes {
    bool on = false;
    std::chrono::steady_clock::time_point since;
    uint64_t skipped = 0;    // progress records, result copies: not retried
    uint64_t kept = 0;       // final records, results, undos: kept to retry
    uint64_t made = 0;       // kept ones made since
    uint64_t superseded = 0; // kept progress records a later change of
                             // their task replaced before they were made
    uint64_t dropped = 0;    // kept ones given up (the retry list was full)
  } failing;
  std::chrono::milliseconds retry_interval{1000};
  std::chrono::milliseconds watch_interval{1000};
  std::chrono::milliseconds recheck{1000};
  size_t max_waiters = 4096;
  bool draining = false; // shutdown: long polls are not held any more
  std::unique_ptr<store::task_store> store;
  /// The probe while the store is on hold (see above); null otherwise.
  caf::actor probe;
  std::chrono::seconds ttl{86400};
  std::string node;
  uint64_t redis_errors = 0;

  static inline const char* name = "status";
};

using status_actor_type = caf::stateful_actor<status_state>;

caf::behavior status_actor(status_actor_type* self, status_config cfg);

} // namespace resized::actors
