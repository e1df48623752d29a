// Seeded random test: the MVCC store against a model that keeps every revision's full map.
//
// The model stores the complete key map of every revision (states_[rev]),
// so a read at any revision is a lookup, and compaction only moves the
// boundary below which reads fail: if the store's compaction dropped a
// version it still needed, its answers at later revisions would differ.
// Every answer (responses and errors) of thousands of random puts, deletes,
// ranges, txns (nested, with compares on ranges) and compactions is compared;
// snapshots are taken and restored mid-history and the run continues on the
// restored store. A failure prints the seed; rerun one seed with
// CKV_MVCC_SEED=<seed> build/unit_tests --gtest_filter='MvccModel*'.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "mvcc/errors.h"
#include "mvcc/store.h"

namespace ckv::mvcc {
namespace {

constexpr int kSeeds = 12;
constexpr int kOpsPerSeed = 2500;
constexpr int kSnapshotEveryOps = 400;

const std::string kAll("\0", 1);

using Map = std::map<std::string, KeyValue>;

// Lease 2 never exists; 0 is "no lease" and 1 exists.
bool lease_exists(int64_t id) { return id != 2; }

bool in_range(const std::string& k, const std::string& key, const std::string& end) {
  if (end.empty()) return k == key;
  if (end == kAll) return k >= key;
  return key <= k && k < end;
}

Status err(const char* text) { return Status(StatusCode::kInvalid, text); }

// The reference: every revision's map, written for clarity, not speed.
class Model {
 public:
  Model() : states_(2) {}  // states_[1] is the empty store; index 0 is unused
  int64_t rev() const { return static_cast<int64_t>(states_.size()) - 1; }

  Result<RangeResponse> range(const RangeRequest& r, int64_t cur, const Map* working) const {
    if (r.key.empty()) return err(kErrEmptyKey);
    if (r.revision > cur) return err(kErrFutureRev);
    int64_t at = r.revision <= 0 ? cur : r.revision;
    if (at < compact_) return err(kErrCompacted);
    const Map& m = (working != nullptr && at == cur) ? *working : states_[static_cast<size_t>(at)];
    std::vector<KeyValue> kvs;
    for (const auto& [k, kv] : m) {
      if (in_range(k, r.key, r.range_end)) kvs.push_back(kv);
    }
    RangeResponse resp;
    resp.header.revision = cur;
    resp.count = static_cast<int64_t>(kvs.size());
    if (r.count_only) return resp;
    bool fetch_all = r.sort_order != SortOrder::kNone || r.min_mod_revision || r.max_mod_revision ||
                     r.min_create_revision || r.max_create_revision;
    if (!fetch_all && r.limit > 0 && static_cast<int64_t>(kvs.size()) > r.limit + 1) {
      kvs.resize(static_cast<size_t>(r.limit + 1));
    }
    std::vector<KeyValue> kept;
    for (const auto& kv : kvs) {
      if (r.min_mod_revision && kv.mod_revision < r.min_mod_revision) continue;
      if (r.max_mod_revision && kv.mod_revision > r.max_mod_revision) continue;
      if (r.min_create_revision && kv.create_revision < r.min_create_revision) continue;
      if (r.max_create_revision && kv.create_revision > r.max_create_revision) continue;
      kept.push_back(kv);
    }
    SortOrder order = r.sort_order;
    if (order == SortOrder::kNone && r.sort_target != SortTarget::kKey) order = SortOrder::kAscend;
    if (order != SortOrder::kNone) {
      auto field = [&](const KeyValue& kv) -> std::string {
        // Sortable encodings: every number here is small and non-negative.
        char buf[32];
        switch (r.sort_target) {
          case SortTarget::kKey:
            return kv.key;
          case SortTarget::kValue:
            return kv.value;
          case SortTarget::kVersion:
            std::snprintf(buf, sizeof buf, "%020lld", (long long)kv.version);
            return buf;
          case SortTarget::kCreate:
            std::snprintf(buf, sizeof buf, "%020lld", (long long)kv.create_revision);
            return buf;
          case SortTarget::kMod:
            std::snprintf(buf, sizeof buf, "%020lld", (long long)kv.mod_revision);
            return buf;
        }
        return {};
      };
      std::stable_sort(kept.begin(), kept.end(), [&](const KeyValue& a, const KeyValue& b) {
        return order == SortOrder::kAscend ? field(a) < field(b) : field(b) < field(a);
      });
    }
    if (r.limit > 0 && static_cast<int64_t>(kept.size()) > r.limit) {
      kept.resize(static_cast<size_t>(r.limit));
      resp.more = true;
    }
    if (r.keys_only) {
      for (auto& kv : kept) kv.value.clear();
    }
    resp.kvs = kept;
    return resp;
  }

