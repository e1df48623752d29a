// protobuf's JSON mapping of etcd's KV messages for the /v3/kv/* gateway (see etcd_kv_json.h).
#include "http/etcd_kv_json.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include <google/protobuf/message.h>

#include "etcd/kv_convert.h"
#include "http/api.h"
#include "http/gateway_pb_json.h"

namespace ckv::http {

namespace {

namespace pb = etcdserverpb;

// JSON nesting a KV request may use: protobuf's parser stops at 100 nested
// messages, and each nested txn costs 3 JSON levels per 2 message levels
// ({"success":[{"request_txn":{...). Deeper is refused before any parser runs.
constexpr int kMaxKvJsonDepth = 160;

Status parse(std::string_view body, google::protobuf::Message* out) {
  return parse_gateway_json(body, kMaxKvJsonDepth, out);
}

std::string print(const google::protobuf::Message& m) { return print_gateway_json(m); }

template <typename Mvcc, typename Pb>
Result<Mvcc> from_json(std::string_view body, size_t* encoded_bytes) {
  Pb msg;
  if (Status s = parse(body, &msg); !s.is_ok()) return s;
  if (encoded_bytes != nullptr) *encoded_bytes = msg.ByteSizeLong();
  return etcd::from_pb(msg);
}

template <typename Pb, typename Mvcc>
std::string json_of(const Mvcc& r, const etcd::Header& h) {
  Pb msg;
  etcd::to_pb(r, &h, &msg);
  return print(msg);
}

}  // namespace

Result<mvcc::RangeRequest> range_request_from_json(std::string_view body, size_t* encoded_bytes) {
  return from_json<mvcc::RangeRequest, pb::RangeRequest>(body, encoded_bytes);
}
Result<mvcc::PutRequest> put_request_from_json(std::string_view body, size_t* encoded_bytes) {
  return from_json<mvcc::PutRequest, pb::PutRequest>(body, encoded_bytes);
}
Result<mvcc::DeleteRangeRequest> delete_range_request_from_json(std::string_view body, size_t* encoded_bytes) {
  return from_json<mvcc::DeleteRangeRequest, pb::DeleteRangeRequest>(body, encoded_bytes);
}
Result<mvcc::TxnRequest> txn_request_from_json(std::string_view body, size_t* encoded_bytes) {
  return from_json<mvcc::TxnRequest, pb::TxnRequest>(body, encoded_bytes);
}
Result<mvcc::CompactionRequest> compaction_request_from_json(std::string_view body, size_t* encoded_bytes) {
  return from_json<mvcc::CompactionRequest, pb::CompactionRequest>(body, encoded_bytes);
}

std::string to_json(const mvcc::RangeResponse& r, const etcd::Header& h) {
  return json_of<pb::RangeResponse>(r, h);
}
std::string to_json(const mvcc::PutResponse& r, const etcd::Header& h) {
  return json_of<pb::PutResponse>(r, h);
}
std::string to_json(const mvcc::DeleteRangeResponse& r, const etcd::Header& h) {
  return json_of<pb::DeleteRangeResponse>(r, h);
}
std::string to_json(const mvcc::TxnResponse& r, const etcd::Header& h) {
  return json_of<pb::TxnResponse>(r, h);
}
std::string to_json(const mvcc::CompactionResponse& r, const etcd::Header& h) {
  return json_of<pb::CompactionResponse>(r, h);
}

Result<std::vector<WatchCall>> watch_calls_from_json(std::string_view body) {
  std::vector<WatchCall> calls;
  size_t i = 0;
  while (true) {
    while (i < body.size() && std::string_view(" \t\r\n").find(body[i]) != std::string_view::npos) ++i;
    if (i == body.size()) break;
    if (calls.size() >= kMaxWatchCallsPerBody) {
      return Status(StatusCode::kInvalid, "more than " + std::to_string(kMaxWatchCallsPerBody) +
                                              " watch requests in one body");
    }
    // The next top-level value: up to its matching brace, outside strings.
    size_t end = i;
    int depth = 0;
    bool in_string = false;
    for (; end < body.size(); ++end) {
      const char c = body[end];
      if (in_string) {
        if (c == '\\') {
          ++end;
        } else if (c == '"') {
          in_string = false;
        }
      } else if (c == '"') {
        in_string = true;
      } else if (c == '{' || c == '[') {
        ++depth;
      } else if (c == '}' || c == ']') {
        if (--depth == 0) break;
      }
      if (depth == 0) break;  // a scalar: parse() refuses it
    }
    const std::string_view one = body.substr(i, std::min(end + 1, body.size()) - i);
    i = std::min(end + 1, body.size());
    pb::WatchRequest req;
    if (Status st = parse(one, &req); !st.is_ok()) return st;
    WatchCall call;
    switch (req.request_union_case()) {
      case pb::WatchRequest::kCreateRequest: {
        const pb::WatchCreateRequest& c = req.create_request();
        call.kind = WatchCall::Kind::kCreate;
        call.spec.key = c.key();
        call.spec.range_end = c.range_end();
        call.spec.start_revision = c.start_revision();
        call.spec.prev_kv = c.prev_kv();
        call.spec.progress_notify = c.progress_notify();
        call.spec.fragment = c.fragment();
        for (int f : c.filters()) {
          if (f == pb::WatchCreateRequest::NOPUT) call.spec.no_put = true;
          if (f == pb::WatchCreateRequest::NODELETE) call.spec.no_delete = true;
        }
        call.watch_id = c.watch_id();
        break;
      }
      case pb::WatchRequest::kCancelRequest:
        call.kind = WatchCall::Kind::kCancel;
        call.watch_id = req.cancel_request().watch_id();
        break;
      case pb::WatchRequest::kProgressRequest:
        call.kind = WatchCall::Kind::kProgress;
        break;
      default:
        break;
    }
    calls.push_back(std::move(call));
  }
  return calls;
}

std::string watch_result_json(const watch::Delivery& d, const etcd::Header& h) {
  pb::WatchResponse r;
  pb::ResponseHeader* hd = r.mutable_header();
  hd->set_cluster_id(h.cluster_id);
  hd->set_member_id(h.member_id);
  hd->set_revision(d.revision);
  hd->set_raft_term(h.raft_term);
  r.set_watch_id(d.watch_id);
  r.set_created(d.created);
  r.set_canceled(d.canceled);
  r.set_compact_revision(d.compact_revision);
  r.set_cancel_reason(d.cancel_reason);
  for (const mvcc::Event& e : d.events) etcd::to_pb(e, r.add_events());
  return "{\"result\":" + print(r) + "}";
}

GrpcError grpc_error_for(const Status& s) {
  const grpc::Status g = etcd::to_grpc_status(s);
  return GrpcError{static_cast<int>(g.error_code()), g.error_message()};
}

}  // namespace ckv::http
