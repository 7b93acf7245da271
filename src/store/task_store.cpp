#include "store/task_store.hpp"

#include <algorithm>
#include <exception>
#include <limits>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "common/log.hpp"
#include "store/record_codec.hpp"
#include "store/redis_connection.hpp"

namespace resized::store {

std::string task_key(const std::string& prefix, const std::string& token) {
  return prefix + "task:" + token;
}

std::string image_key(const std::string& prefix, const std::string& token) {
  return prefix + "image:" + token;
}

std::string input_key(const std::string& prefix, const std::string& token) {
  return prefix + "input:" + token;
}

std::string pending_key(const std::string& prefix, const std::string& node) {
  return prefix + "pending:" + node;
}

std::string adoption_key(const std::string& prefix, const std::string& node) {
  return prefix + "adopted:" + node;
}

std::string handover_key(const std::string& prefix, const std::string& node) {
  return prefix + "handover:" + node;
}

// The names of the nodes that may have a pending set: each live node adds
// its own at every lease claim, an adoption takes the adopted one out.
// Looking for names with no owner reads this set instead of scanning the
// keyspace (SCAN of 2.4 M keys, a day of results, took 4-19 s, and the
// lease actor renews nothing meanwhile). `names_indexed_key` says the
// pending sets that were there before it (an earlier build's) are in it.
std::string names_key(const std::string& prefix) {
  return prefix + "nodes";
}
std::string names_indexed_key(const std::string& prefix) {
  return prefix + "nodes:indexed";
}

std::string lease_key(const std::string& prefix, const std::string& node) {
  return prefix + "node:" + node;
}

std::string finished_channel(const std::string& prefix) {
  return prefix + "finished";
}

std::string content_index_key(const std::string& prefix,
                              const std::string& content) {
  return prefix + "content:" + content;
}

struct task_store::impl {
  impl(const redis_settings& settings, bool quiet) : conn(settings, quiet) {
    // nop
  }
  redis_connection conn;
};

namespace {

/// Runs `f`, turning any exception into a failure: nothing escapes the
/// store's public API.
template <class F>
auto guarded(F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const std::exception& e) {
    return failure{error_code::internal_error,
                   fmt::format("task_store: {}", e.what())};
  } catch (...) {
    return failure{error_code::internal_error, "task_store: unknown error"};
  }
}

/// A Redis error reply (-ERR ..., -NOAUTH ..., -OOM ...) as a failure.
/// -OOM (Redis at maxmemory with noeviction) is store_full: the command was
/// not made (nor, in a MULTI, any of the others: EXECABORT) and the same
/// write would be refused again. The others are store_unavailable, like a
/// timeout: -LOADING, -READONLY, -BUSY or a wrong password pass, and a
/// write kept for a retry lands once they do.
failure reply_error(const redis_connection& conn, const redisReply& reply) {
  auto text = reply_text(reply);
  auto out = conn.error(text);
  if (text.rfind("OOM ", 0) == 0)
    out.code = error_code::store_full;
  return out;
}

/// Runs one of the Lua scripts below (`call` is its EVAL) and answers its
/// reply, which must be an array that starts with an integer (the script's
/// status); an error reply or another shape is a failure naming `key`.
outcome<reply_ptr> run_script(redis_connection& conn, const command& call,
                              const std::string& key) {
  auto replies = conn.run({call});
  if (!replies)
    return std::move(replies).error();
  auto reply = std::move(replies.value().front());
  if (reply->type == REDIS_REPLY_ERROR)
    return reply_error(conn, *reply);
  if (reply->type != REDIS_REPLY_ARRAY || reply->elements == 0 ||
      reply->element[0]->type != REDIS_REPLY_INTEGER)
    return failure{error_code::internal_error,
                   "unexpected reply to a script on " + key};
  return reply;
}

/// Runs a script that writes a record (`call`, its EVAL up to the record's
/// fields), with `fields` appended as its last arguments: whether it
/// answered {1} (written), not {0}.
outcome<bool> run_record_script(redis_connection& conn, command call,
                                const field_list& fields,
                                const std::string& key) {
  call.reserve(call.size() + 2 * fields.size());
  for (const auto& [name, value] : fields) {
    call.emplace_back(name);
    call.emplace_back(value);
  }
  auto answer = run_script(conn, call, key);
  if (!answer)
    return std::move(answer).error();
  return answer.value()->element[0]->integer == 1;
}

/// When a key whose PTTL answered `reply` expires, in ms since the Unix
/// epoch: INT64_MAX when it has no TTL (or the answer is not a number),
/// now when it is gone already (it expired between the read and the PTTL).
int64_t expiry_of(const redisReply& reply) {
  if (reply.type != REDIS_REPLY_INTEGER || reply.integer == -1)
    return std::numeric_limits<int64_t>::max();
  return now_ms() + std::max<long long>(reply.integer, 0);
}

/// Runs `read` on `key`, and with `expires_at_ms` a PTTL of it in the same
/// round trip, stored there as expiry_of says; the read's reply comes first.
outcome<std::vector<reply_ptr>> read_with_expiry(redis_connection& conn,
                                                 command read,
                                                 const std::string& key,
                                                 int64_t* expires_at_ms) {
  std::vector<command> cmds{std::move(read)};
  if (expires_at_ms != nullptr)
    cmds.push_back({"PTTL", key});
  auto replies = conn.run(cmds);
  if (replies && expires_at_ms != nullptr)
    *expires_at_ms = expiry_of(*replies.value().back());
  return replies;
}

/// An HGETALL reply (an array of names and values) as (name, value) pairs.
field_list hash_fields(const redisReply& reply) {
  field_list fields;
  if (reply.type != REDIS_REPLY_ARRAY)
    return fields;
  fields.reserve(reply.elements / 2);
  for (size_t i = 0; i + 1 < reply.elements; i += 2)
    fields.emplace_back(reply_text(*reply.element[i]),
                        reply_text(*reply.element[i + 1]));
  return fields;
}

/// HGETALL `key`'s `reply` as a record; nullopt when there is no such key.
outcome<std::optional<task_record>> record_from(redis_connection& conn,
                                                const redisReply& reply,
                                                const std::string& key) {
  if (reply.type == REDIS_REPLY_ERROR)
    return reply_error(conn, reply);
  if (reply.type != REDIS_REPLY_ARRAY || reply.elements % 2 != 0)
    return failure{error_code::internal_error,
                   "unexpected reply to HGETALL " + key};
  if (reply.elements == 0)
    return std::optional<task_record>{}; // no such key
  auto rec = decode_fields(hash_fields(reply));
  if (!rec)
    return failure{rec.error().code, rec.error().message + " in " + key};
  return std::optional<task_record>{std::move(rec).value()};
}

/// The first error reply among `replies`, if any.
const redisReply* first_error(const std::vector<reply_ptr>& replies) {
  for (const auto& r : replies)
    if (r->type == REDIS_REPLY_ERROR)
      return r.get();
  return nullptr;
}

std::optional<failure> check_args(const std::string& token,
                                  std::chrono::seconds ttl) {
  if (token.empty())
    return failure{error_code::internal_error, "task_store: empty token"};
  if (ttl.count() <= 0)
    return failure{error_code::internal_error,
                   "task_store: TTL must be positive"};
  return std::nullopt;
}

/// "HSET <key> f1 v1 f2 v2 ...": views into `key` and `fields`.
command hset_command(const std::string& key, const field_list& fields) {
  command cmd{"HSET", key};
  cmd.reserve(2 + 2 * fields.size());
  for (const auto& [name, value] : fields) {
    cmd.emplace_back(name);
    cmd.emplace_back(value);
  }
  return cmd;
}

/// Runs `cmds` as MULTI ... EXEC in one round trip and returns EXEC's
/// reply (one element per command); the first error (a rejected command or
/// an error inside EXEC) is the failure.
outcome<reply_ptr> exec_transaction(redis_connection& conn,
                                    std::vector<command> cmds) {
  cmds.insert(cmds.begin(), command{"MULTI"});
  cmds.push_back({"EXEC"});
  auto replies = conn.run(cmds);
  if (!replies)
    return std::move(replies).error();
  if (auto* err = first_error(replies.value()))
    return reply_error(conn, *err);
  const auto& exec = *replies.value().back();
  if (exec.type != REDIS_REPLY_ARRAY)
    return conn.error("transaction aborted");
  for (size_t i = 0; i < exec.elements; ++i)
    if (exec.element[i]->type == REDIS_REPLY_ERROR)
      return reply_error(conn, *exec.element[i]);
  return std::move(replies.value().back());
}

outcome<bool> transaction(redis_connection& conn, std::vector<command> cmds) {
  auto exec = exec_transaction(conn, std::move(cmds));
  if (!exec)
    return std::move(exec).error();
  return true;
}

} // namespace

