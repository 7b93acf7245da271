// Small helpers shared by bench/loadgen.cpp and bench/raw_pipeline.cpp:
// the photo corpus (sorted file list, bytes in memory), percentiles,
// "--key=value" arguments. No libvips, no libcurl here.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <dirent.h>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <sys/stat.h>
#include <vector>

namespace bench {

using clock_type = std::chrono::steady_clock;

inline double seconds_between(clock_type::time_point a,
                              clock_type::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

struct photo {
  std::string name;
  std::string bytes;
};

/// Every regular file in `dir` (sorted by name) of at least `min_bytes`.
inline std::vector<photo> load_corpus(const std::string& dir,
                                      uint64_t min_bytes = 0) {
  std::vector<std::string> names;
  DIR* d = opendir(dir.c_str());
  if (!d)
    throw std::runtime_error("cannot open directory " + dir);
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n.empty() || n[0] == '.')
      continue;
    struct stat st {};
    if (stat((dir + "/" + n).c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        static_cast<uint64_t>(st.st_size) >= min_bytes)
      names.push_back(n);
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  std::vector<photo> out;
  for (auto& n : names) {
    // One read of the file's size (an istreambuf_iterator copies a byte at
    // a time: 70 ms of the tools' start-up for the 38 MB corpus).
    std::ifstream in(dir + "/" + n, std::ios::binary | std::ios::ate);
    std::string bytes(static_cast<size_t>(in.tellg()), '\0');
    in.seekg(0);
    if (!in.read(bytes.data(), static_cast<std::streamsize>(bytes.size())))
      throw std::runtime_error("cannot read " + dir + "/" + n);
    out.push_back({n, std::move(bytes)});
  }
  if (out.empty())
    throw std::runtime_error("no photos in " + dir);
  return out;
}

/// Nearest-rank percentile (p in [0,100]) of unsorted samples; 0 if none.
inline double percentile(std::vector<double> v, double p) {
  if (v.empty())
    return 0;
  std::sort(v.begin(), v.end());
  size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * v.size()));
  if (rank < 1)
    rank = 1;
  return v[std::min(rank, v.size()) - 1];
}

/// "--key=value" and "--flag" arguments; a repeated key keeps every value.
class args {
public:
  args(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      if (a.rfind("--", 0) != 0)
        throw std::runtime_error("unexpected argument " + a);
      auto eq = a.find('=');
      if (eq == std::string::npos)
        values_[a.substr(2)].push_back("1");
      else
        values_[a.substr(2, eq - 2)].push_back(a.substr(eq + 1));
    }
  }
  bool has(const std::string& k) const { return values_.count(k) != 0; }
  std::string str(const std::string& k, const std::string& def) const {
    auto it = values_.find(k);
    return it == values_.end() ? def : it->second.back();
  }
  long num(const std::string& k, long def) const {
    auto it = values_.find(k);
    return it == values_.end() ? def : std::stol(it->second.back());
  }
  std::vector<std::string> all(const std::string& k) const {
    auto it = values_.find(k);
    return it == values_.end() ? std::vector<std::string>{} : it->second;
  }

private:
  std::map<std::string, std::vector<std::string>> values_;
};

/// Quality used for the i-th submission when passes are made distinct: pass
/// p over the corpus asks for quality `base - p` (p cycling over 0..39), so a
/// content-hash cache (issue 6 item 4) cannot turn later passes into hits.
/// Both the service and the raw pipeline use the same sequence.
inline int quality_for(size_t i, size_t corpus_size, int base, bool distinct) {
  if (!distinct)
    return base;
  int pass = static_cast<int>((i / corpus_size) % 40);
  int q = base - pass;
  return q < 1 ? 1 : q;
}

} // namespace bench
