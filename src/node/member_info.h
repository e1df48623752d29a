// Encoding of MemberInfo (name, addresses, incarnation, cluster id, flags; versioned) into raft::Member::context, and name -> NodeId.
#pragma once

#include <optional>
#include <string>

#include "node/node.h"

namespace ckv::node {

std::string encode_member_info(const MemberInfo& info);
std::optional<MemberInfo> decode_member_info(const std::string& data);

}  // namespace ckv::node
