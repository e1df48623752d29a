// Request counts by route and result code, and a latency histogram per route, over label sets fixed at construction.
//
// Both label sets are bounded and known up front (the HTTP endpoints and
// statuses, etcd's gRPC methods and the 17 gRPC codes), so the table is
// plain arrays: counting a request is an index computation and two relaxed
// atomic adds (a counter and a histogram bucket), no lookup structure, no
// lock, no allocation. Routes nobody knows are counted under one route
// (the table's last, e.g. "other"); codes outside [0, code_count) under the
// last code slot, named "other" too.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "metrics/exposition.h"
#include "metrics/metrics.h"

namespace ckv::metrics {

class RequestTable {
 public:
  // routes: their label values (the last one takes unknown routes).
  // code_count: codes 0..code_count-1 are counted each on its own; code_name
  // gives their label values.
  RequestTable(std::vector<std::string> routes, size_t code_count, std::string (*code_name)(size_t code));
  RequestTable(const RequestTable&) = delete;
  RequestTable& operator=(const RequestTable&) = delete;

  size_t route_count() const { return routes_.size(); }
  void record(size_t route, size_t code, double seconds) noexcept;

  // Writes two families: <counter_name>{route_label, code_label} (only
  // pairs seen at least once) and <histogram_name>{route_label} (routes seen).
  void render(Exposition& out, std::string_view counter_name, std::string_view counter_help,
              std::string_view histogram_name, std::string_view histogram_help, std::string_view route_label,
              std::string_view code_label, Labels extra = {}) const;

 private:
  std::vector<std::string> routes_;
  size_t code_slots_;  // code_count + 1: the last one for codes out of range
  std::string (*code_name_)(size_t);
  std::unique_ptr<Counter[]> counts_;  // [route][code]
  std::deque<Histogram> latency_;      // one per route (a deque: histograms cannot move)
};

}  // namespace ckv::metrics
