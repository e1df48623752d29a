// Maintenance.Snapshot's source: a fresh backup (Node::write_backup) read chunk by chunk, then its SHA-256.
//
// Why a file rather than streaming the state machine straight to the
// client: a slow reader would then hold the snapshot cursor open, and with
// it the node's own snapshots and compaction (kv_state_machine.h). The node
// writes the copy at local disk speed (writes go on meanwhile), the file is
// unlinked as soon as it is open, and the client then reads at its own
// pace from it: one chunk (storage::kBackupChunkBytes) in memory at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/status.h"
#include "node/node.h"
#include "storage/backup_file.h"

namespace ckv::etcd {

// How long a Snapshot call waits for the node to write the copy (a large
// store takes seconds: 1M keys ~2-4 s here).
inline constexpr int kBackupWriteTimeoutMs = 10 * 60 * 1000;

class BackupStream {
 public:
  // Asks node for a backup and waits for it (in steps, giving up when
  // cancelled() says the client went away). kNoSpace, kUnavailable, kTimeout, kIo.
  static Result<std::unique_ptr<BackupStream>> open(node::Node& node, int timeout_ms,
                                                    const std::function<bool()>& cancelled);
  // The same for a backup the caller already has (Node::write_backup's answer).
  static Result<std::unique_ptr<BackupStream>> from_file(const node::BackupFile& file);
  ~BackupStream();
  BackupStream(const BackupStream&) = delete;
  BackupStream& operator=(const BackupStream&) = delete;

  struct Piece {
    // Up to kBackupChunkBytes of the file, its padding tail (backup_file.h),
    // then the 32-byte SHA-256 of all that.
    std::string blob;
    uint64_t remaining_bytes;   // body bytes after this piece (etcd's remaining_bytes)
    bool last;                  // the SHA-256: nothing follows
  };
  // The next piece; kIo if the file cannot be read. Not after last.
  Result<Piece> next();
  uint64_t file_bytes() const { return size_; }
  uint64_t body_bytes() const { return size_ + tail_.size(); }
  const node::BackupFile& file() const { return file_; }

 private:
  BackupStream(int fd, node::BackupFile file);
  int fd_;
  node::BackupFile file_;
  uint64_t size_ = 0;
  uint64_t sent_ = 0;
  std::string tail_;  // storage::backup_tail(size_)
  bool tail_sent_ = false;
  bool done_ = false;
  storage::Sha256 sha_;
};

}  // namespace ckv::etcd
