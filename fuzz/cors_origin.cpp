// Fuzzes the CORS origin checks (common/cors.hpp): the whole input as a
// configured origin and as a request's Origin against a fixed list. What
// allowed_origin returns is written into a response header as it is.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/cors.hpp"
#include "fuzz_support.hpp"

using namespace resized;

namespace {

const cors_policy& listed() {
  static const cors_policy p = [] {
    cors_policy out;
    for (auto* text : {"https://app.example.com", "http://localhost:3000",
                       "http://[::1]:8080", "http://127.0.0.1"})
      out.origins.push_back(*normalize_origin(text));
    return out;
  }();
  return p;
}

bool header_safe(std::string_view v) {
  return std::none_of(v.begin(), v.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in{reinterpret_cast<const char*>(data), size};
  if (auto o = normalize_origin(in)) {
    fuzz::check(o->rfind("http://", 0) == 0 || o->rfind("https://", 0) == 0,
                "an origin of another scheme");
    fuzz::check(o->find('/', o->find("//") + 2) == std::string::npos,
                "an origin with a path");
    fuzz::check(header_safe(*o) && o->find(' ') == std::string::npos,
                "an origin with blanks or control characters");
    fuzz::check(std::none_of(o->begin(), o->end(),
                             [](char c) { return c >= 'A' && c <= 'Z'; }),
                "an origin not lowercased");
    auto again = normalize_origin(*o);
    fuzz::check(again && *again == *o, "normalizing twice changes it");
  }
  if (auto allow = allowed_origin(listed(), in)) {
    fuzz::check(header_safe(*allow), "control characters echoed in a header");
    auto o = normalize_origin(in);
    fuzz::check(o && std::find(listed().origins.begin(), listed().origins.end(),
                               *o) != listed().origins.end(),
                "an origin allowed that is not listed");
  }
  cors_policy any;
  any.any = true;
  auto star = allowed_origin(any, in);
  fuzz::check(star && *star == "*", "\"*\" does not allow every origin");
  fuzz::check(!allowed_origin(cors_policy{}, in), "no policy allowed one");
  return 0;
}
