// What main sets for src/openssl_calls.cpp (the OpenSSL calls of CAF's
// OpenSSL module, defined in front of libssl's).
#pragma once

#include <chrono>

namespace resized {

/// A TLS handshake accepted on the cluster port that has not finished
/// after `deadline` is cut off (its socket shut down; CAF then closes it).
/// CAF 0.17 keeps a connection that never finishes its handshake for as
/// long as the peer keeps it open, each with its own TLS context in memory.
/// Zero (the default) = no deadline.
void set_tls_handshake_deadline(std::chrono::milliseconds deadline);

} // namespace resized
