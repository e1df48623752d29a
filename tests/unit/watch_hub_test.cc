// The watch hub: matching, ordering, overflow -> unsynced -> catch-up without gap or duplicate, compaction cancels, progress.
#include "watch/watch_hub.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <shared_mutex>
#include <thread>

namespace ckv::watch {
namespace {

using mvcc::Event;
using Clock = std::chrono::steady_clock;
constexpr auto kDeadline = std::chrono::seconds(10);

// The state machine's part: a store behind a shared mutex, publishing each
// write under the exclusive lock, as fsm::KvStateMachine does.
class FakeFsm {
 public:
  explicit FakeFsm(HubOptions o = {})
      : hub_ptr(std::make_shared<Hub>(
            [this](const std::function<void(const mvcc::Store&)>& fn) {
              std::shared_lock l(mu);
              fn(store);
            },
            o)),
        hub(*hub_ptr) {}
  ~FakeFsm() { hub.stop(); }

  int64_t put(const std::string& k, const std::string& v) {
    std::unique_lock l(mu);
    mvcc::PutRequest p;
    p.key = k;
    p.value = v;
    EXPECT_TRUE(store.put(p).is_ok());
    hub.publish(store.revision(), store.last_events());
    return store.revision();
  }
  int64_t del(const std::string& k) {
    std::unique_lock l(mu);
    mvcc::DeleteRangeRequest d;
    d.key = k;
    EXPECT_TRUE(store.delete_range(d).is_ok());
    if (!store.last_events().empty()) hub.publish(store.revision(), store.last_events());
    return store.revision();
  }
  int64_t txn(const std::vector<std::pair<std::string, std::string>>& kvs) {
    std::unique_lock l(mu);
    mvcc::TxnRequest t;
    for (const auto& [k, v] : kvs) {
      mvcc::PutRequest p;
      p.key = k;
      p.value = v;
      t.success.push_back(mvcc::op_put(p));
    }
    EXPECT_TRUE(store.txn(t).is_ok());
    hub.publish(store.revision(), store.last_events());
    return store.revision();
  }
  // A snapshot install: the store is replaced, then the hub is told (as KvStateMachine::restore).
  void restore(mvcc::Store replacement) {
    std::unique_lock l(mu);
    store = std::move(replacement);
    hub.restored(store.revision());
  }
  void compact(int64_t rev) {
    std::unique_lock l(mu);
    EXPECT_TRUE(store.compact(mvcc::CompactionRequest{rev, true}).is_ok());
  }

