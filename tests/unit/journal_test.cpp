// src/store/attempt_journal: the local file an API node notes each resize
// of its own pool in before it runs (resize.journal), read back after a
// crash. Real files in a fresh directory per test.
#include <boost/test/unit_test.hpp>

#include <cstdlib>
#include <fstream>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include "store/attempt_journal.hpp"
#include "support/printing.hpp"
#include "support/process.hpp"

using namespace resized;
using namespace resized::store;
using namespace resized::test;

namespace {

const std::string token_a = "0f8d9c57-2a0c-4a1e-9d4b-0d7c1b0e5a11";
const std::string token_b = "6b1e0c3a-8f44-4f0e-b2a9-5d0e7c9a2b22";
const std::string token_c = "c3a9e1f0-5b7d-4c2e-8a61-9e4f2d7b0c33";

std::shared_ptr<attempt_journal> open_ok(const std::string& path) {
  auto j = attempt_journal::open(path);
  BOOST_TEST_REQUIRE(j.ok(), (j.ok() ? "" : j.error().message));
  return j.value();
}

off_t file_size(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? st.st_size : -1;
}

} // namespace

BOOST_AUTO_TEST_SUITE(journal)

BOOST_AUTO_TEST_CASE(what_a_process_leaves_is_read_by_the_next) {
  auto path = make_temp_dir("journal") + "/a.journal";
  {
    auto j = open_ok(path);
    BOOST_TEST(j->left().empty());
    BOOST_TEST(j->started(token_a, 1));
    BOOST_TEST(j->started(token_b, 3));
    BOOST_TEST(j->started(token_c, 2));
    j->ended(token_c);
    BOOST_TEST(j->entries() == 2u);
  } // a crash: closed without close_if_empty
  BOOST_TEST(file_size(path) == 3 * 64);
  auto j = open_ok(path);
  BOOST_TEST_REQUIRE(j->left().size() == 2u);
  BOOST_TEST(j->left().at(token_a) == 1u);
  BOOST_TEST(j->left().at(token_b) == 3u);
  // One slot per entry, "<attempts> <token>", space-padded, newline last.
  auto text = read_file(path);
  BOOST_TEST(text.substr(0, 64) ==
             "1 " + token_a + std::string(64 - 3 - token_a.size(), ' ') + "\n");
}

BOOST_AUTO_TEST_CASE(slots_are_reused_so_the_file_stays_small) {
  auto path = make_temp_dir("journal") + "/a.journal";
  auto j = open_ok(path);
  for (int i = 0; i < 100; ++i) {
    BOOST_TEST(j->started(token_a, 1));
    BOOST_TEST(j->started(token_b, 1));
    j->ended(token_a);
    j->ended(token_b);
  }
  BOOST_TEST(file_size(path) == 2 * 64);
  BOOST_TEST(j->entries() == 0u);
  // A later attempt of the same task takes its slot again.
  BOOST_TEST(j->started(token_c, 1));
  BOOST_TEST(j->started(token_c, 2));
  BOOST_TEST(j->entries() == 1u);
  j.reset();
  auto again = open_ok(path);
  BOOST_TEST(again->left().size() == 1u);
  BOOST_TEST(again->left().at(token_c) == 2u);
}

BOOST_AUTO_TEST_CASE(entries_left_stay_until_counted) {
  auto path = make_temp_dir("journal") + "/a.journal";
  {
    auto j = open_ok(path);
    j->started(token_a, 1);
    j->started(token_b, 2);
  }
  {
    auto j = open_ok(path);
    BOOST_TEST(j->left().size() == 2u);
    // A task of this process ending never frees another's entry...
    j->ended(token_a);
    BOOST_TEST(j->entries() == 2u);
    // ... running again here, a left task takes its entry over.
    BOOST_TEST(j->started(token_a, 2));
    BOOST_TEST(j->left().count(token_a) == 0u);
    BOOST_TEST(j->started(token_c, 1)); // a slot of its own
    // Recovery counted the rest: gone, the file kept for the running ones.
    j->forget_left();
    BOOST_TEST(j->left().empty());
    BOOST_TEST(j->entries() == 2u);
    BOOST_TEST(!j->close_if_empty());
  }
  auto j = open_ok(path);
  BOOST_TEST(j->left().size() == 2u);
  BOOST_TEST(j->left().count(token_b) == 0u);
  BOOST_TEST(j->left().at(token_a) == 2u);
  BOOST_TEST(j->left().at(token_c) == 1u);
}

BOOST_AUTO_TEST_CASE(a_clean_exit_removes_an_empty_journal) {
  auto path = make_temp_dir("journal") + "/a.journal";
  auto j = open_ok(path);
  j->started(token_a, 1);
  j->ended(token_a);
  BOOST_TEST(j->close_if_empty());
  BOOST_TEST(file_size(path) == -1);
  BOOST_TEST(!j->started(token_b, 1)); // closed
}

