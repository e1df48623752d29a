// Writes a follower forwards to its leader as Raft proposals: the origin tag their entries carry, and the clients waiting for them.
//
// A follower cannot know where the leader will append its proposal, so it
// cannot wait by (index, term) as a leader does (write_waiters.h). Instead
// the entry's data carries an origin tag: the proposing node's id, a random
// id of this process (boot id: sequence numbers restart with the process),
// and a sequence number. The follower answers its client when it applies an
// entry carrying its own tag, with its own applied result, so a read on the
// follower that follows sees the write (read-your-writes).
//
// Outcomes: applied (success, the result); refused by the leader (it did not
// append it: a definite failure, safe to retry); otherwise unknown (deadline,
// shutdown, a snapshot installed meanwhile that may or may not hold it). A
// proposal appended by a leader that is deposed before committing it is
// either committed by a later leader (then applied, once) or never applied;
// nothing re-sends it, so it is never applied twice (the idempotency key
// still protects a client's own retries).
//
// Entry format (all integers little-endian), wrapping a command (fsm/command.h):
//   u8 kOriginTagFormat, u64 node id, u64 boot id, u64 sequence, command bytes
// kOriginTagFormat is a format byte the command codec never uses.
//
// Thread safety: none; the node's Raft thread owns it. Callbacks run inside
// these calls and must only hand the result off.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"
#include "node/write_result.h"
#include "raft/types.h"

namespace ckv::node {

// First byte of a tagged entry. Command formats are small integers counting
// up from 1 (fsm/command.h); this stays far from them.
inline constexpr uint8_t kOriginTagFormat = 0xF1;
inline constexpr size_t kOriginTagBytes = 1 + 3 * 8;

struct Origin {
  raft::NodeId node = raft::kNoNode;
  uint64_t boot = 0;
  uint64_t seq = 0;
  bool operator==(const Origin&) const = default;
};

std::string encode_tagged(const Origin& origin, std::string_view command);
// The origin and the command bytes of a tagged entry; nullopt when data
// does not start with kOriginTagFormat (a leader's own, untagged entry) or
// is too short to hold a tag (then it is no command either).
struct Tagged {
  Origin origin;
  std::string_view command;
};
std::optional<Tagged> decode_tagged(std::string_view data);

// The message of a write refused because this follower already has too
// many forwarded writes in flight (the etcd API says etcd's "too many requests").
inline constexpr const char* kErrTooManyForwardedWrites =
    "too many writes forwarded to the leader and not applied yet; retry";

class ForwardWaiters {
 public:
  using Clock = std::chrono::steady_clock;
  using Callback = std::function<void(Result<WriteResult>)>;

  // max_count writes and max_bytes bytes of tagged entries in flight at once.
  ForwardWaiters(uint64_t max_count, uint64_t max_bytes) : max_count_(max_count), max_bytes_(max_bytes) {}

  // Whether one more write of `bytes` fits the limits. One write always
  // fits when none is waiting, so a single large write is never refused.
  bool has_room(uint64_t bytes) const;
  // Waits for the entry tagged with seq; forward_id is the core's id for the
  // proposal (raft::ProposeResult::forward_id), which a refusal names.
  void add(uint64_t seq, uint64_t forward_id, uint64_t bytes, Clock::time_point deadline, Callback cb);
  // This node applied the entry tagged with seq (at result.index).
  void applied(uint64_t seq, WriteResult result);
  // The leader refused the proposal: it was never appended.
  void refused(uint64_t forward_id, const Status& why);
  // A snapshot replaced the log: whatever it held, we cannot tell whose.
  void snapshot_installed();
  void expire(Clock::time_point now, const std::string& why = "");
  void fail_all();

  size_t size() const { return waiters_.size(); }
  uint64_t bytes() const { return bytes_; }

 private:
  struct Waiter {
    uint64_t forward_id;
    uint64_t bytes;
    Clock::time_point deadline;
    Callback cb;
  };
  Callback take(std::map<uint64_t, Waiter>::iterator it);

  uint64_t max_count_;
  uint64_t max_bytes_;
  uint64_t bytes_ = 0;
  std::map<uint64_t, Waiter> waiters_;        // by sequence number
  std::map<uint64_t, uint64_t> by_forward_id_;  // forward id -> sequence number
};

}  // namespace ckv::node
