// etcd's v3lock recipe (clientv3/concurrency.Mutex) on this node's request layers (see lock_service.h).
#include "etcd/lock_service.h"

#include <mutex>
#include <unordered_map>
#include <utility>

#include <spdlog/spdlog.h>

#include "etcd/lease_service.h"
#include "etcd/recipe_support.h"
#include "etcd/server_errors.h"
#include "node/node.h"
#include "watch/watch_hub.h"

namespace ckv::etcd {

std::string lock_key(const std::string& name, int64_t lease) { return session_key(name + "/", lease); }

namespace {

// One Lock call from its first request to its answer.
struct Attempt : RecipeWaiter<LockDone> {
  bool cancelled = false;  // under mu
};

using AttemptPtr = std::shared_ptr<Attempt>;

}  // namespace

class LockService::Impl : public std::enable_shared_from_this<LockService::Impl> {
 public:
  Impl(node::Node& node, KvService& kv, LeaseService& lease) : node_(node), kv_(kv), lease_(lease) {}

  Cancel lock(std::string name, int64_t lease, KvCall call, LockDone done) {
    auto a = std::make_shared<Attempt>();
    a->name = std::move(name);
    a->prefix = a->name + "/";
    a->lease = lease;
    a->call = std::move(call);
    a->done = std::move(done);
    const char* refusal = nullptr;
    {
      std::lock_guard l(mu_);
      if (stopped_) {
        refusal = kErrStopped;
      } else if (attempts_.size() >= kMaxWaitingLocks) {
        refusal = kErrTooManyRequests;
      } else {
        a->id = next_id_++;
        attempts_.emplace(a->id, a);
      }
    }
    if (refusal != nullptr) {
      if (refusal == kErrTooManyRequests) {
        spdlog::warn("refused a Lock on {:?}: {} lock calls already wait here", a->name, kMaxWaitingLocks);
      }
      LockDone done = std::move(a->done);
      done(Status(StatusCode::kUnavailable, refusal));
      return [] {};
    }
    if (a->lease != 0) {
      take(a);
    } else {
      LeaseCall lc{a->call.forwarded, a->call.credentials};
      lease_.grant(lease::GrantRequest{0, kLockSessionTtlSec}, lc,
                   [self = shared_from_this(), a](Result<KvAnswer<lease::GrantResponse>> r) {
                     if (!r.is_ok()) return self->fail(a, r.status());
                     a->lease = r.value().body.id;
                     self->take(a);
                   });
    }
    return [weak_self = weak_from_this(), weak = std::weak_ptr<Attempt>(a)] {
      auto self = weak_self.lock();
      auto a = weak.lock();
      if (!self || !a) return;
      {
        std::lock_guard l(a->mu);
        if (!a->done || a->cancelled) return;
        a->cancelled = true;
      }
      self->fail(a, Status(StatusCode::kUnavailable, "context canceled"));
    };
  }

  void unlock(std::string key, KvCall call, UnlockDone done) {
    mvcc::DeleteRangeRequest d;
    d.key = std::move(key);
    kv_.delete_range(std::move(d), std::move(call), [done = std::move(done)](Result<KvAnswer<mvcc::DeleteRangeResponse>> r) {
      if (!r.is_ok()) return done(r.status());
      done(UnlockAnswer{r.value().header});
    });
  }

  void stop() {
    std::vector<AttemptPtr> waiting;
    {
      std::lock_guard l(mu_);
      stopped_ = true;
      for (auto& [id, a] : attempts_) waiting.push_back(a);
    }
    for (const AttemptPtr& a : waiting) finish(a, Status(StatusCode::kUnavailable, kErrStopped));
  }

 private:
  // The take txn: if our key was never created, create it; read it otherwise; and read the oldest holder.
  void take(const AttemptPtr& a) {
    if (is_over(a)) return;  // cancelled while the lease was granted
    {
      std::lock_guard l(a->mu);
      a->key = lock_key(a->name, a->lease);
    }
    mvcc::Compare never_created;
    never_created.target = mvcc::Compare::CompareTarget::kCreate;
    never_created.result = mvcc::Compare::CompareResult::kEqual;
    never_created.key = a->key;
    never_created.create_revision = 0;
    mvcc::PutRequest put;
    put.key = a->key;
    put.lease = a->lease;
    mvcc::RangeRequest get;
    get.key = a->key;
    mvcc::TxnRequest t;
    t.compare.push_back(std::move(never_created));
    t.success = {mvcc::RequestOp{std::move(put)}, op(oldest_under(a->prefix))};
    t.failure = {op(std::move(get)), op(oldest_under(a->prefix))};
    kv_.txn(std::move(t), a->call, [self = shared_from_this(), a](Result<KvAnswer<mvcc::TxnResponse>> r) {
      if (!r.is_ok()) return self->finish(a, r.status());
      const mvcc::TxnResponse& t = r.value().body;
      const mvcc::RangeResponse* mine = t.succeeded ? nullptr : range_at(t, 0);
      const mvcc::RangeResponse* owner = range_at(t, 1);
      if (owner == nullptr || (!t.succeeded && (mine == nullptr || mine->kvs.empty()))) {
        return self->finish(a, Status(StatusCode::kIo, "lock: unexpected txn answer"));
      }
      {
        std::lock_guard l(a->mu);
        a->rev = t.succeeded ? t.header.revision : mine->kvs[0].create_revision;
      }
      if (self->is_over(a)) return self->release(a);  // cancelled while the txn ran
      if (owner->kvs.empty() || owner->kvs[0].create_revision == a->rev) {
        return self->finish(a, LockAnswer{r.value().header, a->key});
      }
      self->wait_for_earlier(a);
    });
  }

