// The simulated state machine: a key->value map fed by "set k v"/"del k" commands, with snapshots.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "raft/types.h"

namespace ckv::sim {

struct Command {
  // Leases (--leases): "lgrant <id> <ttl_s> <proposed_ms>", "lrevoke <id> <proposed_ms>".
  enum class Op : uint8_t { kSet, kDel, kLeaseGrant, kLeaseRevoke };
  Op op = Op::kSet;
  std::string key;
  std::string value;  // kSet only
  uint64_t lease = 0;        // lease ops
  int64_t ttl_s = 0;         // kLeaseGrant
  uint64_t proposed_ms = 0;  // lease ops: the proposer's clock when it proposed
};

std::string encode_set(const std::string& key, const std::string& value);
std::string encode_del(const std::string& key);
std::string encode_lease_grant(uint64_t id, int64_t ttl_s, uint64_t proposed_ms);
std::string encode_lease_revoke(uint64_t id, uint64_t proposed_ms);
// nullopt for anything that is not a command (the no-op, config entries).
std::optional<Command> parse_command(const std::string& data);

// 64-bit FNV-1a; stable across builds, so fingerprints in failure reports replay too.
uint64_t fnv1a(const std::string& s, uint64_t h = 1469598103934665603ULL);
uint64_t entry_hash(const raft::Entry& e);

class SimStateMachine {
 public:
  // Applies the committed entry at applied()+1.
  void apply(const raft::Entry& e);
  // Snapshot bytes: applied index and term, then the map (length-prefixed);
  // "ckvsim2" adds the lease table (only when it is not empty, so runs
  // without leases produce exactly the bytes they always did).
  std::string serialize() const;
  // Replaces the state with a snapshot's; false when bytes are malformed or
  // do not describe meta.index/meta.term.
  bool restore(const std::string& bytes, const raft::SnapshotMeta& meta);
  void clear() { *this = SimStateMachine(); }

  raft::Index applied() const { return applied_; }
  raft::Term applied_term() const { return applied_term_; }
  const raft::Membership& membership() const { return membership_; }
  // Order-independent digest of the map, maintained incrementally so that
  // every apply can be compared across nodes at no cost (State Machine Safety).
  uint64_t digest() const { return digest_; }
  std::optional<std::string> get(const std::string& key) const;
  // The replicated lease table: id -> TTL in seconds. Part of digest().
  const std::map<uint64_t, int64_t>& leases() const { return leases_; }
  // The lease op the last apply() made take effect (nullopt: none, or a
  // grant of an existing id / a revoke of an unknown one).
  const std::optional<Command>& last_lease_op() const { return last_lease_op_; }

 private:
  void put(const std::string& key, std::optional<std::string> value);

  std::map<std::string, std::string> kv_;
  std::map<uint64_t, int64_t> leases_;
  std::optional<Command> last_lease_op_;
  raft::Index applied_ = 0;
  raft::Term applied_term_ = 0;
  raft::Membership membership_;  // latest configuration applied, for our own snapshots' meta
  uint64_t digest_ = 0;
};

}  // namespace ckv::sim