task_store::task_store(redis_settings settings, bool quiet)
    : settings_(std::move(settings)),
      impl_(std::make_unique<impl>(settings_, quiet)) {
  // Connecting is lazy: the first operation (or connect()) does it.
}

task_store::~task_store() = default;

bool task_store::connect() {
  try {
    return impl_->conn.connect();
  } catch (...) {
    return false;
  }
}

bool task_store::connected() const {
  return impl_->conn.connected();
}

std::string task_store::last_error() const {
  return impl_->conn.last_error().message;
}

bool refuses_settings(std::string_view error_text) {
  for (std::string_view refusal :
       {"WRONGPASS", "NOAUTH", "ERR AUTH ", "ERR invalid password",
        "DB index is out of range", "ERR invalid DB index"})
    if (error_text.find(refusal) != std::string_view::npos)
      return true;
  return false;
}

std::chrono::steady_clock::duration task_store::idle_for() const {
  return impl_->conn.idle_for();
}

void task_store::hold_after_timeouts(std::function<void()> on_hold) {
  impl_->conn.hold_after_timeouts(std::move(on_hold));
}

bool task_store::held() const {
  return impl_->conn.held();
}

void task_store::release() {
  impl_->conn.release();
}

bool task_store::last_call_unsent() const {
  return impl_->conn.last_run_unsent();
}

