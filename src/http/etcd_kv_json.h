// etcd's JSON gateway bodies for KV (/v3/kv/*): protobuf's JSON mapping of rpc.proto's messages to and from mvcc structs.
//
// As etcd 3.4's grpc-gateway reads and writes them: the original field names
// ("range_end", "prev_kv"), bytes as standard base64, 64-bit integers as
// strings on output (strings or numbers accepted on input), enums by name
// (or number), fields at their zero value omitted, unknown request fields
// ignored. A body that is not such JSON is kInvalid (InvalidArgument, 400);
// its text is protobuf's parser's, not Go's (docs/api.md).
//
// The generated code stays in etcd_kv_json.cc, the one file of src/http that
// compiles it: this header has none. Routing is etcd_gateway.h's.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "common/status.h"
#include "etcd/cluster_view.h"
#include "mvcc/types.h"

namespace ckv::http {

// Parsing fails with kInvalid and the parser's message; an empty body is the
// empty message, as etcd's gateway reads it.
// encoded_bytes (if set) gets the request's protobuf encoding size, what
// etcd's gRPC server would have received from its gateway.
Result<mvcc::RangeRequest> range_request_from_json(std::string_view body,
                                                   size_t* encoded_bytes = nullptr);
Result<mvcc::PutRequest> put_request_from_json(std::string_view body,
                                               size_t* encoded_bytes = nullptr);
Result<mvcc::DeleteRangeRequest> delete_range_request_from_json(std::string_view body,
                                                                size_t* encoded_bytes = nullptr);
Result<mvcc::TxnRequest> txn_request_from_json(std::string_view body,
                                               size_t* encoded_bytes = nullptr);
Result<mvcc::CompactionRequest> compaction_request_from_json(std::string_view body,
                                                             size_t* encoded_bytes = nullptr);

std::string to_json(const mvcc::RangeResponse& r, const etcd::Header& h);
std::string to_json(const mvcc::PutResponse& r, const etcd::Header& h);
std::string to_json(const mvcc::DeleteRangeResponse& r, const etcd::Header& h);
std::string to_json(const mvcc::TxnResponse& r, const etcd::Header& h);
std::string to_json(const mvcc::CompactionResponse& r, const etcd::Header& h);

// The gRPC code and text for s (kv_convert.h's to_grpc_status: THE mapping),
// so the gateway answers {"error","message","code"} as etcd's does.
struct GrpcError {
  int code = 0;
  std::string message;
};
GrpcError grpc_error_for(const Status& s);

}  // namespace ckv::http
