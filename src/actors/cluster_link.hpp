// A worker node's link to one API node. Connects through the middleman
// without blocking (connect_atom to middleman().actor_handle()), joins the
// API node's supervisor with this node's agent, monitors it, and on any
// failure or loss tries again with exponential backoff. Workers and API
// nodes can therefore start, stop and restart in any order.
//
//   connecting ──connected──▶ joining ──welcome──▶ joined
//       ▲                         │                  │ down (API lost)
//       └──── after backoff ◀─────┴──── failure ◀────┘
//
// A join refused because another connected node has this node's name
// (cluster_error::name_taken) is logged as an error and retried like any
// failure: if the holder is this node's own previous process (crashed, not
// yet known dead there), the name is free once the API node notices.
//
// drain_atom (graceful shutdown, from main): tell the API node this node
// leaves (leave_atom), so it places nothing more here and does not count
// the tasks running here as lost; never reconnect again. Answers true once
// the API node acknowledged; false if not joined or it did not answer. A
// drain that arrives while the join is under way waits for its answer: the
// API node may already count this node as joined.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "actors/messages.hpp"

namespace resized::actors {

struct link_config {
  std::string host;
  uint16_t port = 0;
  std::chrono::milliseconds backoff_min{250};
  std::chrono::milliseconds backoff_max{5000};
  std::chrono::milliseconds connect_timeout{5000};
  bool tls = false; // through CAF's OpenSSL module (openssl.* keys)
};

struct link_state {
  link_config cfg;
  caf::actor agent;
  node_info info;
  caf::actor api;        // the API node's supervisor while joined
  std::string api_build; // its version and commit, from its hello answer
  std::chrono::milliseconds backoff{0};
  bool joined = false;
  bool leaving = false; // the node shuts down: no more (re)joining
  bool told = false;    // the API node acknowledged leave_atom once
  // Since when the link is down without a join (unset while joined), and
  // the tries that failed since (schedule_retry).
  std::optional<std::chrono::steady_clock::time_point> down_since;
  uint32_t failed_tries = 0;
  // When a try past the warning was last logged at info (once a minute).
  std::optional<std::chrono::steady_clock::time_point> down_noted;
  // Drains that arrived while joining: answered once the join is decided.
  std::vector<std::function<void(bool)>> after_join;

  static inline const char* name = "cluster_link";
};

using link_actor_type = caf::stateful_actor<link_state>;

caf::behavior cluster_link(link_actor_type* self, link_config cfg,
                           caf::actor agent, node_info info);

} // namespace resized::actors
