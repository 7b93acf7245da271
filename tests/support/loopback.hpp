// Plain blocking sockets on 127.0.0.1 for tests that must control exactly
// what goes over the wire (libcurl would decide for them).
#pragma once

#include <cstdint>
#include <string>

#include "support/http_client.hpp"

namespace resized::test {

/// Closes a socket descriptor on scope exit.
struct socket_guard {
  int fd;
  ~socket_guard();
  socket_guard(const socket_guard&) = delete;
  socket_guard& operator=(const socket_guard&) = delete;
};

/// Connects to 127.0.0.1:port with 5 s send/receive timeouts; -1 on failure.
/// `source`: the local address to connect from (any of 127.0.0.0/8 on
/// Linux, so that a test can be several clients); empty: the kernel's.
int connect_loopback(uint16_t port, const std::string& source = {});

/// A socket listening on 127.0.0.1, on a port the kernel picks (set in
/// `port`), with `backlog`; -1 on failure.
int listen_loopback(int backlog, uint16_t& port);

/// Sends all of `bytes`; on failure returns false with `error` set.
bool send_all(int fd, const std::string& bytes, std::string& error);

/// What a client that writes its whole request before reading saw.
struct whole_request_result {
  std::string send_error; // empty: every byte was sent
  std::string answer;     // everything read until the server closed
  std::string recv_error; // empty: the server closed cleanly (EOF)
};

/// Connects, writes all of `request`, then reads until the server closes
/// the connection (or 5 s pass without a byte: `recv_error`).
whole_request_result send_whole_request(uint16_t port,
                                        const std::string& request);

/// The status, headers and body of one raw HTTP/1.1 answer ("HTTP/1.1 413 ...",
/// headers, blank line, body); status 0 if there is no status line.
http_response parse_http_answer(const std::string& raw);

} // namespace resized::test
