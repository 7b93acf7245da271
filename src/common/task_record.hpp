// The record of one task, as the status actor caches it and Redis stores it
// (hash resized:task:<token>). Lifecycle:
//
//   PENDING ──▶ IN_PROGRESS ──▶ SUCCESS
//      │             │
//      └─────────────┴────────▶ FAILURE
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "imaging/options.hpp"

namespace resized {

enum class task_status : uint8_t { pending, in_progress, success, failure };

/// "PENDING", "IN_PROGRESS", "SUCCESS", "FAILURE" (the API's spelling).
std::string_view to_string(task_status status);
bool parse(std::string_view text, task_status& out);

/// True for SUCCESS and FAILURE: the record will not change again.
inline bool is_final(task_status status) {
  return status == task_status::success || status == task_status::failure;
}

struct task_record {
  std::string token; // UUID v4, lower-case
  task_status status = task_status::pending;
  imaging::resize_options options; // as requested (0 = derived side)
  uint64_t input_bytes = 0;        // size of the submitted image
  // -- set on SUCCESS --
  int width = 0;             // actual output width
  int height = 0;            // actual output height
  uint64_t output_bytes = 0; // size of the encoded result
  std::string etag;          // strong ETag of the result bytes
  // The token whose image is this task's result when identical work gave
  // it (copy_result): the twin's record points at that image instead of
  // storing its own copy ("" = its own image). Kept in Redis; not sent to
  // other nodes (like `attempts`: records stay with API nodes and Redis).
  std::string image_token;
  // -- set on FAILURE --
  std::string error_code; // snake_case, see error_code.hpp
  std::string error_message;
  // -- timestamps, milliseconds since the Unix epoch (0 = not yet) --
  int64_t submitted_at_ms = 0;
  int64_t started_at_ms = 0;
  int64_t finished_at_ms = 0;
  std::string node; // node that ran the resize
  // Resize attempts started, kept with the record so that restarts count
  // too: a task whose node keeps dying under it (an input that crashes
  // the process, say) ends after resize.max-attempts instead of for ever.
  uint32_t attempts = 0;
  // The policy of the API node that accepted the task (resize_job::policy:
  // its [limits] and task timeout), kept with the record so that a node
  // which recovers or adopts the task runs it as the accepting node would
  // have: a task accepted under wider limits is not failed by narrower
  // ones, and its result is the one its content key names. Empty in records
  // written before it was kept (the running node's own policy then). Kept
  // in Redis; not sent to other nodes.
  std::optional<imaging::limits> policy;
};

/// Makes `to` a SUCCESS carrying `from`'s result (size, ETag, node, and
/// the image: `from`'s own, or the one `from` points at): identical work
/// answered by an earlier task. `to` keeps its own token, options and
/// timestamps.
void copy_result(const task_record& from, task_record& to);

/// The token under which `rec`'s result image is stored: its own, or for a
/// twin the task's whose image it shares. Only ever used inside: clients
/// fetch a twin's image by its own token (image_path), and never learn
/// the other task's.
const std::string& stored_image_token(const task_record& rec);

/// ISO-8601 UTC with milliseconds, e.g. "2026-11-29T05:40:01.123Z".
std::string format_timestamp(int64_t unix_ms);

/// Milliseconds since the Unix epoch, now.
int64_t now_ms();

} // namespace resized
