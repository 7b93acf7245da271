// Every photo of the shared corpus (JPEG, PNG, WebP; 0.3 to 20 megapixels),
// submitted at once and polled together: each ends SUCCESS as a 100x100
// JPEG (the defaults: fill, jpeg) in sRGB, the grey photos too, without the
// inputs' Exif/XMP metadata; the large progressive JPEGs are decoded from
// their DC scans.
#include <boost/test/unit_test.hpp>

#include "support/fixtures.hpp"

using namespace resized::test;

namespace {

struct corpus_tag {
  // Room for the whole corpus in the queue (about 40 MB, 31 images).
  static std::vector<std::string> args() {
    return {"--queue.capacity=64", "--queue.max-bytes=268435456"};
  }
  static std::string name() { return "corpus"; }
};

using env = suite_env<corpus_tag>;

std::string content_type_of(const std::string& path) {
  auto ends_with = [&](const std::string& suffix) {
    return path.size() >= suffix.size() &&
           path.compare(path.size() - suffix.size(), suffix.size(), suffix) ==
               0;
  };
  if (ends_with(".png"))
    return "image/png";
  if (ends_with(".webp"))
    return "image/webp";
  return "image/jpeg";
}

} // namespace

BOOST_AUTO_TEST_SUITE(corpus, *boost::unit_test::fixture<env>())

BOOST_AUTO_TEST_CASE(every_photo_resizes_to_100x100) {
  auto& srv = env::get().server;
  auto photos = corpus_photos();
  BOOST_TEST_REQUIRE(photos.size() >= 10u);
  std::vector<std::string> tokens;
  std::map<std::string, std::string> photo_of;
  for (size_t i = 0; i < photos.size(); ++i) {
    const auto& path = photos[i];
    auto bytes = read_file(path);
    // Alternate the two body forms: raw bytes and the original base64 JSON.
    auto res = i % 2 == 0 ? submit_raw(srv, bytes, content_type_of(path))
                          : submit_json(srv, base64_encode(bytes),
                                        ", \"mode\": \"fill\"");
    BOOST_TEST_CONTEXT("photo " << path) {
      auto token = accepted_token(res);
      if (!token.empty()) {
        tokens.push_back(token);
        photo_of[token] = path;
      }
    }
  }
  BOOST_TEST(tokens.size() == photos.size());
  auto started = std::chrono::steady_clock::now();
  auto finals = wait_all_final(srv, tokens, std::chrono::seconds{100});
  BOOST_TEST_MESSAGE("corpus: "
                     << tokens.size() << " photos final after "
                     << std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::steady_clock::now() - started)
                            .count()
                     << " ms");
  for (const auto& token : tokens) {
    BOOST_TEST_CONTEXT("photo " << photo_of[token] << " token " << token << " "
                                << finals[token].http_status << " "
                                << finals[token].error << " "
                                << finals[token].body) {
      BOOST_TEST_REQUIRE(finals[token].status == "SUCCESS");
      auto out = finish(srv, token, std::chrono::seconds{1});
      BOOST_TEST(out.info.format == "jpeg");
      BOOST_TEST(out.info.width == 100);
      BOOST_TEST(out.info.height == 100);
      // sRGB whatever the input: the grey photos too (three bands).
      BOOST_TEST(out.info.channels == 3);
      // "metadata stripped": many inputs carry Exif and XMP segments.
      BOOST_TEST(!jpeg_has_metadata(out.image.body));
    }
  }
  // The progressive photos 16 x the box or more (four in the corpus) were
  // decoded from their DC scans (same pixels; imaging tests compare them).
  BOOST_TEST(metric(srv, "resized_jpeg_dc_scans_total") >= 4);
  BOOST_TEST(lines_with(srv.process().log(),
                        {"task finished", "jpeg_dc_scans=true"}) >= 4u);
}

BOOST_AUTO_TEST_SUITE_END()
