// Request table indexing and rendering (see request_table.h).
#include "metrics/request_table.h"

#include "common/check.h"

namespace ckv::metrics {

RequestTable::RequestTable(std::vector<std::string> routes, size_t code_count, std::string (*code_name)(size_t))
    : routes_(std::move(routes)),
      code_slots_(code_count + 1),
      code_name_(code_name),
      counts_(new Counter[routes_.size() * code_slots_]) {
  KV_CHECK(!routes_.empty(), "a request table needs at least the route for unknown routes");
  for (size_t i = 0; i < routes_.size(); ++i) latency_.emplace_back(kLatencyBucketsSeconds);
}

void RequestTable::record(size_t route, size_t code, double seconds) noexcept {
  if (route >= routes_.size()) route = routes_.size() - 1;
  if (code >= code_slots_) code = code_slots_ - 1;
  counts_[route * code_slots_ + code].inc();
  latency_[route].observe(seconds);
}

void RequestTable::render(Exposition& out, std::string_view counter_name, std::string_view counter_help,
                          std::string_view histogram_name, std::string_view histogram_help,
                          std::string_view route_label, std::string_view code_label, Labels extra) const {
  out.family(counter_name, counter_help, Type::kCounter);
  std::vector<Label> labels(extra.begin(), extra.end());
  const size_t fixed = labels.size();
  for (size_t r = 0; r < routes_.size(); ++r) {
    for (size_t c = 0; c < code_slots_; ++c) {
      const uint64_t n = counts_[r * code_slots_ + c].value();
      if (n == 0) continue;
      const std::string code = c + 1 == code_slots_ ? std::string("other") : code_name_(c);
      labels.resize(fixed);
      labels.push_back({route_label, routes_[r]});
      labels.push_back({code_label, code});
      out.sample(counter_name, labels, static_cast<double>(n));
    }
  }
  out.family(histogram_name, histogram_help, Type::kHistogram);
  for (size_t r = 0; r < routes_.size(); ++r) {
    HistogramSnapshot h = latency_[r].snapshot();
    if (h.count == 0) continue;
    labels.resize(fixed);
    labels.push_back({route_label, routes_[r]});
    out.histogram(histogram_name, labels, h);
  }
}

}  // namespace ckv::metrics
