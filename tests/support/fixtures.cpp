#include "support/fixtures.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <fstream>
#include <mutex>
#include <random>
#include <regex>
#include <spawn.h>
#include <sstream>
#include <stdexcept>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include <boost/test/unit_test.hpp>

extern char** environ;

namespace resized::test {

namespace {

// Pause between two polls of a status record: short enough to see a task
// finish promptly, long enough not to flood the service we measure. A round
// over many tokens sends one request per open token, so it pauses longer.
constexpr std::chrono::milliseconds poll_interval{15};
constexpr std::chrono::milliseconds round_interval{50};

uint32_t be32(const std::string& b, size_t at) {
  auto u = [&](size_t i) {
    return static_cast<uint32_t>(static_cast<unsigned char>(b[at + i]));
  };
  return u(0) << 24 | u(1) << 16 | u(2) << 8 | u(3);
}

uint32_t be16(const std::string& b, size_t at) {
  auto u = [&](size_t i) {
    return static_cast<uint32_t>(static_cast<unsigned char>(b[at + i]));
  };
  return u(0) << 8 | u(1);
}

uint32_t le16(const std::string& b, size_t at) {
  auto u = [&](size_t i) {
    return static_cast<uint32_t>(static_cast<unsigned char>(b[at + i]));
  };
  return u(0) | u(1) << 8;
}

uint32_t le24(const std::string& b, size_t at) {
  return le16(b, at) |
         static_cast<uint32_t>(static_cast<unsigned char>(b[at + 2])) << 16;
}

bool probe_jpeg(const std::string& b, image_info& out) {
  size_t p = 2;
  while (p + 4 <= b.size()) {
    if (static_cast<unsigned char>(b[p]) != 0xff)
      return false;
    auto marker = static_cast<unsigned char>(b[p + 1]);
    if (marker == 0xff) { // fill byte
      ++p;
      continue;
    }
    if (marker == 0x01 || (marker >= 0xd0 && marker <= 0xd9)) {
      p += 2; // standalone marker, no length
      continue;
    }
    auto len = be16(b, p + 2);
    bool sof = marker >= 0xc0 && marker <= 0xcf && marker != 0xc4 &&
               marker != 0xc8 && marker != 0xcc;
    if (sof) {
      if (p + 10 > b.size())
        return false;
      out.format = "jpeg";
      out.height = static_cast<int>(be16(b, p + 5));
      out.width = static_cast<int>(be16(b, p + 7));
      out.channels = static_cast<unsigned char>(b[p + 9]);
      return true;
    }
    p += 2 + len;
  }
  return false;
}

bool probe_webp(const std::string& b, image_info& out) {
  if (b.size() < 30)
    return false;
  auto chunk = b.substr(12, 4);
  out.format = "webp";
  if (chunk == "VP8 ") {
    // Frame tag (3 bytes), start code 9d 01 2a, then 14-bit sizes.
    if (b.compare(23, 3, "\x9d\x01\x2a") != 0)
      return false;
    out.width = static_cast<int>(le16(b, 26) & 0x3fff);
    out.height = static_cast<int>(le16(b, 28) & 0x3fff);
    return true;
  }
  if (chunk == "VP8L") {
    if (static_cast<unsigned char>(b[20]) != 0x2f)
      return false;
    uint32_t bits = le16(b, 21) | le16(b, 23) << 16;
    out.width = static_cast<int>((bits & 0x3fff) + 1);
    out.height = static_cast<int>(((bits >> 14) & 0x3fff) + 1);
    return true;
  }
  if (chunk == "VP8X") {
    out.width = static_cast<int>(le24(b, 24) + 1);
    out.height = static_cast<int>(le24(b, 27) + 1);
    return true;
  }
  return false;
}

bool probe_avif(const std::string& b, image_info& out) {
  // ISO BMFF: "ftyp" at 4; the image spatial extents box "ispe" holds
  // version/flags (4 bytes), then width and height as big-endian 32 bits.
  auto at = b.find("ispe");
  if (at == std::string::npos || at + 16 > b.size())
    return false;
  out.format = "avif";
  out.width = static_cast<int>(be32(b, at + 8));
  out.height = static_cast<int>(be32(b, at + 12));
  return true;
}

} // namespace

// -- PNG building blocks (shared with the hostile-input suite) --------------

void put_be32(std::string& out, uint32_t v) {
  out.push_back(static_cast<char>(v >> 24));
  out.push_back(static_cast<char>(v >> 16));
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v));
}

