// The process's own resource use from /proc (CPU, memory, file descriptors), under Prometheus' standard process_* names.
//
// Read at scrape time: a few small /proc reads, no thread. Any file that
// cannot be read or parsed leaves its metrics out of the answer (logged
// by nobody: a scrape must not fail because /proc is odd, e.g. in a sandbox).
#pragma once

#include <optional>
#include <string_view>

#include "metrics/exposition.h"

namespace ckv::metrics {

struct ProcStat {
  double cpu_seconds = 0;       // utime + stime
  double start_time_ticks = 0;  // since boot, in clock ticks
  double virtual_bytes = 0;
  double resident_bytes = 0;
};

// Parses the text of /proc/<pid>/stat (proc(5)). The command name (field 2)
// is in parentheses and may itself hold spaces and ')', so fields are
// counted from the LAST ')'. ticks_per_second: sysconf(_SC_CLK_TCK).
std::optional<ProcStat> parse_proc_stat(std::string_view text, double ticks_per_second, double page_bytes);
// "btime N" from /proc/stat: boot time, seconds since the epoch.
std::optional<double> parse_boot_time(std::string_view proc_stat_text);

// process_cpu_seconds_total, process_resident_memory_bytes,
// process_virtual_memory_bytes, process_start_time_seconds,
// process_open_fds, process_max_fds.
void render_process_metrics(Exposition& out);

}  // namespace ckv::metrics
