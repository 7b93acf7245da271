// resized: picks the role, wires actors and HTTP, waits for a signal.
//
// Start-up: block SIGINT/SIGTERM (every thread inherits the mask), load and
// validate the config, start libvips, the actor system (with the middleman:
// BASP heartbeats on), the node's actors and, except on workers, the HTTP
// server. Shutdown, in order: drain (API/standalone: the supervisor takes
// no new tasks; worker: the agent takes no new jobs and the API nodes are
// told it leaves; both let running tasks finish within shutdown.grace),
// stop HTTP (no new requests), stop the actors (pending answers are dropped
// and answered by their fallbacks), wait for them, then destroy the server.
// An API or standalone node owns its cluster.node-name through a lease in
// Redis (actors/lease_actor.hpp): HTTP starts only once the lease is taken,
// or once Redis is found away (taken later); if another running instance
// holds it the node exits with exit_name_taken before recovering anything,
// and the same code ends a node that loses its lease while it runs. A
// clean exit deletes the lease last, so a restart starts at once.
// A node whose tasks outlast the grace (or a second signal) exits with
// exit_abandoned, not waiting for libvips: a worker at once (its API nodes
// run the tasks again); an API or standalone node once HTTP is stopped and
// the status actor has written what it holds (the tasks' records stay in
// Redis and the next start resumes them).
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <string_view>
#include <sys/resource.h>
#include <unistd.h>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/after.hpp>
#include <caf/io/middleman.hpp>
#include <caf/openssl/manager.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>
#include <caf/system_messages.hpp>
#include <fmt/format.h>

#include "actors/messages.hpp"
#include "actors/node.hpp"
#include "cluster_guard.hpp"
#include "common/log.hpp"
#include "common/memory.hpp"
#include "common/metrics.hpp"
#include "common/socket_ends.hpp"
#include "config/service_config.hpp"
#include "config/tls_check.hpp"
#include "http/responses.hpp"
#include "http/server.hpp"
#include "imaging/pipeline.hpp"
#include "openssl_calls.hpp"
#include "store/attempt_journal.hpp"
#include "store/task_store.hpp"
#include "version.hpp"

using namespace resized;

namespace {

std::string hostname() {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0)
    return "localhost";
  return host;
}

std::string default_node_name(const config::service_settings& cfg) {
  if (cfg.cluster.role == "worker")
    return fmt::format("{}/worker-{}", hostname(), getpid());
  return fmt::format("{}:{}", hostname(), cfg.http.port);
}

// Polls `target` with drain_atom (it stops taking work and answers how
// many tasks it still has in flight) every 100 ms until none are left, the
// deadline passes or a second signal arrives. Returns the tasks left; sets
// `interrupted` on a second signal.
size_t wait_drained(caf::actor_system& sys, const caf::actor& target,
                    std::chrono::steady_clock::time_point deadline,
                    const sigset_t& signals, bool& interrupted) {
  caf::scoped_actor self{sys};
  size_t in_flight = 0;
  for (;;) {
    bool answered = false;
    self->request(target, std::chrono::seconds{1}, actors::drain_atom::value)
        .receive([&](size_t n) { in_flight = n, answered = true; },
                 [&](caf::error&) {});
    if (!answered || in_flight == 0 ||
        std::chrono::steady_clock::now() >= deadline)
      return in_flight;
    timespec poll{0, 100'000'000}; // a second signal ends the wait early
    if (sigtimedwait(&signals, nullptr, &poll) > 0) {
      log::warn("second signal: not waiting any more");
      interrupted = true;
      return in_flight;
    }
  }
}

// Graceful part of an API or standalone node's shutdown: the supervisor
// refuses new tasks (503 shutting_down) and starts no queued ones, while the
// HTTP server still answers polls; in-flight tasks get up to `grace` to
// finish. Whatever is left stays in Redis and is recovered at the next
// start. A second signal cuts the wait short. Returns the tasks still in
// flight (running, or being stored): 0 when all finished.
size_t drain(caf::actor_system& sys, const caf::actor& supervisor,
             std::chrono::seconds grace, const sigset_t& signals) {
  bool interrupted = false;
  auto in_flight =
      wait_drained(sys, supervisor, std::chrono::steady_clock::now() + grace,
                   signals, interrupted);
  if (in_flight > 0)
    log::warn(interrupted
                  ? "stopping with unfinished tasks: they stay in redis and "
                    "resume at this node's next start, or on a live API "
                    "node sharing its redis that adopts them"
                  : "grace period over: unfinished tasks stay in redis and "
                    "resume at this node's next start, or on a live API "
                    "node sharing its redis that adopts them",
              {{"in_flight", in_flight}});
  return in_flight;
}

