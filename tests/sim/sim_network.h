// Simulated network: per-message delay, loss, duplication and reordering, plus (asymmetric) link cuts.
#pragma once

#include <cstdint>
#include <map>
#include <utility>
#include <vector>

#include "raft/types.h"
#include "sim_rng.h"

namespace ckv::sim {

struct NetworkParams {
  double loss = 0.0;       // probability a message is dropped
  double duplicate = 0.0;  // probability a message is delivered twice
  uint64_t min_delay_us = 1000;
  uint64_t max_delay_us = 5000;
  double long_delay =
      0.0;  // probability of a straggler delayed up to long_delay_max_us (reordering)
  uint64_t long_delay_max_us = 300000;
};

// Decides the fate of each message; the cluster turns the answer into delivery
// events. Links are directed so that asymmetric partitions (A hears B, B does
// not hear A) are expressible. Cuts are counted, so overlapping partitions heal
// independently.
class SimNetwork {
 public:
  void set_params(const NetworkParams& p) { params_ = p; }
  const NetworkParams& params() const { return params_; }

  void cut(raft::NodeId from, raft::NodeId to) { ++cuts_[{from, to}]; }
  void restore(raft::NodeId from, raft::NodeId to);
  void heal_all() { cuts_.clear(); }
  bool connected(raft::NodeId from, raft::NodeId to) const {
    return cuts_.find({from, to}) == cuts_.end();
  }
  size_t cut_count() const { return cuts_.size(); }

  // Delivery delays for one send: empty = lost, two entries = duplicated.
  std::vector<uint64_t> plan(SimRng& rng, raft::NodeId from, raft::NodeId to) const;

 private:
  NetworkParams params_;
  std::map<std::pair<raft::NodeId, raft::NodeId>, int> cuts_;
};

}  // namespace ckv::sim
