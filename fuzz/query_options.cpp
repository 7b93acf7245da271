// Fuzzes the query-string option path as a submission takes it: the input
// is a query string, parsed (parse_query_params: split at '&', each
// parameter through RESTinio's parser), then decoded and resolved against
// the default options and limits. names_an_option (a JSON submission's
// check) and poll_wait_value (a status poll's) read the same text.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fuzz_support.hpp"
#include "http/request_decoding.hpp"

using namespace resized;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in{reinterpret_cast<const char*>(data), size};
  (void)http::names_an_option(in);
  // A status poll's query: only wait is read, percent-decoded where the
  // parameter parses; anything else is no error.
  auto wait = http::poll_wait_value(in);
  fuzz::check(wait.ok() || wait.error().code == error_code::invalid_option,
              "poll_wait_value failed with a code other than invalid_option");
  if (wait.ok())
    (void)http::decode_poll_wait(*wait, std::chrono::seconds{20});
  auto params = http::parse_query_params(in);
  if (!params) {
    fuzz::check(params.error().code == error_code::invalid_option,
                "query parsing failed with a code other than invalid_option");
    fuzz::check(!params.error().message.empty(), "error without a message");
    return 0;
  }
  auto given = http::decode_query_options(*params);
  if (!given) {
    fuzz::check(given.error().code == error_code::invalid_option,
                "query decoding failed with a code other than invalid_option");
    fuzz::check(!given.error().message.empty(), "error without a message");
    return 0;
  }
  const auto& lim = fuzz::default_limits();
  auto opts = http::resolve_options(*given, fuzz::default_options(), lim,
                                    fuzz::can_write_no_avif);
  if (!opts) {
    fuzz::check(opts.error().code == error_code::invalid_option,
                "resolve_options failed with a code other than invalid_option");
    return 0;
  }
  fuzz::check(opts->width >= 0 && opts->width <= lim.max_dimension,
              "width range");
  fuzz::check(opts->height >= 0 && opts->height <= lim.max_dimension,
              "height range");
  fuzz::check(opts->width > 0 || opts->height > 0, "both sides 0");
  fuzz::check(opts->quality >= 1 && opts->quality <= 100, "quality range");
  fuzz::check(opts->format != imaging::output_format::avif,
              "resolved to a format the build cannot write");
  return 0;
}
