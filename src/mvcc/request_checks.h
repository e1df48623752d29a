// Validation of KV requests before they touch the store, as etcd 3.4's v3rpc layer does (key.go).
#pragma once

#include <cstddef>

#include "common/status.h"
#include "mvcc/errors.h"
#include "mvcc/types.h"

namespace ckv::mvcc {

// Each returns ok or the error etcd returns for the same request, with its text.
Status check_range_request(const RangeRequest& r);
Status check_put_request(const PutRequest& r);
Status check_delete_request(const DeleteRangeRequest& r);

// Op counts (nested txns share max_txn_ops, as in etcd), empty keys, and etcd's
// rule that no key is written twice in one txn: two puts of a key in the same
// branch, or a put inside a delete's range. Puts in a nested txn's success and
// failure branches may name the same key: only one of them runs.
//
// Matches etcd 3.4 exactly, including its quirk that a delete with range_end
// "\0" (from-key) does not count as overlapping later puts (etcd's interval
// tree takes "\0" literally, not as "to the end"). Such a txn is accepted and
// applied in order; see Store::txn for the one case where it cannot be.
Status check_txn_request(const TxnRequest& r, size_t max_txn_ops = kDefaultMaxTxnOps);

// etcd's isTxnReadonly: no put or delete in either branch, nested txns
// included. Such a txn changes nothing whichever branch its compares choose,
// so it is served like a Range, without a log entry (Store::read_txn).
bool is_txn_read_only(const TxnRequest& r);
// etcd's isTxnSerializable: every op of both branches is a serializable
// Range (a nested txn is not; a txn without ops is). A read-only txn that is
// also serializable is answered from this node's state without a read barrier.
bool is_txn_serializable(const TxnRequest& r);

}  // namespace ckv::mvcc
