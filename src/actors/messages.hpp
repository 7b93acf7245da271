// Every atom and message type that crosses actors, in one place (STYLE
// point 3). `announce_message_types` registers them on every node alike.
//
// Protocols (sender → receiver: message → answer):
//   backend    → supervisor: (submit_atom, submit_request, submit_replier)
//   backend    → status:     (status_atom, token, wait_ms, status_replier)
//                            wait_ms > 0: long poll, answered when the task
//                            is final or wait_ms has passed
//   status     → status:     (wake_atom, token, waiter id)   long-poll timer
//   status     → status:     flush_atom   retry the writes Redis failed
//   probe      → probe:      probe_atom   PING Redis again (paced)
//   probe      → status:     back_atom    Redis answered the probe: the
//                            status actor's held store may try again
//   listener   → listener:   listen_atom  wait for Redis' next announcements
//   listener   → status:     (finished_atom, token)  Redis announced the
//                            task's final record (written by any node)
//   backend    → status:     (image_atom, token, image_replier)
//   backend    → reader:     (status_atom, token, 0, status_replier) and
//                            (image_atom, token, image_replier): lookups
//                            the cache cannot answer that hold nothing,
//                            read on the lookup reader's own connection
//   reader     → reader:     release_atom   its store's hold is over
//   supervisor → status:     (accept_atom, task_record, job message,
//                            content key) → (bool, twin token): store record
//                            + input before the 202 (durable); the twin is
//                            a finished result in Redis' content index
//   supervisor → status:     (forget_atom, token, content key)  after
//                            an accept the supervisor gave up on (its
//                            request timed out, the client was told 503):
//                            undone if the status actor stored it late
//   supervisor → status:     recover_atom → pending_list   at start-up:
//                            the records of this node's pending tasks,
//                            without their inputs
//   supervisor → status:     (inputs_atom, tokens) → pending_list   the
//                            records and inputs of these recovered or
//                            adopted tasks, read as the queue has room
//   supervisor → status:     (clone_atom, original token, task_record,
//                            content key) → bool: the record becomes a copy
//                            of the original's SUCCESS (identical work done
//                            once)
//   supervisor → status:     (update_atom, task_record)      record changed
//   supervisor → status:     (result_atom, task_record, bytes, content key)
//                            SUCCESS + image (+ content index entry)
//   backend    → supervisor: (cluster_atom, cluster_replier)
//   backend    → status:     (ping_atom, ping_replier)     Redis PING
//   main       → supervisor: drain_atom → size_t           stop taking and
//                            starting tasks; answers tasks still in flight
//   main       → supervisor: (abandon_atom, bool name_lost)
//                            → std::vector<std::string>
//                            shutdown past the grace: the tokens of the
//                            tasks in flight, given up (their answers are
//                            dropped from now on; their records stay in
//                            Redis for the next start)
//   main       → status:     drain_atom → bool   answer held long polls now,
//                            hold no more (shutdown)
//   supervisor → agent:      resize_job → resize_done   (agent delegates to
//                            a fresh detached resize actor; may cross nodes;
//                            the job carries the API node's policy)
//   link       → supervisor: (hello_atom, uint32_t protocol, std::string
//                            build) → (hello_atom, std::string build)
//                            before every join: the worker's cluster
//                            protocol and build ("0.1.0 (commit)"); error
//                            cluster_error::protocol_mismatch when the API
//                            node speaks another protocol. Built-in types
//                            only, and never to change: nodes of any two
//                            builds can always exchange it
//   link       → supervisor: (join_atom, agent, node_info) → welcome_atom
//                            a worker node's agent joins an API node; or
//                            error cluster_error::name_taken: another
//                            node, still connected, has that name (the
//                            link retries with backoff: a restarted node
//                            gets in once its old self is known dead)
//   link       → link:       try_connect_atom              (reconnect timer)
//   main       → agent:      drain_atom → size_t   (worker node shutting
//                            down) take no more jobs: turn them away as
//                            node_busy; answers the jobs still running
//   main       → agent:      running_atom → std::vector<std::string>
//                            tokens of the jobs running (local only)
//   main       → link:       drain_atom → bool   tell the API node this
//                            node is leaving (leave_atom below), stop
//                            rejoining; true once the API node answered.
//                            Asked again after the last job: its answer
//                            then also means every result sent before it
//                            has reached the API node (one BASP connection
//                            keeps the order)
//   link       → supervisor: (leave_atom, agent) → uint64_t   the worker
//                            node of `agent` is shutting down: place
//                            nothing more there, let its tasks finish;
//                            answers this API node's tasks still on it.
//                            Only built-in types: nothing to announce
//   supervisor → supervisor: (unsaturate_atom, node name)  retry a node that
//                            answered node_busy
//   agent      → supervisor: (started_atom, token)  the agent took the
//                            resize_job the supervisor asked of it (a
//                            worker runs it now), before its answer; never
//                            for a job it turns away as node_busy. The
//                            task's record says IN_PROGRESS from then on
//   supervisor → status:     (status_atom, twin token, wait_ms, replier) and
//   replier → supervisor:    (twin_atom, task token, bool twin succeeded)
//                            a task waits for a twin accepted first elsewhere
//   main       → lease:      lease_atom → bool   answered once start-up
//                            may go on (the name's lease is taken, or Redis
//                            is away and it is taken later: true) or must
//                            not (another running instance holds it: false)
//   lease      → lease:      renew_atom   take or renew the lease (timer)
//   lease      → supervisor: recover_atom   the lease is this instance's:
//                            recover the name's pending tasks now
//   main       → lease:      drain_atom   shutting down: adopt nothing more
//   lease      → supervisor: (adopt_atom, from, pending_list)   records
//                            (no inputs) of tasks of node `from` (no lease:
//                            stopped or dead) now in this node's pending
//                            set: resume them as recovered ones
#pragma once

