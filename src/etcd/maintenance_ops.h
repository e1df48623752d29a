// etcd's Maintenance.MoveLeader in etcd's words: its error texts and gRPC codes for Node::transfer_leadership's failures.
#pragma once

#include "common/status.h"
#include "etcd/member_ops.h"

namespace ckv::etcd {

// etcd 3.4's texts (rpctypes): MoveLeader on a member that does not lead, to
// a target that is not a voter (unknown or a learner), and one that did not
// move within the call's deadline.
inline constexpr const char* kErrNotLeader = "etcdserver: not leader";
inline constexpr const char* kErrBadLeaderTransferee = "etcdserver: bad leader transferee";
inline constexpr const char* kErrTimeoutLeaderTransfer =
    "etcdserver: request timed out, leader transfer took too long";
// The longest a MoveLeader waits for the target to lead (etcdctl sets no
// deadline; the core gives up a transfer after one election timeout anyway).
inline constexpr int kMoveLeaderTimeoutMs = 10000;

inline EtcdError move_leader_error(const Status& s) {
  switch (s.code()) {
    case StatusCode::kOk: return EtcdError{};
    case StatusCode::kNotLeader: return EtcdError{grpc_code::kFailedPrecondition, kErrNotLeader};
    case StatusCode::kInvalid: return EtcdError{grpc_code::kFailedPrecondition, kErrBadLeaderTransferee};
    case StatusCode::kTimeout: return EtcdError{grpc_code::kDeadlineExceeded, kErrTimeoutLeaderTransfer};
    default: return EtcdError{grpc_code::kUnavailable, "etcdserver: " + s.message()};
  }
}

}  // namespace ckv::etcd
