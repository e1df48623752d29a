// The text exposition writer and the registry (see exposition.h).
#include "metrics/exposition.h"

#include <charconv>
#include <cmath>

#include "common/check.h"

namespace ckv::metrics {

namespace {

bool name_char(char c, bool first, bool colon_ok) {
  const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon_ok && c == ':');
  return alpha || (!first && c >= '0' && c <= '9');
}

bool valid_name(std::string_view name, bool colon_ok) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    if (!name_char(name[i], i == 0, colon_ok)) return false;
  }
  return true;
}

const char* type_name(Type t) {
  switch (t) {
    case Type::kCounter:
      return "counter";
    case Type::kGauge:
      return "gauge";
    case Type::kHistogram:
      return "histogram";
  }
  return "untyped";
}

}  // namespace

bool valid_metric_name(std::string_view name) { return valid_name(name, true); }
// Names starting with "__" are reserved for Prometheus itself.
bool valid_label_name(std::string_view name) { return valid_name(name, false) && !name.starts_with("__"); }

namespace {

// Backslash and newline always; the double quote only inside label values.
std::string escape(std::string_view v, bool quote) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quote) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

std::string escape_label_value(std::string_view v) { return escape(v, true); }
std::string escape_help(std::string_view v) { return escape(v, false); }

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof(buf), v);  // shortest round-trip form
  return std::string(buf, r.ptr);
}

void Exposition::family(std::string_view name, std::string_view help, Type type) {
  KV_CHECK(valid_metric_name(name), "bad metric name '%.*s'", static_cast<int>(name.size()), name.data());
  KV_CHECK(seen_.insert(std::string(name)).second, "metric family '%.*s' written twice",
           static_cast<int>(name.size()), name.data());
  current_ = std::string(name);
  out_ += "# HELP ";
  out_ += name;
  out_ += ' ';
  out_ += escape_help(help);
  out_ += "\n# TYPE ";
  out_ += name;
  out_ += ' ';
  out_ += type_name(type);
  out_ += '\n';
}

void Exposition::write_labels(std::span<const Label> labels, const Label* extra) {
  if (labels.empty() && extra == nullptr) return;
  out_ += '{';
  bool first = true;
  auto one = [&](const Label& l) {
    KV_CHECK(valid_label_name(l.name) && l.name != "le", "bad label name '%.*s'", static_cast<int>(l.name.size()),
             l.name.data());
    if (!first) out_ += ',';
    first = false;
    out_ += l.name;
    out_ += "=\"";
    out_ += escape_label_value(l.value);
    out_ += '"';
  };
  for (const Label& l : labels) one(l);
  if (extra != nullptr) {  // "le": reserved for the bucket bound, written by us only
    if (!first) out_ += ',';
    out_ += extra->name;
    out_ += "=\"";
    out_ += extra->value;
    out_ += '"';
  }
  out_ += '}';
}

void Exposition::sample(std::string_view name, std::span<const Label> labels, double value) {
  KV_CHECK(!current_.empty() && name.starts_with(current_), "sample '%.*s' outside its family",
           static_cast<int>(name.size()), name.data());
  out_ += name;
  write_labels(labels, nullptr);
  out_ += ' ';
  out_ += format_value(value);
  out_ += '\n';
}

void Exposition::histogram(std::string_view name, std::span<const Label> labels, const HistogramSnapshot& h) {
  KV_CHECK(current_ == name, "histogram '%.*s' outside its family", static_cast<int>(name.size()), name.data());
  const std::string bucket = std::string(name) + "_bucket";
  for (size_t i = 0; i < h.cumulative.size(); ++i) {
    const std::string le = i < h.bounds.size() ? format_value(h.bounds[i]) : "+Inf";
    const Label extra{"le", le};
    out_ += bucket;
    write_labels(labels, &extra);
    out_ += ' ';
    out_ += std::to_string(h.cumulative[i]);
    out_ += '\n';
  }
  sample(std::string(name) + "_sum", labels, h.sum);
  sample(std::string(name) + "_count", labels, static_cast<double>(h.count));
}

void Exposition::gauge(std::string_view name, std::string_view help, double value) {
  family(name, help, Type::kGauge);
  sample(name, value);
}

void Exposition::counter(std::string_view name, std::string_view help, double value) {
  family(name, help, Type::kCounter);
  sample(name, value);
}

void Registry::add(std::string name, std::string help, const Counter& c) {
  add([name = std::move(name), help = std::move(help), &c](Exposition& out) {
    out.counter(name, help, static_cast<double>(c.value()));
  });
}

void Registry::add(std::string name, std::string help, const Gauge& g) {
  add([name = std::move(name), help = std::move(help), &g](Exposition& out) {
    out.gauge(name, help, static_cast<double>(g.value()));
  });
}

void Registry::add(std::string name, std::string help, const Histogram& h) {
  add([name = std::move(name), help = std::move(help), &h](Exposition& out) {
    out.family(name, help, Type::kHistogram);
    out.histogram(name, {}, h.snapshot());
  });
}

void Registry::add(Collector collector) {
  std::lock_guard lock(mu_);
  collectors_.push_back(std::move(collector));
}

void Registry::render(Exposition& out) const {
  std::lock_guard lock(mu_);
  for (const Collector& c : collectors_) c(out);
}

}  // namespace ckv::metrics
