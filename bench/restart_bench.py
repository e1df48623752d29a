#!/usr/bin/env python3
"""Restart time of a node holding N keys (issue 10: 1M keys to serving in < 2 s), and its RSS.

One node (bootstrapped, its own cluster) is loaded with N distinct keys through
the seed API (wrk, bench/wrk/set.lua), its RSS is read, then it is killed
(-9) and started again on the same data dir; "serving" is the first
linearizable GET of a loaded key that answers 200. Several binaries may be
given: each gets the same load, in this run (before/after comparisons).
After the table, each binary's own start-up phases (its "startup: serving"
log line, node/startup_timeline.h) say where the restart's time went.

    bench/restart_bench.py --keys 1000000 build/kvnode /work/main/build/kvnode
"""
import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
# How long a start may take before the bench gives up on it.
START_DEADLINE_S = 120


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, timeout=2):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def start(binary, data, raft, api, log):
    args = [binary, f"-raft-address={raft}", f"-api-address={api}", f"-data-dir={data}", "-bootstrap=true"]
    return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)


def wait_serving(api, key):
    t0 = time.monotonic()
    while time.monotonic() - t0 < START_DEADLINE_S:
        if get(f"http://{api}/get?key={key}") == 200:
            return time.monotonic() - t0
        time.sleep(0.005)
    raise SystemExit(f"restart_bench: node on {api} not serving after {START_DEADLINE_S} s")


def startup_phases(log_path, after):
    """The restarted node's own start-up summary (node/startup_timeline.h), or "" if it logs none."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < 2:
        with open(log_path) as f:
            f.seek(after)
            for line in f:
                if "startup: serving" in line:
                    return line.split("startup: ", 1)[1].strip()
        time.sleep(0.05)
    return ""


def load(api, keys, conns):
    """Writes at least `keys` distinct keys; returns (written, seconds)."""
    done, t0, round_ = 0, time.monotonic(), 0
    while done < keys:
        round_ += 1
        out = subprocess.run(["wrk", "-t2", f"-c{conns}", "-d10s", "-s", f"{HERE}/wrk/set.lua",
                              f"http://{api}", "--", f"r{round_}"],
                             capture_output=True, text=True, timeout=120).stdout
        m = re.search(r"(\d+) requests in", out)
        bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        done += int(m.group(1)) - (int(bad.group(1)) if bad else 0)
    return done, time.monotonic() - t0


def one(binary, keys, conns):
    tmp = tempfile.mkdtemp(prefix="ckv_restart_bench_")
    data = f"{tmp}/data"
    raft, api = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    log = open(f"{tmp}/node.log", "w")
    p = start(binary, data, raft, api, log)
    try:
        t0 = time.monotonic()
        # The probe key is written once the node leads (a write before that is refused).
        while subprocess.run(["curl", "-sf", "-o", "/dev/null", "-X", "POST", f"http://{api}/set",
                              "-H", "Content-Type: application/json", "-d", '{"key":"probe","value":"x"}'],
                             timeout=10).returncode != 0:
            if time.monotonic() - t0 > START_DEADLINE_S:
                raise SystemExit("restart_bench: first start failed")
            time.sleep(0.05)
        written, secs = load(api, keys, conns)
        rss = rss_kib(p.pid)
        du = subprocess.run(["du", "-sk", data], capture_output=True, text=True).stdout.split()[0]
        p.send_signal(signal.SIGKILL)
        p.wait()
        log.flush()
        log_offset = os.path.getsize(f"{tmp}/node.log")
        p = start(binary, data, raft, api, log)
        restart_s = wait_serving(api, "probe")
        rss_after = rss_kib(p.pid)
        return dict(binary=binary, written=written, load_s=secs, rss_mib=rss / 1024,
                    rss_after_mib=rss_after / 1024, disk_mib=int(du) / 1024, restart_s=restart_s,
                    phases=startup_phases(f"{tmp}/node.log", log_offset))
    finally:
        p.kill()
        p.wait()
        log.close()
        if os.environ.get("KEEP") is None:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print("kept", tmp)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("binaries", nargs="+")
    a = ap.parse_args()
    print("| kvnode | keys written | load s | RSS loaded MiB | data dir MiB | kill -9 to serving s | RSS after restart MiB |")
    print("|---|---|---|---|---|---|---|")
    phases = []
    for b in a.binaries:
        r = one(b, a.keys, a.conns)
        print(f"| {r['binary']} | {r['written']} | {r['load_s']:.0f} | {r['rss_mib']:.0f} | {r['disk_mib']:.0f} "
              f"| {r['restart_s']:.2f} | {r['rss_after_mib']:.0f} |", flush=True)
        phases.append((b, r["phases"]))
    # Where the restart's time went, as each node logged it (binaries from
    # before the start-up timeline log nothing).
    for b, line in phases:
        print(f"\n{b}: {line or 'no start-up phases logged'}")


if __name__ == "__main__":
    sys.exit(main())
