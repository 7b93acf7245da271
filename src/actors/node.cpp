#include "actors/node.hpp"

#include <caf/send.hpp>

#include "actors/actor_backend.hpp"
#include "actors/status_actor.hpp"
#include "actors/supervisor.hpp"

namespace resized::actors {

node_actors start_node(caf::actor_system& sys,
                       const config::service_settings& cfg) {
  node_actors node;
  status_config scfg;
  scfg.redis = cfg.redis.store;
  scfg.result_ttl = cfg.redis.result_ttl;
  scfg.cache_entries = cfg.status.cache_entries;
  scfg.image_cache_bytes = cfg.status.image_cache_bytes;
  node.status = sys.spawn<caf::detached>(status_actor, scfg);
  supervisor_config sup;
  sup.pool_size = static_cast<size_t>(cfg.resize.pool_size);
  sup.queue_capacity = cfg.queue.capacity;
  sup.queue_max_bytes = cfg.queue.max_bytes;
  sup.task_timeout = cfg.resize.task_timeout;
  sup.limits = cfg.limits;
  sup.node = cfg.node_name;
  node.supervisor = sys.spawn(supervisor, sup, node.status);
  node.api = std::make_unique<actor_backend>(node.supervisor, node.status);
  return node;
}

void stop_node(node_actors& node) {
  node.api.reset();
  caf::anon_send_exit(node.supervisor, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(node.status, caf::exit_reason::user_shutdown);
}

} // namespace resized::actors
