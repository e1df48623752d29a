#!/usr/bin/env python3
"""Issue 10's write benchmark: the same wrk write loads against consensuskv, etcd 3.4 and the reference's twin, in one run, as ratios.

Usage:
    bench/write_bench.py [--kvnode build/kvnode] [--reference build/bench/reference-kvnode]
                         [--duration 10] [--rounds 1] [--only set_c1,...] [--out result.json]
                         [--ckv-b="-flag=value ..." [--kvnode-b PATH]]

Three 3-node clusters on loopback (data dirs on disk under $CKV_BENCH_DIR,
default /var/tmp), all started at the beginning and loaded one at a time:
each load runs on every system back to back, in an order that rotates from
one load to the next, so the machine's drift hits all three alike. Every
client is wrk (one thread, HTTP/1.1, a new key per request, 16-byte
values), so no system is measured through a different client:

  ckv      consensuskv's seed API, POST /set (bench/wrk/set.lua)
  ckv_v3   consensuskv's etcd JSON gateway, POST /v3/kv/put (bench/wrk/etcd_put.lua)
  etcd     etcd 3.4's JSON gateway, POST /v3/kv/put (the same script)
  ref      the reference's twin (bench/reference/: HashiCorp Raft + BoltDB), POST /set
  ckv_b    with --ckv-b: a second consensuskv cluster (--kvnode-b, default --kvnode) started
           with those extra flags, POST /set: an A/B of one change in the same run

Loads: set_c1, set_c64, set_c256 (the leader, 1/64/256 connections) and
set_any_c64 (a follower, 64 connections: it forwards each write; the
reference's twin does not forward, so it has no such row). Per load and
system: requests/s, p50 and p99, the members' CPU per write, and the
leader's WAL fdatasyncs per write (from its `*_disk_wal_fsync_duration_seconds_count`
metric; the reference exports none). The reference's twin is built by
bench/reference/build.sh; without it the ref column is empty. Every process
started is killed by PID at the end, also on Ctrl-C.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import urllib.request

from etcd_api_bench import (Cluster, cpu_seconds, free_ports, leader_endpoint, member_count, run_wrk,
                            scratch_dir, start_etcd, start_kvnode, wait_for)

# (name, connections, where: "leader" or "follower")
LOADS = [
    ("set_c1", 1, "leader"),
    ("set_c64", 64, "leader"),
    ("set_c256", 256, "leader"),
    ("set_any_c64", 64, "follower"),
]
SYSTEMS = ["ckv", "ckv_v3", "etcd", "ref", "ckv_b"]
FSYNC_METRICS = {"ckv": "consensuskv_disk_wal_fsync_duration_seconds_count",
                 "etcd": "etcd_disk_wal_fsync_duration_seconds_count"}


def http_get(url, timeout=2.0):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def metric_value(url, name):
    """The sum of a metric's samples (every label set) in a Prometheus text page."""
    total = 0.0
    for line in http_get(url).splitlines():
        if line.startswith(name) and line[len(name):len(name) + 1] in (" ", "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


class Target:
    """One system's cluster as the loads see it: base URLs of its leader and a follower
    for the wrk script, where its leader's fsync counter is read, and the member PIDs."""

    def __init__(self, cluster, leader_url, follower_url, script, metrics_url, fsync_metric):
        self.cluster, self.leader_url, self.follower_url = cluster, leader_url, follower_url
        self.script, self.metrics_url, self.fsync_metric = script, metrics_url, fsync_metric

    def fsyncs(self):
        """(count, total seconds) of the leader's WAL fdatasyncs so far."""
        if not self.fsync_metric:
            return 0.0, 0.0
        return (metric_value(self.metrics_url, self.fsync_metric),
                metric_value(self.metrics_url, self.fsync_metric.replace("_count", "_sum")))


def etcd_like_target(cluster, name, urls_of):
    """ckv/ckv_v3/etcd: the leader by `etcdctl endpoint status`; urls_of(i) gives member i's HTTP base URL."""
    wait_for(f"{name}: 3 voters", lambda: member_count(cluster.grpc) == 3)
    leader = wait_for(f"{name}: a leader", lambda: leader_endpoint(cluster.grpc))
    li = cluster.grpc.index(leader)
    fi = (li + 1) % 3
    script = "set.lua" if name in ("ckv", "ckv_b") else "etcd_put.lua"
    metric = FSYNC_METRICS["etcd" if name == "etcd" else "ckv"]
    return Target(cluster, urls_of(li), urls_of(fi), script, urls_of(li) + "/metrics", metric)


def start_reference(tmp, binary):
    """Three nodes of the twin: node 0 bootstraps, then joins the other two over /join, as the seed's README."""
    c = Cluster(tmp)
    ports = free_ports(6)
    raft = [f"127.0.0.1:{p}" for p in ports[:3]]
    c.api = [f"127.0.0.1:{p}" for p in ports[3:]]
    for i in range(3):
        c.spawn(f"ref{i}", [binary, f"-raft-address={raft[i]}", f"-api-address={c.api[i]}",
                            f"-data-dir={os.path.join(tmp, f'ref{i}')}", *(["-bootstrap=true"] if i == 0 else [])])

    def status(i):
        try:
            return json.loads(http_get(f"http://{c.api[i]}/status"))
        except (OSError, ValueError):
            return None

    wait_for("ref: node 0 leads", lambda: (status(0) or {}).get("isLeader"))
    for i in (1, 2):
        wait_for(f"ref: node {i} answers", lambda i=i: status(i) is not None)
        http_get(f"http://{c.api[0]}/join?peerAddress={raft[i]}", timeout=15)
    wait_for("ref: 3 voters", lambda: all((status(i) or {}).get("voters") == 3 for i in range(3)))
    return c


def run_one(target, name, conns, where, duration, round_no):
    url = target.leader_url if where == "leader" else target.follower_url
    if url is None:
        return None
    prefix = f"{name}-r{round_no}"
    run_wrk(url, conns, max(1, min(3, int(duration / 5))), target.script, prefix + "-warm")
    pids = [p.pid for p in target.cluster.procs]
    cpu0, fs0 = cpu_seconds(pids), target.fsyncs()
    r = run_wrk(url, conns, int(duration), target.script, prefix)
    done = max(r.get("total_ops", 0), 1)
    r["cpu_us_per_write"] = (cpu_seconds(pids) - cpu0) * 1e6 / done
    fs1 = target.fsyncs()
    r["fsyncs_per_write"] = (fs1[0] - fs0[0]) / done if target.fsync_metric else None
    r["fsync_ms"] = (fs1[1] - fs0[1]) * 1e3 / (fs1[0] - fs0[0]) if fs1[0] > fs0[0] else None
    return r


def ratio(a, b):
    return a / b if a and b else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kvnode", default="build/kvnode")
    ap.add_argument("--reference", default="build/bench/reference-kvnode")
    ap.add_argument("--duration", type=float, default=10)
    ap.add_argument("--rounds", type=int, default=1, help="repeat every load; the table shows medians")
    ap.add_argument("--only", default="", help="comma-separated load names")
    ap.add_argument("--out", default="")
    ap.add_argument("--ckv-b", default=None, metavar="FLAGS",
                    help="also run a second consensuskv cluster with these extra kvnode flags (ckv_b)")
    ap.add_argument("--kvnode-b", default=None, help="ckv_b's binary (default: --kvnode)")
    args = ap.parse_args()
    if not os.access(args.kvnode, os.X_OK):
        sys.exit(f"write_bench: {args.kvnode} is not built (cmake --build build --target kvnode)")
    for tool in ("wrk", "etcd", "etcdctl"):
        if shutil.which(tool) is None:
            sys.exit(f"write_bench: {tool} is needed (scripts/setup.sh installs it)")
    have_ref = os.access(args.reference, os.X_OK)
    if not have_ref:
        print(f"write_bench: no {args.reference} (bench/reference/build.sh builds it): no ref column", flush=True)
    loads = [l for l in LOADS if not args.only or l[0] in args.only.split(",")]
    clusters = []
    tmp, cleanup = scratch_dir("ckv-write-bench-", clusters)
    results = {s: {name: [] for name, *_ in loads} for s in SYSTEMS}
    try:
        targets = {}
        for label in ("ckv", "etcd") + (("ref",) if have_ref else ()) + (("ckv_b",) if args.ckv_b is not None else ()):
            os.makedirs(os.path.join(tmp, label))
        ckv = start_kvnode(os.path.join(tmp, "ckv"), args.kvnode)
        clusters.append(ckv)
        etcd = start_etcd(os.path.join(tmp, "etcd"))
        clusters.append(etcd)
        targets["ckv"] = etcd_like_target(ckv, "ckv", lambda i: f"http://{ckv.api[i]}")
        targets["ckv_v3"] = etcd_like_target(ckv, "ckv_v3", lambda i: f"http://{ckv.api[i]}")
        targets["etcd"] = etcd_like_target(etcd, "etcd", lambda i: f"http://{etcd.grpc[i]}")
        if args.ckv_b is not None:
            ckv_b = start_kvnode(os.path.join(tmp, "ckv_b"), args.kvnode_b or args.kvnode, args.ckv_b.split())
            clusters.append(ckv_b)
            targets["ckv_b"] = etcd_like_target(ckv_b, "ckv_b", lambda i: f"http://{ckv_b.api[i]}")
        if have_ref:
            ref = start_reference(os.path.join(tmp, "ref"), args.reference)
            clusters.append(ref)
            targets["ref"] = Target(ref, f"http://{ref.api[0]}", None, "set.lua", None, None)
        print(f"write_bench: load average at start {os.getloadavg()[0]:.2f}", flush=True)
        order = [s for s in SYSTEMS if s in targets]
        step = 0
        for round_no in range(args.rounds):
            for name, conns, where in loads:
                rotated = order[step % len(order):] + order[:step % len(order)]
                step += 1
                for system in rotated:
                    r = run_one(targets[system], name, conns, where, args.duration, round_no)
                    if r is None:
                        continue
                    results[system][name].append(r)
                    fs = "" if r["fsyncs_per_write"] is None else f"  fsync/write {r['fsyncs_per_write']:5.3f}"
                    fs += "" if r["fsync_ms"] is None else f" ({r['fsync_ms']:.3f} ms)"
                    print(f"  {system:7} {name:12} {r['rps']:9.0f}/s  p50 {r['p50_ms']:7.2f} ms"
                          f"  p99 {r['p99_ms']:7.2f} ms  CPU/write {r['cpu_us_per_write']:6.1f} us{fs}"
                          f"  errors {r['errors']}" + (f" ({r['first_error']})" if r["errors"] else ""), flush=True)
        print(f"write_bench: load average at end {os.getloadavg()[0]:.2f}", flush=True)
    finally:
        cleanup()
    summary = summarize(results, loads)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"runs": results, "summary": summary, "duration_s": args.duration,
                       "rounds": args.rounds}, f, indent=1)
    errors = sum(r["errors"] for s in results.values() for rs in s.values() for r in rs)
    if errors:
        sys.exit(f"write_bench: {errors} errors (see the rows above)")


