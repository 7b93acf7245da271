// loadgen — drives a running resized (or the original Flask + Celery stack)
// over loopback with real photos and measures it end to end.
//
// Closed loop (default): --concurrency client threads, each with its own
// libcurl easy handle (keep-alive), take submissions i = 0..count-1 from a
// shared counter: photo i % N (sorted by name), POST it (base64 JSON or raw
// bytes), poll the token (adaptive: --poll-ms doubling to --poll-max-ms;
// with --wait-s=N resized's long poll, GET ...?wait=N, no pause) until
// SUCCESS/FAILURE, fetch the result and check its dimensions from the JPEG
// SOF marker (PNG IHDR, WebP VP8/VP8L/VP8X too). Reports images/s over the
// whole run, POST latency p50/p99, completion latency (POST start -> result
// fetched and validated) p50/p99, failures.
//
// --submit-only: flood mode. POST everything as fast as the threads can
// (503 queue_full: wait --retry-ms and retry the same submission), then poll
// every accepted token to completion. Used for the RSS-vs-queued-bytes curve.
//
// Sampler thread (every --sample-ms, default 50): the sum of VmRSS over the
// --pid processes (and their children with --pid-children); with --metrics
// also resized_queued_bytes / resized_queue_depth from /metrics; rows go to
// --curve=<csv>. With --metrics, /metrics is read before and after the run
// and the per-stage histogram deltas (resized_task_duration_seconds) are
// printed.
//
// --original: the original stack's dialect (only "imageData" in the JSON;
// statuses PENDING/STARTED/RETRY/SUCCESS/FAILURE, FAILURE answers 500;
// resized_image_url is a bare file name: the result is read from
// --result-dir/<name> instead of over HTTP; output is always 100x100).
//
// Every loop is bounded: --count submissions, --timeout-s for the whole run.
// Prints one machine-readable line starting "result <label> " (key=value).
#include <atomic>
#include <csignal>
#include <cstring>
#include <fstream>
#include <mutex>
#include <optional>
#include <string_view>
#include <sys/resource.h>
#include <thread>

#include <curl/curl.h>

#include "bench_util.hpp"

