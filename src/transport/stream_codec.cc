// Hello encoding and the bounded incremental frame reader (see stream_codec.h).
#include "transport/stream_codec.h"

#include <algorithm>
#include <cstring>

#include "common/bytes.h"
#include "common/crc32c.h"

namespace ckv::transport {
namespace {

Status corrupt(const std::string& what) { return {StatusCode::kCorrupt, "raft hello: " + what}; }

void put_field(std::string& out, const std::string& s) {
  const std::string_view v = std::string_view(s).substr(0, kMaxHelloFieldBytes);
  put_u8(out, static_cast<uint8_t>(v.size()));
  out.append(v);
}

bool read_field(ByteReader& r, std::string& out) {
  uint8_t n = 0;
  return r.u8(n) && r.bytes(n, out);
}

}  // namespace

std::string encode_hello_frame(const Hello& h) {
  std::string payload;
  put_u32le(payload, kHelloMagic);
  put_u8(payload, kHelloVersion);
  put_u8(payload, static_cast<uint8_t>(h.kind));
  put_u64le(payload, h.from);
  put_u64le(payload, h.to);
  put_field(payload, h.sender.name);
  put_field(payload, h.sender.raft_address);
  put_field(payload, h.sender.api_address);
  put_field(payload, h.sender.incarnation);
  put_u64le(payload, h.sender.cluster_id);
  std::string out;
  (void)append_frame(payload, out);  // at most kMaxHelloPayloadBytes, far below kMaxFrameBytes
  return out;
}

Result<Hello> decode_hello(std::string_view payload) {
  ByteReader r(payload);
  uint32_t magic = 0;
  uint8_t version = 0;
  uint8_t kind = 0;
  Hello h;
  if (!r.u32le(magic) || magic != kHelloMagic) return corrupt("not a consensuskv raft stream");
  if (!r.u8(version) || version != kHelloVersion) {
    return corrupt("unknown stream version " + std::to_string(version) + " (this node speaks " +
                   std::to_string(kHelloVersion) + ")");
  }
  if (!r.u8(kind) || kind > static_cast<uint8_t>(HelloKind::kAnswer))
    return corrupt("unknown hello kind");
  h.kind = static_cast<HelloKind>(kind);
  if (!r.u64le(h.from) || !r.u64le(h.to) || !read_field(r, h.sender.name) ||
      !read_field(r, h.sender.raft_address) || !read_field(r, h.sender.api_address) ||
      !read_field(r, h.sender.incarnation) || !r.u64le(h.sender.cluster_id)) {
    return corrupt("truncated");
  }
  if (!r.at_end()) return corrupt("trailing bytes");
  h.sender.id = h.from;
  return h;
}

size_t FrameReader::next_read_bytes() const {
  const size_t have = buffered_bytes();
  const std::optional<uint32_t> len = pending_length();
  if (!len || *len > max_frame_bytes_) return kReadChunkBytes;  // too long: next() reports it
  const size_t frame_total = kFrameHeaderBytes + *len;
  if (frame_total <= have) return kReadChunkBytes;
  return std::clamp(frame_total - have, kReadChunkBytes, kMaxReadGrowBytes);
}

std::optional<uint32_t> FrameReader::pending_length() const {
  if (buffered_bytes() < kFrameHeaderBytes) return std::nullopt;
  ByteReader r(std::string_view(data_.get() + start_, kFrameHeaderBytes));
  uint32_t len = 0;
  (void)r.u32le(len);  // the header is here: it cannot fail
  return len;
}

void FrameReader::reallocate(size_t cap) {
  std::unique_ptr<char[]> fresh(new char[cap]);
  const size_t have = size_ - start_;
  if (have > 0) std::memcpy(fresh.get(), data_.get() + start_, have);
  data_ = std::move(fresh);
  cap_ = cap;
  size_ = have;
  start_ = 0;
}

char* FrameReader::prepare(size_t n) {
  const size_t have = buffered_bytes();
  const std::optional<uint32_t> len = pending_length();
  const size_t frame_total = kFrameHeaderBytes + len.value_or(0);
  const bool large_frame_pending = len && frame_total > kReadChunkBytes;
  const size_t need = have + n;
  if (cap_ > kShrinkAboveBytes && !large_frame_pending) {
    // A large frame was consumed: give its memory back instead of keeping
    // the high-water mark for the life of the stream.
    reallocate(std::max(need, kReadChunkBytes));
  } else if (need > cap_) {
    // Double towards the frame being received, never past it: memory
    // follows bytes received, not the length a header claims.
    const size_t limit =
        len && *len <= max_frame_bytes_ ? std::max(frame_total, need) : need;
    reallocate(std::max(need, std::min(2 * cap_, limit)));
  } else if (start_ > 0) {
    std::memmove(data_.get(), data_.get() + start_, have);
    size_ = have;
    start_ = 0;
  }
  char* out = data_.get() + size_;
  size_ += n;
  pending_ = n;
  return out;
}

void FrameReader::commit(size_t got) {
  got = std::min(got, pending_);
  size_ -= pending_ - got;
  pending_ = 0;
}

Result<std::optional<std::string_view>> FrameReader::next() {
  const std::string_view in(data_.get() + start_, size_ - start_ - pending_);
  auto frame = next_frame(in, max_frame_bytes_);
  if (!frame.is_ok()) return frame.status();
  if (!frame.value()) return std::optional<std::string_view>();
  start_ += frame.value()->frame_bytes;
  return std::optional<std::string_view>(frame.value()->payload);
}

}  // namespace ckv::transport
