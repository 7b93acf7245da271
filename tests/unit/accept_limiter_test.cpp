// accept_counter (src/http/accept_limiter.hpp): the count of accepts and
// connections behind http.max-connections, as RESTinio's acceptor drives
// it: a slot's next accept is asked for right after its last one was
// handled, on the same thread, whether that one became a connection or the
// acceptor gave up on it (a client that reset at once).
#include <boost/test/unit_test.hpp>

#include "http/accept_limiter.hpp"

using resized::http::accept_counter;

BOOST_AUTO_TEST_SUITE(accept_limiter)

BOOST_AUTO_TEST_CASE(an_accept_given_up_is_given_back) {
  accept_counter c{2};
  BOOST_TEST(c.want_accept(0)); // slot 0 accepts
  BOOST_TEST(c.accepting() == 1u);
  // The acceptor gave up on that one (no connection_made): asked again,
  // its count comes back, and the slot accepts again.
  for (int i = 0; i < 1000; ++i)
    BOOST_TEST_REQUIRE(c.want_accept(0));
  BOOST_TEST(c.accepting() == 1u);
  BOOST_TEST(c.connections() == 0u);
}

BOOST_AUTO_TEST_CASE(connections_count_until_they_close) {
  accept_counter c{2};
  BOOST_TEST(c.want_accept(0));
  c.connection_made();
  BOOST_TEST(c.want_accept(0)); // 1 connection + 1 accept: at the limit
  BOOST_TEST(!c.full());        // not full while one is being accepted
  c.connection_made();
  BOOST_TEST(c.connections() == 2u);
  BOOST_TEST(c.full()); // stalled connections are shed now
  BOOST_TEST(resized::http::acceptor_full());
  BOOST_TEST(!c.want_accept(0)); // no room: slot 0 waits
  BOOST_TEST(c.accepting() == 0u);
  size_t slot = 99;
  BOOST_TEST(c.connection_closed(slot)); // room again: slot 0 may ask
  BOOST_TEST(slot == 0u);
  BOOST_TEST(!c.full());
  BOOST_TEST(!resized::http::acceptor_full());
  BOOST_TEST(c.want_accept(0));
  BOOST_TEST(c.accepting() == 1u);
  BOOST_TEST(c.connections() == 1u);
  BOOST_TEST(!c.connection_closed(slot)); // nobody waiting
  BOOST_TEST(c.connections() == 0u);
}

BOOST_AUTO_TEST_CASE(slots_are_counted_apart) {
  accept_counter c{3};
  BOOST_TEST(c.want_accept(0));
  BOOST_TEST(c.want_accept(1));
  BOOST_TEST(c.accepting() == 2u);
  c.connection_made(); // slot 1's accept became a connection
  BOOST_TEST(c.want_accept(1));
  BOOST_TEST(c.accepting() == 2u);
  BOOST_TEST(c.connections() == 1u);
  BOOST_TEST(c.want_accept(0)); // slot 0's was given up: given back
  BOOST_TEST(c.accepting() == 2u);
  BOOST_TEST(!c.want_accept(2)); // 2 accepting + 1 connection: full
}

BOOST_AUTO_TEST_SUITE_END()