  std::shared_mutex mu;
  mvcc::Store store;
  std::shared_ptr<Hub> hub_ptr;  // after store and mu: stopped first
  Hub& hub;
};

// A stream plus a waiter on its wake callback.
struct Client {
  explicit Client(Hub& hub) {
    stream = hub.open_stream([this] {
      std::lock_guard l(mu);
      woken = true;
      cv.notify_all();
    });
  }
  // The next delivery within the deadline, or nothing.
  std::optional<Delivery> next(std::chrono::milliseconds wait = std::chrono::milliseconds(5000)) {
    const auto until = Clock::now() + wait;
    for (;;) {
      if (auto d = stream->next()) return d;
      std::unique_lock l(mu);
      if (!cv.wait_until(l, until, [&] { return woken; })) return std::nullopt;
      woken = false;
    }
  }
  std::mutex mu;
  std::condition_variable cv;
  bool woken = false;
  std::unique_ptr<Stream> stream;
};

WatchSpec spec(std::string key, std::string end = "", int64_t start = 0) {
  WatchSpec s;
  s.key = std::move(key);
  s.range_end = std::move(end);
  s.start_revision = start;
  return s;
}

// Events delivered to watch id `id` until `count` have come (or the deadline).
std::vector<Event> collect_events(Client& c, int64_t id, size_t count) {
  std::vector<Event> out;
  const auto until = Clock::now() + kDeadline;
  while (out.size() < count && Clock::now() < until) {
    auto d = c.next(std::chrono::milliseconds(200));
    if (!d || d->watch_id != id) continue;
    for (auto& e : d->events) out.push_back(std::move(e));
  }
  return out;
}

TEST(WatchHub, CreatedComesFirstAndIdsAreChosenAsEtcd) {
  FakeFsm f;
  Client c(f.hub);
  EXPECT_EQ(c.stream->create(spec("a"), 0), 0);
  EXPECT_EQ(c.stream->create(spec("b"), 5), 5);
  EXPECT_EQ(c.stream->create(spec("c"), 0), 1);
  EXPECT_EQ(c.stream->create(spec("d"), 5), -1);
  EXPECT_EQ(c.stream->create(spec("b", "a"), 0), -1);
  std::vector<Delivery> got;
  while (auto d = c.stream->next()) got.push_back(*d);
  ASSERT_EQ(got.size(), 5U);
  // In the order of the requests, as etcd's control stream sends them.
  for (size_t i : {0U, 1U, 2U}) {
    EXPECT_TRUE(got[i].created);
    EXPECT_FALSE(got[i].canceled);
    EXPECT_EQ(got[i].revision, 1);
  }
  EXPECT_EQ(got[1].watch_id, 5);
  EXPECT_TRUE(got[3].created && got[3].canceled);
  EXPECT_EQ(got[3].watch_id, -1);
  EXPECT_EQ(got[3].cancel_reason, kErrDuplicateWatchId);
  EXPECT_EQ(got[4].cancel_reason, kErrEmptyWatcherRange);
}

// A cancel right after the create used to drop the created response with
// the watcher's queue: the client never heard of the watch it cancelled.
TEST(WatchHub, ACancelRightAfterTheCreateStillSendsCreatedFirst) {
  FakeFsm f;
  f.put("k", "1");
  Client c(f.hub);
  const int64_t id = c.stream->create(spec("k", "", 1), 0);
  ASSERT_TRUE(c.stream->cancel(id));
  auto created = c.stream->next();
  ASSERT_TRUE(created.has_value());
  EXPECT_TRUE(created->created);
  EXPECT_EQ(created->watch_id, id);
  auto canceled = c.stream->next();
  ASSERT_TRUE(canceled.has_value());
  EXPECT_TRUE(canceled->canceled);
  EXPECT_FALSE(canceled->created);
}

TEST(WatchHub, MatchesKeysPrefixesFromKeyAndRangesWithFilters) {
  FakeFsm f;
  Client c(f.hub);
  const int64_t exact = c.stream->create(spec("foo"), 0);
  const int64_t prefix = c.stream->create(spec("fo", prefix_range_end("fo")), 0);
  const int64_t from_key = c.stream->create(spec("g", std::string(1, '\0')), 0);
  const int64_t range = c.stream->create(spec("b", "d"), 0);
  WatchSpec np = spec("foo");
  np.no_put = true;
  np.prev_kv = true;
  const int64_t no_put = c.stream->create(np, 0);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(c.next().has_value());  // created x5

  f.put("foo", "1");   // 2: exact, prefix
  f.put("fox", "1");   // 3: prefix
  f.put("c", "1");     // 4: range
  f.put("zz", "1");    // 5: from_key
  f.put("a", "1");     // 6: nobody
  f.del("foo");        // 7: exact, prefix, no_put (with prev_kv)
  std::map<int64_t, std::vector<int64_t>> revs;
  for (auto d = c.next(std::chrono::milliseconds(500)); d; d = c.next(std::chrono::milliseconds(200))) {
    for (const auto& e : d->events) revs[d->watch_id].push_back(e.kv.mod_revision);
    if (d->watch_id != no_put) {
      for (const auto& e : d->events) EXPECT_FALSE(e.prev_kv.has_value());
    } else {
      ASSERT_EQ(d->events.size(), 1U);
      EXPECT_EQ(d->events[0].type, Event::Type::kDelete);
      ASSERT_TRUE(d->events[0].prev_kv.has_value());
      EXPECT_EQ(d->events[0].prev_kv->value, "1");
    }
  }
  EXPECT_EQ(revs[exact], (std::vector<int64_t>{2, 7}));
  EXPECT_EQ(revs[prefix], (std::vector<int64_t>{2, 3, 7}));
  EXPECT_EQ(revs[range], (std::vector<int64_t>{4}));
  EXPECT_EQ(revs[from_key], (std::vector<int64_t>{5}));
  EXPECT_EQ(revs[no_put], (std::vector<int64_t>{7}));
}

TEST(WatchHub, ATxnsEventsComeInOneDelivery) {
  FakeFsm f;
  Client c(f.hub);
  const int64_t id = c.stream->create(spec("t", prefix_range_end("t")), 0);
  ASSERT_TRUE(c.next().has_value());
  const int64_t rev = f.txn({{"t1", "a"}, {"t2", "b"}, {"t3", "c"}});
  auto d = c.next();
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->watch_id, id);
  EXPECT_EQ(d->revision, rev);
  ASSERT_EQ(d->events.size(), 3U);
  for (const auto& e : d->events) EXPECT_EQ(e.kv.mod_revision, rev);
}

TEST(WatchHub, StartRevisionReplaysHistoryThenGoesLive) {
  FakeFsm f;
  for (int i = 0; i < 10; ++i) f.put("k", std::to_string(i));  // 2..11
  Client c(f.hub);
  const int64_t id = c.stream->create(spec("k", "", 4), 0);
  f.put("k", "live");  // 12
  auto events = collect_events(c, id, 9);
  ASSERT_EQ(events.size(), 9U);
  for (size_t i = 0; i < events.size(); ++i) EXPECT_EQ(events[i].kv.mod_revision, int64_t(4 + i));
  EXPECT_EQ(events.back().kv.value, "live");
  EXPECT_FALSE(c.next(std::chrono::milliseconds(100)).has_value());  // nothing twice
}

// A client resuming on a member that is behind asks for a revision the member
// has not reached: nothing before it may come, also when a snapshot install
// (at a revision still below it) sends every watcher through catch-up. The
// catch-up used to mark it synced from the snapshot's revision + 1, and the
// fault test's watchers got revisions they had already seen (duplicates).
TEST(WatchHub, AFutureStartRevisionSurvivesASnapshotInstallBelowIt) {
  FakeFsm f;
  for (int i = 0; i < 4; ++i) f.put("k", std::to_string(i));  // 2..5
  Client c(f.hub);
  const int64_t id = c.stream->create(spec("k", "", 20), 0);
  ASSERT_TRUE(c.next().has_value());  // created
  mvcc::Store snap;
  for (int i = 0; i < 7; ++i) {  // 2..8
    mvcc::PutRequest p;
    p.key = "k";
    p.value = "s" + std::to_string(i);
    ASSERT_TRUE(snap.put(p).is_ok());
  }
  f.restore(std::move(snap));
  // Catch-up done (against the store at 8) before the next writes.
  const auto until = Clock::now() + kDeadline;
  while (!c.stream->all_synced() && Clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ASSERT_TRUE(c.stream->all_synced());
  for (int i = 9; i <= 22; ++i) f.put("k", "v" + std::to_string(i));
  auto events = collect_events(c, id, 3);
  ASSERT_EQ(events.size(), 3U);
  for (size_t i = 0; i < events.size(); ++i) EXPECT_EQ(events[i].kv.mod_revision, int64_t(20 + i));
  EXPECT_FALSE(c.next(std::chrono::milliseconds(100)).has_value());
}

// A reader that does not read overflows its queue; it then catches up from
// history while writes go on concurrently, and sees every revision once, in order.
TEST(WatchHub, OverflowGoesUnsyncedAndCatchesUpWithoutGapOrDuplicate) {
  HubOptions o;
  o.max_pending_events_per_watcher = 8;
  o.replay_page_events = 3;
  FakeFsm f(o);
  Client c(f.hub);
  const int64_t id = c.stream->create(spec("k", prefix_range_end("k")), 0);
  ASSERT_TRUE(c.next().has_value());
  constexpr int kBefore = 200;
  constexpr int kDuring = 300;
  for (int i = 0; i < kBefore; ++i) f.put("k" + std::to_string(i % 7), std::to_string(i));
  EXPECT_FALSE(c.stream->all_synced());
  std::thread writer([&] {
    for (int i = 0; i < kDuring; ++i) {
      if (i % 50 == 0) {
        f.txn({{"kx" + std::to_string(i), "a"}, {"ky" + std::to_string(i), "b"}});
      } else {
        f.put("k" + std::to_string(i % 5), "d" + std::to_string(i));
      }
    }
  });
  const size_t total = kBefore + kDuring + kDuring / 50;  // each txn adds one more event
  auto events = collect_events(c, id, total);
  writer.join();
  ASSERT_EQ(events.size(), total);
  int64_t prev = 1;
  for (const auto& e : events) {
    EXPECT_GE(e.kv.mod_revision, prev);
    EXPECT_LE(e.kv.mod_revision, prev + 1);
    prev = e.kv.mod_revision;
  }
  EXPECT_EQ(prev, f.store.revision());
  EXPECT_FALSE(c.next(std::chrono::milliseconds(100)).has_value());
  EXPECT_TRUE(c.stream->all_synced());
}

TEST(WatchHub, AStartBelowTheCompactedRevisionIsCancelledWithIt) {
  FakeFsm f;
  for (int i = 0; i < 6; ++i) f.put("k", std::to_string(i));  // 2..7
  f.compact(5);
  Client c(f.hub);
  const int64_t id = c.stream->create(spec("k", "", 3), 0);
  auto created = c.next();
  ASSERT_TRUE(created && created->created);
  auto cancel = c.next();
  ASSERT_TRUE(cancel.has_value());
  EXPECT_EQ(cancel->watch_id, id);
  EXPECT_TRUE(cancel->canceled);
  EXPECT_EQ(cancel->compact_revision, 5);
  // At the compacted revision itself: replayed (etcd's rule is minRev < compactRev).
  const int64_t at = c.stream->create(spec("k", "", 5), 0);
  auto events = collect_events(c, at, 3);
  ASSERT_EQ(events.size(), 3U);
  EXPECT_EQ(events[0].kv.mod_revision, 5);
}

TEST(WatchHub, ALaggingWatcherWhoseNextRevisionIsCompactedIsCancelled) {
  HubOptions o;
  o.max_pending_events_per_watcher = 4;
  FakeFsm f(o);
  Client c(f.hub);
  const int64_t id = c.stream->create(spec("k"), 0);
  ASSERT_TRUE(c.next().has_value());
  for (int i = 0; i < 20; ++i) f.put("k", std::to_string(i));  // 2..21; queue holds 2..5
  f.compact(15);
  std::vector<int64_t> revs;
  std::optional<Delivery> cancel;
  for (auto d = c.next(); d; d = c.next(std::chrono::milliseconds(300))) {
    for (const auto& e : d->events) revs.push_back(e.kv.mod_revision);
    if (d->canceled) cancel = d;
  }
  EXPECT_EQ(revs, (std::vector<int64_t>{2, 3, 4, 5}));
  ASSERT_TRUE(cancel.has_value());
  EXPECT_EQ(cancel->watch_id, id);
  EXPECT_EQ(cancel->compact_revision, 15);
}

TEST(WatchHub, ProgressIsAnsweredOnceSyncedWithTheCurrentRevision) {
  HubOptions o;
  o.max_pending_events_per_watcher = 2;
  FakeFsm f(o);
  Client c(f.hub);
  c.stream->create(spec("k"), 0);
  for (int i = 0; i < 10; ++i) f.put("k", std::to_string(i));  // overflows: unsynced
  c.stream->request_progress();
  int64_t last_event = 0;
  std::optional<Delivery> progress;
  for (auto d = c.next(); d; d = c.next(std::chrono::milliseconds(300))) {
    if (d->watch_id == -1) {
      progress = d;
      EXPECT_EQ(last_event, 11);  // after every event up to its revision
    }
    for (const auto& e : d->events) last_event = e.kv.mod_revision;
  }
  ASSERT_TRUE(progress.has_value());
  EXPECT_EQ(progress->revision, 11);
  EXPECT_TRUE(progress->events.empty());
}

TEST(WatchHub, CancelDropsPendingAndAnswersOnce) {
  FakeFsm f;
  Client c(f.hub);
  const int64_t id = c.stream->create(spec("k"), 0);
  f.put("k", "1");
  EXPECT_TRUE(c.stream->cancel(id));
  EXPECT_FALSE(c.stream->cancel(id));
  auto created = c.next();
  ASSERT_TRUE(created.has_value() && created->created);
  auto d = c.next();
  ASSERT_TRUE(d.has_value());
  EXPECT_TRUE(d->canceled);
  EXPECT_EQ(d->watch_id, id);
  EXPECT_FALSE(c.next(std::chrono::milliseconds(100)).has_value());
  EXPECT_EQ(f.hub.stats().watchers, 0U);
  EXPECT_EQ(f.hub.stats().pending_bytes, 0U);
}

TEST(WatchHub, ProgressNotifyWatchersGetEmptyResponsesAtTheInterval) {
  HubOptions o;
  o.progress_notify_interval_ms = 50;
  FakeFsm f(o);
  Client c(f.hub);
  WatchSpec s = spec("k");
  s.progress_notify = true;
  const int64_t id = c.stream->create(s, 0);
  ASSERT_TRUE(c.next().has_value());
  f.put("other", "x");
  auto d = c.next(std::chrono::milliseconds(5000));
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->watch_id, id);
  EXPECT_TRUE(d->events.empty());
  EXPECT_EQ(d->revision, 2);
}

TEST(WatchHub, ClosingAStreamRemovesItsWatchers) {
  FakeFsm f;
  {
    Client c(f.hub);
    for (int i = 0; i < 5; ++i) c.stream->create(spec("k" + std::to_string(i)), 0);
    f.put("k1", "x");
    EXPECT_EQ(f.hub.stats().watchers, 5U);
  }
  EXPECT_EQ(f.hub.stats().watchers, 0U);
  EXPECT_EQ(f.hub.stats().streams, 0U);
  EXPECT_EQ(f.hub.stats().pending_bytes, 0U);
  f.put("k1", "y");  // nobody left to deliver to
}

// The recipes (election_service.cc) end a stream from its own wake: close()
// there must not wait for the wake that calls it (it did: a self-deadlock
// of the notifier thread, after which no stream was woken again).
TEST(WatchHub, AStreamMayBeClosedFromItsOwnWake) {
  FakeFsm f;
  std::promise<void> closed;
  std::unique_ptr<Stream> s;
  std::mutex mu;
  s = f.hub.open_stream([&] {
    std::lock_guard l(mu);
    if (!s) return;
    while (s->next()) {
    }
    s.reset();  // ~Stream closes it
    closed.set_value();
  });
  {
    std::lock_guard l(mu);
    s->create(spec("k"), 0);
  }
  f.put("k", "v");
  auto done = closed.get_future();
  ASSERT_EQ(done.wait_for(kDeadline), std::future_status::ready) << "the wake never returned from close()";
  // The notifier goes on: another stream is still woken.
  Client other(f.hub);
  other.stream->create(spec("j"), 0);
  f.put("j", "w");
  bool got_event = false;
  for (int i = 0; i < 3 && !got_event; ++i) {
    auto d = other.next();
    got_event = d && !d->events.empty();
  }
  EXPECT_TRUE(got_event);
  EXPECT_EQ(f.hub.stats().streams, 1U);
}

TEST(WatchHub, PrefixRangeEndIsEtcds) {
  EXPECT_EQ(prefix_range_end("abc"), "abd");
  EXPECT_EQ(prefix_range_end(std::string("a\xff", 2)), "b");
  EXPECT_EQ(prefix_range_end(std::string("\xff\xff", 2)), std::string(1, '\0'));
}

}  // namespace
}  // namespace ckv::watch
