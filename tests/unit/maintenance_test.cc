// etcd's Maintenance state: the MVCC hash (HashKV, Hash) and the replicated alarm set with its effects on writes.
#include <atomic>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "common/bytes.h"
#include "fsm/alarm_table.h"
#include "fsm/kv_state_machine.h"
#include "mvcc/errors.h"
#include "mvcc/store.h"

namespace ckv {
namespace {

using fsm::AlarmAction;
using fsm::AlarmMember;
using fsm::AlarmRequest;
using fsm::AlarmType;
using fsm::Command;
using fsm::KvStateMachine;

mvcc::PutRequest put_req(std::string k, std::string v, int64_t lease = 0) {
  mvcc::PutRequest p;
  p.key = std::move(k);
  p.value = std::move(v);
  p.lease = lease;
  return p;
}

Command cmd(fsm::Request r) {
  Command c;
  c.request = std::move(r);
  return c;
}

Command alarm(AlarmAction action, uint64_t member, AlarmType type) {
  return cmd(AlarmRequest{action, member, type});
}

// The hash of a store at rev, chunk keys at a time.
Result<uint32_t> hash_of(const mvcc::Store& s, int64_t rev, size_t chunk = 3) {
  auto c = s.begin_hash(rev);
  if (!c.is_ok()) return c.status();
  mvcc::Store::HashCursor cur = c.value();
  while (s.next_hash_chunk(cur, chunk)) {
  }
  return cur.crc;
}

// Writes touching every kind of history: overwrites, deletes (tombstones), a
// key recreated after its delete, a txn with several changes at one revision.
void write_history(mvcc::Store& s, const std::string& last_value = "v3") {
  ASSERT_TRUE(s.put(put_req("a", "1")).is_ok());                 // rev 2
  ASSERT_TRUE(s.put(put_req("b", "1")).is_ok());                 // 3
  ASSERT_TRUE(s.put(put_req("a", "2")).is_ok());                 // 4
  ASSERT_TRUE(s.delete_range(mvcc::DeleteRangeRequest{"b", "", false}).is_ok());  // 5
  mvcc::TxnRequest t;
  t.success.push_back(mvcc::op_put(put_req("c", "1")));
  t.success.push_back(mvcc::op_put(put_req("d", "1")));
  ASSERT_TRUE(s.txn(t).is_ok());                                 // 6
  ASSERT_TRUE(s.put(put_req("b", "again")).is_ok());             // 7
  ASSERT_TRUE(s.put(put_req("a", last_value)).is_ok());          // 8
}

TEST(MvccHash, StoresBuiltByTheSameWritesHashEqualAtEveryRevision) {
  mvcc::Store x, y;
  write_history(x);
  write_history(y);
  for (int64_t rev = 0; rev <= x.revision(); ++rev) {
    auto hx = hash_of(x, rev, 1), hy = hash_of(y, rev, 100);  // chunking does not matter
    ASSERT_TRUE(hx.is_ok() && hy.is_ok());
    EXPECT_EQ(hx.value(), hy.value()) << "rev " << rev;
  }
  EXPECT_EQ(hash_of(x, 0).value(), hash_of(x, x.revision()).value());  // 0 is the current revision
}

TEST(MvccHash, ADifferentValueOrHistoryHashesDifferently) {
  mvcc::Store x, y, z;
  write_history(x);
  write_history(y, "other");
  write_history(z);
  ASSERT_TRUE(z.put(put_req("e", "1")).is_ok());
  EXPECT_NE(hash_of(x, 0).value(), hash_of(y, 0).value());
  // Up to the revision before the differing write they agree, and at it they differ.
  EXPECT_EQ(hash_of(x, 7).value(), hash_of(y, 7).value());
  EXPECT_NE(hash_of(x, 8).value(), hash_of(y, 8).value());
  // A later write changes the current hash, not the hash at an earlier revision.
  EXPECT_NE(hash_of(x, 0).value(), hash_of(z, 0).value());
  EXPECT_EQ(hash_of(x, 8).value(), hash_of(z, 8).value());
  // Every revision's hash is distinct here: each one adds history.
  std::set<uint32_t> seen;
  for (int64_t rev = 1; rev <= x.revision(); ++rev) seen.insert(hash_of(x, rev).value());
  EXPECT_EQ(seen.size(), static_cast<size_t>(x.revision()));
}

TEST(MvccHash, CompactedAndFutureRevisionsAreRefusedWithEtcdsTexts) {
  mvcc::Store s;
  write_history(s);
  auto future = s.begin_hash(s.revision() + 1);
  ASSERT_FALSE(future.is_ok());
  EXPECT_EQ(future.status().message(), mvcc::kErrFutureRev);
  ASSERT_TRUE(s.compact(mvcc::CompactionRequest{5, true}).is_ok());
  for (int64_t rev : {1, 4, 5}) {  // etcd refuses the compacted revision itself too
    auto old = s.begin_hash(rev);
    ASSERT_FALSE(old.is_ok()) << rev;
    EXPECT_EQ(old.status().message(), mvcc::kErrCompacted);
  }
  EXPECT_TRUE(s.begin_hash(6).is_ok());
  EXPECT_TRUE(s.begin_hash(0).is_ok());
}

// What a compaction keeps counts, what it drops does not, and whether its
// versions are gone yet (incremental compaction) makes no difference.
TEST(MvccHash, EqualWhateverTheCompactionsProgress) {
  mvcc::StoreOptions incremental;
  incremental.incremental_compaction = true;
  mvcc::Store done, pending(incremental);
  write_history(done);
  write_history(pending);
  ASSERT_TRUE(done.compact(mvcc::CompactionRequest{5, true}).is_ok());
  ASSERT_TRUE(pending.compact(mvcc::CompactionRequest{5, true}).is_ok());
  ASSERT_TRUE(pending.compaction_pending());
  EXPECT_NE(done.version_count(), pending.version_count());  // physically different
  for (int64_t rev = 6; rev <= done.revision(); ++rev) {
    EXPECT_EQ(hash_of(done, rev).value(), hash_of(pending, rev).value()) << rev;
  }
  while (pending.compact_step(1)) {
  }
  EXPECT_EQ(hash_of(done, 0).value(), hash_of(pending, 0).value());
  // A compaction changes what the hash covers (versions below it no longer count).
  mvcc::Store uncompacted;
  write_history(uncompacted);
  EXPECT_NE(hash_of(uncompacted, 0).value(), hash_of(done, 0).value());
}

void apply_all(KvStateMachine& sm, uint64_t& index, const std::vector<Command>& cmds) {
  for (const Command& c : cmds) sm.apply(++index, c);
}

std::vector<Command> some_writes(int keys) {
  std::vector<Command> out;
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < keys; ++i) {
      out.push_back(cmd(put_req("k" + std::to_string(i), "v" + std::to_string(round))));
    }
  }
  out.push_back(cmd(lease::GrantRequest{99, 60}));
  out.push_back(cmd(put_req("leased", "x", 99)));
  out.push_back(cmd(mvcc::CompactionRequest{keys + 2, true}));
  for (int i = 0; i < keys; i += 7) out.push_back(cmd(mvcc::DeleteRangeRequest{"k" + std::to_string(i), "", false}));
  return out;
}