// Held long polls get their record as it stands now (the status actor's
// drain), before HTTP stops and their sockets go.
void answer_held_polls(caf::actor_system& sys, const caf::actor& status) {
  caf::scoped_actor self{sys};
  self->request(status, std::chrono::seconds{2}, actors::drain_atom::value)
      .receive([](bool) {}, [](caf::error&) {});
}

// How long the status actor may take to make the writes it holds when it
// is stopped: one write's worst case (a connect, then a command and its
// retry).
std::chrono::milliseconds
status_write_bound(const config::service_settings& cfg) {
  const auto& redis = cfg.redis.store;
  return redis.connect_timeout + 2 * redis.command_timeout;
}

// Past the grace the supervisor gives up on the tasks it still runs: it
// drops their answers from now on, so their records stay in Redis as they
// are (in this node's pending set: the next start resumes them, counting
// the attempt). Returns their tokens; none when they finished meanwhile.
std::vector<std::string> give_up(caf::actor_system& sys,
                                 const caf::actor& supervisor,
                                 bool name_lost = false) {
  std::vector<std::string> tokens;
  caf::scoped_actor self{sys};
  self->request(supervisor, std::chrono::seconds{1},
                actors::abandon_atom::value, name_lost)
      .receive([&](std::vector<std::string>& t) { tokens = std::move(t); },
               [](caf::error&) {});
  return tokens;
}

// Stops `target` and waits, at most `timeout`, until it is gone. The status
// actor handles its mailbox in order, so everything sent to it before is
// written first: records and results of the tasks that finished, the
// writes it kept through a Redis outage (tried once more at its drain),
// undos of refused submissions. False when it did not stop in time.
bool stop_actor(caf::actor_system& sys, const caf::actor& target,
                std::chrono::milliseconds timeout) {
  caf::scoped_actor self{sys};
  self->monitor(target);
  caf::anon_send_exit(target, caf::exit_reason::user_shutdown);
  bool stopped = false;
  self->receive([&](const caf::down_msg&) { stopped = true; },
                caf::after(timeout) >> [] {});
  return stopped;
}

// Asks every link to tell its API node that this node leaves, and waits
// for the answers (each at most `timeout`). Asked after the last task, an
// answer also means the results sent before it have arrived.
void tell_leaving(caf::actor_system& sys, const std::vector<caf::actor>& links,
                  std::chrono::milliseconds timeout) {
  caf::scoped_actor self{sys};
  for (const auto& link : links)
    self->request(link, timeout, actors::drain_atom::value)
        .receive([](bool) {}, [](caf::error&) {});
}

// Exit status of a node that gave up on running tasks (past its grace, or
// on a second signal): the process did not finish its work.
constexpr int exit_abandoned = 3;

// Exit status of an API or standalone node whose cluster.node-name is
// another running instance's: refused at start-up (the other's lease was
// still renewed past the wait), or lost while running.
constexpr int exit_name_taken = 4;

// Set (then SIGTERM raised) by the lease actor when this node's name turns
// out to be another running instance's while it runs.
std::atomic<bool> name_lost{false};

// This process's id in the lease on its name: host, pid and 64 random
// bits, so that a restart (same host, maybe the same pid) is another
// instance and an operator can tell from the log which process holds it.
std::string new_instance_id() {
  std::random_device rd;
  uint64_t r = (uint64_t{rd()} << 32) ^ rd();
  return fmt::format("{}/{}/{:016x}", hostname(), getpid(), r);
}

// Waits until start-up may go on: the name's lease is this instance's, or
// Redis is away (it is taken later, before any recovery). False: another
// running instance holds the name (the lease actor logged it). The lease
// actor answers within lease-ms + renew-ms + 500 ms of seeing another
// holder, plus its Redis calls.
bool settle_lease(caf::actor_system& sys, const caf::actor& lease,
                  const config::service_settings& cfg) {
  const auto& redis = cfg.redis.store;
  auto timeout = cfg.cluster.lease + cfg.cluster.lease_renew +
                 4 * (redis.connect_timeout + redis.command_timeout) +
                 std::chrono::seconds{5};
  bool ok = true;
  caf::scoped_actor self{sys};
  self->request(lease, timeout, actors::lease_atom::value)
      .receive([&](bool answer) { ok = answer; },
               [&](caf::error& err) {
                 // Go on: the lease actor still takes the lease before
                 // any recovery, or ends the node if it cannot.
                 log::warn("no answer about the node name lease: starting",
                           {{"error", sys.render(err)}});
               });
  return ok;
}

