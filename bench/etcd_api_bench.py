#!/usr/bin/env python3
"""The etcd v3 API benchmark: the same gRPC KV loads against a 3-node etcd 3.4 and a 3-node consensuskv in one run, as ratios.

Usage:
    bench/etcd_api_bench.py [--kvnode build/kvnode] [--load build/bench/etcd_kv_load]
                            [--duration 10] [--only put_c1,...] [--out result.json]
    bench/etcd_api_bench.py --vs-seed [--kvnode ...] [--load ...] [--duration 10]

--vs-seed runs no etcd: on ONE 3-node consensuskv cluster it alternates the
seed API (wrk, bench/wrk/set.lua and get.lua, through the leader) with the
same operations over gRPC (Put, linearizable Range) at 1 and 64 clients,
16-byte values on both sides, and prints gRPC / seed ratios (issue 8: gRPC
may be at most 10% slower than the seed API). The gRPC client is grpc++
(etcd_kv_load) over 10,000 keys, and h2load (nghttp2's HTTP/2 twin of wrk)
on one key, whose wrk twin writes or reads that same key, over one
connection per client or 8 connections carrying the calls side by side. --only names groups by any member.

Both clusters run on loopback with data dirs on disk (a temp dir, removed at
the end), one after the other (never both loaded at once: the machine has
2 cores). Every process started is killed by PID at the end, also on
Ctrl-C. Each load is etcd_kv_load (bench/etcd_kv_load.cc): a closed loop of
N clients, each with one request in flight, 256-byte values, over 8 gRPC
connections. The table's `x etcd` column is consensuskv's throughput
divided by etcd's in the same run: the machine is shared and noisy, so only
ratios from one run mean anything.
"""

import argparse
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from cpu_per_request import cpu_seconds as process_cpu_seconds

# (name, op, clients, endpoints: "leader" or "all", serializable)
LOADS = [
    ("put_c1", "put", 1, "leader", False),
    ("put_c64", "put", 64, "leader", False),
    ("put_c256", "put", 256, "leader", False),
    ("put_any_c64", "put", 64, "all", False),
    ("range_lin_c64", "range", 64, "leader", False),
    ("range_lin_any_c64", "range", 64, "all", False),
    ("range_ser_any_c64", "range", 64, "all", True),
]
KEYS = 10000
VALUE_BYTES = 256
START_TIMEOUT_S = 30
# --vs-seed: groups of a seed API load and its gRPC twins, each load
# (name, client, op, clients), run in this order so that each seed load and
# its twins are measured back to back (the machine drifts). Clients: "wrk"
# over keys r0..r9999 (reads) or a new key per write, against "grpcxx"
# (etcd_kv_load, grpc++'s client, 8 connections, over the same keys); and
# "wrk_one" against h2load (nghttp2's HTTP/2 load generator, the twin of wrk:
# one body sent again and again) on one key ("one"; reads: r0), with one
# connection per client like wrk ("h2load") or 8 connections carrying the
# clients' calls side by side as grpc++'s and etcd's clients do ("h2load_mux").
SEED_LOADS = [
    (("set_c1", "wrk", "put", 1), [("put_c1", "grpcxx", "put", 1)]),
    (("set_c64", "wrk", "put", 64), [("put_c64", "grpcxx", "put", 64)]),
    (("get_c1", "wrk", "range", 1), [("range_lin_c1", "grpcxx", "range", 1)]),
    (("get_c64", "wrk", "range", 64), [("range_lin_c64", "grpcxx", "range", 64)]),
    (("set_one_c1", "wrk_one", "put", 1), [("put_one_c1", "h2load", "put", 1)]),
    (("set_one_c64", "wrk_one", "put", 64),
     [("put_one_c64", "h2load", "put", 64), ("put_one_c64_mux", "h2load_mux", "put", 64)]),
    (("get_one_c1", "wrk_one", "range", 1), [("range_one_c1", "h2load", "range", 1)]),
    (("get_one_c64", "wrk_one", "range", 64),
     [("range_one_c64", "h2load", "range", 64), ("range_one_c64_mux", "h2load_mux", "range", 64)]),
]
H2LOAD_MUX_CONNECTIONS = 8  # etcd_kv_load's
SEED_VALUE_BYTES = 16  # what bench/wrk/set.lua writes
WRK_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wrk")


