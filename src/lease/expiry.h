// Leader-side lease expiry: when each lease expires on the leader's monotonic clock; pure (the caller passes `now`).
//
// Only the leader expires leases (etcd's "primary lessor"), and only by
// proposing a revoke: the log, never a clock, removes a lease from the
// replicated table (lease/lessor.h). This component holds the leader's
// in-memory deadlines; the node (and the simulator) drive it:
//
//   promote(now, leases)  on becoming primary: the node is leader AND has
//                         applied an entry of its own term (so every lease
//                         granted in earlier terms is in its table). Every
//                         lease then expires at now + its full TTL: a
//                         failover never shortens a lease, whatever the old
//                         leader's deadlines were (etcd's lessor.Promote).
//   demote()              on losing leadership (or a term change): forget all.
//   granted / revoked     as grants and revokes are applied.
//   renew(id, asked)      a keepalive the node received at `asked`, once it
//                         has confirmed it still leads (a ReadIndex round,
//                         thesis §6.4; no log write): deadline = asked + TTL.
//                         Why `asked`, not the confirmation's time: a new
//                         leader's votes come after the confirming quorum's
//                         answers, so its promotion (and the full TTL it
//                         grants) is later than `asked` (docs/api.md).
//   due(now)              leases to propose as revokes now: expired, not
//                         proposed within kRevokeRetryMs, at most
//                         kRevokeRatePerSec per second (token bucket).
//   revoke_failed(id)     the proposal was refused: due again at once.
//
// Times are milliseconds on one monotonic clock; TTLs are seconds. Not
// thread safe (the node's Raft thread owns it).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <utility>
#include <vector>

namespace ckv::lease {

// etcd 3.4's leaseRevokeRate: expired leases revoked per second at most,
// so that a mass expiry cannot flood the log.
inline constexpr int64_t kRevokeRatePerSec = 1000;
// The largest burst of revokes (etcd revokes rate/2 every 500 ms).
inline constexpr int64_t kRevokeBurst = kRevokeRatePerSec / 2;
// A revoke proposed but not applied within this is proposed again (its
// entry may have been lost with a leader change); etcd 3.5's
// expiredLeaseRetryInterval.
inline constexpr int64_t kRevokeRetryMs = 3000;

class LeaseExpiry {
 public:
  bool primary() const { return primary_; }

  void promote(int64_t now_ms, const std::vector<std::pair<int64_t, int64_t>>& id_ttls);
  void demote();
  // No-ops unless primary (a grant applied before promotion is covered by promote).
  void granted(int64_t id, int64_t ttl_sec, int64_t now_ms);
  void revoked(int64_t id);

  // The TTL granted (seconds), or nullopt: not primary, no such lease,
  // expired at asked_ms, or its revoke proposed already (the client is told
  // the lease is gone, as etcd tells it once the revoke is applied).
  std::optional<int64_t> renew(int64_t id, int64_t asked_ms);
  // Milliseconds until expiry (0 once expired), nullopt if unknown or not primary.
  std::optional<int64_t> remaining_ms(int64_t id, int64_t now_ms) const;

  std::vector<int64_t> due(int64_t now_ms);
  void revoke_failed(int64_t id);

  size_t size() const { return leases_.size(); }

 private:
  struct Entry {
    int64_t ttl_sec = 0;
    int64_t expiry_ms = 0;
    int64_t retry_at_ms = 0;  // 0: no revoke proposed
  };
  void set_expiry(int64_t id, Entry& e, int64_t expiry_ms);

  bool primary_ = false;
  std::map<int64_t, Entry> leases_;
  std::set<std::pair<int64_t, int64_t>> by_time_;  // (expiry or retry time, id)
  // Token bucket, in thousandths of a revoke.
  int64_t tokens_milli_ = 0;
  int64_t last_refill_ms_ = 0;
};

}  // namespace ckv::lease
