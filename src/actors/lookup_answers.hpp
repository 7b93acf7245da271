// How a client's status or image lookup is answered from what was found in
// the cache or Redis: shared by the status actor and the lookup reader, so
// both answer alike.
#pragma once

#include <algorithm>
#include <memory>
#include <optional>
#include <string>

#include "actors/lookup_cache.hpp"
#include "common/service.hpp"
#include "common/task_record.hpp"
#include "store/task_store.hpp"

namespace resized::actors {

/// What a client is told when Redis failed: that the store is away and to
/// retry. The cause (host, port, errno text) is for the log, where the
/// connection writes it when Redis goes away (`redis connection lost`).
inline failure store_unavailable() {
  return failure{error_code::store_unavailable,
                 "the task store is unavailable, try again later"};
}

using image_found = std::optional<std::shared_ptr<const std::string>>;

/// `token`'s result image from `cache`, else from `store` (then cached until
/// `expires_at_ms`, or until Redis lets it expire if sooner); nullopt when
/// it is gone. The caller counts a failure.
inline outcome<image_found> cached_or_stored_image(store::task_store& store,
                                                   lookup_cache& cache,
                                                   const std::string& token,
                                                   int64_t expires_at_ms) {
  if (auto bytes = cache.live_image(token))
    return image_found{std::move(bytes)};
  int64_t stored_until = 0;
  auto img = store.get_image(token, &stored_until);
  if (!img)
    return std::move(img).error();
  if (!img.value())
    return image_found{};
  auto bytes = std::make_shared<const std::string>(std::move(*img.value()));
  cache.put_image(token, {bytes, std::min(expires_at_ms, stored_until)});
  return image_found{std::move(bytes)};
}

/// Answers a status lookup: the record, unknown_token, or that Redis failed.
inline void answer_lookup(const std::string& token,
                          outcome<std::optional<task_record>> found,
                          const status_replier& reply) {
  if (!found)
    reply(store_unavailable());
  else if (!found.value())
    reply(failure{error_code::unknown_token,
                  "no task " + token + " (unknown or expired)"});
  else
    reply(std::move(*found.value()));
}

/// Answers an image fetch from the task's record as found;
/// `find_image(record)` (→ outcome<std::optional<std::shared_ptr<const
/// std::string>>>) is asked for the bytes of a SUCCESS only (a twin's are
/// stored under another token: stored_image_token).
template <class FindImage>
void answer_image(const std::string& token,
                  outcome<std::optional<task_record>> rec,
                  FindImage&& find_image, const image_replier& reply) {
  if (!rec) {
    reply(store_unavailable());
    return;
  }
  if (!rec.value() || rec.value()->status != task_status::success) {
    reply(failure{error_code::unknown_token,
                  "no image for " + token +
                      " (unknown, expired or not finished)"});
    return;
  }
  auto img = find_image(*rec.value());
  if (!img) {
    reply(store_unavailable());
    return;
  }
  if (!img.value()) {
    reply(failure{error_code::unknown_token,
                  "no image for " + token + " (expired)"});
    return;
  }
  const auto& record = *rec.value();
  reply(
      image_blob{std::move(*img.value()), record.options.format, record.etag});
}

} // namespace resized::actors
