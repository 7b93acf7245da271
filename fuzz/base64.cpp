// Fuzzes http::base64_decode: any input either decodes or names an offset
// inside the input; what decodes never overflows the size bound, and
// re-encoding the output canonically decodes back to the same bytes.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_support.hpp"
#include "http/base64.hpp"

using namespace resized;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in{reinterpret_cast<const char*>(data), size};
  std::string out = "previous content";
  auto st = http::base64_decode(in, out);
  if (!st.ok) {
    fuzz::check(st.offset <= size, "error offset past the end of the input");
    fuzz::check(!st.reason.empty(), "error without a reason");
    return 0;
  }
  fuzz::check(out.size() <= http::base64_max_decoded(size),
              "decoded more than base64_max_decoded");
  fuzz::check(out.size() <= size / 4 * 3 + 2, "decoded more than 3/4 of input");
  // Round trip through the reference encoder.
  auto canonical = fuzz::base64_encode(out);
  std::string again;
  auto st2 = http::base64_decode(canonical, again);
  fuzz::check(st2.ok, "canonical base64 of a decoded value is rejected");
  fuzz::check(again == out, "canonical round trip changed the bytes");
  // Without padding, the same bytes.
  while (!canonical.empty() && canonical.back() == '=')
    canonical.pop_back();
  auto st3 = http::base64_decode(canonical, again);
  fuzz::check(st3.ok && again == out, "unpadded round trip differs");
  return 0;
}
