// Per-peer Raft traffic and round-trip time, in a lock-free table keyed by peer id.
//
// The transport counts every message it sends or delivers under the peer's
// id, and the node observes heartbeat round trips (heartbeat_rtt.h). Lookup
// is an open-addressing probe over atomic pointers: no lock and, after a
// peer's first message, no allocation. A slot is allocated the first time
// an id is seen and lives as long as the process (a removed member's series
// stay, with their last values, as Prometheus clients keep them too). At
// most kMaxPeerSlots ids get their own slot; traffic of any further ids is
// counted in one overflow slot labelled peer="other", so a flood of forged
// ids cannot grow memory or the label set.
//
// One table per process (instruments.h): a test process running several
// nodes sees their traffic summed per peer id.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>

#include "metrics/metrics.h"

namespace ckv::metrics {

// Distinct peer ids with their own series; node::kMaxMembers (1,024) plus
// room for members replaced over the process's life.
inline constexpr size_t kMaxPeerSlots = 2048;

struct PeerSlot {
  explicit PeerSlot(uint64_t peer_id) : id(peer_id) {}
  const uint64_t id;  // 0: the overflow slot
  Counter messages_sent, bytes_sent, messages_received, bytes_received;
  Histogram round_trip_seconds{kRoundTripBucketsSeconds};
};

// Bytes in a batch of frames (any range of strings).
template <typename Frames>
uint64_t total_bytes(const Frames& frames) {
  uint64_t n = 0;
  for (const auto& f : frames) n += f.size();
  return n;
}

class PeerTraffic {
 public:
  PeerTraffic() = default;
  ~PeerTraffic();
  PeerTraffic(const PeerTraffic&) = delete;
  PeerTraffic& operator=(const PeerTraffic&) = delete;

  // The slot of peer id (never null; the overflow slot once the table is full).
  PeerSlot& slot(uint64_t id) noexcept;
  void sent(uint64_t id, uint64_t messages, uint64_t bytes) noexcept {
    PeerSlot& s = slot(id);
    s.messages_sent.inc(messages);
    s.bytes_sent.inc(bytes);
  }
  void received(uint64_t id, uint64_t bytes) noexcept {
    PeerSlot& s = slot(id);
    s.messages_received.inc();
    s.bytes_received.inc(bytes);
  }
  // Every slot in use, the overflow slot last if it was used.
  void for_each(const std::function<void(const PeerSlot&)>& fn) const;

 private:
  std::array<std::atomic<PeerSlot*>, kMaxPeerSlots> slots_{};
  PeerSlot overflow_{0};
  std::atomic<bool> overflowed_{false};
};

}  // namespace ckv::metrics
