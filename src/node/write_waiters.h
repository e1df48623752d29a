// Clients waiting for their proposed entries to be applied, keyed by log index; decides each one's outcome.
//
// A leader proposes at (index, term) and the client waits until the entry at
// that index is applied. The outcome is decided by what gets applied there:
// the same term means it is ours (success); another term means another
// leader's entry took the index and ours was never committed (a definite
// failure, safe to retry). When we cannot tell (timeout, shutdown, a snapshot
// that skipped the index) the outcome is unknown.
//
// Thread safety: none; the node's Raft thread owns it. Callbacks run inside
// these calls and must only hand the result off.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "common/status.h"
#include "node/write_result.h"
#include "raft/types.h"

namespace ckv::node {

class WriteWaiters {
 public:
  using Clock = std::chrono::steady_clock;
  using Callback = std::function<void(Result<WriteResult>)>;

  // Waits for the entry proposed at (index, term). A waiter left at index by
  // an earlier term of ours is answered first, with "outcome unknown": our
  // log lost the old entry (we could not propose at its index otherwise), so
  // it was not committed then, but another node may still hold it and a
  // later leader may commit it.
  void add(raft::Index index, raft::Term term, Clock::time_point deadline, Callback cb);
  // The entry at index with this term has been applied, with this result
  // (index is filled in). A waiter there from another term is told its
  // write was not applied: another leader's entry took the index.
  void applied(raft::Index index, raft::Term term, WriteResult result);
  bool waiting_at(raft::Index index) const { return waiters_.count(index) != 0; }
  // An installed snapshot covers every index <= index: their outcomes were
  // decided by another leader and we cannot tell which.
  void snapshot_installed(raft::Index index);
  // Answers waiters whose deadline has passed (outcome unknown); why is
  // appended to their message (e.g. that this node's disk is full).
  void expire(Clock::time_point now, const std::string& why = "");
  // Answers everyone (shutdown): outcome unknown.
  void fail_all();

  size_t size() const { return waiters_.size(); }

 private:
  struct Waiter {
    raft::Term term;
    Clock::time_point deadline;
    Callback cb;
  };
  std::map<raft::Index, Waiter> waiters_;
};

}  // namespace ckv::node
