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

/// `tls` with certificate, key and cafile each replaced by a copy of its
/// content in memory, named "/proc/self/fd/<n>" (a memfd, open for the
/// life of the process; capath stays as it is, a directory). CAF's OpenSSL
/// module reads these files again for every connection, on its network
/// thread, and throws there (aborting the process) when one cannot be
/// read: a file removed or half-written at run time took the node down at
/// the next connection to its cluster port. The copies are what
/// tls_problems checked at start-up. False, with `error`, if a file cannot
/// be read or copied.
bool pin_tls_files(tls_files& tls, std::string& error);

} // namespace resized::config
