// The concurrency recipes' shared key, reads and single watch (see recipe_support.h).
#include "etcd/recipe_support.h"

#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <optional>
#include <utility>
#include <vector>

namespace ckv::etcd {

std::string session_key(const std::string& prefix, int64_t lease) {
  char hex[24];
  const uint64_t magnitude = lease < 0 ? 0 - static_cast<uint64_t>(lease) : static_cast<uint64_t>(lease);
  std::snprintf(hex, sizeof hex, "%s%" PRIx64, lease < 0 ? "-" : "", magnitude);
  return prefix + hex;
}

mvcc::RangeRequest oldest_under(const std::string& prefix) {
  mvcc::RangeRequest r;
  r.key = prefix;
  r.range_end = watch::prefix_range_end(prefix);
  r.sort_target = mvcc::SortTarget::kCreate;
  r.sort_order = mvcc::SortOrder::kAscend;
  r.limit = 1;
  return r;
}

mvcc::RangeRequest newest_before(const std::string& prefix, int64_t rev) {
  mvcc::RangeRequest r = oldest_under(prefix);
  r.sort_order = mvcc::SortOrder::kDescend;
  r.max_create_revision = rev;
  return r;
}

const mvcc::RangeResponse* range_at(const mvcc::TxnResponse& t, size_t i) {
  if (i >= t.responses.size()) return nullptr;
  return std::get_if<mvcc::RangeResponse>(&t.responses[i].response);
}

struct SingleWatch::State {
  std::mutex mu;  // guards what follows; never held while calling on_delivery or closing the stream
  std::unique_ptr<watch::Stream> stream;
  bool closed = false;
  // The current watcher's id. Ids count up from 1 (not the stream's lowest
  // free id), so a late delivery of an earlier watcher is never taken for its.
  int64_t id = 0;
  OnDelivery on_delivery;
};

void SingleWatch::deliver(const std::shared_ptr<State>& s) {
  std::vector<watch::Delivery> mine;
  {
    std::lock_guard l(s->mu);
    if (s->closed || !s->stream) return;
    while (std::optional<watch::Delivery> d = s->stream->next()) {
      const bool refused = d->watch_id == -1 && d->canceled && d->created;
      if (d->watch_id == s->id || refused) mine.push_back(std::move(*d));
    }
  }
  for (const watch::Delivery& d : mine) {
    OnDelivery on;
    {
      std::lock_guard l(s->mu);
      // A watch() or close() by an earlier delivery's callback outdates the rest.
      if (s->closed || (d.watch_id != s->id && d.watch_id != -1)) continue;
      on = s->on_delivery;
    }
    on(d);
  }
}

SingleWatch::SingleWatch(watch::Hub& hub) : hub_(hub), state_(std::make_shared<State>()) {}

SingleWatch::~SingleWatch() { close(); }

bool SingleWatch::watch(const watch::WatchSpec& spec, OnDelivery on_delivery) {
  std::lock_guard l(state_->mu);
  if (state_->closed) return false;
  if (!state_->stream) {
    state_->stream = hub_.open_stream([weak = std::weak_ptr<State>(state_)] {
      if (auto s = weak.lock()) deliver(s);
    });
    if (!state_->stream) return false;
  }
  if (state_->id > 0) state_->stream->cancel(state_->id);
  state_->on_delivery = std::move(on_delivery);
  state_->id += 1;
  // The hub takes the lock of the store, never ours: creating under our lock is safe.
  state_->stream->create(spec, state_->id);
  return true;
}

void SingleWatch::close() {
  std::unique_ptr<watch::Stream> stream;
  {
    std::lock_guard l(state_->mu);
    state_->closed = true;
    state_->on_delivery = nullptr;
    stream = std::move(state_->stream);
  }
  if (stream) stream->close();  // outside mu: close waits for a running deliver, which takes mu
}

bool watch_delete(SingleWatch& w, const std::string& key, int64_t from, std::function<void()> on_gone) {
  watch::WatchSpec spec;
  spec.key = key;
  spec.start_revision = from;
  spec.no_put = true;  // only a delete moves a waiter on
  auto fired = std::make_shared<std::atomic<bool>>(false);
  return w.watch(spec, [fired, on_gone = std::move(on_gone)](const watch::Delivery& d) {
    if (!d.canceled && d.events.empty()) return;  // its created response
    if (!fired->exchange(true)) on_gone();
  });
}

}  // namespace ckv::etcd
