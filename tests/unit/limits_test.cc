// Unit tests of the HTTP size limits: key vs request head, and -max-body-bytes vs what Raft can replicate.
#include "http/limits.h"

#include <gtest/gtest.h>

#include "fsm/command.h"
#include "http/address.h"
#include "raft/messages.h"
#include "transport/message_codec.h"

namespace ckv::http {
namespace {

TEST(HttpLimits, LongestKeyUrlEncodedFitsTheRequestHead) {
  // Every byte needs an escape: the worst case for GET /get?key=.
  const std::string key(kMaxKeyBytes, '\xff');
  const std::string line =
      "GET /get?key=" + url_encode(key) + "&consistency=linearizable HTTP/1.1\r\n";
  EXPECT_EQ(url_encode(key).size(), kUrlEncodingFactor * kMaxKeyBytes);
  EXPECT_LT(line.size() + 4096, kMaxRequestHeadBytes) << "room for ordinary headers";
}

TEST(HttpLimits, DefaultBodyLimitIsReplicable) {
  EXPECT_TRUE(check_max_body_bytes(3 << 19, 64 << 20).is_ok());
}

TEST(HttpLimits, LargestReplicableBodyFitsOneFrameAndNoMore) {
  const uint64_t limit = max_replicable_body_bytes(uint64_t{1} << 40);  // the frame binds
  EXPECT_TRUE(check_max_body_bytes(limit, uint64_t{1} << 40).is_ok());
  EXPECT_FALSE(check_max_body_bytes(limit + 1, uint64_t{1} << 40).is_ok());
  // A body of that size yields a command of at most that size plus its
  // encoding; as an Append it must frame, one byte more must not.
  fsm::Command c;
  mvcc::PutRequest put;
  put.value.assign(limit, 'v');
  c.request = std::move(put);
  c.idempotency_key.assign(fsm::kMaxIdempotencyKeyBytes, 'i');
  c.proposed_at_ms = 1'700'000'000'000;
  const std::string command = fsm::encode_command(c);
  raft::Message m;
  m.type = raft::MessageType::kAppend;
  m.entries.push_back(raft::Entry{1, 1, raft::EntryType::kNormal, command});
  EXPECT_TRUE(transport::encode_message_frame(m).is_ok());
  m.entries[0].data.push_back('x');
  EXPECT_FALSE(transport::encode_message_frame(m).is_ok());
}

TEST(HttpLimits, UncommittedLimitBindsWhenSmaller) {
  const uint64_t uncommitted = 1 << 20;
  const uint64_t limit = max_replicable_body_bytes(uncommitted);
  EXPECT_LT(limit, uncommitted);
  EXPECT_GT(limit, uncommitted - 512);  // the command envelope, with the longest idempotency key
  EXPECT_TRUE(check_max_body_bytes(limit, uncommitted).is_ok());
  Status s = check_max_body_bytes(limit + 1, uncommitted);
  EXPECT_EQ(s.code(), StatusCode::kInvalid);
  EXPECT_NE(s.message().find(std::to_string(limit)), std::string::npos) << s.message();
  EXPECT_FALSE(check_max_body_bytes(0, uncommitted).is_ok());
}

}  // namespace
}  // namespace ckv::http
