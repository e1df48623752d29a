// The v3election message conversions (see election_convert.h).
#include "etcd/election_convert.h"

#include "etcd/header_convert.h"
#include "etcd/kv_convert.h"
#include "etcd/lease_convert.h"

namespace ckv::etcd {

namespace {

LeaderKey from_pb(const electionpb::LeaderKey& k) { return LeaderKey{k.name(), k.key(), k.rev(), k.lease()}; }

}  // namespace

std::optional<LeaderKey> leader_of(const electionpb::ProclaimRequest& r) {
  if (!r.has_leader()) return std::nullopt;
  return from_pb(r.leader());
}

std::optional<LeaderKey> leader_of(const electionpb::ResignRequest& r) {
  if (!r.has_leader()) return std::nullopt;
  return from_pb(r.leader());
}

void to_pb(const CampaignAnswer& a, electionpb::CampaignResponse* out) {
  fill_response_header(a.header, out->mutable_header());
  electionpb::LeaderKey* k = out->mutable_leader();
  k->set_name(a.leader.name);
  k->set_key(a.leader.key);
  k->set_rev(a.leader.rev);
  k->set_lease(a.leader.lease);
}

void to_pb(const LeaderAnswer& a, electionpb::LeaderResponse* out) {
  fill_response_header(a.header, out->mutable_header());
  to_pb(a.kv, out->mutable_kv());
}

void to_pb(const ElectionHeaderAnswer& a, electionpb::ProclaimResponse* out) {
  fill_response_header(a.header, out->mutable_header());
}

void to_pb(const ElectionHeaderAnswer& a, electionpb::ResignResponse* out) {
  fill_response_header(a.header, out->mutable_header());
}

}  // namespace ckv::etcd
