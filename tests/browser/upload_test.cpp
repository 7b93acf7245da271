// The browser test's ctest driver (label browser): starts a private
// redis-server and the real resized (tests/support), then runs
//   node tests/browser/upload.test.mjs <base-url> <photo> <artifact-dir>
//        <max-body-bytes> <max-dimension>
// (the limits the service is started with) which drives headless Chromium
// through playwright-core; and, against a service started with
// --http.max-poll-wait=0,
//   node tests/browser/poll.test.mjs <base-url> <photo> <artifact-dir>
// which checks how the page follows a task. Missing node, Chromium or
// node_modules is a failure, not a skip: scripts/install-deps installs all
// three.
#include <boost/test/unit_test.hpp>

#include <unistd.h>

#include "support/fixtures.hpp"

using namespace resized::test;

namespace {

bool executable(const std::string& path) {
  return !path.empty() && ::access(path.c_str(), X_OK) == 0;
}

bool exists(const std::string& path) {
  return ::access(path.c_str(), F_OK) == 0;
}

// node, after checking that it, Chromium and playwright-core are there.
std::string browser_tools() {
  auto source = env_or("RESIZED_SOURCE_DIR", ".");
  auto node = env_or("NODE_BIN", "/usr/bin/node");
  auto chromium = env_or("CHROMIUM_BIN", "/usr/bin/chromium");
  auto modules = source + "/tests/browser/node_modules/playwright-core";
  BOOST_TEST_REQUIRE(executable(node), "node not found at "
                                           << node
                                           << ": run scripts/install-deps");
  BOOST_TEST_REQUIRE(executable(chromium), "chromium not found at "
                                               << chromium
                                               << ": run scripts/install-deps");
  BOOST_TEST_REQUIRE(exists(modules),
                     modules << " is missing: run scripts/install-deps");
  return node;
}

} // namespace

BOOST_AUTO_TEST_SUITE(browser)

BOOST_AUTO_TEST_CASE(upload_a_photo_and_see_the_thumbnail) {
  auto source = env_or("RESIZED_SOURCE_DIR", ".");
  auto node = browser_tools();

  // Limits other than the defaults, which the page must show: 1 MiB is
  // above the photo's size, so the page refuses only a bigger file.
  const std::string max_body = "1048576";
  const std::string max_dimension = "2000";
  // The page served under the name localhost is another origin than the
  // API at 127.0.0.1: the one origin allowed to call it from a browser.
  e2e_service svc{{"--limits.max-body-bytes=" + max_body,
                   "--limits.max-dimension=" + max_dimension,
                   "--http.cors-origins=http://localhost:{http-port}"},
                  "browser"};
  auto photo = corpus_dir() + "/" + small_photo;
  auto artifacts = env_or("RESIZED_ARTIFACT_DIR", "artifacts");
  std::string output;
  int rc = run_to_exit({node, source + "/tests/browser/upload.test.mjs",
                        svc.server.url(""), photo, artifacts, max_body,
                        max_dimension},
                       output, std::chrono::seconds{180});
  BOOST_TEST_MESSAGE(output);
  BOOST_TEST(rc == 0, "upload.test.mjs exited " << rc << ":\n" << output);
  BOOST_TEST(exists(artifacts + "/browser-upload.png"));
  BOOST_TEST_MESSAGE("screenshot: " << artifacts << "/browser-upload.png");
}

// A node that takes no long-poll wait (http.max-poll-wait=0): the page
// must poll without one, or the node refuses each poll 400.
BOOST_AUTO_TEST_CASE(the_page_follows_a_task_on_a_node_without_long_poll) {
  auto source = env_or("RESIZED_SOURCE_DIR", ".");
  auto node = browser_tools();
  e2e_service svc{{"--http.max-poll-wait=0"}, "browser-poll"};
  auto artifacts = env_or("RESIZED_ARTIFACT_DIR", "artifacts");
  std::string output;
  int rc = run_to_exit({node, source + "/tests/browser/poll.test.mjs",
                        svc.server.url(""), corpus_dir() + "/" + small_photo,
                        artifacts},
                       output, std::chrono::seconds{180});
  BOOST_TEST_MESSAGE(output);
  BOOST_TEST(rc == 0, "poll.test.mjs exited " << rc << ":\n" << output);
}

BOOST_AUTO_TEST_SUITE_END()
