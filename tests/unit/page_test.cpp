// The web page's template (the embedded index.html) rendered with a node's
// facts: limits and formats filled in, nothing left over, and an ETag that
// follows the rendered bytes.
#include <boost/test/unit_test.hpp>

#include <stdexcept>
#include <string>

#include "http/assets.hpp"
#include "support/fixtures.hpp"

using namespace resized;
using namespace resized::http;
using imaging::output_format;
using test::occurrences;

namespace {

const std::string_view& page_template() {
  static const std::string_view bytes = [] {
    const auto* a = find_asset("index.html");
    BOOST_TEST_REQUIRE(a != nullptr);
    return a->bytes;
  }();
  return bytes;
}

page_facts some_facts() {
  page_facts f;
  f.max_dimension = 777;
  f.max_upload_bytes = 123456;
  f.formats = {output_format::jpeg, output_format::webp, output_format::png};
  f.max_poll_wait = 9;
  return f;
}

} // namespace

BOOST_AUTO_TEST_SUITE(page)

BOOST_AUTO_TEST_CASE(the_embedded_page_renders_with_the_nodes_values) {
  auto page = render_page(page_template(), some_facts());
  BOOST_TEST(page.find("{{") == std::string::npos);
  BOOST_TEST(occurrences(page, "max=\"777\"") == 2u); // width and height
  BOOST_TEST(occurrences(page, "data-max-bytes=\"123456\"") == 1u);
  BOOST_TEST(occurrences(page, "data-max-poll-wait=\"9\"") == 1u);
  BOOST_TEST(occurrences(page, "<option value=\"jpeg\">JPEG</option>") == 1u);
  BOOST_TEST(occurrences(page, "<option value=\"webp\">WebP</option>") == 1u);
  BOOST_TEST(occurrences(page, "<option value=\"png\">PNG</option>") == 1u);
  BOOST_TEST(page.find("avif") == std::string::npos);
  // Menu order as given; each option on its own line, indented alike.
  BOOST_TEST(page.find("<option value=\"jpeg\">JPEG</option>\n"
                       "            <option value=\"webp\">WebP</option>\n"
                       "            <option value=\"png\">PNG</option>\n") !=
             std::string::npos);
  auto with_avif = some_facts();
  with_avif.formats.push_back(output_format::avif);
  BOOST_TEST(occurrences(render_page(page_template(), with_avif),
                         "<option value=\"avif\">AVIF</option>") == 1u);
}

BOOST_AUTO_TEST_CASE(the_etag_follows_the_rendered_page) {
  auto a = render_page(page_template(), some_facts());
  auto other = some_facts();
  other.max_upload_bytes += 1;
  auto b = render_page(page_template(), other);
  auto again = render_page(page_template(), some_facts());
  BOOST_TEST(make_asset("index.html", a).etag !=
             make_asset("index.html", b).etag);
  BOOST_TEST(make_asset("index.html", a).etag ==
             make_asset("index.html", again).etag);
  BOOST_TEST(make_asset("index.html", a).etag !=
             find_asset("index.html")->etag);
  BOOST_TEST(make_asset("index.html", a).content_type ==
             "text/html; charset=utf-8");
}

BOOST_AUTO_TEST_CASE(a_template_that_disagrees_is_refused) {
  auto facts = some_facts();
  const std::string all = "{{max-dimension}} {{max-upload-bytes}} "
                          "{{max-poll-wait}}\n"
                          "  {{format-options}}";
  BOOST_TEST(render_page(all, facts) ==
             "777 123456 9\n  <option value=\"jpeg\">JPEG</option>\n"
             "  <option value=\"webp\">WebP</option>\n"
             "  <option value=\"png\">PNG</option>");
  BOOST_CHECK_THROW(render_page(all + " {{max-width}}", facts),
                    std::invalid_argument);
  BOOST_CHECK_THROW(
      render_page("{{max-dimension}} {{max-upload-bytes}}", facts),
      std::invalid_argument);
  BOOST_CHECK_THROW(render_page(all + " {{max-dimension", facts),
                    std::invalid_argument);
}

BOOST_AUTO_TEST_SUITE_END()
