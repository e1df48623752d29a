// The "Byzantine-lite" peer (issue 7): forges malformed and out-of-range Raft messages that a validating core must recognise and drop.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "raft/raft.h"
#include "sim_rng.h"

namespace ckv::sim {

// What the forger knows when it builds a message: the target's id and view
// of the cluster (a real attacker on the raft port learns all of this from
// the traffic and from FNV-1a ids of known addresses).
struct ForgeTarget {
  raft::NodeId to = raft::kNoNode;
  raft::Term term = 0;         // the target's current term
  raft::Index last_index = 0;  // the target's last log index
  raft::Term last_term = 0;
  raft::Index commit = 0;
  raft::NodeId leader = raft::kNoNode;  // who the target follows (kNoNode if none)
  bool is_leader = false;
  std::vector<raft::NodeId> members;      // ids in the target's configuration
  raft::NodeId outsider = raft::kNoNode;  // an id that is in no configuration
};

// Only messages a core can prove invalid from its own state and the message
// itself: terms at or above a sane ceiling (2^64-1 wraps term + 1), senders
// outside the configuration, entries that do not follow prev_index or carry
// terms above the message's, acknowledgements of indexes the leader never
// had, snapshot chunks whose offset, length or data disagree, a heartbeat
// committing past the receiver's log. Forgeries that are indistinguishable
// from an honest member (a well-formed vote or ack "from" a member for
// entries it does not hold, a same-term append from a fake leader) break
// safety without peer authentication and are out of scope here: that is
// issue 11 (mutual TLS), see README.md.
enum class Forgery : uint8_t {
  kHugeTerm,               // any message type with term 2^64-1 or just below
  kOutsider,               // well-formed message with a higher term from a non-member id
  kAppendNotContiguous,    // entries that skip or repeat indexes after prev_index
  kAppendBeyondLog,        // prev_index far beyond the receiver's log, with entries
  kEntryTermAboveMessage,  // an entry whose term exceeds the message's term
  kAckNeverSent,           // AppendResp acknowledging an index beyond the leader's log (2^40)
  kSnapshotGarbage,        // chunk offset past its size, data length disagreeing, index 2^63
  kCommitBeyondLog,        // heartbeat/append committing far past the receiver's log
};
inline constexpr int kForgeryKinds = 8;
const char* to_string(Forgery f);
// The forgery named s (as to_string prints it); false if there is none.
bool parse_forgery(const std::string& s, Forgery& out);

// Builds one forged message for target (from, to, and every field set).
raft::Message forge(SimRng& rng, Forgery kind, const ForgeTarget& target);

}  // namespace ckv::sim
