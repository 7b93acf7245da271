// The lookup reader: one per API node beside the status actor, spawned
// detached because it reads Redis blocking, on a connection of its own.
// Clients' lookups the cache cannot answer (another API node's task, a
// record evicted from the cache, an unknown token; an image fetch) are read
// here instead of by the status actor, which makes every write one call at
// a time on its connection: an accept carries the whole input (tens of
// milliseconds for a large photo with Redis' AOF), and those lookups waited
// behind it. A long poll is read here first too: a final or unknown task is
// answered at once, and only an open one goes on to the status actor, which
// holds it until its task ends (and reads the record again, so a task that
// ended in between is answered at once there).
//
// What it reads that can answer later lookups it caches in the status
// actor's lookup_cache: a final record, a result image. Both never change,
// so writing them from here cannot disagree with the status actor (a final
// record read from Redis may replace this node's open record of the same
// task a moment before the status actor does). It never drops an entry
// (the status actor's records of its own open tasks are current; a miss
// here proves nothing about them).
//
// Messages (see messages.hpp):
//   (status_atom, token, wait_ms, status_replier)
//                         cache → Redis → unknown_token; with wait_ms > 0
//                         a task still open is handed to the status actor
//   (image_atom, token, image_replier)
//                         cache → Redis → unknown_token; a cached record
//                         still open is read again from Redis (the client
//                         heard the task ended, the cache may be behind)
//   release_atom          the store's hold is over: try Redis again
//
// While the status actor's store is on hold (a call of its found Redis hung:
// lookup_cache::store_held), lookups Redis would answer are refused at once
// (store_unavailable), as the actor refuses them. A read of its own that
// times out puts this reader's store on hold the same way until the retry
// interval has passed (one timeout per interval at most, before the actor
// notices). A refused connection holds nothing.
#pragma once

#include <chrono>
#include <memory>

#include <caf/actor.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "actors/lookup_cache.hpp"
#include "store/task_store.hpp"

namespace resized::actors {

struct reader_config {
  store::redis_settings redis;
  std::chrono::seconds result_ttl{86400}; // how long it caches what it reads
  std::shared_ptr<lookup_cache> cache;    // the status actor's
  std::chrono::milliseconds retry_interval{1000};
  caf::actor status; // holds the long polls of open tasks
};

struct reader_state {
  std::unique_ptr<store::task_store> store;
  reader_config cfg;
  static inline const char* name = "lookup-reader";
};

using reader_actor_type = caf::stateful_actor<reader_state>;

caf::behavior lookup_reader(reader_actor_type* self, reader_config cfg);

} // namespace resized::actors
