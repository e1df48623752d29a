// Metric instruments: counters, gauges and fixed-bucket histograms, cheap enough for the hot path.
//
// Cost on the hot path: one or two relaxed atomic adds; no lock, no
// allocation, no formatting. Relaxed order is enough because a scrape only
// needs each value to be one that was true recently, not a consistent cut
// across instruments (Prometheus' own clients make the same trade).
//
// Thread safety: every member is safe from any thread. Instruments are not
// copyable or movable (their addresses are registered, exposition.h).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace ckv::metrics {

// A monotonically increasing count (Prometheus "counter").
class Counter {
 public:
  Counter() = default;
  Counter(const Counter&) = delete;
  Counter& operator=(const Counter&) = delete;
  void inc(uint64_t n = 1) noexcept { v_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const noexcept { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

// A value that goes up and down (Prometheus "gauge"). Gauges that an owner
// can answer cheaply (indexes, term, key counts) are not pushed into one of
// these: they are read from the owner at scrape time (exposition.h, Collector).
class Gauge {
 public:
  Gauge() = default;
  Gauge(const Gauge&) = delete;
  Gauge& operator=(const Gauge&) = delete;
  void set(int64_t v) noexcept { v_.store(v, std::memory_order_relaxed); }
  void add(int64_t n) noexcept { v_.fetch_add(n, std::memory_order_relaxed); }
  int64_t value() const noexcept { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> v_{0};
};

// Bucket upper bounds, in seconds, for request latencies: 100 µs to 10 s.
inline constexpr double kLatencyBucketsSeconds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                    0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5,
                                                    5,      10};
// etcd's WAL fsync and peer round-trip buckets (exponential from 1 ms and
// 0.1 ms), so that dashboards' histogram_quantile compares like with like.
inline constexpr double kDiskBucketsSeconds[] = {0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064,
                                                 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192};
inline constexpr double kRoundTripBucketsSeconds[] = {0.0001, 0.0002, 0.0004, 0.0008, 0.0016, 0.0032, 0.0064, 0.0128,
                                                      0.0256, 0.0512, 0.1024, 0.2048, 0.4096, 0.8192, 1.6384};
// Snapshot save times: 10 ms to about 5 minutes.
inline constexpr double kSnapshotBucketsSeconds[] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};

// What a histogram holds at one moment: per bucket the count of
// observations <= bounds[i] (cumulative, as the text format wants), the
// last element counting all (+Inf). count is that last element, so
// _count always equals the +Inf bucket even while observations race a scrape.
struct HistogramSnapshot {
  std::span<const double> bounds;
  std::vector<uint64_t> cumulative;  // bounds.size() + 1 elements
  double sum = 0;
  uint64_t count = 0;
};

// Fixed buckets chosen at construction (bounds must be increasing and
// outlive the histogram: the constants above). observe() is a bucket search
// over at most a few dozen bounds and two relaxed atomic adds.
class Histogram {
 public:
  explicit Histogram(std::span<const double> bounds);
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  void observe(double v) noexcept;
  HistogramSnapshot snapshot() const;

 private:
  std::span<const double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // per bucket, not cumulative; last is +Inf
  std::atomic<double> sum_{0};
};

// Seconds since start on the steady clock; observes them into h when destroyed.
class ScopedTimer {
 public:
  explicit ScopedTimer(Histogram& h) : h_(h), start_(std::chrono::steady_clock::now()) {}
  ~ScopedTimer() { h_.observe(seconds_since(start_)); }
  ScopedTimer(const ScopedTimer&) = delete;
  ScopedTimer& operator=(const ScopedTimer&) = delete;

  static double seconds_since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  }

 private:
  Histogram& h_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace ckv::metrics
