// Measures how long taking a snapshot of a large MVCC state machine stalls writes (target: <= a few ms at 1M keys).
//
// A writer thread applies puts as fast as it can, as the Raft thread would,
// and records the longest single apply. Run 1 has no snapshot (the baseline
// for this machine, this run); run 2 streams a snapshot of the whole store
// to a file while the writer goes on. Reported: both maxima, their ratio,
// the snapshot's wall time and file size, how long begin_snapshot() (on the
// Raft thread: it copies the idempotency table) and end_snapshot() took.
// Half of the initial keys carry an idempotency key, so the table is in
// the snapshot too (capped at IdempotencyTable::kMaxEntries).
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "fsm/kv_state_machine.h"
#include "storage/snapshot_file.h"

namespace {

using Clock = std::chrono::steady_clock;
using ckv::fsm::Command;

Command put(std::string key, std::string value, std::string idempotency_key = "") {
  ckv::mvcc::PutRequest p;
  p.key = std::move(key);
  p.value = std::move(value);
  Command c;
  c.request = std::move(p);
  c.idempotency_key = std::move(idempotency_key);
  c.proposed_at_ms = 1'700'000'000'000;
  return c;
}

double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// The writer compacts to the current revision this often, as auto-compaction
// would, so history stays bounded. A compaction drops its versions in steps
// (KvStateMachine::compact_step), which the writer runs after every put as
// the node's loop does; the longest step is reported apart from the puts.
constexpr uint64_t kCompactEveryWrites = 50'000;

struct WriterStats {
  uint64_t writes = 0;
  std::vector<float> apply_us;  // every put's apply time
  Clock::duration max_compaction{};  // the longest compaction apply or step
  uint64_t compactions = 0;

  double percentile_ms(double p) {
    if (apply_us.empty()) return 0;
    const size_t at = std::min(apply_us.size() - 1, static_cast<size_t>(p * static_cast<double>(apply_us.size())));
    std::nth_element(apply_us.begin(), apply_us.begin() + static_cast<std::ptrdiff_t>(at), apply_us.end());
    return apply_us[at] / 1000.0;
  }
  double max_ms() const { return apply_us.empty() ? 0 : *std::max_element(apply_us.begin(), apply_us.end()) / 1000.0; }
};

// A snapshot the writer starts between two applies, as the Raft thread does.
struct SnapshotRequest {
  std::atomic<bool> wanted{false};
  std::promise<std::unique_ptr<ckv::fsm::KvStateMachine::SnapshotJob>> job;
  Clock::duration begin_took{};
};

// Applies puts (and a compaction every kCompactEveryWrites) until stop.
WriterStats run_writer(ckv::fsm::KvStateMachine& sm, std::atomic<bool>& stop, uint64_t& index, uint64_t keys,
                       SnapshotRequest* snap = nullptr) {
  WriterStats st;
  uint64_t k = 0;
  st.apply_us.reserve(1 << 22);
  while (!stop.load(std::memory_order_relaxed)) {
    if (snap != nullptr && snap->wanted.exchange(false)) {
      const auto b0 = Clock::now();
      auto job = sm.begin_snapshot();
      snap->begin_took = Clock::now() - b0;
      snap->job.set_value(std::move(job));
    }
    Command c = put("key" + std::to_string(k++ % keys), "value-updated");
    const auto t0 = Clock::now();
    sm.apply(++index, c);
    const auto d = Clock::now() - t0;
    st.apply_us.push_back(static_cast<float>(std::chrono::duration<double, std::micro>(d).count()));
    st.writes++;
    if (st.writes % kCompactEveryWrites == 0) {
      Command compact;
      compact.request = ckv::mvcc::CompactionRequest{sm.revision(), true};
      const auto c0 = Clock::now();
      sm.apply(++index, compact);
      st.max_compaction = std::max(st.max_compaction, Clock::now() - c0);
      st.compactions++;
    }
    const auto s0 = Clock::now();
    if (sm.compact_step()) st.max_compaction = std::max(st.max_compaction, Clock::now() - s0);
  }
  return st;
}

void report(const char* what, WriterStats& st) {
  std::printf("%s: %llu puts; apply p50 %.3f ms, p99 %.3f ms, p99.9 %.3f ms, max %.3f ms; %llu compactions, longest step %.2f ms\n",
              what, static_cast<unsigned long long>(st.writes), st.percentile_ms(0.5), st.percentile_ms(0.99),
              st.percentile_ms(0.999), st.max_ms(), static_cast<unsigned long long>(st.compactions),
              ms(st.max_compaction));
}

}  // namespace

int main(int argc, char** argv) {
  const uint64_t keys = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1000000;
  ckv::fsm::KvStateMachine sm;
  uint64_t index = 0;
  for (uint64_t i = 0; i < keys; ++i) {
    sm.apply(++index, put("key" + std::to_string(i), "value", i % 2 == 0 ? "id" + std::to_string(i) : ""));
  }

  const std::string dir = (std::filesystem::temp_directory_path() / ("ckv_snap_bench_" + std::to_string(::getpid()))).string();
  std::filesystem::create_directories(dir);

  // Run 1: baseline, same duration as the snapshot run will roughly take.
  std::atomic<bool> stop{false};
  WriterStats base;
  std::thread w1([&] { base = run_writer(sm, stop, index, keys); });
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  stop = true;
  w1.join();

  // Run 2: snapshot while writing.
  stop = false;
  WriterStats during;
  SnapshotRequest request;
  std::thread w2([&] { during = run_writer(sm, stop, index, keys, &request); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const auto t0 = Clock::now();
  auto job_future = request.job.get_future();
  request.wanted = true;
  std::unique_ptr<ckv::fsm::KvStateMachine::SnapshotJob> job = job_future.get();
  Clock::time_point t1;
  Clock::time_point t2;
  ckv::Result<ckv::storage::SnapshotFile> file = ckv::Status(ckv::StatusCode::kIo, "not run");
  std::thread snapshotter([&] {  // the snapshot writer thread in kvnode
    file = ckv::storage::write_snapshot_file(dir, job->index, 1, ckv::raft::Membership{},
                                             [&](const ckv::storage::PayloadSink& sink) { return sm.write_snapshot(*job, sink); });
    t1 = Clock::now();
    sm.end_snapshot();
    t2 = Clock::now();
  });
  snapshotter.join();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  stop = true;
  w2.join();
  std::filesystem::remove_all(dir);
  if (!file.is_ok()) {
    std::fprintf(stderr, "snapshot failed: %s\n", file.status().to_string().c_str());
    return 1;
  }
  std::printf("keys: %llu\n", static_cast<unsigned long long>(keys));
  std::printf("snapshot: %.0f ms to write %.1f MiB; begin_snapshot %.2f ms; end_snapshot %.2f ms; %zu idempotency entries\n",
              ms(t1 - t0), static_cast<double>(file.value().meta.size_bytes) / (1 << 20), ms(request.begin_took), ms(t2 - t1),
              sm.idempotency_entries());
  report("baseline (no snapshot)", base);
  report("during the snapshot", during);
  std::printf("ratio of longest put, during/baseline: %.2f\n", during.max_ms() / base.max_ms());
  return 0;
}
