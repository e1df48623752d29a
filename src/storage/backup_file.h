// Backup files (etcdctl snapshot save, kvnode restore): a snapshot file followed by its SHA-256, and their checks.
//
// A backup is what Maintenance.Snapshot streams: the bytes of a CKVSNAP2
// snapshot file (snapshot_file.h: header, membership, the state machine's
// payload, CRC-32C), zero padding and a 16-byte tail ("CKVBKUP1", u64 file
// length) that bring the body to a multiple of 512 bytes, and then the
// SHA-256 of the body (32 bytes), exactly as etcd appends the SHA-256 of
// its bbolt file. Why the padding: etcdctl 3.4.23's `snapshot save` refuses
// a download whose size is not 512 * n + 32 ("sha256 checksum not found"),
// as bbolt files are made of pages. A snapshot file copied straight out of
// a data dir (no padding, no SHA-256) is accepted too: its CRC-32C covers it.
//
// Thread safety: all functions are pure or touch only the files named.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"
#include "storage/snapshot_file.h"

namespace ckv::storage {

inline constexpr size_t kSha256Bytes = 32;
// The body before the SHA-256 is a multiple of this (etcdctl checks).
inline constexpr size_t kBackupAlignBytes = 512;
inline constexpr size_t kBackupTailBytes = 16;  // "CKVBKUP1" + u64le snapshot file length
// What follows a snapshot file of file_bytes in a backup body: zeros and the tail.
std::string backup_tail(uint64_t file_bytes);
// Bytes per Maintenance.Snapshot message: etcd's snapshotSendBufferSize
// (32 KiB). The sender holds one chunk at a time, so a slow reader pins
// one chunk in memory plus what grpc buffers under flow control.
inline constexpr size_t kBackupChunkBytes = size_t{32} << 10;

// Incremental SHA-256 (OpenSSL).
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(std::string_view data);
  std::array<unsigned char, kSha256Bytes> finish();

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

std::string to_hex(std::string_view bytes);

// A verified backup: its snapshot and how it was checked.
struct LoadedBackup {
  LoadedSnapshot snapshot;
  bool had_sha256 = false;      // false: a bare snapshot file (CRC-32C only)
  uint32_t crc32c = 0;          // the snapshot file's own trailer: kvnode snapshot status's HASH
  uint64_t file_bytes = 0;      // the whole file, SHA-256 included
};

// Reads path and checks it whole: the trailing SHA-256 if there is one, the
// snapshot's CRC-32C, and the format (CKVSNAP2 only: a backup is never the
// old map format). kCorrupt names the file and what is wrong (truncated,
// damaged, not a backup); nothing is trusted before that.
Result<LoadedBackup> read_backup_file(const std::string& path);

}  // namespace ckv::storage
