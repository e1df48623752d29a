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

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>

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

struct WriterStats {
  uint64_t writes = 0;
  Clock::duration max_apply{};
};

// Applies writes until stop; returns the longest apply.
WriterStats run_writer(ckv::fsm::KvStateMachine& sm, std::atomic<bool>& stop, uint64_t& index, uint64_t keys) {
  WriterStats st;
  uint64_t k = 0;
  while (!stop.load(std::memory_order_relaxed)) {
    Command c = put("key" + std::to_string(k++ % keys), "value-updated");
    const auto t0 = Clock::now();
    sm.apply(++index, c);
    const auto d = Clock::now() - t0;
    if (d > st.max_apply) st.max_apply = d;
    st.writes++;
  }
  return st;
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
  std::thread w2([&] { during = run_writer(sm, stop, index, keys); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const auto t0 = Clock::now();
  std::unique_ptr<ckv::fsm::KvStateMachine::SnapshotJob> job = sm.begin_snapshot();  // on the Raft thread in kvnode
  const auto t_begun = Clock::now();
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
              ms(t1 - t0), static_cast<double>(file.value().meta.size_bytes) / (1 << 20), ms(t_begun - t0), ms(t2 - t1),
              sm.idempotency_entries());
  std::printf("longest single write, baseline: %.3f ms (%llu writes)\n", ms(base.max_apply),
              static_cast<unsigned long long>(base.writes));
  std::printf("longest single write, during snapshot: %.3f ms (%llu writes)\n", ms(during.max_apply),
              static_cast<unsigned long long>(during.writes));
  std::printf("ratio during/baseline: %.2f\n", ms(during.max_apply) / ms(base.max_apply));
  return 0;
}
