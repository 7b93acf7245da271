// resized: picks the role, wires actors and HTTP, waits for a signal.
//
// Start-up: block SIGINT/SIGTERM (every thread inherits the mask), load and
// validate the config, start libvips, the actor system, the node's actors
// and the HTTP server. Shutdown, in order: stop HTTP (no new requests), stop
// the actors (pending answers are dropped and answered by their fallbacks),
// wait for them, then destroy the server.
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <unistd.h>

#include <caf/actor_system.hpp>
#include <caf/io/middleman.hpp>
#include <caf/scoped_actor.hpp>

#include "actors/messages.hpp"
#include "actors/node.hpp"
#include "common/log.hpp"
#include "config/service_config.hpp"
#include "http/server.hpp"
#include "imaging/pipeline.hpp"

using namespace resized;

namespace {

std::string default_node_name(const config::service_settings& cfg) {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0)
    std::snprintf(host, sizeof(host), "localhost");
  return fmt::format("{}:{}", host, cfg.http.port);
}

} // namespace

int main(int argc, char** argv) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  config::service_config caf_cfg;
  actors::announce_message_types(caf_cfg);
  config::service_settings cfg;
  auto problems = caf_cfg.load(argc, argv, cfg);
  if (caf_cfg.cli_helptext_printed)
    return EXIT_SUCCESS;
  if (!problems.empty()) {
    for (const auto& p : problems)
      std::cerr << "resized: " << p << '\n';
    std::cerr << "resized: invalid configuration, not starting\n";
    return 2;
  }
  log::level lvl = log::level::info;
  log::parse(cfg.log_level, lvl);
  log::set_threshold(lvl);
  if (cfg.node_name.empty())
    cfg.node_name = default_node_name(cfg);

  std::string vips_err;
  if (!imaging::startup(argv[0], cfg.resize.vips_concurrency, vips_err)) {
    log::error("msg={} error={}", log::quote("libvips failed to start"),
               log::quote(vips_err));
    return EXIT_FAILURE;
  }
  log::info("msg={} jpeg={} png={} webp={} avif={}",
            log::quote("output formats"),
            imaging::can_write(imaging::output_format::jpeg),
            imaging::can_write(imaging::output_format::png),
            imaging::can_write(imaging::output_format::webp),
            imaging::can_write(imaging::output_format::avif));

  int rc = EXIT_SUCCESS;
  {
    caf::actor_system sys{caf_cfg};
    auto node = actors::start_node(sys, cfg);
    {
      http::server srv{cfg, *node.api};
      try {
        srv.start();
      } catch (const std::exception& e) {
        log::error("msg={} address={} port={} error={}",
                   log::quote("cannot start HTTP server"), cfg.http.address,
                   cfg.http.port, log::quote(e.what()));
        actors::stop_node(node);
        return EXIT_FAILURE;
      }
      log::info("msg={} node={} role={} address={} port={} pool_size={} "
                "redis={}:{}",
                log::quote("resized started"), cfg.node_name, cfg.role,
                cfg.http.address, cfg.http.port, cfg.resize.pool_size,
                cfg.redis.store.host, cfg.redis.store.port);
      int sig = 0;
      sigwait(&signals, &sig);
      log::info("msg={} signal={}", log::quote("shutting down"), sig);
      srv.stop();
      actors::stop_node(node);
      sys.await_all_actors_done();
    }
  }
  imaging::shutdown();
  log::info("msg={}", log::quote("stopped"));
  return rc;
}
