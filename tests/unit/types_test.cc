// Unit tests for src/raft/types.h: membership queries and the membership encoding carried by config entries.
#include "raft/types.h"

#include <cstdint>
#include <random>
#include <set>
#include <string>

#include <gtest/gtest.h>

#include "raft/messages.h"
#include "raft/raft.h"

namespace ckv::raft {
namespace {

Membership sample_membership() {
  Membership m;
  m.members.push_back(Member{1, MemberRole::kVoter, "raft=127.0.0.1:5000;api=127.0.0.1:8000"});
  m.members.push_back(Member{2, MemberRole::kVoter, ""});
  m.members.push_back(Member{7, MemberRole::kLearner, "api=10.0.0.7:8000"});
  m.members.push_back(Member{uint64_t{1} << 62, MemberRole::kVoter, "big id"});
  return m;
}

// Every successful decode must yield a well-formed membership: ids non-zero,
// strictly increasing (types.h: "Kept sorted by id"), hence unique.
void expect_well_formed(const Membership& m) {
  for (size_t i = 0; i < m.members.size(); ++i) {
    EXPECT_NE(m.members[i].id, kNoNode) << "member " << i;
    if (i > 0) {
      EXPECT_LT(m.members[i - 1].id, m.members[i].id) << "member " << i;
    }
  }
}

// types.h: a config entry's data is encode_membership(full membership); decode inverts it.
TEST(RaftMembershipEncoding, RoundTripPreservesIdsRolesAndContexts) {
  Membership m = sample_membership();
  auto decoded = decode_membership(encode_membership(m));
  ASSERT_TRUE(decoded.has_value());
  EXPECT_EQ(*decoded, m);
}

// An empty membership (a node waiting to be added) round-trips too.
TEST(RaftMembershipEncoding, RoundTripEmpty) {
  auto decoded = decode_membership(encode_membership(Membership{}));
  ASSERT_TRUE(decoded.has_value());
  EXPECT_TRUE(decoded->members.empty());
}

// Contexts are opaque to the core: any bytes, including NUL and 0xff, and long values survive.
TEST(RaftMembershipEncoding, RoundTripBinaryAndLargeContext) {
  Membership m;
  m.members.push_back(Member{3, MemberRole::kLearner, std::string("a\0b\xff\x01", 5)});
  m.members.push_back(Member{4, MemberRole::kVoter, std::string(100000, 'x')});
  auto decoded = decode_membership(encode_membership(m));
  ASSERT_TRUE(decoded.has_value());
  EXPECT_EQ(*decoded, m);
}

// types.h: "encode/decode and the core maintain" sorting by id, so equal memberships compare equal.
TEST(RaftMembershipEncoding, DecodeYieldsMembersSortedById) {
  Membership unsorted;
  unsorted.members.push_back(Member{9, MemberRole::kVoter, "nine"});
  unsorted.members.push_back(Member{2, MemberRole::kLearner, "two"});
  unsorted.members.push_back(Member{5, MemberRole::kVoter, "five"});
  auto decoded = decode_membership(encode_membership(unsorted));
  ASSERT_TRUE(decoded.has_value());
  ASSERT_EQ(decoded->members.size(), 3u);
  EXPECT_EQ(decoded->members[0], (Member{2, MemberRole::kLearner, "two"}));
  EXPECT_EQ(decoded->members[1], (Member{5, MemberRole::kVoter, "five"}));
  EXPECT_EQ(decoded->members[2], (Member{9, MemberRole::kVoter, "nine"}));
}

// types.h: decode returns nullopt on malformed input; a log entry cut short is malformed.
TEST(RaftMembershipEncoding, TruncatedByOneByteIsRejected) {
  std::string data = encode_membership(sample_membership());
  ASSERT_FALSE(data.empty());
  EXPECT_FALSE(decode_membership(data.substr(0, data.size() - 1)).has_value());
}

// types.h: malformed input never crashes the decoder; anything it accepts is well formed and re-encodes to itself.
TEST(RaftMembershipEncoding, EveryTruncationIsRejectedOrWellFormed) {
  std::string data = encode_membership(sample_membership());
  for (size_t len = 0; len < data.size(); ++len) {
    SCOPED_TRACE("prefix length " + std::to_string(len));
    auto decoded = decode_membership(data.substr(0, len));
    if (!decoded) continue;
    expect_well_formed(*decoded);
    EXPECT_NE(*decoded, sample_membership());
    auto again = decode_membership(encode_membership(*decoded));
    ASSERT_TRUE(again.has_value());
    EXPECT_EQ(*again, *decoded);
  }
}

// types.h: malformed input returns nullopt instead of crashing or allocating without bound.
TEST(RaftMembershipEncoding, GarbageIsRejectedOrWellFormed) {
  const std::string obvious_garbage[] = {
      std::string(16, '\xff'),  // endless varints / huge lengths
      std::string("\x7f\xff\xff\xff\xff\xff\xff\xff", 8),
      std::string(64, '\x80'),
  };
  for (const std::string& g : obvious_garbage) {
    auto decoded = decode_membership(g);
    if (decoded) expect_well_formed(*decoded);
  }
  std::mt19937_64 rng(42);
  for (int i = 0; i < 2000; ++i) {
    std::string g(rng() % 64, '\0');
    for (char& c : g) c = static_cast<char>(rng());
    auto decoded = decode_membership(g);
    if (decoded) expect_well_formed(*decoded);
  }
}

// types.h: flipping bytes of a valid encoding never yields an ill-formed membership.
TEST(RaftMembershipEncoding, CorruptedBytesAreRejectedOrWellFormed) {
  std::string data = encode_membership(sample_membership());
  for (size_t i = 0; i < data.size(); ++i) {
    for (unsigned char flip : {0x01, 0x80, 0xff}) {
      std::string bad = data;
      bad[i] = static_cast<char>(static_cast<unsigned char>(bad[i]) ^ flip);
      auto decoded = decode_membership(bad);
      if (decoded) expect_well_formed(*decoded);
    }
  }
}

// types.h Membership queries: find / is_voter / is_learner / contains / voters.
TEST(RaftMembership, QueriesDistinguishVotersLearnersAndStrangers) {
  Membership m = sample_membership();
  ASSERT_NE(m.find(7), nullptr);
  EXPECT_EQ(m.find(7)->context, "api=10.0.0.7:8000");
  EXPECT_EQ(m.find(3), nullptr);
  EXPECT_TRUE(m.is_voter(1));
  EXPECT_FALSE(m.is_learner(1));
  EXPECT_TRUE(m.is_learner(7));
  EXPECT_FALSE(m.is_voter(7));
  EXPECT_FALSE(m.is_voter(3));
  EXPECT_FALSE(m.is_learner(3));
  EXPECT_TRUE(m.contains(7));
  EXPECT_FALSE(m.contains(3));
  EXPECT_FALSE(m.contains(kNoNode));
  EXPECT_EQ(m.voters(), (std::vector<NodeId>{1, 2, uint64_t{1} << 62}));
}

// Error, role and message-type names are distinct, non-empty strings (they appear in logs and status output).
TEST(RaftNames, ToStringIsDistinctForEveryValue) {
  std::set<std::string> errors;
  for (Error e : {Error::kOk, Error::kNotLeader, Error::kTransferInProgress,
                  Error::kConfChangeInProgress, Error::kNotReady, Error::kOverloaded,
                  Error::kAlreadyMember, Error::kNotMember, Error::kNotLearner, Error::kInvalid}) {
    ASSERT_NE(to_string(e), nullptr);
    errors.insert(to_string(e));
  }
  EXPECT_EQ(errors.size(), 10u);
  std::set<std::string> roles;
  for (StateRole r : {StateRole::kFollower, StateRole::kPreCandidate, StateRole::kCandidate,
                      StateRole::kLeader}) {
    ASSERT_NE(to_string(r), nullptr);
    roles.insert(to_string(r));
  }
  EXPECT_EQ(roles.size(), 4u);
  std::set<std::string> types;
  for (int t = 0; t <= static_cast<int>(MessageType::kPropResp); ++t) {
    const char* s = to_string(static_cast<MessageType>(t));
    ASSERT_NE(s, nullptr);
    EXPECT_NE(std::string(s), "");
    types.insert(s);
  }
  EXPECT_EQ(types.size(), 15u);
}

}  // namespace
}  // namespace ckv::raft
