// The replicated lease table (see lessor.h).
#include "lease/lessor.h"

#include "common/bytes.h"

namespace ckv::lease {

namespace {
constexpr uint8_t kTableFormat = 1;
}  // namespace

Status LeaseTable::grant(int64_t id, int64_t ttl) {
  // etcd's lessor.Grant checks in this order.
  if (id == kNoLease) return Status(StatusCode::kNotFound, kErrLeaseNotFound);
  if (ttl > kMaxLeaseTtlSec) return Status(StatusCode::kInvalid, kErrLeaseTtlTooLarge);
  if (leases_.contains(id)) return Status(StatusCode::kConflict, kErrLeaseExists);
  leases_[id].ttl = ttl;
  return Status::ok();
}

std::optional<std::vector<std::string>> LeaseTable::revoke(int64_t id) {
  auto it = leases_.find(id);
  if (it == leases_.end()) return std::nullopt;
  std::vector<std::string> keys(it->second.keys.begin(), it->second.keys.end());
  leases_.erase(it);
  return keys;
}

std::optional<LeaseInfo> LeaseTable::info(int64_t id) const {
  auto it = leases_.find(id);
  if (it == leases_.end()) return std::nullopt;
  return LeaseInfo{id, it->second.ttl, {it->second.keys.begin(), it->second.keys.end()}};
}

std::vector<std::pair<int64_t, int64_t>> LeaseTable::ttls() const {
  std::vector<std::pair<int64_t, int64_t>> out;
  out.reserve(leases_.size());
  for (const auto& [id, l] : leases_) out.emplace_back(id, l.ttl);
  return out;
}

void LeaseTable::attach(int64_t lease, const std::string& key) {
  if (lease == kNoLease) return;
  auto it = leases_.find(lease);
  if (it != leases_.end()) it->second.keys.insert(key);
}

void LeaseTable::detach(int64_t lease, const std::string& key) {
  if (lease == kNoLease) return;
  auto it = leases_.find(lease);
  if (it != leases_.end()) it->second.keys.erase(key);
}

void LeaseTable::apply_events(const std::vector<mvcc::Event>& events) {
  // In sub-revision order: a txn that deletes a key and puts it again ends
  // with the put's lease.
  for (const mvcc::Event& ev : events) {
    if (ev.prev_kv) detach(ev.prev_kv->lease, ev.prev_kv->key);
    if (ev.type == mvcc::Event::Type::kPut) attach(ev.kv.lease, ev.kv.key);
  }
}

std::string LeaseTable::encode() const {
  std::string out;
  put_u8(out, kTableFormat);
  put_u32le(out, static_cast<uint32_t>(leases_.size()));
  for (const auto& [id, l] : leases_) {
    put_u64le(out, static_cast<uint64_t>(id));
    put_u64le(out, static_cast<uint64_t>(l.ttl));
  }
  return out;
}

std::optional<LeaseTable> LeaseTable::decode(std::string_view bytes) {
  ByteReader r(bytes);
  uint8_t format = 0;
  uint32_t n = 0;
  if (!r.u8(format) || format != kTableFormat || !r.u32le(n)) return std::nullopt;
  LeaseTable t;
  int64_t last = 0;
  for (uint32_t i = 0; i < n; ++i) {
    uint64_t id = 0, ttl = 0;
    if (!r.u64le(id) || !r.u64le(ttl)) return std::nullopt;
    const auto sid = static_cast<int64_t>(id);
    const auto sttl = static_cast<int64_t>(ttl);
    if (sid == kNoLease || (i > 0 && sid <= last) || sttl > kMaxLeaseTtlSec) return std::nullopt;
    last = sid;
    t.leases_.emplace_hint(t.leases_.end(), sid, Lease{sttl, {}});
  }
  if (!r.at_end()) return std::nullopt;
  return t;
}

}  // namespace ckv::lease
