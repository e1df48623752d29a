// Leader-side lease expiry (see expiry.h).
#include "lease/expiry.h"

#include <algorithm>
#include <limits>

namespace ckv::lease {

namespace {
constexpr int64_t kMilliPerRevoke = 1000;

// now + ttl seconds without overflow (TTLs reach kMaxLeaseTtlSec).
int64_t deadline(int64_t now_ms, int64_t ttl_sec) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  if (ttl_sec > (kMax - now_ms) / 1000) return kMax;
  return now_ms + std::max<int64_t>(ttl_sec, 0) * 1000;
}
}  // namespace

void LeaseExpiry::set_expiry(int64_t id, Entry& e, int64_t expiry_ms) {
  by_time_.erase({e.retry_at_ms != 0 ? e.retry_at_ms : e.expiry_ms, id});
  e.expiry_ms = expiry_ms;
  e.retry_at_ms = 0;
  by_time_.insert({e.expiry_ms, id});
}

void LeaseExpiry::promote(int64_t now_ms, const std::vector<std::pair<int64_t, int64_t>>& id_ttls) {
  demote();
  primary_ = true;
  for (const auto& [id, ttl] : id_ttls) {
    Entry& e = leases_[id];
    e.ttl_sec = ttl;
    e.expiry_ms = deadline(now_ms, ttl);
    by_time_.insert({e.expiry_ms, id});
  }
  tokens_milli_ = kRevokeBurst * kMilliPerRevoke;
  last_refill_ms_ = now_ms;
}

void LeaseExpiry::demote() {
  primary_ = false;
  leases_.clear();
  by_time_.clear();
}

void LeaseExpiry::granted(int64_t id, int64_t ttl_sec, int64_t now_ms) {
  if (!primary_) return;
  auto [it, fresh] = leases_.try_emplace(id);
  if (!fresh) by_time_.erase({it->second.retry_at_ms != 0 ? it->second.retry_at_ms : it->second.expiry_ms, id});
  it->second = Entry{ttl_sec, deadline(now_ms, ttl_sec), 0};
  by_time_.insert({it->second.expiry_ms, id});
}

void LeaseExpiry::revoked(int64_t id) {
  auto it = leases_.find(id);
  if (it == leases_.end()) return;
  by_time_.erase({it->second.retry_at_ms != 0 ? it->second.retry_at_ms : it->second.expiry_ms, id});
  leases_.erase(it);
}

std::optional<int64_t> LeaseExpiry::renew(int64_t id, int64_t asked_ms) {
  if (!primary_) return std::nullopt;
  auto it = leases_.find(id);
  // Expired when asked, or its revoke is proposed already: renewing now
  // would tell the client "alive" while the revoke is on its way.
  if (it == leases_.end() || asked_ms >= it->second.expiry_ms || it->second.retry_at_ms != 0) {
    return std::nullopt;
  }
  // Never shortens: a later keepalive may have been confirmed first.
  const int64_t next = deadline(asked_ms, it->second.ttl_sec);
  if (next > it->second.expiry_ms) set_expiry(id, it->second, next);
  return it->second.ttl_sec;
}

std::optional<int64_t> LeaseExpiry::remaining_ms(int64_t id, int64_t now_ms) const {
  if (!primary_) return std::nullopt;
  auto it = leases_.find(id);
  if (it == leases_.end()) return std::nullopt;
  return std::max<int64_t>(0, it->second.expiry_ms - now_ms);
}

std::vector<int64_t> LeaseExpiry::due(int64_t now_ms) {
  std::vector<int64_t> out;
  if (!primary_) return out;
  if (now_ms > last_refill_ms_) {
    const int64_t cap = kRevokeBurst * kMilliPerRevoke;
    const int64_t elapsed = now_ms - last_refill_ms_;
    tokens_milli_ = elapsed >= cap ? cap : std::min(cap, tokens_milli_ + elapsed * kRevokeRatePerSec);
    last_refill_ms_ = now_ms;
  }
  while (!by_time_.empty() && by_time_.begin()->first <= now_ms && tokens_milli_ >= kMilliPerRevoke) {
    const int64_t id = by_time_.begin()->second;
    by_time_.erase(by_time_.begin());
    Entry& e = leases_.at(id);
    e.retry_at_ms = now_ms + kRevokeRetryMs;
    by_time_.insert({e.retry_at_ms, id});
    tokens_milli_ -= kMilliPerRevoke;
    out.push_back(id);
  }
  return out;
}

void LeaseExpiry::revoke_failed(int64_t id) {
  auto it = leases_.find(id);
  if (it == leases_.end() || it->second.retry_at_ms == 0) return;
  by_time_.erase({it->second.retry_at_ms, id});
  it->second.retry_at_ms = 0;
  by_time_.insert({it->second.expiry_ms, id});
}

}  // namespace ckv::lease
