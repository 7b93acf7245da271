// task_record <-> the fields of its Redis hash (<prefix>task:<token>).
// Pure functions, no Redis: unit-tested on their own.
//
// Fields (all values are text; integers in decimal, timestamps in ms since
// the Unix epoch, 0 = not yet):
//   token          UUID of the task
//   status         PENDING | IN_PROGRESS | SUCCESS | FAILURE
//   width_req      requested box width  (0 = derived)
//   height_req     requested box height (0 = derived)
//   mode           fill | fit | force
//   format         jpeg | png | webp | avif
//   quality        1..100
//   input_bytes    size of the submitted image
//   width, height  actual output size (SUCCESS)
//   output_bytes   size of the encoded result (SUCCESS)
//   etag           strong ETag of the result (SUCCESS)
//   error_code     snake_case code (FAILURE)
//   error_message  human-readable message (FAILURE)
//   submitted_at, started_at, finished_at
//   node           node that ran the resize
//   image_token    the task whose stored image is this one's ("" = its own)
//   attempts       resize attempts started
//   the accepting API node's policy (task_record::policy), all six or none:
//   limit_max_pixels, limit_max_dimension, limit_max_avif_pixels,
//   limit_max_input_bytes, limit_processing_ms (resize.task-timeout-ms),
//   limit_truncated (fail | serve)
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "common/outcome.hpp"
#include "common/task_record.hpp"

namespace resized::store {

using field_list = std::vector<std::pair<std::string, std::string>>;

/// Every field of `rec` in the order listed above: always all of them (so
/// HSET overwrites a whole record), but the policy's only when `rec`
/// carries one (a record without it leaves a stored policy alone).
field_list encode_fields(const task_record& rec);

/// Rebuilds a record. `token` and `status` are required; other missing
/// fields keep their defaults and unknown fields are ignored (newer writers);
/// no policy field: no policy.
/// Errors: internal_error "corrupt record field <name>" for an unknown
/// status/mode/format, a non-numeric integer, a missing required field, a
/// policy with some of its fields missing or one out of its range.
outcome<task_record> decode_fields(const field_list& fields);

} // namespace resized::store
