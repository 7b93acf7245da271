#include "actors/resize_actor.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include "common/etag.hpp"
#include "common/memory.hpp"
#include "imaging/pipeline.hpp"

namespace resized::actors {

resize_done run_resize_job(const resize_job& job, const std::string& node) {
  memory::note_work();
  resize_done done;
  done.token = job.token;
  done.node = node;
  // The API node's policy, not this node's config: the options were
  // validated there against the same max-dimension.
  auto res = imaging::resize(job.input.data(), job.input.size(), job.options,
                             job.policy, &job.header);
  if (!res) {
    done.ok = false;
    done.error_code = std::string{to_string(res.error().code)};
    done.error_message = res.error().message;
    return done;
  }
  auto& r = res.value();
  done.ok = true;
  done.width = r.width;
  done.height = r.height;
  done.decode_s = r.timings.decode;
  done.resize_s = r.timings.resize;
  done.encode_s = r.timings.encode;
  done.jpeg_dc_scans = r.jpeg_dc_scans;
  done.etag = strong_etag(r.bytes);
  done.output = std::move(r.bytes);
  return done;
}

caf::behavior resize_actor(caf::event_based_actor* self, std::string node,
                           int nice) {
  return {
      [=](const resize_job& job) -> resize_done {
        // Detached: this handler always runs on the worker's own thread.
        thread_local bool niced = false;
        if (!niced && nice != 0) {
          // Linux: nice is per thread; libvips' helper threads created from
          // here inherit it.
          setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), nice);
          niced = true;
        }
        return run_resize_job(job, node);
      },
  };
}

} // namespace resized::actors
