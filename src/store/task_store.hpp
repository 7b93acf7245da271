// Redis persistence of task records and result images (hiredis, blocking).
// One task_store per thread/actor: hiredis contexts are not thread-safe.
//
// Key layout (prefix configurable, default "resized:"):
//   <prefix>task:<token>   hash  — fields of task_record, TTL = result_ttl
//   <prefix>image:<token>  string — encoded result bytes, TTL = result_ttl
//   <prefix>input:<token>  string — submitted bytes, until the task is final
//   <prefix>pending:<node> set    — tokens accepted by API node <node> and
//                                   not final yet (recovered at its restart,
//                                   or adopted by a live node while no lease
//                                   holds <node>: adopt_pending)
//   <prefix>node:<node>    string — the lease on the name <node>: the id of
//                                   the running instance that owns it (and
//                                   its pending set), with a TTL in ms that
//                                   the instance keeps renewing
//   <prefix>handover:<node> hash  — tasks <node> adopted and has not handed
//                                   to its supervisor yet: token -> the name
//                                   adopted from (adopt_pending)
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/outcome.hpp"
#include "common/task_record.hpp"

namespace resized::store {

struct redis_settings {
  std::string host = "127.0.0.1";
  uint16_t port = 6379;
  int db = 0;
  std::string password; // empty = no AUTH
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds command_timeout{2000};
  std::string key_prefix = "resized:";
};

/// "<prefix>task:<token>"
std::string task_key(const std::string& prefix, const std::string& token);
/// "<prefix>image:<token>"
std::string image_key(const std::string& prefix, const std::string& token);

/// "<prefix>input:<token>"
std::string input_key(const std::string& prefix, const std::string& token);
/// "<prefix>pending:<node>"
std::string pending_key(const std::string& prefix, const std::string& node);
/// "<prefix>content:<content key>": the first task accepted with that
/// content (common/content_key.hpp), then the last one to succeed with it,
/// for every API node and after restarts.
std::string content_index_key(const std::string& prefix,
                              const std::string& content);

/// "<prefix>node:<node>": the lease on a node name (see claim_lease).
std::string lease_key(const std::string& prefix, const std::string& node);

/// "<prefix>adopted:<node>": set when another node adopts the name's
/// pending tasks; its value is the adopter (see adopt_pending).
std::string adoption_key(const std::string& prefix, const std::string& node);

/// "<prefix>handover:<node>": a hash of the tasks node <node> adopted and
/// has not handed to its supervisor yet, token -> the name adopted from
/// (adopt_pending writes it in the same script; adopted_not_handed,
/// handed_over).
std::string handover_key(const std::string& prefix, const std::string& node);

/// "<prefix>finished": the pub/sub channel on which each final record is
/// announced (its token) in the transaction that writes it, so that API
/// nodes holding long polls of it hear of it at once (finished_feed).
std::string finished_channel(const std::string& prefix);

/// What claim_lease found.
struct lease_claim {
  bool ours = false;  // the lease is `instance`'s now (taken or renewed)
  bool taken = false; // ours: it was free (not a renewal of ours)
  std::string holder; // not ours: the instance that holds it
  int64_t ttl_ms = 0; // not ours: its time left (-1: no expiry)
  /// Not ours, held by nobody: the renewal of a lease that ran out after
  /// this node (the adopter named here) adopted the name's tasks.
  std::string adopted_by;
};

/// A task accepted but not finished, as found in Redis at start-up.
struct pending_task {
  task_record record;
  std::optional<std::string> input; // nullopt: the input key is gone (or
                                    // not read: pending_inputs::skip)
  /// The record is not in Redis any more (it expired, or Redis restarted
  /// without it): only `record.token` is set. Reported only to a caller
  /// that reads inputs, which holds the tasks it asks for.
  bool gone = false;
};

/// Whether load_pending reads the tasks' inputs too. A restart or an
/// adoption reads the records alone (skip) and the inputs later, a few at
/// a time as the queue has room (read): a backlog above queue.max-bytes
/// would otherwise be in memory all at once.
enum class pending_inputs { read, skip };

/// What adopt_pending did.
struct adoption {
  bool held = false; // the name's lease exists: its set was left alone
  std::vector<std::string> tokens; // moved into the adopter's pending set
};

/// Whether a failure's text (`last_error()`, an error's message) is Redis
/// refusing the connection's settings: a wrong redis.password, one Redis
/// wants and was not given or has none for, a redis.db beyond its
/// `databases`. No wait mends those; a server at its client limit ("ERR
/// max number of clients reached") or loading its data is not one of them.
bool refuses_settings(std::string_view error_text);

class task_store {
public:
  /// `quiet`: logs no availability changes (lost / back), for a probe of
  /// Redis beside a store that does.
  explicit task_store(redis_settings settings, bool quiet = false);
  ~task_store();
  task_store(const task_store&) = delete;
  task_store& operator=(const task_store&) = delete;

