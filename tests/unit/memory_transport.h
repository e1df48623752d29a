// An in-process Transport for node tests: a hub delivers messages between nodes, with cuttable links and the TCP transport's rules on who is heard.
#pragma once

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "transport/transport.h"

namespace ckv::transport {

class MemoryHub {
 public:
  void attach(const PeerIdentity& self, Transport::Handler h) {
    std::lock_guard lock(mu_);
    Endpoint& e = endpoints_[self.id];
    e.identity = self;
    e.handler = std::move(h);
    e.attached = true;
  }
  // Returns once no delivery to id is running: as with TcpTransport::stop,
  // the handler is never called after it, so its node may be destroyed.
  void detach(raft::NodeId id) {
    std::unique_lock lock(mu_);
    Endpoint& e = endpoints_[id];
    e.attached = false;
    e.handler = nullptr;
    delivered_.wait(lock, [&e] { return e.deliveries == 0; });
  }
  // Drops everything to and from id while isolated.
  void isolate(raft::NodeId id, bool on) {
    std::lock_guard lock(mu_);
    if (on) {
      isolated_.insert(id);
    } else {
      isolated_.erase(id);
    }
  }
  void set_peer(raft::NodeId self, raft::NodeId peer, const std::string& incarnation) {
    std::lock_guard lock(mu_);
    endpoints_[self].peers[peer] = incarnation;
  }
  void remove_peer(raft::NodeId self, raft::NodeId peer) {
    std::lock_guard lock(mu_);
    endpoints_[self].peers.erase(peer);
  }
  void set_accept_unknown(raft::NodeId self, bool on) {
    std::lock_guard lock(mu_);
    endpoints_[self].accept_unknown = on;
  }
  // Delivers like TcpTransport: the receiver hears registered peers whose
  // incarnation matches what it recorded (or anyone while it accepts
  // unknown peers), and the sender only reaches registered peers whose
  // incarnation matches, or, with no route of its own, answers a sender
  // that reached it.
  void deliver(raft::Message m) {
    Endpoint* target = nullptr;  // map nodes stay put: endpoints are never erased
    Transport::Handler h;
    {
      std::lock_guard lock(mu_);
      if (isolated_.count(m.from) || isolated_.count(m.to)) return;
      auto from = endpoints_.find(m.from);
      auto to = endpoints_.find(m.to);
      if (from == endpoints_.end() || to == endpoints_.end() || !to->second.attached) return;
      if (!heard(to->second, from->second) || !heard(from->second, to->second)) {
        ++refused_;
        return;
      }
      target = &to->second;
      h = target->handler;
      ++target->deliveries;
    }
    h(std::move(m));  // the node's handler only enqueues
    std::lock_guard lock(mu_);
    if (--target->deliveries == 0) delivered_.notify_all();
  }
  Result<PeerIdentity> probe(const std::string& address) {
    std::lock_guard lock(mu_);
    for (const auto& [id, e] : endpoints_) {
      if (e.attached && e.identity.raft_address == address) return e.identity;
    }
    return Status(StatusCode::kUnavailable, "nothing listens at " + address);
  }
  bool accepts_unknown(raft::NodeId id) {
    std::lock_guard lock(mu_);
    return endpoints_[id].accept_unknown;
  }
  uint64_t refused() {
    std::lock_guard lock(mu_);
    return refused_;
  }

 private:
  struct Endpoint {
    PeerIdentity identity;
    Transport::Handler handler;
    bool attached = false;
    bool accept_unknown = false;
    int deliveries = 0;  // handler calls running (detach waits for none)
    std::map<raft::NodeId, std::string> peers;  // id -> expected incarnation
  };
  // Whether `self` accepts traffic with `other`.
  static bool heard(const Endpoint& self, const Endpoint& other) {
    auto it = self.peers.find(other.identity.id);
    if (it == self.peers.end()) return self.accept_unknown;
    return it->second.empty() || it->second == other.identity.incarnation;
  }

  std::mutex mu_;
  std::condition_variable delivered_;
  std::map<raft::NodeId, Endpoint> endpoints_;
  std::set<raft::NodeId> isolated_;
  uint64_t refused_ = 0;
};

class MemoryTransport : public Transport {
 public:
  MemoryTransport(std::shared_ptr<MemoryHub> hub, raft::NodeId self) : hub_(std::move(hub)) {
    self_.id = self;
  }
  ~MemoryTransport() override { stop(); }
  void set_local_identity(const PeerIdentity& self) override { self_ = self; }
  // Not checked in memory: the hub joins only the nodes of one test cluster.
  void set_cluster_id(uint64_t cluster_id) override { self_.cluster_id = cluster_id; }
  void start(Handler handler) override { hub_->attach(self_, std::move(handler)); }
  void stop() override { hub_->detach(self_.id); }
  void set_peer(raft::NodeId id, const std::string&, const std::string& incarnation) override {
    hub_->set_peer(self_.id, id, incarnation);
  }
  void remove_peer(raft::NodeId id) override { hub_->remove_peer(self_.id, id); }
  void set_accept_unknown_peers(bool on) override { hub_->set_accept_unknown(self_.id, on); }
  void send(raft::Message m) override { hub_->deliver(std::move(m)); }
  void probe(const std::string& address, int, ProbeCallback cb) override {
    cb(hub_->probe(address));
  }

 private:
  std::shared_ptr<MemoryHub> hub_;
  PeerIdentity self_;
};

}  // namespace ckv::transport
