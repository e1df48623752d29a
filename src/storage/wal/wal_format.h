// The WAL's on-disk format: segment headers, framed records, the batch scan that tells a torn tail from damage, and the metadata file.
//
// A segment file (wal/<seq, 16 hex digits>.wal) is a 32-byte header, then
// records, then zeros (the file is preallocated; a segment's first batch
// may fill it to within a few bytes of its end, or run past it, growing
// the file). Little-endian throughout.
//
//   segment header: "CKVWALSG" | format u32 (2; 1 is still read) | segment seq u64 | salt u32 | reserved u32 (0) | crc32c u32 of the 28 bytes before
//   record:         length u32 (of type + payload) | crc32c u32 (seeded with the salt) of type + payload | type u8 | payload
//
//   type  name       payload                                   replay
//   1     entry      index u64, term u64, entry type u8, data  append (index must follow the last entry)
//   2     hard state term u64, vote u64, commit u64            replace the hard state
//   3     truncate   from u64                                  drop entries >= from (§5.3: a leader overwrote them)
//   4     drop all   (none)                                    drop every entry (§7: a snapshot was installed)
//   5     commit     batch seq u64, batch start offset u64,    the records since the last commit are one durable batch
//                    synced to u64 (format 2 only)
//
// One persist() is one batch: its records, then a commit record, written
// with one pwrite and made durable with one fdatasync. Replay applies only
// batches whose commit record is intact. Batch seqs count up by one across
// all segments; the first batch in a segment begins with the hard state, so
// deleting older segments never loses it.
//
// "Synced to" is the offset below which every byte of the segment was
// durable (an fdatasync had returned) when the batch was written: a batch
// written after unsynced ones (commit-only batches are not synced) does not
// prove that those reached the disk, since a crash during its own sync may
// keep its pages and lose theirs.
//
// The salt is random per segment, so a client's value that happens to (or
// is made to) contain the bytes of a record never passes as one.
//
// Torn tail versus damage (scan_segment): reading stops at the first record
// that is not intact (zero header, bad length, bad checksum) at offset X.
// Zeros where a header would start (an all-zero header, or fewer bytes
// than a header before the end of the file, all zero) are the end.
//  - The rest of the segment is searched for intact commit records. One
//    with a later batch seq than the batch X is in proves a complete,
//    acknowledged batch lies beyond the damage: kCorrupt (file + offset X),
//    unless its "synced to" is <= X: it was written while X was not yet
//    durable, so it may be the torn tail itself (format 1: always kCorrupt).
//  - In any segment but the last, stopping anywhere except cleanly after a
//    commit (zeros or end of file) is kCorrupt: those batches were synced
//    before the next segment was made.
//  - In the last segment, a stop inside the last batch is a torn tail (a
//    crash during its write, which was never acknowledged) and is cut off
//    at the last commit. Wal::open also zeroes any nonzero byte further on
//    after a clean end: the zeros written ahead of the appends (wal.h) are
//    writes a crash can tear too. One exception: if that batch's own commit record
//    is intact, its write reached the disk whole, so a bad record inside it
//    is damage, unless the bad spot is unwritten (an all-zero record
//    header, zeros from X to the end of its 512-byte sector, or an all-zero
//    aligned sector: pages written out of order by a crash).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "raft/types.h"