def free_ports(n):
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def scratch_dir(prefix, running):
    """A temp dir on disk (under $CKV_BENCH_DIR, default /var/tmp) and cleanup(), which stops
    everything in `running` (a list the caller fills with objects that have stop()) and removes
    the dir; Ctrl-C and SIGTERM run it too."""
    tmp = tempfile.mkdtemp(prefix=prefix, dir=os.environ.get("CKV_BENCH_DIR", "/var/tmp"))

    def cleanup(*_):
        for r in running:
            r.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    signal.signal(signal.SIGINT, lambda *_: (cleanup(), sys.exit(130)))
    signal.signal(signal.SIGTERM, lambda *_: (cleanup(), sys.exit(143)))
    return tmp, cleanup


class Cluster:
    """Processes started by this script, killed by PID in stop()."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.procs = []
        self.grpc = []  # client endpoints, host:port

    def spawn(self, name, argv):
        log = open(os.path.join(self.tmp, name + ".log"), "wb")
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(p)
        return p

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
        for p in self.procs:
            p.wait()
        self.procs = []


def etcdctl_ok(endpoints, *args):
    r = subprocess.run(["etcdctl", "--endpoints=" + ",".join(endpoints), "--command-timeout=2s", *args],
                       env=dict(os.environ, ETCDCTL_API="3"), capture_output=True, text=True)
    return r.returncode == 0, r.stdout


def wait_for(what, pred):
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.1)
    sys.exit(f"etcd_api_bench: timed out waiting for {what}")


def leader_endpoint(endpoints):
    """The client endpoint whose member is the leader, by `etcdctl endpoint status`."""
    ok, out = etcdctl_ok(endpoints, "endpoint", "status", "-w", "json")
    if not ok:
        return None
    try:
        rows = json.loads(out)
    except ValueError:
        return None
    for row in rows:
        st = row.get("Status", {})
        if st.get("leader") and st.get("leader") == st.get("header", {}).get("member_id"):
            return row["Endpoint"]
    return None


def start_etcd(tmp):
    c = Cluster(tmp)
    ports = free_ports(6)
    peers = [f"127.0.0.1:{p}" for p in ports[:3]]
    c.grpc = [f"127.0.0.1:{p}" for p in ports[3:]]
    initial = ",".join(f"e{i}=http://{peers[i]}" for i in range(3))
    for i in range(3):
        c.spawn(f"etcd{i}", [
            "etcd", "--name", f"e{i}", "--data-dir", os.path.join(tmp, f"etcd{i}"),
            "--listen-peer-urls", f"http://{peers[i]}", "--initial-advertise-peer-urls", f"http://{peers[i]}",
            "--listen-client-urls", f"http://{c.grpc[i]}", "--advertise-client-urls", f"http://{c.grpc[i]}",
            "--initial-cluster", initial, "--initial-cluster-state", "new", "--log-level", "error",
        ])
    return c


def start_kvnode(tmp, kvnode, extra_args=()):
    c = Cluster(tmp)
    ports = free_ports(9)
    raft = [f"127.0.0.1:{p}" for p in ports[:3]]
    api = [f"127.0.0.1:{p}" for p in ports[3:6]]
    c.grpc = [f"127.0.0.1:{p}" for p in ports[6:]]
    c.api = api
    for i in range(3):
        extra = ["-bootstrap=true"] if i == 0 else [f"-join={api[0]}"]
        c.spawn(f"kvnode{i}", [
            kvnode, f"-id=n{i}", f"-raft-address={raft[i]}", f"-api-address={api[i]}",
            f"-grpc-address={c.grpc[i]}", f"-data-dir={os.path.join(tmp, f'n{i}')}", "-log-level=warn", *extra,
            *extra_args,
        ])
    return c


def member_count(endpoints):
    ok, out = etcdctl_ok(endpoints[:1], "member", "list", "-w", "json")
    if not ok:
        return 0
    members = json.loads(out).get("members", [])
    return len([m for m in members if not m.get("isLearner")])


def cpu_seconds(pids):
    """utime + stime of the processes (cpu_per_request.py reads one)."""
    return sum(process_cpu_seconds(pid) for pid in pids)


def children_cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_load(load_bin, endpoints, op, clients, serializable, duration):
    argv = [load_bin, "--endpoints=" + ",".join(endpoints), f"--op={op}", f"--clients={clients}",
            f"--keys={KEYS}", f"--value-bytes={VALUE_BYTES}", f"--duration-s={duration}",
            f"--warmup-s={max(1.0, min(3.0, duration / 5))}"]
    if serializable:
        argv.append("--serializable")
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def bench_cluster(label, cluster, load_bin, loads, duration):
    wait_for(f"{label}: 3 voters", lambda: member_count(cluster.grpc) == 3)
    leader = wait_for(f"{label}: a leader", lambda: leader_endpoint(cluster.grpc))
    # Every key the range loads read exists (a range of an absent key is cheaper).
    pre = subprocess.run([load_bin, "--endpoints=" + leader, "--op=preload", "--clients=64",
                          f"--keys={KEYS}", f"--value-bytes={VALUE_BYTES}"],
                         capture_output=True, text=True, check=True)
    if json.loads(pre.stdout)["errors"]:
        sys.exit(f"etcd_api_bench: {label}: preload failed: {pre.stdout}")
    results = {}
    pids = [p.pid for p in cluster.procs]
    for name, op, clients, where, serializable in loads:
        endpoints = [leader] if where == "leader" else cluster.grpc
        # CPU per operation (the three members' and the load generator's,
        # warm-up included on both sides of the division) is far steadier
        # than throughput on a shared machine, and when the cores are the
        # limit it bounds the throughput ratio.
        server_before, client_before = cpu_seconds(pids), children_cpu_seconds()
        results[name] = run_load(load_bin, endpoints, op, clients, serializable, duration)
        r = results[name]
        done = r["total_ops"] if r.get("total_ops") else r["ops"]
        r["server_cpu_us_per_op"] = (cpu_seconds(pids) - server_before) * 1e6 / max(done, 1)
        r["client_cpu_us_per_op"] = (children_cpu_seconds() - client_before) * 1e6 / max(done, 1)
        print(f"  {label:10} {name:20} {r['rps']:10.0f}/s  p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms"
              f"  CPU/op {r['server_cpu_us_per_op']:6.1f} us (+ client {r['client_cpu_us_per_op']:5.1f})"
              f"  errors {r['errors']}" + (f" ({r['first_error']})" if r["errors"] else ""), flush=True)
    return results


def wrk_ms(v):
    for unit, factor in (("us", 0.001), ("ms", 1.0), ("s", 1000.0), ("m", 60000.0)):
        if v.endswith(unit):
            return float(v[:-len(unit)]) * factor
    return float(v) * 3600000.0  # "h"


def run_wrk(url, clients, duration, script, *script_args):
    """wrk's rate, p50/p99 and errors (non-2xx answers and socket errors), as run_load's JSON."""
    out = subprocess.run(["wrk", "-t1", f"-c{clients}", f"-d{duration}s", "--latency",
                          "-s", os.path.join(WRK_DIR, script), url, "--", *script_args],
                         capture_output=True, text=True, check=True).stdout
    r = {"rps": 0.0, "p50_ms": 0.0, "p99_ms": 0.0, "errors": 0, "first_error": ""}
    for line in out.splitlines():
        f = line.split()
        if line.startswith("Requests/sec:"):
            r["rps"] = float(f[1])
        elif " requests in " in line:
            r["total_ops"] = int(f[0])
        elif f[:1] == ["50%"]:
            r["p50_ms"] = wrk_ms(f[1])
        elif f[:1] == ["99%"]:
            r["p99_ms"] = wrk_ms(f[1])
        elif "Non-2xx or 3xx responses:" in line:
            r["errors"] += int(f[-1])
            r["first_error"] = line.strip()
        elif line.strip().startswith("Socket errors:"):
            r["errors"] += sum(int(x.strip(",")) for x in f[3::2])
            r["first_error"] = line.strip()
    return r


def grpc_message(fields):
    """A gRPC length-prefixed message (uncompressed) holding a protobuf message of
    length-delimited fields: [(field number, bytes)]. PutRequest: key 1, value 2;
    RangeRequest: key 1 (serializable, field 7, left false: linearizable)."""
    body = b""
    for number, value in fields:
        size, varint = len(value), b""
        while True:
            byte, size = size & 0x7F, size >> 7
            varint += bytes([byte | (0x80 if size else 0)])
            if not size:
                break
        body += bytes([number << 3 | 2]) + varint + value
    return b"\0" + len(body).to_bytes(4, "big") + body


GRPC_HEADERS = ["-H", "content-type: application/grpc", "-H", "te: trailers"]


def grpc_status_of(url, body_path):
    """The grpc-status one call of the body gets, by curl (h2load counts HTTP 2xx only,
    and a gRPC error is an HTTP 200 with a grpc-status trailer)."""
    out = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", *GRPC_HEADERS, "--data-binary",
                          "@" + body_path, "-o", "/dev/null", "-D", "-", url],
                         capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if line.lower().startswith("grpc-status:"):
            return line.split(":", 1)[1].strip()
    return "none in: " + out.replace("\r\n", " | ")


def store_revision(endpoint):
    ok, out = etcdctl_ok([endpoint], "endpoint", "status", "-w", "json")
    if not ok:
        sys.exit(f"etcd_api_bench: endpoint status of {endpoint} failed: {out}")
    return int(json.loads(out)[0]["Status"]["header"]["revision"])


def run_h2load(url, clients, duration, body_path, log_path, connections):
    """h2load's rate, p50/p99 (from its per-request log) and errors, as run_load's JSON:
    `clients` calls in flight over `connections` connections."""
    if os.path.exists(log_path):
        os.remove(log_path)
    streams = clients // connections
    out = subprocess.run(["h2load", f"-c{connections}", f"-m{streams}", "-t1", f"-D{duration}", "-d", body_path,
                          *GRPC_HEADERS, f"--log-file={log_path}", url],
                         capture_output=True, text=True, check=True).stdout
    r = {"rps": 0.0, "p50_ms": 0.0, "p99_ms": 0.0, "errors": 0, "first_error": "", "total_ops": 0}
    for line in out.splitlines():
        f = line.replace(",", "").split()
        if line.startswith("finished in"):
            r["rps"] = float(f[3])
        elif line.startswith("requests:"):
            r["total_ops"] = int(f[7])  # succeeded
            failed = int(f[9]) + int(f[11]) + int(f[13])  # failed, errored, timeout
            if failed:
                r["errors"] += failed
                r["first_error"] = line.strip()
        elif line.startswith("status codes:"):
            non_2xx = int(f[4]) + int(f[6]) + int(f[8])
            if non_2xx:
                r["errors"] += non_2xx
                r["first_error"] = line.strip()
    with open(log_path) as f:
        elapsed_us = sorted(int(row.split("\t")[2]) for row in f if row.strip())
    if elapsed_us:
        r["p50_ms"] = elapsed_us[len(elapsed_us) // 2] / 1000
        r["p99_ms"] = elapsed_us[min(len(elapsed_us) - 1, len(elapsed_us) * 99 // 100)] / 1000
    return r


def bench_vs_seed(cluster, load_bin, duration, only):
    """SEED_LOADS (the groups that `only` names, all when empty) on one consensuskv cluster, through its leader."""
    wait_for("3 voters", lambda: member_count(cluster.grpc) == 3)
    leader = wait_for("a leader", lambda: leader_endpoint(cluster.grpc))
    api = cluster.api[cluster.grpc.index(leader)]
    # Keys r0..r<KEYS-1>: what get.lua reads over /get and etcd_kv_load's
    # --key-prefix=r reads over gRPC (one store behind both APIs).
    pre = subprocess.run([load_bin, "--endpoints=" + leader, "--op=preload", "--clients=64", f"--keys={KEYS}",
                          f"--value-bytes={SEED_VALUE_BYTES}", "--key-prefix=r"],
                         capture_output=True, text=True, check=True)
    if json.loads(pre.stdout)["errors"]:
        sys.exit(f"etcd_api_bench: preload failed: {pre.stdout}")
    warmup = max(1, min(3, int(duration / 5)))
    pids = [p.pid for p in cluster.procs]
    groups = [(seed, twins) for seed, twins in SEED_LOADS
              if not only or seed[0] in only or any(t[0] in only for t in twins)]
    value = b"0123456789abcdef"  # set.lua's value
    assert len(value) == SEED_VALUE_BYTES
    results = {}
    for name, which, op, clients in [load for seed, twins in groups for load in [seed, *twins]]:
        check = None
        if which in ("wrk", "wrk_one"):
            url = f"http://{api}"
            if op == "put":
                script, args, warm_args = "set.lua", [name], [name + "-warm"]
                if which == "wrk_one":
                    args = warm_args = ["one", "same"]
            else:
                script, args = "get.lua", [str(KEYS) if which == "wrk" else "1"]
                warm_args = args
            run_wrk(url, clients, warmup, script, *warm_args)
            server_before, client_before = cpu_seconds(pids), children_cpu_seconds()
            r = run_wrk(url, clients, int(duration), script, *args)
        elif which in ("h2load", "h2load_mux"):
            key = b"one" if op == "put" else b"r0"  # what the wrk_one twin writes or reads
            connections = clients if which == "h2load" else min(clients, H2LOAD_MUX_CONNECTIONS)
            message = grpc_message([(1, key), (2, value)] if op == "put" else [(1, key)])
            body_path = os.path.join(cluster.tmp, name + ".grpc")
            with open(body_path, "wb") as f:
                f.write(message)
            url = f"http://{leader}/etcdserverpb.KV/{'Put' if op == 'put' else 'Range'}"
            status = grpc_status_of(url, body_path)
            if status != "0":
                sys.exit(f"etcd_api_bench: {name}: the call h2load would repeat fails: grpc-status {status}")
            log_path = os.path.join(cluster.tmp, name + ".h2load.log")
            run_h2load(url, clients, warmup, body_path, log_path, connections)
            revision = store_revision(leader)
            server_before, client_before = cpu_seconds(pids), children_cpu_seconds()
            r = run_h2load(url, clients, int(duration), body_path, log_path, connections)
            if op == "put":
                check = store_revision(leader) - revision
        else:
            argv = [load_bin, "--endpoints=" + leader, f"--op={op}", f"--clients={clients}", f"--keys={KEYS}",
                    f"--value-bytes={SEED_VALUE_BYTES}", "--key-prefix=r", f"--duration-s={duration}",
                    f"--warmup-s={warmup}"]
            server_before, client_before = cpu_seconds(pids), children_cpu_seconds()
            r = json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)
        # Server CPU per request (the three members) separates what the
        # server spends from what the load generators do: on 2 shared cores
        # grpc++'s client costs several times wrk's, and that alone moves
        # the throughput ratio (bench/README.md).
        done = max(r.get("total_ops", 0), 1)
        r["server_cpu_us_per_op"] = (cpu_seconds(pids) - server_before) * 1e6 / done
        r["client_cpu_us_per_op"] = (children_cpu_seconds() - client_before) * 1e6 / done
        if check is not None and check < r["total_ops"]:
            # Each applied Put is one revision: fewer means some 200s carried a gRPC error.
            r["errors"] += r["total_ops"] - check
            r["first_error"] = f"{check} revisions for {r['total_ops']} puts answered"
        results[name] = r
        print(f"  {which:10} {name:18} {r['rps']:10.0f}/s  p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms"
              f"  CPU/op {r['server_cpu_us_per_op']:6.1f} us (+ client {r['client_cpu_us_per_op']:5.1f})"
              f"  errors {r['errors']}" + (f" ({r['first_error']})" if r["errors"] else ""), flush=True)
    print(f"\n{'gRPC vs seed':34} {'seed/s':>10} {'gRPC/s':>10} {'gRPC/seed':>10}"
          f" {'seed CPU/op':>12} {'gRPC CPU/op':>12} {'seed/gRPC CPU':>14}")
    for (seed, *_), (grpc, *_) in [(seed, twin) for seed, twins in groups for twin in twins]:
        a, b = results[seed]["rps"], results[grpc]["rps"]
        ratio = b / a if a else float("nan")
        ca, cb = results[seed]["server_cpu_us_per_op"], results[grpc]["server_cpu_us_per_op"]
        cpu_ratio = ca / cb if cb else float("nan")
        flag = "" if ratio >= 0.9 else "  <- more than 10% slower"
        print(f"{grpc + ' / ' + seed:34} {a:10.0f} {b:10.0f} {ratio:10.2f} {ca:10.1f}us {cb:10.1f}us {cpu_ratio:14.2f}{flag}")
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kvnode", default="build/kvnode")
    ap.add_argument("--load", default="build/bench/etcd_kv_load")
    ap.add_argument("--duration", type=float, default=10)
    ap.add_argument("--only", default="", help="comma-separated load names")
    ap.add_argument("--out", default="")
    ap.add_argument("--vs-seed", action="store_true",
                    help="compare gRPC with the seed API on one consensuskv cluster (no etcd)")
    args = ap.parse_args()
    for path in (args.kvnode, args.load):
        if not os.access(path, os.X_OK):
            sys.exit(f"etcd_api_bench: {path} is not built (cmake --build build --target kvnode etcd_kv_load)")
    if shutil.which("etcd") is None or shutil.which("etcdctl") is None:
        sys.exit("etcd_api_bench: etcd and etcdctl are needed (scripts/setup.sh installs them)")
    loads = [l for l in LOADS if not args.only or l[0] in args.only.split(",")]
    clusters = []
    tmp, cleanup = scratch_dir("ckv-etcd-bench-", clusters)
    results = {}
    if args.vs_seed:
        for tool in ("wrk", "h2load", "curl"):
            if shutil.which(tool) is None:
                sys.exit(f"etcd_api_bench: {tool} is needed for --vs-seed (scripts/setup.sh installs it)")
        try:
            os.makedirs(os.path.join(tmp, "ckv"), exist_ok=True)
            c = start_kvnode(os.path.join(tmp, "ckv"), args.kvnode)
            clusters.append(c)
            results = bench_vs_seed(c, args.load, args.duration, set(filter(None, args.only.split(","))))
        finally:
            cleanup()
        if args.out:
            with open(args.out, "w") as f:
                json.dump(results, f, indent=1)
        return
    try:
        for label, start in (("etcd", lambda: start_etcd(os.path.join(tmp, "etcd"))),
                             ("consensuskv", lambda: start_kvnode(os.path.join(tmp, "ckv"), args.kvnode))):
            os.makedirs(os.path.join(tmp, label if label == "etcd" else "ckv"), exist_ok=True)
            c = start()
            clusters.append(c)
            results[label] = bench_cluster(label, c, args.load, loads, args.duration)
            c.stop()
    finally:
        cleanup()
    print(f"\n{'load':20} {'etcd/s':>10} {'ckv/s':>10} {'x etcd':>7} {'etcd p99':>9} {'ckv p99':>9}"
          f" {'etcd CPU/op':>12} {'ckv CPU/op':>11} {'CPU x':>6}")
    for name, *_ in loads:
        e, k = results["etcd"][name], results["consensuskv"][name]
        ratio = k["rps"] / e["rps"] if e["rps"] else float("nan")
        cpu_ratio = e["server_cpu_us_per_op"] / k["server_cpu_us_per_op"] if k["server_cpu_us_per_op"] else float("nan")
        print(f"{name:20} {e['rps']:10.0f} {k['rps']:10.0f} {ratio:7.2f} {e['p99_ms']:8.2f}ms {k['p99_ms']:8.2f}ms"
              f" {e['server_cpu_us_per_op']:10.1f}us {k['server_cpu_us_per_op']:9.1f}us {cpu_ratio:6.2f}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
