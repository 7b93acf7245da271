// Metrics of resized and their Prometheus text exposition (format 0.0.4).
//
// Debian 12 packages no prometheus-cpp, so this is a small hand-written
// registry: counters, gauges and histograms, optionally labelled, and a
// writer for the text format (# HELP / # TYPE lines, escaped label values,
// cumulative histogram buckets ending in le="+Inf", _sum and _count).
//
// Thread safety: updating a metric is lock-free (relaxed atomics); looking
// up a labelled child takes a shared lock, creating one an exclusive lock.
// Children are never removed, so references to them stay valid: hot paths
// resolve their children once and keep the reference.
//
// The service's own metrics live in the process-wide `global()` registry and
// are updated through the free functions at the end of this header (the
// actors call the task ones, the HTTP layer the request one).
#pragma once

#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace resized::metrics {

/// Label names and values, in the family's label order.
using label_pairs = std::vector<std::pair<std::string, std::string>>;

// -- text format helpers ------------------------------------------------------

/// Escapes a label value: backslash, double quote and newline.
std::string escape_label_value(std::string_view value);

/// Escapes a HELP text: backslash and newline.
std::string escape_help(std::string_view text);

/// A sample value as Prometheus writes it: integers without a fraction,
/// "+Inf", "-Inf", "NaN", otherwise the shortest exact decimal form.
std::string format_value(double value);

/// True for a valid metric name: [a-zA-Z_:][a-zA-Z0-9_:]*.
bool valid_metric_name(std::string_view name);

/// True for a valid label name: [a-zA-Z_][a-zA-Z0-9_]*, not starting "__".
bool valid_label_name(std::string_view name);

/// Builds one exposition text. A family's header must come before its
/// samples, and every family's samples together (the format requires it).
class exposition {
public:
  /// # HELP <name> <help> and # TYPE <name> <type>.
  void header(std::string_view name, std::string_view help,
              std::string_view type);

  /// <name>{<labels>} <value>
  void sample(std::string_view name, const label_pairs& labels, double value);

  /// A whole family of one unlabelled (or fixed-label) sample: header and
  /// sample together.
  void gauge(std::string_view name, std::string_view help, double value);

  const std::string& text() const { return text_; }
  std::string take() { return std::move(text_); }

private:
  std::string text_;
};

// -- metric kinds -------------------------------------------------------------

/// A monotonically increasing integer.
class counter {
public:
  void inc(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

private:
  std::atomic<uint64_t> value_{0};
};

/// A value that goes up and down.
class gauge {
public:
  void set(double v) { value_.store(v, std::memory_order_relaxed); }
  void add(double v);
  double value() const { return value_.load(std::memory_order_relaxed); }

private:
  std::atomic<double> value_{0};
};

/// Observations counted into fixed buckets (upper bounds, ascending; +Inf
/// is implicit), with their sum.
class histogram {
public:
  explicit histogram(std::vector<double> bounds);

  void observe(double value);

  struct snapshot {
    std::vector<double> bounds;       // without +Inf
    std::vector<uint64_t> cumulative; // one per bound, then +Inf
    double sum = 0;
    uint64_t count = 0; // == cumulative.back()
  };

  /// Cumulative counts; count is the +Inf bucket, so they always agree even
  /// while other threads observe.
  snapshot read() const;

  const std::vector<double>& bounds() const { return bounds_; }

private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_; // bounds_.size() + 1
  std::atomic<double> sum_{0};
};

/// Buckets for request latencies: 0.5 ms .. 10 s.
std::vector<double> latency_buckets();

/// Buckets for task stages: 1 ms .. 60 s.
std::vector<double> task_buckets();

// -- families and the registry ------------------------------------------------

enum class kind { counter, gauge, histogram };

/// All metrics of one name, one child per combination of label values.
template <class T>
class family {
public:
  family(std::string name, std::string help, std::vector<std::string> labels,
         std::vector<double> bounds = {})
      : name_(std::move(name)),
        help_(std::move(help)),
        labels_(std::move(labels)),
        bounds_(std::move(bounds)) {}

  /// The child for `values` (one per label name, in order); created on
  /// first use. Throws std::invalid_argument on a wrong number of values.
  T& with(std::initializer_list<std::string_view> values) {
    return with(std::vector<std::string>(values.begin(), values.end()));
  }
  T& with(const std::vector<std::string>& values);

  /// The one child of a family without labels.
  T& unlabelled() { return with(std::vector<std::string>{}); }

  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  const std::vector<std::string>& label_names() const { return labels_; }

  /// Calls f(label_pairs, const T&) for every child, in label order.
  template <class F>
  void each(F&& f) const {
    std::shared_lock<std::shared_mutex> guard{mtx_};
    for (const auto& [values, child] : children_) {
      label_pairs pairs;
      for (size_t i = 0; i < labels_.size(); ++i)
        pairs.emplace_back(labels_[i], values[i]);
      f(pairs, *child);
    }
  }

private:
  std::unique_ptr<T> make() const;

