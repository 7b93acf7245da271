#include "common/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include <fmt/format.h>

namespace resized::metrics {

// -- text format --------------------------------------------------------------

std::string escape_label_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    switch (c) {
    case '\\':
      out += "\\\\";
      break;
    case '"':
      out += "\\\"";
      break;
    case '\n':
      out += "\\n";
      break;
    default:
      out += c;
    }
  }
  return out;
}

std::string escape_help(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string format_value(double value) {
  if (std::isnan(value))
    return "NaN";
  if (std::isinf(value))
    return value > 0 ? "+Inf" : "-Inf";
  // Exact integers (counters, byte sizes) without a fraction or exponent.
  if (value == std::floor(value) && std::fabs(value) < 9007199254740992.0)
    return fmt::format("{}", static_cast<int64_t>(value));
  return fmt::format("{}", value); // shortest round-trip form
}

namespace {

bool name_char(char c, bool first, bool colon) {
  bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
               (colon && c == ':');
  return alpha || (!first && c >= '0' && c <= '9');
}

} // namespace

bool valid_metric_name(std::string_view name) {
  if (name.empty())
    return false;
  for (size_t i = 0; i < name.size(); ++i)
    if (!name_char(name[i], i == 0, true))
      return false;
  return true;
}

bool valid_label_name(std::string_view name) {
  if (name.empty() || name.substr(0, 2) == "__")
    return false;
  for (size_t i = 0; i < name.size(); ++i)
    if (!name_char(name[i], i == 0, false))
      return false;
  return true;
}

void exposition::header(std::string_view name, std::string_view help,
                        std::string_view type) {
  text_ += "# HELP ";
  text_ += name;
  text_ += ' ';
  text_ += escape_help(help);
  text_ += "\n# TYPE ";
  text_ += name;
  text_ += ' ';
  text_ += type;
  text_ += '\n';
}

void exposition::sample(std::string_view name, const label_pairs& labels,
                        double value) {
  text_ += name;
  if (!labels.empty()) {
    text_ += '{';
    bool first = true;
    for (const auto& [k, v] : labels) {
      if (!first)
        text_ += ',';
      first = false;
      text_ += k;
      text_ += "=\"";
      text_ += escape_label_value(v);
      text_ += '"';
    }
    text_ += '}';
  }
  text_ += ' ';
  text_ += format_value(value);
  text_ += '\n';
}

void exposition::gauge(std::string_view name, std::string_view help,
                       double value) {
  header(name, help, "gauge");
  sample(name, {}, value);
}

// -- metric kinds -------------------------------------------------------------

namespace {

void atomic_add(std::atomic<double>& target, double v) {
  // std::atomic<double>::fetch_add is C++20.
  auto cur = target.load(std::memory_order_relaxed);
  while (!target.compare_exchange_weak(cur, cur + v, std::memory_order_relaxed))
    ; // retry with the value another thread wrote
}

} // namespace

void gauge::add(double v) {
  atomic_add(value_, v);
}

histogram::histogram(std::vector<double> bounds) : bounds_(std::move(bounds)) {
  if (!std::is_sorted(bounds_.begin(), bounds_.end()) ||
      std::adjacent_find(bounds_.begin(), bounds_.end()) != bounds_.end())
    throw std::invalid_argument("histogram bounds must strictly ascend");
  if (!bounds_.empty() && std::isinf(bounds_.back()))
    bounds_.pop_back(); // +Inf is implicit
  buckets_ = std::make_unique<std::atomic<uint64_t>[]>(bounds_.size() + 1);
  for (size_t i = 0; i <= bounds_.size(); ++i)
    buckets_[i].store(0, std::memory_order_relaxed);
}

void histogram::observe(double value) {
  if (std::isnan(value))
    return;
  // Bucket "le" bound: the first bound >= value, else +Inf.
  auto i = static_cast<size_t>(
      std::lower_bound(bounds_.begin(), bounds_.end(), value) -
      bounds_.begin());
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  atomic_add(sum_, value);
}

histogram::snapshot histogram::read() const {
  snapshot s;
  s.bounds = bounds_;
  s.cumulative.reserve(bounds_.size() + 1);
  uint64_t total = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    total += buckets_[i].load(std::memory_order_relaxed);
    s.cumulative.push_back(total);
  }
  s.count = total;
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

std::vector<double> latency_buckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
          0.1,    0.25,  0.5,    1,     2.5,  5,     10};
}

std::vector<double> task_buckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
          0.5,   1,      2.5,   5,    10,    30,   60};
}

// -- families -----------------------------------------------------------------

