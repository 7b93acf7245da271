#include "actors/cluster_link.hpp"

#include <functional>
#include <utility>

#include <caf/io/middleman.hpp>
#include <caf/openssl/manager.hpp>

#include "common/log.hpp"
#include "common/socket_ends.hpp"

namespace resized::actors {

namespace {

// Doubles the backoff (from backoff_min up to backoff_max) and tries again
// after it; returns the wait.
std::chrono::milliseconds retry_later(link_actor_type* self) {
  auto& st = self->state;
  st.backoff = st.backoff.count() == 0
                   ? st.cfg.backoff_min
                   : std::min(st.backoff * 2, st.cfg.backoff_max);
  self->delayed_send(self, st.backoff, try_connect_atom::value);
  return st.backoff;
}

// Failed tries in a row after which a link is logged at warn: a worker that
// cannot reach an API node it was pointed at (a wrong port, a firewall, a
// node that is not up) says so at the level operators keep, once per
// stretch down. With the default backoff (250 ms doubling to 5 s) the fifth
// comes some 4 s after the first. Later tries are logged at debug, and at
// info once a minute: an API node gone for good would otherwise fill the
// log with a line every 5 s.
constexpr uint32_t down_warn_after_tries = 5;
constexpr std::chrono::minutes down_info_every{1};

void schedule_retry(link_actor_type* self, const std::string& why) {
  auto& st = self->state;
  auto wait = retry_later(self);
  auto now = std::chrono::steady_clock::now();
  if (!st.down_since)
    st.down_since = now;
  ++st.failed_tries;
  auto down_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                     now - *st.down_since)
                     .count();
  bool warn = st.failed_tries == down_warn_after_tries;
  auto level = log::level::info;
  if (warn) {
    level = log::level::warn;
    st.down_noted = now;
  } else if (st.failed_tries > down_warn_after_tries) {
    if (now - *st.down_noted >= down_info_every)
      st.down_noted = now;
    else
      level = log::level::debug;
  }
  log::emit(level,
            warn ? "cluster link still down: not joined to this API node"
                 : "cluster link down",
            {{"api", endpoint_text(st.cfg.host, st.cfg.port)},
             {"reason", why},
             {"tries", st.failed_tries},
             {"down_ms", down_ms},
             {"retry_ms", wait.count()}});
}

// Tells the joined API node that this node leaves; `done` gets whether it
// answered.
void leave(link_actor_type* self, std::function<void(bool)> done) {
  auto& st = self->state;
  if (st.api && !st.joined) {
    // Joining: the API node may have counted this node in already, and
    // would take its going for a loss. Leave once the join is decided.
    st.after_join.push_back(std::move(done));
    return;
  }
  if (!st.joined || !st.api) {
    done(false);
    return;
  }
  self->request(st.api, st.cfg.connect_timeout, leave_atom::value, st.agent)
      .then(
          [=](uint64_t in_flight) {
            auto& st = self->state;
            if (!st.told)
              log::info("told API node this node leaves",
                        {{"api", endpoint_text(st.cfg.host, st.cfg.port)},
                         {"in_flight", in_flight}});
            st.told = true;
            done(true);
          },
          [=](caf::error& err) {
            auto& st = self->state;
            log::warn("API node did not acknowledge leaving",
                      {{"api", endpoint_text(st.cfg.host, st.cfg.port)},
                       {"error", describe(self->system(), err)}});
            done(false);
          });
}

void join(link_actor_type* self, caf::actor api) {
  auto& st = self->state;
  st.api = api;
  self->monitor(api);
  self->request(api, st.cfg.connect_timeout, join_atom::value, st.agent,
                st.info)
      .then(
          [=](welcome_atom) {
            auto& st = self->state;
            if (st.api != api)
              return; // a session that is gone (see below)
            st.joined = true;
            st.backoff = std::chrono::milliseconds{0};
            st.down_since.reset();
            st.down_noted.reset();
            st.failed_tries = 0;
            log::info("joined API node",
                      {{"api", endpoint_text(st.cfg.host, st.cfg.port)},
                       {"api_version", st.api_build},
                       {"node", st.info.name},
                       {"workers", st.info.pool_size}});
            if (st.leaving) // began shutting down while joining
              leave(self,
                    [waiting = std::exchange(st.after_join, {})](bool told) {
                      for (const auto& done : waiting)
                        done(told);
                    });
          },
          [=](caf::error& err) {
            auto& st = self->state;
            // The API node went down while this join was unanswered and
            // the link has joined another since (or is joining): this
            // answer, its timeout, is about a session that is gone.
            if (st.api != api)
              return;
            self->demonitor(st.api);
            st.api = nullptr;
            for (const auto& done : std::exchange(st.after_join, {}))
              done(false); // not joined: nothing to leave
            std::string holder;
            bool leaving = is_error(err, cluster_error::name_leaving, holder);
            if (leaving || is_error(err, cluster_error::name_taken, holder)) {
              // Another node uses this name: a misconfigured twin, or this
              // node's own previous process, not yet known dead there, or
              // (leaving) draining in a rolling restart. Keep asking: the
              // name is ours once its holder is gone.
              auto wait = retry_later(self);
              log::emit(
                  leaving ? log::level::info : log::level::error,
                  leaving ? "join deferred: the node with this name is leaving"
                          : "join refused: node name in use",
                  {{"api", endpoint_text(st.cfg.host, st.cfg.port)},
                   {"node", st.info.name},
                   {"reason", holder},
                   {"retry_ms", wait.count()}});
              return;
            }
            std::string why;
            if (is_error(err, cluster_error::heartbeat_too_slow, why)) {
              // A setting to change here (or there; the reason says
              // which): asked again with backoff, in case a node is
              // restarted with another.
              auto wait = retry_later(self);
              log::error("join refused: heartbeats too far apart",
                         {{"api", endpoint_text(st.cfg.host, st.cfg.port)},
                          {"node", st.info.name},
                          {"reason", why},
                          {"retry_ms", wait.count()}});
              return;
            }
            schedule_retry(self,
                           "join refused: " + describe(self->system(), err));
          });
}

// Before joining: both nodes must read each other's messages alike. The
// API node answers with its build, or refuses one of another cluster
// protocol; then this node keeps asking (backoff), so it gets in once
// either side runs the other's version.
void hello(link_actor_type* self, caf::actor api) {
  auto& st = self->state;
  self->request(api, st.cfg.connect_timeout, hello_atom::value,
                cluster_protocol, st.info.build)
      .then(
          [=](hello_atom, std::string& api_build) {
            if (self->state.leaving)
              return; // shutting down meanwhile: do not join
            self->state.api_build = std::move(api_build);
            join(self, api);
          },
          [=](caf::error& err) {
            auto& st = self->state;
            std::string why;
            if (err == caf::sec::unexpected_message)
              // No handler for hello: a build from before it existed.
              why = "the API node runs a resized build that predates cluster "
                    "protocols";
            else if (!is_error(err, cluster_error::protocol_mismatch, why)) {
              schedule_retry(self, describe(self->system(), err));
              return;
            }
            auto wait = retry_later(self);
            log::error("join refused: another cluster protocol",
                       {{"api", endpoint_text(st.cfg.host, st.cfg.port)},
                        {"node", st.info.name},
                        {"reason", why},
                        {"retry_ms", wait.count()}});
          });
}

void connect(link_actor_type* self) {
  auto& st = self->state;
  auto& sys = self->home_system();
  auto mm = st.cfg.tls ? sys.openssl_manager().actor_handle()
                       : sys.middleman().actor_handle();
  self->request(mm, st.cfg.connect_timeout, caf::connect_atom::value,
                st.cfg.host, st.cfg.port)
      .then(
          [=](const caf::node_id&, caf::strong_actor_ptr& ptr,
              const std::set<std::string>&) {
            if (self->state.leaving)
              return; // shutting down meanwhile: do not join
            if (!ptr) {
              schedule_retry(self, "no actor published on that port");
              return;
            }
            hello(self, caf::actor_cast<caf::actor>(std::move(ptr)));
          },
          [=](caf::error& err) {
            schedule_retry(self, describe(self->system(), err));
          });
}

} // namespace

caf::behavior cluster_link(link_actor_type* self, link_config cfg,
                           caf::actor agent, node_info info) {
  auto& st = self->state;
  st.cfg = std::move(cfg);
  st.agent = std::move(agent);
  st.info = std::move(info);
  self->set_down_handler([=](caf::down_msg& msg) {
    auto& st = self->state;
    if (msg.source != st.api.address())
      return;
    st.api = nullptr;
    st.joined = false;
    if (st.leaving) {
      log::info("API node lost while leaving: not rejoining",
                {{"api", endpoint_text(st.cfg.host, st.cfg.port)},
                 {"reason", describe(self->system(), msg.reason)}});
      return;
    }
    schedule_retry(self,
                   "API node lost: " + describe(self->system(), msg.reason));
  });
  self->send(self, try_connect_atom::value);
  return {
      [=](try_connect_atom) {
        if (!self->state.api && !self->state.leaving)
          connect(self);
      },
      [=](drain_atom) -> caf::result<bool> {
        self->state.leaving = true;
        auto promise = self->make_response_promise<bool>();
        leave(self, [=](bool acknowledged) mutable {
          promise.deliver(acknowledged);
        });
        return promise;
      },
  };
}

} // namespace resized::actors
