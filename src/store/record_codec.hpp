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
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "common/outcome.hpp"
#include "common/task_record.hpp"

namespace resized::store {

using field_list = std::vector<std::pair<std::string, std::string>>;

/// Every field of `rec`, always all of them (so HSET overwrites a whole
/// record), in the order listed above.
field_list encode_fields(const task_record& rec);

/// Rebuilds a record. `token` and `status` are required; other missing
/// fields keep their defaults and unknown fields are ignored (newer writers).
/// Errors: internal_error "corrupt record field <name>" for an unknown
/// status/mode/format, a non-numeric integer or a missing required field.
outcome<task_record> decode_fields(const field_list& fields);

} // namespace resized::store
