// Command encoding, apply, and snapshot (de)serialisation of the simulated key-value state machine.
#include "sim_state_machine.h"

#include <cstring>

namespace ckv::sim {

std::string encode_set(const std::string& key, const std::string& value) {
  return "set " + key + " " + value;
}
std::string encode_del(const std::string& key) { return "del " + key; }

std::optional<Command> parse_command(const std::string& data) {
  Command c;
  if (data.rfind("set ", 0) == 0) {
    size_t sp = data.find(' ', 4);
    if (sp == std::string::npos) return std::nullopt;
    c.op = Command::Op::kSet;
    c.key = data.substr(4, sp - 4);
    c.value = data.substr(sp + 1);
    return c;
  }
  if (data.rfind("del ", 0) == 0) {
    c.op = Command::Op::kDel;
    c.key = data.substr(4);
    return c;
  }
  return std::nullopt;
}

uint64_t fnv1a(const std::string& s, uint64_t h) {
  for (unsigned char ch : s) {
    h ^= ch;
    h *= 1099511628211ULL;
  }
  return h;
}

uint64_t entry_hash(const raft::Entry& e) {
  uint64_t h = 1469598103934665603ULL ^ static_cast<uint64_t>(e.type);
  h *= 1099511628211ULL;
  return fnv1a(e.data, h);
}

namespace {
uint64_t pair_hash(const std::string& k, const std::string& v) {
  uint64_t h = fnv1a(v, fnv1a(k) ^ 0xff);
  // Finalise so that the sum over keys does not cancel structure.
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  return h ^ (h >> 33);
}

void put_u64(std::string& out, uint64_t v) {
  char b[8];
  std::memcpy(b, &v, 8);
  out.append(b, 8);
}
void put_str(std::string& out, const std::string& s) {
  put_u64(out, s.size());
  out += s;
}
bool get_u64(const std::string& in, size_t& pos, uint64_t& v) {
  if (in.size() - pos < 8) return false;
  std::memcpy(&v, in.data() + pos, 8);
  pos += 8;
  return true;
}
bool get_str(const std::string& in, size_t& pos, std::string& s) {
  uint64_t n = 0;
  if (!get_u64(in, pos, n) || in.size() - pos < n) return false;
  s.assign(in, pos, n);
  pos += n;
  return true;
}
}  // namespace

void SimStateMachine::put(const std::string& key, std::optional<std::string> value) {
  auto it = kv_.find(key);
  if (it != kv_.end()) {
    digest_ -= pair_hash(key, it->second);
    kv_.erase(it);
  }
  if (value) {
    digest_ += pair_hash(key, *value);
    kv_.emplace(key, std::move(*value));
  }
}

void SimStateMachine::apply(const raft::Entry& e) {
  applied_ = e.index;
  applied_term_ = e.term;
  if (e.type == raft::EntryType::kConfig) {
    if (auto m = raft::decode_membership(e.data)) membership_ = *m;
    return;
  }
  auto cmd = parse_command(e.data);
  if (!cmd) return;  // the leader's no-op
  if (cmd->op == Command::Op::kSet) {
    put(cmd->key, cmd->value);
  } else {
    put(cmd->key, std::nullopt);
  }
}

std::string SimStateMachine::serialize() const {
  std::string out = "ckvsim1";
  put_u64(out, applied_);
  put_u64(out, applied_term_);
  put_u64(out, kv_.size());
  for (const auto& [k, v] : kv_) {
    put_str(out, k);
    put_str(out, v);
  }
  return out;
}

bool SimStateMachine::restore(const std::string& bytes, const raft::SnapshotMeta& meta) {
  if (bytes.rfind("ckvsim1", 0) != 0) return false;
  size_t pos = 7;
  SimStateMachine next;
  uint64_t count = 0;
  if (!get_u64(bytes, pos, next.applied_) || !get_u64(bytes, pos, next.applied_term_) ||
      !get_u64(bytes, pos, count)) {
    return false;
  }
  for (uint64_t i = 0; i < count; ++i) {
    std::string k, v;
    if (!get_str(bytes, pos, k) || !get_str(bytes, pos, v)) return false;
    next.put(k, v);
  }
  if (pos != bytes.size() || next.applied_ != meta.index || next.applied_term_ != meta.term)
    return false;
  next.membership_ = meta.membership;
  *this = std::move(next);
  return true;
}

std::optional<std::string> SimStateMachine::get(const std::string& key) const {
  auto it = kv_.find(key);
  if (it == kv_.end()) return std::nullopt;
  return it->second;
}

}  // namespace ckv::sim