uint32_t crc32(const std::string& data) {
  static const auto table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t n = 0; n < 256; ++n) {
      uint32_t c = n;
      for (int k = 0; k < 8; ++k)
        c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
      t[n] = c;
    }
    return t;
  }();
  uint32_t c = 0xffffffffu;
  for (unsigned char ch : data)
    c = table[(c ^ ch) & 0xff] ^ (c >> 8);
  return c ^ 0xffffffffu;
}

void png_chunk(std::string& out, const char* type, const std::string& data) {
  put_be32(out, static_cast<uint32_t>(data.size()));
  std::string body = std::string(type, 4) + data;
  out += body;
  put_be32(out, crc32(body));
}

// -- corpus ------------------------------------------------------------------

std::string corpus_dir() {
  return env_or("RESIZED_CORPUS_DIR",
                env_or("RESIZED_SOURCE_DIR", ".") + "/../shared/corpus/photos");
}

std::vector<std::string> corpus_photos() {
  std::vector<std::string> result;
  auto dir = corpus_dir();
  std::unique_ptr<DIR, int (*)(DIR*)> d{opendir(dir.c_str()), closedir};
  if (!d)
    throw std::runtime_error("cannot open corpus directory " + dir);
  while (auto* entry = readdir(d.get())) {
    std::string name = entry->d_name;
    if (name.empty() || name[0] == '.')
      continue;
    result.push_back(dir + "/" + name);
  }
  std::sort(result.begin(), result.end());
  return result;
}

std::string corpus_photo(const std::string& name) {
  return read_file(corpus_dir() + "/" + name);
}

const std::string& small_photo_bytes() {
  static const std::string bytes = corpus_photo(small_photo);
  return bytes;
}

const std::string& small_photo_base64() {
  static const std::string text = base64_encode(small_photo_bytes());
  return text;
}

// -- hand-made inputs --------------------------------------------------------

std::string png_header_only(uint32_t width, uint32_t height) {
  std::string out = "\x89PNG\r\n\x1a\n";
  std::string ihdr;
  put_be32(ihdr, width);
  put_be32(ihdr, height);
  ihdr += std::string("\x08\x02\x00\x00\x00", 5); // 8 bit RGB, no interlace
  png_chunk(out, "IHDR", ihdr);
  // A minimal zlib stream (stored, empty): the pixels are simply missing.
  png_chunk(out, "IDAT",
            std::string("\x78\x01\x01\x00\x00\xff\xff", 7) +
                std::string("\x00\x00\x00\x01", 4));
  png_chunk(out, "IEND", {});
  return out;
}

std::string corrupt_jpeg() {
  auto src = corpus_photo(small_photo);
  std::string out = "\xff\xd8";
  size_t p = 2;
  while (p + 4 <= src.size()) {
    auto marker = static_cast<unsigned char>(src[p + 1]);
    auto len = be16(src, p + 2);
    if (marker != 0xdb) // drop DQT: "Quantization table 0x00 was not defined"
      out += src.substr(p, 2 + len);
    p += 2 + len;
    if (marker == 0xda)
      break;
  }
  out += garbage_bytes(4096);
  out += "\xff\xd9";
  return out;
}