  // etcd's waitDeletes: the newest key created before ours, if any, and our own key (still there?).
  void wait_for_earlier(const AttemptPtr& a) {
    if (is_over(a)) return;
    mvcc::RangeRequest mine;
    mine.key = a->key;
    mvcc::TxnRequest t;  // reads only: served as a read, no log entry
    t.success = {op(newest_before(a->prefix, a->rev - 1)), op(std::move(mine))};
    kv_.txn(std::move(t), a->call, [self = shared_from_this(), a](Result<KvAnswer<mvcc::TxnResponse>> r) {
      if (!r.is_ok()) return self->fail(a, r.status());
      const mvcc::TxnResponse& t = r.value().body;
      const mvcc::RangeResponse* earlier = range_at(t, 0);
      const mvcc::RangeResponse* mine = range_at(t, 1);
      if (earlier == nullptr || mine == nullptr) return self->fail(a, Status(StatusCode::kIo, "lock: unexpected txn answer"));
      if (!earlier->kvs.empty()) return self->watch_delete(a, earlier->kvs[0].key, t.header.revision + 1);
      // First in line. Our key's lease may have ended while we waited: then there is nothing to hold.
      if (mine->kvs.empty() || mine->kvs[0].create_revision != a->rev) {
        return self->finish(a, Status(StatusCode::kNotFound, kErrLockSessionExpired));
      }
      self->finish(a, LockAnswer{r.value().header, a->key});
    });
  }

  // Waits for `key` to be deleted at or after revision `from`, then looks again.
  void watch_delete(const AttemptPtr& a, const std::string& key, int64_t from) {
    const std::shared_ptr<SingleWatch> w = waiter_watch(*a, node_.watch_hub());
    if (!w) return;
    // The notifier thread: finish may close the watch from there (recipe_support.h).
    auto again = [self = weak_from_this(), weak = std::weak_ptr<Attempt>(a)] {
      auto s = self.lock();
      auto at = weak.lock();
      if (s && at) s->wait_for_earlier(at);
    };
    if (!etcd::watch_delete(*w, key, from, std::move(again)) && !is_over(a)) {
      spdlog::warn("a Lock on {:?} cannot wait: no watch stream left", a->name);
      fail(a, Status(StatusCode::kUnavailable, kErrTooManyRequests));
    }
  }

  bool is_over(const AttemptPtr& a) {
    std::lock_guard l(a->mu);
    return !a->done;
  }

  // A failed attempt gives its key up (etcd's Mutex.Lock unlocks on a failed wait), then answers.
  void fail(const AttemptPtr& a, Status s) {
    release(a);
    finish(a, std::move(s));
  }

  void release(const AttemptPtr& a) {
    mvcc::DeleteRangeRequest d;
    {
      std::lock_guard l(a->mu);
      if (a->rev <= 0) return;  // no key of ours known
      d.key = a->key;
    }
    kv_.delete_range(d, a->call, [key = d.key](Result<KvAnswer<mvcc::DeleteRangeResponse>> r) {
      if (!r.is_ok()) spdlog::warn("could not delete the key {:?} of a failed Lock: {}", key, r.status().to_string());
    });
  }

  void finish(const AttemptPtr& a, Result<LockAnswer> r) {
    LockDone done;
    std::shared_ptr<SingleWatch> watch;
    {
      std::lock_guard l(a->mu);
      if (!a->done) return;
      done = std::move(a->done);
      a->done = nullptr;
      watch = std::move(a->watch);
    }
    if (watch) watch->close();  // outside a->mu: close waits for a running delivery, which takes it
    {
      std::lock_guard l(mu_);
      attempts_.erase(a->id);
    }
    done(std::move(r));
  }

  node::Node& node_;
  KvService& kv_;
  LeaseService& lease_;
  std::mutex mu_;
  bool stopped_ = false;
  uint64_t next_id_ = 1;
  std::unordered_map<uint64_t, AttemptPtr> attempts_;  // not answered yet
};

LockService::LockService(node::Node& node, KvService& kv, LeaseService& lease)
    : impl_(std::make_shared<Impl>(node, kv, lease)) {}

LockService::~LockService() { stop(); }

LockService::Cancel LockService::lock(std::string name, int64_t lease, KvCall call, LockDone done) {
  return impl_->lock(std::move(name), lease, std::move(call), std::move(done));
}

void LockService::unlock(std::string key, KvCall call, UnlockDone done) {
  impl_->unlock(std::move(key), std::move(call), std::move(done));
}

void LockService::stop() { impl_->stop(); }

}  // namespace ckv::etcd
