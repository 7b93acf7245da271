// The test helpers themselves: child processes and the private redis-server.
#include <boost/test/unit_test.hpp>

#include <csignal>
#include <filesystem>
#include <sys/wait.h>

#include "support/process.hpp"
#include "support/redis_server.hpp"

using namespace resized::test;
using namespace std::chrono_literals;

namespace {

/// A temporary directory removed at the end of the test.
struct temp_dir {
  std::string path = make_temp_dir("support");
  ~temp_dir() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
};

} // namespace

BOOST_AUTO_TEST_SUITE(support)

BOOST_AUTO_TEST_CASE(child_exit_status_and_log) {
  temp_dir tmp;
  auto& dir = tmp.path;
  child_process child{{"/bin/sh", "-c", "echo out; echo err >&2; exit 3"},
                      dir + "/child.log"};
  BOOST_TEST(wait_until([&] { return !child.running(); }, 10s));
  BOOST_TEST(child.log() == "out\nerr\n");
  BOOST_TEST(child.stop() == -1); // already reaped
}

BOOST_AUTO_TEST_CASE(child_gets_extra_env) {
  temp_dir tmp;
  auto& dir = tmp.path;
  child_process child{{"/bin/sh", "-c", "echo \"$RESIZED_SUPPORT_X\""},
                      dir + "/child.log",
                      {"RESIZED_SUPPORT_X=hello"}};
  BOOST_TEST(wait_until([&] { return !child.running(); }, 10s));
  BOOST_TEST(child.log() == "hello\n");
}

BOOST_AUTO_TEST_CASE(stop_terminates_then_kills) {
  temp_dir tmp;
  auto& dir = tmp.path;
  child_process polite{{"sleep", "30"}, dir + "/a.log"};
  BOOST_TEST(polite.running());
  int status = polite.stop(SIGTERM, 5s);
  BOOST_TEST(WIFSIGNALED(status));
  BOOST_TEST(WTERMSIG(status) == SIGTERM);
  BOOST_TEST(!polite.running());
  // Ignores SIGTERM: killed after the grace period.
  child_process stubborn{{"/bin/sh", "-c",
                          "trap '' TERM; echo ready; "
                          "while :; do sleep 0.05; done"},
                         dir + "/b.log"};
  BOOST_TEST(wait_until([&] { return stubborn.log() == "ready\n"; }, 10s));
  status = stubborn.stop(SIGTERM, 200ms);
  BOOST_TEST(WIFSIGNALED(status));
  BOOST_TEST(WTERMSIG(status) == SIGKILL);
}

BOOST_AUTO_TEST_CASE(move_transfers_ownership) {
  temp_dir tmp;
  auto& dir = tmp.path;
  child_process a{{"sleep", "30"}, dir + "/a.log"};
  auto pid = a.pid();
  child_process b{std::move(a)};
  BOOST_TEST(a.pid() == -1);
  BOOST_TEST(!a.running());
  BOOST_TEST(b.pid() == pid);
  BOOST_TEST(b.running());
  b.kill9();
  BOOST_TEST(!b.running());
}

BOOST_AUTO_TEST_CASE(free_port_is_nonzero) {
  BOOST_TEST(free_port() != 0);
}

BOOST_AUTO_TEST_CASE(redis_server_answers_and_restarts) {
  redis_server redis;
  BOOST_TEST(redis.command("PING") == "+PONG\r\n");
  BOOST_TEST(redis.command("SET support:k \"a b\"") == "+OK\r\n");
  BOOST_TEST(redis.command("GET support:k") == "$3\r\na b\r\n");
  BOOST_TEST(redis.command("GET support:missing") == "$-1\r\n");
  BOOST_TEST(redis.command("INCR support:n") == ":1\r\n");
  BOOST_TEST(redis.command("RPUSH support:l x y") == ":2\r\n");
  BOOST_TEST(redis.command("LRANGE support:l 0 -1") ==
             "*2\r\n$1\r\nx\r\n$1\r\ny\r\n");
  BOOST_TEST(redis.command("NOSUCHCOMMAND").rfind("-ERR", 0) == 0);
  redis.stop();
  BOOST_CHECK_THROW(redis.command("PING"), std::runtime_error);
  redis.start();
  BOOST_TEST(redis.command("PING") == "+PONG\r\n");
}

BOOST_AUTO_TEST_SUITE_END()
