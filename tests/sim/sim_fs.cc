// The simulator's in-memory file system and its crash model (see sim_fs.h).
#include "sim_fs.h"

#include <algorithm>
#include <set>

namespace ckv::sim {

using storage::OpenMode;

namespace {

// A crash keeps or loses pending file data in blocks this size (a sector:
// the WAL's format assumes a sector is written whole or not at all).
constexpr uint64_t kSectorBytes = 512;
// At most this much garbage is written where a torn write stopped.
constexpr uint64_t kMaxGarbageBytes = 512;

Status io(const std::string& path, const char* what) {
  return Status(StatusCode::kIo, path + ": " + what);
}

}  // namespace

MemFileSystem::MemFileSystem() { dirs_["/"]; }

bool MemFileSystem::tick() {
  if (powered_off_) return false;
  if (calls_to_cut_ > 0 && --calls_to_cut_ == 0) {
    powered_off_ = true;
    ++stats_.power_cuts;
    return false;
  }
  return true;
}

Status MemFileSystem::off(const std::string& path) const {
  return io(path, "simulated power cut (the machine is off)");
}

std::pair<std::string, std::string> MemFileSystem::split(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return {"/", path};
  return {slash == 0 ? "/" : path.substr(0, slash), path.substr(slash + 1)};
}

MemFileSystem::Dir* MemFileSystem::dir_of(const std::string& path) {
  auto it = dirs_.find(split(path).first);
  return it == dirs_.end() ? nullptr : &it->second;
}

void MemFileSystem::link(Dir& d, const std::string& name, Entry e) {
  d.names[name] = e;
  d.pending.push_back(NsOp{name, true, e, ""});
}

void MemFileSystem::unlink_name(Dir& d, const std::string& name) {
  d.names.erase(name);
  d.pending.push_back(NsOp{name, false, Entry{}, ""});
}

MemFileSystem::Inode* MemFileSystem::inode_of(int fd) {
  auto it = open_.find(fd);
  if (it == open_.end()) return nullptr;
  auto n = inodes_.find(it->second.inode);
  return n == inodes_.end() ? nullptr : &n->second;
}

void MemFileSystem::apply(std::string& data, const Op& op) {
  if (op.resize) {
    data.resize(op.size, '\0');
    return;
  }
  if (data.size() < op.offset + op.bytes.size()) data.resize(op.offset + op.bytes.size(), '\0');
  data.replace(op.offset, op.bytes.size(), op.bytes);
}

Result<int> MemFileSystem::open(const std::string& path, OpenMode mode) {
  const bool creates = mode == OpenMode::kCreateNew || mode == OpenMode::kCreateTrunc;
  if (creates ? !tick() : powered_off_) return off(path);
  Dir* d = dir_of(path);
  if (d == nullptr) return io(path, "open: no such directory");
  const std::string name = split(path).second;
  auto it = d->names.find(name);
  if (it != d->names.end() && it->second.is_dir) return io(path, "open: is a directory");
  uint64_t ino = 0;
  if (it == d->names.end()) {
    if (!creates) return io(path, "open: no such file");
    ino = next_inode_++;
    inodes_[ino];
    link(*d, name, Entry{false, ino});
  } else {
    if (mode == OpenMode::kCreateNew) return io(path, "create: file exists");
    ino = it->second.inode;
    if (mode == OpenMode::kCreateTrunc) {
      Inode& node = inodes_[ino];
      Op op;
      op.resize = true;
      op.size = 0;
      apply(node.data, op);
      node.pending.push_back(std::move(op));
    }
  }
  const int fd = next_fd_++;
  open_[fd] = OpenFile{ino, mode != OpenMode::kRead};
  return fd;
}

void MemFileSystem::close(int fd) { open_.erase(fd); }

Status MemFileSystem::pwrite(int fd, std::string_view data, uint64_t offset,
                             const std::string& path, size_t* written) {
  *written = 0;
  if (!tick()) return off(path);
  Inode* node = inode_of(fd);
  if (node == nullptr || !open_[fd].writable) return io(path, "write: bad file handle");
  Op op;
  op.offset = offset;
  op.bytes.assign(data);
  auto all_zero = [](std::string_view b) { return b.find_first_not_of('\0') == std::string_view::npos; };
  const std::string_view before{node->data};
  op.changes_nothing = !data.empty() && offset + data.size() <= before.size() && all_zero(data) &&
                       all_zero(before.substr(offset, data.size()));
  apply(node->data, op);
  node->pending.push_back(std::move(op));
  *written = data.size();
  return Status::ok();
}

Result<size_t> MemFileSystem::pread(int fd, char* buf, size_t n, uint64_t offset,
                                    const std::string& path) {
  if (powered_off_) return off(path);
  Inode* node = inode_of(fd);
  if (node == nullptr) return io(path, "read: bad file handle");
  if (offset >= node->data.size()) return size_t{0};
  const size_t got = std::min<size_t>(n, node->data.size() - offset);
  node->data.copy(buf, got, offset);
  return got;
}

Status MemFileSystem::fdatasync(int fd, const std::string& path) {
  if (!tick()) return off(path);
  Inode* node = inode_of(fd);
  if (node == nullptr) return io(path, "fdatasync: bad file handle");
  node->durable = node->data;
  node->pending.clear();
  return Status::ok();
}

Status MemFileSystem::fsync(int fd, const std::string& path) { return fdatasync(fd, path); }

Status MemFileSystem::preallocate(int fd, uint64_t bytes, const std::string& path) {
  if (!tick()) return off(path);
  Inode* node = inode_of(fd);
  if (node == nullptr) return io(path, "fallocate: bad file handle");
  if (node->data.size() >= bytes) return Status::ok();
  Op op;
  op.resize = true;
  op.size = bytes;
  apply(node->data, op);
  node->pending.push_back(std::move(op));
  return Status::ok();
}

Result<std::optional<uint64_t>> MemFileSystem::file_size(const std::string& path) {
  if (powered_off_) return off(path);
  if (dirs_.count(path)) return std::optional<uint64_t>(0);
  Dir* d = dir_of(path);
  if (d == nullptr) return std::optional<uint64_t>();
  auto it = d->names.find(split(path).second);
  if (it == d->names.end()) return std::optional<uint64_t>();
  return std::optional<uint64_t>(inodes_[it->second.inode].data.size());
}

Status MemFileSystem::create_dir(const std::string& path) {
  if (!tick()) return off(path);
  if (dirs_.count(path)) return Status::ok();
  Dir* parent = dir_of(path);
  if (parent == nullptr) return io(path, "mkdir: no such parent directory");
  const std::string name = split(path).second;
  if (parent->names.count(name)) return io(path, "mkdir: a file is in the way");
  link(*parent, name, Entry{true, 0});
  dirs_[path];
  return Status::ok();
}

Result<std::vector<std::string>> MemFileSystem::list_dir(const std::string& path) {
  if (powered_off_) return off(path);
  auto it = dirs_.find(path);
  if (it == dirs_.end()) return io(path, "opendir: no such directory");
  std::vector<std::string> names;
  for (const auto& [name, e] : it->second.names) names.push_back(name);
  return names;
}

Status MemFileSystem::rename(const std::string& from, const std::string& to) {
  if (!tick()) return off(to);
  Dir* src = dir_of(from);
  Dir* dst = dir_of(to);
  if (src == nullptr || dst == nullptr) return io(to, "rename: no such directory");
  auto it = src->names.find(split(from).second);
  if (it == src->names.end()) return io(from, "rename: no such file");
  if (it->second.is_dir || src != dst)
    return io(from, "rename: only files within one directory are modelled");
  const Entry e = it->second;
  const std::string from_name = split(from).second;
  const std::string to_name = split(to).second;
  if (from_name == to_name) return Status::ok();
  src->names.erase(from_name);
  src->names[to_name] = e;
  src->pending.push_back(NsOp{to_name, true, e, from_name});
  return Status::ok();
}

Status MemFileSystem::unlink(const std::string& path) {
  if (!tick()) return off(path);
  Dir* d = dir_of(path);
  if (d == nullptr) return Status::ok();
  auto it = d->names.find(split(path).second);
  if (it == d->names.end()) return Status::ok();
  if (it->second.is_dir) return io(path, "unlink: is a directory");
  unlink_name(*d, split(path).second);
  return Status::ok();
}

Status MemFileSystem::sync_dir(const std::string& path) {
  if (!tick()) return off(path);
  auto it = dirs_.find(path);
  if (it == dirs_.end()) return io(path, "fsync dir: no such directory");
  it->second.durable = it->second.names;
  it->second.pending.clear();
  return Status::ok();
}

uint64_t MemFileSystem::pending_bytes() const {
  uint64_t n = 0;
  for (const auto& [ino, node] : inodes_) {
    for (const Op& op : node.pending) n += op.bytes.size();
  }
  return n;
}

void MemFileSystem::tear(Inode& node, SimRng& rng) {
  if (node.pending.empty()) {
    node.data = node.durable;
    return;
  }
  enum Mode : uint8_t { kNone, kAll, kPrefix, kSectors, kGarbage };
  const auto mode = static_cast<Mode>(rng.range(kNone, kGarbage));
  std::string out = node.durable;
  if (mode == kAll) {
    out = node.data;
  } else if (mode == kPrefix || mode == kGarbage) {
    // Write order, cut at one byte (a size change counts as one byte).
    uint64_t total = 0;
    for (const Op& op : node.pending) total += op.resize || op.changes_nothing ? 1 : op.bytes.size();
    uint64_t budget = rng.range(0, total);
    for (const Op& op : node.pending) {
      const uint64_t cost = op.resize || op.changes_nothing ? 1 : op.bytes.size();
      if (budget >= cost) {
        apply(out, op);
        budget -= cost;
        continue;
      }
      if (!op.resize) {
        Op part;
        part.offset = op.offset;
        part.bytes = op.bytes.substr(0, budget);
        uint64_t left = cost - budget;
        if (op.changes_nothing) {  // its cut point is anywhere inside it
          const uint64_t at = rng.range(0, op.bytes.size() - 1);
          part.offset = op.offset + at;
          left = op.bytes.size() - at;
        }
        if (mode == kGarbage) {
          // The sector being written when power went holds junk.
          const uint64_t junk = rng.range(1, std::min<uint64_t>(kMaxGarbageBytes, left));
          for (uint64_t k = 0; k < junk; ++k) part.bytes.push_back(static_cast<char>(rng.next()));
          ++stats_.garbage;
        }
        apply(out, part);
      }
      break;
    }
  } else if (mode == kSectors) {
    // Pages written back in any order: each touched sector is old or new.
    out.resize(rng.chance(0.5) ? node.data.size() : node.durable.size(), '\0');
    std::set<uint64_t> sectors;
    for (const Op& op : node.pending) {
      if (op.resize || op.bytes.empty()) continue;
      for (uint64_t s = op.offset / kSectorBytes; s <= (op.offset + op.bytes.size() - 1) / kSectorBytes;
           ++s)
        sectors.insert(s);
    }
    for (uint64_t s : sectors) {
      if (!rng.chance(0.5)) continue;
      const uint64_t from = s * kSectorBytes;
      if (from >= out.size() || from >= node.data.size()) continue;
      const auto n = std::min<uint64_t>({kSectorBytes, out.size() - from, node.data.size() - from});
      out.replace(from, n, node.data, from, n);
    }
  }
  if (mode != kNone && mode != kAll) ++stats_.files_torn;
  node.data = out;
  node.durable = std::move(out);
  node.pending.clear();
}

std::string MemFileSystem::crash(SimRng& rng) {
  ++stats_.crashes;
  const uint64_t pending = pending_bytes();
  // Each directory keeps a prefix of its unsynced namespace changes.
  uint64_t ns_kept = 0;
  uint64_t ns_lost = 0;
  for (auto& [path, d] : dirs_) {
    const uint64_t keep = rng.range(0, d.pending.size());
    std::map<std::string, Entry> names = d.durable;
    for (uint64_t k = 0; k < keep; ++k) {
      const NsOp& op = d.pending[k];
      if (!op.renamed_from.empty()) names.erase(op.renamed_from);
      if (op.link) {
        names[op.name] = op.entry;
      } else {
        names.erase(op.name);
      }
    }
    ns_kept += keep;
    ns_lost += d.pending.size() - keep;
    d.names = names;
    d.durable = std::move(names);
    d.pending.clear();
  }
  // A directory whose own entry was lost is gone with what it held
  // (parents sort before their children).
  for (auto it = dirs_.begin(); it != dirs_.end();) {
    if (it->first == "/") {
      ++it;
      continue;
    }
    const auto [parent, name] = split(it->first);
    auto p = dirs_.find(parent);
    const bool linked = p != dirs_.end() && p->second.names.count(name) &&
                        p->second.names.at(name).is_dir;
    it = linked ? std::next(it) : dirs_.erase(it);
  }
  std::set<uint64_t> live;
  for (const auto& [path, d] : dirs_) {
    for (const auto& [name, e] : d.names) {
      if (!e.is_dir) live.insert(e.inode);
    }
  }
  for (auto it = inodes_.begin(); it != inodes_.end();) {
    if (!live.count(it->first)) {
      it = inodes_.erase(it);
      continue;
    }
    tear(it->second, rng);
    ++it;
  }
  open_.clear();
  calls_to_cut_ = 0;
  powered_off_ = false;
  return std::to_string(pending) + " unsynced bytes, " + std::to_string(ns_kept) +
         " unsynced directory changes kept, " + std::to_string(ns_lost) + " lost";
}

}  // namespace ckv::sim
