// Field-by-field conversion between etcdserverpb and mvcc structs, and etcd's error table (see kv_convert.h).
#include "etcd/kv_convert.h"

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "etcd/header_convert.h"
#include "auth/jwt_tokens.h"
#include "auth/types.h"
#include "lease/types.h"
#include "mvcc/errors.h"
#include "node/forward_waiters.h"

namespace ckv::etcd {

namespace {

// ---- errors ----------------------------------------------------------------

struct EtcdError {
  const char* ours;  // the text our modules put in a Status (mvcc/errors.h)
  StatusCode code;
  grpc::StatusCode grpc_code;
  const char* etcd;  // what etcd's clients see (rpctypes/error.go)
};

// Errors whose text clients match (clientv3 maps them back to typed errors
// by text: rpctypes.Error). The mvcc store's two revision errors lack
// etcd's "etcdserver: " prefix, which etcd's gRPC layer adds.
constexpr EtcdError kEtcdErrors[] = {
    {mvcc::kErrCompacted, StatusCode::kInvalid, grpc::StatusCode::OUT_OF_RANGE,
     "etcdserver: mvcc: required revision has been compacted"},
    {mvcc::kErrFutureRev, StatusCode::kInvalid, grpc::StatusCode::OUT_OF_RANGE,
     "etcdserver: mvcc: required revision is a future revision"},
    {mvcc::kErrKeyNotFound, StatusCode::kInvalid, grpc::StatusCode::INVALID_ARGUMENT,
     mvcc::kErrKeyNotFound},
    {mvcc::kErrValueProvided, StatusCode::kInvalid, grpc::StatusCode::INVALID_ARGUMENT,
     mvcc::kErrValueProvided},
    {mvcc::kErrLeaseProvided, StatusCode::kInvalid, grpc::StatusCode::INVALID_ARGUMENT,
     mvcc::kErrLeaseProvided},
    {mvcc::kErrEmptyKey, StatusCode::kInvalid, grpc::StatusCode::INVALID_ARGUMENT,
     mvcc::kErrEmptyKey},
    {mvcc::kErrTooManyOps, StatusCode::kInvalid, grpc::StatusCode::INVALID_ARGUMENT,
     mvcc::kErrTooManyOps},
    {mvcc::kErrDuplicateKey, StatusCode::kInvalid, grpc::StatusCode::INVALID_ARGUMENT,
     mvcc::kErrDuplicateKey},
    {mvcc::kErrInvalidSortOption, StatusCode::kInvalid, grpc::StatusCode::INVALID_ARGUMENT,
     mvcc::kErrInvalidSortOption},
    {mvcc::kErrLeaseNotFound, StatusCode::kNotFound, grpc::StatusCode::NOT_FOUND,
     mvcc::kErrLeaseNotFound},
    {lease::kErrLeaseExists, StatusCode::kConflict, grpc::StatusCode::FAILED_PRECONDITION,
     lease::kErrLeaseExists},
    {lease::kErrLeaseTtlTooLarge, StatusCode::kInvalid, grpc::StatusCode::OUT_OF_RANGE,
     lease::kErrLeaseTtlTooLarge},
    {kErrNoLeader, StatusCode::kUnavailable, grpc::StatusCode::UNAVAILABLE, kErrNoLeader},
    {kErrLeaderChanged, StatusCode::kNotLeader, grpc::StatusCode::UNAVAILABLE, kErrLeaderChanged},
    {kErrTimeout, StatusCode::kTimeout, grpc::StatusCode::UNAVAILABLE, kErrTimeout},
    {kErrTimeoutConnectionLost, StatusCode::kTimeout, grpc::StatusCode::UNAVAILABLE,
     kErrTimeoutConnectionLost},
    {kErrNoSpace, StatusCode::kNoSpace, grpc::StatusCode::RESOURCE_EXHAUSTED, kErrNoSpace},
    {kErrRequestTooLarge, StatusCode::kTooLarge, grpc::StatusCode::INVALID_ARGUMENT,
     kErrRequestTooLarge},
    {kErrStopped, StatusCode::kUnavailable, grpc::StatusCode::UNAVAILABLE, kErrStopped},
    {node::kErrTooManyForwardedWrites, StatusCode::kUnavailable, grpc::StatusCode::RESOURCE_EXHAUSTED,
     kErrTooManyRequests},
    // etcd answers an Authenticate on a member without priv-key with its raw text, code Unknown.
    {auth::kErrVerifyOnly, StatusCode::kIo, grpc::StatusCode::UNKNOWN, auth::kErrVerifyOnly},
    // The auth store's (auth/types.h); the HTTP status follows our code:
    // 401 for missing or bad credentials, 403 for a refusal, 409 otherwise.
    {auth::kErrRootUserNotExist, StatusCode::kConflict, grpc::StatusCode::FAILED_PRECONDITION,
     auth::kErrRootUserNotExist},
    {auth::kErrRootRoleNotExist, StatusCode::kConflict, grpc::StatusCode::FAILED_PRECONDITION,
     auth::kErrRootRoleNotExist},
    {auth::kErrUserAlreadyExist, StatusCode::kConflict, grpc::StatusCode::FAILED_PRECONDITION,
     auth::kErrUserAlreadyExist},
    {auth::kErrUserEmpty, StatusCode::kUnauthenticated, grpc::StatusCode::INVALID_ARGUMENT,
     auth::kErrUserEmpty},
    {auth::kErrUserNotFound, StatusCode::kConflict, grpc::StatusCode::FAILED_PRECONDITION,
     auth::kErrUserNotFound},
    {auth::kErrRoleAlreadyExist, StatusCode::kConflict, grpc::StatusCode::FAILED_PRECONDITION,
     auth::kErrRoleAlreadyExist},
    {auth::kErrRoleNotFound, StatusCode::kConflict, grpc::StatusCode::FAILED_PRECONDITION,
     auth::kErrRoleNotFound},
    {auth::kErrRoleEmpty, StatusCode::kInvalid, grpc::StatusCode::INVALID_ARGUMENT,
     auth::kErrRoleEmpty},
    {auth::kErrAuthFailed, StatusCode::kUnauthenticated, grpc::StatusCode::INVALID_ARGUMENT,
     auth::kErrAuthFailed},
    {auth::kErrPermissionDenied, StatusCode::kPermissionDenied, grpc::StatusCode::PERMISSION_DENIED,
     auth::kErrPermissionDenied},
    {auth::kErrRoleNotGranted, StatusCode::kConflict, grpc::StatusCode::FAILED_PRECONDITION,
     auth::kErrRoleNotGranted},
    {auth::kErrPermissionNotGranted, StatusCode::kConflict, grpc::StatusCode::FAILED_PRECONDITION,
     auth::kErrPermissionNotGranted},
    {auth::kErrAuthNotEnabled, StatusCode::kConflict, grpc::StatusCode::FAILED_PRECONDITION,
     auth::kErrAuthNotEnabled},
    {auth::kErrInvalidAuthToken, StatusCode::kUnauthenticated, grpc::StatusCode::UNAUTHENTICATED,
     auth::kErrInvalidAuthToken},
    {auth::kErrInvalidAuthMgmt, StatusCode::kInvalid, grpc::StatusCode::INVALID_ARGUMENT,
     auth::kErrInvalidAuthMgmt},
    {auth::kErrAuthOldRevision, StatusCode::kConflict, grpc::StatusCode::INVALID_ARGUMENT,
     auth::kErrAuthOldRevision},
};

constexpr std::string_view kEtcdPrefix = "etcdserver: ";

bool is_etcd_text(const std::string& m) { return m.starts_with(kEtcdPrefix); }

// ---- requests --------------------------------------------------------------

mvcc::RequestOp request_op_from_pb(const pb::RequestOp& op) {
  switch (op.request_case()) {
    case pb::RequestOp::kRequestRange:
      return mvcc::op_range(from_pb(op.request_range()));
    case pb::RequestOp::kRequestPut:
      return mvcc::op_put(from_pb(op.request_put()));
    case pb::RequestOp::kRequestDeleteRange:
      return mvcc::op_delete(from_pb(op.request_delete_range()));
    case pb::RequestOp::kRequestTxn:
      return mvcc::op_txn(from_pb(op.request_txn()));
    case pb::RequestOp::REQUEST_NOT_SET:
      break;
  }
  return mvcc::RequestOp{};  // no request: check_txn_request answers etcd's "key not found"
}

void request_op_to_pb(const mvcc::RequestOp& op, pb::RequestOp* out) {
  if (auto* r = std::get_if<mvcc::RangeRequest>(&op.request)) {
    to_pb(*r, out->mutable_request_range());
  } else if (auto* p = std::get_if<mvcc::PutRequest>(&op.request)) {
    to_pb(*p, out->mutable_request_put());
  } else if (auto* d = std::get_if<mvcc::DeleteRangeRequest>(&op.request)) {
    to_pb(*d, out->mutable_request_delete_range());
  } else if (auto* t = std::get_if<std::shared_ptr<const mvcc::TxnRequest>>(&op.request)) {
    if (*t) to_pb(**t, out->mutable_request_txn());
  }
  // monostate: an op with no request stays one.
}

// ---- responses -------------------------------------------------------------

void fill_header(const Header* h, int64_t revision, pb::ResponseHeader* out) {
  if (h != nullptr) fill_response_header(*h, out);
  out->set_revision(revision);  // the response's own revision, whatever the header says
}

void response_op_to_pb(const mvcc::ResponseOp& op, pb::ResponseOp* out) {
  if (auto* r = std::get_if<mvcc::RangeResponse>(&op.response)) {
    to_pb(*r, nullptr, out->mutable_response_range());
  } else if (auto* p = std::get_if<mvcc::PutResponse>(&op.response)) {
    to_pb(*p, nullptr, out->mutable_response_put());
  } else if (auto* d = std::get_if<mvcc::DeleteRangeResponse>(&op.response)) {
    to_pb(*d, nullptr, out->mutable_response_delete_range());
  } else if (auto* t = std::get_if<std::shared_ptr<mvcc::TxnResponse>>(&op.response)) {
    if (*t) to_pb(**t, nullptr, out->mutable_response_txn());
  }
}

mvcc::ResponseOp response_op_from_pb(const pb::ResponseOp& op) {
  switch (op.response_case()) {
    case pb::ResponseOp::kResponseRange:
      return mvcc::ResponseOp{from_pb(op.response_range())};
    case pb::ResponseOp::kResponsePut:
      return mvcc::ResponseOp{from_pb(op.response_put())};
    case pb::ResponseOp::kResponseDeleteRange:
      return mvcc::ResponseOp{from_pb(op.response_delete_range())};
    case pb::ResponseOp::kResponseTxn:
      return mvcc::ResponseOp{std::make_shared<mvcc::TxnResponse>(from_pb(op.response_txn()))};
    case pb::ResponseOp::RESPONSE_NOT_SET:
      break;
  }
  // A leader never sends an empty op; a range response is the harmless reading of one.
  return mvcc::ResponseOp{mvcc::RangeResponse{}};
}

}  // namespace

// ---- requests --------------------------------------------------------------

mvcc::RangeRequest from_pb(const pb::RangeRequest& r) {
  mvcc::RangeRequest out;
  out.key = r.key();
  out.range_end = r.range_end();
  out.limit = r.limit();
  out.revision = r.revision();
  // Values outside the enums pass through: the store answers them as etcd does.
  out.sort_order = static_cast<mvcc::SortOrder>(r.sort_order());
  out.sort_target = static_cast<mvcc::SortTarget>(r.sort_target());
  out.serializable = r.serializable();
  out.keys_only = r.keys_only();
  out.count_only = r.count_only();
  out.min_mod_revision = r.min_mod_revision();
  out.max_mod_revision = r.max_mod_revision();
  out.min_create_revision = r.min_create_revision();
  out.max_create_revision = r.max_create_revision();
  return out;
}

mvcc::PutRequest from_pb(const pb::PutRequest& r) {
  mvcc::PutRequest out;
  out.key = r.key();
  out.value = r.value();
  out.lease = r.lease();
  out.prev_kv = r.prev_kv();
  out.ignore_value = r.ignore_value();
  out.ignore_lease = r.ignore_lease();
  return out;
}

mvcc::DeleteRangeRequest from_pb(const pb::DeleteRangeRequest& r) {
  mvcc::DeleteRangeRequest out;
  out.key = r.key();
  out.range_end = r.range_end();
  out.prev_kv = r.prev_kv();
  return out;
}

mvcc::Compare from_pb(const pb::Compare& c) {
  mvcc::Compare out;
  out.result = static_cast<mvcc::Compare::CompareResult>(c.result());
  out.target = static_cast<mvcc::Compare::CompareTarget>(c.target());
  out.key = c.key();
  out.range_end = c.range_end();
  // Whichever alternative is set lands in its own field; the store reads
  // only the one `target` names, so a mismatched union compares against
  // zero, as in etcd (its type assertion fails and it uses the zero value).
  switch (c.target_union_case()) {
    case pb::Compare::kVersion:
      out.version = c.version();
      break;
    case pb::Compare::kCreateRevision:
      out.create_revision = c.create_revision();
      break;
    case pb::Compare::kModRevision:
      out.mod_revision = c.mod_revision();
      break;
    case pb::Compare::kValue:
      out.value = c.value();
      break;
    case pb::Compare::kLease:
      out.lease = c.lease();
      break;
    case pb::Compare::TARGET_UNION_NOT_SET:
      break;
  }
  return out;
}

mvcc::TxnRequest from_pb(const pb::TxnRequest& r) {
  mvcc::TxnRequest out;
  out.compare.reserve(r.compare_size());
  for (const pb::Compare& c : r.compare()) out.compare.push_back(from_pb(c));
  out.success.reserve(r.success_size());
  for (const pb::RequestOp& op : r.success()) out.success.push_back(request_op_from_pb(op));
  out.failure.reserve(r.failure_size());
  for (const pb::RequestOp& op : r.failure()) out.failure.push_back(request_op_from_pb(op));
  return out;
}

mvcc::CompactionRequest from_pb(const pb::CompactionRequest& r) {
  return mvcc::CompactionRequest{r.revision(), r.physical()};
}

void to_pb(const mvcc::RangeRequest& r, pb::RangeRequest* out) {
  out->set_key(r.key);
  out->set_range_end(r.range_end);
  out->set_limit(r.limit);
  out->set_revision(r.revision);
  out->set_sort_order(static_cast<pb::RangeRequest_SortOrder>(r.sort_order));
  out->set_sort_target(static_cast<pb::RangeRequest_SortTarget>(r.sort_target));
  out->set_serializable(r.serializable);
  out->set_keys_only(r.keys_only);
  out->set_count_only(r.count_only);
  out->set_min_mod_revision(r.min_mod_revision);
  out->set_max_mod_revision(r.max_mod_revision);
  out->set_min_create_revision(r.min_create_revision);
  out->set_max_create_revision(r.max_create_revision);
}

void to_pb(const mvcc::PutRequest& r, pb::PutRequest* out) {
  out->set_key(r.key);
  out->set_value(r.value);
  out->set_lease(r.lease);
  out->set_prev_kv(r.prev_kv);
  out->set_ignore_value(r.ignore_value);
  out->set_ignore_lease(r.ignore_lease);
}

void to_pb(const mvcc::DeleteRangeRequest& r, pb::DeleteRangeRequest* out) {
  out->set_key(r.key);
  out->set_range_end(r.range_end);
  out->set_prev_kv(r.prev_kv);
}

void to_pb(const mvcc::Compare& c, pb::Compare* out) {
  out->set_result(static_cast<pb::Compare_CompareResult>(c.result));
  out->set_target(static_cast<pb::Compare_CompareTarget>(c.target));
  out->set_key(c.key);
  out->set_range_end(c.range_end);
  // The alternative the target reads; for a target outside the enum none
  // (the store reads no field for it either).
  switch (c.target) {
    case mvcc::Compare::CompareTarget::kVersion:
      out->set_version(c.version);
      break;
    case mvcc::Compare::CompareTarget::kCreate:
      out->set_create_revision(c.create_revision);
      break;
    case mvcc::Compare::CompareTarget::kMod:
      out->set_mod_revision(c.mod_revision);
      break;
    case mvcc::Compare::CompareTarget::kValue:
      out->set_value(c.value);
      break;
    case mvcc::Compare::CompareTarget::kLease:
      out->set_lease(c.lease);
      break;
  }
}

void to_pb(const mvcc::TxnRequest& r, pb::TxnRequest* out) {
  for (const mvcc::Compare& c : r.compare) to_pb(c, out->add_compare());
  for (const mvcc::RequestOp& op : r.success) request_op_to_pb(op, out->add_success());
  for (const mvcc::RequestOp& op : r.failure) request_op_to_pb(op, out->add_failure());
}

void to_pb(const mvcc::CompactionRequest& r, pb::CompactionRequest* out) {
  out->set_revision(r.revision);
  out->set_physical(r.physical);
}

// ---- responses -------------------------------------------------------------

void to_pb(const mvcc::Event& e, ::mvccpb::Event* out) {
  out->set_type(e.type == mvcc::Event::Type::kPut ? ::mvccpb::Event::PUT : ::mvccpb::Event::DELETE);
  to_pb(e.kv, out->mutable_kv());
  if (e.prev_kv) to_pb(*e.prev_kv, out->mutable_prev_kv());
}

void to_pb(const mvcc::KeyValue& kv, ::mvccpb::KeyValue* out) {
  out->set_key(kv.key);
  out->set_create_revision(kv.create_revision);
  out->set_mod_revision(kv.mod_revision);
  out->set_version(kv.version);
  out->set_value(kv.value);
  out->set_lease(kv.lease);
}

void to_pb(const mvcc::RangeResponse& r, const Header* header, pb::RangeResponse* out) {
  fill_header(header, r.header.revision, out->mutable_header());
  for (const mvcc::KeyValue& kv : r.kvs) to_pb(kv, out->add_kvs());
  out->set_more(r.more);
  out->set_count(r.count);
}

void to_pb(const mvcc::PutResponse& r, const Header* header, pb::PutResponse* out) {
  fill_header(header, r.header.revision, out->mutable_header());
  if (r.prev_kv) to_pb(*r.prev_kv, out->mutable_prev_kv());
}

void to_pb(const mvcc::DeleteRangeResponse& r, const Header* header,
           pb::DeleteRangeResponse* out) {
  fill_header(header, r.header.revision, out->mutable_header());
  out->set_deleted(r.deleted);
  for (const mvcc::KeyValue& kv : r.prev_kvs) to_pb(kv, out->add_prev_kvs());
}

void to_pb(const mvcc::TxnResponse& r, const Header* header, pb::TxnResponse* out) {
  fill_header(header, r.header.revision, out->mutable_header());
  out->set_succeeded(r.succeeded);
  for (const mvcc::ResponseOp& op : r.responses) response_op_to_pb(op, out->add_responses());
}

void to_pb(const mvcc::CompactionResponse& r, const Header* header,
           pb::CompactionResponse* out) {
  fill_header(header, r.header.revision, out->mutable_header());
}

mvcc::KeyValue from_pb(const ::mvccpb::KeyValue& kv) {
  mvcc::KeyValue out;
  out.key = kv.key();
  out.create_revision = kv.create_revision();
  out.mod_revision = kv.mod_revision();
  out.version = kv.version();
  out.value = kv.value();
  out.lease = kv.lease();
  return out;
}

mvcc::RangeResponse from_pb(const pb::RangeResponse& r) {
  mvcc::RangeResponse out;
  out.header.revision = r.header().revision();
  out.kvs.reserve(r.kvs_size());
  for (const ::mvccpb::KeyValue& kv : r.kvs()) out.kvs.push_back(from_pb(kv));
  out.more = r.more();
  out.count = r.count();
  return out;
}

mvcc::PutResponse from_pb(const pb::PutResponse& r) {
  mvcc::PutResponse out;
  out.header.revision = r.header().revision();
  if (r.has_prev_kv()) out.prev_kv = from_pb(r.prev_kv());
  return out;
}

mvcc::DeleteRangeResponse from_pb(const pb::DeleteRangeResponse& r) {
  mvcc::DeleteRangeResponse out;
  out.header.revision = r.header().revision();
  out.deleted = r.deleted();
  out.prev_kvs.reserve(r.prev_kvs_size());
  for (const ::mvccpb::KeyValue& kv : r.prev_kvs()) out.prev_kvs.push_back(from_pb(kv));
  return out;
}

mvcc::TxnResponse from_pb(const pb::TxnResponse& r) {
  mvcc::TxnResponse out;
  out.header.revision = r.header().revision();
  out.succeeded = r.succeeded();
  out.responses.reserve(r.responses_size());
  for (const pb::ResponseOp& op : r.responses()) out.responses.push_back(response_op_from_pb(op));
  return out;
}

mvcc::CompactionResponse from_pb(const pb::CompactionResponse& r) {
  mvcc::CompactionResponse out;
  out.header.revision = r.header().revision();
  return out;
}

// ---- errors ----------------------------------------------------------------

grpc::Status to_grpc_status(const Status& s) {
  if (s.is_ok()) return grpc::Status::OK;
  const std::string& m = s.message();
  for (const EtcdError& e : kEtcdErrors) {
    if (m == e.ours || m == e.etcd) return grpc::Status(e.grpc_code, e.etcd);
  }
  switch (s.code()) {
    case StatusCode::kOk:
      break;
    case StatusCode::kInvalid:
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, m);
    case StatusCode::kNotFound:
      return grpc::Status(grpc::StatusCode::NOT_FOUND, m);
    case StatusCode::kNotLeader:
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, kErrLeaderChanged);
    case StatusCode::kUnavailable:
      // The node's own words ("no quorum", "stopping") are not etcd's; a
      // client retries on the code and shows the text.
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, is_etcd_text(m) ? m : kErrNoLeader);
    case StatusCode::kTimeout:
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, is_etcd_text(m) ? m : kErrTimeout);
    case StatusCode::kConflict:
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, m);
    case StatusCode::kTooLarge:
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, kErrRequestTooLarge);
    case StatusCode::kCorrupt:
      return grpc::Status(grpc::StatusCode::DATA_LOSS, m);
    case StatusCode::kIo:
      return grpc::Status(grpc::StatusCode::INTERNAL, m);
    case StatusCode::kNoSpace:
      return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, kErrNoSpace);
    case StatusCode::kUnauthenticated:
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, m);
    case StatusCode::kPermissionDenied:
      return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, m);
  }
  return grpc::Status(grpc::StatusCode::UNKNOWN, m);
}