template <class T>
std::unique_ptr<T> family<T>::make() const {
  return std::make_unique<T>();
}

template <>
std::unique_ptr<histogram> family<histogram>::make() const {
  return std::make_unique<histogram>(bounds_);
}

template <class T>
T& family<T>::with(const std::vector<std::string>& values) {
  if (values.size() != labels_.size())
    throw std::invalid_argument(fmt::format("{}: {} label values for {} labels",
                                            name_, values.size(),
                                            labels_.size()));
  {
    std::shared_lock<std::shared_mutex> guard{mtx_};
    auto i = children_.find(values);
    if (i != children_.end())
      return *i->second;
  }
  std::unique_lock<std::shared_mutex> guard{mtx_};
  auto& slot = children_[values];
  if (!slot)
    slot = make();
  return *slot;
}

template class family<counter>;
template class family<gauge>;
template class family<histogram>;

// -- registry -----------------------------------------------------------------

struct registry::entry {
  kind type;
  std::unique_ptr<counter_family> counters;
  std::unique_ptr<gauge_family> gauges;
  std::unique_ptr<histogram_family> histograms;
};

registry::registry() = default;
registry::~registry() = default;

void registry::check(const std::string& name,
                     const std::vector<std::string>& labels) {
  if (!valid_metric_name(name))
    throw std::invalid_argument("invalid metric name: " + name);
  for (const auto& l : labels)
    if (!valid_label_name(l) || l == "le")
      throw std::invalid_argument("invalid label name: " + l);
  for (const auto& e : families_) {
    const std::string& other = e->counters ? e->counters->name()
                               : e->gauges ? e->gauges->name()
                                           : e->histograms->name();
    if (other == name)
      throw std::invalid_argument("duplicate metric name: " + name);
  }
}

counter_family& registry::counters(std::string name, std::string help,
                                   std::vector<std::string> labels) {
  std::lock_guard<std::mutex> guard{mtx_};
  check(name, labels);
  auto e = std::make_unique<entry>();
  e->type = kind::counter;
  e->counters = std::make_unique<counter_family>(
      std::move(name), std::move(help), std::move(labels));
  auto& result = *e->counters;
  families_.push_back(std::move(e));
  return result;
}

gauge_family& registry::gauges(std::string name, std::string help,
                               std::vector<std::string> labels) {
  std::lock_guard<std::mutex> guard{mtx_};
  check(name, labels);
  auto e = std::make_unique<entry>();
  e->type = kind::gauge;
  e->gauges = std::make_unique<gauge_family>(std::move(name), std::move(help),
                                             std::move(labels));
  auto& result = *e->gauges;
  families_.push_back(std::move(e));
  return result;
}

histogram_family& registry::histograms(std::string name, std::string help,
                                       std::vector<std::string> labels,
                                       std::vector<double> bounds) {
  std::lock_guard<std::mutex> guard{mtx_};
  check(name, labels);
  histogram probe{bounds}; // validates the bounds now, not on first use
  auto e = std::make_unique<entry>();
  e->type = kind::histogram;
  e->histograms = std::make_unique<histogram_family>(
      std::move(name), std::move(help), std::move(labels), probe.bounds());
  auto& result = *e->histograms;
  families_.push_back(std::move(e));
  return result;
}

void registry::write(exposition& out) const {
  std::lock_guard<std::mutex> guard{mtx_};
  for (const auto& e : families_) {
    switch (e->type) {
    case kind::counter: {
      const auto& f = *e->counters;
      out.header(f.name(), f.help(), "counter");
      f.each([&](const label_pairs& labels, const counter& c) {
        out.sample(f.name(), labels, static_cast<double>(c.value()));
      });
      break;
    }
    case kind::gauge: {
      const auto& f = *e->gauges;
      out.header(f.name(), f.help(), "gauge");
      f.each([&](const label_pairs& labels, const gauge& g) {
        out.sample(f.name(), labels, g.value());
      });
      break;
    }
    case kind::histogram: {
      const auto& f = *e->histograms;
      out.header(f.name(), f.help(), "histogram");
      auto bucket = f.name() + "_bucket";
      auto sum = f.name() + "_sum";
      auto count = f.name() + "_count";
      f.each([&](const label_pairs& labels, const histogram& h) {
        auto s = h.read();
        auto with_le = labels;
        with_le.emplace_back("le", "");
        for (size_t i = 0; i <= s.bounds.size(); ++i) {
          with_le.back().second =
              i < s.bounds.size() ? format_value(s.bounds[i]) : "+Inf";
          out.sample(bucket, with_le, static_cast<double>(s.cumulative[i]));
        }
        out.sample(sum, labels, s.sum);
        out.sample(count, labels, static_cast<double>(s.count));
      });
      break;
    }
    }
  }
}

