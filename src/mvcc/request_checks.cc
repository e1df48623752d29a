// KV request validation as etcd 3.4's v3rpc does it: op budgets, empty keys, duplicate writes.
#include "mvcc/request_checks.h"

#include <algorithm>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace ckv::mvcc {
namespace {

Status invalid(const char* text) { return Status(StatusCode::kInvalid, text); }

// A delete's interval as etcd's checkIntervals builds it: [key, range_end), or
// the point key when range_end is empty. range_end is taken literally, so
// "\0" gives an interval that contains nothing above "\0" (etcd's quirk).
struct Interval {
  std::string begin;
  std::string end;  // empty: the point `begin`
  bool contains(const std::string& k) const {
    return end.empty() ? k == begin : (begin <= k && k < end);
  }
};

bool any_contains(const std::vector<Interval>& dels, const std::string& k) {
  for (const auto& iv : dels) {
    if (iv.contains(k)) return true;
  }
  return false;
}

Status check_ops(const std::vector<RequestOp>& ops, size_t budget);

Status check_txn_budget(const TxnRequest& r, size_t max_txn_ops) {
  size_t opc = std::max({r.compare.size(), r.success.size(), r.failure.size()});
  if (opc > max_txn_ops) return invalid(kErrTooManyOps);
  for (const auto& c : r.compare) {
    if (c.key.empty()) return invalid(kErrEmptyKey);
  }
  // Nested txns get what this level leaves of the budget, which also bounds
  // the nesting depth (each level that nests spends at least one op).
  if (Status s = check_ops(r.success, max_txn_ops - opc); !s.is_ok()) return s;
  return check_ops(r.failure, max_txn_ops - opc);
}

Status check_ops(const std::vector<RequestOp>& ops, size_t budget) {
  for (const auto& op : ops) {
    Status s;
    if (auto* rr = std::get_if<RangeRequest>(&op.request)) {
      s = check_range_request(*rr);
    } else if (auto* pr = std::get_if<PutRequest>(&op.request)) {
      s = check_put_request(*pr);
    } else if (auto* dr = std::get_if<DeleteRangeRequest>(&op.request)) {
      s = check_delete_request(*dr);
    } else if (auto* tr = std::get_if<std::shared_ptr<const TxnRequest>>(&op.request)) {
      s = *tr ? check_txn_budget(**tr, budget) : invalid(kErrKeyNotFound);
    } else {
      s = invalid(kErrKeyNotFound);  // an op with no request: etcd's answer
    }
    if (!s.is_ok()) return s;
  }
  return Status::ok();
}

// etcd's checkIntervals: returns this list's puts and deletes (for the parent
// level to check against its own), or the duplicate-key error.
Status check_intervals(const std::vector<RequestOp>& ops, std::set<std::string>& puts,
                       std::vector<Interval>& dels) {
  for (const auto& op : ops) {
    if (auto* dr = std::get_if<DeleteRangeRequest>(&op.request))
      dels.push_back({dr->key, dr->range_end});
  }
  for (const auto& op : ops) {
    auto* tp = std::get_if<std::shared_ptr<const TxnRequest>>(&op.request);
    if (tp == nullptr || *tp == nullptr) continue;
    std::set<std::string> puts_then, puts_else;
    std::vector<Interval> dels_then, dels_else;
    if (Status s = check_intervals((*tp)->success, puts_then, dels_then); !s.is_ok()) return s;
    if (Status s = check_intervals((*tp)->failure, puts_else, dels_else); !s.is_ok()) return s;
    for (const auto& k : puts_then) {
      if (puts.contains(k) || any_contains(dels, k)) return invalid(kErrDuplicateKey);
      puts.insert(k);
    }
    for (const auto& k : puts_else) {
      if (puts.contains(k) && !puts_then.contains(k)) return invalid(kErrDuplicateKey);
      if (any_contains(dels, k)) return invalid(kErrDuplicateKey);
      puts.insert(k);
    }
    dels.insert(dels.end(), dels_then.begin(), dels_then.end());
    dels.insert(dels.end(), dels_else.begin(), dels_else.end());
  }
  for (const auto& op : ops) {
    auto* pr = std::get_if<PutRequest>(&op.request);
    if (pr == nullptr) continue;
    if (puts.contains(pr->key) || any_contains(dels, pr->key)) return invalid(kErrDuplicateKey);
    puts.insert(pr->key);
  }
  return Status::ok();
}

}  // namespace

Status check_range_request(const RangeRequest& r) {
  if (r.key.empty()) return invalid(kErrEmptyKey);
  // Values outside the enums can arrive from the wire (protobuf keeps them).
  const auto order = static_cast<int32_t>(r.sort_order);
  const auto target = static_cast<int32_t>(r.sort_target);
  if (order < static_cast<int32_t>(SortOrder::kNone) ||
      order > static_cast<int32_t>(SortOrder::kDescend) ||
      target < static_cast<int32_t>(SortTarget::kKey) ||
      target > static_cast<int32_t>(SortTarget::kValue)) {
    return invalid(kErrInvalidSortOption);
  }
  return Status::ok();
}

Status check_put_request(const PutRequest& r) {
  if (r.key.empty()) return invalid(kErrEmptyKey);
  if (r.ignore_value && !r.value.empty()) return invalid(kErrValueProvided);
  if (r.ignore_lease && r.lease != 0) return invalid(kErrLeaseProvided);
  return Status::ok();
}

Status check_delete_request(const DeleteRangeRequest& r) {
  if (r.key.empty()) return invalid(kErrEmptyKey);
  return Status::ok();
}

Status check_txn_request(const TxnRequest& r, size_t max_txn_ops) {
  if (Status s = check_txn_budget(r, max_txn_ops); !s.is_ok()) return s;
  for (const auto* branch : {&r.success, &r.failure}) {
    std::set<std::string> puts;
    std::vector<Interval> dels;
    if (Status s = check_intervals(*branch, puts, dels); !s.is_ok()) return s;
  }
  return Status::ok();
}

bool is_txn_read_only(const TxnRequest& r) {
  for (const auto* branch : {&r.success, &r.failure}) {
    for (const RequestOp& op : *branch) {
      if (std::holds_alternative<PutRequest>(op.request) ||
          std::holds_alternative<DeleteRangeRequest>(op.request)) {
        return false;
      }
      if (auto* t = std::get_if<std::shared_ptr<const TxnRequest>>(&op.request)) {
        if (*t != nullptr && !is_txn_read_only(**t)) return false;
      }
    }
  }
  return true;
}

bool is_txn_serializable(const TxnRequest& r) {
  for (const auto* branch : {&r.success, &r.failure}) {
    for (const RequestOp& op : *branch) {
      const auto* range = std::get_if<RangeRequest>(&op.request);
      if (range == nullptr || !range->serializable) return false;
    }
  }
  return true;
}

}  // namespace ckv::mvcc
