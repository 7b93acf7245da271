#include "actors/status_actor.hpp"

#include "common/log.hpp"
#include "common/metrics.hpp"

namespace resized::actors {

namespace {

void count_redis_error(status_actor_type* self) {
  ++self->state.redis_errors;
  metrics::redis_error();
}

bool expired(int64_t expires_at_ms) {
  return expires_at_ms <= now_ms();
}

void note_store_error(status_actor_type* self, const char* op,
                      const std::string& token, const failure& err) {
  count_redis_error(self);
  log::error("msg={} op={} token={} error={}", log::quote("redis write failed"),
             op, token, log::quote(err.message));
}

// Returns the record from the cache or Redis; nullopt when unknown.
outcome<std::optional<task_record>> find_record(status_actor_type* self,
                                                const std::string& token) {
  auto& st = self->state;
  if (auto* hit = st.records.get(token)) {
    if (!expired(hit->expires_at_ms))
      return std::optional<task_record>{hit->record};
    st.records.erase(token);
    return std::optional<task_record>{};
  }
  auto res = st.store->get_record(token);
  if (!res) {
    count_redis_error(self);
    return std::move(res).error();
  }
  if (res.value()) {
    // Remaining TTL is not read back: cache it for at most the full TTL,
    // Redis stays the authority once the entry is evicted.
    auto expires = now_ms() + st.ttl.count() * 1000;
    st.records.put(token, {*res.value(), expires});
  }
  return std::move(res).value();
}

// A result image from the cache, else Redis (then cached); nullopt when it
// is gone.
outcome<std::optional<std::shared_ptr<const std::string>>>
find_image(status_actor_type* self, const std::string& token) {
  using result = std::optional<std::shared_ptr<const std::string>>;
  auto& st = self->state;
  if (auto* hit = st.images.get(token); hit && !expired(hit->expires_at_ms))
    return result{hit->bytes};
  auto img = st.store->get_image(token);
  if (!img) {
    count_redis_error(self);
    return std::move(img).error();
  }
  if (!img.value())
    return result{};
  auto bytes = std::make_shared<const std::string>(std::move(*img.value()));
  st.images.put(token, {bytes, now_ms() + st.ttl.count() * 1000},
                bytes->size());
  return result{std::move(bytes)};
}

} // namespace

caf::behavior status_actor(status_actor_type* self, status_config cfg) {
  auto& st = self->state;
  st.records =
      lru_cache<std::string, status_state::cached_record>{cfg.cache_entries};
  st.images = lru_cache<std::string, status_state::cached_image>{
      cfg.cache_entries, cfg.image_cache_bytes};
  st.ttl = cfg.result_ttl;
  st.node = cfg.node;
  st.store = std::make_unique<store::task_store>(cfg.redis);
  if (!st.store->connect())
    log::warn("msg={} host={} port={}",
              log::quote("redis not reachable at start, will retry"),
              cfg.redis.host, cfg.redis.port);
  return {
      [=](accept_atom, task_record& rec, const caf::message& job) -> bool {
        auto& st = self->state;
        const auto& input = job.get_as<resize_job>(0).input;
        auto res = st.store->put_accepted(rec, input, st.node, st.ttl);
        if (!res) {
          note_store_error(self, "put_accepted", rec.token, res.error());
          return false;
        }
        auto token = rec.token;
        st.records.put(token,
                       {std::move(rec), now_ms() + st.ttl.count() * 1000});
        return true;
      },
      [=](recover_atom) -> caf::result<std::vector<store::pending_task>> {
        auto res = self->state.store->load_pending(self->state.node);
        if (!res) {
          count_redis_error(self);
          return caf::make_error(caf::sec::runtime_error, res.error().message);
        }
        return std::move(res).value();
      },
      [=](update_atom, task_record& rec) {
        auto& st = self->state;
        auto expires = now_ms() + st.ttl.count() * 1000;
        if (auto res = st.store->put_record(rec, st.ttl, st.node); !res)
          note_store_error(self, "put_record", rec.token, res.error());
        auto token = rec.token;
        st.records.put(token, {std::move(rec), expires});
      },
      [=](result_atom, task_record& rec, std::string& bytes) {
        auto& st = self->state;
        auto expires = now_ms() + st.ttl.count() * 1000;
        if (auto res = st.store->put_result(rec, bytes, st.ttl, st.node); !res)
          note_store_error(self, "put_result", rec.token, res.error());
        auto token = rec.token;
        auto weight = bytes.size();
        st.images.put(
            token,
            {std::make_shared<const std::string>(std::move(bytes)), expires},
            weight);
        st.records.put(token, {std::move(rec), expires});
      },
      [=](clone_atom, const std::string& original, task_record& rec) -> bool {
        auto& st = self->state;
        auto found = find_record(self, original);
        if (!found || !found.value() ||
            found.value()->status != task_status::success)
          return false;
        auto img = find_image(self, original);
        if (!img || !img.value())
          return false;
        auto bytes = std::move(*img.value());
        copy_result(*found.value(), rec);
        rec.started_at_ms = rec.finished_at_ms = now_ms();
        if (auto res = st.store->put_result(rec, *bytes, st.ttl, st.node);
            !res) {
          note_store_error(self, "put_result", rec.token, res.error());
          return false;
        }
        auto expires = now_ms() + st.ttl.count() * 1000;
        st.images.put(rec.token, {bytes, expires}, bytes->size());
        auto token = rec.token;
        st.records.put(token, {std::move(rec), expires});
        return true;
      },
      [=](ping_atom, ping_replier& reply) {
        auto res = self->state.store->ping();
        if (!res)
          count_redis_error(self);
        reply(std::move(res));
      },
      [=](status_atom, const std::string& token, status_replier& reply) {
        auto res = find_record(self, token);
        if (!res)
          reply(std::move(res).error());
        else if (!res.value())
          reply(failure{error_code::unknown_token,
                        "no task " + token + " (unknown or expired)"});
        else
          reply(std::move(*res.value()));
      },
      [=](image_atom, const std::string& token, image_replier& reply) {
        auto rec = find_record(self, token);
        if (!rec) {
          reply(std::move(rec).error());
          return;
        }
        if (!rec.value() || rec.value()->status != task_status::success) {
          reply(failure{error_code::unknown_token,
                        "no image for " + token +
                            " (unknown, expired or not "
                            "finished)"});
          return;
        }
        auto img = find_image(self, token);
        if (!img) {
          reply(std::move(img).error());
          return;
        }
        if (!img.value()) {
          reply(failure{error_code::unknown_token,
                        "no image for " + token + " (expired)"});
          return;
        }
        const auto& record = *rec.value();
        reply(image_blob{std::move(*img.value()), record.options.format,
                         record.etag});
      },
  };
}

} // namespace resized::actors
