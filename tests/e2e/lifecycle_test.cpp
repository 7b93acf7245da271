// The process around the API: start-up validation of every config value
// (a bad value stops resized with a message naming the key), a clean exit on
// SIGTERM, accepted work finished after a crash, a node past its shutdown
// grace that exits 3 without waiting for libvips, the lease on the node
// name (a crash-restart waits for it, a clean exit releases it, a node that
// loses it exits 4).
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include "support/fixtures.hpp"
#include "support/loopback.hpp"
#include "support/redis_server.hpp"

using namespace resized::test;
using namespace std::chrono_literals;

namespace {

struct lifecycle_tag {
  // No adoption (cluster.adopt-ms=0): the crash tests restart a node under
  // its name on this Redis and check that the restart itself recovers its
  // tasks; this suite's node would otherwise adopt them while the restart
  // waits out the dead process's lease (cluster_test covers adoption).
  static std::vector<std::string> args() { return {"--cluster.adopt-ms=0"}; }
  static std::string name() { return "lifecycle"; }
};

using env = suite_env<lifecycle_tag>;

std::vector<std::string> base_argv(uint16_t redis_port) {
  auto source_dir = env_or("RESIZED_SOURCE_DIR", ".");
  return {env_or("RESIZED_BIN", "resized"),
          "--config-file=" + source_dir + "/config/development.ini",
          "--http.port=" + std::to_string(free_port()),
          "--redis.port=" + std::to_string(redis_port)};
}

// Waits (up to 90 s) for each of `tokens` to end, and checks it succeeded.
// The tokens of `tokens` whose record in `redis` is not SUCCESS (yet).
std::vector<std::string>
not_succeeded_in(redis_server& redis, const std::vector<std::string>& tokens) {
  std::vector<std::string> open;
  for (const auto& token : tokens)
    if (redis.command("HGET resized:task:" + token + " status")
            .find("SUCCESS") == std::string::npos)
      open.push_back(token);
  return open;
}

void expect_all_succeed(const resized_server& srv,
                        const std::vector<std::string>& tokens) {
  auto finals = wait_all_final(srv, tokens, std::chrono::seconds{90});
  for (const auto& token : tokens) {
    auto& st = finals[token];
    BOOST_TEST_CONTEXT("token " << token << " " << st.http_status << " "
                                << st.error << " " << st.body) {
      BOOST_TEST(st.status == "SUCCESS");
    }
  }
}

// Starts a node on `redis_port`, runs `before` (stops that Redis, say), has
// one submission refused for the store (503), stops the node with SIGTERM
// and hands its log to `check`.
void check_refused_then_stop(
    uint16_t redis_port, const std::function<void()>& before,
    const std::function<void(const std::string&)>& check) {
  resized_server srv(redis_port, {}, "refused-stop");
  before();
  check_error(submit_raw(srv, small_photo_bytes(), "image/jpeg"), 503,
              "store_unavailable");
  int status = srv.process().stop(SIGTERM, std::chrono::seconds{20});
  auto log_text = srv.process().log();
  BOOST_TEST_CONTEXT("waitpid status " << status << ", log:\n" << log_text) {
    BOOST_TEST(WIFEXITED(status));
    BOOST_TEST(WEXITSTATUS(status) == 0);
    // It got to its end: what `check` finds missing was not cut short.
    BOOST_TEST(lines_with(log_text, {"level=info", "msg=stopped"}) == 1u);
    check(log_text);
  }
}

} // namespace

BOOST_AUTO_TEST_SUITE(lifecycle, *boost::unit_test::fixture<env>())

