// The transport's stream protocol without sockets: the hello that opens every stream and the incremental frame reader.
//
// A stream starts with one hello frame each way: the dialer says who it is
// and whom it wants; the acceptor answers with its own hello, so the dialer
// learns whom it reached (name, addresses and the incarnation id of the
// data dir) before it sends anything. Then message frames follow
// (message_codec.h), from the dialer and, on the reply path, from the
// acceptor.
//
// Hello payload (stream version kHelloVersion; integers little-endian):
//   u32 magic (kHelloMagic) | u8 version | u8 kind (HelloKind)
//   u64 from | u64 to (kNoNode in a probe: the dialer does not know yet)
//   then name, raft address, API address, incarnation: each u8 length + bytes
//   u64 cluster id (0: the sender has no configuration yet; version 4)
// Nothing may follow. Everything here is pure and thread-safe, and decoders
// never allocate more than their input describes (fuzzed in
// tests/unit/stream_codec_test.cc).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"
#include "transport/message_codec.h"
#include "transport/transport.h"

namespace ckv::transport {

inline constexpr uint32_t kHelloMagic = 0x54564b43;  // "CKVT" little-endian
// 3: identity fields and the acceptor's answer. 4: the cluster id. Other
// versions are refused with "unknown stream version" (a cluster upgrades
// all its nodes together: docs/security.md, "Mixed versions").
inline constexpr uint8_t kHelloVersion = 4;
inline constexpr size_t kMaxHelloFieldBytes = 255;  // each of name, addresses, incarnation
inline constexpr size_t kMinHelloPayloadBytes = 4 + 1 + 1 + 8 + 8 + 4 + 8;
inline constexpr size_t kMaxHelloPayloadBytes = kMinHelloPayloadBytes + 4 * kMaxHelloFieldBytes;

enum class HelloKind : uint8_t {
  kStream = 0,  // a dialer that will send messages to `to`
  kProbe = 1,   // a dialer that only wants the answer (TcpTransport::probe), then closes
  kAnswer = 2,  // the acceptor's reply to either
};

struct Hello {
  HelloKind kind = HelloKind::kStream;
  raft::NodeId from = raft::kNoNode;
  raft::NodeId to = raft::kNoNode;
  PeerIdentity sender;  // sender.id == from
};

// A complete frame (header + payload). Fields longer than
// kMaxHelloFieldBytes are cut (a raft address that long is refused earlier).
std::string encode_hello_frame(const Hello& h);
// Decodes a hello payload; kCorrupt with the reason on anything else.
Result<Hello> decode_hello(std::string_view payload);

// Frames off a byte stream, incrementally and with bounded memory: the
// buffer never holds more than one frame of at most max_frame_bytes plus
// one read. Not thread-safe; one per stream.
//
// Use: n = next_read_bytes(); p = prepare(n); read up to n bytes into p;
// commit(got); then call next() until it returns nullopt.
class FrameReader {
 public:
  explicit FrameReader(uint32_t max_frame_bytes) : max_frame_bytes_(max_frame_bytes) {}

  // Lowers or raises the largest acceptable payload (before the hello only a
  // hello fits, so an unidentified stream cannot make us buffer megabytes).
  void set_max_frame_bytes(uint32_t max) { max_frame_bytes_ = max; }
  uint32_t max_frame_bytes() const { return max_frame_bytes_; }

  // How much to read next: at least kReadChunkBytes, so that many small
  // frames arrive per system call; toward a large frame at most
  // kMaxReadGrowBytes per read, so memory follows bytes actually received
  // rather than a length the peer merely claims.
  size_t next_read_bytes() const;
  // Makes room for n more bytes at the end and returns where to write them.
  char* prepare(size_t n);
  // Keeps the first `got` of the bytes prepare() made room for.
  void commit(size_t got);

  // The next complete frame's payload (valid until the next prepare()), or
  // nullopt when more bytes are needed. An error (length over the limit,
  // CRC mismatch) means the stream is unusable.
  Result<std::optional<std::string_view>> next();

  // Bytes held now (received and not yet consumed).
  size_t buffered_bytes() const { return size_ - start_; }
  // Bytes the buffer occupies (what RSS can reach): at most twice what was
  // received plus one read, and never more than one frame plus one read,
  // whatever length a frame header claims.
  size_t capacity_bytes() const { return cap_; }

  static constexpr size_t kReadChunkBytes = size_t{64} << 10;
  static constexpr size_t kMaxReadGrowBytes = size_t{1} << 20;
  // A buffer left larger than this by a consumed frame is shrunk.
  static constexpr size_t kShrinkAboveBytes = 4 * kMaxReadGrowBytes;

 private:
  // The payload length the frame at the front claims, once its header is here.
  std::optional<uint32_t> pending_length() const;
  void reallocate(size_t cap);

  std::unique_ptr<char[]> data_;  // uninitialized until written: pages cost only once touched
  size_t cap_ = 0;
  size_t size_ = 0;     // bytes in data_, including prepared ones
  size_t start_ = 0;    // consumed bytes at the front, dropped at the next prepare()
  size_t pending_ = 0;  // bytes prepare() added that commit() has not settled
  uint32_t max_frame_bytes_;
};

}  // namespace ckv::transport