Status from_grpc_status(const grpc::Status& g) {
  if (g.ok()) return Status::ok();
  const std::string& m = g.error_message();
  for (const EtcdError& e : kEtcdErrors) {
    if (g.error_code() == e.grpc_code && m == e.etcd) return Status(e.code, e.ours);
  }
  switch (g.error_code()) {
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::OUT_OF_RANGE:
      return Status(StatusCode::kInvalid, m);
    case grpc::StatusCode::NOT_FOUND:
      return Status(StatusCode::kNotFound, m);
    case grpc::StatusCode::FAILED_PRECONDITION:
      return Status(StatusCode::kConflict, m);
    case grpc::StatusCode::DATA_LOSS:
      return Status(StatusCode::kCorrupt, m);
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      // grpc's own refusal of an oversized message: nothing was applied.
      return Status(StatusCode::kTooLarge, m);
    case grpc::StatusCode::UNAVAILABLE:
      if (is_etcd_text(m)) {
        return Status(m.starts_with(kErrTimeout) ? StatusCode::kTimeout : StatusCode::kUnavailable,
                      m);
      }
      break;  // the channel failed: below
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return Status(StatusCode::kTimeout, kErrTimeout);
    default:
      if (is_etcd_text(m)) return Status(StatusCode::kIo, m);
      break;
  }
  // No answer from the leader (connection refused or lost, cancelled): a
  // write may or may not have been applied.
  return Status(StatusCode::kTimeout, kErrTimeoutConnectionLost);
}

}  // namespace ckv::etcd
