// The per-peer slot table's lock-free lookup (see peer_traffic.h).
#include "metrics/peer_traffic.h"

namespace ckv::metrics {

PeerTraffic::~PeerTraffic() {
  for (auto& s : slots_) delete s.load(std::memory_order_acquire);
}

PeerSlot& PeerTraffic::slot(uint64_t id) noexcept {
  if (id == 0) return overflow_;  // raft::kNoNode is nobody's id; never a real peer's series
  // Fibonacci hashing spreads the FNV-derived ids; linear probing from there.
  const size_t start = static_cast<size_t>((id * 0x9E3779B97F4A7C15ULL) >> 32) % kMaxPeerSlots;
  for (size_t k = 0; k < kMaxPeerSlots; ++k) {
    std::atomic<PeerSlot*>& cell = slots_[(start + k) % kMaxPeerSlots];
    PeerSlot* p = cell.load(std::memory_order_acquire);
    if (p == nullptr) {
      // First sighting of this id: publish a slot, unless another thread
      // just filled this cell (then look at what it put there).
      auto* fresh = new (std::nothrow) PeerSlot(id);
      if (fresh == nullptr) break;
      if (cell.compare_exchange_strong(p, fresh, std::memory_order_acq_rel, std::memory_order_acquire)) return *fresh;
      delete fresh;
    }
    if (p->id == id) return *p;
  }
  overflowed_.store(true, std::memory_order_relaxed);
  return overflow_;
}

void PeerTraffic::for_each(const std::function<void(const PeerSlot&)>& fn) const {
  for (const auto& cell : slots_) {
    if (const PeerSlot* p = cell.load(std::memory_order_acquire)) fn(*p);
  }
  if (overflowed_.load(std::memory_order_relaxed)) fn(overflow_);
}

}  // namespace ckv::metrics
