// gRPC message framing and header values (see grpc_wire.h).
#include "grpcfront/grpc_wire.h"

#include <zlib.h>


namespace ckv::grpcfront {

std::string frame_message(std::string_view body) {
  std::string out;
  out.reserve(kMessagePrefixBytes + body.size());
  const auto n = static_cast<uint32_t>(body.size());
  out.push_back('\0');
  out.push_back(static_cast<char>(n >> 24));
  out.push_back(static_cast<char>(n >> 16));
  out.push_back(static_cast<char>(n >> 8));
  out.push_back(static_cast<char>(n));
  out.append(body);
  return out;
}

bool supported_encoding(std::string_view encoding) {
  return encoding.empty() || encoding == "identity" || encoding == "gzip" || encoding == "deflate";
}

namespace {

// Inflates a gzip (RFC 1952) or zlib-wrapped deflate (RFC 1950, what grpc
// calls "deflate") message into out, at most max bytes; false when it is
// corrupt or larger.
bool inflate_message(std::string_view in, bool gzip, size_t max, std::string& out, bool& too_large) {
  z_stream zs{};
  if (inflateInit2(&zs, gzip ? 16 + MAX_WBITS : MAX_WBITS) != Z_OK) return false;
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  char chunk[16384];
  int rc = Z_OK;
  while (rc == Z_OK) {
    zs.next_out = reinterpret_cast<Bytef*>(chunk);
    zs.avail_out = sizeof chunk;
    rc = inflate(&zs, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) break;
    out.append(chunk, sizeof chunk - zs.avail_out);
    if (out.size() > max) {
      too_large = true;
      break;
    }
    if (rc == Z_OK && zs.avail_in == 0 && zs.avail_out != 0) break;  // truncated input
  }
  inflateEnd(&zs);
  return rc == Z_STREAM_END && !too_large;
}

}  // namespace

std::optional<WireError> MessageReader::feed(std::string_view bytes, std::vector<std::string>& out) {
  if (failed_) return WireError{GrpcCode::kInternal, "grpc: the stream's framing already failed"};
  buffer_.append(bytes);
  size_t at = 0;
  for (;;) {
    if (buffer_.size() - at < kMessagePrefixBytes) break;
    const auto* p = reinterpret_cast<const unsigned char*>(buffer_.data() + at);
    const uint32_t length = (uint32_t{p[1]} << 24) | (uint32_t{p[2]} << 16) | (uint32_t{p[3]} << 8) | p[4];
    if (p[0] > 1) {
      failed_ = true;
      return WireError{GrpcCode::kInternal, "grpc: received a message with an invalid compression flag"};
    }
    if (p[0] == 1 && (encoding_.empty() || encoding_ == "identity")) {
      failed_ = true;
      return WireError{GrpcCode::kInternal, "grpc: compressed flag set with identity or empty encoding"};
    }
    if (p[0] == 1 && !supported_encoding(encoding_)) {
      failed_ = true;
      return WireError{GrpcCode::kUnimplemented,
                       "grpc: Decompressor is not installed for grpc-encoding \"" + encoding_ + "\""};
    }
    if (length > max_message_bytes_) {
      failed_ = true;
      return WireError{GrpcCode::kResourceExhausted, "grpc: received message larger than max (" +
                                                         std::to_string(length) + " vs. " +
                                                         std::to_string(max_message_bytes_) + ")"};
    }
    if (buffer_.size() - at - kMessagePrefixBytes < length) break;
    const std::string_view body = std::string_view{buffer_}.substr(at + kMessagePrefixBytes, length);
    if (p[0] == 0) {
      out.emplace_back(body);
    } else {
      std::string inflated;
      bool too_large = false;
      if (!inflate_message(body, encoding_ == "gzip", max_message_bytes_, inflated, too_large)) {
        failed_ = true;
        if (too_large) {
          return WireError{GrpcCode::kResourceExhausted,
                           "grpc: received message after decompression larger than max (" +
                               std::to_string(max_message_bytes_) + ")"};
        }
        return WireError{GrpcCode::kInternal, "grpc: failed to decompress the received message"};
      }
      out.push_back(std::move(inflated));
    }
    at += kMessagePrefixBytes + length;
  }
  buffer_.erase(0, at);
  return std::nullopt;
}

std::optional<int64_t> parse_timeout_ms(std::string_view value) {
  if (value.size() < 2 || value.size() > 9) return std::nullopt;
  int64_t n = 0;
  for (char c : value.substr(0, value.size() - 1)) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + (c - '0');
  }
  // At most 8 digits, so none of these products overflows.
  switch (value.back()) {
    case 'H': return n * 3'600'000;
    case 'M': return n * 60'000;
    case 'S': return n * 1'000;
    case 'm': return n;
    case 'u': return (n + 999) / 1'000;
    case 'n': return (n + 999'999) / 1'000'000;
    default: return std::nullopt;
  }
}

std::string percent_encode_message(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c <= 0x7e && c != '%') {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    }
  }
  return out;
}

}  // namespace ckv::grpcfront