  std::string name_;
  std::string help_;
  std::vector<std::string> labels_;
  std::vector<double> bounds_; // histograms only
  mutable std::shared_mutex mtx_;
  std::map<std::vector<std::string>, std::unique_ptr<T>> children_;
};

using counter_family = family<counter>;
using gauge_family = family<gauge>;
using histogram_family = family<histogram>;

/// Owns families and writes them in registration order.
class registry {
public:
  registry();
  ~registry();
  registry(const registry&) = delete;
  registry& operator=(const registry&) = delete;

  /// Registers a family; throws std::invalid_argument on an invalid or
  /// duplicate name or an invalid label name.
  counter_family& counters(std::string name, std::string help,
                           std::vector<std::string> labels = {});
  gauge_family& gauges(std::string name, std::string help,
                       std::vector<std::string> labels = {});
  histogram_family& histograms(std::string name, std::string help,
                               std::vector<std::string> labels,
                               std::vector<double> bounds);

  /// Appends every family (header and samples) to `out`.
  void write(exposition& out) const;

  /// The exposition of this registry alone.
  std::string text() const;

private:
  struct entry;
  void check(const std::string& name, const std::vector<std::string>& labels);
  mutable std::mutex mtx_;
  std::vector<std::unique_ptr<entry>> families_;
};

/// The process-wide registry with the service's metrics.
registry& global();

// -- the service's metrics (names in API.md) ----------------------------------

/// A task was accepted into the queue: resized_tasks_accepted_total,
/// resized_accepted_bytes_total.
void task_accepted(uint64_t input_bytes);

/// An attempt was re-queued after its node was lost:
/// resized_tasks_retried_total.
void task_retried(size_t n = 1);

/// Unfinished tasks this node took up from Redis, which it had not
/// accepted in this run: resized_tasks_recovered_total{how} (how =
/// restart: its own name's, at start; adoption: another node's, whose name
/// has no owner). Without it, a node's final counts exceed what it
/// accepted with nothing to say why.
void tasks_recovered(std::string_view how, size_t n);

/// A task reached a final state (the supervisor's view, before its record
/// is written): resized_task_duration_seconds{stage} (stage = queue,
/// decode, resize, encode, total; a negative duration means the stage was
/// not reached and is not observed), resized_input_bytes_total,
/// resized_output_bytes_total.
void task_finished(double queue_s, double decode_s, double resize_s,
                   double encode_s, double total_s, uint64_t input_bytes,
                   uint64_t output_bytes);

/// A task's final record, "SUCCESS" or "FAILURE", was written (the status
/// actor's view: a result Redis refused to store ends FAILURE
/// result_not_stored): resized_tasks_total{status}.
void task_final(std::string_view status);

/// A Redis command or connection failed: resized_redis_errors_total.
void redis_error();

/// Redis refused a result for lack of memory (its task ends FAILURE
/// result_not_stored): resized_results_refused_total.
void result_refused();

/// A progressive JPEG was resized from its DC scans only (imaging/
/// jpeg_dc_scans): resized_jpeg_dc_scans_total.
void jpeg_dc_scans();

/// Status long polls held now: resized_long_polls.
void long_polls_held(size_t n);

/// What answered `n` held long polls: resized_long_polls_answered_total{by}.
/// `by`: "result" (the task's final record, written on this node),
/// "announcement" (Redis announced another node's final record), "recheck"
/// (found final in Redis at a recheck), "deadline" (the wait was over),
/// "shutdown" (the node is stopping).
void long_polls_answered(std::string_view by, size_t n = 1);

/// The queue's head could not start for lack of decode memory on every node:
/// resized_decode_budget_waits_total.
void decode_budget_wait();

/// This binary: resized_build_info{version,commit,libvips} 1, as
/// Prometheus' *_build_info convention has it. Called once, at start-up.
void build_info(std::string_view version, std::string_view commit,
                std::string_view libvips);

/// HTTP connections open now: resized_http_connections.
void http_connections(size_t open);

/// A connection answered 503 too_many_connections as it opened, and
/// closed: its client held http.max-connections-per-client already.
/// resized_http_connections_refused_total.
void http_connection_refused();

/// An answer whose write failed after its access line was written (the
/// client did not read it within http.write-timeout, or left):
/// resized_http_answers_not_delivered_total.
void http_answer_not_delivered();

/// A stalled connection closed to make room while the node held
/// http.max-connections: resized_http_connections_shed_total.
void http_connection_shed();

/// Request body bytes being received now (http.max-receiving-bytes):
/// resized_http_receiving_bytes.
void http_receiving_bytes(uint64_t held);

/// A request answered 503 too_many_uploads: its body did not fit in
/// http.max-receiving-bytes. resized_http_uploads_refused_total.
void http_upload_refused();

/// One HTTP request answered: resized_http_requests_total{route,code},
/// resized_http_request_duration_seconds{route}. `route` is a route
/// template ("/api/v1/resize/:token"), never a raw path.
void http_request(std::string_view route, int code, double seconds);

} // namespace resized::metrics
