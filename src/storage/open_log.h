// Opening the node's log storage: the WAL, after migrating a data dir written by the LMDB store (raft.mdb) once.
//
// Migration (crash-safe at every step; each start redoes what a crash cut short):
//   1. raft.mdb present, no wal/: read raft.mdb's hard state, entries and
//      meta records; write them into wal.migrating/ as one batch, synced;
//   2. rename wal.migrating/ to wal/ and fsync the data dir: from here the
//      WAL is the truth;
//   3. rename raft.mdb to raft.mdb.pre-wal (and remove raft.mdb-lock),
//      fsync the data dir. A start that finds both wal/ and raft.mdb was
//      cut between 2 and 3 and only redoes 3; one that finds wal.migrating/
//      was cut before 2: it is removed and the migration starts again.
// raft.mdb.pre-wal is never read again; the operator may delete it.
#pragma once

#include <memory>
#include <string>

#include "storage/log_storage.h"
#include "storage/wal/wal.h"

namespace ckv::storage {

inline constexpr char kLmdbFileName[] = "raft.mdb";
inline constexpr char kLmdbMigratedName[] = "raft.mdb.pre-wal";
inline constexpr char kWalMigratingDirName[] = "wal.migrating";

// Opens <data_dir>/wal (options.expect_existing as in WalOptions), migrating
// <data_dir>/raft.mdb first when there is one.
Result<std::unique_ptr<LogStorage>> open_log_storage(const std::string& data_dir,
                                                     const WalOptions& options);

}  // namespace ckv::storage