std::string garbage_bytes(size_t size) {
  std::string out(size, '\0');
  uint32_t x = 2463534242u; // xorshift32: same bytes on every run
  for (auto& ch : out) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    ch = static_cast<char>(x & 0xff);
  }
  if (!out.empty())
    out[0] = 0x00; // no format starts with a zero byte we accept
  // 0xff would start a JPEG marker inside the entropy-coded data; keep the
  // garbage free of markers so the decoder does not stop early.
  std::replace(out.begin(), out.end(), '\xff', '\x7f');
  return out;
}

// -- result images -----------------------------------------------------------

bool jpeg_has_metadata(const std::string& b) {
  size_t p = 2;
  while (p + 4 <= b.size() && static_cast<unsigned char>(b[p]) == 0xff) {
    auto marker = static_cast<unsigned char>(b[p + 1]);
    if (marker == 0xda) // start of scan: no more header segments
      return false;
    if (marker == 0xe1 || marker == 0xed)
      return true;
    p += 2 + be16(b, p + 2);
  }
  return false;
}

bool probe_image(const std::string& b, image_info& out) {
  out = image_info{};
  if (b.size() >= 4 && b.compare(0, 3, "\xff\xd8\xff") == 0)
    return probe_jpeg(b, out);
  if (b.size() >= 26 && b.compare(0, 8, "\x89PNG\r\n\x1a\n") == 0 &&
      b.compare(12, 4, "IHDR") == 0) {
    out.format = "png";
    out.width = static_cast<int>(be32(b, 16));
    out.height = static_cast<int>(be32(b, 20));
    switch (b[25]) { // colour type
    case 0:          // grey
      out.channels = 1;
      break;
    case 4: // grey + alpha
      out.channels = 2;
      break;
    case 2: // RGB
    case 3: // palette (of RGB)
      out.channels = 3;
      break;
    case 6: // RGBA
      out.channels = 4;
      break;
    }
    return true;
  }
  if (b.size() >= 16 && b.compare(0, 4, "RIFF") == 0 &&
      b.compare(8, 4, "WEBP") == 0)
    return probe_webp(b, out);
  if (b.size() >= 12 && b.compare(4, 4, "ftyp") == 0)
    return probe_avif(b, out);
  return false;
}

// -- JSON --------------------------------------------------------------------

rapidjson::Document parse_json(const std::string& text) {
  rapidjson::Document doc;
  doc.Parse(text.c_str(), text.size());
  return doc;
}

std::string json_string(const rapidjson::Value& v, const char* key) {
  if (!v.IsObject())
    return {};
  auto i = v.FindMember(key);
  if (i == v.MemberEnd() || !i->value.IsString())
    return {};
  return {i->value.GetString(), i->value.GetStringLength()};
}

int64_t json_int(const rapidjson::Value& v, const char* key, int64_t fallback) {
  if (!v.IsObject())
    return fallback;
  auto i = v.FindMember(key);
  if (i == v.MemberEnd() || !i->value.IsInt64())
    return fallback;
  return i->value.GetInt64();
}

bool is_uuid(const std::string& text) {
  static const std::regex re{
      "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
      "[0-9a-fA-F]{12}$"};
  return std::regex_match(text, re);
}

std::string random_uuid() {
  static std::mutex mtx;
  static std::mt19937_64 gen{std::random_device{}()};
  std::lock_guard<std::mutex> guard{mtx};
  uint64_t hi = gen();
  uint64_t lo = gen();
  hi = (hi & ~0xf000ull) | 0x4000ull;       // version 4
  lo = (lo & ~(3ull << 62)) | (2ull << 62); // variant 10xx
  char buf[40];
  std::snprintf(
      buf, sizeof(buf), "%08x-%04x-%04x-%04x-%012llx",
      static_cast<unsigned>(hi >> 32), static_cast<unsigned>(hi >> 16 & 0xffff),
      static_cast<unsigned>(hi & 0xffff), static_cast<unsigned>(lo >> 48),
      static_cast<unsigned long long>(lo & 0xffffffffffffull));
  return buf;
}

