// The previous Raft log store, in LMDB: kept to read (and migrate) data dirs written before the WAL.
//
// Since the WAL (wal/wal.h) the node no longer writes raft.mdb: open_log.h
// migrates an existing one into the WAL once, at start. This class stays
// as the reader for that migration and as the unit tests' way to make an
// old-format data dir; it implements LogStorage so both can be tested alike.
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
#include "storage/log_storage.h"

namespace ckv::storage {

struct LogStoreOptions {
  // LMDB reserves this much address space; the file grows as needed.
  uint64_t map_size_bytes = uint64_t{64} << 30;
  // Tests with -inmem-like needs may turn the sync off; production never does.
  bool sync = true;
  // The caller knows this data dir held state (its node_meta or a snapshot
  // exists): a missing, empty or short raft.mdb is then lost state (kCorrupt),
  // never silently a new empty log.
  bool expect_existing = false;
};

inline constexpr char kLogStoreFileName[] = "raft.mdb";

class LogStore final : public LogStorage {
 public:
  // Opens or creates <dir>/raft.mdb. dir must exist.
  static Result<std::unique_ptr<LogStore>> open(const std::string& dir, const LogStoreOptions& options);
  ~LogStore() override;
  LogStore(const LogStore&) = delete;
  LogStore& operator=(const LogStore&) = delete;

  // Hard state as last persisted; all zero on a new store. kCorrupt on a
  // checksum mismatch or a term above kMaxStoredTerm. A record in the old
  // unchecksummed format (before format 2) is read once and rewritten in
  // the current format; legacy_hard_state_migrated() then says so.
  Result<raft::HardState> load_hard_state() override;
  bool legacy_hard_state_migrated() const { return migrated_hard_state_; }
  // Every stored entry, ascending and contiguous. A gap or a failed checksum
  // is kCorrupt naming the index and the file.
  Result<std::vector<raft::Entry>> load_entries() override;

  // In one transaction and one sync, in this order: if drop_all, delete every
  // entry (an installed snapshot replaces the log); delete entries with index
  // >= entries.front().index (a leader overwrote them, §5.3); append entries;
  // store the hard state if given.
  Status persist(const std::vector<raft::Entry>& entries, const std::optional<raft::HardState>& hard_state,
                 bool drop_all) override;
  // Deletes entries with index < first_to_keep (after a snapshot).
  Status compact(raft::Index first_to_keep) override;

  // Small named records kept beside the log (e.g. the node's identity).
  Result<std::optional<std::string>> get_meta(const std::string& key) override;
  Status put_meta(const std::string& key, const std::string& value) override;

  const std::string& path() const override { return path_; }

 private:
  struct Handles;
  LogStore(std::string path, std::unique_ptr<Handles> h);

  Status error(const char* what, int rc) const;

  std::string path_;
  std::string dir_;
  std::unique_ptr<Handles> h_;
  bool migrated_hard_state_ = false;
};

// Hard state <-> stored bytes: [format u8 = 2][crc32c u32 of the rest][term u64][vote u64][commit u64].
std::string encode_hard_state(const raft::HardState& hs);
// kCorrupt on a bad checksum or term; the old 24-byte unchecksummed record is
// accepted (for migration) and *legacy set.
Result<raft::HardState> decode_hard_state(std::string_view bytes, bool* legacy);

// Entry <-> stored bytes: [format u8][crc32c u32 of the rest][term u64][type u8][data].
std::string encode_entry(const raft::Entry& e);
// Returns kCorrupt on a short record, unknown format or checksum mismatch.
Result<raft::Entry> decode_entry(raft::Index index, std::string_view bytes);

}  // namespace ckv::storage
