// etcd's v3election messages <-> election_service.h's structs, for the gRPC service and the /v3/election gateway.
//
// Includes the generated headers: only src/etcd/*.cc and the gateway's .cc include this file.
#pragma once

#include <optional>

#include "etcd/election_service.h"
#include "etcd/etcdserver/api/v3election/v3electionpb/v3election.pb.h"

namespace ckv::etcd {

namespace electionpb = ::v3electionpb;

// The request's leader key; nothing when the message has none (etcd's ErrMissingLeaderKey).
std::optional<LeaderKey> leader_of(const electionpb::ProclaimRequest& r);
std::optional<LeaderKey> leader_of(const electionpb::ResignRequest& r);

void to_pb(const CampaignAnswer& a, electionpb::CampaignResponse* out);
void to_pb(const LeaderAnswer& a, electionpb::LeaderResponse* out);
void to_pb(const ElectionHeaderAnswer& a, electionpb::ProclaimResponse* out);
void to_pb(const ElectionHeaderAnswer& a, electionpb::ResignResponse* out);

}  // namespace ckv::etcd
