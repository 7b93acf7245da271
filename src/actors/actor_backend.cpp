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
// thread: the actor may be busy in a Redis call (see lookup_cache.hpp). A
// long poll of an open task of this node goes to the status actor, which
// holds it. Everything else is read by the lookup reader, on a Redis
// connection of its own (lookup_reader.hpp), which hands the long polls of
// tasks still open on to the status actor. Lookups reach the status actor
// as urgent messages (lookup_priority, messages.hpp).
void actor_backend::status(std::string token, std::chrono::milliseconds wait,
                           status_replier reply) {
  if (cache_)
    if (auto rec = cache_->current_record(token)) {
      if (wait.count() == 0 || is_final(rec->status))
        reply(std::move(*rec));
      else
        caf::anon_send<lookup_priority>(
            status_, status_atom::value, std::move(token),
            static_cast<int64_t>(wait.count()), std::move(reply));
      return;
    }
  caf::anon_send<lookup_priority>(
      reader_ ? reader_ : status_, status_atom::value, std::move(token),
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
  caf::anon_send<lookup_priority>(status_, image_atom::value, std::move(token),
                                  std::move(reply));
}

void actor_backend::cluster(cluster_replier reply) {
  caf::anon_send(supervisor_, cluster_atom::value, std::move(reply));
}

void actor_backend::ping_store(ping_replier reply) {
  caf::anon_send<lookup_priority>(status_, ping_atom::value, std::move(reply));
}

} // namespace resized::actors
