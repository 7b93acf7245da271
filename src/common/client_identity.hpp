// Who a submission counts against for the per-client share of an API
// node's queue (queue.max-per-client, queue.max-bytes-per-client): the API
// key it presented, else the address it comes from, read through
// X-Forwarded-For only when the connection is from a trusted proxy
// (http.trusted-proxies). Pure functions, unit-tested without sockets.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace resized {

/// An IP address. IPv4 is held as IPv4-mapped IPv6 (::ffff:a.b.c.d), so a
/// single comparison serves both families, and an IPv4 client reaching a
/// dual-stack socket is the same client as over IPv4.
struct ip_address {
  std::array<uint8_t, 16> bytes{};
  bool v4() const;
};

/// A numeric IPv4 or IPv6 address (inet_pton: no host names). Also takes
/// the forms proxies write with a port: "203.0.113.7:5123",
/// "[2001:db8::1]:443". nullopt for anything else.
std::optional<ip_address> parse_ip(std::string_view text);

/// An address range, in the 128-bit space (an IPv4 /8 is a /104 here).
struct ip_network {
  ip_address base;
  unsigned prefix = 128;
  bool contains(const ip_address& a) const;
};

/// "10.0.0.0/8", "fd00::/8", or one address (a /32 or /128). nullopt when
/// the address or the prefix length is not valid for its family.
std::optional<ip_network> parse_network(std::string_view text);

/// The address as a client counts: an IPv4 address itself, an IPv6 one as
/// its /64 (the rest of the address cleared): one host is commonly given a
/// whole /64, and could otherwise count as a new client per address.
ip_address client_block(const ip_address& a);

/// "ip:203.0.113.7", or "ip:2001:db8:1:2::/64": client_block(a) as
/// client_identity names it.
std::string address_identity(const ip_address& a);

/// Whether `a` is in one of `networks`.
bool in_networks(const std::vector<ip_network>& networks, const ip_address& a);

/// The nodes one `Forwarded` field line (RFC 7239) names in its `for=`
/// parameters, in order, as an X-Forwarded-For list ("192.0.2.60,
/// [2001:db8:cafe::17]:4711") for client_identity. An element without
/// `for=`, or whose value is no address form ("unknown", an obfuscated
/// "_hidden"), is "unknown" there, which stops the walk as any entry that
/// is not an address does. A syntax error ends the list with one "unknown"
/// in place of the rest: the line's rightmost entry is then unknown, so a
/// client cannot hide the element a proxy appended behind a quote it left
/// open. Field lines are parsed one by one (a quote cannot span two).
std::string forwarded_for_list(std::string_view field_line);

/// The client a request comes from, as the share counts it:
/// - "key:<n>" when it presented the n-th configured API key (from 1; the
///   key itself never appears in logs or errors);
/// - otherwise "ip:<address>" of the connection's peer, or, when the peer
///   is a trusted proxy, of the rightmost X-Forwarded-For entry that is not
///   one (entries to the left of it were written by the client and prove
///   nothing). An entry that is not an address stops the walk at the proxy
///   that wrote it.
/// - An IPv6 client counts as its /64 ("ip:2001:db8:1:2::/64"): one host is
///   commonly given a whole /64, and could otherwise take a new share per
///   address.
/// `forwarded_for` is every X-Forwarded-For value joined by commas ("" when
/// none). An unreadable peer is "ip:?" (all such requests share a share).
std::string client_identity(std::optional<size_t> key_index,
                            std::string_view peer,
                            std::string_view forwarded_for,
                            const std::vector<ip_network>& trusted_proxies);

} // namespace resized
