// Stateless validation of peer messages (see message_checks.h).
#include "raft/message_checks.h"

#include "raft/raft.h"

namespace ckv::raft {

namespace {

const char* check_append_entries(const Message& m) {
  // §5.3: the entries follow the consistency-check entry directly, in order,
  // and no entry can be newer than the leader's term (it appended them) or
  // older than the entry before it (terms in a log never decrease).
  Term prev_term = m.log_term;
  for (size_t k = 0; k < m.entries.size(); ++k) {
    const Entry& e = m.entries[k];
    if (e.index != m.log_index + 1 + k) return "append entries are not contiguous after the consistency-check index";
    if (e.term == 0) return "append entry with term 0";
    if (e.term < prev_term) return "append entry terms decrease";
    if (e.term > m.term) return "append entry newer than the sender's term";
    if (e.type == EntryType::kConfig && !decode_membership(e.data)) return "append carries an undecodable configuration";
    prev_term = e.term;
  }
  return nullptr;
}

}  // namespace

const char* check_message_shape(const Message& m) {
  if (m.from == kNoNode || m.to == kNoNode) return "sender or receiver id is 0";
  if (m.term > kMaxTerm || m.log_term > kMaxTerm || m.hint_term > kMaxTerm || m.snapshot.term > kMaxTerm) {
    return "term above the ceiling";
  }
  if (m.log_index > kMaxIndex || m.index > kMaxIndex || m.hint_index > kMaxIndex || m.commit > kMaxIndex ||
      m.snapshot.index > kMaxIndex || m.entries.size() > kMaxIndex - m.log_index) {
    return "index above the ceiling";
  }
  switch (m.type) {
    case MessageType::kPreVote:
    case MessageType::kVote:
      // §5.4.1: a candidate's last entry cannot be newer than the term it
      // campaigns for (a pre-vote asks for term + 1, so the same holds).
      if (m.log_term > m.term) return "candidate's last log term is above its campaign term";
      if ((m.log_index == 0) != (m.log_term == 0)) return "candidate's last log entry is inconsistent";
      return nullptr;
    case MessageType::kAppend:
      if (m.term == 0) return "append with term 0";
      if (m.log_term > m.term) return "append's consistency-check term is above the sender's term";
      // Every real entry has a term >= 1, and only index 0 has term 0.
      if ((m.log_index == 0) != (m.log_term == 0)) return "append's consistency-check entry is inconsistent";
      return check_append_entries(m);
    case MessageType::kHeartbeat:
    case MessageType::kTimeoutNow:
      if (m.term == 0) return "leader message with term 0";
      return nullptr;
    case MessageType::kAppendResp:
      if (m.reject && m.hint_index > m.index) return "append rejection hints beyond the rejected index";
      return nullptr;
    case MessageType::kSnapshot: {
      const SnapshotMeta& s = m.snapshot;
      if (m.term == 0) return "snapshot with term 0";
      if (s.index == 0 || s.term == 0) return "snapshot of an empty log";
      if (s.term > m.term) return "snapshot newer than the sender's term";
      if (s.membership.voters().empty()) return "snapshot configuration has no voter";
      if (m.data.size() != m.data_length) return "snapshot chunk length does not match its data";
      if (m.offset > s.size_bytes || m.data.size() > s.size_bytes - m.offset) {
        return "snapshot chunk extends beyond the snapshot's size";
      }
      return nullptr;
    }
    case MessageType::kProp: {
      // One client command, as the follower's core builds it: the leader
      // gives it an index and term when it appends it.
      if (m.context == 0) return "forwarded proposal without an id";
      if (m.log_index == 0) return "forwarded proposal without an epoch";
      if (m.entries.size() != 1) return "forwarded proposal must carry exactly one entry";
      const Entry& e = m.entries[0];
      if (e.index != 0 || e.term != 0) return "forwarded proposal names a log position";
      if (e.type != EntryType::kNormal) return "forwarded proposal is not a normal entry";
      if (e.data.empty()) return "forwarded proposal is empty (only a leader appends a no-op)";
      if (e.data.size() > kMaxForwardedProposalBytes) return "forwarded proposal is too large";
      return nullptr;
    }
    case MessageType::kPropResp:
      if (m.context == 0) return "proposal refusal without an id";
      if (!m.reject) return "proposal answer that is not a refusal";
      if (m.index == 0 || m.index > static_cast<uint64_t>(kLastError)) return "proposal refusal with an unknown reason";
      return nullptr;
    case MessageType::kPreVoteResp:
    case MessageType::kVoteResp:
    case MessageType::kHeartbeatResp:
    case MessageType::kSnapshotResp:
    case MessageType::kReadIndex:
    case MessageType::kReadIndexResp:
      return nullptr;
  }
  return "unknown message type";
}

}  // namespace ckv::raft
