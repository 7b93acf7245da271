#include "actors/actor_backend.hpp"

#include <caf/send.hpp>

#include "actors/messages.hpp"

namespace resized::actors {

void actor_backend::submit(submit_request req, submit_replier reply) {
  caf::anon_send(supervisor_, submit_atom::value, std::move(req),
                 std::move(reply));
}

// What the status actor's cache holds as current (a final record, a result,
// a plain poll of a task this node runs) is answered here, on the io
// thread: the actor may be busy in a Redis call (see lookup_cache.hpp). The
// other plain polls and image fetches are read by the lookup reader, on a
// Redis connection of its own (lookup_reader.hpp): they hold nothing. A
// long poll of an open task reaches the status actor, which holds it until
// the task ends.
//
// Clients' lookups reach the status actor as urgent messages. It makes its
// Redis calls one at a time, and an accept carries the whole input (tens of
// milliseconds for a large photo, more when Redis writes an AOF), so
// lookups it could answer from its cache would otherwise wait behind every
// accept and write queued before them. CAF's mailbox takes urgent messages
// first in each round (twice the quantum of normal ones, so the writes are
// never starved). Lookups only read: their order against the writes does
// not matter (a client's 202 is sent after its accept was stored).
constexpr auto urgent = caf::message_priority::high;

void actor_backend::status(std::string token, std::chrono::milliseconds wait,
                           status_replier reply) {
  if (cache_)
    if (auto rec = cache_->current_record(token);
        rec && (wait.count() == 0 || is_final(rec->status))) {
      reply(std::move(*rec));
      return;
    }
  if (wait.count() == 0 && reader_) {
    caf::anon_send(reader_, status_atom::value, std::move(token), int64_t{0},
                   std::move(reply));
    return;
  }
  caf::anon_send<urgent>(status_, status_atom::value, std::move(token),
                         static_cast<int64_t>(wait.count()), std::move(reply));
}

void actor_backend::image(std::string token, image_replier reply) {
  if (cache_)
    if (auto blob = cache_->result(token)) {
      reply(std::move(*blob));
      return;
    }
  if (reader_) {
    caf::anon_send(reader_, image_atom::value, std::move(token),
                   std::move(reply));
    return;
  }
  caf::anon_send<urgent>(status_, image_atom::value, std::move(token),
                         std::move(reply));
}

void actor_backend::cluster(cluster_replier reply) {
  caf::anon_send(supervisor_, cluster_atom::value, std::move(reply));
}

void actor_backend::ping_store(ping_replier reply) {
  caf::anon_send<urgent>(status_, ping_atom::value, std::move(reply));
}

} // namespace resized::actors