#include <cstdint>
#include <string>

#include <caf/actor_system_config.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/message_priority.hpp>
#include <caf/meta/type_name.hpp>

#include "common/service.hpp"
#include "common/task_record.hpp"
#include "imaging/options.hpp"
#include "store/task_store.hpp"

namespace resized::actors {

/// The priority of clients' lookups sent to the status actor: it makes its
/// Redis calls one at a time, and an accept carries the whole input (tens of
/// milliseconds for a large photo, more when Redis writes an AOF), so
/// lookups it could answer from its cache would otherwise wait behind every
/// accept and write queued before them. CAF's mailbox takes urgent messages
/// first in each round (twice the quantum of normal ones, so the writes are
/// never starved). Lookups only read: their order against the writes does
/// not matter (a client's 202 is sent after its accept was stored).
constexpr auto lookup_priority = caf::message_priority::high;

using submit_atom = caf::atom_constant<caf::atom("submit")>;
using status_atom = caf::atom_constant<caf::atom("status")>;
using image_atom = caf::atom_constant<caf::atom("image")>;
using update_atom = caf::atom_constant<caf::atom("update")>;
using result_atom = caf::atom_constant<caf::atom("result")>;
using cluster_atom = caf::atom_constant<caf::atom("cluster")>;
using ping_atom = caf::atom_constant<caf::atom("ping")>;
using accept_atom = caf::atom_constant<caf::atom("accept")>;
using recover_atom = caf::atom_constant<caf::atom("recover")>;
using drain_atom = caf::atom_constant<caf::atom("drain")>;
using clone_atom = caf::atom_constant<caf::atom("clone")>;
using unsaturate_atom = caf::atom_constant<caf::atom("unsat")>;
using twin_atom = caf::atom_constant<caf::atom("twin")>;
using join_atom = caf::atom_constant<caf::atom("join")>;
using welcome_atom = caf::atom_constant<caf::atom("welcome")>;
using try_connect_atom = caf::atom_constant<caf::atom("tryconn")>;
using flush_atom = caf::atom_constant<caf::atom("flush")>;
using wake_atom = caf::atom_constant<caf::atom("wake")>;
using watch_atom = caf::atom_constant<caf::atom("watch")>;
using probe_atom = caf::atom_constant<caf::atom("probe")>;
using back_atom = caf::atom_constant<caf::atom("back")>;
using listen_atom = caf::atom_constant<caf::atom("listen")>;
using finished_atom = caf::atom_constant<caf::atom("finished")>;
using leave_atom = caf::atom_constant<caf::atom("leave")>;
using running_atom = caf::atom_constant<caf::atom("running")>;
using abandon_atom = caf::atom_constant<caf::atom("abandon")>;
using lease_atom = caf::atom_constant<caf::atom("lease")>;
using renew_atom = caf::atom_constant<caf::atom("renew")>;
using adopt_atom = caf::atom_constant<caf::atom("adopt")>;
using hello_atom = caf::atom_constant<caf::atom("hello")>;
using release_atom = caf::atom_constant<caf::atom("release")>;
using forget_atom = caf::atom_constant<caf::atom("forget")>;
using restore_atom = caf::atom_constant<caf::atom("restore")>;
using inputs_atom = caf::atom_constant<caf::atom("inputs")>;
using started_atom = caf::atom_constant<caf::atom("started")>;

/// The layout of every message between nodes, as a number: the API node
/// refuses a worker whose hello names another one (protocol_mismatch),
/// instead of failing on messages it cannot read. Bump it with any change to
/// what crosses nodes: the types announced in announce_message_types and
/// what they hold (resize_job, resize_done, node_info, resize_options,
/// limits, probe_info, the enums in them), or a message's elements.
/// tests/actors/wire_test.cpp holds the layout's fingerprint for each value
/// and fails until both are updated.
inline constexpr uint32_t cluster_protocol = 6;

/// Errors of the cluster protocol (category `cluster_error_category`),
/// rendered alike on every node (announce_message_types).
enum class cluster_error : uint8_t {
  /// join_atom refused: a node with this name is connected and alive. The
  /// context is one string: who holds the name, for the newcomer's log.
  name_taken = 1,
  /// As name_taken, but the holder is leaving (SIGTERM, draining): a
  /// rolling restart's new process, which gets in once the old one is gone.
  name_leaving = 2,
  /// hello_atom refused: the worker speaks another cluster_protocol (a
  /// different build). The context says both builds.
  protocol_mismatch = 3,
  /// join_atom refused: the worker's heartbeats (cluster.heartbeat-ms)
  /// are not closer together than the API node's
  /// cluster.connection-timeout-ms, or the API node's not closer together
  /// than the worker's (cluster protocol 6): one of the two would cut the
  /// connection again and again. The context says both values and which
  /// setting to change.
  heartbeat_too_slow = 4,
};

inline constexpr caf::atom_value cluster_error_category = caf::atom("resized");

std::string to_string(cluster_error x);

/// An error of `x` with a description for the peer's log as its context.
caf::error make_error(cluster_error x, std::string what);

/// Whether `err` is `x`; then `what` gets its context's description.
bool is_error(const caf::error& err, cluster_error x, std::string& what);

/// `err` in words for operators' logs ("the connection to the node was
/// lost", "cannot connect to 127.0.0.1:5810") where CAF's rendering
/// ("exit_reason(remote_link_unreachable)", "system_error(
/// cannot_connect_to_node, ...)") names its internals; CAF's (the actor
/// system's rendering) for anything else.
std::string describe(caf::actor_system& sys, const caf::error& err);

/// One image to resize; the only thing sent to a resize actor.
///
/// The API node that accepted the task decides its policy, and the policy
/// travels here: a worker node applies `policy`, never its own [limits] or
/// resize.task-timeout-ms, so a task ends alike on whichever node runs it.
struct resize_job {
  std::string token;               // task id, for logs and the answer
  imaging::resize_options options; // as validated by the HTTP layer
  std::string input;               // encoded input image (moved, not copied)
  /// imaging::probe of `input` on the API node; format unknown: not probed
  /// (the worker reads the header itself).
  imaging::probe_info header;
  /// The accepting API node's limits.max-pixels, limits.max-dimension
  /// (options are checked against it, and a side left to the aspect ratio
  /// is capped by it), limits.truncated, and its resize.task-timeout-ms as
  /// max_processing_ms: the deadline libvips enforces, which the API node's
  /// backstop for the task follows (supervisor.cpp).
  imaging::limits policy;
};

/// What a resize actor answers.
struct resize_done {
  std::string token;
  bool ok = false;
  std::string output; // encoded result (ok)
  int width = 0;      // result size (ok)
  int height = 0;
  std::string etag;          // strong ETag of `output` (ok)
  std::string error_code;    // snake_case (!ok)
  std::string error_message; // (!ok)
  double decode_s = 0;       // stage timings
  double resize_s = 0;
  double encode_s = 0;
  std::string node; // node that ran it
  /// A progressive JPEG decoded from its DC scans (imaging::resize_result).
  bool jpeg_dc_scans = false;
};

/// What a worker node tells an API node when it joins.
struct node_info {
  std::string name;       // cluster.node-name, unique per node
  std::string address;    // where it runs (host, for humans)
  uint32_t pool_size = 0; // resize actors it runs at once
  std::string build;      // its version and commit ("0.1.0 (31c78c02d530)")
  // Its cluster.heartbeat-ms (0: not said): the API node refuses a worker
  // whose heartbeats are not closer together than its own
  // cluster.connection-timeout-ms (cluster protocol 4).
  uint32_t heartbeat_ms = 0;
  // Its cluster.connection-timeout-ms (0: not said): the API node refuses
  // to be joined by a worker that would cut it off between two of its own
  // heartbeats (cluster protocol 6).
  uint32_t connection_timeout_ms = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, node_info& x) {
  return f(caf::meta::type_name("node_info"), x.name, x.address, x.pool_size,
           x.build, x.heartbeat_ms, x.connection_timeout_ms);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, resize_job& x) {
  return f(caf::meta::type_name("resize_job"), x.token, x.options, x.input,
           x.header, x.policy);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, resize_done& x) {
  return f(caf::meta::type_name("resize_done"), x.token, x.ok, x.output,
           x.width, x.height, x.etag, x.error_code, x.error_message, x.decode_s,
           x.resize_s, x.encode_s, x.node, x.jpeg_dc_scans);
}

/// Registers every type above with CAF (needed for remote nodes).
void announce_message_types(caf::actor_system_config& cfg);

} // namespace resized::actors

