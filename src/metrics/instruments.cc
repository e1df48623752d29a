// The process-wide instruments, the fixed HTTP route and gRPC method label sets, and their rendering (see instruments.h).
#include "metrics/instruments.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <optional>
#include <vector>

namespace ckv::metrics {

namespace {

// The seed API, the operational endpoints, and etcd's JSON gateway routes
// (http/etcd_gateway.h). Sorted: looked up by binary search.
// Sorts all but the last `fixed` names (catch-alls that stay at the end).
template <size_t N>
constexpr std::array<std::string_view, N> sorted_except_last(std::array<std::string_view, N> a, size_t fixed) {
  std::sort(a.begin(), a.end() - static_cast<std::ptrdiff_t>(fixed));
  return a;
}

constexpr auto kHttpRoutesSorted = sorted_except_last(std::to_array<std::string_view>({
      "/delete",
      "/get",
      "/health",
      "/healthz",
      "/join",
      "/metrics",
      "/readyz",
      "/remove",
      "/set",
      "/status",
      "/ui",
      "/v3/auth/authenticate",
      "/v3/auth/disable",
      "/v3/auth/enable",
      "/v3/auth/role/add",
      "/v3/auth/role/delete",
      "/v3/auth/role/get",
      "/v3/auth/role/grant",
      "/v3/auth/role/list",
      "/v3/auth/role/revoke",
      "/v3/auth/user/add",
      "/v3/auth/user/changepw",
      "/v3/auth/user/delete",
      "/v3/auth/user/get",
      "/v3/auth/user/grant",
      "/v3/auth/user/list",
      "/v3/auth/user/revoke",
      "/v3/cluster/member/add",
      "/v3/cluster/member/list",
      "/v3/cluster/member/promote",
      "/v3/cluster/member/remove",
      "/v3/cluster/member/update",
      "/v3/election/campaign",
      "/v3/election/leader",
      "/v3/election/observe",
      "/v3/election/proclaim",
      "/v3/election/resign",
      "/v3/kv/compaction",
      "/v3/kv/deleterange",
      "/v3/kv/lease/leases",
      "/v3/kv/lease/revoke",
      "/v3/kv/lease/timetolive",
      "/v3/kv/put",
      "/v3/kv/range",
      "/v3/kv/txn",
      "/v3/lease/grant",
      "/v3/lease/keepalive",
      "/v3/lease/leases",
      "/v3/lease/revoke",
      "/v3/lease/timetolive",
      "/v3/lock/lock",
      "/v3/lock/unlock",
      "/v3/maintenance/alarm",
      "/v3/maintenance/defragment",
      "/v3/maintenance/hash",
      "/v3/maintenance/snapshot",
      "/v3/maintenance/status",
      "/v3/maintenance/transfer",
      "/v3/watch",
      "/transfer",
      // Catch-alls: never matched by a lookup (see http_route_index).
      "/v3/other",
      "other",
  }), 2);
constexpr size_t kHttpV3Other = kHttpRoutesSorted.size() - 2;
constexpr size_t kHttpOther = kHttpRoutesSorted.size() - 1;

// etcd 3.4's gRPC services (api/etcdserverpb/rpc.proto, v3lock, v3election)
// and the gRPC health service etcd registers. Sorted.
constexpr auto kGrpcMethodsSorted = sorted_except_last(std::to_array<std::string_view>({
      "etcdserverpb.Auth/AuthDisable",
      "etcdserverpb.Auth/AuthEnable",
      "etcdserverpb.Auth/Authenticate",
      "etcdserverpb.Auth/RoleAdd",
      "etcdserverpb.Auth/RoleDelete",
      "etcdserverpb.Auth/RoleGet",
      "etcdserverpb.Auth/RoleGrantPermission",
      "etcdserverpb.Auth/RoleList",
      "etcdserverpb.Auth/RoleRevokePermission",
      "etcdserverpb.Auth/UserAdd",
      "etcdserverpb.Auth/UserChangePassword",
      "etcdserverpb.Auth/UserDelete",
      "etcdserverpb.Auth/UserGet",
      "etcdserverpb.Auth/UserGrantRole",
      "etcdserverpb.Auth/UserList",
      "etcdserverpb.Auth/UserRevokeRole",
      "etcdserverpb.Cluster/MemberAdd",
      "etcdserverpb.Cluster/MemberList",
      "etcdserverpb.Cluster/MemberPromote",
      "etcdserverpb.Cluster/MemberRemove",
      "etcdserverpb.Cluster/MemberUpdate",
      "etcdserverpb.KV/Compact",
      "etcdserverpb.KV/DeleteRange",
      "etcdserverpb.KV/Put",
      "etcdserverpb.KV/Range",
      "etcdserverpb.KV/Txn",
      "etcdserverpb.Lease/LeaseGrant",
      "etcdserverpb.Lease/LeaseKeepAlive",
      "etcdserverpb.Lease/LeaseLeases",
      "etcdserverpb.Lease/LeaseRevoke",
      "etcdserverpb.Lease/LeaseTimeToLive",
      "etcdserverpb.Maintenance/Alarm",
      "etcdserverpb.Maintenance/Defragment",
      "etcdserverpb.Maintenance/Hash",
      "etcdserverpb.Maintenance/HashKV",
      "etcdserverpb.Maintenance/MoveLeader",
      "etcdserverpb.Maintenance/Snapshot",
      "etcdserverpb.Maintenance/Status",
      "etcdserverpb.Watch/Watch",
      "grpc.health.v1.Health/Check",
      "grpc.health.v1.Health/Watch",
      "v3electionpb.Election/Campaign",
      "v3electionpb.Election/Leader",
      "v3electionpb.Election/Observe",
      "v3electionpb.Election/Proclaim",
      "v3electionpb.Election/Resign",
      "v3lockpb.Lock/Lock",
      "v3lockpb.Lock/Unlock",
      "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
      "etcdserverpb.Maintenance/Downgrade",
      "unknown",  // catch-all, never matched by a lookup
  }), 1);
constexpr size_t kGrpcUnknown = kGrpcMethodsSorted.size() - 1;

template <size_t N>
std::optional<size_t> find_sorted(const std::array<std::string_view, N>& a, size_t searched, std::string_view key) {
  const auto end = a.begin() + static_cast<std::ptrdiff_t>(searched);
  const auto it = std::lower_bound(a.begin(), end, key);
  if (it == end || *it != key) return std::nullopt;
  return static_cast<size_t>(it - a.begin());
}

template <size_t N>
std::vector<std::string> names(const std::array<std::string_view, N>& a) {
  return std::vector<std::string>(a.begin(), a.end());
}

std::string http_code_name(size_t code) { return std::to_string(code); }

// HTTP statuses are 100..599; the table is indexed by the status itself.
constexpr size_t kHttpCodeSlots = 600;

}  // namespace

std::string hex_id(uint64_t id) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(id));
  return buf;
}