namespace {

// Runs one command whose answer only says it worked: true, or the error.
outcome<bool> run_answered(redis_connection& conn, const command& cmd) {
  auto replies = conn.run({cmd});
  if (!replies)
    return std::move(replies).error();
  const auto& reply = *replies.value().front();
  if (reply.type == REDIS_REPLY_ERROR)
    return reply_error(conn, reply);
  return true;
}

} // namespace

outcome<bool> task_store::ping() {
  return guarded([&] { return run_answered(impl_->conn, {"PING"}); });
}

outcome<bool> task_store::ping_writable() {
  return guarded([&] {
    auto key = settings_.key_prefix + "readyz";
    return run_answered(impl_->conn, {"SET", key, "1", "PX", "10000"});
  });
}

namespace {

// KEYS[1] a task's record, ARGV[1] the TTL in seconds, ARGV[2..] its fields
// and values (HSET's order). Writes them unless the stored record is final
// (SUCCESS or FAILURE: record_codec's names): answers {1} written, {0} not.
// HSET in steps: unpack() has a stack limit.
constexpr const char* open_write_script =
    "local s = redis.call('HGET', KEYS[1], 'status') "
    "if s == 'SUCCESS' or s == 'FAILURE' then return {0} end "
    "for i = 2, #ARGV, 1000 do "
    "redis.call('HSET', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV))) "
    "end "
    "redis.call('EXPIRE', KEYS[1], ARGV[1]) "
    "return {1}";

// KEYS[1] a task's record, KEYS[2] its image ("": none), KEYS[3] the
// content index entry ("": none), KEYS[4] its input and KEYS[5] the
// pending set it leaves ("": none); ARGV[1] the TTL in seconds, ARGV[2]
// the token, ARGV[3] the channel that announces final records, ARGV[4]
// the image, ARGV[5..] the record's fields and values. A final record
// over an open one (or none): written with the rest, answers {1}. Over a
// final one: nothing is written but the task's input and membership
// dropped, answers {0} (the first final record stands).
constexpr const char* final_write_script =
    "local s = redis.call('HGET', KEYS[1], 'status') "
    "local ended = s == 'SUCCESS' or s == 'FAILURE' "
    "if not ended then "
    "if KEYS[2] ~= '' then "
    "redis.call('SET', KEYS[2], ARGV[4], 'EX', ARGV[1]) end "
    "for i = 5, #ARGV, 1000 do "
    "redis.call('HSET', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV))) "
    "end "
    "redis.call('EXPIRE', KEYS[1], ARGV[1]) "
    "if KEYS[3] ~= '' then "
    "redis.call('SET', KEYS[3], ARGV[2], 'EX', ARGV[1]) end "
    "end "
    "if KEYS[5] ~= '' then "
    "redis.call('DEL', KEYS[4]) redis.call('SREM', KEYS[5], ARGV[2]) end "
    "if ended then return {0} end "
    "redis.call('PUBLISH', ARGV[3], ARGV[2]) "
    "return {1}";

// KEYS[1] a task's record, KEYS[2] its input, KEYS[3] the pending set;
// ARGV[1] the TTL in seconds, ARGV[2] the token, ARGV[3] "1" with the input
// in ARGV[4] ("0": none), ARGV[5..] the record's fields and values. Over a
// final record nothing is written ({0}); otherwise what is missing of the
// record and the input is, and the token joins the set ({1}).
constexpr const char* restore_script =
    "local s = redis.call('HGET', KEYS[1], 'status') "
    "if s == 'SUCCESS' or s == 'FAILURE' then return {0} end "
    "if not s then "
    "for i = 5, #ARGV, 1000 do "
    "redis.call('HSET', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV))) "
    "end "
    "redis.call('EXPIRE', KEYS[1], ARGV[1]) "
    "end "
    "if ARGV[3] == '1' then "
    "redis.call('SET', KEYS[2], ARGV[4], 'NX', 'EX', ARGV[1]) end "
    "redis.call('SADD', KEYS[3], ARGV[2]) "
    "return {1}";

} // namespace

outcome<bool> task_store::restore_open(const task_record& rec,
                                       const std::string* input,
                                       const std::string& node,
                                       std::chrono::seconds ttl) {
  return guarded([&]() -> outcome<bool> {
    if (auto err = check_args(rec.token, ttl))
      return *err;
    if (is_final(rec.status))
      return failure{error_code::internal_error,
                     "task_store: restore_open is for open tasks"};
    auto tkey = task_key(settings_.key_prefix, rec.token);
    auto ikey = input_key(settings_.key_prefix, rec.token);
    auto pkey = pending_key(settings_.key_prefix, node);
    auto ttl_text = std::to_string(ttl.count());
    command call{"EVAL",
                 restore_script,
                 "3",
                 tkey,
                 ikey,
                 pkey,
                 ttl_text,
                 rec.token,
                 input != nullptr ? "1" : "0",
                 input != nullptr ? std::string_view{*input}
                                  : std::string_view{}};
    return run_record_script(impl_->conn, std::move(call), encode_fields(rec),
                             tkey);
  });
}

