// Heartbeat round-trip timing (see peer_rtt.h).
#include "node/peer_rtt.h"

#include "metrics/metrics.h"

namespace ckv::node {

void PeerRtt::sent(const raft::Message& m, Clock::time_point now) {
  if (m.type != raft::MessageType::kHeartbeat) return;
  auto [it, inserted] = outstanding_.try_emplace(m.to, now);
  if (!inserted && now - it->second > kMaxOutstanding) it->second = now;
}

void PeerRtt::received(const raft::Message& m, Clock::time_point now) {
  if (m.type != raft::MessageType::kHeartbeatResp) return;
  auto it = outstanding_.find(m.from);
  if (it == outstanding_.end()) return;
  table_.slot(m.from).round_trip_seconds.observe(std::chrono::duration<double>(now - it->second).count());
  outstanding_.erase(it);
}

}  // namespace ckv::node
