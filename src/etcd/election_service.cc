// etcd's v3election recipe (clientv3/concurrency.Election) on this node's request layers (see election_service.h).
#include "etcd/election_service.h"

#include <deque>
#include <optional>
#include <vector>
#include <mutex>
#include <unordered_map>
#include <utility>

#include <spdlog/spdlog.h>

#include "etcd/cluster_view.h"
#include "etcd/lease_service.h"
#include "etcd/recipe_support.h"
#include "etcd/server_errors.h"
#include "node/node.h"
#include "watch/watch_hub.h"

namespace ckv::etcd {

std::string election_key(const std::string& name, int64_t lease) { return session_key(name + "/", lease); }

namespace {

// One Campaign call from its first request to its answer.
struct Campaign : RecipeWaiter<CampaignDone> {
  std::string value;
  Header header;  // the take txn's, under mu as key and rev: the answer's header (etcd's e.hdr)
};

using CampaignPtr = std::shared_ptr<Campaign>;

// One Observe call: its updates wait in `backlog` for the consumer.
struct Observer {
  uint64_t id = 0;
  std::string prefix;  // name + "/"
  KvCall call;

  std::recursive_mutex wake_mu;  // held while wake runs: close() waits for it (recursive: close from wake)
  std::function<void()> wake;    // under wake_mu; empty once closed

  std::mutex mu;  // guards what follows; never held while calling a request layer, wake, or closing the watch
  std::deque<LeaderAnswer> backlog;
  std::optional<Status> end;  // set once over
  bool closed = false;        // by its consumer
  bool dropped_logged = false;
  std::shared_ptr<SingleWatch> watch;  // the prefix's first put, or the leader key's changes
  uint64_t step = 0;                   // counts reads and watches: a delivery of an earlier one is ignored
};

using ObserverPtr = std::shared_ptr<Observer>;

mvcc::Compare created_at(const std::string& key, int64_t rev) {  // etcd's Compare(CreateRevision(key), "=", rev)
  mvcc::Compare c;
  c.target = mvcc::Compare::CompareTarget::kCreate;
  c.result = mvcc::Compare::CompareResult::kEqual;
  c.key = key;
  c.create_revision = rev;
  return c;
}

mvcc::PutRequest put_of(const std::string& key, const std::string& value, int64_t lease) {
  mvcc::PutRequest p;
  p.key = key;
  p.value = value;
  p.lease = lease;
  return p;
}

Status unexpected_answer() { return Status(StatusCode::kIo, "election: unexpected txn answer"); }

}  // namespace

class ElectionService::Impl : public std::enable_shared_from_this<ElectionService::Impl> {
 public:
  Impl(node::Node& node, KvService& kv, LeaseService& lease) : node_(node), kv_(kv), lease_(lease) {}

  // ---- Campaign -------------------------------------------------------------------

  Cancel campaign(std::string name, int64_t lease, std::string value, KvCall call, CampaignDone done) {
    auto c = std::make_shared<Campaign>();
    c->name = std::move(name);
    c->prefix = c->name + "/";
    c->value = std::move(value);
    c->lease = lease;
    c->call = std::move(call);
    c->done = std::move(done);
    if (const char* refusal = admit(campaigns_, c, kMaxWaitingCampaigns)) {
      if (refusal == kErrTooManyRequests) {
        spdlog::warn("refused a Campaign on {:?}: {} campaigns already wait here", c->name, kMaxWaitingCampaigns);
      }
      CampaignDone d = std::move(c->done);
      d(Status(StatusCode::kUnavailable, refusal));
      return [] {};
    }
    with_session(c->lease, c->call, [self = shared_from_this(), c](Result<int64_t> id) {
      if (!id.is_ok()) return (void)self->finish(c, id.status());
      c->lease = id.value();
      self->take(c);
    });
    return [weak_self = weak_from_this(), weak = std::weak_ptr<Campaign>(c)] {
      auto self = weak_self.lock();
      auto c = weak.lock();
      if (!self || !c) return;
      // etcd's Campaign on a cancelled context: fail, and resign (nothing before the key exists: then
      // the take txn's answer resigns). Only a campaign this cancel answered: never a won one.
      if (self->finish(c, Status(StatusCode::kUnavailable, "context canceled"))) self->resign_key(c);
    };
  }

