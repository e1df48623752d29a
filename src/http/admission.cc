// Connection admission (the clients' pool with its per-address share, the members' reserve) and the body budget (see admission.h).
#include "http/admission.h"

#include "common/check.h"

namespace ckv::http {

Admitted ConnectionAdmission::admit(const std::string& ip, bool from_member_host) {
  std::lock_guard lock(mu_);
  auto it = per_ip_.find(ip);
  const int mine = it == per_ip_.end() ? 0 : it->second;
  const bool pool_full = clients_ >= limits_.max_connections;
  const bool share_full = mine >= limits_.max_connections_per_ip;
  if (!pool_full && !share_full) {
    ++clients_;
    ++per_ip_[ip];
    return Admitted::kClient;
  }
  if (from_member_host && members_ < limits_.member_connections) {
    ++members_;
    return Admitted::kMember;
  }
  return pool_full ? Admitted::kRefusedTotal : Admitted::kRefusedPerIp;
}

void ConnectionAdmission::release(const std::string& ip, Admitted pool) {
  std::lock_guard lock(mu_);
  if (pool == Admitted::kMember) {
    KV_CHECK(members_ > 0, "released a member slot that was not taken");
    --members_;
    return;
  }
  KV_CHECK(pool == Admitted::kClient, "released a refused connection");
  auto it = per_ip_.find(ip);
  KV_CHECK(it != per_ip_.end() && it->second > 0 && clients_ > 0,
           "released a client slot that was not taken");
  --clients_;
  if (--it->second == 0) per_ip_.erase(it);
}

int ConnectionAdmission::clients() const {
  std::lock_guard lock(mu_);
  return clients_;
}

int ConnectionAdmission::members() const {
  std::lock_guard lock(mu_);
  return members_;
}

int ConnectionAdmission::clients_from(const std::string& ip) const {
  std::lock_guard lock(mu_);
  auto it = per_ip_.find(ip);
  return it == per_ip_.end() ? 0 : it->second;
}

bool BodyBudget::try_take(uint64_t bytes) {
  std::lock_guard lock(mu_);
  if (bytes > limit_bytes_ - in_use_bytes_) return false;
  in_use_bytes_ += bytes;
  return true;
}

void BodyBudget::give_back(uint64_t bytes) {
  std::lock_guard lock(mu_);
  KV_CHECK(bytes <= in_use_bytes_, "gave back more body bytes than were taken");
  in_use_bytes_ -= bytes;
}

uint64_t BodyBudget::in_use_bytes() const {
  std::lock_guard lock(mu_);
  return in_use_bytes_;
}

}  // namespace ckv::http
