// Wires the actors of one node from its settings.
#pragma once

#include <memory>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include "common/service.hpp"
#include "config/settings.hpp"

namespace resized::actors {

struct node_actors {
  caf::actor status;
  caf::actor supervisor;
  std::unique_ptr<backend> api; // for the HTTP layer
};

/// Spawns the status actor (detached) and the supervisor.
node_actors start_node(caf::actor_system& sys,
                       const config::service_settings& cfg);

/// Sends exit to the node's actors; the caller then awaits them.
void stop_node(node_actors& node);

} // namespace resized::actors