  // ---- Proclaim, Resign, Leader ---------------------------------------------------

  void proclaim(std::optional<LeaderKey> leader, std::string value, KvCall call, ElectionHeaderDone done) {
    if (!leader) return done(Status(StatusCode::kInvalid, kErrMissingLeaderKey));
    const int64_t lease = leader->lease;
    with_session(lease, call, [self = shared_from_this(), l = std::move(*leader), value = std::move(value), call,
                                       done = std::move(done)](const Result<int64_t>& id) mutable {
      if (!id.is_ok()) return done(id.status());
      self->proclaim_txn(l.key, l.rev, value, id.value(), std::move(call), std::move(done));
    });
  }

  void resign(std::optional<LeaderKey> leader, KvCall call, ElectionHeaderDone done) {
    if (!leader) return done(Status(StatusCode::kInvalid, kErrMissingLeaderKey));
    const int64_t lease = leader->lease;
    with_session(lease, call, [self = shared_from_this(), l = std::move(*leader), call,
                                       done = std::move(done)](const Result<int64_t>& id) mutable {
      if (!id.is_ok()) return done(id.status());
      self->resign_txn(l.key, l.rev, std::move(call), std::move(done));
    });
  }

  void leader(const std::string& name, KvCall call, LeaderDone done) {
    kv_.range(oldest_under(name + "/"), std::move(call),
              [done = std::move(done)](Result<KvAnswer<mvcc::RangeResponse>> r) {
                if (!r.is_ok()) return done(r.status());
                if (r.value().body.kvs.empty()) return done(Status(StatusCode::kNotFound, kErrElectionNoLeader));
                done(LeaderAnswer{r.value().header, std::move(r.value().body.kvs[0])});
              });
  }

  // ---- Observe --------------------------------------------------------------------

  std::shared_ptr<Observer> observe(std::string name, KvCall call, std::function<void()> wake) {
    auto o = std::make_shared<Observer>();
    o->prefix = std::move(name) + "/";
    o->call = std::move(call);
    o->wake = std::move(wake);
    if (const char* refusal = admit(observers_, o, kMaxObservers)) {
      if (refusal == kErrTooManyRequests) {
        spdlog::warn("refused an Observe on {:?}: {} observers already here", o->prefix, kMaxObservers);
      }
      std::lock_guard l(o->mu);
      o->end = Status(StatusCode::kUnavailable, refusal);
      return o;
    }
    read_leader(o, 0);
    return o;
  }

  // The consumer's close: no wake after it returns.
  void close(const ObserverPtr& o) {
    std::shared_ptr<SingleWatch> watch;
    {
      std::lock_guard l(o->mu);
      o->closed = true;
      watch = std::move(o->watch);
    }
    if (watch) watch->close();
    {
      std::lock_guard l(o->wake_mu);
      o->wake = nullptr;
    }
    forget(observers_, o->id);
  }

  static std::optional<LeaderAnswer> next(Observer& o) {
    std::lock_guard l(o.mu);
    if (o.backlog.empty()) return std::nullopt;
    LeaderAnswer a = std::move(o.backlog.front());
    o.backlog.pop_front();
    return a;
  }

  static std::optional<Status> ended(Observer& o) {
    std::lock_guard l(o.mu);
    if (!o.backlog.empty()) return std::nullopt;
    return o.end;
  }

  void stop() {
    std::vector<CampaignPtr> waiting;
    std::vector<ObserverPtr> observing;
    {
      std::lock_guard l(mu_);
      stopped_ = true;
      for (auto& [id, c] : campaigns_) waiting.push_back(c);
      for (auto& [id, o] : observers_) observing.push_back(o);
    }
    for (const CampaignPtr& c : waiting) finish(c, Status(StatusCode::kUnavailable, kErrStopped));
    for (const ObserverPtr& o : observing) end(o, Status(StatusCode::kUnavailable, kErrStopped));
  }

