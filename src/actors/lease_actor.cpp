#include "actors/lease_actor.hpp"

#include <algorithm>
#include <map>
#include <random>

#include "common/log.hpp"

namespace resized::actors {

namespace {

using phase = lease_state::phase;
using clock = std::chrono::steady_clock;

int64_t ms_since(clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - t)
      .count();
}

// How long ago the lease was last renewed (zero before it was taken).
std::chrono::milliseconds since_renewed(const lease_state& st) {
  if (st.at != phase::held)
    return std::chrono::milliseconds{0};
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() -
                                                               st.renewed_at);
}

// How often a node waiting for another instance's lease looks again: often
// enough that a crash-restart starts soon after the old lease runs out.
std::chrono::milliseconds poll_interval(const lease_config& cfg) {
  return std::min(cfg.renew, std::chrono::milliseconds{200});
}

// Start-up may go on (true) or must not (false); answers main's lease_atom
// now or when it asks.
void decide(lease_actor_type* self, bool ok) {
  auto& st = self->state;
  if (st.start_ok)
    return;
  st.start_ok = ok;
  for (auto& p : st.asking)
    p.deliver(ok);
  st.asking.clear();
}

// The name is another running instance's: stops here for good. Before
// start-up went on main is told (it refuses to start); after, on_lost.
void give_up_name(lease_actor_type* self) {
  auto& st = self->state;
  st.at = phase::lost;
  if (!st.start_ok) {
    decide(self, false);
    return;
  }
  if (st.cfg.on_lost)
    st.cfg.on_lost();
}

void tick_after(lease_actor_type* self, std::chrono::milliseconds delay) {
  self->delayed_send(self, delay, renew_atom::value);
}

void on_claim_failed(lease_actor_type* self, const failure& err) {
  auto& st = self->state;
  if (!st.away_since)
    st.away_since = clock::now();
  if (st.at == phase::acquiring) {
    if (!st.start_ok)
      log::warn("redis not usable: the lease on this node's name is not "
                "taken yet; the node starts, and recovers its pending tasks "
                "once the lease is taken",
                {{"node", st.cfg.node}, {"error", err.message}});
    decide(self, true); // as for every Redis outage at start-up
    tick_after(self, poll_interval(st.cfg));
    return;
  }
  if (!st.renew_failing)
    log::warn("lease on this node's name not renewed (redis away): retrying",
              {{"node", st.cfg.node},
               {"error", err.message},
               {"lease_ms", st.cfg.ttl.count()}});
  st.renew_failing = true;
  tick_after(self, poll_interval(st.cfg));
}

// When the next look for names with no lease is due: cfg.adopt from now,
// plus up to a renew interval at random so that peers do not all look at
// once.
clock::time_point next_adopt_time(const lease_config& cfg) {
  static thread_local std::minstd_rand rng{std::random_device{}()};
  std::uniform_int_distribution<int64_t> jitter(0, cfg.renew.count());
  return clock::now() + cfg.adopt + std::chrono::milliseconds{jitter(rng)};
}

// Reads the records of the adopted `tokens` (now in this name's pending set)
// and hands them to the supervisor, which reads their inputs as its queue
// has room, then crosses them off the handover hash. If Redis fails they
// stay there, and the next pass hands them over (the supervisor takes a
// task it has already once: recover() skips what it handles). Returns
// false if Redis failed.
bool hand_over(lease_actor_type* self, const std::string& from,
               const std::vector<std::string>& tokens) {
  auto& st = self->state;
  auto tasks =
      st.store->load_pending(st.cfg.node, tokens, store::pending_inputs::skip);
  if (!tasks) {
    log::warn("adopted pending tasks not read (redis away): retrying",
              {{"from", from},
               {"tasks", tokens.size()},
               {"error", tasks.error().message}});
    return false;
  }
  if (st.cfg.supervisor && !tasks.value().empty())
    self->send(st.cfg.supervisor, adopt_atom::value, from,
               std::move(tasks).value());
  return st.store->handed_over(st.cfg.node, tokens).ok();
}

// Hands over what an earlier pass adopted and did not: its reading failed,
// or the adoption's answer was lost after Redis ran it (a timeout, a
// dropped connection), when this actor did not even know the tokens.
// Returns false if Redis failed.
bool hand_over_leftovers(lease_actor_type* self) {
  auto& st = self->state;
  auto left = st.store->adopted_not_handed(st.cfg.node);
  if (!left)
    return false;
  std::map<std::string, std::vector<std::string>> by_name;
  for (auto& [token, from] : left.value())
    by_name[from].push_back(std::move(token));
  for (const auto& [from, tokens] : by_name) {
    log::info(
        "handing over pending tasks adopted earlier",
        {{"node", st.cfg.node}, {"from", from}, {"tasks", tokens.size()}});
    if (!hand_over(self, from, tokens))
      return false;
  }
  return true;
}

