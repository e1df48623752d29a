// Unit tests for src/auth/forwarded_caller.h and the forwarding key the auth store replicates with auth enable.
#include <gtest/gtest.h>

#include <random>

#include "auth/auth_store.h"
#include "auth/forwarded_caller.h"

namespace ckv::auth {
namespace {

const std::string kKey(kForwardKeyBytes, 'k');

TEST(ForwardedCaller, RoundTripsUserAndRevision) {
  const Caller alice{"alice", 12};
  const std::string claim = forwarded_caller_claim(kKey, alice);
  ASSERT_FALSE(claim.empty());
  for (char c : claim) EXPECT_TRUE(c > 0x20 && c < 0x7f) << "not printable ASCII: " << claim;
  auto back = verify_forwarded_caller(kKey, claim);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, alice);
  // Any bytes in a name survive (etcd's names are arbitrary).
  const Caller odd{std::string("a.b\0\xff c", 7), 3};
  auto odd_back = verify_forwarded_caller(kKey, forwarded_caller_claim(kKey, odd));
  ASSERT_TRUE(odd_back.has_value());
  EXPECT_EQ(*odd_back, odd);
}

TEST(ForwardedCaller, OnlyTheKeyMakesAClaim) {
  const std::string claim = forwarded_caller_claim(kKey, Caller{"alice", 12});
  EXPECT_FALSE(verify_forwarded_caller(std::string(kForwardKeyBytes, 'x'), claim));
  EXPECT_FALSE(verify_forwarded_caller("", claim));  // no key: nothing verifies
  EXPECT_TRUE(forwarded_caller_claim("", Caller{"alice", 12}).empty());
  // Changing the user or the revision breaks the MAC.
  const std::string root_claim = forwarded_caller_claim(kKey, Caller{"root", 12});
  const auto user_of = [](const std::string& c) { return c.substr(0, c.find('.', 3)); };
  const std::string tail = claim.substr(user_of(claim).size());
  EXPECT_FALSE(verify_forwarded_caller(kKey, user_of(root_claim) + tail));
  std::string bumped = claim;
  bumped.replace(bumped.find(".12."), 4, ".13.");
  EXPECT_FALSE(verify_forwarded_caller(kKey, bumped));
}

TEST(ForwardedCaller, RefusesMalformedClaims) {
  const std::string good = forwarded_caller_claim(kKey, Caller{"alice", 12});
  for (const std::string& bad : {std::string(), std::string("v1."), std::string("v2") + good.substr(2),
                                 good + ".", good + "=", good.substr(0, good.size() - 1),
                                 std::string("v1.YWxpY2U.-1.") + good.substr(good.rfind('.') + 1),
                                 std::string("v1.YWxpY2U..") + good.substr(good.rfind('.') + 1),
                                 std::string(kMaxForwardedCallerBytes + 1, 'v')}) {
    EXPECT_FALSE(verify_forwarded_caller(kKey, bad)) << bad;
  }
  std::mt19937_64 rng(11);
  for (int i = 0; i < 2000; ++i) {
    std::string m = good;
    m[rng() % m.size()] = static_cast<char>(rng() % 256);
    if (m != good) {
      EXPECT_FALSE(verify_forwarded_caller(kKey, m)) << "seed 11, iteration " << i;
    }
  }
}

AuthRequest op(AuthOp o, std::string name = "", std::string role = "") {
  AuthRequest r;
  r.op = o;
  r.name = std::move(name);
  r.role = std::move(role);
  return r;
}

TEST(ForwardedCaller, AuthEnableSetsTheKeyAndDisableDropsIt) {
  AuthStore s;
  AuthRequest add = op(AuthOp::kUserAdd, "root");
  add.secret = "hash";
  ASSERT_TRUE(s.apply(add).is_ok());
  ASSERT_TRUE(s.apply(op(AuthOp::kUserGrantRole, "root", kRootRole)).is_ok());
  AuthRequest enable = op(AuthOp::kEnable);
  enable.secret = kKey;
  ASSERT_TRUE(s.apply(enable).is_ok());
  EXPECT_EQ(s.forward_key(), kKey);
  // Snapshots carry it, so a member restored from one verifies claims too.
  auto back = AuthStore::decode(s.encode());
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->forward_key(), kKey);
  EXPECT_EQ(*back, s);
  // Enabling again keeps the key (a no-op, as etcd's).
  AuthRequest again = op(AuthOp::kEnable);
  again.secret = std::string(kForwardKeyBytes, 'z');
  ASSERT_TRUE(s.apply(again).is_ok());
  EXPECT_EQ(s.forward_key(), kKey);
  ASSERT_TRUE(s.apply(op(AuthOp::kDisable)).is_ok());
  EXPECT_TRUE(s.forward_key().empty());
  // An Enable from an older build (no secret) leaves no key: claims are refused.
  ASSERT_TRUE(s.apply(op(AuthOp::kEnable)).is_ok());
  EXPECT_TRUE(s.forward_key().empty());
}

TEST(ForwardedCaller, OlderSnapshotsWithoutTheKeyStillDecode) {
  AuthStore s;
  std::string v2 = s.encode();
  // Format 1 is format 2 without the trailing key (an empty string32 here).
  ASSERT_EQ(v2.substr(v2.size() - 4), std::string(4, '\0'));
  std::string v1 = v2.substr(0, v2.size() - 4);
  v1[0] = 1;
  auto back = AuthStore::decode(v1);
  ASSERT_TRUE(back.has_value());
  EXPECT_TRUE(back->forward_key().empty());
  // A key of the wrong size is corrupt.
  std::string bad = v2.substr(0, v2.size() - 4);
  bad += std::string("\x03\0\0\0abc", 7);
  EXPECT_FALSE(AuthStore::decode(bad));
}

}  // namespace
}  // namespace ckv::auth
