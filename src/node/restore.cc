// kvnode restore and kvnode snapshot status (see restore.h).
#include "node/restore.h"

#include <cmath>
#include <cstdio>
#include <filesystem>

#include "fsm/kv_state_machine.h"
#include "node/member_info.h"
#include "node/node.h"
#include "storage/backup_file.h"
#include "storage/node_meta.h"
#include "storage/open_log.h"
#include "storage/snapshot_file.h"

namespace ckv::node {

namespace {

namespace fs = std::filesystem;

// Where the new data dir is built before it is renamed into place: beside
// it, so the rename stays on one filesystem.
std::string staging_dir_for(const std::string& data_dir) {
  return fs::path(data_dir).lexically_normal().string() + ".restoring";
}

struct Verified {
  storage::LoadedBackup backup;
  fsm::RestoredState state;
};

Result<Verified> verify_backup(const std::string& path) {
  auto backup = storage::read_backup_file(path);
  if (!backup.is_ok()) return backup.status();
  if (backup.value().snapshot.legacy_map) {
    return Status(StatusCode::kCorrupt, "backup " + path + " is in the CKVSNAP1 format, which is never a backup");
  }
  // Decoded as a node decodes a snapshot it installs: every invariant the store relies on.
  auto state = fsm::KvStateMachine::decode_payload(backup.value().snapshot.payload);
  if (!state.is_ok()) {
    return Status(StatusCode::kCorrupt, "backup " + path + " is not usable: " + state.status().message());
  }
  return Verified{std::move(backup).value(), std::move(state).value()};
}

}  // namespace

Result<RestoreResult> restore_data_dir(const RestoreOptions& options) {
  RestoreOptions o = options;
  if (o.snapshot_path.empty()) return Status(StatusCode::kInvalid, "missing --snapshot FILE");
  if (o.data_dir.empty()) return Status(StatusCode::kInvalid, "missing --data-dir DIR");
  if (o.raft_address.empty()) return Status(StatusCode::kInvalid, "missing --raft-address host:port");
  if (o.name.empty()) o.name = o.raft_address;

  // Everything is checked before anything is written.
  auto verified = verify_backup(o.snapshot_path);
  if (!verified.is_ok()) return verified.status();
  const storage::LoadedSnapshot& snap = verified.value().backup.snapshot;

  std::error_code ec;
  if (fs::exists(o.data_dir, ec) && !fs::is_empty(o.data_dir, ec)) {
    return Status(StatusCode::kConflict, "data dir " + o.data_dir +
                                             " exists and is not empty: restore makes a new member; "
                                             "give a new dir (or move this one aside)");
  }
  const std::string staging = staging_dir_for(o.data_dir);
  fs::remove_all(staging, ec);  // an earlier restore cut short: never a live data dir
  if (!fs::create_directories(staging, ec) || ec) {
    return Status(StatusCode::kIo, staging + ": cannot create: " + ec.message());
  }
  struct RemoveOnFailure {
    const std::string& dir;
    bool done = false;
    ~RemoveOnFailure() {
      std::error_code ignored;
      if (!done) fs::remove_all(dir, ignored);
    }
  } cleanup{staging};

  auto incarnation = storage::new_incarnation();
  if (!incarnation.is_ok()) return incarnation.status();
  MemberInfo self{o.name, o.raft_address, o.api_address, incarnation.value(), o.grpc_address};
  self.cluster_id = 0;
  if (Status st = assign_new_cluster_identity(self); !st.is_ok()) return st;
  const raft::NodeId id = node_id_for(o.name);
  raft::Membership membership;
  membership.members.push_back(raft::Member{id, raft::MemberRole::kVoter, encode_member_info(self)});

  {
    // The order open() expects of a data dir that holds state: the log
    // store, its identity record, node_meta, then the snapshot.
    storage::WalOptions wal;
    auto store = storage::open_log_storage(staging, wal);
    if (!store.is_ok()) return store.status();
    // The log starts after the backup (a snapshot replaces the log, §7);
    // everything in the backup is committed.
    raft::HardState hs{snap.meta.term, raft::kNoNode, snap.meta.index};
    if (Status st = store.value()->persist({}, hs, true); !st.is_ok()) return st;
    if (Status st = store.value()->put_meta(kIdentityMetaKey, o.name); !st.is_ok()) return st;
  }
  if (Status st = storage::write_node_meta(staging, storage::NodeMeta{o.name, incarnation.value()}); !st.is_ok()) {
    return st;
  }
  auto written = storage::write_snapshot_file(staging, snap.meta.index, snap.meta.term, membership,
                                              [&](const storage::PayloadSink& sink) { return sink(snap.payload); });
  if (!written.is_ok()) return written.status();
  if (Status st = storage::sync_dir(staging); !st.is_ok()) return st;
  // rename(2) replaces an empty directory, so an empty data dir given by the operator is fine.
  fs::rename(staging, o.data_dir, ec);
  if (ec) return Status(StatusCode::kIo, "cannot rename " + staging + " to " + o.data_dir + ": " + ec.message());
  cleanup.done = true;
  const std::string parent = fs::absolute(o.data_dir).parent_path().string();
  if (Status st = storage::sync_dir(parent); !st.is_ok()) return st;

  RestoreResult r;
  r.cluster_id = self.cluster_id;
  r.member_id = id;
  r.index = snap.meta.index;
  r.term = snap.meta.term;
  r.revision = verified.value().state.store.revision();
  r.keys = verified.value().state.store.key_count();
  return r;
}

Result<SnapshotStatus> snapshot_status(const std::string& path) {
  auto verified = verify_backup(path);
  if (!verified.is_ok()) return verified.status();
  SnapshotStatus s;
  s.hash = verified.value().backup.crc32c;
  s.revision = verified.value().state.store.revision();
  s.total_keys = verified.value().state.store.version_count();
  s.total_size = verified.value().backup.file_bytes;
  return s;
}

namespace {

// Go's humanize.Bytes, which etcdctl prints sizes with: SI units, one
// decimal below 10 ("2.1 MB"), none from 10 ("83 MB"), plain bytes below 10.
std::string humanize_bytes(uint64_t n) {
  if (n < 10) return std::to_string(n) + " B";
  static const char* const kUnits[] = {"B", "kB", "MB", "GB", "TB", "PB", "EB"};
  const double e = std::floor(std::log(static_cast<double>(n)) / std::log(1000.0));
  const auto unit = static_cast<size_t>(e);
  const double value = std::floor(static_cast<double>(n) / std::pow(1000.0, e) * 10 + 0.5) / 10;
  char buf[64];
  std::snprintf(buf, sizeof buf, value < 10 ? "%.1f %s" : "%.0f %s", value, kUnits[unit]);
  return buf;
}

std::string pad(const std::string& s, size_t width) {
  // etcdctl's tablewriter centres headers and right-aligns numbers.
  return std::string(width > s.size() ? width - s.size() : 0, ' ') + s;
}

}  // namespace

Result<std::string> format_snapshot_status(const SnapshotStatus& s, const std::string& format) {
  char hash[16];
  std::snprintf(hash, sizeof hash, "%x", s.hash);
  const std::string cells[] = {hash, std::to_string(s.revision), std::to_string(s.total_keys),
                               humanize_bytes(s.total_size)};
  if (format == "simple") return cells[0] + ", " + cells[1] + ", " + cells[2] + ", " + cells[3] + "\n";
  if (format == "json") {
    return "{\"hash\":" + std::to_string(s.hash) + ",\"revision\":" + std::to_string(s.revision) +
           ",\"totalKey\":" + std::to_string(s.total_keys) + ",\"totalSize\":" + std::to_string(s.total_size) +
           "}\n";
  }
  if (format != "table") return Status(StatusCode::kInvalid, "unknown output format " + format + " (simple, table, json)");
  const std::string heads[] = {"HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"};
  size_t width[4];
  for (size_t i = 0; i < 4; ++i) width[i] = std::max(heads[i].size(), cells[i].size());
  std::string rule = "+";
  for (size_t w : width) rule += std::string(w + 2, '-') + "+";
  auto centre = [](const std::string& h, size_t w) {
    const size_t left = (w - h.size()) / 2;
    return std::string(left, ' ') + h + std::string(w - h.size() - left, ' ');
  };
  std::string head = "|", row = "|";
  // Appended piece by piece: `" " + temporary` makes GCC 12 at -O3 warn a
  // bogus -Wrestrict inside std::string::insert (GCC bug 105651).
  for (size_t i = 0; i < 4; ++i) {
    head.append(" ").append(centre(heads[i], width[i])).append(" |");
    row.append(" ").append(pad(cells[i], width[i])).append(" |");
  }
  return rule + "\n" + head + "\n" + rule + "\n" + row + "\n" + rule + "\n";
}

}  // namespace ckv::node
