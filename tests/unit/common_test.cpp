// Small shared pieces: error codes and their HTTP status, task records and
// timestamps, ETags, the replier, the LRU cache, tokens and logfmt quoting.

#include <boost/test/unit_test.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <memory>
#include <ostream>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "actors/lru_cache.hpp"
#include "actors/supervisor.hpp"
#include "common/content_key.hpp"
#include "common/error_code.hpp"
#include "common/etag.hpp"
#include "common/log.hpp"
#include "common/memory.hpp"
#include "common/service.hpp"
#include "common/socket_ends.hpp"
#include "common/task_record.hpp"
#include "http/request_decoding.hpp"
#include "support/printing.hpp"
#include "support/process.hpp"

using namespace resized;

namespace {

constexpr auto last_code = error_code::method_not_implemented;

std::vector<error_code> all_codes() {
  std::vector<error_code> out;
  for (int i = 0; i <= static_cast<int>(last_code); ++i)
    out.push_back(static_cast<error_code>(i));
  return out;
}

bool is_snake_case(std::string_view s) {
  if (s.empty() || s.front() < 'a' || s.front() > 'z' || s.back() == '_')
    return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
      return false;
  return s.find("__") == std::string_view::npos;
}

using cache = actors::lru_cache<std::string, int>;

bool has(cache& c, const std::string& key) {
  return c.get(key) != nullptr;
}

} // namespace

BOOST_AUTO_TEST_SUITE(common)

// -- error codes
// ----------------------------------------------------------------

BOOST_AUTO_TEST_CASE(error_codes_round_trip) {
  std::set<std::string> names;
  for (auto code : all_codes()) {
    auto name = std::string{to_string(code)};
    BOOST_TEST_CONTEXT("code #" << static_cast<int>(code) << " = " << name) {
      BOOST_TEST(is_snake_case(name));
      // The fallback of an unlisted code is internal_error: every code must
      // have its own entry.
      if (code != error_code::internal_error)
        BOOST_TEST(name != "internal_error");
      error_code parsed = error_code::none;
      BOOST_TEST(from_string(name, parsed));
      BOOST_TEST(parsed == code);
      names.insert(name);
    }
  }
  BOOST_TEST(names.size() == all_codes().size()); // unique
  error_code untouched = error_code::queue_full;
  BOOST_TEST(!from_string("no_such_code", untouched));
  BOOST_TEST(!from_string("INVALID_BASE64", untouched));
  BOOST_TEST(!from_string("", untouched));
  BOOST_TEST(untouched == error_code::queue_full);
}

BOOST_AUTO_TEST_CASE(error_code_names_are_stable) {
  // Clients match on these: never rename one.
  BOOST_TEST(to_string(error_code::invalid_json) == "invalid_json");
  BOOST_TEST(to_string(error_code::missing_image_data) == "missing_image_data");
  BOOST_TEST(to_string(error_code::invalid_base64) == "invalid_base64");
  BOOST_TEST(to_string(error_code::invalid_option) == "invalid_option");
  BOOST_TEST(to_string(error_code::unknown_token) == "unknown_token");
  BOOST_TEST(to_string(error_code::unsupported_media_type) ==
             "unsupported_media_type");
  BOOST_TEST(to_string(error_code::queue_full) == "queue_full");
}

