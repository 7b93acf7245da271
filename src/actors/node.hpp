// Wires the actors of one node from its settings, by role:
//   standalone  status + supervisor + local agent + lease
//   api         status + supervisor (+ local agent if resize.pool-size > 0)
//               + lease, a gateway to the supervisor published on
//               cluster.port for workers to join (cluster_gateway)
// The supervisor recovers the name's pending tasks only once the lease
// actor holds the name (lease_actor.hpp).
//   worker      agent + one cluster_link per API node
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include "common/service.hpp"
#include "config/settings.hpp"
#include "store/attempt_journal.hpp"

namespace resized::actors {

struct node_actors {
  caf::actor status;
  caf::actor supervisor;
  caf::actor agent;
  std::vector<caf::actor> links;
  caf::actor lease;             // api, standalone: owns the node name in Redis
  caf::actor reader;            // api, standalone: Redis reads of plain lookups
  std::unique_ptr<backend> api; // for the HTTP layer (not on workers)
};

/// Spawns the node's actors; on an api node also publishes the supervisor's
/// gateway
/// (throws std::runtime_error if the cluster port cannot be opened).
/// `build` names this build in the cluster ("0.1.0 (commit)": a worker's
/// hello and join, /api/v1/cluster). `instance` is this process's unique id
/// (the value of the name's lease); `on_lost` runs if the name turns out to be
/// another running instance's after start-up went on (see lease_config).
/// `on_joined` gets the remote end (numeric host, port) of each worker
/// connection whose peer joined (supervisor_config::on_joined). `journal`
/// notes the resizes of the local pool (supervisor_config::journal).
node_actors
start_node(caf::actor_system& sys, const config::service_settings& cfg,
           const std::string& build, const std::string& instance = {},
           std::function<void()> on_lost = {},
           std::function<void(const std::string&, uint16_t)> on_joined = {},
           std::shared_ptr<store::attempt_journal> journal = {});

/// Sends exit to the node's actors; the caller then awaits them.
void stop_node(node_actors& node);

} // namespace resized::actors
