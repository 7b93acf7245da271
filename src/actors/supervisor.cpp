#include "actors/supervisor.hpp"

#include <random>

#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>
#include <caf/sec.hpp>

#include "actors/resize_actor.hpp"
#include "common/log.hpp"

namespace resized::actors {

std::string make_token() {
  thread_local std::mt19937_64 gen{std::random_device{}()};
  uint64_t hi = gen();
  uint64_t lo = gen();
  hi = (hi & 0xffffffffffff0fffull) | 0x0000000000004000ull; // version 4
  lo = (lo & 0x3fffffffffffffffull) | 0x8000000000000000ull; // variant 10
  return fmt::format("{:08x}-{:04x}-{:04x}-{:04x}-{:012x}", hi >> 32,
                     (hi >> 16) & 0xffff, hi & 0xffff, lo >> 48,
                     lo & 0xffffffffffffull);
}

namespace {

using self_ptr = supervisor_actor_type*;

void finish(self_ptr self, task_record& rec, failure err) {
  rec.status = task_status::failure;
  rec.error_code = std::string{to_string(err.code)};
  rec.error_message = std::move(err.message);
  rec.finished_at_ms = now_ms();
  ++self->state.failed;
  log::info("msg={} token={} status=FAILURE code={} reason={} total_ms={}",
            log::quote("task finished"), rec.token, rec.error_code,
            log::quote(rec.error_message),
            rec.finished_at_ms - rec.submitted_at_ms);
  self->send(self->state.status, update_atom::value, rec);
}

void on_done(self_ptr self, const caf::actor_addr& worker, resize_done& done) {
  auto i = self->state.workers.find(worker);
  if (i == self->state.workers.end() || i->second.finished)
    return; // late answer after a timeout: the task already ended
  i->second.finished = true;
  auto rec = i->second.record;
  if (!done.ok) {
    error_code code = error_code::internal_error;
    from_string(done.error_code, code);
    finish(self, rec, failure{code, std::move(done.error_message)});
    return;
  }
  rec.status = task_status::success;
  rec.width = done.width;
  rec.height = done.height;
  rec.output_bytes = done.output.size();
  rec.etag = std::move(done.etag);
  rec.finished_at_ms = now_ms();
  rec.node = done.node;
  ++self->state.succeeded;
  log::info("msg={} token={} status=SUCCESS width={} height={} bytes={} "
            "queue_ms={} decode_ms={:.1f} resize_ms={:.1f} encode_ms={:.1f} "
            "total_ms={}",
            log::quote("task finished"), rec.token, rec.width, rec.height,
            rec.output_bytes, rec.started_at_ms - rec.submitted_at_ms,
            done.decode_s * 1e3, done.resize_s * 1e3, done.encode_s * 1e3,
            rec.finished_at_ms - rec.submitted_at_ms);
  self->send(self->state.status, result_atom::value, std::move(rec),
             std::move(done.output));
}

void on_error(self_ptr self, const caf::actor& worker, const caf::error& err) {
  auto i = self->state.workers.find(worker.address());
  if (i == self->state.workers.end() || i->second.finished)
    return;
  i->second.finished = true;
  auto rec = i->second.record;
  if (err == caf::sec::request_timeout) {
    // libvips cannot be interrupted from here: stop the actor; its slot is
    // freed when its thread finally returns and the down message arrives.
    self->send_exit(worker, caf::exit_reason::kill);
    finish(self, rec,
           failure{error_code::processing_timeout,
                   fmt::format("processing took longer than {} ms",
                               self->state.cfg.task_timeout.count())});
    return;
  }
  finish(self, rec,
         failure{error_code::worker_lost,
                 "resize worker failed: " + self->system().render(err)});
}

void dispatch(self_ptr self) {
  auto& st = self->state;
  while (st.workers.size() < st.cfg.pool_size && !st.queue.empty()) {
    auto task = std::move(st.queue.front());
    st.queue.pop_front();
    st.queued_bytes -= task.image.size();
    auto worker = self->spawn<caf::detached + caf::monitored>(
      resize_actor, st.cfg.limits, st.cfg.node);
    task.record.status = task_status::in_progress;
    task.record.started_at_ms = now_ms();
    task.record.node = st.cfg.node;
    self->send(st.status, update_atom::value, task.record);
    resize_job job{task.record.token, task.record.options,
                   std::move(task.image)};
    st.workers.emplace(worker.address(),
                       supervisor_state::running{std::move(task.record)});
    self->request(worker, st.cfg.task_timeout, std::move(job))
      .then(
        [=](resize_done& done) { on_done(self, worker.address(), done); },
        [=](caf::error& err) { on_error(self, worker, err); });
  }
}

} // namespace

caf::behavior supervisor(supervisor_actor_type* self, supervisor_config cfg,
                         caf::actor status) {
  self->state.cfg = std::move(cfg);
  self->state.status = std::move(status);
  self->set_down_handler([=](caf::down_msg& msg) {
    auto& st = self->state;
    auto i = st.workers.find(msg.source);
    if (i == st.workers.end())
      return;
    if (!i->second.finished)
      finish(self, i->second.record,
             failure{error_code::worker_lost,
                     "resize worker ended without an answer: "
                       + self->system().render(msg.reason)});
    st.workers.erase(i);
    dispatch(self);
  });
  return {
    [=](submit_atom, submit_request& req, submit_replier& reply) {
      auto& st = self->state;
      auto size = req.image.size();
      if (st.queue.size() >= st.cfg.queue_capacity) {
        reply(failure{error_code::queue_full,
                      fmt::format("queue is full ({} tasks waiting)",
                                  st.queue.size())});
        return;
      }
      if (st.queued_bytes + size > st.cfg.queue_max_bytes) {
        reply(failure{error_code::queue_full,
                      fmt::format("queue is full ({} bytes waiting, limit {})",
                                  st.queued_bytes, st.cfg.queue_max_bytes)});
        return;
      }
      supervisor_state::queued task;
      task.record.token = make_token();
      task.record.options = req.options;
      task.record.input_bytes = size;
      task.record.submitted_at_ms = now_ms();
      task.image = std::move(req.image);
      // The status actor sees PENDING before the client sees the token, so
      // an immediate poll finds the task (mailboxes are FIFO per sender).
      self->send(st.status, update_atom::value, task.record);
      log::info("msg={} token={} request_id={} bytes={} format={} width={} "
                "height={} mode={} queued={}",
                log::quote("task accepted"), task.record.token,
                req.request_id, size, imaging::to_string(req.options.format),
                req.options.width, req.options.height,
                imaging::to_string(req.options.mode), st.queue.size() + 1);
      reply(task.record.token);
      st.queued_bytes += size;
      st.queue.push_back(std::move(task));
      dispatch(self);
    },
  };
}

} // namespace resized::actors