BOOST_AUTO_TEST_CASE(error_codes_http_status) {
  // API.md's table of answers.
  const std::pair<error_code, int> expected[] = {
      {error_code::invalid_json, 400},
      {error_code::missing_image_data, 400},
      {error_code::invalid_base64, 400},
      {error_code::invalid_option, 400},
      {error_code::invalid_token, 400},
      {error_code::unauthorized, 401},
      {error_code::not_found, 404},
      {error_code::unknown_token, 404},
      {error_code::method_not_allowed, 405},
      {error_code::payload_too_large, 413},
      {error_code::image_too_large, 413},
      {error_code::uri_too_long, 414},
      {error_code::unsupported_media_type, 415},
      {error_code::unsupported_format, 415},
      {error_code::headers_too_large, 431},
      {error_code::queue_full, 503},
      {error_code::no_workers, 503},
      {error_code::store_unavailable, 503},
      {error_code::shutting_down, 503},
      {error_code::timeout, 504},
      {error_code::internal_error, 500},
      {error_code::client_queue_full, 503},
      {error_code::origin_not_allowed, 403},
      {error_code::too_many_connections, 503},
      {error_code::malformed_request, 400},
      {error_code::request_timeout, 408},
      {error_code::too_many_uploads, 503},
      {error_code::method_not_implemented, 501},
  };
  for (auto [code, status] : expected)
    BOOST_TEST_CONTEXT(to_string(code)) {
      BOOST_TEST(http_status(code) == status);
    }
  for (auto code : all_codes())
    if (code != error_code::none)
      BOOST_TEST_CONTEXT(to_string(code)) {
        BOOST_TEST(http_status(code) >= 400);
        BOOST_TEST(http_status(code) < 600);
      }
}

// -- task records
// -----------------------------------------------------------------

BOOST_AUTO_TEST_CASE(task_status_round_trip) {
  const std::pair<task_status, const char*> names[] = {
      {task_status::pending, "PENDING"},
      {task_status::in_progress, "IN_PROGRESS"},
      {task_status::success, "SUCCESS"},
      {task_status::failure, "FAILURE"},
  };
  for (auto [status, name] : names) {
    BOOST_TEST(to_string(status) == name);
    task_status parsed = task_status::pending;
    BOOST_TEST(parse(name, parsed));
    BOOST_TEST(parsed == status);
  }
  task_status untouched = task_status::success;
  BOOST_TEST(!parse("pending", untouched));
  BOOST_TEST(!parse("DONE", untouched));
  BOOST_TEST(!parse("", untouched));
  BOOST_TEST(untouched == task_status::success);
  BOOST_TEST(!is_final(task_status::pending));
  BOOST_TEST(!is_final(task_status::in_progress));
  BOOST_TEST(is_final(task_status::success));
  BOOST_TEST(is_final(task_status::failure));
}

BOOST_AUTO_TEST_CASE(timestamps) {
  BOOST_TEST(format_timestamp(0) == "1970-01-01T00:00:00.000Z");
  BOOST_TEST(format_timestamp(1) == "1970-01-01T00:00:00.001Z");
  BOOST_TEST(format_timestamp(1795930801123) == "2026-11-29T05:40:01.123Z");
  BOOST_TEST(format_timestamp(951868799999) == "2000-02-29T23:59:59.999Z");
  BOOST_TEST(format_timestamp(951868800000) == "2000-03-01T00:00:00.000Z");
  auto now = now_ms();
  BOOST_TEST(now > 1'600'000'000'000); // after 2020
  BOOST_TEST(now < 4'000'000'000'000); // before 2096
  BOOST_TEST(format_timestamp(now).size() == 24u);
}

// -- ETags
// ------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(etags) {
  // 64-bit FNV-1a test vectors, then the length in hex.
  BOOST_TEST(strong_etag("") == "cbf29ce484222325-0");
  BOOST_TEST(strong_etag("a") == "af63dc4c8601ec8c-1");
  std::string big(1000, 'x');
  BOOST_TEST(strong_etag(big) == strong_etag(std::string(1000, 'x')));
  BOOST_TEST(strong_etag(big) != strong_etag(std::string(1001, 'x')));
  BOOST_TEST(strong_etag("abc") != strong_etag("abd"));
  BOOST_TEST(strong_etag("abc") != strong_etag("acb"));
  BOOST_TEST(strong_etag(std::string_view{"\0", 1}) != strong_etag(""));
  // Usable inside quotes in a header: no quotes, spaces or commas.
  for (char c : strong_etag(big))
    BOOST_TEST(((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || c == '-'));
}

// -- replier
// ----------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(replier_answers_once) {
  std::vector<int> got;
  {
    replier<int> r{[&](int x) { got.push_back(x); }, -1};
    BOOST_TEST(!r.answered());
    r(1);
    BOOST_TEST(r.answered());
    r(2); // ignored
  }       // dropped after the answer: no fallback
  BOOST_TEST(got == std::vector<int>{1});
}

