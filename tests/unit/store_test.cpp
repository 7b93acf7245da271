// src/store: key layout and record codec (pure), then task_store against a
// private redis-server (one per suite; destructive tests start their own).
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <map>
#include <ostream>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "store/record_codec.hpp"
#include "store/task_store.hpp"
#include "support/printing.hpp"
#include "support/process.hpp"
#include "support/redis_server.hpp"

using namespace resized;
using namespace resized::store;
using namespace std::chrono_literals;

namespace {

/// A fresh random token per test: tests never share Redis keys.
std::string random_token() {
  static std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("{:016x}-{:016x}", rng(), rng());
}

/// A record with every field set to a non-default value.
task_record full_record(const std::string& token) {
  task_record rec;
  rec.token = token;
  rec.status = task_status::failure;
  rec.options.width = 640;
  rec.options.height = 0;
  rec.options.mode = imaging::fit_mode::force;
  rec.options.format = imaging::output_format::webp;
  rec.options.quality = 42;
  rec.input_bytes = 5'000'000'000ULL; // over 32 bits
  rec.width = 640;
  rec.height = 480;
  rec.output_bytes = 12345;
  rec.etag = "\"abc123\"";
  rec.error_code = "corrupt_image";
  rec.error_message = "VipsJpeg: premature end of file, line 2\nwith: colons";
  rec.submitted_at_ms = 1764394801123;
  rec.started_at_ms = 1764394801200;
  rec.finished_at_ms = 1764394801999;
  rec.node = "worker-2@10.0.0.7";
  rec.attempts = 2;
  return rec;
}

void check_equal(const task_record& a, const task_record& b) {
  BOOST_TEST(a.token == b.token);
  BOOST_TEST(a.status == b.status);
  BOOST_TEST(a.options.width == b.options.width);
  BOOST_TEST(a.options.height == b.options.height);
  BOOST_TEST(a.options.mode == b.options.mode);
  BOOST_TEST(a.options.format == b.options.format);
  BOOST_TEST(a.options.quality == b.options.quality);
  BOOST_TEST(a.input_bytes == b.input_bytes);
  BOOST_TEST(a.width == b.width);
  BOOST_TEST(a.height == b.height);
  BOOST_TEST(a.output_bytes == b.output_bytes);
  BOOST_TEST(a.etag == b.etag);
  BOOST_TEST(a.image_token == b.image_token);
  BOOST_TEST(a.error_code == b.error_code);
  BOOST_TEST(a.error_message == b.error_message);
  BOOST_TEST(a.submitted_at_ms == b.submitted_at_ms);
  BOOST_TEST(a.started_at_ms == b.started_at_ms);
  BOOST_TEST(a.finished_at_ms == b.finished_at_ms);
  BOOST_TEST(a.node == b.node);
  BOOST_TEST(a.attempts == b.attempts);
  BOOST_TEST_REQUIRE(a.policy.has_value() == b.policy.has_value());
  if (a.policy) {
    BOOST_TEST(a.policy->max_pixels == b.policy->max_pixels);
    BOOST_TEST(a.policy->max_dimension == b.policy->max_dimension);
    BOOST_TEST(a.policy->max_avif_pixels == b.policy->max_avif_pixels);
    BOOST_TEST(a.policy->max_input_bytes == b.policy->max_input_bytes);
    BOOST_TEST(a.policy->max_processing_ms == b.policy->max_processing_ms);
    BOOST_TEST(a.policy->fail_on_truncated == b.policy->fail_on_truncated);
  }
}

/// Replaces the value of `name` in `fields`.
field_list with_field(field_list fields, const std::string& name,
                      const std::string& value) {
  for (auto& [k, v] : fields)
    if (k == name)
      v = value;
  return fields;
}

/// The value of `name` in `fields`, "<missing>" when it is not there.
std::string value_of(const field_list& fields, const std::string& name) {
  for (const auto& [k, v] : fields)
    if (k == name)
      return v;
  return "<missing>";
}

/// Removes `name` from `fields`.
field_list without_field(field_list fields, const std::string& name) {
  field_list result;
  for (auto& f : fields)
    if (f.first != name)
      result.push_back(f);
  return result;
}

/// The failure message decode_fields gives for `fields` ("" on success).
std::string decode_error(const field_list& fields) {
  auto rec = decode_fields(fields);
  if (rec)
    return "";
  BOOST_TEST(rec.error().code == error_code::internal_error);
  return rec.error().message;
}

/// The failure message of `x`, "" when it holds a value.
template <class T>
std::string why(const outcome<T>& x) {
  return x.ok() ? std::string{} : x.error().message;
}

/// Milliseconds in `d`, for printable comparisons.
template <class Duration>
long ms(Duration d) {
  return static_cast<long>(
      std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
}

redis_settings settings_for(uint16_t port) {
  redis_settings s;
  s.port = port;
  s.connect_timeout = 1000ms;
  s.command_timeout = 1000ms;
  return s;
}

/// The suite's shared redis-server.
struct redis_fixture {
  redis_fixture() { server = new test::redis_server(); }
  ~redis_fixture() {
    delete server;
    server = nullptr;
  }
  static test::redis_server* server;
};

test::redis_server* redis_fixture::server = nullptr;

/// Per test: a store connected to the shared server.
struct store_fixture {
  test::redis_server& redis = *redis_fixture::server;
  task_store store{settings_for(redis.port())};
  std::string token = random_token();
};

} // namespace

BOOST_AUTO_TEST_SUITE(store)

// -- key layout ---------------------------------------------------------------

BOOST_AUTO_TEST_CASE(key_layout) {
  BOOST_TEST(task_key("resized:", "t1") == "resized:task:t1");
  BOOST_TEST(image_key("resized:", "t1") == "resized:image:t1");
  BOOST_TEST(task_key("staging:resized:", "abc") == "staging:resized:task:abc");
  BOOST_TEST(image_key("x/", "abc") == "x/image:abc");
  BOOST_TEST(content_index_key("resized:", "ab12:100x100:fill:jpeg:85") ==
             "resized:content:ab12:100x100:fill:jpeg:85");
  BOOST_TEST(redis_settings{}.key_prefix == "resized:");
  BOOST_TEST(lease_key("resized:", "api-2") == "resized:node:api-2");
  BOOST_TEST(finished_channel("resized:") == "resized:finished");
}

// -- record codec -------------------------------------------------------------

BOOST_AUTO_TEST_CASE(codec_round_trip_every_field) {
  auto rec = full_record("6f1c2f7e-9a43-4b1a-8f3e-0c2d4e5f6a7b");
  rec.image_token = "0f1c2f7e-9a43-4b1a-8f3e-0c2d4e5f6a7b";
  auto fields = encode_fields(rec);
  BOOST_TEST(fields.size() == 20u);
  auto decoded = decode_fields(fields);
  BOOST_TEST_REQUIRE(decoded.ok());
  check_equal(decoded.value(), rec);
}

BOOST_AUTO_TEST_CASE(codec_field_spelling) {
  auto fields = encode_fields(full_record("t"));
  auto get = [&](const std::string& name) { return value_of(fields, name); };
  BOOST_TEST(get("token") == "t");
  BOOST_TEST(get("status") == "FAILURE");
  BOOST_TEST(get("width_req") == "640");
  BOOST_TEST(get("height_req") == "0");
  BOOST_TEST(get("mode") == "force");
  BOOST_TEST(get("format") == "webp");
  BOOST_TEST(get("quality") == "42");
  BOOST_TEST(get("input_bytes") == "5000000000");
  BOOST_TEST(get("width") == "640");
  BOOST_TEST(get("height") == "480");
  BOOST_TEST(get("output_bytes") == "12345");
  BOOST_TEST(get("etag") == "\"abc123\"");
  BOOST_TEST(get("error_code") == "corrupt_image");
  BOOST_TEST(get("submitted_at") == "1764394801123");
  BOOST_TEST(get("started_at") == "1764394801200");
  BOOST_TEST(get("finished_at") == "1764394801999");
  BOOST_TEST(get("node") == "worker-2@10.0.0.7");
  BOOST_TEST(get("attempts") == "2");
}

// The accepting API node's policy travels with the record, so that the
// node which recovers or adopts the task runs it alike; a record without
// one writes no policy field (HSET then leaves a stored one alone), and a
// policy is read whole or not at all.
BOOST_AUTO_TEST_CASE(codec_keeps_the_accepting_nodes_policy) {
  auto rec = full_record("t");
  auto plain = encode_fields(rec);
  BOOST_TEST(plain.size() == 20u);
  for (const auto& [name, value] : plain)
    BOOST_TEST(name.rfind("limit_", 0) != 0, name);
  BOOST_TEST(!decode_fields(plain)->policy.has_value());

  imaging::limits policy;
  policy.max_pixels = 5'000'000'000ULL; // over 32 bits
  policy.max_dimension = 8000;
  policy.max_avif_pixels = 1'000'000;
  policy.max_input_bytes = 100u << 20;
  policy.max_processing_ms = 2500;
  policy.fail_on_truncated = false;
  rec.policy = policy;
  auto fields = encode_fields(rec);
  BOOST_TEST(fields.size() == 26u);
  auto get = [&](const std::string& name) { return value_of(fields, name); };
  BOOST_TEST(get("limit_max_pixels") == "5000000000");
  BOOST_TEST(get("limit_max_dimension") == "8000");
  BOOST_TEST(get("limit_max_avif_pixels") == "1000000");
  BOOST_TEST(get("limit_max_input_bytes") == "104857600");
  BOOST_TEST(get("limit_processing_ms") == "2500");
  BOOST_TEST(get("limit_truncated") == "serve");
  auto decoded = decode_fields(fields);
  BOOST_TEST_REQUIRE(decoded.ok());
  check_equal(decoded.value(), rec);
  rec.policy->fail_on_truncated = true;
  BOOST_TEST(decode_fields(encode_fields(rec))->policy->fail_on_truncated);

  // In part, or out of range: not made up, refused.
  BOOST_TEST(decode_error(without_field(fields, "limit_truncated")) ==
             "corrupt record field limit_truncated");
  BOOST_TEST(decode_error(without_field(fields, "limit_max_pixels")) ==
             "corrupt record field limit_max_pixels");
  BOOST_TEST(decode_error(with_field(fields, "limit_truncated", "warn")) ==
             "corrupt record field limit_truncated");
  BOOST_TEST(decode_error(with_field(fields, "limit_processing_ms", "0")) ==
             "corrupt record field limit_processing_ms");
  BOOST_TEST(decode_error(with_field(fields, "limit_max_dimension", "-5")) ==
             "corrupt record field limit_max_dimension");
  BOOST_TEST(decode_error(with_field(fields, "limit_max_avif_pixels", "")) ==
             "corrupt record field limit_max_avif_pixels");
}

BOOST_AUTO_TEST_CASE(codec_every_status_mode_format) {
  for (auto status : {task_status::pending, task_status::in_progress,
                      task_status::success, task_status::failure})
    for (auto mode : {imaging::fit_mode::fill, imaging::fit_mode::fit,
                      imaging::fit_mode::force})
      for (auto format :
           {imaging::output_format::jpeg, imaging::output_format::png,
            imaging::output_format::webp, imaging::output_format::avif}) {
        task_record rec;
        rec.token = "t";
        rec.status = status;
        rec.options.mode = mode;
        rec.options.format = format;
        auto decoded = decode_fields(encode_fields(rec));
        BOOST_TEST_REQUIRE(decoded.ok());
        BOOST_TEST(decoded->status == status);
        BOOST_TEST(decoded->options.mode == mode);
        BOOST_TEST(decoded->options.format == format);
      }
}

BOOST_AUTO_TEST_CASE(codec_defaults_and_unknown_fields) {
  // Only the required fields: the rest keep task_record's defaults; a field
  // from a newer writer is ignored.
  auto decoded = decode_fields(
      {{"token", "t"}, {"status", "PENDING"}, {"priority", "high"}});
  BOOST_TEST_REQUIRE(decoded.ok());
  task_record defaults;
  defaults.token = "t";
  check_equal(decoded.value(), defaults);
}

BOOST_AUTO_TEST_CASE(codec_decode_errors) {
  auto fields = encode_fields(full_record("t"));
  BOOST_TEST(decode_error(fields) == "");
  BOOST_TEST(decode_error(with_field(fields, "status", "DONE")) ==
             "corrupt record field status");
  BOOST_TEST(decode_error(with_field(fields, "status", "pending")) ==
             "corrupt record field status");
  BOOST_TEST(decode_error(with_field(fields, "mode", "stretch")) ==
             "corrupt record field mode");
  BOOST_TEST(decode_error(with_field(fields, "format", "gif")) ==
             "corrupt record field format");
  BOOST_TEST(decode_error(with_field(fields, "width_req", "12px")) ==
             "corrupt record field width_req");
  BOOST_TEST(decode_error(with_field(fields, "quality", "")) ==
             "corrupt record field quality");
  BOOST_TEST(decode_error(with_field(fields, "input_bytes", "-1")) ==
             "corrupt record field input_bytes");
  BOOST_TEST(decode_error(with_field(fields, "width", "99999999999")) ==
             "corrupt record field width");
  BOOST_TEST(decode_error(with_field(fields, "height", " 1")) ==
             "corrupt record field height");
  BOOST_TEST(decode_error(with_field(fields, "output_bytes", "1.5")) ==
             "corrupt record field output_bytes");
  BOOST_TEST(decode_error(with_field(fields, "submitted_at", "now")) ==
             "corrupt record field submitted_at");
  BOOST_TEST(decode_error(with_field(fields, "started_at", "0x10")) ==
             "corrupt record field started_at");
  BOOST_TEST(decode_error(with_field(fields, "finished_at", "+5")) ==
             "corrupt record field finished_at");
  BOOST_TEST(decode_error(without_field(fields, "token")) ==
             "corrupt record field token");
  BOOST_TEST(decode_error(without_field(fields, "status")) ==
             "corrupt record field status");
}

// -- against a real redis-server ----------------------------------------------

BOOST_AUTO_TEST_SUITE(redis, *boost::unit_test::fixture<redis_fixture>())

BOOST_FIXTURE_TEST_CASE(ping_connects_lazily, store_fixture) {
  BOOST_TEST(!store.connected());
  auto pong = store.ping();
  BOOST_TEST_REQUIRE(pong.ok(), why(pong));
  BOOST_TEST(store.connected());
  BOOST_TEST(store.connect());
}

// Every final record is announced on finished_channel in the transaction
// that writes it (the token): FAILURE records, results, with or without a
// pending set; an open record is not.
BOOST_FIXTURE_TEST_CASE(final_records_are_announced, store_fixture) {
  auto s = settings_for(redis.port());
  finished_feed feed{s};
  // Subscribed by the first call (nothing published yet).
  auto first = feed.next(0ms);
  BOOST_TEST_REQUIRE(first.ok(), why(first));
  BOOST_TEST(first.value().empty());
  auto open = full_record(random_token());
  open.status = task_status::in_progress;
  BOOST_TEST_REQUIRE(store.put_record(open, 60s).ok());
  auto failed = full_record(random_token()); // a FAILURE
  BOOST_TEST_REQUIRE(store.put_record(failed, 60s).ok());
  auto failed_here = full_record(random_token());
  BOOST_TEST_REQUIRE(store.put_record(failed_here, 60s, "api-1").ok());
  auto done = full_record(random_token());
  done.status = task_status::success;
  done.error_code.clear();
  done.error_message.clear();
  BOOST_TEST_REQUIRE(store.put_result(done, "img", 60s, "api-1", "k").ok());
  std::vector<std::string> heard;
  test::wait_until(
      [&] {
        auto got = feed.next(100ms);
        BOOST_TEST_REQUIRE(got.ok(), why(got));
        heard.insert(heard.end(), got.value().begin(), got.value().end());
        return heard.size() >= 3;
      },
      5s);
  BOOST_TEST_REQUIRE(heard.size() == 3u);
  BOOST_TEST(heard[0] == failed.token);
  BOOST_TEST(heard[1] == failed_here.token);
  BOOST_TEST(heard[2] == done.token);
  // Nothing more (the open record was not announced).
  auto more = feed.next(50ms);
  BOOST_TEST_REQUIRE(more.ok());
  BOOST_TEST(more.value().empty());
}

// A final record never changes: an open record written after it (a late
// progress change, a stale command) leaves it as it is, and says so; over
// an open record or none it is written.
BOOST_FIXTURE_TEST_CASE(an_open_record_never_overwrites_a_final_one,
                        store_fixture) {
  auto rec = full_record(random_token());
  rec.status = task_status::pending;
  auto put = store.put_record(rec, 60s);
  BOOST_TEST_REQUIRE(put.ok(), why(put));
  BOOST_TEST(put.value()); // none before: written
  rec.status = task_status::in_progress;
  put = store.put_record(rec, 60s);
  BOOST_TEST_REQUIRE(put.ok(), why(put));
  BOOST_TEST(put.value());              // over an open one: written
  auto failed = full_record(rec.token); // a FAILURE
  BOOST_TEST_REQUIRE(store.put_record(failed, 60s).ok());
  rec.status = task_status::in_progress;
  put = store.put_record(rec, 60s);
  BOOST_TEST_REQUIRE(put.ok(), why(put));
  BOOST_TEST(!put.value()); // over a final one: left as it is
  auto got = store.get_record(rec.token);
  BOOST_TEST_REQUIRE(got.ok(), why(got));
  BOOST_TEST_REQUIRE(got.value().has_value());
  BOOST_TEST(got.value()->status == task_status::failure);
  BOOST_TEST(got.value()->error_code == failed.error_code);
  // ... and so does a SUCCESS.
  auto done = full_record(random_token());
  done.status = task_status::success;
  done.error_code.clear();
  done.error_message.clear();
  BOOST_TEST_REQUIRE(store.put_result(done, "img", 60s).ok());
  auto late = done;
  late.status = task_status::pending;
  put = store.put_record(late, 60s);
  BOOST_TEST_REQUIRE(put.ok(), why(put));
  BOOST_TEST(!put.value());
  got = store.get_record(done.token);
  BOOST_TEST_REQUIRE(got.ok(), why(got));
  BOOST_TEST(got.value()->status == task_status::success);
}

// The first final record stands: a second one (a task run on two nodes, an
// API node paused past its lease whose work a peer took over) writes
// nothing, not the record, not an image, not the content index; the task
// still leaves the writer's pending set and its input goes.
BOOST_FIXTURE_TEST_CASE(a_final_record_never_replaces_another, store_fixture) {
  const std::string node = "first-wins";
  auto rec = full_record(random_token());
  rec.status = task_status::pending;
  BOOST_TEST_REQUIRE(store.put_accepted(rec, "input", node, 60s).ok());
  auto failed = full_record(rec.token); // FAILURE
  auto put = store.put_record(failed, 60s);
  BOOST_TEST_REQUIRE(put.ok(), why(put));
  BOOST_TEST(put.value()); // the first final record
  auto done = rec;
  done.status = task_status::success;
  done.error_code.clear();
  done.error_message.clear();
  put = store.put_result(done, "img", 60s, node, "content-key");
  BOOST_TEST_REQUIRE(put.ok(), why(put));
  BOOST_TEST(!put.value());
  auto got = store.get_record(rec.token);
  BOOST_TEST_REQUIRE(got.ok(), why(got));
  BOOST_TEST_REQUIRE(got.value().has_value());
  BOOST_TEST(got.value()->status == task_status::failure);
  auto image = store.get_image(rec.token);
  BOOST_TEST_REQUIRE(image.ok(), why(image));
  BOOST_TEST(!image.value().has_value());
  BOOST_TEST(redis.command("EXISTS resized:content:content-key") == ":0\r\n");
  auto pending = store.load_pending(node);
  BOOST_TEST_REQUIRE(pending.ok(), why(pending));
  BOOST_TEST(pending.value().empty());
  BOOST_TEST(redis.command("EXISTS resized:input:" + rec.token) == ":0\r\n");
  // A FAILURE after a SUCCESS: the same.
  auto first = full_record(random_token());
  first.status = task_status::success;
  first.error_code.clear();
  first.error_message.clear();
  BOOST_TEST_REQUIRE(store.put_result(first, "img", 60s).value());
  auto second = full_record(first.token);
  put = store.put_record(second, 60s);
  BOOST_TEST_REQUIRE(put.ok(), why(put));
  BOOST_TEST(!put.value());
  got = store.get_record(first.token);
  BOOST_TEST_REQUIRE(got.ok(), why(got));
  BOOST_TEST(got.value()->status == task_status::success);
}

// A backlog larger than a batch of the pipelined load (500 records a round
// trip): every open task comes back with its own input, in the set's
// order, and the finished and the expired ones leave the set.
BOOST_FIXTURE_TEST_CASE(a_large_backlog_loads_in_batches, store_fixture) {
  const std::string node = "backlog-node";
  std::vector<std::string> tokens;
  std::map<std::string, std::string> input_of;
  std::set<std::string> finished, expired;
  for (int i = 0; i < 1203; ++i) {
    auto rec = full_record(random_token());
    rec.status = task_status::pending;
    rec.error_code.clear();
    rec.error_message.clear();
    auto input = "input " + std::to_string(i) + std::string(i % 7, 'x');
    BOOST_TEST_REQUIRE(store.restore_open(rec, &input, node, 60s).value());
    tokens.push_back(rec.token);
    input_of[rec.token] = input;
    if (i % 97 == 5) {
      rec.status = task_status::failure;
      rec.error_code = "corrupt_image";
      BOOST_TEST_REQUIRE(store.put_record(rec, 60s).value());
      finished.insert(rec.token);
    } else if (i % 89 == 7) {
      redis.command("DEL resized:task:" + rec.token);
      expired.insert(rec.token);
    }
  }
  auto read = store.load_pending(node, tokens);
  BOOST_TEST_REQUIRE(read.ok(), why(read));
  // The expired ones are reported gone (after each batch's open tasks).
  std::vector<pending_task> loaded;
  std::set<std::string> gone;
  for (auto& task : read.value())
    if (task.gone)
      gone.insert(task.record.token);
    else
      loaded.push_back(std::move(task));
  BOOST_TEST(gone == expired);
  BOOST_TEST(loaded.size() == tokens.size() - finished.size() - expired.size());
  size_t at = 0;
  for (const auto& token : tokens) {
    if (finished.count(token) != 0 || expired.count(token) != 0)
      continue;
    BOOST_TEST_REQUIRE(at < loaded.size());
    const auto& task = loaded[at++];
    BOOST_TEST(task.record.token == token);
    BOOST_TEST(task.input.value_or("") == input_of[token]);
  }
  auto left = redis.command("SCARD resized:pending:" + node);
  BOOST_TEST(left == ":" + std::to_string(loaded.size()) + "\r\n");
  // Records alone (a restart's first look): the same tasks in the same
  // order, no inputs read, and the inputs stay in Redis for the later read.
  auto records = store.load_pending(node, pending_inputs::skip);
  BOOST_TEST_REQUIRE(records.ok(), why(records));
  BOOST_TEST_REQUIRE(records.value().size() == loaded.size());
  std::set<std::string> listed;
  for (const auto& task : records.value()) {
    BOOST_TEST(!task.input.has_value());
    BOOST_TEST(task.record.input_bytes == full_record("").input_bytes);
    listed.insert(task.record.token);
  }
  for (const auto& task : loaded)
    BOOST_TEST(listed.count(task.record.token) == 1u);
  auto first = loaded.front().record.token;
  BOOST_TEST(redis.command("STRLEN resized:input:" + first) ==
             ":" + std::to_string(input_of[first].size()) + "\r\n");
}

// restore_open writes what Redis lost of an open task (record, input,
// pending membership), keeps what it still holds, and leaves a final
// record alone.
BOOST_FIXTURE_TEST_CASE(restore_open_writes_back_what_is_missing,
                        store_fixture) {
  const std::string node = "restore-node";
  auto rec = full_record(random_token());
  rec.status = task_status::pending;
  rec.error_code.clear();
  rec.error_message.clear();
  const std::string input = "input bytes";
  auto put = store.restore_open(rec, &input, node, 60s);
  BOOST_TEST_REQUIRE(put.ok(), why(put));
  BOOST_TEST(put.value());
  auto pending = store.load_pending(node);
  BOOST_TEST_REQUIRE(pending.ok(), why(pending));
  BOOST_TEST_REQUIRE(pending.value().size() == 1u);
  BOOST_TEST(pending.value()[0].record.token == rec.token);
  BOOST_TEST(pending.value()[0].record.status == task_status::pending);
  BOOST_TEST(pending.value()[0].input.value_or("") == input);
  BOOST_TEST(redis.command("TTL resized:task:" + rec.token) != ":-1\r\n");
  BOOST_TEST(redis.command("TTL resized:input:" + rec.token) != ":-1\r\n");
  // A record and an input Redis holds stay as they are.
  auto moved = rec;
  moved.status = task_status::in_progress;
  BOOST_TEST_REQUIRE(store.put_record(moved, 60s).value());
  const std::string other = "other bytes";
  BOOST_TEST_REQUIRE(store.restore_open(rec, &other, node, 60s).value());
  pending = store.load_pending(node);
  BOOST_TEST_REQUIRE(pending.ok(), why(pending));
  BOOST_TEST_REQUIRE(pending.value().size() == 1u);
  BOOST_TEST(pending.value()[0].record.status == task_status::in_progress);
  BOOST_TEST(pending.value()[0].input.value_or("") == input);
  // No input to give: the record and the membership only.
  auto bare = rec;
  bare.token = random_token();
  BOOST_TEST_REQUIRE(store.restore_open(bare, nullptr, node, 60s).value());
  BOOST_TEST(redis.command("EXISTS resized:input:" + bare.token) == ":0\r\n");
  BOOST_TEST(redis.command("SISMEMBER resized:pending:" + node + " " +
                           bare.token) == ":1\r\n");
  // Over a final record: nothing written.
  auto done = full_record(random_token()); // FAILURE
  BOOST_TEST_REQUIRE(store.put_record(done, 60s).value());
  auto open = done;
  open.status = task_status::pending;
  put = store.restore_open(open, &input, node, 60s);
  BOOST_TEST_REQUIRE(put.ok(), why(put));
  BOOST_TEST(!put.value());
  BOOST_TEST(redis.command("EXISTS resized:input:" + done.token) == ":0\r\n");
  BOOST_TEST(redis.command("SISMEMBER resized:pending:" + node + " " +
                           done.token) == ":0\r\n");
  BOOST_TEST(store.get_record(done.token).value()->status ==
             task_status::failure);
  // A final record is not open: refused.
  BOOST_TEST(!store.restore_open(done, &input, node, 60s).ok());
}

// A twin's result (image_token set) stores no image: the one it points at
// is kept at least `ttl` from now, never shortened (another API node may
// keep results longer), and a missing one is result_not_stored, with
// nothing written.
BOOST_FIXTURE_TEST_CASE(a_twins_result_points_at_the_shared_image,
                        store_fixture) {
  auto first = full_record(random_token());
  first.status = task_status::success;
  first.error_code.clear();
  first.error_message.clear();
  BOOST_TEST_REQUIRE(store.put_result(first, "the image", 100s).value());
  auto ttl_of = [&](const std::string& key) {
    return std::stol(redis.command("TTL " + key).substr(1));
  };
  auto twin = first;
  twin.token = random_token();
  copy_result(first, twin);
  BOOST_TEST(twin.image_token == first.token);
  auto put = store.put_result(twin, std::string{}, 5s);
  BOOST_TEST_REQUIRE(put.ok(), why(put));
  BOOST_TEST(put.value());
  BOOST_TEST(redis.command("EXISTS resized:image:" + twin.token) == ":0\r\n");
  BOOST_TEST(ttl_of("resized:image:" + first.token) > 50); // not 5
  BOOST_TEST(ttl_of("resized:task:" + first.token) > 50);
  auto stored = store.get_record(twin.token);
  BOOST_TEST_REQUIRE(stored.ok(), why(stored));
  BOOST_TEST(stored.value()->image_token == first.token);
  // A longer ttl lengthens both.
  auto later = first;
  later.token = random_token();
  copy_result(twin, later); // a twin of the twin: the same image
  BOOST_TEST(later.image_token == first.token);
  BOOST_TEST_REQUIRE(store.put_result(later, std::string{}, 1000s).value());
  BOOST_TEST(ttl_of("resized:image:" + first.token) > 900);
  BOOST_TEST(ttl_of("resized:task:" + first.token) > 900);
  // The image gone: result_not_stored, nothing written.
  redis.command("DEL resized:image:" + first.token);
  auto orphan = first;
  orphan.token = random_token();
  copy_result(first, orphan);
  put = store.put_result(orphan, std::string{}, 100s);
  BOOST_TEST_REQUIRE(!put.ok());
  BOOST_TEST(put.error().code == error_code::result_not_stored);
  BOOST_TEST(redis.command("EXISTS resized:task:" + orphan.token) == ":0\r\n");
}

// A feed whose connection is lost fails once, then subscribes again.
BOOST_AUTO_TEST_CASE(a_feed_subscribes_again_after_redis_restarts) {
  test::redis_server own;
  auto s = settings_for(own.port());
  finished_feed feed{s};
  BOOST_TEST_REQUIRE(feed.next(0ms).ok());
  own.stop();
  bool failed = false;
  test::wait_until(
      [&] {
        failed = !feed.next(100ms).ok();
        return failed;
      },
      5s);
  BOOST_TEST_REQUIRE(failed);
  own.start();
  task_store writer{s};
  auto rec = full_record(random_token());
  // Resubscribed by the next call; what is written after it is heard.
  BOOST_TEST_REQUIRE(feed.next(0ms).ok());
  BOOST_TEST_REQUIRE(writer.put_record(rec, 60s).ok());
  std::vector<std::string> heard;
  test::wait_until(
      [&] {
        auto more = feed.next(100ms);
        if (more.ok())
          heard.insert(heard.end(), more.value().begin(), more.value().end());
        return !heard.empty();
      },
      5s);
  BOOST_TEST_REQUIRE(heard.size() == 1u);
  BOOST_TEST(heard[0] == rec.token);
}

BOOST_FIXTURE_TEST_CASE(record_round_trip, store_fixture) {
  auto rec = full_record(token);
  auto put = store.put_record(rec, 60s);
  BOOST_TEST_REQUIRE(put.ok(), why(put));
  auto got = store.get_record(token);
  BOOST_TEST_REQUIRE(got.ok(), why(got));
  BOOST_TEST_REQUIRE(got.value().has_value());
  check_equal(*got.value(), rec);
  // Overwriting replaces every field (no stale error fields linger); only
  // an open record can be overwritten (the first final one stands).
  rec.token = token = random_token();
  rec.status = task_status::in_progress;
  BOOST_TEST_REQUIRE(store.put_record(rec, 60s).ok());
  rec.status = task_status::success;
  rec.error_code.clear();
  rec.error_message.clear();
  BOOST_TEST_REQUIRE(store.put_record(rec, 60s).ok());
  got = store.get_record(token);
  BOOST_TEST_REQUIRE(got.ok());
  BOOST_TEST_REQUIRE(got.value().has_value());
  check_equal(*got.value(), rec);
}

BOOST_FIXTURE_TEST_CASE(record_has_ttl, store_fixture) {
  BOOST_TEST_REQUIRE(store.put_record(full_record(token), 120s).ok());
  auto reply = redis.command("TTL resized:task:" + token);
  BOOST_TEST_REQUIRE(reply.size() > 3u);
  BOOST_TEST_REQUIRE(reply[0] == ':');
  auto ttl = std::stol(reply.substr(1));
  BOOST_TEST(ttl >= 1);
  BOOST_TEST(ttl <= 120);
  BOOST_TEST(redis.command("HGET resized:task:" + token + " status") ==
             "$7\r\nFAILURE\r\n");
}

// put_accepted sends its arguments itself (gathered, not through hiredis'
// output buffer): inputs around the inline-copy boundary, binary bytes that
// look like RESP framing, and one larger than a socket buffer (many partial
// sends) come back from load_pending byte for byte, in one node's set.
BOOST_FIXTURE_TEST_CASE(accepted_inputs_round_trip_byte_exact, store_fixture) {
  std::string node = "node-" + random_token();
  std::mt19937 rng{42};
  std::map<std::string, std::string> inputs;
  for (size_t size : {size_t{1}, size_t{4095}, size_t{4096}, size_t{4097},
                      size_t{65536}, size_t{12u << 20}}) {
    std::string bytes(size, '\0');
    for (auto& c : bytes)
      c = static_cast<char>(rng());
    if (size > 8)
      bytes.replace(0, 8, "\r\n$3\r\n*1");
    auto rec = full_record(random_token());
    rec.status = task_status::pending;
    auto put = store.put_accepted(rec, bytes, node, 60s);
    BOOST_TEST_REQUIRE(put.ok(), why(put));
    inputs.emplace(rec.token, std::move(bytes));
  }
  auto pending = store.load_pending(node);
  BOOST_TEST_REQUIRE(pending.ok(), why(pending));
  BOOST_TEST_REQUIRE(pending.value().size() == inputs.size());
  for (const auto& task : pending.value()) {
    BOOST_TEST_CONTEXT("token " << task.record.token) {
      auto it = inputs.find(task.record.token);
      BOOST_TEST_REQUIRE((it != inputs.end()));
      BOOST_TEST_REQUIRE(task.input.has_value());
      BOOST_TEST(task.input->size() == it->second.size());
      BOOST_TEST((*task.input == it->second));
    }
  }
  // The connection is still in step: a plain command after them works.
  BOOST_TEST(store.ping().ok());
}

BOOST_FIXTURE_TEST_CASE(custom_prefix_is_used, store_fixture) {
  auto settings = settings_for(redis.port());
  settings.key_prefix = "other:";
  task_store other{settings};
  BOOST_TEST_REQUIRE(other.put_record(full_record(token), 60s).ok());
  BOOST_TEST(redis.command("EXISTS other:task:" + token) == ":1\r\n");
  BOOST_TEST(redis.command("EXISTS resized:task:" + token) == ":0\r\n");
  auto got = store.get_record(token); // default prefix: not there
  BOOST_TEST_REQUIRE(got.ok());
  BOOST_TEST(!got.value().has_value());
}

BOOST_FIXTURE_TEST_CASE(result_round_trip_binary_safe, store_fixture) {
  std::string image(1u << 20, '\0'); // 1 MiB, NULs and every byte value
  std::mt19937 rng{42};
  for (size_t i = 0; i < image.size(); i += 3)
    image[i] = static_cast<char>(rng() & 0xff);
  image[0] = '\0';
  image[image.size() - 1] = '\0';
  auto rec = full_record(token);
  rec.status = task_status::success;
  rec.output_bytes = image.size();
  auto put = store.put_result(rec, image, 90s);
  BOOST_TEST_REQUIRE(put.ok(), why(put));
  auto got = store.get_image(token);
  BOOST_TEST_REQUIRE(got.ok(), why(got));
  BOOST_TEST_REQUIRE(got.value().has_value());
  BOOST_TEST(got.value()->size() == image.size());
  BOOST_TEST((*got.value() == image));
  auto stored = store.get_record(token);
  BOOST_TEST_REQUIRE(stored.ok());
  BOOST_TEST_REQUIRE(stored.value().has_value());
  check_equal(*stored.value(), rec);
  for (auto key : {"resized:image:", "resized:task:"}) {
    auto reply = redis.command(std::string{"TTL "} + key + token);
    BOOST_TEST_REQUIRE(reply[0] == ':');
    auto ttl = std::stol(reply.substr(1));
    BOOST_TEST(ttl >= 1);
    BOOST_TEST(ttl <= 90);
  }
}

// The content index: the first task accepted with a content key becomes
// its entry (later ones read it, in put_accepted's own transaction); a
// SUCCESS written with the key takes it over, with the result's ttl; a
// FAILURE never does.
BOOST_FIXTURE_TEST_CASE(content_index, store_fixture) {
  std::string content = "c" + random_token() + ":100x100:fill:jpeg:85";
  std::string node = "node-" + random_token();
  // Accepts a new task with `content`: (its token, the twin it was told).
  auto accepted = [&](const std::string& key) {
    auto rec = full_record(random_token());
    rec.status = task_status::pending;
    auto twin = store.put_accepted(rec, "input", node, 90s, key);
    BOOST_TEST_REQUIRE(twin.ok(), why(twin));
    return std::make_pair(rec.token, twin.value());
  };
  auto [first, none] = accepted(content);
  BOOST_TEST(none.empty());
  BOOST_TEST(accepted(content).second == first);
  // The same accept run again (the retry of a transaction Redis ran before
  // its connection dropped) finds itself in the index: that is no twin.
  {
    auto again = full_record(first);
    again.status = task_status::pending;
    auto twin = store.put_accepted(again, "input", node, 90s, content);
    BOOST_TEST_REQUIRE(twin.ok(), why(twin));
    BOOST_TEST(twin.value().empty());
  }

  auto failed = full_record(random_token()); // full_record is a FAILURE
  BOOST_TEST_REQUIRE(store.put_result(failed, "x", 90s, {}, content).ok());
  BOOST_TEST(accepted(content).second == first);

  auto rec = full_record(token);
  rec.status = task_status::success;
  BOOST_TEST_REQUIRE(store.put_result(rec, "img", 90s, {}, content).ok());
  BOOST_TEST(accepted(content).second == token);
  auto reply = redis.command("TTL resized:content:" + content);
  BOOST_TEST_REQUIRE(reply[0] == ':');
  auto ttl = std::stol(reply.substr(1));
  BOOST_TEST(ttl >= 1);
  BOOST_TEST(ttl <= 90);
  // Without a content key, nothing is indexed and nothing is read.
  auto other = full_record(random_token());
  other.status = task_status::success;
  BOOST_TEST_REQUIRE(store.put_result(other, "img", 90s).ok());
  BOOST_TEST(accepted({}).second.empty());
  BOOST_TEST(accepted(content).second == token);
}

// forget_accepted undoes put_accepted: record, input and pending entry go;
// the content index entry goes only while it is still this token's.
BOOST_FIXTURE_TEST_CASE(forget_accepted_undoes_an_accept, store_fixture) {
  std::string content = "c" + random_token() + ":100x100:fill:jpeg:85";
  std::string node = "node-" + random_token();
  auto accept = [&](const std::string& t) {
    auto rec = full_record(t);
    rec.status = task_status::pending;
    BOOST_TEST_REQUIRE(
        store.put_accepted(rec, "input", node, 90s, content).ok());
  };
  auto exists = [&](const std::string& key) {
    return redis.command("EXISTS " + key) == ":1\r\n";
  };
  accept(token);
  BOOST_TEST_REQUIRE(exists("resized:content:" + content));
  auto forgot = store.forget_accepted(token, node, content);
  BOOST_TEST_REQUIRE(forgot.ok(), why(forgot));
  BOOST_TEST(!exists("resized:task:" + token));
  BOOST_TEST(!exists("resized:input:" + token));
  BOOST_TEST(!exists("resized:content:" + content));
  BOOST_TEST(redis.command("SISMEMBER resized:pending:" + node + " " + token) ==
             ":0\r\n");
  auto res = store.get_record(token);
  BOOST_TEST_REQUIRE(res.ok());
  BOOST_TEST(!res.value().has_value());
  // Twice, or for a task never written: nothing to do, no error.
  BOOST_TEST(store.forget_accepted(token, node, content).ok());
  // The index entry of another task stays.
  auto owner = random_token();
  accept(owner);
  auto later = random_token();
  accept(later); // told of `owner`, the entry stays owner's
  BOOST_TEST(store.forget_accepted(later, node, content).ok());
  BOOST_TEST(redis.command("GET resized:content:" + content) ==
             fmt::format("${}\r\n{}\r\n", owner.size(), owner));
  BOOST_TEST(exists("resized:task:" + owner));
}

BOOST_FIXTURE_TEST_CASE(small_image_with_nuls, store_fixture) {
  const std::string image{"\0\x01\xff\0\r\n$-1\r\n\0", 12};
  BOOST_TEST_REQUIRE(store.put_result(full_record(token), image, 60s).ok());
  auto got = store.get_image(token);
  BOOST_TEST_REQUIRE(got.ok());
  BOOST_TEST_REQUIRE(got.value().has_value());
  BOOST_TEST((*got.value() == image));
  // An empty image is a value too, not a missing key.
  auto empty_token = random_token();
  BOOST_TEST_REQUIRE(store.put_result(full_record(empty_token), "", 60s).ok());
  auto empty = store.get_image(empty_token);
  BOOST_TEST_REQUIRE(empty.ok());
  BOOST_TEST_REQUIRE(empty.value().has_value());
  BOOST_TEST(empty.value()->empty());
}

BOOST_FIXTURE_TEST_CASE(unknown_token_is_nullopt, store_fixture) {
  auto rec = store.get_record(token);
  BOOST_TEST_REQUIRE(rec.ok());
  BOOST_TEST(!rec.value().has_value());
  auto img = store.get_image(token);
  BOOST_TEST_REQUIRE(img.ok());
  BOOST_TEST(!img.value().has_value());
}

BOOST_FIXTURE_TEST_CASE(corrupt_record_is_internal_error, store_fixture) {
  redis.command("HSET resized:task:" + token + " token " + token +
                " status EXPLODED");
  auto rec = store.get_record(token);
  BOOST_TEST_REQUIRE(!rec.ok());
  BOOST_TEST(rec.error().code == error_code::internal_error);
  BOOST_TEST(rec.error().message.find("corrupt record field status") !=
             std::string::npos);
}

/// `n` open tasks in `node`'s pending set, each with the input "input".
std::vector<std::string> open_tasks(task_store& store, const std::string& node,
                                    int n) {
  std::vector<std::string> tokens;
  for (int i = 0; i < n; ++i) {
    auto rec = full_record(random_token());
    rec.status = task_status::pending;
    rec.error_code.clear();
    rec.error_message.clear();
    std::string input = "input";
    BOOST_TEST_REQUIRE(store.restore_open(rec, &input, node, 60s).value());
    tokens.push_back(rec.token);
  }
  return tokens;
}

// A pending record this build cannot read (a newer build's value, in a
// rolling upgrade) is skipped: the node's other tasks recover, and it
// stays in the set for a build that can read it.
BOOST_FIXTURE_TEST_CASE(an_unreadable_pending_record_is_skipped,
                        store_fixture) {
  auto node = "node-" + random_token();
  auto tokens = open_tasks(store, node, 3);
  redis.command("HSET resized:task:" + tokens[1] + " format jxl");
  for (auto inputs : {pending_inputs::read, pending_inputs::skip}) {
    auto loaded = store.load_pending(node, inputs);
    BOOST_TEST_REQUIRE(loaded.ok(), why(loaded));
    std::set<std::string> got;
    for (const auto& task : loaded.value())
      got.insert(task.record.token);
    BOOST_TEST(got == (std::set<std::string>{tokens[0], tokens[2]}),
               boost::test_tools::per_element());
  }
  auto some = store.load_pending(node, {tokens[1], tokens[2]});
  BOOST_TEST_REQUIRE(some.ok(), why(some));
  BOOST_TEST_REQUIRE(some.value().size() == 1u);
  BOOST_TEST(some.value().front().record.token == tokens[2]);
  BOOST_TEST(redis.command("SISMEMBER resized:pending:" + node + " " +
                           tokens[1]) == ":1\r\n");
}

// Read with inputs (the supervisor's ask for tasks it holds), a task whose
// record is gone (Redis restarted without it) comes back `gone`, so that
// the task ends instead of staying PENDING for good; a final record (another
// node ended it) is left out; both leave the pending set. Read without
// inputs (a recovery or an adoption, which know nothing of them yet),
// neither is listed.
BOOST_FIXTURE_TEST_CASE(a_pending_task_whose_record_is_gone_is_reported,
                        store_fixture) {
  auto node = "node-" + random_token();
  auto tokens = open_tasks(store, node, 3);
  auto skip = [&] {
    auto listed = store.load_pending(node, tokens, pending_inputs::skip);
    BOOST_TEST_REQUIRE(listed.ok(), why(listed));
    return listed.value();
  };
  redis.command("DEL resized:task:" + tokens[0]);
  redis.command("HSET resized:task:" + tokens[1] + " status SUCCESS");
  auto listed = skip();
  BOOST_TEST_REQUIRE(listed.size() == 1u);
  BOOST_TEST(listed[0].record.token == tokens[2]);
  BOOST_TEST(!listed[0].gone);
  // The set forgot both: put the gone one back to read it with inputs.
  redis.command("SADD resized:pending:" + node + " " + tokens[0]);
  auto loaded = store.load_pending(node, tokens, pending_inputs::read);
  BOOST_TEST_REQUIRE(loaded.ok(), why(loaded));
  std::map<std::string, pending_task> got;
  for (auto& task : loaded.value())
    got[task.record.token] = task;
  BOOST_TEST_REQUIRE(got.size() == 2u);
  BOOST_TEST_REQUIRE(got.count(tokens[0]) == 1u);
  BOOST_TEST(got[tokens[0]].gone);
  BOOST_TEST(!got[tokens[0]].input);
  BOOST_TEST_REQUIRE(got.count(tokens[2]) == 1u);
  BOOST_TEST(!got[tokens[2]].gone);
  BOOST_TEST(got[tokens[2]].input.value_or("") == "input");
  for (int i : {0, 1})
    BOOST_TEST(redis.command("SISMEMBER resized:pending:" + node + " " +
                             tokens[i]) == ":0\r\n");
}

BOOST_FIXTURE_TEST_CASE(wrong_type_is_an_error_not_a_crash, store_fixture) {
  redis.command("SET resized:task:" + token + " plain");
  auto rec = store.get_record(token);
  BOOST_TEST_REQUIRE(!rec.ok());
  BOOST_TEST(rec.error().message.find("WRONGTYPE") != std::string::npos);
  // The connection stays usable.
  BOOST_TEST(store.ping().ok());
}

BOOST_FIXTURE_TEST_CASE(invalid_arguments, store_fixture) {
  auto zero_ttl = store.put_record(full_record(token), 0s);
  BOOST_TEST_REQUIRE(!zero_ttl.ok());
  BOOST_TEST(zero_ttl.error().code == error_code::internal_error);
  auto no_token = store.put_result(full_record(""), "x", 60s);
  BOOST_TEST_REQUIRE(!no_token.ok());
  BOOST_TEST(no_token.error().code == error_code::internal_error);
}

// A db beyond the server's `databases` (16 by default) is a setting Redis
// refuses, and said so; a server that is not there refuses nothing.
BOOST_FIXTURE_TEST_CASE(settings_refused_or_not, store_fixture) {
  auto settings = settings_for(redis.port());
  settings.db = 16;
  task_store beyond{settings};
  BOOST_TEST(!beyond.connect());
  BOOST_TEST(beyond.last_error().find("SELECT failed") != std::string::npos,
             beyond.last_error());
  BOOST_TEST(refuses_settings(beyond.last_error()));
  task_store absent{settings_for(test::free_port())};
  BOOST_TEST(!absent.connect());
  BOOST_TEST(!refuses_settings(absent.last_error()), absent.last_error());
  for (const char* moment :
       {"redis 127.0.0.1:6379: ERR max number of clients reached",
        "redis 127.0.0.1:6379: LOADING Redis is loading the dataset in memory",
        "redis 127.0.0.1:6379: timed out"})
    BOOST_TEST(!refuses_settings(moment), moment);
}

BOOST_FIXTURE_TEST_CASE(select_db, store_fixture) {
  auto settings = settings_for(redis.port());
  settings.db = 3;
  task_store db3{settings};
  BOOST_TEST_REQUIRE(db3.put_record(full_record(token), 60s).ok());
  BOOST_TEST(redis.command("EXISTS resized:task:" + token) == ":0\r\n");
  auto got = db3.get_record(token);
  BOOST_TEST_REQUIRE(got.ok());
  BOOST_TEST(got.value().has_value());
}

// The lease on a node name: one instance holds it; a renewal by the holder
// gives it its TTL back, another instance's claim leaves it alone and names
// the holder; a release by another instance is a no-op; once released (or
// run out) the next claim takes it.
BOOST_FIXTURE_TEST_CASE(node_name_lease, store_fixture) {
  std::string node = "node-" + random_token();
  std::string key = "resized:node:" + node;
  auto holder = [&] { return redis.command("GET " + key); };
  auto bulk = [](const std::string& v) {
    return fmt::format("${}\r\n{}\r\n", v.size(), v);
  };
  auto first = store.claim_lease(node, "instance-a", 60000ms);
  BOOST_TEST_REQUIRE(first.ok(), why(first));
  BOOST_TEST(first.value().ours);
  BOOST_TEST(first.value().taken);
  BOOST_TEST(holder() == bulk("instance-a"));
  auto pttl = [&] {
    auto reply = redis.command("PTTL " + key);
    BOOST_TEST_REQUIRE(reply[0] == ':');
    return std::stol(reply.substr(1));
  };
  BOOST_TEST(pttl() > 50000);
  BOOST_TEST(pttl() <= 60000);

  // Another instance (another connection alike): refused, told who holds it.
  task_store other{settings_for(redis.port())};
  auto refused = other.claim_lease(node, "instance-b", 60000ms);
  BOOST_TEST_REQUIRE(refused.ok(), why(refused));
  BOOST_TEST(!refused.value().ours);
  BOOST_TEST(refused.value().holder == "instance-a");
  BOOST_TEST(refused.value().ttl_ms > 50000);
  BOOST_TEST(holder() == bulk("instance-a"));
  BOOST_TEST(pttl() > 50000); // not shortened or renewed by the refusal

  // The holder renews: same value, TTL back to the full lease.
  BOOST_TEST_REQUIRE(redis.command("PEXPIRE " + key + " 5000") == ":1\r\n");
  auto renewed = store.claim_lease(node, "instance-a", 60000ms);
  BOOST_TEST_REQUIRE(renewed.ok(), why(renewed));
  BOOST_TEST(renewed.value().ours);
  BOOST_TEST(!renewed.value().taken);
  BOOST_TEST(pttl() > 50000);

  // A release by another instance leaves the lease alone.
  auto not_ours = other.release_lease(node, "instance-b");
  BOOST_TEST_REQUIRE(not_ours.ok(), why(not_ours));
  BOOST_TEST(!not_ours.value());
  BOOST_TEST(holder() == bulk("instance-a"));

  // Released by its holder: gone, and the next claim takes it at once.
  auto released = store.release_lease(node, "instance-a");
  BOOST_TEST_REQUIRE(released.ok(), why(released));
  BOOST_TEST(released.value());
  BOOST_TEST(redis.command("EXISTS " + key) == ":0\r\n");
  auto again = store.release_lease(node, "instance-a");
  BOOST_TEST_REQUIRE(again.ok(), why(again));
  BOOST_TEST(!again.value());
  auto taken = other.claim_lease(node, "instance-b", 60000ms);
  BOOST_TEST_REQUIRE(taken.ok(), why(taken));
  BOOST_TEST(taken.value().ours);
  BOOST_TEST(taken.value().taken);

  // The old holder's renewal after losing it: refused, not renewed.
  auto late = store.claim_lease(node, "instance-a", 60000ms);
  BOOST_TEST_REQUIRE(late.ok(), why(late));
  BOOST_TEST(!late.value().ours);
  BOOST_TEST(late.value().holder == "instance-b");
  BOOST_TEST(holder() == bulk("instance-b"));
}

// A lease that is not renewed runs out by itself (a crashed holder), and
// the next claim takes it.
BOOST_FIXTURE_TEST_CASE(node_name_lease_runs_out, store_fixture) {
  std::string node = "node-" + random_token();
  auto held = store.claim_lease(node, "dead", 200ms);
  BOOST_TEST_REQUIRE(held.ok(), why(held));
  BOOST_TEST(held.value().ours);
  task_store next{settings_for(redis.port())};
  bool taken = test::wait_until(
      [&] {
        auto c = next.claim_lease(node, "next", 60000ms);
        return c.ok() && c.value().ours;
      },
      5000ms);
  BOOST_TEST(taken);
  auto claim = next.claim_lease(node, "next", 60000ms);
  BOOST_TEST_REQUIRE(claim.ok(), why(claim));
  BOOST_TEST(!claim.value().taken);                     // a renewal now
  BOOST_TEST(!next.claim_lease(node, "", 1000ms).ok()); // no instance id
}

// An owner whose lease ran out while a peer adopted its tasks (it was
// paused, or cut off from Redis) does not take its name again on renewal:
// the peer runs them. A new start of the name takes it and clears the mark;
// a renewal with no adoption in between takes it again as before.
BOOST_FIXTURE_TEST_CASE(an_adopted_name_is_not_renewed, store_fixture) {
  std::string owner = "paused-" + random_token();
  std::string peer = "peer-" + random_token();
  auto rec = full_record(random_token());
  rec.status = task_status::pending;
  BOOST_TEST_REQUIRE(store.put_accepted(rec, "input", owner, 60s).ok());
  BOOST_TEST_REQUIRE(store.claim_lease(owner, "zombie", 100ms).value().ours);
  // No adoption yet: a renewal after the lease ran out takes it again.
  BOOST_TEST(test::wait_until(
      [&] { return redis.command("EXISTS resized:node:" + owner) == ":0\r\n"; },
      5000ms));
  auto again = store.claim_lease(owner, "zombie", 100ms, true);
  BOOST_TEST_REQUIRE(again.ok(), why(again));
  BOOST_TEST(again.value().ours);
  BOOST_TEST(again.value().taken);
  // It runs out again, and the peer adopts the tasks.
  BOOST_TEST(test::wait_until(
      [&] {
        auto a = store.adopt_pending(owner, peer);
        return a.ok() && !a.value().held;
      },
      5000ms));
  auto renewal = store.claim_lease(owner, "zombie", 60000ms, true);
  BOOST_TEST_REQUIRE(renewal.ok(), why(renewal));
  BOOST_TEST(!renewal.value().ours);
  BOOST_TEST(renewal.value().adopted_by == peer);
  BOOST_TEST(redis.command("EXISTS resized:node:" + owner) == ":0\r\n");
  // A new instance of the name starts: it takes the name, the mark goes.
  auto start = store.claim_lease(owner, "restarted", 60000ms);
  BOOST_TEST_REQUIRE(start.ok(), why(start));
  BOOST_TEST(start.value().ours);
  BOOST_TEST(redis.command("EXISTS resized:adopted:" + owner) == ":0\r\n");
  // The paused one, awake: another instance holds its name.
  auto late = store.claim_lease(owner, "zombie", 60000ms, true);
  BOOST_TEST_REQUIRE(late.ok(), why(late));
  BOOST_TEST(!late.value().ours);
  BOOST_TEST(late.value().holder == "restarted");
}

// The names looked at for adoption come from the set of names, not from a
// walk of the keyspace, once one walk has indexed the sets already there:
// a name joins the set at its lease claims and leaves it when adopted; a
// name with no pending set is taken out without an adoption mark.
BOOST_FIXTURE_TEST_CASE(names_for_adoption_come_from_the_set_of_names,
                        store_fixture) {
  auto accept = [&](const std::string& node) {
    auto rec = full_record(random_token());
    rec.status = task_status::pending;
    BOOST_TEST_REQUIRE(store.put_accepted(rec, "input", node, 60s).ok());
  };
  auto listed = [&](const std::string& name) {
    auto names = store.pending_names();
    BOOST_TEST_REQUIRE(names.ok(), why(names));
    return std::find(names.value().begin(), names.value().end(), name) !=
           names.value().end();
  };
  redis.command("DEL resized:nodes resized:nodes:indexed"); // not indexed
  std::string earlier = "earlier-" + random_token();        // never claims
  accept(earlier);
  // The walk runs `between_steps` after each step of it (the lease actor
  // renews its lease there); false stops it, and nothing is indexed.
  redis.command("EVAL \"for i = 1, 5000 do redis.call('SET', 'filler:' .. i, "
                "'x') end\" 0");
  int steps = 0;
  auto stopped = store.pending_names(10000, [&] { return ++steps < 2; });
  BOOST_TEST(!stopped.ok());
  BOOST_TEST(steps == 2);
  BOOST_TEST(redis.command("EXISTS resized:nodes:indexed") == ":0\r\n");
  steps = 0;
  auto walked = store.pending_names(10000, [&] { return ++steps > 0; });
  BOOST_TEST_REQUIRE(walked.ok(), why(walked));
  BOOST_TEST(steps >= 2);
  BOOST_TEST(listed(earlier)); // found by the walk, now in the set
  // Indexed for an hour: then walked again (nodes of earlier builds never
  // join the set).
  auto ttl = std::stol(redis.command("TTL resized:nodes:indexed").substr(1));
  BOOST_TEST((ttl > 3500 && ttl <= 3600), ttl);
  redis.command("EVAL \"for i = 1, 5000 do redis.call('DEL', 'filler:' .. i) "
                "end\" 0");
  // From then on the set alone: a set no claim named is not seen...
  std::string unclaimed = "unclaimed-" + random_token();
  accept(unclaimed);
  BOOST_TEST(!listed(unclaimed));
  // ... a name that claims its lease is, at a start and at a renewal.
  std::string node = "node-" + random_token();
  accept(node);
  BOOST_TEST_REQUIRE(store.claim_lease(node, "i1", 60000ms).ok());
  BOOST_TEST(listed(node));
  redis.command("SREM resized:nodes " + node);
  BOOST_TEST_REQUIRE(store.claim_lease(node, "i1", 60000ms, true).ok());
  BOOST_TEST(listed(node));
  // Adopted once its lease is gone: out of the set until it claims again.
  redis.command("DEL resized:node:" + node);
  auto moved = store.adopt_pending(node, "adopter-" + random_token());
  BOOST_TEST_REQUIRE(moved.ok(), why(moved));
  BOOST_TEST(moved.value().tokens.size() == 1u);
  BOOST_TEST(!listed(node));
  BOOST_TEST_REQUIRE(store.claim_lease(node, "i2", 60000ms).ok());
  BOOST_TEST(listed(node));
  // No lease and no pending set: out of the set, and no mark that would
  // tell the name's next renewal it was adopted.
  std::string idle = "idle-" + random_token();
  BOOST_TEST_REQUIRE(store.claim_lease(idle, "i3", 60000ms).ok());
  redis.command("DEL resized:node:" + idle);
  auto none = store.adopt_pending(idle, "adopter-" + random_token());
  BOOST_TEST_REQUIRE(none.ok(), why(none));
  BOOST_TEST(!none.value().held);
  BOOST_TEST(none.value().tokens.empty());
  BOOST_TEST(!listed(idle));
  BOOST_TEST(redis.command("EXISTS resized:adopted:" + idle) == ":0\r\n");
}

// Adoption: the pending set of a name nobody holds a lease on moves, whole
// and at once, into the adopter's; a held name's set stays; the adopter's
// own name and a name with no set are no adoption.
BOOST_FIXTURE_TEST_CASE(adopting_a_pending_set_with_no_lease, store_fixture) {
  std::string gone = "gone-" + random_token();
  std::string live = "live-" + random_token();
  std::string adopter = "adopter-" + random_token();
  std::vector<std::string> gone_tokens, live_tokens;
  auto accept = [&](const std::string& node, std::vector<std::string>& into) {
    auto rec = full_record(random_token());
    rec.status = task_status::pending;
    auto put = store.put_accepted(rec, "input of " + rec.token, node, 60s);
    BOOST_TEST_REQUIRE(put.ok(), why(put));
    into.push_back(rec.token);
  };
  for (int i = 0; i < 3; ++i)
    accept(gone, gone_tokens);
  accept(live, live_tokens);
  std::vector<std::string> own_tokens;
  accept(adopter, own_tokens);
  BOOST_TEST_REQUIRE(store.claim_lease(live, "live-instance", 60000ms).ok());
  BOOST_TEST_REQUIRE(store.claim_lease(adopter, "me", 60000ms).ok());

  // Both names with a set are found by the scan (with the adopter's own):
  // the first look on a Redis not indexed yet.
  redis.command("DEL resized:nodes resized:nodes:indexed");
  auto names = store.pending_names();
  BOOST_TEST_REQUIRE(names.ok(), why(names));
  auto listed = [&](const std::string& n) {
    return std::find(names.value().begin(), names.value().end(), n) !=
           names.value().end();
  };
  BOOST_TEST(listed(gone));
  BOOST_TEST(listed(live));
  BOOST_TEST(listed(adopter));

  // A held name: nothing moves.
  auto held = store.adopt_pending(live, adopter);
  BOOST_TEST_REQUIRE(held.ok(), why(held));
  BOOST_TEST(held.value().held);
  BOOST_TEST(held.value().tokens.empty());
  BOOST_TEST(redis.command("SCARD resized:pending:" + live) == ":1\r\n");

  // One's own name: refused.
  BOOST_TEST(!store.adopt_pending(adopter, adopter).ok());

  // No lease: every member moves, the old set is gone.
  auto moved = store.adopt_pending(gone, adopter);
  BOOST_TEST_REQUIRE(moved.ok(), why(moved));
  BOOST_TEST(!moved.value().held);
  auto got = moved.value().tokens;
  std::sort(got.begin(), got.end());
  std::sort(gone_tokens.begin(), gone_tokens.end());
  BOOST_TEST(got == gone_tokens, boost::test_tools::per_element());
  BOOST_TEST(redis.command("EXISTS resized:pending:" + gone) == ":0\r\n");
  BOOST_TEST(redis.command("SCARD resized:pending:" + adopter) == ":4\r\n");
  for (const auto& t : gone_tokens)
    BOOST_TEST(redis.command("SISMEMBER resized:pending:" + adopter + " " +
                             t) == ":1\r\n");

  // They are noted for handing over too, with the name they came from,
  // until crossed off (an adoption whose answer was lost is still found).
  auto noted = store.adopted_not_handed(adopter);
  BOOST_TEST_REQUIRE(noted.ok(), why(noted));
  std::vector<std::string> noted_tokens;
  for (const auto& [token, from] : noted.value()) {
    noted_tokens.push_back(token);
    BOOST_TEST(from == gone);
  }
  std::sort(noted_tokens.begin(), noted_tokens.end());
  BOOST_TEST(noted_tokens == gone_tokens, boost::test_tools::per_element());
  auto ttl = redis.command("PTTL resized:handover:" + adopter);
  BOOST_TEST(ttl.rfind(":", 0) == 0u);
  BOOST_TEST(std::stoll(ttl.substr(1)) > 0); // not kept forever
  BOOST_TEST_REQUIRE(store.handed_over(adopter, {gone_tokens.front()}).ok());
  BOOST_TEST(store.adopted_not_handed(adopter).value().size() ==
             gone_tokens.size() - 1);
  BOOST_TEST_REQUIRE(store.handed_over(adopter, gone_tokens).ok());
  BOOST_TEST(store.adopted_not_handed(adopter).value().empty());

  // A second adopter (or a second pass) finds nothing left.
  task_store peer{settings_for(redis.port())};
  auto again = peer.adopt_pending(gone, "peer-" + random_token());
  BOOST_TEST_REQUIRE(again.ok(), why(again));
  BOOST_TEST(!again.value().held);
  BOOST_TEST(again.value().tokens.empty());

  // The adopted tokens read back like recovered ones; a final one is
  // dropped from the adopter's set.
  auto done = full_record(gone_tokens.front());
  done.status = task_status::success;
  BOOST_TEST_REQUIRE(store.put_record(done, 60s).ok());
  auto tasks = store.load_pending(adopter, gone_tokens);
  BOOST_TEST_REQUIRE(tasks.ok(), why(tasks));
  BOOST_TEST(tasks.value().size() == 2u);
  for (const auto& task : tasks.value()) {
    BOOST_TEST(task.record.status == task_status::pending);
    BOOST_TEST_REQUIRE(task.input.has_value());
    BOOST_TEST(*task.input == "input of " + task.record.token);
  }
  BOOST_TEST(redis.command("SCARD resized:pending:" + adopter) == ":3\r\n");

  // The owner coming back takes its lease and finds its set empty.
  auto back = store.load_pending(gone);
  BOOST_TEST_REQUIRE(back.ok(), why(back));
  BOOST_TEST(back.value().empty());
}

BOOST_AUTO_TEST_SUITE_END() // redis

// -- failures (own servers: these tests stop or reconfigure them) -------------

BOOST_AUTO_TEST_CASE(nothing_listening) {
  task_store store{settings_for(test::free_port())};
  BOOST_TEST(!store.connect());
  auto pong = store.ping();
  BOOST_TEST_REQUIRE(!pong.ok());
  BOOST_TEST(pong.error().code == error_code::store_unavailable);
  BOOST_TEST(pong.error().message.rfind("redis 127.0.0.1:", 0) == 0);
  auto rec = store.get_record(random_token());
  BOOST_TEST_REQUIRE(!rec.ok());
  BOOST_TEST(rec.error().code == error_code::store_unavailable);
}

BOOST_AUTO_TEST_CASE(outage_and_recovery) {
  test::redis_server redis;
  auto settings = settings_for(redis.port());
  task_store store{settings};
  auto token = random_token();
  BOOST_TEST_REQUIRE(store.put_record(full_record(token), 60s).ok());
  BOOST_TEST(store.connected());

  redis.stop();
  std::string image(256 * 1024, '\xab'); // several writes to a dead peer
  auto check_unavailable = [&](auto&& result, const char* op) {
    BOOST_TEST_CONTEXT(op) {
      BOOST_TEST_REQUIRE(!result.ok());
      BOOST_TEST(result.error().code == error_code::store_unavailable);
      BOOST_TEST(result.error().message.rfind("redis 127.0.0.1:", 0) == 0);
    }
  };
  auto started = std::chrono::steady_clock::now();
  check_unavailable(store.put_result(full_record(token), image, 60s),
                    "put_result");
  check_unavailable(store.get_record(token), "get_record");
  check_unavailable(store.get_image(token), "get_image");
  check_unavailable(store.put_record(full_record(token), 60s), "put_record");
  check_unavailable(store.ping(), "ping");
  auto elapsed = std::chrono::steady_clock::now() - started;
  BOOST_TEST(ms(elapsed) < ms(settings.command_timeout));
  BOOST_TEST(!store.connected());

  redis.start(); // empty again: no persistence
  auto put = store.put_record(full_record(token), 60s);
  BOOST_TEST_REQUIRE(put.ok(), why(put));
  BOOST_TEST(store.connected());
  auto got = store.get_record(token);
  BOOST_TEST_REQUIRE(got.ok());
  BOOST_TEST(got.value().has_value());

  // Redis restarts between two calls: the stale connection is detected and
  // the call reconnects once, transparently.
  redis.stop();
  redis.start();
  BOOST_TEST(store.connected()); // does not know yet
  auto pong = store.ping();
  BOOST_TEST(pong.ok(), why(pong));
  std::string big(1u << 20, '\0');
  auto result = store.put_result(full_record(token), big, 60s);
  BOOST_TEST(result.ok());
}

BOOST_AUTO_TEST_CASE(stale_connection_large_write_after_restart) {
  // The first call after a restart is a 1 MiB write: several write(2)s to
  // a reset socket; must fail over (no SIGPIPE) and succeed on reconnect.
  test::redis_server redis;
  task_store store{settings_for(redis.port())};
  BOOST_TEST_REQUIRE(store.ping().ok());
  redis.stop();
  redis.start();
  auto token = random_token();
  std::string image(1u << 20, '\x5a');
  auto put = store.put_result(full_record(token), image, 60s);
  BOOST_TEST_REQUIRE(put.ok(), why(put));
  auto got = store.get_image(token);
  BOOST_TEST_REQUIRE(got.ok());
  BOOST_TEST_REQUIRE(got.value().has_value());
  BOOST_TEST(got.value()->size() == image.size());
}

BOOST_AUTO_TEST_CASE(auth) {
  test::redis_server redis;
  BOOST_TEST_REQUIRE(redis.command("CONFIG SET requirepass s3cret") ==
                     "+OK\r\n");
  auto settings = settings_for(redis.port());

  settings.password = "wrong";
  task_store wrong{settings};
  BOOST_TEST(!wrong.connect());
  auto pong = wrong.ping();
  BOOST_TEST_REQUIRE(!pong.ok());
  BOOST_TEST(pong.error().code == error_code::store_unavailable);
  BOOST_TEST_MESSAGE("wrong password: " << pong.error().message);
  BOOST_TEST(pong.error().message.find("AUTH failed") != std::string::npos);
  BOOST_TEST(!wrong.connected());
  BOOST_TEST(refuses_settings(wrong.last_error()));

  settings.password.clear();
  task_store none{settings};
  auto rec = none.get_record(random_token());
  BOOST_TEST_REQUIRE(!rec.ok());
  BOOST_TEST(rec.error().code == error_code::store_unavailable);
  BOOST_TEST(rec.error().message.find("NOAUTH") != std::string::npos);
  BOOST_TEST(refuses_settings(rec.error().message));

  settings.password = "s3cret";
  task_store right{settings};
  auto token = random_token();
  auto put = right.put_record(full_record(token), 60s);
  BOOST_TEST_REQUIRE(put.ok(), why(put));
  auto got = right.get_record(token);
  BOOST_TEST_REQUIRE(got.ok());
  BOOST_TEST(got.value().has_value());
}

BOOST_AUTO_TEST_CASE(command_timeout) {
  // A server that accepts but never answers (SIGSTOP): the op fails within
  // about the command timeout, and works again once the server resumes.
  test::redis_server redis;
  auto settings = settings_for(redis.port());
  settings.command_timeout = 300ms;
  task_store store{settings};
  BOOST_TEST_REQUIRE(store.ping().ok());
  // Find the server's pid from INFO.
  auto info = redis.command("INFO server");
  auto at = info.find("process_id:");
  BOOST_TEST_REQUIRE(at != std::string::npos);
  auto pid = static_cast<pid_t>(std::stol(info.substr(at + 11)));
  ::kill(pid, SIGSTOP);
  auto started = std::chrono::steady_clock::now();
  auto pong = store.ping();
  auto elapsed = std::chrono::steady_clock::now() - started;
  ::kill(pid, SIGCONT);
  BOOST_TEST_REQUIRE(!pong.ok());
  BOOST_TEST(pong.error().code == error_code::store_unavailable);
  BOOST_TEST_MESSAGE("timeout: " << pong.error().message);
  BOOST_TEST(ms(elapsed) >= 250);
  BOOST_TEST(ms(elapsed) < 2000);
  auto again = store.ping();
  BOOST_TEST(again.ok());
}

BOOST_AUTO_TEST_CASE(a_timeout_holds_a_refusal_does_not) {
  // hold_after_timeouts: a call that times out (a hung server) puts the
  // store on hold; held, calls fail at once, with that error, until
  // release(). A refused connection costs nothing and holds nothing.
  test::redis_server redis;
  auto settings = settings_for(redis.port());
  settings.command_timeout = 300ms;
  task_store store{settings};
  int holds = 0;
  store.hold_after_timeouts([&] { ++holds; });
  BOOST_TEST_REQUIRE(store.ping().ok());
  redis.pause();
  auto timed_out = store.ping();
  BOOST_TEST_REQUIRE(!timed_out.ok());
  BOOST_TEST(store.held());
  BOOST_TEST(holds == 1);
  auto started = std::chrono::steady_clock::now();
  for (int i = 0; i < 5; ++i) {
    auto got = store.get_record(random_token());
    BOOST_TEST_REQUIRE(!got.ok());
    BOOST_TEST(got.error().code == error_code::store_unavailable);
    BOOST_TEST(got.error().message == timed_out.error().message);
  }
  BOOST_TEST(!store.connect());
  BOOST_TEST(ms(std::chrono::steady_clock::now() - started) < 250);
  redis.resume();
  BOOST_TEST(!store.ping().ok()); // still held: Redis is not asked
  BOOST_TEST(holds == 1);
  store.release();
  BOOST_TEST(store.ping().ok());
  BOOST_TEST(!store.held());
  redis.stop();
  BOOST_TEST(!store.ping().ok());
  BOOST_TEST(!store.held());
  BOOST_TEST(holds == 1);
  redis.start();
  BOOST_TEST(store.ping().ok());
}

BOOST_AUTO_TEST_SUITE_END() // store
