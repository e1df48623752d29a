// The MVCC store: etcd 3.4's range, put, delete, txn and compaction over per-key histories.
#include "mvcc/store.h"

#include <algorithm>
#include <limits>
#include <optional>
#include <utility>

#include "common/check.h"
#include "mvcc/request_checks.h"

namespace ckv::mvcc {
namespace {

Status invalid(const char* text) { return Status(StatusCode::kInvalid, text); }
Status lease_not_found() { return Status(StatusCode::kNotFound, kErrLeaseNotFound); }
bool lease_ok(int64_t lease, const LeaseLookup& lease_exists) {
  return lease == 0 || !lease_exists || lease_exists(lease);
}

// The version of a key visible at revision `at`: the newest one with
// main <= at, unless that is a tombstone. Histories are sorted by revision.
const KeyVersion* version_at(const std::vector<KeyVersion>& hist, int64_t at) {
  auto it = std::upper_bound(hist.begin(), hist.end(), at,
                             [](int64_t a, const KeyVersion& v) { return a < v.revision.main; });
  if (it == hist.begin()) return nullptr;
  --it;
  return it->tombstone ? nullptr : &*it;
}

KeyValue to_kv(const std::string& key, const KeyVersion& v) {
  return KeyValue{key, v.create_revision, v.revision.main, v.version, v.value, v.lease};
}

bool is_from_key(const std::string& range_end) {
  return range_end.size() == 1 && range_end[0] == '\0';
}

// Calls fn(key, version) for each key of the range live at `at`, in key
// order: range_end empty is the single key, "\0" every key >= key, else
// [key, range_end). Visiting rather than collecting lets compares and deletes
// look at a large range without copying its values.
template <typename Index, typename Fn>
void for_each_live(const Index& index, const std::string& key, const std::string& range_end,
                   int64_t at, Fn&& fn) {
  if (range_end.empty()) {
    auto it = index.find(key);
    if (it == index.end()) return;
    if (const KeyVersion* v = version_at(it->second, at)) fn(it->first, *v);
    return;
  }
  const bool to_end = is_from_key(range_end);
  for (auto it = index.lower_bound(key); it != index.end(); ++it) {
    if (!to_end && it->first >= range_end) break;
    if (const KeyVersion* v = version_at(it->second, at)) fn(it->first, *v);
  }
}

// etcd's applyCompare's compareKV: compares one key's field with the target.
// `kv` is the key's version, or the all-zero one etcd uses for a missing key.
bool compare_kv(const Compare& c, const KeyVersion& kv) {
  int result = 0;
  auto cmp64 = [](int64_t a, int64_t b) { return a < b ? -1 : (a > b ? 1 : 0); };
  switch (c.target) {
    case Compare::CompareTarget::kValue: {
      int r = kv.value.compare(c.value);
      result = r < 0 ? -1 : (r > 0 ? 1 : 0);
      break;
    }
    case Compare::CompareTarget::kCreate:
      result = cmp64(kv.create_revision, c.create_revision);
      break;
    case Compare::CompareTarget::kMod:
      result = cmp64(kv.revision.main, c.mod_revision);
      break;
    case Compare::CompareTarget::kVersion:
      result = cmp64(kv.version, c.version);
      break;
    case Compare::CompareTarget::kLease:
      result = cmp64(kv.lease, c.lease);
      break;
  }
  switch (c.result) {
    case Compare::CompareResult::kEqual:
      return result == 0;
    case Compare::CompareResult::kNotEqual:
      return result != 0;
    case Compare::CompareResult::kGreater:
      return result > 0;
    case Compare::CompareResult::kLess:
      return result < 0;
  }
  return true;  // an unknown result holds, as in etcd
}

}  // namespace

// One write request or txn in progress. Changes go straight into the index
// at revision begin+1 (reads inside the txn see them, as etcd's storeTxnWrite
// does); commit publishes the revision, and anything not committed is undone
// by popping those versions, which are always the newest of their keys.
class Store::WriteTxn {
 public:
  explicit WriteTxn(Store& s) : s_(s), begin_(s.current_revision_) { s_.last_events_.clear(); }
  WriteTxn(const WriteTxn&) = delete;
  WriteTxn& operator=(const WriteTxn&) = delete;
  ~WriteTxn() {
    if (!committed_) rollback();
  }

