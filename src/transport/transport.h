// How the node sends Raft messages to peers and receives theirs; implemented over TCP and in memory for tests.
//
// Contract: send() never blocks the Raft thread. Each peer has its own bounded
// outbound queue and connection, so a slow or dead peer cannot stall the
// others; when a peer's queue is full, messages to it are dropped (Raft
// retries: heartbeats, probes and the stall timer recover).
#pragma once

#include <functional>
#include <string>

#include "raft/messages.h"

namespace ckv::transport {

class Transport {
 public:
  using Handler = std::function<void(raft::Message)>;
  virtual ~Transport() = default;

  // Starts listening on the local raft address and delivering to handler
  // (called on a transport thread; the handler must only enqueue).
  virtual void start(Handler handler) = 0;
  virtual void stop() = 0;
  // Where to reach a peer; replaces an earlier address (reconnecting).
  virtual void set_peer(raft::NodeId id, const std::string& address) = 0;
  virtual void remove_peer(raft::NodeId id) = 0;
  virtual void send(raft::Message m) = 0;
};

}  // namespace ckv::transport
