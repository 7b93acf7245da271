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
                imaging::probe_info header = {}) {
  auto worker = sys.spawn<caf::detached>(resize_actor, imaging::limits{},
                                         std::string{"test-node"}, 0);
  caf::scoped_actor self{sys};
  resize_done out;
  bool answered = false;
  self->request(worker, 30s, resize_job{"t-1", opts, std::move(input), header})
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
  // count against its own limits without reading the header again.
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
