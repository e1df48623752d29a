// The watch hub: index, pending queues, catch-up from history, notifications (see watch_hub.h).
#include "watch/watch_hub.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <optional>
#include <set>
#include <thread>
#include <utility>

#include "common/thread_name.h"

namespace ckv::watch {

std::string prefix_range_end(const std::string& prefix) {
  std::string end = prefix;
  while (!end.empty()) {
    if (static_cast<unsigned char>(end.back()) < 0xff) {
      end.back() = static_cast<char>(static_cast<unsigned char>(end.back()) + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');
}

namespace {

constexpr size_t kEventOverheadBytes = 64;  // a rough protobuf + bookkeeping cost per event

size_t event_bytes(const mvcc::Event& e) {
  size_t n = kEventOverheadBytes + e.kv.key.size() + e.kv.value.size();
  if (e.prev_kv) n += e.prev_kv->key.size() + e.prev_kv->value.size();
  return n;
}

bool is_from_key(const std::string& range_end) {
  return range_end.size() == 1 && range_end[0] == '\0';
}

}  // namespace

// Which index a watcher is in (by its range's shape).
enum class IndexKind { kExact, kPrefix, kFromKey, kRange };

struct Hub::Watcher {
  enum class State { kSynced, kUnsynced, kDead };
  int64_t id = 0;
  WatchSpec spec;
  IndexKind kind = IndexKind::kExact;
  Stream::State* stream = nullptr;
  State state = State::kSynced;
  // Synced: events below it are not this watcher's (a future start
  // revision). Unsynced: the first revision to replay.
  int64_t next_rev = 0;
  std::deque<std::pair<Delivery, size_t>> pending;  // with each one's bytes
  size_t pending_events = 0;
  size_t pending_bytes = 0;
  bool in_ready = false;
  bool in_unsynced = false;
  bool indexed = false;
  bool sent_since_tick = false;
};

struct Stream::State : std::enable_shared_from_this<Stream::State> {
  std::function<void()> wake;
  std::mutex wake_mu;       // held while wake runs; close() waits for it
  bool wake_closed = false;  // under wake_mu
  // The notifier while it runs wake: close() from inside wake must not wait for wake_mu.
  std::atomic<std::thread::id> waking{};
  // The rest under the hub's mu_.
  bool closed = false;
  bool notified = false;  // queued for wake, or woken and not yet drained by next()
  std::map<int64_t, Hub::WatcherPtr> watchers;
  int64_t next_id = 0;
  std::deque<Delivery> control;        // created-refusals, cancels, progress: before events
  std::deque<Hub::WatcherPtr> ready;   // watchers with pending deliveries
  bool progress_requested = false;
};

Hub::Hub(StoreReader reader, HubOptions options)
    : reader_(std::move(reader)), options_(options) {
  catch_up_thread_ = named_thread("ckv-watch-catch", [this] { catch_up_loop(); });
  notifier_thread_ = named_thread("ckv-watch-notif", [this] { notifier_loop(); });
}

Hub::~Hub() { stop(); }

void Hub::stop() {
  std::call_once(stopped_, [this] {
    {
      std::lock_guard l(mu_);
      stopping_ = true;
    }
    catch_up_cv_.notify_all();
    notify_cv_.notify_all();
    catch_up_thread_.join();
    notifier_thread_.join();
  });
}

Hub::Stats Hub::stats() const {
  std::lock_guard l(mu_);
  Stats s;
  s.streams = streams_.size();
  s.watchers = watchers_;
  for (const auto& w : unsynced_) s.unsynced += w->state == Watcher::State::kUnsynced ? 1 : 0;
  s.pending_bytes = pending_bytes_;
  s.revision = revision_;
  return s;
}

// ---- the index ------------------------------------------------------------

void Hub::index_add(const WatcherPtr& w) {
  Watcher* p = w.get();
  switch (w->kind) {
    case IndexKind::kExact:
      exact_[w->spec.key].push_back(p);
      break;
    case IndexKind::kPrefix:
      prefix_[w->spec.key].push_back(p);
      ++prefix_lengths_[w->spec.key.size()];
      break;
    case IndexKind::kFromKey:
      from_key_.emplace(w->spec.key, p);
      break;
    case IndexKind::kRange:
      ranges_.push_back(p);
      break;
  }
  w->indexed = true;
}

void Hub::index_remove(const WatcherPtr& w) {
  if (!w->indexed) return;
  w->indexed = false;
  Watcher* p = w.get();
  auto drop = [p](auto& map, const std::string& key) {
    auto it = map.find(key);
    if (it == map.end()) return;
    std::erase(it->second, p);
    if (it->second.empty()) map.erase(it);
  };
  switch (w->kind) {
    case IndexKind::kExact:
      drop(exact_, w->spec.key);
      break;
    case IndexKind::kPrefix: {
      drop(prefix_, w->spec.key);
      auto it = prefix_lengths_.find(w->spec.key.size());
      if (it != prefix_lengths_.end() && --it->second == 0) prefix_lengths_.erase(it);
      break;
    }
    case IndexKind::kFromKey: {
      auto [lo, hi] = from_key_.equal_range(w->spec.key);
      for (auto it = lo; it != hi; ++it) {
        if (it->second == p) {
          from_key_.erase(it);
          break;
        }
      }
      break;
    }
    case IndexKind::kRange:
      std::erase(ranges_, p);
      break;
  }
}

// Calls fn(watcher) for every indexed watcher whose range holds key, once each.
template <typename Fn>
void Hub::for_each_match(const std::string& key, Fn&& fn) {
  if (auto it = exact_.find(key); it != exact_.end()) {
    for (Watcher* w : it->second) fn(w);
  }
  // Only the prefix lengths some watcher uses are looked up, so a long key
  // costs the number of distinct lengths, not its length.
  if (!prefix_.empty()) {
    std::string p;
    for (const auto& [len, count] : prefix_lengths_) {
      if (len > key.size()) break;
      p.assign(key, 0, len);
      if (auto it = prefix_.find(p); it != prefix_.end()) {
        for (Watcher* w : it->second) fn(w);
      }
    }
  }
  for (auto it = from_key_.begin(), end = from_key_.upper_bound(key); it != end; ++it) fn(it->second);
  for (Watcher* w : ranges_) {
    if (key >= w->spec.key && key < w->spec.range_end) fn(w);
  }
}

// ---- queues ----------------------------------------------------------------

void Hub::notify(Stream::State& s) {
  if (s.notified || s.closed) return;
  s.notified = true;
  to_wake_.push_back(s.shared_from_this());
  notify_cv_.notify_one();
}

void Hub::enqueue(Stream::State& s, const WatcherPtr& w, Delivery d, size_t bytes) {
  w->pending_events += d.events.size();
  w->pending_bytes += bytes;
  pending_bytes_ += bytes;
  w->pending.emplace_back(std::move(d), bytes);
  if (!w->in_ready) {
    w->in_ready = true;
    s.ready.push_back(w);
  }
  notify(s);
}

void Hub::enqueue_control(Stream::State& s, Delivery d) {
  s.control.push_back(std::move(d));
  notify(s);
}

void Hub::make_unsynced(const WatcherPtr& w, int64_t next_rev) {
  w->state = Watcher::State::kUnsynced;
  w->next_rev = next_rev;
  if (!w->in_unsynced) {
    w->in_unsynced = true;
    unsynced_.push_back(w);
  }
  catch_up_cv_.notify_one();
}

void Hub::remove_watcher(Stream::State& s, const WatcherPtr& w) {
  index_remove(w);
  w->state = Watcher::State::kDead;
  pending_bytes_ -= w->pending_bytes;
  w->pending.clear();
  w->pending_events = 0;
  w->pending_bytes = 0;
  --watchers_;
  s.watchers.erase(w->id);
}

void Hub::maybe_answer_progress(Stream::State& s) {
  if (!s.progress_requested) return;
  for (const auto& [id, w] : s.watchers) {
    if (w->state == Watcher::State::kUnsynced || !w->pending.empty()) return;
  }
  s.progress_requested = false;
  Delivery d;
  d.watch_id = -1;  // etcd's InvalidWatchID: for every watcher of the stream
  d.revision = revision_;
  enqueue_control(s, std::move(d));
}

bool Hub::ready_for_replay(const Watcher& w) const {
  return w.pending_events < options_.max_pending_events_per_watcher / 2 &&
         w.pending_bytes < options_.max_pending_bytes_per_watcher / 2 &&
         pending_bytes_ < options_.max_pending_bytes_total / 2;
}

// ---- publishing (Raft thread) ------------------------------------------------

void Hub::publish(int64_t revision, const std::vector<mvcc::Event>& events) {
  std::lock_guard l(mu_);
  revision_ = revision;
  if (watchers_ == 0 || events.empty()) return;
  // The matching watchers in first-match order, with the events each gets.
  std::vector<std::pair<Watcher*, std::vector<size_t>>> hits;
  std::unordered_map<Watcher*, size_t> slot;
  for (size_t i = 0; i < events.size(); ++i) {
    const mvcc::Event& e = events[i];
    for_each_match(e.kv.key, [&](Watcher* w) {
      if (w->state != Watcher::State::kSynced || revision < w->next_rev) return;
      if (e.type == mvcc::Event::Type::kPut ? w->spec.no_put : w->spec.no_delete) return;
      auto [it, fresh] = slot.emplace(w, hits.size());
      if (fresh) hits.emplace_back(w, std::vector<size_t>{});
      hits[it->second].second.push_back(i);
    });
  }
  for (auto& [w, picks] : hits) {
    Delivery d;
    d.watch_id = w->id;
    d.revision = revision;
    d.fragment = w->spec.fragment;
    size_t bytes = 0;
    d.events.reserve(picks.size());
    for (size_t i : picks) {
      mvcc::Event e = events[i];
      if (!w->spec.prev_kv) e.prev_kv.reset();
      bytes += event_bytes(e);
      d.events.push_back(std::move(e));
    }
    WatcherPtr wp = w->stream->watchers.at(w->id);
    // Over a limit: this revision and what follows come from history
    // (catch-up) once the reader has drained its queue.
    if (w->pending_events + d.events.size() > options_.max_pending_events_per_watcher ||
        w->pending_bytes + bytes > options_.max_pending_bytes_per_watcher ||
        pending_bytes_ + bytes > options_.max_pending_bytes_total) {
      make_unsynced(wp, revision);
      continue;
    }
    w->next_rev = revision + 1;
    enqueue(*w->stream, wp, std::move(d), bytes);
  }
}

void Hub::restored(int64_t revision) {
  std::lock_guard l(mu_);
  const int64_t resume = revision_ + 1;  // every synced watcher had everything up to revision_
  revision_ = revision;
  for (const auto& s : streams_) {
    for (const auto& [id, w] : s->watchers) {
      if (w->state == Watcher::State::kSynced) make_unsynced(w, std::max(w->next_rev, resume));
    }
  }
}

// ---- streams -----------------------------------------------------------------

std::unique_ptr<Stream> Hub::open_stream(std::function<void()> wake) {
  std::lock_guard l(mu_);
  if (stopping_ || streams_.size() >= options_.max_streams) return nullptr;
  auto state = std::make_shared<Stream::State>();
  state->wake = std::move(wake);
  streams_.push_back(state);
  return std::unique_ptr<Stream>(new Stream(shared_from_this(), std::move(state)));
}

Stream::~Stream() { close(); }

void Stream::close() {
  {
    // After this no wake runs, and none is running (but the one calling
    // close, if any: it holds wake_mu already, which no other thread can).
    std::unique_lock wl(state_->wake_mu, std::defer_lock);
    if (state_->waking.load() != std::this_thread::get_id()) wl.lock();
    state_->wake_closed = true;
  }
  std::lock_guard l(hub_.mu_);
  if (state_->closed) return;
  state_->closed = true;
  while (!state_->watchers.empty()) {
    Hub::WatcherPtr w = state_->watchers.begin()->second;
    hub_.remove_watcher(*state_, w);
  }
  state_->control.clear();
  state_->ready.clear();
  std::erase(hub_.streams_, state_);
}

int64_t Stream::create(const WatchSpec& in, int64_t requested_id) {
  WatchSpec spec = in;
  if (spec.key.empty()) spec.key.assign(1, '\0');  // etcd: "\0" is the smallest key
  int64_t id = -1;
  hub_.reader_([&](const mvcc::Store& store) {
    std::lock_guard l(hub_.mu_);
    State& s = *state_;
    if (s.closed) return;
    Delivery d;
    d.created = true;
    d.revision = store.revision();
    auto refuse = [&](std::string reason) {
      d.watch_id = -1;
      d.canceled = true;
      d.cancel_reason = std::move(reason);
      hub_.enqueue_control(s, std::move(d));
    };
    if (!spec.range_end.empty() && !is_from_key(spec.range_end) && spec.key >= spec.range_end) {
      return refuse(kErrEmptyWatcherRange);
    }
    if (s.watchers.size() >= hub_.options_.max_watchers_per_stream) {
      return refuse("consensuskv: too many watchers on this stream (limit " +
                    std::to_string(hub_.options_.max_watchers_per_stream) + ")");
    }
    if (hub_.watchers_ >= hub_.options_.max_watchers) {
      return refuse("consensuskv: too many watchers on this member (limit " +
                    std::to_string(hub_.options_.max_watchers) + ")");
    }
    int64_t chosen = requested_id;
    if (chosen == 0) {
      // etcd 3.4's AutoWatchID: the stream's next id, skipping taken ones.
      while (s.watchers.count(s.next_id) != 0) ++s.next_id;
      chosen = s.next_id++;
    } else if (s.watchers.count(chosen) != 0) {
      return refuse(kErrDuplicateWatchId);
    }
    auto w = std::make_shared<Hub::Watcher>();
    w->id = chosen;
    w->spec = spec;
    w->stream = &s;
    if (spec.range_end.empty()) {
      w->kind = IndexKind::kExact;
    } else if (is_from_key(spec.range_end)) {
      w->kind = IndexKind::kFromKey;
    } else if (spec.range_end == prefix_range_end(spec.key)) {
      w->kind = IndexKind::kPrefix;
    } else {
      w->kind = IndexKind::kRange;
    }
    s.watchers.emplace(chosen, w);
    ++hub_.watchers_;
    hub_.index_add(w);
    d.watch_id = chosen;
    // In the control queue, which next() empties before any watcher's
    // queue: the created response precedes the watcher's events, and a
    // cancel right after cannot drop it.
    hub_.enqueue_control(s, std::move(d));
    // While the shared lock is held the store is at store.revision(): a
    // watcher from the next one is synced now; an older start replays.
    const int64_t start = spec.start_revision > 0 ? spec.start_revision : store.revision() + 1;
    if (start <= store.revision()) {
      hub_.make_unsynced(w, start);
    } else {
      w->state = Hub::Watcher::State::kSynced;
      w->next_rev = start;
    }
    id = chosen;
  });
  return id;
}

bool Stream::cancel(int64_t watch_id) {
  std::lock_guard l(hub_.mu_);
  State& s = *state_;
  auto it = s.watchers.find(watch_id);
  if (s.closed || it == s.watchers.end()) return false;
  Hub::WatcherPtr w = it->second;
  hub_.remove_watcher(s, w);
  Delivery d;
  d.watch_id = watch_id;
  d.revision = hub_.revision_;
  d.canceled = true;
  hub_.enqueue_control(s, std::move(d));
  // A progress request waiting on this watcher may be answerable now.
  hub_.maybe_answer_progress(s);
  return true;
}

void Stream::request_progress() {
  std::lock_guard l(hub_.mu_);
  if (state_->closed) return;
  state_->progress_requested = true;
  hub_.maybe_answer_progress(*state_);
}

std::optional<Delivery> Stream::next() {
  std::lock_guard l(hub_.mu_);
  State& s = *state_;
  if (s.closed) return std::nullopt;
  for (int round = 0; round < 2; ++round) {
    if (!s.control.empty()) {
      Delivery d = std::move(s.control.front());
      s.control.pop_front();
      return d;
    }
    while (!s.ready.empty()) {
      Hub::WatcherPtr w = std::move(s.ready.front());
      s.ready.pop_front();
      w->in_ready = false;
      if (w->pending.empty()) continue;
      auto [d, bytes] = std::move(w->pending.front());
      w->pending.pop_front();
      w->pending_events -= d.events.size();
      w->pending_bytes -= bytes;
      hub_.pending_bytes_ -= bytes;
      if (!w->pending.empty()) {
        w->in_ready = true;
        s.ready.push_back(w);
      }
      if (!d.events.empty()) w->sent_since_tick = true;
      // Draining may let this (or, through the total, another) watcher catch up.
      if (!hub_.unsynced_.empty()) hub_.catch_up_cv_.notify_one();
      return std::move(d);
    }
    // Everything sent: a progress request may be answerable.
    hub_.maybe_answer_progress(s);
  }
  s.notified = false;
  return std::nullopt;
}

size_t Stream::watcher_count() const {
  std::lock_guard l(hub_.mu_);
  return state_->watchers.size();
}

bool Stream::all_synced() const {
  std::lock_guard l(hub_.mu_);
  for (const auto& [id, w] : state_->watchers) {
    if (w->state == Hub::Watcher::State::kUnsynced) return false;
  }
  return true;
}

// ---- catch-up ----------------------------------------------------------------

void Hub::catch_up_loop() {
  std::unique_lock l(mu_);
  while (!stopping_) {
    WatcherPtr pick;
    for (size_t n = unsynced_.size(); n > 0 && !pick; --n) {
      WatcherPtr w = std::move(unsynced_.front());
      unsynced_.pop_front();
      if (w->state != Watcher::State::kUnsynced) {
        w->in_unsynced = false;  // synced or gone: leaves the rotation
        continue;
      }
      if (ready_for_replay(*w)) pick = w;
      unsynced_.push_back(std::move(w));  // stays in the rotation until synced
    }
    if (!pick) {
      catch_up_cv_.wait(l);
      continue;
    }
    l.unlock();
    replay(pick);
    l.lock();
  }
}

void Hub::replay(const WatcherPtr& w) {
  reader_([&](const mvcc::Store& store) {
    int64_t from = 0;
    {
      std::lock_guard l(mu_);
      if (w->state != Watcher::State::kUnsynced) return;
      from = w->next_rev;
    }
    // The query runs without the hub's lock (other streams go on); no write
    // can be applied meanwhile, and only this thread moves an unsynced
    // watcher's next_rev.
    std::optional<mvcc::Store::EventPage> page;
    if (from >= store.compact_revision()) {
      auto got = store.events_between(w->spec.key, w->spec.range_end, from, store.revision(),
                                      options_.replay_page_events);
      if (got.is_ok()) page = std::move(got).value();
    }
    std::lock_guard l(mu_);
    if (w->state != Watcher::State::kUnsynced || w->next_rev != from) return;
    Stream::State& s = *w->stream;
    if (!page) {
      // etcd: cancelled with the compacted revision (and a header revision
      // of 0, as etcd's chooseAll sends it); the client resumes from there.
      index_remove(w);
      w->state = Watcher::State::kDead;
      Delivery d;
      d.watch_id = w->id;
      d.canceled = true;
      d.compact_revision = store.compact_revision();
      enqueue(s, w, std::move(d), 0);
      return;
    }
    Delivery d;
    d.watch_id = w->id;
    d.revision = store.revision();
    d.fragment = w->spec.fragment;
    size_t bytes = 0;
    for (mvcc::Event& e : page->events) {
      if (e.type == mvcc::Event::Type::kPut ? w->spec.no_put : w->spec.no_delete) continue;
      if (!w->spec.prev_kv) e.prev_kv.reset();
      bytes += event_bytes(e);
      d.events.push_back(std::move(e));
    }
    if (!d.events.empty()) enqueue(s, w, std::move(d), bytes);
    if (page->next > store.revision()) {
      // Synced before the shared lock is released: the next write's publish
      // finds it synced, and nothing up to store.revision() comes again. A
      // start beyond the store (a client resuming on a member that is behind,
      // sent here by a snapshot install) stays where it was: etcd's minRev.
      w->state = Watcher::State::kSynced;
      w->next_rev = std::max(from, store.revision() + 1);
      maybe_answer_progress(s);
    } else {
      w->next_rev = page->next;
    }
  });
}

// ---- notifications -------------------------------------------------------------

void Hub::notifier_loop() {
  using Clock = std::chrono::steady_clock;
  const auto interval = std::chrono::milliseconds(std::max<int64_t>(options_.progress_notify_interval_ms, 1));
  auto next_tick = Clock::now() + interval;
  std::unique_lock l(mu_);
  while (!stopping_) {
    if (to_wake_.empty()) notify_cv_.wait_until(l, next_tick);
    if (stopping_) break;
    if (Clock::now() >= next_tick) {
      progress_tick();
      next_tick = Clock::now() + interval;
    }
    std::deque<std::shared_ptr<Stream::State>> batch;
    batch.swap(to_wake_);
    l.unlock();
    for (const auto& s : batch) {
      std::lock_guard wl(s->wake_mu);
      if (s->wake_closed || !s->wake) continue;
      s->waking.store(std::this_thread::get_id());
      s->wake();
      s->waking.store(std::thread::id{});
    }
    l.lock();
  }
}

void Hub::progress_tick() {
  // etcd's sendLoop: a progress_notify watcher that got no events since the
  // last tick gets a response with no events at the current revision, if synced.
  for (const auto& s : streams_) {
    for (const auto& [id, w] : s->watchers) {
      if (!w->spec.progress_notify) continue;
      if (w->sent_since_tick) {
        w->sent_since_tick = false;
        continue;
      }
      if (w->state != Watcher::State::kSynced || !w->pending.empty()) continue;
      Delivery d;
      d.watch_id = w->id;
      d.revision = revision_;
      enqueue(*s, w, std::move(d), 0);
    }
  }
}

}  // namespace ckv::watch
