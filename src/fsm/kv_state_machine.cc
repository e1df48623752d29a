// The replicated key-value map (see kv_state_machine.h).
#include "fsm/kv_state_machine.h"

#include <mutex>
#include <thread>

#include "common/check.h"

namespace ckv::fsm {

void KvStateMachine::apply(uint64_t index, const Command& c) {
  waiting_writers_.fetch_add(1, std::memory_order_relaxed);
  std::unique_lock lock(mu_);
  waiting_writers_.fetch_sub(1, std::memory_order_relaxed);
  if (index <= applied_) return;
  applied_ = index;
  const bool existed = contains_locked(c.key);
  if (c.type == CommandType::kSet) {
    if (!existed) live_size_++;
  } else if (existed) {
    live_size_--;
  }
  if (phase_ == Phase::kSnapshotting) {
    // The base is frozen for the snapshot writer.
    if (c.type == CommandType::kSet) {
      overlay_.insert_or_assign(c.key, c.value);
    } else {
      overlay_.insert_or_assign(c.key, std::nullopt);
    }
    return;
  }
  if (phase_ == Phase::kFolding) {
    // Newer than anything in the overlay: write through and drop the stale overlay entry.
    auto it = overlay_.find(c.key);
    if (it != overlay_.end()) overlay_.erase(it);
  }
  if (c.type == CommandType::kSet) {
    base_.insert_or_assign(c.key, c.value);
  } else {
    base_.erase(c.key);
  }
}

bool KvStateMachine::contains_locked(std::string_view key) const {
  if (phase_ != Phase::kNormal) {
    auto it = overlay_.find(key);
    if (it != overlay_.end()) return it->second.has_value();
  }
  return base_.find(key) != base_.end();
}

void KvStateMachine::skip(uint64_t index) {
  std::unique_lock lock(mu_);
  if (index > applied_) applied_ = index;
}

std::optional<std::string> KvStateMachine::get(std::string_view key) const {
  std::shared_lock lock(mu_);
  if (phase_ != Phase::kNormal) {
    auto it = overlay_.find(key);
    if (it != overlay_.end()) return it->second;
  }
  auto it = base_.find(key);
  if (it == base_.end()) return std::nullopt;
  return it->second;
}

uint64_t KvStateMachine::applied_index() const {
  std::shared_lock lock(mu_);
  return applied_;
}

size_t KvStateMachine::size() const {
  std::shared_lock lock(mu_);
  return live_size_;
}

KvStateMachine::SnapshotView KvStateMachine::begin_snapshot() {
  std::unique_lock lock(mu_);
  KV_CHECK(phase_ == Phase::kNormal, "a snapshot is already in progress");
  phase_ = Phase::kSnapshotting;
  return SnapshotView{&base_, applied_};
}

void KvStateMachine::end_snapshot() {
  {
    std::unique_lock lock(mu_);
    KV_CHECK(phase_ == Phase::kSnapshotting, "no snapshot in progress");
    phase_ = Phase::kFolding;
  }
  for (;;) {
    // std::shared_mutex is not fair: re-locking at once would win against a
    // writer blocked on it every time and starve it for the whole fold. Let
    // a waiting writer (the Raft thread) in first, within a bound.
    for (int spins = 0; spins < kMaxFoldYields && waiting_writers_.load(std::memory_order_relaxed) > 0; ++spins) {
      std::this_thread::yield();
    }
    std::unique_lock lock(mu_);
    for (size_t n = 0; n < kFoldBatch && !overlay_.empty(); ++n) {
      auto node = overlay_.extract(overlay_.begin());
      if (node.mapped()) {
        base_.insert_or_assign(std::move(node.key()), std::move(*node.mapped()));
      } else {
        base_.erase(node.key());
      }
    }
    if (overlay_.empty()) {
      phase_ = Phase::kNormal;
      return;
    }
  }
}

void KvStateMachine::restore(Map map, uint64_t index) {
  Map old;
  {
    std::unique_lock lock(mu_);
    KV_CHECK(phase_ == Phase::kNormal, "restore during a snapshot");
    old.swap(base_);
    base_ = std::move(map);
    live_size_ = base_.size();
    applied_ = index;
  }
  // `old` is freed here, outside the lock: freeing a million keys takes a while.
}

}  // namespace ckv::fsm
