// What etcd's concurrency recipes (clientv3/concurrency's Mutex and Election) share on this node: their key, reads and one watch at a time.
//
// lock_service.h and election_service.h run those recipes on this node's
// request layers; both name a session's key, read the oldest or the newest
// key under a prefix, and wait on one watcher at a time. The watcher lives
// on a watch stream of its own (the watch hub's, so it counts against its
// stream limit).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "etcd/kv_service.h"
#include "mvcc/types.h"
#include "watch/watch_hub.h"

namespace ckv::etcd {

// prefix + the lease id as Go's %x prints an int64 (a sign, then lower-case hex): etcd's session key.
std::string session_key(const std::string& prefix, int64_t lease);

// The oldest key under prefix (etcd's WithFirstCreate).
mvcc::RangeRequest oldest_under(const std::string& prefix);
// The newest key under prefix created at or before rev (WithLastCreate, WithMaxCreateRev).
mvcc::RangeRequest newest_before(const std::string& prefix, int64_t rev);
inline mvcc::RequestOp op(mvcc::RangeRequest r) { return mvcc::RequestOp{std::move(r)}; }
// The i-th response of a txn if it is a range, else null (an answer not of the txn's shape).
const mvcc::RangeResponse* range_at(const mvcc::TxnResponse& t, size_t i);

// One watcher at a time on a watch stream of its own. Thread-safe.
//
// watch() replaces the watcher; on_delivery then runs (on the hub's
// notifier thread, one at a time) for each delivery of that watcher only:
// its created response, its events, its cancel (a start below the
// compacted revision is refused: a delivery with watch_id -1 and canceled).
// Deliveries of earlier watchers are dropped, even ones already queued.
// on_delivery must not block; it may call watch() or close().
class SingleWatch {
 public:
  using OnDelivery = std::function<void(const watch::Delivery&)>;
  explicit SingleWatch(watch::Hub& hub);
  ~SingleWatch();
  SingleWatch(const SingleWatch&) = delete;
  SingleWatch& operator=(const SingleWatch&) = delete;

  // False (and nothing watched) past the hub's stream limit, or once closed.
  bool watch(const watch::WatchSpec& spec, OnDelivery on_delivery);
  // No on_delivery starts after it returns. Idempotent.
  void close();

 private:
  struct State;
  // The hub's notifier thread: the current watcher's deliveries, one at a time.
  static void deliver(const std::shared_ptr<State>& s);
  watch::Hub& hub_;
  std::shared_ptr<State> state_;
};

// One recipe call (a Lock attempt, a Campaign) from its first request to its
// answer: what both recipes keep of it. Done: its answer callback.
template <typename Done>
struct RecipeWaiter {
  uint64_t id = 0;
  std::string name;
  std::string prefix;  // name + "/"
  int64_t lease = 0;
  KvCall call;
  // Written under mu (a cancel reads them from another thread), read freely by the call's own chain.
  std::string key;  // set once the lease is known
  int64_t rev = 0;  // our key's create revision, once the take txn answered

  // Guards done and watch (and what a recipe adds under it); never held while
  // calling a request layer or closing the watch.
  std::mutex mu;
  Done done;  // empty once answered
  std::shared_ptr<SingleWatch> watch;  // for an earlier key to go; null once answered
};

// A waiting recipe call's watch (a RecipeWaiter's), made on first use; null once it was answered.
// Shared: the call's finish may close it while the caller arms it.
template <typename Waiter>
std::shared_ptr<SingleWatch> waiter_watch(Waiter& w, watch::Hub& hub) {
  std::lock_guard l(w.mu);
  if (!w.done) return nullptr;
  if (!w.watch) w.watch = std::make_shared<SingleWatch>(hub);
  return w.watch;
}

// etcd's waitDelete on w: on_gone runs once (on the notifier thread) when
// key is deleted at or after revision `from`, or when the watch could not
// start there (compacted): either way the caller looks again. False as
// SingleWatch::watch.
bool watch_delete(SingleWatch& w, const std::string& key, int64_t from, std::function<void()> on_gone);

}  // namespace ckv::etcd
