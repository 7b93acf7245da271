// The resizes an API or standalone node runs on its own workers, noted in a
// local file before each starts and cleared when it ends (resize.journal).
//
// Why: a task's attempt reaches Redis with its IN_PROGRESS record, which
// the status actor writes while the resize already runs (and, behind an
// upload it is storing, a few milliseconds later). An input that crashes
// the process before that write leaves its record PENDING with the
// attempts of before, so every restart would run it again, unbounded by
// resize.max-attempts. The note here is made first, with a write(2) to a
// file in the page cache (a few microseconds, no fsync: it only has to
// outlive the process, not the machine); the restart reads what was left
// and counts each attempt a record does not (supervisor: recover).
//
// Layout: fixed slots of 64 bytes, "<attempts> <token>", space-padded, a
// newline last; a free slot is all spaces. A slot is written with one
// pwrite, so a crash leaves it whole; slots are reused, so the file holds
// at most as many slots as tasks ever ran here at once. Not thread-safe:
// the supervisor alone uses it (main opens and closes it around that).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "common/outcome.hpp"

namespace resized::store {

class attempt_journal {
public:
  /// Opens (creating, mode 0600) the journal at `path` and reads what an
  /// earlier process left in it. Refuses a symbolic link, a file that is
  /// not regular or not this user's, one whose content is not a journal's
  /// (it is never written over), and one another live process holds
  /// (flock; then `*in_use` is set): a node of the same name running on
  /// this host, whose entries are of resizes it still runs, not of a
  /// crash (a dead process holds no lock).
  static outcome<std::shared_ptr<attempt_journal>> open(const std::string& path,
                                                        bool* in_use = nullptr);

  ~attempt_journal();
  attempt_journal(const attempt_journal&) = delete;
  attempt_journal& operator=(const attempt_journal&) = delete;

  /// Attempts started here by an earlier process and never ended, by token:
  /// the attempt count each reached (counting that start).
  const std::map<std::string, uint32_t>& left() const { return left_; }

  /// Notes that `token` starts its attempt number `attempts` (1 = first)
  /// here. False if the note could not be written (logged).
  bool started(const std::string& token, uint32_t attempts);
  /// The attempt of `token` ended (answered, or given up on).
  void ended(const std::string& token);
  /// The entries left() are counted in the records now: their slots free.
  void forget_left();

  /// Entries in the file now (left and started).
  size_t entries() const { return slot_of_.size(); }
  const std::string& path() const { return path_; }

  /// At a clean exit: removes the file if it holds no entry, and closes it.
  /// True if it was removed.
  bool close_if_empty();

  static constexpr size_t slot_bytes = 64;

private:
  attempt_journal(std::string path, int fd);
  bool write_slot(size_t slot, const std::string& text);
  void free_slot(const std::string& token);

  std::string path_;
  int fd_ = -1;
  std::map<std::string, uint32_t> left_;
  std::map<std::string, size_t> slot_of_; // token -> slot
  // Free slots, reused lowest first: the file stays as long as the most
  // tasks that ever ran here at once.
  std::set<size_t> free_;
  size_t slots_ = 0; // slots in the file
  uint64_t write_failures_ = 0;
};

/// The default journal of node `node_name`: <dir>/resized-<name>.journal,
/// with `dir` $TMPDIR or /tmp and every character of the name other than
/// [A-Za-z0-9._-] written as '_'.
std::string default_journal_path(const std::string& node_name);

} // namespace resized::store
