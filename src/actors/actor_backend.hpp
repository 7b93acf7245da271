// The actors' side of the HTTP boundary: implements `resized::backend` by
// sending messages to the supervisor, the status actor and the lookup
// reader, and by reading final records and results from the status actor's
// lookup_cache. Never blocks (the cache's lock is held for a map lookup
// only).
#pragma once

#include <memory>

#include <caf/actor.hpp>

#include "actors/lookup_cache.hpp"
#include "common/service.hpp"

namespace resized::actors {

class actor_backend : public backend {
public:
  /// `cache`: the status actor's (status_config::cache); null: every
  /// lookup is the actor's. `reader`: a lookup_reader on that cache, which
  /// reads the plain polls and image fetches the cache cannot answer;
  /// none: the status actor does.
  actor_backend(caf::actor supervisor, caf::actor status,
                std::shared_ptr<lookup_cache> cache = nullptr,
                caf::actor reader = {})
      : supervisor_(std::move(supervisor)),
        status_(std::move(status)),
        cache_(std::move(cache)),
        reader_(std::move(reader)) {}

  void submit(submit_request req, submit_replier reply) override;
  void status(std::string token, std::chrono::milliseconds wait,
              status_replier reply) override;
  void image(std::string token, image_replier reply) override;
  void cluster(cluster_replier reply) override;
  void ping_store(ping_replier reply) override;

private:
  caf::actor supervisor_;
  caf::actor status_;
  std::shared_ptr<lookup_cache> cache_;
  caf::actor reader_;
};

} // namespace resized::actors