TEST(StateHash, MembersThatAppliedTheSameLogHashEqualAndASnapshotKeepsIt) {
  KvStateMachine a, b;
  uint64_t ia = 0, ib = 0;
  apply_all(a, ia, some_writes(600));  // more keys than one chunk
  apply_all(b, ib, some_writes(600));
  while (b.compact_step()) {  // b has dropped the compacted versions, a not yet
  }
  auto ha = a.hash_kv(0), hb = b.hash_kv(0);
  ASSERT_TRUE(ha.is_ok() && hb.is_ok());
  EXPECT_EQ(ha->hash, hb->hash);
  EXPECT_EQ(ha->compact_revision, 602);
  EXPECT_EQ(ha->revision, a.revision());
  EXPECT_EQ(ha->current_revision, a.revision());
  EXPECT_EQ(a.hash_state().value().hash, b.hash_state().value().hash);
  EXPECT_NE(a.hash_state().value().hash, ha->hash);  // Hash covers more than HashKV
  // At an earlier revision: the current revision is still reported.
  auto earlier = a.hash_kv(700);
  ASSERT_TRUE(earlier.is_ok());
  EXPECT_NE(earlier->hash, ha->hash);
  EXPECT_EQ(earlier->revision, 700);
  EXPECT_EQ(earlier->current_revision, a.revision());
  EXPECT_EQ(a.hash_kv(602).status().message(), mvcc::kErrCompacted);
  EXPECT_EQ(a.hash_kv(a.revision() + 1).status().message(), mvcc::kErrFutureRev);
  // A member restored from a's snapshot answers the same.
  auto state = KvStateMachine::decode_payload(a.encode_payload());
  ASSERT_TRUE(state.is_ok());
  KvStateMachine c;
  c.restore(std::move(state).value(), ia);
  EXPECT_EQ(c.hash_kv(0).value().hash, ha->hash);
  EXPECT_EQ(c.hash_kv(700).value().hash, earlier->hash);
  EXPECT_EQ(c.hash_state().value().hash, a.hash_state().value().hash);
  // A lease (no key revision) changes Hash but not HashKV.
  a.apply(++ia, cmd(lease::GrantRequest{100, 60}));
  EXPECT_EQ(a.hash_kv(0).value().hash, ha->hash);
  EXPECT_NE(a.hash_state().value().hash, b.hash_state().value().hash);
}

