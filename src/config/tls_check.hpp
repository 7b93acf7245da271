// Checks the TLS files of the cluster port (CAF's openssl.* keys) before
// CAF uses them.
//
// CAF 0.17's OpenSSL module reads these files only when a connection opens,
// on its network thread: a missing file, a key that does not match the
// certificate, or a certificate the peers cannot verify then throws there
// (the process aborts) or fails each handshake with nothing logged. Checked
// here with OpenSSL at start-up, each becomes one message naming the key.
#pragma once

#include <string>
#include <vector>

#include "config/settings.hpp"

namespace resized::config {

/// Problems with `tls` for a node of `role` ("api" accepts connections,
/// "worker" opens them); empty when TLS is off (no key set) or when the
/// certificate, its key and the CA load and the certificate verifies
/// against that CA for its side of the handshake, as its peers will check.
std::vector<std::string> tls_problems(const tls_files& tls,
                                      const std::string& role);

} // namespace resized::config
