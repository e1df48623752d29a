// Membership helpers and its binary encoding (the payload of kConfig log entries).
#include "raft/types.h"

#include <algorithm>
#include <cstring>

#include "common/bytes.h"

namespace ckv::raft {

const Member* Membership::find(NodeId id) const {
  for (const Member& m : members) {
    if (m.id == id) return &m;
  }
  return nullptr;
}

bool Membership::is_voter(NodeId id) const {
  const Member* m = find(id);
  return m != nullptr && m->role == MemberRole::kVoter;
}

bool Membership::is_learner(NodeId id) const {
  const Member* m = find(id);
  return m != nullptr && m->role == MemberRole::kLearner;
}

std::vector<NodeId> Membership::voters() const {
  std::vector<NodeId> out;
  for (const Member& m : members) {
    if (m.role == MemberRole::kVoter) out.push_back(m.id);
  }
  return out;
}

namespace {

// Fixed-width little-endian fields: the format is tiny and versioned by its
// first byte, so a future format can be told apart.
constexpr uint8_t kMembershipFormat = 1;

}  // namespace

std::string encode_membership(const Membership& m) {
  std::string out;
  out.push_back(static_cast<char>(kMembershipFormat));
  put_u32le(out, static_cast<uint32_t>(m.members.size()));
  for (const Member& mem : m.members) {
    put_u64le(out, mem.id);
    out.push_back(static_cast<char>(mem.role));
    put_string32(out, mem.context);
  }
  return out;
}

std::optional<Membership> decode_membership(const std::string& data) {
  ByteReader r(data);
  uint8_t format = 0;
  uint32_t count = 0;
  if (!r.u8(format) || format != kMembershipFormat || !r.u32le(count) || count > kMaxMembers) {
    return std::nullopt;
  }
  Membership m;
  for (uint32_t i = 0; i < count; ++i) {
    Member mem;
    uint8_t role = 0;
    if (!r.u64le(mem.id) || mem.id == kNoNode || !r.u8(role) || role > 1 ||
        !r.string32(mem.context)) {
      return std::nullopt;
    }
    mem.role = static_cast<MemberRole>(role);
    if (m.contains(mem.id)) return std::nullopt;
    m.members.push_back(std::move(mem));
  }
  if (!r.at_end()) return std::nullopt;
  std::sort(m.members.begin(), m.members.end(),
            [](const Member& a, const Member& b) { return a.id < b.id; });
  return m;
}

}  // namespace ckv::raft