bool is_iso8601_ms(const std::string& text) {
  static const std::regex re{
      "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z$"};
  return std::regex_match(text, re);
}

double metric_value(const std::string& metrics, const std::string& series) {
  auto at = ("\n" + metrics).find("\n" + series + " ");
  if (at == std::string::npos)
    return -1;
  return std::stod(metrics.substr(at + series.size() + 1));
}

double metric(const resized_server& srv, const std::string& series) {
  return metric_value(http_get(srv.url("/metrics")).body, series);
}

std::string check_error(const http_response& res, long status,
                        const std::string& code) {
  BOOST_TEST_CONTEXT("response " << res.status << " " << res.body) {
    BOOST_TEST(res.status == status);
    BOOST_TEST(res.header("content-type").rfind("application/json", 0) == 0);
    auto doc = parse_json(res.body);
    BOOST_TEST_REQUIRE(!doc.HasParseError());
    BOOST_TEST_REQUIRE(doc.IsObject());
    BOOST_TEST(doc.MemberCount() == 2u);
    auto success = doc.FindMember("success");
    BOOST_TEST_REQUIRE((success != doc.MemberEnd()));
    BOOST_TEST((success->value.IsBool() && !success->value.GetBool()));
    auto error = doc.FindMember("error");
    BOOST_TEST_REQUIRE((error != doc.MemberEnd()));
    BOOST_TEST_REQUIRE(error->value.IsObject());
    BOOST_TEST(error->value.MemberCount() == 2u);
    BOOST_TEST(json_string(error->value, "code") == code);
    auto message = json_string(error->value, "message");
    BOOST_TEST(!message.empty());
    return message;
  }
  return {};
}

// -- the client journey ------------------------------------------------------

http_response submit_json(const resized_server& srv, const std::string& b64,
                          const std::string& extra_members) {
  std::string body = "{\"imageData\": \"" + b64 + "\"" + extra_members + "}";
  return http_post(srv.url("/api/v1/resize"), body, "application/json");
}

http_response submit_raw(const resized_server& srv, const std::string& bytes,
                         const std::string& content_type,
                         const std::string& query) {
  return http_post(srv.url("/api/v1/resize" + query), bytes, content_type);
}

std::string token_of(const http_response& res) {
  if (res.status != 202)
    return {};
  auto doc = parse_json(res.body);
  if (doc.HasParseError() || !doc.IsObject())
    return {};
  auto success = doc.FindMember("success");
  if (success == doc.MemberEnd() || !success->value.IsBool() ||
      !success->value.GetBool())
    return {};
  auto token = json_string(doc, "token");
  if (!is_uuid(token) || res.header("location") != "/api/v1/resize/" + token)
    return {};
  return token;
}

std::string accepted_token(const http_response& res) {
  BOOST_TEST_CONTEXT("response " << res.status << " " << res.error << " "
                                 << res.body) {
    BOOST_TEST(res.status == 202);
    auto doc = parse_json(res.body);
    BOOST_TEST_REQUIRE(!doc.HasParseError());
    BOOST_TEST_REQUIRE(doc.IsObject());
    auto success = doc.FindMember("success");
    BOOST_TEST_REQUIRE((success != doc.MemberEnd()));
    BOOST_TEST((success->value.IsBool() && success->value.GetBool()));
    auto token = json_string(doc, "token");
    BOOST_TEST(is_uuid(token));
    BOOST_TEST(res.header("location") == "/api/v1/resize/" + token);
    if (res.status != 202 || !is_uuid(token))
      return {};
    return token;
  }
  return {};
}

