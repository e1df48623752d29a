// The replicated lease table: lease id -> granted TTL and attached keys; pure and deterministic (no clock).
//
// Part of the state machine (fsm/kv_state_machine.h): every replica applies
// the same grants, revokes and key changes in log order and holds the same
// table. It knows nothing of time: when a lease expires is the leader's
// question (lease/expiry.h), and an expiry reaches the table only as a
// revoke in the log (DESIGN.md, "The state machine").
//
// Attachments follow the store's changes (mvcc::Store::last_events()): a put
// with lease L attaches its key to L and detaches it from the lease of the
// key's previous version; a delete detaches. Keys are sorted, so
// TimeToLive's key list and a revoke's deletes come in key order on every
// replica.
//
// Not thread safe: the state machine's lock guards it.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "lease/types.h"
#include "mvcc/types.h"

namespace ckv::lease {

struct LeaseInfo {
  int64_t id = 0;
  int64_t ttl = 0;  // granted TTL, seconds
  std::vector<std::string> keys;  // attached keys, in key order
};

class LeaseTable {
 public:
  // etcd's lessor.Grant: kErrLeaseNotFound for id 0, kErrLeaseTtlTooLarge
  // over kMaxLeaseTtlSec, kErrLeaseExists for a granted id. A TTL below 1
  // is kept as given (the proposer raised it to the minimum).
  Status grant(int64_t id, int64_t ttl);
  // Removes the lease and returns its keys (in key order), or nullopt if no such lease.
  std::optional<std::vector<std::string>> revoke(int64_t id);

  bool exists(int64_t id) const { return leases_.contains(id); }
  std::optional<LeaseInfo> info(int64_t id) const;
  // Every lease id and its granted TTL, in id order.
  std::vector<std::pair<int64_t, int64_t>> ttls() const;
  size_t size() const { return leases_.size(); }

  // Follows one write's changes (store.h, last_events()).
  void apply_events(const std::vector<mvcc::Event>& events);
  // Attaches key to lease (a live key carrying it); unknown leases are ignored.
  void attach(int64_t lease, const std::string& key);

  // Leases and TTLs only (attachments are rebuilt from the store's live
  // keys on restore: they are derived state, and a stored copy could only
  // disagree with the store). Layout: u8 format 1, u32 count, then per
  // lease in id order i64 id, i64 ttl; the caller checksums it.
  std::string encode() const;
  // nullopt for bytes this version cannot read (ids not strictly
  // increasing, id 0, a TTL out of range, trailing bytes).
  static std::optional<LeaseTable> decode(std::string_view bytes);

  bool operator==(const LeaseTable& o) const { return leases_ == o.leases_; }

 private:
  struct Lease {
    int64_t ttl = 0;
    std::set<std::string, std::less<>> keys;
    bool operator==(const Lease&) const = default;
  };
  void detach(int64_t lease, const std::string& key);

  std::map<int64_t, Lease> leases_;
};

}  // namespace ckv::lease
