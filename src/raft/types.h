// Plain value types of the Raft core: log entries, hard state, membership, snapshot metadata.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ckv::raft {

using NodeId = uint64_t;  // 0 is never a valid id (kNoNode)
using Term = uint64_t;
using Index = uint64_t;

inline constexpr NodeId kNoNode = 0;
// Most members a configuration may hold; decode_membership refuses more, so
// no change may ever propose a larger one.
inline constexpr size_t kMaxMembers = 1024;

enum class EntryType : uint8_t {
  kNormal = 0,  // application command; empty data = the no-op a new leader appends (§8)
  kConfig = 1,  // data = encode_membership(full new membership); takes effect when appended (thesis §4.1)
};

struct Entry {
  Term term = 0;
  Index index = 0;
  EntryType type = EntryType::kNormal;
  std::string data;

  bool operator==(const Entry&) const = default;
};

// What must be on stable storage before any message that depends on it is
// sent (Figure 2 "persistent state"). commit is persisted only so that a
// restart can re-apply without waiting for a leader; it is not needed for safety.
struct HardState {
  Term term = 0;
  NodeId vote = kNoNode;
  Index commit = 0;

  bool operator==(const HardState&) const = default;
};

enum class MemberRole : uint8_t {
  kVoter = 0,
  kLearner = 1,  // receives the log, never votes, never counts toward commit
};

struct Member {
  NodeId id = kNoNode;
  MemberRole role = MemberRole::kVoter;
  // Opaque to the core; the node layer keeps addresses and names here so that
  // every member learns them through the replicated log.
  std::string context;

  bool operator==(const Member&) const = default;
};

// The full cluster configuration. Kept sorted by id (encode/decode and the
// core maintain that) so that equal memberships compare equal.
struct Membership {
  std::vector<Member> members;

  const Member* find(NodeId id) const;
  bool is_voter(NodeId id) const;
  bool is_learner(NodeId id) const;
  bool contains(NodeId id) const { return find(id) != nullptr; }
  std::vector<NodeId> voters() const;
  bool operator==(const Membership&) const = default;
};

std::string encode_membership(const Membership& m);
// Returns nullopt on malformed input.
std::optional<Membership> decode_membership(const std::string& data);

// Describes the snapshot that stands in for the log up to and including index.
struct SnapshotMeta {
  Index index = 0;
  Term term = 0;
  Membership membership;  // the configuration in effect at index
  uint64_t size_bytes = 0;

  bool operator==(const SnapshotMeta&) const = default;
};

// One-server membership change requested through Raft::propose_conf_change.
enum class ConfChangeType : uint8_t {
  kAddLearner = 0,     // new member that replicates but does not vote
  kPromote = 1,        // learner -> voter (call once the learner is caught up)
  kRemove = 2,         // drop a member; removing the leader makes it step down once committed
  kUpdateContext = 3,  // replace a member's context (e.g. it registers its API address)
};

struct ConfChange {
  ConfChangeType type = ConfChangeType::kAddLearner;
  NodeId node = kNoNode;
  std::string context;  // for kAddLearner and kUpdateContext
};

}  // namespace ckv::raft
