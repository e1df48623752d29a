// The leader's heartbeat round trip per follower, for consensuskv_network_peer_round_trip_time_seconds.
//
// What is measured: from the Raft thread handing a heartbeat to the
// transport to the Raft thread stepping that follower's heartbeat answer.
// That includes both transports' queues and the follower's Raft loop (an
// answer waits behind an fsync in progress there, raft.h step 3), which is
// what a commit waits for too; it is not a bare network ping. One heartbeat
// per follower is timed at a time: later ones go out untimed until the
// answer comes, so each sample is the answer to the heartbeat timed or to
// a later one (an answer lost to a broken stream makes one sample long
// until kMaxOutstanding restarts the timing). Only a leader has samples.
//
// Thread safety: none; the Raft thread owns it.
#pragma once

#include <chrono>
#include <map>

#include "metrics/peer_traffic.h"
#include "raft/messages.h"

namespace ckv::node {

class PeerRtt {
 public:
  using Clock = std::chrono::steady_clock;
  // An unanswered heartbeat older than this is forgotten: the next one is timed instead.
  static constexpr std::chrono::seconds kMaxOutstanding{5};

  explicit PeerRtt(metrics::PeerTraffic& table) : table_(table) {}
  void sent(const raft::Message& m, Clock::time_point now = Clock::now());
  void received(const raft::Message& m, Clock::time_point now = Clock::now());

 private:
  metrics::PeerTraffic& table_;
  std::map<raft::NodeId, Clock::time_point> outstanding_;  // bounded by the members
};

}  // namespace ckv::node