BOOST_AUTO_TEST_CASE(replier_fallback_when_dropped) {
  std::vector<int> got;
  {
    replier<int> r{[&](int x) { got.push_back(x); }, -1};
    auto copy = r;
    std::vector<replier<int>> more(3, r);
    BOOST_TEST(got.empty());
    more.clear();
    BOOST_TEST(got.empty());
    { auto moved = std::move(copy); }
    BOOST_TEST(got.empty()); // r still alive
  }
  BOOST_TEST(got == std::vector<int>{-1});
}

BOOST_AUTO_TEST_CASE(replier_copies_share_state) {
  std::vector<int> got;
  replier<int> a{[&](int x) { got.push_back(x); }, -1};
  auto b = a;
  b(7);
  BOOST_TEST(a.answered());
  a(8);
  b(9);
  BOOST_TEST(got == std::vector<int>{7});
}

BOOST_AUTO_TEST_CASE(replier_default_constructed_is_inert) {
  replier<int> r;
  BOOST_TEST(r.answered());
  r(1); // no handler, no crash
}

BOOST_AUTO_TEST_CASE(replier_releases_captures_after_answer) {
  auto handle = std::make_shared<int>(0);
  std::weak_ptr<int> watch = handle;
  replier<int> r{[h = std::move(handle)](int x) { *h = x; }, -1};
  BOOST_TEST(!watch.expired());
  r(5);
  BOOST_TEST(watch.expired()); // e.g. a RESTinio request handle
}

BOOST_AUTO_TEST_CASE(replier_concurrent_answers_deliver_once) {
  std::atomic<int> calls{0};
  std::atomic<int> value{0};
  {
    replier<int> r{[&](int x) {
                     ++calls;
                     value = x;
                   },
                   -1};
    std::vector<std::thread> threads;
    for (int i = 1; i <= 8; ++i)
      threads.emplace_back([r, i] { r(i); }); // each thread owns a copy
    for (auto& t : threads)
      t.join();
  }
  BOOST_TEST(calls.load() == 1);
  BOOST_TEST(value.load() >= 1);
  BOOST_TEST(value.load() <= 8);
}

BOOST_AUTO_TEST_CASE(replier_with_outcome) {
  std::string token;
  error_code code = error_code::none;
  {
    submit_replier r{[&](outcome<std::string> res) {
                       if (res)
                         token = res.value();
                       else
                         code = res.error().code;
                     },
                     failure{error_code::internal_error, "dropped"}};
  }
  BOOST_TEST(token.empty());
  BOOST_TEST(code == error_code::internal_error);
}

// -- LRU cache
// --------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(lru_entry_bound_evicts_oldest) {
  cache c{3};
  c.put("a", 1);
  c.put("b", 2);
  c.put("c", 3);
  BOOST_TEST(c.size() == 3u);
  BOOST_TEST(c.evictions() == 0u);
  c.put("d", 4);
  BOOST_TEST(c.size() == 3u);
  BOOST_TEST(c.evictions() == 1u);
  BOOST_TEST(!has(c, "a"));
  BOOST_TEST(*c.get("b") == 2);
  BOOST_TEST(*c.get("c") == 3);
  BOOST_TEST(*c.get("d") == 4);
  // Now b is the oldest.
  c.put("e", 5);
  BOOST_TEST(!has(c, "b"));
  BOOST_TEST(c.evictions() == 2u);
}

BOOST_AUTO_TEST_CASE(lru_get_refreshes_recency) {
  cache c{3};
  c.put("a", 1);
  c.put("b", 2);
  c.put("c", 3);
  BOOST_TEST(c.get("a") != nullptr);
  c.put("d", 4);
  BOOST_TEST(!has(c, "b"));
  BOOST_TEST(has(c, "a"));
  // A miss does not change anything.
  BOOST_TEST(c.get("zz") == nullptr);
  BOOST_TEST(c.size() == 3u);
  // Values are mutable through get.
  *c.get("a") = 10;
  BOOST_TEST(*c.get("a") == 10);
}

