// The per-task resize actor, spawned detached as the supervisor does, driven
// through a scoped actor.
#include <caf/all.hpp>

#include "actor_fixture.hpp"
#include "actors/resize_actor.hpp"

using namespace resized;
using namespace resized::actors;
using namespace std::chrono_literals;

using resized::test::vips_global;
BOOST_TEST_GLOBAL_FIXTURE(vips_global);

BOOST_FIXTURE_TEST_SUITE(resize_actor_suite,
                         resized::test::actor_system_fixture)

namespace {

resize_done run(caf::actor_system& sys, std::string input,
                imaging::resize_options opts = {},
                imaging::probe_info header = {}, imaging::limits policy = {}) {
  auto worker =
      sys.spawn<caf::detached>(resize_actor, std::string{"test-node"}, 0);
  caf::scoped_actor self{sys};
  resize_done out;
  bool answered = false;
  self->request(worker, 30s,
                resize_job{"t-1", opts, std::move(input), header, policy})
      .receive(
          [&](resize_done& done) {
            out = std::move(done);
            answered = true;
          },
          [&](caf::error& err) {
            BOOST_FAIL("resize actor failed: " << sys.render(err));
          });
  BOOST_REQUIRE(answered);
  caf::anon_send_exit(worker, caf::exit_reason::user_shutdown);
  return out;
}

} // namespace

BOOST_AUTO_TEST_CASE(resizes_a_photo) {
  auto done = run(sys, test::corpus_photo(test::small_photo));
  BOOST_TEST(done.ok);
  BOOST_TEST(done.token == "t-1");
  BOOST_TEST(done.node == "test-node");
  BOOST_TEST(done.width == 100);
  BOOST_TEST(done.height == 100);
  BOOST_TEST(!done.etag.empty());
  test::image_info info;
  BOOST_REQUIRE(test::probe_image(done.output, info));
  BOOST_TEST(info.format == "jpeg");
  BOOST_TEST(info.width == 100);
  BOOST_TEST(info.height == 100);
}

BOOST_AUTO_TEST_CASE(header_from_the_api_node_is_used) {
  // The API node's probe travels with the job; the worker checks its pixel
  // count against the job's policy without reading the header again.
  auto photo = test::corpus_photo(test::small_photo);
  auto head = imaging::probe(photo.data(), photo.size(), imaging::limits{});
  BOOST_REQUIRE(head.ok());
  auto done = run(sys, photo, {}, *head);
  BOOST_TEST(done.ok);
  BOOST_TEST(done.width == 100);
  auto huge = *head;
  huge.width = 100000;
  huge.height = 100000;
  auto refused = run(sys, photo, {}, huge);
  BOOST_TEST(!refused.ok);
  BOOST_TEST(refused.error_code == "image_too_large");
}

BOOST_AUTO_TEST_CASE(options_reach_the_pipeline) {
  imaging::resize_options opts;
  opts.width = 200;
  opts.height = 0;
  opts.format = imaging::output_format::png;
  auto done = run(sys, test::corpus_photo(test::small_photo), opts);
  BOOST_TEST(done.ok);
  BOOST_TEST(done.width == 200);
  BOOST_TEST(done.height == 125); // 548x342 keeps its aspect ratio
  test::image_info info;
  BOOST_REQUIRE(test::probe_image(done.output, info));
  BOOST_TEST(info.format == "png");
}

// The policy of the API node that accepted the task travels with the job
// (resize_job::policy); a resize actor has no limits of its own.

BOOST_AUTO_TEST_CASE(the_jobs_policy_decides_truncated_images) {
  // A JPEG cut short: its header is whole, its scans end early.
  auto cut = test::corpus_photo("opencv__aloeL.jpg").substr(0, 150000);
  imaging::limits fail;
  auto failed = run(sys, cut, {}, {}, fail);
  BOOST_TEST(!failed.ok);
  BOOST_TEST(failed.error_code == "corrupt_image");
  imaging::limits serve;
  serve.fail_on_truncated = false;
  auto served = run(sys, cut, {}, {}, serve);
  BOOST_TEST(served.ok, served.error_code << ": " << served.error_message);
  BOOST_TEST(served.width == 100);
}

BOOST_AUTO_TEST_CASE(the_jobs_policy_decides_max_dimension) {
  imaging::resize_options opts;
  opts.width = 400;
  opts.height = 0;
  imaging::limits narrow;
  narrow.max_dimension = 300;
  auto refused =
      run(sys, test::corpus_photo(test::small_photo), opts, {}, narrow);
  BOOST_TEST(!refused.ok);
  BOOST_TEST(refused.error_code == "invalid_option");
  auto done = run(sys, test::corpus_photo(test::small_photo), opts);
  BOOST_TEST(done.ok, done.error_code << ": " << done.error_message);
  BOOST_TEST(done.width == 400);
  // A side left to the aspect ratio is capped by the job's max-dimension.
  // 548x342 at height 800 is 1282 wide.
  opts.width = 0;
  opts.height = 800;
  imaging::limits small_box;
  small_box.max_dimension = 1000;
  auto capped =
      run(sys, test::corpus_photo(test::small_photo), opts, {}, small_box);
  BOOST_TEST(capped.ok, capped.error_code << ": " << capped.error_message);
  BOOST_TEST(capped.width == 1000);
  BOOST_TEST(run(sys, test::corpus_photo(test::small_photo), opts).width ==
             1282);
}

BOOST_AUTO_TEST_CASE(the_jobs_policy_decides_max_pixels) {
  auto photo = test::corpus_photo(test::small_photo); // 548x342 = 0.19 MP
  imaging::limits tight;
  tight.max_pixels = 100000;
  auto refused = run(sys, photo, {}, {}, tight);
  BOOST_TEST(!refused.ok);
  BOOST_TEST(refused.error_code == "image_too_large");
  BOOST_TEST(run(sys, photo).ok);
}

BOOST_AUTO_TEST_CASE(the_jobs_deadline_stops_libvips) {
  // A 3840x2160 PNG re-encoded as a 3800-wide PNG: seconds of work.
  imaging::resize_options opts;
  opts.width = 3800;
  opts.height = 0;
  opts.mode = imaging::fit_mode::fit;
  opts.format = imaging::output_format::png;
  imaging::limits policy;
  policy.max_processing_ms = 300;
  auto photo = test::corpus_photo("plasma__Canopee_3840x2160.png");
  auto t0 = std::chrono::steady_clock::now();
  auto done = run(sys, photo, opts, {}, policy);
  auto took_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::steady_clock::now() - t0)
                     .count();
  BOOST_TEST(!done.ok);
  BOOST_TEST(done.error_code == "processing_timeout");
  BOOST_TEST(done.error_message.find("300 ms") != std::string::npos,
             done.error_message);
  // Stopped at the job's deadline, not when the work was done.
  BOOST_TEST(took_ms >= 300);
  BOOST_TEST(took_ms < 2000);
}

BOOST_AUTO_TEST_CASE(garbage_is_a_failure_not_a_crash) {
  auto done = run(sys, test::garbage_bytes(4096));
  BOOST_TEST(!done.ok);
  BOOST_TEST(done.error_code == "unsupported_format");
  BOOST_TEST(!done.error_message.empty());
  BOOST_TEST(done.output.empty());
}

BOOST_AUTO_TEST_CASE(corrupt_pixels_are_a_failure) {
  auto done = run(sys, test::corrupt_jpeg());
  BOOST_TEST(!done.ok);
  BOOST_TEST(done.error_code == "corrupt_image");
}

BOOST_AUTO_TEST_SUITE_END()
