// MemberInfo codec and node ids (see member_info.h).
#include "node/member_info.h"

#include "common/bytes.h"

namespace ckv::node {

namespace {
constexpr uint8_t kMemberInfoFormat = 1;
constexpr uint32_t kMaxFieldBytes = 4096;

void put_string(std::string& out, const std::string& s) {
  put_u32le(out, static_cast<uint32_t>(s.size()));
  out += s;
}

bool get_string(ByteReader& r, std::string& s) {
  uint32_t n = 0;
  return r.u32le(n) && n <= kMaxFieldBytes && r.bytes(n, s);
}
}  // namespace

raft::NodeId node_id_for(const std::string& name) {
  // FNV-1a, 64 bit: stable across versions and platforms, which std::hash is not.
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : name) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h == raft::kNoNode ? 1 : h;
}

std::string encode_member_info(const MemberInfo& info) {
  std::string out;
  put_u8(out, kMemberInfoFormat);
  put_string(out, info.name);
  put_string(out, info.raft_address);
  put_string(out, info.api_address);
  return out;
}

std::optional<MemberInfo> decode_member_info(const std::string& data) {
  ByteReader r(data);
  uint8_t format = 0;
  MemberInfo info;
  if (!r.u8(format) || format != kMemberInfoFormat || !get_string(r, info.name) ||
      !get_string(r, info.raft_address) || !get_string(r, info.api_address) || !r.at_end()) {
    return std::nullopt;
  }
  return info;
}

}  // namespace ckv::node