// Deletes the lease on this node's name if it is still this instance's,
// once nothing of this process writes to the name's pending set any more:
// a restart under the same name then starts at once.
void release_name(const config::service_settings& cfg,
                  const std::string& instance) {
  store::task_store store{cfg.redis.store, true};
  auto res = store.release_lease(cfg.cluster.node_name, instance);
  if (!res)
    log::warn("node name lease not released (redis away): a restart under "
              "this name waits until it runs out",
              {{"node", cfg.cluster.node_name},
               {"lease_ms", cfg.cluster.lease.count()},
               {"error", res.error().message}});
  else if (res.value())
    log::info("node name lease released", {{"node", cfg.cluster.node_name}});
  else
    log::warn("node name lease not this instance's any more: left alone",
              {{"node", cfg.cluster.node_name}});
}

// Whether the cluster port bound to `address` is reachable from this host
// only.
bool loopback_address(const std::string& address) {
  return address == "localhost" || address == "::1" || address == "[::1]" ||
         address.rfind("127.", 0) == 0;
}

std::string comma_list(const std::vector<std::string>& items) {
  std::string list;
  for (const auto& i : items)
    list += (list.empty() ? "" : ",") + i;
  return list;
}

// Graceful part of a worker node's shutdown, while its links stay open:
// the agent turns new jobs away and every API node is told this node
// leaves (it places nothing more here, and counts nothing running here as
// lost); the jobs running get up to `grace` to finish and deliver their
// results. Then each API node answers one more message, which it can only
// do after the results sent before it, and the node disconnects. Returns
// the jobs still running past the grace (or at a second signal): 0 when
// all finished.
size_t drain_worker(caf::actor_system& sys, const actors::node_actors& node,
                    std::chrono::seconds grace,
                    std::chrono::milliseconds link_timeout,
                    const sigset_t& signals) {
  auto deadline = std::chrono::steady_clock::now() + grace;
  bool interrupted = false;
  caf::anon_send(node.agent, actors::drain_atom::value); // no job starts now
  for (const auto& link : node.links)
    caf::anon_send(link, actors::drain_atom::value);
  auto in_flight =
      wait_drained(sys, node.agent, deadline, signals, interrupted);
  if (in_flight == 0) {
    tell_leaving(sys, node.links, link_timeout);
    return 0;
  }
  log::warn(interrupted ? "leaving with unfinished tasks: their API "
                          "nodes run them again"
                        : "grace period over: unfinished tasks go back "
                          "to their API nodes' queues",
            {{"in_flight", in_flight}});
  return in_flight;
}

// A worker that gives up on its running jobs exits now: libvips cannot be
// interrupted, and waiting for the resizes (up to resize.task-timeout-ms)
// would hold the process past its grace. The API nodes see the connection
// close and run those tasks again elsewhere, as for a lost worker.
[[noreturn]] void abandon(caf::actor_system& sys, const caf::actor& agent,
                          size_t in_flight) {
  std::vector<std::string> tokens;
  {
    caf::scoped_actor self{sys};
    self->request(agent, std::chrono::seconds{1}, actors::running_atom::value)
        .receive([&](std::vector<std::string>& t) { tokens = std::move(t); },
                 [](caf::error&) {});
  }
  log::error("exiting without waiting for the resizes still running: "
             "tasks abandoned",
             {{"tasks", std::max(in_flight, tokens.size())},
              {"tokens", comma_list(tokens)},
              {"exit_code", exit_abandoned}});
  // No destructors: they would wait for the resize threads.
  std::_Exit(exit_abandoned);
}