outcome<bool> task_store::final_write(const task_record& rec,
                                      std::chrono::seconds ttl,
                                      const std::string& pending_node,
                                      const std::string* image,
                                      const std::string& content) {
  auto tkey = task_key(settings_.key_prefix, rec.token);
  std::string ikey;
  if (image != nullptr)
    ikey = image_key(settings_.key_prefix, rec.token);
  std::string ckey;
  if (!content.empty() && rec.status == task_status::success)
    ckey = content_index_key(settings_.key_prefix, content);
  std::string input;
  std::string pending;
  if (!pending_node.empty()) {
    input = input_key(settings_.key_prefix, rec.token);
    pending = pending_key(settings_.key_prefix, pending_node);
  }
  auto channel = finished_channel(settings_.key_prefix);
  auto ttl_text = std::to_string(ttl.count());
  auto fields = encode_fields(rec);
  command call{
      "EVAL",
      final_write_script,
      "5",
      tkey,
      ikey,
      ckey,
      input,
      pending,
      ttl_text,
      rec.token,
      channel,
      image != nullptr ? std::string_view{*image} : std::string_view{}};
  return run_record_script(impl_->conn, std::move(call), fields, tkey);
}

outcome<bool> task_store::put_record(const task_record& rec,
                                     std::chrono::seconds ttl,
                                     const std::string& pending_node) {
  return guarded([&]() -> outcome<bool> {
    if (auto err = check_args(rec.token, ttl))
      return *err;
    if (is_final(rec.status))
      return final_write(rec, ttl, pending_node, nullptr, {});
    auto key = task_key(settings_.key_prefix, rec.token);
    auto fields = encode_fields(rec);
    auto ttl_text = std::to_string(ttl.count());
    // Only over an open record (or none): a final record never changes, and
    // a late progress write (a write the status actor made after a result
    // it was sent before, a copy made after its task was queued, a stale
    // command of a connection given up) must not turn it back to open.
    command call{"EVAL", open_write_script, "1", key, ttl_text};
    return run_record_script(impl_->conn, std::move(call), fields, key);
  });
}

outcome<bool> task_store::put_result(const task_record& rec,
                                     const std::string& image,
                                     std::chrono::seconds ttl,
                                     const std::string& pending_node,
                                     const std::string& content) {
  return guarded([&]() -> outcome<bool> {
    if (auto err = check_args(rec.token, ttl))
      return *err;
    if (rec.image_token.empty())
      return final_write(rec, ttl, pending_node, &image, content);
    // A twin's result: the image it points at lives at least as long as
    // its record from now (and that image's record, which identical work
    // reads). GT: never shortened (another API node may keep results
    // longer); then whether it is still there.
    auto source_image = image_key(settings_.key_prefix, rec.image_token);
    auto source_record = task_key(settings_.key_prefix, rec.image_token);
    auto ttl_text = std::to_string(ttl.count());
    auto replies = impl_->conn.run({{"EXPIRE", source_image, ttl_text, "GT"},
                                    {"EXPIRE", source_record, ttl_text, "GT"},
                                    {"EXISTS", source_image}});
    if (!replies)
      return std::move(replies).error();
    if (auto* err = first_error(replies.value()))
      return reply_error(impl_->conn, *err);
    const auto& kept = *replies.value().back();
    if (kept.type != REDIS_REPLY_INTEGER || kept.integer != 1)
      return failure{error_code::result_not_stored,
                     "the identical task's result expired before it could "
                     "be shared: submit the image again"};
    return final_write(rec, ttl, pending_node, nullptr, content);
  });
}

outcome<std::string> task_store::put_accepted(const task_record& rec,
                                              std::string_view input,
                                              const std::string& node,
                                              std::chrono::seconds ttl,
                                              const std::string& content) {
  return guarded([&]() -> outcome<std::string> {
    if (auto err = check_args(rec.token, ttl))
      return *err;
    auto tkey = task_key(settings_.key_prefix, rec.token);
    auto ikey = input_key(settings_.key_prefix, rec.token);
    auto pkey = pending_key(settings_.key_prefix, node);
    auto fields = encode_fields(rec);
    auto ttl_text = std::to_string(ttl.count());
    std::vector<command> cmds{
        hset_command(tkey, fields),
        {"EXPIRE", tkey, ttl_text},
        {"SET", ikey, input, "EX", ttl_text},
        {"SADD", pkey, rec.token},
    };
    std::string ckey; // commands hold views: the key must outlive them
    if (!content.empty()) {
      // The first task of this content becomes its entry; later ones read
      // it (a SUCCESS overwrites it with its own token: put_result).
      ckey = content_index_key(settings_.key_prefix, content);
      cmds.push_back({"SET", ckey, rec.token, "NX", "GET", "EX", ttl_text});
    }
    auto exec = exec_transaction(impl_->conn, std::move(cmds));
    if (!exec)
      return std::move(exec).error();
    // The index's answer is the last command's (nil: no earlier twin).
    const auto& replies = *exec.value();
    if (content.empty() || replies.elements == 0)
      return std::string{};
    const auto& twin = *replies.element[replies.elements - 1];
    if (twin.type != REDIS_REPLY_STRING)
      return std::string{};
    // Its own token: the transaction ran twice (the connection dropped
    // after Redis ran it, and the retry ran it again): no earlier twin.
    // (Taken for one, the task waited out a task timeout for itself.)
    auto token = reply_text(twin);
    return token == rec.token ? std::string{} : token;
  });
}

