// The replicated idempotency table: the first result of each keyed write, so a retry is answered, not applied again.
//
// Why in the state machine (Raft thesis §6.3): a client whose write timed
// out cannot tell whether it was applied; if it retries, only the
// replicated state can say "this was applied already, here is what it
// returned" on every node and after any leader change. etcd has no such
// table (a retried put may apply twice); ours is keyed by the client's
// idempotency key (HTTP header Idempotency-Key, gRPC metadata
// idempotency-key).
//
// Time: entries expire once the table's clock is more than kRetentionMs past
// the proposed_at_ms of the write that made them. The clock is the largest
// proposed_at_ms of any applied command (proposers' wall clocks, carried in
// the log), never the applying node's: every replica expires the same
// entries at the same log index. Space: at most kMaxEntries entries and
// kMaxBytes of stored results; beyond either, the oldest entries (in apply
// order) go first.
//
// Not thread safe: the state machine's lock covers it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/status.h"

namespace ckv::fsm {

class IdempotencyTable {
 public:
  // How long a retry is recognised (ms of the proposers' clocks).
  static constexpr int64_t kRetentionMs = int64_t{10} * 60 * 1000;
  static constexpr size_t kMaxEntries = 100'000;
  // Bytes of keys, messages and encoded responses held at most.
  static constexpr size_t kMaxBytes = size_t{64} << 20;

  struct Entry {
    int64_t proposed_at_ms = 0;
    Status status;         // the write's own outcome
    std::string response;  // encode_response() of its response when status is ok
  };

  // Moves the clock forward to proposed_at_ms (never back) and drops the
  // entries that expired at the front.
  void advance_clock(int64_t proposed_at_ms);
  // The unexpired entry for key, or nullptr.
  const Entry* find(const std::string& key) const;
  // Records the first result for key (replacing an expired entry), then
  // evicts the oldest entries beyond the caps.
  void insert(const std::string& key, Entry entry);

  size_t size() const { return seq_.size(); }
  size_t bytes() const { return bytes_; }
  int64_t clock_ms() const { return clock_ms_; }

  // One entry as stored: immutable once inserted, shared with frozen copies.
  struct Stored {
    std::string key;
    Entry entry;
  };
  // The table at one moment, for a snapshot written on another thread:
  // freezing copies one pointer per entry (the entries are immutable and
  // shared), so the Raft thread never encodes the table itself.
  struct Frozen {
    int64_t clock_ms = 0;
    std::vector<std::shared_ptr<const Stored>> entries;  // apply order
    std::string encode() const;
  };
  Frozen freeze() const;

  // For snapshots: versioned, every entry in apply order; decode validates
  // every field and the caps, so a restored table is one insert() could build.
  std::string encode() const { return freeze().encode(); }
  static std::optional<IdempotencyTable> decode(std::string_view data);

  bool operator==(const IdempotencyTable& o) const { return encode() == o.encode(); }

 private:
  // One insert, in apply order. A slot goes dead when its key expired and
  // was written again (the new slot is at the back); dead slots hold no
  // entry and are dropped when they reach the front.
  struct Slot {
    std::shared_ptr<const Stored> stored;  // null: dead
  };
  static size_t cost(const std::string& key, const Entry& e) {
    return key.size() + e.status.message().size() + e.response.size();
  }
  bool expired(const Entry& e) const { return e.proposed_at_ms < clock_ms_ - kRetentionMs; }
  Slot& slot(uint64_t seq) { return log_[static_cast<size_t>(seq - front_seq_)]; }
  const Slot& slot(uint64_t seq) const { return log_[static_cast<size_t>(seq - front_seq_)]; }
  // Drops the front of log_ while it is dead, expired, or over a cap.
  void evict();
  void push(std::string key, Entry entry);

  // Contiguous in apply order, so a snapshot copies it without lookups.
  std::deque<Slot> log_;
  uint64_t front_seq_ = 0;                         // the seq of log_.front()
  std::unordered_map<std::string, uint64_t> seq_;  // key -> seq of its live slot
  int64_t clock_ms_ = 0;
  size_t bytes_ = 0;
};

}  // namespace ckv::fsm
