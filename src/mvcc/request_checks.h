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

}  // namespace ckv::mvcc
