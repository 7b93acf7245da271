// How many connections one client may hold open at once on this node
// (http.max-connections-per-client). http.max-connections bounds the
// sockets of all clients together, and http.read-timeout lets each one send
// its request for up to that long: without a cap per client, one address
// opening connections and sending a byte now and then ("slowloris") holds
// every slot, and everyone else's connections wait in the listen backlog.
//
// A client is its address as the queue's share counts it (an IPv6 address
// as its /64). Connections from exempt networks (the trusted reverse
// proxies, which carry many clients' requests) are counted, never refused.
//
// Each connection RESTinio starts asks admit() before its first read (the
// socket layer, expect_continue.hpp, which answers a refused one 503
// too_many_connections and closes it); an admitted one counts until its
// close is reported. Pure bookkeeping, no sockets: unit-tested as it is;
// thread-safe (connections start and close on every io thread).
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/client_identity.hpp"

namespace resized::http {

class connection_limit {
public:
  /// per_client 0: no limit (connections are counted all the same).
  /// `on_count` is told the connections counted after each change, under
  /// the lock, so that what it records (a gauge) ends on the last count.
  connection_limit(size_t per_client, std::vector<ip_network> exempt,
                   std::function<void(size_t)> on_count = {});

  /// Connection `id` from `peer` is starting: true when it may go on (its
  /// client holds fewer than per_client, or `peer` is exempt), and then it
  /// counts against its client until closed(id). An id already counted is
  /// admitted again without counting twice.
  bool admit(uint64_t id, const ip_address& peer);
  /// Connection `id` closed. An id not counted (refused, or told twice)
  /// changes nothing.
  void closed(uint64_t id);

  size_t per_client() const { return per_client_; }
  /// Connections counted now (all clients, exempt ones too).
  size_t open_total() const;
  /// Connections counted against `peer`'s client now.
  size_t held_by(const ip_address& peer) const;

private:
  using key = std::string; // client_block(address): its 16 bytes
  static key key_of(const ip_address& a);

  const size_t per_client_;
  const std::vector<ip_network> exempt_;
  const std::function<void(size_t)> on_count_;
  mutable std::mutex mutex_;
  std::unordered_map<key, size_t> held_;   // client -> connections
  std::unordered_map<uint64_t, key> open_; // connection id -> its client
};

} // namespace resized::http