BOOST_AUTO_TEST_CASE(lru_put_replaces_and_refreshes) {
  cache c{3, 100};
  c.put("a", 1, 10);
  c.put("b", 2, 10);
  c.put("c", 3, 10);
  c.put("a", 11, 30); // replaced, now most recent
  BOOST_TEST(c.size() == 3u);
  BOOST_TEST(c.weight() == 50u);
  BOOST_TEST(*c.get("a") == 11);
  c.put("d", 4, 0);
  BOOST_TEST(!has(c, "b"));
  BOOST_TEST(c.weight() == 40u);
}

BOOST_AUTO_TEST_CASE(lru_weight_bound) {
  cache c{10, 100};
  c.put("a", 1, 40);
  c.put("b", 2, 40);
  BOOST_TEST(c.weight() == 80u);
  c.put("c", 3, 40); // 120 > 100: a goes
  BOOST_TEST(c.weight() == 80u);
  BOOST_TEST(!has(c, "a"));
  BOOST_TEST(has(c, "b"));
  BOOST_TEST(has(c, "c"));
  c.put("d", 4, 100); // exactly the bound: everything else goes
  BOOST_TEST(c.size() == 1u);
  BOOST_TEST(c.weight() == 100u);
  BOOST_TEST(has(c, "d"));
  BOOST_TEST(c.evictions() == 3u);
}

BOOST_AUTO_TEST_CASE(lru_oversize_entry_not_stored) {
  cache c{10, 100};
  c.put("a", 1, 50);
  c.put("huge", 2, 101);
  BOOST_TEST(!has(c, "huge"));
  BOOST_TEST(has(c, "a")); // nothing evicted for it
  BOOST_TEST(c.weight() == 50u);
  BOOST_TEST(c.evictions() == 0u);
  // Replacing an entry with an oversize value drops the old one too.
  c.put("a", 3, 500);
  BOOST_TEST(!has(c, "a"));
  BOOST_TEST(c.size() == 0u);
  BOOST_TEST(c.weight() == 0u);
}

BOOST_AUTO_TEST_CASE(lru_zero_entries_stores_nothing) {
  cache c{0};
  c.put("a", 1);
  BOOST_TEST(c.size() == 0u);
  BOOST_TEST(!has(c, "a"));
}

BOOST_AUTO_TEST_CASE(lru_erase) {
  cache c{3, 100};
  c.put("a", 1, 10);
  c.put("b", 2, 20);
  c.erase("a");
  BOOST_TEST(c.size() == 1u);
  BOOST_TEST(c.weight() == 20u);
  BOOST_TEST(!has(c, "a"));
  c.erase("a"); // absent: no-op
  c.erase("zz");
  BOOST_TEST(c.size() == 1u);
  BOOST_TEST(c.evictions() == 0u);
  c.put("a", 3, 10);
  BOOST_TEST(*c.get("a") == 3);
}

BOOST_AUTO_TEST_CASE(lru_move_keeps_working) {
  cache c{3, 100};
  c.put("a", 1, 10);
  c.put("b", 2, 10);
  c.put("c", 3, 10);
  cache moved{std::move(c)};
  BOOST_TEST(moved.size() == 3u);
  BOOST_TEST(moved.weight() == 30u);
  BOOST_TEST(*moved.get("a") == 1); // index iterators still valid
  moved.put("d", 4, 10);            // evicts b (a was refreshed)
  BOOST_TEST(!has(moved, "b"));
  moved.erase("c");
  BOOST_TEST(moved.size() == 2u);
  cache assigned{1};
  assigned.put("x", 9);
  assigned = std::move(moved);
  BOOST_TEST(assigned.size() == 2u);
  BOOST_TEST(!has(assigned, "x"));
  BOOST_TEST(*assigned.get("d") == 4);
  assigned.put("e", 5, 10);
  assigned.put("f", 6, 10); // bound is 3 entries again
  BOOST_TEST(assigned.size() == 3u);
  BOOST_TEST(assigned.weight() == 30u);
}