// An API or standalone node past its grace, once HTTP is stopped (held
// long polls were answered before) and the status actor has written what
// it holds: the tasks given up stay in Redis and run at this node's next
// start. It exits now: a local resize cannot be interrupted (and could run
// for up to resize.task-timeout-ms), a remote one sees the connection
// close.
// The name's lease is released after the status actor's last writes (and
// once the lease actor renews it no more), so the next start resumes the
// tasks at once.
[[noreturn]] void abandon_tasks(caf::actor_system& sys,
                                const actors::node_actors& node,
                                const std::vector<std::string>& tokens,
                                std::chrono::milliseconds store_timeout,
                                const config::service_settings& cfg,
                                const std::string& instance) {
  bool written = stop_actor(sys, node.status, store_timeout);
  if (!written)
    log::warn("exiting before every redis write was made (redis too "
              "slow): tasks whose final record is not written run again "
              "at the next start",
              {{"waited_ms", store_timeout.count()}});
  if (written && stop_actor(sys, node.lease, store_timeout))
    release_name(cfg, instance);
  log::error("exiting without waiting for the tasks still running: tasks "
             "abandoned, they stay in redis and resume at this node's next "
             "start, or on a live API node sharing its redis that adopts "
             "them",
             {{"tasks", tokens.size()},
              {"tokens", comma_list(tokens)},
              {"exit_code", exit_abandoned}});
  // No destructors: they would wait for the resize threads.
  std::_Exit(exit_abandoned);
}

// This node's name turned out to be another running instance's while it
// ran (the lease actor logged why): that instance owns the name's pending
// set and may be running the same tasks. Nothing more is taken, started or
// recorded here: the supervisor drops its running tasks' answers and
// starts no queued one (they are the owner's to run), held long polls get
// the record as it stands, HTTP stops, the status actor makes the writes
// it holds, and the process exits with exit_name_taken without waiting for
// libvips and without touching the lease.
[[noreturn]] void lose_name(caf::actor_system& sys,
                            const actors::node_actors& node,
                            std::optional<http::server>& srv,
                            const config::service_settings& cfg) {
  auto tokens = give_up(sys, node.supervisor, true);
  answer_held_polls(sys, node.status);
  if (srv)
    srv->stop();
  stop_actor(sys, node.status, status_write_bound(cfg));
  log::error("stopped: this node lost its name (the lease line before says "
             "to whom: another instance holding it, or a live API node that "
             "adopted its tasks); the tasks running here were dropped, and "
             "that instance or the adopter runs them",
             {{"node", cfg.cluster.node_name},
              {"tasks", tokens.size()},
              {"tokens", comma_list(tokens)},
              {"exit_code", exit_name_taken}});
  // No destructors: they would wait for the resize threads.
  std::_Exit(exit_name_taken);
}

// Files a node keeps open beside its HTTP connections: Redis connections
// (status, lease, probe), cluster connections, CAF's and libvips' own.
constexpr uint64_t open_files_reserve = 128;

/// Raises the soft RLIMIT_NOFILE to the hard one; returns the limit now in
/// force (UINT64_MAX when unlimited).
uint64_t raise_open_files_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
    return UINT64_MAX; // cannot tell: not refused for it
  if (rl.rlim_cur != rl.rlim_max) {
    rlimit raised = rl;
    raised.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
      rl = raised;
  }
  return rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX
                                      : static_cast<uint64_t>(rl.rlim_cur);
}

