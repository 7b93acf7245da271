// Wires the actors of one node from its settings, by role:
//   standalone  status + supervisor + local agent
//   api         status + supervisor (+ local agent if resize.pool-size > 0),
//               supervisor published on cluster.port for workers to join
//   worker      agent + one cluster_link per API node
#pragma once

#include <memory>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include "common/service.hpp"
#include "config/settings.hpp"

namespace resized::actors {

struct node_actors {
  caf::actor status;
  caf::actor supervisor;
  caf::actor agent;
  std::vector<caf::actor> links;
  std::unique_ptr<backend> api; // for the HTTP layer (not on workers)
};

/// Spawns the node's actors; on an api node also publishes the supervisor
/// (throws std::runtime_error if the cluster port cannot be opened).
node_actors start_node(caf::actor_system& sys,
                       const config::service_settings& cfg);

/// Sends exit to the node's actors; the caller then awaits them.
void stop_node(node_actors& node);

} // namespace resized::actors