// -- tokens
// -----------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(tokens_are_random_v4_uuids) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    auto token = actors::make_token();
    BOOST_TEST_CONTEXT("token " << token) {
      BOOST_REQUIRE(http::is_uuid(token));
      BOOST_TEST(token == http::normalize_token(token)); // lower-case
      BOOST_TEST(token[14] == '4');                      // version
      BOOST_TEST(std::string{"89ab"}.find(token[19]) != std::string::npos);
    }
    seen.insert(token);
  }
  BOOST_TEST(seen.size() == 1000u);
}

// No state in the process decides the next token: a forked copy of this
// process makes other tokens than it does. (A seeded PRNG, as tokens once
// came from, goes on identically in both, and its state can be recovered
// from the tokens a client is given.)
BOOST_AUTO_TEST_CASE(tokens_come_from_no_state_of_the_process) {
  actors::make_token(); // whatever state there is, set up before the fork
  int pipe_fds[2];
  BOOST_TEST_REQUIRE(::pipe(pipe_fds) == 0);
  pid_t child = ::fork();
  BOOST_TEST_REQUIRE(child >= 0);
  if (child == 0) {
    auto token = actors::make_token();
    auto wrote = ::write(pipe_fds[1], token.data(), token.size());
    ::_exit(wrote == static_cast<ssize_t>(token.size()) ? 0 : 1);
  }
  auto mine = actors::make_token();
  ::close(pipe_fds[1]);
  std::string theirs(36, '\0');
  auto got = ::read(pipe_fds[0], theirs.data(), theirs.size());
  ::close(pipe_fds[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  BOOST_TEST_REQUIRE(got == 36);
  BOOST_TEST(http::is_uuid(theirs));
  BOOST_TEST(mine != theirs);
}

// -- logging
// ----------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(log_quote) {
  BOOST_TEST(log::quote("plain") == "plain");
  BOOST_TEST(log::quote("a-b_c.d/e:f") == "a-b_c.d/e:f");
  BOOST_TEST(log::quote("") == R"("")");
  BOOST_TEST(log::quote("task done") == R"("task done")");
  BOOST_TEST(log::quote("a=b") == R"("a=b")");
  BOOST_TEST(log::quote(R"(say "hi")") == R"("say \"hi\"")");
  BOOST_TEST(log::quote(R"(a\b)") == R"("a\\b")");
  BOOST_TEST(log::quote("line1\nline2") == R"("line1 line2")");
  // Other control characters are escaped: a client's CR or escape sequence
  // cannot fake a line or drive the terminal.
  BOOST_TEST(log::quote("a\rb") == R"("a\x0db")");
  BOOST_TEST(log::quote("\x1b[2Jx") == R"("\x1b[2Jx")");
  BOOST_TEST(log::quote("a\tb") == R"("a\tb")");
  BOOST_TEST(log::quote(std::string{"a\0b", 3}) == R"("a\x00b")");
  BOOST_TEST(log::quote("del\x7f") == R"("del\x7f")");
  // Code points that break or reorder a line in log tools and viewers,
  // though no ASCII control character: NEL, C1 controls, the line and
  // paragraph separators, direction overrides and isolates.
  BOOST_TEST(log::quote("a\u2028level=error") == R"("a\u2028level=error")");
  BOOST_TEST(log::quote("a\u2029b") == R"("a\u2029b")");
  BOOST_TEST(log::quote("a\xc2\x85"
                        "b") == R"("a\u0085b")");
  BOOST_TEST(log::quote("\xc2\x9b"
                        "2J") == R"("\u009b2J")");
  BOOST_TEST(log::quote("file\u202egpj.exe") == R"("file\u202egpj.exe")");
  BOOST_TEST(log::quote("\u2066x\u2069\u200f") == R"("\u2066x\u2069\u200f")");
  // Other text outside ASCII stays as it is, and plain.
  BOOST_TEST(log::quote("caf\u00e9") == "caf\u00e9");
  BOOST_TEST(log::quote("a\u2014b\u00a0c") == "a\u2014b\u00a0c");
  BOOST_TEST(log::quote("\u2030\u2065") == "\u2030\u2065");
}

BOOST_AUTO_TEST_CASE(log_levels) {
  const char* names[] = {"trace", "debug", "info", "warn", "error", "off"};
  for (int i = 0; i < 6; ++i) {
    log::level lvl = log::level::info;
    BOOST_TEST(log::parse(names[i], lvl));
    BOOST_TEST(static_cast<int>(lvl) == i);
  }
  log::level lvl = log::level::info;
  BOOST_TEST(!log::parse("loud", lvl));
  BOOST_TEST(!log::parse("INFO", lvl));
  auto before = log::threshold();
  log::set_threshold(log::level::warn);
  BOOST_TEST(!log::enabled(log::level::info));
  BOOST_TEST(log::enabled(log::level::warn));
  BOOST_TEST(log::enabled(log::level::error));
  log::set_threshold(log::level::off);
  BOOST_TEST(!log::enabled(log::level::error));
  log::set_threshold(before);
}

namespace {
// 64 MiB of 32 KiB blocks (below glibc's mmap threshold, 128 KiB, so in
// the heap), every page touched, every other block freed: 32 MiB of free
// holes that nothing coalesces into the top of the heap, where free()
// would trim them by itself. The blocks still held are returned.
// (Unused where AddressSanitizer replaces malloc: those tests skip.)
[[maybe_unused]] std::vector<std::unique_ptr<char[]>> heap_with_free_holes() {
  std::vector<std::unique_ptr<char[]>> blocks(2048);
  for (auto& b : blocks) {
    b.reset(new char[32768]);
    std::fill_n(b.get(), 32768, 'x');
  }
  for (size_t i = 0; i < blocks.size(); i += 2)
    blocks[i].reset();
  return blocks;
}
} // namespace

// memory.huge-pages: the GLIBC_TUNABLES value resized runs itself again
// with, and when it would not (the variable sets the tunable already).
BOOST_AUTO_TEST_CASE(huge_pages_tunable_joins_what_glibc_tunables_holds) {
  BOOST_TEST(*memory::tunables_with_huge_pages(nullptr) ==
             "glibc.malloc.hugetlb=1");
  BOOST_TEST(*memory::tunables_with_huge_pages("") == "glibc.malloc.hugetlb=1");
  BOOST_TEST(*memory::tunables_with_huge_pages("glibc.malloc.arena_max=2") ==
             "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1");
  BOOST_TEST(!memory::tunables_with_huge_pages("glibc.malloc.hugetlb=0"));
  BOOST_TEST(!memory::tunables_with_huge_pages(
      "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"));
  // A name that only starts the same is another tunable.
  BOOST_TEST(*memory::tunables_with_huge_pages("glibc.malloc.hugetlbx=0") ==
             "glibc.malloc.hugetlbx=0:glibc.malloc.hugetlb=1");

  BOOST_TEST(!memory::huge_pages_tuned(nullptr));
  BOOST_TEST(!memory::huge_pages_tuned(""));
  BOOST_TEST(memory::huge_pages_tuned("glibc.malloc.hugetlb=1"));
  BOOST_TEST(memory::huge_pages_tuned("a=1:glibc.malloc.hugetlb=2"));
  BOOST_TEST(!memory::huge_pages_tuned("glibc.malloc.hugetlb=0"));
  // glibc takes the last setting.
  BOOST_TEST(!memory::huge_pages_tuned(
      "glibc.malloc.hugetlb=1:glibc.malloc.hugetlb=0"));

  BOOST_TEST(memory::thp_usable("always [madvise] never"));
  BOOST_TEST(memory::thp_usable("[always] madvise never"));
  BOOST_TEST(!memory::thp_usable("always madvise [never]"));
  BOOST_TEST(!memory::thp_usable(""));
}

// memory::trimmer gives free heap pages back: a heap with 32 MiB of free
// holes (every other 32 KiB block freed, so nothing coalesces into the top of
// the heap where free() would trim by itself) shrinks once the trimmer runs.
BOOST_AUTO_TEST_CASE(trimmer_returns_free_heap_memory) {
#if defined(__SANITIZE_ADDRESS__)
  BOOST_TEST_MESSAGE("skipped: AddressSanitizer replaces glibc's malloc");
#else
  auto rss_kib = [] {
    std::ifstream status("/proc/self/status");
    std::string key;
    long value = -1;
    while (status >> key)
      if (key == "VmRSS:" && status >> value)
        break;
    return value;
  };
  auto blocks = heap_with_free_holes();
  BOOST_TEST(memory::free_heap_bytes() >= (30ull << 20));
  long before = rss_kib();
  memory::trimmer trim{std::chrono::milliseconds{5}, 16ull << 20};
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{10};
  while (trim.trims() == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds{5});
  BOOST_TEST(trim.trims() >= 1u);
  long after = rss_kib();
  BOOST_TEST(before - after >= 16 * 1024,
             "RSS " << before << " KiB -> " << after << " KiB");
#endif
}

// While the work count moves, the busy threshold applies: 30 MiB of free
// holes stay (the next bodies reuse them) until the work stops; then the
// next look trims them.
BOOST_AUTO_TEST_CASE(trimmer_keeps_free_memory_while_busy) {
  BOOST_TEST(memory::trimmer::threshold_for(16, 128, true) == 128u);
  BOOST_TEST(memory::trimmer::threshold_for(16, 128, false) == 16u);
  BOOST_TEST(memory::trimmer::threshold_for(16, 0, true) == 16u);
#if defined(__SANITIZE_ADDRESS__)
  BOOST_TEST_MESSAGE("skipped: AddressSanitizer replaces glibc's malloc");
#else
  auto blocks = heap_with_free_holes();
  BOOST_TEST(memory::free_heap_bytes() >= (30ull << 20));
  std::atomic<uint64_t> work{0};
  std::atomic<bool> busy{true};
  memory::trimmer trim{std::chrono::milliseconds{5}, 16ull << 20, 1ull << 50,
                       [&] {
                         // Every look while busy sees new work.
                         return busy ? work.fetch_add(1) + 1 : work.load();
                       }};
  BOOST_TEST(resized::test::wait_until([&] { return trim.busy_checks() >= 5; },
                                       std::chrono::seconds{10}));
  BOOST_TEST(trim.trims() == 0u);
  busy = false;
  BOOST_TEST(resized::test::wait_until([&] { return trim.trims() >= 1; },
                                       std::chrono::seconds{10}));
  BOOST_TEST(trim.checks() > trim.busy_checks());
#endif
}

// Below the threshold nothing is trimmed, however often it looks.
BOOST_AUTO_TEST_CASE(trimmer_waits_for_the_threshold) {
  memory::trimmer trim{std::chrono::milliseconds{1}, uint64_t{1} << 50};
  BOOST_TEST(resized::test::wait_until([&] { return trim.checks() >= 5; },
                                       std::chrono::seconds{10}));
  BOOST_TEST(trim.trims() == 0u);
}

namespace {

// A TCP connection on loopback: the listener, the client and the accepted
// socket (-1 where a call failed).
struct loopback_connection {
  int listener = -1, client = -1, accepted = -1;
  loopback_connection() {
    listener = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (::bind(listener, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        ::listen(listener, 4) != 0 ||
        ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
      return;
    client = ::socket(AF_INET, SOCK_STREAM, 0);
    if (::connect(client, reinterpret_cast<sockaddr*>(&addr), len) != 0)
      return;
    accepted = ::accept(listener, nullptr, nullptr);
  }
  ~loopback_connection() {
    for (int fd : {accepted, client, listener})
      if (fd >= 0)
        ::close(fd);
  }
  uint16_t client_port() const {
    sockaddr_in addr{};
    socklen_t len = sizeof(addr);
    ::getsockname(client, reinterpret_cast<sockaddr*>(&addr), &len);
    return ntohs(addr.sin_port);
  }
};

} // namespace

// Both ends of a socket name its peer and tell a descriptor reused for
// another connection from the one noted.
BOOST_AUTO_TEST_CASE(socket_ends_name_the_peer_and_spot_a_reused_descriptor) {
  socket_ends noted;
  int fd = -1;
  uint16_t first_port = 0;
  {
    loopback_connection c;
    BOOST_TEST_REQUIRE(c.accepted >= 0);
    BOOST_TEST_REQUIRE(read_ends(c.accepted, noted));
    first_port = c.client_port();
    BOOST_TEST(address_text(noted.peer, noted.peer_len) ==
               "127.0.0.1:" + std::to_string(first_port));
    auto [host, port] = numeric_endpoint(noted.peer, noted.peer_len);
    BOOST_TEST(host == "127.0.0.1");
    BOOST_TEST(port == first_port);
    BOOST_TEST(same_ends(c.accepted, noted));
    fd = c.accepted;
  }
  // Closed: no ends. Another connection, likely on the same descriptor
  // numbers: not the same ends.
  BOOST_TEST(!same_ends(fd, noted));
  loopback_connection again;
  BOOST_TEST_REQUIRE(again.accepted >= 0);
  BOOST_TEST(!same_ends(again.accepted, noted));
  socket_ends none;
  BOOST_TEST(!read_ends(-1, none));

  sockaddr_storage v6{};
  auto& in6 = reinterpret_cast<sockaddr_in6&>(v6);
  in6.sin6_family = AF_INET6;
  in6.sin6_addr = in6addr_loopback;
  in6.sin6_port = htons(4000);
  BOOST_TEST(address_text(v6, sizeof(sockaddr_in6)) == "[::1]:4000");
  BOOST_TEST(address_text(sockaddr_storage{}, 0) == "unknown");
}

BOOST_AUTO_TEST_CASE(configured_endpoints_are_named_as_one_types_them) {
  BOOST_TEST(endpoint_text("10.0.0.2", 4242) == "10.0.0.2:4242");
  BOOST_TEST(endpoint_text("api-1.internal", 4242) == "api-1.internal:4242");
  BOOST_TEST(endpoint_text("fd00::2", 4242) == "[fd00::2]:4242");
  BOOST_TEST(endpoint_text("::", 5000) == "[::]:5000");
}

// One key per piece of work: what reaches it from the input bytes, the
// options, the limits that change a result (not only refuse it) and the
// pipeline's revision; nothing else (the limits that only refuse do not
// split the reuse of a result between API nodes).
BOOST_AUTO_TEST_CASE(content_key_names_everything_that_shapes_the_result) {
  const std::string input = "\xFF\xD8 any bytes";
  imaging::resize_options opts{100, 100, imaging::fit_mode::fill,
                               imaging::output_format::jpeg, 85};
  imaging::limits lim;
  auto key = content_key(input, opts, lim);
  BOOST_TEST(key == content_key(std::string{input}, opts, lim));
  BOOST_TEST(key.size() > 64u);
  BOOST_TEST(key.find(fmt::format(":r{}:", imaging::output_revision)) !=
                 std::string::npos,
             key);
  std::set<std::string> keys{key};
  auto differs = [&](const std::string& why, const std::string& other) {
    BOOST_TEST(keys.insert(other).second, why << ": " << other);
  };
  differs("one input byte", content_key(input + " ", opts, lim));
  auto o = opts;
  o.width = 101;
  differs("width", content_key(input, o, lim));
  o = opts;
  o.height = 0; // left to the aspect ratio
  differs("height", content_key(input, o, lim));
  o = opts;
  o.mode = imaging::fit_mode::fit;
  differs("mode", content_key(input, o, lim));
  o = opts;
  o.format = imaging::output_format::png;
  differs("format", content_key(input, o, lim));
  o = opts;
  o.quality = 84;
  differs("quality", content_key(input, o, lim));
  auto l = lim;
  l.max_dimension = 2048; // caps a side left to the aspect ratio
  differs("max_dimension", content_key(input, opts, l));
  l = lim;
  l.fail_on_truncated = false; // serves what a cut-off file decodes to
  differs("truncated", content_key(input, opts, l));
  l = lim;
  l.max_pixels = 1000;
  l.max_input_bytes = 10;
  l.max_processing_ms = 5;
  l.max_avif_pixels = 7;
  BOOST_TEST(content_key(input, opts, l) == key); // these only refuse
}

BOOST_AUTO_TEST_SUITE_END()