  Result<RangeResponse> range(const RangeRequest& r) const { return range(r, rev(), nullptr); }

  Result<PutResponse> put(const PutRequest& p) {
    // A lone put asks for its lease before anything else (then as in a txn).
    if (p.ignore_value && !p.value.empty()) return err(kErrValueProvided);
    if (p.ignore_lease && p.lease != 0) return err(kErrLeaseProvided);
    if (p.lease != 0 && !lease_exists(p.lease))
      return Status(StatusCode::kNotFound, kErrLeaseNotFound);
    TxnRequest t;
    t.success = {op_put(p)};
    auto res = txn(t);
    if (!res.is_ok()) return res.status();
    return std::get<PutResponse>(res->responses[0].response);
  }

  Result<DeleteRangeResponse> del(const DeleteRangeRequest& d) {
    if (d.key.empty()) return err(kErrEmptyKey);
    TxnRequest t;
    t.success = {op_delete(d)};
    auto res = txn(t);
    if (!res.is_ok()) return res.status();
    return std::get<DeleteRangeResponse>(res->responses[0].response);
  }

  // Only for txns the generator builds: no duplicate keys, within the op limit.
  Result<TxnResponse> txn(const TxnRequest& t) {
    const Map& before = states_.back();
    // Checks first, on the state before the txn: puts, then ranges (etcd's order).
    std::vector<const RequestOp*> ops;
    collect(t, before, ops);
    for (const RequestOp* op : ops) {
      if (auto* p = std::get_if<PutRequest>(&op->request)) {
        if (p->key.empty()) return err(kErrEmptyKey);
        if (p->ignore_value && !p->value.empty()) return err(kErrValueProvided);
        if (p->ignore_lease && p->lease != 0) return err(kErrLeaseProvided);
        if ((p->ignore_value || p->ignore_lease) && !before.contains(p->key))
          return err(kErrKeyNotFound);
        if (p->lease != 0 && !lease_exists(p->lease))
          return Status(StatusCode::kNotFound, kErrLeaseNotFound);
      }
    }
    for (const RequestOp* op : ops) {
      if (auto* q = std::get_if<RangeRequest>(&op->request); q && q->revision != 0) {
        if (q->revision > rev()) return err(kErrFutureRev);
        if (q->revision < compact_) return err(kErrCompacted);
      }
    }
    Map work = before;
    bool changed = false;
    TxnResponse resp;
    if (Status s = apply(t, before, work, changed, resp); !s.is_ok()) return s;
    if (changed) states_.push_back(work);
    resp.header.revision = rev();
    return resp;
  }

  Result<CompactionResponse> compact(int64_t r) {
    if (r <= compact_) return err(kErrCompacted);
    if (r > rev()) return err(kErrFutureRev);
    compact_ = r;
    CompactionResponse c;
    c.header.revision = rev();
    return c;
  }

  int64_t compact_rev() const { return compact_; }

