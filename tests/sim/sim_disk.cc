// Staged-write storage model: sync applies, crash forgets.
#include "sim_disk.h"

#include <string>

namespace ckv::sim {

using raft::Entry;
using raft::Index;

namespace {
std::string num(uint64_t v) { return std::to_string(v); }
}  // namespace

void SimDisk::stage_chunk(const raft::SnapshotChunk& chunk) {
  Op op;
  op.kind = Op::Kind::kChunk;
  op.chunk = chunk;
  staged_.push_back(std::move(op));
}

void SimDisk::stage_install_snapshot(const raft::SnapshotMeta& meta) {
  Op op;
  op.kind = Op::Kind::kInstall;
  op.meta = meta;
  staged_.push_back(std::move(op));
}

void SimDisk::stage_entries(const std::vector<Entry>& entries) {
  if (entries.empty()) return;
  Op op;
  op.kind = Op::Kind::kEntries;
  op.entries = entries;
  staged_.push_back(std::move(op));
}

void SimDisk::stage_hard_state(const raft::HardState& hs) {
  Op op;
  op.kind = Op::Kind::kHardState;
  op.hard_state = hs;
  staged_.push_back(std::move(op));
}

void SimDisk::stage_save_snapshot(const raft::SnapshotMeta& meta, std::string bytes) {
  Op op;
  op.kind = Op::Kind::kSaveSnapshot;
  op.meta = meta;
  op.bytes = std::move(bytes);
  staged_.push_back(std::move(op));
}

void SimDisk::stage_compact(Index first_to_keep) {
  Op op;
  op.kind = Op::Kind::kCompact;
  op.first_to_keep = first_to_keep;
  staged_.push_back(std::move(op));
}

void SimDisk::stage_drop_log() {
  Op op;
  op.kind = Op::Kind::kDropLog;
  staged_.push_back(std::move(op));
}

void SimDisk::write_unsynced() {
  if (!staged_.empty()) written_.push_back(std::move(staged_));
  staged_.clear();
}

std::string SimDisk::sync() {
  std::string error;
  for (std::vector<Op>& batch : written_) {
    for (Op& op : batch) {
      if (error.empty()) error = apply(op);
    }
  }
  written_.clear();
  for (Op& op : staged_) {
    error = apply(op);
    if (!error.empty()) break;
  }
  staged_.clear();
  return error;
}

std::string SimDisk::apply_staged() {
  std::string error;
  for (Op& op : staged_) {
    error = apply(op);
    if (!error.empty()) break;
  }
  staged_.clear();
  return error;
}

void SimDisk::crash() {
  std::vector<Op> log_ops;
  for (Op& op : staged_) {
    if (op.log_op()) log_ops.push_back(std::move(op));
  }
  if (!log_ops.empty()) written_.push_back(std::move(log_ops));
  staged_.clear();
}

namespace {

std::string describe(const raft::HardState& hs, const std::deque<Entry>& log) {
  std::string s = "t" + num(hs.term) + "/v" + num(hs.vote) + "/c" + num(hs.commit) + " log ";
  if (log.empty()) return s + "empty";
  return s + "[" + num(log.front().index) + "/" + num(log.front().term) + ".." +
         num(log.back().index) + "/" + num(log.back().term) + "]";
}

bool same_log(const std::deque<Entry>& a, const std::vector<Entry>& b) {
  if (a.size() != b.size()) return false;
  for (size_t k = 0; k < a.size(); ++k) {
    if (a[k].index != b[k].index || a[k].term != b[k].term || a[k].type != b[k].type ||
        a[k].data != b[k].data)
      return false;
  }
  return true;
}

}  // namespace

std::string SimDisk::recover(const raft::HardState& hs, const std::vector<Entry>& entries) {
  // Candidates: the durable state, then after each written batch in turn.
  SimDisk cand;
  cand.hard_state_ = hard_state_;
  cand.snapshot_meta_ = snapshot_meta_;
  cand.log_ = log_;
  std::string tried;
  for (size_t k = 0;; ++k) {
    // A compaction is its own metadata file, synced on its own: one that a
    // crash struck inside may have taken effect while an earlier unsynced
    // (commit-only) batch was lost.
    std::deque<Entry> compacted = cand.log_;
    for (size_t j = k; j < written_.size(); ++j) {
      for (const Op& op : written_[j]) {
        if (op.kind != Op::Kind::kCompact) continue;
        while (!compacted.empty() && compacted.front().index < op.first_to_keep)
          compacted.pop_front();
      }
    }
    if (cand.hard_state_ == hs && !same_log(cand.log_, entries) && same_log(compacted, entries))
      cand.log_ = std::move(compacted);
    if (cand.hard_state_ == hs && same_log(cand.log_, entries)) {
      hard_state_ = cand.hard_state_;
      log_ = std::move(cand.log_);
      written_.clear();
      return "";
    }
    tried += (k == 0 ? "durable " : ", after written batch " + num(k) + " ") +
             describe(cand.hard_state_, cand.log_);
    if (k == written_.size()) break;
    for (Op& op : written_[k]) {
      Op copy = op;
      if (std::string err = cand.apply(copy); !err.empty()) tried += " (" + err + ")";
    }
  }
  std::deque<Entry> got(entries.begin(), entries.end());
  return "the WAL recovered " + describe(hs, got) + ", but storage promised one of: " + tried;
}

void SimDisk::keep_snapshot(const raft::SnapshotMeta& meta, const std::string& bytes) {
  kept_snapshots_[meta.index] = {meta, bytes};
  while (kept_snapshots_.size() > kKeptSnapshots) kept_snapshots_.erase(kept_snapshots_.begin());
}

std::string SimDisk::apply(Op& op) {
  switch (op.kind) {
    case Op::Kind::kChunk: {
      const raft::SnapshotChunk& c = op.chunk;
      if (c.meta.index != incoming_meta_.index || c.meta.term != incoming_meta_.term) {
        // A chunk of a different snapshot starts a new incoming file.
        if (c.offset != 0) {
          return "snapshot chunk for " + num(c.meta.index) + "/" + num(c.meta.term) +
                 " starts at offset " + num(c.offset) + ", not 0";
        }
        incoming_meta_ = c.meta;
        incoming_bytes_.clear();
      }
      if (c.offset > incoming_bytes_.size()) {
        return "snapshot chunk at offset " + num(c.offset) + " leaves a gap after " +
               num(incoming_bytes_.size()) + " bytes";
      }
      if (incoming_bytes_.size() < c.offset + c.data.size())
        incoming_bytes_.resize(c.offset + c.data.size());
      incoming_bytes_.replace(c.offset, c.data.size(), c.data);
      return "";
    }
    case Op::Kind::kInstall: {
      const raft::SnapshotMeta& m = op.meta;
      if (m.index != incoming_meta_.index || m.term != incoming_meta_.term ||
          incoming_bytes_.size() != m.size_bytes) {
        return "snapshot " + num(m.index) + "/" + num(m.term) + " (" + num(m.size_bytes) +
               " bytes) installed but the incoming file holds " + num(incoming_meta_.index) + "/" +
               num(incoming_meta_.term) + " with " + num(incoming_bytes_.size()) + " bytes";
      }
      snapshot_meta_ = m;
      snapshot_bytes_ = incoming_bytes_;
      keep_snapshot(m, snapshot_bytes_);
      // raft.h: "make it the current snapshot and drop the whole log": the
      // node adopts the snapshot file first, then its WAL batch drops the log.
      return "";
    }
    case Op::Kind::kDropLog: {
      log_.clear();
      return "";
    }
    case Op::Kind::kEntries: {
      const std::vector<Entry>& es = op.entries;
      Index first = es.front().index;
      if (first <= snapshot_meta_.index) {
        return "entries from " + num(first) + " written at or below the snapshot index " +
               num(snapshot_meta_.index);
      }
      while (!log_.empty() && log_.back().index >= first) log_.pop_back();
      Index expect = log_.empty() ? snapshot_meta_.index + 1 : log_.back().index + 1;
      if (first != expect)
        return "entries from " + num(first) + " leave a gap: the log ends at " + num(expect - 1);
      for (size_t k = 0; k < es.size(); ++k) {
        if (es[k].index != first + k)
          return "entries to persist are not contiguous at " + num(es[k].index);
        log_.push_back(es[k]);
      }
      return "";
    }
    case Op::Kind::kHardState:
      hard_state_ = op.hard_state;
      return "";
    case Op::Kind::kSaveSnapshot:
      if (op.meta.index < snapshot_meta_.index) {
        return "snapshot at " + num(op.meta.index) + " is older than the current one at " +
               num(snapshot_meta_.index);
      }
      snapshot_meta_ = op.meta;
      snapshot_bytes_ = std::move(op.bytes);
      keep_snapshot(snapshot_meta_, snapshot_bytes_);
      return "";
    case Op::Kind::kCompact:
      if (op.first_to_keep > snapshot_meta_.index + 1) {
        return "compaction to " + num(op.first_to_keep) +
               " would delete entries after the snapshot at " + num(snapshot_meta_.index);
      }
      while (!log_.empty() && log_.front().index < op.first_to_keep) log_.pop_front();
      return "";
  }
  return "";
}

raft::InitialState SimDisk::initial_state() const {
  raft::InitialState s;
  s.hard_state = hard_state_;
  s.snapshot = snapshot_meta_;
  for (const Entry& e : log_) {
    if (e.index > snapshot_meta_.index) s.entries.push_back(e);
  }
  return s;
}

const std::string* SimDisk::find_snapshot(Index index, raft::Term term) const {
  auto it = kept_snapshots_.find(index);
  if (it == kept_snapshots_.end() || it->second.first.term != term) return nullptr;
  return &it->second.second;
}

raft::Term SimDisk::term_at(Index i) const {
  if (i == snapshot_meta_.index) return snapshot_meta_.term;
  if (log_.empty() || i < log_.front().index || i > log_.back().index) return 0;
  return log_[i - log_.front().index].term;
}

}  // namespace ckv::sim