def median(values):
    values = sorted(v for v in values if v is not None)
    return values[len(values) // 2] if values else None


def summarize(results, loads):
    """Prints, per load, each system's medians and consensuskv's ratios; returns them."""
    summary = {}
    print(f"\n{'load':12} {'system':7} {'writes/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'CPU/write':>10} {'fsync/w':>8}"
          f" {'fsync ms':>9}")
    for name, *_ in loads:
        summary[name] = {}
        for system in SYSTEMS:
            runs = results[system][name]
            if not runs:
                continue
            m = {k: median([r.get(k) for r in runs]) for k in ("rps", "p50_ms", "p99_ms", "cpu_us_per_write",
                                                              "fsyncs_per_write", "fsync_ms")}
            summary[name][system] = m
            fs = "-" if m["fsyncs_per_write"] is None else f"{m['fsyncs_per_write']:.3f}"
            fms = "-" if m["fsync_ms"] is None else f"{m['fsync_ms']:.3f}"
            print(f"{name:12} {system:7} {m['rps']:9.0f} {m['p50_ms']:8.2f} {m['p99_ms']:8.2f}"
                  f" {m['cpu_us_per_write']:8.1f}us {fs:>8} {fms:>9}")
    print(f"\n{'load':12} {'ckv x etcd':>10} {'ckv x ref':>10} {'ckv_v3 x etcd':>14}"
          f" {'p99 ckv/etcd':>13} {'p99 ckv/ref':>12} {'ckv x ckv_b':>12}")
    for name, *_ in loads:
        s = summary[name]
        get = lambda system, k: s.get(system, {}).get(k)  # noqa: E731
        print(f"{name:12} {ratio(get('ckv', 'rps'), get('etcd', 'rps')):10.2f}"
              f" {ratio(get('ckv', 'rps'), get('ref', 'rps')):10.2f}"
              f" {ratio(get('ckv_v3', 'rps'), get('etcd', 'rps')):14.2f}"
              f" {ratio(get('ckv', 'p99_ms'), get('etcd', 'p99_ms')):13.2f}"
              f" {ratio(get('ckv', 'p99_ms'), get('ref', 'p99_ms')):12.2f}"
              f" {ratio(get('ckv', 'rps'), get('ckv_b', 'rps')):12.2f}")
    return summary


if __name__ == "__main__":
    main()
