// Google Benchmark: the WAL's persist() path (encode, pwrite, fdatasync) for batches of 256-byte entries, with and without the sync.
//
// It runs on the real file system (the POSIX FileSystem): set WAL_BENCH_DIR
// to a directory on the disk to measure (default: /tmp). Only the public
// Wal API is used, so the same file builds against an older tree for a
// before/after comparison in one run (bench/README.md, "WAL persist").
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>
#include <unistd.h>

#include "storage/wal/wal.h"

namespace {

using ckv::raft::Entry;
using ckv::raft::EntryType;
using ckv::raft::HardState;

constexpr size_t kValueBytes = 256;
// Old segments are deleted every this many batches, so a long run does not fill the disk.
constexpr uint64_t kCompactEveryBatches = 4096;

std::filesystem::path bench_dir() {
  const char* base = std::getenv("WAL_BENCH_DIR");
  std::filesystem::path p = base != nullptr ? base : "/tmp";
  p /= "ckv_wal_bench_" + std::to_string(::getpid());
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p;
}

// state.range(0): entries per batch; state.range(1): 1 = fdatasync each batch.
void BM_WalPersist(benchmark::State& state) {
  const auto per_batch = static_cast<size_t>(state.range(0));
  const std::filesystem::path dir = bench_dir();
  ckv::storage::WalOptions o;
  o.sync = state.range(1) != 0;
  auto w = ckv::storage::Wal::open(dir.string(), o);
  if (!w.is_ok()) {
    state.SkipWithError(w.status().to_string().c_str());
    return;
  }
  std::vector<Entry> batch(per_batch);
  for (Entry& e : batch) {
    e.term = 1;
    e.type = EntryType::kNormal;
    e.data.assign(kValueBytes, 'v');
  }
  ckv::raft::Index next = 1;
  uint64_t batches = 0;
  for (auto _ : state) {
    for (Entry& e : batch) e.index = next++;
    if (!w.value()->persist(batch, HardState{1, 1, next - 1}, false).is_ok()) {
      state.SkipWithError("persist failed");
      break;
    }
    if (++batches % kCompactEveryBatches == 0) {
      state.PauseTiming();
      (void)w.value()->compact(next - per_batch);
      state.ResumeTiming();
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(batches * per_batch));
  w.value().reset();
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_WalPersist)
    ->ArgNames({"entries", "sync"})
    ->Args({1, 0})
    ->Args({16, 0})
    ->Args({256, 0})
    ->Args({1, 1})
    ->Args({16, 1});

// A persist that only moves the commit index: one pwrite, no sync.
void BM_WalCommitOnly(benchmark::State& state) {
  const std::filesystem::path dir = bench_dir();
  auto w = ckv::storage::Wal::open(dir.string(), ckv::storage::WalOptions{});
  if (!w.is_ok()) {
    state.SkipWithError(w.status().to_string().c_str());
    return;
  }
  if (!w.value()->persist({Entry{1, 1, EntryType::kNormal, "x"}}, HardState{1, 1, 0}, false).is_ok()) {
    state.SkipWithError("persist failed");
    return;
  }
  uint64_t commit = 0;
  for (auto _ : state) {
    // ~66 bytes a batch: a 64 MiB segment holds about a million of them.
    if (!w.value()->persist({}, HardState{1, 1, ++commit}, false).is_ok()) {
      state.SkipWithError("persist failed");
      break;
    }
  }
  w.value().reset();
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_WalCommitOnly);

}  // namespace

BENCHMARK_MAIN();