size_t http_route_index(std::string_view path) {
  if (auto i = find_sorted(kHttpRoutesSorted, kHttpV3Other, path)) return *i;
  return path.starts_with("/v3/") ? kHttpV3Other : kHttpOther;
}

std::string_view http_route_name(size_t index) { return kHttpRoutesSorted[std::min(index, kHttpOther)]; }

size_t grpc_method_index(std::string_view full_method) {
  if (full_method.starts_with('/')) full_method.remove_prefix(1);
  return find_sorted(kGrpcMethodsSorted, kGrpcUnknown, full_method).value_or(kGrpcUnknown);
}

std::string grpc_code_name(size_t code) {
  static constexpr std::array<const char*, 17> kNames = {
      "OK",       "Canceled",           "Unknown",           "InvalidArgument", "DeadlineExceeded", "NotFound",
      "AlreadyExists", "PermissionDenied", "ResourceExhausted", "FailedPrecondition", "Aborted", "OutOfRange",
      "Unimplemented", "Internal",        "Unavailable",       "DataLoss",        "Unauthenticated"};
  return code < kNames.size() ? kNames[code] : "other";
}

Instruments::Instruments()
    : http(names(kHttpRoutesSorted), kHttpCodeSlots, http_code_name),
      grpc(names(kGrpcMethodsSorted), 17, grpc_code_name) {
  Registry& r = registry_;
  r.add("consensuskv_server_leader_changes_seen_total",
        "Times this node saw a different leader become known (etcd_server_leader_changes_seen_total).", leader_changes);
  r.add("consensuskv_server_proposals_committed_total",
        "Client writes proposed through this node that were committed and applied.", proposals_committed);
  r.add("consensuskv_server_proposals_failed_total",
        "Client writes proposed through this node that were answered with an error (refused, timed out, "
        "leadership lost) (etcd_server_proposals_failed_total).",
        proposals_failed);
  r.add("consensuskv_server_proposals_pending",
        "Client writes proposed through this node and not answered yet (etcd_server_proposals_pending).",
        proposals_pending);
  r.add("consensuskv_disk_wal_fsync_duration_seconds",
        "Duration of one fdatasync of a WAL batch (etcd_disk_wal_fsync_duration_seconds).", wal_fsync_seconds);
  r.add("consensuskv_disk_wal_write_bytes_total", "Bytes of WAL batches written (etcd_disk_wal_write_bytes_total).",
        wal_written_bytes);
  r.add("consensuskv_snapshot_save_duration_seconds",
        "Duration of writing one local snapshot file, fsyncs included (etcd_snap_db_save_total_duration_seconds).",
        snapshot_save_seconds);
  r.add("consensuskv_snapshot_saved_total", "Local snapshot files written.", snapshots_saved);
  r.add("consensuskv_snapshot_size_bytes", "Size of the last snapshot file this node wrote or installed.",
        snapshot_size_bytes);
  r.add([this](Exposition& out) { render_peers(out); });
  r.add([this](Exposition& out) {
    http.render(out, "consensuskv_http_requests_total", "HTTP requests answered, by route and status code.",
                "consensuskv_http_request_duration_seconds",
                "Time from a request's head being read to its answer being written, by route.", "route", "code");
  });
  r.add([this](Exposition& out) {
    grpc.render(out, "consensuskv_grpc_server_handled_total",
                "gRPC calls completed, by method and status code (grpc_server_handled_total).",
                "consensuskv_grpc_server_handling_seconds",
                "Duration of gRPC calls, streams included, by method (grpc_server_handling_seconds).", "method",
                "code");
  });
}

