// Fuzzes who a submission counts against (common/client_identity.hpp): the
// input is "<peer>\n<X-Forwarded-For value>", read behind a fixed set of
// trusted proxies, and the same value read as an RFC 7239 Forwarded line;
// and the whole input as an address and as a range.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/client_identity.hpp"
#include "fuzz_support.hpp"

using namespace resized;

namespace {

const std::vector<ip_network>& proxies() {
  static const std::vector<ip_network> nets = [] {
    std::vector<ip_network> out;
    for (auto* text : {"10.0.0.0/8", "127.0.0.1", "::1", "fd00::/8"})
      out.push_back(*parse_network(text));
    return out;
  }();
  return nets;
}

// The address an identity names ("ip:<address>" or "ip:<prefix>/64").
std::string_view named(std::string_view id) {
  id.remove_prefix(3);
  if (auto slash = id.find('/'); slash != std::string_view::npos)
    id = id.substr(0, slash);
  return id;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in{reinterpret_cast<const char*>(data), size};
  if (auto a = parse_ip(in)) {
    ip_network self{*a, 128};
    fuzz::check(self.contains(*a), "an address outside its own /128");
  }
  if (auto net = parse_network(in)) {
    fuzz::check(net->prefix <= 128, "prefix past 128 bits");
    fuzz::check(net->contains(net->base), "a range without its base");
  }
  auto nl = in.find('\n');
  auto peer = in.substr(0, nl);
  auto xff =
      nl == std::string_view::npos ? std::string_view{} : in.substr(nl + 1);
  auto id = client_identity(std::nullopt, peer, xff, proxies());
  fuzz::check(id.rfind("ip:", 0) == 0, "an identity not of an address");
  auto from_peer = client_identity(std::nullopt, peer, "", proxies());
  if (id == "ip:?") {
    fuzz::check(!parse_ip(peer), "a readable peer named ip:?");
    return 0;
  }
  fuzz::check(parse_ip(named(id)).has_value(), "names no address");
  // The header counts only when the peer is a trusted proxy.
  auto p = parse_ip(peer);
  fuzz::check(p.has_value(), "an unreadable peer named an address");
  bool trusted = false;
  for (const auto& net : proxies())
    trusted = trusted || net.contains(*p);
  if (!trusted)
    fuzz::check(id == from_peer, "an untrusted peer's header was read");
  // The value as a Forwarded line: a list the walk reads, whose entries
  // hold no comma, naming an address the same way.
  auto list = forwarded_for_list(xff);
  auto via_forwarded = client_identity(std::nullopt, peer, list, proxies());
  fuzz::check(parse_ip(named(via_forwarded)).has_value(),
              "Forwarded names no address");
  if (!trusted)
    fuzz::check(via_forwarded == from_peer,
                "an untrusted peer's Forwarded was read");
  // With an API key the key is the client, whatever the header says.
  fuzz::check(client_identity(size_t{0}, peer, xff, proxies()) == "key:1",
              "a key did not name the client");
  return 0;
}