// After Redis was away long enough for a live node's lease to run out (a
// lease less the renewal interval: its last renewal may have come that
// long before the outage began), the first look for names with no lease
// waits a lease and a renewal from now: each live owner takes its own name
// again at its next renewal. Adopting before that would run their tasks
// twice (here, and where they still are). Shorter outages (a claim that
// timed out now and then) delay nothing.
void hold_adoption_after_outage(lease_state& st) {
  st.next_adopt =
      std::max(st.next_adopt, clock::now() + st.cfg.ttl + st.cfg.renew);
}

// A renewal found the lease gone and took it again (nobody had adopted the
// name's tasks): why it had run out (why_lease_lapsed), and how long ago
// the last renewal worked.
void lease_taken_again(lease_actor_type* self, lease_lapse cause,
                       std::chrono::milliseconds since_renewed) {
  auto& st = self->state;
  const char* msg = nullptr;
  switch (cause) {
  case lease_lapse::redis_away:
    msg = "lease on this node's name had run out (redis away for longer "
          "than the lease): taken again, no other instance holds it";
    break;
  case lease_lapse::node_stalled:
    msg = "lease on this node's name had run out (this node renewed "
          "nothing for longer than the lease: paused, or starved of CPU): "
          "taken again, no other instance holds it";
    break;
  case lease_lapse::redis_lost_it:
    msg = "lease on this node's name had run out (renewed in time: redis "
          "lost it, restarted without its data?): taken again, no other "
          "instance holds it";
    break;
  }
  log::warn(msg, {{"node", st.cfg.node},
                  {"instance", st.cfg.instance},
                  {"cause", to_string(cause)},
                  {"since_renewal_ms", since_renewed.count()},
                  {"lease_ms", st.cfg.ttl.count()}});
  // Redis may have lost this node's open tasks with the lease.
  if (st.cfg.supervisor)
    self->send(st.cfg.supervisor, restore_atom::value);
}

// Moves the pending sets of names nobody holds a lease on into this
// name's, one name at a time, and hands their tasks to the supervisor.
void adopt_orphans(lease_actor_type* self) {
  auto& st = self->state;
  if (!hand_over_leftovers(self))
    return; // Redis away: the next pass
  // A look on a Redis not indexed yet walks the keyspace (seconds with
  // millions of keys, and this actor renews nothing meanwhile): the lease
  // is renewed on the way when due. A renewal that does not find it this
  // instance's stops the pass; the next tick's says why.
  auto last_claim = clock::now(); // on_claimed has just renewed it
  auto keep_lease = [&] {
    if (clock::now() - last_claim < st.cfg.renew)
      return true;
    auto res =
        st.store->claim_lease(st.cfg.node, st.cfg.instance, st.cfg.ttl, true);
    last_claim = clock::now();
    if (res && res.value().ours) {
      auto since = since_renewed(st);
      st.renewed_at = last_claim;
      if (res.value().taken) {
        // Redis answered the walk's calls up to here: not away.
        lease_taken_again(self, why_lease_lapsed(false, since, st.cfg.ttl),
                          since);
        hold_adoption_after_outage(st); // as on_claimed does
      }
    }
    return res && res.value().ours && !res.value().taken;
  };
  auto names = st.store->pending_names(10000, keep_lease);
  if (!names)
    return; // Redis away (the renewal logs it) or stopped: looks again
  for (const auto& name : names.value()) {
    if (name == st.cfg.node)
      continue;
    auto res = st.store->adopt_pending(name, st.cfg.node);
    if (!res)
      return; // if Redis ran it after all: the next pass's leftovers
    if (res.value().held || res.value().tokens.empty())
      continue;
    log::info("adopted pending tasks of a node with no owner",
              {{"node", st.cfg.node},
               {"from", name},
               {"tasks", res.value().tokens.size()}});
    if (!hand_over(self, name, res.value().tokens))
      return;
  }
}

void on_claimed(lease_actor_type* self, const store::lease_claim& claim) {
  auto& st = self->state;
  bool after_outage = st.away_since && clock::now() - *st.away_since >=
                                           st.cfg.ttl - st.cfg.renew;
  bool claims_failed = st.away_since.has_value();
  auto since = since_renewed(st);
  st.away_since.reset();
  st.renewed_at = clock::now();
  if (st.at == phase::acquiring) {
    log::info("node name lease taken", {{"node", st.cfg.node},
                                        {"instance", st.cfg.instance},
                                        {"lease_ms", st.cfg.ttl.count()},
                                        {"waited_ms", ms_since(st.started)}});
    st.at = phase::held;
    if (st.cfg.supervisor)
      self->send(st.cfg.supervisor, recover_atom::value);
    decide(self, true);
    st.next_adopt = next_adopt_time(st.cfg);
    if (after_outage)
      hold_adoption_after_outage(st);
  } else {
    if (claim.taken) {
      lease_taken_again(
          self, why_lease_lapsed(claims_failed, since, st.cfg.ttl), since);
    } else if (st.renew_failing)
      log::info("lease on this node's name renewed again",
                {{"node", st.cfg.node}});
    st.renew_failing = false;
    if (after_outage || claim.taken)
      hold_adoption_after_outage(st);
    if (st.cfg.adopt.count() > 0 && !st.draining &&
        clock::now() >= st.next_adopt) {
      adopt_orphans(self);
      st.next_adopt = std::max(st.next_adopt, next_adopt_time(st.cfg));
    }
  }
  tick_after(self, st.cfg.renew);
}

