#include "common/content_key.hpp"

#include <openssl/evp.h>

#include <fmt/format.h>

namespace resized {

std::string content_key(std::string_view input,
                        const imaging::resize_options& opts,
                        const imaging::limits& lim) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(input.data(), input.size(), digest, &len, EVP_sha256(), nullptr);
  std::string out;
  out.reserve(2 * len + 64);
  for (unsigned i = 0; i < len; ++i)
    fmt::format_to(std::back_inserter(out), "{:02x}", digest[i]);
  fmt::format_to(std::back_inserter(out), ":{}x{}:{}:{}:{}:r{}:d{}:{}",
                 opts.width, opts.height, imaging::to_string(opts.mode),
                 imaging::to_string(opts.format), opts.quality,
                 imaging::output_revision, lim.max_dimension,
                 lim.fail_on_truncated ? "fail" : "serve");
  return out;
}

} // namespace resized
