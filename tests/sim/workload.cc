// Client operations of the simulated workload.
#include "workload.h"

#include "sim_state_machine.h"

namespace ckv::sim {

bool Workload::write(SimRng& rng, SimNode& node) {
  uint64_t id = next_write_id_++;
  std::string key = "k" + std::to_string(rng.range(0, kKeys - 1));
  std::string data = rng.chance(0.1) ? encode_del(key) : encode_set(key, "w" + std::to_string(id));
  // A follower forwards the write to its leader (raft.h forward_proposal);
  // the value is unique, so it recognises the entry when it applies it.
  raft::ProposeResult r = node.raft().forward_proposal(data);
  if (!r.ok()) {
    ++refused_;
    return false;
  }
  ++proposed_;
  if (r.forward_id != 0) {
    ++forwarded_;
    node.track_forwarded_write(id, r.forward_id, std::move(data));
  } else {
    node.track_write(id, r.index, r.term, std::move(data));
  }
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
