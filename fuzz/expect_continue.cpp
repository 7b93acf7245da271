// Fuzzes http::continue_tracker (src/http/expect_continue.hpp), which reads
// every byte a client sends. The first input byte picks up to 7 cut points
// (the next bytes, scaled to the rest); the rest is the byte stream. Fed
// one byte at a time, the tracker marks the bytes at which an interim
// "100 Continue" is due; fed in the pieces between the cuts, a piece must be
// due exactly when it holds one of those bytes. Both trackers have the same
// limits (body, URL, header sizes and count, from the first byte too), the
// same API keys (set for every other limit: auth on or off) and must agree
// on which limit a request broke, or that it had no valid key.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_support.hpp"
#include "http/expect_continue.hpp"

using resized::http::continue_tracker;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0)
    return 0;
  size_t ncuts = data[0] % 8;
  if (size < 1 + ncuts)
    return 0;
  const char* stream = reinterpret_cast<const char*>(data + 1 + ncuts);
  size_t n = size - 1 - ncuts;

  // No limits, or a body limit of 512 bytes .. 15.5 KiB and the others
  // scaled from it (URL 32-992, names 8-248, values 16-496, 3-33 fields).
  uint64_t limit = static_cast<uint64_t>(data[0] >> 3) << 9;
  resized::http::request_limits lim{};
  if (limit > 0)
    lim = {limit, limit / 16, limit / 64, limit / 32, limit / 512 + 2};
  static const std::vector<std::string> keys{"fuzz-key-0123456789",
                                             "other-key-0123456789"};
  const auto* api_keys = (data[0] >> 3) % 2 == 1 ? &keys : nullptr;
  std::vector<bool> due_at(n, false);
  continue_tracker bytewise{lim, api_keys};
  for (size_t i = 0; i < n; ++i)
    due_at[i] = bytewise.feed(stream + i, 1);

  std::vector<size_t> cuts;
  for (size_t i = 0; i < ncuts; ++i)
    cuts.push_back(n == 0 ? 0 : data[1 + i] * n / 256);
  std::sort(cuts.begin(), cuts.end());
  cuts.push_back(n);
  continue_tracker pieces{lim, api_keys};
  size_t from = 0;
  for (size_t cut : cuts) {
    if (cut < from)
      continue;
    bool due = pieces.feed(stream + from, cut - from);
    bool expected = false;
    for (size_t i = from; i < cut; ++i)
      expected = expected || due_at[i];
    resized::fuzz::check(due == expected,
                         "a piece's answer differs from byte-by-byte feeding");
    from = cut;
  }
  // http_parser hands over a header's bytes at the end of each piece, so a
  // request that is both too long and malformed can break the limit fed
  // byte by byte and fail to parse first fed at once (RESTinio, reading in
  // pieces too, closes such a connection either way). Otherwise the same.
  using refusal = continue_tracker::refusal;
  if (pieces.refused() != bytewise.refused())
    resized::fuzz::check(
        (pieces.refused() == refusal::none && pieces.stopped()) ||
            (bytewise.refused() == refusal::none && bytewise.stopped()),
        "the limit broken differs from byte-by-byte feeding");
  if (pieces.refused() == refusal::unauthorized &&
      bytewise.refused() == refusal::unauthorized)
    resized::fuzz::check(pieces.key_presented() == bytewise.key_presented(),
                         "whether a key was presented differs from "
                         "byte-by-byte feeding");
  return 0;
}
