// raw_pipeline — the raw limit: the project's own imaging pipeline
// (resized::imaging::startup + resize, the code the resize actors run) on the
// photo corpus, in-process, with T threads taking images round-robin from a
// shared counter. No HTTP, no actors, no Redis: what the service adds is the
// difference between this and bench/loadgen.
//
//   raw_pipeline --dir=../shared/corpus/photos --threads=2 --count=93
//                [--width=100 --height=100 --mode=fill --format=jpeg
//                 --quality=85 --same-passes --vips-concurrency=1
//                 --warmup=0 --per-file --plain-libvips --glibc-defaults]
//
// malloc: resized's defaults (memory.arenas 1, memory.mmap-threshold 32
// MiB, memory.heap-top-bytes 64 MiB, memory.huge-pages on: the program runs
// itself again with glibc.malloc.hugetlb=1, as resized does), set before
// any thread starts, so that the raw limit gets the malloc the service
// gets (7-14 % faster here than glibc's defaults, session 39).
// --glibc-defaults: glibc's own settings instead, the raw limit of sessions
// 1-38. (resized's periodic malloc_trim is left out: it only costs.)
//
// --plain-libvips: progressive JPEGs decoded whole, as libvips' own
// thumbnail does, instead of from their DC scans (imaging/jpeg_dc_scans):
// what any service built on libvips 8.14 starts from.
//
// Prints one machine-readable line starting "result raw " (key=value).
#include <atomic>
#include <cstdio>
#include <map>
#include <mutex>
#include <sys/resource.h>
#include <thread>

#include <vips/vips.h> // vips_thread_shutdown

#include "bench_util.hpp"
#include "common/memory.hpp"
#include "imaging/pipeline.hpp"

using namespace resized;

int main(int argc, char** argv) try {
  bench::args a(argc, argv);
  // Before libvips or any thread starts (arenas are per thread).
  const bool service_malloc = !a.has("glibc-defaults");
  std::string huge_pages = "off";
  if (service_malloc) {
    huge_pages = memory::run_with_huge_pages(true, argv); // may exec again
    if (!memory::set_heap_top_bytes(memory::default_heap_top_bytes) ||
        !memory::set_mmap_threshold(memory::default_mmap_threshold) ||
        !memory::limit_arenas(memory::default_arenas)) {
      std::fprintf(stderr, "raw_pipeline: malloc refused resized's settings\n");
      return 1;
    }
  }
  auto corpus =
      bench::load_corpus(a.str("dir", "../shared/corpus/photos"),
                         static_cast<uint64_t>(a.num("min-bytes", 0)));
  const int threads = static_cast<int>(a.num("threads", 2));
  const size_t count = static_cast<size_t>(a.num("count", 3 * corpus.size()));
  const size_t warmup = static_cast<size_t>(a.num("warmup", 0));
  const bool distinct = !a.has("same-passes");
  const int base_quality = static_cast<int>(a.num("quality", 85));

  imaging::resize_options opts;
  opts.width = static_cast<int>(a.num("width", 100));
  opts.height = static_cast<int>(a.num("height", 100));
  if (!imaging::parse(a.str("mode", "fill"), opts.mode) ||
      !imaging::parse(a.str("format", "jpeg"), opts.format)) {
    std::fprintf(stderr, "raw_pipeline: bad --mode or --format\n");
    return 2;
  }
  imaging::limits lim; // the service's defaults (limits.*)
  lim.max_input_bytes = 64u << 20;

  std::string err;
  if (!imaging::startup(argv[0], static_cast<int>(a.num("vips-concurrency", 1)),
                        err)) {
    std::fprintf(stderr, "raw_pipeline: libvips: %s\n", err.c_str());
    return 1;
  }
  const bool dc_scans = imaging::use_jpeg_dc_scans(!a.has("plain-libvips"));

  auto run = [&](size_t n, std::vector<double>* lat,
                 std::map<std::string, std::vector<double>>* per_file,
                 std::atomic<size_t>& failed) {
    std::atomic<size_t> next{0};
    std::mutex mu;
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
      pool.emplace_back([&] {
        std::vector<std::pair<size_t, double>> mine;
        for (;;) {
          size_t i = next.fetch_add(1);
          if (i >= n)
            break;
          const auto& p = corpus[i % corpus.size()];
          auto o = opts;
          o.quality =
              bench::quality_for(i, corpus.size(), base_quality, distinct);
          auto t0 = bench::clock_type::now();
          auto res = imaging::resize(p.bytes.data(), p.bytes.size(), o, lim);
          double s = bench::seconds_between(t0, bench::clock_type::now());
          if (!res ||
              (opts.mode != imaging::fit_mode::fit &&
               (res->width != opts.width || res->height != opts.height))) {
            ++failed;
            std::fprintf(stderr, "raw_pipeline: %s failed: %s\n",
                         p.name.c_str(),
                         res ? "wrong size" : res.error().message.c_str());
            continue;
          }
          mine.emplace_back(i, s);
        }
        vips_thread_shutdown();
        std::lock_guard<std::mutex> lock(mu);
        for (auto& [i, s] : mine) {
          if (lat)
            lat->push_back(s);
          if (per_file)
            (*per_file)[corpus[i % corpus.size()].name].push_back(s);
        }
      });
    for (auto& th : pool)
      th.join();
  };

  std::atomic<size_t> failed{0};
  if (warmup > 0) {
    std::atomic<size_t> wf{0};
    run(warmup, nullptr, nullptr, wf);
  }
  std::vector<double> lat;
  std::map<std::string, std::vector<double>> per_file;
  auto cpu_now = [] {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  };
  double cpu0 = cpu_now();
  auto t0 = bench::clock_type::now();
  run(count, &lat, &per_file, failed);
  double wall = bench::seconds_between(t0, bench::clock_type::now());
  double cpu = cpu_now() - cpu0;

  if (a.has("per-file"))
    for (auto& [name, v] : per_file) {
      double sum = 0;
      for (double s : v)
        sum += s;
      std::printf("file %-40s n=%zu mean_ms=%.1f\n", name.c_str(), v.size(),
                  1000 * sum / v.size());
    }
  double cpu_sum = 0;
  for (double s : lat)
    cpu_sum += s;
  std::printf(
      "result raw images=%zu ok=%zu failed=%zu threads=%d seconds=%.3f "
      "images_per_s=%.2f p50_ms=%.1f p99_ms=%.1f mean_ms=%.1f cpu_s=%.3f "
      "dc_scans=%d malloc=%s huge_pages=%s\n",
      count, lat.size(), failed.load(), threads, wall, lat.size() / wall,
      1000 * bench::percentile(lat, 50), 1000 * bench::percentile(lat, 99),
      lat.empty() ? 0.0 : 1000 * cpu_sum / lat.size(), cpu, dc_scans ? 1 : 0,
      service_malloc ? "resized" : "glibc",
      huge_pages.substr(0, huge_pages.find(' ')).c_str());
  imaging::shutdown();
  return failed.load() == 0 ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "raw_pipeline: %s\n", e.what());
  return 2;
}
