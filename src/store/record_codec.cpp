#include "store/record_codec.hpp"

#include <algorithm>
#include <charconv>
#include <iterator>
#include <string_view>

namespace resized::store {

namespace {

template <class Int>
bool parse_int(std::string_view text, Int& out) {
  if (text.empty())
    return false;
  Int value{};
  auto [end, ec] =
      std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size())
    return false;
  out = value;
  return true;
}

failure corrupt(std::string_view field) {
  return failure{error_code::internal_error,
                 "corrupt record field " + std::string{field}};
}

// The policy's fields (task_record::policy), in encode_fields' order.
constexpr const char* policy_fields[] = {
    "limit_max_pixels",      "limit_max_dimension", "limit_max_avif_pixels",
    "limit_max_input_bytes", "limit_processing_ms", "limit_truncated"};
constexpr size_t policy_field_count = std::size(policy_fields);

// The index of `name` in policy_fields, policy_field_count if it is not
// one of them.
size_t policy_index(std::string_view name) {
  return static_cast<size_t>(
      std::find(std::begin(policy_fields), std::end(policy_fields), name) -
      std::begin(policy_fields));
}

// Reads policy field `index` of policy_fields into `out`: false when the
// value is not one the setting it comes from can take (every limit at
// least 1; the processing deadline too, 0 would mean none).
bool parse_policy_field(size_t index, std::string_view value,
                        imaging::limits& out) {
  auto positive = [&](auto& field) {
    return parse_int(value, field) && field >= 1;
  };
  switch (index) {
  case 0:
    return positive(out.max_pixels);
  case 1:
    return positive(out.max_dimension);
  case 2:
    return positive(out.max_avif_pixels);
  case 3:
    return positive(out.max_input_bytes);
  case 4:
    return positive(out.max_processing_ms);
  default:
    if (value != "fail" && value != "serve")
      return false;
    out.fail_on_truncated = value == "fail";
    return true;
  }
}

} // namespace

field_list encode_fields(const task_record& rec) {
  const auto& opt = rec.options;
  field_list fields{
      {"token", rec.token},
      {"status", std::string{to_string(rec.status)}},
      {"width_req", std::to_string(opt.width)},
      {"height_req", std::to_string(opt.height)},
      {"mode", std::string{imaging::to_string(opt.mode)}},
      {"format", std::string{imaging::to_string(opt.format)}},
      {"quality", std::to_string(opt.quality)},
      {"input_bytes", std::to_string(rec.input_bytes)},
      {"width", std::to_string(rec.width)},
      {"height", std::to_string(rec.height)},
      {"output_bytes", std::to_string(rec.output_bytes)},
      {"etag", rec.etag},
      {"image_token", rec.image_token},
      {"error_code", rec.error_code},
      {"error_message", rec.error_message},
      {"submitted_at", std::to_string(rec.submitted_at_ms)},
      {"started_at", std::to_string(rec.started_at_ms)},
      {"finished_at", std::to_string(rec.finished_at_ms)},
      {"node", rec.node},
      {"attempts", std::to_string(rec.attempts)},
  };
  if (const auto& p = rec.policy) {
    std::string values[] = {std::to_string(p->max_pixels),
                            std::to_string(p->max_dimension),
                            std::to_string(p->max_avif_pixels),
                            std::to_string(p->max_input_bytes),
                            std::to_string(p->max_processing_ms),
                            p->fail_on_truncated ? "fail" : "serve"};
    for (size_t i = 0; i < policy_field_count; ++i)
      fields.emplace_back(policy_fields[i], std::move(values[i]));
  }
  return fields;
}

outcome<task_record> decode_fields(const field_list& fields) {
  task_record rec;
  auto& opt = rec.options;
  bool has_token = false;
  bool has_status = false;
  imaging::limits policy;
  bool policy_seen[policy_field_count] = {};
  for (const auto& [name, value] : fields) {
    bool ok = true;
    if (name == "token") {
      rec.token = value;
      has_token = true;
    } else if (name == "status") {
      ok = parse(value, rec.status);
      has_status = true;
    } else if (name == "width_req") {
      ok = parse_int(value, opt.width);
    } else if (name == "height_req") {
      ok = parse_int(value, opt.height);
    } else if (name == "mode") {
      ok = imaging::parse(value, opt.mode);
    } else if (name == "format") {
      ok = imaging::parse(value, opt.format);
    } else if (name == "quality") {
      ok = parse_int(value, opt.quality);
    } else if (name == "input_bytes") {
      ok = parse_int(value, rec.input_bytes);
    } else if (name == "width") {
      ok = parse_int(value, rec.width);
    } else if (name == "height") {
      ok = parse_int(value, rec.height);
    } else if (name == "output_bytes") {
      ok = parse_int(value, rec.output_bytes);
    } else if (name == "etag") {
      rec.etag = value;
    } else if (name == "image_token") {
      rec.image_token = value;
    } else if (name == "error_code") {
      rec.error_code = value;
    } else if (name == "error_message") {
      rec.error_message = value;
    } else if (name == "submitted_at") {
      ok = parse_int(value, rec.submitted_at_ms);
    } else if (name == "started_at") {
      ok = parse_int(value, rec.started_at_ms);
    } else if (name == "finished_at") {
      ok = parse_int(value, rec.finished_at_ms);
    } else if (name == "node") {
      rec.node = value;
    } else if (name == "attempts") {
      ok = parse_int(value, rec.attempts);
    } else if (auto index = policy_index(name); index < policy_field_count) {
      ok = parse_policy_field(index, value, policy);
      policy_seen[index] = true;
    } // else: a field from a newer writer, ignored
    if (!ok)
      return corrupt(name);
  }
  if (!has_token)
    return corrupt("token");
  if (!has_status)
    return corrupt("status");
  if (std::find(std::begin(policy_seen), std::end(policy_seen), true) !=
      std::end(policy_seen)) {
    for (size_t i = 0; i < policy_field_count; ++i)
      if (!policy_seen[i]) // a policy in part would run under made-up limits
        return corrupt(policy_fields[i]);
    rec.policy = policy;
  }
  return rec;
}

} // namespace resized::store