  // What reads inside the txn see: its own changes once it has made any.
  int64_t read_rev() const { return changes_ > 0 ? begin_ + 1 : begin_; }

  void commit() {
    if (changes_ > 0) s_.current_revision_ = begin_ + 1;
    committed_ = true;
  }

  Result<RangeResponse> range(const RangeRequest& r) const { return s_.range_at(r, read_rev()); }

  // etcd's applier Put: ignore_* and prev_kv read the key as the txn sees it.
  Result<PutResponse> put(const PutRequest& p) {
    std::optional<KeyValue> prev;
    if (p.ignore_value || p.ignore_lease || p.prev_kv) {
      auto it = s_.index_.find(p.key);
      if (it != s_.index_.end()) {
        if (const KeyVersion* v = version_at(it->second, read_rev())) prev = to_kv(p.key, *v);
      }
    }
    if ((p.ignore_value || p.ignore_lease) && !prev) return invalid(kErrKeyNotFound);
    PutResponse resp;
    write(p.key, p.ignore_value ? prev->value : p.value, p.ignore_lease ? prev->lease : p.lease,
          false);
    if (p.prev_kv) resp.prev_kv = std::move(prev);
    resp.header.revision = begin_ + 1;
    return resp;
  }

  DeleteRangeResponse delete_range(const DeleteRangeRequest& d) {
    DeleteRangeResponse resp;
    std::vector<std::string> keys;
    for_each_live(s_.index_, d.key, d.range_end, read_rev(),
                  [&](const std::string& k, const KeyVersion& v) {
                    keys.push_back(k);
                    if (d.prev_kv) resp.prev_kvs.push_back(to_kv(k, v));
                  });
    // Tombstones are written after the walk: writing appends to histories
    // the walk is reading.
    for (const auto& k : keys) write(k, {}, 0, true);
    resp.deleted = static_cast<int64_t>(keys.size());
    resp.header.revision = (resp.deleted != 0 || changes_ > 0) ? begin_ + 1 : begin_;
    return resp;
  }

  // Single-key deletes of each live key of `keys`, at one revision.
  DeleteRangeResponse delete_keys(const std::vector<std::string>& keys) {
    DeleteRangeResponse resp;
    for (const auto& k : keys) {
      auto it = s_.index_.find(k);
      if (it == s_.index_.end() || version_at(it->second, read_rev()) == nullptr) continue;
      write(k, {}, 0, true);
      ++resp.deleted;
    }
    resp.header.revision = resp.deleted != 0 ? begin_ + 1 : begin_;
    return resp;
  }

  // etcd's applyTxn: runs the branch `path` chose, nested txns in pre-order.
  Status txn(const TxnRequest& r, const std::vector<bool>& path, size_t& at, TxnResponse& resp) {
    KV_CHECK(at < path.size(), "txn path too short: %zu of %zu", at, path.size());
    resp.succeeded = path[at++];
    const auto& ops = resp.succeeded ? r.success : r.failure;
    resp.responses.reserve(ops.size());
    for (const auto& op : ops) {
      if (auto* rr = std::get_if<RangeRequest>(&op.request)) {
        auto res = range(*rr);
        if (!res.is_ok()) return res.status();
        resp.responses.emplace_back().response.emplace<RangeResponse>(std::move(res).value());
      } else if (auto* pr = std::get_if<PutRequest>(&op.request)) {
        auto res = put(*pr);
        if (!res.is_ok()) return res.status();
        resp.responses.emplace_back().response.emplace<PutResponse>(std::move(res).value());
      } else if (auto* dr = std::get_if<DeleteRangeRequest>(&op.request)) {
        resp.responses.emplace_back().response.emplace<DeleteRangeResponse>(delete_range(*dr));
      } else {
        const auto& nested = std::get<std::shared_ptr<const TxnRequest>>(op.request);
        KV_CHECK(nested != nullptr, "a null nested txn passed check_txn_request");
        auto nresp = std::make_shared<TxnResponse>();
        if (Status s = txn(*nested, path, at, *nresp); !s.is_ok()) return s;
        resp.responses.emplace_back().response.emplace<std::shared_ptr<TxnResponse>>(
            std::move(nresp));
      }
    }
    return Status::ok();
  }

