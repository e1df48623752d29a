// Histogram bucketing and snapshots (see metrics.h).
#include "metrics/metrics.h"

#include <algorithm>

#include "common/check.h"

namespace ckv::metrics {

Histogram::Histogram(std::span<const double> bounds)
    : bounds_(bounds), buckets_(new std::atomic<uint64_t>[bounds.size() + 1]) {
  KV_CHECK(std::is_sorted(bounds.begin(), bounds.end()) &&
               std::adjacent_find(bounds.begin(), bounds.end()) == bounds.end(),
           "histogram bounds must be strictly increasing");
  for (size_t i = 0; i <= bounds.size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

void Histogram::observe(double v) noexcept {
  // The first bound >= v (Prometheus' "le": less than or equal); NaN
  // compares false with every bound, so it is put in +Inf explicitly.
  const size_t i = v != v ? bounds_.size()
                          : static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

HistogramSnapshot Histogram::snapshot() const {
  HistogramSnapshot s;
  s.bounds = bounds_;
  s.cumulative.resize(bounds_.size() + 1);
  uint64_t total = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    total += buckets_[i].load(std::memory_order_relaxed);
    s.cumulative[i] = total;
  }
  s.count = total;
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

}  // namespace ckv::metrics