namespace {

// One GET of a status record; checks the invariants of non-final records.
task_status poll_once(const resized_server& srv, const std::string& token) {
  task_status st;
  auto res = http_get(srv.url("/api/v1/resize/" + token));
  st.http_status = res.status;
  st.error = res.error;
  st.body = res.body;
  if (res.status != 200)
    return st;
  auto doc = parse_json(res.body);
  if (doc.HasParseError() || !doc.IsObject())
    return st;
  st.status = json_string(doc, "status");
  if (st.status == "PENDING" || st.status == "IN_PROGRESS") {
    auto url = doc.FindMember("resized_image_url");
    BOOST_TEST_CONTEXT("status " << res.body) {
      BOOST_TEST((url != doc.MemberEnd() && url->value.IsNull()));
    }
  }
  return st;
}

} // namespace

task_status wait_final(const resized_server& srv, const std::string& token,
                       std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  task_status st;
  for (;;) {
    st = poll_once(srv, token);
    // A record not (yet) readable is a failure of the contract: the token
    // was accepted, so GET must know it. Stop polling and let callers see.
    if (st.http_status != 200 || st.final())
      return st;
    if (std::chrono::steady_clock::now() >= deadline)
      return st;
    std::this_thread::sleep_for(poll_interval);
  }
}

std::map<std::string, task_status>
poll_all_final(const std::function<task_status(const std::string&)>& poll,
               const std::vector<std::string>& tokens,
               std::chrono::milliseconds timeout,
               std::chrono::milliseconds interval) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::map<std::string, task_status> result;
  std::vector<std::string> open = tokens;
  while (!open.empty()) {
    std::vector<std::string> still_open;
    for (const auto& token : open) {
      auto st = poll(token);
      result[token] = st;
      // Transport errors and non-200 answers are kept as they are (the
      // caller asserts); only records still moving are polled again.
      if (st.http_status == 200 && !st.final())
        still_open.push_back(token);
    }
    open.swap(still_open);
    if (open.empty() || std::chrono::steady_clock::now() >= deadline)
      break;
    std::this_thread::sleep_for(interval);
  }
  return result;
}

std::map<std::string, task_status>
wait_all_final(const resized_server& srv,
               const std::vector<std::string>& tokens,
               std::chrono::milliseconds timeout) {
  return poll_all_final(
      [&](const std::string& token) { return poll_once(srv, token); }, tokens,
      timeout, round_interval);
}

std::string url_path(const std::string& url) {
  auto scheme = url.find("://");
  if (scheme == std::string::npos)
    return url;
  auto slash = url.find('/', scheme + 3);
  return slash == std::string::npos ? "/" : url.substr(slash);
}

resize_outcome finish(const resized_server& srv, const std::string& token,
                      std::chrono::milliseconds timeout) {
  resize_outcome out;
  out.status = wait_final(srv, token, timeout);
  BOOST_TEST_CONTEXT("token " << token << " status " << out.status.http_status
                              << " " << out.status.error << " "
                              << out.status.body) {
    BOOST_TEST_REQUIRE(out.status.http_status == 200);
    BOOST_TEST_REQUIRE(out.status.status == "SUCCESS");
    auto doc = parse_json(out.status.body);
    out.url = json_string(doc, "resized_image_url");
    // Its own image, or (identical work) the one of the task it shares
    // the result with: /api/v1/images/<a token>.<ext>.
    BOOST_TEST(url_path(out.url).rfind("/api/v1/images/", 0) == 0);
    BOOST_TEST(url_path(out.url).size() > 15 + 36 + 1);
    BOOST_TEST(is_iso8601_ms(json_string(doc, "submitted_at")));
    BOOST_TEST(is_iso8601_ms(json_string(doc, "finished_at")));
    BOOST_TEST(json_string(doc, "submitted_at") <=
               json_string(doc, "finished_at"));
    out.image = http_get(srv.url(url_path(out.url)));
    BOOST_TEST_REQUIRE(out.image.status == 200);
    BOOST_TEST_REQUIRE(probe_image(out.image.body, out.info));
    BOOST_TEST(json_int(doc, "width") == out.info.width);
    BOOST_TEST(json_int(doc, "height") == out.info.height);
    BOOST_TEST(json_string(doc, "format") == out.info.format);
    BOOST_TEST(json_int(doc, "bytes") ==
               static_cast<int64_t>(out.image.body.size()));
    BOOST_TEST(out.image.header("content-type") == "image/" + out.info.format);
    BOOST_TEST(out.image.header("content-length") ==
               std::to_string(out.image.body.size()));
  }
  return out;
}

