#include "actors/actor_backend.hpp"

#include <caf/send.hpp>

#include "actors/messages.hpp"

namespace resized::actors {

void actor_backend::submit(submit_request req, submit_replier reply) {
  caf::anon_send(supervisor_, submit_atom::value, std::move(req),
                 std::move(reply));
}

void actor_backend::status(std::string token, std::chrono::milliseconds wait,
                           status_replier reply) {
  caf::anon_send(status_, status_atom::value, std::move(token),
                 static_cast<int64_t>(wait.count()), std::move(reply));
}

void actor_backend::image(std::string token, image_replier reply) {
  caf::anon_send(status_, image_atom::value, std::move(token),
                 std::move(reply));
}

void actor_backend::cluster(cluster_replier reply) {
  caf::anon_send(supervisor_, cluster_atom::value, std::move(reply));
}

void actor_backend::ping_store(ping_replier reply) {
  caf::anon_send(status_, ping_atom::value, std::move(reply));
}

} // namespace resized::actors
