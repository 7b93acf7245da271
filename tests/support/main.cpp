// Boost.Test's entry point (main), shared by every suite executable: each
// *_test.cpp only declares BOOST_AUTO_TEST_SUITEs and links this.
#define BOOST_TEST_MODULE resized
#include <boost/test/unit_test.hpp>
