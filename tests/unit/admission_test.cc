// Unit tests of HTTP connection admission: the clients' pool, its per-address share, and the members' reserve.
#include "http/admission.h"

#include <gtest/gtest.h>

namespace ckv::http {
namespace {

TEST(ConnectionAdmission, ClientsPoolIsBoundedInTotalAndPerAddress) {
  ConnectionAdmission a(AdmissionLimits{/*max_connections=*/3, /*max_connections_per_ip=*/2,
                                        /*member_connections=*/0});
  EXPECT_EQ(a.admit("10.0.0.1", false), Admitted::kClient);
  EXPECT_EQ(a.admit("10.0.0.1", false), Admitted::kClient);
  // The address's share is used up; another address still gets in.
  EXPECT_EQ(a.admit("10.0.0.1", false), Admitted::kRefusedPerIp);
  EXPECT_EQ(a.admit("10.0.0.2", false), Admitted::kClient);
  // The whole pool is used up.
  EXPECT_EQ(a.admit("10.0.0.3", false), Admitted::kRefusedTotal);
  EXPECT_EQ(a.clients(), 3);
  a.release("10.0.0.1", Admitted::kClient);
  EXPECT_EQ(a.clients_from("10.0.0.1"), 1);
  EXPECT_EQ(a.admit("10.0.0.3", false), Admitted::kClient);
}

TEST(ConnectionAdmission, MembersReserveOnlyForMemberHostsAndOnlyWhenThePoolIsFull) {
  ConnectionAdmission a(AdmissionLimits{2, 2, /*member_connections=*/1});
  // A member's host takes an ordinary slot while there is one.
  EXPECT_EQ(a.admit("10.0.0.9", true), Admitted::kClient);
  EXPECT_EQ(a.admit("10.0.0.1", false), Admitted::kClient);
  EXPECT_EQ(a.members(), 0);
  // Pool full: outsiders are refused, a member's host gets the reserve...
  EXPECT_EQ(a.admit("10.0.0.2", false), Admitted::kRefusedTotal);
  EXPECT_EQ(a.admit("10.0.0.9", true), Admitted::kMember);
  // ... until the reserve is full too.
  EXPECT_EQ(a.admit("10.0.0.9", true), Admitted::kRefusedTotal);
  a.release("10.0.0.9", Admitted::kMember);
  EXPECT_EQ(a.members(), 0);
  EXPECT_EQ(a.admit("10.0.0.9", true), Admitted::kMember);
}

TEST(ConnectionAdmission, MemberHostOverItsShareUsesTheReserve) {
  // On loopback, outside clients and members share 127.0.0.1: a flood from
  // it fills its share, and forwarded requests still find reserved slots.
  ConnectionAdmission a(AdmissionLimits{10, 1, 1});
  EXPECT_EQ(a.admit("127.0.0.1", true), Admitted::kClient);
  EXPECT_EQ(a.admit("127.0.0.1", true), Admitted::kMember);
  EXPECT_EQ(a.admit("127.0.0.1", true), Admitted::kRefusedPerIp);
  EXPECT_EQ(a.admit("127.0.0.1", false), Admitted::kRefusedPerIp);
}

TEST(ConnectionAdmission, PerAddressEntriesGoAwayWithTheirLastConnection) {
  ConnectionAdmission a(AdmissionLimits{1000, 1000, 0});
  for (int i = 0; i < 100; ++i) {
    const std::string ip = "10.0.1." + std::to_string(i);
    ASSERT_EQ(a.admit(ip, false), Admitted::kClient);
    a.release(ip, Admitted::kClient);
    EXPECT_EQ(a.clients_from(ip), 0);
  }
  EXPECT_EQ(a.clients(), 0);
}

TEST(BodyBudget, RefusesWhatDoesNotFitAndTakesNothingThen) {
  BodyBudget b(100);
  EXPECT_TRUE(b.try_take(60));
  EXPECT_FALSE(b.try_take(41));
  EXPECT_EQ(b.in_use_bytes(), 60u);
  EXPECT_TRUE(b.try_take(40));
  EXPECT_FALSE(b.try_take(1));
  b.give_back(60);
  EXPECT_TRUE(b.try_take(60));
  // A request larger than the whole budget never fits (no overflow).
  EXPECT_FALSE(b.try_take(UINT64_MAX));
}

}  // namespace
}  // namespace ckv::http