// -- processes ---------------------------------------------------------------

int run_to_exit(const std::vector<std::string>& argv, std::string& output,
                std::chrono::milliseconds timeout) {
  auto dir = make_temp_dir("run");
  auto log = dir + "/output.log";
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  std::vector<char*> args;
  for (const auto& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  // Default dispositions and an empty mask, whatever the runner set.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t defaults;
  sigemptyset(&defaults);
  for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGCHLD})
    sigaddset(&defaults, sig);
  sigset_t empty;
  sigemptyset(&empty);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setsigmask(&attr, &empty);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, args[0], &actions, &attr, args.data(), environ);
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    output = std::string("posix_spawn failed: ") + std::strerror(rc);
    return -1;
  }
  int status = 0;
  bool done = wait_until(
      [&] {
        auto r = waitpid(pid, &status, WNOHANG);
        return r == pid || (r < 0 && errno != EINTR);
      },
      timeout);
  if (!done) {
    ::kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  }
  try {
    output = read_file(log);
  } catch (const std::exception& e) {
    output = e.what();
  }
  if (WIFEXITED(status))
    return WEXITSTATUS(status);
  if (WIFSIGNALED(status))
    return 128 + WTERMSIG(status);
  return -1;
}

const std::string& test_certs_dir() {
  static std::mutex mutex;
  static std::string dir;
  std::lock_guard<std::mutex> lock{mutex};
  if (!dir.empty())
    return dir;
  auto made = make_temp_dir("certs");
  std::string output;
  auto script =
      env_or("RESIZED_SOURCE_DIR", ".") + "/tests/support/make_test_certs.sh";
  int rc = run_to_exit({"/bin/bash", script, made}, output,
                       std::chrono::seconds{60});
  if (rc != 0)
    throw std::runtime_error("make_test_certs.sh failed (" +
                             std::to_string(rc) + "): " + output);
  dir = made;
  return dir;
}

size_t occurrences(const std::string& text, const std::string& part) {
  size_t n = 0;
  for (auto at = text.find(part); at != std::string::npos;
       at = text.find(part, at + part.size()))
    ++n;
  return n;
}

size_t lines_with(const std::string& log,
                  const std::vector<std::string>& parts) {
  size_t count = 0;
  std::istringstream in{log};
  std::string line;
  while (std::getline(in, line))
    if (std::all_of(parts.begin(), parts.end(), [&](const std::string& p) {
          return line.find(p) != std::string::npos;
        }))
      ++count;
  return count;
}

std::string wait_log_line(const child_process& proc, const std::string& marker,
                          std::chrono::milliseconds timeout) {
  std::string line;
  wait_until(
      [&] {
        auto log = proc.log();
        auto at = log.find(marker);
        if (at == std::string::npos)
          return false;
        auto begin = log.rfind('\n', at);
        begin = begin == std::string::npos ? 0 : begin + 1;
        line = log.substr(begin, log.find('\n', at) - begin);
        return true;
      },
      timeout);
  return line;
}

std::string log_value(const std::string& line, const std::string& key) {
  auto at = line.find(" " + key + "=");
  if (at == std::string::npos)
    return {};
  at += key.size() + 2;
  return line.substr(at, line.find_first_of(" \n", at) - at);
}

void put_orphan_pending_record(redis_server& redis, const std::string& token) {
  redis.command("HSET resized:task:" + token + " token " + token +
                " status PENDING submitted_at 1764400000000");
  redis.command("EXPIRE resized:task:" + token + " 60");
}

} // namespace resized::test
