// Unit tests of HTTP connection admission: the clients' pool, its per-address share, and the members' reserve.
#include "http/admission.h"

#include <gtest/gtest.h>

namespace ckv::http {
namespace {

// Admits a connection and marks it busy (not evictable), as a connection
// that is handling a request.
Admission admit_busy(ConnectionAdmission& a, const std::string& ip, bool member_host = false) {
  Admission got = a.admit(ip, member_host);
  if (got.id != 0) a.busy(got.id);
  return got;
}

TEST(ConnectionAdmission, ClientsPoolIsBoundedInTotalAndPerAddress) {
  ConnectionAdmission a(AdmissionLimits{/*max_connections=*/3, /*max_connections_per_ip=*/2,
                                        /*member_connections=*/0});
  const Admission first = admit_busy(a, "10.0.0.1");
  EXPECT_EQ(first.pool, Admitted::kClient);
  EXPECT_EQ(admit_busy(a, "10.0.0.1").pool, Admitted::kClient);
  // The address's share is used up; another address still gets in.
  EXPECT_EQ(admit_busy(a, "10.0.0.1").pool, Admitted::kRefusedPerIp);
  EXPECT_EQ(admit_busy(a, "10.0.0.2").pool, Admitted::kClient);
  // The whole pool is used up (and all of it busy: nothing to evict).
  const Admission refused = admit_busy(a, "10.0.0.3");
  EXPECT_EQ(refused.pool, Admitted::kRefusedTotal);
  EXPECT_EQ(refused.id, 0u);
  EXPECT_EQ(a.clients(), 3);
  a.release(first.id);
  EXPECT_EQ(a.clients_from("10.0.0.1"), 1);
  EXPECT_EQ(admit_busy(a, "10.0.0.3").pool, Admitted::kClient);
}

TEST(ConnectionAdmission, MembersReserveOnlyForMemberHostsAndOnlyWhenThePoolIsFull) {
  ConnectionAdmission a(AdmissionLimits{2, 2, /*member_connections=*/1});
  // A member's host takes an ordinary slot while there is one.
  EXPECT_EQ(admit_busy(a, "10.0.0.9", true).pool, Admitted::kClient);
  EXPECT_EQ(admit_busy(a, "10.0.0.1").pool, Admitted::kClient);
  EXPECT_EQ(a.members(), 0);
  // Pool full: outsiders are refused, a member's host gets the reserve...
  EXPECT_EQ(admit_busy(a, "10.0.0.2").pool, Admitted::kRefusedTotal);
  const Admission reserved = admit_busy(a, "10.0.0.9", true);
  EXPECT_EQ(reserved.pool, Admitted::kMember);
  // ... until the reserve is full too.
  EXPECT_EQ(admit_busy(a, "10.0.0.9", true).pool, Admitted::kRefusedTotal);
  a.release(reserved.id);
  EXPECT_EQ(a.members(), 0);
  EXPECT_EQ(admit_busy(a, "10.0.0.9", true).pool, Admitted::kMember);
}

TEST(ConnectionAdmission, MemberHostOverItsShareUsesTheReserve) {
  ConnectionAdmission a(AdmissionLimits{10, 1, 1});
  EXPECT_EQ(admit_busy(a, "127.0.0.1", true).pool, Admitted::kClient);
  EXPECT_EQ(admit_busy(a, "127.0.0.1", true).pool, Admitted::kMember);
  EXPECT_EQ(admit_busy(a, "127.0.0.1", true).pool, Admitted::kRefusedPerIp);
  EXPECT_EQ(admit_busy(a, "127.0.0.1", false).pool, Admitted::kRefusedPerIp);
}

TEST(ConnectionAdmission, FullPoolEvictsTheLongestWaitingConnection) {
  ConnectionAdmission a(AdmissionLimits{3, 3, 0});
  const Admission slow1 = a.admit("10.0.0.1", false);  // waiting: head never completes
  const Admission slow2 = a.admit("10.0.0.2", false);
  const Admission busy = admit_busy(a, "10.0.0.3");
  // Full: the newcomer is admitted and the oldest waiting one must go.
  const Admission n1 = a.admit("10.0.0.4", false);
  EXPECT_EQ(n1.pool, Admitted::kClient);
  EXPECT_EQ(n1.evict, slow1.id);
  a.busy(n1.id);  // its head arrived
  const Admission n2 = a.admit("10.0.0.4", false);
  EXPECT_EQ(n2.evict, slow2.id);
  a.busy(n2.id);
  // Each is chosen once; nothing waits now, so the next is refused.
  EXPECT_EQ(a.admit("10.0.0.5", false).pool, Admitted::kRefusedTotal);
  // A busy connection becomes evictable when it waits again, as the youngest.
  a.waiting(busy.id);
  EXPECT_EQ(a.admit("10.0.0.5", false).evict, busy.id);
  // Slots free as the evicted connections are released.
  a.release(slow1.id);
  a.release(slow2.id);
  a.release(busy.id);
  EXPECT_EQ(a.clients(), 3);
}

TEST(ConnectionAdmission, AddressOverItsShareEvictsItsOwnConnectionsOnly) {
  // On loopback, a slowloris client and genuine clients share 127.0.0.1:
  // the genuine ones push the slow ones out instead of being refused.
  ConnectionAdmission a(AdmissionLimits{10, 2, 0});
  const Admission other = a.admit("10.0.0.2", false);  // waiting, older than all below
  const Admission slow1 = a.admit("127.0.0.1", false);
  const Admission slow2 = a.admit("127.0.0.1", false);
  const Admission genuine = a.admit("127.0.0.1", false);
  EXPECT_EQ(genuine.pool, Admitted::kClient);
  EXPECT_EQ(genuine.evict, slow1.id) << "not the other address's connection " << other.id;
  a.busy(genuine.id);
  EXPECT_EQ(a.admit("127.0.0.1", false).evict, slow2.id);
}

TEST(ConnectionAdmission, MemberHostEvictsAWaitingClientBeforeTakingTheReserve) {
  // A reserved slot serves forwarded requests only, and admission cannot
  // know yet what the connection will send: a client on a member's host
  // (on loopback, every local client) must push out a slow connection, not
  // land in the reserve and be refused for not being forwarded.
  ConnectionAdmission a(AdmissionLimits{2, 2, /*member_connections=*/4});
  const Admission slow = a.admit("127.0.0.2", false);  // waiting: head never completes
  admit_busy(a, "127.0.0.3");
  const Admission local = a.admit("127.0.0.1", /*from_member_host=*/true);
  EXPECT_EQ(local.pool, Admitted::kClient);
  EXPECT_EQ(local.evict, slow.id);
  EXPECT_EQ(a.members(), 0);
  // With nothing left to evict, the reserve it is.
  a.busy(local.id);
  EXPECT_EQ(a.admit("127.0.0.1", true).pool, Admitted::kMember);
}

TEST(ConnectionAdmission, FullReserveEvictsItsLongestWaiting) {
  ConnectionAdmission a(AdmissionLimits{1, 1, 1});
  admit_busy(a, "10.0.0.9", true);
  const Admission idle_member = a.admit("10.0.0.9", true);
  EXPECT_EQ(idle_member.pool, Admitted::kMember);
  const Admission next = a.admit("10.0.0.9", true);
  EXPECT_EQ(next.pool, Admitted::kMember);
  EXPECT_EQ(next.evict, idle_member.id);
  // Outsiders never evict from the reserve.
  EXPECT_EQ(a.admit("10.0.0.1", false).pool, Admitted::kRefusedTotal);
}

TEST(ConnectionAdmission, PerAddressEntriesGoAwayWithTheirLastConnection) {
  ConnectionAdmission a(AdmissionLimits{1000, 1000, 0});
  for (int i = 0; i < 100; ++i) {
    const std::string ip = "10.0.1." + std::to_string(i);
    const Admission got = a.admit(ip, false);
    ASSERT_EQ(got.pool, Admitted::kClient);
    a.release(got.id);
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
