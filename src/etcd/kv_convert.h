// etcd's generated KV messages (etcdserverpb) <-> the MVCC store's structs (mvcc/types.h), and Status <-> grpc::Status.
//
// One assignment per field in both directions, so a request or response
// that crosses the wire (a client's call, a follower's forward to the
// leader, the JSON gateway) means the same thing on both sides. Nested txns
// are converted recursively; protobuf's parser already bounds their depth
// (100 levels) and check_txn_request bounds their size.
//
// Errors: to_grpc_status is THE place a Status becomes etcd's gRPC code and
// text (etcd 3.4's rpctypes); from_grpc_status is its inverse for answers
// relayed from the leader, so a forwarded error reaches the client as the
// leader said it.
//
// Includes the generated headers: only src/etcd/*.cc and the gateway's one
// .cc include this file (docs/design-notes.md, "etcd v3 API").
#pragma once

#include <grpcpp/support/status.h>

#include "common/status.h"
#include "etcd/cluster_view.h"
#include "etcd/etcdserver/etcdserverpb/rpc.pb.h"
#include "etcd/server_errors.h"
#include "mvcc/types.h"

namespace ckv::etcd {

namespace pb = ::etcdserverpb;

// Requests: client -> store.
mvcc::RangeRequest from_pb(const pb::RangeRequest& r);
mvcc::PutRequest from_pb(const pb::PutRequest& r);
mvcc::DeleteRangeRequest from_pb(const pb::DeleteRangeRequest& r);
mvcc::Compare from_pb(const pb::Compare& c);
mvcc::TxnRequest from_pb(const pb::TxnRequest& r);
mvcc::CompactionRequest from_pb(const pb::CompactionRequest& r);

// Requests: store -> wire (a follower forwarding to the leader).
void to_pb(const mvcc::RangeRequest& r, pb::RangeRequest* out);
void to_pb(const mvcc::PutRequest& r, pb::PutRequest* out);
void to_pb(const mvcc::DeleteRangeRequest& r, pb::DeleteRangeRequest* out);
void to_pb(const mvcc::Compare& c, pb::Compare* out);
void to_pb(const mvcc::TxnRequest& r, pb::TxnRequest* out);
void to_pb(const mvcc::CompactionRequest& r, pb::CompactionRequest* out);

// Responses: store -> wire. `header` fills the top-level ResponseHeader
// (cluster_id, member_id, raft_term; its revision is ignored: the response's
// own header.revision is the one sent). Responses nested in a txn carry only
// their revision, as etcd's do.
void to_pb(const mvcc::KeyValue& kv, ::mvccpb::KeyValue* out);
// A watch event (the Watch service and the /v3/watch gateway).
void to_pb(const mvcc::Event& e, ::mvccpb::Event* out);
void to_pb(const mvcc::RangeResponse& r, const Header* header, pb::RangeResponse* out);
void to_pb(const mvcc::PutResponse& r, const Header* header, pb::PutResponse* out);
void to_pb(const mvcc::DeleteRangeResponse& r, const Header* header, pb::DeleteRangeResponse* out);
void to_pb(const mvcc::TxnResponse& r, const Header* header, pb::TxnResponse* out);
void to_pb(const mvcc::CompactionResponse& r, const Header* header, pb::CompactionResponse* out);

// Responses: wire -> store (the leader's answer to a forwarded call). Only
// the revision of the header is kept; the follower answers with its own
// cluster_id, member_id and raft_term, as an etcd follower does.
mvcc::KeyValue from_pb(const ::mvccpb::KeyValue& kv);
mvcc::RangeResponse from_pb(const pb::RangeResponse& r);
mvcc::PutResponse from_pb(const pb::PutResponse& r);
mvcc::DeleteRangeResponse from_pb(const pb::DeleteRangeResponse& r);
mvcc::TxnResponse from_pb(const pb::TxnResponse& r);
mvcc::CompactionResponse from_pb(const pb::CompactionResponse& r);

// etcd's gRPC code and text for s (etcd 3.4 rpctypes/error.go), e.g.
//   kInvalid "mvcc: required revision has been compacted"
//        -> OUT_OF_RANGE "etcdserver: mvcc: required revision has been compacted"
//   kNotFound "etcdserver: requested lease not found" -> NOT_FOUND, same text
//   kUnavailable (no leader) -> UNAVAILABLE "etcdserver: no leader"
//   kNotLeader (leadership moved while proposing) -> UNAVAILABLE "etcdserver: leader changed"
//   kTimeout -> UNAVAILABLE "etcdserver: request timed out"
//   kNoSpace -> RESOURCE_EXHAUSTED "etcdserver: mvcc: database space exceeded"
// A message that already is one of etcd's texts keeps it. ok -> OK.
grpc::Status to_grpc_status(const Status& s);

// The Status that to_grpc_status maps back to g (so relaying a leader's
// error through a follower changes nothing). Errors that are not etcd's
// (the channel failed: no answer, deadline) mean the outcome of a write is
// unknown: kTimeout, which clients see as etcd's "request timed out,
// possibly due to connection lost".
Status from_grpc_status(const grpc::Status& g);

}  // namespace ckv::etcd