// Each write is one whole slot: a file with anything else in it is not a
// journal (resize.journal naming another file), and is left as it is.
BOOST_AUTO_TEST_CASE(a_file_that_is_not_a_journal_is_refused_untouched) {
  auto dir = make_temp_dir("journal");
  auto slot = [](const std::string& text) {
    return text + std::string(63 - text.size(), ' ') + "\n";
  };
  int n = 0;
  for (const std::string& bad : {
           slot("x " + token_b),                    // no count
           slot("0 " + token_b),                    // no attempt
           slot("3"),                               // no token
           slot("1 two words"),                     // a token with a space
           slot("4294967296 " + token_b),           // beyond 32 bits
           slot("2 " + token_b),                    // the same token twice
           std::string(63, 'z') + "z",              // no newline
           std::string("1 ") + token_c,             // not a whole slot
           std::string("# a config file\nkey=1\n"), // someone else's file
       }) {
    BOOST_TEST_CONTEXT("content " << bad) {
      auto path = fmt::format("{}/{}.journal", dir, n++);
      auto content = slot("2 " + token_b) + slot("") + bad;
      {
        std::ofstream out(path, std::ios::binary);
        out << content;
      }
      auto j = attempt_journal::open(path);
      BOOST_TEST_REQUIRE(!j.ok());
      BOOST_TEST(j.error().message.find("is not a resize journal (byte 128") !=
                     std::string::npos,
                 j.error().message);
      BOOST_TEST(read_file(path) == content);
    }
  }
  // Entries and free slots only: read.
  auto path = dir + "/good.journal";
  {
    std::ofstream out(path, std::ios::binary);
    out << slot("") << slot("2 " + token_a) << slot("");
  }
  auto j = open_ok(path);
  BOOST_TEST(j->left().size() == 1u);
  BOOST_TEST(j->left().at(token_a) == 2u);
  BOOST_TEST(j->started(token_b, 1)); // the first free slot
  BOOST_TEST(file_size(path) == 3 * 64);
  BOOST_TEST(read_file(path).substr(0, 2 + token_b.size()) == "1 " + token_b);
}

BOOST_AUTO_TEST_CASE(a_journal_in_use_or_not_ours_is_refused) {
  auto dir = make_temp_dir("journal");
  auto path = dir + "/a.journal";
  auto first = open_ok(path);
  bool in_use = false;
  auto second = attempt_journal::open(path, &in_use);
  BOOST_TEST_REQUIRE(!second.ok());
  BOOST_TEST(in_use);
  BOOST_TEST(second.error().message.find("in use by another running process") !=
             std::string::npos);
  first.reset(); // the lock goes with the file handle
  BOOST_TEST(attempt_journal::open(path).ok());

  BOOST_TEST_REQUIRE(::symlink(path.c_str(), (dir + "/link").c_str()) == 0);
  auto link = attempt_journal::open(dir + "/link");
  BOOST_TEST_REQUIRE(!link.ok());
  BOOST_TEST(link.error().message.find("symbolic link") != std::string::npos);

  in_use = false;
  auto missing = attempt_journal::open(dir + "/no/such/dir/a.journal", &in_use);
  BOOST_TEST_REQUIRE(!missing.ok());
  BOOST_TEST(!in_use);
  BOOST_TEST(missing.error().message.find("cannot open") != std::string::npos);
  BOOST_TEST(missing.error().message.find(dir + "/no/such/dir/a.journal") !=
             std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_token_that_does_not_fit_a_slot_is_not_noted) {
  auto path = make_temp_dir("journal") + "/a.journal";
  auto j = open_ok(path);
  BOOST_TEST(!j->started(std::string(62, 'x'), 1));
  BOOST_TEST(!j->started("", 1));
  BOOST_TEST(!j->started("a b", 1));
  BOOST_TEST(j->entries() == 0u);
  BOOST_TEST(j->started(std::string(52, 'x'), 4000000000u)); // the longest
}

BOOST_AUTO_TEST_CASE(the_default_path_names_the_node) {
  const char* old = std::getenv("TMPDIR");
  std::string saved = old != nullptr ? old : "";
  ::setenv("TMPDIR", "/var/run/x", 1);
  BOOST_TEST(default_journal_path("host-1.example:5000") ==
             "/var/run/x/resized-host-1.example_5000.journal");
  BOOST_TEST(default_journal_path("a/b c") ==
             "/var/run/x/resized-a_b_c.journal");
  ::unsetenv("TMPDIR");
  BOOST_TEST(default_journal_path("h:1") == "/tmp/resized-h_1.journal");
  if (old != nullptr)
    ::setenv("TMPDIR", saved.c_str(), 1);
}

BOOST_AUTO_TEST_SUITE_END()