 private:
  template <typename T>
  using Registry = std::unordered_map<uint64_t, std::shared_ptr<T>>;

  // Registers x unless stopped or `limit` are registered: the refusal's text, or null.
  template <typename T>
  const char* admit(Registry<T>& registry, const std::shared_ptr<T>& x, size_t limit) {
    std::lock_guard l(mu_);
    if (stopped_) return kErrStopped;
    if (registry.size() >= limit) return kErrTooManyRequests;
    x->id = next_id_++;
    registry.emplace(x->id, x);
    return nullptr;
  }

  template <typename T>
  void forget(Registry<T>& registry, uint64_t id) {
    std::lock_guard l(mu_);
    registry.erase(id);
  }

  // etcd's session: the call's lease, or (lease 0) a new one of kElectionSessionTtlSec.
  void with_session(int64_t lease, const KvCall& call, std::function<void(Result<int64_t>)> then) {
    if (lease != 0) return then(lease);
    lease_.grant(lease::GrantRequest{0, kElectionSessionTtlSec}, LeaseCall{call.forwarded, call.credentials},
                 [then = std::move(then)](Result<KvAnswer<lease::GrantResponse>> r) {
                   if (!r.is_ok()) return then(r.status());
                   then(r.value().body.id);
                 });
  }

  // The take txn: if our key was never created, create it with our value; read it otherwise.
  void take(const CampaignPtr& c) {
    {
      std::lock_guard l(c->mu);
      if (!c->done) return;  // cancelled while the lease was granted
      c->key = election_key(c->name, c->lease);
    }
    mvcc::RangeRequest get;
    get.key = c->key;
    mvcc::TxnRequest t;
    t.compare.push_back(created_at(c->key, 0));
    t.success = {mvcc::RequestOp{put_of(c->key, c->value, c->lease)}};
    t.failure = {op(std::move(get))};
    kv_.txn(std::move(t), c->call, [self = shared_from_this(), c](Result<KvAnswer<mvcc::TxnResponse>> r) {
      if (!r.is_ok()) return (void)self->finish(c, r.status());
      const mvcc::TxnResponse& t = r.value().body;
      const mvcc::RangeResponse* mine = t.succeeded ? nullptr : range_at(t, 0);
      if (!t.succeeded && (mine == nullptr || mine->kvs.empty())) return (void)self->finish(c, unexpected_answer());
      bool answered = false;
      {
        std::lock_guard l(c->mu);
        c->rev = t.succeeded ? t.header.revision : mine->kvs[0].create_revision;
        c->header = r.value().header;
        answered = !c->done;
      }
      if (answered) return self->resign_key(c);  // cancelled while the txn ran
      if (t.succeeded || mine->kvs[0].value == c->value) return self->wait_for_earlier(c);
      // Our key from an earlier campaign with another value: proclaim ours, resign if that fails.
      self->proclaim_txn(c->key, c->rev, c->value, c->lease, c->call,
                         [self, c](const Result<ElectionHeaderAnswer>& p) {
                           if (p.is_ok()) return self->wait_for_earlier(c);
                           self->resign_key(c);
                           self->finish(c, p.status());
                         });
    });
  }

  // etcd's waitDeletes: the newest key created before ours, if any: wait for it to go, then look again.
  void wait_for_earlier(const CampaignPtr& c) {
    if (is_over(c)) return;
    kv_.range(newest_before(c->prefix, c->rev - 1), c->call,
              [self = shared_from_this(), c](Result<KvAnswer<mvcc::RangeResponse>> r) {
                // etcd keeps the key on any failure but a cancel: its session may campaign again.
                if (!r.is_ok()) return (void)self->finish(c, r.status());
                const mvcc::RangeResponse& earlier = r.value().body;
                if (!earlier.kvs.empty()) return self->watch_delete(c, earlier.kvs[0].key, earlier.header.revision);
                self->finish(c, CampaignAnswer{c->header, LeaderKey{c->name, c->key, c->rev, c->lease}});
              });
  }