// The hash is taken in chunks while the Raft thread keeps applying: the
// answer is the one for the revision it started at.
TEST(StateHash, WritesDuringThePassDoNotChangeItsAnswer) {
  KvStateMachine sm;
  uint64_t index = 0;
  apply_all(sm, index, some_writes(3000));
  const int64_t rev = sm.revision();
  const uint32_t quiet = sm.hash_kv(rev).value().hash;
  std::atomic<bool> stop{false};
  std::atomic<int> writes{0};
  std::thread writer([&] {
    for (int i = 0; !stop.load(); ++i) {
      sm.apply(++index, cmd(put_req("k" + std::to_string(i % 5000), "new")));
      writes.fetch_add(1);
    }
  });
  // Hash until a few hundred writes went in meanwhile (bounded: a pass takes about a millisecond).
  int passes = 0;
  for (; passes < 100'000 && writes.load() < 300; ++passes) ASSERT_EQ(sm.hash_kv(rev).value().hash, quiet);
  stop = true;
  writer.join();
  EXPECT_GE(writes.load(), 300) << "after " << passes << " passes";
  EXPECT_GT(sm.revision(), rev);
}

TEST(AlarmTable, ActivateDeactivateAndGetAsEtcdsAlarmStore) {
  fsm::AlarmTable t;
  EXPECT_TRUE(t.empty());
  auto raised = t.apply(AlarmRequest{AlarmAction::kActivate, 7, AlarmType::kNoSpace});
  ASSERT_TRUE(raised.is_ok());
  EXPECT_EQ(raised.value(), (std::vector<AlarmMember>{{7, AlarmType::kNoSpace}}));
  EXPECT_EQ(t.apply(AlarmRequest{AlarmAction::kActivate, 7, AlarmType::kNoSpace}).value().size(), 1u);  // again: same answer
  EXPECT_EQ(t.size(), 1u);
  ASSERT_TRUE(t.apply(AlarmRequest{AlarmAction::kActivate, 3, AlarmType::kCorrupt}).is_ok());
  EXPECT_EQ(t.get(AlarmType::kNone).size(), 2u);
  EXPECT_EQ(t.get(AlarmType::kCorrupt), (std::vector<AlarmMember>{{3, AlarmType::kCorrupt}}));
  EXPECT_TRUE(t.active(AlarmType::kNoSpace));
  EXPECT_TRUE(t.apply(AlarmRequest{AlarmAction::kDeactivate, 9, AlarmType::kNoSpace}).value().empty());  // not raised
  EXPECT_EQ(t.apply(AlarmRequest{AlarmAction::kDeactivate, 7, AlarmType::kNoSpace}).value().size(), 1u);
  EXPECT_FALSE(t.active(AlarmType::kNoSpace));
  EXPECT_EQ(t.apply(AlarmRequest{AlarmAction::kActivate, 1, static_cast<AlarmType>(7)}).status().code(),
            StatusCode::kInvalid);
  EXPECT_EQ(fsm::describe({7, AlarmType::kNoSpace}), "memberID:7 alarm:NOSPACE ");
  EXPECT_EQ(fsm::describe({1, AlarmType::kNone}), "memberID:1 ");  // etcd leaves zero fields out
}

TEST(AlarmTable, BoundedAndItsDecoderTakesOnlyWhatEncodeWrites) {
  fsm::AlarmTable t;
  for (uint64_t id = 1; id <= fsm::kMaxAlarms; ++id) {
    ASSERT_TRUE(t.apply(AlarmRequest{AlarmAction::kActivate, id, AlarmType::kNoSpace}).is_ok());
  }
  EXPECT_EQ(t.apply(AlarmRequest{AlarmAction::kActivate, 0, AlarmType::kNoSpace}).status().code(),
            StatusCode::kInvalid);
  EXPECT_TRUE(t.apply(AlarmRequest{AlarmAction::kActivate, 1, AlarmType::kNoSpace}).is_ok());  // raised already
  auto back = fsm::AlarmTable::decode(t.encode());
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, t);
  fsm::AlarmTable two;
  ASSERT_TRUE(two.apply(AlarmRequest{AlarmAction::kActivate, 5, AlarmType::kNoSpace}).is_ok());
  ASSERT_TRUE(two.apply(AlarmRequest{AlarmAction::kActivate, 2, AlarmType::kCorrupt}).is_ok());
  const std::string good = two.encode();
  std::string swapped = good.substr(0, 4) + good.substr(16, 12) + good.substr(4, 12);  // unsorted
  EXPECT_FALSE(fsm::AlarmTable::decode(swapped).has_value());
  std::string bad_type = good;
  bad_type[4 + 8] = 9;
  EXPECT_FALSE(fsm::AlarmTable::decode(bad_type).has_value());
  EXPECT_FALSE(fsm::AlarmTable::decode(good + "x").has_value());
  EXPECT_FALSE(fsm::AlarmTable::decode(good.substr(0, good.size() - 1)).has_value());
}

