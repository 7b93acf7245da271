// The actors' side of the HTTP boundary: implements `resized::backend` by
// sending messages to the supervisor and the status actor. Never blocks.
#pragma once

#include <caf/actor.hpp>

#include "common/service.hpp"

namespace resized::actors {

class actor_backend : public backend {
public:
  actor_backend(caf::actor supervisor, caf::actor status)
      : supervisor_(std::move(supervisor)), status_(std::move(status)) {}

  void submit(submit_request req, submit_replier reply) override;
  void status(std::string token, std::chrono::milliseconds wait,
              status_replier reply) override;
  void image(std::string token, image_replier reply) override;
  void cluster(cluster_replier reply) override;
  void ping_store(ping_replier reply) override;

private:
  caf::actor supervisor_;
  caf::actor status_;
};

} // namespace resized::actors
