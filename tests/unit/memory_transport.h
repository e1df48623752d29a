// An in-process Transport for node tests: a hub delivers messages between nodes, with cuttable links.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <set>

#include "transport/transport.h"

namespace ckv::transport {

class MemoryHub {
 public:
  void attach(raft::NodeId id, Transport::Handler h) {
    std::lock_guard lock(mu_);
    handlers_[id] = std::move(h);
  }
  void detach(raft::NodeId id) {
    std::lock_guard lock(mu_);
    handlers_.erase(id);
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
  void deliver(raft::Message m) {
    Transport::Handler h;
    {
      std::lock_guard lock(mu_);
      if (isolated_.count(m.from) || isolated_.count(m.to)) return;
      auto it = handlers_.find(m.to);
      if (it == handlers_.end()) return;
      h = it->second;
    }
    h(std::move(m));  // the node's handler only enqueues
  }

 private:
  std::mutex mu_;
  std::map<raft::NodeId, Transport::Handler> handlers_;
  std::set<raft::NodeId> isolated_;
};

class MemoryTransport : public Transport {
 public:
  MemoryTransport(std::shared_ptr<MemoryHub> hub, raft::NodeId self) : hub_(std::move(hub)), self_(self) {}
  ~MemoryTransport() override { stop(); }
  void start(Handler handler) override { hub_->attach(self_, std::move(handler)); }
  void stop() override { hub_->detach(self_); }
  void set_peer(raft::NodeId, const std::string&) override {}
  void remove_peer(raft::NodeId) override {}
  void send(raft::Message m) override { hub_->deliver(std::move(m)); }

 private:
  std::shared_ptr<MemoryHub> hub_;
  raft::NodeId self_;
};

}  // namespace ckv::transport
