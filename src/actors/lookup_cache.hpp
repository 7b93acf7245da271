// The status actor's caches of task records and result images, shared with
// the HTTP side. The status actor writes them (every record it writes or
// reads from Redis that can answer for its task: a final one, or one of a
// task this node runs; every result), and so does the lookup reader, only
// what never changes (final records and results it read from Redis,
// lookup_reader.hpp); clients' lookups read them straight
// from the io threads (actor_backend), so they never wait behind the
// actor's Redis calls (an accept carries the whole input, tens of
// milliseconds for a large photo with Redis' AOF; a hung Redis holds the
// actor for a whole timeout) or behind its mailbox. Answered from here:
// - a result, and a final record: they never change;
// - a plain poll (no wait) of a task this node runs: every change of its
//   record is written through the actor, which caches it after Redis took
//   it, so the entry is the record as Redis has it, or one change behind
//   while the actor writes the next (the actor itself answers lookups
//   before the changes queued in its mailbox, so it would not do better).
// Anything else goes to the lookup reader (another API node's tasks,
// misses, image fetches; it hands long polls of tasks still open on to the
// actor) or to the actor (long polls of this node's open tasks, which it
// holds).
//
// One mutex around both LRU maps, held only to find, insert or drop an
// entry: no I/O, and result bytes are shared, never copied, under it.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "actors/lru_cache.hpp"
#include "common/service.hpp"
#include "common/task_record.hpp"

namespace resized::actors {

class lookup_cache {
public:
  struct record_entry {
    task_record record;
    int64_t expires_at_ms; // the result TTL, as in Redis
  };
  struct image_entry {
    std::shared_ptr<const std::string> bytes;
    int64_t expires_at_ms;
  };

  /// At most `entries` records and `entries` images of `image_bytes` in all.
  lookup_cache(size_t entries, uint64_t image_bytes);

  // -- the status actor's side: copies in and out, as its code reads best
  std::optional<record_entry> record(const std::string& token);
  void put_record(const std::string& token, record_entry entry);
  void erase_record(const std::string& token);
  void put_image(const std::string& token, image_entry entry);
  void erase_image(const std::string& token);

  // -- any thread's: what a client may be answered without the actor
  /// `token`'s record if it is cached (so current: see the top) and not
  /// expired.
  std::optional<task_record> current_record(const std::string& token);
  /// `token`'s result if its record is cached as SUCCESS and the image is
  /// cached too, neither expired.
  std::optional<image_blob> result(const std::string& token);
  /// `token`'s result image bytes if cached and not expired; null if not.
  std::shared_ptr<const std::string> live_image(const std::string& token);

  /// Whether the status actor's store is on hold (a call found Redis hung;
  /// status_actor.hpp): set and cleared by the actor; the lookup reader
  /// then refuses at once too, instead of waiting out a timeout per read.
  void set_store_held(bool held) { store_held_.store(held); }
  bool store_held() const { return store_held_.load(); }

private:
  std::mutex mutex_;
  lru_cache<std::string, record_entry> records_;
  lru_cache<std::string, image_entry> images_;
  std::atomic<bool> store_held_{false};
};

} // namespace resized::actors
