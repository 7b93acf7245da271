// The metrics registry and its Prometheus text exposition (format 0.0.4):
// exact text for each kind, escaping, cumulative buckets, and counters
// updated from many threads.
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <thread>
#include <vector>

#include "common/metrics.hpp"

using namespace resized::metrics;

BOOST_AUTO_TEST_SUITE(metrics)

BOOST_AUTO_TEST_CASE(counter_family_text_is_exact) {
  registry reg;
  auto& f = reg.counters("demo_requests_total", "Requests.", {"route", "code"});
  f.with({"/a", "200"}).inc();
  f.with({"/a", "200"}).inc(2);
  f.with({"/b", "404"}).inc();
  BOOST_TEST(reg.text() ==
             "# HELP demo_requests_total Requests.\n"
             "# TYPE demo_requests_total counter\n"
             "demo_requests_total{route=\"/a\",code=\"200\"} 3\n"
             "demo_requests_total{route=\"/b\",code=\"404\"} 1\n");
}

BOOST_AUTO_TEST_CASE(unlabelled_family_without_samples_has_headers) {
  registry reg;
  reg.counters("demo_a_total", "A.");
  reg.gauges("demo_g", "G.").unlabelled().set(1.5);
  BOOST_TEST(reg.text() == "# HELP demo_a_total A.\n"
                           "# TYPE demo_a_total counter\n"
                           "# HELP demo_g G.\n"
                           "# TYPE demo_g gauge\n"
                           "demo_g 1.5\n");
}

BOOST_AUTO_TEST_CASE(label_values_and_help_are_escaped) {
  registry reg;
  auto& f = reg.gauges("demo_info", "Back\\slash and\nnewline.", {"v"});
  f.with({"a\\b\"c\nd"}).set(1);
  BOOST_TEST(reg.text() == "# HELP demo_info Back\\\\slash and\\nnewline.\n"
                           "# TYPE demo_info gauge\n"
                           "demo_info{v=\"a\\\\b\\\"c\\nd\"} 1\n");
  BOOST_TEST(escape_label_value("plain") == "plain");
  BOOST_TEST(escape_help("say \"hi\"") == "say \"hi\""); // quotes stay in HELP
}

BOOST_AUTO_TEST_CASE(histogram_buckets_are_cumulative) {
  registry reg;
  auto& f =
      reg.histograms("demo_seconds", "Durations.", {"stage"}, {0.125, 0.5, 1});
  auto& h = f.with({"x"});
  h.observe(0.0625); // le 0.125 (binary fractions: an exact sum)
  h.observe(0.125);  // le 0.125 (bounds are inclusive)
  h.observe(0.25);   // le 0.5
  h.observe(7);      // +Inf only
  BOOST_TEST(reg.text() == "# HELP demo_seconds Durations.\n"
                           "# TYPE demo_seconds histogram\n"
                           "demo_seconds_bucket{stage=\"x\",le=\"0.125\"} 2\n"
                           "demo_seconds_bucket{stage=\"x\",le=\"0.5\"} 3\n"
                           "demo_seconds_bucket{stage=\"x\",le=\"1\"} 3\n"
                           "demo_seconds_bucket{stage=\"x\",le=\"+Inf\"} 4\n"
                           "demo_seconds_sum{stage=\"x\"} 7.4375\n"
                           "demo_seconds_count{stage=\"x\"} 4\n");
  auto s = h.read();
  BOOST_TEST(s.cumulative.back() == s.count);
  BOOST_TEST(s.cumulative.size() == 4u);
}

BOOST_AUTO_TEST_CASE(histogram_rejects_unsorted_bounds_and_ignores_nan) {
  BOOST_CHECK_THROW(histogram({1, 0.5}), std::invalid_argument);
  BOOST_CHECK_THROW(histogram({1, 1}), std::invalid_argument);
  histogram h{{1}};
  h.observe(std::nan(""));
  BOOST_TEST(h.read().count == 0u);
  histogram inf{{1, std::numeric_limits<double>::infinity()}};
  BOOST_TEST(inf.bounds().size() == 1u); // +Inf is implicit
}

BOOST_AUTO_TEST_CASE(values_are_formatted_like_prometheus) {
  BOOST_TEST(format_value(0) == "0");
  BOOST_TEST(format_value(42) == "42");
  BOOST_TEST(format_value(1e15) == "1000000000000000");
  BOOST_TEST(format_value(0.005) == "0.005");
  BOOST_TEST(format_value(2.5) == "2.5");
  BOOST_TEST(format_value(std::numeric_limits<double>::infinity()) == "+Inf");
  BOOST_TEST(format_value(-std::numeric_limits<double>::infinity()) == "-Inf");
  BOOST_TEST(format_value(std::nan("")) == "NaN");
}

