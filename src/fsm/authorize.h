// Which permissions each replicated command and each read needs once auth is enabled, checked against one auth state.
//
// One function for the front ends (before proposing or reading, so a
// refusal costs no log entry) and for apply (fsm/kv_state_machine.cc, so
// a grant revoked between the two never lets a write through: the
// caller's auth revision is checked again there, auth/auth_store.h).
// etcd 3.4's rules (etcdserver/apply_auth.go), with two deliberate
// additions (docs/api.md, "Auth"): a nested txn's ops are checked like the
// outer ones (3.4 skipped them), and Compact needs root (3.4 lets anyone).
//   Range                 READ on [key, range_end)
//   Put                   WRITE on key; READ too with prev_kv; with a lease,
//                         WRITE on every key already attached to it
//   DeleteRange           WRITE on the range; READ too with prev_kv
//   Txn                   READ on every compare's range, and each op of both
//                         branches as above (nested txns too)
//   Compaction            root
//   LeaseGrant            nothing (as etcd)
//   LeaseRevoke           WRITE on every key attached to the lease
//   auth changes          root (Authenticate: nothing; its password was checked)
// Commands the node proposes itself (Command::system) need nothing.
#pragma once

#include "auth/auth_store.h"
#include "common/status.h"
#include "fsm/command.h"
#include "lease/lessor.h"
#include "mvcc/types.h"

namespace ckv::fsm {

// ok, or the first refusal (auth/types.h's texts). Always ok while auth is disabled.
Status authorize(const auth::AuthStore& auth, const lease::LeaseTable& leases, const Command& c);
Status authorize_range(const auth::AuthStore& auth, const auth::Caller& caller,
                       const mvcc::RangeRequest& r);
Status authorize_txn(const auth::AuthStore& auth, const auth::Caller& caller,
                     const mvcc::TxnRequest& t);

}  // namespace ckv::fsm
