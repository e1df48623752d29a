#!/usr/bin/env python3
"""The watch and lease scale benchmark: 10,000 watchers under 1,000 puts/s, and 10,000 leases kept alive, on one etcd 3.4 and one consensuskv node in one run, as ratios.

Usage:
    bench/etcd_watch_lease_bench.py [--kvnode build/kvnode] [--load build/bench/etcd_watch_lease_load]
                                    [--duration 20] [--only watch,leases] [--watchers 10000] [--leases 10000]
                                    [--members 3] [--out result.json]

Each load runs against a fresh single-member server (etcd first, then kvnode, never both at
once: the machine has 2 cores), data dir on disk in a temp dir under /var/tmp (CKV_BENCH_DIR to
change), every process killed by PID at the end, also on Ctrl-C. The load generator is
etcd_watch_lease_load (bench/etcd_watch_lease_load.cc, gRPC C++ on etcd's stubs); it marks the
measured window on its stdout, and this script reads the server's CPU time (utime + stime of
/proc/PID/stat) at both ends of it and its VmRSS and VmHWM (peak) at the end. CPU is reported as
cores busy (CPU seconds / wall seconds). The generator runs on the same machine and takes CPU
too: compare the two servers' numbers from one run, not across runs.

--members 3 starts 3-member clusters instead (bench/etcd_api_bench.py's) and points the load at a
follower, so keepalives are forwarded to the leader and watchers are served from a follower's
applied state; CPU and memory are then the sum over the three members.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import etcd_api_bench

START_TIMEOUT_S = 30
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14 and 15)


def memory_kib(pid):
    got = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                got[name] = int(value.split()[0])
    return got


class Server:
    """One server process, killed by PID in stop()."""

    def __init__(self, tmp, label, argv, endpoint):
        self.endpoint = endpoint
        self.log = open(os.path.join(tmp, label + ".log"), "wb")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.log.close()


def start_etcd(tmp):
    peer, client = etcd_api_bench.free_ports(2)
    return Server(tmp, "etcd", [
        "etcd", "--name", "e0", "--data-dir", os.path.join(tmp, "etcd"),
        "--listen-peer-urls", f"http://127.0.0.1:{peer}", "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
        "--listen-client-urls", f"http://127.0.0.1:{client}", "--advertise-client-urls", f"http://127.0.0.1:{client}",
        "--initial-cluster", f"e0=http://127.0.0.1:{peer}", "--log-level", "error",
    ], f"127.0.0.1:{client}")


def start_kvnode(tmp, kvnode):
    raft, api, grpc = etcd_api_bench.free_ports(3)
    return Server(tmp, "kvnode", [
        kvnode, "-id=n0", f"-raft-address=127.0.0.1:{raft}", f"-api-address=127.0.0.1:{api}",
        f"-grpc-address=127.0.0.1:{grpc}", f"-data-dir={os.path.join(tmp, 'n0')}", "-log-level=warn",
        "-bootstrap=true",
    ], f"127.0.0.1:{grpc}")


def wait_ready(server):
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        r = subprocess.run(["etcdctl", f"--endpoints={server.endpoint}", "--command-timeout=2s", "put", "ready", "1"],
                           env=dict(os.environ, ETCDCTL_API="3"), capture_output=True, text=True)
        if r.returncode == 0:
            return
        if server.proc.poll() is not None:
            sys.exit(f"etcd_watch_lease_bench: the server exited with {server.proc.returncode}")
        time.sleep(0.2)
    sys.exit("etcd_watch_lease_bench: the server did not take a put in time")


class Members:
    """A 3-member cluster of etcd_api_bench.py, seen through one follower's endpoint."""

    def __init__(self, cluster, label):
        self.cluster = cluster
        etcd_api_bench.wait_for(f"{label}: 3 voters", lambda: etcd_api_bench.member_count(cluster.grpc) == 3)
        leader = etcd_api_bench.wait_for(f"{label}: a leader", lambda: etcd_api_bench.leader_endpoint(cluster.grpc))
        self.endpoint = next(e for e in cluster.grpc if e != leader)
        self.pids = [p.pid for p in cluster.procs]
        self.proc = cluster.procs[cluster.grpc.index(self.endpoint)]

    def stop(self):
        self.cluster.stop()


