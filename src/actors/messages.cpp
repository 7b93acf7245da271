#include "actors/messages.hpp"

#include <caf/make_message.hpp>

namespace resized::actors {

std::string to_string(cluster_error x) {
  switch (x) {
  case cluster_error::name_taken:
    return "name_taken";
  }
  return "unknown";
}

caf::error make_error(cluster_error x, std::string what) {
  return caf::error{static_cast<uint8_t>(x), cluster_error_category,
                    caf::make_message(std::move(what))};
}

bool is_error(const caf::error& err, cluster_error x, std::string& what) {
  if (!err)
    return false;
  if (err.category() != cluster_error_category ||
      err.code() != static_cast<uint8_t>(x))
    return false;
  const auto& ctx = err.context();
  what = ctx.match_elements<std::string>() ? ctx.get_as<std::string>(0) : "";
  return true;
}

void announce_message_types(caf::actor_system_config& cfg) {
  cfg.add_message_type<resize_job>("resized::resize_job");
  cfg.add_message_type<resize_done>("resized::resize_done");
  cfg.add_message_type<task_record>("resized::task_record");
  cfg.add_message_type<node_info>("resized::node_info");
  // (CAF 0.17's add_error_category<T> does not compile: render by hand.)
  cfg.add_error_category(
      cluster_error_category,
      [](uint8_t code, caf::atom_value, const caf::message& ctx) {
        auto what = to_string(static_cast<cluster_error>(code));
        if (ctx.match_elements<std::string>())
          what += ": " + ctx.get_as<std::string>(0);
        return what;
      });
}

} // namespace resized::actors
