#include "actors/messages.hpp"

#include <caf/actor_system.hpp>
#include <caf/exit_reason.hpp>
#include <caf/make_message.hpp>
#include <caf/message.hpp>
#include <caf/sec.hpp>
#include <fmt/format.h>

#include "common/socket_ends.hpp"

namespace resized::actors {

std::string to_string(cluster_error x) {
  switch (x) {
  case cluster_error::name_taken:
    return "name_taken";
  case cluster_error::name_leaving:
    return "name_leaving";
  case cluster_error::protocol_mismatch:
    return "protocol_mismatch";
  case cluster_error::heartbeat_too_slow:
    return "heartbeat_too_slow";
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

std::string describe(caf::actor_system& sys, const caf::error& err) {
  if (!err)
    return "no error";
  if (err.category() == cluster_error_category && err.context().size() == 1 &&
      err.context().match_elements<std::string>())
    return err.context().get_as<std::string>(0);
  if (err.category() == caf::atom("exit")) {
    switch (static_cast<caf::exit_reason>(err.code())) {
    case caf::exit_reason::user_shutdown:
      return "the node shut down";
    case caf::exit_reason::remote_link_unreachable:
      return "the connection to the node was lost";
    case caf::exit_reason::unreachable:
      return "the actor is unreachable";
    case caf::exit_reason::kill:
      return "the actor was killed";
    default:
      return sys.render(err);
    }
  }
  if (err.category() == caf::atom("system")) {
    const auto& ctx = err.context();
    switch (static_cast<caf::sec>(err.code())) {
    case caf::sec::cannot_connect_to_node:
      // the middleman's context: (what failed, host, port)
      if (ctx.size() == 3 &&
          ctx.match_elements<std::string, std::string, uint16_t>())
        return fmt::format(
            "cannot connect to {} (nothing listens there, "
            "or the host name does not resolve)",
            endpoint_text(ctx.get_as<std::string>(1), ctx.get_as<uint16_t>(2)));
      return "cannot connect";
    case caf::sec::disconnect_during_handshake:
      // One side speaks TLS (openssl.*) and the other not, or the address
      // is not a cluster port (an HTTP port closes on BASP's bytes).
      return "the peer closed the connection during the handshake (is that "
             "address an API node's cluster.port, not its HTTP port? is "
             "openssl.* set on both nodes, or on neither?)";
    case caf::sec::connection_timeout:
      // Connected, but no BASP handshake came back: something else listens.
      return "no cluster handshake in time (is that address an API node's "
             "cluster.port? something else answers there)";
    case caf::sec::request_timeout:
      return "no answer in time";
    case caf::sec::request_receiver_down:
      return "the receiver is gone";
    case caf::sec::unexpected_message:
      // A message the peer has no handler for: in a cluster, a peer of a
      // build from before the message existed.
      return "the peer did not understand the message (a different resized "
             "build?)";
    default:
      return sys.render(err);
    }
  }
  return sys.render(err);
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
