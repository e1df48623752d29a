// Maintenance messages <-> maintenance_service.h's answers (see maintenance_convert.h).
#include "etcd/maintenance_convert.h"

#include "etcd/header_convert.h"
#include "etcd/kv_convert.h"
#include "etcd/lease_convert.h"

namespace ckv::etcd {

namespace pb = etcdserverpb;

EtcdError maintenance_error(const Status& s) {
  if (s.code() == StatusCode::kUnauthenticated || s.code() == StatusCode::kPermissionDenied) {
    constexpr std::string_view kServerPrefix = "etcdserver: ";
    std::string text = s.message();
    if (text.starts_with(kServerPrefix)) text = "auth: " + text.substr(kServerPrefix.size());
    return EtcdError{grpc_code::kUnknown, std::move(text)};
  }
  const grpc::Status g = to_grpc_status(s);
  return EtcdError{static_cast<int>(g.error_code()), g.error_message()};
}

fsm::AlarmRequest from_pb(const pb::AlarmRequest& r) {
  fsm::AlarmRequest out;
  out.action = static_cast<fsm::AlarmAction>(r.action());
  out.member_id = r.memberid();
  out.alarm = static_cast<fsm::AlarmType>(r.alarm());
  return out;
}

void to_pb(const AlarmAnswer& a, pb::AlarmResponse* out) {
  for (const fsm::AlarmMember& m : a.alarms) {
    pb::AlarmMember* e = out->add_alarms();
    e->set_memberid(m.member_id);
    e->set_alarm(static_cast<pb::AlarmType>(m.alarm));
  }
}

void to_pb(const HashAnswer& a, pb::HashResponse* out) {
  fill_response_header(a.header, out->mutable_header());  // etcd's ResponseHeader, whoever fills it
  out->set_hash(a.hash);
}

void to_pb(const HashAnswer& a, pb::HashKVResponse* out) {
  fill_response_header(a.header, out->mutable_header());
  out->set_hash(a.hash);
  out->set_compact_revision(a.compact_revision);
}

}  // namespace ckv::etcd