Status status_of(KvStateMachine& sm, uint64_t& index, Command c) { return sm.apply(++index, c).status; }

TEST(Alarms, NoSpaceRefusesWhatGrowsTheStoreOnlyUntilDisarmed) {
  KvStateMachine sm;
  uint64_t i = 0;
  ASSERT_TRUE(status_of(sm, i, cmd(put_req("a", "1"))).is_ok());
  ASSERT_TRUE(status_of(sm, i, cmd(lease::GrantRequest{5, 60})).is_ok());
  {
    fsm::ApplyResult r = sm.apply(++i, alarm(AlarmAction::kActivate, 42, AlarmType::kNoSpace));
    ASSERT_TRUE(r.status.is_ok());
    EXPECT_EQ(std::get<fsm::AlarmResponse>(r.response).alarms, (std::vector<AlarmMember>{{42, AlarmType::kNoSpace}}));
  }
  const int64_t rev = sm.revision();
  const Status put = status_of(sm, i, cmd(put_req("b", "1")));
  EXPECT_EQ(put.code(), StatusCode::kNoSpace);
  EXPECT_EQ(put.message(), "etcdserver: mvcc: database space exceeded");
  EXPECT_EQ(status_of(sm, i, cmd(lease::GrantRequest{6, 60})).code(), StatusCode::kNoSpace);
  mvcc::TxnRequest nested;
  nested.failure.push_back(mvcc::op_put(put_req("n", "1")));
  mvcc::TxnRequest t;
  t.success.push_back(mvcc::op_txn(nested));  // a put on either branch, at any depth
  EXPECT_EQ(status_of(sm, i, cmd(t)).code(), StatusCode::kNoSpace);
  EXPECT_EQ(sm.revision(), rev);  // nothing was written
  EXPECT_FALSE(sm.lease_info(6).has_value());
  // Deletes, revokes, compactions, reads and txns without puts still work.
  mvcc::TxnRequest reads;
  reads.success.push_back(mvcc::op_delete(mvcc::DeleteRangeRequest{"zz", "", false}));
  EXPECT_TRUE(status_of(sm, i, cmd(reads)).is_ok());
  EXPECT_TRUE(status_of(sm, i, cmd(mvcc::DeleteRangeRequest{"a", "", false})).is_ok());
  EXPECT_TRUE(status_of(sm, i, cmd(lease::RevokeRequest{5})).is_ok());
  EXPECT_TRUE(status_of(sm, i, cmd(mvcc::CompactionRequest{sm.revision(), true})).is_ok());
  mvcc::RangeRequest everything;
  everything.key = "a";
  everything.range_end = std::string(1, '\0');
  EXPECT_TRUE(sm.range(everything).is_ok());
  EXPECT_EQ(sm.alarms(), (std::vector<AlarmMember>{{42, AlarmType::kNoSpace}}));
  // Disarmed: writes go through again.
  ASSERT_TRUE(status_of(sm, i, alarm(AlarmAction::kDeactivate, 42, AlarmType::kNoSpace)).is_ok());
  EXPECT_TRUE(sm.alarms().empty());
  EXPECT_TRUE(status_of(sm, i, cmd(put_req("b", "1"))).is_ok());
  EXPECT_TRUE(status_of(sm, i, cmd(lease::GrantRequest{6, 60})).is_ok());
}

