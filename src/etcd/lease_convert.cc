// Lease answers -> etcd's generated messages (see lease_convert.h).
#include "etcd/lease_convert.h"

#include "etcd/header_convert.h"

namespace ckv::etcd {

void to_pb(const KvAnswer<lease::GrantResponse>& a, ::etcdserverpb::LeaseGrantResponse* out) {
  fill_response_header(a.header, out->mutable_header());
  out->set_id(a.body.id);
  out->set_ttl(a.body.ttl);
}

void to_pb(const KvAnswer<lease::RevokeResponse>& a, ::etcdserverpb::LeaseRevokeResponse* out) {
  fill_response_header(a.header, out->mutable_header());
}

void to_pb(const KeepAliveAnswer& a, ::etcdserverpb::LeaseKeepAliveResponse* out) {
  fill_response_header(a.header, out->mutable_header());
  out->set_id(a.id);
  out->set_ttl(a.ttl);
}

void to_pb(const TimeToLiveAnswer& a, ::etcdserverpb::LeaseTimeToLiveResponse* out) {
  fill_response_header(a.header, out->mutable_header());
  out->set_id(a.id);
  out->set_ttl(a.ttl);
  out->set_grantedttl(a.granted_ttl);
  for (const std::string& k : a.keys) out->add_keys(k);
}

void to_pb(const LeasesAnswer& a, ::etcdserverpb::LeaseLeasesResponse* out) {
  fill_response_header(a.header, out->mutable_header());
  for (int64_t id : a.ids) out->add_leases()->set_id(id);
}

}  // namespace ckv::etcd
