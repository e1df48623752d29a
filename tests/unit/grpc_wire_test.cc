// gRPC's message framing and header values as our HTTP/2 server reads and writes them (grpcfront/grpc_wire.h).
#include "grpcfront/grpc_wire.h"

#include <gtest/gtest.h>

#include <random>

#include <zlib.h>

namespace ckv::grpcfront {
namespace {

TEST(GrpcWireTest, MessagesSurviveAnySplitOfTheirBytes) {
  const std::vector<std::string> sent = {"", "a", std::string(70'000, 'x'), "\x00\x01\x02"};
  std::string wire;
  for (const std::string& m : sent) wire += frame_message(m);
  std::mt19937 rng(7);
  for (int round = 0; round < 50; ++round) {
    MessageReader reader(1 << 20);
    std::vector<std::string> got;
    for (size_t at = 0; at < wire.size();) {
      const size_t n = std::min(wire.size() - at, size_t{1} + rng() % 9000);
      ASSERT_FALSE(reader.feed(std::string_view(wire).substr(at, n), got));
      at += n;
    }
    EXPECT_EQ(got, sent);
    EXPECT_EQ(reader.buffered_bytes(), 0u);
  }
}

TEST(GrpcWireTest, AnOversizedMessageIsRefusedFromItsPrefixWithGrpcGosText) {
  MessageReader reader(100);
  std::vector<std::string> got;
  const std::string wire = frame_message(std::string(101, 'v'));
  const auto err = reader.feed(std::string_view(wire).substr(0, kMessagePrefixBytes), got);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->code, GrpcCode::kResourceExhausted);
  EXPECT_EQ(err->message, "grpc: received message larger than max (101 vs. 100)");
  // Nothing more is taken from that stream.
  EXPECT_TRUE(reader.feed(frame_message("ok"), got));
  EXPECT_TRUE(got.empty());
}

TEST(GrpcWireTest, CompressedOrUnknownFlagsAreInternalErrors) {
  std::vector<std::string> got;
  MessageReader compressed(100);
  const auto e1 = compressed.feed(std::string("\x01\x00\x00\x00\x00", 5), got);
  ASSERT_TRUE(e1);
  EXPECT_EQ(e1->code, GrpcCode::kInternal);
  MessageReader bad_flag(100);
  const auto e2 = bad_flag.feed(std::string("\x07\x00\x00\x00\x00", 5), got);
  ASSERT_TRUE(e2);
  EXPECT_EQ(e2->code, GrpcCode::kInternal);
  EXPECT_TRUE(got.empty());
}

// A compressed message as grpc's clients send it: flag 1, the body gzip (RFC 1952) or zlib-wrapped.
std::string compressed_frame(const std::string& body, bool gzip) {
  z_stream zs{};
  EXPECT_EQ(deflateInit2(&zs, Z_BEST_COMPRESSION, Z_DEFLATED, gzip ? 16 + MAX_WBITS : MAX_WBITS, 8,
                         Z_DEFAULT_STRATEGY),
            Z_OK);
  std::string out(deflateBound(&zs, body.size()), '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(body.data()));
  zs.avail_in = static_cast<uInt>(body.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  std::string frame = frame_message(out);
  frame[0] = '\x01';
  return frame;
}

TEST(GrpcWireTest, GzipAndDeflateMessagesAreInflated) {
  const std::string body(50'000, 'q');
  for (const char* encoding : {"gzip", "deflate"}) {
    MessageReader reader(1 << 20, encoding);
    std::vector<std::string> got;
    ASSERT_FALSE(reader.feed(compressed_frame(body, std::string(encoding) == "gzip"), got)) << encoding;
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0], body);
  }
}

// A few hundred bytes that inflate to megabytes are refused at the limit, not inflated whole.
TEST(GrpcWireTest, AMessageThatInflatesPastTheLimitIsRefused) {
  MessageReader reader(100'000, "gzip");
  std::vector<std::string> got;
  const auto err = reader.feed(compressed_frame(std::string(10 << 20, '\0'), true), got);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->code, GrpcCode::kResourceExhausted);
  EXPECT_TRUE(got.empty());
}

TEST(GrpcWireTest, CorruptOrUnsupportedCompressionIsRefused) {
  std::vector<std::string> got;
  std::string corrupt = compressed_frame("hello hello hello", true);
  corrupt[corrupt.size() - 3] ^= 0x55;  // the gzip trailer's CRC
  MessageReader gz(1000, "gzip");
  const auto e1 = gz.feed(corrupt, got);
  ASSERT_TRUE(e1);
  EXPECT_EQ(e1->code, GrpcCode::kInternal);
  MessageReader snappy(1000, "snappy");
  const auto e2 = snappy.feed(compressed_frame("x", true), got);
  ASSERT_TRUE(e2);
  EXPECT_EQ(e2->code, GrpcCode::kUnimplemented);
  EXPECT_EQ(e2->message, "grpc: Decompressor is not installed for grpc-encoding \"snappy\"");
  EXPECT_TRUE(got.empty());
}

TEST(GrpcWireTest, AnIncompleteMessageIsHeldNotDelivered) {
  MessageReader reader(100);
  std::vector<std::string> got;
  const std::string wire = frame_message("hello");
  ASSERT_FALSE(reader.feed(std::string_view(wire).substr(0, 7), got));
  EXPECT_TRUE(got.empty());
  EXPECT_EQ(reader.buffered_bytes(), 7u);
}

TEST(GrpcWireTest, TimeoutsInEveryUnitRoundUpToMilliseconds) {
  EXPECT_EQ(parse_timeout_ms("1H"), 3'600'000);
  EXPECT_EQ(parse_timeout_ms("2M"), 120'000);
  EXPECT_EQ(parse_timeout_ms("5S"), 5'000);
  EXPECT_EQ(parse_timeout_ms("250m"), 250);
  EXPECT_EQ(parse_timeout_ms("1500u"), 2);
  EXPECT_EQ(parse_timeout_ms("1n"), 1);
  EXPECT_EQ(parse_timeout_ms("99999999S"), int64_t{99'999'999'000});
  for (const char* bad : {"", "S", "123", "12x", "-1S", "123456789S", "1.5S", "1 S"}) {
    EXPECT_FALSE(parse_timeout_ms(bad)) << bad;
  }
}

TEST(GrpcWireTest, StatusMessagesArePercentEncoded) {
  EXPECT_EQ(percent_encode_message("etcdserver: key not found"), "etcdserver: key not found");
  EXPECT_EQ(percent_encode_message("100%\n\xc3\xa9"), "100%25%0A%C3%A9");
}

}  // namespace
}  // namespace ckv::grpcfront
