// The write waiters' outcome rules (see write_waiters.h).
#include "node/write_waiters.h"

#include <utility>

namespace ckv::node {

namespace {

Status not_applied() {
  return Status(StatusCode::kUnavailable, "leadership changed before the write committed; it was not applied");
}

}  // namespace

void WriteWaiters::add(raft::Index index, raft::Term term, Clock::time_point deadline, Callback cb) {
  if (auto old = waiters_.find(index); old != waiters_.end()) {
    Callback stale = std::move(old->second.cb);
    waiters_.erase(old);
    stale(Status(StatusCode::kTimeout,
                 "leadership changed and this node proposed another write at the same log position; "
                 "the outcome of this one is unknown"));
  }
  waiters_.emplace(index, Waiter{term, deadline, std::move(cb)});
}

void WriteWaiters::applied(raft::Index index, raft::Term term, WriteResult result) {
  auto it = waiters_.find(index);
  if (it == waiters_.end()) return;
  Waiter w = std::move(it->second);
  waiters_.erase(it);
  if (w.term == term) {
    result.index = index;
    w.cb(std::move(result));
  } else {
    w.cb(not_applied());  // another leader's entry took this index
  }
}

void WriteWaiters::snapshot_installed(raft::Index index) {
  while (!waiters_.empty() && waiters_.begin()->first <= index) {
    Callback cb = std::move(waiters_.begin()->second.cb);
    waiters_.erase(waiters_.begin());
    cb(Status(StatusCode::kTimeout, "replaced by a snapshot from the leader; outcome unknown"));
  }
}

void WriteWaiters::expire(Clock::time_point now, const std::string& why) {
  for (auto it = waiters_.begin(); it != waiters_.end();) {
    if (it->second.deadline > now) {
      ++it;
      continue;
    }
    Callback cb = std::move(it->second.cb);
    it = waiters_.erase(it);
    cb(Status(StatusCode::kTimeout, "the write was not committed in time; outcome unknown" + why));
  }
}

void WriteWaiters::fail_all() {
  auto all = std::move(waiters_);
  waiters_.clear();
  for (auto& [index, w] : all) {
    w.cb(Status(StatusCode::kTimeout, "node stopped before the write was applied; outcome unknown"));
  }
}

}  // namespace ckv::node
