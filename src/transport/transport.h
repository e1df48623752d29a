// How the node sends Raft messages to peers and receives theirs; implemented over TCP and in memory for tests.
//
// Contract: send() never blocks the Raft thread. Each peer has its own bounded
// outbound queue and connection, so a slow or dead peer cannot stall the
// others; when a peer's queue is full, messages to it are dropped (Raft
// retries: heartbeats, probes and the stall timer recover).
//
// Who is heard: only ids registered with set_peer (the members and the nodes
// being added, i.e. the replicated membership). Only addresses given to
// set_peer are dialled; nothing a peer says makes the transport dial anyone.
// The exception: after set_accept_unknown_peers(true) any sender is heard,
// and answered on the stream it opened. The node turns it on while it is
// outside its own configuration (fresh and waiting to be added, removed, or
// given a snapshot from before it was added, whose configuration may not
// even hold the leader that sent it) and while it has no leader or follows
// one it does not know (a member that missed configuration changes must
// hear the new leader that can bring it up to date). See
// Node::Impl::update_unknown_sender_policy.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "common/status.h"
#include "raft/messages.h"

namespace ckv::transport {

// Who a node is, as it says in its transport hello. The incarnation is the
// random id its data dir was created with (storage/node_meta.h): a node
// whose data dir was wiped has a new one, so it cannot pass for the member
// it used to be.
struct PeerIdentity {
  raft::NodeId id = raft::kNoNode;
  std::string name;
  std::string raft_address;
  std::string api_address;
  std::string incarnation;  // empty: unknown (old data, or a test)
  // node::cluster_id_of its latest configuration; 0 while it has none (a
  // node waiting to be added). See Transport::set_cluster_id.
  uint64_t cluster_id = 0;
};

class Transport {
 public:
  using Handler = std::function<void(raft::Message)>;
  using ProbeCallback = std::function<void(Result<PeerIdentity>)>;
  virtual ~Transport() = default;

  // What this node tells peers in its hello. Call before start().
  virtual void set_local_identity(const PeerIdentity& self) = 0;
  // The cluster this node belongs to (any time; 0: none yet). A stream whose
  // other end names another nonzero cluster id is refused on both sides
  // ("cluster id mismatch"), so nodes of two clusters that reuse each
  // other's addresses never exchange a message; a node with none (waiting
  // to be added) accepts any and takes its cluster's from the configuration
  // it is sent (docs/security.md, "Cluster identity on the wire").
  virtual void set_cluster_id(uint64_t cluster_id) = 0;
  // Starts listening on the local raft address and delivering to handler
  // (called on a transport thread; the handler must only enqueue).
  virtual void start(Handler handler) = 0;
  virtual void stop() = 0;
  // Where to reach a peer, and the incarnation it must answer with (empty:
  // not checked). Replaces an earlier address or incarnation (reconnecting).
  virtual void set_peer(raft::NodeId id, const std::string& address,
                        const std::string& incarnation) = 0;
  // Forgets the peer: nothing is sent to it, and its streams are closed.
  virtual void remove_peer(raft::NodeId id) = 0;
  // See "Who is heard" above. Off by default.
  virtual void set_accept_unknown_peers(bool on) = 0;
  virtual void send(raft::Message m) = 0;
  // A Ready's messages, in order: a transport may coalesce those to one peer
  // into one write (TcpTransport does: one system call, not one each).
  virtual void send_all(std::vector<raft::Message> msgs) {
    for (raft::Message& m : msgs) send(std::move(m));
  }
  // Asks whoever listens at address who it is (its hello), without sending
  // it any message. The callback runs once, on a transport thread, with the
  // identity or kUnavailable / kTimeout / kCorrupt; it must only hand off.
  virtual void probe(const std::string& address, int timeout_ms, ProbeCallback cb) = 0;
};

}  // namespace ckv::transport
