#include "config/tls_check.hpp"

#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>

#include <sys/mman.h>
#include <unistd.h>

#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

namespace resized::config {

namespace {

/// OpenSSL's queued errors as "reason; reason" (the error queue is cleared).
std::string openssl_reasons() {
  std::string out;
  while (auto code = ERR_get_error()) {
    const char* reason = ERR_reason_error_string(code);
    std::string text = reason != nullptr ? reason : fmt::format("{:#x}", code);
    if (out.find(text) == std::string::npos)
      out += (out.empty() ? "" : "; ") + text;
  }
  return out.empty() ? "no reason given" : out;
}

/// "" when `path` opens for reading, else why not.
std::string unreadable(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    return "is a directory";
  std::ifstream in{path};
  if (!in)
    return std::strerror(errno);
  return {};
}

// The key's passphrase, handed to OpenSSL when it asks for one.
struct passphrase_state {
  const std::string* passphrase = nullptr;
  bool asked = false;
};

int passphrase_callback(char* buf, int size, int, void* user) {
  auto* st = static_cast<passphrase_state*>(user);
  st->asked = true;
  if (st->passphrase->empty() || size <= 0)
    return -1; // never OpenSSL's default: it would prompt on the terminal
  auto n = std::min(st->passphrase->size(), static_cast<size_t>(size));
  std::memcpy(buf, st->passphrase->data(), n);
  return static_cast<int>(n);
}

/// The keys of `tls` that name a file (capath names a directory), each
/// with a pointer to its path: const or not, as `tls` is.
template <class Files>
auto files_of(Files& tls) {
  return std::array{std::pair{"openssl.certificate", &tls.certificate},
                    std::pair{"openssl.key", &tls.key},
                    std::pair{"openssl.cafile", &tls.cafile}};
}

struct ctx_free {
  void operator()(SSL_CTX* p) const { SSL_CTX_free(p); }
};
struct store_ctx_free {
  void operator()(X509_STORE_CTX* p) const { X509_STORE_CTX_free(p); }
};

} // namespace

std::vector<std::string> tls_problems(const tls_files& tls,
                                      const std::string& role) {
  std::vector<std::string> out;
  if (!tls.on())
    return out;
  const char* needs = "TLS on the cluster port (on as soon as an openssl.* key "
                      "is set) needs openssl.certificate, openssl.key and "
                      "openssl.cafile or openssl.capath";
  if (tls.certificate.empty())
    out.push_back(fmt::format("openssl.certificate is not set: {}", needs));
  if (tls.key.empty())
    out.push_back(fmt::format("openssl.key is not set: {}", needs));
  if (tls.cafile.empty() && tls.capath.empty())
    out.push_back(fmt::format(
        "neither openssl.cafile nor openssl.capath is set: {} (the CA that "
        "signed the other nodes' certificates)",
        needs));
  if (!out.empty())
    return out;
  for (auto [key, path] : files_of(tls)) {
    if (path->empty())
      continue;
    if (auto why = unreadable(*path); !why.empty())
      out.push_back(
          fmt::format("{} = '{}': cannot read it ({})", key, *path, why));
  }
  std::error_code ec;
  if (!tls.capath.empty() && !std::filesystem::is_directory(tls.capath, ec))
    out.push_back(
        fmt::format("openssl.capath = '{}' is not a directory", tls.capath));
  if (!out.empty())
    return out;

  ERR_clear_error();
  std::unique_ptr<SSL_CTX, ctx_free> ctx{SSL_CTX_new(TLS_method())};
  if (!ctx) {
    out.push_back("OpenSSL cannot create a TLS context: " + openssl_reasons());
    return out;
  }
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), tls.certificate.c_str()) !=
      1) {
    out.push_back(fmt::format(
        "openssl.certificate = '{}' holds no usable PEM certificate ({})",
        tls.certificate, openssl_reasons()));
    return out;
  }
  passphrase_state pass{&tls.passphrase};
  SSL_CTX_set_default_passwd_cb(ctx.get(), passphrase_callback);
  SSL_CTX_set_default_passwd_cb_userdata(ctx.get(), &pass);
  if (SSL_CTX_use_PrivateKey_file(ctx.get(), tls.key.c_str(),
                                  SSL_FILETYPE_PEM) != 1) {
    bool mismatch =
        ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH;
    auto reasons = openssl_reasons();
    if (mismatch)
      out.push_back(fmt::format("openssl.key = '{}' is not the key of the "
                                "certificate in openssl.certificate = '{}'",
                                tls.key, tls.certificate));
    else if (pass.asked && tls.passphrase.empty())
      out.push_back(fmt::format("openssl.key = '{}' is encrypted: set "
                                "openssl.passphrase",
                                tls.key));
    else if (pass.asked)
      out.push_back(fmt::format("openssl.key = '{}' cannot be decrypted with "
                                "openssl.passphrase ({})",
                                tls.key, reasons));
    else
      out.push_back(fmt::format("openssl.key = '{}' holds no usable PEM "
                                "private key ({})",
                                tls.key, reasons));
    return out;
  }
  if (SSL_CTX_check_private_key(ctx.get()) != 1) {
    ERR_clear_error();
    out.push_back(fmt::format("openssl.key = '{}' is not the key of the "
                              "certificate in openssl.certificate = '{}'",
                              tls.key, tls.certificate));
    return out;
  }
  auto cafile = tls.cafile.empty() ? nullptr : tls.cafile.c_str();
  auto capath = tls.capath.empty() ? nullptr : tls.capath.c_str();
  if (SSL_CTX_load_verify_locations(ctx.get(), cafile, capath) != 1) {
    out.push_back(fmt::format(
        "{} = '{}' holds no usable PEM CA certificate ({})",
        cafile != nullptr ? "openssl.cafile" : "openssl.capath",
        cafile != nullptr ? tls.cafile : tls.capath, openssl_reasons()));
    return out;
  }
  // The peers verify this certificate against the same CA (every node is
  // given the same one), as a server's (api) or a client's (worker).
  X509* cert = SSL_CTX_get0_certificate(ctx.get());
  STACK_OF(X509)* chain = nullptr;
  SSL_CTX_get0_chain_certs(ctx.get(), &chain);
  std::unique_ptr<X509_STORE_CTX, store_ctx_free> verify{X509_STORE_CTX_new()};
  if (!verify ||
      X509_STORE_CTX_init(verify.get(), SSL_CTX_get_cert_store(ctx.get()), cert,
                          chain) != 1) {
    out.push_back("OpenSSL cannot verify certificates: " + openssl_reasons());
    return out;
  }
  X509_STORE_CTX_set_default(verify.get(),
                             role == "worker" ? "ssl_client" : "ssl_server");
  if (X509_verify_cert(verify.get()) != 1) {
    auto code = X509_STORE_CTX_get_error(verify.get());
    ERR_clear_error();
    out.push_back(fmt::format(
        "openssl.certificate = '{}' does not verify against {} = '{}' ({}): "
        "the other nodes, given the same CA, would refuse this one",
        tls.certificate,
        cafile != nullptr ? "openssl.cafile" : "openssl.capath",
        cafile != nullptr ? tls.cafile : tls.capath,
        X509_verify_cert_error_string(code)));
  }
  return out;
}

bool pin_tls_files(tls_files& tls, std::string& error) {
  for (auto [key, path] : files_of(tls)) {
    if (path->empty())
      continue;
    std::ifstream in{*path, std::ios::binary};
    std::string content{std::istreambuf_iterator<char>{in},
                        std::istreambuf_iterator<char>{}};
    if (!in && !in.eof()) {
      error = fmt::format("{} = '{}': cannot read it", key, *path);
      return false;
    }
    int fd = memfd_create(key, MFD_CLOEXEC);
    if (fd < 0) {
      error = fmt::format("{}: memfd_create: {}", key, std::strerror(errno));
      return false;
    }
    size_t done = 0;
    while (done < content.size()) {
      auto n = ::write(fd, content.data() + done, content.size() - done);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0) {
        error =
            fmt::format("{}: writing its copy: {}", key, std::strerror(errno));
        ::close(fd);
        return false;
      }
      done += static_cast<size_t>(n);
    }
    // Open for good: OpenSSL opens the /proc name anew for each connection.
    *path = fmt::format("/proc/self/fd/{}", fd);
  }
  return true;
}

} // namespace resized::config
