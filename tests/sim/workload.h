// The simulated client: writes proposed on leaders or forwarded by followers, and linearizable reads, with unique values so reads can be checked.
#pragma once

#include <cstdint>
#include <string>

#include "sim_node.h"
#include "sim_rng.h"

namespace ckv::sim {

class Workload {
 public:
  // Proposes "set k w<id>" (sometimes "del k") on node; a leader
  // acknowledges it once applied at the returned index and term, a follower
  // (which forwards it to its leader) once it applies an entry with its data.
  // Returns false if the core refused it (no leader known, transfer, overload...).
  bool write(SimRng& rng, SimNode& node);
  // Starts a linearizable read of a random key on node; min_index is the
  // highest index known committed anywhere right now.
  bool read(SimRng& rng, SimNode& node, raft::Index min_index);
  void on_acked() { ++acked_; }

  uint64_t proposed() const { return proposed_; }
  uint64_t refused() const { return refused_; }
  uint64_t forwarded() const { return forwarded_; }
  uint64_t acked() const { return acked_; }
  uint64_t reads_started() const { return reads_started_; }

 private:
  // Few keys, so that reads usually hit a key with a long write history.
  static constexpr uint64_t kKeys = 12;

  uint64_t next_write_id_ = 1;
  uint64_t next_read_id_ = 1;
  uint64_t proposed_ = 0;
  uint64_t refused_ = 0;
  uint64_t forwarded_ = 0;
  uint64_t acked_ = 0;
  uint64_t reads_started_ = 0;
};

}  // namespace ckv::sim
