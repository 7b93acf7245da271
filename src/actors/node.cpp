#include "actors/node.hpp"

#include <stdexcept>
#include <unistd.h>

#include <caf/io/middleman.hpp>
#include <caf/openssl/publish.hpp>
#include <caf/send.hpp>

#include "actors/actor_backend.hpp"
#include "actors/agent.hpp"
#include "actors/cluster_link.hpp"
#include "actors/lease_actor.hpp"
#include "actors/lookup_reader.hpp"
#include "actors/status_actor.hpp"
#include "actors/supervisor.hpp"

namespace resized::actors {

node_actors
start_node(caf::actor_system& sys, const config::service_settings& cfg,
           const std::string& build, const std::string& instance,
           std::function<void()> on_lost,
           std::function<void(const std::string&, uint16_t)> on_joined,
           std::shared_ptr<store::attempt_journal> journal) {
  node_actors node;
  const auto& cl = cfg.cluster;
  auto pool = static_cast<size_t>(cfg.resize.pool_size);
  if (pool > 0)
    node.agent =
        sys.spawn(agent, agent_config{pool, cl.node_name, cfg.resize.nice,
                                      cl.role == "worker"});
  if (cl.role == "worker") {
    char host[256] = {};
    gethostname(host, sizeof(host) - 1);
    node_info info{cl.node_name,
                   cl.advertise.empty() ? host : cl.advertise,
                   static_cast<uint32_t>(pool),
                   build,
                   static_cast<uint32_t>(cl.heartbeat.count()),
                   static_cast<uint32_t>(cl.connection_timeout.count())};
    for (const auto& ep : cl.api_nodes) {
      link_config lc;
      lc.host = ep.host;
      lc.port = ep.port;
      lc.backoff_max = cl.reconnect_max;
      lc.connect_timeout = cl.connection_timeout;
      lc.tls = cl.tls.on();
      node.links.push_back(sys.spawn(cluster_link, lc, node.agent, info));
    }
    return node;
  }
  status_config scfg;
  scfg.redis = cfg.redis.store;
  scfg.result_ttl = cfg.redis.result_ttl;
  scfg.cache_entries = cfg.status.cache_entries;
  scfg.image_cache_bytes = cfg.status.image_cache_bytes;
  scfg.max_unwritten_bytes = cfg.queue.max_bytes; // results kept for Redis
  scfg.recheck = cfg.status.recheck;
  scfg.cache = std::make_shared<lookup_cache>(scfg.cache_entries,
                                              scfg.image_cache_bytes);
  scfg.node = cl.node_name;
  // Each long poll holds one connection: there cannot be more.
  scfg.max_waiters = cfg.http.max_connections;
  node.status = sys.spawn<caf::detached>(status_actor, scfg);
  reader_config rcfg;
  rcfg.redis = cfg.redis.store;
  rcfg.result_ttl = cfg.redis.result_ttl;
  rcfg.cache = scfg.cache;
  rcfg.status = node.status;
  node.reader = sys.spawn<caf::detached>(lookup_reader, rcfg);
  supervisor_config sup;
  sup.queue_capacity = cfg.queue.capacity;
  sup.queue_max_bytes = cfg.queue.max_bytes;
  sup.client_max_tasks = cfg.queue.max_per_client;
  sup.client_max_bytes = cfg.queue.max_bytes_per_client;
  sup.task_timeout = cfg.resize.task_timeout;
  sup.limits = cfg.limits;
  sup.max_attempts = static_cast<uint32_t>(cfg.resize.max_attempts);
  sup.node = cl.node_name;
  sup.role = cl.role;
  sup.build = build;
  sup.on_joined = std::move(on_joined);
  sup.journal = std::move(journal);
  sup.decode_bytes_per_worker = cfg.resize.decode_bytes_per_worker;
  sup.store_timeout =
      2 * cfg.redis.store.command_timeout + cfg.redis.store.connect_timeout;
  sup.connection_timeout = cl.connection_timeout;
  sup.heartbeat = cl.heartbeat;
  sup.recover_at_start = false; // the lease actor says when
  node.supervisor = sys.spawn(supervisor, sup, node.status, node.agent, pool);
  lease_config lc;
  lc.redis = cfg.redis.store;
  lc.node = cl.node_name;
  lc.instance = instance;
  lc.ttl = cl.lease;
  lc.renew = cl.lease_renew;
  lc.adopt = cl.adopt;
  lc.supervisor = node.supervisor;
  lc.on_lost = std::move(on_lost);
  node.lease = sys.spawn<caf::detached>(lease_actor, std::move(lc));
  node.api = std::make_unique<actor_backend>(node.supervisor, node.status,
                                             scfg.cache, node.reader);
  if (cl.role == "api") {
    // Peers reach the supervisor only through its gateway: hello, join and
    // leave (anything of a peer's is taken for a worker's).
    auto gateway = sys.spawn(cluster_gateway, node.supervisor);
    auto port = cl.tls.on()
                    ? caf::openssl::publish(gateway, cl.port,
                                            cl.bind_address.c_str(), true)
                    : sys.middleman().publish(gateway, cl.port,
                                              cl.bind_address.c_str(), true);
    if (!port) {
      stop_node(node);
      throw std::runtime_error("cannot listen for workers on " +
                               cl.bind_address + ":" + std::to_string(cl.port) +
                               ": " + sys.render(port.error()));
    }
  }
  return node;
}

void stop_node(node_actors& node) {
  node.api.reset();
  for (auto& link : node.links)
    caf::anon_send_exit(link, caf::exit_reason::user_shutdown);
  for (auto* a :
       {&node.supervisor, &node.status, &node.reader, &node.agent, &node.lease})
    if (*a)
      caf::anon_send_exit(*a, caf::exit_reason::user_shutdown);
}

} // namespace resized::actors
