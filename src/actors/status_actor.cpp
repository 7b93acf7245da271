#include "actors/status_actor.hpp"

#include <algorithm>

#include "actors/lookup_answers.hpp"
#include "common/log.hpp"
#include "common/metrics.hpp"

namespace resized::actors {

namespace {

// When an entry cached now expires: the result TTL, as in Redis.
int64_t expiry(const status_state& st) {
  return now_ms() + st.ttl.count() * 1000;
}

void count_redis_error(status_actor_type* self) {
  ++self->state.redis_errors;
  metrics::redis_error();
}

bool expired(int64_t expires_at_ms) {
  return expires_at_ms <= now_ms();
}

// A write Redis failed: the first kept for a retry since Redis last took
// every write is logged (warn) and opens the stretch that "redis writes
// made again" sums up; later ones, and one not retried outside such a
// stretch (its caller answers for it: a submission refused, a copy of a
// twin's result not made), at debug. `kept` says whether it is retried.
void note_write_failed(status_actor_type* self, const char* op,
                       const std::string& token, const failure& err,
                       bool kept) {
  auto& f = self->state.failing;
  if (!kept && !f.on) {
    log::debug("redis write failed, not retried",
               {{"op", op}, {"token", token}, {"error", err.message}});
    return;
  }
  ++(kept ? f.kept : f.skipped);
  if (f.on) {
    log::debug(kept ? "redis write failed, will retry"
                    : "redis write failed, not retried",
               {{"op", op}, {"token", token}, {"error", err.message}});
    return;
  }
  f.on = true;
  f.since = std::chrono::steady_clock::now();
  log::warn("redis writes failing",
            {{"op", op},
             {"token", token},
             {"error", err.message},
             {"then", "final records, results and each open task's latest "
                      "progress kept and made once redis answers (counts "
                      "follow in \"redis writes made again\")"}});
}

// Every kept write is made: the failures since the first are summed up.
void note_writes_back(status_actor_type* self) {
  auto& st = self->state;
  if (!st.failing.on || !st.unwritten.empty() || !st.unwritten_progress.empty())
    return;
  auto f = std::exchange(st.failing, {});
  std::chrono::duration<double> failing_for =
      std::chrono::steady_clock::now() - f.since;
  log::info("redis writes made again", {{"failing_s", failing_for.count(), 1},
                                        {"kept", f.kept},
                                        {"made", f.made},
                                        {"superseded", f.superseded},
                                        {"dropped", f.dropped},
                                        {"skipped", f.skipped}});
}

void note_store_error(status_actor_type* self, const char* op,
                      const std::string& token, const failure& err) {
  count_redis_error(self);
  note_write_failed(self, op, token, err, false);
}

// -- writes Redis failed
// -------------------------------------------------------

using unwritten_write = status_state::unwritten_write;

const char* op_name(unwritten_write::kind what) {
  switch (what) {
  case unwritten_write::kind::record:
    return "put_record";
  case unwritten_write::kind::result:
    return "put_result";
  case unwritten_write::kind::forget:
    return "forget_accepted";
  }
  return "?";
}

outcome<bool> write_now(status_actor_type* self, const unwritten_write& w) {
  auto& st = self->state;
  switch (w.what) {
  case unwritten_write::kind::record:
    return st.store->put_record(w.record, st.ttl, st.node);
  case unwritten_write::kind::result:
    return st.store->put_result(w.record, *w.image, st.ttl, st.node, w.content);
  case unwritten_write::kind::forget:
    return st.store->forget_accepted(w.record.token, st.node, w.content);
  }
  return true;
}

// The answer to a submission Redis has no memory for.
const std::string out_of_memory = "the task store (Redis) is out of memory: "
                                  "nothing was accepted, try again later";

// Whether Redis refused the write for lack of memory (store_full: -OOM at
// maxmemory): it was not made, and a result may never fit (larger than
// the memory Redis can have free). Other writes are kept and retried,
// whatever stopped them.
bool refused(const failure& err) {
  return err.code == error_code::store_full;
}

// `rec` (SUCCESS) as the FAILURE result_not_stored it becomes when its
// result cannot be stored, saying `why`: a SUCCESS whose image is nowhere
// would answer its image URL with 404.
task_record not_stored(task_record rec, std::string why) {
  rec.status = task_status::failure;
  rec.error_code = std::string{to_string(error_code::result_not_stored)};
  rec.error_message = std::move(why);
  rec.width = rec.height = 0;
  rec.output_bytes = 0;
  rec.etag.clear();
  return rec;
}

// `rec` when Redis refused to store its `bytes` of result. The client's
// message leaves Redis' address out (it is in the log line that reports
// the refusal).
task_record unstored(task_record rec, uint64_t bytes) {
  return not_stored(
      std::move(rec),
      fmt::format("the task store (Redis) refused to store the result ({} "
                  "bytes): it is out of memory (maxmemory); submit the task "
                  "again later",
                  bytes));
}

void note_unstored(const task_record& rec, uint64_t bytes, const failure& err) {
  metrics::result_refused();
  log::error("redis refused a result: the task ends FAILURE",
             {{"token", rec.token},
              {"code", to_string(error_code::result_not_stored)},
              {"bytes", bytes},
              {"error", err.message}});
}

// Whether a result write can never be made, so that its task ends FAILURE
// result_not_stored instead of being kept for a retry: Redis refused it for
// memory (refused), or the image a twin's result points at is gone (the
// store's result_not_stored: its twin's record expired meanwhile).
bool never_stored(const failure& err) {
  return refused(err) || err.code == error_code::result_not_stored;
}

// `rec`'s FAILURE when its result write can never be made (never_stored),
// logged and counted. A twin whose shared image is missing because that
// task's own result was not stored (its FAILURE is cached here) says why
// that one failed.
task_record result_failed(const status_state& st, task_record rec,
                          uint64_t bytes, const failure& err) {
  if (err.code != error_code::result_not_stored) {
    note_unstored(rec, bytes, err);
    return unstored(std::move(rec), bytes);
  }
  if (auto source = st.cache->record(rec.image_token);
      source && source->record.status == task_status::failure &&
      source->record.error_code == to_string(error_code::result_not_stored))
    return not_stored(std::move(rec), source->record.error_message);
  log::warn("identical task's result gone before it was shared: the task "
            "ends FAILURE",
            {{"token", rec.token},
             {"from", rec.image_token},
             {"code", to_string(error_code::result_not_stored)}});
  return not_stored(std::move(rec), err.message);
}

// Writes of a kept result in a row that Redis cut off while it answered
// the PING sent right after, before the result is given up
// (result_rejected).
constexpr uint32_t max_result_tries = 3;

// `rec`'s FAILURE when Redis cut off its result's write `tries` times in a
// row while it answered a PING each time; logged and counted.
task_record result_rejected(task_record rec, uint64_t bytes, uint32_t tries,
                            const failure& err) {
  metrics::result_refused();
  log::error("redis cuts off one result while it answers otherwise: the "
             "task ends FAILURE",
             {{"token", rec.token},
              {"code", to_string(error_code::result_not_stored)},
              {"bytes", bytes},
              {"tries", tries},
              {"error", err.message}});
  return not_stored(
      std::move(rec),
      fmt::format("the task store (Redis) closed the connection on the "
                  "result's write ({} bytes) {} times in a row while it "
                  "answered other requests (is the result past its "
                  "client-query-buffer-limit or proto-max-bulk-len?); submit "
                  "the task again later",
                  bytes, tries));
}

void schedule_flush(status_actor_type* self) {
  auto& st = self->state;
  if (st.flush_scheduled ||
      (st.unwritten.empty() && st.unwritten_progress.empty()))
    return;
  st.flush_scheduled = true;
  self->delayed_send(self, st.retry_interval, flush_atom::value);
}

// Whether the cached `rec` can answer for its task: a final record never
// changes, and this actor writes every change of the tasks this node runs.
// An open task of another API node moves on in Redis, not here.
bool cache_answers(const status_state& st, const task_record& rec) {
  return is_final(rec.status) || st.open_here.count(rec.token) != 0;
}

// Caches `rec` until `expires_at_ms` if it can answer for its task, else
// drops what the cache held for its token: the cache holds only records
// that can answer, which the io threads rely on (lookup_cache.hpp). It
// stays so: a token leaves open_here only with its final record, which
// comes through here too. For a record this actor wrote, record_written
// calls it once open_here is up to date.
void cache_record(status_state& st, task_record rec, int64_t expires_at_ms) {
  auto token = rec.token;
  if (!cache_answers(st, rec)) {
    st.cache->erase_record(token);
    return;
  }
  st.cache->put_record(token, {std::move(rec), expires_at_ms});
}

// Counts a task whose final record Redis has taken, by its status
// (resized_tasks_total): a result Redis refused counts as the FAILURE that
// took its place, and a write kept through an outage once it is made.
void count_final(const task_record& rec) {
  metrics::task_final(to_string(rec.status));
}

void take_stored_final(status_actor_type* self, const std::string& token);

// Whether the final record Redis holds for `rec`'s task is `rec` itself:
// an earlier try of this very write that failed on the way back (a
// timeout after Redis ran it, a connection lost before its answer), not
// another node's. Redis away again: no (as before, another's).
bool stored_already(status_actor_type* self, const task_record& rec) {
  auto got = self->state.store->get_record(rec.token);
  if (!got || !got.value())
    return false;
  const auto& s = *got.value();
  return s.status == rec.status && s.node == rec.node &&
         s.finished_at_ms == rec.finished_at_ms && s.etag == rec.etag &&
         s.error_code == rec.error_code;
}

// The answer to a read of this node's pending tasks: the tasks, or the
// error (counted) for the supervisor to try again.
caf::result<std::vector<store::pending_task>>
pending_answer(status_actor_type* self,
               outcome<std::vector<store::pending_task>> res) {
  if (!res) {
    count_redis_error(self);
    return caf::make_error(caf::sec::runtime_error, res.error().message);
  }
  return std::move(res).value();
}

bool answer_waiters_from_redis(status_actor_type* self,
                               const std::string& token, std::string_view by);
void record_written(status_actor_type* self, task_record rec,
                    int64_t expires_at_ms, bool stored = true);

// A progress record of `rec`'s task was refused: Redis holds a final record
// (another node's run), which stands. This node stops answering for the
// task from its cache; lookups read Redis from now on, and the long polls
// held for it are answered with that record now (not at their deadline:
// the other node's announcement was ignored while the task was open here).
void final_in_redis_stands(status_actor_type* self, const task_record& rec) {
  auto& st = self->state;
  st.open_here.erase(rec.token);
  st.cache->erase_record(rec.token);
  log::debug("progress after a final record: Redis kept the final",
             {{"token", rec.token}, {"status", to_string(rec.status)}});
  answer_waiters_from_redis(self, rec.token, "result");
}

// Makes the kept progress records, after the other kept writes, stopping
// at the first that fails again. A task's final record replaced its kept
// progress when it came, and Redis refuses a progress record over a final
// one (another node's), so none can overwrite where a task ended.
bool flush_progress(status_actor_type* self) {
  auto& st = self->state;
  while (!st.unwritten_progress.empty()) {
    auto pos = st.unwritten_progress.begin();
    auto res = st.store->put_record(pos->second, st.ttl, st.node);
    if (!res) {
      count_redis_error(self);
      return false;
    }
    log::debug("redis write made after a failure",
               {{"op", "put_record"},
                {"token", pos->first},
                {"left", st.unwritten_progress.size() - 1}});
    ++st.failing.made;
    if (!res.value())
      final_in_redis_stands(self, pos->second);
    st.unwritten_progress.erase(pos);
  }
  note_writes_back(self);
  return true;
}

// Forgets the kept progress record of `token`, which a later change of its
// task replaces (a final record, or a progress record Redis took).
void supersede_progress(status_state& st, const std::string& token) {
  if (st.unwritten_progress.erase(token) != 0) {
    ++st.failing.superseded;
  }
}

// Keeps the progress record `rec`, whose write just failed with `err`, in
// place of any kept before for its task.
void keep_progress(status_actor_type* self, const task_record& rec,
                   const failure& err) {
  auto& st = self->state;
  count_redis_error(self);
  auto pos = st.unwritten_progress.find(rec.token);
  if (pos != st.unwritten_progress.end()) {
    pos->second = rec;
    ++st.failing.superseded;
  } else if (st.unwritten_progress.size() >= status_state::max_unwritten) {
    note_write_failed(self, "put_record", rec.token, err, false); // skipped
    return;
  } else {
    st.unwritten_progress.emplace(rec.token, rec);
  }
  note_write_failed(self, "put_record", rec.token, err, true);
  schedule_flush(self);
}

// Makes the kept writes in order, stopping at the first that fails again
// (Redis is still away), then the kept progress records. True when none is
// left.
bool flush_unwritten(status_actor_type* self) {
  auto& st = self->state;
  while (!st.unwritten.empty()) {
    auto& w = st.unwritten.front();
    auto res = write_now(self, w);
    st.flush_refused = !res && refused(res.error());
    if (!res) {
      count_redis_error(self);
      if (w.what != unwritten_write::kind::result)
        return false;
      // A result whose write Redis cuts off (the connection closed under
      // it: no timeout, no error reply) while it answers the PING sent
      // right after, max_result_tries times in a row, is the write itself
      // (past the server's client-query-buffer-limit or proto-max-bulk-len,
      // say): kept, it would refuse every submission behind it for good.
      // An outage (the PING fails, or the call timed out and the store is
      // held) or an error reply of Redis' state (READONLY in a failover,
      // LOADING, NOREPLICAS: Redis answers PING meanwhile) starts the count
      // again: those writes are kept until Redis takes them.
      bool rejected = false;
      if (!never_stored(res.error())) {
        // Tries count a retry interval apart at least: each submission
        // flushes too, and three of them in a few milliseconds prove less
        // than a write cut off for seconds.
        bool cut_off = !st.store->connected() && !st.store->held();
        auto now = std::chrono::steady_clock::now();
        if (!cut_off || !st.store->ping())
          w.tries = 0;
        else if (w.tries == 0 || now - w.counted_at >= st.retry_interval) {
          ++w.tries;
          w.counted_at = now;
        }
        rejected = w.tries >= max_result_tries;
        if (!rejected)
          return false;
      }
      // A result Redis has no memory for (it may never have), rejects, or
      // a twin's whose image is gone: its task's FAILURE record takes its
      // place, tried next (a record is small: it lands once Redis has any
      // room, and waits for it like the rest).
      auto bytes = w.image->size();
      st.unwritten_bytes -= bytes;
      w = {unwritten_write::kind::record,
           rejected
               ? result_rejected(std::move(w.record), bytes, w.tries,
                                 res.error())
               : result_failed(st, std::move(w.record), bytes, res.error()),
           nullptr, std::string{}};
      continue; // shown once Redis takes it, as the result would have been
    }
    log::debug("redis write made after a failure",
               {{"op", op_name(w.what)},
                {"token", w.record.token},
                {"left", st.unwritten.size() - 1}});
    ++st.failing.made;
    auto done = std::move(w);
    st.unwritten.pop_front();
    if (done.image)
      st.unwritten_bytes -= done.image->size();
    // Kept writes are final records and results (and undone accepts).
    if (done.what != unwritten_write::kind::forget) {
      st.final_kept.erase(done.record.token);
      if (res.value() || stored_already(self, done.record)) {
        // Redis holds it now: shown from here on, and its long polls get it.
        if (done.image && done.record.image_token.empty())
          st.cache->put_image(done.record.token, {done.image, expiry(st)});
        record_written(self, std::move(done.record), expiry(st));
      } else { // another node's final record was there first
        take_stored_final(self, done.record.token);
      }
    }
    if (st.unwritten.empty())
      note_writes_back(self); // this call made the last kept write
  }
  return flush_progress(self);
}

// Appends `w` to the kept writes, made in order by the next flush.
void keep(status_actor_type* self, unwritten_write w) {
  auto& st = self->state;
  if (w.image)
    st.unwritten_bytes += w.image->size();
  if (w.what != unwritten_write::kind::forget)
    st.final_kept.insert(w.record.token);
  st.unwritten.push_back(std::move(w));
  schedule_flush(self);
}

// Keeps `w` (whose write just failed with `err`) to be made later. A result
// past the bound on kept images is kept as its task's FAILURE record
// instead, which is returned: the caller answers and caches that.
std::optional<task_record>
keep_for_retry(status_actor_type* self, unwritten_write w, const failure& err) {
  auto& st = self->state;
  std::optional<task_record> replaced;
  count_redis_error(self);
  if (st.unwritten.size() >= status_state::max_unwritten) {
    // A bound on memory through a long outage. A final write given up here
    // is not lost either: its task stays in this node's pending set and
    // runs again at the node's next start.
    if (st.failing.dropped++ == 0)
      log::error("redis write failed, retry list full: dropped (the task "
                 "runs again at this node's next start; the count follows "
                 "in \"redis writes made again\")",
                 {{"op", op_name(w.what)},
                  {"token", w.record.token},
                  {"error", err.message},
                  {"kept", st.unwritten.size()}});
    return replaced;
  }
  if (w.image &&
      st.unwritten_bytes + w.image->size() > st.max_unwritten_bytes) {
    // A bound on the images kept through an outage: the task ends FAILURE
    // (a small record, kept like the others) rather than the node running
    // out of memory with every result it makes meanwhile.
    auto bytes = w.image->size();
    log::error("redis away and results kept for it full: the task ends "
               "FAILURE result_not_stored",
               {{"token", w.record.token},
                {"bytes", bytes},
                {"kept_bytes", st.unwritten_bytes}});
    metrics::result_refused();
    auto rec = not_stored(
        std::move(w.record),
        fmt::format("the task store (Redis) was unavailable and this node "
                    "keeps at most {} bytes of results for it; submit the "
                    "task again later",
                    st.max_unwritten_bytes));
    replaced = rec;
    w = {unwritten_write::kind::record, std::move(rec), nullptr, std::string{}};
  }
  note_write_failed(self, op_name(w.what), w.record.token, err, true);
  keep(self, std::move(w));
  return replaced;
}

// Whether `rec`, a twin's result, points at an image whose own result
// write is kept for a retry: it is kept behind that one (kept writes are
// made in order).
bool waits_for_its_image(const status_state& st, const task_record& rec) {
  return !rec.image_token.empty() &&
         st.unwritten.size() < status_state::max_unwritten &&
         std::any_of(st.unwritten.begin(), st.unwritten.end(),
                     [&](const unwritten_write& w) {
                       return w.what == unwritten_write::kind::result &&
                              w.record.token == rec.image_token;
                     });
}

// Whether `rec` comes after its task's final record, cached here, and is
// dropped: a final record never changes (caches and clients rely on it).
// It happens when the supervisor gave up waiting for a copy of a twin's
// result and queued the task, and the copy was made after all: the run's
// progress and its own final record follow the copy's SUCCESS.
bool dropped_after_final(status_actor_type* self, const task_record& rec) {
  auto& st = self->state;
  if (auto kept = st.final_kept.find(rec.token); kept != st.final_kept.end()) {
    log::debug("change after a final record kept for redis: dropped",
               {{"token", rec.token}, {"status", to_string(rec.status)}});
    return true;
  }
  auto cached = st.cache->record(rec.token);
  if (!cached || !is_final(cached->record.status))
    return false;
  st.open_here.erase(rec.token);
  log::debug("change after a final record: dropped",
             {{"token", rec.token},
              {"status", to_string(rec.status)},
              {"final", to_string(cached->record.status)}});
  return true;
}

// What became of a write.
enum class written {
  made,
  kept,       // for a retry: Redis did not take it
  superseded, // Redis held another final record, which stands
};

// Makes `w` now, or keeps it for a retry if Redis did not take it (made in
// order with the others kept).
written write_or_keep(status_actor_type* self, unwritten_write w) {
  auto res = write_now(self, w);
  if (!res) {
    keep_for_retry(self, std::move(w), res.error());
    return written::kept;
  }
  note_writes_back(self);
  if (!res.value() && w.what != unwritten_write::kind::forget) {
    take_stored_final(self, w.record.token);
    return written::superseded;
  }
  return written::made;
}

// Writes the final record `rec`, kept for a retry if Redis did not take it
// (a later change would supersede it: made in order).
written put_final(status_actor_type* self, const task_record& rec) {
  return write_or_keep(
      self, {unwritten_write::kind::record, rec, nullptr, std::string{}});
}

// Caches `rec`, just read from Redis, if it can answer later lookups,
// until Redis lets it expire (`stored_until`, its PTTL read with it);
// otherwise drops what the cache held for its token. An open record of a
// task this node runs stays as this actor cached it: it wrote every change,
// and Redis may be a change behind (a progress write that failed).
void remember_read(status_state& st, const std::string& token,
                   const std::optional<task_record>& rec,
                   int64_t stored_until) {
  if (!rec) {
    st.cache->erase_record(token);
    return;
  }
  if (!is_final(rec->status) && st.open_here.count(token) != 0)
    return;
  cache_record(st, *rec, std::min(expiry(st), stored_until));
}

// Returns the record from the cache or Redis; nullopt when unknown.
outcome<std::optional<task_record>> find_record(status_actor_type* self,
                                                const std::string& token) {
  auto& st = self->state;
  if (auto hit = st.cache->record(token)) {
    if (!expired(hit->expires_at_ms))
      return std::optional<task_record>{hit->record}; // see cache_record
    // Redis may keep it longer: a twin's copy lengthens the record it
    // points at (EXPIRE GT), and so may another API node's result-ttl.
    st.cache->erase_record(token);
  }
  int64_t stored_until = 0;
  auto res = st.store->get_record(token, &stored_until);
  if (!res) {
    count_redis_error(self);
    return std::move(res).error();
  }
  remember_read(st, token, res.value(), stored_until);
  return std::move(res).value();
}

// A result image from the cache, else Redis (then cached); nullopt when it
// is gone.
outcome<image_found> find_image(status_actor_type* self,
                                const std::string& token) {
  auto& st = self->state;
  auto img = cached_or_stored_image(*st.store, *st.cache, token, expiry(st));
  if (!img)
    count_redis_error(self);
  return img;
}

// -- long polls ---------------------------------------------------------------

// Answers and forgets every waiter of `token` with `found` (answer_lookup:
// the record, or unknown_token for nullopt); `by` says what answered them
// (metrics::long_polls_answered). Counted before the answers go out: a
// client that reads /metrics once answered must find its poll counted.
void answer_waiters(status_actor_type* self, const std::string& token,
                    const std::optional<task_record>& found,
                    std::string_view by) {
  auto& st = self->state;
  auto i = st.waiters.find(token);
  if (i == st.waiters.end())
    return;
  auto waiters = std::move(i->second);
  st.waiters.erase(i);
  st.waiter_count -= waiters.size();
  metrics::long_polls_answered(by, waiters.size());
  metrics::long_polls_held(st.waiter_count);
  for (auto& w : waiters)
    answer_lookup(token, found, w.reply);
}

void answer_waiters(status_actor_type* self, const task_record& rec,
                    std::string_view by) {
  answer_waiters(self, rec.token, rec, by);
}

// What lookups show of a task whose final record `rec` Redis has not
// taken yet (status_state::final_kept): the task running, where and since
// when it ran, as Redis and every other API node show it.
task_record shown_until_stored(task_record rec) {
  task_record shown;
  shown.token = std::move(rec.token);
  shown.status = task_status::in_progress;
  shown.options = rec.options;
  shown.input_bytes = rec.input_bytes;
  shown.submitted_at_ms = rec.submitted_at_ms;
  shown.started_at_ms = rec.started_at_ms;
  shown.node = std::move(rec.node);
  shown.attempts = rec.attempts;
  return shown;
}

// Keeps the bookkeeping of tasks this node runs, caches `rec` until
// `expires_at_ms` (cache_record) and wakes its waiters once it is final
// and Redis took it (`stored`); a final record Redis did not take yet is
// kept (final_kept), shown as its task IN_PROGRESS meanwhile, and comes
// through here again once made. Called after every record this actor
// writes. The cache is updated first: a client told SUCCESS fetches the
// image at once, and the io thread (lookup_cache::result) or the lookup
// reader answers that from the cache, which must not still hold the open
// record then.
void record_written(status_actor_type* self, task_record rec,
                    int64_t expires_at_ms, bool stored) {
  auto& st = self->state;
  if (!is_final(rec.status) || !stored) {
    st.open_here.insert(rec.token);
    cache_record(st,
                 is_final(rec.status) ? shown_until_stored(std::move(rec))
                                      : std::move(rec),
                 expires_at_ms);
    return;
  }
  count_final(rec);
  st.open_here.erase(rec.token);
  cache_record(st, rec, expires_at_ms);
  answer_waiters(self, rec, "result");
}

// Reads `token`'s record from Redis for its waiters here (a task another
// API node runs, whose changes this actor does not write) and answers them
// if it is final; `by` as for answer_waiters. True when they were answered.
bool answer_waiters_from_redis(status_actor_type* self,
                               const std::string& token, std::string_view by) {
  auto& st = self->state;
  int64_t stored_until = 0;
  auto fresh = st.store->get_record(token, &stored_until);
  if (!fresh) {
    count_redis_error(self);
    return false;
  }
  if (!fresh.value()) {
    if (st.open_here.count(token) != 0)
      return false; // runs here: its writes come through this actor
    // Gone (expired, or an accept undone): its waiters would otherwise
    // wait out their whole deadline for a record that never comes.
    answer_waiters(self, token, std::nullopt, by);
    return true;
  }
  remember_read(st, token, fresh.value(), stored_until);
  if (!is_final(fresh.value()->status))
    return false;
  answer_waiters(self, *fresh.value(), by);
  return true;
}

// Redis held another final record of `token` when this actor wrote one:
// the first stands (a task that ran on two nodes: an API node paused past
// its lease while a peer took its tasks over). What this actor cached and
// had open of it goes, and its waiters get Redis' record.
void take_stored_final(status_actor_type* self, const std::string& token) {
  auto& st = self->state;
  st.open_here.erase(token);
  st.cache->erase_record(token);
  st.cache->erase_image(token);
  log::warn("final record not written: another one was stored first, and "
            "stands (the task ran on two nodes)",
            {{"token", token}});
  answer_waiters_from_redis(self, token, "result");
}

// When waiter `id` of `token` should look again: at its deadline for a task
// this node runs (its final record comes through here), else after the
// recheck interval (another API node runs it; Redis will show the result).
void schedule_wake(status_actor_type* self, const std::string& token,
                   uint64_t id,
                   std::chrono::steady_clock::time_point deadline) {
  auto& st = self->state;
  // Rounded up: the wake never comes before the deadline.
  auto left = std::max(std::chrono::ceil<std::chrono::milliseconds>(
                           deadline - std::chrono::steady_clock::now()),
                       std::chrono::milliseconds{0});
  if (st.open_here.count(token) == 0)
    left = std::min(left, st.recheck);
  self->delayed_send(self, left, wake_atom::value, token, id);
}

// -- Redis availability (see status_actor.hpp) --------------------------------

struct probe_state {
  std::unique_ptr<store::task_store> store;
  static inline const char* name = "redis-probe";
};

// PINGs Redis on a quiet connection of its own (the status actor logs lost
// and back) until a PING is answered, then sends back_atom to `status` and
// quits; quits too when `status` is gone. At most one PING per `pace`; one
// that waited out the timeout (a hung server) is followed at once.
caf::behavior redis_probe(caf::stateful_actor<probe_state>* self,
                          store::redis_settings settings,
                          std::chrono::milliseconds pace, caf::actor status) {
  self->state.store =
      std::make_unique<store::task_store>(std::move(settings), true);
  self->monitor(status);
  self->set_down_handler([=](caf::down_msg&) { self->quit(); });
  self->send(self, probe_atom::value);
  return {
      [=](probe_atom) {
        auto started = std::chrono::steady_clock::now();
        if (self->state.store->ping()) {
          self->send(status, back_atom::value);
          self->quit();
          return;
        }
        auto spent = std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::steady_clock::now() - started);
        self->delayed_send(self, std::max(pace - spent, pace.zero()),
                           probe_atom::value);
      },
  };
}

struct listener_state {
  std::unique_ptr<store::finished_feed> feed;
  static inline const char* name = "redis-listener";
};

// Hears which tasks reached their final record, written by any node
// (store::finished_feed), and tells `status`, which answers the long polls
// waiting here for another node's task at once instead of at their next
// recheck. Waits at most 200 ms per turn, so that it quits soon after
// `status` is gone; while Redis is away, tries again every `retry` (what is
// announced meanwhile is lost: the rechecks find it).
caf::behavior finished_listener(caf::stateful_actor<listener_state>* self,
                                store::redis_settings settings,
                                std::chrono::milliseconds retry,
                                caf::actor status) {
  self->state.feed =
      std::make_unique<store::finished_feed>(std::move(settings));
  self->monitor(status);
  self->set_down_handler([=](caf::down_msg&) { self->quit(); });
  self->send(self, listen_atom::value);
  return {
      [=](listen_atom) {
        auto got = self->state.feed->next(std::chrono::milliseconds{200});
        if (!got) {
          self->delayed_send(self, retry, listen_atom::value);
          return;
        }
        for (auto& token : got.value())
          self->send(status, finished_atom::value, std::move(token));
        self->send(self, listen_atom::value);
      },
  };
}

// The store went on hold: starts the probe that ends it (one at a time).
void start_probe(status_actor_type* self) {
  auto& st = self->state;
  if (st.probe)
    return;
  st.probe = self->spawn<caf::detached>(redis_probe, st.store->settings(),
                                        st.retry_interval,
                                        caf::actor_cast<caf::actor>(self));
  self->monitor(st.probe);
}

} // namespace

