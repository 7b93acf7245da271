// The lease actor: one per API or standalone node, detached with a hiredis
// connection of its own (a hung Redis in the status actor's calls must not
// delay a renewal, nor a renewal a lookup). It makes this process the only
// running owner of its node name, and so of the name's pending set: the
// lease `<prefix>node:<name>` holds this instance's id with a TTL of
// cluster.lease-ms, renewed every cluster.lease-renew-ms by a script that
// renews only a lease that is still this instance's (task_store::
// claim_lease).
//
//   acquiring ──claim: ours─────────────────────────────▶ held ◀──┐
//     │ ▲                                                  │  │ renew: ours
//     │ └─ claim: another holds it, deadline not passed    │  └─┘ (or free:
//     │    (poll again: a crashed predecessor's lease      │   taken again)
//     │    runs out meanwhile)                             │
//     │                                                    │ renew: another
//     ├─ claim: another holds it past the deadline ──▶ lost ◀┘ holds it
//     │  (main is told false: not starting; or on_lost
//     │  if start-up went on during a Redis outage)
//     └─ claim: Redis away ─▶ main is told true (start), poll again
//
// The deadline is set when another instance is first seen holding the
// name: its lease's time left (at most lease-ms) plus one renew interval
// and a margin. A dead predecessor's lease has run out by then; one still
// held then is renewed by a live process, which keeps the name.
//
// Once the lease is taken the supervisor is told recover_atom: nothing of
// the name's pending set is recovered before. While held, a renewal that
// fails (Redis away) is tried again at the next tick; if the lease ran out
// meanwhile and is free, it is taken again; if another instance took it,
// the name is lost: on_lost runs once (main stops the node, exit code 4).
//
// Adoption (cfg.adopt, cluster.adopt-ms, by default lease-ms): while held
// and not draining (drain_atom from main at SIGTERM), every cfg.adopt plus
// a random part of a renew interval, the
// pending sets of names that nobody holds a lease on (a node drained and
// not restarted, or dead for longer than its lease) are moved into this
// name's set, one atomic script per name (task_store::adopt_pending), and
// their records handed to the supervisor (adopt_atom), which resumes them
// as recovered ones. Tasks moved but not read (Redis away) are read again at
// the next pass.
//
// The lease is not released here: main deletes it (if still this
// instance's) once every other actor has stopped, so a successor never
// runs beside this process's last writes.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <caf/actor.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_response_promise.hpp>

#include "actors/messages.hpp"
#include "store/task_store.hpp"

namespace resized::actors {

struct lease_config {
  store::redis_settings redis;
  std::string node;     // the name leased
  std::string instance; // this process's id, the lease's value
  std::chrono::milliseconds ttl{10000};
  std::chrono::milliseconds renew{3000};
  /// Told recover_atom once the lease is this instance's (may be null).
  caf::actor supervisor;
  /// Runs once, on this actor's thread, when the name turns out to be
  /// another running instance's after start-up went on (renewal found
  /// another holder, or the first claim after a Redis outage at start-up
  /// did past its deadline).
  std::function<void()> on_lost;
  /// How often it adopts the pending tasks of names with no lease (see
  /// above), plus up to `renew` at random; 0 = never.
  std::chrono::milliseconds adopt{10000};
};

struct lease_state {
  enum class phase { acquiring, held, lost };
  lease_config cfg;
  std::unique_ptr<store::task_store> store;
  phase at = phase::acquiring;
  /// Whether start-up may go on, once known (before or after main asks).
  std::optional<bool> start_ok;
  /// Main's lease_atom while start_ok is not known yet.
  std::vector<caf::typed_response_promise<bool>> asking;
  /// acquiring: another instance holds the name; refuse once this passes.
  std::chrono::steady_clock::time_point deadline{};
  bool waiting = false; // the deadline is set
  std::chrono::steady_clock::time_point started{};
  bool renew_failing = false; // a renewal failed, not yet one that worked
  /// held: when a claim last took or renewed the lease.
  std::chrono::steady_clock::time_point renewed_at{};
  /// Since when claims fail (Redis away), if the last one did.
  std::optional<std::chrono::steady_clock::time_point> away_since;
  bool draining = false; // shutting down: adopts nothing more
  /// held: the next look for names with no lease is due then.
  std::chrono::steady_clock::time_point next_adopt{};
  static inline const char* name = "lease";
};

using lease_actor_type = caf::stateful_actor<lease_state>;

/// Why a held lease on this node's name ran out, as its node can tell at
/// the renewal that finds it gone (logged as `cause`).
enum class lease_lapse {
  redis_away,   // the renewals failed (Redis down, hung or unreachable)
                // for longer than the lease
  node_stalled, // this node tried none for longer than the lease: the
                // process was paused (SIGSTOP, a frozen VM) or starved
  redis_lost_it // renewed in time, the key is gone all the same: Redis
                // restarted without its data, a FLUSHALL, an eviction
};

/// The lapse's cause from what the node saw since its last renewal that
/// worked, `since_renewed` ago: whether a claim failed since, and the
/// lease's length.
lease_lapse why_lease_lapsed(bool claims_failed,
                             std::chrono::milliseconds since_renewed,
                             std::chrono::milliseconds ttl);
const char* to_string(lease_lapse cause);

caf::behavior lease_actor(lease_actor_type* self, lease_config cfg);

} // namespace resized::actors