TEST(Alarms, CorruptRefusesEveryKvAndLeaseWriteButNotAlarmChanges) {
  KvStateMachine sm;
  uint64_t i = 0;
  ASSERT_TRUE(status_of(sm, i, cmd(put_req("a", "1"))).is_ok());
  ASSERT_TRUE(status_of(sm, i, alarm(AlarmAction::kActivate, 1, AlarmType::kCorrupt)).is_ok());
  for (Command c : {cmd(put_req("a", "2")), cmd(mvcc::DeleteRangeRequest{"a", "", false}),
                    cmd(mvcc::CompactionRequest{1, false}), cmd(lease::GrantRequest{5, 60}),
                    cmd(lease::RevokeRequest{5})}) {
    const Status s = status_of(sm, i, c);
    EXPECT_EQ(s.code(), StatusCode::kCorrupt);
    EXPECT_EQ(s.message(), "etcdserver: corrupt cluster");
  }
  EXPECT_EQ(sm.get("a"), "1");  // reads still answer
  ASSERT_TRUE(status_of(sm, i, alarm(AlarmAction::kDeactivate, 1, AlarmType::kCorrupt)).is_ok());
  EXPECT_TRUE(status_of(sm, i, cmd(put_req("a", "2"))).is_ok());
}

// The payload's alarm section: format 4 carries it while an alarm is
// raised; without one the payload stays format 3 (what members before
// alarms read), and format 3 decodes with no alarms.
TEST(Alarms, TravelInSnapshotsAndOlderPayloadsStillDecode) {
  KvStateMachine sm;
  uint64_t i = 0;
  ASSERT_TRUE(status_of(sm, i, cmd(put_req("a", "1"))).is_ok());
  const std::string before_alarms = sm.encode_payload();
  EXPECT_EQ(before_alarms[0], 3);
  ASSERT_TRUE(status_of(sm, i, alarm(AlarmAction::kActivate, 9, AlarmType::kNoSpace)).is_ok());
  const std::string with_alarm = sm.encode_payload();
  EXPECT_EQ(with_alarm[0], 4);
  auto state = KvStateMachine::decode_payload(with_alarm);
  ASSERT_TRUE(state.is_ok()) << state.status().to_string();
  KvStateMachine restored;
  restored.restore(std::move(state).value(), i);
  EXPECT_EQ(restored.alarms(), (std::vector<AlarmMember>{{9, AlarmType::kNoSpace}}));
  EXPECT_EQ(status_of(restored, i, cmd(put_req("b", "1"))).code(), StatusCode::kNoSpace);
  // Format 4 is format 3 plus the fourth section, right after the third.
  size_t at = 1;
  for (int section = 0; section < 3; ++section) {
    ByteReader len_reader(std::string_view(with_alarm).substr(at));
    uint64_t len = 0;
    ASSERT_TRUE(len_reader.u64le(len));
    at += 8 + len + 4;
  }
  EXPECT_EQ(with_alarm.substr(1, at - 1), before_alarms.substr(1, at - 1));
  EXPECT_EQ(with_alarm.substr(at + 8 + 16 + 4), before_alarms.substr(at));  // one alarm: a count and 12 bytes
  // A damaged alarm section is refused, not read as no alarms.
  std::string damaged = with_alarm;
  damaged[at + 8 + 4] ^= 1;
  EXPECT_FALSE(KvStateMachine::decode_payload(damaged).is_ok());
  // Disarmed, the next snapshot is format 3 again.
  ASSERT_TRUE(status_of(sm, i, alarm(AlarmAction::kDeactivate, 9, AlarmType::kNoSpace)).is_ok());
  EXPECT_EQ(sm.encode_payload()[0], 3);
  auto old = KvStateMachine::decode_payload(before_alarms);
  ASSERT_TRUE(old.is_ok()) << old.status().to_string();
  EXPECT_TRUE(old.value().alarms.empty());
  KvStateMachine from_old;
  from_old.restore(std::move(old).value(), 1);
  EXPECT_EQ(from_old.get("a"), "1");
  EXPECT_TRUE(status_of(from_old, i, cmd(put_req("b", "1"))).is_ok());
}

}  // namespace
}  // namespace ckv
