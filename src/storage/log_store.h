// Durable Raft log and hard state in LMDB: one transaction and one sync per Ready.
//
// Layout: one LMDB environment in a single file (<dir>/raft.mdb, plus its
// lock file). Database "log": 8-byte big-endian index -> encoded entry with a
// CRC-32C. Database "meta": small named records (hard state, node identity).
//
// Durability: persist() commits one write transaction; LMDB's commit
// fdatasyncs before returning, so when persist() returns OK everything in it
// survives a crash, and a crash before that loses all of it (never half).
//
// Thread safety: one thread (the node's Raft thread) calls everything.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "raft/types.h"

namespace ckv::storage {

struct LogStoreOptions {
  // LMDB reserves this much address space; the file grows as needed.
  uint64_t map_size_bytes = uint64_t{64} << 30;
  // Tests with -inmem-like needs may turn the sync off; production never does.
  bool sync = true;
};

class LogStore {
 public:
  // Opens or creates <dir>/raft.mdb. dir must exist.
  static Result<std::unique_ptr<LogStore>> open(const std::string& dir, const LogStoreOptions& options);
  ~LogStore();
  LogStore(const LogStore&) = delete;
  LogStore& operator=(const LogStore&) = delete;

  // Hard state as last persisted; all zero on a new store.
  Result<raft::HardState> load_hard_state();
  // Every stored entry, ascending and contiguous. A gap or a failed checksum
  // is kCorrupt naming the index and the file.
  Result<std::vector<raft::Entry>> load_entries();

  // In one transaction and one sync, in this order: if drop_all, delete every
  // entry (an installed snapshot replaces the log); delete entries with index
  // >= entries.front().index (a leader overwrote them, §5.3); append entries;
  // store the hard state if given.
  Status persist(const std::vector<raft::Entry>& entries, const std::optional<raft::HardState>& hard_state,
                 bool drop_all);
  // Deletes entries with index < first_to_keep (after a snapshot).
  Status compact(raft::Index first_to_keep);

  // Small named records kept beside the log (e.g. the node's identity).
  Result<std::optional<std::string>> get_meta(const std::string& key);
  Status put_meta(const std::string& key, const std::string& value);

  const std::string& path() const { return path_; }

 private:
  struct Handles;
  LogStore(std::string path, std::unique_ptr<Handles> h);

  std::string path_;
  std::unique_ptr<Handles> h_;
};

// Entry <-> stored bytes: [format u8][crc32c u32 of the rest][term u64][type u8][data].
std::string encode_entry(const raft::Entry& e);
// Returns kCorrupt on a short record, unknown format or checksum mismatch.
Result<raft::Entry> decode_entry(raft::Index index, std::string_view bytes);

}  // namespace ckv::storage
