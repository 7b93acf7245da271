// cluster_peer: a stranger on an API node's plain cluster port, for the e2e
// cluster tests (a CAF node of its own: another process, another node id).
//
//   cluster_peer <port> [--hello] drain
//       asks the published actor to drain; prints "drain answered <n>" or
//       "drain refused: <error>"
//   cluster_peer <port> [--hello] oversized
//       then writes, on the same BASP connection, a header announcing a
//       1 GiB payload; prints "header sent" and keeps the connection until
//       the API node closes it ("closed after <ms> ms") or 10 s pass
//       ("still open")
//
// --hello first says hello as a worker of this build's cluster protocol
// would (prints "hello answered <build>"), without joining.
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include "actors/messages.hpp"

using namespace resized::actors;

namespace {

// The connection CAF's middleman opened to `port` (this process has one).
int connection_to(uint16_t port) {
  int found = -1;
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr)
    return -1;
  while (auto* entry = readdir(dir)) {
    int fd = std::atoi(entry->d_name);
    sockaddr_in peer{};
    socklen_t len = sizeof peer;
    if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) == 0 &&
        peer.sin_family == AF_INET && ntohs(peer.sin_port) == port)
      found = fd;
  }
  closedir(dir);
  return found;
}

// Whether the other end closed `fd` within `limit` (MSG_PEEK: CAF's
// multiplexer reads the same socket; an end of stream shows to both).
bool closed_within(int fd, std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    char byte;
    ssize_t n = ::recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    // (EBADF: this process's middleman saw the end first and closed it)
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
      return true;
    pollfd p{fd, POLLRDHUP, 0};
    if (::poll(&p, 1, 50) > 0 &&
        (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)))
      return true;
  }
  return false;
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: cluster_peer <port> [--hello] "
                         "drain|oversized\n");
    return 2;
  }
  auto port = static_cast<uint16_t>(std::atoi(argv[1]));
  bool hello = std::string{argv[2]} == "--hello";
  std::string what = argv[hello ? 3 : 2];
  caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  announce_message_types(cfg);
  cfg.set("logger.verbosity", caf::atom("quiet"));
  caf::actor_system sys{cfg};
  auto api = sys.middleman().remote_actor("127.0.0.1", port);
  if (!api) {
    std::printf("connect failed: %s\n", sys.render(api.error()).c_str());
    return 1;
  }
  caf::scoped_actor self{sys};
  if (hello) {
    bool answered = false;
    self->request(*api, std::chrono::seconds{5}, hello_atom::value,
                  cluster_protocol, std::string{"0.0.0 (cluster_peer)"})
        .receive(
            [&](hello_atom, const std::string& build) {
              std::printf("hello answered %s\n", build.c_str());
              answered = true;
            },
            [&](caf::error& err) {
              std::printf("hello refused: %s\n", sys.render(err).c_str());
            });
    if (!answered)
      return 1;
  }
  if (what == "drain") {
    self->request(*api, std::chrono::seconds{5}, drain_atom::value)
        .receive([&](size_t n) { std::printf("drain answered %zu\n", n); },
                 [&](caf::error& err) {
                   std::printf("drain refused: %s\n", sys.render(err).c_str());
                 });
  } else if (what == "oversized") {
    int fd = connection_to(port);
    if (fd < 0) {
      std::printf("no connection found\n");
      return 1;
    }
    // BASP: a 32-byte header: operation, 3 bytes padding, payload_len,
    // operation data, source and destination actor ids (big-endian). A
    // direct message from actor 1 to actor 1, which CAF takes as valid and
    // sizes its read buffer for.
    unsigned char header[32] = {};
    header[0] = 0x02; // direct_message
    header[4] = 0x40; // payload_len: 1 GiB
    header[23] = 1;   // source actor
    header[31] = 1;   // destination actor
    if (::send(fd, header, sizeof header, MSG_NOSIGNAL) != 32) {
      std::printf("send failed\n");
      return 1;
    }
    std::printf("header sent\n");
    std::fflush(stdout);
    auto t0 = std::chrono::steady_clock::now();
    if (closed_within(fd, std::chrono::seconds{10}))
      std::printf("closed after %lld ms\n",
                  static_cast<long long>(
                      std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::steady_clock::now() - t0)
                          .count()));
    else
      std::printf("still open\n");
  } else {
    std::fprintf(stderr, "cluster_peer: unknown action %s\n", what.c_str());
    return 2;
  }
  std::fflush(stdout);
  // The actor system would wait for the middleman's connection: leave now.
  std::_Exit(0);
}