  /// Connects if not connected (also after a failure); true when usable.
  bool connect();
  bool connected() const;
  /// Why the last connect() or command failed (Redis' own words where it
  /// answered, e.g. "SELECT failed: ERR DB index is out of range").
  std::string last_error() const;
  /// Time since the last call to Redis ended.
  std::chrono::steady_clock::duration idle_for() const;

  /// From now on, a call that times out (a hung Redis, a network black
  /// hole; not a refusal, which costs nothing) puts the store on hold:
  /// every call then fails at once with that failure, without I/O, until
  /// `release()`. For an owner that must not wait out those timeouts call
  /// after call, and probes Redis elsewhere. `on_hold` runs inside the
  /// failing call when a hold starts.
  void hold_after_timeouts(std::function<void()> on_hold);
  /// Whether calls fail at once, awaiting `release()`.
  bool held() const;
  /// Ends a hold: the next call connects and tries Redis again.
  void release();
  /// Whether the last operation failed before any of it reached Redis
  /// (held, or no connection could be made): nothing to undo.
  bool last_call_unsent() const;

  /// PING. Errors: store_unavailable.
  outcome<bool> ping();

  /// Whether Redis takes writes (for /readyz): a SET of `<prefix>readyz`
  /// (kept 10 s), which Redis refuses at maxmemory (noeviction) or on a
  /// read-only replica, where PING still answers. Errors: store_unavailable
  /// with Redis' error.
  outcome<bool> ping_writable();

  /// Writes the whole record (HSET all fields, EXPIRE ttl) in one round trip.
  /// A final record goes in one script that also announces it on
  /// finished_channel and, with `pending_node`, forgets the task's input and
  /// its membership of that node's pending set. Any record is written only
  /// over an open one (or none): false when the stored record is final
  /// already and was left as it is (the first final record stands: two
  /// nodes that both ran a task never flip its answer).
  outcome<bool> put_record(const task_record& rec, std::chrono::seconds ttl,
                           const std::string& pending_node = {});

  /// Writes the result image and the (SUCCESS) record atomically (one
  /// script), both with `ttl`; `pending_node`, the announcement and false
  /// (a final record stood: nothing written) as for put_record. With a
  /// `content` key, the content index points at this token (same ttl).
  /// A twin's record (rec.image_token set) is written without an image
  /// (`image` is not read): the image it points at, and that image's
  /// record, are kept `ttl` from now; if that image is gone the answer is
  /// result_not_stored and nothing is written.
  outcome<bool> put_result(const task_record& rec, const std::string& image,
                           std::chrono::seconds ttl,
                           const std::string& pending_node = {},
                           const std::string& content = {});

  /// Makes an accepted task durable before its 202 is sent: the PENDING
  /// record, its input bytes and its membership of `node`'s pending set, in
  /// one transaction (all with `ttl`). With a `content` key, the same
  /// transaction reads the content index, and makes this task its entry if
  /// it has none: the answer is the token of an earlier twin, open or final
  /// ("" = none).
  outcome<std::string> put_accepted(const task_record& rec,
                                    std::string_view input,
                                    const std::string& node,
                                    std::chrono::seconds ttl,
                                    const std::string& content = {});

  /// Writes an open task again after Redis may have lost it (the lease on
  /// `node`'s name was found gone, not adopted: Redis restarted empty, or
  /// was flushed): its record unless Redis holds one (a progress write may
  /// have made it again), its input unless Redis holds it (`input` null:
  /// none to give, e.g. a task waiting for a twin's result) and its
  /// membership of `node`'s pending set, all with `ttl`, so that a crash
  /// of this node leaves it to whoever adopts or restarts the name instead
  /// of open for a day. Over a final record it writes nothing: false.
  outcome<bool> restore_open(const task_record& rec, const std::string* input,
                             const std::string& node, std::chrono::seconds ttl);

  /// Undoes put_accepted for a task whose client was told "not accepted"
  /// (a 503 after the transaction failed or timed out, when Redis may still
  /// have run it): deletes the record and the input, leaves `node`'s
  /// pending set, and drops the content index entry if it is this token.
  /// Keys that do not exist are no error.
  outcome<bool> forget_accepted(const std::string& token,
                                const std::string& node,
                                const std::string& content);

  /// Every task of `node`'s pending set, with its record and (`inputs`)
  /// its input. Tokens whose record expired are removed from the set; a
  /// record that cannot be read is logged and skipped (it stays in the
  /// set).
  outcome<std::vector<pending_task>>
  load_pending(const std::string& node,
               pending_inputs inputs = pending_inputs::read);

  /// The tasks `tokens` of `node`'s pending set, as load_pending: tokens
  /// whose record expired or is final are removed from the set. With
  /// `inputs` read, a token whose record is gone comes back `gone`; one
  /// whose record is final is left out (another node ended it).
  outcome<std::vector<pending_task>>
  load_pending(const std::string& node, const std::vector<std::string>& tokens,
               pending_inputs inputs = pending_inputs::read);

