// Fuzzes the JSON submission decoder (simdjson DOM + base64) and the option
// resolution that follows it in the POST handler. Each input is decoded
// twice, from a buffer with simdjson's padding behind it (the server's path
// when the body string has spare capacity) and from an unpadded one (the
// decoder copies); both must give the same answer.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include <simdjson.h>

#include "fuzz_support.hpp"
#include "http/base64.hpp"
#include "http/request_decoding.hpp"

using namespace resized;

namespace {

bool is_request_error(error_code code) {
  switch (code) {
  case error_code::invalid_json:
  case error_code::missing_image_data:
  case error_code::invalid_base64:
  case error_code::invalid_option:
    return true;
  default:
    return false;
  }
}

void check_resolved(const imaging::resize_options& o,
                    const imaging::limits& lim) {
  fuzz::check(o.width >= 0 && o.width <= lim.max_dimension, "width range");
  fuzz::check(o.height >= 0 && o.height <= lim.max_dimension, "height range");
  fuzz::check(o.width > 0 || o.height > 0, "both sides 0");
  fuzz::check(o.quality >= 1 && o.quality <= 100, "quality range");
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Padded: a string whose capacity covers SIMDJSON_PADDING.
  std::string padded;
  padded.reserve(size + simdjson::SIMDJSON_PADDING);
  padded.assign(reinterpret_cast<const char*>(data), size);
  auto a = http::decode_json_submission(padded.data(), padded.size(),
                                        padded.capacity());
  // Unpadded: exactly `size` bytes, so the decoder must copy.
  auto b = http::decode_json_submission(reinterpret_cast<const char*>(data),
                                        size, size);
  fuzz::check(a.ok() == b.ok(), "padded and unpadded decoding disagree");
  if (!a) {
    fuzz::check(a.error().code == b.error().code,
                "padded and unpadded error codes differ");
    fuzz::check(is_request_error(a.error().code),
                "decoding failed with a non-request error code");
    fuzz::check(!a.error().message.empty(), "error without a message");
    return 0;
  }
  fuzz::check(a->image == b->image, "padded and unpadded images differ");
  fuzz::check(!a->image.empty(), "accepted an empty imageData");
  fuzz::check(a->image.size() <= http::base64_max_decoded(size),
              "image larger than the body allows");
  const auto& lim = fuzz::default_limits();
  for (auto can_write : {fuzz::can_write_no_avif, fuzz::can_write_all}) {
    auto opts = http::resolve_options(a->options, fuzz::default_options(), lim,
                                      can_write);
    if (opts)
      check_resolved(*opts, lim);
    else
      fuzz::check(opts.error().code == error_code::invalid_option,
                  "resolve_options failed with a code other than "
                  "invalid_option");
  }
  return 0;
}
