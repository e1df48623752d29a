// Unit tests for src/node/member_info.h: versioned MemberInfo encoding (old encodings still decode), the cluster id, the member cap.
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
  EXPECT_EQ(out->cluster_id, 0u);
  EXPECT_FALSE(out->promote_when_caught_up);
}

TEST(MemberInfo, FormatFourCarriesTheClusterIdAndThePromotionFlag) {
  MemberInfo in{"n1", "127.0.0.1:5000", "127.0.0.1:8000", "inc", "127.0.0.1:2379"};
  in.cluster_id = 0xfedcba9876543210ULL;
  in.promote_when_caught_up = true;
  const std::string enc = encode_member_info(in);
  EXPECT_EQ(enc[0], 4);
  auto out = decode_member_info(enc);
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->cluster_id, in.cluster_id);
  EXPECT_TRUE(out->promote_when_caught_up);
  // An unknown flag bit is refused, not ignored: it may mean something an older node must not miss.
  std::string unknown_flag = enc;
  unknown_flag.back() = 2;
  EXPECT_FALSE(decode_member_info(unknown_flag).has_value());
}

// Format 3 (before the cluster id) is in every existing log and snapshot: no
// cluster id (the leader records one), and a learner in it came from /join,
// which promotes it once caught up.
TEST(MemberInfo, FormatThreeStillDecodesAsAJoiningMember) {
  std::string v3;
  put_u8(v3, 3);
  for (const char* f : {"n1", "127.0.0.1:5000", "127.0.0.1:8000", "inc", "127.0.0.1:2379"}) put_string32(v3, f);
  auto out = decode_member_info(v3);
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->grpc_address, "127.0.0.1:2379");
  EXPECT_EQ(out->cluster_id, 0u);
  EXPECT_TRUE(out->promote_when_caught_up);
  v3.push_back('x');
  EXPECT_FALSE(decode_member_info(v3).has_value());
}

raft::Member member(const std::string& name, uint64_t cluster_id) {
  MemberInfo info{name, name + ":5000", "", "", ""};
  info.cluster_id = cluster_id;
  return raft::Member{node_id_for(name), raft::MemberRole::kVoter, encode_member_info(info)};
}

raft::Membership sorted(std::vector<raft::Member> members) {
  raft::Membership m;
  m.members = std::move(members);
  return *raft::decode_membership(raft::encode_membership(m));  // decoding sorts by id
}

TEST(ClusterId, ARecordedIdWinsAndDoesNotDependOnTheMembers) {
  const raft::Membership one = sorted({member("a", 42)});
  EXPECT_EQ(cluster_id_of(one), 42u);
  // Members added later carry the same id; removing the founder changes nothing.
  EXPECT_EQ(cluster_id_of(sorted({member("a", 42), member("b", 42), member("c", 42)})), 42u);
  EXPECT_EQ(cluster_id_of(sorted({member("b", 42), member("c", 42)})), 42u);
  // A member that lacks it (recorded before format 4) does not change it either.
  EXPECT_EQ(cluster_id_of(sorted({member("a", 0), member("b", 42)})), 42u);
  EXPECT_EQ(cluster_id_of(raft::Membership{}), 0u);
}

// Before format 4 the header's id was FNV-1a 64 over the sorted member ids:
// a configuration without a recorded id derives exactly that, on every node.
TEST(ClusterId, AConfigurationWithoutOneDerivesTheOldHeaderValue) {
  const raft::Membership m = sorted({member("b", 0), member("a", 0)});
  uint64_t h = 0xcbf29ce484222325ULL;
  for (const raft::Member& x : m.members) {
    for (int i = 0; i < 8; ++i) {
      h ^= (x.id >> (8 * i)) & 0xff;
      h *= 0x100000001b3ULL;
    }
  }
  EXPECT_EQ(cluster_id_of(m), h);
  EXPECT_NE(cluster_id_of(m), cluster_id_of(sorted({member("a", 0)})));
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
  bad[0] = 5;
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
