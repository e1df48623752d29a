// Micro benchmark: proposals per second through a 3-node in-memory cluster of real Raft cores (no I/O).
//
// What it measures: the CPU cost of the consensus core itself -- appending,
// replicating, acknowledging, committing and applying -- with "storage" being
// in-memory vectors and the "network" a queue delivered in the same thread.
// There is no fsync, serialization or socket, so this is an upper bound the
// real node will never reach (DESIGN.md: an fdatasync costs ~0.16 ms); it
// tells whether the core could ever be the bottleneck and catches regressions.
//
// Each benchmark iteration proposes `batch` commands on the leader, then
// drives every node's Ready (raft.h: persist, send, apply, advance) and
// delivers messages until the cluster is quiet and the leader has committed
// and applied them all. items_per_second = committed proposals per second.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <benchmark/benchmark.h>

#include "common/check.h"
#include "raft/raft.h"

namespace {

using ckv::raft::Entry;
using ckv::raft::Index;
using ckv::raft::Message;
using ckv::raft::MessageType;
using ckv::raft::NodeId;
using ckv::raft::Raft;
using ckv::raft::Ready;
using ckv::raft::StateRole;

constexpr int kNodes = 3;
constexpr size_t kPayloadBytes = 64;             // a small key/value command
constexpr int kMaxElectionTicks = 10'000;        // give up electing a leader after this
constexpr Index kCompactEveryEntries = 1 << 16;  // bound memory on long runs

// One member: the core plus what its storage would hold.
struct Node {
  std::unique_ptr<Raft> core;
  ckv::raft::HardState hard_state;
  Index stored_first = 1;  // index of stored_log[0]
  std::vector<Entry> stored_log;
  Index applied = 0;
  Index last_compaction = 0;
  uint64_t applied_bytes = 0;  // keeps the "state machine" observable
};

class Cluster {
 public:
  Cluster() {
    ckv::raft::Membership membership;
    for (NodeId id = 1; id <= kNodes; ++id) {
      membership.members.push_back(
          {.id = id, .role = ckv::raft::MemberRole::kVoter, .context = {}});
    }
    const ckv::raft::InitialState initial = ckv::raft::bootstrap_state(membership);
    for (NodeId id = 1; id <= kNodes; ++id) {
      ckv::raft::Options options;
      options.id = id;
      options.random_seed = 42 + id;
      auto& node = nodes_.emplace_back();
      node.core = std::make_unique<Raft>(options, initial);
      node.hard_state = initial.hard_state;
      node.stored_first = initial.snapshot.index + 1;
      node.stored_log = initial.entries;
    }
  }

  // Ticks until some node is leader and has committed an entry of its term
  // (so it accepts proposals). Returns false if that never happens.
  bool elect() {
    for (int t = 0; t < kMaxElectionTicks; ++t) {
      for (auto& n : nodes_) n.core->tick();
      settle();
      if (Raft* l = leader(); l != nullptr && l->applied_index() >= l->commit_index() &&
                              l->term_at(l->commit_index()) == l->term()) {
        return true;
      }
    }
    return false;
  }

  Raft* leader() {
    for (auto& n : nodes_) {
      if (n.core->role() == StateRole::kLeader) return n.core.get();
    }
    return nullptr;
  }

  // Drives Ready on every node and delivers messages until nothing is left.
  void settle() {
    bool progress = true;
    while (progress) {
      progress = false;
      for (auto& n : nodes_) {
        if (!n.core->has_ready()) continue;
        handle_ready(n);
        progress = true;
      }
      while (!in_flight_.empty()) {
        Message m = std::move(in_flight_.front());
        in_flight_.pop_front();
        KV_CHECK(m.to >= 1 && m.to <= kNodes, "message to unknown node %llu",
                 static_cast<unsigned long long>(m.to));
        nodes_[m.to - 1].core->step(m);
        progress = true;
      }
    }
  }

  uint64_t ready_cycles() const { return ready_cycles_; }
  uint64_t messages() const { return messages_; }

