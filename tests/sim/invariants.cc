// Implementation of the safety checks; every failure message carries the numbers that prove it.
#include "invariants.h"

#include <algorithm>
#include <cstdarg>
#include <cstdio>

#include "sim_trace.h"

#include "sim_state_machine.h"

namespace ckv::sim {

using raft::Entry;
using raft::Index;
using raft::NodeId;
using raft::StateRole;
using raft::Term;

namespace {
using ull = unsigned long long;
}  // namespace

void InvariantChecker::fail(const std::string& invariant, const std::string& detail) {
  if (failed()) return;
  invariant_ = invariant;
  failure_ = invariant + ": " + detail;
}

Term InvariantChecker::committed_term(Index index) const {
  if (index >= committed_.size() || !committed_[index].present) return 0;
  return committed_[index].term;
}

const Entry* InvariantChecker::entry_at(const raft::Raft& r, Index i) {
  const std::vector<Entry>& log = r.log_entries();
  if (log.empty() || i < log.front().index || i > log.back().index) return nullptr;
  const Entry* e = &log[i - log.front().index];
  return e->index == i ? e : nullptr;
}

void InvariantChecker::on_start(NodeId id, const raft::Raft& r) {
  Watch w;
  w.commit = r.commit_index();
  w.applied = r.applied_index();
  w.role = r.role();
  w.term = r.term();
  watch_[id] = w;
  // A restart's commit index comes from its own disk: record what it claims.
  record_commits(id, r, 0, r.commit_index());
  watch_[id].recorded = r.commit_index();
}

void InvariantChecker::on_crash(NodeId id, Term durable_term) {
  for (auto it = leader_of_term_.upper_bound(durable_term); it != leader_of_term_.end();) {
    it = it->second == id ? leader_of_term_.erase(it) : std::next(it);
  }
}

void InvariantChecker::record_committed(Index i, const Committed& c, NodeId id) {
  if (committed_.size() <= i) committed_.resize(i + 1 + i / 2);
  Committed& have = committed_[i];
  if (!have.present) {
    have = c;
    have.present = true;
    have.observer = id;
    max_committed_ = std::max(max_committed_, i);
    return;
  }
  if (have.term != c.term || (have.has_hash && c.has_hash && have.hash != c.hash)) {
    fail("State Machine Safety", fmt("two different entries committed at index %llu: n%llu saw "
                                     "term %llu (hash %016llx), n%llu saw term %llu "
                                     "(hash %016llx)",
                                     ull(i), ull(have.observer), ull(have.term), ull(have.hash),
                                     ull(id), ull(c.term), ull(c.hash)));
    return;
  }
  if (!have.has_hash && c.has_hash) {
    have.has_hash = true;
    have.hash = c.hash;
  }
  have.observed_in_term = std::min(have.observed_in_term, c.observed_in_term);
}

void InvariantChecker::record_commits(NodeId id, const raft::Raft& r, Index from, Index to) {
  const raft::SnapshotMeta& snap = r.snapshot();
  const std::vector<Entry>& log = r.log_entries();
  Index lo = from + 1;
  // Entries below the snapshot are gone from memory; someone recorded them earlier.
  if (lo < snap.index) lo = snap.index;
  if (lo == 0) lo = 1;
  for (Index i = lo; i <= to; ++i) {
    Committed c;
    c.observed_in_term = r.term();
    if (const Entry* e = entry_at(r, i)) {
      c.term = e->term;
      c.has_hash = true;
      c.hash = entry_hash(*e);
    } else if (i == snap.index && snap.index > 0) {
      c.term = snap.term;
    } else {
      if (!log.empty() && i >= log.front().index && i <= log.back().index) {
        fail("Log Matching",
             fmt("n%llu log_entries() is not contiguous around index %llu", ull(id), ull(i)));
      } else {
        fail("Commit Safety", fmt("n%llu has commit_index %llu but no entry at %llu (log [%llu, "
                                  "%llu], snapshot %llu)",
                                  ull(id), ull(to), ull(i), ull(r.first_index()),
                                  ull(r.last_index()), ull(snap.index)));
      }
      return;
    }
    record_committed(i, c, id);
    if (failed()) return;
  }
}

void InvariantChecker::check_node(NodeId id, const raft::Raft& r) {
  Watch& w = watch_[id];
  Term term = r.term();
  StateRole role = r.role();
  if (role == StateRole::kLeader) {
    auto [it, inserted] = leader_of_term_.emplace(term, id);
    if (!inserted && it->second != id) {
      fail("Election Safety",
           fmt("two leaders in term %llu: n%llu and n%llu", ull(term), ull(it->second), ull(id)));
      return;
    }
  }
  if (term < w.term) {
    fail("Term monotonic",
         fmt("n%llu term went from %llu back to %llu", ull(id), ull(w.term), ull(term)));
    return;
  }
  Index commit = r.commit_index();
  if (commit < w.commit) {
    fail("Commit monotonic", fmt("n%llu commit_index went from %llu back to %llu while alive",
                                 ull(id), ull(w.commit), ull(commit)));
    return;
  }
  if (r.applied_index() > commit) {
    fail("Applied <= commit", fmt("n%llu applied_index %llu > commit_index %llu", ull(id),
                                  ull(r.applied_index()), ull(commit)));
    return;
  }
  if (commit > r.last_index()) {
    fail("Commit Safety", fmt("n%llu commit_index %llu beyond its last index %llu", ull(id),
                              ull(commit), ull(r.last_index())));
    return;
  }
  if (persist_checks_ && role == StateRole::kLeader && w.role == StateRole::kLeader &&
      w.term == term && commit > w.commit && r.term_at(commit) != term) {
    // §5.4.2 (Figure 8): a leader commits by counting replicas only an entry
    // of its own term; older entries commit with it, never on their own. A
    // sitting leader's commit index moves only by that count, so the entry
    // at its new commit index must be of its term. The cluster-wide checks
    // catch this bug only when a later leader lacks the entry (Figure 8's
    // exact schedule); this catches every commit that breaks the rule.
    fail("Commit rule (§5.4.2)",
         fmt("leader n%llu of term %llu advanced commit_index %llu -> %llu, whose entry has term "
             "%llu",
             ull(id), ull(term), ull(w.commit), ull(commit), ull(r.term_at(commit))));
    return;
  }
  if (commit > w.recorded) {
    record_commits(id, r, w.recorded, commit);
    w.recorded = commit;
    if (failed()) return;
  }
  w.commit = commit;
  if (role == StateRole::kLeader)
    check_leader(id, r, !(w.role == StateRole::kLeader && w.term == term));
  w.role = role;
  w.term = term;
}

std::string InvariantChecker::leader_holds(const raft::Raft& r, Index i, Term term, bool has_hash,
                                           uint64_t hash) const {
  const raft::SnapshotMeta& snap = r.snapshot();
  if (i < snap.index) return "";  // covered by the snapshot (whose own entry is checked below)
  if (i == snap.index) {
    if (snap.term == term) return "";
    return fmt("its snapshot at %llu has term %llu, not %llu", ull(i), ull(snap.term), ull(term));
  }
  const Entry* e = entry_at(r, i);
  if (e == nullptr) {
    return fmt("it has no entry at %llu (log [%llu, %llu], snapshot %llu)", ull(i),
               ull(r.first_index()), ull(r.last_index()), ull(snap.index));
  }
  if (e->term != term)
    return fmt("its entry at %llu has term %llu, not %llu", ull(i), ull(e->term), ull(term));
  if (has_hash && entry_hash(*e) != hash)
    return fmt("its entry at %llu/%llu has different data", ull(i), ull(term));
  return "";
}

void InvariantChecker::check_leader(NodeId id, const raft::Raft& r, bool newly_elected) {
  Term lt = r.term();
  // A new leader is checked against everything committed; a sitting leader
  // only against the newest commit (it cannot lose older entries without
  // overwriting them, which check_ready catches).
  Index lo = newly_elected ? 1 : max_committed_;
  if (lo < r.snapshot().index) lo = r.snapshot().index;
  if (lo == 0) lo = 1;
  for (Index i = lo; i <= max_committed_; ++i) {
    const Committed& c = committed_[i];
    if (!c.present || c.observed_in_term > lt) continue;
    std::string why = leader_holds(r, i, c.term, c.has_hash, c.hash);
    if (!why.empty()) {
      fail("Leader Completeness", fmt("n%llu is leader of term %llu but lacks entry %llu/%llu "
                                      "committed by term %llu (seen by n%llu): %s",
                                      ull(id), ull(lt), ull(i), ull(c.term),
                                      ull(c.observed_in_term), ull(c.observer), why.c_str()));
      return;
    }
  }
  auto it = acked_.lower_bound(newly_elected ? lo : (acked_.empty() ? 0 : acked_.rbegin()->first));
  for (; it != acked_.end(); ++it) {
    if (it->second.observed_in_term > lt) continue;
    std::string why = leader_holds(r, it->first, it->second.term, false, 0);
    if (!why.empty()) {
      fail("Acknowledged write lost",
           fmt("write #%llu acknowledged at %llu/%llu (in term %llu) is missing from leader n%llu "
               "of term %llu: %s",
               ull(it->second.write_id), ull(it->first), ull(it->second.term),
               ull(it->second.observed_in_term), ull(id), ull(lt), why.c_str()));
      return;
    }
  }
}

void InvariantChecker::check_link(NodeId id, const Entry& e, Term prev_term, bool prev_known) {
  uint64_t key = (e.index << 24) ^ e.term;
  uint64_t h = entry_hash(e);
  auto [it, inserted] = links_.try_emplace(key);
  Link& l = it->second;
  if (inserted) {
    l.hash = h;
    l.prev_term = prev_term;
    l.prev_known = prev_known;
    l.node = id;
    return;
  }
  if (l.hash != h) {
    fail(
        "Log Matching",
        fmt("entry %llu/%llu differs between n%llu and n%llu (same index and term, different data)",
            ull(e.index), ull(e.term), ull(l.node), ull(id)));
    return;
  }
  if (prev_known && l.prev_known && l.prev_term != prev_term) {
    fail("Log Matching", fmt("entry %llu/%llu follows term %llu on n%llu but term %llu on n%llu "
                             "(logs match at %llu, differ before it)",
                             ull(e.index), ull(e.term), ull(l.prev_term), ull(l.node),
                             ull(prev_term), ull(id), ull(e.index)));
    return;
  }
  if (!l.prev_known && prev_known) {
    l.prev_term = prev_term;
    l.prev_known = true;
  }
}

void InvariantChecker::check_ready(NodeId id, const raft::Raft& r, const raft::Ready& rd,
                                   const raft::HardState& durable) {
  Term now = r.term();
  for (size_t k = 0; k < rd.entries.size(); ++k) {
    const Entry& e = rd.entries[k];
    if (k > 0 && e.index != rd.entries[k - 1].index + 1) {
      fail("Ready contract", fmt("n%llu Ready::entries not contiguous: %llu after %llu", ull(id),
                                 ull(e.index), ull(rd.entries[k - 1].index)));
      return;
    }
    if (e.index < committed_.size() && committed_[e.index].present) {
      const Committed& c = committed_[e.index];
      // A node in term >= the commit's term only accepts entries from a
      // leader that holds every committed entry, so a different entry here
      // means a committed entry is being truncated. The entries of one Ready
      // may have been appended before a term change within it (a stale
      // leader appends its own proposal, then hears of a newer term): judge
      // by the older of the durable and current terms. (Seed 20984: a stale
      // leader at term 8 appended 362/8 where 362/10 was committed.)
      if (c.observed_in_term <= std::min(now, durable.term) &&
          (c.term != e.term || (c.has_hash && c.hash != entry_hash(e)))) {
        fail("Committed entry overwritten",
             fmt("n%llu (term %llu) persists %llu/%llu over committed entry %llu/%llu (committed "
                 "by term %llu)",
                 ull(id), ull(now), ull(e.index), ull(e.term), ull(e.index), ull(c.term),
                 ull(c.observed_in_term)));
        return;
      }
    }
  }
  if (rd.hard_state && persist_checks_) {
    const raft::HardState& hs = *rd.hard_state;
    if (hs.term < durable.term) {
      fail("Term monotonic", fmt("n%llu persists term %llu over durable term %llu", ull(id),
                                 ull(hs.term), ull(durable.term)));
    } else if (hs.term == durable.term && durable.vote != raft::kNoNode &&
               hs.vote != durable.vote) {
      fail("Election Safety (one vote per term)",
           fmt("n%llu changes its durable vote in term %llu from n%llu to n%llu", ull(id),
               ull(hs.term), ull(durable.vote), ull(hs.vote)));
    }
  }
}

void InvariantChecker::on_persisted(NodeId id, const raft::Raft& r, const raft::Ready& rd) {
  for (size_t k = 0; k < rd.entries.size(); ++k) {
    const Entry& e = rd.entries[k];
    Term prev = 0;
    bool prev_known = true;
    if (k > 0) {
      prev = rd.entries[k - 1].term;
    } else if (e.index > 1) {
      prev = r.term_at(e.index - 1);
      prev_known = prev != 0;
    }
    check_link(id, e, prev, prev_known);
    if (failed()) return;
  }
}

void InvariantChecker::check_log(NodeId id, const raft::Raft& r, Index durable_last) {
  const std::vector<Entry>& log = r.log_entries();
  for (size_t k = 0; k < log.size(); ++k) {
    const Entry& e = log[k];
    if (e.index > durable_last) break;
    if (k > 0 && e.index != log[k - 1].index + 1) {
      fail("Log Matching", fmt("n%llu in-memory log not contiguous: %llu after %llu", ull(id),
                               ull(e.index), ull(log[k - 1].index)));
      return;
    }
    Term prev = 0;
    bool prev_known = true;
    if (k > 0) {
      prev = log[k - 1].term;
    } else if (e.index > 1) {
      prev = r.term_at(e.index - 1);
      prev_known = prev != 0;
    }
    check_link(id, e, prev, prev_known);
    if (failed()) return;
  }
}

void InvariantChecker::check_send(NodeId id, const raft::Message& m, const SimDisk& disk) {
  using raft::MessageType;
  if (!persist_checks_) return;
  if (m.type == MessageType::kVoteResp && !m.reject) {
    const raft::HardState& hs = disk.hard_state();
    // Safe once the disk holds this vote, or any later term (a node never
    // votes in a term below its durable one, so it cannot vote twice in m.term).
    if (hs.term < m.term || (hs.term == m.term && hs.vote != m.to)) {
      fail("Vote persisted before reply",
           fmt("n%llu grants its vote to n%llu in term %llu but its disk says term %llu vote n%llu "
               "(§5.2, Figure 2)",
               ull(id), ull(m.to), ull(m.term), ull(hs.term), ull(hs.vote)));
    }
  } else if (m.type == MessageType::kAppendResp && !m.reject) {
    if (disk.last_index() < m.index) {
      fail("Append persisted before ack",
           fmt("n%llu acknowledges index %llu to n%llu but its disk log ends at %llu", ull(id),
               ull(m.index), ull(m.to), ull(disk.last_index())));
    }
  }
}

void InvariantChecker::on_apply(NodeId id, const raft::Raft& r, const Entry& e,
                                uint64_t digest_after) {
  Index i = e.index;
  uint64_t h = entry_hash(e);
  if (i >= committed_.size() || !committed_[i].present) {
    // The applying node's own commit index must cover it; record from it.
    record_commits(id, r, watch_[id].recorded, r.commit_index());
    watch_[id].recorded = std::max(watch_[id].recorded, r.commit_index());
    if (failed()) return;
  }
  if (i >= committed_.size() || !committed_[i].present) {
    fail("State Machine Safety",
         fmt("n%llu applies %llu/%llu which is not committed (its commit_index is %llu)", ull(id),
             ull(i), ull(e.term), ull(r.commit_index())));
    return;
  }
  const Committed& c = committed_[i];
  if (c.term != e.term || (c.has_hash && c.hash != h)) {
    fail("State Machine Safety",
         fmt("n%llu applies %llu/%llu but %llu/%llu was committed (seen by n%llu)", ull(id), ull(i),
             ull(e.term), ull(i), ull(c.term), ull(c.observer)));
    return;
  }
  if (applied_.size() <= i) applied_.resize(i + 1 + i / 2);
  Applied& a = applied_[i];
  if (!a.present) {
    a = Applied{true, e.term, h, digest_after, id};
    if (e.type == raft::EntryType::kNormal) {
      if (auto cmd = parse_command(e.data)) {
        auto& hist = key_history_[cmd->key];
        if (cmd->op == Command::Op::kSet) {
          hist[i] = cmd->value;
        } else {
          hist[i] = std::nullopt;
        }
        if (cmd->op == Command::Op::kSet && !cmd->value.empty() && cmd->value[0] == 'w') {
          // Each workload write is proposed once, at a leader or forwarded by
          // a follower, and nothing re-sends it: applied at one index at most.
          auto [at, fresh] = applied_write_index_.emplace(cmd->value, i);
          if (!fresh && at->second != i) {
            fail("At-most-once apply", fmt("write %s applied at %llu and again at %llu", cmd->value.c_str(),
                                           ull(at->second), ull(i)));
            return;
          }
        }
      }
      if (auto r = refused_forwards_.find(e.data); r != refused_forwards_.end()) {
        fail("Forward refusal", fmt("n%llu applies %llu/%llu, a proposal the leader refused when n%llu forwarded it",
                                    ull(id), ull(i), ull(e.term), ull(r->second)));
      }
    }
    return;
  }
  if (a.term != e.term || a.hash != h) {
    fail("State Machine Safety",
         fmt("n%llu applies %llu/%llu but n%llu applied %llu/%llu there", ull(id), ull(i),
             ull(e.term), ull(a.node), ull(i), ull(a.term)));
  } else if (a.digest != digest_after) {
    fail("State Machine Safety",
         fmt("n%llu state after applying %llu has digest %016llx, n%llu had %016llx", ull(id),
             ull(i), ull(digest_after), ull(a.node), ull(a.digest)));
  }
}

void InvariantChecker::on_restore(NodeId id, const raft::SnapshotMeta& meta, uint64_t digest) {
  Index i = meta.index;
  if (i < committed_.size() && committed_[i].present && committed_[i].term != meta.term) {
    fail("State Machine Safety",
         fmt("n%llu restores snapshot %llu/%llu but %llu/%llu was committed", ull(id), ull(i),
             ull(meta.term), ull(i), ull(committed_[i].term)));
    return;
  }
  if (i < applied_.size() && applied_[i].present && applied_[i].digest != digest) {
    fail("State Machine Safety",
         fmt("n%llu restores snapshot at %llu with digest %016llx, but n%llu's state there had "
             "digest %016llx",
             ull(id), ull(i), ull(digest), ull(applied_[i].node), ull(applied_[i].digest)));
  }
}

void InvariantChecker::on_write_acked(uint64_t write_id, Index index, Term term,
                                      Term observed_in_term) {
  acked_[index] = Acked{term, observed_in_term, write_id};
}

void InvariantChecker::on_forward_refused(NodeId id, const std::string& data) {
  // Only workload sets are unique ("del k" repeats): those are checked.
  auto cmd = parse_command(data);
  if (!cmd || cmd->op != Command::Op::kSet || cmd->value.empty() || cmd->value[0] != 'w') return;
  if (auto at = applied_write_index_.find(cmd->value); at != applied_write_index_.end()) {
    fail("Forward refusal", fmt("n%llu was told its forwarded write %s was refused, but it was applied at %llu",
                                ull(id), cmd->value.c_str(), ull(at->second)));
    return;
  }
  refused_forwards_.emplace(data, id);
}

void InvariantChecker::check_read(NodeId id, uint64_t read_id, Index min_index, Index read_index,
                                  Index applied, const std::string& key,
                                  const std::optional<std::string>& value) {
  if (read_index < min_index) {
    fail("Linearizable read", fmt("read #%llu on n%llu got read index %llu, but index %llu was "
                                  "already committed when it began",
                                  ull(read_id), ull(id), ull(read_index), ull(min_index)));
    return;
  }
  if (read_index > max_committed_) {
    fail("Linearizable read",
         fmt("read #%llu on n%llu got read index %llu beyond anything committed (%llu)",
             ull(read_id), ull(id), ull(read_index), ull(max_committed_)));
    return;
  }
  std::optional<std::string> expect;
  Index from = 0;
  auto hit = key_history_.find(key);
  if (hit != key_history_.end()) {
    auto it = hit->second.upper_bound(applied);
    if (it != hit->second.begin()) {
      --it;
      expect = it->second;
      from = it->first;
    }
  }
  if (expect != value) {
    fail("Linearizable read",
         fmt("read #%llu of %s on n%llu at applied %llu returned %s; the committed history says %s "
             "(written at %llu)",
             ull(read_id), key.c_str(), ull(id), ull(applied), value ? value->c_str() : "<absent>",
             expect ? expect->c_str() : "<absent>", ull(from)));
  }
}

}  // namespace ckv::sim
