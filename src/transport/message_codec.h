// Wire format of Raft messages between peers: a compact versioned binary encoding and the checksummed frame around it.
//
// Message payload (format version 1; all integers fixed-width little-endian):
//   u8  format version (kMessageFormatVersion)
//   u8  type (raft::MessageType)
//   u64 from, to, term, log_index, log_term, commit, index, hint_index, hint_term,
//       context, offset, data_length
//   u8  flags: bit 0 reject, bit 1 done; other bits must be zero
//   u32 entry count, then per entry: u64 term, u64 index, u8 type, u32 length, bytes
//   u64 snapshot.index, u64 snapshot.term, u64 snapshot.size_bytes,
//   u32 membership length, bytes (raft::encode_membership; length 0 = empty membership)
//   u32 data length, bytes
// Nothing may follow. A future format changes the first byte, so old and new
// peers can tell each other apart instead of misreading fields.
//
// Frame (what travels on a TCP stream):
//   u32 payload length | u32 CRC-32C of payload | payload
// The CRC catches corruption that TCP's 16-bit checksum misses; the length is
// checked against kMaxFrameBytes before anything is allocated.
//
// All functions are pure and thread-safe. Decoders never read past their input
// and never allocate more than the input could describe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"
#include "raft/messages.h"

namespace ckv::transport {

inline constexpr uint8_t kMessageFormatVersion = 1;
inline constexpr size_t kFrameHeaderBytes = 8;
// Largest payload a frame may carry. Snapshot chunks are at most 1 MiB and
// append batches are bounded by the core, so 64 MiB is far above any
// legitimate message while still refusing absurd lengths from a bad peer.
inline constexpr uint32_t kMaxFrameBytes = 64u << 20;

// Appends the payload encoding of m to out.
void encode_message(const raft::Message& m, std::string& out);
std::string encode_message(const raft::Message& m);

// Decodes one payload. kCorrupt (with the reason) on truncated, trailing or
// out-of-range input, or a format version this build does not know.
Result<raft::Message> decode_message(std::string_view payload);

// Appends one frame carrying payload. kTooLarge if payload exceeds kMaxFrameBytes.
Status append_frame(std::string_view payload, std::string& out);

// Encodes m as a complete frame (header + payload) without copying the payload
// twice. kTooLarge if the encoded message exceeds kMaxFrameBytes.
Result<std::string> encode_message_frame(const raft::Message& m);

// One frame found at the front of a byte buffer.
struct FrameView {
  std::string_view payload;  // points into the buffer given to next_frame
  size_t frame_bytes = 0;    // header + payload: how much to consume
};

// Looks for a complete frame at the front of in. Returns:
//   an error (kTooLarge for a length over max_frame_bytes, kCorrupt for a CRC
//   mismatch): the stream is unusable and must be closed;
//   nullopt: more bytes are needed (in is a valid prefix so far);
//   a FrameView: the payload passed its CRC.
Result<std::optional<FrameView>> next_frame(std::string_view in,
                                            uint32_t max_frame_bytes = kMaxFrameBytes);

}  // namespace ckv::transport
