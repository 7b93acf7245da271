// A bounded LRU map: at most `max_entries` entries and `max_weight` total
// weight (bytes, for images). Not thread-safe: owned by one actor.
#pragma once

#include <cstdint>
#include <list>
#include <unordered_map>
#include <utility>

namespace resized::actors {

template <class K, class V>
class lru_cache {
public:
  lru_cache(size_t max_entries, uint64_t max_weight = UINT64_MAX)
      : max_entries_(max_entries), max_weight_(max_weight) {}

  // Moves keep the index's list iterators valid; copies would not.
  lru_cache(lru_cache&&) = default;
  lru_cache& operator=(lru_cache&&) = default;
  lru_cache(const lru_cache&) = delete;
  lru_cache& operator=(const lru_cache&) = delete;

  /// Inserts or replaces; evicts least recently used entries to fit. An entry
  /// heavier than max_weight is not stored at all.
  void put(const K& key, V value, uint64_t weight = 0) {
    erase(key);
    if (weight > max_weight_ || max_entries_ == 0)
      return;
    order_.emplace_front(key, entry{std::move(value), weight});
    index_[key] = order_.begin();
    weight_ += weight;
    while (order_.size() > max_entries_ || weight_ > max_weight_)
      evict_last();
  }

  /// Finds and marks as most recently used; nullptr if absent.
  V* get(const K& key) {
    auto i = index_.find(key);
    if (i == index_.end())
      return nullptr;
    order_.splice(order_.begin(), order_, i->second);
    return &i->second->second.value;
  }

  void erase(const K& key) {
    auto i = index_.find(key);
    if (i == index_.end())
      return;
    weight_ -= i->second->second.weight;
    order_.erase(i->second);
    index_.erase(i);
  }

  size_t size() const { return order_.size(); }
  uint64_t weight() const { return weight_; }
  uint64_t evictions() const { return evictions_; }

private:
  struct entry {
    V value;
    uint64_t weight;
  };
  using list_type = std::list<std::pair<K, entry>>;

  void evict_last() {
    auto& last = order_.back();
    weight_ -= last.second.weight;
    index_.erase(last.first);
    order_.pop_back();
    ++evictions_;
  }

  size_t max_entries_;
  uint64_t max_weight_;
  uint64_t weight_ = 0;
  uint64_t evictions_ = 0;
  list_type order_;
  std::unordered_map<K, typename list_type::iterator> index_;
};

} // namespace resized::actors
