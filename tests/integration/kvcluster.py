"""Harness for integration tests: starts real kvnode processes on free loopback ports and talks HTTP to them.

Rules this module enforces for every test: each node gets its own temp data
dir and free ports; every process started is killed by PID in cleanup (even
when a test fails); waiting is polling with a deadline, never a fixed sleep.
"""

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

KVNODE = os.environ.get("KVNODE", "")

# Fast timing so elections take ~0.2-0.4 s: tests wait on leaders a lot.
# CKV_TIMING=default runs the nodes with kvnode's own defaults, as a user would.
FAST_TIMING = ([] if os.environ.get("CKV_TIMING") == "default"
               else ["-tick-ms=20", "-election-ticks=10", "-heartbeat-ticks=2"])


_handed_out = set()  # (host, port) pairs already given to a node in this process
_rng = random.Random()


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(x) for x in f.read().split())
            return low, high
    except (OSError, ValueError):
        return 32768, 60999


def free_port(host="127.0.0.1"):
    """A port that is free now, below the kernel's ephemeral range, and not given to another
    node of this test process. Below the ephemeral range, no outbound connection (a client's,
    or a node's own streams) can take it while its node is down between a kill and a restart;
    and two nodes never get the same port, which binding to port 0 alone does not promise."""
    low, _ = _ephemeral_range()
    lowest = 10000 if low > 11000 else 1024
    while True:
        port = _rng.randrange(lowest, low)
        if (host, port) in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        _handed_out.add((host, port))
        return port


def wait_for(cond, timeout, what):
    """Polls cond() until it returns a truthy value; fails the test with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            v = cond()
            if v:
                return v
        except (OSError, ValueError, KeyError) as e:  # node not up yet, connection refused...
            last_error = e
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last_error})")


class Reply:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.raw = body
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    def __repr__(self):
        return f"Reply({self.status}, {self.raw[:300]!r})"


def request(method, address, path, body=None, headers=None, timeout=15, tls=None):
    """One HTTP request (HTTPS with tls, an ssl.SSLContext); returns Reply for any status (4xx/5xx too).
    Raises OSError when no answer (ssl.SSLError is one)."""
    data = body.encode() if isinstance(body, str) else body
    scheme = "https" if tls is not None else "http"
    req = urllib.request.Request(f"{scheme}://{address}{path}", data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=tls) as r:
            return Reply(r.status, dict(r.headers), r.read().decode())
    except urllib.error.HTTPError as e:
        return Reply(e.code, dict(e.headers), e.read().decode())


OPENSSL = shutil.which("openssl")


def run_openssl(*args, cwd):
    subprocess.run([OPENSSL, *args], cwd=cwd, check=True, capture_output=True, timeout=60)


class PeerPki:
    """Certificates for peer mutual TLS (-peer-cert-file, -peer-key-file, -peer-trusted-ca-file),
    made with openssl at run time in `directory` (never committed): one CA per name asked for, and
    a member certificate per host whose SAN is that host's IP (docs/security.md, "Peer TLS")."""

    def __init__(self, directory):
        if not OPENSSL:
            raise unittest.SkipTest("openssl is not installed (scripts/setup.sh installs it)")
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.cas = set()
        self.certs = {}

    def path(self, name):
        return os.path.join(self.dir, name)

    def ca(self, name="ca"):
        """A self-signed CA: returns the path of its certificate."""
        if name not in self.cas:
            run_openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                        "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2", "-subj", f"/CN={name}",
                        cwd=self.dir)
            self.cas.add(name)
        return self.path(f"{name}.crt")

    def member(self, host, ca="ca", cn=None):
        """A certificate (path, key path) for a member on `host`, signed by `ca`: SAN IP:host, usable as
        server and client certificate (every raft connection is mutual)."""
        key = (host, ca, cn)
        if key not in self.certs:
            self.ca(ca)
            name = f"{ca}-{host}-{cn or 'member'}"
            with open(self.path(f"{name}.ext"), "w") as f:
                f.write(f"subjectAltName=IP:{host}\nextendedKeyUsage=serverAuth,clientAuth\n")
            run_openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                        "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn or host}", cwd=self.dir)
            run_openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
                        "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext",
                        cwd=self.dir)
            self.certs[key] = (self.path(f"{name}.crt"), self.path(f"{name}.key"))
        return self.certs[key]

    def args(self, host, ca="ca", trusted_ca="ca"):
        cert, key = self.member(host, ca)
        return [f"-peer-cert-file={cert}", f"-peer-key-file={key}", f"-peer-trusted-ca-file={self.ca(trusted_ca)}"]


