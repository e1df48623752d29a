// The watch hub: etcd 3.4's watchers over the MVCC store, fed by the state machine's applied writes.
//
// What it does: every applied write with events is published here (from
// the Raft thread, under the state machine's exclusive lock); the hub
// finds the watchers whose key or range matches (an index, so the cost is
// the matching watchers, not all of them: docs/design-notes.md, "Watch
// hub") and appends the events to each one's bounded pending queue. A
// stream's writer (gRPC Watch, the /v3/watch gateway) takes them with
// Stream::next().
//
// A watcher is "synced" (it gets events as they are published) or
// "unsynced" (it started at a past revision, or its queue overflowed, or a
// snapshot replaced the store): the catch-up thread then replays its
// history from the store (mvcc::Store::events_between) page by page, under
// the state machine's shared lock, and switches it to synced under the
// hub's lock BEFORE releasing the shared lock. While the shared lock is
// held no write can be applied, so "history up to the store's revision R,
// then live from R + 1" has no seam and no duplicate (etcd's
// watchable_store syncWatchers does the same with its own lock). A
// watcher whose next revision is below the compacted revision is cancelled
// with compact_revision set, as etcd's. A watcher never silently loses an
// event: it either gets every event in order, or a cancel.
//
// Ordering per watcher: the created response first, then events in
// revision order, all events of one revision in one Delivery.
//
// Threads and locks: publish()/restored() on the Raft thread; Stream calls
// from any thread; the hub runs a catch-up thread and a notifier thread
// (which calls the streams' wake callbacks outside every lock, and sends
// progress notifications every progress_notify_interval_ms). Lock order:
// the state machine's lock, then the hub's; never the other way.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "mvcc/store.h"
#include "mvcc/types.h"

namespace ckv::watch {

// Limits (docs/api.md, "Watch limits"). A watcher whose pending queue
// would pass its limits becomes unsynced and catches up from history, so
// a slow reader costs at most these bytes of memory, never an event.
inline constexpr size_t kMaxPendingEventsPerWatcher = 1024;
inline constexpr size_t kMaxPendingBytesPerWatcher = size_t{4} << 20;  // 4 MiB
// All watchers' pending queues together: past it new events go to history
// replay instead of queues.
inline constexpr size_t kMaxPendingBytesTotal = size_t{512} << 20;  // 512 MiB
// Events per replay page (one store query under the shared lock).
inline constexpr size_t kReplayPageEvents = 256;
inline constexpr size_t kMaxWatchersPerStream = 10'000;
inline constexpr size_t kMaxStreams = 20'000;
inline constexpr size_t kMaxWatchers = 200'000;
// etcd's --experimental-watch-progress-notify-interval default (10 min).
inline constexpr int64_t kDefaultProgressNotifyIntervalMs = int64_t{10} * 60 * 1000;

// etcd's texts for refused creates (mvcc/watcher.go).
inline constexpr const char* kErrEmptyWatcherRange = "mvcc: watcher range is empty";
inline constexpr const char* kErrDuplicateWatchId =
    "mvcc: duplicate watch ID provided on the WatchStream";

// What a WatchCreateRequest asks for (etcd's fields).
struct WatchSpec {
  std::string key;        // empty means "\0" (the smallest key), as etcd
  std::string range_end;  // empty: the key alone; "\0": every key >= key; else [key, range_end)
  int64_t start_revision = 0;  // <= 0: from the next revision
  bool no_put = false;
  bool no_delete = false;
  bool prev_kv = false;
  bool progress_notify = false;
  bool fragment = false;
};

// One WatchResponse for the stream's writer to send, in order.
struct Delivery {
  int64_t watch_id = 0;   // -1 for a refused create and a stream-wide progress response
  int64_t revision = 0;   // the header's revision
  bool created = false;
  bool canceled = false;
  int64_t compact_revision = 0;
  std::string cancel_reason;
  bool fragment = false;  // the watcher allows splitting large responses
  std::vector<mvcc::Event> events;
};

struct HubOptions {
  int64_t progress_notify_interval_ms = kDefaultProgressNotifyIntervalMs;
  size_t max_pending_events_per_watcher = kMaxPendingEventsPerWatcher;
  size_t max_pending_bytes_per_watcher = kMaxPendingBytesPerWatcher;
  size_t max_pending_bytes_total = kMaxPendingBytesTotal;
  size_t replay_page_events = kReplayPageEvents;
  size_t max_watchers_per_stream = kMaxWatchersPerStream;
  size_t max_streams = kMaxStreams;
  size_t max_watchers = kMaxWatchers;
};

// Runs fn with the store while no write can be applied (the state
// machine's shared lock; fsm::KvStateMachine::with_store).
using StoreReader = std::function<void(const std::function<void(const mvcc::Store&)>& fn)>;

class Hub;

// One client stream's watchers (a gRPC Watch call, a /v3/watch request).
// Thread safe. close() (or the destructor) removes every watcher.
class Stream {
 public:
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  // etcd's create: queues the created response (or a refusal: watch_id -1,
  // canceled, etcd's cancel_reason) and returns the watch id, -1 if refused.
  // requested_id 0 lets the stream choose (etcd's AutoWatchID: the lowest
  // free id counting from 0, as etcd 3.4 does).
  int64_t create(const WatchSpec& in, int64_t requested_id);
  // etcd's cancel: false (and nothing sent) for an unknown id; else its
  // pending events are dropped and a canceled response is queued.
  bool cancel(int64_t watch_id);
  // A WatchProgressRequest: a response with watch_id -1 and the current
  // revision is queued once every watcher of the stream is synced and has
  // sent everything up to it, so the revision is a promise.
  void request_progress();
  // The next response to send, or nothing (then wake is called when there
  // is one). Call it again after each send: responses come one at a time.
  std::optional<Delivery> next();
  // Watchers on the stream (live or cancelled by compaction, not yet cancelled by the client).
  size_t watcher_count() const;
  bool all_synced() const;
  void close();