 private:
  static bool holds(const Compare& c, const Map& m) {
    std::vector<KeyValue> kvs;
    for (const auto& [k, kv] : m) {
      if (in_range(k, c.key, c.range_end)) kvs.push_back(kv);
    }
    if (kvs.empty()) {
      if (c.target == Compare::CompareTarget::kValue) return false;
      kvs.push_back(KeyValue{});
    }
    for (const auto& kv : kvs) {
      int cmp = 0;
      switch (c.target) {
        case Compare::CompareTarget::kVersion:
          cmp = (kv.version > c.version) - (kv.version < c.version);
          break;
        case Compare::CompareTarget::kCreate:
          cmp = (kv.create_revision > c.create_revision) - (kv.create_revision < c.create_revision);
          break;
        case Compare::CompareTarget::kMod:
          cmp = (kv.mod_revision > c.mod_revision) - (kv.mod_revision < c.mod_revision);
          break;
        case Compare::CompareTarget::kLease:
          cmp = (kv.lease > c.lease) - (kv.lease < c.lease);
          break;
        case Compare::CompareTarget::kValue:
          cmp = (kv.value > c.value) - (kv.value < c.value);
          break;
      }
      bool ok = false;
      switch (c.result) {
        case Compare::CompareResult::kEqual:
          ok = cmp == 0;
          break;
        case Compare::CompareResult::kNotEqual:
          ok = cmp != 0;
          break;
        case Compare::CompareResult::kGreater:
          ok = cmp > 0;
          break;
        case Compare::CompareResult::kLess:
          ok = cmp < 0;
          break;
      }
      if (!ok) return false;
    }
    return true;
  }

  static bool all_hold(const TxnRequest& t, const Map& m) {
    return std::all_of(t.compare.begin(), t.compare.end(),
                       [&](const Compare& c) { return holds(c, m); });
  }

  static void collect(const TxnRequest& t, const Map& before, std::vector<const RequestOp*>& ops) {
    for (const auto& op : all_hold(t, before) ? t.success : t.failure) {
      if (auto* n = std::get_if<std::shared_ptr<const TxnRequest>>(&op.request)) {
        collect(**n, before, ops);
      } else {
        ops.push_back(&op);
      }
    }
  }

  Status apply(const TxnRequest& t, const Map& before, Map& work, bool& changed,
               TxnResponse& resp) {
    resp.succeeded = all_hold(t, before);  // every compare sees the pre-txn state
    const int64_t next = rev() + 1;
    for (const auto& op : resp.succeeded ? t.success : t.failure) {
      if (auto* q = std::get_if<RangeRequest>(&op.request)) {
        auto r = range(*q, changed ? next : rev(), &work);
        if (!r.is_ok()) return r.status();
        resp.responses.emplace_back().response.emplace<RangeResponse>(r.value());
      } else if (auto* p = std::get_if<PutRequest>(&op.request)) {
        auto it = work.find(p->key);
        std::optional<KeyValue> prev;
        if (it != work.end()) prev = it->second;
        if ((p->ignore_value || p->ignore_lease) && !prev) return err(kErrKeyNotFound);
        KeyValue kv{p->key,
                    prev ? prev->create_revision : next,
                    next,
                    prev ? prev->version + 1 : 1,
                    p->ignore_value ? prev->value : p->value,
                    p->ignore_lease ? prev->lease : p->lease};
        work[p->key] = kv;
        changed = true;
        PutResponse pr;
        pr.header.revision = next;
        if (p->prev_kv) pr.prev_kv = prev;
        resp.responses.emplace_back().response.emplace<PutResponse>(pr);
      } else if (auto* d = std::get_if<DeleteRangeRequest>(&op.request)) {
        DeleteRangeResponse dr;
        for (auto it = work.begin(); it != work.end();) {
          if (in_range(it->first, d->key, d->range_end)) {
            if (d->prev_kv) dr.prev_kvs.push_back(it->second);
            ++dr.deleted;
            it = work.erase(it);
          } else {
            ++it;
          }
        }
        if (dr.deleted > 0) changed = true;
        dr.header.revision = changed ? next : rev();
        resp.responses.emplace_back().response.emplace<DeleteRangeResponse>(dr);
      } else {
        auto nested = std::make_shared<TxnResponse>();
        if (Status s = apply(*std::get<std::shared_ptr<const TxnRequest>>(op.request), before, work,
                             changed, *nested);
            !s.is_ok()) {
          return s;
        }
        resp.responses.emplace_back().response.emplace<std::shared_ptr<TxnResponse>>(nested);
      }
    }
    return Status::ok();
  }

