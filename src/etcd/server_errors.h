// etcd's texts for the server's own outcomes (rpctypes), shared by every service that answers them itself.
#pragma once

namespace ckv::etcd {

// Clients (clientv3, etcdctl) and people match on these texts: keep them byte for byte etcd's.
inline constexpr const char* kErrNoLeader = "etcdserver: no leader";
// The call metadata asking for kErrNoLeader at once rather than a wait for a
// leader (clientv3.WithRequireLeader; rpctypes.MetadataRequireLeaderKey, value "true").
inline constexpr const char* kRequireLeaderMetadata = "hasleader";
inline constexpr const char* kErrLeaderChanged = "etcdserver: leader changed";
inline constexpr const char* kErrTimeout = "etcdserver: request timed out";
inline constexpr const char* kErrTimeoutConnectionLost =
    "etcdserver: request timed out, possibly due to connection lost";
inline constexpr const char* kErrNoSpace = "etcdserver: mvcc: database space exceeded";
inline constexpr const char* kErrRequestTooLarge = "etcdserver: request is too large";
inline constexpr const char* kErrStopped = "etcdserver: server stopped";
// A follower with too many writes forwarded to the leader (rpctypes ErrGRPCTooManyRequests).
inline constexpr const char* kErrTooManyRequests = "etcdserver: too many requests";

}  // namespace ckv::etcd
