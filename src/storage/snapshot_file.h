// Snapshot files: the state machine's payload at one log index, written atomically and checked on read.
//
// Format CKVSNAP2 (little-endian): "CKVSNAP2", index u64, term u64,
// membership length u32 + membership bytes (raft::encode_membership), the
// state machine's payload (opaque here: fsm/kv_state_machine.h), and finally
// the CRC-32C of everything before it (u32). The same bytes travel in
// InstallSnapshot chunks, so a follower verifies exactly what the leader wrote.
//
// Format CKVSNAP1 (written before the MVCC store, still in users' data
// dirs; read, never written by the node): the same header with magic
// "CKVSNAP1", then record count u64 and per record key length u32, key,
// value length u32, value; then the CRC. It is read as a key-value map that
// the node converts (each key a put) and logs.
//
// Files are named snapshot-<index, 20 digits>-<term>.snap in the data dir and
// appear only complete: written to a .tmp file, fsynced, renamed, and the
// directory fsynced (so the rename itself survives a crash). A snapshot
// being received from the leader (InstallSnapshot, chunk by chunk) lives in
// kIncomingSnapshotName until it is complete and adopted.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"
#include "raft/types.h"

namespace ckv::storage {

using KvMap = std::map<std::string, std::string, std::less<>>;

// Where InstallSnapshot chunks are written. Deliberately not a snapshot-*
// name: removing old snapshots must never remove a transfer in progress.
inline constexpr char kIncomingSnapshotName[] = "incoming-snapshot.partial";

struct SnapshotFile {
  std::string path;
  raft::SnapshotMeta meta;  // meta.size_bytes is the file size
};

// Produces a snapshot's payload by calling sink with each piece in order;
// returns the first failure (its own, or the sink's: a full disk).
using PayloadSink = std::function<Status(std::string_view)>;
using PayloadWriter = std::function<Status(const PayloadSink& sink)>;

// Writes the snapshot at (index, term, membership) into dir as CKVSNAP2.
Result<SnapshotFile> write_snapshot_file(const std::string& dir, raft::Index index, raft::Term term,
                                         const raft::Membership& membership, const PayloadWriter& payload);
// The same format at a path of the caller's choosing (a backup for
// Maintenance.Snapshot, a restored data dir): written to path + ".tmp",
// fsynced, renamed to path, and its directory fsynced.
Result<SnapshotFile> write_snapshot_file_at(const std::string& path, raft::Index index, raft::Term term,
                                            const raft::Membership& membership, const PayloadWriter& payload);
// Writes map as a CKVSNAP1 file: only for tests of the upgrade path.
Result<SnapshotFile> write_legacy_snapshot_file(const std::string& dir, raft::Index index, raft::Term term,
                                                const raft::Membership& membership, const KvMap& map);

struct LoadedSnapshot {
  raft::SnapshotMeta meta;
  std::string payload;              // CKVSNAP2: the state machine's payload
  std::optional<KvMap> legacy_map;  // CKVSNAP1: its key-value map (payload empty)
};
// Reads and verifies a snapshot file of either format; kCorrupt (naming the
// file) on a bad magic, truncation or checksum mismatch.
Result<LoadedSnapshot> read_snapshot_file(const std::string& path);
// The same check of a file's bytes already read (path only names it in messages).
Result<LoadedSnapshot> parse_snapshot_bytes(const std::string& path, std::string_view data);

// The newest snapshot file in dir by index (nullopt if none). Temp files are ignored.
Result<std::optional<std::string>> find_latest_snapshot(const std::string& dir);
// Deletes every complete snapshot file (snapshot-*.snap) in dir other than
// keep. Never touches temp files: a local snapshot being written (.snap.tmp)
// or one being received (kIncomingSnapshotName) may be in progress.
Status remove_other_snapshots(const std::string& dir, const std::string& keep);
// At start, before anything writes: deletes what an interrupted process left
// behind (snapshot-*.tmp, the incoming snapshot, and the pre-fix incoming
// name snapshot-incoming.tmp). A restarted transfer begins again at offset 0.
Status remove_stale_temp_files(const std::string& dir);

// Moves a fully received snapshot (at tmp_path) into place as a verified
// snapshot file. Used when InstallSnapshot completes; returns the file and
// what it holds (verifying means reading it all, so the caller restores
// its state machine from this instead of reading the file again). verify,
// when given, checks the contents first (the state machine decodes its
// payload): on its failure nothing is moved.
struct AdoptedSnapshot {
  SnapshotFile file;
  LoadedSnapshot snapshot;
};
using SnapshotVerifier = std::function<Status(const LoadedSnapshot&)>;
Result<AdoptedSnapshot> adopt_snapshot_file(const std::string& dir, const std::string& tmp_path,
                                            const SnapshotVerifier& verify = nullptr);

// fsyncs a directory so that renames and creations in it are durable.
Status sync_dir(const std::string& dir);
// The data dir's file helpers, shared with node_meta.cc. io_error reads
// errno: kNoSpace for ENOSPC, else kIo, "path: what: strerror". write_all
// writes all of data to fd, retrying on EINTR.
Status io_error(const std::string& path, const char* what);
Status write_all(int fd, std::string_view data, const std::string& path);
// Appends what fd holds from its offset to the end to out, retrying on
// EINTR; stops early once out is longer than max_bytes (the caller checks).
Status read_all(int fd, const std::string& path, std::string& out, size_t max_bytes = SIZE_MAX);
// Opens `path` and reads all of it into `out` (read_all); errors name the file.
Status read_whole_file(const std::string& path, std::string& out);

}  // namespace ckv::storage