std::string registry::text() const {
  exposition out;
  write(out);
  return out.take();
}

// -- the service's metrics ----------------------------------------------------

namespace {

// Families and pre-resolved children of the service's metrics. Children
// with a fixed label set are created up front so they are exposed (as 0)
// before the first event and the hot path never takes a lock for them.
struct service_metrics {
  registry& reg;
  counter_family& http_requests;
  histogram_family& http_duration;
  counter_family& tasks;
  counter& tasks_success;
  counter& tasks_failure;
  histogram_family& task_duration;
  histogram* stage[5];
  counter& accepted;
  counter& accepted_bytes;
  counter& retried;
  counter_family& recovered;
  counter& input_bytes;
  counter& output_bytes;
  counter& redis_errors;
  counter& results_refused;
  counter& dc_scans;
  gauge& long_polls;
  counter_family& long_polls_answered;
  counter& memory_waits;
  gauge& connections;
  counter& connections_refused;
  counter& connections_shed;
  counter& answers_not_delivered;
  gauge& receiving_bytes;
  counter& uploads_refused;
  gauge_family& build;

  explicit service_metrics(registry& r)
      : reg(r),
        http_requests(r.counters("resized_http_requests_total",
                                 "HTTP requests answered, by route template "
                                 "and status code.",
                                 {"route", "code"})),
        http_duration(r.histograms("resized_http_request_duration_seconds",
                                   "Time from a request's arrival to its "
                                   "answer, by route template.",
                                   {"route"}, latency_buckets())),
        tasks(r.counters("resized_tasks_total",
                         "Tasks whose final record the task store (Redis) "
                         "took, by status: a result Redis refused counts as "
                         "its FAILURE result_not_stored, a write kept "
                         "through a Redis outage once it is made.",
                         {"status"})),
        tasks_success(tasks.with({"SUCCESS"})),
        tasks_failure(tasks.with({"FAILURE"})),
        task_duration(r.histograms("resized_task_duration_seconds",
                                   "Time a task spent in each stage: queue "
                                   "(accepted to started), decode, resize, "
                                   "encode, and total (accepted to final). "
                                   "libvips computes pixels lazily: decode "
                                   "(load with shrink-on-load) holds the "
                                   "pixel work of small thumbnails, resize "
                                   "mostly builds the graph, and encode "
                                   "runs what is left (most of the work for "
                                   "large outputs).",
                                   {"stage"}, task_buckets())),
        stage{&task_duration.with({"queue"}), &task_duration.with({"decode"}),
              &task_duration.with({"resize"}), &task_duration.with({"encode"}),
              &task_duration.with({"total"})},
        accepted(r.counters("resized_tasks_accepted_total",
                            "Tasks accepted into the queue.")
                     .unlabelled()),
        accepted_bytes(r.counters("resized_accepted_bytes_total",
                                  "Input image bytes of accepted tasks.")
                           .unlabelled()),
        retried(r.counters("resized_tasks_retried_total",
                           "Task attempts re-queued after their worker node "
                           "was lost (an adopted or restarted node's "
                           "included).")
                    .unlabelled()),
        recovered(r.counters("resized_tasks_recovered_total",
                             "Unfinished tasks taken up from Redis that this "
                             "process did not accept: its own name's at "
                             "start (restart), or those of a node whose name "
                             "has no owner (adoption).",
                             {"how"})),
        input_bytes(r.counters("resized_input_bytes_total",
                               "Input image bytes of tasks that reached a "
                               "final state.")
                        .unlabelled()),
        output_bytes(r.counters("resized_output_bytes_total",
                                "Result image bytes written.")
                         .unlabelled()),
        redis_errors(r.counters("resized_redis_errors_total",
                                "Redis commands or connections that failed.")
                         .unlabelled()),
        results_refused(r.counters("resized_results_refused_total",
                                   "Results Redis refused to store, for "
                                   "lack of memory (maxmemory) or by cutting "
                                   "off their writes: their tasks ended "
                                   "FAILURE result_not_stored.")
                            .unlabelled()),
        dc_scans(r.counters("resized_jpeg_dc_scans_total",
                            "Progressive JPEGs made into thumbnails from "
                            "their DC scans only: the same pixels, most of "
                            "the decode skipped.")
                     .unlabelled()),
        long_polls(r.gauges("resized_long_polls",
                            "Status long polls (?wait=) held right now, and "
                            "tasks waiting for a twin on another API node.")
                       .unlabelled()),
        long_polls_answered(r.counters(
            "resized_long_polls_answered_total",
            "Held status long polls answered, by what answered them: the "
            "task's final record written here (result), Redis' announcement "
            "of another node's (announcement), a look in Redis "
            "(recheck: announcements missed), the wait running out "
            "(deadline), or shutdown.",
            {"by"})),
        memory_waits(r.counters("resized_decode_budget_waits_total",
                                "Times the queue's head had to wait because "
                                "no node had the decode memory for it "
                                "(resize.decode-bytes-per-worker).")
                         .unlabelled()),
        connections(
            r.gauges("resized_http_connections", "HTTP connections open now.")
                .unlabelled()),
        connections_refused(
            r.counters("resized_http_connections_refused_total",
                       "HTTP connections answered 503 "
                       "too_many_connections as they opened, and closed: "
                       "their client address held "
                       "http.max-connections-per-client already.")
                .unlabelled()),
        connections_shed(
            r.counters("resized_http_connections_shed_total",
                       "Stalled HTTP connections closed to make room while "
                       "the node held http.max-connections (nothing "
                       "received for 2 s, or a header block unfinished "
                       "after 10 s).")
                .unlabelled()),
        answers_not_delivered(
            r.counters("resized_http_answers_not_delivered_total",
                       "Answers whose write failed after their access line "
                       "was written: the client did not read them within "
                       "http.write-timeout, or left.")
                .unlabelled()),
        receiving_bytes(r.gauges("resized_http_receiving_bytes",
                                 "Request body bytes being received now, all "
                                 "connections together (at most "
                                 "http.max-receiving-bytes).")
                            .unlabelled()),
        uploads_refused(r.counters("resized_http_uploads_refused_total",
                                   "Requests answered 503 too_many_uploads: "
                                   "their body did not fit in "
                                   "http.max-receiving-bytes.")
                            .unlabelled()),
        build(r.gauges("resized_build_info",
                       "Always 1; its labels name the version and commit of "
                       "this binary and the libvips it runs on.",
                       {"version", "commit", "libvips"})) {}
};

service_metrics& service() {
  static registry reg;
  static service_metrics instance{reg};
  return instance;
}

} // namespace

