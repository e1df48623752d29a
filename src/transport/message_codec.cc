// Encoding and bounds-checked decoding of Raft messages and frames (format described in message_codec.h).
#include "transport/message_codec.h"

#include <algorithm>
#include <utility>

#include "common/bytes.h"
#include "common/crc32c.h"

namespace ckv::transport {
namespace {

constexpr uint8_t kFlagReject = 1u << 0;
constexpr uint8_t kFlagDone = 1u << 1;
constexpr uint8_t kKnownFlags = kFlagReject | kFlagDone;
constexpr uint8_t kMaxMessageType = static_cast<uint8_t>(raft::MessageType::kPropResp);
constexpr uint8_t kMaxEntryType = static_cast<uint8_t>(raft::EntryType::kConfig);
// Smallest encoded entry (term, index, type, length, no data): a claimed
// entry count is capped by remaining / this, so a garbled count cannot make
// the decoder reserve gigabytes.
constexpr size_t kMinEntryBytes = 8 + 8 + 1 + 4;

size_t encoded_size_hint(const raft::Message& m) {
  size_t n = 2 + 12 * 8 + 1 + 4 + 3 * 8 + 4 + 4 + m.data.size();
  for (const raft::Entry& e : m.entries) n += kMinEntryBytes + e.data.size();
  return n;
}

Status corrupt(const char* what) {
  return {StatusCode::kCorrupt, std::string("raft message: ") + what};
}

}  // namespace

void encode_message(const raft::Message& m, std::string& out) {
  out.reserve(out.size() + encoded_size_hint(m));
  put_u8(out, kMessageFormatVersion);
  put_u8(out, static_cast<uint8_t>(m.type));
  put_u64le(out, m.from);
  put_u64le(out, m.to);
  put_u64le(out, m.term);
  put_u64le(out, m.log_index);
  put_u64le(out, m.log_term);
  put_u64le(out, m.commit);
  put_u64le(out, m.index);
  put_u64le(out, m.hint_index);
  put_u64le(out, m.hint_term);
  put_u64le(out, m.context);
  put_u64le(out, m.offset);
  put_u64le(out, m.data_length);
  put_u8(out, static_cast<uint8_t>((m.reject ? kFlagReject : 0) | (m.done ? kFlagDone : 0)));
  put_u32le(out, static_cast<uint32_t>(m.entries.size()));
  for (const raft::Entry& e : m.entries) {
    put_u64le(out, e.term);
    put_u64le(out, e.index);
    put_u8(out, static_cast<uint8_t>(e.type));
    put_string32(out, e.data);
  }
  put_u64le(out, m.snapshot.index);
  put_u64le(out, m.snapshot.term);
  put_u64le(out, m.snapshot.size_bytes);
  // Most messages carry no snapshot: spend 4 bytes, not an encoded empty membership.
  if (m.snapshot.membership.members.empty()) {
    put_u32le(out, 0);
  } else {
    put_string32(out, raft::encode_membership(m.snapshot.membership));
  }
  put_string32(out, m.data);
}

std::string encode_message(const raft::Message& m) {
  std::string out;
  encode_message(m, out);
  return out;
}

Result<raft::Message> decode_message(std::string_view payload) {
  ByteReader r(payload);
  raft::Message m;
  uint8_t version = 0;
  uint8_t type = 0;
  if (!r.u8(version)) return corrupt("empty");
  if (version != kMessageFormatVersion) {
    return corrupt(("unknown format version " + std::to_string(version)).c_str());
  }
  if (!r.u8(type)) return corrupt("truncated header");
  if (type > kMaxMessageType) return corrupt("unknown message type");
  m.type = static_cast<raft::MessageType>(type);
  uint8_t flags = 0;
  if (!r.u64le(m.from) || !r.u64le(m.to) || !r.u64le(m.term) || !r.u64le(m.log_index) ||
      !r.u64le(m.log_term) || !r.u64le(m.commit) || !r.u64le(m.index) || !r.u64le(m.hint_index) ||
      !r.u64le(m.hint_term) || !r.u64le(m.context) || !r.u64le(m.offset) ||
      !r.u64le(m.data_length) || !r.u8(flags)) {
    return corrupt("truncated header");
  }
  if ((flags & ~kKnownFlags) != 0) return corrupt("unknown flags");
  m.reject = (flags & kFlagReject) != 0;
  m.done = (flags & kFlagDone) != 0;

  uint32_t count = 0;
  if (!r.u32le(count)) return corrupt("truncated entry count");
  if (count > r.remaining() / kMinEntryBytes) return corrupt("entry count exceeds input");
  m.entries.reserve(count);
  for (uint32_t i = 0; i < count; ++i) {
    raft::Entry e;
    uint8_t etype = 0;
    if (!r.u64le(e.term) || !r.u64le(e.index) || !r.u8(etype)) return corrupt("truncated entry");
    if (etype > kMaxEntryType) return corrupt("unknown entry type");
    e.type = static_cast<raft::EntryType>(etype);
    if (!r.string32(e.data)) return corrupt("truncated entry data");
    m.entries.push_back(std::move(e));
  }

  std::string membership;
  if (!r.u64le(m.snapshot.index) || !r.u64le(m.snapshot.term) || !r.u64le(m.snapshot.size_bytes) ||
      !r.string32(membership)) {
    return corrupt("truncated snapshot metadata");
  }
  if (!membership.empty()) {
    auto decoded = raft::decode_membership(membership);
    if (!decoded) return corrupt("bad snapshot membership");
    // An encoded empty membership is accepted too; it decodes to the same value.
    m.snapshot.membership = std::move(*decoded);
  }
  if (!r.string32(m.data)) return corrupt("truncated data");
  if (!r.at_end()) return corrupt("trailing bytes");
  return m;
}

Status append_frame(std::string_view payload, std::string& out) {
  if (payload.size() > kMaxFrameBytes) {
    return {StatusCode::kTooLarge, "raft frame of " + std::to_string(payload.size()) +
                                       " bytes exceeds the limit of " +
                                       std::to_string(kMaxFrameBytes)};
  }
  put_u32le(out, static_cast<uint32_t>(payload.size()));
  put_u32le(out, crc32c(payload));
  out.append(payload);
  return Status::ok();
}

Result<std::string> encode_message_frame(const raft::Message& m) {
  std::string out(kFrameHeaderBytes, '\0');
  encode_message(m, out);
  const size_t len = out.size() - kFrameHeaderBytes;
  if (len > kMaxFrameBytes) {
    return Status(StatusCode::kTooLarge, "raft message of " + std::to_string(len) +
                                             " bytes exceeds the frame limit of " +
                                             std::to_string(kMaxFrameBytes));
  }
  // Fill the header in place once the payload size is known.
  std::string header;
  put_u32le(header, static_cast<uint32_t>(len));
  put_u32le(header, crc32c(std::string_view{out}.substr(kFrameHeaderBytes)));
  std::copy(header.begin(), header.end(), out.begin());
  return out;
}

Result<std::optional<FrameView>> next_frame(std::string_view in, uint32_t max_frame_bytes) {
  ByteReader r(in);
  uint32_t len = 0;
  uint32_t crc = 0;
  if (!r.u32le(len) || !r.u32le(crc)) return std::optional<FrameView>();
  if (len > max_frame_bytes) {
    return Status(StatusCode::kTooLarge, "raft frame length " + std::to_string(len) +
                                             " exceeds the limit of " +
                                             std::to_string(max_frame_bytes));
  }
  if (r.remaining() < len) return std::optional<FrameView>();
  std::string_view payload = r.rest().substr(0, len);
  if (crc32c(payload) != crc) return Status(StatusCode::kCorrupt, "raft frame checksum mismatch");
  return std::optional<FrameView>(FrameView{payload, kFrameHeaderBytes + len});
}

}  // namespace ckv::transport
