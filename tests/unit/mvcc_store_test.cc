// MVCC store semantics, one test per etcd 3.4 behaviour (range, put, delete, txn, compact).
//
// Checked against a real etcd 3.4.23 (Debian etcd-server, JSON gateway) on
// 2026-12-01: an empty store is at revision 1 and the first put gets 2;
// a delete or txn that changes nothing keeps the revision; compact(0) and
// compact(1) succeed on a fresh store and compacting the same revision again
// is "compacted"; reading at exactly the compacted revision works; sort target
// VERSION without an order sorts only the limit+1 keys fetched (the
// SortTarget_VERSION_NoOrder test); min_mod_revision with a limit reports
// more=true and count over the whole range; count_only ignores limit; a
// nested txn's response header is empty; a compare of version 0 on a missing
// key holds; a from-key delete plus a put in one txn is accepted, while a
// [a, c) delete plus a put of b is a duplicate key; and a from-key delete
// followed by a put with ignore_value of a key it removed makes etcd 3.4
// panic ("unexpected error during txn"), where we refuse the txn instead;
// two sibling nested txns putting x, one in success and one in failure, are a
// duplicate; an empty op is "key not found", an empty key "key is not provided";
// inside a txn that has written, a delete of nothing and a range at a past
// revision report the txn's revision; a lone put with a missing lease fails
// with "requested lease not found" before ignore_value's "key not found",
// while in a txn ignore_value is checked first within an op and puts' checks
// come before ranges' (a future-revision range then a bad lease: lease error);
// a range with sort_target 99 crashes etcd 3.4.23 (nil sorter) and
// sort_order 99 is ignored; we answer etcd 3.5's "invalid sort option".
#include <gtest/gtest.h>

#include "mvcc/errors.h"
#include "mvcc/request_checks.h"
#include "mvcc/store.h"

