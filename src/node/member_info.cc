// MemberInfo codec and node ids (see member_info.h).
#include "node/member_info.h"

#include <sys/random.h>

#include <cerrno>
#include <cstring>

#include "common/bytes.h"

namespace ckv::node {

namespace {
// 1: name, raft address, API address. 2: and the incarnation. 3: and the
// gRPC address. 4: and the cluster id and flags. All decode.
constexpr uint8_t kMemberInfoFormatV1 = 1;
constexpr uint8_t kMemberInfoFormatV2 = 2;
constexpr uint8_t kMemberInfoFormatV3 = 3;
constexpr uint8_t kMemberInfoFormat = 4;
constexpr uint32_t kMaxFieldBytes = 4096;
// Format 4's flags byte. Unknown bits are refused: a later version may give
// one a meaning an older node must not ignore.
constexpr uint8_t kFlagPromoteWhenCaughtUp = 1;
constexpr uint8_t kKnownFlags = kFlagPromoteWhenCaughtUp;

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

Result<uint64_t> random_nonzero_u64() {
  uint64_t id = 0;
  while (id == 0) {
    size_t got = 0;
    auto* raw = reinterpret_cast<unsigned char*>(&id);
    while (got < sizeof id) {
      const ssize_t n = ::getrandom(raw + got, sizeof id - got, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Status(StatusCode::kIo, std::string("getrandom: ") + std::strerror(errno));
      got += static_cast<size_t>(n);
    }
  }
  return id;
}

Status assign_new_cluster_identity(MemberInfo& founder) {
  auto id = random_nonzero_u64();
  if (!id.is_ok()) return id.status();
  founder.cluster_id = id.value();
  return Status::ok();
}

uint64_t cluster_id_of(const raft::Membership& m) {
  // Members are sorted by id, so the first recorded id is the lowest-id member's.
  for (const raft::Member& member : m.members) {
    auto info = decode_member_info(member.context);
    if (info && info->cluster_id != 0) return info->cluster_id;
  }
  if (m.members.empty()) return 0;
  // Recorded before format 4: FNV-1a 64 over the sorted ids' little-endian
  // bytes, the id headers showed before, so clients see no change.
  uint64_t h = 0xcbf29ce484222325ULL;
  for (const raft::Member& member : m.members) {
    for (int i = 0; i < 8; ++i) {
      h ^= (member.id >> (8 * i)) & 0xff;
      h *= 0x100000001b3ULL;
    }
  }
  return h == 0 ? 1 : h;
}

std::string encode_member_info(const MemberInfo& info) {
  std::string out;
  put_u8(out, kMemberInfoFormat);
  put_string32(out, info.name);
  put_string32(out, info.raft_address);
  put_string32(out, info.api_address);
  put_string32(out, info.incarnation);
  put_string32(out, info.grpc_address);
  put_u64le(out, info.cluster_id);
  put_u8(out, info.promote_when_caught_up ? kFlagPromoteWhenCaughtUp : 0);
  return out;
}

std::optional<MemberInfo> decode_member_info(const std::string& data) {
  ByteReader r(data);
  uint8_t format = 0;
  MemberInfo info;
  if (!r.u8(format) || format < kMemberInfoFormatV1 || format > kMemberInfoFormat ||
      !r.string32(info.name, kMaxFieldBytes) || !r.string32(info.raft_address, kMaxFieldBytes) ||
      !r.string32(info.api_address, kMaxFieldBytes)) {
    return std::nullopt;
  }
  if (format >= kMemberInfoFormatV2 && !r.string32(info.incarnation, kMaxFieldBytes)) return std::nullopt;
  if (format >= kMemberInfoFormatV3 && !r.string32(info.grpc_address, kMaxFieldBytes)) return std::nullopt;
  if (format >= kMemberInfoFormat) {
    uint8_t flags = 0;
    if (!r.u64le(info.cluster_id) || !r.u8(flags) || (flags & ~kKnownFlags) != 0) return std::nullopt;
    info.promote_when_caught_up = (flags & kFlagPromoteWhenCaughtUp) != 0;
  } else {
    // Before format 4 every learner came from /join, which promotes it once
    // it has caught up; explicit learners (etcd's --learner) came with format 4.
    info.promote_when_caught_up = true;
  }
  if (!r.at_end()) return std::nullopt;
  return info;
}

}  // namespace ckv::node