class Node:
    """One kvnode process. args are reused by restart(), like an operator re-running the same command."""

    def __init__(self, harness, name, extra_args=(), host="127.0.0.1"):
        self.harness = harness
        self.name = name
        self.host = host
        self.raft = f"{host}:{free_port(host)}"
        self.api = f"{host}:{free_port(host)}"
        self.data_dir = os.path.join(harness.tmp, name)
        self.extra_args = list(extra_args)
        self.proc = None
        self.log_path = os.path.join(harness.tmp, f"{name}.log")
        self.starts = 0
        self.tls = None  # an ssl.SSLContext: the node serves HTTPS (-cert-file), and this is how to reach it
        self.env = None  # the process's environment (None: this one's)

    def args(self):
        return [KVNODE, f"-raft-address={self.raft}", f"-api-address={self.api}",
                f"-data-dir={self.data_dir}"] + FAST_TIMING + self.extra_args

    def start(self):
        assert self.proc is None or self.proc.poll() is not None
        self.starts += 1
        log = open(self.log_path, "a")
        log.write(f"==== start #{self.starts}: {' '.join(self.args())}\n")
        log.flush()
        self.proc = subprocess.Popen(self.args(), stdout=log, stderr=subprocess.STDOUT, env=self.env)
        log.close()
        self.harness.procs.append(self.proc)
        try:
            wait_for(lambda: self.status() is not None, 15, f"{self.name} to serve /status")
        except AssertionError as e:
            code = self.proc.poll()
            raise AssertionError(f"{e}\n{self.name} {'exited with ' + str(code) if code is not None else 'is running'};"
                                 f" its log:\n{self.log()[-4000:]}") from None
        if any(str(a).startswith("-peer-cert-file") for a in self.extra_args):
            # A test meant to run with peer mTLS must not pass in plaintext.
            assert "peer TLS: every raft connection is mutual TLS" in self.log(), f"{self.name} started without peer TLS"
        return self

    def kill(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def status(self):
        r = request("GET", self.api, "/status", timeout=5, tls=self.tls)
        return r.json if r.status == 200 else None

    def set(self, key, value, timeout=15):
        return request("POST", self.api, "/set", json.dumps({"key": key, "value": value}),
                       {"Content-Type": "application/json"}, timeout, tls=self.tls)

    def delete(self, key, timeout=15):
        return request("POST", self.api, "/delete", json.dumps({"key": key}), timeout=timeout, tls=self.tls)

    def get(self, key, consistency=None, timeout=15):
        q = urllib.parse.urlencode({"key": key} | ({"consistency": consistency} if consistency else {}))
        return request("GET", self.api, "/get?" + q, timeout=timeout, tls=self.tls)

    def join(self, other, method="GET", with_api=False, name=None):
        """Asks this node to add `other` (as the README does: peerAddress only by default)."""
        q = {"peerAddress": other.raft}
        if with_api:
            q["apiAddress"] = other.api
        if name:
            q["id"] = name
        return request(method, self.api, "/join?" + urllib.parse.urlencode(q), b"" if method == "POST" else None,
                       timeout=40, tls=self.tls)

    def log(self):
        try:
            with open(self.log_path) as f:
                return f.read()
        except OSError:
            return ""


class ClusterTest(unittest.TestCase):
    """Base class: a temp dir per test, and every process killed by PID in cleanup."""

    def setUp(self):
        if not KVNODE or not os.access(KVNODE, os.X_OK):
            self.fail("set KVNODE (or pass --kvnode) to the kvnode binary")
        self.tmp = tempfile.mkdtemp(prefix="ckv-it-")
        self.procs = []
        self.nodes = []
        self.peer_pki = None  # a PeerPki once enable_peer_tls(): node() then starts nodes with peer mTLS
        self.addCleanup(self._cleanup)
        if os.environ.get("CKV_PEER_TLS") == "1":
            print("\npeer mutual TLS on (CKV_PEER_TLS=1)")
            self.enable_peer_tls()

    def enable_peer_tls(self):
        """From now on node() gives every node peer mutual TLS with a certificate for its host
        (CKV_PEER_TLS=1 turns this on for a whole test module, e.g. the fault test)."""
        self.peer_pki = PeerPki(os.path.join(self.tmp, "peer-pki"))
        return self.peer_pki

    def _cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()  # SIGKILL by PID
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        if self._failed() or os.environ.get("CKV_KEEP_LOGS"):
            for n in self.nodes:
                print(f"\n----- log of {n.name} ({n.raft} / {n.api}) -----\n{n.log()[-6000:]}")
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _failed(self):
        """Whether this test has failed so far. Not _outcome.success: unittest resets that to True while each
        cleanup runs, so a cleanup never saw the failure (and never printed the logs)."""
        result = getattr(getattr(self, "_outcome", None), "result", None)
        return result is not None and any(t is self for t, _ in result.failures + result.errors)

    def node(self, name, *extra_args, host="127.0.0.1"):
        if self.peer_pki is not None and not any(str(a).startswith("-peer-") for a in extra_args):
            extra_args = (*self.peer_pki.args(host), *extra_args)
        n = Node(self, name, extra_args, host)
        self.nodes.append(n)
        return n

    def start_joined(self, make, count=3):
        """Starts make("n1", "-bootstrap"), then n2..n<count> with -join=n1's API (make(name, *args) returns an
        unstarted Node); returns them once n1 lists them all as voters with their API addresses."""
        n1 = make("n1", "-bootstrap").start()
        self.wait_leader([n1])
        nodes = [n1] + [make(f"n{i}", f"-join={n1.api}").start() for i in range(2, count + 1)]
        self.wait_voters(n1, nodes)
        return nodes

    # --- waiting helpers -------------------------------------------------

    def wait_leader(self, nodes, timeout=20):
        """Waits until every live node in `nodes` agrees on one leader among them; returns that Node."""
        live = [n for n in nodes if n.alive()]

        def agreed():
            sts = [n.status() for n in live]
            if any(s is None for s in sts):
                return None
            leaders = {s["leader"] for s in sts}
            if len(leaders) != 1 or "" in leaders:
                return None
            (addr,) = leaders
            return next((n for n in live if n.raft == addr), None)

        return wait_for(agreed, timeout, f"a leader agreed by {[n.name for n in live]}")

    def wait_voters(self, via, nodes, timeout=30, with_api=True):
        """Waits until `via` sees exactly `nodes` as voters (and, with_api, with their API addresses)."""
        want = {n.raft: n.api for n in nodes}

        def ok():
            s = via.status()
            got = {m["raftAddress"]: m["apiAddress"] for m in s["members"] if m["role"] == "voter"}
            if with_api:
                return got == want
            return set(got) == set(want)

        wait_for(ok, timeout, f"{via.name} to list voters {sorted(want)}")

    def write_with_retry(self, nodes, key, value, timeout=20):
        """Writes via the nodes in turn until one acknowledges; returns the Reply. Retries 503/504/conn errors."""
        deadline = time.monotonic() + timeout
        i = 0
        last = None
        while time.monotonic() < deadline:
            n = nodes[i % len(nodes)]
            i += 1
            if not n.alive():
                continue
            try:
                last = n.set(key, value, timeout=10)
                if last.status == 200:
                    return last
                self.assertIn(last.status, (503, 504), last)
            except OSError as e:
                last = e
            time.sleep(0.05)
        self.fail(f"write {key} was never acknowledged: {last}")
