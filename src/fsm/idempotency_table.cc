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
  auto it = seq_.find(key);
  if (it == seq_.end()) return nullptr;
  const Entry& e = slot(it->second).stored->entry;
  return expired(e) ? nullptr : &e;
}

void IdempotencyTable::push(std::string key, Entry entry) {
  bytes_ += cost(key, entry);
  seq_[key] = front_seq_ + log_.size();
  log_.push_back(Slot{std::make_shared<const Stored>(Stored{std::move(key), std::move(entry)})});
}

void IdempotencyTable::insert(const std::string& key, Entry entry) {
  if (auto it = seq_.find(key); it != seq_.end()) {
    // Only an expired entry is replaced (find() hid it): its slot dies.
    Slot& old = slot(it->second);
    bytes_ -= cost(old.stored->key, old.stored->entry);
    old.stored.reset();
    seq_.erase(it);
  }
  push(key, std::move(entry));
  evict();
}

void IdempotencyTable::evict() {
  while (!log_.empty()) {
    Slot& front = log_.front();
    if (front.stored) {
      const bool over_cap = seq_.size() > kMaxEntries || bytes_ > kMaxBytes;
      if (!over_cap && !expired(front.stored->entry)) return;
      bytes_ -= cost(front.stored->key, front.stored->entry);
      seq_.erase(front.stored->key);
    }
    log_.pop_front();
    ++front_seq_;
  }
}

// Layout: u8 format, i64 clock_ms, u32 count, then per entry in apply order:
// string32 key, i64 proposed_at_ms, u8 status code, string32 message,
// string32 encoded response (empty unless the status is ok).
IdempotencyTable::Frozen IdempotencyTable::freeze() const {
  Frozen f;
  f.clock_ms = clock_ms_;
  f.entries.reserve(seq_.size());
  for (const Slot& s : log_) {
    if (s.stored) f.entries.push_back(s.stored);
  }
  return f;
}

std::string IdempotencyTable::Frozen::encode() const {
  std::string out;
  put_u8(out, kTableFormat);
  put_u64le(out, static_cast<uint64_t>(clock_ms));
  put_u32le(out, static_cast<uint32_t>(entries.size()));
  for (const auto& stored : entries) {
    const Entry& e = stored->entry;
    put_string32(out, stored->key);
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
  if (!r.u8(format) || format != kTableFormat || !r.u64le(clock) || !r.u32le(count) ||
      count > kMaxEntries) {
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
    if (status_code == StatusCode::kOk ? (!message.empty() || !decode_response(response))
                                       : !response.empty()) {
      return std::nullopt;
    }
    Entry e{static_cast<int64_t>(at),
            status_code == StatusCode::kOk ? Status::ok() : Status(status_code, message),
            std::move(response)};
    if (t.seq_.count(key) != 0) return std::nullopt;
    t.push(std::move(key), std::move(e));
  }
  if (t.bytes_ > kMaxBytes || !r.at_end()) return std::nullopt;
  return t;
}

}  // namespace ckv::fsm
