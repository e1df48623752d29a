// etcd's Maintenance.Alarm, Defragment, Hash and HashKV (see maintenance_service.h).
#include "etcd/maintenance_service.h"

#include <utility>

#include <spdlog/spdlog.h>

#include "etcd/auth_service.h"
#include "etcd/work_pool.h"
#include "fsm/kv_state_machine.h"

namespace ckv::etcd {

MaintenanceService::MaintenanceService(node::Node& node, AuthService* auth)
    : node_(node), auth_(auth), hash_worker_(std::make_unique<WorkPool>(1, "ckv-hashkv")) {}

MaintenanceService::~MaintenanceService() { stop(); }

void MaintenanceService::stop() { hash_worker_->stop(); }

Status MaintenanceService::require_root(const Credentials& creds, const char* what) const {
  if (auth_ == nullptr) return Status::ok();
  return auth_->require_admin(creds, what);
}

void MaintenanceService::alarm(fsm::AlarmRequest r, const Credentials& creds, int timeout_ms, Done<AlarmAnswer> done) {
  if (static_cast<int32_t>(r.action) < 0 || r.action > fsm::AlarmAction::kDeactivate) {
    return done(Status(StatusCode::kInvalid, "unknown alarm action " + std::to_string(static_cast<int32_t>(r.action))));
  }
  if (static_cast<int32_t>(r.alarm) < 0 || r.alarm > fsm::AlarmType::kCorrupt) {
    return done(Status(StatusCode::kInvalid, "unknown alarm type " + std::to_string(static_cast<int32_t>(r.alarm))));
  }
  if (r.action == fsm::AlarmAction::kGet) {
    // Linearizable, without a log entry: what the cluster had agreed when the call came.
    return node_.read_barrier(timeout_ms, [this, r, done = std::move(done)](const Status& s) {
      if (!s.is_ok()) return done(s);
      AlarmAnswer a;
      a.header = header_for(node_.status(), true);
      for (const fsm::AlarmMember& m : node_.state_machine().alarms()) {
        if (r.alarm == fsm::AlarmType::kNone || m.alarm == r.alarm) a.alarms.push_back(m);
      }
      done(std::move(a));
    });
  }
  if (Status s = require_root(creds, "an alarm change"); !s.is_ok()) return done(s);
  fsm::Command c;
  c.request = r;
  node_.propose(std::move(c), timeout_ms, [this, done = std::move(done)](Result<node::WriteResult> wr) {
    if (!wr.is_ok()) return done(wr.status());
    if (!wr->status.is_ok()) return done(wr->status);
    const auto* resp = std::get_if<fsm::AlarmResponse>(&wr->response);
    if (resp == nullptr) return done(Status(StatusCode::kIo, "the alarm change was answered with another kind"));
    AlarmAnswer a;
    a.header = header_for(node_.status(), true);
    a.header.revision = static_cast<uint64_t>(resp->header.revision);
    a.alarms = resp->alarms;
    done(std::move(a));
  });
}

void MaintenanceService::defragment(const Credentials& creds, Done<Header> done) {
  if (Status s = require_root(creds, "a defragment"); !s.is_ok()) return done(s);
  node_.defragment([this, done = std::move(done)](const Result<node::Node::DefragResult>& r) {
    if (!r.is_ok()) return done(r.status());
    done(header_for(node_.status(), true));
  });
}

void MaintenanceService::run_hash(Done<HashAnswer> done, std::function<Result<fsm::StateHash>()> pass) {
  auto shared = std::make_shared<Done<HashAnswer>>(std::move(done));
  const bool queued = hash_worker_->try_post(kMaxQueuedHashes, [this, shared, pass = std::move(pass)] {
    Result<fsm::StateHash> h = pass();
    if (!h.is_ok()) return (*shared)(h.status());
    HashAnswer a;
    a.header = header_for(node_.status(), true);
    a.header.revision = static_cast<uint64_t>(h->current_revision);
    a.hash = h->hash;
    a.compact_revision = h->compact_revision;
    (*shared)(a);
  });
  if (!queued) {
    (*shared)(Status(StatusCode::kUnavailable, "too many hash calls queued (limit " +
                                                   std::to_string(kMaxQueuedHashes) + "); retry"));
  }
}

void MaintenanceService::hash(const Credentials& creds, Done<HashAnswer> done) {
  if (Status s = require_root(creds, "a hash"); !s.is_ok()) return done(s);
  run_hash(std::move(done), [this] { return node_.state_machine().hash_state(); });
}

void MaintenanceService::hash_kv(const Credentials& creds, int64_t revision, Done<HashAnswer> done) {
  if (Status s = require_root(creds, "a hash of the key-value store"); !s.is_ok()) return done(s);
  run_hash(std::move(done), [this, revision] { return node_.state_machine().hash_kv(revision); });
}

}  // namespace ckv::etcd