  void watch_delete(const CampaignPtr& c, const std::string& key, int64_t from) {
    const std::shared_ptr<SingleWatch> w = waiter_watch(*c, node_.watch_hub());
    if (!w) return;
    auto again = [self = weak_from_this(), weak = std::weak_ptr<Campaign>(c)] {
      auto s = self.lock();
      auto at = weak.lock();
      if (s && at) s->wait_for_earlier(at);
    };
    if (!etcd::watch_delete(*w, key, from, std::move(again)) && !is_over(c)) {
      spdlog::warn("a Campaign on {:?} cannot wait: no watch stream left", c->name);
      if (finish(c, Status(StatusCode::kUnavailable, kErrTooManyRequests))) resign_key(c);
    }
  }

  // etcd's Proclaim: put value on key if key's create revision is still rev.
  void proclaim_txn(const std::string& key, int64_t rev, const std::string& value, int64_t lease, KvCall call,
                    ElectionHeaderDone done) {
    mvcc::TxnRequest t;
    t.compare.push_back(created_at(key, rev));
    t.success = {mvcc::RequestOp{put_of(key, value, lease)}};
    kv_.txn(std::move(t), std::move(call), [done = std::move(done)](Result<KvAnswer<mvcc::TxnResponse>> r) {
      if (!r.is_ok()) return done(r.status());
      if (!r.value().body.succeeded) return done(Status(StatusCode::kConflict, kErrElectionNotLeader));
      done(ElectionHeaderAnswer{r.value().header});
    });
  }

  // etcd's Resign: delete key if its create revision is still rev (not leader: no error).
  void resign_txn(const std::string& key, int64_t rev, KvCall call, ElectionHeaderDone done) {
    mvcc::DeleteRangeRequest d;
    d.key = key;
    mvcc::TxnRequest t;
    t.compare.push_back(created_at(key, rev));
    t.success = {mvcc::RequestOp{std::move(d)}};
    kv_.txn(std::move(t), std::move(call), [done = std::move(done)](Result<KvAnswer<mvcc::TxnResponse>> r) {
      if (!r.is_ok()) return done(r.status());
      done(ElectionHeaderAnswer{r.value().header});
    });
  }

  // A campaign giving up resigns the key it created (if any, and if still the one it created).
  void resign_key(const CampaignPtr& c) {
    std::string key;
    int64_t rev = 0;
    {
      std::lock_guard l(c->mu);
      if (c->rev <= 0) return;  // no key of ours known
      key = c->key;
      rev = c->rev;
    }
    resign_txn(key, rev, c->call, [key](const Result<ElectionHeaderAnswer>& r) {
      if (!r.is_ok()) spdlog::warn("could not resign the key {:?} of a failed Campaign: {}", key, r.status().to_string());
    });
  }

  bool is_over(const CampaignPtr& c) {
    std::lock_guard l(c->mu);
    return !c->done;
  }

  // Answers the campaign unless it was answered already (then false).
  bool finish(const CampaignPtr& c, Result<CampaignAnswer> r) {
    CampaignDone done;
    std::shared_ptr<SingleWatch> watch;
    {
      std::lock_guard l(c->mu);
      if (!c->done) return false;
      done = std::move(c->done);
      c->done = nullptr;
      watch = std::move(c->watch);
    }
    if (watch) watch->close();  // outside c->mu: close waits for a running delivery, which takes it
    forget(campaigns_, c->id);
    done(std::move(r));
    return true;
  }

  // ---- Observe's steps (etcd's Election.observe) ----------------------------------

  // Each step below starts from the step its caller is at: a step whose
  // observation moved on (or ended) does nothing, and a late delivery of
  // its watcher is ignored (current()).

