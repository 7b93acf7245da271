#include "actors/supervisor.hpp"

#include "actors/agent.hpp"

#include <algorithm>
#include <cerrno>
#include <functional>
#include <optional>
#include <system_error>

#include <sys/random.h>

#include <caf/io/middleman.hpp>
#include <caf/sec.hpp>
#include <caf/send.hpp>

#include "common/log.hpp"
#include "common/metrics.hpp"
#include "imaging/pipeline.hpp"

namespace resized::actors {

std::string make_token() {
  // A token is all that guards a result image (image URLs are open): its
  // 122 random bits come from the kernel's CSPRNG for each token. (A
  // seeded PRNG was here: std::mt19937_64 from one 32-bit seed, which a
  // client recovered from a single token of its own in minutes, and then
  // predicted every other client's tokens.)
  uint64_t words[2];
  auto* out = reinterpret_cast<unsigned char*>(words);
  for (size_t got = 0; got < sizeof words;) {
    auto n = ::getrandom(out + got, sizeof words - got, 0);
    if (n < 0 && errno != EINTR)
      throw std::system_error(errno, std::generic_category(), "getrandom");
    got += n > 0 ? static_cast<size_t>(n) : 0;
  }
  uint64_t hi = words[0];
  uint64_t lo = words[1];
  hi = (hi & 0xffffffffffff0fffull) | 0x0000000000004000ull; // version 4
  lo = (lo & 0x3fffffffffffffffull) | 0x8000000000000000ull; // variant 10
  return fmt::format("{:08x}-{:04x}-{:04x}-{:04x}-{:012x}", hi >> 32,
                     (hi >> 16) & 0xffff, hi & 0xffff, lo >> 48,
                     lo & 0xffffffffffffull);
}

namespace {

using self_ptr = supervisor_actor_type*;
using state_type = supervisor_state;

// The policy this API node gives each task it accepted, wherever it runs:
// its [limits], and its task timeout as the deadline inside libvips (the
// one `dispatch` adds its backstop to).
imaging::limits job_policy(const supervisor_config& cfg) {
  auto policy = cfg.limits;
  policy.max_processing_ms = static_cast<int64_t>(cfg.task_timeout.count());
  return policy;
}

const resize_job& job_of(const state_type::queued& task) {
  return task.job.get_as<resize_job>(0);
}

// How long `task`'s resize may take: its job's deadline, the accepting API
// node's task timeout (job_policy), which an adopted or recovered task
// keeps. Every job carries one: accept and resume_read set it, and a
// stored policy's is at least 1 ms (record_codec).
std::chrono::milliseconds task_deadline(const state_type::queued& task) {
  return std::chrono::milliseconds{job_of(task).policy.max_processing_ms};
}

failure shutting_down() {
  return failure{error_code::shutting_down,
                 "this node is shutting down: submit again (another node, or "
                 "this one after its restart)"};
}

// A task answered with its identical twin's result, copied under its token.
void count_reused(self_ptr self, uint64_t input_bytes) {
  auto& st = self->state;
  ++st.reused;
  ++st.succeeded;
  metrics::task_finished(-1, -1, -1, -1, 0, input_bytes, 0);
}

// -- clients' shares of the queue ---------------------------------------------

// Counts `token` (its input of `bytes`) against `client`'s share.
void count_client(self_ptr self, const std::string& token,
                  const std::string& client, uint64_t bytes) {
  auto& st = self->state;
  if (client.empty())
    return;
  auto& use = st.clients[client];
  ++use.tasks;
  use.bytes += bytes;
  st.counted[token] = {client, bytes};
}

// `token` ended (final, or never accepted): its client's share is freed.
// Every way a task ends passes here; a token not counted (recovered after
// a restart, submitted without a client) is a no-op.
void counted_done(self_ptr self, const std::string& token) {
  auto& st = self->state;
  if (st.ended.size() >= 10000) {
    st.ended_before = std::move(st.ended);
    st.ended.clear();
  }
  st.ended.insert(token);
  auto i = st.counted.find(token);
  if (i == st.counted.end())
    return;
  auto c = st.clients.find(i->second.client);
  if (c != st.clients.end()) {
    --c->second.tasks;
    c->second.bytes -= std::min(c->second.bytes, i->second.bytes);
    if (c->second.tasks == 0)
      st.clients.erase(c);
  }
  st.counted.erase(i);
}

// Queues `task` in fair order: each client's tasks take rounds 1, 2, 3...
// counted from the round now being started, and a task goes after every
// task of its round or an earlier one. One client's tasks stay in their
// order, but a client with one task waits behind one task of each other
// client, not behind all that a busy client queued before it (a
// round-robin of the clients with tasks waiting; start-time fair queuing).
// Retries and tasks a busy node turned away keep going to the front.
void enqueue_fair(self_ptr self, state_type::queued task) {
  auto& st = self->state;
  uint64_t* last = &st.anonymous_round;
  if (auto c = st.counted.find(task.record.token); c != st.counted.end())
    if (auto u = st.clients.find(c->second.client); u != st.clients.end())
      last = &u->second.last_round;
  task.round = std::max(st.round_now, *last) + 1;
  *last = task.round;
  // From the back: with one client (or rounds in step) it is the back.
  auto pos = st.queue.end();
  while (pos != st.queue.begin() && std::prev(pos)->round > task.round)
    --pos;
  st.queue.insert(pos, std::move(task));
}

// Why `req` exceeds its client's share; "" when it fits.
std::string over_share(self_ptr self, const submit_request& req) {
  auto& st = self->state;
  if (req.client.empty())
    return {};
  auto i = st.clients.find(req.client);
  if (i == st.clients.end())
    return {}; // nothing open: one task is always allowed
  const auto& use = i->second;
  // The client is named as counted ("ip:..." or "key:<n>"): behind a proxy
  // that is not trusted, every client shows as the proxy's address.
  if (st.cfg.client_max_tasks > 0 && use.tasks >= st.cfg.client_max_tasks)
    return fmt::format("client {} already has {} task{} open on this node "
                       "(limit {} per client): submit more as they finish",
                       req.client, use.tasks, use.tasks == 1 ? "" : "s",
                       st.cfg.client_max_tasks);
  if (st.cfg.client_max_bytes > 0 &&
      use.bytes + req.image.size() > st.cfg.client_max_bytes)
    return fmt::format("client {}'s open tasks on this node hold {} bytes "
                       "of input, and this one {} more (limit {} per "
                       "client): submit it as they finish",
                       req.client, use.bytes, req.image.size(),
                       st.cfg.client_max_bytes);
  return {};
}

void fail(self_ptr self, task_record rec, failure err) {
  rec.status = task_status::failure;
  rec.error_code = std::string{to_string(err.code)};
  rec.error_message = std::move(err.message);
  rec.finished_at_ms = now_ms();
  ++self->state.failed;
  auto seconds = [](int64_t from, int64_t to) {
    return from > 0 && to >= from ? (to - from) / 1e3 : -1.0;
  };
  metrics::task_finished(
      seconds(rec.submitted_at_ms, rec.started_at_ms), -1, -1, -1,
      seconds(rec.submitted_at_ms, rec.finished_at_ms), rec.input_bytes, 0);
  log::info("task finished",
            {{"token", rec.token},
             {"task_status", "FAILURE"},
             {"code", rec.error_code},
             {"reason", rec.error_message},
             {"node", rec.node},
             {"total_ms", rec.finished_at_ms - rec.submitted_at_ms}});
  auto& st = self->state;
  st.open.erase(rec.token);
  counted_done(self, rec.token);
  auto f = st.followers.find(rec.token);
  std::vector<task_record> waiting;
  if (f != st.followers.end()) {
    waiting = std::move(f->second);
    st.followers.erase(f);
  }
  auto code = err.code;
  auto message = rec.error_message;
  self->send(st.status, update_atom::value, std::move(rec));
  for (auto& w : waiting)
    fail(self, std::move(w), failure{code, message});
}

void dispatch(self_ptr self);
void enqueue(self_ptr self, state_type::queued task);

// The resize journal, if tasks placed on `node` are noted in it: this
// node's own pool's, when the node keeps one; null otherwise.
store::attempt_journal* journal_of(const state_type& st,
                                   const std::string& node) {
  return node == st.cfg.node ? st.cfg.journal.get() : nullptr;
}

// The attempt of `token` on `node` ended: its note in the journal goes.
void note_ended(state_type& st, const std::string& token,
                const std::string& node) {
  if (auto* journal = journal_of(st, node))
    journal->ended(token);
}

// Removes `token` from the running set if `attempt` is its current attempt;
// returns the task, or nullopt for a stale answer.
std::optional<state_type::in_flight>
take(self_ptr self, const std::string& token, uint32_t attempt) {
  auto& st = self->state;
  auto i = st.running.find(token);
  if (i == st.running.end() || i->second.task.attempt != attempt)
    return std::nullopt;
  auto task = std::move(i->second);
  st.running.erase(i);
  note_ended(st, token, task.node);
  if (auto n = st.nodes.find(task.node); n != st.nodes.end()) {
    --n->second.busy;
    n->second.decoding -= std::min(n->second.decoding, task.task.decode_bytes);
  }
  return task;
}

// `task` goes back to the queue's front, to be placed again. A record shown
// IN_PROGRESS (its node took the job) says PENDING again, in Redis too,
// with the attempts lost so far: none for a job turned away, the lost one
// for a retry (whose caller counted it in `attempt`).
void requeue_front(self_ptr self, state_type::in_flight& task) {
  auto& st = self->state;
  auto& queued = task.task;
  if (task.started()) { // read before the record says otherwise
    queued.record.status = task_status::pending;
    queued.record.started_at_ms = 0;
    queued.record.attempts = queued.attempt;
    self->send(st.status, update_atom::value, queued.record);
  }
  st.queued_bytes += job_of(queued).input.size();
  st.queue.push_front(std::move(queued));
}

// A node failed this attempt (lost, or the request failed): run it again
// elsewhere, up to max_attempts.
void retry(self_ptr self, state_type::in_flight task, const std::string& why) {
  auto& st = self->state;
  ++task.task.attempt;
  if (task.task.attempt >= st.cfg.max_attempts) {
    fail(self, std::move(task.task.record),
         failure{error_code::worker_lost,
                 fmt::format("lost the worker {} times, last on node {}: {}",
                             task.task.attempt, task.node, why)});
    return;
  }
  ++st.retried;
  metrics::task_retried();
  log::warn("task re-queued", {{"token", task.task.record.token},
                               {"node", task.node},
                               {"attempt", task.task.attempt},
                               {"reason", why}});
  task.task.turned_away = 0;
  requeue_front(self, task);
}

// `task` runs on its node since `at_ms`: its record says IN_PROGRESS there,
// counting the attempt (persisted: a restart counts an open record's
// attempts as lost, as it may be the input that crashed the process).
void mark_started(state_type::in_flight& task, int64_t at_ms) {
  auto& rec = task.task.record;
  rec.status = task_status::in_progress;
  rec.started_at_ms = at_ms;
  rec.node = task.node;
  rec.attempts = task.task.attempt + 1;
}

// `task` ended (answered, or given up on) without its node's started_atom
// having come: it counts as run from when it was placed.
void mark_started_if_unsaid(state_type::in_flight& task) {
  if (!task.started())
    mark_started(task, task.placed_at_ms);
}

// The node of `token`'s attempt took the job (its agent's started_atom).
void on_started(self_ptr self, const std::string& token) {
  auto& st = self->state;
  auto i = st.running.find(token);
  if (i == st.running.end() || i->second.started())
    return; // answered already, or given back to the queue
  auto& task = i->second;
  auto n = st.nodes.find(task.node);
  if (n == st.nodes.end() ||
      n->second.agent.address() != self->current_sender())
    return; // from a node an earlier attempt was lost on
  mark_started(task, now_ms());
  const auto& rec = task.task.record;
  self->send(st.status, update_atom::value, rec);
  log::info("task started",
            {{"token", rec.token},
             {"task_status", "IN_PROGRESS"},
             {"node", task.node},
             {"attempt", task.task.attempt},
             {"turned_away", task.task.turned_away},
             {"queue_ms", rec.started_at_ms - rec.submitted_at_ms}});
}

void on_done(self_ptr self, const std::string& token, uint32_t attempt,
             resize_done& done) {
  auto task = take(self, token, attempt);
  if (!task) {
    log::debug("stale answer dropped",
               {{"token", token}, {"attempt", attempt}});
    return;
  }
  auto& st = self->state;
  auto node = st.nodes.find(task->node);
  if (!done.ok && done.error_code == node_busy) {
    // Not the task's failure: that node is full (shared with other API
    // nodes, or still held by a resize given up on). Back to the queue
    // front, same attempt; try the node again after a pause, 50 ms doubling
    // up to 1.6 s while it keeps turning tasks away.
    if (node != st.nodes.end() && !node->second.saturated) {
      auto& n = node->second;
      n.saturated = true;
      auto pause =
          std::chrono::milliseconds{50 << std::min<uint32_t>(n.turned_away, 5)};
      ++n.turned_away;
      self->delayed_send(self, pause, unsaturate_atom::value, task->node);
    }
    log::debug("node busy, re-placing",
               {{"token", task->task.record.token}, {"node", task->node}});
    // Queued again, as its record still says: a job turned away was never
    // started (nor is it an attempt). Should its node have said otherwise,
    // Redis hears it waits again.
    ++task->task.turned_away;
    requeue_front(self, *task);
    return;
  }
  if (node != st.nodes.end()) {
    node->second.saturated = false; // it answered: it has room again
    node->second.turned_away = 0;
  }
  mark_started_if_unsaid(*task);
  auto rec = std::move(task->task.record);
  auto content = std::move(task->task.content);
  rec.node = done.node.empty() ? task->node : done.node;
  if (!done.ok) {
    if (node != st.nodes.end())
      ++node->second.failed;
    error_code code = error_code::internal_error;
    from_string(done.error_code, code);
    fail(self, std::move(rec), failure{code, std::move(done.error_message)});
    return;
  }
  if (node != st.nodes.end())
    ++node->second.done;
  rec.status = task_status::success;
  rec.width = done.width;
  rec.height = done.height;
  rec.output_bytes = done.output.size();
  rec.etag = std::move(done.etag);
  rec.finished_at_ms = now_ms();
  ++st.succeeded;
  metrics::task_finished((rec.started_at_ms - rec.submitted_at_ms) / 1e3,
                         done.decode_s, done.resize_s, done.encode_s,
                         (rec.finished_at_ms - rec.submitted_at_ms) / 1e3,
                         rec.input_bytes, rec.output_bytes);
  if (done.jpeg_dc_scans)
    metrics::jpeg_dc_scans();
  log::info("task finished",
            {{"token", rec.token},
             {"task_status", "SUCCESS"},
             {"node", rec.node},
             {"width", rec.width},
             {"height", rec.height},
             {"bytes", rec.output_bytes},
             {"queue_ms", rec.started_at_ms - rec.submitted_at_ms},
             {"decode_ms", done.decode_s * 1e3, 1},
             {"resize_ms", done.resize_s * 1e3, 1},
             {"encode_ms", done.encode_s * 1e3, 1},
             {"total_ms", rec.finished_at_ms - rec.submitted_at_ms},
             {"jpeg_dc_scans", done.jpeg_dc_scans}});
  st.open.erase(rec.token);
  counted_done(self, rec.token);
  auto f = st.followers.find(rec.token);
  std::vector<task_record> followers;
  if (f != st.followers.end()) {
    followers = std::move(f->second);
    st.followers.erase(f);
  }
  // The result first: the duplicates' records point at its image. The
  // content index (Redis) then knows it for every API node.
  self->send(st.status, result_atom::value, rec, std::move(done.output),
             std::move(content));
  // Duplicates submitted while this task ran get the same result: their
  // records point at its image (copy_result), no bytes of their own.
  for (auto& w : followers) {
    counted_done(self, w.token);
    copy_result(rec, w);
    // It waited from its own submission (the twin may have started first).
    w.started_at_ms = std::max(rec.started_at_ms, w.submitted_at_ms);
    w.finished_at_ms = rec.finished_at_ms;
    ++st.succeeded;
    metrics::task_finished(-1, -1, -1, -1,
                           (w.finished_at_ms - w.submitted_at_ms) / 1e3,
                           w.input_bytes, w.output_bytes);
    log::info(
        "task finished (result shared)",
        {{"token", w.token}, {"task_status", "SUCCESS"}, {"from", rec.token}});
    self->send(st.status, result_atom::value, std::move(w), std::string{},
               std::string{});
  }
}

void on_error(self_ptr self, const std::string& token, uint32_t attempt,
              const caf::error& err) {
  auto task = take(self, token, attempt);
  if (!task)
    return;
  if (err == caf::sec::request_timeout) {
    auto& st = self->state;
    if (auto n = st.nodes.find(task->node); n != st.nodes.end())
      ++n->second.failed;
    mark_started_if_unsaid(*task);
    auto deadline = task_deadline(task->task);
    fail(self, std::move(task->task.record),
         failure{error_code::processing_timeout,
                 fmt::format("processing took longer than {} ms",
                             deadline.count())});
    return;
  }
  retry(self, std::move(*task), describe(self->system(), err));
}

// Whether `node` can start a task whose decode holds `decode_bytes` without
// passing its memory budget. A node that runs nothing takes any task, so an
// image larger than the whole budget still runs (alone).
bool fits(const supervisor_config& cfg, const state_type::node_entry& node,
          uint64_t decode_bytes) {
  if (cfg.decode_bytes_per_worker == 0 || node.busy == 0)
    return true;
  // Saturated: a node's pool size comes over the wire.
  auto per = cfg.decode_bytes_per_worker;
  auto budget = node.info.pool_size > UINT64_MAX / per
                    ? UINT64_MAX
                    : per * node.info.pool_size;
  return node.decoding + decode_bytes <= budget;
}

// Resize workers of the nodes that take tasks (leaving nodes take none).
size_t workers_available(self_ptr self) {
  size_t workers = 0;
  for (auto& [key, node] : self->state.nodes)
    if (!node.leaving)
      workers += node.info.pool_size;
  return workers;
}

// Whether some node could take a task at all (memory aside).
bool has_free_slot(self_ptr self) {
  for (auto& [key, node] : self->state.nodes)
    if (!node.saturated && !node.leaving && node.busy < node.info.pool_size)
      return true;
  return false;
}

// The node with the most free slots that can also hold `decode_bytes`, or
// nullptr.
state_type::node_entry* pick_node(self_ptr self, std::string& name,
                                  uint64_t decode_bytes) {
  auto& st = self->state;
  state_type::node_entry* best = nullptr;
  size_t best_free = 0;
  for (auto& [key, node] : st.nodes) {
    if (node.saturated || node.leaving || !fits(st.cfg, node, decode_bytes))
      continue;
    auto free =
        node.info.pool_size > node.busy ? node.info.pool_size - node.busy : 0;
    if (free > best_free) {
      best = &node;
      best_free = free;
      name = key;
    }
  }
  return best;
}

// Slack past task_timeout before the supervisor gives up on an answer.
constexpr std::chrono::milliseconds backstop{2000};

// How far down the queue dispatch looks for a task that fits in memory.
constexpr size_t skip_ahead = 16;

void read_deferred_inputs(self_ptr self);

// Recovered or adopted tasks whose inputs are still only in Redis (deferred,
// or being read): they wait like queued ones.
size_t waiting_in_redis(const state_type& st) {
  return st.deferred_tasks.size() + st.reading.size();
}

void dispatch(self_ptr self) {
  auto& st = self->state;
  std::string name;
  // While draining, queued tasks stay queued: they are in Redis and the
  // next start (or another API node's recovery) runs them.
  while (!st.queue.empty() && !st.draining && has_free_slot(self)) {
    // The queue's head, unless no node has the memory for its decode now
    // (a large progressive photo while another runs): then the first of the
    // next few tasks that fits passes it. The head starts as soon as memory
    // frees up, since whatever passes it has to fit beside what runs.
    state_type::node_entry* node = nullptr;
    auto pos = st.queue.begin();
    for (size_t seen = 0; pos != st.queue.end() && seen < skip_ahead;
         ++pos, ++seen) {
      node = pick_node(self, name, pos->decode_bytes);
      if (node != nullptr)
        break;
    }
    if (pos != st.queue.begin() || node == nullptr)
      metrics::decode_budget_wait(); // a slot is free, the head's memory not
    if (node == nullptr)
      break;
    auto task = std::move(*pos);
    st.queue.erase(pos);
    st.round_now = std::max(st.round_now, task.round);
    st.queued_bytes -= job_of(task).input.size();
    ++node->busy;
    node->decoding += task.decode_bytes;
    // Still PENDING: the record says IN_PROGRESS once the node takes the
    // job (on_started); a busy node turns it away (node_busy, routine when
    // API nodes share workers), and clients never see it run and wait again.
    log::debug("task placed", {{"token", task.record.token},
                               {"node", name},
                               {"attempt", task.attempt},
                               {"turned_away", task.turned_away}});
    auto token = task.record.token;
    auto attempt = task.attempt;
    auto job = task.job; // shares the bytes with the copy kept for retries
    // The resize itself stops at its deadline inside libvips, on any node:
    // the job carries it (job_policy). This one is the backstop for a node
    // that does not answer at all.
    auto deadline = task_deadline(task);
    // On this node's own pool: noted before it can run, since Redis hears
    // of the attempt only after it started (on_started), and an input that
    // crashes the process at once must still count at the restart.
    if (auto* journal = journal_of(st, name))
      journal->started(token, attempt + 1);
    st.running.emplace(token,
                       state_type::in_flight{std::move(task), name, now_ms()});
    self->request(node->agent, deadline + backstop, std::move(job))
        .then(
            [=](resize_done& done) {
              if (self->state.abandoned)
                return; // given up: the next start runs it
              on_done(self, token, attempt, done);
              dispatch(self); // a slot is free again
            },
            [=](caf::error& err) {
              if (self->state.abandoned)
                return;
              on_error(self, token, attempt, err);
              dispatch(self);
            });
  }
  read_deferred_inputs(self); // the next recovered tasks, if there is room
}

// Forgets node `name`; its in-flight tasks go back to the queue.
void drop_node(self_ptr self, const std::string& name, const std::string& why) {
  auto& st = self->state;
  auto i = st.nodes.find(name);
  if (i == st.nodes.end())
    return;
  log::warn("node lost",
            {{"node", name}, {"reason", why}, {"in_flight", i->second.busy}});
  self->demonitor(i->second.agent);
  st.nodes.erase(i);
  std::vector<std::string> lost;
  for (auto& [token, task] : st.running)
    if (task.node == name)
      lost.push_back(token);
  for (auto& token : lost) {
    auto task = std::move(st.running[token]);
    st.running.erase(token);
    note_ended(st, token, name);
    retry(self, std::move(task), "node " + name + " lost");
  }
}

// Adds (or, same agent joining again, refreshes) node `info.name`; a name
// held by another agent is refused before (join_atom).
void add_node(self_ptr self, caf::actor agent, node_info info,
              std::string role) {
  auto& st = self->state;
  self->monitor(agent);
  auto& entry = st.nodes[info.name];
  entry.agent = std::move(agent);
  entry.role = std::move(role);
  entry.since_ms = now_ms();
  entry.info = std::move(info);
  log::info("node joined", {{"node", entry.info.name},
                            {"role", entry.role},
                            {"address", entry.info.address},
                            {"workers", entry.info.pool_size}});
  dispatch(self);
}

// Passes to `then` the remote end of the BASP connection to the node of
// `agent` (numeric host, port); ("local", 0) for an actor of this node,
// ("unknown", 0) when the middleman does not know (any more).
void peer_endpoint(self_ptr self, const caf::actor& agent,
                   std::function<void(std::string, uint16_t)> then) {
  auto& sys = self->home_system();
  if (!agent || agent.node() == self->node() || !sys.has_middleman()) {
    then("local", 0);
    return;
  }
  self->request(sys.middleman().actor_handle(), std::chrono::seconds{1},
                caf::get_atom::value, agent.node())
      .then(
          [=](const caf::node_id&, const std::string& host, uint16_t port) {
            if (host.empty())
              then("unknown", 0);
            else
              then(host, port);
          },
          [=](caf::error&) { then("unknown", 0); });
}

// The same as "host:port", "local" or "unknown".
void peer_address(self_ptr self, const caf::actor& agent,
                  std::function<void(std::string)> then) {
  peer_endpoint(self, agent, [then](std::string host, uint16_t port) {
    then(port == 0 ? host : host + ":" + std::to_string(port));
  });
}

// A node's name is its identity (records, logs, /api/v1/cluster): while a
// connected node holds it, a newcomer with the same name is turned away,
// and the holder keeps its tasks and its place. The newcomer's link retries
// with backoff, so a node restarted after a crash gets in as soon as its
// old self is known dead: at once when its connection closed, after
// cluster.connection-timeout-ms of silence when its machine was lost.
void refuse_name(self_ptr self, const std::string& name,
                 const state_type::node_entry& holder,
                 const caf::actor& newcomer, const node_info& info,
                 caf::response_promise promise) {
  auto holder_agent = holder.agent;
  auto holder_address = holder.info.address;
  auto holder_role = holder.role;
  auto since = now_ms() - holder.since_ms;
  auto newcomer_address = info.address;
  // A holder that is leaving makes this a rolling restart, not a mistake:
  // a warning, and the newcomer is told it gets in once the holder is gone.
  bool leaving = holder.leaving;
  peer_address(self, holder_agent, [=](std::string holder_peer) mutable {
    peer_address(self, newcomer, [=](std::string newcomer_peer) mutable {
      log::field fields[] = {{"node", name},
                             {"holder_address", holder_address},
                             {"holder_peer", holder_peer},
                             {"holder_role", holder_role},
                             {"holder_leaving", leaving},
                             {"holder_joined_ms_ago", since},
                             {"newcomer_address", newcomer_address},
                             {"newcomer_peer", newcomer_peer}};
      log::emit(leaving ? log::level::warn : log::level::error,
                "node name taken: join refused",
                log::fields{std::begin(fields), std::end(fields)});
      promise.deliver(make_error(
          leaving ? cluster_error::name_leaving : cluster_error::name_taken,
          fmt::format("node name {} is held by the {} node at {} (connected "
                      "from {}, joined {} ms ago{}); this node is at {} "
                      "(connected from {})",
                      name, holder_role, holder_address, holder_peer, since,
                      leaving ? ", leaving now: it gets the name once it has "
                                "left"
                              : "",
                      newcomer_address, newcomer_peer)));
    });
  });
}

// A worker of another build, whose messages this node could misread: it is
// told why and keeps asking (its link backs off), so it gets in once one
// of the two is upgraded.
void refuse_protocol(self_ptr self, const caf::actor& sender, uint32_t protocol,
                     std::string build, caf::response_promise promise) {
  peer_address(self, sender, [=](std::string peer) mutable {
    const auto& st = self->state;
    log::error("worker refused: another cluster protocol",
               {{"peer", peer},
                {"worker_build", build},
                {"worker_protocol", protocol},
                {"build", st.cfg.build},
                {"protocol", cluster_protocol}});
    promise.deliver(make_error(
        cluster_error::protocol_mismatch,
        fmt::format("the API node runs resized {} (cluster protocol {}), "
                    "this node resized {} (cluster protocol {}): run the "
                    "same version on both",
                    st.cfg.build, cluster_protocol, build, protocol)));
  });
}

// A worker whose heartbeats are as far apart as this node's connection
// timeout, or further: CAF's middleman here would cut its connection each
// time the timeout passes between two heartbeats, and it would join, lose
// its tasks and join again, with nothing naming the cause. Refused with
// both values, on both nodes' logs.
void refuse_heartbeat(self_ptr self, const node_info& info,
                      caf::response_promise promise) {
  auto timeout_ms = self->state.cfg.connection_timeout.count();
  log::error("worker refused: its heartbeats are too far apart",
             {{"worker", info.name},
              {"worker_heartbeat_ms", static_cast<int64_t>(info.heartbeat_ms)},
              {"connection_timeout_ms", static_cast<int64_t>(timeout_ms)}});
  promise.deliver(make_error(
      cluster_error::heartbeat_too_slow,
      fmt::format("this node sends a heartbeat every {} ms "
                  "(cluster.heartbeat-ms) and the API node cuts a connection "
                  "silent for {} ms (its cluster.connection-timeout-ms): set "
                  "this node's cluster.heartbeat-ms below {} (a third of it "
                  "or less is safe)",
                  info.heartbeat_ms, timeout_ms, timeout_ms)));
}

// The other way round: a worker that cuts a connection silent for as long
// as this node's heartbeat interval, or less, would cut this node off
// between two heartbeats in every quiet spell, with the same flapping.
// Refused alike, before it can place a task there.
void refuse_own_heartbeat(self_ptr self, const node_info& info,
                          caf::response_promise promise) {
  auto heartbeat_ms = self->state.cfg.heartbeat.count();
  log::error("worker refused: this node's heartbeats are too far apart for it",
             {{"worker", info.name},
              {"heartbeat_ms", static_cast<int64_t>(heartbeat_ms)},
              {"worker_connection_timeout_ms",
               static_cast<int64_t>(info.connection_timeout_ms)}});
  promise.deliver(make_error(
      cluster_error::heartbeat_too_slow,
      fmt::format("the API node sends a heartbeat every {} ms (its "
                  "cluster.heartbeat-ms) and this node cuts a connection "
                  "silent for {} ms (cluster.connection-timeout-ms): set "
                  "this node's cluster.connection-timeout-ms above {} (three "
                  "times it or more is safe)",
                  heartbeat_ms, info.connection_timeout_ms, heartbeat_ms)));
}

void on_node_down(self_ptr self, const caf::actor_addr& source,
                  const caf::error& reason) {
  auto& st = self->state;
  for (auto& [name, node] : st.nodes) {
    if (node.agent.address() == source) {
      auto key = name;
      if (node.leaving && node.busy == 0) {
        // A graceful shutdown that finished everything placed there: said
        // so (its link's end reads "the connection to the node was lost"
        // when the process exits after its last task, as after a crash).
        log::info("node left",
                  {{"node", key},
                   {"reason", "it shut down after leaving, its tasks here "
                              "done"},
                   {"link", describe(self->system(), reason)}});
        st.nodes.erase(key);
        return;
      }
      drop_node(self, key, describe(self->system(), reason));
      dispatch(self);
      return;
    }
  }
}

// Tells the status actor to undo the accept of `token` (its client has no
// token), and remembers it for recoveries (handled_here).
void forget(self_ptr self, const std::string& token,
            const std::string& content) {
  auto& st = self->state;
  if (st.forgotten.size() >= 10000)
    st.forgotten.clear();
  st.forgotten.insert(token);
  self->send(st.status, forget_atom::value, token, content);
}

// Whether this supervisor has `token` in hand already: queued or running,
// waiting for an identical task here or a twin elsewhere, getting a copy
// of a twin's result, undone (its client has no token), or ended here
// lately. A recovery (retried
// after a timeout, or after submissions were taken before the lease) must not
// start it again.
bool handled_here(const state_type& st, const std::string& token) {
  if (st.running.count(token) != 0 || st.open.count(token) != 0 ||
      st.awaiting.count(token) != 0 || st.cloning.count(token) != 0 ||
      st.forgotten.count(token) != 0 || st.ended.count(token) != 0 ||
      st.ended_before.count(token) != 0)
    return true;
  for (const auto& [original, list] : st.followers)
    for (const auto& rec : list)
      if (rec.token == token)
        return true;
  return false;
}

// Takes back tasks accepted before a crash or restart (or adopted from a
// node with no owner: `from`), in the order they were submitted: they keep
// their token and submission time. A task whose node was lost under it
// max_attempts times ends here (a restart while one ran counts: it may be
// the input that crashes the process); the others wait, records only, in
// deferred_tasks until read_deferred_inputs reads their inputs.
void recover(self_ptr self, std::vector<store::pending_task>& pending,
             const std::string& from = {}) {
  auto& st = self->state;
  std::stable_sort(pending.begin(), pending.end(),
                   [](const auto& a, const auto& b) {
                     return a.record.submitted_at_ms < b.record.submitted_at_ms;
                   });
  size_t resumed = 0;
  size_t known = 0;   // already handled here
  size_t retried = 0; // resumed with an attempt lost
  for (auto& p : pending) {
    if (handled_here(st, p.record.token)) {
      ++known;
      continue;
    }
    // Every attempt started and not finished was lost with its node. One
    // this node started just before it crashed may be only in its journal
    // (Redis had not heard of it): the larger count stands.
    auto lost = p.record.attempts;
    if (st.cfg.journal && from.empty())
      if (auto j = st.cfg.journal->left().find(p.record.token);
          j != st.cfg.journal->left().end() && j->second > lost) {
        log::info("attempt counted from the resize journal",
                  {{"token", p.record.token},
                   {"attempts_in_redis", lost},
                   {"attempts", j->second}});
        lost = j->second;
        p.record.attempts = lost;
      }
    if (lost >= st.cfg.max_attempts) {
      auto where = p.record.node;
      fail(self, std::move(p.record),
           failure{error_code::worker_lost,
                   fmt::format("lost the worker {} times, last on node {}: "
                               "the node stopped while running it",
                               lost, where)});
      continue;
    }
    p.record.status = task_status::pending;
    p.record.started_at_ms = 0;
    // Redis showed IN_PROGRESS on a node that is gone: say it waits again.
    self->send(st.status, update_atom::value, p.record);
    st.open.insert(p.record.token);
    st.deferred_tasks.push_back({std::move(p.record), lost, from});
    ++resumed;
    retried += lost > 0 ? 1 : 0;
  }
  // Counted into the records (sent above, kept by the status actor until
  // Redis has them); a task that crashes again is noted anew, with its
  // count so far.
  if (st.cfg.journal && from.empty())
    st.cfg.journal->forget_left();
  if (!pending.empty()) {
    auto failed = pending.size() - resumed - known;
    metrics::tasks_recovered(from.empty() ? "restart" : "adoption",
                             resumed + failed);
    metrics::task_retried(retried);
    st.retried += retried; // /api/v1/cluster's totals, as retry() counts
    if (from.empty())
      log::info("recovered tasks accepted before the restart",
                {{"resumed", resumed},
                 {"failed", failed},
                 {"waiting_in_redis", st.deferred_tasks.size()}});
    else
      log::info("resumed tasks adopted from a node with no owner",
                {{"from", from},
                 {"resumed", resumed},
                 {"failed", failed},
                 {"waiting_in_redis", st.deferred_tasks.size()}});
  }
  dispatch(self);
}

// Twins that came to follow `token` here while it was open run
// themselves, once their inputs are read: `token` will not run (no longer
// pending, or its input is gone), and their own inputs are in Redis.
void hand_on_followers(state_type& st, const std::string& token) {
  auto f = st.followers.find(token);
  if (f == st.followers.end())
    return;
  auto waiting = std::move(f->second);
  st.followers.erase(f);
  for (auto& w : waiting) {
    st.open.insert(w.token);
    st.deferred_tasks.push_back({std::move(w), 0, std::string{}});
  }
}

// Queues the recovered tasks whose inputs were read (`loaded`, from the
// batch `asked`); a task with no input or no record any more fails, and one
// Redis no longer lists (another node ended it) is no longer open here.
void resume_read(self_ptr self, std::vector<state_type::deferred> asked,
                 std::vector<store::pending_task>& loaded) {
  auto& st = self->state;
  std::unordered_map<std::string, store::pending_task*> by_token;
  for (auto& p : loaded)
    by_token.emplace(p.record.token, &p);
  size_t gone = 0;
  for (auto& d : asked) {
    auto i = by_token.find(d.record.token);
    if (i == by_token.end()) {
      st.open.erase(d.record.token);
      log::debug("recovered task no longer pending in redis",
                 {{"token", d.record.token}});
      hand_on_followers(st, d.record.token);
      continue;
    }
    auto& p = *i->second;
    if (p.gone) {
      // Its record went from Redis between the recovery and this read
      // (Redis restarted without it, or it expired): the input with it.
      // Dropped quietly, the task stayed PENDING here for good and unknown
      // everywhere else; ended, its client hears why.
      ++gone;
      hand_on_followers(st, d.record.token);
      fail(self, std::move(d.record),
           failure{error_code::worker_lost,
                   "its record and input were gone from redis when it was "
                   "to run (redis restarted without them, or they "
                   "expired)"});
      continue;
    }
    if (!p.input) {
      hand_on_followers(st, d.record.token); // not failed with it
      fail(self, std::move(d.record),
           failure{error_code::worker_lost,
                   d.from.empty()
                       ? "its input was gone from redis when it was to run "
                         "here (it expired, or redis restarted without it)"
                       : "its node stopped and its input was gone from "
                         "redis when it was to run here (it expired, or "
                         "redis restarted without it)"});
      continue;
    }
    state_type::queued task;
    task.attempt = d.attempt;
    task.record = std::move(d.record);
    // As the node that accepted it would have run it (this one, before a
    // restart, or one whose tasks are adopted here), under another config
    // maybe; this node's own policy for a record written before policies
    // were kept.
    if (!task.record.policy)
      task.record.policy = job_policy(st.cfg);
    const auto& policy = *task.record.policy;
    auto head =
        imaging::probe(p.input->data(), p.input->size(), imaging::limits{});
    task.decode_bytes =
        head ? imaging::decode_estimate(*head, p.input->size(),
                                        task.record.options, policy)
             : p.input->size();
    task.job = caf::make_message(
        resize_job{task.record.token, task.record.options, std::move(*p.input),
                   head ? *head : imaging::probe_info{}, policy});
    st.queued_bytes += job_of(task).input.size();
    enqueue_fair(self, std::move(task)); // one client: the recovered tasks
  }
  if (gone > 0)
    log::warn("recovered tasks lost: their records were gone from redis "
              "when their inputs were read (redis restarted without them?); "
              "they end as FAILURE worker_lost",
              {{"tasks", gone}});
}

// Reads the inputs of the next recovered tasks once the queue runs low:
// fewer tasks than two per worker, and under half of queue_max_bytes, so
// the workers never wait for Redis and submissions keep room beside them.
// One batch at a time, at most 16 tasks, within that half of the bytes
// with what is queued (their records give the input sizes); a larger input
// only into an empty queue. While draining nothing is read: the tasks stay
// in Redis for the next start or an adopter.
void read_deferred_inputs(self_ptr self) {
  auto& st = self->state;
  constexpr size_t max_batch = 16;
  auto half = st.cfg.queue_max_bytes / 2;
  auto low_water = std::max<size_t>(4, 2 * workers_available(self));
  if (st.deferred_tasks.empty() || !st.reading.empty() || st.draining ||
      st.queue.size() >= low_water || st.queued_bytes >= half)
    return;
  uint64_t bytes = st.queued_bytes;
  std::vector<std::string> tokens;
  while (!st.deferred_tasks.empty() && st.reading.size() < max_batch) {
    // Past half only for a task alone in an empty queue (its input is
    // within limits.max-body-bytes, itself within queue_max_bytes).
    auto size = st.deferred_tasks.front().record.input_bytes;
    if (bytes + size > half && !(bytes == 0 && st.reading.empty()))
      break;
    bytes += size;
    tokens.push_back(st.deferred_tasks.front().record.token);
    st.reading.push_back(std::move(st.deferred_tasks.front()));
    st.deferred_tasks.pop_front();
  }
  if (tokens.empty())
    return;
  self->request(st.status, std::chrono::seconds{60}, inputs_atom::value,
                std::move(tokens))
      .then(
          [=](std::vector<store::pending_task>& loaded) {
            auto& st = self->state;
            if (st.reads_failed > 0)
              log::info("inputs of recovered tasks read again",
                        {{"failed_tries", st.reads_failed}});
            st.reads_failed = 0;
            auto asked = std::move(st.reading);
            st.reading.clear();
            resume_read(self, std::move(asked), loaded);
            dispatch(self);
          },
          [=](caf::error& err) {
            // Back to the front, in their order; read again shortly.
            // Logged once (Redis away: every try fails until it is back).
            auto& st = self->state;
            if (st.reads_failed++ == 0)
              log::warn("inputs of recovered tasks not read: retrying every "
                        "2 s",
                        {{"error", describe(self->system(), err)},
                         {"tasks", waiting_in_redis(st)}});
            st.deferred_tasks.insert(
                st.deferred_tasks.begin(),
                std::make_move_iterator(st.reading.begin()),
                std::make_move_iterator(st.reading.end()));
            st.reading.clear();
            self->delayed_send(self, std::chrono::seconds{2},
                               inputs_atom::value);
          });
}

// Gives back the queue bytes held for a task that is not queued after all
// (not stored, given up on, following or copying a twin). Recovered tasks
// waiting in Redis for that room are read now: otherwise only a dispatch
// reads them, and none may come (no task running, and a backlog as large
// as the queue's capacity refuses every submission).
void release_bytes(self_ptr self, uint64_t size) {
  self->state.queued_bytes -= size;
  read_deferred_inputs(self);
}

// A task whose content key matches `original`'s: wait for the open original,
// or copy its finished result; run it normally if that result is gone.
void reuse(self_ptr self, const std::string& original, state_type::queued task,
           uint64_t size) {
  auto& st = self->state;
  if (st.open.count(original) != 0) {
    ++st.reused;
    release_bytes(self, size); // its input is not needed any more
    log::info("identical task: waiting for its twin",
              {{"token", task.record.token}, {"original", original}});
    st.followers[original].push_back(std::move(task.record));
    return;
  }
  auto token = task.record.token;
  st.cloning.insert(token);
  self->request(st.status, st.cfg.store_timeout, clone_atom::value, original,
                task.record, task.content)
      .then(
          [=](bool cloned) mutable {
            auto& st = self->state;
            st.cloning.erase(token);
            if (cloned) {
              counted_done(self, token);
              count_reused(self, task.record.input_bytes);
              release_bytes(self, size);
              // The copy is final too, and the index's entry now: the next
              // twin here is copied before its 202.
              st.by_content.put(task.content, token);
              log::info("identical task: result reused",
                        {{"token", token}, {"original", original}});
              return;
            }
            // The original's result expired: compute it again.
            enqueue(self, std::move(task));
          },
          [=](caf::error&) mutable {
            self->state.cloning.erase(token);
            enqueue(self, std::move(task));
          });
}

// A task of this node's own to run: the one its twins here follow.
void enqueue(self_ptr self, state_type::queued task) {
  auto& st = self->state;
  if (!task.content.empty())
    st.by_content.put(task.content, task.record.token);
  st.open.insert(task.record.token);
  enqueue_fair(self, std::move(task));
  dispatch(self);
}

// `task`'s twin `original` was accepted first elsewhere: wait (at most one
// task timeout, as one of the status actor's held lookups) for its final
// record; its SUCCESS is copied, anything else (failed, expired, late) and
// the task runs here.
void await_twin(self_ptr self, const std::string& original,
                state_type::queued task, uint64_t size) {
  auto& st = self->state;
  auto token = task.record.token;
  log::info("identical task: waiting for an earlier twin",
            {{"token", token}, {"original", original}});
  st.awaiting[token] = {std::move(task), size, original};
  auto sup = caf::actor_cast<caf::actor>(self);
  status_replier answer{[sup, token](outcome<task_record> rec) {
                          caf::anon_send(sup, twin_atom::value, token,
                                         rec && rec.value().status ==
                                                    task_status::success);
                        },
                        failure{error_code::internal_error, "no answer"}};
  self->send(st.status, status_atom::value, original,
             static_cast<int64_t>(st.cfg.task_timeout.count()),
             std::move(answer));
}

void on_twin_final(self_ptr self, const std::string& token, bool succeeded) {
  auto& st = self->state;
  auto i = st.awaiting.find(token);
  if (i == st.awaiting.end())
    return;
  auto w = std::move(i->second);
  st.awaiting.erase(i);
  if (succeeded) {
    reuse(self, w.original, std::move(w.task), w.size);
    return;
  }
  log::info("identical task: its earlier twin did not succeed in "
            "time, running it here",
            {{"token", token}, {"original", w.original}});
  enqueue(self, std::move(w.task));
}

// Queues a submission: its record and input are made durable in Redis
// before the 202, then it joins an identical task (open here, or accepted
// first elsewhere) or the queue.
void accept(self_ptr self, submit_request req, submit_replier reply) {
  auto& st = self->state;
  auto size = req.image.size();
  if (workers_available(self) == 0) {
    // Accepting would park the task until some worker joins, maybe never:
    // the client is better told to come back (or go to another node).
    reply(failure{error_code::no_workers,
                  fmt::format("no resize worker is available ({} nodes "
                              "known, none taking tasks): nothing was "
                              "accepted, try again",
                              st.nodes.size())});
    return;
  }
  // A client past its share is told so first: a free queue would not
  // take its task either.
  if (auto why = over_share(self, req); !why.empty()) {
    reply(failure{error_code::client_queue_full, std::move(why)});
    return;
  }
  // Recovered tasks still in Redis count: they are older, and go first.
  auto waiting = st.queue.size() + st.awaiting.size() + st.accepting +
                 waiting_in_redis(st);
  if (waiting >= st.cfg.queue_capacity) {
    reply(failure{error_code::queue_full,
                  fmt::format("queue is full ({} tasks waiting)", waiting)});
    return;
  }
  if (st.queued_bytes + size > st.cfg.queue_max_bytes) {
    reply(failure{error_code::queue_full,
                  fmt::format("queue is full ({} bytes waiting, limit {})",
                              st.queued_bytes, st.cfg.queue_max_bytes)});
    return;
  }
  state_type::queued task;
  task.record.token = make_token();
  task.record.options = req.options;
  task.record.input_bytes = size;
  task.record.submitted_at_ms = now_ms();
  task.record.policy = job_policy(st.cfg); // kept in Redis with the record
  task.decode_bytes = req.decode_bytes;
  task.job = caf::make_message(resize_job{task.record.token, req.options,
                                          std::move(req.image), req.header,
                                          *task.record.policy});
  // Reserve the queue slot now; the task enters the queue once Redis
  // holds it (record + input): a 202 is a promise that survives a crash.
  ++st.accepting;
  st.queued_bytes += size;
  count_client(self, task.record.token, req.client, size);
  auto request_id = req.request_id;
  auto client = req.client;
  auto header = req.header;
  auto content = std::move(req.content_key);
  self->request(st.status, st.cfg.store_timeout, accept_atom::value,
                task.record, task.job, content)
      .then(
          [=](bool stored, std::string& indexed) mutable {
            auto& st = self->state;
            --st.accepting;
            if (stored && reply.answered()) {
              // Stored after the client was answered without its token
              // (504 at http.reply-timeout-ms): nobody will poll it, and
              // the client may send it again. Undone like an accept given
              // up on (below).
              release_bytes(self, size);
              counted_done(self, task.record.token);
              forget(self, task.record.token, content);
              log::warn(
                  "accept undone: stored after its client's answer "
                  "went out (http.reply-timeout-ms)",
                  {{"token", task.record.token}, {"request_id", request_id}});
              return;
            }
            if (!stored) {
              release_bytes(self, size);
              counted_done(self, task.record.token);
              reply(failure{error_code::store_unavailable,
                            !indexed.empty()
                                ? std::move(indexed)
                                : "the task store (Redis) is unavailable: "
                                  "nothing was accepted, try again"});
              return;
            }
            if (log::enabled(log::level::info)) {
              // The input (its bytes, format and size as read from its
              // header), then what was asked of it. A side of 0 follows
              // the aspect ratio: left out, not "0".
              const auto& opt = task.record.options;
              std::vector<log::field> fs{
                  {"token", task.record.token},
                  {"request_id", request_id},
                  {"client", client},
                  {"input_bytes", size},
                  {"input_format", imaging::to_string(header.format)},
                  {"input_width", header.width},
                  {"input_height", header.height},
                  {"format", imaging::to_string(opt.format)}};
              if (opt.width > 0)
                fs.emplace_back("width", opt.width);
              if (opt.height > 0)
                fs.emplace_back("height", opt.height);
              fs.emplace_back("mode", imaging::to_string(opt.mode));
              fs.emplace_back("queued", st.queue.size() + 1);
              log::write(log::level::info, "task accepted", fs);
            }
            metrics::task_accepted(size);
            reply(task.record.token);
            task.content = content;
            if (!content.empty()) {
              if (auto* original = st.by_content.get(content)) {
                reuse(self, *original, std::move(task), size);
                return;
              }
              // Accepted first on another API node, or here before a
              // restart: Redis' content index, read by the accepting
              // transaction.
              if (!indexed.empty()) {
                await_twin(self, indexed, std::move(task), size);
                return;
              }
            }
            enqueue(self, std::move(task));
          },
          [=](caf::error& err) mutable {
            auto& st = self->state;
            --st.accepting;
            release_bytes(self, size);
            counted_done(self, task.record.token);
            // The status actor may still store it (a request that timed
            // out stays in its mailbox): the client hears "not accepted",
            // so it is undone then. Sent after the accept, it arrives
            // after it.
            forget(self, task.record.token, content);
            reply(failure{error_code::store_unavailable,
                          "the task store did not answer: " +
                              describe(self->system(), err)});
          });
}

// A submission whose identical twin has finished: its result is copied
// under the new token before the 202 (a final record, durable on its own),
// so the input is never stored and nothing is queued. If the copy fails (the
// result expired, Redis), the submission is accepted like any other.
void reuse_finished(self_ptr self, const std::string& original,
                    submit_request req, submit_replier reply) {
  auto& st = self->state;
  task_record rec;
  rec.token = make_token();
  rec.options = req.options;
  rec.input_bytes = req.image.size();
  rec.submitted_at_ms = now_ms();
  // Kept for the fallback without copying the image; lambdas must copy.
  auto held = std::make_shared<submit_request>(std::move(req));
  auto fallback = [=] {
    auto& st = self->state;
    if (st.draining) {
      reply(shutting_down());
      return;
    }
    // the twin's result is gone: this submission becomes the original
    st.by_content.erase(held->content_key);
    accept(self, std::move(*held), reply);
  };
  self->request(st.status, st.cfg.store_timeout, clone_atom::value, original,
                rec, held->content_key)
      .then(
          [=](bool cloned) {
            if (!cloned) {
              fallback();
              return;
            }
            metrics::task_accepted(rec.input_bytes);
            count_reused(self, rec.input_bytes);
            log::info("identical task: finished result reused",
                      {{"token", rec.token},
                       {"request_id", held->request_id},
                       {"original", original}});
            reply(rec.token);
          },
          [=](caf::error&) { fallback(); });
}

// The last line about the queue at a shutdown: the tasks still queued
// never started here; they are in this node's pending set in Redis and run
// at its next start, or on a live API node that adopts them first (once
// this node's lease is gone). Not said when the name was lost (the lease
// actor logged it): they are another instance's or an adopter's then.
void note_queued_left(self_ptr self) {
  auto& st = self->state;
  auto queued = st.queue.size() + waiting_in_redis(st);
  if (queued > 0 && !st.name_lost)
    log::info("queued tasks not started: they stay in redis and run at "
              "this node's next start, or on a live API node sharing "
              "its redis that adopts them",
              {{"queued", queued}});
}

cluster_view make_view(self_ptr self) {
  auto& st = self->state;
  cluster_view view;
  view.node = st.cfg.node;
  view.role = st.cfg.role;
  view.build = st.cfg.build;
  view.queue_depth =
      st.queue.size() + st.awaiting.size() + waiting_in_redis(st);
  view.queued_bytes = st.queued_bytes;
  view.clients = st.clients.size();
  view.succeeded = st.succeeded;
  view.failed = st.failed;
  view.retried = st.retried;
  view.reused = st.reused;
  view.up_since_ms = st.up_since_ms;
  view.draining = st.draining;
  for (auto& [name, node] : st.nodes) {
    // This node's own pool leaves with it: it starts nothing while draining.
    bool leaving = node.leaving || (node.role == "local" && st.draining);
    view.nodes.push_back(cluster_node_view{
        name, node.role, node.info.address, node.info.build,
        node.info.pool_size, node.busy, node.done, node.failed, node.since_ms,
        leaving ? "leaving" : "ready"});
  }
  return view;
}

} // namespace

caf::behavior supervisor(supervisor_actor_type* self, supervisor_config cfg,
                         caf::actor status, caf::actor local_agent,
                         size_t local_pool_size) {
  auto& st = self->state;
  st.cfg = std::move(cfg);
  st.status = std::move(status);
  st.up_since_ms = now_ms();
  // Stopped (after the drain at SIGTERM, or on any exit): the last lines
  // say how many queued tasks wait for the next start.
  self->set_exit_handler([=](caf::exit_msg& msg) {
    if (!msg.reason)
      return;
    if (!self->state.abandoned) // said already
      note_queued_left(self);
    self->quit(std::move(msg.reason));
  });
  self->set_down_handler(
      [=](caf::down_msg& msg) { on_node_down(self, msg.source, msg.reason); });
  if (local_agent)
    add_node(self, std::move(local_agent),
             node_info{st.cfg.node, "local",
                       static_cast<uint32_t>(local_pool_size), st.cfg.build},
             "local");
  if (st.cfg.recover_at_start)
    self->send(self, recover_atom::value);
  return {
      [=](recover_atom) {
        self->request(self->state.status, std::chrono::seconds{60},
                      recover_atom::value)
            .then(
                [=](std::vector<store::pending_task>& pending) {
                  recover(self, pending);
                },
                [=](caf::error& err) {
                  log::error("recovering pending tasks failed",
                             {{"error", describe(self->system(), err)},
                              {"retry_s", 2}});
                  self->delayed_send(self, std::chrono::seconds{2},
                                     recover_atom::value);
                });
      },
      [=](inputs_atom) {
        // Reading recovered tasks' inputs failed a moment ago: again.
        dispatch(self);
      },
      [=](adopt_atom, const std::string& from,
          std::vector<store::pending_task>& pending) {
        // Queued like recovered ones; while draining they stay queued, in
        // this node's pending set, for whoever adopts or restarts it next.
        recover(self, pending, from);
      },
      [=](restore_atom) {
        // The lease actor found this node's lease gone but not adopted:
        // Redis may have restarted empty or been flushed, taking the
        // records, inputs and pending set of the tasks open here. Each is
        // written again where missing, so that a crash of this node from
        // now on leaves them to a restart or a peer's adoption, not open
        // for a day. Followers of an identical task gave up their input:
        // they are written with their original's, the same bytes.
        auto& st = self->state;
        caf::message none;
        auto job_of_token =
            [&](const std::string& token) -> const caf::message& {
          if (auto r = st.running.find(token); r != st.running.end())
            return r->second.task.job;
          if (auto a = st.awaiting.find(token); a != st.awaiting.end())
            return a->second.task.job;
          for (const auto& task : st.queue)
            if (task.record.token == token)
              return task.job;
          return none; // record and membership only: a recovery fails it
        };
        size_t count = 0;
        auto restore = [&](const task_record& rec, const caf::message& job) {
          self->send(st.status, restore_atom::value, rec, job);
          ++count;
        };
        for (const auto& task : st.queue)
          restore(task.record, task.job);
        for (const auto& [token, flight] : st.running)
          restore(flight.task.record, flight.task.job);
        for (const auto& [token, waiting] : st.awaiting)
          restore(waiting.task.record, waiting.task.job);
        for (const auto& [original, list] : st.followers)
          for (const auto& rec : list)
            restore(rec, job_of_token(original));
        // Recovered tasks whose inputs are still only in Redis: the record
        // and membership where missing (their reading fails them if their
        // inputs went too).
        for (const auto& d : st.deferred_tasks)
          restore(d.record, none);
        for (const auto& d : st.reading)
          restore(d.record, none);
        log::warn("writing this node's open tasks to redis again (its lease "
                  "was gone: redis may have lost them)",
                  {{"node", st.cfg.node}, {"tasks", count}});
      },
      [=](drain_atom) -> size_t {
        auto& st = self->state;
        if (!st.draining)
          log::info("draining: no new tasks",
                    {{"in_flight", st.running.size()},
                     {"queued", st.queue.size() + waiting_in_redis(st)}});
        st.draining = true;
        return st.running.size() + st.accepting;
      },
      [=](abandon_atom, bool name_lost) {
        // Past the grace, or the name lost: main exits without waiting for
        // these tasks (it cannot interrupt libvips) and without stopping
        // this actor.
        auto& st = self->state;
        st.name_lost = name_lost;
        st.draining = true;
        st.abandoned = true;
        std::vector<std::string> tokens;
        for (auto& [token, task] : st.running)
          tokens.push_back(token);
        std::sort(tokens.begin(), tokens.end());
        note_queued_left(self);
        return tokens;
      },
      [=](submit_atom, submit_request& req, submit_replier& reply) {
        auto& st = self->state;
        if (st.draining) {
          reply(shutting_down());
          return;
        }
        if (!req.content_key.empty())
          if (auto* original = st.by_content.get(req.content_key);
              original != nullptr && st.open.count(*original) == 0) {
            reuse_finished(self, *original, std::move(req), std::move(reply));
            return;
          }
        accept(self, std::move(req), std::move(reply));
      },
      [=](hello_atom, uint32_t protocol,
          std::string& build) -> caf::response_promise {
        // (Before the promise, which takes the request's sender over.)
        auto sender = caf::actor_cast<caf::actor>(self->current_sender());
        auto promise = self->make_response_promise();
        const auto& st = self->state;
        if (protocol != cluster_protocol) {
          refuse_protocol(self, sender, protocol, std::move(build), promise);
          return promise;
        }
        // (The cluster port's guard keeps its limits on the connection
        // until the worker has joined: a hello proves nothing.)
        promise.deliver(hello_atom::value, st.cfg.build);
        return promise;
      },
      [=](join_atom, caf::actor& agent,
          node_info& info) -> caf::response_promise {
        auto promise = self->make_response_promise();
        if (!agent || info.name.empty() || info.pool_size == 0) {
          promise.deliver(caf::make_error(caf::sec::invalid_argument));
          return promise;
        }
        auto& st = self->state;
        if (info.heartbeat_ms > 0 &&
            std::chrono::milliseconds{info.heartbeat_ms} >=
                st.cfg.connection_timeout) {
          refuse_heartbeat(self, info, promise);
          return promise;
        }
        if (info.connection_timeout_ms > 0 &&
            std::chrono::milliseconds{info.connection_timeout_ms} <=
                st.cfg.heartbeat) {
          refuse_own_heartbeat(self, info, promise);
          return promise;
        }
        if (auto i = st.nodes.find(info.name); i != st.nodes.end()) {
          if (i->second.agent != agent) {
            refuse_name(self, i->first, i->second, agent, info, promise);
            return promise;
          }
          // The same worker joins again: its link lost this node and
          // connected anew, maybe before this node saw the old connection
          // go (CAF then routes to the worker over the new one and never
          // reports the old one down). The answers of what ran there went
          // with the old connection: those tasks run again now, not when
          // the backstop expires.
          if (i->second.busy > 0)
            drop_node(self, info.name,
                      "joined again: its connection to this node was lost");
        }
        // The connection is a node's now: the cluster port's guard lets it
        // carry results, before the worker hears it is in.
        auto agent_handle = agent;
        add_node(self, std::move(agent), std::move(info), "worker");
        peer_endpoint(self, agent_handle,
                      [=](std::string host, uint16_t port) mutable {
                        if (port != 0 && self->state.cfg.on_joined)
                          self->state.cfg.on_joined(host, port);
                        promise.deliver(welcome_atom::value);
                      });
        return promise;
      },
      [=](leave_atom, const caf::actor& agent) -> uint64_t {
        auto& st = self->state;
        for (auto& [name, node] : st.nodes) {
          if (node.agent != agent)
            continue;
          if (!node.leaving)
            log::info("node leaving: no new tasks, waiting for "
                      "its tasks",
                      {{"node", name}, {"in_flight", node.busy}});
          node.leaving = true;
          return node.busy;
        }
        return 0;
      },
      [=](cluster_atom, cluster_replier& reply) { reply(make_view(self)); },
      [=](twin_atom, const std::string& token, bool succeeded) {
        on_twin_final(self, token, succeeded);
      },
      [=](started_atom, const std::string& token) { on_started(self, token); },
      [=](unsaturate_atom, const std::string& name) {
        if (auto i = self->state.nodes.find(name); i != self->state.nodes.end())
          i->second.saturated = false;
        dispatch(self);
      },
  };
}

caf::behavior cluster_gateway(caf::event_based_actor* self,
                              caf::actor supervisor) {
  // Gone with the supervisor: workers monitor this actor for the API node.
  self->link_to(supervisor);
  // Forwarded with their sender and request: the supervisor answers the
  // worker itself (and sees which connection asked).
  return {
      [=](hello_atom, uint32_t protocol, std::string& build) {
        return self->delegate(supervisor, hello_atom::value, protocol,
                              std::move(build));
      },
      [=](join_atom, caf::actor& agent, node_info& info) {
        return self->delegate(supervisor, join_atom::value, std::move(agent),
                              std::move(info));
      },
      [=](leave_atom, caf::actor& agent) {
        return self->delegate(supervisor, leave_atom::value, std::move(agent));
      },
  };
}

} // namespace resized::actors