outcome<bool> task_store::forget_accepted(const std::string& token,
                                          const std::string& node,
                                          const std::string& content) {
  return guarded([&]() -> outcome<bool> {
    if (auto err = check_args(token, std::chrono::seconds{1}))
      return *err;
    auto tkey = task_key(settings_.key_prefix, token);
    auto ikey = input_key(settings_.key_prefix, token);
    auto pkey = pending_key(settings_.key_prefix, node);
    std::vector<command> cmds{{"DEL", tkey, ikey}, {"SREM", pkey, token}};
    std::string ckey; // commands hold views: the key must outlive them
    if (!content.empty()) {
      // Only if the entry is still this task: another task may own it by
      // now. Redis has no "delete if equal" command; a script is atomic.
      ckey = content_index_key(settings_.key_prefix, content);
      cmds.push_back({"EVAL",
                      "if redis.call('GET', KEYS[1]) == ARGV[1] then "
                      "return redis.call('DEL', KEYS[1]) end return 0",
                      "1", ckey, token});
    }
    return transaction(impl_->conn, std::move(cmds));
  });
}

outcome<std::vector<pending_task>>
task_store::load_pending(const std::string& node, pending_inputs inputs) {
  using result = outcome<std::vector<pending_task>>;
  return guarded([&]() -> result {
    auto pkey = pending_key(settings_.key_prefix, node);
    auto members = impl_->conn.run({{"SMEMBERS", pkey}});
    if (!members)
      return std::move(members).error();
    const auto& reply = *members.value().front();
    if (reply.type == REDIS_REPLY_ERROR)
      return reply_error(impl_->conn, reply);
    std::vector<std::string> tokens;
    for (size_t i = 0; reply.type == REDIS_REPLY_ARRAY && i < reply.elements;
         ++i)
      tokens.push_back(reply_text(*reply.element[i]));
    return load_pending(node, tokens, inputs);
  });
}

outcome<std::vector<pending_task>>
task_store::load_pending(const std::string& node,
                         const std::vector<std::string>& tokens,
                         pending_inputs inputs) {
  using result = outcome<std::vector<pending_task>>;
  return guarded([&]() -> result {
    // Pipelined: a batch's records in one round trip, then their inputs in
    // runs of at most load_run_bytes (inputs can be large). One task at a
    // time took two round trips each: 42,000 adopted tasks took 17 s, past
    // the adopter's own lease, and a restart with 160,000 pending blocked
    // its submissions for 20 s.
    constexpr size_t load_batch = 500;
    constexpr uint64_t load_run_bytes = uint64_t{64} << 20;
    const auto& prefix = settings_.key_prefix;
    auto pkey = pending_key(prefix, node);
    std::vector<pending_task> out;
    for (size_t from = 0; from < tokens.size(); from += load_batch) {
      auto to = std::min(tokens.size(), from + load_batch);
      std::vector<std::string> keys; // commands hold views of them
      keys.reserve(to - from);
      std::vector<command> reads;
      for (size_t i = from; i < to; ++i) {
        keys.push_back(task_key(prefix, tokens[i]));
        reads.push_back({"HGETALL", keys.back()});
      }
      auto replies = impl_->conn.run(reads);
      if (!replies)
        return std::move(replies).error();
      std::vector<std::string_view> gone{"SREM", pkey};
      std::vector<pending_task> open;
      std::vector<pending_task> lost_records;
      std::vector<size_t> open_at; // index into tokens
      for (size_t i = 0; i < keys.size(); ++i) {
        auto rec = record_from(impl_->conn, *replies.value()[i], keys[i]);
        if (!rec) {
          // A record this build cannot read (a newer build's option value
          // in a rolling upgrade, a key overwritten by hand): skipped and
          // left in the set, for a build that can; the batch's others go
          // on (before, one such record failed every recovery, adoption
          // and read of the node's tasks, again at each retry).
          log::warn("pending task skipped: its record cannot be read",
                    {{"token", tokens[from + i]},
                     {"node", node},
                     {"error", rec.error().message}});
          continue;
        }
        if (!rec.value() || is_final(rec.value()->status)) {
          // Expired, or finished but not yet forgotten: nothing to resume.
          gone.push_back(tokens[from + i]);
          if (!rec.value() && inputs == pending_inputs::read) {
            pending_task lost;
            lost.record.token = tokens[from + i];
            lost.gone = true;
            lost_records.push_back(std::move(lost));
          }
          continue;
        }
        open.push_back({std::move(*rec.value()), std::nullopt});
        open_at.push_back(from + i);
      }
      for (size_t k = 0; inputs == pending_inputs::read && k < open.size();) {
        size_t first = k;
        uint64_t bytes = 0;
        std::vector<std::string> ikeys;
        ikeys.reserve(open.size() - k);
        std::vector<command> gets;
        while (k < open.size() &&
               (k == first ||
                bytes + open[k].record.input_bytes <= load_run_bytes)) {
          bytes += open[k].record.input_bytes;
          ikeys.push_back(input_key(prefix, tokens[open_at[k]]));
          gets.push_back({"GET", ikeys.back()});
          ++k;
        }
        auto inputs = impl_->conn.run(gets);
        if (!inputs)
          return std::move(inputs).error();
        for (size_t j = 0; j < gets.size(); ++j) {
          const auto& in = *inputs.value()[j];
          if (in.type == REDIS_REPLY_STRING)
            open[first + j].input = reply_text(in);
        }
      }
      if (gone.size() > 2)
        impl_->conn.run({gone});
      for (auto& task : open)
        out.push_back(std::move(task));
      for (auto& task : lost_records)
        out.push_back(std::move(task));
    }
    return out;
  });
}