 private:
  friend class Hub;
  struct State;
  Stream(std::shared_ptr<Hub> hub, std::shared_ptr<State> state)
      : hub_ptr_(std::move(hub)), hub_(*hub_ptr_), state_(std::move(state)) {}
  // A stream keeps the hub's memory alive (a front end may destroy its
  // streams after the Node is gone); the hub's threads have stopped by then.
  std::shared_ptr<Hub> hub_ptr_;
  Hub& hub_;
  std::shared_ptr<State> state_;
};

// Always owned by a shared_ptr (open_stream shares it with the streams).
class Hub : public std::enable_shared_from_this<Hub> {
 public:
  explicit Hub(StoreReader reader, HubOptions options = {});
  ~Hub();
  Hub(const Hub&) = delete;
  Hub& operator=(const Hub&) = delete;

  // Raft thread, under the state machine's exclusive lock: the events of
  // one applied write, all at `revision`. Never blocks; cost is the
  // matching watchers'.
  void publish(int64_t revision, const std::vector<mvcc::Event>& events);
  // Raft thread, under the exclusive lock: a snapshot replaced the store
  // (now at `revision`); every watcher catches up from the new history.
  void restored(int64_t revision);

  // A new stream, or nullptr past max_streams. wake is called (from the
  // notifier thread, outside the hub's locks) when next() has something;
  // it must not block. It is never called after close() returned. wake may
  // close (or destroy) its own stream: the request layers' recipes end there.
  std::unique_ptr<Stream> open_stream(std::function<void()> wake);

  // Stops the threads; streams get nothing more. Idempotent.
  void stop();

  struct Stats {
    size_t streams = 0;
    size_t watchers = 0;
    size_t unsynced = 0;
    size_t pending_bytes = 0;
    int64_t revision = 0;
  };
  Stats stats() const;
  const HubOptions& options() const { return options_; }

 private:
  friend class Stream;
  struct Watcher;
  using WatcherPtr = std::shared_ptr<Watcher>;

  // All of these require mu_.
  void index_add(const WatcherPtr& w);
  void index_remove(const WatcherPtr& w);
  template <typename Fn>
  void for_each_match(const std::string& key, Fn&& fn);
  void enqueue(Stream::State& s, const WatcherPtr& w, Delivery d, size_t bytes);
  void enqueue_control(Stream::State& s, Delivery d);
  void notify(Stream::State& s);
  void make_unsynced(const WatcherPtr& w, int64_t next_rev);
  void remove_watcher(Stream::State& s, const WatcherPtr& w);
  void maybe_answer_progress(Stream::State& s);
  bool ready_for_replay(const Watcher& w) const;

  void catch_up_loop();
  void replay(const WatcherPtr& w);
  void notifier_loop();
  void progress_tick();

  const StoreReader reader_;
  const HubOptions options_;

  mutable std::mutex mu_;
  bool stopping_ = false;
  int64_t revision_ = 1;  // the store's revision as of the last publish/restore
  size_t pending_bytes_ = 0;
  size_t watchers_ = 0;
  std::vector<std::shared_ptr<Stream::State>> streams_;  // open streams
  // The index: which watchers a key's event can concern.
  std::unordered_map<std::string, std::vector<Watcher*>> exact_;   // range_end empty
  std::unordered_map<std::string, std::vector<Watcher*>> prefix_;  // range_end = prefix end of key
  std::map<size_t, size_t> prefix_lengths_;  // prefix length -> prefix watchers with it
  std::multimap<std::string, Watcher*> from_key_;                  // range_end "\0"
  std::vector<Watcher*> ranges_;                                   // any other [key, range_end)
  std::deque<WatcherPtr> unsynced_;  // catch-up rotation
  std::condition_variable catch_up_cv_;

  std::deque<std::shared_ptr<Stream::State>> to_wake_;  // under mu_
  std::condition_variable notify_cv_;

  std::thread catch_up_thread_;
  std::thread notifier_thread_;
  std::once_flag stopped_;
};

// The end of the range of keys with this prefix (etcd's GetPrefixRangeEnd):
// the prefix with its last byte below 0xff incremented and what follows
// dropped; "\0" (every key) when there is none.
std::string prefix_range_end(const std::string& prefix);

}  // namespace ckv::watch
