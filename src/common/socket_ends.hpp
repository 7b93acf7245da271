// Both ends of a connected socket, to name its peer in logs and to tell
// whether a descriptor still is the same connection: the watchdogs of
// src/openssl_calls.cpp and src/cluster_guard.cpp shut down sockets owned
// by CAF some time after they noted them, and a descriptor closed and
// reused meanwhile must be left alone.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <utility>

namespace resized {

struct socket_ends {
  sockaddr_storage peer{}, local{};
  socklen_t peer_len = 0, local_len = 0;
};

/// The ends of connected socket `fd`; false if it has none (closed, not
/// connected).
bool read_ends(int fd, socket_ends& out);

/// Whether `fd` still connects the same two ends (a client may use one
/// source port towards two of our ports, the HTTP one too).
bool same_ends(int fd, const socket_ends& ends);

/// The numeric host and port of `addr` (("", 0) if it has none).
std::pair<std::string, uint16_t> numeric_endpoint(const sockaddr_storage& addr,
                                                  socklen_t len);

/// "host:port", "[host]:port" for IPv6, or "unknown".
std::string address_text(const sockaddr_storage& addr, socklen_t len);

/// "host:port" for a configured host (a name or a literal), "[host]:port"
/// when it is an IPv6 literal (it has a ':'), as one would type it back.
std::string endpoint_text(const std::string& host, unsigned port);

} // namespace resized
