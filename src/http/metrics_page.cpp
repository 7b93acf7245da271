#include "http/metrics_page.hpp"

#include <algorithm>
#include <cstdio>
#include <dirent.h>
#include <fstream>
#include <iterator>
#include <sstream>
#include <unistd.h>
#include <vector>

#include <vips/vips.h>

#include "common/metrics.hpp"

namespace resized::http {

namespace {

void cluster_gauges(metrics::exposition& out, const cluster_view& view) {
  out.gauge("resized_queue_depth",
            "Tasks waiting for a worker (or for an earlier twin).",
            static_cast<double>(view.queue_depth));
  out.gauge("resized_queued_bytes", "Input bytes of the tasks waiting.",
            static_cast<double>(view.queued_bytes));
  out.gauge("resized_clients",
            "Clients (API keys, else addresses) with tasks open on this "
            "node, each counted against queue.max-per-client.",
            static_cast<double>(view.clients));
  out.gauge("resized_nodes", "Nodes with resize workers known to this node.",
            static_cast<double>(view.nodes.size()));
  out.header("resized_workers",
             "Resize workers per node: busy (a task in flight), idle (free, "
             "takes tasks) or leaving (free, but its node drains: takes none).",
             "gauge");
  // The three states part each node's workers; every node has all three
  // series, so one does not vanish while a node leaves.
  for (const auto& n : view.nodes) {
    auto busy = std::min(n.busy, n.workers);
    bool leaving = n.state == "leaving";
    auto free = static_cast<double>(n.workers - busy);
    out.sample("resized_workers", {{"node", n.id}, {"state", "busy"}},
               static_cast<double>(busy));
    out.sample("resized_workers", {{"node", n.id}, {"state", "idle"}},
               leaving ? 0.0 : free);
    out.sample("resized_workers", {{"node", n.id}, {"state", "leaving"}},
               leaving ? free : 0.0);
  }
}

// /proc/self/stat fields after the command name (which may hold spaces and
// parentheses, so parsing starts after its last ')'): field 3 is the
// state, 14/15 utime/stime and 22 starttime, in clock ticks.
void process_gauges(metrics::exposition& out) {
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  {
    std::ifstream statm{"/proc/self/statm"};
    double size = 0;
    double resident = 0;
    if (statm >> size >> resident) {
      out.gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.",
                size * page);
      out.gauge("process_resident_memory_bytes",
                "Resident memory size in bytes.", resident * page);
    }
  }
  std::ifstream stat_file{"/proc/self/stat"};
  std::string stat{std::istreambuf_iterator<char>{stat_file}, {}};
  auto paren = stat.rfind(')');
  if (paren != std::string::npos) {
    std::istringstream fields{stat.substr(paren + 2)};
    std::vector<std::string> f{std::istream_iterator<std::string>{fields}, {}};
    // f[0] is field 3.
    if (f.size() > 19) {
      double utime = std::stod(f[11]);
      double stime = std::stod(f[12]);
      double start = std::stod(f[19]);
      out.header("process_cpu_seconds_total",
                 "Total user and system CPU time spent in seconds.", "counter");
      out.sample("process_cpu_seconds_total", {}, (utime + stime) / ticks);
      std::ifstream proc_stat{"/proc/stat"};
      std::string key;
      double btime = -1;
      while (proc_stat >> key) {
        if (key == "btime") {
          proc_stat >> btime;
          break;
        }
      }
      if (btime >= 0)
        out.gauge("process_start_time_seconds",
                  "Start time of the process since unix epoch in seconds.",
                  btime + start / ticks);
    }
  }
  if (auto* dir = opendir("/proc/self/fd")) {
    double fds = 0;
    while (readdir(dir) != nullptr)
      ++fds;
    closedir(dir);
    out.gauge("process_open_fds", "Number of open file descriptors.",
              fds - 3); // ".", ".." and the directory itself
  }
}

void vips_gauges(metrics::exposition& out) {
  out.gauge("resized_vips_memory_bytes",
            "Memory libvips has allocated (vips_tracked_get_mem).",
            static_cast<double>(vips_tracked_get_mem()));
  out.gauge("resized_vips_memory_highwater_bytes",
            "Most memory libvips had allocated at once since start.",
            static_cast<double>(vips_tracked_get_mem_highwater()));
}

} // namespace

std::string metrics_text(const cluster_view* view) {
  metrics::exposition out;
  metrics::global().write(out);
  if (view != nullptr)
    cluster_gauges(out, *view);
  process_gauges(out);
  vips_gauges(out);
  return out.take();
}

} // namespace resized::http
