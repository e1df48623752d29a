#!/usr/bin/env python3
"""CPU per request of a 3-node cluster, A/B between kvnode binaries: the cluster's CPU seconds over the requests wrk completed.

Throughput on a shared, loaded machine swings by tens of percent between
runs of the same binary; the CPU the cluster spends per request is far
steadier, so it can show a small per-request cost (bench/README.md,
"Metrics cost"). For each round and each binary: a fresh 3-node cluster
(free loopback ports, data dirs in a temp dir), a warm-up, then one wrk
load (POST /set to the leader, or GET /status) while the utime + stime of
all three kvnode processes is read from /proc before and after, and so are
the leader's context switches (voluntary + involuntary, summed over its
threads): each hand-off between threads costs one. The grpc_range load is
etcd_kv_load (bench/etcd_kv_load.cc): linearizable single-key Ranges over
gRPC at --conns clients on the leader, keys preloaded; grpc_put is its Put
with 16-byte values, the twin of `set` (wrk, bench/wrk/set.lua).

    bench/cpu_per_request.py --kvnode base=/tmp/base/kvnode --kvnode new=build/kvnode --rounds 3
    bench/cpu_per_request.py ... --loads set,grpc_put --kv-load build/bench/etcd_kv_load
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
from kvcluster import free_port, request, wait_for  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (proc(5) fields 14, 15)


def context_switches(pid):
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        total += int(line.split()[1])
        except FileNotFoundError:
            pass  # the thread ended meanwhile
    return total


def start_cluster(kvnode, tmp):
    procs, apis, grpcs = [], [], []
    for i in range(3):
        raft, api, grpc = (f"127.0.0.1:{free_port()}" for _ in range(3))
        grpcs.append(grpc)
        args = [kvnode, f"-raft-address={raft}", f"-api-address={api}", f"-grpc-address={grpc}",
                f"-data-dir={tmp}/n{i}"]
        args.append("-bootstrap=true" if i == 0 else f"-join={apis[0]}")
        log = open(f"{tmp}/n{i}.log", "w")
        procs.append(subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT))
        log.close()
        apis.append(api)
        wait_for(lambda a=api: request("GET", a, "/status", timeout=5).status == 200, 20, f"node {i} up")
        if i == 0:
            wait_for(lambda: request("GET", apis[0], "/status", timeout=5).json["isLeader"], 20, "a leader")
    wait_for(lambda: sum(m["role"] == "voter" for m in request("GET", apis[0], "/status").json["members"]) == 3,
             30, "3 voters")
    return procs, apis, grpcs


def kv_load(binary, endpoint, op, seconds, keys=1000, clients=64, extra=()):
    argv = [binary, f"--endpoints={endpoint}", f"--op={op}", f"--clients={clients}", f"--keys={keys}",
            f"--duration-s={seconds}", "--warmup-s=0", *extra]
    out = json.loads(subprocess.run(argv, capture_output=True, text=True, check=True, timeout=seconds + 120).stdout)
    return int(out["ops"])


def wrk(url, script, script_args, seconds, conns):
    opts = ["-s", script] if script else []
    tail = ["--", *script_args] if script_args else []
    out = subprocess.run(["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", *opts, url, *tail],
                         capture_output=True, text=True, timeout=seconds + 60).stdout
    return int(re.search(r"(\d+) requests in", out).group(1))


def one(kvnode, load, seconds, conns, kv_load_bin):
    tmp = tempfile.mkdtemp(prefix="ckv-cpu-")
    procs = []
    try:
        procs, apis, grpcs = start_cluster(kvnode, tmp)
        leader = apis[0]
        leader_pid = procs[0].pid
        if load == "grpc_range":
            kv_load(kv_load_bin, grpcs[0], "preload", 30)
            kv_load(kv_load_bin, grpcs[0], "range", 2, clients=conns)  # warm-up
            before = sum(cpu_seconds(p.pid) for p in procs)
            lbefore, sbefore = cpu_seconds(leader_pid), context_switches(leader_pid)
            n = kv_load(kv_load_bin, grpcs[0], "range", seconds, clients=conns)
        elif load == "grpc_put":
            # As set.lua: 16-byte values; keys from a large space, so most puts create one.
            extra = ["--value-bytes=16", "--key-prefix=w"]
            kv_load(kv_load_bin, grpcs[0], "put", 2, keys=10**9, clients=conns, extra=extra)  # warm-up
            before = sum(cpu_seconds(p.pid) for p in procs)
            lbefore, sbefore = cpu_seconds(leader_pid), context_switches(leader_pid)
            n = kv_load(kv_load_bin, grpcs[0], "put", seconds, keys=10**9, clients=conns, extra=extra)
        elif load == "set":
            script = os.path.join(HERE, "wrk", "set.lua")
            wrk(f"http://{leader}", script, ["warm"], 2, conns)
            before = sum(cpu_seconds(p.pid) for p in procs)
            lbefore, sbefore = cpu_seconds(leader_pid), context_switches(leader_pid)
            n = wrk(f"http://{leader}", script, ["measured"], seconds, conns)
        else:
            wrk(f"http://{leader}/status", None, [], 2, conns)
            before = sum(cpu_seconds(p.pid) for p in procs)
            lbefore, sbefore = cpu_seconds(leader_pid), context_switches(leader_pid)
            n = wrk(f"http://{leader}/status", None, [], seconds, conns)
        used = sum(cpu_seconds(p.pid) for p in procs) - before
        leader_used = cpu_seconds(leader_pid) - lbefore
        switches = context_switches(leader_pid) - sbefore
        return n, used, leader_used, switches
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kvnode", action="append", required=True, help="NAME=PATH, twice or more")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--loads", default="set,status", help="of set, status, grpc_range, grpc_put")
    ap.add_argument("--kv-load", default="build/bench/etcd_kv_load")
    a = ap.parse_args()
    binaries = [kv.split("=", 1) for kv in a.kvnode]
    results = {}
    for r in range(a.rounds):
        for load in a.loads.split(","):
            for name, path in binaries:
                n, used, leader_used, switches = one(path, load, a.duration, a.conns, a.kv_load)
                results.setdefault((load, name), []).append((n, used, leader_used, switches))
                per = max(n, 1)
                print(f"round {r + 1} {load:8} {name:6} {n / a.duration:9.0f} req/s  "
                      f"{1e6 * used / per:7.1f} us CPU/request (3 nodes)  "
                      f"leader {1e6 * leader_used / per:6.1f} us, {switches / per:5.2f} context switches/request",
                      flush=True)
    print(f"\nload     binary   req/s   us CPU/req (3 nodes)   leader us CPU/req   leader switches/req"
          f"   (medians of {a.rounds})")

    def median(values):
        return sorted(values)[len(values) // 2]

    for (load, name), runs in results.items():
        rps = median([n / a.duration for n, _, _, _ in runs])
        cpu = median([1e6 * u / max(n, 1) for n, u, _, _ in runs])
        lcpu = median([1e6 * lu / max(n, 1) for n, _, lu, _ in runs])
        sw = median([s / max(n, 1) for n, _, _, s in runs])
        print(f"{load:8} {name:8} {rps:6.0f} {cpu:18.1f} {lcpu:19.1f} {sw:21.2f}")

if __name__ == "__main__":
    main()
