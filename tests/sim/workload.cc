// Client operations of the simulated workload.
#include "workload.h"

#include "sim_state_machine.h"

namespace ckv::sim {

bool Workload::write(SimRng& rng, SimNode& node) {
  uint64_t id = next_write_id_++;
  std::string key = "k" + std::to_string(rng.range(0, kKeys - 1));
  std::string data = rng.chance(0.1) ? encode_del(key) : encode_set(key, "w" + std::to_string(id));
  raft::ProposeResult r = node.raft().propose(data);
  if (!r.ok()) {
    ++refused_;
    return false;
  }
  ++proposed_;
  node.track_write(id, r.index, r.term, std::move(data));
  return true;
}

bool Workload::read(SimRng& rng, SimNode& node, raft::Index min_index) {
  std::string key = "k" + std::to_string(rng.range(0, kKeys - 1));
  if (!node.start_read(next_read_id_, std::move(key), min_index)) return false;
  ++next_read_id_;
  ++reads_started_;
  return true;
}

}  // namespace ckv::sim
