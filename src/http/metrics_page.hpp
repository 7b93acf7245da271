// GET /metrics: the process-wide registry (src/common/metrics) plus gauges
// read at scrape time: the cluster view, this process (/proc/self) and
// libvips' tracked memory.
#pragma once

#include <string>

#include "common/service.hpp"

namespace resized::http {

/// The whole exposition. `view` is null when the supervisor did not answer:
/// the cluster gauges are left out then, everything else is still served.
std::string metrics_text(const cluster_view* view);

/// Content-Type of the Prometheus text format.
inline constexpr const char* metrics_content_type =
    "text/plain; version=0.0.4; charset=utf-8";

} // namespace resized::http
