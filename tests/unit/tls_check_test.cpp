// TLS files of the cluster port (CAF's openssl.* keys), checked at start-up
// by config::tls_problems against real PEM files made by
// tests/support/make_test_certs.sh: each mistake an operator can make gets
// one message naming the key, and a good set passes for both roles.

#include <boost/test/unit_test.hpp>

#include <string>
#include <vector>

#include "config/tls_check.hpp"
#include "support/fixtures.hpp"

using resized::config::tls_files;
using resized::config::tls_problems;
using resized::test::test_certs_dir;

namespace {

std::string cert(const std::string& name) {
  return test_certs_dir() + "/" + name;
}

/// The node's certificate, key and the CA: a set that works.
tls_files good() {
  return {cert("node.pem"), cert("node.key"), "", cert("ca.pem"), ""};
}

/// The only problem reported for `tls` as `role`, "" if none (a failed
/// check if there are several).
std::string problem(const tls_files& tls, const std::string& role = "api") {
  auto all = tls_problems(tls, role);
  BOOST_TEST(all.size() <= 1u);
  return all.empty() ? "" : all.front();
}

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

} // namespace

BOOST_AUTO_TEST_CASE(off_when_no_key_is_set) {
  BOOST_TEST(tls_problems(tls_files{}, "api").empty());
  BOOST_TEST(!tls_files{}.on());
}

BOOST_AUTO_TEST_CASE(a_good_set_passes_for_both_roles) {
  BOOST_TEST(tls_problems(good(), "api").empty());
  BOOST_TEST(tls_problems(good(), "worker").empty());
  auto encrypted = good();
  encrypted.key = cert("node-encrypted.key");
  encrypted.passphrase = "test-passphrase";
  BOOST_TEST(tls_problems(encrypted, "worker").empty());
}

BOOST_AUTO_TEST_CASE(every_missing_piece_is_named) {
  tls_files only_cert;
  only_cert.certificate = cert("node.pem");
  auto all = tls_problems(only_cert, "api");
  BOOST_TEST_REQUIRE(all.size() == 2u);
  BOOST_TEST(has(all[0], "openssl.key is not set"));
  BOOST_TEST(has(all[1], "neither openssl.cafile nor openssl.capath"));
  tls_files only_ca;
  only_ca.cafile = cert("ca.pem");
  all = tls_problems(only_ca, "worker");
  BOOST_TEST_REQUIRE(all.size() == 2u);
  BOOST_TEST(has(all[0], "openssl.certificate is not set"));
  BOOST_TEST(has(all[1], "openssl.key is not set"));
}

BOOST_AUTO_TEST_CASE(files_that_cannot_be_read) {
  auto tls = good();
  tls.cafile = test_certs_dir() + "/missing.pem";
  auto p = problem(tls);
  BOOST_TEST(has(p, "openssl.cafile = '" + tls.cafile +
                        "': cannot read it (No such file or directory)"),
             p);
  tls = good();
  tls.certificate = test_certs_dir();
  p = problem(tls);
  BOOST_TEST(has(p, "openssl.certificate = '" + tls.certificate +
                        "': cannot read it (is a directory)"),
             p);
  tls = good();
  tls.cafile.clear();
  tls.capath = cert("ca.pem");
  p = problem(tls);
  BOOST_TEST(has(p, "openssl.capath = '" + tls.capath + "' is not a directory"),
             p);
}

BOOST_AUTO_TEST_CASE(files_of_the_wrong_kind) {
  auto tls = good();
  tls.certificate = cert("node.key");
  auto p = problem(tls);
  BOOST_TEST(has(p, "openssl.certificate = '" + tls.certificate +
                        "' holds no usable PEM certificate"),
             p);
  tls = good();
  tls.key = cert("node.pem");
  p = problem(tls);
  BOOST_TEST(
      has(p, "openssl.key = '" + tls.key + "' holds no usable PEM private key"),
      p);
  tls = good();
  tls.cafile = cert("node.key");
  p = problem(tls);
  BOOST_TEST(has(p, "openssl.cafile = '" + tls.cafile +
                        "' holds no usable PEM CA certificate"),
             p);
}

BOOST_AUTO_TEST_CASE(a_key_of_another_certificate) {
  auto tls = good();
  tls.key = cert("rogue.key");
  auto p = problem(tls);
  BOOST_TEST(p == "openssl.key = '" + tls.key +
                      "' is not the key of the certificate in "
                      "openssl.certificate = '" +
                      tls.certificate + "'");
}

BOOST_AUTO_TEST_CASE(an_encrypted_key_needs_its_passphrase) {
  auto tls = good();
  tls.key = cert("node-encrypted.key");
  auto p = problem(tls);
  BOOST_TEST(p == "openssl.key = '" + tls.key +
                      "' is encrypted: set "
                      "openssl.passphrase");
  tls.passphrase = "not-the-passphrase";
  p = problem(tls);
  BOOST_TEST(has(p, "openssl.key = '" + tls.key +
                        "' cannot be decrypted with openssl.passphrase"),
             p);
}

BOOST_AUTO_TEST_CASE(a_certificate_the_peers_would_refuse) {
  // Signed by another CA than the one the nodes trust.
  auto tls = good();
  tls.certificate = cert("rogue.pem");
  tls.key = cert("rogue.key");
  auto p = problem(tls);
  BOOST_TEST(has(p, "openssl.certificate = '" + tls.certificate +
                        "' does not verify against openssl.cafile = '" +
                        tls.cafile +
                        "' (unable to get local issuer "
                        "certificate): the other nodes"),
             p);
  // For servers only: an API node may use it, a worker (a TLS client) not.
  tls = good();
  tls.certificate = cert("server-only.pem");
  tls.key = cert("server-only.key");
  BOOST_TEST(problem(tls, "api") == "");
  p = problem(tls, "worker");
  BOOST_TEST(has(p, "(unsuitable certificate purpose)"), p);
}

BOOST_AUTO_TEST_CASE(pinned_files_are_copies_kept_in_memory) {
  auto tls = good();
  auto pinned = tls;
  std::string error;
  BOOST_TEST_REQUIRE(resized::config::pin_tls_files(pinned, error), error);
  for (auto [original, copy] :
       {std::pair{tls.certificate, pinned.certificate},
        std::pair{tls.key, pinned.key}, std::pair{tls.cafile, pinned.cafile}}) {
    BOOST_TEST(copy.rfind("/proc/self/fd/", 0) == 0u, copy);
    BOOST_TEST(
        (resized::test::read_file(copy) == resized::test::read_file(original)));
  }
  BOOST_TEST(tls_problems(pinned, "api").empty());
  pinned = tls;
  pinned.key = test_certs_dir() + "/missing.key";
  BOOST_TEST(!resized::config::pin_tls_files(pinned, error));
  BOOST_TEST(has(error, "openssl.key = '" + pinned.key + "': cannot read it"),
             error);
}
