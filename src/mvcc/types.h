// The etcd v3 KV data model as plain structs, one field per field of etcd 3.4's rpc.proto.
#pragma once

// Field names are etcd's so that the later gRPC/JSON mapping is one
// assignment per field. Oneofs become std::variant (RequestOp, ResponseOp)
// or, for Compare's target_union, one field per alternative of which only the
// one named by `target` is read (as etcd reads only the matching alternative).
// Response headers carry only the revision here; cluster_id, member_id and
// raft_term are the node's to fill in.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace ckv::mvcc {

// mvccpb.KeyValue.
struct KeyValue {
  std::string key;
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
  int64_t version = 0;
  std::string value;
  int64_t lease = 0;

  bool operator==(const KeyValue&) const = default;
};

// mvccpb.Event: one change made by one write, as watchers and the lessor see
// it. A delete's kv carries only key and mod_revision (the tombstone's
// revision), as etcd's; prev_kv is the key's live version just before the
// change (absent if the key did not exist).
struct Event {
  enum class Type : int32_t { kPut = 0, kDelete = 1 };
  Type type = Type::kPut;
  KeyValue kv;
  std::optional<KeyValue> prev_kv;
  bool operator==(const Event&) const = default;
};

struct ResponseHeader {
  int64_t revision = 0;
  bool operator==(const ResponseHeader&) const = default;
};

// RangeRequest.SortOrder / SortTarget, with etcd's numeric values.
enum class SortOrder : int32_t { kNone = 0, kAscend = 1, kDescend = 2 };
enum class SortTarget : int32_t { kKey = 0, kVersion = 1, kCreate = 2, kMod = 3, kValue = 4 };

struct RangeRequest {
  std::string key;
  // Empty: the single key `key`. "\0": every key >= key. Otherwise [key, range_end).
  std::string range_end;
  int64_t limit = 0;     // 0: no limit
  int64_t revision = 0;  // <= 0: the current revision
  SortOrder sort_order = SortOrder::kNone;
  SortTarget sort_target = SortTarget::kKey;
  bool serializable = false;  // a read-path choice of the node; the store ignores it
  bool keys_only = false;
  bool count_only = false;
  int64_t min_mod_revision = 0;  // 0: no bound (all four)
  int64_t max_mod_revision = 0;
  int64_t min_create_revision = 0;
  int64_t max_create_revision = 0;
};

struct RangeResponse {
  ResponseHeader header;
  std::vector<KeyValue> kvs;
  bool more = false;
  int64_t count = 0;
  bool operator==(const RangeResponse&) const = default;
};

struct PutRequest {
  std::string key;
  std::string value;
  int64_t lease = 0;
  bool prev_kv = false;
  bool ignore_value = false;
  bool ignore_lease = false;
};

struct PutResponse {
  ResponseHeader header;
  std::optional<KeyValue> prev_kv;
  bool operator==(const PutResponse&) const = default;
};

struct DeleteRangeRequest {
  std::string key;
  std::string range_end;  // as RangeRequest.range_end
  bool prev_kv = false;
};

struct DeleteRangeResponse {
  ResponseHeader header;
  int64_t deleted = 0;
  std::vector<KeyValue> prev_kvs;
  bool operator==(const DeleteRangeResponse&) const = default;
};

struct Compare {
  enum class CompareResult : int32_t { kEqual = 0, kGreater = 1, kLess = 2, kNotEqual = 3 };
  enum class CompareTarget : int32_t {
    kVersion = 0,
    kCreate = 1,
    kMod = 2,
    kValue = 3,
    kLease = 4
  };

  CompareResult result = CompareResult::kEqual;
  CompareTarget target = CompareTarget::kVersion;
  std::string key;
  // target_union: only the alternative matching `target` is read.
  int64_t version = 0;
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
  std::string value;
  int64_t lease = 0;
  // As RangeRequest.range_end: the compare must hold for every key in the range.
  std::string range_end;
};

struct TxnRequest;
struct TxnResponse;

// RequestOp's oneof `request`. monostate is an op with no request set, which
// etcd rejects ("etcdserver: key not found"). A nested txn is shared because
// requests are immutable once built.
struct RequestOp {
  std::variant<std::monostate, RangeRequest, PutRequest, DeleteRangeRequest,
               std::shared_ptr<const TxnRequest>>
      request;
};

struct TxnRequest {
  std::vector<Compare> compare;
  std::vector<RequestOp> success;
  std::vector<RequestOp> failure;
};

struct ResponseOp {
  std::variant<RangeResponse, PutResponse, DeleteRangeResponse, std::shared_ptr<TxnResponse>>
      response;
  bool operator==(const ResponseOp& o) const;
};

struct TxnResponse {
  ResponseHeader header;
  bool succeeded = false;
  std::vector<ResponseOp> responses;
  bool operator==(const TxnResponse&) const = default;
};

inline bool ResponseOp::operator==(const ResponseOp& o) const {
  if (response.index() != o.response.index()) return false;
  if (auto* t = std::get_if<std::shared_ptr<TxnResponse>>(&response)) {
    const auto& u = std::get<std::shared_ptr<TxnResponse>>(o.response);
    return (*t == nullptr || u == nullptr) ? *t == u : **t == *u;
  }
  return response == o.response;
}

struct CompactionRequest {
  int64_t revision = 0;
  bool physical = false;  // the store compacts synchronously, so every compaction is physical
};

struct CompactionResponse {
  ResponseHeader header;
};

// Builders for RequestOp, so tests and callers read like etcd's clientv3.OpXxx.
inline RequestOp op_range(RangeRequest r) { return RequestOp{std::move(r)}; }
inline RequestOp op_put(PutRequest r) { return RequestOp{std::move(r)}; }
inline RequestOp op_delete(DeleteRangeRequest r) { return RequestOp{std::move(r)}; }
inline RequestOp op_txn(TxnRequest r) {
  return RequestOp{std::make_shared<const TxnRequest>(std::move(r))};
}

}  // namespace ckv::mvcc
