// Google Benchmark: what one count costs on the hot path (src/metrics), alone and with threads counting at once.
#include <benchmark/benchmark.h>

#include <chrono>
#include <memory>

#include "metrics/instruments.h"
#include "metrics/metrics.h"
#include "metrics/peer_traffic.h"

namespace ckv::metrics {
namespace {

void BM_CounterInc(benchmark::State& state) {
  static Counter c;
  // NOLINTNEXTLINE(clang-analyzer-deadcode.DeadStores): Google Benchmark's loop variable is unused by design
  for (auto _ : state) c.inc();
  benchmark::DoNotOptimize(c.value());
}
BENCHMARK(BM_CounterInc)->Threads(1)->Threads(2);

void BM_HistogramObserve(benchmark::State& state) {
  static Histogram h(kLatencyBucketsSeconds);
  double v = 0.0001;
  // NOLINTNEXTLINE(clang-analyzer-deadcode.DeadStores): Google Benchmark's loop variable is unused by design
  for (auto _ : state) {
    h.observe(v);
    v = v < 5 ? v * 1.7 : 0.0001;  // walk the buckets
  }
}
BENCHMARK(BM_HistogramObserve)->Threads(1)->Threads(2);

// What server.cc does per HTTP answer: route lookup, clock, counter and histogram.
void BM_HttpRequestCounted(benchmark::State& state) {
  Instruments& m = instruments();
  // NOLINTNEXTLINE(clang-analyzer-deadcode.DeadStores): Google Benchmark's loop variable is unused by design
  for (auto _ : state) {
    const auto started = std::chrono::steady_clock::now();
    const size_t route = http_route_index("/set");
    m.http.record(route, 200, ScopedTimer::seconds_since(started));
  }
}
BENCHMARK(BM_HttpRequestCounted)->Threads(1)->Threads(2);

// What the transport does per batch written and per message delivered.
void BM_PeerTraffic(benchmark::State& state) {
  static auto* t = new PeerTraffic();
  uint64_t id = 0x1234567890abcdefULL + static_cast<uint64_t>(state.thread_index() % 2);
  // NOLINTNEXTLINE(clang-analyzer-deadcode.DeadStores): Google Benchmark's loop variable is unused by design
  for (auto _ : state) {
    t->sent(id, 1, 300);
    t->received(id, 40);
  }
}
BENCHMARK(BM_PeerTraffic)->Threads(1)->Threads(2);

// The WAL's fsync timer without the fsync: two clock reads and an observe.
void BM_ScopedTimer(benchmark::State& state) {
  Instruments& m = instruments();
  // NOLINTNEXTLINE(clang-analyzer-deadcode.DeadStores): Google Benchmark's loop variable is unused by design
  for (auto _ : state) {
    ScopedTimer t(m.wal_fsync_seconds);
  }
}
BENCHMARK(BM_ScopedTimer);

}  // namespace
}  // namespace ckv::metrics

BENCHMARK_MAIN();
