// gRPC's framing over HTTP/2 (grpc's PROTOCOL-HTTP2.md): length-prefixed messages, the grpc-timeout header, grpc-message's percent-encoding.
//
// Pure (no I/O): the HTTP/2 server (h2_server.h) feeds it the DATA bytes of
// a stream and writes what it encodes. Everything here reads bytes from the
// network, so every length is checked before it is trusted.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace ckv::grpcfront {

// A message on the wire: one flag byte (1: compressed), a 4-byte big-endian
// length, the message.
inline constexpr size_t kMessagePrefixBytes = 5;

// gRPC's status codes that this layer itself sends (grpc/status.h numbers).
enum class GrpcCode : int {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kResourceExhausted = 8,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
};

// A failure of the call's framing, as the status its client should see.
struct WireError {
  GrpcCode code;
  std::string message;
};

// Prefix + body, uncompressed.
std::string frame_message(std::string_view body);

// Splits a stream's DATA bytes into messages. A message longer than the
// limit is refused as soon as its prefix arrives (before its bytes are held),
// with grpc-go's text, as etcd's server answers it. A compressed message
// (the call's grpc-encoding "gzip" or "deflate") is inflated, and refused
// once it inflates past the limit (a small message may expand a thousandfold).
class MessageReader {
 public:
  // encoding: the call's grpc-encoding ("" or "identity": none).
  explicit MessageReader(size_t max_message_bytes, std::string encoding = "")
      : max_message_bytes_(max_message_bytes), encoding_(std::move(encoding)) {}

  // Appends bytes; each message completed is appended to out (body only).
  // After an error the reader refuses everything.
  std::optional<WireError> feed(std::string_view bytes, std::vector<std::string>& out);
  // Bytes of a message not complete yet (a stream ending here was cut short).
  size_t buffered_bytes() const { return buffer_.size(); }

 private:
  size_t max_message_bytes_;
  std::string encoding_;
  std::string buffer_;
  bool failed_ = false;
};

// A grpc-encoding this layer can read: "", "identity", "gzip", "deflate".
bool supported_encoding(std::string_view encoding);

// grpc-timeout ("<1-8 digits><H|M|S|m|u|n>") in milliseconds, rounded up;
// nullopt when malformed.
std::optional<int64_t> parse_timeout_ms(std::string_view value);

// grpc-message is percent-encoded: bytes outside printable ASCII, and '%'.
std::string percent_encode_message(std::string_view text);

}  // namespace ckv::grpcfront