BOOST_AUTO_TEST_CASE(names_are_validated) {
  BOOST_TEST(valid_metric_name("resized_http_requests_total"));
  BOOST_TEST(valid_metric_name("a:b_c"));
  BOOST_TEST(!valid_metric_name("1abc"));
  BOOST_TEST(!valid_metric_name("a-b"));
  BOOST_TEST(!valid_metric_name(""));
  BOOST_TEST(valid_label_name("route"));
  BOOST_TEST(!valid_label_name("__name"));
  BOOST_TEST(!valid_label_name("a:b"));
  registry reg;
  reg.counters("demo_total", "x");
  BOOST_CHECK_THROW(reg.counters("demo_total", "x"), std::invalid_argument);
  BOOST_CHECK_THROW(reg.gauges("bad-name", "x"), std::invalid_argument);
  BOOST_CHECK_THROW(reg.gauges("demo_g", "x", {"le"}), std::invalid_argument);
  auto& f = reg.counters("demo_l_total", "x", {"a"});
  BOOST_CHECK_THROW(f.with({"1", "2"}), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(counters_and_histograms_are_thread_safe) {
  registry reg;
  auto& c = reg.counters("demo_total", "x", {"t"});
  auto& h = reg.histograms("demo_seconds", "x", {}, {0.5}).unlabelled();
  constexpr int threads = 8;
  constexpr int per_thread = 20000;
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) {
        // Children created concurrently, and one shared by every thread.
        c.with({std::to_string(i % 4)}).inc();
        c.with({"all"}).inc();
        h.observe(t % 2 == 0 ? 0.25 : 1.0);
      }
    });
  for (auto& th : pool)
    th.join();
  BOOST_TEST(c.with({"all"}).value() == uint64_t{threads * per_thread});
  uint64_t parts = 0;
  for (int k = 0; k < 4; ++k)
    parts += c.with({std::to_string(k)}).value();
  BOOST_TEST(parts == uint64_t{threads * per_thread});
  auto s = h.read();
  BOOST_TEST(s.count == uint64_t{threads * per_thread});
  BOOST_TEST(s.cumulative[0] == uint64_t{threads / 2 * per_thread});
  BOOST_TEST(s.sum == (threads / 2) * per_thread * 1.25);
}