 private:
  // The order raft.h prescribes: persist, send, apply, advance.
  void handle_ready(Node& n) {
    Ready rd = n.core->ready();
    ++ready_cycles_;

    // 1. Persist. Snapshot chunks would be written to a file; here there is
    //    no state to keep, only the log position.
    if (rd.snapshot) {
      n.stored_log.clear();
      n.stored_first = rd.snapshot->index + 1;
    }
    if (!rd.entries.empty()) {
      const Index from = rd.entries.front().index;
      KV_CHECK(from >= n.stored_first && from <= n.stored_first + n.stored_log.size(),
               "append at %llu leaves a gap in [%llu, %llu)", static_cast<unsigned long long>(from),
               static_cast<unsigned long long>(n.stored_first),
               static_cast<unsigned long long>(n.stored_first + n.stored_log.size()));
      n.stored_log.resize(from - n.stored_first);
      n.stored_log.insert(n.stored_log.end(), rd.entries.begin(), rd.entries.end());
    }
    if (rd.hard_state) n.hard_state = *rd.hard_state;

    // 2. Send. A snapshot chunk carries bytes the node layer reads from its
    //    snapshot file; this benchmark's snapshots have no content.
    for (Message& m : rd.messages) {
      if (m.type == MessageType::kSnapshot) m.data.assign(m.data_length, '\0');
      in_flight_.push_back(std::move(m));
      ++messages_;
    }

    // 3. Apply.
    if (rd.snapshot) n.applied = rd.snapshot->index;
    for (const Entry& e : rd.committed_entries) {
      n.applied_bytes += e.data.size();
      n.applied = e.index;
    }

    // 4. Advance.
    n.core->advance(rd);

    // Compact now and then, as the node layer will, so long runs stay in memory.
    if (n.applied - n.last_compaction >= kCompactEveryEntries) {
      const Index keep_from = n.core->snapshot_taken(n.applied, n.applied_bytes);
      if (keep_from > n.stored_first) {
        const Index drop = std::min<Index>(keep_from - n.stored_first, n.stored_log.size());
        n.stored_log.erase(n.stored_log.begin(),
                           n.stored_log.begin() + static_cast<ptrdiff_t>(drop));
        n.stored_first += drop;
      }
      n.last_compaction = n.applied;
    }
  }

  std::vector<Node> nodes_;
  std::deque<Message> in_flight_;
  uint64_t ready_cycles_ = 0;
  uint64_t messages_ = 0;
};

// Arg 0: proposals per Ready cycle (1 = one proposal, then drive the cluster
// until it is committed; 64/1024 = batched as a busy leader would see them).
void BM_ProposeCommit3Nodes(benchmark::State& state) {
  const auto batch = static_cast<int>(state.range(0));
  Cluster cluster;
  if (!cluster.elect()) {
    state.SkipWithError("no leader elected");
    return;
  }
  Raft* leader = cluster.leader();
  const std::string payload(kPayloadBytes, 'v');
  const uint64_t cycles_before = cluster.ready_cycles();
  const uint64_t messages_before = cluster.messages();
  uint64_t proposals = 0;

  for (auto _ : state) {  // NOLINT(clang-analyzer-deadcode.DeadStores): benchmark idiom
    Index last = 0;
    for (int i = 0; i < batch; ++i) {
      const ckv::raft::ProposeResult r = leader->propose(payload);
      if (!r.ok()) {
        state.SkipWithError(ckv::raft::to_string(r.error));
        return;
      }
      last = r.index;
    }
    cluster.settle();
    if (leader->commit_index() < last || leader->applied_index() < last) {
      state.SkipWithError("cluster settled without committing the batch");
      return;
    }
    proposals += static_cast<uint64_t>(batch);
  }

  state.SetItemsProcessed(static_cast<int64_t>(proposals));
  state.SetBytesProcessed(static_cast<int64_t>(proposals * kPayloadBytes));
  const auto per_batch = [&](uint64_t n) {
    return benchmark::Counter(static_cast<double>(n) / static_cast<double>(state.iterations()));
  };
  state.counters["ready_cycles/batch"] = per_batch(cluster.ready_cycles() - cycles_before);
  state.counters["msgs/batch"] = per_batch(cluster.messages() - messages_before);
}
BENCHMARK(BM_ProposeCommit3Nodes)->ArgName("batch")->Arg(1)->Arg(64)->Arg(1024);

}  // namespace

BENCHMARK_MAIN();
