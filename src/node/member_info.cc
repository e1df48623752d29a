// MemberInfo codec and node ids (see member_info.h).
#include "node/member_info.h"

#include "common/bytes.h"

namespace ckv::node {

namespace {
// 1: name, raft address, API address. 2: and the incarnation. 3: and the
// gRPC address. All decode.
constexpr uint8_t kMemberInfoFormatV1 = 1;
constexpr uint8_t kMemberInfoFormatV2 = 2;
constexpr uint8_t kMemberInfoFormat = 3;
constexpr uint32_t kMaxFieldBytes = 4096;

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
  put_string32(out, info.name);
  put_string32(out, info.raft_address);
  put_string32(out, info.api_address);
  put_string32(out, info.incarnation);
  put_string32(out, info.grpc_address);
  return out;
}

std::optional<MemberInfo> decode_member_info(const std::string& data) {
  ByteReader r(data);
  uint8_t format = 0;
  MemberInfo info;
  if (!r.u8(format) || (format != kMemberInfoFormatV1 && format != kMemberInfoFormatV2 && format != kMemberInfoFormat) ||
      !r.string32(info.name, kMaxFieldBytes) || !r.string32(info.raft_address, kMaxFieldBytes) ||
      !r.string32(info.api_address, kMaxFieldBytes)) {
    return std::nullopt;
  }
  if (format >= kMemberInfoFormatV2 && !r.string32(info.incarnation, kMaxFieldBytes)) return std::nullopt;
  if (format >= kMemberInfoFormat && !r.string32(info.grpc_address, kMaxFieldBytes)) return std::nullopt;
  if (!r.at_end()) return std::nullopt;
  return info;
}

}  // namespace ckv::node
