// Load generator for bench/cluster_overhead.sh: a light libcurl client, so
// the measuring side costs little CPU next to the service (curl + jq
// processes per request would cost more than a small resize).
//
//   cluster_client seq   <base-url> <photo> <n> <height>
//       one task at a time: submit, poll its status every 2 ms until final,
//       next; widths 101 .. 100+n
//   cluster_client burst <base-url> <photo> <n> <height> <concurrency>
//       n submissions from <concurrency> threads (keep-alive connections),
//       then polls GET /api/v1/cluster until succeeded + failed has grown
//       by n; widths 101 .. 100+n
//
// Prints one token per line on stdout. Exits 1 on any error or after 120 s.
// Build: c++ -std=c++17 -O2 -pthread cluster_client.cpp -lcurl
#include <curl/curl.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;
const auto give_up = clock_type::now() + std::chrono::seconds{120};

size_t append(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

struct client {
  CURL* h = curl_easy_init();
  ~client() { curl_easy_cleanup(h); }

  // GET or (with body) POST; returns the HTTP status, 0 on transport errors.
  long call(const std::string& url, std::string& out,
            const std::string* body = nullptr) {
    out.clear();
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url.c_str());
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, append);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &out);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 30000L);
    curl_slist* headers = nullptr;
    if (body != nullptr) {
      headers = curl_slist_append(headers, "Content-Type: image/jpeg");
      headers = curl_slist_append(headers, "Expect:");
      curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
      curl_easy_setopt(h, CURLOPT_POSTFIELDS, body->data());
      curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
                       static_cast<curl_off_t>(body->size()));
    }
    long status = 0;
    if (curl_easy_perform(h) == CURLE_OK)
      curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    return status;
  }
};

// The string value of "key" in a flat JSON text (enough for our answers).
std::string field(const std::string& json, const std::string& key) {
  auto k = json.find("\"" + key + "\":");
  if (k == std::string::npos)
    return {};
  auto v = k + key.size() + 3;
  if (v < json.size() && json[v] == '"') {
    auto end = json.find('"', v + 1);
    return json.substr(v + 1, end - v - 1);
  }
  auto end = json.find_first_of(",}", v);
  return json.substr(v, end - v);
}

[[noreturn]] void die(const std::string& why) {
  std::cerr << "cluster_client: " << why << '\n';
  std::exit(1);
}

std::string submit(client& c, const std::string& base, const std::string& img,
                   int width, int height) {
  std::string out;
  auto url = base + "/api/v1/resize?width=" + std::to_string(width) +
             "&height=" + std::to_string(height);
  long status = c.call(url, out, &img);
  if (status != 202)
    die("submit answered " + std::to_string(status) + ": " + out);
  return field(out, "token");
}

long finished_total(client& c, const std::string& base) {
  std::string out;
  if (c.call(base + "/api/v1/cluster", out) != 200)
    die("GET /api/v1/cluster failed: " + out);
  return std::atol(field(out, "succeeded").c_str()) +
         std::atol(field(out, "failed").c_str());
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 6)
    die("usage: seq|burst <base-url> <photo> <n> <height> [concurrency]");
  std::string mode = argv[1], base = argv[2];
  std::ifstream in{argv[3], std::ios::binary};
  std::stringstream buf;
  buf << in.rdbuf();
  std::string img = buf.str();
  if (img.empty())
    die("cannot read photo");
  int n = std::atoi(argv[4]);
  int height = std::atoi(argv[5]);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  if (mode == "seq") {
    client c;
    std::string out;
    for (int i = 1; i <= n; ++i) {
      auto token = submit(c, base, img, 100 + i, height);
      for (;;) {
        if (c.call(base + "/api/v1/resize/" + token, out) != 200)
          die("status " + token + ": " + out);
        auto st = field(out, "status");
        if (st == "SUCCESS" || st == "FAILURE")
          break;
        if (clock_type::now() > give_up)
          die("timed out on " + token);
        std::this_thread::sleep_for(std::chrono::milliseconds{2});
      }
      std::cout << token << '\n';
    }
    return 0;
  }
  if (mode != "burst" || argc < 7)
    die("usage: burst <base-url> <photo> <n> <height> <concurrency>");
  int conc = std::max(1, std::atoi(argv[6]));
  client probe;
  long base_done = finished_total(probe, base);
  std::atomic<int> next{1};
  std::mutex out_mutex;
  std::vector<std::string> tokens;
  std::vector<std::thread> threads;
  for (int t = 0; t < conc; ++t)
    threads.emplace_back([&] {
      client c;
      for (int i = next++; i <= n; i = next++) {
        auto token = submit(c, base, img, 100 + i, height);
        std::lock_guard<std::mutex> lock{out_mutex};
        tokens.push_back(token);
      }
    });
  for (auto& t : threads)
    t.join();
  while (finished_total(probe, base) < base_done + n) {
    if (clock_type::now() > give_up)
      die("timed out waiting for the burst");
    std::this_thread::sleep_for(std::chrono::milliseconds{5});
  }
  for (auto& t : tokens)
    std::cout << t << '\n';
  return 0;
}