namespace ckv::mvcc {
namespace {

PutRequest P(std::string k, std::string v, int64_t lease = 0) {
  PutRequest p;
  p.key = std::move(k);
  p.value = std::move(v);
  p.lease = lease;
  return p;
}

RangeRequest R(std::string k, std::string end = "") {
  RangeRequest r;
  r.key = std::move(k);
  r.range_end = std::move(end);
  return r;
}

DeleteRangeRequest D(std::string k, std::string end = "") {
  DeleteRangeRequest d;
  d.key = std::move(k);
  d.range_end = std::move(end);
  return d;
}

Compare C(std::string key, Compare::CompareTarget t, Compare::CompareResult res) {
  Compare c;
  c.key = std::move(key);
  c.target = t;
  c.result = res;
  return c;
}

const std::string kAll("\0", 1);

void must_put(Store& s, const std::string& k, const std::string& v) {
  ASSERT_TRUE(s.put(P(k, v)).is_ok());
}

std::vector<std::string> keys_of(const RangeResponse& r) {
  std::vector<std::string> out;
  for (const auto& kv : r.kvs) out.push_back(kv.key);
  return out;
}

std::vector<std::string> keys_of(const Result<RangeResponse>& r) {
  if (!r.is_ok()) return {"error: " + r.status().message()};
  return keys_of(r.value());
}

TEST(MvccRevision, EmptyStoreIsAtRevisionOneAndFirstPutGetsTwo) {
  Store s;
  EXPECT_EQ(s.revision(), 1);
  auto r = s.range(R("a"));
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->header.revision, 1);
  EXPECT_EQ(r->count, 0);
  auto p = s.put(P("a", "1"));
  ASSERT_TRUE(p.is_ok());
  EXPECT_EQ(p->header.revision, 2);
  EXPECT_EQ(s.revision(), 2);
}

TEST(MvccRevision, KeyCarriesCreateModVersionAndLease) {
  Store s;
  ASSERT_TRUE(s.put(P("k", "v1", 7)).is_ok());  // rev 2
  must_put(s, "other", "x");                    // rev 3
  ASSERT_TRUE(s.put(P("k", "v2")).is_ok());     // rev 4
  auto r = s.range(R("k"));
  ASSERT_TRUE(r.is_ok());
  ASSERT_EQ(r->kvs.size(), 1u);
  EXPECT_EQ(r->kvs[0], (KeyValue{"k", 2, 4, 2, "v2", 0}));
}

TEST(MvccRevision, DeleteThenPutStartsANewGenerationAtVersionOne) {
  Store s;
  must_put(s, "k", "a");  // 2
  must_put(s, "k", "b");  // 3
  auto d = s.delete_range(D("k"));
  ASSERT_TRUE(d.is_ok());
  EXPECT_EQ(d->deleted, 1);
  EXPECT_EQ(d->header.revision, 4);
  must_put(s, "k", "c");  // 5
  auto r = s.range(R("k"));
  ASSERT_EQ(r->kvs.size(), 1u);
  EXPECT_EQ(r->kvs[0], (KeyValue{"k", 5, 5, 1, "c", 0}));
}

TEST(MvccRevision, DeleteOfNothingDoesNotBumpRevision) {
  Store s;
  must_put(s, "a", "1");
  auto d = s.delete_range(D("zz"));
  ASSERT_TRUE(d.is_ok());
  EXPECT_EQ(d->deleted, 0);
  EXPECT_EQ(d->header.revision, 2);
  EXPECT_EQ(s.revision(), 2);
  ASSERT_TRUE(s.delete_range(D("a")).is_ok());
  EXPECT_EQ(s.delete_range(D("a"))->header.revision, 3);  // already a tombstone
  EXPECT_EQ(s.revision(), 3);
}

TEST(MvccRevision, DeleteRangeBumpsOnceAndReturnsPrevKvs) {
  Store s;
  for (std::string k : {"a", "b", "c", "d"}) must_put(s, k, "v" + k);
  DeleteRangeRequest d = D("b", "d");
  d.prev_kv = true;
  auto res = s.delete_range(d);
  ASSERT_TRUE(res.is_ok());
  EXPECT_EQ(res->deleted, 2);
  EXPECT_EQ(res->header.revision, 6);
  ASSERT_EQ(res->prev_kvs.size(), 2u);
  EXPECT_EQ(res->prev_kvs[0], (KeyValue{"b", 3, 3, 1, "vb", 0}));
  EXPECT_EQ(res->prev_kvs[1].key, "c");
  EXPECT_EQ(keys_of(s.range(R("a", kAll)).value()), (std::vector<std::string>{"a", "d"}));
  // The past is still there.
  RangeRequest old = R("a", kAll);
  old.revision = 5;
  EXPECT_EQ(s.range(old)->count, 4);
}

TEST(MvccRange, RangeEndConventions) {
  Store s;
  for (std::string k : {"a", "ab", "abc", "b", "c"}) must_put(s, k, "v");
  EXPECT_EQ(keys_of(s.range(R("ab")).value()), (std::vector<std::string>{"ab"}));
  EXPECT_EQ(keys_of(s.range(R("ab", "b")).value()), (std::vector<std::string>{"ab", "abc"}));
  EXPECT_EQ(keys_of(s.range(R("ab", kAll)).value()),
            (std::vector<std::string>{"ab", "abc", "b", "c"}));
  EXPECT_EQ(keys_of(s.range(R(kAll, kAll)).value()).size(), 5u);  // etcdctl get --from-key ''
  EXPECT_TRUE(s.range(R("c", "a"))->kvs.empty());                 // key >= range_end: nothing
  EXPECT_EQ(s.range(R("")).status().message(), kErrEmptyKey);
}

TEST(MvccRange, LimitMoreAndCountCoverTheWholeRange) {
  Store s;
  for (std::string k : {"a", "b", "c", "d"}) must_put(s, k, "v");
  RangeRequest r = R("a", kAll);
  r.limit = 2;
  auto res = s.range(r);
  EXPECT_EQ(keys_of(res), (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(res->more);
  EXPECT_EQ(res->count, 4);
  r.limit = 4;
  EXPECT_FALSE(s.range(r)->more);
  r.limit = -1;  // etcd: a negative limit means no limit
  EXPECT_EQ(s.range(r)->kvs.size(), 4u);
}

TEST(MvccRange, CountOnlyIgnoresLimitAndKeysOnlyDropsValues) {
  Store s;
  for (std::string k : {"a", "b", "c"}) must_put(s, k, "v");
  RangeRequest r = R("a", kAll);
  r.count_only = true;
  r.limit = 1;
  auto res = s.range(r);
  EXPECT_TRUE(res->kvs.empty());
  EXPECT_EQ(res->count, 3);
  EXPECT_FALSE(res->more);
  RangeRequest k = R("a", kAll);
  k.keys_only = true;
  auto kr = s.range(k);
  ASSERT_EQ(kr->kvs.size(), 3u);
  EXPECT_EQ(kr->kvs[1], (KeyValue{"b", 3, 3, 1, "", 0}));
}

TEST(MvccRange, ReadAtPastRevisionAndRevisionErrors) {
  Store s;
  must_put(s, "a", "1");  // 2
  must_put(s, "a", "2");  // 3
  RangeRequest r = R("a");
  r.revision = 2;
  auto res = s.range(r);
  ASSERT_EQ(res->kvs.size(), 1u);
  EXPECT_EQ(res->kvs[0].value, "1");
  EXPECT_EQ(res->header.revision, 3);  // the header always says the current revision
  r.revision = 1;
  EXPECT_TRUE(s.range(r)->kvs.empty());
  r.revision = 4;
  EXPECT_EQ(s.range(r).status().message(), kErrFutureRev);
  ASSERT_TRUE(s.compact({3, false}).is_ok());
  r.revision = 2;
  EXPECT_EQ(s.range(r).status().message(), kErrCompacted);
  r.revision = 3;  // at exactly the compacted revision: still readable
  EXPECT_EQ(s.range(r)->kvs.at(0).value, "2");
}

TEST(MvccRange, SortOrdersAndTargets) {
  Store s;
  must_put(s, "a", "z");  // 2
  must_put(s, "b", "y");  // 3
  must_put(s, "b", "y");  // 4  b v2
  must_put(s, "c", "x");  // 5
  must_put(s, "a", "w");  // 6  a v2, mod 6
  RangeRequest r = R("a", kAll);
  r.sort_order = SortOrder::kDescend;
  EXPECT_EQ(keys_of(s.range(r)), (std::vector<std::string>{"c", "b", "a"}));
  r.sort_target = SortTarget::kMod;
  EXPECT_EQ(keys_of(s.range(r)), (std::vector<std::string>{"a", "c", "b"}));
  r.sort_target = SortTarget::kCreate;
  r.sort_order = SortOrder::kAscend;
  EXPECT_EQ(keys_of(s.range(r)), (std::vector<std::string>{"a", "b", "c"}));
  r.sort_target = SortTarget::kValue;
  EXPECT_EQ(keys_of(s.range(r)), (std::vector<std::string>{"a", "c", "b"}));  // w x y
  // Target other than KEY with order NONE: etcd sorts ascending.
  r.sort_order = SortOrder::kNone;
  EXPECT_EQ(keys_of(s.range(r)), (std::vector<std::string>{"a", "c", "b"}));
  // Version ties keep key order (a and b at 2, c at 1).
  r.sort_target = SortTarget::kVersion;
  r.sort_order = SortOrder::kDescend;
  EXPECT_EQ(keys_of(s.range(r)), (std::vector<std::string>{"a", "b", "c"}));
  // Sorting fetches everything before the limit applies.
  r.limit = 1;
  auto lim = s.range(r);
  EXPECT_EQ(keys_of(lim), (std::vector<std::string>{"a"}));
  EXPECT_TRUE(lim->more);
  EXPECT_EQ(lim->count, 3);
}

TEST(MvccRange, SortOptionsOutsideTheEnumsAreInvalid) {
  Store s;
  must_put(s, "a", "1");
  RangeRequest r = R("a");
  r.sort_target = static_cast<SortTarget>(99);  // crashes etcd 3.4.23
  EXPECT_EQ(s.range(r).status().message(), kErrInvalidSortOption);
  r = R("a");
  r.sort_order = static_cast<SortOrder>(-1);
  EXPECT_EQ(s.range(r).status().message(), kErrInvalidSortOption);
  TxnRequest t;
  t.success = {op_range(r)};
  EXPECT_EQ(s.txn(t).status().message(), kErrInvalidSortOption);
}

TEST(MvccRange, SortTargetVersionNoOrderSortsOnlyTheFetchedPage) {
  // etcd 3.4 resets the fetch limit only for an explicit order, so with
  // VERSION and NONE it fetches limit+1 keys, sorts those, then truncates.
  Store s;
  must_put(s, "a", "1");
  for (int i = 0; i < 3; ++i) must_put(s, "b", "2");
  for (int i = 0; i < 2; ++i) must_put(s, "c", "3");
  must_put(s, "d", "4");
  RangeRequest r = R("a", kAll);
  r.sort_target = SortTarget::kVersion;
  r.limit = 2;
  auto res = s.range(r);
  EXPECT_EQ(keys_of(res), (std::vector<std::string>{"a", "c"}));  // etcd answered a, c
  EXPECT_TRUE(res->more);
  EXPECT_EQ(res->count, 4);
}

TEST(MvccRange, MinMaxRevisionFiltersKeepCountOfWholeRange) {
  Store s;
  must_put(s, "a", "1");  // 2
  must_put(s, "b", "1");  // 3
  must_put(s, "c", "1");  // 4
  must_put(s, "a", "2");  // 5: a created 2, mod 5
  RangeRequest r = R("a", kAll);
  r.min_mod_revision = 4;
  EXPECT_EQ(keys_of(s.range(r)), (std::vector<std::string>{"a", "c"}));
  r = R("a", kAll);
  r.max_mod_revision = 3;
  EXPECT_EQ(keys_of(s.range(r)), (std::vector<std::string>{"b"}));
  r = R("a", kAll);
  r.min_create_revision = 3;
  r.max_create_revision = 3;
  auto res = s.range(r);
  EXPECT_EQ(keys_of(res), (std::vector<std::string>{"b"}));
  EXPECT_EQ(res->count, 3);
  r = R("a", kAll);
  r.max_create_revision = 4;
  r.limit = 1;
  res = s.range(r);
  EXPECT_EQ(keys_of(res), (std::vector<std::string>{"a"}));
  EXPECT_TRUE(res->more);
}

TEST(MvccPut, PrevKvIgnoreValueIgnoreLease) {
  Store s;
  ASSERT_TRUE(s.put(P("k", "v1", 5)).is_ok());
  PutRequest p = P("k", "v2");
  p.prev_kv = true;
  p.ignore_lease = true;
  auto res = s.put(p);
  ASSERT_TRUE(res.is_ok());
  ASSERT_TRUE(res->prev_kv.has_value());
  EXPECT_EQ(*res->prev_kv, (KeyValue{"k", 2, 2, 1, "v1", 5}));
  PutRequest iv;
  iv.key = "k";
  iv.ignore_value = true;
  iv.lease = 9;
  ASSERT_TRUE(s.put(iv).is_ok());
  EXPECT_EQ(s.range(R("k"))->kvs.at(0), (KeyValue{"k", 2, 4, 3, "v2", 9}));
  // A put without prev_kv returns none; on a new key prev_kv is absent.
  PutRequest fresh = P("new", "x");
  fresh.prev_kv = true;
  EXPECT_FALSE(s.put(fresh)->prev_kv.has_value());
}

TEST(MvccPut, IgnoreFlagErrorsAsEtcd) {
  Store s;
  PutRequest p;
  p.key = "missing";
  p.ignore_value = true;
  EXPECT_EQ(s.put(p).status().message(), kErrKeyNotFound);
  p.ignore_value = false;
  p.ignore_lease = true;
  EXPECT_EQ(s.put(p).status().message(), kErrKeyNotFound);
  p.lease = 3;
  EXPECT_EQ(s.put(p).status().message(), kErrLeaseProvided);
  PutRequest v = P("k", "x");
  v.ignore_value = true;
  EXPECT_EQ(s.put(v).status().message(), kErrValueProvided);
  EXPECT_EQ(s.put(P("", "x")).status().message(), kErrEmptyKey);
  EXPECT_EQ(s.revision(), 1);  // failed requests change nothing
  must_put(s, "k", "x");
  ASSERT_TRUE(s.delete_range(D("k")).is_ok());
  p = PutRequest{};
  p.key = "k";
  p.ignore_value = true;
  EXPECT_EQ(s.put(p).status().message(), kErrKeyNotFound);  // deleted counts as missing
}

TEST(MvccPut, RequestedLeaseNotFoundBeforeKeyNotFound) {
  Store s;
  const LeaseLookup only_7 = [](int64_t id) { return id == 7; };
  EXPECT_EQ(s.put(P("k", "v", 8), only_7).status().message(), kErrLeaseNotFound);
  EXPECT_EQ(s.put(P("k", "v", 8), only_7).status().code(), StatusCode::kNotFound);
  PutRequest iv;
  iv.key = "missing";
  iv.ignore_value = true;
  iv.lease = 8;
  EXPECT_EQ(s.put(iv, only_7).status().message(), kErrLeaseNotFound);  // etcd: lease first
  EXPECT_TRUE(s.put(P("k", "v", 7), only_7).is_ok());
  EXPECT_TRUE(s.put(P("k", "v", 8)).is_ok());  // no lookup: every lease accepted
  EXPECT_EQ(s.range(R("k"))->kvs.at(0).lease, 8);
}

TEST(MvccTxn, LeaseCheckedOpByOpOnTheChosenBranchOnly) {
  Store s;
  const LeaseLookup none = [](int64_t) { return false; };
  PutRequest iv;
  iv.key = "missing";
  iv.ignore_value = true;
  iv.lease = 8;
  TxnRequest t;
  t.success = {op_put(iv)};  // within one op etcd checks ignore_* first
  EXPECT_EQ(s.txn(t, none).status().message(), kErrKeyNotFound);
  RangeRequest future = R("k");
  future.revision = 99;
  t.success = {op_range(future), op_put(P("k", "v", 3))};  // puts before ranges
  EXPECT_EQ(s.txn(t, none).status().message(), kErrLeaseNotFound);
  t.success = {};
  t.failure = {op_put(P("k", "v", 3))};  // not taken: no lease needed
  EXPECT_TRUE(s.txn(t, none).is_ok());
  EXPECT_EQ(s.revision(), 1);
}

TEST(MvccTxn, IsOneRevisionWithSubRevisionsInOrder) {
  Store s;
  TxnRequest t;
  t.success = {op_put(P("a", "1")), op_put(P("b", "2")), op_range(R("a", kAll))};
  auto res = s.txn(t);
  ASSERT_TRUE(res.is_ok());
  EXPECT_TRUE(res->succeeded);
  EXPECT_EQ(res->header.revision, 2);
  EXPECT_EQ(s.revision(), 2);
  ASSERT_EQ(res->responses.size(), 3u);
  const auto& rr = std::get<RangeResponse>(res->responses[2].response);
  EXPECT_EQ(rr.count, 2);  // a range in the txn sees the txn's own puts
  EXPECT_EQ(rr.header.revision, 2);
  EXPECT_EQ(std::get<PutResponse>(res->responses[0].response).header.revision, 2);
  EXPECT_EQ(s.history("a")->at(0).revision, (Revision{2, 0}));
  EXPECT_EQ(s.history("b")->at(0).revision, (Revision{2, 1}));
}

TEST(MvccTxn, OpsAfterAWriteReportTheTxnRevision) {
  // etcd: once a txn has written, a delete of nothing and a range at a past
  // revision inside it both carry the txn's new revision in their headers.
  Store s;
  must_put(s, "a", "1");  // 2
  RangeRequest past = R("a");
  past.revision = 2;
  TxnRequest t;
  t.success = {op_put(P("p", "x")), op_delete(D("nothing")), op_range(past)};
  auto res = s.txn(t);
  ASSERT_TRUE(res.is_ok());
  EXPECT_EQ(res->header.revision, 3);
  EXPECT_EQ(std::get<DeleteRangeResponse>(res->responses[1].response).header.revision, 3);
  const auto& rr = std::get<RangeResponse>(res->responses[2].response);
  EXPECT_EQ(rr.header.revision, 3);
  EXPECT_EQ(rr.kvs.at(0), (KeyValue{"a", 2, 2, 1, "1", 0}));
}

TEST(MvccTxn, ThatChangesNothingKeepsRevision) {
  Store s;
  must_put(s, "a", "1");
  TxnRequest t;
  t.success = {op_range(R("a")), op_delete(D("zz"))};
  auto res = s.txn(t);
  ASSERT_TRUE(res.is_ok());
  EXPECT_EQ(res->header.revision, 2);
  EXPECT_EQ(std::get<DeleteRangeResponse>(res->responses[1].response).header.revision, 2);
  EXPECT_EQ(s.revision(), 2);
  EXPECT_EQ(s.txn(TxnRequest{})->header.revision, 2);
}

TEST(MvccTxn, CompareTargetsAndResults) {
  Store s;
  ASSERT_TRUE(s.put(P("k", "m", 4)).is_ok());  // rev 2, version 1
  must_put(s, "k", "m");                       // rev 3, version 2, lease 0
  using T = Compare::CompareTarget;
  using Res = Compare::CompareResult;
  auto holds = [&](Compare c) {
    TxnRequest t;
    t.compare = {std::move(c)};
    return s.txn(t)->succeeded;
  };
  Compare c = C("k", T::kVersion, Res::kEqual);
  c.version = 2;
  EXPECT_TRUE(holds(c));
  c.result = Res::kGreater;
  EXPECT_FALSE(holds(c));
  c.result = Res::kLess;
  c.version = 3;
  EXPECT_TRUE(holds(c));
  c = C("k", T::kCreate, Res::kEqual);
  c.create_revision = 2;
  EXPECT_TRUE(holds(c));
  c = C("k", T::kMod, Res::kNotEqual);
  c.mod_revision = 2;
  EXPECT_TRUE(holds(c));
  c = C("k", T::kValue, Res::kGreater);
  c.value = "l";
  EXPECT_TRUE(holds(c));
  c.value = "m";
  c.result = Res::kEqual;
  EXPECT_TRUE(holds(c));
  c = C("k", T::kLease, Res::kEqual);
  c.lease = 0;
  EXPECT_TRUE(holds(c));
  // Only the alternative that matches the target is read.
  c = C("k", T::kMod, Res::kEqual);
  c.version = 3;
  c.mod_revision = 3;
  EXPECT_TRUE(holds(c));
}

TEST(MvccTxn, CompareOnMissingKeyUsesZerosButValueAlwaysFails) {
  Store s;
  using T = Compare::CompareTarget;
  using Res = Compare::CompareResult;
  TxnRequest t;
  t.compare = {C("nope", T::kVersion, Res::kEqual)};  // version == 0
  EXPECT_TRUE(s.txn(t)->succeeded);
  t.compare = {C("nope", T::kCreate, Res::kEqual)};
  EXPECT_TRUE(s.txn(t)->succeeded);
  t.compare = {C("nope", T::kValue, Res::kEqual)};  // value == "" on a missing key
  EXPECT_FALSE(s.txn(t)->succeeded);
  t.compare = {C("nope", T::kValue, Res::kNotEqual)};
  EXPECT_FALSE(s.txn(t)->succeeded);
}

TEST(MvccTxn, CompareWithRangeEndMustHoldForEveryKey) {
  Store s;
  must_put(s, "a", "1");
  must_put(s, "b", "1");
  must_put(s, "b", "1");  // b at version 2
  using T = Compare::CompareTarget;
  using Res = Compare::CompareResult;
  TxnRequest t;
  Compare c = C("a", T::kVersion, Res::kEqual);
  c.version = 1;
  c.range_end = "c";
  t.compare = {c};
  EXPECT_FALSE(s.txn(t)->succeeded);
  c.result = Res::kGreater;
  c.version = 0;
  t.compare = {c};
  EXPECT_TRUE(s.txn(t)->succeeded);
  c = C("a", T::kValue, Res::kEqual);
  c.value = "1";
  c.range_end = kAll;
  t.compare = {c};
  EXPECT_TRUE(s.txn(t)->succeeded);
}

TEST(MvccTxn, FailureBranchAndNestedTxnResponses) {
  Store s;
  must_put(s, "k", "v");
  using T = Compare::CompareTarget;
  using Res = Compare::CompareResult;
  TxnRequest inner;
  Compare ic = C("k", T::kValue, Res::kEqual);
  ic.value = "v";  // evaluated before the outer txn's writes, as etcd does
  inner.compare = {ic};
  inner.success = {op_put(P("inner", "yes"))};
  inner.failure = {op_put(P("inner", "no"))};
  TxnRequest outer;
  outer.compare = {C("k", T::kVersion, Res::kGreater)};  // version > 0: true
  outer.compare[0].version = 5;                          // but > 5 is false
  outer.success = {op_put(P("wrong", "x"))};
  outer.failure = {op_put(P("k", "changed")), op_txn(inner), op_range(R("inner"))};
  auto res = s.txn(outer);
  ASSERT_TRUE(res.is_ok()) << res.status().to_string();
  EXPECT_FALSE(res->succeeded);
  ASSERT_EQ(res->responses.size(), 3u);
  const auto& n = std::get<std::shared_ptr<TxnResponse>>(res->responses[1].response);
  ASSERT_NE(n, nullptr);
  EXPECT_TRUE(n->succeeded);
  EXPECT_EQ(n->header.revision, 0);  // etcd leaves a nested txn's header empty
  EXPECT_EQ(std::get<RangeResponse>(res->responses[2].response).kvs.at(0).value, "yes");
  EXPECT_EQ(s.range(R("wrong"))->count, 0);
  EXPECT_EQ(s.revision(), 3);
}

TEST(MvccTxn, DuplicateKeyGivenInTxnRequest) {
  Store s;
  auto dup = [&](TxnRequest t) { return s.txn(t).status().message() == kErrDuplicateKey; };
  TxnRequest t;
  t.success = {op_put(P("a", "1")), op_put(P("a", "2"))};
  EXPECT_TRUE(dup(t));
  t.success = {op_delete(D("a", "c")), op_put(P("b", "1"))};
  EXPECT_TRUE(dup(t));
  t.success = {op_delete(D("b")), op_put(P("b", "1"))};
  EXPECT_TRUE(dup(t));
  t.success = {op_delete(D("a", "c")), op_delete(D("b"))};  // deletes may overlap
  EXPECT_FALSE(dup(t));
  TxnRequest inner;
  inner.success = {op_put(P("x", "1"))};
  inner.failure = {op_put(P("x", "2"))};  // then/else are exclusive: fine
  t.success = {op_txn(inner)};
  EXPECT_FALSE(dup(t));
  t.success = {op_txn(inner), op_put(P("x", "3"))};
  EXPECT_TRUE(dup(t));
  t.success = {op_delete(D("w", "y")), op_txn(inner)};
  EXPECT_TRUE(dup(t));
  // A failure-branch put clashing with a sibling txn's success-branch put is
  // a duplicate (etcd says so); its own success branch's puts are not.
  TxnRequest then_x;
  then_x.success = {op_put(P("x", "1"))};
  TxnRequest else_x;
  else_x.failure = {op_put(P("x", "2"))};
  t.success = {op_txn(then_x), op_txn(else_x)};
  EXPECT_TRUE(dup(t));
  t.success = {op_txn(then_x), op_put(P("y", "1")), op_txn(TxnRequest{})};
  EXPECT_FALSE(dup(t));
  // Success and failure are checked separately.
  t.success = {op_put(P("a", "1"))};
  t.failure = {op_put(P("a", "1"))};
  EXPECT_FALSE(dup(t));
  EXPECT_EQ(s.revision(), 4);  // only the three accepted txns that put something wrote
}

TEST(MvccTxn, FromKeyDeleteDoesNotConflictWithPutsAsInEtcd) {
  Store s;
  must_put(s, "b", "old");
  TxnRequest t;
  t.success = {op_delete(D("a", kAll)), op_put(P("b", "v"))};
  auto res = s.txn(t);
  ASSERT_TRUE(res.is_ok()) << res.status().to_string();
  EXPECT_EQ(std::get<DeleteRangeResponse>(res->responses[0].response).deleted, 1);
  EXPECT_EQ(s.range(R("b"))->kvs.at(0), (KeyValue{"b", 3, 3, 1, "v", 0}));
}

TEST(MvccTxn, IgnoreValueOnKeyDeletedEarlierInTxnIsRefusedAndRolledBack) {
  // etcd 3.4.23 panics on this txn; we refuse it and undo its first op.
  Store s;
  must_put(s, "b", "old");
  PutRequest p;
  p.key = "b";
  p.ignore_value = true;
  TxnRequest t;
  t.success = {op_put(P("a", "x")), op_delete(D("a", kAll)), op_put(p)};
  const Store before = s;
  EXPECT_EQ(s.txn(t).status().message(), kErrKeyNotFound);
  EXPECT_EQ(s, before);
}

TEST(MvccTxn, ChecksBeforeApplyingAnything) {
  Store s;
  must_put(s, "a", "1");
  must_put(s, "a", "2");
  ASSERT_TRUE(s.compact({3, false}).is_ok());
  PutRequest p;
  p.key = "missing";
  p.ignore_lease = true;
  RangeRequest old = R("a");
  old.revision = 2;
  RangeRequest future = R("a");
  future.revision = 9;
  TxnRequest t;
  t.success = {op_put(P("x", "1")), op_range(old)};
  EXPECT_EQ(s.txn(t).status().message(), kErrCompacted);
  t.success = {op_put(P("x", "1")), op_range(future)};
  EXPECT_EQ(s.txn(t).status().message(), kErrFutureRev);
  t.success = {op_range(old), op_put(p)};  // puts are checked before ranges
  EXPECT_EQ(s.txn(t).status().message(), kErrKeyNotFound);
  t.success = {RequestOp{}};
  EXPECT_EQ(s.txn(t).status().message(), kErrKeyNotFound);
  t.success = {op_range(R(""))};
  EXPECT_EQ(s.txn(t).status().message(), kErrEmptyKey);
  EXPECT_EQ(s.revision(), 3);
  EXPECT_EQ(s.range(R("x"))->count, 0);
}

TEST(MvccTxn, TooManyOpsIncludingNestedBudget) {
  Store s;
  TxnRequest t;
  for (size_t i = 0; i < kDefaultMaxTxnOps; ++i)
    t.success.push_back(op_range(R("k" + std::to_string(i))));
  EXPECT_TRUE(s.txn(t).is_ok());
  t.success.push_back(op_range(R("one-more")));
  EXPECT_EQ(s.txn(t).status().message(), kErrTooManyOps);
  TxnRequest compares;
  for (size_t i = 0; i <= kDefaultMaxTxnOps; ++i) compares.compare.push_back(C("k", {}, {}));
  EXPECT_EQ(s.txn(compares).status().message(), kErrTooManyOps);
  // A nested txn gets what its parent leaves: 127 ops (126 + the nested txn)
  // leave 1, so a nested txn of 2 is too many and one of 1 fits.
  TxnRequest inner;
  inner.success = {op_range(R("a")), op_range(R("b"))};
  TxnRequest outer;
  for (size_t i = 0; i + 2 < kDefaultMaxTxnOps; ++i) outer.success.push_back(op_range(R("k")));
  outer.success.push_back(op_txn(inner));
  EXPECT_EQ(s.txn(outer).status().message(), kErrTooManyOps);
  inner.success.pop_back();
  outer.success.back() = op_txn(inner);
  EXPECT_TRUE(s.txn(outer).is_ok());
}

TEST(MvccTxn, DeepNestingIsBoundedByTheOpBudget) {
  // Each level spends one op on the nested txn, so a chain deeper than the
  // budget is refused by counting, without deep recursion anywhere else.
  Store s;
  TxnRequest t;
  t.success = {op_put(P("leaf", "x"))};
  for (int depth = 0; depth < 1000; ++depth) {
    TxnRequest outer;
    outer.success = {op_txn(std::move(t))};
    t = std::move(outer);
  }
  EXPECT_EQ(s.txn(t).status().message(), kErrTooManyOps);
  TxnRequest ok;
  ok.success = {op_put(P("leaf", "x"))};
  for (size_t depth = 0; depth + 1 < kDefaultMaxTxnOps; ++depth) {
    TxnRequest outer;
    outer.success = {op_txn(std::move(ok))};
    ok = std::move(outer);
  }
  auto res = s.txn(ok);
  ASSERT_TRUE(res.is_ok()) << res.status().to_string();
  EXPECT_EQ(s.range(R("leaf"))->count, 1);
}

TEST(MvccCompact, ErrorsForCompactedAndFutureRevisions) {
  Store s;
  EXPECT_TRUE(s.compact({0, false}).is_ok());  // fresh etcd accepts 0 and 1
  EXPECT_TRUE(s.compact({1, false}).is_ok());
  EXPECT_EQ(s.compact({1, false}).status().message(), kErrCompacted);
  EXPECT_EQ(s.compact({2, false}).status().message(), kErrFutureRev);
  must_put(s, "a", "1");
  auto c = s.compact({2, true});
  ASSERT_TRUE(c.is_ok());
  EXPECT_EQ(c->header.revision, 2);
  EXPECT_EQ(s.compact_revision(), 2);
}

TEST(MvccCompact, KeepsNewestVersionAtOrBelowPlusLaterAndDropsTombstonedKeys) {
  Store s;
  must_put(s, "a", "1");                        // 2
  must_put(s, "a", "2");                        // 3
  must_put(s, "b", "1");                        // 4
  ASSERT_TRUE(s.delete_range(D("b")).is_ok());  // 5
  must_put(s, "a", "3");                        // 6
  must_put(s, "c", "1");                        // 7
  ASSERT_TRUE(s.delete_range(D("c")).is_ok());  // 8
  ASSERT_TRUE(s.compact({5, false}).is_ok());
  ASSERT_NE(s.history("a"), nullptr);
  EXPECT_EQ(s.history("a")->size(), 2u);  // rev 3 (newest <= 5) and rev 6
  EXPECT_EQ(s.history("b"), nullptr);     // tombstoned at 5: gone
  EXPECT_EQ(s.history("c")->size(), 2u);  // its life is after 5
  RangeRequest r = R("a", kAll);
  r.revision = 5;
  auto res = s.range(r);
  ASSERT_EQ(res->kvs.size(), 1u);
  EXPECT_EQ(res->kvs[0], (KeyValue{"a", 2, 3, 2, "2", 0}));
  r.revision = 7;
  EXPECT_EQ(keys_of(s.range(r)), (std::vector<std::string>{"a", "c"}));
  ASSERT_TRUE(s.compact({8, false}).is_ok());
  EXPECT_EQ(s.history("c"), nullptr);
  EXPECT_EQ(s.key_count(), 1u);
  EXPECT_EQ(s.version_count(), 1u);
  EXPECT_EQ(s.range(R("a"))->kvs.at(0).version, 3);  // versions survive compaction
}

}  // namespace
}  // namespace ckv::mvcc

namespace ckv::mvcc {
namespace {

// last_events(): what watchers and the lessor see of each write.
TEST(MvccEvents, PutRecordsTheNewVersionAndThePreviousOne) {
  Store s;
  ASSERT_TRUE(s.put(P("a", "1", 0)).is_ok());
  ASSERT_EQ(s.last_events().size(), 1U);
  const Event& first = s.last_events()[0];
  EXPECT_EQ(first.type, Event::Type::kPut);
  EXPECT_EQ(first.kv, (KeyValue{"a", 2, 2, 1, "1", 0}));
  EXPECT_FALSE(first.prev_kv.has_value());

  ASSERT_TRUE(s.put(P("a", "2", 0)).is_ok());
  ASSERT_EQ(s.last_events().size(), 1U);
  EXPECT_EQ(s.last_events()[0].kv, (KeyValue{"a", 2, 3, 2, "2", 0}));
  EXPECT_EQ(s.last_events()[0].prev_kv, (KeyValue{"a", 2, 2, 1, "1", 0}));
}

TEST(MvccEvents, DeleteCarriesOnlyKeyAndModRevisionAsEtcd) {
  Store s;
  ASSERT_TRUE(s.put(P("a", "1", 0)).is_ok());
  ASSERT_TRUE(s.put(P("b", "2", 0)).is_ok());
  ASSERT_TRUE(s.delete_range(D("a", "c")).is_ok());
  ASSERT_EQ(s.last_events().size(), 2U);
  for (const Event& e : s.last_events()) {
    EXPECT_EQ(e.type, Event::Type::kDelete);
    EXPECT_EQ(e.kv.mod_revision, 4);
    EXPECT_EQ(e.kv.create_revision, 0);
    EXPECT_EQ(e.kv.version, 0);
    EXPECT_TRUE(e.kv.value.empty());
    ASSERT_TRUE(e.prev_kv.has_value());
    EXPECT_EQ(e.prev_kv->key, e.kv.key);
  }
  EXPECT_EQ(s.last_events()[0].kv.key, "a");
  EXPECT_EQ(s.last_events()[1].kv.key, "b");
}

TEST(MvccEvents, AWriteThatChangesNothingOrFailsLeavesNoEvents) {
  Store s;
  ASSERT_TRUE(s.put(P("a", "1", 0)).is_ok());
  ASSERT_TRUE(s.delete_range(D("zzz")).is_ok());  // deletes nothing
  EXPECT_TRUE(s.last_events().empty());
  ASSERT_TRUE(s.put(P("a", "1", 0)).is_ok());
  PutRequest bad = P("missing", "", 0);
  bad.ignore_value = true;  // etcd: key not found
  EXPECT_FALSE(s.put(bad).is_ok());
  EXPECT_TRUE(s.last_events().empty());
}

TEST(MvccEvents, ATxnsChangesShareOneRevisionInOpOrder) {
  Store s;
  TxnRequest t;
  t.success.push_back(RequestOp{P("x", "1", 0)});
  t.success.push_back(RequestOp{P("y", "2", 0)});
  t.success.push_back(RequestOp{D("zzz")});
  ASSERT_TRUE(s.txn(t).is_ok());
  ASSERT_EQ(s.last_events().size(), 2U);
  EXPECT_EQ(s.last_events()[0].kv.key, "x");
  EXPECT_EQ(s.last_events()[1].kv.key, "y");
  EXPECT_EQ(s.last_events()[0].kv.mod_revision, 2);
  EXPECT_EQ(s.last_events()[1].kv.mod_revision, 2);
}


// A request refused by the checks before any write (empty key, unknown
// lease, bad txn) used to leave the previous write's events in place, so
// the state machine would have published them to watchers a second time.
TEST(MvccEvents, ARequestRefusedBeforeWritingLeavesNoEvents) {
  Store s;
  ASSERT_TRUE(s.put(P("a", "1", 0)).is_ok());
  ASSERT_EQ(s.last_events().size(), 1U);
  EXPECT_FALSE(s.put(P("", "x", 0)).is_ok());  // etcd: key is not provided
  EXPECT_TRUE(s.last_events().empty());
  ASSERT_TRUE(s.put(P("a", "2", 0)).is_ok());
  EXPECT_FALSE(s.put(P("b", "x", 7), [](int64_t) { return false; }).is_ok());  // lease not found
  EXPECT_TRUE(s.last_events().empty());
  ASSERT_TRUE(s.put(P("a", "3", 0)).is_ok());
  EXPECT_FALSE(s.delete_range(D("")).is_ok());
  EXPECT_TRUE(s.last_events().empty());
  ASSERT_TRUE(s.put(P("a", "4", 0)).is_ok());
  TxnRequest t;
  t.success.push_back(RequestOp{P("x", "1", 0)});
  t.success.push_back(RequestOp{P("x", "2", 0)});  // duplicate key
  EXPECT_FALSE(s.txn(t).is_ok());
  EXPECT_TRUE(s.last_events().empty());
}

// events_between(): the history a watcher replays.
TEST(MvccEventsBetween, ReplaysPutsAndDeletesInRevisionOrderWithPrevKv) {
  Store s;
  ASSERT_TRUE(s.put(P("b", "1", 0)).is_ok());      // 2
  ASSERT_TRUE(s.put(P("a", "1", 0)).is_ok());      // 3
  ASSERT_TRUE(s.put(P("b", "2", 0)).is_ok());      // 4
  ASSERT_TRUE(s.delete_range(D("a")).is_ok());     // 5
  ASSERT_TRUE(s.put(P("zz", "outside", 0)).is_ok());  // 6
  auto page = s.events_between("a", "c", 1, 100, 100);
  ASSERT_TRUE(page.is_ok());
  const auto& ev = page.value().events;
  ASSERT_EQ(ev.size(), 4U);
  EXPECT_EQ(ev[0].kv, (KeyValue{"b", 2, 2, 1, "1", 0}));
  EXPECT_FALSE(ev[0].prev_kv.has_value());
  EXPECT_EQ(ev[1].kv.key, "a");
  EXPECT_EQ(ev[2].kv, (KeyValue{"b", 2, 4, 2, "2", 0}));
  EXPECT_EQ(ev[2].prev_kv, (KeyValue{"b", 2, 2, 1, "1", 0}));
  EXPECT_EQ(ev[3].type, Event::Type::kDelete);
  EXPECT_EQ(ev[3].kv, (KeyValue{"a", 0, 5, 0, "", 0}));
  EXPECT_EQ(ev[3].prev_kv, (KeyValue{"a", 3, 3, 1, "1", 0}));
  EXPECT_EQ(page.value().next, 7);  // to is capped at the current revision

  // The same events as last_events() gave live, for a single key and from-key.
  auto single = s.events_between("b", "", 3, 4, 100);
  ASSERT_TRUE(single.is_ok());
  ASSERT_EQ(single.value().events.size(), 1U);
  EXPECT_EQ(single.value().events[0].kv.mod_revision, 4);
  auto from_key = s.events_between("b", std::string(1, '\0'), 5, 6, 100);
  ASSERT_TRUE(from_key.is_ok());
  ASSERT_EQ(from_key.value().events.size(), 1U);
  EXPECT_EQ(from_key.value().events[0].kv.key, "zz");
}

TEST(MvccEventsBetween, PagesEndAtARevisionBoundaryAndNeverSplitATxn) {
  Store s;
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(s.put(P("k" + std::to_string(i), "v", 0)).is_ok());  // 2..6
  TxnRequest t;  // 7: three events
  for (int i = 0; i < 3; ++i) t.success.push_back(RequestOp{P("t" + std::to_string(i), "v", 0)});
  ASSERT_TRUE(s.txn(t).is_ok());
  ASSERT_TRUE(s.put(P("k9", "v", 0)).is_ok());  // 8
  std::vector<int64_t> seen;
  int64_t from = 2;
  int pages = 0;
  while (from <= s.revision()) {
    auto page = s.events_between("", std::string(1, '\0'), from, s.revision(), 2);
    ASSERT_TRUE(page.is_ok());
    ASSERT_GT(page.value().next, from);
    ASSERT_FALSE(page.value().events.empty());
    // a page never holds part of a revision: it ends right before next
    EXPECT_EQ(page.value().events.back().kv.mod_revision, page.value().next - 1);
    for (const auto& e : page.value().events) seen.push_back(e.kv.mod_revision);
    from = page.value().next;
    ++pages;
  }
  EXPECT_EQ(seen, (std::vector<int64_t>{2, 3, 4, 5, 6, 7, 7, 7, 8}));
  EXPECT_EQ(pages, 5);  // {2,3} {4,5} {6} {7,7,7: whole, over the bound} {8}
}

TEST(MvccEventsBetween, BelowTheCompactedRevisionIsCompactedAtItWorks) {
  Store s;
  ASSERT_TRUE(s.put(P("a", "1", 0)).is_ok());  // 2
  ASSERT_TRUE(s.put(P("a", "2", 0)).is_ok());  // 3
  ASSERT_TRUE(s.put(P("a", "3", 0)).is_ok());  // 4
  ASSERT_TRUE(s.compact(CompactionRequest{3, true}).is_ok());
  auto below = s.events_between("a", "", 2, 4, 10);
  ASSERT_FALSE(below.is_ok());
  EXPECT_EQ(below.status().message(), kErrCompacted);
  auto at = s.events_between("a", "", 3, 4, 10);
  ASSERT_TRUE(at.is_ok());
  ASSERT_EQ(at.value().events.size(), 2U);
  EXPECT_FALSE(at.value().events[0].prev_kv.has_value());  // revision 2 is gone
  EXPECT_EQ(at.value().events[1].prev_kv->value, "2");
}

}  // namespace
}  // namespace ckv::mvcc