  std::vector<Map> states_;
  int64_t compact_ = -1;
};

// Random requests over a small key space, so keys collide, ranges overlap and
// compares both hold and fail.
class Gen {
 public:
  explicit Gen(uint64_t seed) : rng_(seed) {}

  int pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }
  bool chance(int percent) { return pick(100) < percent; }

  std::string key() {
    static const char* kKeys[] = {"a", "ab", "b", "ba", "c", "d", "e", "f", "g", "h"};
    return kKeys[pick(10)];
  }
  std::string range_end() {
    switch (pick(4)) {
      case 0:
        return "";
      case 1:
        return kAll;
      default:
        return key() + (chance(50) ? "" : "z");
    }
  }
  std::string value() {
    static const char* kValues[] = {"", "x", "y", "z", "xx"};
    return kValues[pick(5)];
  }
  int64_t rev_near(int64_t cur, int64_t compact) {
    return std::max<int64_t>(-1, compact - 1 + pick(static_cast<int>(cur - compact + 4)));
  }

  RangeRequest range(int64_t cur, int64_t compact) {
    RangeRequest r;
    r.key = key();
    r.range_end = range_end();
    if (chance(30)) r.revision = rev_near(cur, compact);
    if (chance(40)) r.limit = pick(5) - 1;
    if (chance(40)) r.sort_order = static_cast<SortOrder>(pick(3));
    if (chance(40)) r.sort_target = static_cast<SortTarget>(pick(5));
    r.keys_only = chance(15);
    r.count_only = chance(10);
    if (chance(10)) r.min_mod_revision = rev_near(cur, compact);
    if (chance(10)) r.max_mod_revision = rev_near(cur, compact);
    if (chance(10)) r.min_create_revision = rev_near(cur, compact);
    if (chance(10)) r.max_create_revision = rev_near(cur, compact);
    return r;
  }

  PutRequest put() {
    PutRequest p;
    p.key = key();
    p.value = value();
    p.lease = chance(8) ? 2 : pick(2);  // 2: a lease that does not exist
    p.prev_kv = chance(40);
    if (chance(10)) {
      p.ignore_value = true;
      p.value.clear();
    }
    if (chance(10)) {
      p.ignore_lease = true;
      p.lease = 0;
    }
    return p;
  }

  DeleteRangeRequest del() {
    DeleteRangeRequest d;
    d.key = key();
    d.range_end = range_end();
    d.prev_kv = chance(50);
    return d;
  }

  Compare compare(int64_t cur) {
    Compare c;
    c.key = key();
    if (chance(25)) c.range_end = range_end();
    c.target = static_cast<Compare::CompareTarget>(pick(5));
    c.result = static_cast<Compare::CompareResult>(pick(4));
    c.version = pick(4);
    c.create_revision = pick(static_cast<int>(cur + 1));
    c.mod_revision = pick(static_cast<int>(cur + 1));
    c.value = value();
    c.lease = pick(3);
    return c;
  }

