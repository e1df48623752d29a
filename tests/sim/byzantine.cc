// Builds the Byzantine-lite peer's forged messages (see byzantine.h for what is in and out of scope).
#include "byzantine.h"

#include <limits>

namespace ckv::sim {

using raft::Entry;
using raft::Message;
using raft::MessageType;

namespace {

constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();

raft::NodeId some_member(SimRng& rng, const ForgeTarget& t) {
  std::vector<raft::NodeId> others;
  for (raft::NodeId id : t.members) {
    if (id != t.to) others.push_back(id);
  }
  if (others.empty()) return t.outsider;
  return rng.pick(others);
}

// The sender a forgery claims: the target's leader when it has one (the
// most trusted id), else any other member.
raft::NodeId claimed_leader(SimRng& rng, const ForgeTarget& t) {
  if (t.leader != raft::kNoNode && t.leader != t.to) return t.leader;
  return some_member(rng, t);
}

std::vector<Entry> entries_after(SimRng& rng, raft::Index prev, raft::Term term, size_t n) {
  std::vector<Entry> es;
  for (size_t k = 0; k < n; ++k) {
    es.push_back(Entry{term, prev + 1 + k, raft::EntryType::kNormal,
                       "set k" + std::to_string(rng.range(0, 11)) + " forged"});
  }
  return es;
}

}  // namespace

const char* to_string(Forgery f) {
  switch (f) {
    case Forgery::kHugeTerm:
      return "huge-term";
    case Forgery::kOutsider:
      return "outsider";
    case Forgery::kAppendNotContiguous:
      return "append-not-contiguous";
    case Forgery::kAppendBeyondLog:
      return "append-beyond-log";
    case Forgery::kEntryTermAboveMessage:
      return "entry-term-above-message";
    case Forgery::kAckNeverSent:
      return "ack-never-sent";
    case Forgery::kSnapshotGarbage:
      return "snapshot-garbage";
    case Forgery::kCommitBeyondLog:
      return "commit-beyond-log";
  }
  return "?";
}

bool parse_forgery(const std::string& s, Forgery& out) {
  for (int k = 0; k < kForgeryKinds; ++k) {
    if (s == to_string(static_cast<Forgery>(k))) {
      out = static_cast<Forgery>(k);
      return true;
    }
  }
  return false;
}

Message forge(SimRng& rng, Forgery kind, const ForgeTarget& t) {
  Message m;
  m.to = t.to;
  m.term = t.term;
  switch (kind) {
    case Forgery::kHugeTerm: {
      // 2^64-1 makes a naive term + 1 wrap to 0; the message type is any.
      m.type = static_cast<MessageType>(rng.range(0, 12));
      m.from = rng.chance(0.5) ? claimed_leader(rng, t) : t.outsider;
      m.term = kMax - rng.range(0, 2);
      m.log_index = rng.chance(0.5) ? t.last_index : rng.next();
      m.log_term = rng.chance(0.5) ? m.term : rng.next();
      m.commit = rng.chance(0.5) ? t.commit : rng.next();
      m.index = rng.next() >> rng.range(0, 63);
      if (m.type == MessageType::kAppend && rng.chance(0.5))
        m.entries = entries_after(rng, m.log_index, m.term, rng.range(1, 3));
      break;
    }
    case Forgery::kOutsider: {
      // Messages a node outside every configuration cannot legitimately
      // send: answers to requests it never got, transfer orders, reads.
      static const MessageType kTypes[] = {MessageType::kAppendResp,   MessageType::kHeartbeatResp,
                                           MessageType::kSnapshotResp, MessageType::kVoteResp,
                                           MessageType::kPreVoteResp,  MessageType::kReadIndexResp,
                                           MessageType::kTimeoutNow,   MessageType::kReadIndex,
                                           MessageType::kProp};
      m.type = kTypes[rng.range(0, 8)];
      m.from = t.outsider;
      m.term = t.term + rng.range(0, 1);
      m.index = rng.range(0, t.last_index + 2);
      m.reject = rng.chance(0.3);
      m.context = rng.range(0, 5);
      if (m.type == MessageType::kProp) {
        // Well-formed, so that only "from a non-member" can stop it injecting an entry.
        m.context = rng.range(1, 5);
        m.entries = {Entry{0, 0, raft::EntryType::kNormal, "set k" + std::to_string(rng.range(0, 11)) + " forged"}};
      }
      break;
    }
    case Forgery::kAppendNotContiguous: {
      m.type = MessageType::kAppend;
      m.from = claimed_leader(rng, t);
      m.log_index = rng.range(0, t.last_index);
      m.log_term = rng.range(0, t.term);
      m.commit = t.commit;
      m.entries = entries_after(rng, m.log_index, t.term, rng.range(2, 4));
      // Skip one index, repeat one, or start away from prev_index + 1.
      switch (rng.range(0, 2)) {
        case 0:
          m.entries[1].index += rng.range(1, 1000000);
          break;
        case 1:
          m.entries[1].index = m.entries[0].index;
          break;
        default:
          for (Entry& e : m.entries) e.index += rng.range(2, 1000000);
          break;
      }
      break;
    }
    case Forgery::kAppendBeyondLog: {
      m.type = MessageType::kAppend;
      m.from = claimed_leader(rng, t);
      m.log_index = t.last_index + rng.range(1, 1000000);
      m.log_term = t.term;
      m.commit = m.log_index + 1;
      m.entries = entries_after(rng, m.log_index, t.term, rng.range(1, 3));
      break;
    }
    case Forgery::kEntryTermAboveMessage: {
      m.type = MessageType::kAppend;
      m.from = claimed_leader(rng, t);
      m.log_index = t.last_index;
      m.log_term = t.last_term;  // so that the consistency check passes
      m.commit = t.commit;
      m.entries = entries_after(rng, m.log_index, t.term + rng.range(1, 1000), 1);
      break;
    }
    case Forgery::kAckNeverSent: {
      // "From" a follower: an ack beyond anything the leader has.
      m.type = MessageType::kAppendResp;
      m.from = some_member(rng, t);
      m.index = rng.chance(0.5) ? (uint64_t{1} << 40) : t.last_index + rng.range(1, 1000);
      m.reject = false;
      break;
    }
    case Forgery::kSnapshotGarbage: {
      m.type = MessageType::kSnapshot;
      m.from = claimed_leader(rng, t);
      m.snapshot.index = rng.chance(0.5) ? (uint64_t{1} << 63) : t.last_index + rng.range(1, 50);
      m.snapshot.term = rng.chance(0.5) ? t.term + rng.range(1, 1000) : t.term;
      m.snapshot.size_bytes = rng.range(1, 4096);
      std::string data(rng.range(1, 64), 'x');
      switch (rng.range(0, 3)) {
        case 0:  // offset past the snapshot's size
          m.offset = m.snapshot.size_bytes + rng.range(1, kMax / 4);
          m.data = data;
          m.data_length = data.size();
          break;
        case 1:  // data_length disagrees with the data
          m.data = data;
          m.data_length = data.size() + rng.range(1, 1000);
          break;
        case 2:  // a "last" chunk that ends before or after the size it claims
          m.data = data;
          m.data_length = data.size();
          m.snapshot.size_bytes = data.size() + rng.range(1, 100);
          m.done = true;
          break;
        default:  // a complete snapshot with no configuration in it
          m.data = data;
          m.data_length = data.size();
          m.snapshot.size_bytes = data.size();
          m.snapshot.membership = raft::Membership{};
          m.done = true;
          break;
      }
      break;
    }
    case Forgery::kCommitBeyondLog: {
      // A leader's heartbeat commits at most what the follower acknowledged
      // (min(match, commit)), so never beyond the follower's log.
      m.type = MessageType::kHeartbeat;
      m.from = claimed_leader(rng, t);
      m.commit = rng.chance(0.5) ? kMax : t.last_index + rng.range(1, 1000000);
      break;
    }
  }
  return m;
}

}  // namespace ckv::sim
