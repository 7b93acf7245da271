// Helpers shared by the end-to-end suites: corpus images, hand-made bad
// images, result-image probing (no libvips), JSON access (RapidJSON), the
// submit/poll/fetch steps of the client journey, and a per-suite environment
// (one redis-server and one resized per BOOST_AUTO_TEST_SUITE).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <rapidjson/document.h>

#include "support/http_client.hpp"
#include "support/process.hpp"
#include "support/redis_server.hpp"
#include "support/resized_server.hpp"

namespace resized::test {

// -- corpus ------------------------------------------------------------------

/// $RESIZED_CORPUS_DIR (set by CMake) or ../shared/corpus/photos.
std::string corpus_dir();

/// Full paths of every photo in the corpus, sorted by name.
std::vector<std::string> corpus_photos();

/// Bytes of one corpus photo by file name, e.g. "opencv__messi5.jpg".
std::string corpus_photo(const std::string& name);

/// The small photo most tests use: opencv__messi5.jpg, 548x342 JPEG.
inline constexpr const char* small_photo = "opencv__messi5.jpg";
inline constexpr int small_photo_width = 548;
inline constexpr int small_photo_height = 342;
/// The small photo's bytes and their base64 text, read once per process.
const std::string& small_photo_bytes();
const std::string& small_photo_base64();

// -- hand-made inputs --------------------------------------------------------

/// A valid PNG header (signature, IHDR with a correct CRC, a tiny IDAT, IEND)
/// declaring `width` x `height` RGB pixels: a decompression-bomb stand-in.
std::string png_header_only(uint32_t width, uint32_t height);

/// A JPEG whose header (SOI, APPn, SOF, DHT, SOS) is intact, so its size can
/// be read without decoding, but whose quantisation tables are removed and
/// whose entropy-coded data is garbage: every decoder fails on the pixels.
std::string corrupt_jpeg();

/// Appends `v` big-endian (4 bytes).
void put_be32(std::string& out, uint32_t v);
/// CRC-32 as PNG chunks use it.
uint32_t crc32(const std::string& data);
/// Appends one PNG chunk: length, type, data, CRC.
void png_chunk(std::string& out, const char* type, const std::string& data);

/// Deterministic bytes that start with no known image signature.
std::string garbage_bytes(size_t size);

// -- result images -----------------------------------------------------------

struct image_info {
  std::string format; // "jpeg", "png", "webp", "avif", or "" if unknown
  int width = 0;
  int height = 0;
  /// Colour channels with alpha, from the header (JPEG: the frame's
  /// components; PNG: its colour type, a palette counting 3); 0 = not read
  /// (WebP, AVIF).
  int channels = 0;
};

/// True when a JPEG carries Exif, XMP (APP1) or IPTC (APP13) segments.
bool jpeg_has_metadata(const std::string& bytes);

/// Reads format and dimensions from the encoded bytes (JPEG SOFn, PNG IHDR,
/// WebP VP8/VP8L/VP8X, AVIF ispe). Returns false if they cannot be read.
bool probe_image(const std::string& bytes, image_info& out);

// -- JSON --------------------------------------------------------------------

/// Parses `text`; check `HasParseError()` / `IsObject()` on the result.
rapidjson::Document parse_json(const std::string& text);

/// Member `key` of object `v` as a string; "" when missing or not a string.
std::string json_string(const rapidjson::Value& v, const char* key);

/// Member `key` of object `v` as an integer; `fallback` when not an integer.
int64_t json_int(const rapidjson::Value& v, const char* key,
                 int64_t fallback = -1);

/// True for the canonical 8-4-4-4-12 hexadecimal UUID form.
bool is_uuid(const std::string& text);

/// A random version-4 UUID, lower-case (for tokens nobody submitted).
std::string random_uuid();

/// True for "YYYY-MM-DDTHH:MM:SS.mmmZ".
bool is_iso8601_ms(const std::string& text);

/// Asserts (BOOST_TEST) that `res` is an API error: `status`, a JSON content
/// type, and exactly {"success": false, "error": {"code": code, "message":
/// non-empty}}. Returns the message.
std::string check_error(const http_response& res, long status,
                        const std::string& code);

/// The value of `series` in the Prometheus text `metrics`: a metric's name,
/// with its labels as /metrics writes them (`name{a="x",b="y"}`); -1 when
/// it is absent.
double metric_value(const std::string& metrics, const std::string& series);

/// The same, read from `srv`'s /metrics now.
double metric(const resized_server& srv, const std::string& series);

// -- the client journey ------------------------------------------------------

/// POST /api/v1/resize as JSON: {"imageData": "<b64>"<extra_members>}.
/// `extra_members` is raw JSON text such as `, "width": 300`.
http_response submit_json(const resized_server& srv, const std::string& b64,
                          const std::string& extra_members = {});

/// POST /api/v1/resize with the raw bytes as body; `query` like
/// "?width=300&mode=fit".
http_response submit_raw(const resized_server& srv, const std::string& bytes,
                         const std::string& content_type = "image/jpeg",
                         const std::string& query = {});

/// Asserts a 202 answer with {"success": true, "token": uuid} and the
/// Location header; returns the token ("" when the checks fail). Boost.Test's
/// assertions are not thread-safe: in a thread a test starts, use
/// token_of instead.
std::string accepted_token(const http_response& res);

/// The token of a 202 answer with {"success": true, "token": uuid} and the
/// Location header that names it; "" for any other answer. No assertion:
/// safe in the threads a test starts (Boost.Test's own state is not; eight
/// threads asserting at once once corrupted the heap of e2e.journey).
std::string token_of(const http_response& res);

/// The last status record seen while polling one token.
struct task_status {
  long http_status = 0;
  std::string error; // transport error, when http_status is 0
  std::string body;
  std::string status; // "PENDING", "IN_PROGRESS", "SUCCESS", "FAILURE"
  bool final() const { return status == "SUCCESS" || status == "FAILURE"; }
};

/// Polls GET /api/v1/resize/<token> until SUCCESS or FAILURE or `timeout`.
/// Asserts on the way that non-final records carry a null URL.
task_status wait_final(const resized_server& srv, const std::string& token,
                       std::chrono::milliseconds timeout = std::chrono::seconds{
                           30});

/// Polls each token with `poll`, round-robin every `interval`, until each is
/// final (or answers other than 200) or `timeout` passes.
std::map<std::string, task_status>
poll_all_final(const std::function<task_status(const std::string&)>& poll,
               const std::vector<std::string>& tokens,
               std::chrono::milliseconds timeout,
               std::chrono::milliseconds interval);

/// Polls many tokens until each one is final or `timeout`; round-robin.
std::map<std::string, task_status>
wait_all_final(const resized_server& srv,
               const std::vector<std::string>& tokens,
               std::chrono::milliseconds timeout);

/// A SUCCESS record and its fetched image.
struct resize_outcome {
  task_status status;
  std::string url; // resized_image_url as given
  http_response image;
  image_info info; // probed from image.body
};

/// Submits nothing: waits for `token`, asserts SUCCESS with a well-formed
/// record, fetches resized_image_url (a path, or absolute with the path part
/// fetched from `srv`) and probes the bytes; asserts they agree with the
/// record (width, height, format, bytes).
resize_outcome finish(const resized_server& srv, const std::string& token,
                      std::chrono::milliseconds timeout = std::chrono::seconds{
                          30});

/// Path part of an absolute URL ("http://h:1/x" -> "/x"); paths unchanged.
std::string url_path(const std::string& url);

// -- processes ---------------------------------------------------------------

/// Runs `argv` to completion (SIGKILL after `timeout`), stdout and stderr
/// captured in `output`. Returns the exit code, or 128+signal when killed
/// by a signal, or -1 when it could not start.
int run_to_exit(const std::vector<std::string>& argv, std::string& output,
                std::chrono::milliseconds timeout);

/// A directory of TLS files for the cluster port, made once per test
/// process by tests/support/make_test_certs.sh (the `openssl` command): a
/// test CA (ca.pem) and node.pem / node.key it signed, node-encrypted.key
/// (the same key under the passphrase "test-passphrase"), rogue.pem /
/// rogue.key signed by another CA (other-ca.pem), and server-only.pem /
/// server-only.key (extendedKeyUsage serverAuth only). Throws
/// std::runtime_error with the script's output if it fails.
const std::string& test_certs_dir();

// -- per-suite environment ---------------------------------------------------

/// One redis-server and one resized with Tag::args() as extra arguments.
/// Use as a suite decorator:
///   BOOST_AUTO_TEST_SUITE(s, *boost::unit_test::fixture<suite_env<...>>())
/// and reach it in test cases with suite_env<...>::get().
struct e2e_service {
  explicit e2e_service(std::vector<std::string> extra_args = {},
                       const std::string& name = "resized")
      : redis(), server(redis.port(), std::move(extra_args), name) {
    // nop
  }
  redis_server redis;
  resized_server server;
};

template <class Tag>
struct suite_env {
  static std::unique_ptr<e2e_service>& ptr() {
    static std::unique_ptr<e2e_service> instance;
    return instance;
  }
  suite_env() {
    ptr() = std::make_unique<e2e_service>(Tag::args(), Tag::name());
  }
  ~suite_env() { ptr().reset(); }
  static e2e_service& get() {
    if (!ptr())
      throw std::runtime_error("suite environment not started");
    return *ptr();
  }
};

/// How many times `part` occurs in `text`, not overlapping.
size_t occurrences(const std::string& text, const std::string& part);

/// Lines of `log` that contain every one of `parts`.
size_t lines_with(const std::string& log,
                  const std::vector<std::string>& parts);

/// The first whole line of `proc`'s log that holds `marker`, waiting up
/// to `timeout` for it; "" if none came.
std::string wait_log_line(const child_process& proc, const std::string& marker,
                          std::chrono::milliseconds timeout);

/// The value of `key=` in a log line ("" when absent; no quoted values).
std::string log_value(const std::string& line, const std::string& key);

/// Writes a PENDING record for `token` straight into Redis, as if the node
/// that accepted it were gone and not back yet (60 s TTL).
void put_orphan_pending_record(redis_server& redis, const std::string& token);

} // namespace resized::test