namespace ckv::storage::wal {

inline constexpr size_t kSegmentHeaderBytes = 32;
inline constexpr size_t kRecordHeaderBytes = 8;  // length + crc
// Default preallocated size of one segment file; -wal-segment-bytes.
inline constexpr uint64_t kDefaultSegmentBytes = uint64_t{64} << 20;
// Smallest segment size accepted (a header and a few records); tests use small ones.
inline constexpr uint64_t kMinSegmentBytes = 4096;
inline constexpr uint64_t kMaxSegmentBytes = uint64_t{1} << 34;  // 16 GiB
// A record longer than this is damage: entries are bounded far below it by
// the Raft frame limit (64 MiB) and the uncommitted-log limit.
inline constexpr uint32_t kMaxRecordBytes = uint32_t{1} << 30;
// Unwritten space after a crash reads as zeros; a block this size, aligned,
// all zero inside a batch means pages of it never reached the disk.
inline constexpr size_t kUnwrittenBlockBytes = 512;

enum class RecordType : uint8_t {
  kEntry = 1,
  kHardState = 2,
  kTruncate = 3,
  kDropAll = 4,
  kCommit = 5
};

inline constexpr uint32_t kSegmentFormatV1 = 1;  // commit records without "synced to"
inline constexpr uint32_t kSegmentFormat = 2;    // what new segments are written in

struct SegmentHeader {
  uint64_t seq = 0;
  uint32_t salt = 0;
  uint32_t format = kSegmentFormat;
};
std::string encode_segment_header(const SegmentHeader& h);
// kCorrupt with the reason (the caller adds the file name).
Result<SegmentHeader> decode_segment_header(std::string_view bytes);

// Record builders append one framed record to out.
void append_entry_record(std::string& out, uint32_t salt, const raft::Entry& e);
void append_hard_state_record(std::string& out, uint32_t salt, const raft::HardState& hs);
void append_truncate_record(std::string& out, uint32_t salt, raft::Index from);
void append_drop_all_record(std::string& out, uint32_t salt);
// synced_to is written only in format 2 segments.
void append_commit_record(std::string& out, uint32_t salt, uint64_t seq, uint64_t batch_start,
                          uint64_t synced_to, uint32_t format = kSegmentFormat);
// Encoded sizes, to size a batch before building it.
size_t entry_record_bytes(const raft::Entry& e);
inline constexpr size_t kHardStateRecordBytes = kRecordHeaderBytes + 1 + 24;
inline constexpr size_t kTruncateRecordBytes = kRecordHeaderBytes + 1 + 8;
inline constexpr size_t kDropAllRecordBytes = kRecordHeaderBytes + 1;
inline constexpr size_t kCommitRecordBytes = kRecordHeaderBytes + 1 + 24;  // format 2
inline constexpr size_t kCommitRecordBytesV1 = kRecordHeaderBytes + 1 + 16;

// One decoded record of a complete batch.
struct Record {
  RecordType type = RecordType::kEntry;
  uint64_t offset = 0;         // where it starts in the segment
  raft::Entry entry;           // kEntry
  raft::HardState hard_state;  // kHardState
  raft::Index from = 0;        // kTruncate
};

struct SegmentScan {
  std::vector<Record> records;  // of complete batches, in order (commit records left out)
  uint64_t first_seq = 0;       // seq of the first and last complete batch; 0 when none
  uint64_t last_seq = 0;
  uint64_t end_offset =
      kSegmentHeaderBytes;   // just after the last complete batch: appends continue here
  bool torn = false;         // bytes after end_offset belong to an incomplete last batch
  uint64_t stop_offset = 0;  // where reading stopped
  std::string stop_reason;   // why (for the repair log line); empty at a clean end
};

// Scans one segment's bytes (the whole file, header included). expect_seq:
// the seq its first batch must have (0: any, the oldest segment). last:
// whether this is the newest segment (the only one that may have a torn
// tail). Entries below keep_data_from are checked but their data is not
// copied (they are compacted; replay needs only their index and term).
// kCorrupt messages start with "offset N: ".
//
// on_batch, when given, receives each complete batch's records (commit
// record left out) as soon as its commit record is read, and may move them
// out; SegmentScan::records then stays empty. Replay uses it to build the
// log as it reads instead of holding every record of a 64 MiB segment
// first (issue 10). Its failure ends the scan with that status. A later
// failure of the scan itself still fails it: the caller must discard what
// on_batch built when the scan fails.
using BatchSink = std::function<Status(std::vector<Record>&)>;
Result<SegmentScan> scan_segment(std::string_view file, uint64_t expect_seq, bool last,
                                 raft::Index keep_data_from = 0, const BatchSink& on_batch = nullptr);

// The metadata file (wal/meta): the source of truth for which segments exist.
//   "CKVWALMT" | format u8 (1) | crc32c u32 of the body | body:
//   first_index u64 | segment count u32 | per segment: seq u64, preallocated bytes u64
//   | record count u32 | per record: key (u32 length + bytes), value (u32 length + bytes)
struct SegmentInfo {
  uint64_t seq = 0;
  uint64_t prealloc_bytes = 0;
};
struct WalMeta {
  raft::Index first_index = 0;                 // compaction point: entries below it are gone
  std::vector<SegmentInfo> segments;           // ascending seq, contiguous
  std::map<std::string, std::string> records;  // get_meta / put_meta
};
inline constexpr size_t kMaxMetaFileBytes = size_t{1} << 20;
// 16 bytes each: the list stays well inside kMaxMetaFileBytes. At 64 MiB a
// segment that is 2 TiB of uncompacted log.
inline constexpr size_t kMaxMetaSegments = size_t{1} << 15;
std::string encode_meta(const WalMeta& m);
Result<WalMeta> decode_meta(std::string_view bytes);

}  // namespace ckv::storage::wal