BOOST_AUTO_TEST_CASE(service_metrics_are_registered_before_use) {
  auto text = global().text();
  for (auto name : {"# TYPE resized_http_requests_total counter",
                    "# TYPE resized_http_request_duration_seconds histogram",
                    "# TYPE resized_tasks_total counter",
                    "# TYPE resized_task_duration_seconds histogram",
                    "# TYPE resized_redis_errors_total counter",
                    "# TYPE resized_input_bytes_total counter",
                    "# TYPE resized_output_bytes_total counter",
                    "resized_tasks_total{status=\"SUCCESS\"} ",
                    "resized_task_duration_seconds_bucket{stage=\"decode\",le="
                    "\"+Inf\"} "}) {
    BOOST_TEST_CONTEXT(name) {
      BOOST_TEST(text.find(name) != std::string::npos);
    }
  }
  task_finished(0.01, 0.02, 0.03, 0.04, 0.1, 1000, 100);
  task_final("SUCCESS");
  task_finished(0.01, -1, -1, -1, 0.02, 500, 0);
  task_final("FAILURE");
  long_polls_held(3);
  long_polls_answered("announcement", 2);
  long_polls_answered("deadline");
  decode_budget_wait();
  http_request("/healthz", 200, 0.0001);
  redis_error();
  text = global().text();
  BOOST_TEST(text.find("resized_tasks_total{status=\"SUCCESS\"} 1\n") !=
             std::string::npos);
  BOOST_TEST(text.find("resized_tasks_total{status=\"FAILURE\"} 1\n") !=
             std::string::npos);
  BOOST_TEST(text.find("resized_task_duration_seconds_count{stage=\"decode\"} "
                       "1\n") != std::string::npos);
  BOOST_TEST(text.find("resized_task_duration_seconds_count{stage=\"total\"} "
                       "2\n") != std::string::npos);
  BOOST_TEST(text.find("resized_input_bytes_total 1500\n") !=
             std::string::npos);
  BOOST_TEST(text.find("resized_output_bytes_total 100\n") !=
             std::string::npos);
  BOOST_TEST(text.find("# TYPE resized_long_polls gauge\nresized_long_polls "
                       "3\n") != std::string::npos);
  BOOST_TEST(text.find("resized_long_polls_answered_total{by="
                       "\"announcement\"} 2\n") != std::string::npos);
  BOOST_TEST(text.find("resized_long_polls_answered_total{by=\"deadline\"} "
                       "1\n") != std::string::npos);
  BOOST_TEST(text.find("resized_decode_budget_waits_total 1\n") !=
             std::string::npos);
  BOOST_TEST(text.find("resized_redis_errors_total 1\n") != std::string::npos);
  BOOST_TEST(text.find("resized_http_requests_total{route=\"/healthz\","
                       "code=\"200\"} 1\n") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()

// The JSON-lines alternative of the logging adapter (log.format = json).
#include "common/log.hpp"

#include <rapidjson/document.h>

BOOST_AUTO_TEST_SUITE(log_json)

// A line break or direction override from a client (a path) is written
// \uXXXX: the line splits nowhere, and still reads back as the same text.
BOOST_AUTO_TEST_CASE(disguising_code_points_are_escaped_in_json) {
  using namespace resized::log;
  const std::string path = "/x\u2028level=error\xc2\x85msg=y\u202ez\u00e9";
  auto line = format_line(format::json, "2026-11-29T05:40:01.123Z", level::info,
                          "request", {{"path", path}});
  BOOST_TEST(line.find("\\u2028level=error\\u0085msg=y\\u202ez\u00e9") !=
                 std::string::npos,
             line);
  for (const char* raw : {"\u2028", "\xc2\x85", "\u202e"})
    BOOST_TEST(line.find(raw) == std::string::npos, line);
  rapidjson::Document doc;
  doc.Parse(line.data(), line.size());
  BOOST_TEST_REQUIRE(!doc.HasParseError());
  BOOST_TEST(std::string{doc["path"].GetString()} == path);
}

BOOST_AUTO_TEST_CASE(typed_fields_keep_their_type_in_json) {
  using namespace resized::log;
  constexpr auto ts = "2026-11-29T05:40:01.123Z";
  // Numbers are JSON numbers, booleans booleans; text is always a string,
  // even when it looks like a number (a request id, a path, a token).
  BOOST_TEST(format_line(format::json, ts, level::info, "request",
                         {{"request_id", "12345"},
                          {"path", "/2024"},
                          {"status", 200},
                          {"bytes", size_t{3187}},
                          {"ms", 1.25},
                          {"delta", int64_t{-3}},
                          {"stage_ms", 0.04, 1},
                          {"avif", false},
                          {"webp", true}}) ==
             "{\"ts\":\"2026-11-29T05:40:01.123Z\",\"level\":\"info\","
             "\"msg\":\"request\",\"request_id\":\"12345\","
             "\"path\":\"/2024\",\"status\":200,\"bytes\":3187,"
             "\"ms\":1.25,\"delta\":-3,\"stage_ms\":0.0,\"avif\":false,"
             "\"webp\":true}");
  // The same line as logfmt: the same digits, text quoted where needed.
  BOOST_TEST(format_line(format::logfmt, ts, level::info, "request",
                         {{"request_id", "12345"},
                          {"status", 200},
                          {"ms", 1.25},
                          {"ok", true},
                          {"reason", "say \"hi\""}}) ==
             "ts=2026-11-29T05:40:01.123Z level=info msg=request "
             "request_id=12345 status=200 ms=1.25 ok=true "
             "reason=\"say \\\"hi\\\"\"");
  // Strings are escaped: quotes, backslashes, control characters.
  BOOST_TEST(
      format_line(format::json, ts, level::warn, "task done",
                  {{"reason", "say \"hi\" \\ x=1"}, {"raw", "a\tb\nc\x01"}}) ==
      "{\"ts\":\"2026-11-29T05:40:01.123Z\",\"level\":\"warn\","
      "\"msg\":\"task done\",\"reason\":\"say \\\"hi\\\" \\\\ x=1\","
      "\"raw\":\"a\\tb\\nc\\u0001\"}");
  // A real that is not finite has no JSON number: null.
  BOOST_TEST(
      format_line(format::json, ts, level::info, "m", {{"x", std::nan("")}}) ==
      "{\"ts\":\"2026-11-29T05:40:01.123Z\",\"level\":\"info\","
      "\"msg\":\"m\",\"x\":null}");
  // Optional fields: a vector.
  std::vector<field> fs{{"a", 1}};
  fs.emplace_back("b", "x y");
  BOOST_TEST(format_line(format::logfmt, ts, level::debug, "m", fs) ==
             "ts=2026-11-29T05:40:01.123Z level=debug msg=m a=1 b=\"x y\"");
  resized::log::format f;
  BOOST_TEST(resized::log::parse_format("json", f));
  BOOST_TEST((f == resized::log::format::json));
  BOOST_TEST(!resized::log::parse_format("xml", f));
}

// Text from clients (a raw request line, a header) may be any bytes: every
// line stays valid UTF-8, so JSON lines stay valid JSON. Each ill-formed
// sequence (its maximal subpart) becomes one U+FFFD; valid text is kept.
BOOST_AUTO_TEST_CASE(ill_formed_utf8_becomes_replacement_characters) {
  using namespace resized::log;
  constexpr auto ts = "2026-11-29T05:40:01.123Z";
  const std::string r = "\xEF\xBF\xBD"; // U+FFFD
  auto fixed = [](std::string_view in) {
    std::string scratch;
    return std::string{valid_utf8(in, scratch)};
  };
  // Valid multibyte text is kept as is (2, 3 and 4 bytes, U+FFFD itself,
  // the highest code point).
  const std::string valid = "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 " + r +
                            " \xF4\x8F\xBF\xBF \x7F";
  BOOST_TEST(fixed(valid) == valid);
  // Lone continuation bytes, bytes never in UTF-8.
  BOOST_TEST(fixed("a\x80z") == "a" + r + "z");
  BOOST_TEST(fixed("\xBF\x80") == r + r);
  BOOST_TEST(fixed("/\xFF\xFE") == "/" + r + r);
  // Truncated sequences: one U+FFFD for what was there, at the end or
  // before the next character.
  BOOST_TEST(fixed("\xE2\x82") == r);
  BOOST_TEST(fixed("\xE2\x82z") == r + "z");
  BOOST_TEST(fixed("\xF0\x9F\x98!") == r + "!");
  BOOST_TEST(fixed("\xC3") == r);
  BOOST_TEST(fixed("\xC3\xC3\xA9") == r + "\xC3\xA9");
  // Overlongs ("/" as 2 and 3 bytes), surrogates (U+D800, U+DFFF), above
  // U+10FFFF: each byte is its own ill-formed subpart.
  BOOST_TEST(fixed("\xC0\xAF") == r + r);
  BOOST_TEST(fixed("\xE0\x80\xAF") == r + r + r);
  BOOST_TEST(fixed("\xED\xA0\x80") == r + r + r);
  BOOST_TEST(fixed("\xED\xBF\xBF") == r + r + r);
  BOOST_TEST(fixed("\xF4\x90\x80\x80") == r + r + r + r);
  // The operator's case: a raw request line's path in an access line.
  const std::string path = "/\xFF\xFE\"\\";
  auto json = format_line(format::json, ts, level::info, "bad \xC3 msg",
                          {{"path", path}, {"status", 404}});
  BOOST_TEST(json == "{\"ts\":\"2026-11-29T05:40:01.123Z\",\"level\":\"info\","
                     "\"msg\":\"bad " +
                         r + " msg\",\"path\":\"/" + r + r +
                         "\\\"\\\\\",\"status\":404}");
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseValidateEncodingFlag>(json.data(), json.size());
  BOOST_TEST(!doc.HasParseError());
  BOOST_TEST(format_line(format::logfmt, ts, level::info, "bad \xC3 msg",
                         {{"path", path}, {"ok", valid}}) ==
             "ts=2026-11-29T05:40:01.123Z level=info msg=\"bad " + r +
                 " msg\" path=\"/" + r + r + "\\\"\\\\\" ok=\"" +
                 valid.substr(0, valid.size() - 1) +
                 "\\x7f\""); // DEL: valid UTF-8, escaped in logfmt
  // Every lone byte, as a whole line: valid JSON.
  for (int b = 0; b < 256; ++b) {
    std::string text(1, static_cast<char>(b));
    auto line = format_line(format::json, ts, level::info, text, {{"t", text}});
    rapidjson::Document d;
    d.Parse<rapidjson::kParseValidateEncodingFlag>(line.data(), line.size());
    BOOST_TEST(!d.HasParseError(), "byte " << b << ": " << line);
  }
}

// One line per key and period; the lines held back are counted into the
// next one of the same key.
BOOST_AUTO_TEST_CASE(log_throttle_lets_one_line_per_period_through) {
  using namespace std::chrono_literals;
  resized::log::throttle t{10s};
  resized::log::throttle::clock::time_point t0{1h};
  BOOST_TEST(t.every_seconds() == 10);
  BOOST_TEST(t.note(1, t0) == 1u); // the first is written
  BOOST_TEST(t.note(1, t0 + 1s) == 0u);
  BOOST_TEST(t.note(1, t0 + 9s) == 0u);
  BOOST_TEST(t.note(2, t0 + 9s) == 1u);  // another key: its own period
  BOOST_TEST(t.note(1, t0 + 10s) == 3u); // itself and the 2 held back
  BOOST_TEST(t.note(1, t0 + 19s) == 0u);
  BOOST_TEST(t.note(1, t0 + 60s) == 2u);
  BOOST_TEST(t.note(2, t0 + 60s) == 1u);
}

BOOST_AUTO_TEST_SUITE_END()
