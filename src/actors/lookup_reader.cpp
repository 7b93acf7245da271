#include "actors/lookup_reader.hpp"

#include "actors/messages.hpp"
#include "common/metrics.hpp"

namespace resized::actors {

namespace {

int64_t expiry(const reader_state& st) {
  return now_ms() + st.ttl.count() * 1000;
}

failure unavailable() {
  return failure{error_code::store_unavailable,
                 "the task store is unavailable, try again later"};
}

failure unknown(const std::string& token) {
  return failure{error_code::unknown_token,
                 "no task " + token + " (unknown or expired)"};
}

// `token`'s record: the cache's, else Redis' (cached when final); nullopt
// when unknown.
outcome<std::optional<task_record>> read_record(reader_actor_type* self,
                                                const std::string& token) {
  auto& st = self->state;
  if (auto hit = st.cache->record(token); hit && hit->expires_at_ms > now_ms())
    return std::optional<task_record>{hit->record};
  if (st.cache->store_held())
    return unavailable();
  auto res = st.store->get_record(token);
  if (!res) {
    metrics::redis_error();
    return std::move(res).error();
  }
  if (res.value() && is_final(res.value()->status))
    st.cache->put_record(token, {*res.value(), expiry(st)});
  return std::move(res).value();
}

} // namespace

caf::behavior lookup_reader(reader_actor_type* self, reader_config cfg) {
  auto& st = self->state;
  st.cache = cfg.cache;
  st.ttl = cfg.result_ttl;
  st.retry_interval = cfg.retry_interval;
  // Quiet: the status actor's store logs Redis going away and coming back.
  st.store = std::make_unique<store::task_store>(cfg.redis, true);
  st.store->hold_after_timeouts([self] {
    self->delayed_send(self, self->state.retry_interval, release_atom::value);
  });
  return {
      [=](status_atom, const std::string& token, int64_t,
          status_replier& reply) {
        auto res = read_record(self, token);
        if (!res)
          reply(unavailable());
        else if (!res.value())
          reply(unknown(token));
        else
          reply(std::move(*res.value()));
      },
      [=](image_atom, const std::string& token, image_replier& reply) {
        auto& st = self->state;
        auto rec = read_record(self, token);
        if (!rec) {
          reply(unavailable());
          return;
        }
        if (!rec.value() || rec.value()->status != task_status::success) {
          reply(failure{error_code::unknown_token,
                        "no image for " + token +
                            " (unknown, expired or not finished)"});
          return;
        }
        std::shared_ptr<const std::string> bytes;
        if (auto hit = st.cache->image(token);
            hit && hit->expires_at_ms > now_ms()) {
          bytes = hit->bytes;
        } else if (st.cache->store_held()) {
          reply(unavailable());
          return;
        } else {
          auto img = st.store->get_image(token);
          if (!img) {
            metrics::redis_error();
            reply(unavailable());
            return;
          }
          if (!img.value()) {
            reply(failure{error_code::unknown_token,
                          "no image for " + token + " (expired)"});
            return;
          }
          bytes = std::make_shared<const std::string>(std::move(*img.value()));
          st.cache->put_image(token, {bytes, expiry(st)});
        }
        const auto& record = *rec.value();
        reply(image_blob{std::move(bytes), record.options.format, record.etag});
      },
      [=](release_atom) { self->state.store->release(); },
  };
}

} // namespace resized::actors