namespace resized::imaging {

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, resize_options& x) {
  return f(caf::meta::type_name("resize_options"), x.width, x.height, x.mode,
           x.format, x.quality);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, limits& x) {
  return f(caf::meta::type_name("limits"), x.max_pixels, x.max_dimension,
           x.max_avif_pixels, x.max_input_bytes, x.max_processing_ms,
           x.fail_on_truncated);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, probe_info& x) {
  return f(caf::meta::type_name("probe_info"), x.format, x.width, x.height,
           x.pages, x.progressive, x.orientation_swap, x.orientation_certain,
           x.bytes_per_pixel);
}

} // namespace resized::imaging

namespace resized {

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, task_record& x) {
  return f(caf::meta::type_name("task_record"), x.token, x.status, x.options,
           x.input_bytes, x.width, x.height, x.output_bytes, x.etag,
           x.error_code, x.error_message, x.submitted_at_ms, x.started_at_ms,
           x.finished_at_ms, x.node);
}

} // namespace resized

// Local-only types: they hold RESTinio reply callbacks and never leave the
// API node (DESIGN: "RESTinio handles stay on the API node").
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(resized::submit_request)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(resized::submit_replier)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(resized::status_replier)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(resized::image_replier)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(resized::cluster_replier)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(resized::ping_replier)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<resized::store::pending_task>)