  // A txn that can never break etcd's duplicate-key rule: every put key is
  // new to the whole txn (both branches, all levels) and no bounded delete
  // range covers one. From-key deletes may (etcd's rule ignores them), but
  // then no ignore_* put follows, the case etcd 3.4 cannot apply.
  TxnRequest txn(int64_t cur, int64_t compact, int depth = 0) {
    TxnRequest t;
    int nc = pick(3);
    for (int i = 0; i < nc; ++i) t.compare.push_back(compare(cur));
    for (auto* branch : {&t.success, &t.failure}) {
      int n = pick(4);
      for (int i = 0; i < n; ++i) {
        int kind = pick(depth < 2 ? 4 : 3);
        if (kind == 0) {
          branch->push_back(op_range(range(cur, compact)));
        } else if (kind == 1) {
          PutRequest p = put();
          bool clash =
              puts_.contains(p.key) || std::any_of(dels_.begin(), dels_.end(), [&](auto& d) {
                return d.range_end != kAll && in_range(p.key, d.key, d.range_end);
              });
          if (clash || ((p.ignore_value || p.ignore_lease) && from_key_delete_)) continue;
          puts_.insert(p.key);
          branch->push_back(op_put(p));
        } else if (kind == 2) {
          DeleteRangeRequest d = del();
          bool clash = d.range_end != kAll &&
                       std::any_of(puts_.begin(), puts_.end(), [&](const std::string& k) {
                         return in_range(k, d.key, d.range_end);
                       });
          if (clash) continue;
          if (d.range_end == kAll) from_key_delete_ = true;
          dels_.push_back(d);
          branch->push_back(op_delete(d));
        } else {
          branch->push_back(op_txn(txn(cur, compact, depth + 1)));
        }
      }
    }
    return t;
  }

  void reset_txn() {
    puts_.clear();
    dels_.clear();
    from_key_delete_ = false;
  }

