#include "actors/lookup_cache.hpp"

namespace resized::actors {

namespace {

bool live(int64_t expires_at_ms) {
  return expires_at_ms > now_ms();
}

template <class V>
std::optional<V> copy_of(lru_cache<std::string, V>& cache,
                         const std::string& token) {
  if (auto* hit = cache.get(token))
    return *hit;
  return std::nullopt;
}

} // namespace

lookup_cache::lookup_cache(size_t entries, uint64_t image_bytes)
    : records_(entries), images_(entries, image_bytes) {}

std::optional<lookup_cache::record_entry>
lookup_cache::record(const std::string& token) {
  std::lock_guard<std::mutex> lock{mutex_};
  return copy_of(records_, token);
}

void lookup_cache::put_record(const std::string& token, record_entry entry) {
  std::lock_guard<std::mutex> lock{mutex_};
  records_.put(token, std::move(entry));
}

void lookup_cache::erase_record(const std::string& token) {
  std::lock_guard<std::mutex> lock{mutex_};
  records_.erase(token);
}

void lookup_cache::put_image(const std::string& token, image_entry entry) {
  auto weight = entry.bytes ? entry.bytes->size() : 0;
  std::lock_guard<std::mutex> lock{mutex_};
  images_.put(token, std::move(entry), weight);
}

void lookup_cache::erase_image(const std::string& token) {
  std::lock_guard<std::mutex> lock{mutex_};
  images_.erase(token);
}

std::optional<task_record>
lookup_cache::current_record(const std::string& token) {
  std::lock_guard<std::mutex> lock{mutex_};
  auto* hit = records_.get(token);
  if (hit == nullptr || !live(hit->expires_at_ms))
    return std::nullopt;
  return hit->record;
}

std::shared_ptr<const std::string>
lookup_cache::live_image(const std::string& token) {
  std::lock_guard<std::mutex> lock{mutex_};
  auto* hit = images_.get(token);
  if (hit == nullptr || !live(hit->expires_at_ms))
    return nullptr;
  return hit->bytes;
}

std::optional<image_blob> lookup_cache::result(const std::string& token) {
  std::lock_guard<std::mutex> lock{mutex_};
  auto* rec = records_.get(token);
  if (rec == nullptr || rec->record.status != task_status::success ||
      !live(rec->expires_at_ms))
    return std::nullopt;
  auto* img = images_.get(token);
  if (img == nullptr || !live(img->expires_at_ms))
    return std::nullopt;
  return image_blob{img->bytes, rec->record.options.format, rec->record.etag};
}

} // namespace resized::actors
