#include "actors/lookup_reader.hpp"

#include <algorithm>

#include <caf/send.hpp>

#include "actors/lookup_answers.hpp"
#include "actors/messages.hpp"
#include "common/metrics.hpp"

namespace resized::actors {

namespace {

int64_t expiry(const reader_state& st) {
  return now_ms() + st.cfg.result_ttl.count() * 1000;
}

// `token`'s record: the cache's, else Redis' (cached when final); nullopt
// when unknown. With `final_wanted` (an image fetch), a cached record still
// open is read again from Redis: the client has heard that the task ended,
// perhaps from another API node, and this node's cache may be a moment
// behind Redis (the status actor caches a result after Redis took it).
outcome<std::optional<task_record>> read_record(reader_actor_type* self,
                                                const std::string& token,
                                                bool final_wanted = false) {
  auto& st = self->state;
  auto cached = st.cfg.cache->current_record(token);
  if (cached && (!final_wanted || is_final(cached->status)))
    return cached;
  if (st.cfg.cache->store_held()) {
    if (cached)
      return cached;
    return store_unavailable();
  }
  int64_t stored_until = 0;
  auto res = st.store->get_record(token, &stored_until);
  if (!res) {
    metrics::redis_error();
    if (cached) // what this node knows, rather than nothing
      return cached;
    return std::move(res).error();
  }
  if (res.value() && is_final(res.value()->status))
    st.cfg.cache->put_record(
        token, {*res.value(), std::min(expiry(st), stored_until)});
  return std::move(res).value();
}

// `token`'s result image: the cache's, else Redis' (then cached); nullopt
// when it is gone.
outcome<image_found> read_image(reader_actor_type* self,
                                const std::string& token) {
  auto& st = self->state;
  if (st.cfg.cache->store_held()) {
    if (auto bytes = st.cfg.cache->live_image(token))
      return image_found{std::move(bytes)};
    return store_unavailable();
  }
  auto img =
      cached_or_stored_image(*st.store, *st.cfg.cache, token, expiry(st));
  if (!img)
    metrics::redis_error();
  return img;
}

} // namespace

caf::behavior lookup_reader(reader_actor_type* self, reader_config cfg) {
  auto& st = self->state;
  st.cfg = cfg;
  // Quiet: the status actor's store logs Redis going away and coming back.
  st.store = std::make_unique<store::task_store>(cfg.redis, true);
  st.store->hold_after_timeouts([self] {
    self->delayed_send(self, self->state.cfg.retry_interval,
                       release_atom::value);
  });
  return {
      [=](status_atom, std::string& token, int64_t wait_ms,
          status_replier& reply) {
        auto rec = read_record(self, token);
        auto& status = self->state.cfg.status;
        if (wait_ms > 0 && status && rec && rec.value() &&
            !is_final(rec.value()->status)) {
          // Open: the status actor holds the poll until the task ends.
          caf::anon_send<lookup_priority>(status, status_atom::value,
                                          std::move(token), wait_ms,
                                          std::move(reply));
          return;
        }
        answer_lookup(token, std::move(rec), reply);
      },
      [=](image_atom, const std::string& token, image_replier& reply) {
        answer_image(
            token, read_record(self, token, true),
            [&](const task_record& rec) {
              return read_image(self, stored_image_token(rec));
            },
            reply);
      },
      [=](release_atom) { self->state.store->release(); },
  };
}

} // namespace resized::actors
