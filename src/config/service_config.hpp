// CAF's actor_system_config extended with resized's keys. Parsing (INI file
// from --config-file plus --section.key=value) is CAF's; `load` first checks
// the INI file entry by entry (check_ini: CAF 0.17 ignores wrong types and
// unknown keys there), then copies the values into a plain
// `service_settings` and validates every key.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <caf/actor_system_config.hpp>

#include "config/settings.hpp"

namespace resized::config {

class service_config : public caf::actor_system_config {
public:
  service_config();

  using caf::actor_system_config::load; // load<Module>() stays visible

  /// Parses argv (and the INI file it names), validates, fills `out`.
  /// Returns the problems found, each naming its key; empty = valid.
  std::vector<std::string> load(int argc, char** argv, service_settings& out);

  /// What --dump-config prints: CAF's settings plus the value in effect of
  /// every key of ours, set or not (CAF's own dump shows only keys given).
  caf::settings dump_content() const override;

  /// True when the command line asked for --dump-config. `load` takes the
  /// flag away from CAF, which would print the dump while parsing, before
  /// any value is validated: main prints it only for a valid configuration.
  bool dump_requested() const { return dump_requested_; }

private:
  /// Checks CAF's own keys (scheduler, middleman, logger) a node cannot run
  /// with: CAF 0.17 takes any value of the declared type.
  void check_caf_keys(std::vector<std::string>& errors) const;

  bool dump_requested_ = false;
  // Raw values as CAF parses them; checked and converted by `load`.
  std::string http_address_ = "0.0.0.0";
  int64_t http_port_ = 5000;
  std::string http_public_url_;
  std::string http_trusted_proxies_;
  std::string http_cors_origins_;
  std::string http_forwarded_header_ = "X-Forwarded-For";
  int64_t http_io_threads_ = 2;
  int64_t http_max_connections_ = 1024;
  int64_t http_max_connections_per_client_ = 128;
  int64_t http_max_receiving_bytes_ = 256ll << 20;
  int64_t http_max_url_bytes_ = 8192;
  int64_t http_max_header_bytes_ = 16384;
  int64_t http_max_header_count_ = 100;
  int64_t http_read_buffer_bytes_ = 65536;
  int64_t http_max_poll_wait_ = 20;
  int64_t http_read_timeout_ = 30;
  int64_t http_write_timeout_ = 30;
  int64_t http_handle_timeout_ = 30;
  int64_t http_reply_timeout_ms_ = 5000;
  int64_t http_retry_after_ = 2;
  std::string redis_host_ = "127.0.0.1";
  int64_t redis_port_ = 6379;
  int64_t redis_db_ = 0;
  std::string redis_password_;
  std::string redis_key_prefix_ = "resized:";
  int64_t redis_result_ttl_ = 86400;
  int64_t redis_timeout_ms_ = 2000;
  std::string cluster_role_ = "standalone";
  std::string cluster_node_name_;
  std::string cluster_bind_address_ = "0.0.0.0";
  int64_t cluster_port_ = 4000;
  std::string cluster_api_nodes_;
  std::string cluster_advertise_;
  int64_t cluster_heartbeat_ms_ = 1000;
  int64_t cluster_connection_timeout_ms_ = 5000;
  int64_t cluster_reconnect_max_ms_ = 5000;
  int64_t cluster_max_pending_ = 64;
  int64_t cluster_lease_ms_ = 10000;
  int64_t cluster_lease_renew_ms_ = 3000;
  int64_t cluster_adopt_ms_ = -1; // -1: cluster.lease-ms
  int64_t resize_max_attempts_ = 3;
  int64_t resize_nice_ = 5;
  std::string resize_journal_;
  int64_t resize_decode_bytes_per_worker_ = 256ll << 20;
  int64_t resize_pool_size_ = 2;
  int64_t resize_vips_concurrency_ = 1;
  int64_t resize_task_timeout_ms_ = 60000;
  int64_t queue_capacity_ = 256;
  int64_t queue_max_bytes_ = 256ll << 20;
  int64_t queue_max_per_client_ = 0;
  int64_t queue_max_bytes_per_client_ = 0;
  int64_t status_cache_entries_ = 10000;
  int64_t status_image_cache_bytes_ = 64ll << 20;
  int64_t status_recheck_ms_ = 1000;
  int64_t memory_arenas_ = memory::default_arenas;
  int64_t memory_trim_interval_ms_ = 1000;
  int64_t memory_trim_threshold_ = 16ll << 20;
  int64_t memory_busy_trim_threshold_ = 128ll << 20;
  int64_t memory_mmap_threshold_ = memory::default_mmap_threshold;
  int64_t memory_heap_top_bytes_ = memory::default_heap_top_bytes;
  // A string, not a bool: CAF 0.17 takes a bool on the command line as a
  // bare flag (--key, no value), which could never turn this one off.
  std::string memory_huge_pages_ = "on";
  int64_t limits_max_body_bytes_ = 64ll << 20;
  int64_t limits_max_pixels_ = 50'000'000;
  int64_t limits_max_dimension_ = 4096;
  int64_t limits_max_avif_pixels_ = 4194304;
  std::string limits_truncated_ = "fail";
  int64_t defaults_width_ = 100;
  int64_t defaults_height_ = 100;
  std::string defaults_mode_ = "fill";
  std::string defaults_format_ = "jpeg";
  int64_t defaults_quality_ = 85;
  std::string log_level_ = "info";
  std::string log_format_ = "logfmt";
  std::string log_access_ = "all";
  int64_t shutdown_grace_ = 20;
  std::string auth_api_keys_;
  bool auth_protect_metrics_ = false;
  bool auth_protect_cluster_ = false;
};

/// `settings` as an INI file that --config-file reads back: a `[section]`
/// per section (`[a.b]` below it), `key=value` lines in CAF's notation
/// (strings in double quotes, atoms in single ones, lists in brackets,
/// durations with a unit CAF's parser reads). `notes` (full key -> text) are
/// written as `;` comments above their keys. A value no INI line can give
/// (CAF's "unlimited" scheduler.max-throughput) is written as a comment.
std::string dump_text(const caf::settings& settings,
                      const std::map<std::string, std::string>& notes = {});

} // namespace resized::config
