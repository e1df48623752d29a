// Prometheus text exposition format 0.0.4: a writer for families and samples, and a registry of instruments and collectors.
//
// The format (prometheus.io/docs/instrumenting/exposition_formats): per
// family one "# HELP name text" and one "# TYPE name type" line, then its
// samples "name{label="value",...} value", all samples of a family
// together. HELP text escapes backslash and newline; label values escape
// backslash, double quote and newline. Histograms are name_bucket{le=...}
// (cumulative, ending with le="+Inf"), name_sum and name_count.
//
// Names are ours (constants in the code), so a bad metric or label name, or
// a family written twice, is a programmer error (KV_CHECK) that any scrape
// in a test finds. Label VALUES may come from anywhere and are escaped.
//
// Thread safety: an Exposition belongs to one scrape. Registry::add is for
// start-up; render may run on any thread, concurrently with the instruments.
#pragma once

#include <functional>
#include <initializer_list>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "metrics/metrics.h"

namespace ckv::metrics {

enum class Type : uint8_t { kCounter, kGauge, kHistogram };

struct Label {
  std::string_view name;
  std::string_view value;
};
using Labels = std::initializer_list<Label>;

std::string escape_label_value(std::string_view v);
std::string escape_help(std::string_view v);
// Shortest text that reads back as v; +Inf, -Inf and NaN as Prometheus spells them.
std::string format_value(double v);
bool valid_metric_name(std::string_view name);
bool valid_label_name(std::string_view name);

// The content type of the text format, for the HTTP answer.
inline constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";

class Exposition {
 public:
  // Starts a family: its HELP and TYPE lines. Samples of it follow.
  void family(std::string_view name, std::string_view help, Type type);
  // One sample of the current family (name is the family's, or for a
  // histogram written by hand, the family plus a suffix).
  void sample(std::string_view name, std::span<const Label> labels, double value);
  void sample(std::string_view name, Labels labels, double value) {
    sample(name, std::span<const Label>(labels.begin(), labels.size()), value);
  }
  void sample(std::string_view name, double value) { sample(name, std::span<const Label>(), value); }
  // The _bucket, _sum and _count samples of one histogram child.
  void histogram(std::string_view name, std::span<const Label> labels, const HistogramSnapshot& h);
  void histogram(std::string_view name, Labels labels, const HistogramSnapshot& h) {
    histogram(name, std::span<const Label>(labels.begin(), labels.size()), h);
  }
  // A family with one unlabelled sample.
  void gauge(std::string_view name, std::string_view help, double value);
  void counter(std::string_view name, std::string_view help, double value);

  const std::string& text() const { return out_; }
  std::string take() { return std::move(out_); }

 private:
  void write_labels(std::span<const Label> labels, const Label* extra);
  std::string out_;
  std::string current_;  // the family being written
  std::set<std::string, std::less<>> seen_;
};

// Instruments and collectors, rendered in the order they were added.
class Registry {
 public:
  // A collector writes whole families (Exposition::family and its samples)
  // from state read at scrape time.
  using Collector = std::function<void(Exposition&)>;

  // The instrument must outlive the registry (they are process-wide, instruments.h).
  void add(std::string name, std::string help, const Counter& c);
  void add(std::string name, std::string help, const Gauge& g);
  void add(std::string name, std::string help, const Histogram& h);
  void add(Collector collector);

  void render(Exposition& out) const;

 private:
  std::vector<Collector> collectors_;
  mutable std::mutex mu_;  // add() may race a scrape during start-up
};

}  // namespace ckv::metrics
