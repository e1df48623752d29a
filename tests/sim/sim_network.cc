// Message fate decisions for the simulated network.
#include "sim_network.h"

namespace ckv::sim {

void SimNetwork::restore(raft::NodeId from, raft::NodeId to) {
  auto it = cuts_.find({from, to});
  if (it != cuts_.end() && --it->second <= 0) cuts_.erase(it);
}

std::vector<uint64_t> SimNetwork::plan(SimRng& rng, raft::NodeId from, raft::NodeId to) const {
  std::vector<uint64_t> delays;
  if (!connected(from, to)) return delays;
  if (params_.loss > 0 && rng.chance(params_.loss)) return delays;
  int copies = (params_.duplicate > 0 && rng.chance(params_.duplicate)) ? 2 : 1;
  for (int i = 0; i < copies; ++i) {
    uint64_t d = rng.range(params_.min_delay_us, params_.max_delay_us);
    // Independent delays already reorder messages; stragglers reorder across
    // many heartbeats and deliver stale terms long after the fact.
    if (params_.long_delay > 0 && rng.chance(params_.long_delay))
      d += rng.range(0, params_.long_delay_max_us);
    delays.push_back(d);
  }
  return delays;
}

}  // namespace ckv::sim
