#include "common/socket_ends.hpp"

#include <netdb.h>

#include <cstring>

#include <fmt/format.h>

namespace resized {

bool read_ends(int fd, socket_ends& out) {
  out.peer_len = sizeof(out.peer);
  out.local_len = sizeof(out.local);
  return fd >= 0 &&
         getpeername(fd, reinterpret_cast<sockaddr*>(&out.peer),
                     &out.peer_len) == 0 &&
         getsockname(fd, reinterpret_cast<sockaddr*>(&out.local),
                     &out.local_len) == 0;
}

bool same_ends(int fd, const socket_ends& ends) {
  socket_ends now;
  return read_ends(fd, now) && now.peer_len == ends.peer_len &&
         now.local_len == ends.local_len &&
         std::memcmp(&now.peer, &ends.peer, ends.peer_len) == 0 &&
         std::memcmp(&now.local, &ends.local, ends.local_len) == 0;
}

std::pair<std::string, uint16_t> numeric_endpoint(const sockaddr_storage& addr,
                                                  socklen_t len) {
  char host[NI_MAXHOST];
  char port[NI_MAXSERV];
  if (getnameinfo(reinterpret_cast<const sockaddr*>(&addr), len, host,
                  sizeof(host), port, sizeof(port),
                  NI_NUMERICHOST | NI_NUMERICSERV) != 0)
    return {"", 0};
  return {host, static_cast<uint16_t>(std::strtoul(port, nullptr, 10))};
}

std::string address_text(const sockaddr_storage& addr, socklen_t len) {
  auto [host, port] = numeric_endpoint(addr, len);
  if (host.empty())
    return "unknown";
  return endpoint_text(host, port);
}

std::string endpoint_text(const std::string& host, unsigned port) {
  return host.find(':') != std::string::npos && host.front() != '['
             ? fmt::format("[{}]:{}", host, port)
             : fmt::format("{}:{}", host, port);
}

} // namespace resized
