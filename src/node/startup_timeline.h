// Where a node's start-up time goes: one log line per phase, steady-clock durations, and a summary once serving.
//
// Issue 10 ("restart with 1M keys to serving in < 2 s") needs to know which
// of the start-up phases costs what: the data dir's files, the WAL's replay,
// the snapshot's read, decode and restore, the committed entries applied
// again, the first election and the first linearizable read. Each mark()
// ends the phase that began at the previous mark (or at process start, for
// the first) and logs
//
//     startup: <phase> <ms> ms (<ms since process start> ms since start)
//
// and finish() logs every phase of this start on one line, once. Marks after
// finish() are ignored: the timeline describes one start only.
//
// "Process start" is when this file's static initializer ran, before main():
// close enough to exec for what we measure (it excludes only the dynamic
// loader), and needing no plumbing from main().
//
// Thread safety: none; the node calls it from open() and then from its Raft
// thread only (start() hands it over before the thread exists).
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <string>

namespace ckv::node {

class StartupTimeline {
 public:
  using Clock = std::chrono::steady_clock;

  StartupTimeline();

  // Ends the phase running since the previous mark and logs its duration.
  // `phase` must outlive this object (a string literal).
  void mark(const char* phase);
  // Logs the summary line (once) ending with `what`, e.g. "serving".
  void finish(const char* what);
  bool finished() const { return finished_; }
  // Milliseconds since process start (for tests and the summary).
  double ms_since_start() const;

  // Phases beyond this many are logged but left out of the summary.
  static constexpr size_t kMaxPhases = 24;

 private:
  struct Phase {
    const char* name = "";
    double ms = 0;
  };
  Clock::time_point last_;
  std::array<Phase, kMaxPhases> phases_{};
  size_t count_ = 0;
  bool finished_ = false;
};

}  // namespace ckv::node
