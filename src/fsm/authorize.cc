// Permissions per command (see authorize.h).
#include "fsm/authorize.h"

#include <memory>
#include <vector>

namespace ckv::fsm {

namespace {

using auth::PermType;

Status lease_keys_writable(const auth::AuthStore& auth, const lease::LeaseTable& leases,
                           const auth::Caller& caller, int64_t id) {
  if (id == 0) return Status::ok();
  const std::optional<lease::LeaseInfo> info = leases.info(id);
  if (!info) return Status::ok();  // the store answers "lease not found" itself
  for (const std::string& key : info->keys) {
    if (Status s = auth.check(caller, PermType::kWrite, key, ""); !s.is_ok()) return s;
  }
  return Status::ok();
}

Status put_allowed(const auth::AuthStore& auth, const lease::LeaseTable* leases,
                   const auth::Caller& caller, const mvcc::PutRequest& p) {
  if (Status s = auth.check(caller, PermType::kWrite, p.key, ""); !s.is_ok()) return s;
  if (p.prev_kv) {
    if (Status s = auth.check(caller, PermType::kRead, p.key, ""); !s.is_ok()) return s;
  }
  // etcd's checkLeasePuts: a user who could not revoke the lease (it holds
  // keys they cannot write) may not attach more keys to it.
  if (leases != nullptr) return lease_keys_writable(auth, *leases, caller, p.lease);
  return Status::ok();
}

Status delete_allowed(const auth::AuthStore& auth, const auth::Caller& caller,
                      const mvcc::DeleteRangeRequest& d) {
  if (Status s = auth.check(caller, PermType::kWrite, d.key, d.range_end); !s.is_ok()) return s;
  if (d.prev_kv) return auth.check(caller, PermType::kRead, d.key, d.range_end);
  return Status::ok();
}

Status txn_allowed(const auth::AuthStore& auth, const lease::LeaseTable* leases,
                   const auth::Caller& caller, const mvcc::TxnRequest& t) {
  for (const mvcc::Compare& c : t.compare) {
    if (Status s = auth.check(caller, PermType::kRead, c.key, c.range_end); !s.is_ok()) return s;
  }
  for (const auto* ops : {&t.success, &t.failure}) {
    for (const mvcc::RequestOp& op : *ops) {
      Status s;
      if (const auto* r = std::get_if<mvcc::RangeRequest>(&op.request)) {
        s = auth.check(caller, PermType::kRead, r->key, r->range_end);
      } else if (const auto* p = std::get_if<mvcc::PutRequest>(&op.request)) {
        s = put_allowed(auth, leases, caller, *p);
      } else if (const auto* d = std::get_if<mvcc::DeleteRangeRequest>(&op.request)) {
        s = delete_allowed(auth, caller, *d);
      } else if (const auto* n = std::get_if<std::shared_ptr<const mvcc::TxnRequest>>(&op.request);
                 n && *n) {
        s = txn_allowed(auth, leases, caller, **n);
      }
      if (!s.is_ok()) return s;
    }
  }
  return Status::ok();
}

}  // namespace

Status authorize(const auth::AuthStore& auth, const lease::LeaseTable& leases, const Command& c) {
  if (!auth.enabled() || c.system) return Status::ok();
  const auth::Caller& who = c.caller;
  if (const auto* p = std::get_if<mvcc::PutRequest>(&c.request)) return put_allowed(auth, &leases, who, *p);
  if (const auto* d = std::get_if<mvcc::DeleteRangeRequest>(&c.request)) return delete_allowed(auth, who, *d);
  if (const auto* t = std::get_if<mvcc::TxnRequest>(&c.request)) return txn_allowed(auth, &leases, who, *t);
  if (std::holds_alternative<mvcc::CompactionRequest>(c.request)) return auth.check_admin(who);
  if (std::holds_alternative<lease::GrantRequest>(c.request)) return Status::ok();
  if (const auto* v = std::get_if<lease::RevokeRequest>(&c.request)) {
    return lease_keys_writable(auth, leases, who, v->id);
  }
  // etcd 3.4 checks no permission for Maintenance.Alarm (docs/api.md says so).
  if (std::holds_alternative<AlarmRequest>(c.request)) return Status::ok();
  const auto& a = std::get<auth::AuthRequest>(c.request);
  if (a.op == auth::AuthOp::kAuthenticate) return Status::ok();
  return auth.check_admin(who);
}

Status authorize_range(const auth::AuthStore& auth, const auth::Caller& caller,
                       const mvcc::RangeRequest& r) {
  return auth.check(caller, PermType::kRead, r.key, r.range_end);
}

Status authorize_txn(const auth::AuthStore& auth, const auth::Caller& caller,
                     const mvcc::TxnRequest& t) {
  if (!auth.enabled()) return Status::ok();
  return txn_allowed(auth, nullptr, caller, t);
}

}  // namespace ckv::fsm
