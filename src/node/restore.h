// Offline tools on backups: `kvnode restore` (a new one-member cluster from a backup) and `kvnode snapshot status`.
//
// restore_data_dir() is etcdutl's `snapshot restore` for consensuskv: it
// checks the backup whole (backup_file.h: SHA-256, CRC-32C, and the state
// machine's payload decoded as a node would), then builds a data dir whose
// only member is this node, under a NEW cluster identity
// (assign_new_cluster_identity, node.h): the MVCC store with its revisions,
// the leases and the idempotency table are the backup's; the Raft log
// starts after the backup's index, and the node elects itself at its first
// start. Nothing is written unless the backup passed every check, and the
// data dir appears only complete (built beside it, synced, renamed).
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"

namespace ckv::node {

struct RestoreOptions {
  std::string snapshot_path;  // the backup (etcdctl snapshot save, GET /v3/maintenance/snapshot, a .snap file)
  std::string data_dir;       // must not exist, or be empty
  std::string name;           // -id of the new member; default: raft_address
  std::string raft_address;   // required
  std::string api_address;    // may stay empty: the node registers its own at start
  std::string grpc_address;
};

struct RestoreResult {
  uint64_t cluster_id = 0;  // the new cluster's
  uint64_t member_id = 0;
  uint64_t index = 0;       // the backup's Raft index and term, kept
  uint64_t term = 0;
  int64_t revision = 0;     // the MVCC store's, kept
  uint64_t keys = 0;        // keys with retained versions
};

// kInvalid for missing options, kConflict for a data dir that holds
// anything, kCorrupt (naming the file) for a backup that fails a check, kIo.
Result<RestoreResult> restore_data_dir(const RestoreOptions& options);

// What `kvnode snapshot status FILE` prints: etcdctl snapshot status's
// columns. hash: the snapshot's CRC-32C (etcd prints a CRC-32C of its bbolt
// contents there); total_keys: retained versions (one per revision of each
// key, deleted ones included, as etcd counts its key bucket's entries).
struct SnapshotStatus {
  uint32_t hash = 0;
  int64_t revision = 0;
  uint64_t total_keys = 0;
  uint64_t total_size = 0;  // bytes of the file
};
Result<SnapshotStatus> snapshot_status(const std::string& path);
// etcdctl's renderings: "simple" (default), "table", "json".
Result<std::string> format_snapshot_status(const SnapshotStatus& s, const std::string& format);

}  // namespace ckv::node