namespace {

// -- base64 (client side, done before the clock starts) -----------------------

std::string base64(const std::string& in) {
  static const char tbl[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  const auto* s = reinterpret_cast<const unsigned char*>(in.data());
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (s[i] << 16) | (s[i + 1] << 8) | s[i + 2];
    out += tbl[v >> 18];
    out += tbl[(v >> 12) & 63];
    out += tbl[(v >> 6) & 63];
    out += tbl[v & 63];
  }
  if (i + 1 == in.size()) {
    uint32_t v = s[i] << 16;
    out += tbl[v >> 18];
    out += tbl[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    uint32_t v = (s[i] << 16) | (s[i + 1] << 8);
    out += tbl[v >> 18];
    out += tbl[(v >> 12) & 63];
    out += tbl[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

// -- result validation: dimensions from the encoded bytes --------------------

struct dims {
  int width = 0;
  int height = 0;
  std::string format;
};

uint32_t be16(const unsigned char* p) {
  return (p[0] << 8) | p[1];
}
uint32_t be32(const unsigned char* p) {
  return (uint32_t(p[0]) << 24) | (p[1] << 16) | (p[2] << 8) | p[3];
}
uint32_t le16(const unsigned char* p) {
  return p[0] | (p[1] << 8);
}
uint32_t le24(const unsigned char* p) {
  return p[0] | (p[1] << 8) | (p[2] << 16);
}

/// Width and height from a JPEG's SOFn segment (walking the markers), a
/// PNG's IHDR, or a WebP's VP8/VP8L/VP8X chunk; nullopt if not parseable.
std::optional<dims> image_dims(const std::string& b) {
  const auto* p = reinterpret_cast<const unsigned char*>(b.data());
  size_t n = b.size();
  if (n >= 4 && p[0] == 0xFF && p[1] == 0xD8) {
    size_t i = 2;
    for (int guard = 0; guard < 10000 && i + 4 <= n; ++guard) {
      if (p[i] != 0xFF)
        return std::nullopt;
      unsigned m = p[i + 1];
      if (m == 0xFF) { // fill byte
        ++i;
        continue;
      }
      if (m == 0xD8 || m == 0x01 || (m >= 0xD0 && m <= 0xD7)) {
        i += 2;
        continue;
      }
      uint32_t len = be16(p + i + 2);
      if (len < 2 || i + 2 + len > n)
        return std::nullopt;
      bool sof = m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
      if (sof) {
        if (len < 7)
          return std::nullopt;
        return dims{int(be16(p + i + 7)), int(be16(p + i + 5)), "jpeg"};
      }
      if (m == 0xDA || m == 0xD9) // scan data before any SOF: broken
        return std::nullopt;
      i += 2 + len;
    }
    return std::nullopt;
  }
  if (n >= 24 && std::memcmp(p, "\x89PNG\r\n\x1a\n", 8) == 0 &&
      std::memcmp(p + 12, "IHDR", 4) == 0)
    return dims{int(be32(p + 16)), int(be32(p + 20)), "png"};
  if (n >= 30 && std::memcmp(p, "RIFF", 4) == 0 &&
      std::memcmp(p + 8, "WEBP", 4) == 0) {
    if (std::memcmp(p + 12, "VP8X", 4) == 0)
      return dims{int(le24(p + 24) + 1), int(le24(p + 27) + 1), "webp"};
    if (std::memcmp(p + 12, "VP8 ", 4) == 0)
      return dims{int(le16(p + 26) & 0x3FFF), int(le16(p + 28) & 0x3FFF),
                  "webp"};
    if (std::memcmp(p + 12, "VP8L", 4) == 0 && n >= 25) {
      uint32_t v =
          p[21] | (p[22] << 8) | (p[23] << 16) | (uint32_t(p[24]) << 24);
      return dims{int((v & 0x3FFF) + 1), int(((v >> 14) & 0x3FFF) + 1), "webp"};
    }
  }
  // AVIF (ISOBMFF): an "ftyp" box of brand avif, the size in the primary
  // item's "ispe" property (version/flags, then width and height).
  if (n >= 12 && std::memcmp(p + 4, "ftypavif", 8) == 0) {
    std::string_view view{b};
    auto at = view.find("ispe");
    if (at != std::string_view::npos && at + 16 <= n)
      return dims{int(be32(p + at + 8)), int(be32(p + at + 12)), "avif"};
  }
  return std::nullopt;
}

// -- tiny JSON field readers (the answers are flat objects) ------------------

/// The string value of "key":"..." (no escapes expected in these fields).
std::optional<std::string> json_string(const std::string& body,
                                       const std::string& key) {
  std::string pat = "\"" + key + "\"";
  size_t k = body.find(pat);
  if (k == std::string::npos)
    return std::nullopt;
  size_t c = body.find(':', k + pat.size());
  if (c == std::string::npos)
    return std::nullopt;
  size_t q = body.find_first_not_of(" \t\r\n", c + 1);
  if (q == std::string::npos || body[q] != '"')
    return std::nullopt; // null or not a string
  size_t e = body.find('"', q + 1);
  if (e == std::string::npos)
    return std::nullopt;
  return body.substr(q + 1, e - q - 1);
}

// -- HTTP ---------------------------------------------------------------------

size_t append_body(char* ptr, size_t size, size_t nmemb, void* userdata) {
  static_cast<std::string*>(userdata)->append(ptr, size * nmemb);
  return size * nmemb;
}

/// A request body made of segments sent without concatenating them
/// (JSON prefix, the shared base64 text, suffix).
struct segmented_body {
  const std::string* parts[3] = {};
  size_t part = 0;
  size_t offset = 0;
  size_t total() const {
    size_t t = 0;
    for (auto* s : parts)
      if (s)
        t += s->size();
    return t;
  }
};

size_t read_segments(char* buf, size_t size, size_t nitems, void* userdata) {
  auto* b = static_cast<segmented_body*>(userdata);
  size_t room = size * nitems, written = 0;
  while (room > 0 && b->part < 3) {
    const std::string* s = b->parts[b->part];
    if (!s || b->offset >= s->size()) {
      ++b->part;
      b->offset = 0;
      continue;
    }
    size_t n = std::min(room, s->size() - b->offset);
    std::memcpy(buf + written, s->data() + b->offset, n);
    b->offset += n;
    written += n;
    room -= n;
  }
  return written;
}

struct http_answer {
  long code = 0;
  std::string body;
  std::string error; // transport error, empty if none
};

class client {
public:
  client() : h_(curl_easy_init()) {
    if (!h_)
      throw std::runtime_error("curl_easy_init failed");
  }
  ~client() {
    curl_easy_cleanup(h_);
    if (headers_)
      curl_slist_free_all(headers_);
  }
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  http_answer get(const std::string& url, long timeout_ms = 30000) {
    reset(url, timeout_ms);
    curl_easy_setopt(h_, CURLOPT_HTTPGET, 1L);
    return perform();
  }

  /// POST `body` (segments) with `content_type`.
  http_answer post(const std::string& url, segmented_body body,
                   const std::string& content_type, long timeout_ms = 60000) {
    reset(url, timeout_ms);
    if (headers_)
      curl_slist_free_all(headers_);
    headers_ = nullptr;
    headers_ =
        curl_slist_append(headers_, ("Content-Type: " + content_type).c_str());
    headers_ = curl_slist_append(headers_, "Expect:"); // no 100-continue wait
    curl_easy_setopt(h_, CURLOPT_HTTPHEADER, headers_);
    curl_easy_setopt(h_, CURLOPT_POST, 1L);
    curl_easy_setopt(h_, CURLOPT_POSTFIELDS, nullptr);
    curl_easy_setopt(h_, CURLOPT_READFUNCTION, read_segments);
    curl_easy_setopt(h_, CURLOPT_READDATA, &body);
    curl_easy_setopt(h_, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(body.total()));
    auto ans = perform();
    curl_easy_setopt(h_, CURLOPT_HTTPHEADER, nullptr);
    return ans;
  }

private:
  void reset(const std::string& url, long timeout_ms) {
    curl_easy_reset(h_); // keeps the connection cache: keep-alive
    curl_easy_setopt(h_, CURLOPT_URL, url.c_str());
    curl_easy_setopt(h_, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h_, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h_, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h_, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(h_, CURLOPT_WRITEFUNCTION, append_body);
    curl_easy_setopt(h_, CURLOPT_WRITEDATA, &body_);
    body_.clear();
  }
  http_answer perform() {
    http_answer a;
    CURLcode rc = curl_easy_perform(h_);
    if (rc != CURLE_OK)
      a.error = curl_easy_strerror(rc);
    curl_easy_getinfo(h_, CURLINFO_RESPONSE_CODE, &a.code);
    a.body = std::move(body_);
    body_.clear();
    return a;
  }

  CURL* h_;
  curl_slist* headers_ = nullptr;
  std::string body_;
};

// -- /metrics ----------------------------------------------------------------

/// "name{labels}" -> value for every sample line.
std::map<std::string, double> parse_metrics(const std::string& text) {
  std::map<std::string, double> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#')
      continue;
    auto sp = line.rfind(' ');
    if (sp == std::string::npos)
      continue;
    try {
      out[line.substr(0, sp)] = std::stod(line.substr(sp + 1));
    } catch (...) {
    }
  }
  return out;
}

double metric(const std::map<std::string, double>& m, const std::string& k) {
  auto it = m.find(k);
  return it == m.end() ? 0 : it->second;
}

/// Per-stage summary of histogram `name` (label `label`) from the difference
/// of two scrapes: count, mean, p50/p90/p99 by linear interpolation inside
/// the cumulative buckets.
void print_histogram_delta(const std::map<std::string, double>& before,
                           const std::map<std::string, double>& after,
                           const std::string& name, const std::string& label,
                           const std::string& tag) {
  // label value -> (le -> cumulative count delta)
  std::map<std::string, std::map<double, double>> buckets;
  std::map<std::string, double> sums, counts;
  for (auto& [k, v] : after) {
    if (k.rfind(name, 0) != 0)
      continue;
    std::string rest = k.substr(name.size());
    auto lp = rest.find(label + "=\"");
    if (lp == std::string::npos)
      continue;
    auto ve = rest.find('"', lp + label.size() + 2);
    std::string lv =
        rest.substr(lp + label.size() + 2, ve - lp - label.size() - 2);
    double d = v - metric(before, k);
    if (rest.rfind("_bucket", 0) == 0) {
      auto le = rest.find("le=\"");
      if (le == std::string::npos)
        continue;
      std::string lev = rest.substr(le + 4, rest.find('"', le + 4) - le - 4);
      double bound = lev == "+Inf" ? 1e300 : std::stod(lev);
      buckets[lv][bound] = d;
    } else if (rest.rfind("_sum", 0) == 0) {
      sums[lv] = d;
    } else if (rest.rfind("_count", 0) == 0) {
      counts[lv] = d;
    }
  }
  auto quantile = [](const std::map<double, double>& b, double total,
                     double q) {
    double target = q * total, prev_bound = 0, prev_cum = 0;
    for (auto& [bound, cum] : b) {
      if (cum >= target) {
        if (bound >= 1e300)
          return prev_bound; // in the +Inf bucket: report its lower edge
        double frac =
            cum > prev_cum ? (target - prev_cum) / (cum - prev_cum) : 1.0;
        return prev_bound + frac * (bound - prev_bound);
      }
      prev_bound = bound;
      prev_cum = cum;
    }
    return prev_bound;
  };
  for (auto& [lv, c] : counts) {
    if (c <= 0)
      continue;
    std::printf("%s %s=%s count=%.0f mean_ms=%.2f p50_ms=%.2f p90_ms=%.2f "
                "p99_ms=%.2f sum_s=%.3f\n",
                tag.c_str(), label.c_str(), lv.c_str(), c, 1000 * sums[lv] / c,
                1000 * quantile(buckets[lv], c, 0.5),
                1000 * quantile(buckets[lv], c, 0.9),
                1000 * quantile(buckets[lv], c, 0.99), sums[lv]);
  }
}

// -- RSS ---------------------------------------------------------------------

long vm_rss_kib(long pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0)
      return std::atol(line.c_str() + 6);
  return 0;
}

std::vector<long> children_of(long pid) {
  std::vector<long> out;
  std::string dir = "/proc/" + std::to_string(pid) + "/task";
  DIR* d = opendir(dir.c_str());
  if (!d)
    return out;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.')
      continue;
    std::ifstream in(dir + "/" + e->d_name + "/children");
    long c;
    while (in >> c)
      out.push_back(c);
  }
  closedir(d);
  return out;
}

// -- the run
// -------------------------------------------------------------------

struct settings {
  std::string url, mode, label, result_dir, curve_path, format, fit;
  int concurrency = 8, width = 100, height = 100, quality = 85;
  size_t count = 0;
  bool original = false, submit_only = false, metrics = false, distinct = true,
       pid_children = false;
  long poll_ms = 5, poll_max_ms = 20, retry_ms = 100, sample_ms = 50;
  long wait_s = 0; // resized's long poll (?wait=); 0 = plain polls
  double timeout_s = 300;
  std::vector<long> pids;
};

struct outcome_row {
  bool ok = false;
  double post_s = -1; // POST answer latency
  double done_s = -1; // POST start -> validated result
  std::string failure;
};

struct shared_state {
  const settings* cfg = nullptr;
  const std::vector<bench::photo>* corpus = nullptr;
  std::vector<std::string> b64; // per photo (json mode)
  std::atomic<size_t> next{0};
  std::atomic<long> polls{0}, rejected{0}, post_errors{0};
  std::atomic<bool> stop_sampler{false};
  bench::clock_type::time_point deadline;
  std::vector<outcome_row> rows; // one per submission
};

std::string query_for(const settings& c, int quality) {
  return "width=" + std::to_string(c.width) +
         "&height=" + std::to_string(c.height) + "&mode=" + c.fit +
         "&format=" + c.format + "&quality=" + std::to_string(quality);
}

/// POSTs submission i; returns the token or nullopt (row filled on failure).
std::optional<std::string> submit(shared_state& st, client& cl, size_t i,
                                  bench::clock_type::time_point& t0) {
  const auto& c = *st.cfg;
  size_t pi = i % st.corpus->size();
  const auto& p = (*st.corpus)[pi];
  int q = bench::quality_for(i, st.corpus->size(), c.quality, c.distinct);
  auto& row = st.rows[i];
  std::string prefix, suffix = "\"}";
  for (;;) {
    segmented_body body;
    http_answer a;
    t0 = bench::clock_type::now();
    if (c.mode == "raw") {
      body.parts[0] = &p.bytes;
      a = cl.post(c.url + "/api/v1/resize?" + query_for(c, q), body,
                  "application/octet-stream");
    } else {
      if (c.original)
        prefix = "{\"imageData\":\"";
      else
        prefix = "{\"width\":" + std::to_string(c.width) +
                 ",\"height\":" + std::to_string(c.height) + ",\"mode\":\"" +
                 c.fit + "\",\"format\":\"" + c.format +
                 "\",\"quality\":" + std::to_string(q) + ",\"imageData\":\"";
      body.parts[0] = &prefix;
      body.parts[1] = &st.b64[pi];
      body.parts[2] = &suffix;
      a = cl.post(c.url + "/api/v1/resize", body, "application/json");
    }
    auto t1 = bench::clock_type::now();
    if (a.code == 503 && c.submit_only && t1 < st.deadline) {
      ++st.rejected;
      std::this_thread::sleep_for(std::chrono::milliseconds(c.retry_ms));
      continue;
    }
    row.post_s = bench::seconds_between(t0, t1);
    if (a.code != 202) {
      ++st.post_errors;
      row.failure = "POST " + p.name + ": " +
                    (a.error.empty() ? "HTTP " + std::to_string(a.code) + " " +
                                           a.body.substr(0, 200)
                                     : a.error);
      return std::nullopt;
    }
    auto tok = json_string(a.body, "token");
    if (!tok) {
      row.failure = "POST " + p.name + ": no token in " + a.body.substr(0, 200);
      return std::nullopt;
    }
    return tok;
  }
}

/// Polls the token to its end, fetches and validates the result.
void complete(shared_state& st, client& cl, size_t i, const std::string& token,
              bench::clock_type::time_point t0) {
  const auto& c = *st.cfg;
  const auto& p = (*st.corpus)[i % st.corpus->size()];
  auto& row = st.rows[i];
  long wait_ms = c.poll_ms;
  std::string final_body;
  for (;;) {
    if (bench::clock_type::now() > st.deadline) {
      row.failure = "timeout polling " + p.name;
      return;
    }
    auto a = cl.get(c.url + "/api/v1/resize/" + token +
                    (c.wait_s > 0 ? "?wait=" + std::to_string(c.wait_s) : ""));
    ++st.polls;
    if (!a.error.empty()) {
      row.failure = "GET status " + p.name + ": " + a.error;
      return;
    }
    auto status = json_string(a.body, "status");
    if (c.original && a.code == 500) { // the original's FAILURE
      row.failure = "FAILURE " + p.name + " (HTTP 500)";
      return;
    }
    if (a.code != 200 || !status) {
      row.failure = "GET status " + p.name + ": HTTP " +
                    std::to_string(a.code) + " " + a.body.substr(0, 200);
      return;
    }
    if (*status == "SUCCESS") {
      final_body = std::move(a.body);
      break;
    }
    if (*status == "FAILURE") {
      row.failure = "FAILURE " + p.name + ": " + a.body.substr(0, 300);
      return;
    }
    if (c.wait_s > 0)
      continue; // the server waited already
    std::this_thread::sleep_for(std::chrono::milliseconds(wait_ms));
    wait_ms = std::min(wait_ms * 2, c.poll_max_ms);
  }
  auto url = json_string(final_body, "resized_image_url");
  if (!url) {
    row.failure = "SUCCESS without resized_image_url: " + final_body;
    return;
  }
  std::string bytes;
  if (c.original) {
    std::ifstream in(c.result_dir + "/" + *url, std::ios::binary);
    if (!in) {
      row.failure = "result file missing: " + c.result_dir + "/" + *url;
      return;
    }
    bytes.assign(std::istreambuf_iterator<char>(in),
                 std::istreambuf_iterator<char>());
  } else {
    std::string full = url->rfind("http", 0) == 0 ? *url : c.url + *url;
    auto a = cl.get(full);
    if (a.code != 200) {
      row.failure = "GET image " + p.name + ": HTTP " + std::to_string(a.code) +
                    " " + a.error;
      return;
    }
    bytes = std::move(a.body);
  }
  auto d = image_dims(bytes);
  int want_w = c.original ? 100 : c.width, want_h = c.original ? 100 : c.height;
  std::string want_fmt = c.original ? "jpeg" : c.format;
  if (!d || d->format != want_fmt ||
      ((c.original || c.fit != "fit") &&
       (d->width != want_w || d->height != want_h))) {
    row.failure = "invalid result for " + p.name + ": " +
                  (d ? d->format + " " + std::to_string(d->width) + "x" +
                           std::to_string(d->height)
                     : std::string("unparseable, ") +
                           std::to_string(bytes.size()) + " bytes");
    return;
  }
  row.done_s = bench::seconds_between(t0, bench::clock_type::now());
  row.ok = true;
}

void sampler(shared_state& st, long* peak_kib) {
  const auto& c = *st.cfg;
  std::unique_ptr<client> mcl;
  if (c.metrics)
    mcl = std::make_unique<client>();
  std::ofstream csv;
  if (!c.curve_path.empty()) {
    csv.open(c.curve_path);
    csv << "t_s,rss_kib,queued_bytes,queue_depth\n";
  }
  auto start = bench::clock_type::now();
  while (!st.stop_sampler.load()) {
    long rss = 0;
    for (long pid : c.pids) {
      rss += vm_rss_kib(pid);
      if (c.pid_children)
        for (long k : children_of(pid))
          rss += vm_rss_kib(k);
    }
    *peak_kib = std::max(*peak_kib, rss);
    if (csv.is_open()) {
      double qb = -1, qd = -1;
      if (mcl) {
        auto a = mcl->get(c.url + "/metrics", 2000);
        if (a.code == 200) {
          auto m = parse_metrics(a.body);
          qb = metric(m, "resized_queued_bytes");
          qd = metric(m, "resized_queue_depth");
        }
      }
      csv << bench::seconds_between(start, bench::clock_type::now()) << ','
          << rss << ',' << static_cast<long long>(qb) << ','
          << static_cast<long long>(qd) << '\n';
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(c.sample_ms));
  }
}

/// The slowest POSTs, on stderr: a POST p99 over a few dozen submissions is
/// their maximum, so which photo (and which submission: a pass starts every
/// corpus-size submissions) it was says more than the figure alone.
void print_slowest_posts(const shared_state& st, size_t n) {
  std::vector<size_t> order;
  for (size_t i = 0; i < st.rows.size(); ++i)
    if (st.rows[i].post_s >= 0)
      order.push_back(i);
  n = std::min(n, order.size());
  std::partial_sort(order.begin(),
                    order.begin() + static_cast<std::ptrdiff_t>(n), order.end(),
                    [&](size_t a, size_t b) {
                      return st.rows[a].post_s > st.rows[b].post_s;
                    });
  std::string line;
  for (size_t k = 0; k < n; ++k) {
    const auto& p = (*st.corpus)[order[k] % st.corpus->size()];
    char buf[256];
    std::snprintf(buf, sizeof buf, " %s (#%zu, %zu bytes) %.1f ms",
                  p.name.c_str(), order[k], p.bytes.size(),
                  1000 * st.rows[order[k]].post_s);
    line += buf;
  }
  if (!line.empty())
    std::fprintf(stderr, "loadgen: slowest POSTs:%s\n", line.c_str());
}

} // namespace

int main(int argc, char** argv) try {
  bench::args a(argc, argv);
  settings c;
  c.url = a.str("url", "http://127.0.0.1:5000");
  c.mode = a.str("mode", "json");
  c.label = a.str("label", c.mode);
  c.concurrency = static_cast<int>(a.num("concurrency", 8));
  c.width = static_cast<int>(a.num("width", 100));
  c.height = static_cast<int>(a.num("height", 100));
  c.quality = static_cast<int>(a.num("quality", 85));
  c.format = a.str("format", "jpeg");
  c.fit = a.str("fit", "fill");
  c.original = a.has("original");
  c.result_dir = a.str("result-dir", "/tmp/original-stack/out/resized");
  c.submit_only = a.has("submit-only");
  c.metrics = a.has("metrics");
  c.distinct = !a.has("same-passes");
  c.pid_children = a.has("pid-children");
  c.curve_path = a.str("curve", "");
  c.poll_ms = a.num("poll-ms", 5);
  c.poll_max_ms = a.num("poll-max-ms", 20);
  c.wait_s = a.num("wait-s", 0);
  c.retry_ms = a.num("retry-ms", 100);
  c.sample_ms = a.num("sample-ms", 50);
  c.timeout_s = static_cast<double>(a.num("timeout-s", 300));
  for (auto& p : a.all("pid"))
    c.pids.push_back(std::stol(p));
  if (c.mode != "json" && c.mode != "raw")
    throw std::runtime_error("--mode must be json or raw");
  if (c.original && c.mode != "json")
    throw std::runtime_error("the original stack only takes --mode=json");

  auto corpus =
      bench::load_corpus(a.str("dir", "../shared/corpus/photos"),
                         static_cast<uint64_t>(a.num("min-bytes", 0)));
  c.count = static_cast<size_t>(a.num("count", 3 * corpus.size()));

  curl_global_init(CURL_GLOBAL_DEFAULT);
  shared_state st;
  st.cfg = &c;
  st.corpus = &corpus;
  if (c.mode == "json")
    for (auto& p : corpus)
      st.b64.push_back(base64(p.bytes));
  st.rows.resize(c.count);

  std::map<std::string, double> m_before, m_after;
  if (c.metrics) {
    client cl;
    auto r = cl.get(c.url + "/metrics");
    if (r.code == 200)
      m_before = parse_metrics(r.body);
  }

  long peak_kib = 0;
  std::thread samp;
  if (!c.pids.empty() || !c.curve_path.empty())
    samp = std::thread(sampler, std::ref(st), &peak_kib);

  auto cpu_now = [] {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  };
  double cpu_start = cpu_now();
  auto t_start = bench::clock_type::now();
  st.deadline = t_start + std::chrono::milliseconds(
                              static_cast<long>(c.timeout_s * 1000));
  std::atomic<double> t_last_post{0};
  std::vector<std::thread> workers;
  std::mutex mu;
  for (int w = 0; w < c.concurrency; ++w)
    workers.emplace_back([&] {
      client cl;
      std::vector<
          std::tuple<size_t, std::string, bench::clock_type::time_point>>
          pending;
      for (;;) {
        size_t i = st.next.fetch_add(1);
        if (i >= c.count || bench::clock_type::now() > st.deadline)
          break;
        bench::clock_type::time_point t0;
        auto tok = submit(st, cl, i, t0);
        if (!tok)
          continue;
        if (c.submit_only)
          pending.emplace_back(i, *tok, t0);
        else
          complete(st, cl, i, *tok, t0);
      }
      if (c.submit_only) {
        double tp = bench::seconds_between(t_start, bench::clock_type::now());
        double cur = t_last_post.load();
        while (tp > cur && !t_last_post.compare_exchange_weak(cur, tp)) {
        }
        for (auto& [i, tok, t0] : pending)
          complete(st, cl, i, tok, t0);
      }
    });
  for (auto& w : workers)
    w.join();
  double wall = bench::seconds_between(t_start, bench::clock_type::now());
  double client_cpu = cpu_now() - cpu_start;
  st.stop_sampler = true;
  if (samp.joinable())
    samp.join();

  if (c.metrics) {
    client cl;
    auto r = cl.get(c.url + "/metrics");
    if (r.code == 200)
      m_after = parse_metrics(r.body);
    print_histogram_delta(m_before, m_after, "resized_task_duration_seconds",
                          "stage", "stage " + c.label);
    print_histogram_delta(m_before, m_after,
                          "resized_http_request_duration_seconds", "route",
                          "http " + c.label);
    std::printf("cpu %s process_cpu_seconds=%.3f\n", c.label.c_str(),
                metric(m_after, "process_cpu_seconds_total") -
                    metric(m_before, "process_cpu_seconds_total"));
  }

  double service_cpu = -1;
  if (c.metrics && !m_after.empty())
    service_cpu = metric(m_after, "process_cpu_seconds_total") -
                  metric(m_before, "process_cpu_seconds_total");
  std::vector<double> post, done;
  size_t ok = 0, failed = 0;
  std::map<std::string, int> failures;
  for (auto& r : st.rows) {
    if (r.post_s >= 0)
      post.push_back(r.post_s);
    if (r.ok) {
      ++ok;
      done.push_back(r.done_s);
    } else if (r.post_s >= 0 || !r.failure.empty()) {
      ++failed;
      ++failures[r.failure];
    }
  }
  size_t not_run = c.count - ok - failed;
  print_slowest_posts(st, 3);
  for (auto& [f, n] : failures)
    std::fprintf(stderr, "loadgen: %dx %s\n", n, f.c_str());
  std::printf(
      "result %s images=%zu ok=%zu failed=%zu not_run=%zu "
      "rejected_503=%ld concurrency=%d seconds=%.3f images_per_s=%.2f "
      "post_p50_ms=%.2f post_p99_ms=%.2f post_max_ms=%.2f "
      "done_p50_ms=%.1f done_p99_ms=%.1f polls=%ld peak_rss_kib=%ld "
      "client_cpu_s=%.2f",
      c.label.c_str(), c.count, ok, failed, not_run, st.rejected.load(),
      c.concurrency, wall, ok / wall, 1000 * bench::percentile(post, 50),
      1000 * bench::percentile(post, 99), 1000 * bench::percentile(post, 100),
      1000 * bench::percentile(done, 50), 1000 * bench::percentile(done, 99),
      st.polls.load(), peak_kib, client_cpu);
  if (service_cpu >= 0)
    std::printf(" cpu_s=%.3f", service_cpu);
  if (c.submit_only)
    std::printf(" submit_s=%.3f", t_last_post.load());
  std::printf("\n");
  curl_global_cleanup();
  return failed == 0 && not_run == 0 ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "loadgen: %s\n", e.what());
  return 2;
}
