// What main sets for src/cluster_guard.cpp: limits on connections to an API
// node's cluster port that have not said hello (actors/messages.hpp).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

namespace resized {

/// Guards connections accepted on `port` (this process's BASP port): at
/// most `max_pending` of them may wait for their peer's hello; more are
/// shut down as soon as accepted, and one whose peer has not said hello
/// after `deadline` is shut down then (CAF sees the end of the stream and
/// closes it). CAF 0.17 keeps a connection that never finishes BASP's
/// handshake for as long as the peer keeps it open; enough of them would
/// use up the process's file descriptors, and RESTinio 0.6 stops accepting
/// HTTP for good once an accept fails for that.
void guard_cluster_port(uint16_t port, std::chrono::milliseconds deadline,
                        size_t max_pending);

/// The peer at `host`:`port` (numeric, as CAF's middleman reports a BASP
/// connection's remote end) said hello: its connection is a node's.
void note_cluster_hello(const std::string& host, uint16_t port);

} // namespace resized