 private:
  void write(const std::string& key, std::string value, int64_t lease, bool tombstone) {
    const int64_t rev = begin_ + 1;
    auto& hist = s_.index_[key];
    if (hist.empty()) s_.bytes_ += key_cost(key);  // a new key (empty histories are erased)
    KeyVersion v;
    v.revision = Revision{rev, changes_++};
    v.tombstone = tombstone;
    const KeyVersion* live = hist.empty() || hist.back().tombstone ? nullptr : &hist.back();
    Event& ev = s_.last_events_.emplace_back();
    ev.type = tombstone ? Event::Type::kDelete : Event::Type::kPut;
    if (live) ev.prev_kv = to_kv(key, *live);
    if (!tombstone) {
      v.create_revision = live ? live->create_revision : rev;
      v.version = live ? live->version + 1 : 1;
      v.lease = lease;
      v.value = std::move(value);
    }
    if (tombstone) {
      ev.kv.key = key;
      ev.kv.mod_revision = rev;
    } else {
      ev.kv = to_kv(key, v);
    }
    s_.bytes_ += version_cost(v);
    hist.push_back(std::move(v));
    touched_.push_back(key);
  }

  void rollback() {
    s_.last_events_.clear();
    for (const auto& key : touched_) {
      auto it = s_.index_.find(key);
      if (it == s_.index_.end()) continue;  // already undone through an earlier duplicate
      auto& hist = it->second;
      while (!hist.empty() && hist.back().revision.main == begin_ + 1) {
        s_.bytes_ -= version_cost(hist.back());
        hist.pop_back();
      }
      if (hist.empty()) {
        s_.bytes_ -= key_cost(it->first);
        s_.index_.erase(it);
      }
    }
  }

