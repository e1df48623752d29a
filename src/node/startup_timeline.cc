// Start-up phase timings (see startup_timeline.h).
#include "node/startup_timeline.h"

#include <spdlog/spdlog.h>

namespace ckv::node {

namespace {

// Taken during static initialization, before main() (startup_timeline.h).
const StartupTimeline::Clock::time_point kProcessStart = StartupTimeline::Clock::now();

double ms_between(StartupTimeline::Clock::time_point from, StartupTimeline::Clock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

}  // namespace

StartupTimeline::StartupTimeline() : last_(kProcessStart) {}

double StartupTimeline::ms_since_start() const { return ms_between(kProcessStart, Clock::now()); }

void StartupTimeline::mark(const char* phase) {
  if (finished_) return;
  const Clock::time_point now = Clock::now();
  const double ms = ms_between(last_, now);
  last_ = now;
  if (count_ < kMaxPhases) phases_[count_++] = Phase{phase, ms};
  spdlog::info("startup: {} {:.1f} ms ({:.1f} ms since start)", phase, ms, ms_between(kProcessStart, now));
}

void StartupTimeline::finish(const char* what) {
  if (finished_) return;
  finished_ = true;
  std::string line;
  for (size_t i = 0; i < count_; ++i) {
    if (!line.empty()) line += ", ";
    line += fmt::format("{} {:.1f}", phases_[i].name, phases_[i].ms);
  }
  spdlog::info("startup: {} {:.1f} ms after process start; phases (ms): {}", what,
               ms_between(kProcessStart, Clock::now()), line);
}

}  // namespace ckv::node
