// Unit tests for src/node/member_info.h: versioned MemberInfo encoding (old encodings still decode) and the member cap.
#include "node/member_info.h"

#include <string>

#include <gtest/gtest.h>

#include "common/bytes.h"
#include "raft/types.h"

namespace ckv::node {
namespace {

TEST(MemberInfo, RoundTripWithIncarnationAndGrpcAddress) {
  const MemberInfo in{"n1", "127.0.0.1:5000", "127.0.0.1:8000", std::string(32, 'f'), "127.0.0.1:2379"};
  auto out = decode_member_info(encode_member_info(in));
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->name, in.name);
  EXPECT_EQ(out->raft_address, in.raft_address);
  EXPECT_EQ(out->api_address, in.api_address);
  EXPECT_EQ(out->incarnation, in.incarnation);
  EXPECT_EQ(out->grpc_address, in.grpc_address);
}

// Format 2 (before -grpc-address) is in every existing log and snapshot.
TEST(MemberInfo, FormatTwoStillDecodesWithoutGrpcAddress) {
  std::string v2;
  put_u8(v2, 2);
  put_string32(v2, "n1");
  put_string32(v2, "127.0.0.1:5000");
  put_string32(v2, "127.0.0.1:8000");
  put_string32(v2, "inc");
  auto out = decode_member_info(v2);
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->incarnation, "inc");
  EXPECT_EQ(out->grpc_address, "");
  v2.push_back('x');  // trailing bytes are still refused
  EXPECT_FALSE(decode_member_info(v2).has_value());
}

// Configurations written before incarnations existed (format 1) must still
// decode, or an upgraded node could not read its own log.
TEST(MemberInfo, FormatOneStillDecodesWithoutIncarnation) {
  std::string v1;
  put_u8(v1, 1);
  put_string32(v1, "n1");
  put_string32(v1, "127.0.0.1:5000");
  put_string32(v1, "127.0.0.1:8000");
  auto out = decode_member_info(v1);
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->name, "n1");
  EXPECT_EQ(out->api_address, "127.0.0.1:8000");
  EXPECT_EQ(out->incarnation, "");
  v1.push_back('x');  // trailing bytes are still refused
  EXPECT_FALSE(decode_member_info(v1).has_value());
}

TEST(MemberInfo, TruncationsAndUnknownFormatsAreRefused) {
  const std::string enc = encode_member_info(MemberInfo{"n1", "a:1", "b:2", "inc", "c:3"});
  for (size_t n = 0; n < enc.size(); ++n)
    EXPECT_FALSE(decode_member_info(enc.substr(0, n)).has_value()) << n;
  std::string bad = enc;
  bad[0] = 4;
  EXPECT_FALSE(decode_member_info(bad).has_value());
}

// kMaxMembers is what raft::decode_membership accepts: add_member refuses a
// change past it, so a configuration every node can decode is never exceeded.
TEST(MemberInfo, MemberCapMatchesTheMembershipDecoder) {
  raft::Membership m;
  for (size_t i = 0; i < kMaxMembers; ++i) {
    std::string name = "n";  // append: GCC 12 -O3 reports a false -Wrestrict on "n" + to_string
    name += std::to_string(i);
    m.members.push_back(raft::Member{node_id_for(name), raft::MemberRole::kVoter,
                                     encode_member_info(MemberInfo{name, name + ":5000", "", "", ""})});
  }
  EXPECT_TRUE(raft::decode_membership(raft::encode_membership(m)).has_value());
  m.members.push_back(raft::Member{node_id_for("one-more"), raft::MemberRole::kVoter, ""});
  EXPECT_FALSE(raft::decode_membership(raft::encode_membership(m)).has_value());
}

}  // namespace
}  // namespace ckv::node
