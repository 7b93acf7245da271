// The narrow boundary between the HTTP layer and the actors (STYLE point 4):
// the HTTP layer calls a `backend` (a mailbox) and hands it a `replier`; the
// actors answer through the replier, from any thread, exactly once.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/outcome.hpp"
#include "common/task_record.hpp"
#include "imaging/options.hpp"

namespace resized {

/// Calls its handler exactly once. Copies share one state, so a replier can
/// travel inside actor messages; if every copy is dropped unanswered (an
/// actor died with the message in its mailbox), the last copy answers with
/// `fallback` so no HTTP request is ever left hanging.
template <class T>
class replier {
public:
  using handler = std::function<void(T)>;

  replier() = default;
  replier(handler fn, T fallback)
      : state_(std::make_shared<state>(std::move(fn), std::move(fallback))) {}

  /// Answers; later calls (and the fallback) do nothing.
  void operator()(T value) const {
    if (state_)
      state_->deliver(std::move(value));
  }

  bool answered() const { return !state_ || state_->done.load(); }

private:
  struct state {
    state(handler f, T fb) : fn(std::move(f)), fallback(std::move(fb)) {}
    ~state() { deliver(std::move(fallback)); }
    void deliver(T value) {
      if (!done.exchange(true)) {
        fn(std::move(value));
        fn = nullptr; // drop captures (request handles) right away
      }
    }
    handler fn;
    T fallback;
    std::atomic<bool> done{false};
  };
  std::shared_ptr<state> state_;
};

/// A validated submission: the image bytes (decoded, owned) and options.
struct submit_request {
  imaging::resize_options options;
  std::string image;
  imaging::probe_info header; // imaging::probe of `image`, on the io thread
  std::string request_id;     // for logs
  std::string content_key;    // common/content_key.hpp: same key, same result
  uint64_t decode_bytes = 0;  // imaging::decode_estimate: memory its resize
                              // holds at its peak (0 = unknown)
  std::string client; // common/client_identity.hpp: whose share it takes
                      // ("" = nobody's: not counted)
};

/// A result image as served by GET /api/v1/images/<token>.<ext>.
struct image_blob {
  std::shared_ptr<const std::string> bytes;
  imaging::output_format format = imaging::output_format::jpeg;
  std::string etag; // without quotes
};

/// One node as the API node's supervisor sees it (GET /api/v1/cluster).
struct cluster_node_view {
  std::string id;       // node name (cluster.node-name)
  std::string role;     // "local" (this node's own pool) or "worker"
  std::string address;  // where the worker says it runs
  std::string build;    // its version and commit, "0.1.0 (31c78c02d530)"
  size_t workers = 0;   // its pool size
  size_t busy = 0;      // tasks this API node has in flight there
  uint64_t done = 0;    // tasks it finished for this API node (SUCCESS)
  uint64_t failed = 0;  // tasks it finished with FAILURE
  int64_t since_ms = 0; // connected (or started) since
  // "ready": takes tasks; "leaving": shutting down (a worker that got
  // SIGTERM, or this node's own pool while the node drains): takes no new
  // tasks, finishes the ones it runs, then goes
  std::string state = "ready";
};

struct cluster_view {
  std::string node;  // this API node's name
  std::string role;  // this API node's role
  std::string build; // this API node's version and commit
  std::vector<cluster_node_view> nodes;
  size_t queue_depth = 0;    // tasks waiting for a worker
  uint64_t queued_bytes = 0; // their input bytes
  size_t clients = 0;     // clients with tasks open here (queue.max-per-client)
  uint64_t succeeded = 0; // totals since start
  uint64_t failed = 0;
  uint64_t retried = 0; // attempts re-queued after a node was lost
  uint64_t reused = 0;  // tasks answered with an identical task's result
  int64_t up_since_ms = 0;
  bool draining = false; // stopping: accepts nothing new
};

using submit_replier = replier<outcome<std::string>>; // token
using status_replier = replier<outcome<task_record>>;
using image_replier = replier<outcome<image_blob>>;
using cluster_replier = replier<outcome<cluster_view>>;
using ping_replier = replier<outcome<bool>>;

/// What the HTTP layer needs from the rest of the service.
class backend {
public:
  virtual ~backend() = default;
  /// Queues a task; answers its token, or queue_full / shutting_down / ...
  virtual void submit(submit_request req, submit_replier reply) = 0;
  /// Answers the task record, or unknown_token / store_unavailable. With
  /// `wait` > 0 and a task not finished yet, answers when it finishes or
  /// when `wait` has passed, whichever is first (long poll).
  virtual void status(std::string token, std::chrono::milliseconds wait,
                      status_replier reply) = 0;
  /// Answers the result image, or unknown_token / store_unavailable.
  virtual void image(std::string token, image_replier reply) = 0;
  /// Answers the supervisor's view of the cluster.
  virtual void cluster(cluster_replier reply) = 0;
  /// Answers true when Redis answers PING, else store_unavailable.
  virtual void ping_store(ping_replier reply) = 0;
};

} // namespace resized
