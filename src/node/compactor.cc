// Auto-compaction's flag parsing and schedule (see compactor.h).
#include "node/compactor.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>

namespace ckv::node {

namespace {

Status retention_error(const std::string& why) {
  return Status(StatusCode::kInvalid, "error parsing CompactionRetention: " + why);
}

// The unit at s[i...] and its length in ms; 0 when none matches.
double unit_ms(const std::string& s, size_t i, size_t* len) {
  struct Unit {
    const char* name;
    double ms;
  };
  // Longest names first, so "ms" is not read as "m".
  static const Unit kUnits[] = {{"ns", 1e-6},        {"us", 1e-3}, {"\xC2\xB5s", 1e-3},
                                {"\xCE\xBCs", 1e-3}, {"ms", 1.0},  {"s", 1e3},
                                {"m", 60e3},         {"h", 3600e3}};
  for (const Unit& u : kUnits) {
    const std::string name(u.name);
    if (s.compare(i, name.size(), name) == 0) {
      *len = name.size();
      return u.ms;
    }
  }
  *len = 0;
  return 0;
}

}  // namespace

Result<int64_t> parse_go_duration_ms(const std::string& s) {
  const std::string quoted = "\"" + s + "\"";
  size_t i = 0;
  bool negative = false;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) negative = s[i++] == '-';
  if (s == "0" || (i < s.size() && s.substr(i) == "0")) return int64_t{0};
  if (i == s.size()) return retention_error("time: invalid duration " + quoted);
  double total = 0;
  while (i < s.size()) {
    const size_t start = i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
    const size_t int_end = i;
    if (i < s.size() && s[i] == '.') {
      ++i;
      while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
    }
    // A number needs a digit before or after the point.
    if (int_end == start && i <= int_end + 1)
      return retention_error("time: invalid duration " + quoted);
    const double value = std::stod(s.substr(start, i - start));
    size_t len = 0;
    const double ms = unit_ms(s, i, &len);
    if (len == 0) {
      return retention_error(i == s.size() ? "time: missing unit in duration " + quoted
                                           : "time: unknown unit in duration " + quoted);
    }
    i += len;
    total += value * ms;
    if (total > static_cast<double>(std::numeric_limits<int64_t>::max() / 2)) {
      return retention_error("time: invalid duration " + quoted);
    }
  }
  const auto ms = static_cast<int64_t>(std::floor(total));
  return negative ? -ms : ms;
}

Result<AutoCompactionOptions> parse_auto_compaction(const std::string& mode,
                                                    const std::string& retention) {
  AutoCompactionOptions o;
  if (mode != "periodic" && mode != "revision") {
    return Status(StatusCode::kInvalid, "unknown auto-compaction-mode \"" + mode + "\"");
  }
  const std::string r = retention.empty() ? "0" : retention;
  // A bare non-negative integer: hours (periodic) or revisions (revision), as etcd's strconv.Atoi branch.
  const bool integer = !r.empty() && r.size() <= 18 && std::all_of(r.begin(), r.end(), [](char c) {
    return std::isdigit(static_cast<unsigned char>(c));
  });
  if (mode == "revision") {
    if (!integer) {
      return Status(StatusCode::kInvalid,
                    "-auto-compaction-retention in revision mode must be a revision count, got \"" +
                        r + "\"");
    }
    o.retention_revisions = std::stoll(r);
    o.mode = o.retention_revisions > 0 ? AutoCompactionOptions::Mode::kRevision
                                       : AutoCompactionOptions::Mode::kOff;
    return o;
  }
  if (integer) {
    const int64_t hours = std::stoll(r);
    if (hours > std::numeric_limits<int64_t>::max() / (int64_t{3600} * 1000))
      return retention_error("too long");
    o.retention_ms = hours * 3600 * 1000;
  } else {
    auto ms = parse_go_duration_ms(r);
    if (!ms.is_ok()) return ms.status();
    if (ms.value() < 0) return retention_error("must not be negative, got \"" + r + "\"");
    o.retention_ms = ms.value();
  }
  // A retention under a millisecond rounds to 0 here: off, as 0 is.
  o.mode = o.retention_ms > 0 ? AutoCompactionOptions::Mode::kPeriodic
                              : AutoCompactionOptions::Mode::kOff;
  return o;
}

std::optional<int64_t> Compactor::tick(int64_t now_ms, int64_t revision, int64_t compact_revision,
                                       bool leader) {
  switch (o_.mode) {
    case AutoCompactionOptions::Mode::kOff:
      return std::nullopt;
    case AutoCompactionOptions::Mode::kPeriodic:
      return tick_periodic(now_ms, revision, compact_revision, leader);
    case AutoCompactionOptions::Mode::kRevision:
      return tick_revision(now_ms, revision, compact_revision, leader);
  }
  return std::nullopt;
}

std::optional<int64_t> Compactor::tick_periodic(int64_t now_ms, int64_t revision,
                                                int64_t compact_revision, bool leader) {
  const int64_t compact_interval = std::min(o_.retention_ms, kMaxCompactIntervalMs);
  const int64_t sample_interval = std::max<int64_t>(1, compact_interval / kSamplesPerPeriod);
  const size_t keep = static_cast<size_t>(o_.retention_ms / sample_interval + 1);
  if (!started_) {
    started_ = true;
    last_success_ms_ = now_ms;
    samples_.push_back(revision);
    next_check_ms_ = now_ms + sample_interval;
    return std::nullopt;
  }
  if (now_ms < next_check_ms_) return std::nullopt;
  next_check_ms_ = now_ms + sample_interval;
  std::optional<int64_t> out;
  // The first compaction waits one whole retention, later ones the compaction interval.
  const int64_t wait = first_compaction_done_ ? compact_interval : o_.retention_ms;
  if (leader && now_ms - last_success_ms_ >= wait) {
    first_compaction_done_ = true;
    last_success_ms_ = now_ms;
    // samples_.front() is the revision of about one retention ago.
    if (samples_.front() > compact_revision) out = samples_.front();
  }
  samples_.push_back(revision);
  while (samples_.size() > keep) samples_.pop_front();
  return out;
}

std::optional<int64_t> Compactor::tick_revision(int64_t now_ms, int64_t revision,
                                                int64_t compact_revision, bool leader) {
  if (!started_) {
    started_ = true;
    next_check_ms_ = now_ms + kRevisionCheckIntervalMs;
    return std::nullopt;
  }
  if (now_ms < next_check_ms_) return std::nullopt;
  next_check_ms_ = now_ms + kRevisionCheckIntervalMs;
  const int64_t target = revision - o_.retention_revisions;
  if (!leader || target <= 0 || target == last_revision_ || target <= compact_revision)
    return std::nullopt;
  last_revision_ = target;
  return target;
}

}  // namespace ckv::node
