// Who a submission counts against for its share of the queue: API key,
// peer address, X-Forwarded-For behind trusted proxies only.
#include <boost/test/unit_test.hpp>

#include "common/client_identity.hpp"
#include "http/connection_limit.hpp"

using namespace resized;

namespace {

std::vector<ip_network> nets(std::initializer_list<const char*> list) {
  std::vector<ip_network> out;
  for (auto* text : list) {
    auto net = parse_network(text);
    BOOST_REQUIRE_MESSAGE(net.has_value(), text);
    out.push_back(*net);
  }
  return out;
}

std::string who(std::string_view peer, std::string_view xff = "",
                const std::vector<ip_network>& trusted = {}) {
  return client_identity(std::nullopt, peer, xff, trusted);
}

} // namespace

BOOST_AUTO_TEST_SUITE(client_identity_rules)

BOOST_AUTO_TEST_CASE(addresses_parse_in_the_forms_proxies_write) {
  BOOST_TEST(parse_ip("203.0.113.7").has_value());
  BOOST_TEST(parse_ip(" 203.0.113.7 ").has_value());
  BOOST_TEST(parse_ip("203.0.113.7:5123").has_value());
  BOOST_TEST(parse_ip("2001:db8::1").has_value());
  BOOST_TEST(parse_ip("[2001:db8::1]:443").has_value());
  BOOST_TEST(parse_ip("[2001:db8::1]").has_value());
  for (auto* bad : {"", "unknown", "203.0.113", "203.0.113.7:", "203.0.113.7:x",
                    "[203.0.113.7]", "[2001:db8::1", "2001:db8::1]:443",
                    "host.example:80", "203.0.113.7:123456", "1.2.3.4/8"})
    BOOST_TEST(!parse_ip(bad).has_value(), bad);
  // IPv4 and its IPv4-mapped IPv6 form (a dual-stack socket) are one.
  BOOST_TEST((parse_ip("::ffff:203.0.113.7")->bytes ==
              parse_ip("203.0.113.7")->bytes));
  BOOST_TEST(parse_ip("::ffff:203.0.113.7")->v4());
  BOOST_TEST(!parse_ip("2001:db8::1")->v4());
  // A NUL inside is not the end of the address (inet_pton would stop there).
  using namespace std::string_literals;
  BOOST_TEST(!parse_ip("::1\0junk"s).has_value());
  BOOST_TEST(!parse_ip("203.0.113.7\0"s).has_value());
  BOOST_TEST(!parse_network("10.0.0.0\0/8"s).has_value());
}

BOOST_AUTO_TEST_CASE(networks_contain_what_their_prefix_says) {
  auto ten = parse_network("10.0.0.0/8");
  BOOST_REQUIRE(ten.has_value());
  BOOST_TEST(ten->contains(*parse_ip("10.200.3.4")));
  BOOST_TEST(ten->contains(*parse_ip("::ffff:10.1.1.1")));
  BOOST_TEST(!ten->contains(*parse_ip("11.0.0.1")));
  BOOST_TEST(!ten->contains(*parse_ip("::a00:1"))); // not IPv4-mapped
  auto one = parse_network("192.0.2.10");
  BOOST_REQUIRE(one.has_value());
  BOOST_TEST(one->contains(*parse_ip("192.0.2.10")));
  BOOST_TEST(!one->contains(*parse_ip("192.0.2.11")));
  auto v6 = parse_network("fd00::/8");
  BOOST_REQUIRE(v6.has_value());
  BOOST_TEST(v6->contains(*parse_ip("fd12:3456::1")));
  BOOST_TEST(!v6->contains(*parse_ip("fe80::1")));
  BOOST_TEST(parse_network("0.0.0.0/0")->contains(*parse_ip("198.51.100.1")));
  BOOST_TEST(!parse_network("0.0.0.0/0")->contains(*parse_ip("2001:db8::1")));
  for (auto* bad :
       {"10.0.0.0/33", "fd00::/129", "10.0.0.0/", "10.0.0.0/x", "10.0.0.0/8/8",
        "10.0.0/8", "proxy.example", "", "10.0.0.0/-1", "10.0.0.0/ 8"})
    BOOST_TEST(!parse_network(bad).has_value(), bad);
}