void Instruments::render(Exposition& out) const { registry_.render(out); }

void Instruments::render_peers(Exposition& out) const {
  // Per peer, labelled with the member id in hex as etcd labels its peers
  // (consensuskv_cluster_member_info maps ids to names).
  struct Row {
    std::string id;
    const PeerSlot* slot;
  };
  std::vector<Row> rows;
  peers.for_each([&](const PeerSlot& s) { rows.push_back({s.id == 0 ? std::string("other") : hex_id(s.id), &s}); });
  auto per_peer = [&](const char* name, const char* help, const Counter PeerSlot::*c) {
    out.family(name, help, Type::kCounter);
    for (const Row& r : rows) out.sample(name, {{"peer", r.id}}, static_cast<double>((r.slot->*c).value()));
  };
  per_peer("consensuskv_network_peer_sent_messages_total", "Raft messages written to the peer's stream.",
           &PeerSlot::messages_sent);
  per_peer("consensuskv_network_peer_sent_bytes_total",
           "Bytes of Raft messages written to the peer's stream (etcd_network_peer_sent_bytes_total).",
           &PeerSlot::bytes_sent);
  per_peer("consensuskv_network_peer_received_messages_total", "Raft messages received from the peer.",
           &PeerSlot::messages_received);
  per_peer("consensuskv_network_peer_received_bytes_total",
           "Bytes of Raft messages received from the peer (etcd_network_peer_received_bytes_total).",
           &PeerSlot::bytes_received);
  out.family("consensuskv_network_peer_round_trip_time_seconds",
             "Leader's heartbeat round trip to the peer: from handing a heartbeat to the transport to stepping its "
             "answer (etcd_network_peer_round_trip_time_seconds).",
             Type::kHistogram);
  for (const Row& r : rows) {
    HistogramSnapshot h = r.slot->round_trip_seconds.snapshot();
    if (h.count > 0) out.histogram("consensuskv_network_peer_round_trip_time_seconds", {{"peer", r.id}}, h);
  }
}

Instruments& instruments() {
  static auto* const kInstance = new Instruments();  // never destroyed: counted into until exit
  return *kInstance;
}

}  // namespace ckv::metrics
