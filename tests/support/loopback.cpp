#include "support/loopback.hpp"

#include <arpa/inet.h>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

namespace resized::test {

socket_guard::~socket_guard() {
  if (fd >= 0)
    ::close(fd);
}

int connect_loopback(uint16_t port, const std::string& source) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  if (!source.empty()) {
    sockaddr_in local{};
    local.sin_family = AF_INET;
    if (::inet_pton(AF_INET, source.c_str(), &local.sin_addr) != 1 ||
        ::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof(local)) != 0) {
      ::close(fd);
      return -1;
    }
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

int listen_loopback(int backlog, uint16_t& port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(fd, backlog) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    return -1;
  }
  port = ntohs(addr.sin_port);
  return fd;
}

bool send_all(int fd, const std::string& bytes, std::string& error) {
  size_t sent = 0;
  while (sent < bytes.size()) {
    auto n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      error = std::string{"send: "} + std::strerror(errno);
      return false;
    }
    sent += static_cast<size_t>(n);
  }
  return true;
}

whole_request_result send_whole_request(uint16_t port,
                                        const std::string& request) {
  whole_request_result r;
  socket_guard sock{connect_loopback(port)};
  if (sock.fd < 0) {
    r.send_error = std::string{"connect: "} + std::strerror(errno);
    return r;
  }
  send_all(sock.fd, request, r.send_error);
  char buf[16384];
  for (;;) {
    auto n = ::recv(sock.fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      r.recv_error = std::string{"recv: "} + std::strerror(errno);
    if (n <= 0)
      return r;
    r.answer.append(buf, static_cast<size_t>(n));
  }
}

http_response parse_http_answer(const std::string& raw) {
  http_response r;
  if (raw.rfind("HTTP/1.", 0) != 0 || raw.size() < 12)
    return r;
  r.status = std::strtol(raw.c_str() + 9, nullptr, 10);
  auto end = raw.find("\r\n\r\n");
  if (end == std::string::npos)
    return r;
  r.body = raw.substr(end + 4);
  for (auto at = raw.find("\r\n") + 2; at < end;) {
    auto eol = raw.find("\r\n", at);
    auto line = raw.substr(at, eol - at);
    auto colon = line.find(':');
    if (colon != std::string::npos) {
      auto name = line.substr(0, colon);
      for (auto& c : name)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      auto value = line.substr(colon + 1);
      value.erase(0, value.find_first_not_of(' '));
      r.headers[name] = value;
    }
    at = eol + 2;
  }
  return r;
}

} // namespace resized::test