  // The leader now: the oldest key under the prefix; none: wait for the first put there.
  void read_leader(const ObserverPtr& o, uint64_t from) {
    const std::optional<uint64_t> step = advance(o, from);
    if (!step) return;
    kv_.range(oldest_under(o->prefix), o->call,
              [self = shared_from_this(), o, step = *step](Result<KvAnswer<mvcc::RangeResponse>> r) {
                if (!r.is_ok()) {
                  spdlog::info("an Observe of {:?} ends: {}", o->prefix, r.status().to_string());
                  return self->end(o, Status::ok());  // etcd's observe closes its channel on an error
                }
                const KvAnswer<mvcc::RangeResponse>& a = r.value();
                const int64_t rev = a.body.header.revision;
                if (a.body.kvs.empty()) return self->watch_first_put(o, step, rev);
                self->push(o, LeaderAnswer{a.header, a.body.kvs[0]});
                self->follow(o, step, a.body.kvs[0].key, rev + 1);
              });
  }

  void watch_first_put(const ObserverPtr& o, uint64_t from, int64_t rev) {
    const std::optional<uint64_t> step = advance(o, from);
    if (!step) return;
    watch::WatchSpec spec;
    spec.key = o->prefix;
    spec.range_end = watch::prefix_range_end(o->prefix);
    spec.start_revision = rev;
    spec.no_delete = true;  // only a put elects (a delete would make etcd's observe spin)
    arm(o, spec, [self = weak_from_this(), o, step = *step](const watch::Delivery& d) {
      auto s = self.lock();
      if (!s || !s->current(o, step)) return;
      if (d.canceled) return s->end(o, Status::ok());  // its start was compacted: etcd's observe ends
      for (const mvcc::Event& e : d.events) {
        if (e.type != mvcc::Event::Type::kPut) continue;
        // etcd: the header's revision is the put's (a response may hold several revisions).
        s->push(o, LeaderAnswer{s->header_at(e.kv.mod_revision), e.kv});
        return s->follow(o, step, e.kv.key, e.kv.mod_revision + 1);
      }
    });
  }

  // Every put of the leader key from `rev` on, until it is deleted: then the next leader.
  void follow(const ObserverPtr& o, uint64_t from, const std::string& key, int64_t rev) {
    const std::optional<uint64_t> step = advance(o, from);
    if (!step) return;
    watch::WatchSpec spec;
    spec.key = key;
    spec.start_revision = rev;
    arm(o, spec, [self = weak_from_this(), o, step = *step](const watch::Delivery& d) {
      auto s = self.lock();
      if (!s || !s->current(o, step)) return;
      if (d.canceled) return s->end(o, Status::ok());
      for (const mvcc::Event& e : d.events) {
        if (e.type == mvcc::Event::Type::kDelete) return s->read_leader(o, step);
        s->push(o, LeaderAnswer{s->header_at(d.revision), e.kv});
      }
    });
  }

  void arm(const ObserverPtr& o, const watch::WatchSpec& spec, SingleWatch::OnDelivery on) {
    std::shared_ptr<SingleWatch> w;  // shared: end or close may close it meanwhile
    {
      std::lock_guard l(o->mu);
      if (o->closed || o->end) return;
      if (!o->watch) o->watch = std::make_shared<SingleWatch>(node_.watch_hub());
      w = o->watch;
    }
    if (!w->watch(spec, std::move(on)) && !over(o)) {
      spdlog::warn("an Observe of {:?} ends: no watch stream left", o->prefix);
      end(o, Status(StatusCode::kUnavailable, kErrTooManyRequests));
    }
  }

  // Moves the observation on from step `from`: the new step, or nothing if it is over or already moved on.
  std::optional<uint64_t> advance(const ObserverPtr& o, uint64_t from) {
    std::lock_guard l(o->mu);
    if (o->closed || o->end || o->step != from) return std::nullopt;
    o->step = from + 1;
    return o->step;
  }

  static bool over(const ObserverPtr& o) {
    std::lock_guard l(o->mu);
    return o->closed || o->end.has_value();
  }