registry& global() {
  return service().reg; // with the service's families registered
}

void task_accepted(uint64_t input_bytes) {
  auto& m = service();
  m.accepted.inc();
  m.accepted_bytes.inc(input_bytes);
}

void task_retried(size_t n) {
  service().retried.inc(n);
}

void tasks_recovered(std::string_view how, size_t n) {
  service().recovered.with({std::string{how}}).inc(n);
}

void task_finished(double queue_s, double decode_s, double resize_s,
                   double encode_s, double total_s, uint64_t input_bytes,
                   uint64_t output_bytes) {
  auto& m = service();
  const double stages[5] = {queue_s, decode_s, resize_s, encode_s, total_s};
  for (int i = 0; i < 5; ++i)
    if (stages[i] >= 0)
      m.stage[i]->observe(stages[i]);
  m.input_bytes.inc(input_bytes);
  m.output_bytes.inc(output_bytes);
}

void task_final(std::string_view status) {
  auto& m = service();
  if (status == "SUCCESS")
    m.tasks_success.inc();
  else if (status == "FAILURE")
    m.tasks_failure.inc();
  else
    m.tasks.with({status}).inc();
}

void redis_error() {
  service().redis_errors.inc();
}

void result_refused() {
  service().results_refused.inc();
}

void jpeg_dc_scans() {
  service().dc_scans.inc();
}

void long_polls_held(size_t n) {
  service().long_polls.set(static_cast<double>(n));
}

void long_polls_answered(std::string_view by, size_t n) {
  service().long_polls_answered.with({std::string{by}}).inc(n);
}

void decode_budget_wait() {
  service().memory_waits.inc();
}

void build_info(std::string_view version, std::string_view commit,
                std::string_view libvips) {
  service().build.with({version, commit, libvips}).set(1);
}

void http_connections(size_t open) {
  service().connections.set(static_cast<double>(open));
}

void http_connection_refused() {
  service().connections_refused.inc();
}

void http_answer_not_delivered() {
  service().answers_not_delivered.inc();
}

void http_connection_shed() {
  service().connections_shed.inc();
}

void http_receiving_bytes(uint64_t held) {
  service().receiving_bytes.set(static_cast<double>(held));
}

void http_upload_refused() {
  service().uploads_refused.inc();
}

void http_request(std::string_view route, int code, double seconds) {
  auto& m = service();
  m.http_requests.with({route, std::to_string(code)}).inc();
  m.http_duration.with({route}).observe(seconds);
}

} // namespace resized::metrics
