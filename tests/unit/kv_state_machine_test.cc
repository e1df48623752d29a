// The replicated state machine: command and response codecs (fuzzed), apply over the MVCC store, idempotency, snapshots.
#include "fsm/kv_state_machine.h"

#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "mvcc/errors.h"

namespace ckv::fsm {
namespace {

Command put(std::string k, std::string v, std::string idem = "", int64_t at_ms = 0) {
  mvcc::PutRequest p;
  p.key = std::move(k);
  p.value = std::move(v);
  Command c;
  c.request = std::move(p);
  c.idempotency_key = std::move(idem);
  c.proposed_at_ms = at_ms;
  return c;
}

Command del(std::string k, std::string range_end = "") {
  mvcc::DeleteRangeRequest d;
  d.key = std::move(k);
  d.range_end = std::move(range_end);
  d.prev_kv = true;
  Command c;
  c.request = std::move(d);
  return c;
}

mvcc::RangeRequest range_req(std::string key, std::string end = "", int64_t rev = 0) {
  mvcc::RangeRequest r;
  r.key = std::move(key);
  r.range_end = std::move(end);
  r.revision = rev;
  return r;
}

Command compact(int64_t rev) {
  Command c;
  c.request = mvcc::CompactionRequest{rev, true};
  return c;
}

// A txn using every field the codec carries, nested `depth` deep.
mvcc::TxnRequest rich_txn(size_t depth) {
  mvcc::TxnRequest t;
  mvcc::Compare cv;
  cv.target = mvcc::Compare::CompareTarget::kValue;
  cv.result = mvcc::Compare::CompareResult::kNotEqual;
  cv.key = "a";
  cv.value = std::string("v\0x", 3);
  cv.range_end = "b";
  t.compare.push_back(cv);
  mvcc::Compare cm;
  cm.target = mvcc::Compare::CompareTarget::kMod;
  cm.result = mvcc::Compare::CompareResult::kLess;
  cm.key = "m";
  cm.mod_revision = 7;
  t.compare.push_back(cm);
  mvcc::RangeRequest r;
  r.key = "a";
  r.range_end = std::string(1, '\0');
  r.limit = 3;
  r.revision = 2;
  r.sort_order = mvcc::SortOrder::kDescend;
  r.sort_target = mvcc::SortTarget::kMod;
  r.keys_only = true;
  r.count_only = true;
  r.serializable = true;
  r.min_mod_revision = 1;
  r.max_mod_revision = 9;
  r.min_create_revision = 2;
  r.max_create_revision = 8;
  t.success.push_back(mvcc::op_range(r));
  mvcc::PutRequest p;
  p.key = "p";
  p.value = "val";
  p.lease = 5;
  p.prev_kv = true;
  p.ignore_lease = true;
  t.success.push_back(mvcc::op_put(p));
  t.failure.push_back(mvcc::op_delete(mvcc::DeleteRangeRequest{"d", "e", true}));
  t.failure.push_back(mvcc::RequestOp{});  // no request set
  if (depth > 1) t.success.push_back(mvcc::op_txn(rich_txn(depth - 1)));
  return t;
}

std::vector<Command> sample_commands() {
  std::vector<Command> out;
  out.push_back(put("k", "v"));
  out.push_back(put("key", std::string("\0bin\xff", 5), "retry-1", 1'700'000'000'123));
  mvcc::PutRequest p;
  p.key = "x";
  p.ignore_value = true;
  p.prev_kv = true;
  out.push_back(Command{p, "", 5});
  out.push_back(del("gone", "goneZ"));
  Command t;
  t.request = rich_txn(3);
  t.idempotency_key = "txn";
  out.push_back(t);
  out.push_back(compact(42));
  out.push_back(Command{lease::GrantRequest{0x1234'5678'9abc'def0, 90}, "grant-1", 7});
  out.push_back(Command{lease::GrantRequest{-5, 0}, "", 0});  // ids are any nonzero int64 a client names
  out.push_back(Command{lease::RevokeRequest{0x1234'5678'9abc'def0}, "", 8});
  out.push_back(Command{AlarmRequest{AlarmAction::kActivate, 0xfedc'ba98'7654'3210, AlarmType::kNoSpace}, "", 9});
  out.push_back(Command{AlarmRequest{AlarmAction::kDeactivate, 3, AlarmType::kCorrupt}, "alarm", 10});
  return out;
}

TEST(CommandCodec, RoundTripsEveryField) {
  for (const Command& c : sample_commands()) {
    const std::string bytes = encode_command(c);
    auto back = decode_command(bytes);
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(encode_command(*back), bytes);  // every field survived (the encoding is canonical)
    EXPECT_EQ(back->idempotency_key, c.idempotency_key);
    EXPECT_EQ(back->proposed_at_ms, c.proposed_at_ms);
    EXPECT_EQ(back->request.index(), c.request.index());
  }
  auto t = decode_command(encode_command(sample_commands()[4]));
  const auto& txn = std::get<mvcc::TxnRequest>(t->request);
  ASSERT_EQ(txn.compare.size(), 2u);
  EXPECT_EQ(txn.compare[0].value, std::string("v\0x", 3));
  EXPECT_EQ(txn.compare[1].mod_revision, 7);
  const auto& r = std::get<mvcc::RangeRequest>(txn.success[0].request);
  EXPECT_EQ(r.range_end, std::string(1, '\0'));
  EXPECT_EQ(r.sort_target, mvcc::SortTarget::kMod);
  EXPECT_TRUE(r.keys_only && r.count_only && r.serializable);
  EXPECT_EQ(r.max_create_revision, 8);
  EXPECT_EQ(std::get<mvcc::PutRequest>(txn.success[1].request).lease, 5);
  EXPECT_TRUE(std::holds_alternative<std::monostate>(txn.failure[1].request));
  EXPECT_EQ(txn_depth(t->request), 3u);
}

// Entries written before the MVCC store (format 1) are still in users' logs.
TEST(CommandCodec, LegacyFormatDecodesAsPutAndSingleKeyDelete) {
  auto s = decode_command(encode_legacy_set("foo", std::string("b\0r", 3)));
  ASSERT_TRUE(s.has_value());
  const auto& p = std::get<mvcc::PutRequest>(s->request);
  EXPECT_EQ(p.key, "foo");
  EXPECT_EQ(p.value, std::string("b\0r", 3));
  EXPECT_TRUE(s->idempotency_key.empty());
  auto d = decode_command(encode_legacy_delete("foo"));
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(std::get<mvcc::DeleteRangeRequest>(d->request).key, "foo");
  EXPECT_TRUE(std::get<mvcc::DeleteRangeRequest>(d->request).range_end.empty());
  EXPECT_FALSE(
      decode_command(std::string("\x01\x09\x00\x00\x00\x00", 6)).has_value());  // unknown type
  EXPECT_FALSE(decode_command(encode_legacy_delete("foo") + "x").has_value());
  EXPECT_FALSE(
      decode_command(encode_legacy_set("abcdef", "v").substr(0, 8)).has_value());  // key cut short
}

TEST(CommandCodec, RefusesTxnsNestedPastTheLimit) {
  Command ok;
  ok.request = rich_txn(kMaxTxnNestingDepth);
  EXPECT_TRUE(decode_command(encode_command(ok)).has_value());
  Command deep;
  deep.request = rich_txn(kMaxTxnNestingDepth + 1);
  EXPECT_EQ(txn_depth(deep.request), kMaxTxnNestingDepth + 1);
  EXPECT_FALSE(decode_command(encode_command(deep)).has_value());
  // A hostile entry: a million nested "txn with one op, itself a txn" headers.
  // The decoder must refuse it at the limit rather than recurse a million deep.
  std::string hostile;
  hostile += '\x02';
  hostile += std::string(4, '\0');  // no idempotency key
  hostile += std::string(8, '\0');  // proposed_at_ms
  hostile += '\x03';                // txn
  const std::string level(
      "\x00\x00\x00\x00"
      "\x01\x00\x00\x00"
      "\x04",
      9);  // 0 compares, 1 success op: a txn
  for (int i = 0; i < 1'000'000; ++i) hostile += level;
  EXPECT_FALSE(decode_command(hostile).has_value());
}

TEST(CommandCodec, RefusesUnknownFormatsKindsFlagsAndTrailingBytes) {
  const std::string good = encode_command(put("k", "v"));
  EXPECT_FALSE(decode_command("").has_value());
  EXPECT_FALSE(decode_command(std::string(1, '\x03') + good.substr(1)).has_value());  // format 3
  EXPECT_FALSE(decode_command(good + "x").has_value());
  std::string bad_kind = good;
  bad_kind[1 + 4 + 8] = 9;
  EXPECT_FALSE(decode_command(bad_kind).has_value());
  std::string bad_flags = good;
  bad_flags.back() = static_cast<char>(0x80);
  EXPECT_FALSE(decode_command(bad_flags).has_value());
  Command long_key = put("k", "v", std::string(kMaxIdempotencyKeyBytes + 1, 'i'));
  EXPECT_FALSE(decode_command(encode_command(long_key)).has_value());
}

// Seeded fuzz: every prefix and random corruptions of valid encodings, and
// random bytes. Never a crash; whatever decodes re-encodes to itself.
TEST(CommandCodec, FuzzedInputNeverCrashesAndAcceptedInputIsCanonical) {
  std::mt19937_64 rng(20261201);
  std::vector<std::string> seeds;
  for (const Command& c : sample_commands()) seeds.push_back(encode_command(c));
  seeds.push_back(encode_legacy_set("k", "v"));
  size_t accepted = 0;
  auto check = [&](const std::string& in) {
    auto c = decode_command(in);
    if (!c) return;
    ++accepted;
    if (in[0] == 2) {
      EXPECT_EQ(encode_command(*c), in);
    }
  };
  for (const std::string& s : seeds) {
    for (size_t n = 0; n <= s.size(); ++n) check(s.substr(0, n));
  }
  for (int i = 0; i < 50'000; ++i) {
    std::string s = seeds[rng() % seeds.size()];
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      const size_t at = rng() % s.size();
      switch (rng() % 3) {
        case 0:
          s[at] = static_cast<char>(rng());
          break;
        case 1:
          s.erase(at, 1 + rng() % 8);
          break;
        default:
          s.insert(at, 1 + rng() % 8, static_cast<char>(rng()));
          break;
      }
      if (s.empty()) s = "\x02";
    }
    check(s);
  }
  for (int i = 0; i < 20'000; ++i) {
    std::string s(1 + rng() % 64, '\0');
    for (char& ch : s) ch = static_cast<char>(rng());
    s[0] = static_cast<char>(1 + rng() % 2);
    check(s);
  }
  EXPECT_GT(accepted, seeds.size());  // the fuzzer reached the decoder's accepting paths
}

TEST(ResponseCodec, RoundTripsAndFuzzes) {
  KvStateMachine sm;
  sm.apply(1, put("a", "1"));
  sm.apply(2, put("p", "old"));
  mvcc::TxnRequest inner;
  inner.success.push_back(mvcc::op_delete(mvcc::DeleteRangeRequest{"a", "", true}));
  mvcc::TxnRequest txn;
  txn.success.push_back(mvcc::op_range(range_req("a", std::string(1, '\0'))));
  mvcc::PutRequest p;
  p.key = "p";
  p.value = "new";
  p.prev_kv = true;
  txn.success.push_back(mvcc::op_put(p));
  txn.success.push_back(mvcc::op_txn(inner));
  Command t;
  t.request = txn;
  ApplyResult r = sm.apply(3, t);
  ASSERT_TRUE(r.status.is_ok()) << r.status.to_string();
  std::vector<std::string> seeds{encode_response(r.response),
                                 encode_response(sm.apply(4, del("a")).response),
                                 encode_response(sm.apply(5, put("b", "2")).response),
                                 encode_response(sm.apply(6, compact(3)).response),
                                 encode_response(sm.apply(7, Command{lease::GrantRequest{77, 30}, "", 0}).response),
                                 encode_response(sm.apply(8, Command{lease::RevokeRequest{77}, "", 0}).response),
                                 encode_response(sm.apply(9, Command{AlarmRequest{AlarmAction::kActivate, 5,
                                                                                  AlarmType::kNoSpace}, "", 0})
                                                     .response)};
  for (const std::string& s : seeds) {
    auto back = decode_response(s);
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(encode_response(*back), s);
  }
  const std::optional<Response> txn_back = decode_response(seeds[0]);
  ASSERT_TRUE(txn_back.has_value());
  const auto* tr = std::get_if<mvcc::TxnResponse>(&*txn_back);
  ASSERT_NE(tr, nullptr);
  EXPECT_TRUE(tr->succeeded);
  EXPECT_EQ(*tr, std::get<mvcc::TxnResponse>(r.response));
  std::mt19937_64 rng(7);
  for (int i = 0; i < 20'000; ++i) {
    std::string s = seeds[rng() % seeds.size()];
    s[rng() % s.size()] = static_cast<char>(rng());
    if (rng() % 2) s.resize(rng() % (s.size() + 1));
    auto back = decode_response(s);
    if (back.has_value()) {
      EXPECT_EQ(encode_response(*back), s);
    }
  }
}

TEST(KvStateMachine, AppliesOverTheMvccStoreWithRevisions) {
  KvStateMachine sm;
  EXPECT_EQ(sm.revision(), 1);
  ApplyResult a = sm.apply(1, put("a", "1"));
  ASSERT_TRUE(a.status.is_ok());
  EXPECT_EQ(std::get<mvcc::PutResponse>(a.response).header.revision, 2);
  sm.apply(2, put("a", "2"));
  sm.apply(3, put("b", "x"));
  ApplyResult d = sm.apply(4, del("b"));
  EXPECT_EQ(std::get<mvcc::DeleteRangeResponse>(d.response).deleted, 1);
  EXPECT_EQ(std::get<mvcc::DeleteRangeResponse>(d.response).prev_kvs.at(0).value, "x");
  EXPECT_EQ(sm.get("a"), "2");
  EXPECT_EQ(sm.get("b"), std::nullopt);
  EXPECT_EQ(sm.applied_index(), 4u);
  EXPECT_EQ(sm.revision(), 5);
  EXPECT_EQ(sm.key_count(), 2u);
  auto old = sm.range(range_req("a", "", 2));
  ASSERT_TRUE(old.is_ok());
  EXPECT_EQ(old.value().kvs.at(0).value, "1");  // a read at an older revision
  ASSERT_TRUE(sm.apply(5, compact(4)).status.is_ok());
  EXPECT_EQ(sm.compact_revision(), 4);
  auto gone = sm.range(range_req("a", "", 2));
  EXPECT_EQ(gone.status().message(),
            mvcc::kErrCompacted);     // at once, before the versions are dropped
  EXPECT_EQ(sm.version_count(), 4u);  // a@2, a@3, b@4, b's tombstone @5
  EXPECT_FALSE(sm.compact_step());    // one step covers both keys
  EXPECT_EQ(sm.version_count(), 3u);  // a@2 is gone; b@4 is still visible at 4
}

TEST(KvStateMachine, RequestErrorsAreResultsNotFailuresOfApply) {
  KvStateMachine sm;
  Command leased = put("k", "v");
  std::get<mvcc::PutRequest>(leased.request).lease = 99;
  ApplyResult r = sm.apply(1, leased);
  EXPECT_EQ(r.status.code(), StatusCode::kNotFound);
  EXPECT_EQ(r.status.message(), mvcc::kErrLeaseNotFound);
  EXPECT_EQ(sm.applied_index(), 1u);
  EXPECT_EQ(sm.revision(), 1);  // nothing changed
  EXPECT_EQ(sm.apply(2, compact(10)).status.message(), mvcc::kErrFutureRev);
}

// Replaying the log after a restart must not apply an entry twice.
TEST(KvStateMachine, ReplayAtOrBelowAppliedIsIgnored) {
  KvStateMachine sm;
  sm.apply(5, put("a", "new"));
  EXPECT_FALSE(sm.apply(3, put("a", "old")).status.is_ok());
  EXPECT_EQ(sm.get("a"), "new");
  EXPECT_EQ(sm.revision(), 2);
  sm.skip(9);
  EXPECT_EQ(sm.applied_index(), 9u);
}

// Issue 8, exactly-once retries (thesis §6.3): a retry with the same key is
// answered with the first result and applies nothing.
TEST(KvStateMachine, RetryWithTheSameIdempotencyKeyIsNotAppliedAgain) {
  KvStateMachine sm;
  const int64_t t0 = 1'700'000'000'000;
  ApplyResult first = sm.apply(1, put("k", "v1", "req-1", t0));
  ASSERT_TRUE(first.status.is_ok());
  EXPECT_FALSE(first.duplicate);
  sm.apply(2, put("other", "x", "", t0 + 5));
  ApplyResult retry = sm.apply(3, put("k", "v1", "req-1", t0 + 10));
  EXPECT_TRUE(retry.duplicate);
  ASSERT_TRUE(retry.status.is_ok());
  EXPECT_EQ(std::get<mvcc::PutResponse>(retry.response).header.revision, 2);  // the first one's
  EXPECT_EQ(sm.revision(), 3);                                                // no new revision
  EXPECT_EQ(sm.get("k"), "v1");
  // A different key is a different request.
  EXPECT_FALSE(sm.apply(4, put("k", "v2", "req-2", t0 + 20)).duplicate);
  EXPECT_EQ(sm.revision(), 4);
}

// The first result is kept whatever it was: a failed write's retry fails alike.
TEST(KvStateMachine, RetryOfAFailedWriteGetsTheSameFailure) {
  KvStateMachine sm;
  Command leased = put("k", "v", "req", 1000);
  std::get<mvcc::PutRequest>(leased.request).lease = 7;
  EXPECT_EQ(sm.apply(1, leased).status.message(), mvcc::kErrLeaseNotFound);
  ApplyResult retry = sm.apply(2, leased);
  EXPECT_TRUE(retry.duplicate);
  EXPECT_EQ(retry.status.code(), StatusCode::kNotFound);
  EXPECT_EQ(retry.status.message(), mvcc::kErrLeaseNotFound);
}

// The window runs on the proposers' clocks in the log, never the applier's.
TEST(KvStateMachine, IdempotencyEntriesExpireAfterTheRetentionWindow) {
  KvStateMachine sm;
  const int64_t t0 = 1'700'000'000'000;
  sm.apply(1, put("k", "v", "req", t0));
  sm.apply(2, put("x", "1", "", t0 + IdempotencyTable::kRetentionMs));  // exactly at the edge: kept
  EXPECT_TRUE(sm.apply(3, put("k", "v", "req", t0 + IdempotencyTable::kRetentionMs)).duplicate);
  sm.apply(4, put("x", "2", "", t0 + IdempotencyTable::kRetentionMs + 1));  // now past it
  EXPECT_EQ(sm.idempotency_entries(), 0u);
  ApplyResult late = sm.apply(5, put("k", "v", "req", t0 + IdempotencyTable::kRetentionMs + 2));
  EXPECT_FALSE(late.duplicate);  // applied again: the window is over
  EXPECT_EQ(std::get<mvcc::PutResponse>(late.response).header.revision, sm.revision());
  // A proposer whose clock is behind does not move the table's clock back.
  sm.apply(6, put("y", "1", "", t0));
  EXPECT_TRUE(sm.apply(7, put("k", "v", "req", t0)).duplicate);
}

TEST(IdempotencyTable, EvictsOldestFirstAtTheCountCap) {
  IdempotencyTable t;
  for (size_t i = 0; i < IdempotencyTable::kMaxEntries + 10; ++i) {
    t.insert("key" + std::to_string(i),
             IdempotencyTable::Entry{1, Status::ok(), encode_response(mvcc::PutResponse{})});
  }
  EXPECT_EQ(t.size(), IdempotencyTable::kMaxEntries);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(t.find("key" + std::to_string(i)), nullptr);
  EXPECT_NE(t.find("key10"), nullptr);
  EXPECT_NE(t.find("key" + std::to_string(IdempotencyTable::kMaxEntries + 9)), nullptr);
  auto back = IdempotencyTable::decode(t.encode());
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, t);
}

TEST(IdempotencyTable, DecodeRefusesWhatInsertCannotBuild) {
  IdempotencyTable t;
  t.advance_clock(50);
  t.insert("a", IdempotencyTable::Entry{40, Status::ok(), encode_response(mvcc::PutResponse{})});
  t.insert("b", IdempotencyTable::Entry{
                    45, Status(StatusCode::kInvalid, "etcdserver: key not found"), ""});
  const std::string good = t.encode();
  ASSERT_TRUE(IdempotencyTable::decode(good).has_value());
  EXPECT_FALSE(IdempotencyTable::decode(good + "x").has_value());
  for (size_t n = 0; n < good.size(); ++n)
    EXPECT_FALSE(IdempotencyTable::decode(good.substr(0, n))) << n;
  IdempotencyTable dup;
  dup.insert("a", IdempotencyTable::Entry{1, Status::ok(), encode_response(mvcc::PutResponse{})});
  std::string twice = dup.encode();
  const std::string entry = twice.substr(1 + 8 + 4);
  twice[9] = 2;  // count 2, the same key twice
  EXPECT_FALSE(IdempotencyTable::decode(twice + entry).has_value());
  IdempotencyTable bad_resp;
  bad_resp.insert("a", IdempotencyTable::Entry{1, Status::ok(), "not a response"});
  EXPECT_FALSE(IdempotencyTable::decode(bad_resp.encode()).has_value());
}

// Builds a state machine with history, a compaction, deletes and idempotency entries.
uint64_t fill(KvStateMachine& sm, int keys) {
  uint64_t index = 0;
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < keys; ++i) {
      ++index;
      const std::string idem = i % 10 == 0 ? "id" + std::to_string(round * keys + i) : "";
      sm.apply(index, put("k" + std::to_string(i), "v" + std::to_string(round), idem,
                          1000 + static_cast<int64_t>(index)));
    }
  }
  sm.apply(++index, compact(keys + 2));
  for (int i = 0; i < keys; i += 7) sm.apply(++index, del("k" + std::to_string(i)));
  return index;
}

// Every answer a restored replica gives must equal the original's (issue 8:
// "a restarted or snapshot-installed node answers exactly as the others").
void expect_same_answers(KvStateMachine& a, KvStateMachine& b) {
  // Compactions drop their versions in steps (the node calls compact_step
  // from its loop); answers never depend on it, memory counts do.
  while (a.compact_step()) {
  }
  while (b.compact_step()) {
  }
  EXPECT_EQ(a.revision(), b.revision());
  EXPECT_EQ(a.compact_revision(), b.compact_revision());
  EXPECT_EQ(a.applied_index(), b.applied_index());
  EXPECT_EQ(a.key_count(), b.key_count());
  EXPECT_EQ(a.version_count(), b.version_count());
  EXPECT_EQ(a.encode_payload(), b.encode_payload());
  for (int64_t rev = a.compact_revision() - 1; rev <= a.revision() + 1; ++rev) {
    mvcc::RangeRequest r = range_req("k", "l", rev);
    auto ra = a.range(r);
    auto rb = b.range(r);
    ASSERT_EQ(ra.is_ok(), rb.is_ok()) << rev;
    if (ra.is_ok()) {
      EXPECT_EQ(ra.value(), rb.value()) << rev;
    } else {
      EXPECT_EQ(ra.status().message(), rb.status().message()) << rev;
    }
  }
}

TEST(KvStateMachine, SnapshotPayloadRoundTripRestoresStoreAndIdempotencyTable) {
  KvStateMachine sm;
  const uint64_t index = fill(sm, 200);
  auto state = KvStateMachine::decode_payload(sm.encode_payload());
  ASSERT_TRUE(state.is_ok()) << state.status().to_string();
  KvStateMachine restored;
  restored.apply(1, put("stale", "x"));
  restored.restore(std::move(state).value(), index);
  EXPECT_EQ(restored.get("stale"), std::nullopt);
  expect_same_answers(sm, restored);
  // The idempotency table came along: a retry after the restore is a duplicate on both.
  ApplyResult a = sm.apply(index + 1, put("k10", "again", "id10", 5000));
  ApplyResult b = restored.apply(index + 1, put("k10", "again", "id10", 5000));
  EXPECT_TRUE(a.duplicate);
  EXPECT_TRUE(b.duplicate);
  EXPECT_EQ(encode_response(a.response), encode_response(b.response));
  expect_same_answers(sm, restored);
}

TEST(KvStateMachine, CorruptPayloadsAreRefusedWithAReason) {
  KvStateMachine sm;
  fill(sm, 20);
  const std::string good = sm.encode_payload();
  EXPECT_EQ(KvStateMachine::decode_payload("").status().code(), StatusCode::kCorrupt);
  std::string wrong_format = good;
  wrong_format[0] = 9;
  EXPECT_NE(KvStateMachine::decode_payload(wrong_format)
                .status()
                .message()
                .find("unknown payload format"),
            std::string::npos);
  std::mt19937_64 rng(3);
  for (int i = 0; i < 2000; ++i) {
    std::string s = good;
    s[rng() % s.size()] ^= static_cast<char>(1 + rng() % 255);
    EXPECT_FALSE(KvStateMachine::decode_payload(s).is_ok());  // CRC or structure catches every flip
  }
}

// The snapshot thread streams while the Raft thread keeps applying, a
// compaction included: the stream is exactly the state at begin_snapshot().
TEST(KvStateMachine, StreamedSnapshotIsTheStateAtItsStartWhileWritesContinue) {
  KvStateMachine sm;
  uint64_t index = fill(sm, 3000);
  const std::string at_start = sm.encode_payload();
  auto job = sm.begin_snapshot();
  EXPECT_EQ(job->index, index);
  std::string streamed;
  std::thread writer([&] {
    Status s = sm.write_snapshot(*job, [&](std::string_view piece) {
      streamed.append(piece);
      return Status::ok();
    });
    EXPECT_TRUE(s.is_ok());
  });
  KvStateMachine reference;  // the same commands without a snapshot
  auto start_state = KvStateMachine::decode_payload(at_start);
  ASSERT_TRUE(start_state.is_ok());
  reference.restore(std::move(start_state).value(), index);
  for (int i = 0; i < 3000; ++i) {
    Command c = i % 5 == 0 ? del("k" + std::to_string(i))
                           : put("k" + std::to_string(i), "during", "", 9000);
    if (i == 1500) c = compact(sm.revision());
    if (i == 2000) c = put("new-key", "n", "new-id", 9000);
    ++index;
    ApplyResult a = sm.apply(index, c);
    ApplyResult b = reference.apply(index, c);
    EXPECT_EQ(a.status.code(), b.status.code());
  }
  writer.join();
  sm.end_snapshot();  // the deferred compaction goes on in steps
  EXPECT_EQ(streamed, at_start);
  expect_same_answers(sm, reference);
  EXPECT_NE(sm.begin_snapshot(), nullptr);  // a new snapshot may start once the last ended
  sm.end_snapshot();
}

// A CKVSNAP1 map (before the MVCC store) becomes one put per key, in key order.
TEST(KvStateMachine, RestoreLegacyMapPutsEachKey) {
  KvStateMachine sm;
  sm.apply(1, put("old", "x"));
  sm.restore_legacy({{"a", "1"}, {"b", "2"}}, 40);
  EXPECT_EQ(sm.get("old"), std::nullopt);
  EXPECT_EQ(sm.get("a"), "1");
  EXPECT_EQ(sm.get("b"), "2");
  EXPECT_EQ(sm.revision(), 3);
  EXPECT_EQ(sm.applied_index(), 40u);
  auto b = sm.range(range_req("b"));
  EXPECT_EQ(b.value().kvs.at(0).create_revision, 3);
}

}  // namespace
}  // namespace ckv::fsm
