// The node's metadata file in its data dir: its name and the incarnation id created with the dir (placeholder until the disk work lands).
#pragma once

#include <optional>
#include <string>

#include "common/status.h"

namespace ckv::storage {

struct NodeMeta {
  std::string name;
  std::string incarnation;  // 32 lowercase hex chars, random, made once with the data dir
};

// nullopt when absent, kCorrupt when damaged.
Result<std::optional<NodeMeta>> read_node_meta(const std::string& dir);
// Atomic: a crash leaves the old file or the new one, never a mix.
Status write_node_meta(const std::string& dir, const NodeMeta& meta);

}  // namespace ckv::storage