namespace {

/// `text` with the glob characters of SCAN's MATCH escaped.
std::string glob_escaped(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\')
      out += '\\';
    out += c;
  }
  return out;
}

} // namespace

outcome<std::vector<std::string>>
task_store::pending_names(size_t max_names,
                          const std::function<bool()>& between_steps) {
  using result = outcome<std::vector<std::string>>;
  return guarded([&]() -> result {
    auto registry = names_key(settings_.key_prefix);
    auto indexed = names_indexed_key(settings_.key_prefix);
    auto listed =
        impl_->conn.run({{"EXISTS", indexed}, {"SMEMBERS", registry}});
    if (!listed)
      return std::move(listed).error();
    if (auto err = first_error(listed.value()))
      return reply_error(impl_->conn, *err);
    const auto& members = *listed.value()[1];
    if (listed.value()[0]->integer == 1) {
      std::vector<std::string> names;
      for (size_t i = 0; i < members.elements && names.size() < max_names; ++i)
        names.push_back(reply_text(*members.element[i]));
      std::sort(names.begin(), names.end());
      return names;
    }
    // Not indexed in this Redis (a first start of this build, Redis lost
    // its data, or an hour went by: nodes of earlier builds never join the
    // set): one walk, whose names join it.
    auto names = scan_pending_names(max_names, between_steps);
    if (!names)
      return names;
    std::vector<command> cmds;
    for (size_t i = 0; i < names.value().size(); i += 1000) {
      command add{"SADD", registry};
      for (size_t j = i; j < std::min(i + 1000, names.value().size()); ++j)
        add.push_back(names.value()[j]);
      cmds.push_back(std::move(add));
    }
    cmds.push_back({"SET", indexed, "1", "EX", "3600"});
    auto added = impl_->conn.run(cmds);
    if (!added)
      return std::move(added).error();
    return names;
  });
}

outcome<std::vector<std::string>>
task_store::scan_pending_names(size_t max_names,
                               const std::function<bool()>& between_steps) {
  using result = outcome<std::vector<std::string>>;
  return guarded([&]() -> result {
    auto prefix = pending_key(settings_.key_prefix, "");
    auto pattern = glob_escaped(prefix) + "*";
    std::vector<std::string> names;
    std::string cursor = "0";
    do {
      auto replies = impl_->conn.run(
          {{"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"}});
      if (!replies)
        return std::move(replies).error();
      const auto& reply = *replies.value().front();
      if (reply.type == REDIS_REPLY_ERROR)
        return reply_error(impl_->conn, reply);
      if (reply.type != REDIS_REPLY_ARRAY || reply.elements != 2 ||
          reply.element[1]->type != REDIS_REPLY_ARRAY)
        return failure{error_code::internal_error, "unexpected reply to SCAN"};
      cursor = reply_text(*reply.element[0]);
      const auto& keys = *reply.element[1];
      for (size_t i = 0; i < keys.elements; ++i) {
        auto key = reply_text(*keys.element[i]);
        if (key.size() > prefix.size() &&
            key.compare(0, prefix.size(), prefix) == 0)
          names.push_back(key.substr(prefix.size()));
      }
      if (cursor != "0" && between_steps && !between_steps())
        return failure{error_code::internal_error,
                       "the walk for pending sets was stopped"};
    } while (cursor != "0" && names.size() < max_names);
    // SCAN may return a key twice.
    std::sort(names.begin(), names.end());
    names.erase(std::unique(names.begin(), names.end()), names.end());
    return names;
  });
}

