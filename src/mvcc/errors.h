// etcd's exact KV error texts and limits: clients match errors by their text.
#pragma once

#include <cstddef>

namespace ckv::mvcc {

// mvcc package errors (etcd's gRPC layer prefixes them with "etcdserver: ").
inline constexpr const char* kErrCompacted = "mvcc: required revision has been compacted";
inline constexpr const char* kErrFutureRev = "mvcc: required revision is a future revision";
// etcdserver / rpctypes errors, as etcd 3.4 words them.
inline constexpr const char* kErrKeyNotFound = "etcdserver: key not found";
inline constexpr const char* kErrValueProvided = "etcdserver: value is provided";
inline constexpr const char* kErrLeaseProvided = "etcdserver: lease is provided";
inline constexpr const char* kErrEmptyKey = "etcdserver: key is not provided";
inline constexpr const char* kErrTooManyOps = "etcdserver: too many operations in txn request";
inline constexpr const char* kErrDuplicateKey = "etcdserver: duplicate key given in txn request";
// etcd 3.5's answer to a sort order or target outside the enum. etcd 3.4.23
// ignores an unknown order and crashes (nil sorter) on an unknown target.
inline constexpr const char* kErrInvalidSortOption = "etcdserver: invalid sort option";
// lease.ErrLeaseNotFound as etcd's gRPC layer words it (StatusCode::kNotFound, gRPC NotFound).
inline constexpr const char* kErrLeaseNotFound = "etcdserver: requested lease not found";

// etcd's --max-txn-ops default: the most compares, or success ops, or failure
// ops in one txn (nested txns share this budget, as in etcd).
inline constexpr size_t kDefaultMaxTxnOps = 128;

}  // namespace ckv::mvcc
