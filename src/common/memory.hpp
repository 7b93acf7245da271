// Heap policy for a process that decodes large images on several threads.
//
// glibc's malloc gives every thread that allocates concurrently its own arena
// (up to 8 x cores). libvips' tile buffers and multi-MB request bodies then
// leave free holes in many arenas, and RSS stays near its peak after the
// queue drains. Three glibc knobs fix that without replacing the allocator:
// fewer arenas (M_ARENA_MAX), the biggest buffers in their own mappings
// (M_MMAP_THRESHOLD: unmapped when freed, never holes in a heap), and giving
// free heap pages back (malloc_trim) once there is enough free space to be
// worth it. bench/RESULTS.md has the measurements against jemalloc, which
// holds RSS as well but costs the pipeline ~5 % CPU on this workload, and
// against transparent huge pages (glibc.malloc.hugetlb=1 in
// GLIBC_TUNABLES, memory.huge-pages): a 2 MiB page faulted in at once
// instead of 512 small ones, where a fault is dear 5-8 % less CPU and a
// lower POST p99 (session 25); on one older guest the largest uploads'
// POST p99 doubled, so it can be switched off.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

namespace resized::memory {

/// The defaults of memory.arenas, memory.mmap-threshold and
/// memory.heap-top-bytes (config/settings.hpp, service_config.hpp):
/// bench/raw_pipeline runs under them too, so that the raw limit it
/// measures has the malloc resized has.
constexpr int default_arenas = 1;
constexpr size_t default_mmap_threshold = 32u << 20;
constexpr size_t default_heap_top_bytes = 64u << 20;

/// Caps glibc's malloc arenas. Call before any other thread starts (arenas
/// are created on first contention). 0 keeps glibc's default. Returns false
/// if the C library refused the setting.
bool limit_arenas(int arenas);

/// Allocations of at least `bytes` get their own mapping (mmap) and go back
/// to the OS when freed, instead of living in (and fragmenting) the heap:
/// request bodies, decoded inputs, libjpeg's coefficient buffers. Also stops
/// glibc from raising the threshold by itself. 0 keeps glibc's dynamic
/// threshold. Returns false if the C library refused the setting.
bool set_mmap_threshold(size_t bytes);

/// free() gives the top of a heap back to the OS at once only when more
/// than `bytes` lie free there (M_TRIM_THRESHOLD). glibc's default, 128 KiB
/// once the mmap threshold is set, returns and re-faults the same pages for
/// every request body; the periodic trim returns what stays free, except
/// at the top of a heap of a non-main arena: malloc_trim (glibc 2.36's
/// mtrim) releases free chunks in every arena but shrinks only the main
/// arena's top, so up to `bytes` of each other arena's top stays resident
/// until the next burst reuses it (why memory.arenas defaults to 1: the
/// main arena alone). 0 keeps glibc's default.
bool set_heap_top_bytes(size_t bytes);

/// The GLIBC_TUNABLES value that also asks glibc's malloc to advise its
/// heap and mappings to transparent huge pages (glibc.malloc.hugetlb=1),
/// given the value the process has (`current`, nullptr: unset). nullopt
/// when `current` already sets glibc.malloc.hugetlb: the environment's
/// choice stands. glibc reads its tunables once, when a program starts
/// (there is no mallopt for this one), hence a value for a new exec.
std::optional<std::string> tunables_with_huge_pages(const char* current);

/// Whether `current` (a GLIBC_TUNABLES value, nullptr: unset) turns
/// glibc.malloc.hugetlb on (1: madvise; 2: hugetlbfs pages).
bool huge_pages_tuned(const char* current);

/// memory.huge-pages. glibc reads GLIBC_TUNABLES only as a program starts
/// (glibc.malloc.hugetlb has no mallopt), so a process that should run with
/// glibc.malloc.hugetlb=1 and does not runs itself again: execv keeps the
/// pid, the arguments and the environment, plus the tunable. Call before
/// any thread starts and before anything is logged. Returns the state in
/// words ("on", "off (why)") for a start line.
std::string run_with_huge_pages(bool wanted, char** argv);

/// The kernel's transparent huge page mode: the first line of
/// /sys/kernel/mm/transparent_hugepage/enabled, e.g. "always [madvise]
/// never"; empty if there is no such file (no THP).
std::string thp_mode();

/// Whether the kernel gives transparent huge pages to memory that asks for
/// them, given its `mode` (thp_mode()).
bool thp_usable(std::string_view mode);

/// Bytes malloc holds free inside its heaps (not returned to the OS).
uint64_t free_heap_bytes();

/// Gives free heap pages back to the OS (malloc_trim). Returns true if any
/// memory was released.
bool release_free_memory();

/// Counts a piece of work done (a submission read, a resize run): the
/// activity main's trimmer watches. Health probes, metrics scrapes and
/// polls do not count: they free next to nothing.
void note_work();
/// The work counted so far.
uint64_t work_count();

/// A thread that, every `interval`, releases free heap memory when at least
/// `threshold` bytes are free; or, while the process is busy, at least
/// `busy_threshold`. Busy: `activity` (a count that grows with the work
/// done: submissions read, resizes run) moved since the last look. Under
/// load the bodies and inputs freed a moment ago are allocated again at
/// once, and pages given back are faulted in again, zeroed, one by one:
/// where a page fault is dear, keeping them (with the larger mmap
/// threshold and heap top) gave 6-15 % more throughput
/// (bench/results/sessions.md, session 22). Once the work stops, the next look
/// returns them. Stops (and joins) on destruction.
class trimmer {
public:
  trimmer(std::chrono::milliseconds interval, uint64_t threshold,
          uint64_t busy_threshold = 0,
          std::function<uint64_t()> activity = nullptr);
  ~trimmer();
  trimmer(const trimmer&) = delete;
  trimmer& operator=(const trimmer&) = delete;

  /// Trims performed so far.
  uint64_t trims() const;
  /// Looks at the free heap so far (each one a trim or not).
  uint64_t checks() const;
  /// Of those, the looks that found the process busy.
  uint64_t busy_checks() const;

  /// The threshold of one look: `busy_threshold` (if not 0) when the
  /// activity count moved since the look before, else `threshold`.
  static uint64_t threshold_for(uint64_t threshold, uint64_t busy_threshold,
                                bool busy);

private:
  void run();

  std::chrono::milliseconds interval_;
  uint64_t threshold_;
  uint64_t busy_threshold_;
  std::function<uint64_t()> activity_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;
  uint64_t trims_ = 0;
  uint64_t checks_ = 0;
  uint64_t busy_checks_ = 0;
  std::thread thread_;
};

} // namespace resized::memory