  bool current(const ObserverPtr& o, uint64_t step) {
    std::lock_guard l(o->mu);
    return !o->closed && !o->end && o->step == step;
  }

  Header header_at(int64_t revision) {
    Header h = header_for(node_.status(), false);
    h.revision = static_cast<uint64_t>(revision);
    return h;
  }

  void push(const ObserverPtr& o, LeaderAnswer a) {
    {
      std::lock_guard l(o->mu);
      if (o->closed || o->end) return;
      if (o->backlog.size() >= kMaxObserveBacklog) {
        o->backlog.pop_front();  // the latest value matters (etcd's Observe does not promise every one)
        if (!o->dropped_logged) {
          o->dropped_logged = true;
          spdlog::warn("an Observe of {:?} drops updates: its client took none of the last {}", o->prefix,
                       kMaxObserveBacklog);
        }
      }
      o->backlog.push_back(std::move(a));
    }
    wake(o);
  }

  void end(const ObserverPtr& o, Status s) {
    std::shared_ptr<SingleWatch> watch;
    {
      std::lock_guard l(o->mu);
      if (o->closed || o->end) return;
      o->end = std::move(s);
      watch = std::move(o->watch);
    }
    if (watch) watch->close();  // may be its own delivery: SingleWatch allows that
    forget(observers_, o->id);
    wake(o);
  }

  static void wake(const ObserverPtr& o) {
    std::lock_guard l(o->wake_mu);
    if (o->wake) o->wake();
  }

  node::Node& node_;
  KvService& kv_;
  LeaseService& lease_;
  std::mutex mu_;
  bool stopped_ = false;
  uint64_t next_id_ = 1;
  Registry<Campaign> campaigns_;  // not answered yet
  Registry<Observer> observers_;  // neither ended nor closed
};

namespace {

// The consumer's handle: closing (or dropping) it ends the observation.
class ObservationHandle final : public Observation {
 public:
  ObservationHandle(std::weak_ptr<ElectionService::Impl> impl, ObserverPtr o) : impl_(std::move(impl)), o_(std::move(o)) {}
  ~ObservationHandle() override { close(); }
  std::optional<LeaderAnswer> next() override { return ElectionService::Impl::next(*o_); }
  std::optional<Status> ended() override { return ElectionService::Impl::ended(*o_); }
  void close() override {
    if (auto impl = impl_.lock()) {
      impl->close(o_);
    } else {
      std::lock_guard l(o_->wake_mu);
      o_->wake = nullptr;
    }
  }

 private:
  std::weak_ptr<ElectionService::Impl> impl_;
  ObserverPtr o_;
};

}  // namespace

ElectionService::ElectionService(node::Node& node, KvService& kv, LeaseService& lease)
    : impl_(std::make_shared<Impl>(node, kv, lease)) {}

ElectionService::~ElectionService() { stop(); }

ElectionService::Cancel ElectionService::campaign(std::string name, int64_t lease, std::string value, KvCall call,
                                                  CampaignDone done) {
  return impl_->campaign(std::move(name), lease, std::move(value), std::move(call), std::move(done));
}

void ElectionService::proclaim(std::optional<LeaderKey> leader, std::string value, KvCall call,
                               ElectionHeaderDone done) {
  impl_->proclaim(std::move(leader), std::move(value), std::move(call), std::move(done));
}

void ElectionService::resign(std::optional<LeaderKey> leader, KvCall call, ElectionHeaderDone done) {
  impl_->resign(std::move(leader), std::move(call), std::move(done));
}

void ElectionService::leader(const std::string& name, KvCall call, LeaderDone done) {
  impl_->leader(name, std::move(call), std::move(done));
}

std::unique_ptr<Observation> ElectionService::observe(std::string name, KvCall call, std::function<void()> wake) {
  return std::make_unique<ObservationHandle>(impl_, impl_->observe(std::move(name), std::move(call), std::move(wake)));
}

void ElectionService::stop() { impl_->stop(); }

}  // namespace ckv::etcd
