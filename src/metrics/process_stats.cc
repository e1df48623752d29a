// Reading and parsing /proc for the process_* metrics (see process_stats.h).
#include "metrics/process_stats.h"

#include <charconv>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <sys/resource.h>
#include <unistd.h>

namespace ckv::metrics {

namespace {

std::optional<std::string> read_small_file(const char* path) {
  std::ifstream f(path);
  if (!f) return std::nullopt;
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::optional<double> number(std::string_view s) {
  double v = 0;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

}  // namespace

std::optional<ProcStat> parse_proc_stat(std::string_view text, double ticks_per_second, double page_bytes) {
  const size_t close = text.rfind(')');
  if (close == std::string_view::npos || ticks_per_second <= 0) return std::nullopt;
  // Fields after the name, numbered from 3 (state) as in proc(5).
  std::vector<std::string_view> fields;
  std::string_view rest = text.substr(close + 1);
  while (!rest.empty()) {
    const size_t start = rest.find_first_not_of(" \n");
    if (start == std::string_view::npos) break;
    rest.remove_prefix(start);
    const size_t end = std::min(rest.find_first_of(" \n"), rest.size());
    fields.push_back(rest.substr(0, end));
    rest.remove_prefix(end);
  }
  auto field = [&](size_t n) -> std::optional<double> {  // proc(5) numbering
    if (n < 3 || n - 3 >= fields.size()) return std::nullopt;
    return number(fields[n - 3]);
  };
  const auto utime = field(14), stime = field(15), start = field(22), vsize = field(23), rss = field(24);
  if (!utime || !stime || !start || !vsize || !rss) return std::nullopt;
  ProcStat s;
  s.cpu_seconds = (*utime + *stime) / ticks_per_second;
  s.start_time_ticks = *start;
  s.virtual_bytes = *vsize;
  s.resident_bytes = *rss * page_bytes;
  return s;
}

std::optional<double> parse_boot_time(std::string_view text) {
  size_t at = 0;
  while (at < text.size()) {
    const size_t end = std::min(text.find('\n', at), text.size());
    std::string_view line = text.substr(at, end - at);
    if (line.starts_with("btime ")) return number(line.substr(6));
    at = end + 1;
  }
  return std::nullopt;
}

void render_process_metrics(Exposition& out) {
  const auto ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  const auto page = static_cast<double>(::sysconf(_SC_PAGESIZE));
  if (auto text = read_small_file("/proc/self/stat")) {
    if (auto st = parse_proc_stat(*text, ticks, page)) {
      out.counter("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", st->cpu_seconds);
      out.gauge("process_resident_memory_bytes", "Resident memory size in bytes.", st->resident_bytes);
      out.gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.", st->virtual_bytes);
      if (auto all = read_small_file("/proc/stat")) {
        if (auto boot = parse_boot_time(*all)) {
          out.gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
                    *boot + st->start_time_ticks / ticks);
        }
      }
    }
  }
  std::error_code ec;
  size_t fds = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++fds;
  }
  if (!ec) out.gauge("process_open_fds", "Number of open file descriptors.", static_cast<double>(fds));
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) == 0) {
    out.gauge("process_max_fds", "Maximum number of open file descriptors.", static_cast<double>(lim.rlim_cur));
  }
}

}  // namespace ckv::metrics