// KEYS[1] the lease on the name adopted, KEYS[2] its pending set, KEYS[3]
// the adopter's pending set, KEYS[4] the name's adoption mark, KEYS[5] the
// set of names (names_key), KEYS[6] the adopter's handover hash
// (handover_key); ARGV[1] the adopter, ARGV[2] the mark's TTL in ms, also
// the handover hash's, ARGV[3] the name adopted. Answers {0} while the lease
// exists (its owner runs or is starting: its set is its own), else takes the
// name out of the set of names (its owner puts it back when it claims its
// lease) and answers {1, {}} if it has no pending set, or {1, {tokens}} once
// they are the adopter's, with the mark set: an owner that was only paused (or
// cut off from Redis) past its lease must not take its name again and run them
// too (claim_script). Atomic: an owner claiming its lease runs before (and
// keeps its set) or after (and finds it empty, or is told it was adopted), and
// of two adopters only the first finds members. SADD in steps: unpack() has a
// stack limit.
constexpr const char* adopt_script =
    "if redis.call('EXISTS', KEYS[1]) == 1 then return {0} end "
    "redis.call('SREM', KEYS[5], ARGV[3]) "
    "if redis.call('EXISTS', KEYS[2]) == 0 then return {1, {}} end "
    "local m = redis.call('SMEMBERS', KEYS[2]) "
    "for i = 1, #m, 1000 do "
    "redis.call('SADD', KEYS[3], unpack(m, i, math.min(i + 999, #m))) end "
    "for i = 1, #m do redis.call('HSET', KEYS[6], m[i], ARGV[3]) end "
    "redis.call('PEXPIRE', KEYS[6], ARGV[2]) "
    "redis.call('DEL', KEYS[2]) "
    "redis.call('SET', KEYS[4], ARGV[1], 'PX', ARGV[2]) "
    "return {1, m}";

// How long an adoption mark stays: longer than any pause a node wakes from.
constexpr const char* adoption_mark_ms = "604800000"; // a week

outcome<adoption> task_store::adopt_pending(const std::string& from,
                                            const std::string& into) {
  return guarded([&]() -> outcome<adoption> {
    if (from.empty() || into.empty() || from == into)
      return failure{error_code::internal_error,
                     "task_store: adopting needs two distinct node names"};
    auto lkey = lease_key(settings_.key_prefix, from);
    auto from_key = pending_key(settings_.key_prefix, from);
    auto into_key = pending_key(settings_.key_prefix, into);
    auto mark = adoption_key(settings_.key_prefix, from);
    auto registry = names_key(settings_.key_prefix);
    auto inbox = handover_key(settings_.key_prefix, into);
    auto answer =
        run_script(impl_->conn,
                   {"EVAL", adopt_script, "6", lkey, from_key, into_key, mark,
                    registry, inbox, into, adoption_mark_ms, from},
                   from_key);
    if (!answer)
      return std::move(answer).error();
    const auto& reply = *answer.value();
    adoption out;
    out.held = reply.element[0]->integer == 0;
    if (!out.held && reply.elements >= 2 &&
        reply.element[1]->type == REDIS_REPLY_ARRAY) {
      const auto& m = *reply.element[1];
      for (size_t i = 0; i < m.elements; ++i)
        out.tokens.push_back(reply_text(*m.element[i]));
    }
    return out;
  });
}

outcome<std::vector<std::pair<std::string, std::string>>>
task_store::adopted_not_handed(const std::string& into) {
  using result = outcome<std::vector<std::pair<std::string, std::string>>>;
  return guarded([&]() -> result {
    auto replies = impl_->conn.run(
        {{"HGETALL", handover_key(settings_.key_prefix, into)}});
    if (!replies)
      return std::move(replies).error();
    const auto& reply = *replies.value().front();
    if (reply.type == REDIS_REPLY_ERROR)
      return reply_error(impl_->conn, reply);
    return hash_fields(reply); // token -> the name adopted from
  });
}

outcome<bool> task_store::handed_over(const std::string& into,
                                      const std::vector<std::string>& tokens) {
  return guarded([&]() -> outcome<bool> {
    auto key = handover_key(settings_.key_prefix, into);
    constexpr size_t step = 1000;
    for (size_t from = 0; from < tokens.size(); from += step) {
      command hdel{"HDEL", key};
      for (size_t i = from; i < std::min(tokens.size(), from + step); ++i)
        hdel.push_back(tokens[i]);
      if (auto done = run_answered(impl_->conn, hdel); !done)
        return done;
    }
    return true;
  });
}

