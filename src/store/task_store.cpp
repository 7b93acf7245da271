#include "store/task_store.hpp"

#include <exception>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "store/record_codec.hpp"
#include "store/redis_connection.hpp"

namespace resized::store {

std::string task_key(const std::string& prefix, const std::string& token) {
  return prefix + "task:" + token;
}

std::string image_key(const std::string& prefix, const std::string& token) {
  return prefix + "image:" + token;
}

struct task_store::impl {
  explicit impl(const redis_settings& settings) : conn(settings) {
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
failure reply_error(const redis_connection& conn, const redisReply& reply) {
  return conn.error(reply_text(reply));
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

} // namespace

task_store::task_store(redis_settings settings)
    : settings_(std::move(settings)), impl_(std::make_unique<impl>(settings_)) {
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

outcome<bool> task_store::ping() {
  return guarded([&]() -> outcome<bool> {
    auto replies = impl_->conn.run({{"PING"}});
    if (!replies)
      return std::move(replies).error();
    const auto& reply = *replies.value().front();
    if (reply.type == REDIS_REPLY_ERROR)
      return reply_error(impl_->conn, reply);
    return true;
  });
}

outcome<bool> task_store::put_record(const task_record& rec,
                                     std::chrono::seconds ttl) {
  return guarded([&]() -> outcome<bool> {
    if (auto err = check_args(rec.token, ttl))
      return *err;
    auto key = task_key(settings_.key_prefix, rec.token);
    auto fields = encode_fields(rec);
    auto ttl_text = std::to_string(ttl.count());
    auto replies = impl_->conn.run({
        hset_command(key, fields),
        {"EXPIRE", key, ttl_text},
    });
    if (!replies)
      return std::move(replies).error();
    if (auto* err = first_error(replies.value()))
      return reply_error(impl_->conn, *err);
    return true;
  });
}

outcome<bool> task_store::put_result(const task_record& rec,
                                     const std::string& image,
                                     std::chrono::seconds ttl) {
  return guarded([&]() -> outcome<bool> {
    if (auto err = check_args(rec.token, ttl))
      return *err;
    auto tkey = task_key(settings_.key_prefix, rec.token);
    auto ikey = image_key(settings_.key_prefix, rec.token);
    auto fields = encode_fields(rec);
    auto ttl_text = std::to_string(ttl.count());
    // Replies: +OK, +QUEUED x3, then EXEC's array of the three results.
    auto replies = impl_->conn.run({
        {"MULTI"},
        {"SET", ikey, image, "EX", ttl_text},
        hset_command(tkey, fields),
        {"EXPIRE", tkey, ttl_text},
        {"EXEC"},
    });
    if (!replies)
      return std::move(replies).error();
    // A queued command rejected (then EXEC answers -EXECABORT): the first
    // error says why.
    if (auto* err = first_error(replies.value()))
      return reply_error(impl_->conn, *err);
    const auto& exec = *replies.value().back();
    if (exec.type != REDIS_REPLY_ARRAY)
      return impl_->conn.error("transaction aborted");
    for (size_t i = 0; i < exec.elements; ++i)
      if (exec.element[i]->type == REDIS_REPLY_ERROR)
        return reply_error(impl_->conn, *exec.element[i]);
    return true;
  });
}

outcome<std::optional<task_record>>
task_store::get_record(const std::string& token) {
  using result = outcome<std::optional<task_record>>;
  return guarded([&]() -> result {
    auto key = task_key(settings_.key_prefix, token);
    auto replies = impl_->conn.run({{"HGETALL", key}});
    if (!replies)
      return std::move(replies).error();
    const auto& reply = *replies.value().front();
    if (reply.type == REDIS_REPLY_ERROR)
      return reply_error(impl_->conn, reply);
    if (reply.type != REDIS_REPLY_ARRAY || reply.elements % 2 != 0)
      return failure{error_code::internal_error,
                     "unexpected reply to HGETALL " + key};
    if (reply.elements == 0)
      return std::optional<task_record>{}; // no such key
    field_list fields;
    fields.reserve(reply.elements / 2);
    for (size_t i = 0; i < reply.elements; i += 2)
      fields.emplace_back(reply_text(*reply.element[i]),
                          reply_text(*reply.element[i + 1]));
    auto rec = decode_fields(fields);
    if (!rec)
      return failure{rec.error().code, rec.error().message + " in " + key};
    return std::optional<task_record>{std::move(rec).value()};
  });
}

outcome<std::optional<std::string>>
task_store::get_image(const std::string& token) {
  using result = outcome<std::optional<std::string>>;
  return guarded([&]() -> result {
    auto key = image_key(settings_.key_prefix, token);
    auto replies = impl_->conn.run({{"GET", key}});
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

} // namespace resized::store
