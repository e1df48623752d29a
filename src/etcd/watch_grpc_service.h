// etcd's Watch service (the bidirectional Watch.Watch stream) over grpc++'s callback API, on the node's watch hub.
//
// One reactor per stream: it turns WatchRequests into watch::Stream calls
// (create, cancel, progress) and sends the stream's deliveries one write at
// a time (grpc++ allows one outstanding write), fragmenting large responses
// for watchers that asked for it as etcd does. No thread blocks: the hub's
// notifier wakes the reactor, and each finished write takes the next
// delivery. Followers serve watches from their own applied state.
//
// As etcd 3.4: a client's half-close keeps the stream (and its watchers)
// alive until the call ends; a stream opened with etcd's "hasleader"
// metadata (clientv3.WithRequireLeader, as etcdctl watch does) while this
// member knows no leader is refused with "etcdserver: no leader", and such
// streams end with it once the member has had no leader for
// kWatchNoLeaderCancelMs (etcd's monitorLeader), so clients move on.
//
// Lifecycle: shutdown() finishes every open stream (UNAVAILABLE, etcd's
// "etcdserver: server stopped") so that stopping the gRPC server never
// waits for watch streams; call it before grpc::Server::Shutdown.
#pragma once

#include <memory>

namespace grpc {
class Service;
}
namespace ckv::node {
class Node;
}

namespace ckv::etcd {

// A response bigger than this is split into fragments when the watcher
// asked for `fragment` (etcd: --max-request-bytes, 1.5 MiB).
inline constexpr size_t kWatchFragmentBytes = size_t{3} << 19;
// How long a response header's raft_term may be stale: the member's
// status is read at most this often for all streams together.
inline constexpr int kWatchHeaderRefreshMs = 100;
// etcd's monitorLeader: a member that has known no leader for this long
// (etcd: 3 election timeouts, 1 s each by default) ends its "hasleader"
// streams with "etcdserver: no leader"; checked every kWatchLeaderCheckMs.
inline constexpr int kWatchNoLeaderCancelMs = 3000;
inline constexpr int kWatchLeaderCheckMs = 200;

class AuthService;

class WatchGrpcService {
 public:
  virtual ~WatchGrpcService() = default;
  // node (and auth, when set) must outlive the service. With auth, a
  // watch needs READ on its range (etcd's isWatchPermitted); refused, it is
  // answered created and canceled with etcd's cancel reason.
  static std::unique_ptr<WatchGrpcService> create(node::Node& node, AuthService* auth = nullptr);
  // The service to register with a grpc::ServerBuilder.
  virtual grpc::Service* service() = 0;
  // Finishes every open stream and refuses new ones. Idempotent.
  virtual void shutdown() = 0;
};

}  // namespace ckv::etcd