// KEYS[1] the lease, KEYS[2] the name's adoption mark, KEYS[3] the set of
// names (names_key), ARGV[1] this instance, ARGV[2] the TTL in ms, ARGV[3]
// "renew" when this instance held the lease (else it starts), ARGV[4] the
// name, which joins the set of names when the lease is (still) this
// instance's. Answers {1} renewed (it was ours), {2} taken
// (it was free; a start clears the mark), {3, adopter} not taken: it ran
// out and another node adopted the name's tasks since, or {0, holder, ttl
// left in ms}. A script is atomic: nobody can take the lease between the
// read and the write, so an instance never renews another's lease.
constexpr const char* claim_script =
    "local v = redis.call('GET', KEYS[1]) "
    "if v == ARGV[1] then "
    "redis.call('PEXPIRE', KEYS[1], ARGV[2]) "
    "redis.call('SADD', KEYS[3], ARGV[4]) return {1} end "
    "if not v then "
    "if ARGV[3] == 'renew' then "
    "local by = redis.call('GET', KEYS[2]) "
    "if by then return {3, by} end "
    "else redis.call('DEL', KEYS[2]) end "
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) "
    "redis.call('SADD', KEYS[3], ARGV[4]) return {2} end "
    "return {0, v, redis.call('PTTL', KEYS[1])}";

// KEYS[1] the lease, ARGV[1] this instance: deleted only if still ours.
constexpr const char* release_script =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "return redis.call('DEL', KEYS[1]) end return 0";

outcome<lease_claim> task_store::claim_lease(const std::string& node,
                                             const std::string& instance,
                                             std::chrono::milliseconds ttl,
                                             bool renewal) {
  return guarded([&]() -> outcome<lease_claim> {
    if (node.empty() || instance.empty() || ttl.count() <= 0)
      return failure{error_code::internal_error,
                     "task_store: a lease needs a node, an instance and a TTL"};
    auto key = lease_key(settings_.key_prefix, node);
    auto mark = adoption_key(settings_.key_prefix, node);
    auto ttl_text = std::to_string(ttl.count());
    auto registry = names_key(settings_.key_prefix);
    auto answer =
        run_script(impl_->conn,
                   {"EVAL", claim_script, "3", key, mark, registry, instance,
                    ttl_text, renewal ? "renew" : "start", node},
                   key);
    if (!answer)
      return std::move(answer).error();
    const auto& reply = *answer.value();
    lease_claim claim;
    auto code = reply.element[0]->integer;
    claim.ours = code == 1 || code == 2;
    claim.taken = code == 2;
    if (code == 3 && reply.elements >= 2)
      claim.adopted_by = reply_text(*reply.element[1]);
    if (code == 0 && reply.elements >= 3) {
      claim.holder = reply_text(*reply.element[1]);
      if (reply.element[2]->type == REDIS_REPLY_INTEGER)
        claim.ttl_ms = reply.element[2]->integer;
    }
    return claim;
  });
}

outcome<bool> task_store::release_lease(const std::string& node,
                                        const std::string& instance) {
  return guarded([&]() -> outcome<bool> {
    auto key = lease_key(settings_.key_prefix, node);
    auto replies =
        impl_->conn.run({{"EVAL", release_script, "1", key, instance}});
    if (!replies)
      return std::move(replies).error();
    const auto& reply = *replies.value().front();
    if (reply.type == REDIS_REPLY_ERROR)
      return reply_error(impl_->conn, reply);
    return reply.type == REDIS_REPLY_INTEGER && reply.integer == 1;
  });
}

outcome<std::optional<task_record>>
task_store::get_record(const std::string& token, int64_t* expires_at_ms) {
  using result = outcome<std::optional<task_record>>;
  return guarded([&]() -> result {
    auto key = task_key(settings_.key_prefix, token);
    auto replies =
        read_with_expiry(impl_->conn, {"HGETALL", key}, key, expires_at_ms);
    if (!replies)
      return std::move(replies).error();
    return record_from(impl_->conn, *replies.value().front(), key);
  });
}

outcome<std::optional<std::string>>
task_store::get_image(const std::string& token, int64_t* expires_at_ms) {
  using result = outcome<std::optional<std::string>>;
  return guarded([&]() -> result {
    auto key = image_key(settings_.key_prefix, token);
    auto replies =
        read_with_expiry(impl_->conn, {"GET", key}, key, expires_at_ms);
    if (!replies)
      return std::move(replies).error();
    const auto& reply = *replies.value().front();
    switch (reply.type) {
    case REDIS_REPLY_NIL:
      return std::optional<std::string>{};
    case REDIS_REPLY_STRING:
      return std::optional<std::string>{reply_text(reply)};
    case REDIS_REPLY_ERROR:
      return reply_error(impl_->conn, reply);
    default:
      return failure{error_code::internal_error,
                     "unexpected reply to GET " + key};
    }
  });
}

struct finished_feed::impl {
  explicit impl(const redis_settings& settings) : conn(settings, true) {
    // nop
  }
  redis_connection conn;
};

finished_feed::finished_feed(redis_settings settings)
    : impl_(std::make_unique<impl>(settings)) {
  channel_ = finished_channel(settings.key_prefix);
}

finished_feed::~finished_feed() = default;

outcome<std::vector<std::string>>
finished_feed::next(std::chrono::milliseconds wait) {
  if (!impl_->conn.subscribed())
    if (auto sub = impl_->conn.subscribe(channel_); !sub)
      return std::move(sub).error();
  return impl_->conn.next_messages(wait);
}

} // namespace resized::store
