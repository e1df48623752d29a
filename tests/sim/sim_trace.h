// Event trace of one simulated run: echoed when replaying a seed, otherwise kept only as a short tail.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>

#include "raft/messages.h"

namespace ckv::sim {

// printf-style formatting into a std::string (messages up to 1 KiB), shared by the simulator's files.
std::string fmt(const char* f, ...) __attribute__((format(printf, 1, 2)));

class Trace {
 public:
  // echo: print every line as it happens. keep: remember the last `keep`
  // lines for the failure report. With neither, the trace is off and costs
  // one branch per call site (sweeps run thousands of seeds).
  Trace(bool echo, size_t keep) : echo_(echo), keep_(keep) {}

  bool enabled() const { return echo_ || keep_ > 0; }
  void log(uint64_t now_us, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
  const std::deque<std::string>& tail() const { return tail_; }

 private:
  bool echo_;
  size_t keep_;
  std::deque<std::string> tail_;
};

// One-line summary of a Raft message for the trace.
std::string describe(const raft::Message& m);

}  // namespace ckv::sim