BOOST_AUTO_TEST_CASE(an_api_key_names_the_client) {
  auto trusted = nets({"127.0.0.1"});
  BOOST_TEST(client_identity(size_t{0}, "203.0.113.7", "", {}) == "key:1");
  // Wherever it comes from, the key is the client.
  BOOST_TEST(client_identity(size_t{2}, "127.0.0.1", "198.51.100.1", trusted) ==
             "key:3");
}

BOOST_AUTO_TEST_CASE(without_trusted_proxies_the_peer_is_the_client) {
  BOOST_TEST(who("203.0.113.7") == "ip:203.0.113.7");
  BOOST_TEST(who("::ffff:203.0.113.7") == "ip:203.0.113.7");
  // A client's own X-Forwarded-For proves nothing.
  BOOST_TEST(who("203.0.113.7", "198.51.100.1") == "ip:203.0.113.7");
  // IPv6 clients count by /64.
  BOOST_TEST(who("2001:db8:1:2:aaaa::1") == "ip:2001:db8:1:2::/64");
  BOOST_TEST(who("2001:db8:1:2:bbbb::9") == "ip:2001:db8:1:2::/64");
  BOOST_TEST(who("2001:db8:1:3::1") == "ip:2001:db8:1:3::/64");
  BOOST_TEST(who("") == "ip:?");
}

BOOST_AUTO_TEST_CASE(behind_trusted_proxies_the_rightmost_untrusted_hop) {
  auto trusted = nets({"10.0.0.0/8", "::1"});
  BOOST_TEST(who("10.0.0.5", "198.51.100.1", trusted) == "ip:198.51.100.1");
  // Entries left of the first untrusted hop were written by the client.
  BOOST_TEST(who("10.0.0.5", "1.1.1.1, 198.51.100.1", trusted) ==
             "ip:198.51.100.1");
  // Proxies in a chain are skipped, however the header was split.
  BOOST_TEST(who("10.0.0.5", "1.1.1.1, 198.51.100.1, 10.2.3.4", trusted) ==
             "ip:198.51.100.1");
  BOOST_TEST(who("::1", "198.51.100.1:5123,10.2.3.4", trusted) ==
             "ip:198.51.100.1");
  BOOST_TEST(who("10.0.0.5", "[2001:db8:9::7]:443", trusted) ==
             "ip:2001:db8:9::/64");
  // No header, an empty one, or only proxies: the last proxy known.
  BOOST_TEST(who("10.0.0.5", "", trusted) == "ip:10.0.0.5");
  BOOST_TEST(who("10.0.0.5", " , ", trusted) == "ip:10.0.0.5");
  BOOST_TEST(who("10.0.0.5", "10.9.9.9", trusted) == "ip:10.9.9.9");
  // Not an address: the proxy that wrote it is as far as the walk goes.
  BOOST_TEST(who("10.0.0.5", "198.51.100.1, unknown", trusted) ==
             "ip:10.0.0.5");
  BOOST_TEST(who("10.0.0.5", "198.51.100.1, 10.2.3.4, _hidden", trusted) ==
             "ip:10.0.0.5");
  // A peer that is not a trusted proxy: its header is not read.
  BOOST_TEST(who("203.0.113.7", "198.51.100.1", trusted) == "ip:203.0.113.7");
}

BOOST_AUTO_TEST_SUITE_END()

// http.forwarded-header=Forwarded: RFC 7239's for= nodes as the list the
// identity walks, right to left as X-Forwarded-For.
BOOST_AUTO_TEST_SUITE(forwarded_header)

