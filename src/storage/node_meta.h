// The data dir's identity file (node_meta): which node it belongs to and the incarnation made when it was created.
//
// A data dir gets one incarnation, 32 random lowercase hex characters, when
// it is created; it never changes afterwards. A node whose state was wiped
// (a new data dir under the old name) therefore has a new incarnation, so
// its peers can tell it is not the member that voted and acknowledged
// before (issue 7, item 9) and must not count it as that member.
//
// File format (<dir>/node_meta, little-endian): "CKVMETA" + format u8 (1),
// crc32c u32 of the body, body = name (u32 length + bytes), incarnation
// (u32 length + bytes). Written atomically: temp file, fsync, rename,
// fsync of the directory.
//
// Thread safety: plain functions, no shared state.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace ckv::storage {

inline constexpr char kNodeMetaFileName[] = "node_meta";

struct NodeMeta {
  std::string name;
  std::string incarnation;  // 32 lowercase hex chars, random (getrandom), made once when the data dir is created
};

// nullopt when <dir>/node_meta is absent, kCorrupt (naming the file) when damaged.
Result<std::optional<NodeMeta>> read_node_meta(const std::string& dir);
// Atomic: write temp, fsync, rename, fsync dir.
Status write_node_meta(const std::string& dir, const NodeMeta& meta);

// Replaces <dir>/<name> with data atomically: writes <name>.tmp, fsyncs it,
// renames it over <name>, fsyncs dir. A crash leaves the old or the new file,
// never a mix (the .tmp is removed by the next writer or at start).
Status write_file_atomically(const std::string& dir, const std::string& name, std::string_view data);

// A fresh incarnation: 16 bytes from getrandom(), as 32 lowercase hex chars.
Result<std::string> new_incarnation();
// True when s is 32 lowercase hex characters.
bool valid_incarnation(const std::string& s);

}  // namespace ckv::storage
