// Encoding and scanning of WAL segments and the WAL metadata file (see wal_format.h).
#include "storage/wal/wal_format.h"

#include <cstring>

#include "common/bytes.h"
#include "common/crc32c.h"
#include "storage/log_storage.h"

namespace ckv::storage::wal {

namespace {

constexpr char kSegmentMagic[] = "CKVWALSG";
constexpr char kMetaMagic[] = "CKVWALMT";
constexpr size_t kMagicBytes = 8;
constexpr uint8_t kMetaFormat = 1;
constexpr size_t kMaxMetaKeyBytes = 4096;

uint32_t get_u32(std::string_view s, size_t at) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i)
    v = (v << 8) | static_cast<unsigned char>(s[at + static_cast<size_t>(i)]);
  return v;
}
uint64_t get_u64(std::string_view s, size_t at) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i)
    v = (v << 8) | static_cast<unsigned char>(s[at + static_cast<size_t>(i)]);
  return v;
}
void set_u32(std::string& s, size_t at, uint32_t v) {
  for (size_t i = 0; i < 4; ++i) s[at + i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

// Starts a record: header placeholder and type; finish_record fills the header.
size_t begin_record(std::string& out, RecordType type) {
  const size_t at = out.size();
  out.append(kRecordHeaderBytes, '\0');
  put_u8(out, static_cast<uint8_t>(type));
  return at;
}
void finish_record(std::string& out, size_t at, uint32_t salt) {
  const size_t body = at + kRecordHeaderBytes;
  const size_t len = out.size() - body;
  set_u32(out, at, static_cast<uint32_t>(len));
  set_u32(out, at + 4, crc32c(salt, out.data() + body, len));
}

Status corrupt_at(uint64_t offset, const std::string& what) {
  return Status(StatusCode::kCorrupt, "offset " + std::to_string(offset) + ": " + what);
}

enum class Read : uint8_t { kOk, kEnd, kBad };
struct Parsed {
  Read read = Read::kBad;
  uint64_t next = 0;
  std::string_view body;  // type + payload
  std::string why;        // for kBad
};

// Reads the frame at pos: kEnd at the end of the file or at zeros where a
// header would start (preallocated space), kBad when it is not an intact record.
Parsed read_frame(std::string_view file, uint64_t pos, uint32_t salt) {
  Parsed p;
  if (pos == file.size()) {
    p.read = Read::kEnd;
    return p;
  }
  if (file.size() - pos < kRecordHeaderBytes) {
    // Too little room for any record. A segment's first batch may fill it
    // (and a batch on a full disk may run to its end) up to a few bytes
    // short: zeros there are preallocated space, like an all-zero header.
    // Found by the simulator: older segments ending so refused to open.
    if (file.find_first_not_of('\0', pos) == std::string_view::npos) {
      p.read = Read::kEnd;
      return p;
    }
    p.why = "record header cut short by the end of the file";
    return p;
  }
  const uint32_t len = get_u32(file, pos);
  const uint32_t crc = get_u32(file, pos + 4);
  if (len == 0 && crc == 0) {
    p.read = Read::kEnd;
    return p;
  }
  if (len == 0 || len > kMaxRecordBytes) {
    p.why = "record length " + std::to_string(len) + " is out of range";
    return p;
  }
  if (file.size() - pos - kRecordHeaderBytes < len) {
    p.why = "record of " + std::to_string(len) + " bytes runs past the end of the file";
    return p;
  }
  p.body = file.substr(pos + kRecordHeaderBytes, len);
  if (crc32c(salt, p.body.data(), p.body.size()) != crc) {
    p.why = "checksum mismatch";
    return p;
  }
  p.read = Read::kOk;
  p.next = pos + kRecordHeaderBytes + len;
  return p;
}

// Decodes an intact frame's body. An intact frame with a bad body was
// written that way (or forged): never a torn write, always kCorrupt.
struct Commit {
  uint64_t seq = 0;
  uint64_t start = 0;
  uint64_t synced_to = 0;  // 0: not recorded (format 1)
};

size_t commit_record_bytes(uint32_t format) {
  return format == kSegmentFormatV1 ? kCommitRecordBytesV1 : kCommitRecordBytes;
}

Status decode_record(std::string_view body, uint64_t offset, raft::Index keep_data_from,
                     uint32_t format, Record& r, Commit& commit) {
  ByteReader rd(body);
  uint8_t type = 0;
  (void)rd.u8(type);
  r.offset = offset;
  switch (static_cast<RecordType>(type)) {
    case RecordType::kEntry: {
      uint8_t etype = 0;
      if (!rd.u64le(r.entry.index) || !rd.u64le(r.entry.term) || !rd.u8(etype)) {
        return corrupt_at(offset, "entry record is cut short");
      }
      if (etype > static_cast<uint8_t>(raft::EntryType::kConfig)) {
        return corrupt_at(offset, "entry " + std::to_string(r.entry.index) + " has unknown type " +
                                      std::to_string(etype));
      }
      if (r.entry.index == 0) return corrupt_at(offset, "entry with index 0");
      if (r.entry.term > kMaxStoredTerm) {
        return corrupt_at(offset, "log entry " + std::to_string(r.entry.index) + ": term " +
                                      std::to_string(r.entry.term) + " is above the ceiling " +
                                      std::to_string(kMaxStoredTerm));
      }
      r.entry.type = static_cast<raft::EntryType>(etype);
      if (r.entry.index >= keep_data_from) r.entry.data.assign(rd.rest());
      r.type = RecordType::kEntry;
      return Status::ok();
    }
    case RecordType::kHardState:
      if (!rd.u64le(r.hard_state.term) || !rd.u64le(r.hard_state.vote) ||
          !rd.u64le(r.hard_state.commit) || !rd.at_end()) {
        return corrupt_at(offset, "hard state record is malformed");
      }
      if (r.hard_state.term > kMaxStoredTerm) {
        return corrupt_at(offset, "hard state term " + std::to_string(r.hard_state.term) +
                                      " is above the ceiling " + std::to_string(kMaxStoredTerm));
      }
      r.type = RecordType::kHardState;
      return Status::ok();
    case RecordType::kTruncate:
      if (!rd.u64le(r.from) || !rd.at_end() || r.from == 0)
        return corrupt_at(offset, "truncate record is malformed");
      r.type = RecordType::kTruncate;
      return Status::ok();
    case RecordType::kDropAll:
      if (!rd.at_end()) return corrupt_at(offset, "drop-all record is malformed");
      r.type = RecordType::kDropAll;
      return Status::ok();
    case RecordType::kCommit:
      if (!rd.u64le(commit.seq) || !rd.u64le(commit.start) ||
          (format != kSegmentFormatV1 && !rd.u64le(commit.synced_to)) || !rd.at_end() ||
          commit.seq == 0) {
        return corrupt_at(offset, "commit record is malformed");
      }
      r.type = RecordType::kCommit;
      return Status::ok();
  }
  return corrupt_at(offset, "unknown record type " + std::to_string(type));
}

// An intact commit record at pos, if there is one.
std::optional<Commit> commit_at(std::string_view file, uint64_t pos, uint32_t salt,
                                uint32_t format) {
  const size_t bytes = commit_record_bytes(format);
  if (file.size() - pos < bytes) return std::nullopt;
  if (get_u32(file, pos) != bytes - kRecordHeaderBytes ||
      static_cast<uint8_t>(file[pos + kRecordHeaderBytes]) !=
          static_cast<uint8_t>(RecordType::kCommit)) {
    return std::nullopt;
  }
  Parsed p = read_frame(file, pos, salt);
  if (p.read != Read::kOk) return std::nullopt;
  Commit c{get_u64(p.body, 1), get_u64(p.body, 9), 0};
  if (format != kSegmentFormatV1) c.synced_to = get_u64(p.body, 17);
  return c;
}

// Zeros from pos to the end of its sector: if that sector never reached
// the disk, it reads as before the batch, which began writing it at pos at
// the latest (the records before pos in this batch were read whole).
bool rest_of_sector_zero(std::string_view file, uint64_t pos) {
  const uint64_t end =
      std::min<uint64_t>(file.size(), (pos / kUnwrittenBlockBytes + 1) * kUnwrittenBlockBytes);
  for (uint64_t i = pos; i < end; ++i) {
    if (file[i] != 0) return false;
  }
  return pos < end;
}

bool has_unwritten_block(std::string_view file, uint64_t from, uint64_t to) {
  uint64_t b = (from + kUnwrittenBlockBytes - 1) / kUnwrittenBlockBytes * kUnwrittenBlockBytes;
  for (; b + kUnwrittenBlockBytes <= to; b += kUnwrittenBlockBytes) {
    bool zero = true;
    for (size_t i = 0; i < kUnwrittenBlockBytes && zero; ++i) zero = file[b + i] == 0;
    if (zero) return true;
  }
  return false;
}

}  // namespace

std::string encode_segment_header(const SegmentHeader& h) {
  std::string out(kSegmentMagic, kMagicBytes);
  put_u32le(out, h.format);
  put_u64le(out, h.seq);
  put_u32le(out, h.salt);
  put_u32le(out, 0);
  put_u32le(out, crc32c(out));
  return out;
}

Result<SegmentHeader> decode_segment_header(std::string_view bytes) {
  if (bytes.size() < kSegmentHeaderBytes) {
    return Status(StatusCode::kCorrupt,
                  "segment header cut short (" + std::to_string(bytes.size()) + " bytes)");
  }
  if (bytes.substr(0, kMagicBytes) != std::string_view(kSegmentMagic, kMagicBytes)) {
    return Status(StatusCode::kCorrupt, "not a WAL segment (bad magic)");
  }
  if (crc32c(bytes.substr(0, kSegmentHeaderBytes - 4)) != get_u32(bytes, kSegmentHeaderBytes - 4)) {
    return Status(StatusCode::kCorrupt, "segment header checksum mismatch");
  }
  const uint32_t format = get_u32(bytes, 8);
  if (format != kSegmentFormat && format != kSegmentFormatV1) {
    return Status(StatusCode::kCorrupt, "unknown segment format " + std::to_string(format));
  }
  return SegmentHeader{get_u64(bytes, 12), get_u32(bytes, 20), format};
}

void append_entry_record(std::string& out, uint32_t salt, const raft::Entry& e) {
  const size_t at = begin_record(out, RecordType::kEntry);
  put_u64le(out, e.index);
  put_u64le(out, e.term);
  put_u8(out, static_cast<uint8_t>(e.type));
  out += e.data;
  finish_record(out, at, salt);
}

size_t entry_record_bytes(const raft::Entry& e) {
  return kRecordHeaderBytes + 1 + 17 + e.data.size();
}

void append_hard_state_record(std::string& out, uint32_t salt, const raft::HardState& hs) {
  const size_t at = begin_record(out, RecordType::kHardState);
  put_u64le(out, hs.term);
  put_u64le(out, hs.vote);
  put_u64le(out, hs.commit);
  finish_record(out, at, salt);
}

void append_truncate_record(std::string& out, uint32_t salt, raft::Index from) {
  const size_t at = begin_record(out, RecordType::kTruncate);
  put_u64le(out, from);
  finish_record(out, at, salt);
}

void append_drop_all_record(std::string& out, uint32_t salt) {
  const size_t at = begin_record(out, RecordType::kDropAll);
  finish_record(out, at, salt);
}

void append_commit_record(std::string& out, uint32_t salt, uint64_t seq, uint64_t batch_start,
                          uint64_t synced_to, uint32_t format) {
  const size_t at = begin_record(out, RecordType::kCommit);
  put_u64le(out, seq);
  put_u64le(out, batch_start);
  if (format != kSegmentFormatV1) put_u64le(out, synced_to);
  finish_record(out, at, salt);
}

Result<SegmentScan> scan_segment(std::string_view file, uint64_t expect_seq, bool last,
                                 raft::Index keep_data_from, const BatchSink& on_batch) {
  auto header = decode_segment_header(file);
  if (!header.is_ok()) return corrupt_at(0, header.status().message());
  const uint32_t salt = header.value().salt;
  const uint32_t format = header.value().format;
  const size_t commit_bytes = commit_record_bytes(format);
  SegmentScan scan;
  std::vector<Record> pending;
  uint64_t pos = kSegmentHeaderBytes;
  uint64_t batch_start = pos;
  Parsed p;
  for (;;) {
    p = read_frame(file, pos, salt);
    if (p.read != Read::kOk) break;
    Record r;
    Commit commit;
    if (Status s = decode_record(p.body, pos, keep_data_from, format, r, commit); !s.is_ok())
      return s;
    const uint64_t seq = commit.seq;
    const uint64_t start = commit.start;
    if (r.type == RecordType::kCommit) {
      const uint64_t want = scan.last_seq != 0 ? scan.last_seq + 1 : expect_seq;
      if (want != 0 && seq != want) {
        return corrupt_at(pos, "batch " + std::to_string(seq) + " where batch " +
                                   std::to_string(want) + " was expected: batches are missing");
      }
      if (start != batch_start) {
        return corrupt_at(pos, "commit record of batch " + std::to_string(seq) +
                                   " names a batch at offset " + std::to_string(start) + ", not " +
                                   std::to_string(batch_start));
      }
      if (scan.first_seq == 0) scan.first_seq = seq;
      scan.last_seq = seq;
      if (on_batch) {
        if (Status s = on_batch(pending); !s.is_ok()) return s;
      } else {
        for (Record& q : pending) scan.records.push_back(std::move(q));
      }
      pending.clear();
      pos = p.next;
      batch_start = pos;
      scan.end_offset = pos;
      continue;
    }
    pending.push_back(std::move(r));
    pos = p.next;
  }
  // Reading stopped at pos. Anything intact beyond it decides what this is.
  const bool clean = p.read == Read::kEnd && pending.empty() && pos == batch_start;
  const uint64_t want = scan.last_seq != 0 ? scan.last_seq + 1 : expect_seq;
  std::optional<uint64_t> own_commit;  // the commit record of the batch reading stopped in
  bool unsynced_beyond = false;        // intact later batches that prove nothing (below)
  for (uint64_t o = pos + 1; o + commit_bytes <= file.size(); ++o) {
    // Only a commit record's length byte can start one (0x19, or 0x11 in
    // format 1): skip the rest fast.
    const void* hit =
        std::memchr(file.data() + o, static_cast<int>(commit_bytes - kRecordHeaderBytes),
                    file.size() - commit_bytes + 1 - o);
    if (hit == nullptr) break;
    o = static_cast<uint64_t>(static_cast<const char*>(hit) - file.data());
    auto c = commit_at(file, o, salt, format);
    if (!c) continue;
    if ((want == 0 || c->seq == want) && c->start == batch_start && !own_commit) {
      own_commit = o;
      continue;
    }
    // Written while the bytes at pos were not yet durable: its own sync may
    // have been cut short, keeping its pages and not theirs (wal_format.h).
    if (c->synced_to != 0 && c->synced_to <= pos) {
      unsynced_beyond = true;
      continue;
    }
    const std::string why = p.read == Read::kBad ? p.why : "unexpected zeros";
    return corrupt_at(pos, why + ", but an intact later batch (" + std::to_string(c->seq) +
                               ") follows at offset " + std::to_string(o) +
                               ": the log is damaged before its end");
  }
  if (clean && !own_commit && !unsynced_beyond) return scan;
  scan.stop_offset = pos;
  scan.stop_reason = p.read == Read::kBad ? p.why
                     : clean ? "a batch missing before later ones, written before it was synced"
                             : "zeros inside a batch";
  if (!last) {
    return corrupt_at(
        pos,
        scan.stop_reason + " in a segment that is not the newest (its batches were all synced)");
  }
  if (own_commit) {
    // The batch's own commit reached the disk, so its write did: a bad
    // record inside it is damage unless the bad spot was never written.
    const bool zero_header = pos + kRecordHeaderBytes <= file.size() && get_u32(file, pos) == 0 &&
                             get_u32(file, pos + 4) == 0;
    if (!zero_header && !rest_of_sector_zero(file, pos) &&
        !has_unwritten_block(file, pos, *own_commit)) {
      return corrupt_at(
          pos, scan.stop_reason + " inside batch " + std::to_string(want == 0 ? 0 : want) +
                   ", whose commit record at offset " + std::to_string(*own_commit) + " is intact");
    }
  }
  scan.torn = true;
  return scan;
}

std::string encode_meta(const WalMeta& m) {
  std::string body;
  put_u64le(body, m.first_index);
  put_u32le(body, static_cast<uint32_t>(m.segments.size()));
  for (const SegmentInfo& s : m.segments) {
    put_u64le(body, s.seq);
    put_u64le(body, s.prealloc_bytes);
  }
  put_u32le(body, static_cast<uint32_t>(m.records.size()));
  for (const auto& [k, v] : m.records) {
    put_string32(body, k);
    put_string32(body, v);
  }
  std::string out(kMetaMagic, kMagicBytes);
  put_u8(out, kMetaFormat);
  put_u32le(out, crc32c(body));
  out += body;
  return out;
}

Result<WalMeta> decode_meta(std::string_view bytes) {
  auto bad = [](const std::string& what) { return Status(StatusCode::kCorrupt, what); };
  if (bytes.size() > kMaxMetaFileBytes)
    return bad("larger than " + std::to_string(kMaxMetaFileBytes) + " bytes");
  ByteReader r(bytes);
  std::string magic;
  uint8_t format = 0;
  uint32_t crc = 0;
  if (!r.bytes(kMagicBytes, magic) || magic != std::string_view(kMetaMagic, kMagicBytes)) {
    return bad("not a WAL metadata file (bad magic or empty)");
  }
  if (!r.u8(format) || format != kMetaFormat)
    return bad("unknown format " + std::to_string(format));
  if (!r.u32le(crc)) return bad("cut short");
  if (crc32c(r.rest()) != crc) return bad("checksum mismatch");
  WalMeta m;
  uint32_t n = 0;
  if (!r.u64le(m.first_index) || !r.u32le(n) || n == 0 || n > kMaxMetaSegments)
    return bad("bad segment list");
  for (uint32_t i = 0; i < n; ++i) {
    SegmentInfo s;
    if (!r.u64le(s.seq) || !r.u64le(s.prealloc_bytes)) return bad("segment list cut short");
    if (s.seq == 0 || (!m.segments.empty() && s.seq != m.segments.back().seq + 1)) {
      return bad("segment list is not contiguous at segment " + std::to_string(s.seq));
    }
    if (s.prealloc_bytes < kMinSegmentBytes || s.prealloc_bytes > kMaxSegmentBytes) {
      return bad("segment " + std::to_string(s.seq) + " has an out-of-range size " +
                 std::to_string(s.prealloc_bytes));
    }
    m.segments.push_back(s);
  }
  if (!r.u32le(n)) return bad("record count missing");
  for (uint32_t i = 0; i < n; ++i) {
    std::string k;
    std::string v;
    if (!r.string32(k, kMaxMetaKeyBytes) || !r.string32(v, kMaxMetaFileBytes))
      return bad("records cut short");
    m.records[k] = std::move(v);
  }
  if (!r.at_end()) return bad("trailing bytes");
  return m;
}

}  // namespace ckv::storage::wal