BOOST_AUTO_TEST_CASE(the_rfc_examples) {
  BOOST_TEST(forwarded_for_list("for=\"_gazonk\"") == "_gazonk");
  BOOST_TEST(forwarded_for_list("For=\"[2001:db8:cafe::17]:4711\"") ==
             "[2001:db8:cafe::17]:4711");
  BOOST_TEST(forwarded_for_list("for=192.0.2.60;proto=http;by=203.0.113.43") ==
             "192.0.2.60");
  BOOST_TEST(forwarded_for_list("for=192.0.2.43, for=198.51.100.17") ==
             "192.0.2.43,198.51.100.17");
  BOOST_TEST(forwarded_for_list("for=unknown, for=192.0.2.1 ;by=x") ==
             "unknown,192.0.2.1");
}

BOOST_AUTO_TEST_CASE(what_names_no_node_is_unknown) {
  // No for= in an element; an escaped quote inside a quoted value; empty
  // list elements are skipped.
  BOOST_TEST(forwarded_for_list("proto=https;host=x") == "unknown");
  BOOST_TEST(forwarded_for_list("for=\"1.2.3.4, 5.6.7.8\"") == "unknown");
  BOOST_TEST(forwarded_for_list("for=\"a\\\"b\"") == "a\"b");
  BOOST_TEST(forwarded_for_list(", ,for=192.0.2.1,,") == "192.0.2.1");
  BOOST_TEST(forwarded_for_list("").empty());
  // A syntax error ends the list with one unknown, however far it got.
  BOOST_TEST(forwarded_for_list("for=192.0.2.1, for=\"198.51.100.7") ==
             "192.0.2.1,unknown");
  BOOST_TEST(forwarded_for_list("for=192.0.2.1, for") == "192.0.2.1,unknown");
  BOOST_TEST(forwarded_for_list("for=192.0.2.1 junk") == "unknown");
  BOOST_TEST(forwarded_for_list("=x") == "unknown");
  BOOST_TEST(forwarded_for_list("for=") == "unknown");
}

BOOST_AUTO_TEST_CASE(the_client_behind_trusted_proxies) {
  auto trusted = nets({"10.0.0.0/8"});
  auto via = [&](std::string_view line) {
    return client_identity(std::nullopt, "10.0.0.5", forwarded_for_list(line),
                           trusted);
  };
  BOOST_TEST(via("for=198.51.100.7;proto=https") == "ip:198.51.100.7");
  BOOST_TEST(via("for=\"[2001:db8:cafe::17]:4711\"") ==
             "ip:2001:db8:cafe::/64");
  // What a client wrote to the left of the proxies' elements counts for
  // nothing; the proxies' own are walked through.
  BOOST_TEST(via("for=203.0.113.9, for=198.51.100.7, for=10.1.1.1") ==
             "ip:198.51.100.7");
  // An obfuscated or unknown node stops the walk at the proxy naming it.
  BOOST_TEST(via("for=198.51.100.7, for=_hidden") == "ip:10.0.0.5");
  // A quote the client left open hides nothing: the line ends unknown.
  BOOST_TEST(via("for=\"198.51.100.7, for=192.0.2.1") == "ip:10.0.0.5");
}

BOOST_AUTO_TEST_SUITE_END()

// http.max-connections-per-client: the bookkeeping behind the socket's
// admission (expect_continue.hpp), without sockets.
BOOST_AUTO_TEST_SUITE(connection_limit_rules)

ip_address ip(const char* text) {
  auto a = parse_ip(text);
  BOOST_REQUIRE_MESSAGE(a.has_value(), text);
  return *a;
}

