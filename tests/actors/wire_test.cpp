// What crosses nodes, pinned: the bytes CAF's serializer writes for one
// sample of every message between an API node and a worker. A change to
// any of them (a field added, removed, reordered or retyped, a type or enum
// renamed or renumbered) changes the fingerprint, and this test fails until
// cluster_protocol is bumped and the new value is added to the table, so
// that nodes of two builds refuse each other at the hello (a clear log line
// on both sides) instead of misreading each other's messages.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <caf/all.hpp>
#include <fmt/format.h>

#include "actor_fixture.hpp"
#include "common/task_record.hpp"

using namespace resized;
using namespace resized::actors;

namespace {

// The fingerprint of each cluster protocol's layout. Never change a row:
// add one with the new protocol number.
const std::vector<std::pair<uint32_t, uint64_t>> known_layouts = {
    {1, 0x124a44262e79540e},
    // limits.max_avif_pixels, probe_info.bytes_per_pixel
    {2, 0x0ec7d5ac8b2e5d1c},
    // probe_info.orientation_certain
    {3, 0xbba3567739544960},
    // node_info.heartbeat_ms, cluster_error::heartbeat_too_slow
    {4, 0x25e12a4682c941b7},
    // (started_atom, token): the agent took the job
    {5, 0x557ca9dc4a17ffda},
    // node_info.connection_timeout_ms
    {6, 0x38f15f1d03ddd702},
};

// FNV-1a, 64 bits: a checksum of test data, not a security boundary.
uint64_t fnv1a(const std::vector<char>& bytes) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (char c : bytes) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ull;
  }
  return h;
}

// Names of an enum's values 0..7 (past the last: its to_string's fallback),
// so that renumbering or renaming one changes the fingerprint too.
template <class Enum>
std::string enum_names() {
  std::string out;
  for (int i = 0; i < 8; ++i)
    out += fmt::format("{}={};", i, to_string(static_cast<Enum>(i)));
  return out;
}

std::vector<caf::message> samples() {
  imaging::resize_options opts{321, 123, imaging::fit_mode::fit,
                               imaging::output_format::webp, 77};
  imaging::probe_info header{
      imaging::input_format::png, 4000, 3000, 2, true, true};
  imaging::limits policy{12345678, 2048, 987654, 4321, false};
  resize_job job{"3f2b8c1e-9a4d-4e2f-8b1a-2c3d4e5f6a7b", opts, "input bytes",
                 header, policy};
  resize_done done;
  done.token = job.token;
  done.ok = true;
  done.output = "output bytes";
  done.width = 321;
  done.height = 241;
  done.etag = "\"abc-123\"";
  done.error_code = "corrupt_image";
  done.error_message = "cannot decode";
  done.decode_s = 0.25;
  done.resize_s = 0.125;
  done.encode_s = 0.0625;
  done.node = "worker-1";
  done.jpeg_dc_scans = true;
  task_record rec;
  rec.token = job.token;
  rec.status = task_status::in_progress;
  rec.options = opts;
  rec.input_bytes = 11;
  rec.width = 321;
  rec.height = 241;
  rec.output_bytes = 12;
  rec.etag = done.etag;
  rec.error_code = "e";
  rec.error_message = "m";
  rec.submitted_at_ms = 1;
  rec.started_at_ms = 2;
  rec.finished_at_ms = 3;
  rec.node = "worker-1";
  rec.attempts = 2;
  node_info info{"worker-1", "10.0.0.7", 4, "0.1.0 (31c78c02d530)", 1000, 5000};
  return {
      caf::make_message(hello_atom::value, cluster_protocol,
                        std::string{"0.1.0 (31c78c02d530)"}),
      caf::make_message(hello_atom::value, std::string{"0.1.0 (abc)"}),
      caf::make_message(join_atom::value, caf::actor{}, info),
      caf::make_message(welcome_atom::value),
      caf::make_message(leave_atom::value, caf::actor{}),
      caf::make_message(uint64_t{3}),
      caf::make_message(job),
      caf::make_message(started_atom::value, job.token),
      caf::make_message(done),
      caf::make_message(rec),
      caf::make_message(caf::error{make_error(cluster_error::name_taken, "x")}),
      caf::make_message(
          caf::error{make_error(cluster_error::name_leaving, "y")}),
      caf::make_message(
          caf::error{make_error(cluster_error::protocol_mismatch, "z")}),
      caf::make_message(
          caf::error{make_error(cluster_error::heartbeat_too_slow, "h")}),
      caf::make_message(
          enum_names<imaging::fit_mode>(), enum_names<imaging::output_format>(),
          enum_names<imaging::input_format>(), enum_names<task_status>()),
  };
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(wire_suite, test::actor_system_fixture)

BOOST_AUTO_TEST_CASE(the_cluster_protocol_names_the_layout_of_its_messages) {
  std::vector<char> bytes;
  caf::binary_serializer sink{sys, bytes};
  for (auto& msg : samples()) {
    auto err = sink(msg);
    BOOST_REQUIRE_MESSAGE(!err, sys.render(err));
  }
  auto fingerprint = fnv1a(bytes);
  const uint64_t* pinned = nullptr;
  for (const auto& [protocol, layout] : known_layouts) {
    BOOST_TEST(protocol <= cluster_protocol); // no row for a future one
    if (protocol == cluster_protocol)
      pinned = &layout;
  }
  BOOST_REQUIRE_MESSAGE(pinned != nullptr,
                        fmt::format("no row for cluster_protocol {} in "
                                    "known_layouts: add {{{}, {:#x}}}",
                                    cluster_protocol, cluster_protocol,
                                    fingerprint));
  BOOST_TEST(*pinned == fingerprint,
             fmt::format("the messages between nodes changed (fingerprint "
                         "{:#x}, cluster_protocol {} is {:#x}): bump "
                         "cluster_protocol in src/actors/messages.hpp and add "
                         "{{{}, {:#x}}} to known_layouts",
                         fingerprint, cluster_protocol, *pinned,
                         cluster_protocol + 1, fingerprint));
  // Every protocol has its own layout.
  for (size_t i = 0; i < known_layouts.size(); ++i)
    for (size_t j = i + 1; j < known_layouts.size(); ++j) {
      BOOST_TEST(known_layouts[i].first != known_layouts[j].first);
      BOOST_TEST(known_layouts[i].second != known_layouts[j].second);
    }
}

// The hello is what two builds always exchange: built-in types only, so
// any build can read any other's, whatever else changed.
BOOST_AUTO_TEST_CASE(the_hello_is_read_by_any_build) {
  auto hello = caf::make_message(hello_atom::value, cluster_protocol,
                                 std::string{"0.1.0 (abc)"});
  std::vector<char> bytes;
  caf::binary_serializer sink{sys, bytes};
  BOOST_REQUIRE(!sink(hello));
  // Read back by a system that knows none of resized's types.
  caf::actor_system_config bare_cfg;
  bare_cfg.set("logger.verbosity", caf::atom("quiet"));
  caf::actor_system bare{bare_cfg};
  caf::binary_deserializer source{bare, bytes};
  caf::message read;
  BOOST_REQUIRE(!source(read));
  BOOST_TEST_REQUIRE(
      (read.match_elements<hello_atom, uint32_t, std::string>()));
  BOOST_TEST(read.get_as<uint32_t>(1) == cluster_protocol);
  BOOST_TEST(read.get_as<std::string>(2) == "0.1.0 (abc)");
}

BOOST_AUTO_TEST_SUITE_END()