 private:
  std::mt19937_64 rng_;
  std::set<std::string> puts_;
  std::vector<DeleteRangeRequest> dels_;
  bool from_key_delete_ = false;
};

template <typename T>
::testing::AssertionResult same(const Result<T>& got, const Result<T>& want) {
  if (got.is_ok() != want.is_ok()) {
    return ::testing::AssertionFailure()
           << "store: " << got.status().to_string() << " model: " << want.status().to_string();
  }
  if (!got.is_ok()) {
    if (got.status().message() == want.status().message()) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure()
           << "store: " << got.status().message() << " model: " << want.status().message();
  }
  if constexpr (requires { got.value() == want.value(); }) {
    if (!(got.value() == want.value())) return ::testing::AssertionFailure() << "responses differ";
  }
  return ::testing::AssertionSuccess();
}

// What the random runs reached, so a generator that drifts into trivial
// cases (all misses, no errors, no compactions) fails instead of passing.
struct Coverage {
  int ranges_with_kvs = 0;
  int ranges_with_more = 0;
  int compacted_errors = 0;
  int future_errors = 0;
  int key_not_found_errors = 0;
  int lease_not_found_errors = 0;
  int txns_succeeded = 0;
  int txns_failed = 0;
  int txn_writes = 0;
  int compactions = 0;
};

void note_range(const Result<RangeResponse>& r, Coverage& cov) {
  if (r.is_ok()) {
    cov.ranges_with_kvs += !r->kvs.empty();
    cov.ranges_with_more += r->more;
  }
}

template <typename T>
void note_error(const Result<T>& r, Coverage& cov) {
  if (r.is_ok()) return;
  const std::string& m = r.status().message();
  cov.compacted_errors += m == kErrCompacted;
  cov.future_errors += m == kErrFutureRev;
  cov.key_not_found_errors += m == kErrKeyNotFound;
  cov.lease_not_found_errors += m == kErrLeaseNotFound;
}

void run_seed(uint64_t seed, Coverage& cov) {
  SCOPED_TRACE("seed " + std::to_string(seed) + " (rerun: CKV_MVCC_SEED=" + std::to_string(seed) +
               " build/unit_tests --gtest_filter='MvccModel*')");
  Gen g(seed);
  Model m;
  Store s;
  for (int i = 0; i < kOpsPerSeed; ++i) {
    SCOPED_TRACE("op " + std::to_string(i));
    const int64_t cur = m.rev();
    int kind = g.pick(100);
    if (kind < 30) {
      PutRequest p = g.put();
      auto got = s.put(p, lease_exists);
      note_error(got, cov);
      ASSERT_TRUE(same(got, m.put(p)));
    } else if (kind < 45) {
      DeleteRangeRequest d = g.del();
      ASSERT_TRUE(same(s.delete_range(d), m.del(d)));
    } else if (kind < 70) {
      RangeRequest r = g.range(cur, m.compact_rev());
      auto got = s.range(r);
      note_range(got, cov);
      note_error(got, cov);
      ASSERT_TRUE(same(got, m.range(r)));
    } else if (kind < 95) {
      g.reset_txn();
      TxnRequest t = g.txn(cur, m.compact_rev());
      auto got = s.txn(t, lease_exists);
      note_error(got, cov);
      if (got.is_ok()) {
        (got->succeeded ? cov.txns_succeeded : cov.txns_failed)++;
        cov.txn_writes += got->header.revision > cur;
        for (const auto& op : got->responses) {
          if (auto* rr = std::get_if<RangeResponse>(&op.response))
            note_range(Result<RangeResponse>(*rr), cov);
        }
      }
      ASSERT_TRUE(same(got, m.txn(t)));
    } else {
      int64_t at = g.rev_near(cur, m.compact_rev());
      auto got = s.compact({at, false});
      note_error(got, cov);
      cov.compactions += got.is_ok();
      auto want = m.compact(at);
      ASSERT_EQ(got.is_ok(), want.is_ok());
      if (!got.is_ok()) {
        ASSERT_EQ(got.status().message(), want.status().message());
      } else {
        ASSERT_EQ(got->header.revision, want->header.revision);
      }
    }
    ASSERT_EQ(s.revision(), m.rev());
    ASSERT_EQ(s.compact_revision(), m.compact_rev());
    if (i % kSnapshotEveryOps == kSnapshotEveryOps - 1) {
      auto restored = Store::decode_snapshot(s.encode_snapshot());
      ASSERT_TRUE(restored.is_ok()) << restored.status().to_string();
      ASSERT_TRUE(restored.value() == s);
      s = std::move(restored).value();  // go on with the restored store
    }
  }
  // Every revision still readable answers exactly as the model, on the store
  // and on its restored snapshot.
  auto restored = Store::decode_snapshot(s.encode_snapshot());
  ASSERT_TRUE(restored.is_ok());
  for (int64_t at = std::max<int64_t>(1, m.compact_rev()); at <= m.rev(); ++at) {
    RangeRequest r;
    r.key = kAll;
    r.range_end = kAll;
    r.revision = at;
    ASSERT_TRUE(same(s.range(r), m.range(r))) << "full range at " << at;
    ASSERT_TRUE(same(restored->range(r), m.range(r))) << "restored, full range at " << at;
  }
}

TEST(MvccModel, RandomHistoriesMatchTheReferenceModel) {
  Coverage cov;
  if (const char* one = std::getenv("CKV_MVCC_SEED")) {
    run_seed(std::strtoull(one, nullptr, 10), cov);
    return;
  }
  for (uint64_t seed = 1; seed <= kSeeds; ++seed) {
    run_seed(seed, cov);
    if (::testing::Test::HasFatalFailure()) return;
  }
  std::printf(
      "coverage: %d ranges with kvs, %d with more, %d compacted, %d future, %d key-not-found, %d "
      "lease-not-found errors, "
      "%d/%d txns succeeded/failed, %d txns wrote, %d compactions\n",
      cov.ranges_with_kvs, cov.ranges_with_more, cov.compacted_errors, cov.future_errors,
      cov.key_not_found_errors, cov.lease_not_found_errors, cov.txns_succeeded, cov.txns_failed,
      cov.txn_writes, cov.compactions);
  constexpr int kMinEach = 50;
  EXPECT_GT(cov.ranges_with_kvs, kMinEach);
  EXPECT_GT(cov.ranges_with_more, kMinEach);
  EXPECT_GT(cov.compacted_errors, kMinEach);
  EXPECT_GT(cov.future_errors, kMinEach);
  EXPECT_GT(cov.key_not_found_errors, kMinEach);
  EXPECT_GT(cov.lease_not_found_errors, kMinEach);
  EXPECT_GT(cov.txns_succeeded, kMinEach);
  EXPECT_GT(cov.txns_failed, kMinEach);
  EXPECT_GT(cov.txn_writes, kMinEach);
  EXPECT_GT(cov.compactions, kMinEach);
}

}  // namespace
}  // namespace ckv::mvcc
