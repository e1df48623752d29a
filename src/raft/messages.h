// The messages Raft peers exchange; the transport encodes these, the core only builds and reads them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "raft/types.h"

namespace ckv::raft {

enum class MessageType : uint8_t {
  kPreVote = 0,       // thesis §9.6: "would you vote for me at term+1?" (no term change)
  kPreVoteResp = 1,
  kVote = 2,          // RequestVote (§5.2)
  kVoteResp = 3,
  kAppend = 4,        // AppendEntries carrying entries, or an empty probe (§5.3)
  kAppendResp = 5,
  kHeartbeat = 6,     // leader authority + commit; carries a ReadIndex round in context
  kHeartbeatResp = 7,
  kSnapshot = 8,      // one chunk of InstallSnapshot (§7)
  kSnapshotResp = 9,
  kTimeoutNow = 10,   // leadership transfer: start an election now (thesis §3.10)
  kReadIndex = 11,    // follower asks the leader for a read index (thesis §6.4)
  kReadIndexResp = 12,
  // A follower forwards a client's command to its leader, which appends it as
  // its own proposal (thesis §6.2: clients may contact any server; etcd's
  // MsgProp). One kNormal entry with data only (index and term 0), context =
  // the follower's forward id, log_index = its epoch (random per
  // incarnation), term = its term. Success is never answered: the follower
  // sees the entry when it applies it (the node layer tags the data).
  kProp = 13,
  // The leader (or a node that is not one) refused a forwarded proposal: it
  // was not appended. context and log_index as in the kProp, index = the raft::Error.
  kPropResp = 14,
};

const char* to_string(MessageType t);

struct Message {
  MessageType type = MessageType::kAppend;
  NodeId from = kNoNode;
  NodeId to = kNoNode;
  Term term = 0;

  // kVote/kPreVote: the candidate's last log entry (election restriction §5.4.1).
  // kAppend: prev_index/prev_term of the consistency check (§5.3).
  Index log_index = 0;
  Term log_term = 0;
  std::vector<Entry> entries;  // kAppend
  Index commit = 0;            // kAppend, kHeartbeat

  // Responses. kAppendResp: on success index = last index now known to match;
  // on reject, index = the prev index that failed, and (hint_index,
  // hint_term) is the follower's last entry at or before that index whose
  // term is <= the leader's prev term (its last entry when its log is too
  // short). The leader applies the same rule to its own log to find where
  // both can agree, skipping a whole term of mismatches per round trip (§5.3's
  // optimization, in etcd's refined form; see RaftLog::last_index_with_term_at_most).
  // kVoteResp/kPreVoteResp: reject = vote denied.
  bool reject = false;
  Index index = 0;
  Index hint_index = 0;
  Term hint_term = 0;

  // kHeartbeat/kHeartbeatResp: ReadIndex round. kReadIndex/kReadIndexResp:
  // the requester's read id; kReadIndexResp.index is the read index and
  // reject means the leader could not serve it. kProp/kPropResp: the
  // forward id (see above).
  uint64_t context = 0;

  // kSnapshot: snapshot identifies the snapshot; data holds bytes
  // [offset, offset + data.size()) of it; done marks the last chunk.
  // The core leaves data empty and sets data_length: the node layer fills
  // data from its snapshot file just before sending (the core does no I/O).
  // kSnapshotResp: index = snapshot index, offset = next offset expected;
  // done = the whole snapshot is installed; reject = start again from offset.
  SnapshotMeta snapshot;
  uint64_t offset = 0;
  uint64_t data_length = 0;
  std::string data;
  bool done = false;
};

}  // namespace ckv::raft
