#include "actors/messages.hpp"

namespace resized::actors {

void announce_message_types(caf::actor_system_config& cfg) {
  cfg.add_message_type<resize_job>("resized::resize_job");
  cfg.add_message_type<resize_done>("resized::resize_done");
  cfg.add_message_type<task_record>("resized::task_record");
  cfg.add_message_type<node_info>("resized::node_info");
}

} // namespace resized::actors
