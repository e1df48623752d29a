// etcd's JSON gateway bodies for KV (/v3/kv/*) and Watch (/v3/watch): protobuf's JSON mapping of rpc.proto's messages to and from mvcc structs.
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
#include <vector>

#include "common/status.h"
#include "etcd/cluster_view.h"
#include "mvcc/types.h"
#include "watch/watch_hub.h"

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

// /v3/watch: the body is a stream of WatchRequest objects (grpc-gateway
// reads them one after the other; whitespace between them is allowed).
struct WatchCall {
  enum class Kind { kNone, kCreate, kCancel, kProgress };
  Kind kind = Kind::kNone;  // kNone: a request with nothing set (etcd ignores it)
  watch::WatchSpec spec;    // kCreate
  int64_t watch_id = 0;     // kCreate (0: the stream picks), kCancel
};
// At most kMaxWatchCallsPerBody requests; kInvalid with the parser's text otherwise.
inline constexpr size_t kMaxWatchCallsPerBody = 1024;
Result<std::vector<WatchCall>> watch_calls_from_json(std::string_view body);
// One line of the streamed answer: {"result": WatchResponse}, as etcd's gateway writes it
// (the caller adds the newline).
std::string watch_result_json(const watch::Delivery& d, const etcd::Header& h);

// The gRPC code and text for s (kv_convert.h's to_grpc_status: THE mapping),
// so the gateway answers {"error","message","code"} as etcd's does.
struct GrpcError {
  int code = 0;
  std::string message;
};
GrpcError grpc_error_for(const Status& s);

}  // namespace ckv::http