def run_load(load_bin, server, args):
    """Runs the generator; samples the server's CPU over the window it marks. Returns its JSON plus ours."""
    p = subprocess.Popen([load_bin, f"--endpoint={server.endpoint}", *args], stdout=subprocess.PIPE, text=True)
    pids = getattr(server, "pids", [server.proc.pid])
    result = {}
    for line in p.stdout:
        msg = json.loads(line)
        if msg.get("phase") == "measure":
            cpu0, t0 = sum(cpu_seconds(pid) for pid in pids), time.monotonic()
        elif msg.get("phase") == "measured":
            cpu1, t1 = sum(cpu_seconds(pid) for pid in pids), time.monotonic()
            result["server_cpu_cores"] = (cpu1 - cpu0) / (t1 - t0)
            mems = [memory_kib(pid) for pid in pids]
            result["server_rss_mib"] = sum(m["VmRSS"] for m in mems) / 1024
            result["server_peak_rss_mib"] = sum(m["VmHWM"] for m in mems) / 1024
        else:
            result.update(msg)
    if p.wait() != 0:
        sys.exit(f"etcd_watch_lease_bench: {load_bin} {' '.join(args)} failed with {p.returncode}")
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kvnode", default="build/kvnode")
    ap.add_argument("--load", default="build/bench/etcd_watch_lease_load")
    ap.add_argument("--duration", type=float, default=20)
    ap.add_argument("--only", default="watch,leases")
    ap.add_argument("--watchers", type=int, default=10000)
    ap.add_argument("--streams", type=int, default=100)
    ap.add_argument("--keys", type=int, default=1000)
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--leases", type=int, default=10000)
    ap.add_argument("--ttl", type=int, default=5)
    ap.add_argument("--members", type=int, choices=(1, 3), default=1)
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    for path in (args.kvnode, args.load):
        if not os.access(path, os.X_OK):
            sys.exit(f"etcd_watch_lease_bench: {path} is not built "
                     "(cmake --build build --target kvnode etcd_watch_lease_load)")
    if shutil.which("etcd") is None or shutil.which("etcdctl") is None:
        sys.exit("etcd_watch_lease_bench: etcd and etcdctl are needed (scripts/setup.sh installs them)")
    loads = {
        "watch": ["--op=watch", f"--watchers={args.watchers}", f"--streams={args.streams}", f"--keys={args.keys}",
                  f"--rate={args.rate}"],
        "leases": ["--op=leases", f"--leases={args.leases}", f"--streams={args.streams}", f"--ttl={args.ttl}"],
    }
    common = [f"--duration-s={args.duration}", f"--warmup-s={max(1.0, min(3.0, args.duration / 5))}"]
    servers = []
    tmp, cleanup = etcd_api_bench.scratch_dir("ckv-watch-lease-bench-", servers)
    results = {}
    try:
        for name in args.only.split(","):
            for label in ("etcd", "consensuskv"):
                d = os.path.join(tmp, f"{name}-{label}")
                os.makedirs(d)
                if args.members == 3:
                    c = etcd_api_bench.start_etcd(d) if label == "etcd" else etcd_api_bench.start_kvnode(d, args.kvnode)
                    servers.append(c)
                    s = Members(c, label)
                    servers[-1] = s
                else:
                    s = start_etcd(d) if label == "etcd" else start_kvnode(d, args.kvnode)
                    servers.append(s)
                wait_ready(s)
                r = run_load(args.load, s, loads[name] + common)
                s.stop()
                servers.remove(s)
                results.setdefault(name, {})[label] = r
                print(f"  {name:7} {label:12} {json.dumps(r)}", flush=True)
    finally:
        cleanup()
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f} (2 cores, shared)")
    rows = {
        "watch": [("event latency p50 ms", "p50_ms"), ("event latency p99 ms", "p99_ms"),
                  ("put (commit) p50 ms", "put_p50_ms"), ("put (commit) p99 ms", "put_p99_ms"),
                  ("events delivered / expected", None), ("starved watchers", "short_watchers"),
                  ("server CPU (cores)", "server_cpu_cores"), ("server RSS MiB", "server_rss_mib"),
                  ("server peak RSS MiB", "server_peak_rss_mib")],
        "leases": [("keepalives answered / s", "keepalives_per_s"), ("keepalive p50 ms", "p50_ms"),
                   ("keepalive p99 ms", "p99_ms"), ("unanswered at the end", "backlog"),
                   ("expired answers", "expired_answers"),
                   ("puts refused (lease gone)", "attach_errors"), ("keys left / leases", None), ("server CPU (cores)", "server_cpu_cores"),
                   ("server RSS MiB", "server_rss_mib"), ("server peak RSS MiB", "server_peak_rss_mib")],
    }
    for name, rs in results.items():
        e, k = rs["etcd"], rs["consensuskv"]
        print(f"\n{name:34} {'etcd':>12} {'consensuskv':>12} {'ckv/etcd':>9}")
        for what, field in rows[name]:
            if field is None:
                a, b = (("events_delivered", "events_expected") if name == "watch" else ("keys_left", "leases"))
                print(f"{what:34} {f'{e[a]:.0f}/{e[b]:.0f}':>12} {f'{k[a]:.0f}/{k[b]:.0f}':>12}")
                continue
            ratio = k[field] / e[field] if e[field] else float("nan")
            print(f"{what:34} {e[field]:12.2f} {k[field]:12.2f} {ratio:9.2f}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
