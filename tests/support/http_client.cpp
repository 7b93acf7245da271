#include "support/http_client.hpp"

#include <algorithm>
#include <cctype>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <strings.h> // strncasecmp

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>

namespace resized::test {

namespace {

// curl_global_init is not thread-safe: run it once, before the first handle.
void global_init() {
  static std::once_flag flag;
  std::call_once(flag, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

size_t on_body(char* data, size_t size, size_t count, void* user) {
  auto* out = static_cast<std::string*>(user);
  out->append(data, size * count);
  return size * count;
}

std::string trim(std::string s) {
  auto not_space = [](unsigned char c) { return !std::isspace(c); };
  s.erase(s.begin(), std::find_if(s.begin(), s.end(), not_space));
  s.erase(std::find_if(s.rbegin(), s.rend(), not_space).base(), s.end());
  return s;
}

// One call per header line, including the status line and the blank line
// that ends the header block. A 100-continue or redirect would start a new
// block: the status line resets what was collected before.
size_t on_header(char* data, size_t size, size_t count, void* user) {
  auto* res = static_cast<http_response*>(user);
  auto* headers = &res->headers;
  std::string line(data, size * count);
  if (line.rfind("HTTP/", 0) == 0) {
    headers->clear();
    res->status_lines.push_back(trim(line));
    return size * count;
  }
  auto colon = line.find(':');
  if (colon == std::string::npos)
    return size * count;
  auto name = line.substr(0, colon);
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  (*headers)[trim(name)] = trim(line.substr(colon + 1));
  return size * count;
}

struct easy_deleter {
  void operator()(CURL* h) const { curl_easy_cleanup(h); }
};

struct slist_deleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

} // namespace

std::string http_response::header(const std::string& lower_name) const {
  auto i = headers.find(lower_name);
  return i == headers.end() ? std::string{} : i->second;
}

http_response http_request(const std::string& method, const std::string& url,
                           const std::string& body,
                           const std::vector<std::string>& headers,
                           std::chrono::milliseconds timeout) {
  global_init();
  http_response result;
  // One handle per thread, reset before each request: curl keeps its
  // connection cache in the handle, so polls reuse a keep-alive connection
  // instead of leaving thousands of sockets in TIME_WAIT (which exhausts
  // the ephemeral ports of a long poll loop).
  thread_local std::unique_ptr<CURL, easy_deleter> h{curl_easy_init()};
  if (!h) {
    result.error = "curl_easy_init failed";
    return result;
  }
  curl_easy_reset(h.get());
  std::unique_ptr<curl_slist, slist_deleter> list;
  auto append = [&list](const std::string& line) {
    auto* next = curl_slist_append(list.get(), line.c_str());
    if (next) {
      list.release();
      list.reset(next);
    }
  };
  bool asks_expect = false;
  for (const auto& line : headers) {
    append(line);
    if (line.size() >= 7 && strncasecmp(line.c_str(), "expect:", 7) == 0)
      asks_expect = true;
  }
  bool has_body =
      method == "POST" || method == "PUT" || method == "PATCH" || !body.empty();
  // Without this curl sends "Expect: 100-continue" for bodies over 1 MiB and
  // waits up to a second for the interim answer.
  if (has_body && !asks_expect)
    append("Expect:");
  char errbuf[CURL_ERROR_SIZE] = {0};
  auto* c = h.get();
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(std::min<long>(timeout.count(), 5000)));
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &result.body);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &result);
  // Long enough that a missing "100 Continue" cannot pass unnoticed.
  if (asks_expect)
    curl_easy_setopt(c, CURLOPT_EXPECT_100_TIMEOUT_MS, 30000L);
  // Tests talk to 127.0.0.1 only: never go through an environment proxy.
  curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
  if (method == "GET") {
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
  } else if (method == "HEAD") {
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else {
    if (method != "POST")
      curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
    if (has_body) {
      curl_easy_setopt(c, CURLOPT_POST, 1L);
      curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
                       static_cast<curl_off_t>(body.size()));
      curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
    }
  }
  if (list)
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, list.get());
  auto rc = curl_easy_perform(c);
  // The handle outlives this call: leave it no pointer into this frame.
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, nullptr);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, nullptr);
  if (rc != CURLE_OK) {
    result.error = errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc);
    result.status = 0;
    return result;
  }
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &result.status);
  curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &result.new_connections);
  return result;
}

std::string raw_http(uint16_t port, const std::string& request,
                     std::chrono::milliseconds timeout) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    throw std::runtime_error("raw_http: socket failed");
  struct closer {
    int fd;
    ~closer() { ::close(fd); }
  } guard{fd};
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0)
    throw std::runtime_error("raw_http: connect failed");
  for (size_t sent = 0; sent < request.size();) {
    auto n =
        ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0)
      throw std::runtime_error("raw_http: send failed");
    sent += static_cast<size_t>(n);
  }
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string out;
  char buf[65536];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0)
      return out; // the server kept the connection open
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0)
      continue;
    auto n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0)
      return out; // closed (or reset)
    out.append(buf, static_cast<size_t>(n));
  }
}

std::string base64_encode(const std::string& bytes) {
  static constexpr char alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  auto byte = [&bytes](size_t k) {
    return static_cast<uint32_t>(static_cast<unsigned char>(bytes[k]));
  };
  for (; i + 3 <= bytes.size(); i += 3) {
    uint32_t n = byte(i) << 16 | byte(i + 1) << 8 | byte(i + 2);
    out.push_back(alphabet[n >> 18 & 63]);
    out.push_back(alphabet[n >> 12 & 63]);
    out.push_back(alphabet[n >> 6 & 63]);
    out.push_back(alphabet[n & 63]);
  }
  auto rest = bytes.size() - i;
  if (rest == 1) {
    uint32_t n = byte(i) << 16;
    out.push_back(alphabet[n >> 18 & 63]);
    out.push_back(alphabet[n >> 12 & 63]);
    out += "==";
  } else if (rest == 2) {
    uint32_t n = byte(i) << 16 | byte(i + 1) << 8;
    out.push_back(alphabet[n >> 18 & 63]);
    out.push_back(alphabet[n >> 12 & 63]);
    out.push_back(alphabet[n >> 6 & 63]);
    out.push_back('=');
  }
  return out;
}

} // namespace resized::test