caf::behavior status_actor(status_actor_type* self, status_config cfg) {
  auto& st = self->state;
  st.cache = cfg.cache ? cfg.cache
                       : std::make_shared<lookup_cache>(cfg.cache_entries,
                                                        cfg.image_cache_bytes);
  st.ttl = cfg.result_ttl;
  st.node = cfg.node;
  st.recheck = cfg.recheck;
  st.max_waiters = cfg.max_waiters;
  st.retry_interval = cfg.retry_interval;
  st.watch_interval = cfg.watch_interval;
  st.max_unwritten_bytes = cfg.max_unwritten_bytes;
  st.store = std::make_unique<store::task_store>(cfg.redis);
  st.store->hold_after_timeouts([self] {
    self->state.cache->set_store_held(true);
    start_probe(self);
  });
  self->set_down_handler([=](caf::down_msg& msg) {
    // Only a probe is monitored. One that answered is forgotten already;
    // one gone without an answer (it cannot fail, but if it did the store
    // would stay on hold for good) is replaced.
    auto& st = self->state;
    if (!st.probe || msg.source != st.probe.address())
      return;
    st.probe = nullptr;
    if (st.store->held())
      start_probe(self);
  });
  if (!st.store->connect())
    log::warn("redis not usable at start, will retry",
              {{"error", st.store->last_error()}}); // names the endpoint
  self->spawn<caf::detached>(finished_listener, cfg.redis, st.retry_interval,
                             caf::actor_cast<caf::actor>(self));
  if (st.watch_interval.count() > 0)
    self->delayed_send(self, st.watch_interval, watch_atom::value);
  return {
      [=](accept_atom, task_record& rec, const caf::message& job,
          const std::string& content) -> std::tuple<bool, std::string> {
        auto& st = self->state;
        if (st.store->held()) {
          // Nothing reaches Redis: nothing to undo, the client gets a 503.
          count_redis_error(self);
          return {false, {}};
        }
        // Writes kept from an outage go first (an undone accept must not
        // be undone after a newer task took its content index entry);
        // while they still fail, so would this one.
        if (!flush_unwritten(self))
          return {false, st.flush_refused ? out_of_memory : std::string{}};
        const auto& input = job.get_as<resize_job>(0).input;
        auto res = st.store->put_accepted(rec, input, st.node, st.ttl, content);
        if (!res && refused(res.error())) {
          // Redis is out of memory: the transaction was not made (nothing
          // to undo). The client's 503 says so.
          count_redis_error(self);
          return {false, out_of_memory};
        }
        if (!res && st.store->last_call_unsent()) {
          // No connection to Redis: it cannot run what it never got.
          count_redis_error(self);
          return {false, {}};
        }
        if (!res) {
          // The client gets a 503. Redis may still run the transaction (a
          // timeout, not a refusal): undo it, now or once Redis is back.
          keep_for_retry(self,
                         {unwritten_write::kind::forget, rec, nullptr, content},
                         res.error());
          return {false, {}};
        }
        note_writes_back(self);
        record_written(self, std::move(rec), expiry(st));
        return {true, std::move(res).value()};
      },
      [=](forget_atom, const std::string& token, const std::string& content) {
        // The supervisor gave up waiting for this accept and its client was
        // told 503 "nothing was accepted". Stored here after all (this
        // actor got to it late): undo it, or it would wait in this node's
        // pending set for a client that never got its token, and be the
        // content index's entry its retry waits for. An accept that was not
        // stored is not open here (a failed one keeps its own undo).
        auto& st = self->state;
        if (st.open_here.erase(token) == 0)
          return;
        st.cache->erase_record(token);
        log::warn("accept undone: stored after its client was answered "
                  "without the token (503 or 504: this actor answered too "
                  "late)",
                  {{"token", token}});
        task_record rec;
        rec.token = token;
        write_or_keep(self, {unwritten_write::kind::forget, std::move(rec),
                             nullptr, content});
      },
      [=](restore_atom, const task_record& rec, const caf::message& job) {
        // See supervisor's restore_atom. Best effort: Redis away again
        // leaves the task as the outage found it.
        auto& st = self->state;
        if (st.open_here.count(rec.token) == 0)
          return; // ended meanwhile (its final write is made)
        const std::string* input = nullptr;
        if (!job.empty() && job.match_element<resize_job>(0))
          input = &job.get_as<resize_job>(0).input;
        auto res = st.store->restore_open(rec, input, st.node, st.ttl);
        if (!res) {
          count_redis_error(self);
          log::warn("open task not written to redis again",
                    {{"token", rec.token}, {"error", res.error().message}});
        } else {
          log::debug("open task written to redis again",
                     {{"token", rec.token}, {"written", res.value()}});
        }
      },
      [=](recover_atom) {
        return pending_answer(
            self, self->state.store->load_pending(self->state.node,
                                                  store::pending_inputs::skip));
      },
      [=](inputs_atom, const std::vector<std::string>& tokens) {
        return pending_answer(
            self, self->state.store->load_pending(self->state.node, tokens));
      },
      [=](update_atom, task_record& rec) {
        auto& st = self->state;
        if (dropped_after_final(self, rec))
          return;
        auto expires = expiry(st);
        bool stored = true;
        if (is_final(rec.status)) {
          supersede_progress(st, rec.token);
          auto w = put_final(self, rec);
          if (w == written::superseded)
            return;
          stored = w == written::made;
        } else if (auto res = st.store->put_record(rec, st.ttl, st.node);
                   !res) {
          keep_progress(self, rec, res.error());
        } else {
          supersede_progress(st, rec.token);
          note_writes_back(self);
          if (!res.value()) {
            final_in_redis_stands(self, rec); // (see above)
            return;
          }
        }
        record_written(self, std::move(rec), expires, stored);
      },
      [=](result_atom, task_record& rec, std::string& bytes,
          const std::string& content) {
        auto& st = self->state;
        if (dropped_after_final(self, rec))
          return;
        // A twin's result points at the image of the task it followed.
        // That task may have ended as a copy of an earlier twin's result
        // (queued when the copy was not answered in time, and the copy made
        // after all: its own run's result was then dropped, above, and its
        // image never stored): point where that copy points.
        if (!rec.image_token.empty())
          if (auto source = find_record(self, rec.image_token);
              source && source.value() &&
              source.value()->status == task_status::success &&
              !source.value()->image_token.empty())
            rec.image_token = source.value()->image_token;
        supersede_progress(st, rec.token);
        auto expires = expiry(st);
        auto image = std::make_shared<const std::string>(std::move(bytes));
        bool stored = true;
        if (waits_for_its_image(st, rec)) {
          // Written now, it would find no image and end FAILURE while the
          // task it points at ends SUCCESS once Redis takes that result.
          ++st.failing.kept; // summed up with the others once made
          keep(self, {unwritten_write::kind::result, rec, image, content});
          stored = false;
        } else if (auto res = st.store->put_result(rec, *image, st.ttl, st.node,
                                                   content);
                   !res) {
          if (never_stored(res.error())) {
            if (refused(res.error()))
              count_redis_error(self);
            auto failed =
                result_failed(st, std::move(rec), image->size(), res.error());
            auto w = put_final(self, failed);
            if (w != written::superseded)
              record_written(self, std::move(failed), expires,
                             w == written::made);
            return;
          }
          if (auto failed = keep_for_retry(
                  self, {unwritten_write::kind::result, rec, image, content},
                  res.error())) {
            // past the bound on kept images: the task ends FAILURE
            st.cache->erase_image(failed->token);
            record_written(self, std::move(*failed), expires, false);
            return;
          }
          stored = false;
        } else {
          note_writes_back(self);
          if (!res.value()) {
            take_stored_final(self, rec.token);
            return;
          }
        }
        // A twin's result is the image it points at (cached under that
        // token if at all), not bytes of its own. A result kept for Redis
        // is cached once made (flush_unwritten).
        if (stored && rec.image_token.empty())
          st.cache->put_image(rec.token, {image, expires});
        record_written(self, std::move(rec), expires, stored);
      },
      [=](clone_atom, const std::string& original, task_record& rec,
          const std::string& content) -> bool {
        auto& st = self->state;
        auto found = find_record(self, original);
        if (!found || !found.value() ||
            found.value()->status != task_status::success)
          return false;
        // No copy of the image: the record points at it (copy_result), and
        // the store keeps it a full ttl from now, or says it is gone (then
        // the task runs after all). The index moves to this task's record.
        copy_result(*found.value(), rec);
        rec.started_at_ms = rec.finished_at_ms = now_ms();
        if (auto res = st.store->put_result(rec, std::string{}, st.ttl, st.node,
                                            content);
            !res) {
          if (res.error().code != error_code::result_not_stored)
            note_store_error(self, "put_result", rec.token, res.error());
          return false;
        } else if (!res.value()) {
          take_stored_final(self, rec.token); // it ended meanwhile
          return true;
        }
        record_written(self, std::move(rec), expiry(st));
        return true;
      },
      [=](watch_atom) {
        // The connection logs what this finds (lost / back); an idle node
        // is not counted as failing requests (resized_redis_errors_total).
        // On hold, the probe watches instead.
        auto& st = self->state;
        if (!st.store->held() && st.store->idle_for() >= st.watch_interval)
          static_cast<void>(st.store->ping());
        self->delayed_send(self, st.watch_interval, watch_atom::value);
      },
      [=](back_atom) {
        // Redis answered the probe. This PING's reply logs `redis
        // connection back`; the kept writes follow now, in order. If it
        // fails, the store is on hold again, with a new probe.
        auto& st = self->state;
        st.probe = nullptr;
        st.store->release();
        st.cache->set_store_held(false);
        if (st.store->ping() && !flush_unwritten(self))
          schedule_flush(self);
      },
      [=](flush_atom) {
        self->state.flush_scheduled = false;
        if (!flush_unwritten(self))
          schedule_flush(self);
      },
      [=](drain_atom) {
        auto& st = self->state;
        st.draining = true;
        if (!flush_unwritten(self)) {
          // Final writes of tasks that ran here, and undos of submissions
          // that were refused (never accepted): what becomes of each
          // differs, so they are counted apart.
          auto undos = static_cast<size_t>(std::count_if(
              st.unwritten.begin(), st.unwritten.end(), [](const auto& w) {
                return w.what == unwritten_write::kind::forget;
              }));
          auto writes =
              st.unwritten.size() - undos + st.unwritten_progress.size();
          if (writes > 0)
            log::warn("redis writes still failing at shutdown: their "
                      "tasks stay in this node's pending set and run "
                      "again at its next start",
                      {{"left", writes}});
          if (undos > 0)
            log::warn("refused submissions not undone at shutdown (redis "
                      "still failing): none was accepted; one that redis "
                      "stored all the same runs at this node's next start",
                      {{"left", undos}});
        }
        auto held = std::move(st.waiters);
        st.waiters.clear();
        st.waiter_count = 0;
        metrics::long_polls_held(0);
        for (auto& [token, list] : held) {
          auto res = find_record(self, token);
          metrics::long_polls_answered("shutdown", list.size());
          for (auto& w : list)
            answer_lookup(token, res, w.reply);
        }
        return true;
      },
      [=](ping_atom, ping_replier& reply) {
        // A write, not a PING: ready means submissions can be stored.
        auto res = self->state.store->ping_writable();
        if (!res)
          count_redis_error(self);
        reply(std::move(res));
      },
      [=](status_atom, const std::string& token, int64_t wait_ms,
          status_replier& reply) {
        auto& st = self->state;
        auto res = find_record(self, token);
        bool hold = res && res.value() && !is_final(res.value()->status) &&
                    wait_ms > 0 && st.waiter_count < st.max_waiters &&
                    !st.draining;
        if (!hold) {
          answer_lookup(token, std::move(res), reply);
          return;
        }
        auto id = st.next_waiter++;
        auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds{wait_ms};
        st.waiters[token].push_back({id, deadline, std::move(reply)});
        ++st.waiter_count;
        metrics::long_polls_held(st.waiter_count);
        schedule_wake(self, token, id, deadline);
      },
      [=](wake_atom, const std::string& token, uint64_t id) {
        auto& st = self->state;
        auto i = st.waiters.find(token);
        if (i == st.waiters.end())
          return; // answered already
        auto& list = i->second;
        auto w = std::find_if(list.begin(), list.end(),
                              [&](const auto& x) { return x.id == id; });
        if (w == list.end())
          return;
        bool due = std::chrono::steady_clock::now() >= w->deadline;
        if (!due && st.open_here.count(token) != 0) {
          // Became this node's task meanwhile (recovered, re-queued).
          schedule_wake(self, token, id, w->deadline);
          return;
        }
        // Another node may have finished it: Redis, not the cache, knows.
        if (answer_waiters_from_redis(self, token, "recheck"))
          return;
        if (!due) {
          schedule_wake(self, token, id, w->deadline);
          return;
        }
        // Deadline: the record as it stands (or why it cannot be read).
        auto reply = std::move(w->reply);
        list.erase(w);
        --st.waiter_count;
        metrics::long_polls_held(st.waiter_count);
        if (list.empty())
          st.waiters.erase(i);
        metrics::long_polls_answered("deadline"); // before the answer, as above
        answer_lookup(token, find_record(self, token), reply);
      },
      [=](finished_atom, const std::string& token) {
        auto& st = self->state;
        // Waiters of a task this node runs hear of its end where its final
        // record is written (record_written); nobody else needs Redis now.
        // A failed read is left to the rechecks.
        if (st.waiters.count(token) != 0 && st.open_here.count(token) == 0)
          answer_waiters_from_redis(self, token, "announcement");
      },
      [=](image_atom, const std::string& token, image_replier& reply) {
        answer_image(
            token, find_record(self, token),
            [&](const task_record& rec) {
              return find_image(self, stored_image_token(rec));
            },
            reply);
      },
  };
}

} // namespace resized::actors
