// Membership helpers and its binary encoding (the payload of kConfig log entries).
#include "raft/types.h"

#include <algorithm>
#include <cstring>

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
constexpr size_t kMaxMembers = 1024;

void put_u64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void put_u32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

class Reader {
 public:
  explicit Reader(const std::string& s) : s_(s) {}
  bool u8(uint8_t& v) {
    if (pos_ + 1 > s_.size()) return false;
    v = static_cast<uint8_t>(s_[pos_++]);
    return true;
  }
  bool u32(uint32_t& v) {
    if (pos_ + 4 > s_.size()) return false;
    v = 0;
    for (int i = 0; i < 4; ++i) v |= uint32_t{static_cast<uint8_t>(s_[pos_ + i])} << (8 * i);
    pos_ += 4;
    return true;
  }
  bool u64(uint64_t& v) {
    if (pos_ + 8 > s_.size()) return false;
    v = 0;
    for (int i = 0; i < 8; ++i) v |= uint64_t{static_cast<uint8_t>(s_[pos_ + i])} << (8 * i);
    pos_ += 8;
    return true;
  }
  bool bytes(size_t n, std::string& out) {
    if (n > s_.size() - pos_) return false;
    out.assign(s_, pos_, n);
    pos_ += n;
    return true;
  }
  bool at_end() const { return pos_ == s_.size(); }

 private:
  const std::string& s_;
  size_t pos_ = 0;
};

}  // namespace

std::string encode_membership(const Membership& m) {
  std::string out;
  out.push_back(static_cast<char>(kMembershipFormat));
  put_u32(out, static_cast<uint32_t>(m.members.size()));
  for (const Member& mem : m.members) {
    put_u64(out, mem.id);
    out.push_back(static_cast<char>(mem.role));
    put_u32(out, static_cast<uint32_t>(mem.context.size()));
    out += mem.context;
  }
  return out;
}

std::optional<Membership> decode_membership(const std::string& data) {
  Reader r(data);
  uint8_t format = 0;
  uint32_t count = 0;
  if (!r.u8(format) || format != kMembershipFormat || !r.u32(count) || count > kMaxMembers) {
    return std::nullopt;
  }
  Membership m;
  for (uint32_t i = 0; i < count; ++i) {
    Member mem;
    uint8_t role = 0;
    uint32_t len = 0;
    if (!r.u64(mem.id) || mem.id == kNoNode || !r.u8(role) || role > 1 || !r.u32(len) ||
        !r.bytes(len, mem.context)) {
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
