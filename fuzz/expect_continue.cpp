// Fuzzes http::continue_tracker (src/http/expect_continue.hpp), which reads
// every byte a client sends. The first input byte picks up to 7 cut points
// (the next bytes, scaled to the rest); the rest is the byte stream. Fed
// one byte at a time, the tracker marks the bytes at which an interim
// "100 Continue" is due; fed in the pieces between the cuts, a piece must be
// due exactly when it holds one of those bytes. Both trackers have the same
// limits (body, URL, header sizes and count, from the first byte too), the
// same API keys (set for every other limit: auth on or off) and must agree
// on which limit a request broke, or that it had no valid key. With a body
// limit each takes its bodies from an upload budget of its own, three
// quarters of that limit (a body between the two is refused busy): once
// the trackers end, their budgets must hold nothing.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
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
  auto budget = [&]() -> std::shared_ptr<resized::http::upload_budget> {
    if (limit == 0)
      return nullptr;
    return std::make_shared<resized::http::upload_budget>(limit * 3 / 4);
  };
  auto bytewise_budget = budget();
  auto pieces_budget = budget();
  std::vector<bool> due_at(n, false);
  auto bytewise_owner =
      std::make_unique<continue_tracker>(lim, api_keys, bytewise_budget);
  auto& bytewise = *bytewise_owner;
  for (size_t i = 0; i < n; ++i)
    due_at[i] = bytewise.feed(stream + i, 1);

  std::vector<size_t> cuts;
  for (size_t i = 0; i < ncuts; ++i)
    cuts.push_back(n == 0 ? 0 : data[1 + i] * n / 256);
  std::sort(cuts.begin(), cuts.end());
  cuts.push_back(n);
  auto pieces_owner =
      std::make_unique<continue_tracker>(lim, api_keys, pieces_budget);
  auto& pieces = *pieces_owner;
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
  // (A parse error is a refusal of its own, unparsable or unknown_method:
  // answered 400 or 501 where RESTinio would close unanswered.)
  auto parse_error = [](const continue_tracker& t) {
    return (t.refused() == refusal::none && t.stopped()) ||
           t.refused() == refusal::unparsable ||
           t.refused() == refusal::unknown_method;
  };
  if (pieces.refused() != bytewise.refused())
    resized::fuzz::check(parse_error(pieces) || parse_error(bytewise),
                         "the limit broken differs from byte-by-byte feeding");
  if (pieces.refused() == refusal::unauthorized &&
      bytewise.refused() == refusal::unauthorized)
    resized::fuzz::check(pieces.key_presented() == bytewise.key_presented(),
                         "whether a key was presented differs from "
                         "byte-by-byte feeding");
  if (bytewise_budget) {
    resized::fuzz::check(bytewise_budget->held() == bytewise.budget_held() &&
                             pieces_budget->held() == pieces.budget_held(),
                         "a budget holds other bytes than its tracker");
    bytewise_owner.reset();
    pieces_owner.reset();
    resized::fuzz::check(bytewise_budget->held() == 0 &&
                             pieces_budget->held() == 0,
                         "an ended tracker's body bytes were not given back");
  }
  return 0;
}
