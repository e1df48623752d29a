// Unit tests for src/transport/message_codec.h: message round trips, hostile input, frame checks.
#include "transport/message_codec.h"

#include <cstdint>
#include <random>
#include <string>

#include <gtest/gtest.h>

#include "common/bytes.h"
#include "raft/messages.h"
#include "raft/types.h"

namespace ckv::transport {
namespace {

using raft::MessageType;

constexpr uint8_t kLastType = static_cast<uint8_t>(MessageType::kPropResp);

// Every field set to a distinct, non-default value, so a field that is
// dropped or swapped by the codec shows up as a mismatch.
raft::Message full_message(MessageType type) {
  raft::Message m;
  m.type = type;
  m.from = 1;
  m.to = uint64_t{1} << 40;
  m.term = 3;
  m.log_index = 4;
  m.log_term = 5;
  m.commit = 6;
  m.reject = true;
  m.index = 7;
  m.hint_index = 8;
  m.hint_term = 9;
  m.context = 0xfedcba9876543210ull;
  m.entries.push_back(raft::Entry{3, 10, raft::EntryType::kNormal, ""});  // a leader's no-op
  m.entries.push_back(raft::Entry{3, 11, raft::EntryType::kNormal, std::string("k\0v\xff", 4)});
  raft::Membership conf;
  conf.members.push_back(raft::Member{1, raft::MemberRole::kVoter, "raft=127.0.0.1:5000"});
  conf.members.push_back(raft::Member{9, raft::MemberRole::kLearner, ""});
  m.entries.push_back(raft::Entry{3, 12, raft::EntryType::kConfig, raft::encode_membership(conf)});
  m.snapshot.index = 13;
  m.snapshot.term = 2;
  m.snapshot.membership = conf;
  m.snapshot.size_bytes = 1234567;
  m.offset = 14;
  m.data_length = 15;
  m.data = std::string("snapshot\0bytes", 14);
  m.done = true;
  return m;
}

void expect_same(const raft::Message& a, const raft::Message& b) {
  EXPECT_EQ(a.type, b.type);
  EXPECT_EQ(a.from, b.from);
  EXPECT_EQ(a.to, b.to);
  EXPECT_EQ(a.term, b.term);
  EXPECT_EQ(a.log_index, b.log_index);
  EXPECT_EQ(a.log_term, b.log_term);
  EXPECT_EQ(a.entries, b.entries);
  EXPECT_EQ(a.commit, b.commit);
  EXPECT_EQ(a.reject, b.reject);
  EXPECT_EQ(a.index, b.index);
  EXPECT_EQ(a.hint_index, b.hint_index);
  EXPECT_EQ(a.hint_term, b.hint_term);
  EXPECT_EQ(a.context, b.context);
  EXPECT_EQ(a.snapshot, b.snapshot);
  EXPECT_EQ(a.offset, b.offset);
  EXPECT_EQ(a.data_length, b.data_length);
  EXPECT_EQ(a.data, b.data);
  EXPECT_EQ(a.done, b.done);
}

// Every message type survives encode/decode with every field set.
TEST(MessageCodec, RoundTripEveryTypeWithAllFields) {
  for (uint8_t t = 0; t <= kLastType; ++t) {
    SCOPED_TRACE(raft::to_string(static_cast<MessageType>(t)));
    const raft::Message m = full_message(static_cast<MessageType>(t));
    auto decoded = decode_message(encode_message(m));
    ASSERT_TRUE(decoded.is_ok()) << decoded.status().to_string();
    expect_same(decoded.value(), m);
  }
}

// A default message (no entries, no snapshot) round-trips; false flags stay false.
TEST(MessageCodec, RoundTripDefaults) {
  raft::Message m;
  m.type = MessageType::kHeartbeat;
  auto decoded = decode_message(encode_message(m));
  ASSERT_TRUE(decoded.is_ok()) << decoded.status().to_string();
  expect_same(decoded.value(), m);
}

// A snapshot chunk of 1 MiB (the node layer's chunk size) round-trips byte for byte.
TEST(MessageCodec, RoundTripOneMebibyteChunk) {
  raft::Message m = full_message(MessageType::kSnapshot);
  m.data.resize(1 << 20);
  for (size_t i = 0; i < m.data.size(); ++i) m.data[i] = static_cast<char>(i * 131 + 7);
  m.data_length = m.data.size();
  auto decoded = decode_message(encode_message(m));
  ASSERT_TRUE(decoded.is_ok()) << decoded.status().to_string();
  expect_same(decoded.value(), m);
}

// A truncated message is never mistaken for a shorter valid one: every proper
// prefix is rejected (and, under ASan, read only within bounds).
TEST(MessageCodec, EveryPrefixIsRejected) {
  const std::string enc = encode_message(full_message(MessageType::kAppend));
  for (size_t n = 0; n < enc.size(); ++n) {
    auto decoded = decode_message(std::string_view{enc}.substr(0, n));
    EXPECT_FALSE(decoded.is_ok()) << "prefix of " << n << " of " << enc.size() << " bytes decoded";
    if (!decoded.is_ok()) {
      EXPECT_EQ(decoded.status().code(), StatusCode::kCorrupt);
    }
  }
}

TEST(MessageCodec, TrailingBytesAreRejected) {
  std::string enc = encode_message(full_message(MessageType::kVote));
  enc.push_back('\0');
  EXPECT_FALSE(decode_message(enc).is_ok());
}

// Offsets below follow the layout in message_codec.h.
constexpr size_t kTypeOffset = 1;
constexpr size_t kFlagsOffset = 2 + 12 * 8;
constexpr size_t kEntryCountOffset = kFlagsOffset + 1;

TEST(MessageCodec, UnknownVersionTypeAndFlagsAreRejected) {
  const std::string enc = encode_message(full_message(MessageType::kAppend));
  std::string bad = enc;
  bad[0] = static_cast<char>(kMessageFormatVersion + 1);
  EXPECT_FALSE(decode_message(bad).is_ok());
  bad = enc;
  bad[kTypeOffset] = static_cast<char>(kLastType + 1);
  EXPECT_FALSE(decode_message(bad).is_ok());
  bad = enc;
  bad[kFlagsOffset] = static_cast<char>(bad[kFlagsOffset] | 0x80);
  EXPECT_FALSE(decode_message(bad).is_ok());
  // First entry's type byte: after its term and index.
  bad = enc;
  bad[kEntryCountOffset + 4 + 16] = 2;
  EXPECT_FALSE(decode_message(bad).is_ok());
}

// A garbled entry count or length must not make the decoder reserve memory
// the input cannot back (ASan would report a multi-GiB allocation).
TEST(MessageCodec, HugeCountsAndLengthsAreRejectedWithoutAllocating) {
  raft::Message m;
  m.entries.push_back(raft::Entry{1, 1, raft::EntryType::kNormal, "x"});
  const std::string enc = encode_message(m);
  std::string bad = enc;
  for (int i = 0; i < 4; ++i) bad[kEntryCountOffset + i] = '\xff';
  EXPECT_FALSE(decode_message(bad).is_ok());
  bad = enc;
  // The entry's data length field follows count, term, index and type.
  for (int i = 0; i < 4; ++i) bad[kEntryCountOffset + 4 + 17 + i] = '\xff';
  EXPECT_FALSE(decode_message(bad).is_ok());
}

// Random byte flips: the decoder either rejects the input or returns a message
// that re-encodes to valid input; it never crashes or reads out of bounds.
TEST(MessageCodec, RandomCorruptionNeverCrashes) {
  std::mt19937_64 rng(20261127);
  for (uint8_t t = 0; t <= kLastType; ++t) {
    const std::string enc = encode_message(full_message(static_cast<MessageType>(t)));
    for (int iter = 0; iter < 500; ++iter) {
      std::string bad = enc;
      const int flips = 1 + static_cast<int>(rng() % 4);
      for (int f = 0; f < flips; ++f) {
        bad[rng() % bad.size()] = static_cast<char>(rng());
      }
      if (rng() % 4 == 0) bad.resize(rng() % bad.size());
      auto decoded = decode_message(bad);
      if (decoded.is_ok()) {
        EXPECT_TRUE(decode_message(encode_message(decoded.value())).is_ok());
      }
    }
  }
}

TEST(MessageCodecFrame, RoundTripAndBackToBack) {
  const raft::Message a = full_message(MessageType::kAppend);
  raft::Message b = full_message(MessageType::kHeartbeatResp);
  b.context = 42;
  auto fa = encode_message_frame(a);
  auto fb = encode_message_frame(b);
  ASSERT_TRUE(fa.is_ok() && fb.is_ok());
  const std::string stream = fa.value() + fb.value();

  auto first = next_frame(stream);
  ASSERT_TRUE(first.is_ok()) << first.status().to_string();
  ASSERT_TRUE(first.value().has_value());
  EXPECT_EQ(first.value()->frame_bytes, fa.value().size());
  auto da = decode_message(first.value()->payload);
  ASSERT_TRUE(da.is_ok());
  expect_same(da.value(), a);

  auto second = next_frame(std::string_view{stream}.substr(first.value()->frame_bytes));
  ASSERT_TRUE(second.is_ok() && second.value().has_value());
  auto db = decode_message(second.value()->payload);
  ASSERT_TRUE(db.is_ok());
  expect_same(db.value(), b);
}

// append_frame and encode_message_frame produce the same bytes.
TEST(MessageCodecFrame, AppendFrameMatchesEncodeMessageFrame) {
  const raft::Message m = full_message(MessageType::kSnapshot);
  std::string out;
  ASSERT_TRUE(append_frame(encode_message(m), out).is_ok());
  auto direct = encode_message_frame(m);
  ASSERT_TRUE(direct.is_ok());
  EXPECT_EQ(out, direct.value());
}

// A partial frame asks for more bytes rather than failing or decoding early.
TEST(MessageCodecFrame, EveryPrefixNeedsMore) {
  auto frame = encode_message_frame(full_message(MessageType::kAppend));
  ASSERT_TRUE(frame.is_ok());
  for (size_t n = 0; n < frame.value().size(); ++n) {
    auto r = next_frame(std::string_view{frame.value()}.substr(0, n));
    ASSERT_TRUE(r.is_ok()) << "prefix " << n << ": " << r.status().to_string();
    EXPECT_FALSE(r.value().has_value()) << "prefix " << n;
  }
}

// The CRC covers the payload: flipping any payload byte is detected.
TEST(MessageCodecFrame, CrcMismatchIsRejected) {
  auto frame = encode_message_frame(full_message(MessageType::kVoteResp));
  ASSERT_TRUE(frame.is_ok());
  for (size_t i = kFrameHeaderBytes; i < frame.value().size(); ++i) {
    std::string bad = frame.value();
    bad[i] = static_cast<char>(bad[i] ^ 0x01);
    auto r = next_frame(bad);
    ASSERT_FALSE(r.is_ok()) << "flip at " << i;
    EXPECT_EQ(r.status().code(), StatusCode::kCorrupt);
  }
  std::string bad = frame.value();
  bad[4] = static_cast<char>(bad[4] ^ 0x10);  // the stored CRC itself
  EXPECT_FALSE(next_frame(bad).is_ok());
}

// A length over kMaxFrameBytes is refused from the header alone, before any
// payload arrives, so a bad peer cannot make the reader buffer it.
TEST(MessageCodecFrame, OversizedLengthIsRejectedFromHeader) {
  std::string header;
  put_u32le(header, kMaxFrameBytes + 1);
  put_u32le(header, 0);
  auto r = next_frame(header);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kTooLarge);

  std::string at_limit;
  put_u32le(at_limit, kMaxFrameBytes);
  put_u32le(at_limit, 0);
  auto ok = next_frame(at_limit);
  ASSERT_TRUE(ok.is_ok());
  EXPECT_FALSE(ok.value().has_value());  // legal length, payload still to come
}

TEST(MessageCodecFrame, OversizedPayloadIsRefusedWithClearError) {
  const std::string payload(size_t{kMaxFrameBytes} + 1, 'x');
  std::string out;
  Status s = append_frame(payload, out);
  EXPECT_EQ(s.code(), StatusCode::kTooLarge);
  EXPECT_NE(s.message().find("exceeds the limit"), std::string::npos) << s.message();
  EXPECT_TRUE(out.empty());

  raft::Message m;
  m.type = MessageType::kSnapshot;
  m.data.assign(kMaxFrameBytes, 'y');  // plus the fixed fields: over the limit
  auto frame = encode_message_frame(m);
  ASSERT_FALSE(frame.is_ok());
  EXPECT_EQ(frame.status().code(), StatusCode::kTooLarge);
}

}  // namespace
}  // namespace ckv::transport
