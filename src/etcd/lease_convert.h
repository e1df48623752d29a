// The Lease request layer's answers (lease_service.h) as etcd's generated messages, for the gRPC service and the JSON gateway.
//
// Includes the generated headers: only src/etcd/*.cc and the gateway's JSON
// files include this (docs/design-notes.md, "etcd v3 API").
#pragma once

#include "etcd/etcdserver/etcdserverpb/rpc.pb.h"
#include "etcd/lease_service.h"

namespace ckv::etcd {

void to_pb(const KvAnswer<lease::GrantResponse>& a, ::etcdserverpb::LeaseGrantResponse* out);
void to_pb(const KvAnswer<lease::RevokeResponse>& a, ::etcdserverpb::LeaseRevokeResponse* out);
void to_pb(const KeepAliveAnswer& a, ::etcdserverpb::LeaseKeepAliveResponse* out);
void to_pb(const TimeToLiveAnswer& a, ::etcdserverpb::LeaseTimeToLiveResponse* out);
void to_pb(const LeasesAnswer& a, ::etcdserverpb::LeaseLeasesResponse* out);

}  // namespace ckv::etcd
