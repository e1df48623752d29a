// An in-memory file system for the simulator: storage::FileSystem with a crash that keeps synced bytes and drops or tears the rest.
//
// The simulated nodes run the real WAL (src/storage/wal) on it. It enforces
// file_system.h's durability rules adversarially:
//  - a file's bytes (and size) since its last fdatasync/fsync are pending;
//    crash() keeps, per file and as the seed draws: none of them, all of
//    them, a prefix of them in write order (cut at any byte), an arbitrary
//    subset of their 512-byte blocks (pages written back out of order), or
//    a prefix followed by garbage (a sector half written);
//  - a directory's creates, renames and unlinks since its last sync_dir are
//    pending; crash() keeps a prefix of them (a journal commits in order; a
//    rename is one change). Renames across directories are not modelled;
//  - cut_power_after(n): the n-th mutating call from now, and every call
//    after it, fails with kIo until crash(), as if the machine lost power
//    inside that call (the caller sees an error; the node then crashes).
// Deterministic: ordered containers only, randomness only from the SimRng
// passed to crash(). Not thread safe (the simulator is one thread).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "sim_rng.h"
#include "storage/file_system.h"

namespace ckv::sim {

class MemFileSystem final : public storage::FileSystem {
 public:
  MemFileSystem();

  Result<int> open(const std::string& path, storage::OpenMode mode) override;
  void close(int fd) override;
  Status pwrite(int fd, std::string_view data, uint64_t offset, const std::string& path,
                size_t* written) override;
  Result<size_t> pread(int fd, char* buf, size_t n, uint64_t offset,
                       const std::string& path) override;
  Status fdatasync(int fd, const std::string& path) override;
  Status fsync(int fd, const std::string& path) override;
  Status preallocate(int fd, uint64_t bytes, const std::string& path) override;
  // A hint only: writeback order is the crash model's to choose (tear()).
  void start_writeback(int /*fd*/, uint64_t /*offset*/, uint64_t /*bytes*/) override {}
  Result<std::optional<uint64_t>> file_size(const std::string& path) override;
  Status create_dir(const std::string& path) override;
  Result<std::vector<std::string>> list_dir(const std::string& path) override;
  Status rename(const std::string& from, const std::string& to) override;
  Status unlink(const std::string& path) override;
  Status sync_dir(const std::string& path) override;

  // The mutating call `calls` from now (1: the next one) fails, and so does
  // everything after it, until crash(). 0 disarms.
  void cut_power_after(uint64_t calls) { calls_to_cut_ = calls; }
  bool powered_off() const { return powered_off_; }
  // Power loss: open files are gone, pending changes are kept or torn as
  // described above. Returns a short description for the trace.
  std::string crash(SimRng& rng);

  // Bytes of pending (unsynced) file data, over all files: tests and traces.
  uint64_t pending_bytes() const;
  // Counts of what crashes did, for the sweep's summary.
  struct Stats {
    uint64_t crashes = 0;
    uint64_t files_torn = 0;  // a crash kept part, not none or all, of a file's pending bytes
    uint64_t garbage = 0;     // ... and wrote garbage into one
    uint64_t power_cuts = 0;
  };
  const Stats& stats() const { return stats_; }

 private:
  struct Op {  // a pending change of a file: a write, or a size change
    uint64_t offset = 0;
    std::string bytes;
    bool resize = false;
    uint64_t size = 0;
    // Zeros over zeros (the WAL's zeros written ahead): it changes no byte,
    // so a torn write's cut point costs it one byte, like a size change, and
    // the cuts keep landing inside the batches around it.
    bool changes_nothing = false;
  };
  struct Inode {
    std::string data;     // what reads see
    std::string durable;  // what a crash starts from
    std::vector<Op> pending;
  };
  struct Entry {
    bool is_dir = false;
    uint64_t inode = 0;  // files only
    bool operator==(const Entry& o) const { return is_dir == o.is_dir && inode == o.inode; }
  };
  struct NsOp {
    std::string name;
    bool link = true;  // false: unlink
    Entry entry;
    std::string renamed_from;  // a rename: one change, atomic (as a journal makes it)
  };
  struct Dir {
    std::map<std::string, Entry> names;
    std::map<std::string, Entry> durable;
    std::vector<NsOp> pending;
  };
  struct OpenFile {
    uint64_t inode = 0;
    bool writable = false;
  };

  // Counts a mutating call; false (and the machine is off) when power is cut.
  bool tick();
  Status off(const std::string& path) const;
  static std::pair<std::string, std::string> split(const std::string& path);
  Dir* dir_of(const std::string& path);  // the directory that holds path, or nullptr
  void link(Dir& d, const std::string& name, Entry e);
  void unlink_name(Dir& d, const std::string& name);
  Inode* inode_of(int fd);
  static void apply(std::string& data, const Op& op);
  void tear(Inode& node, SimRng& rng);

  std::map<std::string, Dir> dirs_;  // by full path; "/" always exists
  std::map<uint64_t, Inode> inodes_;
  std::map<int, OpenFile> open_;
  uint64_t next_inode_ = 1;
  int next_fd_ = 3;
  uint64_t calls_to_cut_ = 0;
  bool powered_off_ = false;
  Stats stats_;
};

}  // namespace ckv::sim
