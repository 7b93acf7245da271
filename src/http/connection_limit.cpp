#include "http/connection_limit.hpp"

namespace resized::http {

connection_limit::connection_limit(size_t per_client,
                                   std::vector<ip_network> exempt,
                                   std::function<void(size_t)> on_count)
    : per_client_(per_client),
      exempt_(std::move(exempt)),
      on_count_(std::move(on_count)) {}

connection_limit::key connection_limit::key_of(const ip_address& a) {
  auto block = client_block(a);
  return key(reinterpret_cast<const char*>(block.bytes.data()),
             block.bytes.size());
}

bool connection_limit::admit(uint64_t id, const ip_address& peer) {
  auto k = key_of(peer);
  std::lock_guard<std::mutex> lock{mutex_};
  if (open_.count(id) != 0)
    return true;
  auto it = held_.find(k);
  size_t held = it == held_.end() ? 0 : it->second;
  if (per_client_ != 0 && held >= per_client_ && !in_networks(exempt_, peer))
    return false;
  if (it == held_.end())
    it = held_.emplace(k, 0).first;
  ++it->second;
  open_.emplace(id, std::move(k));
  if (on_count_)
    on_count_(open_.size());
  return true;
}

void connection_limit::closed(uint64_t id) {
  std::lock_guard<std::mutex> lock{mutex_};
  auto at = open_.find(id);
  if (at == open_.end())
    return;
  auto it = held_.find(at->second);
  open_.erase(at);
  if (it != held_.end() && --it->second == 0)
    held_.erase(it);
  if (on_count_)
    on_count_(open_.size());
}

size_t connection_limit::open_total() const {
  std::lock_guard<std::mutex> lock{mutex_};
  return open_.size();
}

size_t connection_limit::held_by(const ip_address& peer) const {
  auto k = key_of(peer);
  std::lock_guard<std::mutex> lock{mutex_};
  auto it = held_.find(k);
  return it == held_.end() ? 0 : it->second;
}

} // namespace resized::http
