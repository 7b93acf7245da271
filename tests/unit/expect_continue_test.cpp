// continue_tracker (src/http/expect_continue.hpp): which received bytes end
// a request header block that asked `Expect: 100-continue` for a body.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "http/expect_continue.hpp"

using resized::http::continue_tracker;

namespace {

std::string post(const std::string& extra_headers, const std::string& body,
                 const std::string& version = "HTTP/1.1") {
  return "POST /api/v1/resize " + version +
         "\r\nHost: x\r\nContent-Type: image/jpeg\r\n" + extra_headers +
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

// Feeds `stream` in pieces ending at `cuts`; the indexes of the pieces for
// which the tracker said "answer 100 Continue now".
std::vector<size_t> due_pieces(const std::string& stream,
                               std::vector<size_t> cuts) {
  continue_tracker t;
  cuts.push_back(stream.size());
  std::vector<size_t> due;
  size_t from = 0;
  for (size_t i = 0; i < cuts.size(); ++i) {
    if (t.feed(stream.data() + from, cuts[i] - from))
      due.push_back(i);
    from = cuts[i];
  }
  return due;
}

bool due_at_once(const std::string& stream) {
  return !due_pieces(stream, {}).empty();
}

// What a tracker with `limits` (by default a 1 MiB body limit) refused, and
// why if malformed, fed `stream` `step` bytes at a time.
std::pair<continue_tracker::refusal, std::string>
refusal_fed(const std::string& stream, size_t step,
            const resized::http::request_limits& limits = {1 << 20}) {
  continue_tracker t{limits};
  for (size_t from = 0; from < stream.size(); from += step)
    t.feed(stream.data() + from, std::min(step, stream.size() - from));
  return {t.refused(), t.malformed_why()};
}

} // namespace

BOOST_AUTO_TEST_SUITE(expect_continue)

BOOST_AUTO_TEST_CASE(a_body_that_asks_for_it) {
  BOOST_TEST(due_at_once(post("Expect: 100-continue\r\n", "")) == false);
  // Only the header block has arrived: that is when the client waits.
  std::string headers_only = "POST / HTTP/1.1\r\nHost: x\r\nExpect: "
                             "100-continue\r\nContent-Length: 5\r\n\r\n";
  BOOST_TEST(due_at_once(headers_only));
  BOOST_TEST(due_at_once(post("Expect: 100-continue\r\n", "abcde")));
  BOOST_TEST(
      due_at_once("POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n"));
}

BOOST_AUTO_TEST_CASE(names_and_values_are_case_insensitive_and_trimmed) {
  BOOST_TEST(due_at_once(post("EXPECT:   100-Continue  \r\n", "abc")));
  BOOST_TEST(due_at_once(post("expect:\t100-CONTINUE\r\n", "abc")));
}

BOOST_AUTO_TEST_CASE(other_headers_and_values_do_not_count) {
  BOOST_TEST(!due_at_once(post("", "abc")));
  BOOST_TEST(!due_at_once(post("X-Expect: 100-continue\r\n", "abc")));
  BOOST_TEST(!due_at_once(post("Expectation: 100-continue\r\n", "abc")));
  BOOST_TEST(!due_at_once(post("Expect: 100-continue-please\r\n", "abc")));
  BOOST_TEST(!due_at_once(post("Expect: 100\r\n", "abc")));
  BOOST_TEST(!due_at_once(
      post("Expect: " + std::string(300, 'x') + "100-continue\r\n", "abc")));
  // HTTP/1.0 has no interim answers.
  BOOST_TEST(!due_at_once(post("Expect: 100-continue\r\n", "abc", "HTTP/1.0")));
}

// An Expect value longer than the 32 bytes kept is not 100-continue, fed
// at once or byte by byte (the fuzzer's find: "100-continue", a folded line
// of blanks, then more; fed byte by byte, the kept part ended in blanks
// and matched).
BOOST_AUTO_TEST_CASE(a_long_expect_value_does_not_count_however_it_arrives) {
  for (const std::string& value :
       {"100-continue\r\n" + std::string(20, ' ') + "K ed",
        "100-continue" + std::string(21, ' ') + "x",
        "100-continue" + std::string(40, ' ') + "x"}) {
    auto stream = post("Expect: " + value + "\r\n", "abc");
    BOOST_TEST(!due_at_once(stream), value);
    std::vector<size_t> every;
    for (size_t i = 1; i < stream.size(); ++i)
      every.push_back(i);
    BOOST_TEST(due_pieces(stream, every).empty(), value);
  }
  // Blanks after it, within what is kept: still 100-continue.
  BOOST_TEST(due_at_once(
      post("Expect: 100-continue" + std::string(10, ' ') + "\r\n", "abc")));
}

BOOST_AUTO_TEST_CASE(split_anywhere_it_is_due_once_when_the_block_ends) {
  auto stream = post("Expect: 100-continue\r\n", "0123456789");
  auto block_end = stream.find("\r\n\r\n") + 4;
  for (size_t cut = 1; cut < stream.size(); ++cut) {
    auto due = due_pieces(stream, {cut});
    BOOST_TEST_REQUIRE(due.size() == 1u, "cut at " << cut);
    BOOST_TEST(due[0] == (cut < block_end ? 1u : 0u), "cut at " << cut);
  }
  // One byte at a time.
  std::vector<size_t> every;
  for (size_t i = 1; i < stream.size(); ++i)
    every.push_back(i);
  auto due = due_pieces(stream, every);
  BOOST_TEST_REQUIRE(due.size() == 1u);
  BOOST_TEST(due[0] == block_end - 1);
}

BOOST_AUTO_TEST_CASE(follows_keep_alive_requests_and_their_bodies) {
  // The first body contains the text of an expectation: it is body, not a
  // header. The second request asks for real.
  std::string body = "Expect: 100-continue\r\n\r\n";
  auto first = post("", body);
  auto second = post("Expect: 100-continue\r\n", "xyz");
  auto due = due_pieces(first + second, {first.size()});
  BOOST_TEST_REQUIRE(due.size() == 1u);
  BOOST_TEST(due[0] == 1u);
  // After a chunked body too.
  std::string chunked =
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n0\r\n\r\n";
  due = due_pieces(chunked + second, {chunked.size()});
  BOOST_TEST_REQUIRE(due.size() == 1u);
  BOOST_TEST(due[0] == 1u);
  // Pipelined in one read: a GET, then the POST that asks.
  BOOST_TEST(due_at_once("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" + second));
}

BOOST_AUTO_TEST_CASE(an_empty_read_changes_nothing) {
  // http_parser takes zero bytes for the end of the stream; the fuzzer
  // found the tracker stopping there.
  continue_tracker t;
  auto stream = post("Expect: 100-continue\r\n", "abc");
  BOOST_TEST(!t.feed(stream.data(), 10));
  BOOST_TEST(!t.feed(stream.data() + 10, 0));
  BOOST_TEST(t.feed(stream.data() + 10, stream.size() - 10));
}

BOOST_AUTO_TEST_CASE(stops_after_a_parse_error_or_an_upgrade) {
  continue_tracker bad;
  BOOST_TEST(!bad.feed("NOT HTTP AT ALL\r\n\r\n", 19));
  auto later = post("Expect: 100-continue\r\n", "abc");
  BOOST_TEST(!bad.feed(later.data(), later.size()));
  BOOST_TEST(bad.stopped());

  continue_tracker upgraded;
  std::string up = "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                   "Upgrade: websocket\r\n\r\n";
  BOOST_TEST(!upgraded.feed(up.data(), up.size()));
  BOOST_TEST(!upgraded.feed(later.data(), later.size()));
}

// What libhttp-parser cannot parse, which RESTinio closes unanswered, is
// refused (the socket answers it): a method it does not know (501), any
// other parse error (400, with the parser's words), fed at once or byte by
// byte.
BOOST_AUTO_TEST_CASE(what_the_parser_cannot_parse_is_refused) {
  using refusal = continue_tracker::refusal;
  for (size_t step : {size_t{1}, size_t{1000}}) {
    BOOST_TEST_CONTEXT("fed " << step << " bytes at a time") {
      BOOST_TEST((refusal_fed("HELLO\r\n\r\n", step).first ==
                  refusal::unknown_method));
      BOOST_TEST(
          (refusal_fed("BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n", step).first ==
           refusal::unknown_method));
      BOOST_TEST((refusal_fed("\x16\x03\x01\x02\x00\x01", step).first ==
                  refusal::unknown_method)); // a TLS ClientHello
      for (const char* bad :
           {"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
            "Content-Length: 2\r\n\r\n",
            "GET / HTTP/9.9.9\r\nHost: x\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nBad\x01Name: 1\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            "\r\nzz\r\n"})
        BOOST_TEST((refusal_fed(bad, step).first == refusal::unparsable), bad);
      // A request after one that closes the connection is parsed as any
      // (RESTinio answers the first and closes).
      BOOST_TEST((refusal_fed("GET / HTTP/1.1\r\nHost: x\r\nConnection: "
                              "close\r\n\r\nGET / HTTP/1.1\r\nHost: x"
                              "\r\n\r\n",
                              step)
                      .first == refusal::none));
    }
  }
  continue_tracker t;
  std::string cl = "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n";
  t.feed(cl.data(), cl.size());
  BOOST_TEST(std::string{t.parse_error()} ==
             "invalid character in content-length header");
  BOOST_TEST(std::string{t.method()} == "GET");
  BOOST_TEST(t.stopped());
  continue_tracker m;
  m.feed("BREW /pot HTTP/1.1\r\n", 20);
  BOOST_TEST(std::string{m.method()} == "-");
  BOOST_TEST(!m.head());
}

// Over the body limit: no interim answer, the tracker says "too large"
// (the socket answers 413) whether or not the client asked for 100, and
// whether the header block arrives at once or byte by byte.
BOOST_AUTO_TEST_CASE(a_body_over_the_limit_is_too_large) {
  std::string big = "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                    "Content-Length: 1001\r\n\r\n";
  for (const auto& stream :
       {big,
        std::string{
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n"}}) {
    continue_tracker at_once{1000};
    BOOST_TEST(!at_once.feed(stream.data(), stream.size()));
    BOOST_TEST(at_once.too_large());
    continue_tracker bytewise{1000};
    for (char c : stream)
      BOOST_TEST(!bytewise.feed(&c, 1));
    BOOST_TEST(bytewise.too_large());
  }
  // At the limit, or with no limit: as before.
  continue_tracker at_limit{1001};
  BOOST_TEST(at_limit.feed(big.data(), big.size()));
  BOOST_TEST(!at_limit.too_large());
  continue_tracker unlimited;
  BOOST_TEST(unlimited.feed(big.data(), big.size()));
  BOOST_TEST(!unlimited.too_large());
  // Chunked bodies announce no length: RESTinio counts them as they come.
  std::string chunked = "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                        "Transfer-Encoding: chunked\r\n\r\n";
  continue_tracker limited{10};
  BOOST_TEST(limited.feed(chunked.data(), chunked.size()));
  BOOST_TEST(!limited.too_large());
  // ... and drop the request when the chunks' data passes the limit
  // (restinio_body_cb: total > limit): the tracker refuses it there.
  auto chunks = [&](const std::vector<std::string>& data) {
    std::string s = chunked;
    for (const auto& d : data)
      s += fmt::format("{:x}\r\n{}\r\n", d.size(), d);
    return s + "0\r\n\r\n";
  };
  for (const auto& [stream, over] :
       {std::pair{chunks({"abcd", "efghij"}), false},
        std::pair{chunks({"abcd", "efghijk"}), true},
        std::pair{chunks({std::string(11, 'x')}), true}}) {
    continue_tracker at_once{10};
    at_once.feed(stream.data(), stream.size());
    BOOST_TEST(at_once.too_large() == over, stream);
    BOOST_TEST(at_once.chunked() == over, stream);
    continue_tracker bytewise{10};
    for (char c : stream)
      bytewise.feed(&c, 1);
    BOOST_TEST(bytewise.too_large() == over, stream);
  }
  // Counted per request: two chunked requests of 10 bytes each are fine.
  continue_tracker two{10};
  auto ten = chunks({"abcd", "efghij"});
  two.feed(ten.data(), ten.size());
  two.feed(ten.data(), ten.size());
  BOOST_TEST(!two.too_large());
}

// A declared length is held to declared_body when set (the service's own
// limit), a chunked body to body (twice it): 1500 bytes declared are
// refused at the header block, 1500 bytes in chunks are read.
BOOST_AUTO_TEST_CASE(a_declared_length_is_held_to_its_own_limit) {
  resized::http::request_limits lim{2000, 0, 0, 0, 0, 0, 1000};
  std::string declared =
      "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
      "Content-Length: 1500\r\n\r\n";
  continue_tracker refused{lim};
  BOOST_TEST(!refused.feed(declared.data(), declared.size())); // no 100
  BOOST_TEST(refused.too_large());
  BOOST_TEST(refused.announced() == 1500u);
  std::string at_limit =
      "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
      "Content-Length: 1000\r\n\r\n";
  continue_tracker taken{lim};
  BOOST_TEST(taken.feed(at_limit.data(), at_limit.size()));
  BOOST_TEST(!taken.too_large());
  std::string chunked =
      "POST / HTTP/1.1\r\nHost: x\r\n"
      "Transfer-Encoding: chunked\r\n\r\n" +
      fmt::format("{:x}\r\n{}\r\n0\r\n\r\n", 1500, std::string(1500, 'x'));
  continue_tracker read{lim};
  read.feed(chunked.data(), chunked.size());
  BOOST_TEST(!read.too_large());
}

// The upload budget (http.max-receiving-bytes): bytes taken as they fit,
// given back, never more than the capacity; the gauge sees every change.
BOOST_AUTO_TEST_CASE(an_upload_budget_holds_at_most_its_capacity) {
  std::vector<uint64_t> seen;
  resized::http::upload_budget b{100, [&](uint64_t h) { seen.push_back(h); }};
  BOOST_TEST(b.fits(100));
  BOOST_TEST(!b.fits(101));
  BOOST_TEST(b.take(60));
  BOOST_TEST(!b.take(41)); // nothing taken
  BOOST_TEST(b.held() == 60u);
  BOOST_TEST(b.take(40));
  BOOST_TEST(!b.fits(1));
  BOOST_TEST(b.fits(0));
  b.give_back(70);
  BOOST_TEST(b.held() == 30u);
  b.give_back(1000); // more than held: none left, not a wrap-around
  BOOST_TEST(b.held() == 0u);
  BOOST_TEST((seen == std::vector<uint64_t>{60, 100, 30, 0}));
}

// A body is taken from the budget as its bytes are read and given back
// when it is whole: the next request, or another connection, finds room.
// A declared length that does not fit now is refused at its header block
// (no "100 Continue"); bytes that stop fitting are refused where they
// arrive; the tracker's end gives back what its request held.
BOOST_AUTO_TEST_CASE(bodies_take_their_bytes_from_the_upload_budget) {
  auto budget = std::make_shared<resized::http::upload_budget>(1000);
  resized::http::request_limits lim{1 << 20};
  auto head = [](size_t length) {
    return fmt::format("POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue"
                       "\r\nContent-Length: {}\r\n\r\n",
                       length);
  };
  {
    continue_tracker a{lim, nullptr, budget};
    auto h = head(800);
    BOOST_TEST(a.feed(h.data(), h.size())); // fits: 100 Continue
    std::string part(600, 'x');
    a.feed(part.data(), part.size());
    BOOST_TEST(budget->held() == 600u);
    BOOST_TEST(a.budget_held() == 600u);
    // Another connection declaring 500: 400 are left, refused unread.
    continue_tracker b{lim, nullptr, budget};
    auto hb = head(500);
    BOOST_TEST(!b.feed(hb.data(), hb.size()));
    BOOST_TEST((b.refused() == continue_tracker::refusal::busy));
    BOOST_TEST(b.announced() == 500u);
    BOOST_TEST(!b.busy_midway());
    BOOST_TEST(b.stopped());
    // The rest of a's body: whole, given back.
    std::string rest(200, 'x');
    a.feed(rest.data(), rest.size());
    BOOST_TEST(budget->held() == 0u);
    BOOST_TEST((a.refused() == continue_tracker::refusal::none));
    // Its next request holds its bytes until it ends with the tracker.
    auto h2 = head(300);
    BOOST_TEST(a.feed(h2.data(), h2.size()));
    a.feed(part.data(), 100);
    BOOST_TEST(budget->held() == 100u);
  }
  BOOST_TEST(budget->held() == 0u);
  // Two bodies admitted together: the one whose bytes stop fitting is
  // refused there, and what it took is given back at its end.
  continue_tracker c{lim, nullptr, budget};
  {
    continue_tracker d{lim, nullptr, budget};
    auto h = head(700);
    BOOST_TEST(c.feed(h.data(), h.size()));
    BOOST_TEST(d.feed(h.data(), h.size()));
    std::string piece(400, 'x');
    c.feed(piece.data(), piece.size());
    d.feed(piece.data(), piece.size());
    BOOST_TEST((d.refused() == continue_tracker::refusal::none));
    d.feed(piece.data(), 250); // 800 held and 250 more: over
    BOOST_TEST((d.refused() == continue_tracker::refusal::busy));
    BOOST_TEST(d.busy_midway());
    BOOST_TEST(d.announced() == 400u);
    BOOST_TEST(budget->held() == 800u);
  }
  BOOST_TEST(budget->held() == 400u);
  // A chunked body needs room for its first byte at its header block.
  std::string full(600, 'x');
  c.feed(full.data(), 300); // c's body whole: nothing held
  BOOST_TEST(budget->held() == 0u);
  BOOST_TEST(budget->take(1000));
  continue_tracker e{lim, nullptr, budget};
  std::string chunked = "POST / HTTP/1.1\r\nHost: x\r\n"
                        "Transfer-Encoding: chunked\r\n\r\n";
  e.feed(chunked.data(), chunked.size());
  BOOST_TEST((e.refused() == continue_tracker::refusal::busy));
  BOOST_TEST(e.chunked());
  budget->give_back(1000);
  // A request without a body needs no room.
  BOOST_TEST(budget->take(1000));
  continue_tracker g{lim, nullptr, budget};
  std::string get = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  g.feed(get.data(), get.size());
  BOOST_TEST((g.refused() == continue_tracker::refusal::none));
  // The body limit's 413 comes before the budget's 503.
  continue_tracker f{resized::http::request_limits{100}, nullptr, budget};
  auto hf = head(500);
  f.feed(hf.data(), hf.size());
  BOOST_TEST((f.refused() == continue_tracker::refusal::body));
  budget->give_back(1000);
}

// RESTinio's other limits: the target over `url`, a name over
// `field_name`, a value over `field_value` (RESTinio, which refuses one of
// its limit or more, is given field_value + 1), more than `field_count`
// fields. At a limit nothing is refused.
// The first refusal is the one: bytes after a request refused for its
// announced body (the next request of a pipelined read, or the body itself
// parsed as one) change nothing. (Before, http_parser took the refusal for
// "skip the body" and went on; a later request's header refusal replaced
// the 413 with a 431. Found by fuzz/expect_continue.)
BOOST_AUTO_TEST_CASE(the_first_refusal_stands) {
  resized::http::request_limits lim{1000, 300, 20, 8, 3};
  std::string stream =
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n"
      "GET / HTTP/1.1\r\nHost: x\r\nAn-over-long-header-name: x\r\n\r\n";
  continue_tracker at_once{lim};
  BOOST_TEST(!at_once.feed(stream.data(), stream.size()));
  BOOST_TEST((at_once.refused() == continue_tracker::refusal::body));
  BOOST_TEST(at_once.stopped());
  continue_tracker bytewise{lim};
  for (char c : stream)
    bytewise.feed(&c, 1);
  BOOST_TEST((bytewise.refused() == continue_tracker::refusal::body));
}

// A head within every per-field limit but over max_head_bytes in all, which
// libhttp-parser would fail as a parse error (closed unanswered): 431.
BOOST_AUTO_TEST_CASE(a_head_over_its_total_is_refused) {
  using refusal = continue_tracker::refusal;
  resized::http::request_limits lim{0, 100000, 1000, 100000, 1000};
  auto with_fields = [](int n) {
    std::string out = "GET / HTTP/1.1\r\nHost: x\r\n";
    for (int i = 0; i < n; ++i)
      out += "X-" + std::to_string(i) + ": " + std::string(8000, 'v') + "\r\n";
    return out + "\r\n";
  };
  for (auto [fields, expected] :
       {std::pair{7, refusal::none}, std::pair{9, refusal::headers}}) {
    auto stream = with_fields(fields);
    continue_tracker at_once{lim};
    at_once.feed(stream.data(), stream.size());
    BOOST_TEST((at_once.refused() == expected), fields << " fields");
    // RESTinio's parser takes such a head: it must be stopped.
    if (expected == refusal::headers)
      BOOST_TEST(!at_once.restinio_refuses_too());
    continue_tracker in_pieces{lim};
    for (size_t at = 0; at < stream.size(); at += 1000)
      in_pieces.feed(stream.data() + at,
                     std::min<size_t>(1000, stream.size() - at));
    BOOST_TEST((in_pieces.refused() == expected), fields << " fields");
  }
  // A field over its own limit RESTinio refuses as well.
  continue_tracker one{resized::http::request_limits{0, 100, 100, 100, 10}};
  std::string wide =
      "GET / HTTP/1.1\r\nHost: x\r\nX: " + std::string(200, 'v') + "\r\n\r\n";
  one.feed(wide.data(), wide.size());
  BOOST_TEST((one.refused() == refusal::headers));
  BOOST_TEST(one.restinio_refuses_too());
}

BOOST_AUTO_TEST_CASE(requests_over_restinio_limits_are_refused) {
  using refusal = continue_tracker::refusal;
  resized::http::request_limits lim{0, 20, 10, 8, 3};
  auto refused = [&](const std::string& stream) {
    continue_tracker at_once{lim};
    at_once.feed(stream.data(), stream.size());
    continue_tracker bytewise{lim};
    for (char c : stream)
      bytewise.feed(&c, 1);
    BOOST_TEST((at_once.refused() == bytewise.refused()), stream);
    return at_once.refused();
  };
  auto get = [](const std::string& target, const std::string& headers) {
    return "GET " + target + " HTTP/1.1\r\nHost: x\r\n" + headers + "\r\n";
  };
  BOOST_TEST((refused(get("/" + std::string(19, 'a'), "")) == refusal::none));
  BOOST_TEST((refused(get("/" + std::string(20, 'a'), "")) == refusal::url));
  BOOST_TEST((refused(get("/", "abcdefghij: 1\r\n")) == refusal::none));
  BOOST_TEST((refused(get("/", "abcdefghijk: 1\r\n")) == refusal::headers));
  BOOST_TEST((refused(get("/", "a: 12345678\r\n")) == refusal::none));
  BOOST_TEST((refused(get("/", "a: 123456789\r\n")) == refusal::headers));
  // Host is one of the three fields allowed.
  BOOST_TEST((refused(get("/", "a: 1\r\nb: 2\r\n")) == refusal::none));
  BOOST_TEST(
      (refused(get("/", "a: 1\r\nb: 2\r\nc: 3\r\n")) == refusal::headers));
  // Counted per request on a keep-alive connection.
  continue_tracker two{lim};
  auto three = get("/", "a: 1\r\nb: 2\r\n");
  two.feed(three.data(), three.size());
  two.feed(three.data(), three.size());
  BOOST_TEST((two.refused() == refusal::none));
}

// Whether a refused request came behind another that ended in the same
// bytes (pipelined: that one is not answered yet), or alone.
BOOST_AUTO_TEST_CASE(a_refusal_knows_whether_it_is_pipelined_behind_a_request) {
  resized::http::request_limits lim{0, 20, 100, 100, 10};
  std::string ok = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  std::string bad =
      "GET /" + std::string(30, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n";
  continue_tracker together{lim};
  auto both = ok + bad;
  together.feed(both.data(), both.size());
  BOOST_TEST((together.refused() == continue_tracker::refusal::url));
  BOOST_TEST(together.refused_behind());
  continue_tracker apart{lim};
  apart.feed(ok.data(), ok.size()); // answered before the next read
  apart.feed(bad.data(), bad.size());
  BOOST_TEST((apart.refused() == continue_tracker::refusal::url));
  BOOST_TEST(!apart.refused_behind());
}

// A chunked body in more chunks than request_limits::chunks (a limit
// RESTinio does not have) is refused, counted per request.
BOOST_AUTO_TEST_CASE(a_chunked_body_in_too_many_chunks_is_refused) {
  resized::http::request_limits lim{0, 100, 100, 100, 10, 3};
  auto post = [](int chunks) {
    std::string req =
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (int i = 0; i < chunks; ++i)
      req += "1\r\nx\r\n";
    return req + "0\r\n\r\n";
  };
  continue_tracker three{lim};
  auto s3 = post(2) + post(2); // the last chunk (0) counts too
  three.feed(s3.data(), s3.size());
  BOOST_TEST((three.refused() == continue_tracker::refusal::none));
  continue_tracker four{lim};
  auto s4 = post(3);
  four.feed(s4.data(), s4.size());
  BOOST_TEST((four.refused() == continue_tracker::refusal::chunks));
  BOOST_TEST(four.chunked());
  BOOST_TEST(four.stopped());
}

// What the socket's answer and access line take from the refused request:
// its method (HEAD gets no body), and the start of its target.
BOOST_AUTO_TEST_CASE(a_refused_request_names_its_method_and_target) {
  resized::http::request_limits lim{1000, 300, 20, 8, 3};
  auto fed = [&](const std::string& stream, continue_tracker& t) {
    t.feed(stream.data(), stream.size());
  };
  continue_tracker head{lim};
  fed("HEAD /a?b=c HTTP/1.1\r\nHost: x\r\nabcdefghijklmnopqrstu: 1\r\n\r\n",
      head);
  BOOST_TEST((head.refused() == continue_tracker::refusal::headers));
  BOOST_TEST(head.head());
  BOOST_TEST(std::string{head.method()} == "HEAD");
  BOOST_TEST(head.target() == "/a?b=c");
  BOOST_TEST(head.target_bytes() == 6u);
  continue_tracker get{lim};
  auto long_target = "/" + std::string(400, 'a');
  fed("GET " + long_target + " HTTP/1.1\r\nHost: x\r\n\r\n", get);
  BOOST_TEST((get.refused() == continue_tracker::refusal::url));
  BOOST_TEST(!get.head());
  BOOST_TEST(std::string{get.method()} == "GET");
  BOOST_TEST(get.target() == long_target.substr(0, 200));
  BOOST_TEST(get.target_bytes() > 300u);
  // A second request on the connection starts afresh.
  continue_tracker two{lim};
  fed("HEAD /first HTTP/1.1\r\nHost: x\r\n\r\n", two);
  fed("POST /second HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n", two);
  BOOST_TEST(two.too_large());
  BOOST_TEST(!two.head());
  BOOST_TEST(two.target() == "/second");
}

// The Origin of a refused request, for its answer's CORS fields: read whole
// however it arrives, trimmed, per request; none when too long to be one.
BOOST_AUTO_TEST_CASE(the_origin_of_a_refused_request_is_kept) {
  resized::http::request_limits lim{1000};
  auto origin_of = [&](const std::string& stream, std::vector<size_t> cuts) {
    continue_tracker t{lim};
    cuts.push_back(stream.size());
    size_t from = 0;
    for (auto cut : cuts) {
      t.feed(stream.data() + from, cut - from);
      from = cut;
    }
    BOOST_TEST(t.too_large());
    return t.origin();
  };
  auto over = [](const std::string& origin_field) {
    return "POST /api/v1/resize HTTP/1.1\r\nHost: x\r\n" + origin_field +
           "Content-Length: 5000\r\n\r\n";
  };
  const std::string app = "https://a-rather-long-application-name.example.com";
  auto stream = over("oRiGiN:  " + app + " \r\n");
  BOOST_TEST(origin_of(stream, {}) == app);
  for (size_t cut = 1; cut < stream.size(); cut += 7)
    BOOST_TEST(origin_of(stream, {cut}) == app, "cut at " << cut);
  BOOST_TEST(origin_of(over(""), {}).empty());
  BOOST_TEST(origin_of(over("Origin: null\r\n"), {}) == "null");
  BOOST_TEST(
      origin_of(over("Origin: https://" + std::string(600, 'a') + "\r\n"), {})
          .empty());
  // A second request's origin is its own.
  continue_tracker two{lim};
  std::string first =
      "GET / HTTP/1.1\r\nHost: x\r\nOrigin: " + app + "\r\n\r\n";
  two.feed(first.data(), first.size());
  BOOST_TEST(two.origin() == app);
  auto second = over("");
  two.feed(second.data(), second.size());
  BOOST_TEST(two.too_large());
  BOOST_TEST(two.origin().empty());
}

// With API keys set, a request that announces a body without a valid key
// is refused at its header block, before a byte of the body is read; the
// key is read as the handler reads it (the first Authorization, else the
// first X-API-Key), however the bytes arrive.
BOOST_AUTO_TEST_CASE(a_body_without_a_valid_key_is_refused_unread) {
  const std::vector<std::string> keys{"first-key-0123456789",
                                      "second-key-0123456789"};
  // The refusal after feeding `stream` in pieces of `step` bytes.
  auto refusal = [&](const std::string& stream, size_t step,
                     const std::vector<std::string>* with_keys) {
    continue_tracker t{resized::http::request_limits{1 << 20}, with_keys};
    for (size_t from = 0; from < stream.size(); from += step)
      t.feed(stream.data() + from, std::min(step, stream.size() - from));
    return std::make_pair(t.refused(), t.key_presented());
  };
  using refusal_kind = continue_tracker::refusal;
  const std::string body(5000, 'x');
  struct example {
    std::string headers;
    bool refused;
    bool presented;
  };
  std::vector<example> examples{
      {"", true, false},
      {"Authorization: Bearer " + keys[0] + "\r\n", false, true},
      {"authorization:   bearer   " + keys[1] + "  \r\n", false, true},
      {"X-API-Key: " + keys[1] + "\r\n", false, true},
      {"Authorization: Bearer " + keys[0] + "x\r\n", true, true},
      {"X-API-Key: " + keys[1].substr(0, 10) + "\r\n", true, true},
      {"Authorization: Basic dXNlcjpwYXNz\r\nX-API-Key: " + keys[0] + "\r\n",
       false, true},
      // The first of each field counts, as for the handler.
      {"Authorization: Bearer wrong-key-0123456789\r\nAuthorization: "
       "Bearer " +
           keys[0] + "\r\n",
       true, true},
      {"Authorization: Bearer " + keys[0] + "\r\nAuthorization: Bearer no\r\n",
       false, true},
      // A value longer than any key can hold is none.
      {"X-API-Key: " + keys[0] + std::string(3000, 'k') + "\r\n", true, true},
  };
  for (const auto& ex : examples)
    for (size_t step : {size_t{1}, size_t{7}, size_t{100000}})
      BOOST_TEST_CONTEXT("headers '" << ex.headers << "' fed " << step
                                     << " bytes at a time") {
        auto [kind, presented] = refusal(post(ex.headers, body), step, &keys);
        BOOST_TEST((kind == (ex.refused ? refusal_kind::unauthorized
                                        : refusal_kind::none)));
        if (ex.refused)
          BOOST_TEST(presented == ex.presented);
      }
  // No body, no refusal here (the handler answers what needs a key); no
  // keys, auth off.
  auto get = std::string{"GET /api/v1/resize/x HTTP/1.1\r\nHost: x\r\n\r\n"};
  BOOST_TEST((refusal(get, 1000, &keys).first == refusal_kind::none));
  const std::vector<std::string> none;
  BOOST_TEST(
      (refusal(post("", body), 1000, &none).first == refusal_kind::none));
  BOOST_TEST(
      (refusal(post("", body), 1000, nullptr).first == refusal_kind::none));
  // A chunked body announces one too; the refusal stops the tracker.
  auto chunked =
      std::string{"POST /api/v1/resize HTTP/1.1\r\nHost: x\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"};
  BOOST_TEST((refusal(chunked, 3, &keys).first == refusal_kind::unauthorized));
  // Each request of a connection shows its own key.
  continue_tracker t{resized::http::request_limits{1 << 20}, &keys};
  auto good = post("X-API-Key: " + keys[0] + "\r\n", "abc");
  auto bad = post("", "abc");
  t.feed(good.data(), good.size());
  BOOST_TEST((t.refused() == refusal_kind::none));
  t.feed(bad.data(), bad.size());
  BOOST_TEST((t.refused() == refusal_kind::unauthorized));
  BOOST_TEST(!t.key_presented());
}

// Framing RFC 9112 says to refuse and libhttp-parser takes: blanks in a
// header field name (it obeys "Content-Length : 5"), chunked on HTTP/1.0.
// Refused whole or fed a byte at a time; a blank after a name passed its
// limit is over the limit, as RESTinio would count it.
BOOST_AUTO_TEST_CASE(ambiguous_framing_is_refused) {
  using refusal_kind = continue_tracker::refusal;
  const resized::http::request_limits lim{1 << 20, 8192, 64, 8192, 100};
  struct example {
    std::string stream;
    refusal_kind kind;
  };
  const std::vector<example> examples{
      {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\nhello",
       refusal_kind::malformed},
      {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n",
       refusal_kind::malformed},
      {"GET / HTTP/1.1\r\nHost: x\r\nX Foo: bar\r\n\r\n",
       refusal_kind::malformed},
      {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello"
       "\r\n0\r\n\r\n",
       refusal_kind::malformed},
      {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
       "chunked\r\n\r\n5\r\nhello"
       "\r\n0\r\n\r\n",
       refusal_kind::none},
      {"POST / HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello", refusal_kind::none},
      {"GET / HTTP/1.1\r\nHost: x\r\nX-Foo:  bar  \r\n\r\n",
       refusal_kind::none},
      // A name over the limit (64) before its blank: over the limit.
      {"GET / HTTP/1.1\r\nHost: x\r\n" + std::string(70, 'x') + " : y\r\n\r\n",
       refusal_kind::headers},
      {"GET / HTTP/1.1\r\nHost: x\r\n" + std::string(60, 'x') + " : y\r\n\r\n",
       refusal_kind::malformed},
  };
  for (const auto& ex : examples)
    for (size_t step : {size_t{1}, size_t{5}, size_t{100000}})
      BOOST_TEST_CONTEXT("'" << ex.stream.substr(0, 60) << "' fed " << step
                             << " bytes at a time") {
        BOOST_TEST((refusal_fed(ex.stream, step, lim).first == ex.kind));
      }
}

// RFC 9112 §3.2: an HTTP/1.1 request without Host, any request with two,
// or with one that is not host[:port], is answered 400 (neither
// libhttp-parser nor RESTinio checks). The same however the bytes arrive.
BOOST_AUTO_TEST_CASE(a_host_field_is_required_once_and_well_formed) {
  using refusal_kind = continue_tracker::refusal;
  auto get = [](const std::string& version, const std::string& fields) {
    return "GET /healthz " + version + "\r\n" + fields + "\r\n";
  };
  struct example {
    std::string stream;
    refusal_kind kind;
    std::string why;
  };
  const std::string no_host = "an HTTP/1.1 request without a Host header field";
  const std::string two = "more than one Host header field";
  const std::string bad = "a Host header field that is not host[:port]";
  std::vector<example> examples{
      {get("HTTP/1.1", ""), refusal_kind::malformed, no_host},
      {get("HTTP/1.1", "X-Host: a\r\n"), refusal_kind::malformed, no_host},
      {get("HTTP/1.0", ""), refusal_kind::none, ""},
      {get("HTTP/1.1", "Host: a\r\nHOST: a\r\n"), refusal_kind::malformed, two},
      {get("HTTP/1.0", "Host: a\r\nX: y\r\nhost: b\r\n"),
       refusal_kind::malformed, two},
      // A POST without Host is refused before its body is read.
      {"POST /api/v1/resize HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
       refusal_kind::malformed, no_host},
  };
  for (std::string value : std::vector<std::string>{
           "a b", "a/b", "user@host", "[::1", "[]", "[::1]x", "host:80a",
           "host:80:81", "h\xc3\xa9te", "a\tb", std::string(1025, 'a')})
    examples.push_back({get("HTTP/1.1", "Host: " + value + "\r\n"),
                        refusal_kind::malformed, bad});
  for (std::string value : std::vector<std::string>{
           "", "   ", "example.com", "example.com:8080", "127.0.0.1:5000",
           "[::1]:5000", "[v1.fe80::a+en1]", "xn--bcher-kva.example", "a.b  ",
           "host:", "sub_domain.example~x", "%41.example",
           std::string(1024, 'a')})
    examples.push_back(
        {get("HTTP/1.1", "Host: " + value + "\r\n"), refusal_kind::none, ""});
  for (const auto& ex : examples)
    for (size_t step : {size_t{1}, size_t{5}, size_t{100000}})
      BOOST_TEST_CONTEXT("'" << ex.stream.substr(0, 60) << "' fed " << step
                             << " bytes at a time") {
        auto [kind, why] = refusal_fed(ex.stream, step);
        BOOST_TEST((kind == ex.kind));
        BOOST_TEST(why == ex.why);
      }
}

// libhttp-parser, as Debian builds it, takes any byte after the CR that
// ends a header block, a chunk-size line or a trailer for its LF, and any
// two bytes after a chunk's data for its CRLF: a proxy that reads them
// otherwise frames the stream otherwise. Refused, however the bytes
// arrive; body bytes may be anything.
BOOST_AUTO_TEST_CASE(line_ends_of_the_framing_are_checked) {
  using refusal_kind = continue_tracker::refusal;
  const std::string chunked =
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  const std::string sized =
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\n";
  const std::string next = "GET /next HTTP/1.1\r\nHost: x\r\n\r\n";
  const std::string cr = "a CR not followed by LF";
  const std::string data = "a chunk's data not followed by CRLF";
  struct example {
    std::string stream;
    refusal_kind kind;
    std::string why;
  };
  const std::vector<example> examples{
      {chunked + "5\r\nhelloXY0\r\n\r\n" + next, refusal_kind::malformed, data},
      {chunked + "5\r\nhello\nX0\r\n\r\n" + next, refusal_kind::malformed,
       data},
      {chunked + "5\r\nhello\rX0\r\n\r\n" + next, refusal_kind::malformed, cr},
      {chunked + "5\rXhello\r\n0\r\n\r\n" + next, refusal_kind::malformed, cr},
      {chunked + "5;a=b\rc\r\nhello\r\n0\r\n\r\n", refusal_kind::malformed, cr},
      {chunked + "5\r\nhello\r\n0\r\n\rX" + next, refusal_kind::malformed, cr},
      {chunked + "5\r\nhello\r\n0\r\nT: v\r\n\rX" + next,
       refusal_kind::malformed, cr},
      {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\rXabc" + next,
       refusal_kind::malformed, cr},
      {"GET / HTTP/1.1\r\nHost: x\r\n\rG" + next, refusal_kind::malformed, cr},
      {"\rGET / HTTP/1.1\r\nHost: x\r\n\r\n", refusal_kind::malformed, cr},
      // Bodies hold any byte; bare LFs end lines (RFC 9112 §2.2 allows it).
      {chunked + "6\r\n\r\r\n\n\r\n\r\n1\r\n\r\r\n0\r\n\r\n" + next,
       refusal_kind::none, ""},
      {sized + "\r\rX\n\r\r" + next, refusal_kind::none, ""},
      {chunked + "5\r\nhello\r\n0\r\nT: v\r\n\r\n" + next, refusal_kind::none,
       ""},
      {"\r\nGET / HTTP/1.1\nHost: x\n\n" + next, refusal_kind::none, ""},
  };
  for (const auto& ex : examples)
    for (size_t step : {size_t{1}, size_t{2}, size_t{5}, size_t{100000}})
      BOOST_TEST_CONTEXT("'" << ex.stream.substr(0, 90) << "' fed " << step
                             << " bytes at a time") {
        auto [kind, why] = refusal_fed(ex.stream, step);
        BOOST_TEST((kind == ex.kind));
        BOOST_TEST(why == ex.why);
      }
  // Refused where the bad line end is: the request it ends is not taken
  // for one that ended before it (the parser would read on), one before
  // it in the same bytes is.
  continue_tracker alone{resized::http::request_limits{1 << 20}};
  auto first = chunked + "0\r\n\rX" + next;
  alone.feed(first.data(), first.size());
  BOOST_TEST((alone.refused() == refusal_kind::malformed));
  BOOST_TEST(!alone.refused_behind());
  continue_tracker behind{resized::http::request_limits{1 << 20}};
  auto second = next + "GET / HTTP/1.1\r\nHost: x\r\n\rX" + next;
  behind.feed(second.data(), second.size());
  BOOST_TEST((behind.refused() == refusal_kind::malformed));
  BOOST_TEST(behind.refused_behind());
}

BOOST_AUTO_TEST_SUITE_END()
