// raft_sim: replays one seed with a trace, sweeps many seeds, or replays the regression list.
//
//   raft_sim --seed S [--nodes 3|5] [--steps K] [--swarm] [--quiet] [--tail N]
//   raft_sim --seeds N [--start S | --random-start] [--nodes 3|5] [--steps K] [--swarm] [--max-failures F]
//   raft_sim --regressions FILE
//   raft_sim --determinism N [--start S] [--swarm]     (each seed twice: same run?)
// Exit status: 0 when every seed passed, 1 when one failed, 2 on bad usage.
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>
#include <unistd.h>

#include "byzantine.h"
#include "sim_cluster.h"

namespace {

using ckv::sim::SimConfig;
using ckv::sim::SimResult;
using ull = unsigned long long;

struct Args {
  bool have_seed = false;
  uint64_t seed = 1;
  uint64_t seeds = 0;
  uint64_t start = 1;
  int nodes = 0;  // 0: alternate 3 and 5 by seed
  int steps = SimConfig{}.steps;
  bool quiet = false;
  size_t tail = 40;
  uint64_t max_failures = 10;
  std::string regressions;
  uint64_t determinism = 0;
  bool persist_checks = true;
  bool swarm = false;
  bool leases = false;
  bool byzantine = false;
  uint32_t forgery_mask = ~0u;
  bool random_start = false;
};

std::string g_argv0 = "raft_sim";
// Preformatted before each seed so that the signal handler only has to write(2) it.
char g_crash_note[512];

void on_fatal_signal(int sig) {
  ssize_t ignored = write(2, g_crash_note, std::strlen(g_crash_note));
  (void)ignored;
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

int nodes_for(const Args& a, uint64_t seed) {
  return a.nodes != 0 ? a.nodes : (seed % 2 == 0 ? 5 : 3);
}

std::string replay_command(const SimConfig& c) {
  std::string cmd =
      g_argv0 + " --seed " + std::to_string(c.seed) + " --nodes " + std::to_string(c.nodes);
  if (c.steps != SimConfig{}.steps) cmd += " --steps " + std::to_string(c.steps);
  if (!c.persist_checks) cmd += " --no-persist-checks";
  if (c.swarm) cmd += " --swarm";
  if (c.leases) cmd += " --leases";
  if (c.byzantine) cmd += " --byzantine";
  for (int k = 0; k < ckv::sim::kForgeryKinds; ++k) {
    if ((c.forgery_mask & (1u << k)) == 0)
      cmd += std::string(" --skip-forgery ") + to_string(static_cast<ckv::sim::Forgery>(k));
  }
  return cmd;
}

SimResult run_one(const SimConfig& c) {
  std::snprintf(
      g_crash_note, sizeof g_crash_note,
      "\nraft_sim: the process died while running seed %llu (a check inside the core aborted?)\n"
      "  replay: %s\n",
      ull(c.seed), replay_command(c).c_str());
  return ckv::sim::run_simulation(c);
}

void report_failure(const SimConfig& c, const SimResult& r, bool print_tail) {
  std::printf("FAIL seed=%llu nodes=%d steps=%d at %llu ms simulated: %s\n", ull(c.seed), c.nodes,
              c.steps, ull(r.sim_ms), r.failure.c_str());
  if (c.swarm || c.byzantine) std::printf("  %s\n", r.profile.c_str());
  if (print_tail && !r.trace_tail.empty()) {
    std::printf("  last %zu trace lines:\n", r.trace_tail.size());
    for (const std::string& line : r.trace_tail) std::printf("    %s\n", line.c_str());
  }
  std::printf("  replay: %s\n", replay_command(c).c_str());
  std::fflush(stdout);
}

struct Totals {
  uint64_t runs = 0, failed = 0, events = 0, acked = 0, reads = 0, leaders = 0, crashes = 0,
           snapshots = 0, installs = 0, conf = 0, transfers = 0, sim_ms = 0, forged = 0,
           lease_acks = 0, lease_revokes = 0, torn_tails = 0, files_torn = 0, power_cuts = 0;
  void add(const SimResult& r) {
    ++runs;
    if (!r.ok) ++failed;
    events += r.events;
    acked += r.writes_acked;
    reads += r.reads_served;
    leaders += r.leaders;
    crashes += r.crashes;
    snapshots += r.snapshots;
    installs += r.installs;
    conf += r.conf_changes;
    transfers += r.transfers;
    forged += r.forged;
    lease_acks += r.lease_acks;
    lease_revokes += r.lease_revokes;
    sim_ms += r.sim_ms;
    torn_tails += r.torn_tails;
    files_torn += r.files_torn;
    power_cuts += r.power_cuts;
  }
  void print(const char* what, double wall_s) const {
    std::printf(
        "raft_sim: %s: %llu run(s), %llu passed, %llu failed in %.1f s wall (%.0f s simulated; "
        "%llu events, "
        "%llu writes acked, %llu reads checked, %llu leaders, %llu crashes, %llu snapshots taken, "
        "%llu snapshots "
        "sent, %llu membership changes, %llu transfers; WAL: %llu power cuts in a storage call, "
        "%llu files torn by crashes, %llu torn tails cut at restart%s)\n",
        what, ull(runs), ull(runs - failed), ull(failed), wall_s,
        static_cast<double>(sim_ms) / 1000.0, ull(events), ull(acked), ull(reads), ull(leaders),
        ull(crashes), ull(snapshots), ull(installs), ull(conf), ull(transfers), ull(power_cuts),
        ull(files_torn), ull(torn_tails),
        (std::string(forged ? ", " + std::to_string(forged) + " forged messages" : "") +
         (lease_acks + lease_revokes ? ", " + std::to_string(lease_acks) + " keepalives acknowledged, " +
                                           std::to_string(lease_revokes) + " leases expired"
                                     : ""))
            .c_str());
  }
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Runs the given configurations; on a failure re-runs that seed with a trace tail (runs are deterministic).
int sweep(const std::vector<SimConfig>& configs, const Args& a, const char* what) {
  auto t0 = std::chrono::steady_clock::now();
  Totals totals;
  for (const SimConfig& c : configs) {
    SimResult r = run_one(c);
    totals.add(r);
    if (!r.ok) {
      SimConfig again = c;
      again.tail = a.tail;
      report_failure(c, run_one(again), true);
      if (totals.failed >= a.max_failures) {
        std::printf("raft_sim: stopping after %llu failures\n", ull(totals.failed));
        break;
      }
    }
  }
  totals.print(what, seconds_since(t0));
  return totals.failed == 0 ? 0 : 1;
}

bool parse_u64(const char* s, uint64_t& out) {
  char* end = nullptr;
  out = std::strtoull(s, &end, 10);
  return end != s && *end == '\0';
}

int usage() {
  std::fprintf(
      stderr,
      "usage: raft_sim --seed S [--nodes 3|5] [--steps K] [--swarm] [--quiet] [--tail N]\n"
      "       raft_sim --seeds N [--start S | --random-start] [--nodes 3|5] [--steps K] [--swarm]\n"
      "                [--max-failures F]\n"
      "       raft_sim --regressions FILE\n"
      "       raft_sim --determinism N [--start S] [--swarm]\n"
      "--no-persist-checks: only the cluster-wide invariants (for mutation experiments)\n"
      "--swarm: each seed draws its own fault profile (printed with a failure)\n"
      "--leases: clients grant leases and keep some alive; checks no lease expires while kept alive\n"
      "--byzantine: a Byzantine-lite peer forges malformed, out-of-range messages\n"
      "--skip-forgery KIND: not this kind (huge-term, outsider, append-not-contiguous,\n"
      "    append-beyond-log, entry-term-above-message, ack-never-sent, snapshot-garbage,\n"
      "    commit-beyond-log); repeatable\n"
      "--random-start: the sweep starts at a random seed, printed first (CI explores new seeds)\n"
      "Without --nodes, even seeds run 5 nodes and odd seeds 3.\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  g_argv0 = argv[0];
  // The WAL logs every torn tail it cuts and every stray file it removes;
  // in the simulator those are routine (the trace says what happened).
  spdlog::set_level(spdlog::level::err);
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    auto value = [&](uint64_t& out) {
      if (i + 1 >= argc || !parse_u64(argv[i + 1], out)) return false;
      ++i;
      return true;
    };
    uint64_t v = 0;
    if (flag == "--seed" && value(a.seed)) {
      a.have_seed = true;
    } else if (flag == "--seeds" && value(a.seeds)) {
    } else if (flag == "--start" && value(a.start)) {
    } else if (flag == "--nodes" && value(v) && (v == 3 || v == 5)) {
      a.nodes = static_cast<int>(v);
    } else if (flag == "--steps" && value(v) && v > 0) {
      a.steps = static_cast<int>(v);
    } else if (flag == "--tail" && value(v)) {
      a.tail = v;
    } else if (flag == "--max-failures" && value(a.max_failures)) {
    } else if (flag == "--determinism" && value(a.determinism)) {
    } else if (flag == "--no-persist-checks") {
      a.persist_checks = false;
    } else if (flag == "--swarm") {
      a.swarm = true;
    } else if (flag == "--leases") {
      a.leases = true;
    } else if (flag == "--byzantine") {
      a.byzantine = true;
    } else if (flag == "--skip-forgery" && i + 1 < argc) {
      ckv::sim::Forgery f;
      if (!ckv::sim::parse_forgery(argv[++i], f)) return usage();
      a.forgery_mask &= ~(1u << static_cast<uint32_t>(f));
    } else if (flag == "--random-start") {
      a.random_start = true;
    } else if (flag == "--quiet") {
      a.quiet = true;
    } else if (flag == "--regressions" && i + 1 < argc) {
      a.regressions = argv[++i];
    } else {
      return usage();
    }
  }
  std::signal(SIGABRT, on_fatal_signal);
  std::signal(SIGSEGV, on_fatal_signal);

  if (a.have_seed) {
    SimConfig c;
    c.seed = a.seed;
    c.nodes = nodes_for(a, a.seed);
    c.steps = a.steps;
    c.persist_checks = a.persist_checks;
    c.swarm = a.swarm;
    c.leases = a.leases;
    c.byzantine = a.byzantine;
    c.forgery_mask = a.forgery_mask;
    c.echo = !a.quiet;
    c.tail = a.quiet ? a.tail : 0;
    auto t0 = std::chrono::steady_clock::now();
    SimResult r = run_one(c);
    Totals t;
    t.add(r);
    if (!r.ok) {
      report_failure(c, r, a.quiet);
      return 1;
    }
    std::printf("PASS seed=%llu nodes=%d steps=%d: max commit %llu\n", ull(c.seed), c.nodes,
                c.steps, ull(r.max_commit));
    t.print("seed", seconds_since(t0));
    return 0;
  }
  if (a.seeds > 0) {
    if (a.random_start) {
      // Outside the simulation (which stays a pure function of its seed): a
      // fresh range every run, printed first so any failure can be replayed.
      std::random_device dev;
      a.start = ((uint64_t{dev()} << 32) | dev()) % 1'000'000'000'000ULL + 1;
      std::printf("raft_sim: random start seed %llu (this sweep: --seeds %llu --start %llu%s%s)\n",
                  ull(a.start), ull(a.seeds), ull(a.start),
                  a.nodes ? (" --nodes " + std::to_string(a.nodes)).c_str() : "",
                  a.swarm ? " --swarm" : "");
      std::fflush(stdout);
    }
    std::vector<SimConfig> configs;
    for (uint64_t s = a.start; s < a.start + a.seeds; ++s) {
      SimConfig c;
      c.seed = s;
      c.nodes = nodes_for(a, s);
      c.steps = a.steps;
      c.persist_checks = a.persist_checks;
      c.swarm = a.swarm;
      c.leases = a.leases;
      c.byzantine = a.byzantine;
      c.forgery_mask = a.forgery_mask;
      configs.push_back(c);
    }
    std::string what =
        "seeds [" + std::to_string(a.start) + ", " + std::to_string(a.start + a.seeds - 1) + "]" +
        (a.nodes ? ", " + std::to_string(a.nodes) + " nodes" : std::string(", 3 and 5 nodes")) +
        (a.swarm ? ", swarm" : "");
    return sweep(configs, a, what.c_str());
  }
  if (!a.regressions.empty()) {
    // Format: "<seed> <nodes> [steps] [swarm]  # what it caught", one per line.
    std::ifstream in(a.regressions);
    if (!in) {
      std::fprintf(stderr, "raft_sim: cannot read %s\n", a.regressions.c_str());
      return 2;
    }
    std::vector<SimConfig> configs;
    std::string line;
    while (std::getline(in, line)) {
      line = line.substr(0, line.find('#'));
      std::istringstream fields(line);
      SimConfig c;
      if (!(fields >> c.seed >> c.nodes)) continue;
      std::string word;
      while (fields >> word) {
        uint64_t steps = 0;
        if (word == "swarm") {
          c.swarm = true;
        } else if (parse_u64(word.c_str(), steps) && steps > 0) {
          c.steps = static_cast<int>(steps);
        }
      }
      configs.push_back(c);
    }
    return sweep(configs, a, ("regressions in " + a.regressions).c_str());
  }
  if (a.determinism > 0) {
    for (uint64_t s = a.start; s < a.start + a.determinism; ++s) {
      SimConfig c;
      c.seed = s;
      c.nodes = nodes_for(a, s);
      c.steps = a.steps;
      c.swarm = a.swarm;
      c.leases = a.leases;
      c.byzantine = a.byzantine;
      c.forgery_mask = a.forgery_mask;
      SimResult x = run_one(c), y = run_one(c);
      if (x.events != y.events || x.sim_ms != y.sim_ms || x.max_commit != y.max_commit ||
          x.writes_acked != y.writes_acked || x.lease_acks != y.lease_acks || x.failure != y.failure) {
        std::printf("FAIL seed=%llu is not deterministic: %llu vs %llu events, %llu vs %llu ms\n",
                    ull(s), ull(x.events), ull(y.events), ull(x.sim_ms), ull(y.sim_ms));
        return 1;
      }
    }
    std::printf("raft_sim: %llu seeds replayed identically\n", ull(a.determinism));
    return 0;
  }
  return usage();
}
