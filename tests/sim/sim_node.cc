// The Ready loop of one simulated node, with crash points between its steps.
#include "sim_node.h"

#include <cstdarg>
#include <cstdio>

#include "sim_trace.h"

namespace ckv::sim {

using raft::Entry;
using raft::Index;
using raft::Message;
using raft::MessageType;

namespace {
using ull = unsigned long long;
// The node's data dir on its MemFileSystem (kvnode's -data-dir).
constexpr char kDataDir[] = "/data";
// Segment sizes a node draws: small, so roll-overs and compactions that
// delete segments happen often (4096 is the WAL's minimum).
const std::vector<uint64_t> kSegmentSizes = {4096, 8192, 65536};
}  // namespace

const char* to_string(CrashPoint p) {
  switch (p) {
    case CrashPoint::kNone:
      return "none";
    case CrashPoint::kBeforeSync:
      return "before-sync";
    case CrashPoint::kAfterSync:
      return "after-sync";
    case CrashPoint::kMidSend:
      return "mid-send";
    case CrashPoint::kAfterSend:
      return "after-send";
    case CrashPoint::kMidApply:
      return "mid-apply";
    case CrashPoint::kBeforeAdvance:
      return "before-advance";
    case CrashPoint::kMidSnapshot:
      return "mid-snapshot";
    case CrashPoint::kInStorage:
      return "in-storage";
    case CrashPoint::kMidEarlySend:
      return "mid-early-send";
  }
  return "?";
}

SimNode::SimNode(raft::NodeId id, const raft::Options& options, uint64_t sim_seed, NodeEnv env)
    : id_(id),
      options_(options),
      sim_seed_(sim_seed),
      env_(std::move(env)),
      fs_(std::make_unique<MemFileSystem>()),
      disk_rng_(derive_seed(sim_seed, 0x5157d15cULL + id)) {
  options_.id = id;
  snapshot_gap_ = env_.snapshot_gap_first;
  segment_bytes_ = disk_rng_.pick(kSegmentSizes);
  // The data dir exists before the node first starts.
  if (!fs_->create_dir(kDataDir).is_ok() || !fs_->sync_dir("/").is_ok()) std::abort();
}

void SimNode::arm_crash(CrashPoint p) {
  crash_point_ = p;
  if (p == CrashPoint::kInStorage) {
    // Mostly the batch's own pwrite or fdatasync; sometimes deeper (a
    // roll-over is 5 calls before the batch, a metadata file 4).
    fs_->cut_power_after(disk_rng_.chance(0.7) ? disk_rng_.range(1, 2) : disk_rng_.range(3, 12));
  } else {
    fs_->cut_power_after(0);
  }
}

bool SimNode::open_wal() {
  storage::WalOptions o;
  o.fs = fs_.get();
  o.segment_bytes = segment_bytes_;
  o.expect_existing = wal_exists_;
  o.salt_source = [this] { return static_cast<uint32_t>(disk_rng_.next()); };
  auto w = storage::Wal::open(kDataDir, o);
  if (!w.is_ok()) {
    // Nothing but crashes happens to this disk: refusing it is a WAL bug.
    env_.checker->fail("WAL recovery", fmt("n%llu: the WAL refuses to open after a crash: %s",
                                           ull(id_), w.status().message().c_str()));
    return false;
  }
  wal_ = std::move(w).value();
  wal_exists_ = true;
  if (wal_->repaired_bytes() > 0) {
    ++torn_tails_cut_;
    trace("WAL cut a torn tail of %llu bytes", ull(wal_->repaired_bytes()));
  }
  return true;
}

bool SimNode::persist_log(const std::vector<raft::Entry>& entries,
                          const std::optional<raft::HardState>& hs, bool drop_all) {
  const uint64_t syncs = wal_->batch_syncs();
  Status s = wal_->persist(entries, hs, drop_all);
  if (!s.is_ok()) {
    if (fs_->powered_off()) return false;
    env_.checker->fail("Storage contract",
                       fmt("n%llu: the WAL refused a batch: %s", ull(id_), s.message().c_str()));
    return true;
  }
  // log_storage.h: durable once persist returns, except a commit-only
  // change, which stays at risk until the next synced batch.
  if (wal_->batch_syncs() == syncs) {
    disk_.write_unsynced();
  } else {
    std::string err = disk_.sync();
    if (!err.empty()) env_.checker->fail("Storage contract", fmt("n%llu: %s", ull(id_), err.c_str()));
  }
  // Power cut in what persist() does after the batch (the zeros written
  // ahead, whose failure is not the batch's, so persist still succeeds):
  // the batch counts as above, and the machine is off now. Running on
  // would leave the node up with a dead disk until its next batch, past
  // the point where the liveness phase restarts crashed nodes.
  return !fs_->powered_off();
}

void SimNode::trace(const char* f, ...) {
  if (!env_.trace->enabled()) return;
  char buf[480];
  va_list ap;
  va_start(ap, f);
  std::vsnprintf(buf, sizeof buf, f, ap);
  va_end(ap);
  env_.trace->log(*env_.now_us, "n%llu %s", ull(id_), buf);
}

void SimNode::bootstrap(const raft::Membership& initial) {
  if (!open_wal()) return;
  raft::InitialState st = raft::bootstrap_state(initial);
  disk_.stage_hard_state(st.hard_state);
  disk_.stage_entries(st.entries);
  (void)persist_log(st.entries, st.hard_state, false);  // no power cut is armed yet
}

raft::InitialState SimNode::recover() {
  if (!wal_ && !open_wal()) return disk_.initial_state();  // failed: keep going on the oracle
  auto hs = wal_->load_hard_state();
  auto entries = wal_->load_entries();
  if (!hs.is_ok() || !entries.is_ok()) {
    env_.checker->fail("WAL recovery",
                       fmt("n%llu: the WAL cannot be read back: %s", ull(id_),
                           (hs.is_ok() ? entries.status() : hs.status()).message().c_str()));
    return disk_.initial_state();
  }
  // Nothing synced may be lost, nothing never written may appear.
  if (std::string err = disk_.recover(hs.value(), entries.value()); !err.empty()) {
    env_.checker->fail("WAL recovery", fmt("n%llu: %s", ull(id_), err.c_str()));
    return disk_.initial_state();
  }
  raft::InitialState st;
  st.hard_state = hs.value();
  st.snapshot = disk_.snapshot_meta();
  std::vector<Entry>& log = entries.value();
  const Index s = st.snapshot.index;
  // As node.cc's boot: a crash between adopting a received snapshot and the
  // WAL batch that drops the old log leaves a log that does not reach the
  // snapshot's last entry; the snapshot supersedes it (§7).
  if (s > 0 && !log.empty()) {
    bool keep = log.back().index >= s && log.front().index <= s + 1;
    if (keep && log.front().index <= s) keep = log[s - log.front().index].term == st.snapshot.term;
    if (!keep) {
      if (log.front().index > s + 1) {
        env_.checker->fail("WAL recovery",
                           fmt("n%llu: the log starts at %llu after snapshot %llu: entries are "
                               "missing",
                               ull(id_), ull(log.front().index), ull(s)));
      }
      trace("log (%llu, %llu] superseded by snapshot %llu/%llu: dropped",
            ull(log.front().index - 1), ull(log.back().index), ull(s), ull(st.snapshot.term));
      log.clear();
      disk_.stage_drop_log();
      (void)persist_log({}, std::nullopt, true);  // no power cut is armed while down
    }
  }
  for (Entry& e : log) {
    if (e.index > s) st.entries.push_back(std::move(e));
  }
  return st;
}

void SimNode::start() {
  raft::InitialState st = recover();
  raft::Options o = options_;
  o.random_seed = derive_seed(sim_seed_, id_ * 1000 + incarnation_);
  ++incarnation_;
  heard_from_.clear();
  known_members_.clear();
  sm_.clear();
  if (st.snapshot.index > 0 && !sm_.restore(disk_.snapshot_bytes(), st.snapshot)) {
    env_.checker->fail("Snapshot contents",
                       fmt("n%llu cannot restore its durable snapshot %llu/%llu on restart",
                           ull(id_), ull(st.snapshot.index), ull(st.snapshot.term)));
  }
  raft_ = std::make_unique<raft::Raft>(o, st);
  crash_point_ = CrashPoint::kNone;
  pending_writes_.clear();
  pending_forwards_.clear();
  pending_forward_ids_.clear();
  pending_reads_.clear();
  trace("start #%llu: term %llu vote %llu commit %llu snapshot %llu/%llu log (%llu, %llu]",
        ull(incarnation_), ull(st.hard_state.term), ull(st.hard_state.vote),
        ull(st.hard_state.commit), ull(st.snapshot.index), ull(st.snapshot.term),
        ull(st.snapshot.index),
        ull(st.entries.empty() ? st.snapshot.index : st.entries.back().index));
  env_.checker->on_start(id_, *raft_);
}

void SimNode::crash() {
  trace("CRASH (incarnation %llu, at %s)", ull(incarnation_), to_string(crash_point_));
  raft_.reset();
  sm_.clear();
  wal_.reset();
  const std::string lost = fs_->crash(disk_rng_);
  disk_.crash();
  trace("power lost: %s", lost.c_str());
  env_.checker->on_crash(id_, disk_.hard_state().term);
  pending_writes_.clear();
  pending_forwards_.clear();
  pending_forward_ids_.clear();
  pending_reads_.clear();
  reset_leases();
  crash_point_ = CrashPoint::kNone;
}

void SimNode::reset_leases() {
  expiry_.demote();
  lease_term_ = 0;
  keepalives_.clear();
}

void SimNode::drive_leases() {
  if (!env_.leases || !alive()) return;
  const raft::Term term = raft_->term();
  const bool leader = raft_->role() == raft::StateRole::kLeader;
  if (!leader || (lease_term_ != 0 && lease_term_ != term)) {
    if (expiry_.primary()) trace("lease clock demoted");
    expiry_.demote();
    lease_term_ = 0;
    if (!leader) return;
  }
  if (!expiry_.primary()) {
    if (sm_.applied_term() != term) return;
    std::vector<std::pair<int64_t, int64_t>> ttls;
    for (const auto& [id, ttl] : sm_.leases()) ttls.emplace_back(static_cast<int64_t>(id), ttl);
    expiry_.promote(static_cast<int64_t>(now_ms()), ttls);
    lease_term_ = term;
    trace("lease primary in term %llu with %zu leases", ull(term), ttls.size());
  }
  for (int64_t id : expiry_.due(static_cast<int64_t>(now_ms()))) {
    const raft::ProposeResult r = raft_->propose(encode_lease_revoke(static_cast<uint64_t>(id), now_ms()));
    trace("lease %lld expired: revoke %s", static_cast<long long>(id), r.ok() ? "proposed" : "refused");
    if (!r.ok()) expiry_.revoke_failed(id);
  }
}

bool SimNode::keepalive(uint64_t lease) {
  if (!env_.leases || !alive()) return false;
  drive_leases();
  if (!expiry_.primary()) return false;
  const uint64_t read_id = kKeepaliveReadBit | ++next_keepalive_;
  if (!raft_->read_index(read_id)) return false;
  keepalives_[read_id] = PendingKeepalive{lease, now_ms(), raft_->term()};
  return true;
}

bool SimNode::grant(uint64_t lease, int64_t ttl_s) {
  if (!env_.leases || !alive()) return false;
  drive_leases();
  if (!expiry_.primary()) return false;
  return raft_->propose(encode_lease_grant(lease, ttl_s, now_ms())).ok();
}

void SimNode::fill_snapshot_data(Message& m) {
  const std::string* bytes = disk_.find_snapshot(m.snapshot.index, m.snapshot.term);
  if (bytes == nullptr) {
    env_.checker->fail("Snapshot contents",
                       fmt("n%llu sends a chunk of snapshot %llu/%llu that it does not have",
                           ull(id_), ull(m.snapshot.index), ull(m.snapshot.term)));
    return;
  }
  if (m.snapshot.size_bytes != bytes->size() || m.offset + m.data_length > bytes->size()) {
    env_.checker->fail("Snapshot contents",
                       fmt("n%llu chunk [%llu, +%llu) of snapshot %llu/%llu claims size %llu; the "
                           "file has %llu bytes",
                           ull(id_), ull(m.offset), ull(m.data_length), ull(m.snapshot.index),
                           ull(m.snapshot.term), ull(m.snapshot.size_bytes), ull(bytes->size())));
    return;
  }
  m.data = bytes->substr(m.offset, m.data_length);
}

bool SimNode::process_ready(SimRng& rng) {
  raft::Ready rd = raft_->ready();
  env_.checker->check_ready(id_, *raft_, rd, disk_.hard_state());

  // As the node does (raft.h step 3): committed entries an earlier Ready
  // persisted are applied before this Ready's sync; with no new entries in
  // the Ready, before its early messages too (node.cc, handle_ready).
  size_t applied_early = 0;
  const auto apply_early = [&] {
    if (rd.snapshot) return;
    const raft::Index first_new = rd.entries.empty() ? UINT64_MAX : rd.entries.front().index;
    while (applied_early < rd.committed_entries.size() && rd.committed_entries[applied_early].index < first_new) {
      apply(rd.committed_entries[applied_early++]);
    }
  };
  if (rd.entries.empty()) apply_early();

  // 0. A leader's appends may leave before its own sync (thesis §10.2.1):
  // a crash at any point below then finds them already in the network.
  if (crash_point_ == CrashPoint::kMidEarlySend) {
    size_t sent = rng.range(0, rd.early_messages);
    for (size_t k = 0; k < sent; ++k) send(rd.messages[k]);
    crash();
    return false;
  }
  for (size_t k = 0; k < rd.early_messages; ++k) send(rd.messages[k]);
  apply_early();

  // 1. Persist: a received snapshot first (node.cc adopts its file, synced,
  // before the WAL batch that drops the old log), then one WAL batch.
  for (const raft::SnapshotChunk& c : rd.snapshot_chunks) disk_.stage_chunk(c);
  if (rd.snapshot) disk_.stage_install_snapshot(*rd.snapshot);
  if (!rd.entries.empty() || rd.hard_state || rd.snapshot) {
    trace("persist entries %s hs=%s%s",
          rd.entries.empty()
              ? "-"
              : fmt("[%llu..%llu]", ull(rd.entries.front().index), ull(rd.entries.back().index))
                    .c_str(),
          rd.hard_state ? fmt("t%llu/v%llu/c%llu", ull(rd.hard_state->term),
                              ull(rd.hard_state->vote), ull(rd.hard_state->commit))
                              .c_str()
                        : "-",
          rd.snapshot
              ? fmt(" install snapshot %llu/%llu", ull(rd.snapshot->index), ull(rd.snapshot->term))
                    .c_str()
              : "");
  }
  // Before anything is durable, or (half the time) after the snapshot and
  // before the WAL batch.
  if (crash_point_ == CrashPoint::kBeforeSync && rng.chance(0.5)) {
    crash();
    return false;
  }
  if (disk_.has_staged()) {
    std::string err = disk_.apply_staged();
    if (!err.empty())
      env_.checker->fail("Storage contract", fmt("n%llu: %s", ull(id_), err.c_str()));
  }
  if (crash_point_ == CrashPoint::kBeforeSync) {
    crash();
    return false;
  }
  if (rd.snapshot) disk_.stage_drop_log();
  disk_.stage_entries(rd.entries);
  if (rd.hard_state) disk_.stage_hard_state(*rd.hard_state);
  if ((!rd.entries.empty() || rd.hard_state || rd.snapshot) &&
      !persist_log(rd.entries, rd.hard_state, rd.snapshot.has_value())) {
    crash();  // power cut inside the WAL batch (CrashPoint::kInStorage)
    return false;
  }
  env_.checker->on_persisted(id_, *raft_, rd);
  if (crash_point_ == CrashPoint::kAfterSync) {
    crash();
    return false;
  }

  // 2. Send the rest (only now: they may depend on state a crash could forget).
  size_t to_send = rd.messages.size();
  if (crash_point_ == CrashPoint::kMidSend) to_send = rng.range(rd.early_messages, to_send);
  for (size_t k = rd.early_messages; k < to_send; ++k) send(rd.messages[k]);
  if (crash_point_ == CrashPoint::kMidSend || crash_point_ == CrashPoint::kAfterSend) {
    crash();
    return false;
  }

  // 3. Restore, apply, serve reads.
  if (rd.snapshot) {
    const raft::SnapshotMeta& meta = *rd.snapshot;
    if (meta.index < sm_.applied()) {
      env_.checker->fail("Applied monotonic",
                         fmt("n%llu installs snapshot %llu/%llu over applied index %llu", ull(id_),
                             ull(meta.index), ull(meta.term), ull(sm_.applied())));
    } else if (!sm_.restore(disk_.snapshot_bytes(), meta)) {
      env_.checker->fail("Snapshot contents", fmt("n%llu snapshot bytes do not decode to %llu/%llu",
                                                  ull(id_), ull(meta.index), ull(meta.term)));
    } else {
      trace("restored snapshot %llu/%llu", ull(meta.index), ull(meta.term));
      reset_leases();  // every lease may have changed: promote again, with full TTLs
      env_.checker->on_restore(id_, meta, sm_.digest());
    }
  }
  size_t to_apply = rd.committed_entries.size();
  bool crash_mid_apply = crash_point_ == CrashPoint::kMidApply;
  if (crash_mid_apply) to_apply = rng.range(applied_early, to_apply);
  for (size_t k = applied_early; k < to_apply; ++k) apply(rd.committed_entries[k]);
  if (crash_mid_apply) {
    crash();
    return false;
  }
  for (const raft::ReadState& rs : rd.read_states) {
    if (auto k = keepalives_.find(rs.id); k != keepalives_.end()) {
      // Leadership confirmed for the term the keepalive arrived in: renew
      // from its arrival (lease/expiry.h), if still primary in that term.
      const PendingKeepalive ka = k->second;
      keepalives_.erase(k);
      if (lease_term_ == ka.term && expiry_.primary() &&
          expiry_.renew(static_cast<int64_t>(ka.lease), static_cast<int64_t>(ka.asked_ms))) {
        trace("keepalive of lease %llu (asked at %llu ms) acknowledged", ull(ka.lease), ull(ka.asked_ms));
        env_.on_lease_ack(ka.lease, ka.asked_ms);
      }
      continue;
    }
    auto it = pending_reads_.find(rs.id);
    if (it == pending_reads_.end()) continue;
    it->second.have_index = true;
    it->second.read_index = rs.index;
    // A read without a recorded answer was resolved here, as leader in the
    // term it began in (a leader that steps down fails its pending reads).
    if (it->second.leader != raft::kNoNode) {
      env_.on_read_index(id_, rs.id, it->second.start_us, it->second.leader, it->second.term);
    } else if (it->second.started_as_leader) {
      env_.on_read_index(id_, rs.id, it->second.start_us, id_, it->second.start_term);
    }
    trace("read #%llu got read index %llu (applied %llu)", ull(rs.id), ull(rs.index),
          ull(sm_.applied()));
  }
  for (uint64_t id : rd.failed_reads) {
    keepalives_.erase(id);
    pending_reads_.erase(id);
    trace("read #%llu failed", ull(id));
  }
  for (const raft::ForwardRefusal& f : rd.refused_forwards) {
    auto it = pending_forward_ids_.find(f.forward_id);
    if (it == pending_forward_ids_.end()) continue;
    trace("forward %llu refused by the leader: %s", ull(f.forward_id), raft::to_string(f.error));
    env_.checker->on_forward_refused(id_, it->second);
    pending_forwards_.erase(it->second);
    pending_forward_ids_.erase(it);
  }
  serve_reads();
  if (crash_point_ == CrashPoint::kBeforeAdvance) {
    crash();
    return false;
  }

  // 4. Advance.
  raft_->advance(rd);
  return true;
}

// Models what the real node's transport can reach (node.cc sync_peers):
// members of the latest configuration and of the applied one; a node that
// was never a member but sent us something (a leader probing a node that
// waits to be added) until it becomes one; not a former member that has left
// both configurations. Without the applied configuration in this set, a
// leader that removes itself never hears its followers again and never
// commits its removal (a bug the fault test found in the node).
bool SimNode::can_reach(raft::NodeId to) {
  if (raft_->membership().contains(to) || sm_.membership().contains(to)) {
    known_members_.insert(to);
    return true;
  }
  return !known_members_.count(to) && heard_from_.count(to);
}

void SimNode::send(Message& m) {
  if (!can_reach(m.to)) {
    ++unreachable_drops_;
    trace("cannot send to n%llu: not in its address book", ull(m.to));
    return;
  }
  if (m.type == MessageType::kSnapshot) fill_snapshot_data(m);
  env_.checker->check_send(id_, m, disk_);
  env_.send(std::move(m));
}

void SimNode::apply(const Entry& e) {
  if (e.index != sm_.applied() + 1) {
    env_.checker->fail("Apply order",
                       fmt("n%llu is handed committed entry %llu/%llu after applying %llu",
                           ull(id_), ull(e.index), ull(e.term), ull(sm_.applied())));
    return;
  }
  sm_.apply(e);
  env_.checker->on_apply(id_, *raft_, e, sm_.digest());
  if (env_.leases && sm_.last_lease_op()) {
    const Command& op = *sm_.last_lease_op();
    if (op.op == Command::Op::kLeaseGrant) {
      expiry_.granted(static_cast<int64_t>(op.lease), op.ttl_s, static_cast<int64_t>(now_ms()));
    } else {
      expiry_.revoked(static_cast<int64_t>(op.lease));
    }
    env_.on_lease_applied(id_, op, e.index);
  }
  auto it = pending_writes_.find(e.index);
  if (it != pending_writes_.end()) {
    if (it->second.term == e.term) {
      if (it->second.data != e.data) {
        env_.checker->fail("Propose contract",
                           fmt("n%llu: write #%llu was appended at %llu/%llu with other data",
                               ull(id_), ull(it->second.write_id), ull(e.index), ull(e.term)));
        return;
      }
      trace("ack write #%llu at %llu/%llu", ull(it->second.write_id), ull(e.index), ull(e.term));
      env_.checker->on_write_acked(it->second.write_id, e.index, e.term, raft_->term());
      env_.on_write_acked(it->second.write_id);
    }
    pending_writes_.erase(it);
  }
  if (auto f = pending_forwards_.find(e.data); f != pending_forwards_.end()) {
    trace("ack forwarded write #%llu at %llu/%llu", ull(f->second), ull(e.index), ull(e.term));
    env_.checker->on_write_acked(f->second, e.index, e.term, raft_->term());
    env_.on_write_acked(f->second);
    pending_forwards_.erase(f);  // its forward id stays: a late refusal of it would be a lie, checked above
  }
}

void SimNode::serve_reads() {
  for (auto it = pending_reads_.begin(); it != pending_reads_.end();) {
    const PendingRead& r = it->second;
    if (!r.have_index || r.read_index > sm_.applied()) {
      ++it;
      continue;
    }
    std::optional<std::string> value = sm_.get(r.key);
    trace("read #%llu %s = %s (read index %llu, applied %llu)", ull(it->first), r.key.c_str(),
          value ? value->c_str() : "<absent>", ull(r.read_index), ull(sm_.applied()));
    env_.checker->check_read(id_, it->first, r.min_index, r.read_index, sm_.applied(), r.key,
                             value);
    ++reads_served_;
    it = pending_reads_.erase(it);
  }
}

bool SimNode::maybe_snapshot(SimRng& rng) {
  if (sm_.applied() < disk_.snapshot_meta().index + snapshot_gap_) return true;
  if (raft_->applied_index() != sm_.applied()) {
    env_.checker->fail("Applied index",
                       fmt("n%llu: core applied_index %llu but the state machine applied %llu",
                           ull(id_), ull(raft_->applied_index()), ull(sm_.applied())));
    return true;
  }
  raft::SnapshotMeta meta;
  meta.index = sm_.applied();
  meta.term = sm_.applied_term();
  meta.membership = sm_.membership();
  std::string bytes = sm_.serialize();
  meta.size_bytes = bytes.size();
  disk_.stage_save_snapshot(meta, std::move(bytes));
  std::string err = disk_.apply_staged();
  if (!err.empty()) env_.checker->fail("Storage contract", fmt("n%llu: %s", ull(id_), err.c_str()));
  Index keep = raft_->snapshot_taken(meta.index, meta.size_bytes);
  const raft::SnapshotMeta& core = raft_->snapshot();
  if (core.index != meta.index || core.term != meta.term || !(core.membership == meta.membership)) {
    env_.checker->fail("Snapshot contents", fmt("n%llu took snapshot %llu/%llu (%zu members) but "
                                                "the core recorded %llu/%llu (%zu members)",
                                                ull(id_), ull(meta.index), ull(meta.term),
                                                meta.membership.members.size(), ull(core.index),
                                                ull(core.term), core.membership.members.size()));
  }
  ++snapshots_taken_;
  snapshot_gap_ = rng.range(env_.snapshot_gap_min, env_.snapshot_gap_max);
  trace("snapshot at %llu/%llu (%llu bytes), keep log from %llu", ull(meta.index), ull(meta.term),
        ull(meta.size_bytes), ull(keep));
  if (crash_point_ == CrashPoint::kMidSnapshot) {
    crash();
    return false;
  }
  disk_.stage_compact(keep);
  if (Status s = wal_->compact(keep); !s.is_ok()) {
    if (fs_->powered_off()) {
      crash();  // power cut inside the compaction (CrashPoint::kInStorage)
      return false;
    }
    env_.checker->fail("Storage contract",
                       fmt("n%llu: the WAL refused to compact: %s", ull(id_), s.message().c_str()));
  }
  // The metadata file's sync does not cover WAL batches written before it.
  err = disk_.apply_staged();
  if (!err.empty()) env_.checker->fail("Storage contract", fmt("n%llu: %s", ull(id_), err.c_str()));
  return true;
}

void SimNode::track_write(uint64_t write_id, Index index, raft::Term term, std::string data) {
  pending_writes_[index] = PendingWrite{write_id, term, std::move(data)};
}

void SimNode::track_forwarded_write(uint64_t write_id, uint64_t forward_id, std::string data) {
  pending_forward_ids_[forward_id] = data;
  pending_forwards_[std::move(data)] = write_id;
}

bool SimNode::start_read(uint64_t read_id, std::string key, Index min_index) {
  if (!raft_->read_index(read_id)) return false;
  const bool leader = raft_->role() == raft::StateRole::kLeader;
  pending_reads_[read_id] = PendingRead{
      std::move(key), min_index, false, 0, *env_.now_us, raft::kNoNode, 0, leader, raft_->term()};
  return true;
}

void SimNode::note_read_answer(uint64_t read_id, raft::NodeId leader, raft::Term term) {
  auto it = pending_reads_.find(read_id);
  if (it == pending_reads_.end()) return;
  it->second.leader = leader;
  it->second.term = term;
}

}  // namespace ckv::sim
