// Opening the WAL, and the one-time migration of an LMDB raft.mdb into it (see open_log.h).
#include "storage/open_log.h"

#include <cerrno>
#include <filesystem>

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/log_store.h"
#include "storage/snapshot_file.h"

namespace ckv::storage {

namespace {

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

Status remove_tree(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
  if (ec) return Status(StatusCode::kIo, path + ": remove: " + ec.message());
  return Status::ok();
}

// Step 3: raft.mdb is superseded by a durable WAL.
Status retire_lmdb(const std::string& data_dir) {
  const std::string mdb = data_dir + "/" + kLmdbFileName;
  const std::string retired = data_dir + "/" + kLmdbMigratedName;
  if (::rename(mdb.c_str(), retired.c_str()) != 0) return io_error(mdb, "rename");
  ::unlink((mdb + "-lock").c_str());  // LMDB's reader table: no data
  if (Status s = sync_dir(data_dir); !s.is_ok()) return s;
  spdlog::info("{}: migrated to the WAL; kept the old file as {} (not read again; may be deleted)",
               mdb, retired);
  return Status::ok();
}

Status migrate(const std::string& data_dir, const WalOptions& options) {
  const std::string mdb = data_dir + "/" + kLmdbFileName;
  const std::string staging = data_dir + "/" + kWalMigratingDirName;
  spdlog::info("{}: data dir written by the LMDB log store: migrating it to the WAL", mdb);
  LogStoreOptions lo;
  lo.sync = options.sync;
  lo.expect_existing = true;  // raft.mdb exists: an empty or short one is damage
  auto old = LogStore::open(data_dir, lo);
  if (!old.is_ok()) return old.status();
  auto hs = old.value()->load_hard_state();
  if (!hs.is_ok()) return hs.status();
  auto entries = old.value()->load_entries();
  if (!entries.is_ok()) return entries.status();
  // The only meta record LogStore ever held besides the hard state (node.cc's kIdentityKey).
  auto identity = old.value()->get_meta("identity");
  if (!identity.is_ok()) return identity.status();

  // Step 1, in a staging directory: a crash leaves only that, removed next time.
  if (Status s = remove_tree(staging); !s.is_ok()) return s;
  if (::mkdir(staging.c_str(), 0755) != 0) return io_error(staging, "mkdir");
  {
    WalOptions wo = options;
    wo.expect_existing = false;
    wo.sync = true;  // the migration is durable even for -inmem-like callers: it is one batch
    // Wal::open puts its files in <dir>/wal; build it in <staging>/wal and move that.
    auto w = Wal::open(staging, wo);
    if (!w.is_ok()) return w.status();
    const bool any = !entries.value().empty() || hs.value() != raft::HardState{};
    if (any) {
      if (Status s = w.value()->persist(entries.value(), hs.value(), false); !s.is_ok()) return s;
    }
    if (identity.value()) {
      if (Status s = w.value()->put_meta("identity", *identity.value()); !s.is_ok()) return s;
    }
  }
  // Step 2: the WAL takes over atomically.
  const std::string built = staging + "/" + kWalDirName;
  const std::string wal_dir = data_dir + "/" + kWalDirName;
  // A wal/ without its meta file holds nothing acknowledged (Wal::open writes meta last).
  if (Status s = remove_tree(wal_dir); !s.is_ok()) return s;
  if (::rename(built.c_str(), wal_dir.c_str()) != 0) return io_error(wal_dir, "rename");
  if (Status s = sync_dir(data_dir); !s.is_ok()) return s;
  if (Status s = remove_tree(staging); !s.is_ok()) return s;
  spdlog::info("{}: copied {} entries and the hard state (term {}, commit {}) into {}", mdb,
               entries.value().size(), hs.value().term, hs.value().commit, wal_dir);
  return retire_lmdb(data_dir);
}

}  // namespace

Result<std::unique_ptr<LogStorage>> open_log_storage(const std::string& data_dir,
                                                     const WalOptions& options) {
  const std::string mdb = data_dir + "/" + kLmdbFileName;
  const std::string wal_meta = data_dir + "/" + kWalDirName + "/meta";
  if (exists(mdb)) {
    if (exists(wal_meta)) {
      // Cut between steps 2 and 3: the WAL is complete and durable.
      if (Status s = retire_lmdb(data_dir); !s.is_ok()) return s;
    } else {
      if (Status s = migrate(data_dir, options); !s.is_ok()) return s;
    }
  }
  auto w = Wal::open(data_dir, options);
  if (!w.is_ok()) return w.status();
  return std::unique_ptr<LogStorage>(std::move(w).value());
}

}  // namespace ckv::storage
