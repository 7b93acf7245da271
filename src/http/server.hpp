// The HTTP front: RESTinio routes that decode and validate requests, answer
// 4xx themselves, hand valid work to the `backend` and answer when it
// replies (from any thread). Handlers never block.
#pragma once

#include <memory>

#include "common/service.hpp"
#include "config/settings.hpp"

namespace resized::http {

class server {
public:
  server(const config::service_settings& cfg, backend& api);
  ~server();

  /// Binds and starts the io threads; throws std::exception on failure.
  void start();

  /// The node is shutting down (SIGTERM): every answer from now on says
  /// `Connection: close` and ends its connection, so that keep-alive
  /// clients open their next one elsewhere instead of finding it cut.
  void begin_shutdown();

  /// Stops accepting, closes connections and joins the io threads.
  void stop();

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace resized::http
