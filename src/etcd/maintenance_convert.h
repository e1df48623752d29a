// Maintenance.Alarm, Hash and HashKV (maintenance_service.h) as etcd's generated messages, for the gRPC service and the JSON gateway.
//
// Includes the generated headers: only src/etcd/*.cc and the gateway's JSON
// files include this (docs/design-notes.md, "etcd v3 API").
#pragma once

#include "etcd/etcdserver/etcdserverpb/rpc.pb.h"
#include "etcd/maintenance_service.h"
#include "etcd/member_ops.h"

namespace ckv::etcd {

// What a client sees of a maintenance call's failure. etcd 3.4's
// authMaintenanceServer hands the auth package's own errors to gRPC
// untranslated, so a refused Defragment, Hash or HashKV reaches clients as
// code Unknown with "auth: permission denied" / "auth: user name is empty"
// (checked against etcd 3.4.23); anything else as to_grpc_status maps it.
EtcdError maintenance_error(const Status& s);

fsm::AlarmRequest from_pb(const ::etcdserverpb::AlarmRequest& r);
// etcd 3.4 answers Alarm (and Defragment) without a header: neither has one here.
void to_pb(const AlarmAnswer& a, ::etcdserverpb::AlarmResponse* out);
void to_pb(const HashAnswer& a, ::etcdserverpb::HashResponse* out);
void to_pb(const HashAnswer& a, ::etcdserverpb::HashKVResponse* out);

}  // namespace ckv::etcd
