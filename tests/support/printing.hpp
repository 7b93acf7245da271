// How Boost.Test prints the service's enums in a failed check: by name
// (to_string). boost_test_print_type is Boost.Test's own hook, found by
// argument-dependent lookup; it leaves operator<< free for the project.
// Header only: a suite that never prints an imaging enum need not link the
// imaging code.
#pragma once

#include <ostream>

#include "common/error_code.hpp"
#include "common/task_record.hpp"
#include "imaging/options.hpp"

namespace resized {
inline std::ostream& boost_test_print_type(std::ostream& out, error_code x) {
  return out << to_string(x);
}
inline std::ostream& boost_test_print_type(std::ostream& out, task_status x) {
  return out << to_string(x);
}
} // namespace resized

namespace resized::imaging {
inline std::ostream& boost_test_print_type(std::ostream& out, output_format x) {
  return out << to_string(x);
}
inline std::ostream& boost_test_print_type(std::ostream& out, input_format x) {
  return out << to_string(x);
}
inline std::ostream& boost_test_print_type(std::ostream& out, fit_mode x) {
  return out << to_string(x);
}
} // namespace resized::imaging
