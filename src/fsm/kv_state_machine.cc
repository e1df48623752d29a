// The replicated key-value map (see kv_state_machine.h).
#include "fsm/kv_state_machine.h"

#include <mutex>

#include "common/check.h"

namespace ckv::fsm {

void KvStateMachine::apply(uint64_t index, const Command& c) {
  std::unique_lock lock(mu_);
  if (index <= applied_) return;
  applied_ = index;
  const bool existed = contains_locked(c.key);
  if (c.type == CommandType::kSet) {
    if (!existed) live_size_++;
    if (snapshotting_) {
      overlay_.insert_or_assign(c.key, c.value);
    } else {
      base_.insert_or_assign(c.key, c.value);
    }
  } else {
    if (existed) live_size_--;
    if (snapshotting_) {
      overlay_.insert_or_assign(c.key, std::nullopt);
    } else {
      base_.erase(c.key);
    }
  }
}

bool KvStateMachine::contains_locked(std::string_view key) const {
  if (snapshotting_) {
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
  if (snapshotting_) {
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
  KV_CHECK(!snapshotting_, "a snapshot is already in progress");
  snapshotting_ = true;
  return SnapshotView{&base_, applied_};
}

void KvStateMachine::end_snapshot() {
  std::unique_lock lock(mu_);
  KV_CHECK(snapshotting_, "no snapshot in progress");
  for (auto& [key, value] : overlay_) {
    if (value) {
      base_.insert_or_assign(key, std::move(*value));
    } else {
      base_.erase(key);
    }
  }
  overlay_.clear();
  snapshotting_ = false;
}

void KvStateMachine::restore(Map map, uint64_t index) {
  Map old;
  {
    std::unique_lock lock(mu_);
    KV_CHECK(!snapshotting_, "restore during a snapshot");
    old.swap(base_);
    base_ = std::move(map);
    live_size_ = base_.size();
    applied_ = index;
  }
  // `old` is freed here, outside the lock: freeing a million keys takes a while.
}

}  // namespace ckv::fsm