  Store& s_;
  const int64_t begin_;
  int64_t changes_ = 0;
  bool committed_ = false;
  std::vector<std::string> touched_;
};

Store::Store(StoreOptions options) : options_(options) {}

size_t Store::version_count() const {
  size_t n = 0;
  for (const auto& [k, hist] : index_) n += hist.size();
  return n;
}

const std::vector<KeyVersion>* Store::history(const std::string& key) const {
  auto it = index_.find(key);
  return it == index_.end() ? nullptr : &it->second;
}

Store::RangeResult Store::range_keys(const std::string& key, const std::string& range_end,
                                     int64_t at, int64_t cur_rev, int64_t limit,
                                     bool count_only) const {
  RangeResult rr;
  rr.revision = cur_rev;
  for_each_live(index_, key, range_end, at, [&](const std::string& k, const KeyVersion& v) {
    ++rr.count;
    if (!count_only && (limit <= 0 || static_cast<int64_t>(rr.kvs.size()) < limit)) {
      rr.kvs.push_back(to_kv(k, v));
    }
  });
  return rr;
}

Result<RangeResponse> Store::range(const RangeRequest& r) const {
  if (Status s = check_range_request(r); !s.is_ok()) return s;
  return range_at(r, current_revision_);
}

Result<RangeResponse> Store::range_at(const RangeRequest& r, int64_t cur_rev) const {
  // etcd's rangeKeys: a future revision is checked before a compacted one.
  if (r.revision > cur_rev) return invalid(kErrFutureRev);
  const int64_t at = r.revision <= 0 ? cur_rev : r.revision;
  if (at < compact_revision_) return invalid(kErrCompacted);

  // etcd's applier Range: sorting or filtering needs every key; otherwise
  // fetch one more than the limit to learn `more`.
  int64_t limit = r.limit;
  if (r.sort_order != SortOrder::kNone || r.min_mod_revision != 0 || r.max_mod_revision != 0 ||
      r.min_create_revision != 0 || r.max_create_revision != 0) {
    limit = 0;
  }
  if (limit > 0 && limit < std::numeric_limits<int64_t>::max()) limit += 1;
  RangeResult rr = range_keys(r.key, r.range_end, at, cur_rev, limit, r.count_only);

  std::erase_if(rr.kvs, [&](const KeyValue& kv) {
    return (r.max_mod_revision != 0 && kv.mod_revision > r.max_mod_revision) ||
           (r.min_mod_revision != 0 && kv.mod_revision < r.min_mod_revision) ||
           (r.max_create_revision != 0 && kv.create_revision > r.max_create_revision) ||
           (r.min_create_revision != 0 && kv.create_revision < r.min_create_revision);
  });

  // etcd sorts ascending when a target other than KEY is named without an
  // order (keys already come in ascending key order). Stable sorting keeps
  // ties in key order, so answers are deterministic across replicas.
  SortOrder order = r.sort_order;
  if (r.sort_target != SortTarget::kKey && order == SortOrder::kNone) order = SortOrder::kAscend;
  if (order == SortOrder::kAscend || order == SortOrder::kDescend) {
    auto less = [&](const KeyValue& a, const KeyValue& b) {
      switch (r.sort_target) {
        case SortTarget::kKey:
          return a.key < b.key;
        case SortTarget::kVersion:
          return a.version < b.version;
        case SortTarget::kCreate:
          return a.create_revision < b.create_revision;
        case SortTarget::kMod:
          return a.mod_revision < b.mod_revision;
        case SortTarget::kValue:
          return a.value < b.value;
      }
      return false;
    };
    if (order == SortOrder::kAscend) {
      std::stable_sort(rr.kvs.begin(), rr.kvs.end(), less);
    } else {
      std::stable_sort(rr.kvs.begin(), rr.kvs.end(),
                       [&](const KeyValue& a, const KeyValue& b) { return less(b, a); });
    }
  }

  RangeResponse resp;
  if (r.limit > 0 && static_cast<int64_t>(rr.kvs.size()) > r.limit) {
    rr.kvs.resize(static_cast<size_t>(r.limit));
    resp.more = true;
  }
  if (r.keys_only) {
    for (auto& kv : rr.kvs) kv.value.clear();
  }
  resp.header.revision = rr.revision;
  resp.count = rr.count;
  resp.kvs = std::move(rr.kvs);
  return resp;
}

namespace {

// Calls fn(key, history) for every key of the range with retained versions
// (live or not), in key order; range_end as for_each_live's.
template <typename Index, typename Fn>
void for_each_history(const Index& index, const std::string& key, const std::string& range_end,
                      Fn&& fn) {
  if (range_end.empty()) {
    auto it = index.find(key);
    if (it != index.end()) fn(it->first, it->second);
    return;
  }
  const bool to_end = is_from_key(range_end);
  for (auto it = index.lower_bound(key); it != index.end(); ++it) {
    if (!to_end && it->first >= range_end) break;
    fn(it->first, it->second);
  }
}

// The versions of hist with main revision in [from, to], as iterators.
template <typename Hist>
auto versions_in(const Hist& hist, int64_t from, int64_t to) {
  auto lo = std::lower_bound(hist.begin(), hist.end(), from,
                             [](const KeyVersion& v, int64_t r) { return v.revision.main < r; });
  auto hi = std::upper_bound(lo, hist.end(), to,
                             [](int64_t r, const KeyVersion& v) { return r < v.revision.main; });
  return std::pair{lo, hi};
}

}  // namespace

Result<Store::EventPage> Store::events_between(const std::string& key,
                                               const std::string& range_end, int64_t from,
                                               int64_t to, size_t max_events) const {
  if (from < compact_revision_) return invalid(kErrCompacted);
  EventPage page;
  from = std::max<int64_t>(from, 1);
  to = std::min(to, current_revision_);
  max_events = std::max<size_t>(max_events, 1);
  if (from > to) {
    page.next = std::max(from, to + 1);
    return page;
  }
  // Pass 1: the max_events + 1 smallest revisions in the span (a bounded
  // max-heap), to find where the page must end without collecting it all.
  std::vector<int64_t> heap;
  heap.reserve(max_events + 1);
  for_each_history(index_, key, range_end, [&](const std::string&, const auto& hist) {
    auto [lo, hi] = versions_in(hist, from, to);
    for (auto it = lo; it != hi; ++it) {
      const int64_t r = it->revision.main;
      if (heap.size() <= max_events) {
        heap.push_back(r);
        std::push_heap(heap.begin(), heap.end());
      } else if (r < heap.front()) {
        std::pop_heap(heap.begin(), heap.end());
        heap.back() = r;
        std::push_heap(heap.begin(), heap.end());
      } else {
        break;  // this key's later versions are larger still
      }
    }
  });
  int64_t upto = to;
  if (heap.size() > max_events) {
    // heap holds the max_events + 1 smallest; every event below its top
    // is among them, so [from, top - 1] fits, unless all are at top: one
    // revision larger than the page, which comes whole.
    const int64_t top = heap.front();
    const bool any_below = std::any_of(heap.begin(), heap.end(), [&](int64_t r) { return r < top; });
    upto = any_below ? top - 1 : top;
  }
  // Pass 2: the events of [from, upto], ordered by (main, sub).
  std::vector<std::pair<Revision, Event>> picked;
  for_each_history(index_, key, range_end, [&](const std::string& k, const auto& hist) {
    auto [lo, hi] = versions_in(hist, from, upto);
    for (auto it = lo; it != hi; ++it) {
      Event ev;
      ev.type = it->tombstone ? Event::Type::kDelete : Event::Type::kPut;
      if (it->tombstone) {
        ev.kv.key = k;
        ev.kv.mod_revision = it->revision.main;
      } else {
        ev.kv = to_kv(k, *it);
      }
      if (it != hist.begin() && !std::prev(it)->tombstone) ev.prev_kv = to_kv(k, *std::prev(it));
      picked.emplace_back(it->revision, std::move(ev));
    }
  });
  std::sort(picked.begin(), picked.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  page.events.reserve(picked.size());
  for (auto& [rev, ev] : picked) page.events.push_back(std::move(ev));
  page.next = upto + 1;
  return page;
}

Result<PutResponse> Store::put(const PutRequest& r, const LeaseLookup& lease_exists) {
  last_events_.clear();  // a request refused by the checks below changes nothing
  if (Status s = check_put_request(r); !s.is_ok()) return s;
  // etcd's applier asks for the lease before it looks at ignore_*.
  if (!lease_ok(r.lease, lease_exists)) return lease_not_found();
  WriteTxn w(*this);
  auto res = w.put(r);
  if (res.is_ok()) w.commit();
  return res;
}

Result<DeleteRangeResponse> Store::delete_range(const DeleteRangeRequest& r) {
  last_events_.clear();  // a request refused by the checks below changes nothing
  if (Status s = check_delete_request(r); !s.is_ok()) return s;
  WriteTxn w(*this);
  DeleteRangeResponse resp = w.delete_range(r);
  w.commit();
  return resp;
}

DeleteRangeResponse Store::delete_keys(const std::vector<std::string>& keys) {
  WriteTxn w(*this);
  DeleteRangeResponse resp = w.delete_keys(keys);
  w.commit();
  return resp;
}

void Store::for_each_leased_key(const std::function<void(const std::string&, int64_t)>& fn) const {
  for (const auto& [key, hist] : index_) {
    if (!hist.empty() && !hist.back().tombstone && hist.back().lease != 0) fn(key, hist.back().lease);
  }
}

bool Store::compare_holds(const Compare& c) const {
  bool any = false;
  bool all = true;
  for_each_live(index_, c.key, c.range_end, current_revision_,
                [&](const std::string&, const KeyVersion& v) {
                  any = true;
                  if (all) all = compare_kv(c, v);
                });
  if (any) return all;
  // etcd: a value compare on missing keys always fails (no way to tell a
  // missing value from an empty one); other targets compare against zeros.
  if (c.target == Compare::CompareTarget::kValue) return false;
  return compare_kv(c, KeyVersion{});
}

// etcd's compareToPath: every compare, nested ones included, is evaluated
// against the state before the txn, in pre-order.
void Store::txn_path(const TxnRequest& r, std::vector<bool>& path) const {
  const bool ok = std::all_of(r.compare.begin(), r.compare.end(),
                              [&](const Compare& c) { return compare_holds(c); });
  path.push_back(ok);
  for (const auto& op : ok ? r.success : r.failure) {
    if (auto* t = std::get_if<std::shared_ptr<const TxnRequest>>(&op.request)) txn_path(**t, path);
  }
}

// etcd's checkRequests over the chosen path, before anything is written: puts
// with ignore_* need the key to exist and a named lease must exist (in that
// order, op by op), reads at a revision need it retained.
// etcd checks every put first, then every range; so do we, for the same error.
Status Store::check_txn_path(const TxnRequest& r, const std::vector<bool>& path, size_t& at,
                             const LeaseLookup& lease_exists) const {
  std::vector<const RequestOp*> ops;
  auto collect = [&](auto&& self, const TxnRequest& t) -> void {
    for (const auto& op : path[at++] ? t.success : t.failure) {
      if (auto* n = std::get_if<std::shared_ptr<const TxnRequest>>(&op.request)) {
        self(self, **n);
      } else {
        ops.push_back(&op);
      }
    }
  };
  collect(collect, r);
  for (const RequestOp* op : ops) {
    auto* p = std::get_if<PutRequest>(&op->request);
    if (p == nullptr) continue;
    if (p->ignore_value || p->ignore_lease) {
      auto it = index_.find(p->key);
      if (it == index_.end() || version_at(it->second, current_revision_) == nullptr)
        return invalid(kErrKeyNotFound);
    }
    if (!lease_ok(p->lease, lease_exists)) return lease_not_found();
  }
  for (const RequestOp* op : ops) {
    auto* q = std::get_if<RangeRequest>(&op->request);
    if (q == nullptr || q->revision == 0) continue;
    if (q->revision > current_revision_) return invalid(kErrFutureRev);
    if (q->revision < compact_revision_) return invalid(kErrCompacted);
  }
  return Status::ok();
}

Result<TxnResponse> Store::txn(const TxnRequest& r, const LeaseLookup& lease_exists) {
  last_events_.clear();  // a request refused by the checks below changes nothing
  if (Status s = check_txn_request(r, options_.max_txn_ops); !s.is_ok()) return s;
  std::vector<bool> path;
  txn_path(r, path);
  size_t at = 0;
  if (Status s = check_txn_path(r, path, at, lease_exists); !s.is_ok()) return s;

  WriteTxn w(*this);
  TxnResponse resp;
  at = 0;
  // A failure here means an op saw the txn's own earlier writes differently
  // from the pre-txn checks: only ignore_value/ignore_lease on a key that a
  // from-key delete earlier in the same txn removed (allowed by etcd's
  // duplicate check, see request_checks.h). etcd 3.4 panics on it; we refuse
  // the whole txn with the error, and the WriteTxn undoes its writes.
  if (Status s = w.txn(r, path, at, resp); !s.is_ok()) return s;
  w.commit();
  resp.header.revision = current_revision_;
  return resp;
}

Result<TxnResponse> Store::read_txn(const TxnRequest& r) const {
  if (!is_txn_read_only(r)) {
    return Status(StatusCode::kInvalid, "consensuskv: read_txn of a txn that writes");
  }
  // The same checks, in the same order, as txn(): the same errors.
  if (Status s = check_txn_request(r, options_.max_txn_ops); !s.is_ok()) return s;
  std::vector<bool> path;
  txn_path(r, path);
  size_t at = 0;
  if (Status s = check_txn_path(r, path, at, {}); !s.is_ok()) return s;
  TxnResponse resp;
  at = 0;
  if (Status s = read_txn_ops(r, path, at, resp); !s.is_ok()) return s;
  resp.header.revision = current_revision_;
  return resp;
}

Status Store::read_txn_ops(const TxnRequest& r, const std::vector<bool>& path, size_t& at,
                           TxnResponse& resp) const {
  KV_CHECK(at < path.size(), "txn path too short: %zu of %zu", at, path.size());
  resp.succeeded = path[at++];
  const auto& ops = resp.succeeded ? r.success : r.failure;
  resp.responses.reserve(ops.size());
  for (const auto& op : ops) {
    if (auto* rr = std::get_if<RangeRequest>(&op.request)) {
      // What WriteTxn::range reads in a txn that has not written: the current revision.
      auto res = range_at(*rr, current_revision_);
      if (!res.is_ok()) return res.status();
      resp.responses.emplace_back().response.emplace<RangeResponse>(std::move(res).value());
    } else {
      const auto& nested = std::get<std::shared_ptr<const TxnRequest>>(op.request);
      KV_CHECK(nested != nullptr, "a null nested txn passed check_txn_request");
      auto nresp = std::make_shared<TxnResponse>();
      if (Status s = read_txn_ops(*nested, path, at, *nresp); !s.is_ok()) return s;
      resp.responses.emplace_back().response.emplace<std::shared_ptr<TxnResponse>>(
          std::move(nresp));
    }
  }
  return Status::ok();
}

Result<CompactionResponse> Store::compact(const CompactionRequest& r) {
  last_events_.clear();
  if (r.revision <= compact_revision_) return invalid(kErrCompacted);
  if (r.revision > current_revision_) return invalid(kErrFutureRev);
  // Reads below the revision fail from now on; the versions they would
  // have needed go in a pass over all keys, restarted for the newest
  // compaction (a key done for an older one still holds what this drops).
  compact_revision_ = r.revision;
  pending_compaction_ = r.revision;
  compact_started_ = false;
  compact_resume_.clear();
  if (!options_.incremental_compaction) {
    while (compact_step(SIZE_MAX)) {
    }
  }
  CompactionResponse resp;
  resp.header.revision = current_revision_;
  return resp;
}

bool Store::compact_step(size_t max_keys) {
  // A snapshot stream reads the versions a pass would drop (store.h).
  if (pending_compaction_ < 0 || streaming_) return false;
  auto it = compact_started_ ? index_.upper_bound(compact_resume_) : index_.begin();
  compact_started_ = true;
  for (size_t n = 0; it != index_.end() && n < max_keys; ++n) {
    compact_resume_ = it->first;
    it = compact_key(it, pending_compaction_);
  }
  if (it != index_.end()) return true;
  pending_compaction_ = -1;
  compact_resume_.clear();
  return false;
}

Store::Index::iterator Store::compact_key(Index::iterator it, int64_t revision) {
  // Keep the newest version at or below the revision (reads at it need
  // that one) and everything newer; if that newest version is a tombstone
  // the key was absent there, so it goes too, and a key left with no
  // versions leaves the index.
  auto& hist = it->second;
  auto keep = std::upper_bound(hist.begin(), hist.end(), revision,
                               [](int64_t a, const KeyVersion& v) { return a < v.revision.main; });
  if (keep != hist.begin()) {
    --keep;
    if (keep->tombstone) ++keep;
    for (auto v = hist.begin(); v != keep; ++v) bytes_ -= version_cost(*v);
    hist.erase(hist.begin(), keep);
    // Give back what the erased history held; keys rewritten often would
    // otherwise keep their peak capacity forever.
    if (hist.capacity() > 2 * hist.size()) hist.shrink_to_fit();
  }
  if (!hist.empty()) return std::next(it);
  bytes_ -= key_cost(it->first);
  return index_.erase(it);
}

}  // namespace ckv::mvcc
