// Leases: the replicated table (lessor.h), the leader's pure expiry clock (expiry.h), lease commands in the state machine and its snapshots.
#include <random>

#include <gtest/gtest.h>

#include "fsm/kv_state_machine.h"
#include "lease/expiry.h"
#include "lease/lessor.h"
#include "mvcc/store.h"
#include "common/bytes.h"
#include "common/crc32c.h"

namespace ckv::lease {
namespace {

mvcc::Event put_event(std::string key, int64_t lease, std::optional<int64_t> prev_lease = std::nullopt) {
  mvcc::Event ev;
  ev.type = mvcc::Event::Type::kPut;
  ev.kv.key = key;
  ev.kv.lease = lease;
  if (prev_lease) {
    ev.prev_kv.emplace();
    ev.prev_kv->key = key;
    ev.prev_kv->lease = *prev_lease;
  }
  return ev;
}

mvcc::Event delete_event(std::string key, int64_t prev_lease) {
  mvcc::Event ev;
  ev.type = mvcc::Event::Type::kDelete;
  ev.kv.key = key;
  ev.prev_kv.emplace();
  ev.prev_kv->key = key;
  ev.prev_kv->lease = prev_lease;
  return ev;
}

std::vector<std::string> keys_of(const LeaseTable& t, int64_t id) {
  auto info = t.info(id);
  return info ? info->keys : std::vector<std::string>{};
}

TEST(LeaseTable, GrantRefusesAsEtcdsLessorDoes) {
  LeaseTable t;
  EXPECT_EQ(t.grant(0, 10).message(), kErrLeaseNotFound);
  EXPECT_EQ(t.grant(1, kMaxLeaseTtlSec + 1).message(), kErrLeaseTtlTooLarge);
  EXPECT_TRUE(t.grant(1, kMaxLeaseTtlSec).is_ok());
  Status again = t.grant(1, 5);
  EXPECT_EQ(again.message(), kErrLeaseExists);
  EXPECT_EQ(again.code(), StatusCode::kConflict);
  EXPECT_EQ(t.info(1)->ttl, kMaxLeaseTtlSec);  // the refused grant changed nothing
}

TEST(LeaseTable, KeysFollowPutsAndDeletesAndRevokeReturnsThemInKeyOrder) {
  LeaseTable t;
  ASSERT_TRUE(t.grant(1, 10).is_ok());
  ASSERT_TRUE(t.grant(2, 10).is_ok());
  t.apply_events({put_event("b", 1), put_event("a", 1), put_event("c", 2)});
  EXPECT_EQ(keys_of(t, 1), (std::vector<std::string>{"a", "b"}));
  // A put with another lease moves the key; a put without one detaches it.
  t.apply_events({put_event("a", 2, 1), put_event("b", 0, 1)});
  EXPECT_TRUE(keys_of(t, 1).empty());
  EXPECT_EQ(keys_of(t, 2), (std::vector<std::string>{"a", "c"}));
  // A txn that deletes and puts a key again ends with the put's lease.
  t.apply_events({delete_event("c", 2), put_event("c", 1)});
  EXPECT_EQ(keys_of(t, 1), (std::vector<std::string>{"c"}));
  t.apply_events({delete_event("a", 2)});
  EXPECT_TRUE(keys_of(t, 2).empty());
  auto revoked = t.revoke(1);
  ASSERT_TRUE(revoked.has_value());
  EXPECT_EQ(*revoked, (std::vector<std::string>{"c"}));
  EXPECT_FALSE(t.exists(1));
  EXPECT_FALSE(t.revoke(1).has_value());
  // Events naming a lease that is gone change nothing.
  t.apply_events({put_event("z", 1)});
  EXPECT_EQ(t.size(), 1u);
}

TEST(LeaseTable, EncodingRoundTripsAndTheDecoderRefusesWhatGrantCannotBuild) {
  LeaseTable t;
  ASSERT_TRUE(t.grant(-9, 3).is_ok());
  ASSERT_TRUE(t.grant(5, 60).is_ok());
  ASSERT_TRUE(t.grant(1LL << 62, kMaxLeaseTtlSec).is_ok());
  const std::string bytes = t.encode();
  auto back = LeaseTable::decode(bytes);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, t);
  EXPECT_EQ(back->ttls(), t.ttls());
  for (size_t n = 0; n < bytes.size(); ++n) EXPECT_FALSE(LeaseTable::decode(bytes.substr(0, n))) << n;
  EXPECT_FALSE(LeaseTable::decode(bytes + "x"));
  std::string zero_id;
  put_u8(zero_id, 1);
  put_u32le(zero_id, 1);
  put_u64le(zero_id, 0);
  put_u64le(zero_id, 5);
  EXPECT_FALSE(LeaseTable::decode(zero_id));
  std::string unsorted;
  put_u8(unsorted, 1);
  put_u32le(unsorted, 2);
  put_u64le(unsorted, 7);
  put_u64le(unsorted, 5);
  put_u64le(unsorted, 7);
  put_u64le(unsorted, 5);
  EXPECT_FALSE(LeaseTable::decode(unsorted));
  std::string huge_ttl;
  put_u8(huge_ttl, 1);
  put_u32le(huge_ttl, 1);
  put_u64le(huge_ttl, 7);
  put_u64le(huge_ttl, static_cast<uint64_t>(kMaxLeaseTtlSec + 1));
  EXPECT_FALSE(LeaseTable::decode(huge_ttl));
  // A count larger than the bytes behind it allocates nothing and fails.
  std::string lying;
  put_u8(lying, 1);
  put_u32le(lying, 0xffffffff);
  EXPECT_FALSE(LeaseTable::decode(lying));
  std::mt19937_64 rng(9);
  for (int i = 0; i < 5000; ++i) {
    std::string s = bytes;
    s[rng() % s.size()] = static_cast<char>(rng());
    if (auto d = LeaseTable::decode(s)) {
      EXPECT_EQ(d->encode(), s);  // accepted means canonical
    }
  }
}

// ---- the leader's expiry clock ------------------------------------------------

TEST(LeaseExpiry, NothingExpiresBeforeTheLeadersClockPassesTheTtl) {
  LeaseExpiry e;
  e.promote(1000, {{1, 5}, {2, 10}});
  EXPECT_TRUE(e.due(1000).empty());
  EXPECT_TRUE(e.due(5999).empty());
  EXPECT_EQ(e.due(6000), (std::vector<int64_t>{1}));
  EXPECT_TRUE(e.due(6001).empty());  // 1's revoke is in flight: not proposed twice
  e.revoked(1);                      // and applied
  EXPECT_TRUE(e.due(10999).empty());
  EXPECT_EQ(e.due(11000), (std::vector<int64_t>{2}));
}

TEST(LeaseExpiry, ANewLeaderGivesEveryLeaseItsFullTtlAfterAFailover) {
  // The old leader's deadlines are gone with it: whatever they were, the
  // new primary counts every TTL from its own promotion (etcd's Promote).
  LeaseExpiry old_leader;
  old_leader.promote(0, {{1, 5}});
  EXPECT_EQ(old_leader.due(5000), (std::vector<int64_t>{1}));  // it would have expired at 5 s
  LeaseExpiry new_leader;
  new_leader.promote(4900, {{1, 5}});
  EXPECT_TRUE(new_leader.due(5000).empty());
  EXPECT_TRUE(new_leader.due(9899).empty());
  EXPECT_EQ(new_leader.remaining_ms(1, 9000), 900);
  EXPECT_EQ(new_leader.due(9900), (std::vector<int64_t>{1}));
  // Promoting again (a later term) restarts every TTL once more.
  new_leader.promote(20'000, {{1, 5}});
  EXPECT_TRUE(new_leader.due(24'999).empty());
}

TEST(LeaseExpiry, KeepalivesRenewInMemoryAndAnExpiredLeaseIsNotRenewed) {
  LeaseExpiry e;
  EXPECT_EQ(e.renew(1, 0), std::nullopt);  // not primary
  e.promote(0, {{1, 3}});
  EXPECT_EQ(e.renew(1, 2000), 3);
  EXPECT_TRUE(e.due(4999).empty());
  EXPECT_EQ(e.remaining_ms(1, 4000), 1000);
  EXPECT_EQ(e.renew(2, 2000), std::nullopt);  // unknown
  EXPECT_EQ(e.renew(1, 5000), std::nullopt);  // expired: its revoke is due, not a renewal
  EXPECT_EQ(e.due(5000), (std::vector<int64_t>{1}));
  e.revoked(1);
  EXPECT_EQ(e.remaining_ms(1, 5000), std::nullopt);
}

TEST(LeaseExpiry, ARenewalNeverShortensAndIsRefusedOnceTheRevokeIsProposed) {
  LeaseExpiry e;
  e.promote(0, {{1, 3}});
  EXPECT_EQ(e.renew(1, 2000), 3);  // confirmed first: expires at 5000
  EXPECT_EQ(e.renew(1, 1000), 3);  // asked earlier, confirmed later: keeps 5000
  EXPECT_EQ(e.remaining_ms(1, 4000), 1000);
  EXPECT_EQ(e.due(5000), (std::vector<int64_t>{1}));
  // Asked before the expiry but confirmed after the revoke was proposed:
  // "alive" would be a lie, the revoke is on its way.
  EXPECT_EQ(e.renew(1, 4999), std::nullopt);
  e.revoke_failed(1);  // the proposal failed: the lease lives on and can be renewed
  EXPECT_EQ(e.renew(1, 4999), 3);
  EXPECT_TRUE(e.due(7998).empty());
}

TEST(LeaseExpiry, GrantsCountOnlyOnThePrimaryAndDemoteForgetsAll) {
  LeaseExpiry e;
  e.granted(1, 2, 0);
  e.promote(0, {});
  EXPECT_EQ(e.size(), 0u);  // the table is promote's source, not earlier granted() calls
  e.granted(1, 2, 100);
  EXPECT_EQ(e.remaining_ms(1, 100), 2000);
  e.demote();
  EXPECT_FALSE(e.primary());
  EXPECT_TRUE(e.due(1'000'000).empty());
  EXPECT_EQ(e.renew(1, 200), std::nullopt);
}

TEST(LeaseExpiry, RevokesAreRateLimitedAndRetried) {
  LeaseExpiry e;
  std::vector<std::pair<int64_t, int64_t>> many;
  for (int64_t id = 1; id <= 2000; ++id) many.emplace_back(id, 1);
  e.promote(0, many);
  // A burst of at most kRevokeBurst, then kRevokeRatePerSec per second.
  EXPECT_EQ(e.due(1000).size(), static_cast<size_t>(kRevokeBurst));
  EXPECT_EQ(e.due(1000).size(), 0u);
  EXPECT_EQ(e.due(1100).size(), static_cast<size_t>(kRevokeRatePerSec / 10));
  // A refused proposal is due again at once (tokens permitting)...
  std::vector<int64_t> next = e.due(1101);
  ASSERT_EQ(next.size(), 1u);
  e.revoke_failed(next[0]);
  EXPECT_EQ(e.due(1102), next);
  // ...and one proposed but never applied is proposed again after kRevokeRetryMs.
  std::vector<int64_t> later;
  for (int64_t t = 1103; t < 1000 + kRevokeRetryMs; t += 100) {
    for (int64_t id : e.due(t)) EXPECT_GT(id, 0);
  }
  bool first_again = false;
  for (int64_t t = 1000 + kRevokeRetryMs; t < 1000 + kRevokeRetryMs + 2000 && !first_again; t += 10) {
    for (int64_t id : e.due(t)) first_again = first_again || id == 1;
  }
  EXPECT_TRUE(first_again);
}

// ---- lease commands in the state machine ------------------------------------------

fsm::Command cmd(fsm::Request r) { return fsm::Command{std::move(r), "", 0}; }

fsm::Command put(std::string k, std::string v, int64_t lease) {
  mvcc::PutRequest p;
  p.key = std::move(k);
  p.value = std::move(v);
  p.lease = lease;
  return cmd(p);
}

TEST(LeaseStateMachine, PutsNeedAGrantedLeaseAndRevokeDeletesItsKeysInOneRevision) {
  fsm::KvStateMachine sm;
  EXPECT_EQ(sm.apply(1, put("a", "1", 7)).status.message(), kErrLeaseNotFound);
  fsm::ApplyResult g = sm.apply(2, cmd(GrantRequest{7, 30}));
  ASSERT_TRUE(g.status.is_ok());
  EXPECT_EQ(std::get<GrantResponse>(g.response), (GrantResponse{{1}, 7, 30}));
  EXPECT_EQ(sm.apply(3, cmd(GrantRequest{7, 30})).status.message(), kErrLeaseExists);
  ASSERT_TRUE(sm.apply(4, put("a", "1", 7)).status.is_ok());
  ASSERT_TRUE(sm.apply(5, put("b", "1", 7)).status.is_ok());
  ASSERT_TRUE(sm.apply(6, put("c", "1", 0)).status.is_ok());
  EXPECT_EQ(sm.lease_info(7)->keys, (std::vector<std::string>{"a", "b"}));
  // A txn's put with an unknown lease fails the whole txn, as etcd's.
  mvcc::TxnRequest t;
  mvcc::PutRequest bad;
  bad.key = "d";
  bad.lease = 8;
  t.success.push_back(mvcc::op_put(bad));
  EXPECT_EQ(sm.apply(7, cmd(t)).status.message(), kErrLeaseNotFound);
  const int64_t before = sm.revision();
  fsm::ApplyResult r = sm.apply(8, cmd(RevokeRequest{7}));
  ASSERT_TRUE(r.status.is_ok());
  EXPECT_EQ(std::get<RevokeResponse>(r.response).header.revision, before + 1);
  EXPECT_EQ(sm.revision(), before + 1);  // both keys in one revision
  EXPECT_EQ(sm.get("a"), std::nullopt);
  EXPECT_EQ(sm.get("b"), std::nullopt);
  EXPECT_EQ(sm.get("c"), "1");
  EXPECT_FALSE(sm.lease_info(7).has_value());
  fsm::ApplyResult again = sm.apply(9, cmd(RevokeRequest{7}));
  EXPECT_EQ(again.status.message(), kErrLeaseNotFound);
  EXPECT_EQ(again.status.code(), StatusCode::kNotFound);
  // A lease without keys revokes without a revision.
  ASSERT_TRUE(sm.apply(10, cmd(GrantRequest{9, 5})).status.is_ok());
  EXPECT_EQ(std::get<RevokeResponse>(sm.apply(11, cmd(RevokeRequest{9})).response).header.revision,
            before + 1);
}

TEST(LeaseStateMachine, SnapshotCarriesLeasesAndRebuildsTheirKeys) {
  fsm::KvStateMachine sm;
  uint64_t i = 0;
  ASSERT_TRUE(sm.apply(++i, cmd(GrantRequest{1, 10})).status.is_ok());
  ASSERT_TRUE(sm.apply(++i, cmd(GrantRequest{2, 20})).status.is_ok());
  ASSERT_TRUE(sm.apply(++i, put("x", "1", 1)).status.is_ok());
  ASSERT_TRUE(sm.apply(++i, put("y", "1", 2)).status.is_ok());
  ASSERT_TRUE(sm.apply(++i, put("x", "2", 2)).status.is_ok());  // moved to lease 2
  auto state = fsm::KvStateMachine::decode_payload(sm.encode_payload());
  ASSERT_TRUE(state.is_ok()) << state.status().to_string();
  fsm::KvStateMachine restored;
  restored.restore(std::move(state).value(), i);
  EXPECT_EQ(restored.lease_ttls(), sm.lease_ttls());
  EXPECT_EQ(restored.lease_info(1)->keys, std::vector<std::string>{});
  EXPECT_EQ(restored.lease_info(2)->keys, (std::vector<std::string>{"x", "y"}));
  // The restored replica applies the next revoke exactly as the original.
  fsm::ApplyResult a = sm.apply(i + 1, cmd(RevokeRequest{2}));
  fsm::ApplyResult b = restored.apply(i + 1, cmd(RevokeRequest{2}));
  EXPECT_EQ(fsm::encode_response(a.response), fsm::encode_response(b.response));
  EXPECT_EQ(restored.get("x"), std::nullopt);
  // The streamed snapshot writes the same payload.
  auto job = sm.begin_snapshot();
  std::string streamed;
  ASSERT_TRUE(sm.write_snapshot(*job, [&](std::string_view p) {
                  streamed.append(p);
                  return Status::ok();
                }).is_ok());
  sm.end_snapshot();
  EXPECT_EQ(streamed, sm.encode_payload());
}

TEST(LeaseStateMachine, PayloadFormat1FromBeforeLeasesIsStillRead) {
  // Format 1: u8 1, u64 table length, table, CRC, store (no lease section).
  mvcc::Store store(fsm::KvStateMachine::store_options());
  mvcc::PutRequest p;
  p.key = "k";
  p.value = "v";
  ASSERT_TRUE(store.put(p).is_ok());
  const std::string table = fsm::IdempotencyTable().encode();
  std::string v1;
  put_u8(v1, 1);
  put_u64le(v1, table.size());
  v1 += table;
  put_u32le(v1, crc32c(table));
  v1 += store.encode_snapshot();
  auto state = fsm::KvStateMachine::decode_payload(v1);
  ASSERT_TRUE(state.is_ok()) << state.status().to_string();
  fsm::KvStateMachine sm;
  sm.restore(std::move(state).value(), 3);
  EXPECT_EQ(sm.get("k"), "v");
  EXPECT_TRUE(sm.lease_ttls().empty());
}

TEST(StoreDeleteKeys, DeletesTheLiveKeysInOneRevisionAndSkipsTheRest) {
  mvcc::Store s;
  for (const char* k : {"a", "b", "c"}) {
    mvcc::PutRequest p;
    p.key = k;
    p.value = "v";
    p.lease = 4;
    ASSERT_TRUE(s.put(p).is_ok());
  }
  const int64_t rev = s.revision();
  mvcc::DeleteRangeResponse r = s.delete_keys({"c", "missing", "a"});
  EXPECT_EQ(r.deleted, 2);
  EXPECT_EQ(r.header.revision, rev + 1);
  ASSERT_EQ(s.last_events().size(), 2u);
  EXPECT_EQ(s.last_events()[0].kv.key, "c");
  EXPECT_EQ(s.last_events()[0].kv.mod_revision, rev + 1);
  EXPECT_EQ(s.last_events()[1].prev_kv->lease, 4);
  // Nothing live: no revision taken.
  EXPECT_EQ(s.delete_keys({"a", "zz"}).header.revision, rev + 1);
  EXPECT_EQ(s.revision(), rev + 1);
  std::vector<std::pair<std::string, int64_t>> leased;
  s.for_each_leased_key([&](const std::string& k, int64_t l) { leased.emplace_back(k, l); });
  EXPECT_EQ(leased, (std::vector<std::pair<std::string, int64_t>>{{"b", 4}}));
}

}  // namespace
}  // namespace ckv::lease

namespace ckv::lease {
namespace {

// A grant writes nothing to the store: the watch hook must not see the
// previous write's events again (they would reach watchers twice).
TEST(LeaseStateMachine, AGrantOrAFailedRevokePublishesNoEvents) {
  fsm::KvStateMachine sm;
  std::vector<int64_t> published;
  fsm::KvStateMachine::WatchHooks hooks;
  hooks.on_events = [&](int64_t rev, const std::vector<mvcc::Event>&) { published.push_back(rev); };
  sm.set_watch_hooks(hooks);
  ASSERT_TRUE(sm.apply(1, put("k", "v", 0)).status.is_ok());
  ASSERT_TRUE(sm.apply(2, cmd(GrantRequest{5, 10})).status.is_ok());
  EXPECT_FALSE(sm.apply(3, cmd(RevokeRequest{6})).status.is_ok());
  ASSERT_TRUE(sm.apply(4, cmd(RevokeRequest{5})).status.is_ok());  // no keys: no revision
  EXPECT_EQ(published, (std::vector<int64_t>{2}));
  ASSERT_TRUE(sm.apply(5, cmd(GrantRequest{7, 10})).status.is_ok());
  ASSERT_TRUE(sm.apply(6, put("a", "1", 7)).status.is_ok());
  ASSERT_TRUE(sm.apply(7, put("b", "1", 7)).status.is_ok());
  ASSERT_TRUE(sm.apply(8, cmd(RevokeRequest{7})).status.is_ok());
  EXPECT_EQ(published, (std::vector<int64_t>{2, 3, 4, 5}));  // the revoke's two deletes: one revision
}

}  // namespace
}  // namespace ckv::lease