  /// The node names that may have a pending set, at most `max_names`: the
  /// set <prefix>nodes (each node joins it at its lease claims, adoption
  /// takes a name out). A call on a Redis without <prefix>nodes:indexed
  /// adds the names scan_pending_names finds (sets of earlier builds, which
  /// never join) and sets it for an hour. `between_steps` as there.
  /// Errors: store_unavailable; internal_error when the walk was stopped.
  outcome<std::vector<std::string>>
  pending_names(size_t max_names = 10000,
                const std::function<bool()>& between_steps = {});
  /// The node names that have a pending set, by SCAN <prefix>pending:*
  /// (COUNT 1000 a step, no KEYS): a walk of the whole keyspace, seconds
  /// with millions of keys. `between_steps` (if set) runs after each step;
  /// false stops the walk.
  outcome<std::vector<std::string>>
  scan_pending_names(size_t max_names = 10000,
                     const std::function<bool()>& between_steps = {});

  /// Moves every member of `from`'s pending set into `into`'s and deletes
  /// `from`'s, in one script, only if nobody holds the lease on `from`
  /// (`<prefix>node:<from>` does not exist): a live or restarting owner
  /// keeps its set, two adopters never both get a task, and an owner that
  /// takes its lease afterwards finds its set empty. `from` == `into` is
  /// refused. Errors: store_unavailable.
  /// The moved tokens are also noted in `into`'s handover hash with
  /// `from`, so that an adoption whose answer was lost (a timeout after
  /// Redis ran the script, a dropped connection) is still handed over.
  outcome<adoption> adopt_pending(const std::string& from,
                                  const std::string& into);

  /// The tasks `into` adopted and has not handed over yet: (token, the
  /// name adopted from), in no particular order. Errors: store_unavailable.
  outcome<std::vector<std::pair<std::string, std::string>>>
  adopted_not_handed(const std::string& into);

  /// Crosses `tokens` off `into`'s handover hash (they were handed to its
  /// supervisor). Errors: store_unavailable.
  outcome<bool> handed_over(const std::string& into,
                            const std::vector<std::string>& tokens);

  /// Takes or renews the lease on `node`'s name for `instance`, for `ttl`,
  /// in one script (compare-and-renew): a free lease is taken, one that is
  /// `instance`'s gets its TTL back, one held by another instance is left
  /// alone and named in the answer. Safe to repeat. A `renewal` (the
  /// instance held the lease) does not take it again once another node
  /// adopted the name's tasks (adopted_by); a start takes a free lease and
  /// clears that mark. Errors: store_unavailable.
  outcome<lease_claim> claim_lease(const std::string& node,
                                   const std::string& instance,
                                   std::chrono::milliseconds ttl,
                                   bool renewal = false);

  /// Deletes the lease on `node`'s name if `instance` still holds it (true)
  /// and leaves another instance's alone (false).
  outcome<bool> release_lease(const std::string& node,
                              const std::string& instance);

  /// Reads a record. nullopt = no such key (unknown or expired token).
  /// With `expires_at_ms`, also when the key expires (PTTL, same round
  /// trip; ms since the Unix epoch, INT64_MAX without a TTL): a cache of
  /// what was read must not outlive it. Errors: store_unavailable.
  outcome<std::optional<task_record>>
  get_record(const std::string& token, int64_t* expires_at_ms = nullptr);

  /// Reads a result image. nullopt = no such key. `expires_at_ms` as for
  /// get_record. Errors: store_unavailable.
  outcome<std::optional<std::string>>
  get_image(const std::string& token, int64_t* expires_at_ms = nullptr);

  const redis_settings& settings() const { return settings_; }

private:
  /// put_record of a final record, put_result (with `image`).
  outcome<bool> final_write(const task_record& rec, std::chrono::seconds ttl,
                            const std::string& pending_node,
                            const std::string* image,
                            const std::string& content);

  struct impl;
  redis_settings settings_;
  std::unique_ptr<impl> impl_;
};

/// The tokens of tasks whose final record any node wrote to this Redis, as
/// Redis publishes them on finished_channel: a connection of its own, in
/// subscriber mode, made on the first call and again after a failure. What
/// is published while it is not subscribed is lost (Redis keeps nothing):
/// a hint to look sooner, never the only way to learn of a result.
class finished_feed {
public:
  explicit finished_feed(redis_settings settings);
  ~finished_feed();
  finished_feed(const finished_feed&) = delete;
  finished_feed& operator=(const finished_feed&) = delete;

  /// Subscribes if not subscribed, then waits up to `wait` for tokens
  /// (none when nothing came). Errors: store_unavailable (then call again
  /// later: it subscribes anew).
  outcome<std::vector<std::string>> next(std::chrono::milliseconds wait);

private:
  struct impl;
  std::unique_ptr<impl> impl_;
  std::string channel_;
};

} // namespace resized::store