// The resize journal's file (resize.journal), or nullopt for a node that
// keeps none: one set "off", a worker, or an API node with no pool of its
// own (a worker node lost under a task is counted by the API node's
// supervisor, which outlives it). Needs cluster.node-name settled.
std::optional<std::string> journal_path(const config::service_settings& cfg) {
  if (cfg.cluster.role == "worker" || cfg.resize.pool_size == 0 ||
      cfg.resize.journal == "off")
    return std::nullopt;
  return cfg.resize.journal.empty()
             ? store::default_journal_path(cfg.cluster.node_name)
             : cfg.resize.journal;
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
  caf_cfg.load<caf::io::middleman>();
  // CAF's --help lists only its four global options; ours (every
  // section.key) are in its --long-help. A user asking for help wants them.
  std::vector<char*> args(argv, argv + argc);
  static char long_help[] = "--long-help";
  for (auto& arg : args) {
    std::string_view a{arg};
    if (a == "--help" || a == "-h" || a == "-?")
      arg = long_help;
    // Before the configuration is read: a version is asked for also (or
    // especially) where the configuration does not load.
    if (a == "--version") {
      std::cout << version_text() << std::flush;
      return EXIT_SUCCESS;
    }
  }
  config::service_settings cfg;
  // CAF prints the help to std::cout while it parses; it is caught here to
  // correct CAF's line for --dump-config (ours prints to stdout, as INI).
  std::ostringstream help;
  auto* cout_buf = std::cout.rdbuf(help.rdbuf());
  auto problems = caf_cfg.load(static_cast<int>(args.size()), args.data(), cfg);
  std::cout.rdbuf(cout_buf);
  if (caf_cfg.cli_helptext_printed) {
    auto text = help.str();
    // CAF's descriptions say STDERR; main prints all of it to stdout.
    auto reword = [&text](const std::string& from, const std::string& to) {
      if (auto at = text.find(from); at != std::string::npos)
        text.replace(at, from.size(), to);
    };
    reword("print configuration to STDERR and exit",
           "print every value in effect (an INI file) to stdout and exit");
    reword("print long help text to STDERR and exit", "the same as --help");
    reword("print help text to STDERR and exit",
           "print this text to stdout and exit");
    // --version is main's own (answered before CAF reads anything): listed
    // after --dump-config, aligned with it.
    const std::string dump = "  --dump-config";
    if (auto at = text.find(dump); at != std::string::npos) {
      auto colon = text.find(" : ", at);
      auto end = text.find('\n', at);
      if (colon != std::string::npos && end != std::string::npos &&
          colon < end) {
        std::string line = "  --version";
        line.resize(colon - at, ' ');
        line += " : print the version, the commit and the libraries' "
                "versions to stdout and exit\n";
        text.insert(end + 1, line);
      }
    }
    std::cout << text << std::flush;
    return EXIT_SUCCESS;
  }
  std::cout << help.str();
  if (!problems.empty()) {
    for (const auto& p : problems)
      std::cerr << "resized: " << p << '\n';
    std::cerr << "resized: invalid configuration, not starting\n";
    return 2;
  }
  const std::string huge_pages =
      caf_cfg.dump_requested()
          ? std::string{}
          : memory::run_with_huge_pages(cfg.memory.huge_pages, argv);
  log::level lvl = log::level::info;
  log::parse(cfg.log_level, lvl);
  log::set_threshold(lvl);
  log::format log_fmt = log::format::logfmt;
  log::parse_format(cfg.log_format, log_fmt);
  log::set_format(log_fmt);
  http::set_access_lines(cfg.log_access);
  auto& cl = cfg.cluster;
  bool default_name = cl.node_name.empty();
  if (default_name)
    cl.node_name = default_node_name(cfg);
  // CAF 0.17 notices a silently dead peer only through BASP heartbeats,
  // which are off by default.
  caf_cfg.set("middleman.heartbeat-interval", caf::timespan{cl.heartbeat});
  caf_cfg.set("middleman.connection-timeout",
              caf::timespan{cl.connection_timeout});
  caf_cfg.set("logger.verbosity", caf::atom("quiet"));
  // Open files. RESTinio 0.6 stops accepting for good once an accept fails
  // (its acceptor does not accept again after an error such as EMFILE):
  // idle connections up to the process's limit took the node off HTTP until
  // it was restarted. So the soft limit goes up to the hard one, and a
  // limit that cannot hold http.max-connections (RESTinio's own bound, which
  // makes it wait rather than fail) plus the node's other files is refused,
  // before --dump-config (which validates like a start).
  uint64_t open_files = raise_open_files_limit();
  if (cl.role != "worker") {
    uint64_t needed = cfg.http.max_connections + open_files_reserve;
    if (open_files < needed) {
      std::cerr << fmt::format(
          "resized: open files: the limit is {} (hard limit too), and "
          "http.max-connections = {} needs at least {} (HTTP connections "
          "plus {} for Redis, the cluster and the rest): raise it (ulimit "
          "-n, systemd LimitNOFILE=, docker --ulimit nofile=) or lower "
          "http.max-connections\n",
          open_files, cfg.http.max_connections, needed, open_files_reserve);
      return 2;
    }
  }

  if (caf_cfg.dump_requested()) {
    // After the values main derives (the BASP heartbeat and timeout from
    // cluster.*), so that the dump shows what a start would use.
    std::map<std::string, std::string> notes;
    if (default_name)
      notes["cluster.node-name"] =
          fmt::format("\"\": the default, here \"{}\"", cl.node_name);
    if (auto path = journal_path(cfg); path && cfg.resize.journal.empty())
      notes["resize.journal"] =
          fmt::format("\"\": the default, here \"{}\"", *path);
    if (cfg.cluster.advertise.empty())
      notes["cluster.advertise"] = fmt::format(
          "\"\": the default, this host's name (\"{}\")", hostname());
    std::cout
        << "; resized --dump-config: every key with the value in effect "
           "(file, command line, environment or default).\n"
           "; An INI file: --config-file reads it back (secrets are not "
           "shown: set them again).\n"
           "; [logger] is left out: CAF's own logger is compiled out of this "
           "libcaf (log.* sets resized's log).\n"
        << (cfg.config_file_implicit
                ? fmt::format("; read from {} (CAF's default, found in the "
                              "working directory: no --config-file given)\n",
                              cfg.config_file)
                : std::string{})
        << (cl.role == "worker"
                ? "; A worker: limits.*, defaults.*, resize.max-attempts, "
                  "resize.task-timeout-ms, resize.decode-bytes-per-worker "
                  "and resize.journal are left out (each task runs under its "
                  "API node's), and "
                  "so are [http], [redis], [queue], [status] and [auth] (a "
                  "worker has no HTTP server, Redis connection or queue).\n"
                : "")
        << config::dump_text(caf_cfg.dump_content(), notes) << std::flush;
    return EXIT_SUCCESS;
  }

  // Before libvips, CAF or RESTinio start a thread (arenas are per thread).
  if (!memory::set_heap_top_bytes(cfg.memory.heap_top_bytes))
    log::warn("malloc refused memory.heap-top-bytes",
              {{"bytes", cfg.memory.heap_top_bytes}});
  if (!memory::set_mmap_threshold(cfg.memory.mmap_threshold))
    log::warn("malloc refused memory.mmap-threshold",
              {{"bytes", cfg.memory.mmap_threshold}});
  if (!memory::limit_arenas(cfg.memory.arenas))
    log::warn("malloc refused memory.arenas", {{"arenas", cfg.memory.arenas}});
  std::optional<memory::trimmer> trim;
  if (cfg.memory.trim_interval.count() > 0)
    trim.emplace(cfg.memory.trim_interval, cfg.memory.trim_threshold,
                 cfg.memory.busy_trim_threshold, memory::work_count);

  if (!cfg.unused_on_worker.empty())
    log::warn(
        "config keys not used on a worker node: each task runs under "
        "the settings of the API node that accepted it",
        {{"keys", fmt::format("{}", fmt::join(cfg.unused_on_worker, ","))}});

  if (!cfg.unused_without_http.empty())
    log::warn(
        "config keys not used on a worker node: it has no HTTP server, "
        "Redis connection or queue (its API nodes do)",
        {{"keys", fmt::format("{}", fmt::join(cfg.unused_without_http, ","))}});
  if (cl.role != "worker" && !cl.api_nodes.empty())
    log::warn("cluster.api-nodes is set but only a worker joins API nodes: "
              "this node runs as its role says and joins none (for a worker, "
              "set cluster.role = worker)",
              {{"role", cl.role}});

  if (!cfg.caf_logger_keys.empty())
    log::warn(
        "config keys that change nothing: CAF's own logger is compiled "
        "out of this libcaf (Debian builds 0.17 at log level quiet); "
        "resized's log is set with log.level, log.format and log.access",
        {{"keys", fmt::format("{}", fmt::join(cfg.caf_logger_keys, ","))}});

  if (!cfg.unused_on_standalone.empty())
    log::warn("config keys not used on a standalone node: TLS is for the "
              "cluster port (cluster.role = api or worker)",
              {{"keys",
                fmt::format("{}", fmt::join(cfg.unused_on_standalone, ","))}});
  // TLS on the cluster port: CAF reads the openssl.* keys (checked by
  // config::tls_problems) only with its OpenSSL module loaded.
  bool cluster_tls = cl.role != "standalone" && cl.tls.on();
  if (cl.role == "api" && !cluster_tls && !loopback_address(cl.bind_address))
    log::warn("the cluster port takes any node that connects: without "
              "[openssl] it is neither authenticated nor encrypted, and a "
              "worker that joins is sent uploads and returns results; keep "
              "it on a private network, bind it to loopback, or set openssl.*",
              {{"cluster", endpoint_text(cl.bind_address, cl.port)}});
  if (cluster_tls) {
    // CAF reads the files for every connection: it gets the checked
    // content, kept in memory (config::pin_tls_files).
    std::string err;
    auto pinned = cl.tls;
    if (!config::pin_tls_files(pinned, err)) {
      log::error("cannot keep the TLS files in memory", {{"error", err}});
      return 2;
    }
    caf_cfg.openssl_certificate = pinned.certificate;
    caf_cfg.openssl_key = pinned.key;
    caf_cfg.openssl_cafile = pinned.cafile;
    caf_cfg.load<caf::openssl::manager>();
    // A peer silent that long is dropped once joined (BASP heartbeats);
    // one that never finishes its TLS handshake is cut off as soon.
    set_tls_handshake_deadline(cl.connection_timeout);
  }
  // An API node's cluster port: only so many connections may wait for
  // their peer's join, and one silent past the deadline is cut off. With
  // TLS the handshake's own deadline (above) comes first; this one then
  // catches a peer that finished it and never joins.
  if (cl.role == "api" && cl.port != 0)
    guard_cluster_port(cl.port,
                       cl.tls.on() ? 2 * cl.connection_timeout
                                   : cl.connection_timeout,
                       cl.max_pending, !cl.tls.on());
  // A worker's connects to its API nodes share one actor (CAF's
  // middleman): each may take half a join's deadline, so that one API host
  // that drops packets leaves the next connect time to finish within its
  // own.
  if (cl.role == "worker")
    limit_blocking_connects(cl.connection_timeout / 2);

  // Redis down or slow at start is waited out (the node starts and retries);
  // Redis refusing this node's settings is not: a wrong redis.password or a
  // redis.db beyond the server's databases fails every call until someone
  // edits a configuration, so it is said once, and the node exits, as for
  // any other bad setting.
  if (cl.role != "worker") {
    store::task_store first{cfg.redis.store, true};
    std::string refused;
    if (!first.connect()) {
      if (store::refuses_settings(first.last_error()))
        refused = first.last_error();
    } else if (auto pong = first.ping(); // NOAUTH comes with a first command
               !pong.ok() && store::refuses_settings(pong.error().message)) {
      refused = pong.error().message;
    }
    if (!refused.empty()) {
      log::error("redis refuses this node's settings: check redis.password "
                 "and redis.db against the server",
                 {{"error", refused}});
      return 2;
    }
  }

  // The resizes this node starts, noted before each runs: a crash then
  // counts the attempt at the restart even if Redis never heard of it.
  std::shared_ptr<store::attempt_journal> journal;
  if (auto path = journal_path(cfg)) {
    bool in_use = false;
    auto opened = store::attempt_journal::open(*path, &in_use);
    if (!opened && in_use) {
      // A live process of this name: the name's lease decides below which
      // one runs (most likely not this one); its entries are of resizes it
      // runs now, not of a crash.
      log::warn("resize journal held by another running process: this "
                "node runs without one",
                {{"journal", *path}, {"node", cl.node_name}});
    } else if (!opened) {
      log::error("cannot use the resize journal: set resize.journal to a "
                 "writable file of this user, or \"off\"",
                 {{"error", opened.error().message}});
      return 2;
    } else {
      journal = std::move(opened.value());
    }
    if (journal && !journal->left().empty())
      log::warn("resizes a crash interrupted here: each counts as an "
                "attempt (resize.max-attempts) once its task is recovered",
                {{"journal", *path}, {"tasks", journal->left().size()}});
  }

  std::string vips_err;
  if (!imaging::startup(argv[0], cfg.resize.vips_concurrency, vips_err,
                        cfg.resize.nice)) {
    log::error("libvips failed to start", {{"error", vips_err}});
    return EXIT_FAILURE;
  }
  log::info("output formats",
            {{"jpeg", imaging::can_write(imaging::output_format::jpeg)},
             {"png", imaging::can_write(imaging::output_format::png)},
             {"webp", imaging::can_write(imaging::output_format::webp)},
             {"avif", imaging::can_write(imaging::output_format::avif)}});

  metrics::build_info(this_build().version, this_build().commit,
                      this_build().library("libvips"));
  int rc = EXIT_SUCCESS;
  auto instance = new_instance_id();
  {
    caf::actor_system sys{caf_cfg};
    std::optional<actors::node_actors> node;
    try {
      auto build =
          fmt::format("{} ({})", this_build().version, this_build().commit);
      node = actors::start_node(
          sys, cfg, build, instance,
          [] {
            name_lost = true;
            kill(getpid(), SIGTERM); // main's sigwait below takes it
          },
          note_cluster_join, journal);
    } catch (const std::exception& e) {
      log::error("cannot start node", {{"error", e.what()}});
      // The lease may be taken already (the cluster port is opened after
      // it): a restart need not wait for it to run out. Released once the
      // lease actor is gone (start_node stopped the node's actors before
      // it threw): its first claim may still be under way, and one made
      // after the release kept the name for cluster.lease-ms.
      if (cfg.cluster.role != "worker") {
        sys.await_all_actors_done();
        release_name(cfg, instance);
      }
      return EXIT_FAILURE;
    }
    if (node->lease && !settle_lease(sys, node->lease, cfg)) {
      actors::stop_node(*node);
      sys.await_all_actors_done();
      return exit_name_taken;
    }
    std::optional<http::server> srv;
    if (node->api) {
      srv.emplace(cfg, *node->api);
      try {
        srv->start();
      } catch (const std::exception& e) {
        log::error("cannot start HTTP server", {{"address", cfg.http.address},
                                                {"port", cfg.http.port},
                                                {"error", e.what()}});
        actors::stop_node(*node);
        sys.await_all_actors_done();
        if (node->lease) // a restart need not wait for it
          release_name(cfg, instance);
        return EXIT_FAILURE;
      }
    }
    log::info(
        "resized started",
        {{"version", this_build().version},
         {"commit", this_build().commit},
         {"libvips", this_build().library("libvips")},
         {"node", cl.node_name},
         {"role", cl.role},
         // Named: without --config-file, CAF's caf-application.ini in the
         // working directory is read when there is one.
         {"config", cfg.config_file.empty() ? std::string{"none (defaults)"}
                    : cfg.config_file_implicit
                        ? cfg.config_file + " (CAF's default, found in the "
                                            "working directory)"
                        : cfg.config_file},
         {"http", srv ? endpoint_text(cfg.http.address, cfg.http.port) : "off"},
         {"cluster", cl.role == "api" ? endpoint_text(cl.bind_address, cl.port)
                     : cl.role == "worker" ? "joining"
                                           : "off"},
         {"cluster_tls", cluster_tls ? "on" : "off"},
         {"auth", cl.role == "worker" ? std::string{"off (no HTTP)"}
                  : cfg.auth.api_keys.empty()
                      ? std::string{"off"}
                      : fmt::format("on ({} key{})", cfg.auth.api_keys.size(),
                                    cfg.auth.api_keys.size() == 1 ? "" : "s")},
         open_files == UINT64_MAX ? log::field{"open_files", "unlimited"}
                                  : log::field{"open_files", open_files},
         {"pool_size", cfg.resize.pool_size},
         {"journal", journal ? journal->path() : std::string{"off"}},
         {"huge_pages", huge_pages},
         // With the database and the key prefix: API nodes that are to
         // share tasks (lookups, adoption) need all three the same.
         {"redis",
          cl.role == "worker" // workers keep no records
              ? std::string{"unused"}
              : fmt::format(
                    "{} db={} key_prefix={}",
                    endpoint_text(cfg.redis.store.host, cfg.redis.store.port),
                    cfg.redis.store.db,
                    cfg.redis.store.key_prefix.empty()
                        ? std::string{"\"\""}
                        : cfg.redis.store.key_prefix)}});
    int sig = 0;
    sigwait(&signals, &sig);
    if (name_lost)
      lose_name(sys, *node, srv, cfg);
    log::info("shutting down",
              {{"signal", sig}, {"grace_s", cfg.shutdown_grace.count()}});
    if (srv)
      srv->begin_shutdown(); // answers close their connections from here
    if (node->lease)         // adopts no other node's tasks from now on
      caf::anon_send(node->lease, actors::drain_atom::value);
    std::vector<std::string> abandoned; // tasks given up past the grace
    if (node->supervisor) {
      if (drain(sys, node->supervisor, cfg.shutdown_grace, signals) > 0)
        abandoned = give_up(sys, node->supervisor);
    } else if (node->agent) {
      auto left = drain_worker(
          sys, *node, cfg.shutdown_grace,
          cl.connection_timeout + std::chrono::milliseconds{500}, signals);
      if (left > 0)
        abandon(sys, node->agent, left);
    }
    if (node->status)
      answer_held_polls(sys, node->status);
    if (srv)
      srv->stop();
    if (!abandoned.empty())
      abandon_tasks(sys, *node, abandoned, status_write_bound(cfg), cfg,
                    instance);
    actors::stop_node(*node);
    sys.await_all_actors_done();
    if (node->lease)
      release_name(cfg, instance);
    srv.reset();
  }
  // Every resize started here ended (abandoned ones exit before this).
  if (journal && journal->close_if_empty())
    log::debug("resize journal removed", {{"path", journal->path()}});
  imaging::shutdown();
  log::info("stopped");
  return rc;
}
