// The idempotency table's expiry, eviction and snapshot codec (see idempotency_table.h).
#include "fsm/idempotency_table.h"

#include <utility>

#include "common/bytes.h"
#include "fsm/command.h"

namespace ckv::fsm {

namespace {

constexpr uint8_t kTableFormat = 1;
// The largest StatusCode value a stored status may carry (common/status.h).
constexpr uint8_t kMaxStatusCode = static_cast<uint8_t>(StatusCode::kNoSpace);

}  // namespace

void IdempotencyTable::advance_clock(int64_t proposed_at_ms) {
  if (proposed_at_ms <= clock_ms_) return;
  clock_ms_ = proposed_at_ms;
  evict();
}

const IdempotencyTable::Entry* IdempotencyTable::find(const std::string& key) const {
  auto it = entries_.find(key);
  if (it == entries_.end() || expired(it->second.entry)) return nullptr;
  return &it->second.entry;
}

void IdempotencyTable::insert(const std::string& key, Entry entry) {
  auto it = entries_.find(key);
  if (it != entries_.end()) {
    // Only an expired entry is replaced (find() hid it); its element in
    // order_ becomes stale.
    bytes_ -= cost(key, it->second.entry);
    entries_.erase(it);
  }
  const uint64_t seq = next_seq_++;
  bytes_ += cost(key, entry);
  entries_.emplace(key, Stored{std::move(entry), seq});
  order_.emplace_back(seq, key);
  evict();
}

void IdempotencyTable::evict() {
  while (!order_.empty()) {
    const auto& [seq, key] = order_.front();
    auto it = entries_.find(key);
    if (it != entries_.end() && it->second.seq == seq) {
      const bool over_cap = entries_.size() > kMaxEntries || bytes_ > kMaxBytes;
      if (!over_cap && !expired(it->second.entry)) return;
      bytes_ -= cost(key, it->second.entry);
      entries_.erase(it);
    }
    order_.pop_front();
  }
}

// Layout: u8 format, i64 clock_ms, u32 count, then per entry in apply order:
// string32 key, i64 proposed_at_ms, u8 status code, string32 message,
// string32 encoded response (empty unless the status is ok).
std::string IdempotencyTable::encode() const {
  std::string out;
  put_u8(out, kTableFormat);
  put_u64le(out, static_cast<uint64_t>(clock_ms_));
  put_u32le(out, static_cast<uint32_t>(entries_.size()));
  for (const auto& [seq, key] : order_) {
    auto it = entries_.find(key);
    if (it == entries_.end() || it->second.seq != seq) continue;  // stale
    const Entry& e = it->second.entry;
    put_string32(out, key);
    put_u64le(out, static_cast<uint64_t>(e.proposed_at_ms));
    put_u8(out, static_cast<uint8_t>(e.status.code()));
    put_string32(out, e.status.message());
    put_string32(out, e.response);
  }
  return out;
}

std::optional<IdempotencyTable> IdempotencyTable::decode(std::string_view data) {
  ByteReader r(data);
  uint8_t format = 0;
  uint64_t clock = 0;
  uint32_t count = 0;
  if (!r.u8(format) || format != kTableFormat || !r.u64le(clock) || !r.u32le(count) || count > kMaxEntries) {
    return std::nullopt;
  }
  IdempotencyTable t;
  t.clock_ms_ = static_cast<int64_t>(clock);
  for (uint32_t i = 0; i < count; ++i) {
    std::string key, message, response;
    uint64_t at = 0;
    uint8_t code = 0;
    if (!r.string32(key, kMaxIdempotencyKeyBytes) || key.empty() || !r.u64le(at) || !r.u8(code) ||
        code > kMaxStatusCode || !r.string32(message) || !r.string32(response)) {
      return std::nullopt;
    }
    const auto status_code = static_cast<StatusCode>(code);
    // An ok entry holds a response that decodes; a failed one holds none.
    if (status_code == StatusCode::kOk ? (!message.empty() || !decode_response(response)) : !response.empty()) {
      return std::nullopt;
    }
    Entry e{static_cast<int64_t>(at), status_code == StatusCode::kOk ? Status::ok() : Status(status_code, message),
            std::move(response)};
    if (t.entries_.count(key) != 0) return std::nullopt;
    const uint64_t seq = t.next_seq_++;
    t.bytes_ += cost(key, e);
    t.order_.emplace_back(seq, key);
    t.entries_.emplace(std::move(key), Stored{std::move(e), seq});
  }
  if (t.bytes_ > kMaxBytes || !r.at_end()) return std::nullopt;
  return t;
}

}  // namespace ckv::fsm
