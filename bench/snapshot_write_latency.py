#!/usr/bin/env python3
"""Write latency while Maintenance.Snapshot copies a large store: one kvnode, N keys loaded with wrk, then sequential /set latencies before and during `etcdctl snapshot save`.

Usage: bench/snapshot_write_latency.py [--kvnode build/kvnode] [--load-seconds 20] [--baseline-seconds 5]

Prints the store's keys, the backup's size and time, and p50 / p99 / max of
one client's writes (keep-alive HTTP, sequential) without and during the
snapshot. Every process started is killed by PID at the end.
"""

import argparse
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] if xs else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kvnode", default="build/kvnode")
    ap.add_argument("--load-seconds", type=int, default=20)
    ap.add_argument("--baseline-seconds", type=float, default=5)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="ckv-snapbench-")
    api, raft, grpc = (f"127.0.0.1:{free_port()}" for _ in range(3))
    log = open(os.path.join(tmp, "node.log"), "w")
    node = subprocess.Popen([args.kvnode, f"-raft-address={raft}", f"-api-address={api}", f"-grpc-address={grpc}",
                             f"-data-dir={tmp}/data", "-bootstrap", "-snapshot-threshold=0"],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                c = http.client.HTTPConnection(api, timeout=2)
                c.request("GET", "/status")
                if json.loads(c.getresponse().read()).get("isLeader"):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                sys.exit("kvnode did not become leader")
            time.sleep(0.1)
        lua = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wrk", "set.lua")
        subprocess.run(["wrk", "-t2", "-c64", f"-d{args.load_seconds}s", "-s", lua, f"http://{api}", "--", "load"],
                       check=True, capture_output=True)
        c = http.client.HTTPConnection(api, timeout=10)
        c.request("GET", "/status")
        st = json.loads(c.getresponse().read())
        keys = st["revision"] - 1

        lat = []  # (start time, seconds)
        stop = threading.Event()

        def writer():
            conn = http.client.HTTPConnection(api, timeout=30)
            i = 0
            while not stop.is_set():
                i += 1
                body = json.dumps({"key": f"probe-{i}", "value": "0123456789abcdef"})
                t0 = time.monotonic()
                conn.request("POST", "/set", body, {"Content-Type": "application/json"})
                conn.getresponse().read()
                lat.append((t0, time.monotonic() - t0))

        t = threading.Thread(target=writer)
        t.start()
        time.sleep(args.baseline_seconds)
        backup = os.path.join(tmp, "backup.db")
        s0 = time.monotonic()
        subprocess.run([shutil.which("etcdctl"), f"--endpoints={grpc}", "--command-timeout=300s", "snapshot", "save",
                        backup], check=True, capture_output=True, env=dict(os.environ, ETCDCTL_API="3"))
        s1 = time.monotonic()
        stop.set()
        t.join()
        base = [d for (t0, d) in lat if t0 < s0]
        during = [d for (t0, d) in lat if s0 <= t0 < s1]
        ms = lambda x: f"{x * 1000:.2f}"
        print(f"keys {keys}, backup {os.path.getsize(backup) / 1e6:.1f} MB in {s1 - s0:.2f} s (etcdctl, end to end)")
        for name, xs in (("baseline", base), ("during snapshot", during)):
            print(f"{name:16s} writes {len(xs):6d}  p50 {ms(percentile(xs, 50))} ms  p99 {ms(percentile(xs, 99))} ms"
                  f"  max {ms(max(xs) if xs else float('nan'))} ms")
    finally:
        node.kill()
        node.wait()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
