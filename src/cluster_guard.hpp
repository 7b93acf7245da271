// What main sets for src/cluster_guard.cpp: limits on connections to an API
// node's cluster port whose peer has not joined as a worker (a hello
// proves nothing: the guard holds a connection until its join).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

namespace resized {

/// Guards connections accepted on `port` (this process's BASP port): at
/// most `max_pending` of them may wait for their peer's join; more are
/// shut down as soon as accepted, and one whose peer has not joined
/// after `deadline` is shut down then (CAF sees the end of the stream and
/// closes it). CAF 0.17 keeps a connection that never finishes BASP's
/// handshake for as long as the peer keeps it open; enough of them would
/// use up the process's file descriptors, and RESTinio 0.6 stops accepting
/// HTTP for good once an accept fails for that.
/// `plain`: the port speaks BASP without TLS, so the framing of what a
/// peer sends before it joined is checked too (see below); with TLS a peer
/// must first present a certificate from the cluster's CA.
void guard_cluster_port(uint16_t port, std::chrono::milliseconds deadline,
                        size_t max_pending, bool plain);

/// The peer at `host`:`port` (numeric, as CAF's middleman reports a BASP
/// connection's remote end) joined: its connection is a node's.
void note_cluster_join(const std::string& host, uint16_t port);

/// Until a connection on the guarded port has joined, a BASP message
/// on it may announce at most this many payload bytes (a peer's handshake
/// hello and join are a few hundred): CAF sizes its read buffer to the header's
/// payload_len before it reads the payload, so 32 bytes from anyone could
/// make it allocate 4 GiB. A bigger one shuts the connection down.
inline constexpr uint32_t max_payload_before_join = 64 * 1024;

/// Bounds every blocking connect(2) of this process (CAF's middleman's, a
/// worker joining its API nodes: it connects on a blocking socket, in the
/// one actor that serves every link) to `limit`: one API host that drops
/// packets would otherwise hold the others' connects (and a shutdown)
/// behind it for the kernel's whole SYN retry time, about two minutes.
void limit_blocking_connects(std::chrono::milliseconds limit);

} // namespace resized