BOOST_AUTO_TEST_CASE(invalid_config_values_stop_the_start) {
  struct bad {
    const char* arg;
    const char* key;
  };
  for (auto [arg, key] : {
           bad{"--resize.pool-size=0", "resize.pool-size"},
           bad{"--http.port=abc", "http.port"},
           bad{"--defaults.quality=101", "defaults.quality"},
           bad{"--defaults.quality=0", "defaults.quality"},
           bad{"--defaults.width=100000", "defaults.width"},
           bad{"--limits.max-body-bytes=10", "limits.max-body-bytes"},
           bad{"--redis.port=0", "redis.port"},
           bad{"--defaults.mode=sideways", "defaults.mode"},
           bad{"--defaults.format=bmp", "defaults.format"},
           bad{"--cluster.role=bogus", "cluster.role"},
           // CAF alone starts, says "resized started", then never answers.
           bad{"--scheduler.max-threads=0", "scheduler.max-threads"},
           bad{"--resize.journal=journal", "resize.journal"},
           // A valid setting naming a file that cannot be made.
           bad{"--resize.journal=/nonexistent-dir/resize.journal",
               "/nonexistent-dir/resize.journal: cannot open"},
       }) {
    BOOST_TEST_CONTEXT("argument " << arg) {
      auto argv = base_argv(env::get().redis.port());
      argv.push_back(arg);
      std::string output;
      int rc = run_to_exit(argv, output, std::chrono::seconds{15});
      BOOST_TEST_CONTEXT("exit " << rc << ", output:\n" << output) {
        BOOST_TEST(rc != 0);
        BOOST_TEST(rc != -1);
        BOOST_TEST(rc < 128); // an orderly exit, not a crash or our SIGKILL
        BOOST_TEST(output.find(key) != std::string::npos);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(dump_config_validates_like_a_start) {
  // --dump-config with a value a start refuses: the start's messages and
  // exit 2, and no dump (it would show values that are never in effect).
  struct bad {
    const char* arg;
    const char* message;
  };
  for (auto [arg, message] : {
           bad{"--resize.pool-size=0",
               "resize.pool-size = 0 is out of range [1, 1024]"},
           bad{"--limits.max-body-bytes=-5",
               "limits.max-body-bytes = -5 is out of range"},
           bad{"--queue.capacity=999999999999",
               "queue.capacity = 999999999999 is out of range"},
           bad{"--defaults.mode=sideways", "defaults.mode"},
           bad{"--queue.max-bytes=1048576",
               "queue.max-bytes (1048576) is below limits.max-body-bytes "
               "(67108864)"},
       }) {
    BOOST_TEST_CONTEXT("argument " << arg) {
      auto argv = base_argv(env::get().redis.port());
      argv.push_back("--dump-config");
      argv.push_back(arg);
      std::string output;
      int rc = run_to_exit(argv, output, std::chrono::seconds{15});
      BOOST_TEST_CONTEXT("exit " << rc << ", output:\n" << output) {
        BOOST_TEST(rc == 2);
        BOOST_TEST(output.find(std::string{"resized: "} + message) !=
                   std::string::npos);
        BOOST_TEST(output.find("resized: invalid configuration, not "
                               "starting") != std::string::npos);
        BOOST_TEST(output.find("[http]") == std::string::npos); // no dump
      }
    }
  }
  // Valid: the dump with the values in effect, exit 0, nothing started.
  auto argv = base_argv(env::get().redis.port());
  argv.push_back("--dump-config");
  argv.push_back("--resize.pool-size=3");
  std::string output;
  int rc = run_to_exit(argv, output, std::chrono::seconds{15});
  BOOST_TEST_CONTEXT("exit " << rc << ", output:\n" << output) {
    BOOST_TEST(rc == 0);
    BOOST_TEST(output.find("\n[http]\n") != std::string::npos);
    BOOST_TEST(output.find("\npool-size=3\n") != std::string::npos);
    BOOST_TEST(output.find("resized started") == std::string::npos);
  }
  // The dump is an INI file the binary reads back as the same values.
  auto dir = make_temp_dir("dump");
  auto saved = dir + "/dumped.ini";
  std::ofstream{saved} << output;
  std::string again;
  rc = run_to_exit({env_or("RESIZED_BIN", "resized"), "--config-file=" + saved,
                    "--dump-config"},
                   again, std::chrono::seconds{15});
  BOOST_TEST_CONTEXT("exit " << rc << ", output:\n" << again) {
    BOOST_TEST(rc == 0);
    BOOST_TEST(again.find("\npool-size=3\n") != std::string::npos);
  }
  std::filesystem::remove_all(dir);
  // --help lists every option, and says where the dump goes.
  std::string help;
  rc = run_to_exit({env_or("RESIZED_BIN", "resized"), "--help"}, help,
                   std::chrono::seconds{15});
  BOOST_TEST(rc == 0);
  BOOST_TEST(help.find("--resize.pool-size") != std::string::npos, help);
  BOOST_TEST(help.find("(an INI file) to stdout") != std::string::npos, help);
  BOOST_TEST(help.find("--version") != std::string::npos, help);
  BOOST_TEST(help.find("STDERR") == std::string::npos, help); // it is stdout
  // --version answers before the configuration is read: also where it
  // would not load.
  std::string version;
  rc = run_to_exit({env_or("RESIZED_BIN", "resized"),
                    "--config-file=/nonexistent/resized.ini", "--version"},
                   version, std::chrono::seconds{15});
  BOOST_TEST(rc == 0, version);
  BOOST_TEST(version.rfind("resized ", 0) == 0u, version);
  BOOST_TEST(version.find("libvips ") != std::string::npos, version);
  // Every log level the validation takes, off included (was left out).
  BOOST_TEST(help.find("trace, debug, info, warn, error or off (default "
                       "info)") != std::string::npos,
             help);
}

BOOST_AUTO_TEST_CASE(queue_smaller_than_one_upload_stops_the_start) {
  // Such a node answered every upload near limits.max-body-bytes with 503
  // queue_full and Retry-After, forever, even with an empty queue.
  const std::string message =
      "resized: queue.max-bytes (1048576) is below limits.max-body-bytes "
      "(67108864): an upload of the allowed size could never be queued (503 "
      "queue_full even with an empty queue); lower limits.max-body-bytes "
      "too\n";
  // Only stderr is kept: the refusal must be there.
  std::vector<std::string> argv{"/bin/sh", "-c",
                                "exec \"$0\" \"$@\" 2>&1 >/dev/null"};
  for (auto& arg : base_argv(env::get().redis.port()))
    argv.push_back(arg);
  argv.push_back("--queue.max-bytes=1048576");
  std::string errors;
  int rc = run_to_exit(argv, errors, std::chrono::seconds{15});
  BOOST_TEST_CONTEXT("exit " << rc << ", stderr:\n" << errors) {
    BOOST_TEST(rc == 2);
    BOOST_TEST(errors ==
               message + "resized: invalid configuration, not starting\n");
  }
  // Lowered together, the two agree: the node starts and queues an upload
  // (the photo is below 1 MiB).
  resized_server srv(
      env::get().redis.port(),
      {"--queue.max-bytes=1048576", "--limits.max-body-bytes=1048576"},
      "small_queue");
  auto token =
      accepted_token(submit_raw(srv, corpus_photo(small_photo), "image/jpeg"));
  BOOST_TEST(!token.empty());
}

BOOST_AUTO_TEST_CASE(unreadable_config_file_stops_the_start) {
  std::vector<std::string> argv{env_or("RESIZED_BIN", "resized"),
                                "--config-file=/nonexistent/resized.ini",
                                "--http.port=" + std::to_string(free_port())};
  std::string output;
  int rc = run_to_exit(argv, output, std::chrono::seconds{15});
  BOOST_TEST_CONTEXT("exit " << rc << ", output:\n" << output) {
    BOOST_TEST(rc != 0);
    BOOST_TEST(rc < 128);
    BOOST_TEST(output.find("/nonexistent/resized.ini") != std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(invalid_ini_file_stops_the_start) {
  // CAF 0.17 alone starts with the defaults in place of these entries.
  auto path = make_temp_dir("lifecycle_ini") + "/bad.ini";
  struct bad {
    const char* text;
    const char* message;
  };
  for (auto [text, message] : {
           bad{"[resize]\npool-size=\"two\"\n",
               ":2: resize.pool-size = \"two\": expected an integer"},
           bad{"[resize]\npoolsize=2\n", ":2: unknown key resize.poolsize"},
           bad{"[auth]\nprotect-metrics=\"yes\"\n",
               ":2: auth.protect-metrics = \"yes\""},
           bad{"[http]\naddress=127.0.0.1\n", ":2:14: http.address"},
       }) {
    BOOST_TEST_CONTEXT("INI file:\n" << text) {
      {
        std::ofstream out{path, std::ios::trunc};
        out << text;
      }
      auto argv = base_argv(env::get().redis.port());
      argv[1] = "--config-file=" + path; // instead of development.ini
      std::string output;
      int rc = run_to_exit(argv, output, std::chrono::seconds{15});
      BOOST_TEST_CONTEXT("exit " << rc << ", output:\n" << output) {
        BOOST_TEST(rc == 2);
        BOOST_TEST(output.find(path + message) != std::string::npos);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(sigterm_exits_cleanly) {
  resized_server srv(env::get().redis.port(), {}, "sigterm");
  // Work in flight must not block the shutdown.
  auto token =
      accepted_token(submit_raw(srv, corpus_photo(small_photo), "image/jpeg"));
  BOOST_TEST(!token.empty());
  int status = srv.process().stop(SIGTERM, std::chrono::seconds{10});
  BOOST_TEST_CONTEXT("waitpid status " << status << ", log:\n"
                                       << srv.process().log()) {
    BOOST_TEST(WIFEXITED(status));
    BOOST_TEST(WEXITSTATUS(status) == 0);
  }
}

// SIGTERM while clients hold connections open: an idle keep-alive one and
// one waiting for "100 Continue" before sending its body. The node still
// exits 0. scripts/sanitize runs this case against resized built with
// AddressSanitizer: freeing RESTinio's server before the io_context
// dropped those connections was a use after free at every such shutdown.
BOOST_AUTO_TEST_CASE(sigterm_with_open_connections_exits_cleanly) {
  resized_server srv(env::get().redis.port(), {}, "open-connections");
  int idle = connect_loopback(srv.port());
  int waiting = connect_loopback(srv.port());
  BOOST_TEST_REQUIRE(idle >= 0);
  BOOST_TEST_REQUIRE(waiting >= 0);
  std::string error;
  BOOST_TEST_REQUIRE(
      send_all(idle, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n", error), error);
  char buf[512];
  BOOST_TEST(::recv(idle, buf, sizeof(buf), 0) > 0); // answered, kept open
  BOOST_TEST_REQUIRE(send_all(waiting,
                              "POST /api/v1/resize HTTP/1.1\r\nHost: t\r\n"
                              "Content-Type: image/jpeg\r\n"
                              "Content-Length: 100\r\n"
                              "Expect: 100-continue\r\n\r\n",
                              error),
                     error);
  BOOST_TEST(::recv(waiting, buf, sizeof(buf), 0) > 0); // "100 Continue"
  int status = srv.process().stop(SIGTERM, std::chrono::seconds{10});
  ::close(idle);
  ::close(waiting);
  BOOST_TEST_CONTEXT("waitpid status " << status << ", log:\n"
                                       << srv.process().log()) {
    BOOST_TEST(WIFEXITED(status));
    BOOST_TEST(WEXITSTATUS(status) == 0);
  }
}

// From SIGTERM to exit: the node answers what it has, refuses new work, and
// /readyz says so at once, so a load balancer stops sending it work.
BOOST_AUTO_TEST_CASE(a_draining_node_is_not_ready) {
  resized_server srv(env::get().redis.port(),
                     {"--resize.pool-size=1", "--shutdown.grace=60"},
                     "draining");
  BOOST_TEST_REQUIRE(http_get(srv.url("/readyz")).status == 200);
  // A 16 MP photo enlarged to a 4000 px PNG keeps the drain going; a
  // second one (other options: not a twin) waits in the queue behind it.
  auto token =
      accepted_token(submit_raw(srv, corpus_photo("gnome__pixels-l.webp"),
                                "image/webp", "?width=4000&format=png"));
  BOOST_REQUIRE(!token.empty());
  auto queued =
      accepted_token(submit_raw(srv, corpus_photo("gnome__pixels-l.webp"),
                                "image/webp", "?width=3999&format=png"));
  BOOST_REQUIRE(!queued.empty());
  BOOST_REQUIRE(::kill(srv.process().pid(), SIGTERM) == 0);
  http_response ready;
  BOOST_TEST(wait_until(
      [&] {
        ready = http_get(srv.url("/readyz"));
        return ready.status == 503;
      },
      std::chrono::seconds{10}));
  auto why = check_error(ready, 503, "shutting_down");
  BOOST_TEST(why.find("(1 task still running, 1 queued)") != std::string::npos,
             why);
  check_error(submit_raw(srv, small_photo_bytes(), "image/jpeg"), 503,
              "shutting_down");
  // Its task is still answered, and finished before the exit.
  BOOST_TEST(http_get(srv.url("/api/v1/resize/" + token)).status == 200);
  int status = srv.process().stop(0, std::chrono::seconds{60});
  auto log_text = srv.process().log();
  BOOST_TEST_CONTEXT("waitpid status " << status << ", log:\n" << log_text) {
    BOOST_TEST(WIFEXITED(status));
    BOOST_TEST(WEXITSTATUS(status) == 0);
    // The queued task was not started: the last lines say it waits in
    // Redis for the next start.
    BOOST_TEST(lines_with(log_text, {"draining: no new tasks", "queued=1"}) ==
               1u);
    BOOST_TEST(lines_with(log_text, {"level=info", "next start", "queued=1"}) ==
               1u);
  }
  srv.start();
  BOOST_TEST(finish(srv, token).info.width == 4000);
  BOOST_TEST(finish(srv, queued).info.width == 3999);
}

// libvips cannot be interrupted: a node whose resize outlasts its grace (1 s
// here; the AVIF task takes seconds more), or that gets a second signal,
// exits then with status 3, not when the resize ends, naming the abandoned
// token; a long poll held on the task is answered before it goes. The
// task's record stays in Redis: the next start on the same Redis (same
// node name) resumes it as its second attempt and finishes it.
BOOST_AUTO_TEST_CASE(a_node_past_its_grace_exits_without_waiting_for_libvips) {
  using namespace std::chrono_literals;
  int width = 4000;
  for (bool second_signal : {false, true}) {
    BOOST_TEST_CONTEXT((second_signal ? "second signal" : "grace over")) {
      resized_server srv(
          env::get().redis.port(),
          {"--resize.pool-size=1", "--log.level=debug",
           "--resize.task-timeout-ms=300000",
           "--limits.max-avif-pixels=16777216",
           second_signal ? "--shutdown.grace=60" : "--shutdown.grace=1"},
          second_signal ? "abandon-twice" : "abandon-grace");
      // The largest box of a 16 MP photo as AVIF: about 11 s of libvips on
      // one 2.6 GHz core.
      ++width; // no twin of the other round's task
      auto token = accepted_token(
          submit_raw(srv, corpus_photo("gnome__pixels-l.webp"), "image/webp",
                     "?width=" + std::to_string(width) +
                         "&height=4096&mode=fill&format=avif"));
      BOOST_TEST_REQUIRE(!token.empty());
      BOOST_TEST_REQUIRE(
          wait_until(
              [&] {
                return lines_with(srv.process().log(),
                                  {"resize started", "token=" + token}) == 1;
              },
              20s),
          srv.process().log());
      // A long poll held on the task when the signal comes.
      auto poll = std::async(std::launch::async, [&] {
        return http_request("GET",
                            srv.url("/api/v1/resize/" + token + "?wait=20"), {},
                            {}, 30s);
      });
      BOOST_TEST_REQUIRE(wait_until(
          [&] { return metric(srv, "resized_long_polls") == 1; }, 10s));
      auto t0 = std::chrono::steady_clock::now();
      srv.process().signal(SIGTERM);
      if (second_signal) {
        // Once it waits for its task, a second signal ends the wait.
        BOOST_TEST_REQUIRE(
            !wait_log_line(srv.process(), "draining: no new tasks", 10s)
                 .empty());
        t0 = std::chrono::steady_clock::now();
        srv.process().signal(SIGTERM);
      }
      int status = -1;
      // The grace (or nothing) + a margin for a loaded machine; the resize
      // itself needs several seconds more.
      bool exited = srv.process().wait_exit(3s, status);
      auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::steady_clock::now() - t0);
      auto log_text = srv.process().log();
      BOOST_TEST_REQUIRE(exited, "still running 3 s after the signal:\n"
                                     << log_text);
      BOOST_TEST_CONTEXT("waitpid status " << status << ", " << took.count()
                                           << " ms, log:\n"
                                           << log_text) {
        if (!second_signal)
          BOOST_TEST(took.count() >= 1000); // it did give the task its grace
        BOOST_TEST(WIFEXITED(status));
        BOOST_TEST(WEXITSTATUS(status) == 3);
        if (second_signal)
          BOOST_TEST(lines_with(log_text, {"second signal"}) == 1u);
        BOOST_TEST(lines_with(log_text,
                              {second_signal ? "stopping with unfinished tasks"
                                             : "grace period over",
                               "in_flight=1"}) == 1u);
        BOOST_TEST(
            lines_with(log_text, {"level=error", "tasks abandoned", "tasks=1",
                                  "tokens=" + token, "exit_code=3"}) == 1u);
        BOOST_TEST(lines_with(log_text, {"task finished"}) == 0u);
        // Released after the last writes: the restart below starts at once.
        BOOST_TEST(lines_with(log_text, {"node name lease released"}) == 1u);
      }
      auto held = poll.get();
      BOOST_TEST(held.status == 200, held.error);
      // Answered while shutting down: the connection ends with it.
      BOOST_TEST(held.header("connection") == "close");
      BOOST_TEST(json_string(parse_json(held.body), "status") == "IN_PROGRESS",
                 held.body);
      // Its record stays as it was in Redis, for the next start.
      BOOST_TEST(env::get()
                     .redis.command("HGET resized:task:" + token + " status")
                     .find("IN_PROGRESS") != std::string::npos);

      srv.start(); // same port: same node name, same pending set
      auto done = finish(srv, token, 240s);
      BOOST_TEST(done.info.format == "avif");
      BOOST_TEST(done.info.width == width);
      log_text = srv.process().log();
      BOOST_TEST_CONTEXT("log:\n" << log_text) {
        BOOST_TEST(lines_with(log_text, {"recovered tasks accepted before the "
                                         "restart",
                                         "resumed=1"}) == 1u);
        // The attempt given up counts, as for a lost node.
        BOOST_TEST(lines_with(log_text, {"task started", "token=" + token,
                                         "attempt=1"}) == 1u);
        BOOST_TEST(lines_with(log_text, {"task finished", "token=" + token}) ==
                   1u);
      }
    }
  }
}

// At a shutdown with Redis away, the undo of a refused submission (its
// client got 503; Redis may still have stored it) is not one of the
// unfinished tasks' writes: the final lines count and word them apart.
// Redis never reachable (nothing listens on its port): a refused
// submission never reached it, so there is nothing to undo, and neither
// the undo nor its failure at shutdown is logged (both were, for a write
// that could not have been made).
BOOST_AUTO_TEST_CASE(a_submission_that_never_reached_redis_is_not_undone) {
  check_refused_then_stop(
      free_port(), [] {},
      [](const std::string& log_text) {
        BOOST_TEST(lines_with(log_text, {"refused submissions"}) == 0u);
        BOOST_TEST(lines_with(log_text, {"forget_accepted"}) == 0u);
      });
}

// Redis hangs (SIGSTOP) rather than dies: the submission's write is sent
// and never answered, so Redis may have stored it. (Killed, Redis made
// the outcome a race: a node that had already seen the connection drop
// never sent the write, and rightly kept nothing to undo.)
BOOST_AUTO_TEST_CASE(shutdown_with_redis_away_words_undos_apart) {
  redis_server redis;
  check_refused_then_stop(
      redis.port(), [&] { redis.pause(); },
      [](const std::string& log_text) {
        BOOST_TEST(lines_with(log_text, {"level=warn", "refused submissions",
                                         "left=1"}) == 1u);
        BOOST_TEST(lines_with(log_text, {"redis writes still failing"}) == 0u);
      });
}

// A side left out follows the aspect ratio: the accepted line leaves it out
// too, rather than log it as 0 (and JSON lines keep height a number). The
// line names the input (bytes, format, pixel size from its header) apart
// from the output asked for.
BOOST_AUTO_TEST_CASE(an_auto_side_is_not_logged_as_zero) {
  resized_server srv(env::get().redis.port(), {}, "auto-side");
  auto token = accepted_token(submit_raw(srv, small_photo_bytes(), "image/jpeg",
                                         "?width=120&mode=fit&quality=77"));
  BOOST_TEST_REQUIRE(!token.empty());
  BOOST_TEST(wait_until(
      [&] {
        return lines_with(srv.process().log(),
                          {"msg=\"task accepted\"", "token=" + token}) == 1;
      },
      std::chrono::seconds{10}));
  auto log_text = srv.process().log();
  BOOST_TEST_CONTEXT("log:\n" << log_text) {
    BOOST_TEST(lines_with(log_text, {"msg=\"task accepted\"", "token=" + token,
                                     " width=120 "}) == 1u);
    BOOST_TEST(lines_with(log_text, {"msg=\"task accepted\"", "token=" + token,
                                     " height="}) == 0u);
    image_info input;
    BOOST_TEST_REQUIRE(probe_image(small_photo_bytes(), input));
    BOOST_TEST(
        lines_with(log_text,
                   {"msg=\"task accepted\"", "token=" + token,
                    fmt::format(" input_bytes={} input_format=jpeg "
                                "input_width={} input_height={} format=jpeg ",
                                small_photo_bytes().size(), input.width,
                                input.height)}) == 1u);
  }
}

// A task whose node dies under it every time (an input that crashes the
// process would do this): each restart counts as a lost attempt, and after
// resize.max-attempts the task ends FAILURE worker_lost instead of taking
// the node down at every start for ever. Each restart runs it as a new
// attempt (a new started_at), not the record the dead node left.
BOOST_AUTO_TEST_CASE(a_task_that_keeps_killing_its_node_ends) {
  resized_server srv(env::get().redis.port(),
                     {"--resize.pool-size=1", "--resize.max-attempts=2"},
                     "poison");
  auto token = accepted_token(
      submit_raw(srv, corpus_photo("gnome__pixels-l.webp"), "image/webp",
                 "?width=4000&format=png&quality=61"));
  BOOST_REQUIRE(!token.empty());
  // (status, started_at) as a plain GET sees them now.
  auto state = [&] {
    auto res = http_get(srv.url("/api/v1/resize/" + token));
    if (res.status != 200)
      return std::make_pair(std::string{}, std::string{});
    auto doc = parse_json(res.body);
    return std::make_pair(json_string(doc, "status"),
                          doc["started_at"].IsString()
                              ? std::string{doc["started_at"].GetString()}
                              : std::string{});
  };
  std::string started_before;
  for (int crash = 1; crash <= 2; ++crash) {
    BOOST_TEST_CONTEXT("crash " << crash) {
      // Running again: a new start, not the record the dead node left.
      BOOST_TEST_REQUIRE(wait_until(
          [&] {
            auto [status, started] = state();
            if (status != "IN_PROGRESS" || started == started_before)
              return false;
            started_before = started;
            return true;
          },
          std::chrono::seconds{20}));
      srv.kill9();
      srv.start();
    }
  }
  auto final_state = wait_final(srv, token, std::chrono::seconds{20});
  BOOST_TEST(final_state.status == "FAILURE");
  BOOST_TEST(json_string(parse_json(final_state.body)["error"], "code") ==
             "worker_lost");
}

// An input that crashes the process the moment its resize starts, before
// Redis hears that it started: Redis is held still (SIGSTOP) from before
// the start, so the IN_PROGRESS record, which counts the attempt, cannot
// land, and the task's record still says PENDING with no attempt when the
// process dies. The resize journal noted the start first: the restart
// counts that attempt and, with resize.max-attempts=1, ends the task
// FAILURE worker_lost instead of running it, and crashing, again (without
// the journal, every restart did). The crash is real: an LD_PRELOAD'ed
// WebPDecode aborts on that input (tests/tools/decode_fault_shim.cpp).
BOOST_AUTO_TEST_CASE(a_crash_before_redis_hears_of_the_start_still_counts) {
  redis_server redis; // this test's own: it is paused below
  auto held = corpus_photo("gnome__pixels-l.webp");
  auto crashing = corpus_photo("gnome__wood-l.webp");
  BOOST_TEST_REQUIRE(held.size() != crashing.size());
  auto journal = make_temp_dir("journal") + "/resize.journal";
  resized_server srv(
      redis.port(),
      {"--resize.pool-size=1", "--resize.max-attempts=1",
       "--resize.journal=" + journal},
      "journal",
      {"LD_PRELOAD=" + env_or("RESIZED_DECODE_FAULT_SHIM", ""),
       fmt::format("RESIZED_TEST_WEBP_CRASH_SIZE={}", crashing.size()),
       // The one worker stays busy with the first task for 3 s: the second
       // starts after Redis is paused.
       fmt::format("RESIZED_TEST_WEBP_HOLD={}:3000", held.size())});
  auto first = accepted_token(submit_raw(srv, held, "image/webp"));
  auto token = accepted_token(submit_raw(srv, crashing, "image/webp"));
  BOOST_TEST_REQUIRE(!first.empty());
  BOOST_TEST_REQUIRE(!token.empty());
  redis.pause();
  int status = 0;
  BOOST_TEST_REQUIRE(srv.process().wait_exit(std::chrono::seconds{30}, status));
  BOOST_TEST(WIFSIGNALED(status));
  BOOST_TEST((WIFSIGNALED(status) ? WTERMSIG(status) : 0) == SIGABRT);
  redis.resume();
  auto crash_log = srv.process().log();
  BOOST_TEST_CONTEXT("log:\n" << crash_log) {
    BOOST_TEST(
        lines_with(crash_log, {"resized started", "journal=" + journal}) == 1u);
    // It did start (the journal says so), and Redis never heard of it.
    BOOST_TEST(redis.command("HMGET resized:task:" + token + " status attempts")
                   .find("PENDING") != std::string::npos);
    BOOST_TEST(read_file(journal).find("1 " + token) != std::string::npos);
  }
  auto before = crash_log.size();
  srv.start();
  auto final_state = wait_final(srv, token, std::chrono::seconds{30});
  BOOST_TEST(final_state.status == "FAILURE", final_state.body);
  auto doc = parse_json(final_state.body);
  BOOST_TEST(json_string(doc["error"], "code") == "worker_lost");
  BOOST_TEST(
      json_string(doc["error"], "message").find("lost the worker 1 times") !=
      std::string::npos);
  BOOST_TEST(srv.process().running()); // not run again
  auto restart_log = srv.process().log().substr(before);
  BOOST_TEST_CONTEXT("log after the restart:\n" << restart_log) {
    BOOST_TEST(lines_with(restart_log,
                          {"level=warn", "resizes a crash interrupted here",
                           "tasks=1"}) == 1u);
    BOOST_TEST(
        lines_with(restart_log,
                   {"attempt counted from the resize journal", "token=" + token,
                    "attempts_in_redis=0", "attempts=1"}) == 1u);
    BOOST_TEST(lines_with(restart_log,
                          {"msg=\"task started\"", "token=" + token}) == 0u);
  }
  // Counted into the record: the journal holds nothing of it any more.
  BOOST_TEST(read_file(journal).find(token) == std::string::npos);
}

BOOST_AUTO_TEST_CASE(accepted_work_survives_a_crash) {
  // One worker and slow tasks, so most are still queued when resized is
  // killed (no shutdown code runs); the restarted process finds them in
  // Redis and finishes every one.
  resized_server srv(env::get().redis.port(), {"--resize.pool-size=1"},
                     "crash");
  auto big = corpus_photo("plasma__Volna_5120x2880.jpg");
  std::vector<std::string> tokens;
  for (int i = 0; i < 4; ++i) {
    auto token = accepted_token(
        submit_raw(srv, big, "image/jpeg", "?width=4000&height=4000&mode=fit"));
    BOOST_TEST_REQUIRE(!token.empty());
    tokens.push_back(token);
  }
  auto before_crash = srv.process().log().size();
  srv.kill9();
  srv.start();
  // The dead process's lease on the node name (1 s here, test support's
  // short lease) was never released: the new one waited for it to run out,
  // then took it, then recovered the tasks.
  wait_until(
      [&] {
        return srv.process().log().find("recovered tasks accepted",
                                        before_crash) != std::string::npos;
      },
      10s);
  auto restart_log = srv.process().log().substr(before_crash);
  BOOST_TEST_CONTEXT("log after the restart:\n" << restart_log) {
    BOOST_TEST(lines_with(restart_log,
                          {"level=warn", "node name held by another instance: "
                                         "waiting for its lease"}) == 1u);
    auto taken = restart_log.find("node name lease taken");
    auto recovered =
        restart_log.find("recovered tasks accepted before the restart");
    BOOST_TEST(taken != std::string::npos);
    BOOST_TEST(recovered != std::string::npos);
    BOOST_TEST(taken < recovered);
    BOOST_TEST(lines_with(restart_log, {"level=error"}) == 0u);
  }
  expect_all_succeed(srv, tokens);
  auto out = finish(srv, tokens.back());
  BOOST_TEST(out.info.width == 4000);
  BOOST_TEST(out.info.height == 2250);
}

// A crash leaves a backlog in Redis, and the node comes back with a smaller
// queue.max-bytes than that backlog (its memory turned down after the
// crash): it reads the inputs back a few at a time as its queue has room,
// so its queued bytes stay within the new bound, and every task finishes.
BOOST_AUTO_TEST_CASE(a_backlog_above_the_queue_bound_is_read_as_room_frees) {
  std::vector<std::string> args{"--resize.pool-size=1",
                                "--cluster.node-name=backlog"};
  resized_server srv(env::get().redis.port(), args, "backlog");
  // The first (a 4000 px PNG) holds the one worker for seconds; the others,
  // thumbnails of the same 4.6 MB photo in distinct qualities (no two are
  // the same work), wait behind it: 27 MB in all.
  std::vector<std::string> tokens;
  auto photo = corpus_photo("plasma__Volna_5120x2880.jpg");
  tokens.push_back(accepted_token(
      submit_raw(srv, photo, "image/jpeg",
                 "?width=4000&height=4000&mode=fit&format=png")));
  for (int i = 0; i < 5; ++i)
    tokens.push_back(accepted_token(submit_raw(
        srv, photo, "image/jpeg", "?quality=" + std::to_string(70 + i))));
  for (const auto& token : tokens)
    BOOST_TEST_REQUIRE(!token.empty());
  auto before_crash = srv.process().log().size();
  srv.kill9();
  constexpr uint64_t bound = 6u << 20; // above the largest input alone
  args.push_back("--queue.max-bytes=" + std::to_string(bound));
  args.push_back("--limits.max-body-bytes=" + std::to_string(bound));
  srv.start(args);
  // (The process before the crash had nothing to recover: no such line.)
  auto recovered = wait_log_line(
      srv.process(), "recovered tasks accepted before the restart", 10s);
  auto field = [&](const std::string& key) {
    return std::atoi(log_value(recovered, key).c_str());
  };
  // Sampled until the node has nothing waiting or running.
  double most = 0;
  int samples = 0;
  bool idle = wait_until(
      [&] {
        auto page = http_get(srv.url("/metrics")).body;
        auto queued = metric_value(page, "resized_queued_bytes");
        most = std::max(most, queued);
        ++samples;
        return metric_value(page, "resized_queue_depth") == 0 &&
               metric_value(
                   page, "resized_workers{node=\"backlog\",state=\"busy\"}") ==
                   0;
      },
      60s);
  BOOST_TEST(idle);
  BOOST_TEST_MESSAGE("queued bytes at most " << most << " over " << samples
                                             << " samples");
  BOOST_TEST(most > 0);
  BOOST_TEST(most <= static_cast<double>(bound));
  auto restart_log = srv.process().log().substr(before_crash);
  BOOST_TEST_CONTEXT("log after the restart:\n" << restart_log) {
    // All of them, unless a busy machine let the first end before the
    // kill; at least two (9.2 MB, over the bound) waited in Redis.
    BOOST_TEST(field("resumed") >= 2);
    BOOST_TEST(field("waiting_in_redis") == field("resumed"));
    auto metrics = http_get(srv.url("/metrics")).body;
    BOOST_TEST(metric_value(metrics,
                            "resized_tasks_recovered_total{how=\"restart\"}") ==
                   field("resumed"),
               metrics);

    BOOST_TEST(lines_with(restart_log, {"level=error"}) == 0u);
  }
  expect_all_succeed(srv, tokens);
}

// Redis restarts empty (no persistence) while tasks are open on a node: its
// records, inputs and pending set are gone. At its next renewal the node
// finds its lease gone (not adopted) and writes its open tasks again, so a
// crash after that still leaves them to the restart, which finishes each;
// before, the queued ones were unknown for good and the running one stayed
// IN_PROGRESS for a day.
BOOST_AUTO_TEST_CASE(open_tasks_survive_redis_restarting_empty_then_a_crash) {
  redis_server redis;
  resized_server srv(redis.port(),
                     {"--resize.pool-size=1", "--cluster.node-name=restore"},
                     "restore");
  auto big = corpus_photo("plasma__Volna_5120x2880.jpg");
  // Different sizes: identical tasks would wait for the first one's result
  // (their input is not kept; see twins below).
  std::vector<std::string> tokens;
  for (int i = 0; i < 5; ++i) {
    auto token = accepted_token(
        submit_raw(srv, big, "image/jpeg",
                   fmt::format("?width={}&height=4000&mode=fit", 4000 - i)));
    BOOST_TEST_REQUIRE(!token.empty());
    tokens.push_back(token);
  }
  // Two twins of the last one: they wait for its result and hold no input
  // of their own; they are written again with its input.
  for (int i = 0; i < 2; ++i) {
    auto token = accepted_token(
        submit_raw(srv, big, "image/jpeg", "?width=3996&height=4000&mode=fit"));
    BOOST_TEST_REQUIRE(!token.empty());
    tokens.push_back(token);
  }
  // The node is paused while Redis restarts, so that no task ends in
  // between (its final record would be lost with the rest, and its token
  // unknown after the crash below): the open ones are those open now.
  srv.process().signal(SIGSTOP);
  auto open = not_succeeded_in(redis, tokens);
  BOOST_TEST_REQUIRE(open.size() >= 4u);
  auto before = srv.process().log().size();
  redis.stop();
  redis.start();
  srv.process().signal(SIGCONT);
  BOOST_TEST_REQUIRE(!wait_log_line(srv.process(),
                                    "lease on this node's name had run out",
                                    10000ms)
                          .empty());
  // Each task is final in Redis, or open there with its input and in the
  // node's pending set.
  auto in_redis = [&](const std::string& token) {
    auto status = redis.command("HGET resized:task:" + token + " status");
    if (status.find("SUCCESS") != std::string::npos)
      return true;
    return status.find("$-1") == std::string::npos &&
           redis.command("EXISTS resized:input:" + token) == ":1\r\n" &&
           redis.command("SISMEMBER resized:pending:restore " + token) ==
               ":1\r\n";
  };
  bool restored = wait_until(
      [&] { return std::all_of(open.begin(), open.end(), in_redis); }, 10s);
  BOOST_TEST_REQUIRE(restored, "log:\n" << srv.process().log().substr(before));
  // Some are still open (queued behind the one running): the crash comes
  // before they end.
  auto still_open = std::count_if(open.begin(), open.end(), [&](auto& token) {
    return redis.command("HGET resized:task:" + token + " status")
               .find("SUCCESS") == std::string::npos;
  });
  BOOST_TEST_REQUIRE(still_open >= 2);
  BOOST_TEST(lines_with(srv.process().log().substr(before),
                        {"level=warn",
                         "writing this node's open tasks to "
                         "redis again",
                         "node=restore"}) == 1u);
  srv.kill9();
  srv.start();
  expect_all_succeed(srv, open);
}

// A task that ends while Redis is away is shown IN_PROGRESS, on this node
// as in Redis, until Redis takes its final record: a node that stops
// before Redis is back runs the task again at its next start, so a SUCCESS
// it showed from memory meanwhile was taken back (SUCCESS, then
// IN_PROGRESS, then SUCCESS again: a client may have fetched an image
// that then answered 404, or given up on it).
BOOST_AUTO_TEST_CASE(a_task_ended_while_redis_is_away_is_shown_once_stored) {
  redis_server redis{true}; // AOF: the accepted tasks survive the restart
  resized_server srv{redis.port(), {"--resize.pool-size=1"}, "shown-stored"};
  // 8.3 MP: about 100 ms per resize on one worker.
  const auto photo = corpus_photo("plasma__Canopee_3840x2160.png");
  std::vector<std::string> tokens;
  for (int i = 0; i < 4; ++i) {
    tokens.push_back(accepted_token(submit_raw(
        srv, photo, "image/png", "?width=" + std::to_string(120 + i))));
    BOOST_TEST_REQUIRE(!tokens.back().empty());
  }
  // Paused while Redis stops, so that what ends does so in the outage: the
  // tasks not final in Redis now.
  srv.process().signal(SIGSTOP);
  auto open = not_succeeded_in(redis, tokens);
  BOOST_TEST_REQUIRE(open.size() >= 2u);
  redis.stop();
  srv.process().signal(SIGCONT);
  auto status_of = [&](const std::string& token) {
    auto res = http_get(srv.url("/api/v1/resize/" + token));
    BOOST_TEST_REQUIRE(res.status == 200, res.status << " " << res.body);
    return json_string(parse_json(res.body), "status");
  };
  auto finished = [&](const std::string& token) {
    return lines_with(srv.process().log(),
                      {"msg=\"task finished\"", "token=" + token}) == 1u;
  };
  // Polled until each has ended here: never shown final meanwhile.
  bool ended = wait_until(
      [&] {
        for (const auto& token : open)
          BOOST_TEST(status_of(token) != "SUCCESS", token);
        return std::all_of(open.begin(), open.end(), finished);
      },
      std::chrono::seconds{60});
  BOOST_TEST_REQUIRE(ended, "log:\n" << srv.process().log());
  for (const auto& token : open) {
    BOOST_TEST(status_of(token) == "IN_PROGRESS", token);
    auto img = http_get(srv.url("/api/v1/images/" + token + ".jpg"));
    BOOST_TEST(img.status != 200, token);
  }
  // Stopped before Redis is back: its final writes are not made.
  int status = srv.process().stop(SIGTERM, std::chrono::seconds{20});
  auto text = srv.process().log();
  BOOST_TEST_CONTEXT("waitpid status " << status << ", log:\n" << text) {
    BOOST_TEST(WIFEXITED(status));
    BOOST_TEST(lines_with(text, {"level=warn",
                                 "redis writes still failing at shutdown"}) ==
               1u);
  }
  // Back with Redis: the tasks run again, and end as they were shown ending.
  redis.start();
  srv.start();
  expect_all_succeed(srv, tokens);
}

// A clean shutdown (SIGTERM) deletes the node's lease on its name, so a
// restart under the same name starts at once, though the lease here is a
// minute long (a lease left behind would hold the restart for that minute).
BOOST_AUTO_TEST_CASE(a_clean_shutdown_releases_the_node_name) {
  resized_server srv(env::get().redis.port(),
                     {"--cluster.node-name=lease-clean",
                      "--cluster.lease-ms=60000",
                      "--cluster.lease-renew-ms=1000"},
                     "lease-clean");
  BOOST_TEST(env::get().redis.command("PTTL resized:node:lease-clean") !=
             ":-2\r\n");
  auto before = srv.process().log().size();
  auto t0 = std::chrono::steady_clock::now();
  srv.restart(); // SIGTERM, wait for the exit, start again
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - t0);
  auto log_text = srv.process().log().substr(before);
  BOOST_TEST_MESSAGE("clean restart took " << took.count() << " ms");
  BOOST_TEST_CONTEXT("log:\n" << log_text) {
    BOOST_TEST(took.count() < 15000); // far below the 60 s lease
    BOOST_TEST(lines_with(log_text, {"level=info", "node name lease released",
                                     "node=lease-clean"}) == 1u);
    BOOST_TEST(lines_with(log_text, {"waiting for its lease"}) == 0u);
    BOOST_TEST(lines_with(log_text,
                          {"node name lease taken", "node=lease-clean"}) == 1u);
  }
  int status = srv.process().stop(SIGTERM, std::chrono::seconds{10});
  BOOST_TEST(WIFEXITED(status));
  BOOST_TEST(WEXITSTATUS(status) == 0);
  BOOST_TEST(env::get().redis.command("EXISTS resized:node:lease-clean") ==
             ":0\r\n");
}

// A node that finds its lease gone at a renewal says why, as far as it can
// tell: the key gone though renewed in time (Redis lost it: here a DEL, as
// a restart without its data would), or the node itself stalled past the
// lease (here SIGSTOP until the key expires). Both said "redis away for
// longer than the lease, or restarted empty?" before, blaming Redis for a
// paused node.
BOOST_AUTO_TEST_CASE(a_lapsed_lease_says_why) {
  auto& redis = env::get().redis;
  resized_server srv(redis.port(), {"--cluster.node-name=lapse"}, "lapse");
  const std::string key = "resized:node:lapse";
  auto lapses = [&](const std::string& cause) {
    return lines_with(srv.process().log(),
                      {"level=warn", "lease on this node's name had run out",
                       "cause=" + cause, "node=lapse"});
  };
  redis.command("DEL " + key);
  BOOST_TEST_REQUIRE(
      wait_until([&] { return lapses("redis_lost_it") == 1u; }, 10s),
      srv.process().log());
  BOOST_TEST(lines_with(srv.process().log(),
                        {"renewed in time: redis lost it"}) == 1u);
  srv.process().signal(SIGSTOP);
  bool expired = wait_until(
      [&] { return redis.command("EXISTS " + key) == ":0\r\n"; }, 10s);
  srv.process().signal(SIGCONT);
  BOOST_TEST_REQUIRE(expired);
  BOOST_TEST_REQUIRE(
      wait_until([&] { return lapses("node_stalled") == 1u; }, 10s),
      srv.process().log());
  BOOST_TEST(lines_with(srv.process().log(),
                        {"this node renewed nothing for longer than the "
                         "lease: paused, or starved of CPU"}) == 1u);
  BOOST_TEST(lapses("redis_away") == 0u);
  // It goes on: the name is its own again, and it takes work.
  BOOST_TEST(redis.command("EXISTS " + key) == ":1\r\n");
  auto token =
      accepted_token(submit_raw(srv, small_photo_bytes(), "image/jpeg"));
  BOOST_TEST_REQUIRE(!token.empty());
  expect_all_succeed(srv, {token});
}

// A node whose lease on its name is found taken by another instance at a
// renewal (two nodes under one name, or this one paused or cut off from
// Redis for longer than the lease) stops at once with exit code 4: the
// name and its pending set are the other instance's. It leaves the other
// instance's lease alone.
BOOST_AUTO_TEST_CASE(a_node_that_loses_its_name_exits_4) {
  auto& redis = env::get().redis;
  resized_server srv(redis.port(), {"--cluster.node-name=lease-lost"},
                     "lease-lost");
  BOOST_TEST_REQUIRE(
      !wait_log_line(srv.process(), "node name lease taken", 5000ms).empty());
  redis.command("SET resized:node:lease-lost another-instance PX 60000");
  int status = -1;
  // A renewal every 300 ms here; the margin is for a loaded machine.
  bool exited = srv.process().wait_exit(10000ms, status);
  auto log_text = srv.process().log();
  BOOST_TEST_REQUIRE(exited, "still running:\n" << log_text);
  BOOST_TEST_CONTEXT("waitpid status " << status << ", log:\n" << log_text) {
    BOOST_TEST(WIFEXITED(status));
    BOOST_TEST(WEXITSTATUS(status) == 4);
    BOOST_TEST(
        lines_with(log_text, {"level=error", "lease on this node's name lost",
                              "node=lease-lost", "holder=another-instance"}) ==
        1u);
    BOOST_TEST(
        lines_with(log_text, {"level=error", "stopped: this node lost its name",
                              "exit_code=4"}) == 1u);
    BOOST_TEST(lines_with(log_text, {"node name lease released"}) == 0u);
  }
  BOOST_TEST(redis.command("GET resized:node:lease-lost") ==
             "$16\r\nanother-instance\r\n");
  redis.command("DEL resized:node:lease-lost");
}

BOOST_AUTO_TEST_SUITE_END()