void on_held_elsewhere(lease_actor_type* self,
                       const store::lease_claim& claim) {
  auto& st = self->state;
  if (st.at == phase::held) {
    // Adopted: its tasks are another node's now, which runs them; taking
    // the name again and going on would run them twice (and each would end
    // twice).
    bool adopted = !claim.adopted_by.empty();
    auto since = since_renewed(st);
    // Renewed in time and taken by another instance: two nodes under one
    // name, not a lapse of this one.
    const char* cause =
        !adopted && since < st.cfg.ttl
            ? "name_taken"
            : to_string(why_lease_lapsed(st.away_since.has_value(), since,
                                         st.cfg.ttl));
    log::error(adopted
                   ? "lease on this node's name lost: it ran out (this node "
                     "was paused or cut off from redis for longer than the "
                     "lease) and another node adopted its tasks; this node "
                     "stops taking and recovering tasks and exits"
                   : "lease on this node's name lost: another instance holds "
                     "it (two nodes started with the same cluster.node-name, "
                     "or this one paused or cut off from redis for longer "
                     "than the lease); this node stops taking and recovering "
                     "tasks and exits",
               {{"node", st.cfg.node},
                {"instance", st.cfg.instance},
                {adopted ? "adopted_by" : "holder",
                 adopted ? claim.adopted_by : claim.holder},
                {"cause", cause},
                {"since_renewal_ms", since.count()},
                {"exit_code", 4}});
    give_up_name(self);
    return;
  }
  auto left = std::chrono::milliseconds{
      std::clamp<int64_t>(claim.ttl_ms, 0, st.cfg.ttl.count())};
  if (claim.ttl_ms < 0)
    left = st.cfg.ttl; // no expiry: set by hand; give it a lease's time
  if (!st.waiting) {
    st.waiting = true;
    st.deadline =
        clock::now() + left + st.cfg.renew + std::chrono::milliseconds{500};
    log::warn(
        "node name held by another instance: waiting for its lease "
        "to run out (a previous process with this name that did not "
        "shut down cleanly, e.g. kill -9, leaves it for up to "
        "cluster.lease-ms); if it is still renewed then, this node "
        "does not start",
        {{"node", st.cfg.node},
         {"holder", claim.holder},
         {"expires_in_ms", claim.ttl_ms},
         {"wait_max_ms", std::chrono::duration_cast<std::chrono::milliseconds>(
                             st.deadline - clock::now())
                             .count()}});
  } else if (clock::now() >= st.deadline) {
    log::error("node name in use by a running instance (its lease is still "
               "renewed): not starting; give this node another "
               "cluster.node-name, or stop the other one",
               {{"node", st.cfg.node},
                {"holder", claim.holder},
                {"waited_ms", ms_since(st.started)},
                {"exit_code", 4}});
    give_up_name(self);
    return;
  }
  tick_after(self, poll_interval(st.cfg));
}

} // namespace

lease_lapse why_lease_lapsed(bool claims_failed,
                             std::chrono::milliseconds since_renewed,
                             std::chrono::milliseconds ttl) {
  if (since_renewed < ttl)
    return lease_lapse::redis_lost_it;
  return claims_failed ? lease_lapse::redis_away : lease_lapse::node_stalled;
}

const char* to_string(lease_lapse cause) {
  switch (cause) {
  case lease_lapse::redis_away:
    return "redis_away";
  case lease_lapse::node_stalled:
    return "node_stalled";
  case lease_lapse::redis_lost_it:
    return "redis_lost_it";
  }
  return "unknown";
}

caf::behavior lease_actor(lease_actor_type* self, lease_config cfg) {
  auto& st = self->state;
  st.cfg = std::move(cfg);
  // Quiet: the status actor logs Redis going away and coming back.
  st.store = std::make_unique<store::task_store>(st.cfg.redis, true);
  st.started = clock::now();
  self->send(self, renew_atom::value);
  return {
      [=](renew_atom) {
        auto& st = self->state;
        if (st.at == phase::lost)
          return;
        auto res = st.store->claim_lease(st.cfg.node, st.cfg.instance,
                                         st.cfg.ttl, st.at == phase::held);
        if (!res)
          on_claim_failed(self, res.error());
        else if (res.value().ours)
          on_claimed(self, res.value());
        else
          on_held_elsewhere(self, res.value());
      },
      [=](drain_atom) { self->state.draining = true; },
      [=](lease_atom) -> caf::result<bool> {
        auto& st = self->state;
        if (st.start_ok)
          return *st.start_ok;
        auto promise = self->make_response_promise<bool>();
        st.asking.push_back(promise);
        return promise;
      },
  };
}

} // namespace resized::actors
