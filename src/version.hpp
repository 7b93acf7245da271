// resized's version, the commit it was built from and the versions of the
// libraries it runs on: printed by `resized --version`, logged on the
// "resized started" line and exported in /metrics as resized_build_info.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace resized {

struct build_info {
  std::string version; // the CMake project's VERSION
  std::string commit;  // git describe of the source tree, or "unknown"
  /// (name, version) of each library, in the order --version prints them.
  /// libvips and OpenSSL report the version loaded at run time, the others
  /// the version compiled against (header-only, or the same ABI).
  std::vector<std::pair<std::string, std::string>> libraries;

  /// The version of library `name` in `libraries` ("" if not listed).
  std::string library(const std::string& name) const {
    for (const auto& [n, v] : libraries)
      if (n == name)
        return v;
    return {};
  }
};

const build_info& this_build();

/// What --version prints: "resized 0.1.0 (commit ...)" and a line of
/// library versions.
std::string version_text();

} // namespace resized
