#include "common/task_record.hpp"

#include <chrono>
#include <ctime>

#include <fmt/format.h>

namespace resized {

std::string_view to_string(task_status status) {
  switch (status) {
  case task_status::pending:
    return "PENDING";
  case task_status::in_progress:
    return "IN_PROGRESS";
  case task_status::success:
    return "SUCCESS";
  case task_status::failure:
    return "FAILURE";
  }
  return "PENDING";
}

bool parse(std::string_view text, task_status& out) {
  if (text == "PENDING")
    out = task_status::pending;
  else if (text == "IN_PROGRESS")
    out = task_status::in_progress;
  else if (text == "SUCCESS")
    out = task_status::success;
  else if (text == "FAILURE")
    out = task_status::failure;
  else
    return false;
  return true;
}

void copy_result(const task_record& from, task_record& to) {
  to.status = task_status::success;
  to.width = from.width;
  to.height = from.height;
  to.output_bytes = from.output_bytes;
  to.etag = from.etag;
  to.node = from.node;
  to.image_token = from.image_token.empty() ? from.token : from.image_token;
}

const std::string& stored_image_token(const task_record& rec) {
  return rec.image_token.empty() ? rec.token : rec.image_token;
}

std::string format_timestamp(int64_t unix_ms) {
  auto secs = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec, static_cast<int>(unix_ms % 1000));
}

int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch())
      .count();
}

} // namespace resized
