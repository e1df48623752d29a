// Connection admission (the clients' pool with its per-address share, the members' reserve) and the body budget (see admission.h).
#include "http/admission.h"

#include "common/check.h"

namespace ckv::http {

Admission ConnectionAdmission::admit(const std::string& ip, bool from_member_host) {
  std::lock_guard lock(mu_);
  auto it = per_ip_.find(ip);
  const int mine = it == per_ip_.end() ? 0 : it->second.clients;
  const bool pool_full = clients_ >= limits_.max_connections;
  const bool share_full = mine >= limits_.max_connections_per_ip;
  if (!pool_full && !share_full) return {Admitted::kClient, admit_locked(ip, Admitted::kClient), 0};
  // Full: make room by evicting the longest-waiting connection of the scope
  // that is full. The address's own share first: an address over its share
  // pushes out its own connections, not another address's. This comes
  // before the reserve even for a member's host: a reserved slot serves
  // forwarded requests only, and what this connection will send is not
  // known yet (on loopback every local client is "on a member's host").
  uint64_t victim = 0;
  if (share_full && it != per_ip_.end()) {
    victim = take_oldest(it->second.waiting);
  } else if (!share_full) {
    victim = take_oldest(waiting_clients_);
  }
  if (victim != 0) return {Admitted::kClient, admit_locked(ip, Admitted::kClient), victim};
  if (from_member_host && members_ < limits_.member_connections)
    return {Admitted::kMember, admit_locked(ip, Admitted::kMember), 0};
  if (from_member_host && limits_.member_connections > 0) {
    victim = take_oldest(waiting_members_);
    if (victim != 0) return {Admitted::kMember, admit_locked(ip, Admitted::kMember), victim};
  }
  return {share_full ? Admitted::kRefusedPerIp : Admitted::kRefusedTotal, 0, 0};
}

uint64_t ConnectionAdmission::admit_locked(const std::string& ip, Admitted pool) {
  const uint64_t id = next_id_++;
  Conn& c = conns_[id];
  c.ip = ip;
  c.pool = pool;
  if (pool == Admitted::kMember) {
    ++members_;
  } else {
    ++clients_;
    ++per_ip_[ip].clients;
  }
  enqueue(id, c);
  return id;
}

uint64_t ConnectionAdmission::take_oldest(WaitQueue& q) {
  if (q.empty()) return 0;
  const uint64_t id = q.begin()->second;
  auto it = conns_.find(id);
  KV_CHECK(it != conns_.end(), "waiting connection %llu is unknown",
           static_cast<unsigned long long>(id));
  unqueue(it->second);  // never evicted twice, nor queued again (see waiting)
  return id;
}

void ConnectionAdmission::unqueue(Conn& c) {
  if (c.waiting_since == 0) return;
  if (c.pool == Admitted::kMember) {
    waiting_members_.erase(c.waiting_since);
  } else {
    waiting_clients_.erase(c.waiting_since);
    auto p = per_ip_.find(c.ip);
    if (p != per_ip_.end()) p->second.waiting.erase(c.waiting_since);
  }
  c.waiting_since = 0;
}

void ConnectionAdmission::enqueue(uint64_t id, Conn& c) {
  c.waiting_since = next_seq_++;
  if (c.pool == Admitted::kMember) {
    waiting_members_.emplace(c.waiting_since, id);
  } else {
    waiting_clients_.emplace(c.waiting_since, id);
    per_ip_[c.ip].waiting.emplace(c.waiting_since, id);
  }
}

void ConnectionAdmission::busy(uint64_t id) {
  std::lock_guard lock(mu_);
  auto it = conns_.find(id);
  if (it != conns_.end()) unqueue(it->second);
}

void ConnectionAdmission::waiting(uint64_t id) {
  std::lock_guard lock(mu_);
  auto it = conns_.find(id);
  if (it == conns_.end()) return;
  Conn& c = it->second;
  unqueue(c);
  enqueue(id, c);
}

void ConnectionAdmission::release(uint64_t id) {
  std::lock_guard lock(mu_);
  auto it = conns_.find(id);
  KV_CHECK(it != conns_.end(), "released connection %llu twice or never admitted",
           static_cast<unsigned long long>(id));
  Conn& c = it->second;
  unqueue(c);
  if (c.pool == Admitted::kMember) {
    KV_CHECK(members_ > 0, "released a member slot that was not taken");
    --members_;
  } else {
    auto p = per_ip_.find(c.ip);
    KV_CHECK(p != per_ip_.end() && p->second.clients > 0 && clients_ > 0,
             "released a client slot that was not taken");
    --clients_;
    if (--p->second.clients == 0) per_ip_.erase(p);
  }
  conns_.erase(it);
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
  return it == per_ip_.end() ? 0 : it->second.clients;
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
