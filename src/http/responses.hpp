// JSON bodies of the API (RapidJSON writer: correct escaping for free).
#pragma once

#include <string>

#include "common/error_code.hpp"
#include "common/service.hpp"
#include "common/task_record.hpp"

namespace resized::http {

/// {"success": false, "error": {"code": ..., "message": ...}}
std::string error_body(const failure& err);

/// {"success": true, "token": ...}
std::string accepted_body(const std::string& token);

/// Path of a result image: /api/v1/images/<token>.<ext>
std::string image_path(const task_record& rec);

/// The poll answer of API.md for `rec`; `public_url` ("" = relative URLs).
std::string status_body(const task_record& rec, const std::string& public_url);

/// GET /api/v1/cluster: this node, its queue, every node it places work on.
std::string cluster_body(const cluster_view& view);

/// GET /readyz when ready: {"status": "ready", "nodes", "workers", "busy",
/// "queue_depth"} (nodes with at least one worker).
std::string ready_body(size_t nodes, size_t workers, size_t busy,
                       size_t queue_depth);

/// HTTP reason phrase of a status code.
const char* reason_phrase(int status);

/// A fresh request id (16 hex digits) for a request that brought none.
std::string new_request_id();

} // namespace resized::http
