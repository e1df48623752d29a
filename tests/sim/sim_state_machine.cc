// Command encoding, apply, and snapshot (de)serialisation of the simulated key-value state machine.
#include "sim_state_machine.h"

#include <cstdio>
#include <cstring>

namespace ckv::sim {

std::string encode_set(const std::string& key, const std::string& value) {
  return "set " + key + " " + value;
}
std::string encode_del(const std::string& key) { return "del " + key; }
std::string encode_lease_grant(uint64_t id, int64_t ttl_s, uint64_t proposed_ms) {
  return "lgrant " + std::to_string(id) + " " + std::to_string(ttl_s) + " " + std::to_string(proposed_ms);
}
std::string encode_lease_revoke(uint64_t id, uint64_t proposed_ms) {
  return "lrevoke " + std::to_string(id) + " " + std::to_string(proposed_ms);
}

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
  if (data.rfind("lgrant ", 0) == 0 || data.rfind("lrevoke ", 0) == 0) {
    const bool grant = data[1] == 'g';
    c.op = grant ? Command::Op::kLeaseGrant : Command::Op::kLeaseRevoke;
    unsigned long long id = 0, ttl = 0, at = 0;
    const int want = grant ? 3 : 2;
    const int got = grant ? std::sscanf(data.c_str(), "lgrant %llu %llu %llu", &id, &ttl, &at)
                          : std::sscanf(data.c_str(), "lrevoke %llu %llu", &id, &at);
    if (got != want) return std::nullopt;
    c.lease = id;
    c.ttl_s = static_cast<int64_t>(ttl);
    c.proposed_ms = at;
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

uint64_t lease_hash(uint64_t id, int64_t ttl) {
  return pair_hash("\x01lease" + std::to_string(id), std::to_string(ttl));
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
  last_lease_op_.reset();
  auto cmd = parse_command(e.data);
  if (!cmd) return;  // the leader's no-op
  if (cmd->op == Command::Op::kSet) {
    put(cmd->key, cmd->value);
  } else if (cmd->op == Command::Op::kDel) {
    put(cmd->key, std::nullopt);
  } else if (cmd->op == Command::Op::kLeaseGrant) {
    if (leases_.emplace(cmd->lease, cmd->ttl_s).second) {
      digest_ += lease_hash(cmd->lease, cmd->ttl_s);
      last_lease_op_ = cmd;
    }
  } else if (auto it = leases_.find(cmd->lease); it != leases_.end()) {
    digest_ -= lease_hash(it->first, it->second);
    leases_.erase(it);
    last_lease_op_ = cmd;
  }
}

std::string SimStateMachine::serialize() const {
  std::string out = leases_.empty() ? "ckvsim1" : "ckvsim2";
  put_u64(out, applied_);
  put_u64(out, applied_term_);
  put_u64(out, kv_.size());
  for (const auto& [k, v] : kv_) {
    put_str(out, k);
    put_str(out, v);
  }
  if (!leases_.empty()) {
    put_u64(out, leases_.size());
    for (const auto& [id, ttl] : leases_) {
      put_u64(out, id);
      put_u64(out, static_cast<uint64_t>(ttl));
    }
  }
  return out;
}

bool SimStateMachine::restore(const std::string& bytes, const raft::SnapshotMeta& meta) {
  const bool with_leases = bytes.rfind("ckvsim2", 0) == 0;
  if (bytes.rfind("ckvsim1", 0) != 0 && !with_leases) return false;
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
  if (with_leases) {
    uint64_t n = 0;
    if (!get_u64(bytes, pos, n)) return false;
    for (uint64_t i = 0; i < n; ++i) {
      uint64_t id = 0, ttl = 0;
      if (!get_u64(bytes, pos, id) || !get_u64(bytes, pos, ttl)) return false;
      if (next.leases_.emplace(id, static_cast<int64_t>(ttl)).second) {
        next.digest_ += lease_hash(id, static_cast<int64_t>(ttl));
      }
    }
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