BOOST_AUTO_TEST_CASE(a_client_holds_at_most_its_share) {
  http::connection_limit limit{3, {}};
  BOOST_TEST(limit.admit(1, ip("203.0.113.7")));
  BOOST_TEST(limit.admit(2, ip("203.0.113.7")));
  BOOST_TEST(limit.admit(3, ip("203.0.113.7")));
  BOOST_TEST(!limit.admit(4, ip("203.0.113.7")));
  // Another address is another client.
  BOOST_TEST(limit.admit(5, ip("203.0.113.8")));
  BOOST_TEST(limit.held_by(ip("203.0.113.7")) == 3u);
  BOOST_TEST(limit.open_total() == 4u);
  // A refused connection's close changes nothing; a counted one's frees a
  // place, once.
  limit.closed(4);
  BOOST_TEST(limit.held_by(ip("203.0.113.7")) == 3u);
  limit.closed(2);
  limit.closed(2);
  BOOST_TEST(limit.held_by(ip("203.0.113.7")) == 2u);
  BOOST_TEST(limit.admit(6, ip("203.0.113.7")));
  BOOST_TEST(!limit.admit(7, ip("203.0.113.7")));
  // An id admitted already is not counted twice.
  BOOST_TEST(limit.admit(6, ip("203.0.113.7")));
  BOOST_TEST(limit.held_by(ip("203.0.113.7")) == 3u);
  for (uint64_t id : {1, 3, 5, 6})
    limit.closed(id);
  BOOST_TEST(limit.open_total() == 0u);
  BOOST_TEST(limit.held_by(ip("203.0.113.7")) == 0u);
}

BOOST_AUTO_TEST_CASE(an_ipv6_client_is_its_slash_64) {
  http::connection_limit limit{2, {}};
  BOOST_TEST(limit.admit(1, ip("2001:db8:1:2::1")));
  BOOST_TEST(limit.admit(2, ip("2001:db8:1:2:ffff::9")));
  BOOST_TEST(!limit.admit(3, ip("2001:db8:1:2:1234::")));
  BOOST_TEST(limit.admit(4, ip("2001:db8:1:3::1")));
  // IPv4 over a dual-stack socket is the same client as over IPv4.
  BOOST_TEST(limit.admit(5, ip("::ffff:192.0.2.1")));
  BOOST_TEST(limit.admit(6, ip("192.0.2.1")));
  BOOST_TEST(!limit.admit(7, ip("192.0.2.1")));
  BOOST_TEST(address_identity(client_block(ip("2001:db8:1:2:abcd::1"))) ==
             "ip:2001:db8:1:2::/64");
}

BOOST_AUTO_TEST_CASE(trusted_proxies_are_counted_never_refused) {
  http::connection_limit limit{2, nets({"10.0.0.0/8"})};
  for (uint64_t id = 1; id <= 10; ++id)
    BOOST_TEST(limit.admit(id, ip("10.1.2.3")));
  BOOST_TEST(limit.held_by(ip("10.1.2.3")) == 10u);
  BOOST_TEST(limit.open_total() == 10u);
  BOOST_TEST(limit.admit(11, ip("192.0.2.1")));
  BOOST_TEST(limit.admit(12, ip("192.0.2.1")));
  BOOST_TEST(!limit.admit(13, ip("192.0.2.1")));
}

BOOST_AUTO_TEST_CASE(each_change_reports_the_count) {
  std::vector<size_t> counts;
  http::connection_limit limit{1, {}, [&](size_t n) { counts.push_back(n); }};
  BOOST_TEST(limit.admit(1, ip("192.0.2.1")));
  BOOST_TEST(!limit.admit(2, ip("192.0.2.1"))); // refused: no change
  BOOST_TEST(limit.admit(3, ip("192.0.2.2")));
  limit.closed(2); // never counted: no change
  limit.closed(1);
  BOOST_TEST(counts == (std::vector<size_t>{1, 2, 1}));
}

BOOST_AUTO_TEST_CASE(zero_is_no_limit) {
  http::connection_limit limit{0, {}};
  for (uint64_t id = 1; id <= 1000; ++id)
    BOOST_TEST_REQUIRE(limit.admit(id, ip("192.0.2.1")));
  BOOST_TEST(limit.open_total() == 1000u);
}

BOOST_AUTO_TEST_SUITE_END()
