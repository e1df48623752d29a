"""Integration, Jepsen-style: concurrent clients on a 5-node cluster under kill -9, pauses, partitions and membership changes; the history must be linearizable."""

import base64
import http.client
import json
import os
import random
import shutil
import signal
import subprocess
import threading
import time
import traceback
import unittest
import urllib.parse

import fault_checks
import linearizability
from fault_workloads import (LEASE_TTL_S, Credentials, LeaseKeeper, Revoker, Watcher, auth_headers, http_call,
                             range_state, truth_watch)
from kvcluster import ClusterTest, free_port, wait_for

# The default run is short enough for CI; scripts/test.sh --long sets more.
DURATION_S = float(os.environ.get("CKV_FAULT_SECONDS", "40"))
SEED = int(os.environ.get("CKV_FAULT_SEED", str(int(time.time()) % 100000)))
CLIENTS = 10
KEYS = [f"r{i}" for i in range(8)]
# Server-side bound on a write or read barrier; the client waits longer so
# that it normally hears the server's 504 rather than timing out itself.
COMMIT_TIMEOUT_MS = 2000
CLIENT_TIMEOUT_S = 6
# "stale" makes the clients read with consistency=stale: a check that this
# test and its checker can fail (expect a linearizability failure), not a mode to ship.
READS = os.environ.get("CKV_FAULT_READS", "linearizable")
# "classic" keeps the fixed nemesis mix of old seeds; anything else draws the mix from the seed.
PROFILE = os.environ.get("CKV_FAULT_PROFILE", "swarm")
# Watchers (fault_workloads.Watcher) on the writers' keys: (name, key, range_end). Everything the
# clients write is under "r": the registers r0..r7, the kept-alive lease's keys and the revoked ones.
LEASE_PREFIX = "rlease/"
REVOKE_PREFIX = "rrev/"
WATCHES = [("prefix-1", "r", "s"), ("prefix-2", "r", "s"), ("key-r3", "r3", ""),
           ("revoked", REVOKE_PREFIX, fault_checks.prefix_end(REVOKE_PREFIX))]
# Once keepalives stop, the kept-alive key must be gone within its TTL plus this: a revoke to
# commit, and a leader change after the heal, which extends every lease by its TTL.
LEASE_EXPIRY_SLACK_S = 10
# Revisions at which a serializable range is compared with the replayed watch history.
SPOT_CHECKED_REVISIONS = 20
# CKV_FAULT_AUTH=1 (issue 11; with CKV_PEER_TLS=1 in ctest's integration_test_linearizable_faults_auth):
# auth is enabled before the faults start, and every client authenticates as WRITER, whose role may
# read and write everything the clients touch (the prefix "r"); membership changes and the checks
# after the run are root's. Tokens live AUTH_TOKEN_TTL_S unused on a member, so they expire during
# the run, as kills, restarts and snapshot installs make members forget them: a refused client
# authenticates again and its refused operation is recorded failed (auth refuses before or at apply).
AUTH = os.environ.get("CKV_FAULT_AUTH") == "1"
ROOT_PASSWORD = f"root-{os.getpid()}-pw"
WRITER = "writer"
WRITER_PASSWORD = f"writer-{os.getpid()}-pw"
AUTH_TOKEN_TTL_S = 3


class NemesisProfile:
    """Which faults a seed injects and how hard, drawn from the seed (swarm testing, as the
    simulator's --swarm does): some faults are switched off for a whole run and others turned
    up, so one run explores e.g. pauses alone at a high rate, another long leader partitions."""

    KINDS = ("kill", "pause", "partition", "replace")

    def __init__(self, seed, mode):
        # Its own stream: the schedule's random choices stay those of Random(seed).
        rng = random.Random(f"nemesis-profile-{seed}")
        self.mode = mode
        if mode == "classic":
            self.weights = {k: 1 for k in self.KINDS}
            self.gap_s = (0.5, 2)
            self.leader_bias = 0.5
            self.down_s = (0.3, 3)
            self.pause_s = (0.5, 4)
            self.partition_s = (1, 4)
            self.partition_kinds = ["halves", "isolate-leader", "bridge"]
            return
        # Each fault is off in a quarter of the runs; at least one stays on.
        self.weights = {k: (0 if rng.random() < 0.25 else rng.randint(1, 4)) for k in self.KINDS}
        if not any(self.weights.values()):
            self.weights[rng.choice(self.KINDS)] = 1
        lo = rng.choice([0.05, 0.2, 0.5, 1.0])  # intensity: from a storm to a drizzle
        self.gap_s = (lo, lo * rng.choice([2, 4, 8]))
        self.leader_bias = rng.choice([0.0, 0.3, 0.5, 0.8, 1.0])
        lo = rng.choice([0.05, 0.3, 1.0])
        self.down_s = (lo, lo + rng.choice([0.5, 3, 8]))  # brief blips to long outages
        lo = rng.choice([0.1, 0.5, 1.0])
        self.pause_s = (lo, lo + rng.choice([0.5, 4, 8]))
        lo = rng.choice([0.2, 1.0, 3.0])
        self.partition_s = (lo, lo + rng.choice([1, 4, 10]))  # long ones strand a leader with uncommitted writes
        kinds = ["halves", "isolate-leader", "bridge"]
        self.partition_kinds = [k for k in kinds if rng.random() < 0.7] or [rng.choice(kinds)]

    def faults(self, partitions_available):
        return [k for k in self.KINDS if self.weights[k] and (k != "partition" or partitions_available)]

    def describe(self):
        def r(pair):
            return f"{pair[0]:g}-{pair[1]:g} s"
        mix = " ".join(f"{k}={w}" for k, w in self.weights.items())
        return (f"nemesis profile ({self.mode}): weights {mix}; gap {r(self.gap_s)}; leader bias "
                f"{self.leader_bias:g}; down {r(self.down_s)}; pause {r(self.pause_s)}; partition "
                f"{r(self.partition_s)} of {','.join(self.partition_kinds)}")


class Firewall:
    """Partitions between node addresses with iptables, in a chain of our own so healing and
    cleanup never touch anyone else's rules. Nodes listen on distinct 127.0.0.x addresses and
    send from them (the transport binds its source address), so dropping by address cuts
    exactly the links we choose."""

    def __init__(self):
        self.chain = f"CKV{os.getpid()}"
        self.available, self.why = self._probe()
        if self.available:
            self._ipt("-N", self.chain)
            self._ipt("-I", "INPUT", "-j", self.chain)

    def _probe(self):
        if shutil.which("iptables") is None:
            return False, "iptables is not installed (scripts/setup.sh installs it)"
        if os.geteuid() != 0:
            return False, "not root"
        r = subprocess.run(["iptables", "-w", "-L", "INPUT", "-n"], capture_output=True, text=True)
        if r.returncode != 0:
            return False, f"iptables does not work here: {r.stderr.strip()}"
        return True, ""

    def _ipt(self, *args):
        subprocess.run(["iptables", "-w", *args], check=True, capture_output=True)

    def cut(self, groups):
        """Drops traffic between every pair of hosts in different groups (both directions)."""
        self.cut_pairs([(x, y) for i, a in enumerate(groups) for b in groups[i + 1:] for x in a for y in b])

    def cut_pairs(self, pairs):
        """Drops traffic between the two hosts of each pair (both directions)."""
        for x, y in pairs:
            self._ipt("-A", self.chain, "-s", x, "-d", y, "-j", "DROP")
            self._ipt("-A", self.chain, "-s", y, "-d", x, "-j", "DROP")

    def heal(self):
        if self.available:
            self._ipt("-F", self.chain)

    def close(self):
        if self.available:
            subprocess.run(["iptables", "-w", "-D", "INPUT", "-j", self.chain], capture_output=True)
            subprocess.run(["iptables", "-w", "-F", self.chain], capture_output=True)
            subprocess.run(["iptables", "-w", "-X", self.chain], capture_output=True)
            self.available = False


class History:
    """Thread-safe list of operations in the checker's format (tests/integration/linearizability.py)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.ops = []
        self.unexpected = []  # replies no fault can excuse (4xx on valid input, 500s)

    def add(self, op):
        with self.lock:
            self.ops.append(op)

    def flag(self, what):
        with self.lock:
            self.unexpected.append(what)


class LinearizableUnderFaultsTest(ClusterTest):
    NODES = 5

    def setUp(self):
        super().setUp()
        self.rng = random.Random(SEED)
        self.profile = NemesisProfile(SEED, PROFILE)
        print(f"\nseed {SEED} (replay the schedule with CKV_FAULT_SEED={SEED}"
              f"{' CKV_FAULT_PROFILE=classic' if PROFILE == 'classic' else ''}), {DURATION_S:.0f} s of faults")
        print(self.profile.describe())
        self.firewall = Firewall()
        self.addCleanup(self.firewall.close)
        if not self.firewall.available:
            print(f"partitions skipped: {self.firewall.why}")
        self.history = History()
        self.events = []  # (time, text): the nemesis log, printed with any failure
        self.members_lock = threading.Lock()
        self.next_host = 11
        self.next_name = 1
        self.removed = []  # nodes removed from the cluster and stopped
        self.all_credentials = []  # every client's Credentials (auth on)
        self.root = None

    # --- cluster -------------------------------------------------------------

    def new_node(self, *args, named=True):
        # Every node serves etcd's gRPC API: a follower forwards the clients' compare-and-set
        # txns (sent to its /v3/kv/txn gateway) to the leader's gRPC address.
        """named=False leaves the node's id at its default, its raft address, as the reference's
        /join?peerAddress= expects (the test still calls it nX)."""
        with self.members_lock:
            host = f"127.0.0.{self.next_host}"
            self.next_host += 1
            name = f"n{self.next_name}"
            self.next_name += 1
            id_args = [f"-id={name}"] if named else []
            auth_args = [f"-auth-token-ttl={AUTH_TOKEN_TTL_S}"] if AUTH else []
            grpc = f"{host}:{free_port(host)}"
            # Frequent snapshots and a short log tail: restarted and new members catch up
            # through InstallSnapshot, and compaction runs while the faults do.
            n = self.node(name, *id_args, f"-commit-timeout-ms={COMMIT_TIMEOUT_MS}", f"-grpc-address={grpc}",
                          "-snapshot-threshold=500", "-snapshot-trailing=100", *auth_args, *args, host=host)
            n.grpc = grpc
            return n

    def members(self):
        with self.members_lock:
            return [n for n in self.nodes if n not in self.removed]

    def start_cluster(self):
        first = self.new_node("-bootstrap=true").start()
        self.wait_leader([first])
        for _ in range(self.NODES - 1):
            self.new_node(f"-join={first.api}").start()
        for n in self.members():
            self.wait_voters(n, self.members(), timeout=60)
        if AUTH:
            self.enable_auth(self.wait_leader(self.members()))

    # --- auth (CKV_FAULT_AUTH=1) ---------------------------------------------

    def enable_auth(self, leader):
        """root, role "rw" with READWRITE on the prefix "r", WRITER holding it, then auth on."""
        steps = [("/v3/auth/user/add", {"name": "root", "password": ROOT_PASSWORD}),
                 ("/v3/auth/user/grant", {"user": "root", "role": "root"}),
                 ("/v3/auth/role/add", {"name": "rw"}),
                 ("/v3/auth/role/grant", {"name": "rw", "perm": {"permType": "READWRITE", "key": fault_checks.b64("r"),
                                                                  "range_end": fault_checks.b64("s")}}),
                 ("/v3/auth/user/add", {"name": WRITER, "password": WRITER_PASSWORD}),
                 ("/v3/auth/user/grant", {"user": WRITER, "role": "rw"}),
                 ("/v3/auth/enable", {})]
        for path, body in steps:
            r = http_call(leader.api, "POST", path, json.dumps(body), 30)
            self.assertEqual(r[:2], ("reply", 200), f"{path}: {r}")
        self.root = Credentials(self, "root", ROOT_PASSWORD, basic=True)
        # Without credentials, nothing under "r" may be read or written now.
        r = http_call(leader.api, "POST", "/set", json.dumps({"key": "r0", "value": "x"}), 30)
        self.assertEqual(r[:2], ("reply", 401), r)
        print(f"auth enabled: clients authenticate as {WRITER} (Basic on the seed API for half of them, "
              f"tokens elsewhere; -auth-token-ttl={AUTH_TOKEN_TTL_S})")

    def credentials(self, index):
        """A client's own credentials (None while auth is off): even clients use Basic on the seed API."""
        if not AUTH:
            return None
        c = Credentials(self, WRITER, WRITER_PASSWORD, basic=index % 2 == 0)
        self.all_credentials.append(c)
        return c

    def admin_headers(self, seed_api=False):
        """root's credentials for membership changes and the checks after the run."""
        return auth_headers(self.root if AUTH else None, seed_api)

    def as_root(self, fn, *args, **kwargs):
        """fn(*args, headers=root's, **kwargs), again with a new token while a member refuses root's
        (it expired there unused, or a restart or snapshot install forgot it)."""
        for _ in range(20):
            try:
                return fn(*args, headers=self.admin_headers(), **kwargs)
            except AssertionError as e:
                if not AUTH or not self.root.refused_because(str(e)):
                    raise
            time.sleep(0.05)
        return fn(*args, headers=self.admin_headers(), **kwargs)

    def check_no_secret_logged(self):
        """No password or token the run used is in any node's log (issue 11: secrets never are)."""
        secrets = {ROOT_PASSWORD, WRITER_PASSWORD}
        for c in self.all_credentials + [self.root]:
            secrets.update(c.issued)
        for n in self.nodes:
            log = n.log()
            leaked = sorted(x for x in secrets if x in log)
            self.assertEqual(leaked, [], f"{n.name}'s log holds a secret")
        refusals = sum(c.refusals for c in self.all_credentials)
        print(f"auth: {refusals} operations refused for their credentials (re-authenticated, recorded failed); "
              f"{sum(len(c.issued) for c in self.all_credentials)} tokens issued to the clients")

    def quick_status(self, n):
        try:
            r = http_call(n.api, "GET", "/status", None, 0.5)
        except OSError:
            return None
        if r[0] != "reply" or r[1] != 200:
            return None
        return json.loads(r[2])

    def current_leader(self):
        for n in self.members():
            if n.alive():
                s = self.quick_status(n)
                if s and s.get("isLeader"):
                    return n
        return None

    def log_event(self, text):
        t = time.monotonic()
        self.events.append((t, text))
        print(f"  [{t - self.t0:7.2f}s] {text}", flush=True)

    # --- clients -------------------------------------------------------------

    def client(self, index, stop):
        rng = random.Random(SEED * 1000 + index)
        creds = self.credentials(index)
        process = index
        seq = 0
        seen = {}  # key -> the last value this client read there: what its compare-and-set expects
        while not stop.is_set():
            target = rng.choice(self.members())
            key = rng.choice(KEYS)
            roll = rng.random()
            if roll < 0.15 and seen.get(key) is not None:
                outcome = self.cas(process, key, seen, f"{index}-{seq}", target, creds)
                seq += 1
                if outcome == "info":
                    process += CLIENTS  # as below: the old process may still have its op in flight
                continue
            if roll < 0.4:
                f, value = "set", f"{index}-{seq}"
                seq += 1
                path, body = "/set", json.dumps({"key": key, "value": value})
            elif roll < 0.5:
                f, value = "delete", None
                path, body = "/delete", json.dumps({"key": key})
            else:
                f, value = "get", None
                query = {"key": key} | ({"consistency": "stale"} if READS == "stale" else {})
                path, body = "/get?" + urllib.parse.urlencode(query), None
            headers = auth_headers(creds, seed_api=True)  # may authenticate: before the op's call time
            call = time.monotonic()
            result = http_call(target.api, "POST" if body is not None else "GET", path, body, CLIENT_TIMEOUT_S,
                               headers)
            ret = time.monotonic()
            op = {"process": process, "key": key, "f": f, "value": value, "call": call, "ret": ret,
                  "node": target.name}
            if creds is not None and creds.refused(result):
                op["type"], read = "fail", None  # refused before or at apply: not done
                op["auth_refused"] = True  # check_acked_writes_in holds us to "not done"
            else:
                op["type"], read = self.classify(f, key, result, target)
            if f == "get":
                op["value"] = read
                if op["type"] == "ok":
                    seen[key] = read
            self.history.add(op)
            if op["type"] == "info":
                process += CLIENTS  # the old process may still have its op in flight (Jepsen's rule)
            if result[0] == "refused":
                time.sleep(0.02)  # a dead node refuses at once: do not spin on it

    def cas(self, process, key, seen, value, target, creds=None):
        """Compare-and-set through etcd's gateway: a txn that puts `value` if the key still holds
        the value this client last saw, else reads it. Recorded as a cas when it succeeded and as
        a get of what it found when the compare failed (the checker's CAS register)."""
        expected = seen[key]
        k = base64.b64encode(key.encode()).decode()
        body = json.dumps({
            "compare": [{"key": k, "target": "VALUE", "result": "EQUAL",
                         "value": base64.b64encode(expected.encode()).decode()}],
            "success": [{"request_put": {"key": k, "value": base64.b64encode(value.encode()).decode()}}],
            "failure": [{"request_range": {"key": k}}]})
        headers = auth_headers(creds)
        call = time.monotonic()
        result = http_call(target.api, "POST", "/v3/kv/txn", body, CLIENT_TIMEOUT_S, headers)
        ret = time.monotonic()
        op = {"process": process, "key": key, "f": "cas", "value": value, "expected": expected, "call": call,
              "ret": ret, "node": target.name}
        if creds is not None and creds.refused(result):
            op["type"] = "fail"  # refused before or at apply: not done
            op["auth_refused"] = True
        elif result[0] == "refused":
            op["type"] = "fail"
        elif result[0] == "lost":
            op["type"] = "info"
        elif result[1] == 200:
            answer = json.loads(result[2])
            op["type"] = "ok"
            if answer.get("succeeded"):
                seen[key] = value
            else:
                kvs = answer["responses"][0]["response_range"].get("kvs", [])
                read = base64.b64decode(kvs[0]["value"]).decode() if kvs else None
                op.update(f="get", value=read)
                del op["expected"]
                seen[key] = read
        else:
            # etcd's gateway errors: only a timeout leaves the outcome open; "no leader", "leader
            # changed" (503) and a full disk (429) mean nothing was applied.
            try:
                message = json.loads(result[2]).get("message", "")
            except ValueError:
                message = ""
            if result[1] == 503 and message.startswith("etcdserver: request timed out"):
                op["type"] = "info"
            elif result[1] in (503, 429):
                op["type"] = "fail"
            else:
                self.history.flag(f"{target.name}: cas {key} answered {result[1]} {result[2][:200]!r}")
                op["type"] = "info"
        self.history.add(op)
        if result[0] == "refused":
            time.sleep(0.02)
        return op["type"]

    def classify(self, f, key, result, target):
        """Maps one HTTP outcome to (ok | fail | info, value read)."""
        if result[0] == "refused":
            return "fail", None
        if result[0] == "lost":
            return "info", None
        _, status, raw = result
        if f == "get":
            if status == 200:
                body = json.loads(raw)
                if list(body) != [key]:
                    self.history.flag(f"{target.name}: GET {key} answered {body}")
                return "ok", body.get(key)
            if status == 404:
                return "ok", None
        elif status == 200:
            return "ok", None
        if status in (503, 421):
            return "fail", None  # nothing was proposed, or another leader's entry took its place
        if status == 504:
            return "info", None  # outcome unknown, as the body says
        self.history.flag(f"{target.name}: {f} {key} answered {status} {raw[:200]!r}")
        return "info", None

    # --- nemesis -------------------------------------------------------------

    def pick_victim(self):
        """The leader half of the time (the interesting case), else any live member."""
        live = [n for n in self.members() if n.alive()]
        leader = self.current_leader()
        if leader is not None and self.rng.random() < self.profile.leader_bias:
            return leader
        return self.rng.choice(live)

    def fault_kill(self):
        v = self.pick_victim()
        self.log_event(f"kill -9 {v.name}{' (leader)' if v is self.current_leader() else ''}")
        v.kill()
        time.sleep(self.rng.uniform(*self.profile.down_s))
        self.log_event(f"restart {v.name}")
        v.start()

    def fault_pause(self):
        v = self.pick_victim()
        self.log_event(f"SIGSTOP {v.name}")
        v.proc.send_signal(signal.SIGSTOP)
        try:
            time.sleep(self.rng.uniform(*self.profile.pause_s))
        finally:
            self.log_event(f"SIGCONT {v.name}")
            v.proc.send_signal(signal.SIGCONT)

    def fault_partition(self):
        hosts = [n.host for n in self.members()]
        self.rng.shuffle(hosts)
        kind = self.rng.choice(self.profile.partition_kinds)
        if kind == "isolate-leader":
            leader = self.current_leader()
            if leader is None:
                return
            groups = [[leader.host], [h for h in hosts if h != leader.host]]
            self.firewall.cut(groups)
            self.log_event(f"partition: leader {leader.name} alone")
        elif kind == "halves":
            k = len(hosts) // 2
            groups = [hosts[:k], hosts[k:]]
            self.firewall.cut(groups)
            self.log_event(f"partition: {self.names(groups[0])} | {self.names(groups[1])}")
        else:
            # a-b and d-e cannot talk to each other; c talks to everyone (non-transitive).
            mid = len(hosts) // 2
            left, bridge, right = hosts[:mid], hosts[mid], hosts[mid + 1:]
            self.firewall.cut_pairs([(x, y) for x in left for y in right])
            self.log_event(f"partition: bridge {self.names(left)} | {self.names([bridge])} | {self.names(right)}")
        try:
            time.sleep(self.rng.uniform(*self.profile.partition_s))
        finally:
            self.firewall.heal()
            self.log_event("heal")

    def fault_replace_member(self):
        """Removes a member (the leader half of the time) through any node, stops it, and joins a
        brand-new node in its place: the cluster stays at five voters."""
        if self.next_host > 250:  # every new node takes a new 127.0.0.x address
            return self.fault_kill()
        victim = self.pick_victim()
        self.log_event(f"remove {victim.name}")
        if not self.membership_call("POST", "/remove", {"peerAddress": victim.raft}, f"removing {victim.name}"):
            return
        with self.members_lock:
            self.removed.append(victim)
        victim.kill()
        if AUTH:
            # kvnode -join and a bare node's own registration send no credentials, which auth
            # refuses: root adds the new node with all its addresses (docs/security.md).
            fresh = self.new_node().start()
            if not self.membership_call("GET", "/join", {"peerAddress": fresh.raft, "apiAddress": fresh.api,
                                                         "grpcAddress": fresh.grpc, "id": fresh.name},
                                        f"joining {fresh.name}"):
                return
            self.log_event(f"added {fresh.name} (/join as root)")
        elif self.rng.random() < 0.5:
            live = [n for n in self.members() if n.alive()]
            fresh = self.new_node(f"-join={self.rng.choice(live).api}").start()
            self.log_event(f"added {fresh.name} (kvnode -join)")
        else:
            # The reference README's way: start it bare, then /join with its raft address only
            # (through any member); it registers its own API address once it is a member.
            fresh = self.new_node(named=False).start()
            if not self.membership_call("GET", "/join", {"peerAddress": fresh.raft}, f"joining {fresh.name}"):
                return
            self.log_event(f"added {fresh.name} (/join?peerAddress=)")
        wait_for(lambda: any(m["raftAddress"] == fresh.raft and m["role"] == "voter" for m in fresh.status()["members"]),
                 60, f"{fresh.name} to become a voter")
        self.log_event(f"{fresh.name} is a voter")

    def membership_call(self, method, path, params, what):
        """Sends a membership request through random live members until one answers 200 (True).
        503/504 are retried, as a client would; any other answer is flagged (False)."""
        deadline = time.monotonic() + 60
        target = path + "?" + urllib.parse.urlencode(params)
        retried = False
        while True:
            via = self.rng.choice([n for n in self.members() if n.alive()])
            r = http_call(via.api, method, target, "" if method == "POST" else None, 45,
                          self.admin_headers(seed_api=True))
            if r[0] == "reply" and r[1] == 200:
                return True
            if r[0] == "reply" and r[1] == 404 and path == "/remove" and retried:
                return True  # an earlier attempt with an unknown outcome did remove it (docs/api.md)
            retried = True
            if r[0] == "reply" and r[1] not in (503, 504):
                self.history.flag(f"{what} via {via.name}: {r[1]} {r[2][:200]!r}")
                return False
            self.assertLess(time.monotonic(), deadline, f"{what} never succeeded: {r}")
            time.sleep(0.2)

    def names(self, hosts):
        by_host = {n.host: n.name for n in self.nodes}
        return ",".join(by_host[h] for h in hosts)

    def nemesis(self, stop):
        run = {"kill": self.fault_kill, "pause": self.fault_pause, "partition": self.fault_partition,
               "replace": self.fault_replace_member}
        kinds = self.profile.faults(self.firewall.available)
        if not kinds:  # partitions alone were drawn but iptables is missing
            kinds = ["kill"]
        weights = [self.profile.weights[k] or 1 for k in kinds]
        while not stop.is_set():
            run[self.rng.choices(kinds, weights)[0]]()
            stop.wait(self.rng.uniform(*self.profile.gap_s))

    # --- the test ------------------------------------------------------------

    def test_history_is_linearizable_under_faults(self):
        self.start_cluster()
        self.t0 = time.monotonic()
        _, base_revision = self.as_root(range_state, self.wait_leader(self.members()), "r", "s")
        watchers = [Watcher(self, SEED * 1000 + 500 + i, name, key, end, base_revision + 1,
                            self.credentials(CLIENTS + i))
                    for i, (name, key, end) in enumerate(WATCHES)]
        for w in watchers:
            w.start(w.run)
        keeper = LeaseKeeper(self, SEED * 1000 + 600, LEASE_PREFIX, self.credentials(CLIENTS + len(WATCHES)))
        keeper.begin()
        revoker = Revoker(self, SEED * 1000 + 700, REVOKE_PREFIX, self.credentials(CLIENTS + len(WATCHES) + 1))
        revoker.start(revoker.run)
        stop_clients = threading.Event()
        stop_nemesis = threading.Event()
        clients = [threading.Thread(target=self.client, args=(i, stop_clients)) for i in range(CLIENTS)]
        for t in clients:
            t.start()
        nemesis_error = []

        def run_nemesis():
            try:
                self.nemesis(stop_nemesis)
            except Exception:  # reported below; the clients must still be stopped
                nemesis_error.append(traceback.format_exc())

        nemesis = threading.Thread(target=run_nemesis)
        nemesis.start()
        try:
            time.sleep(DURATION_S)
        finally:
            stop_nemesis.set()
            nemesis.join(timeout=60)
            self.firewall.heal()
            for n in self.members():
                if n.proc is not None and n.proc.poll() is None:
                    n.proc.send_signal(signal.SIGCONT)
            self.log_event("faults over; clients go on against the healed cluster")
            healed_at = time.monotonic()
            # The lease's keepalives stop now: its key expires while the clients go on.
            keeper.stop.set()
            revoker.finish()
            try:
                for n in self.members():
                    if not n.alive():
                        n.start()
                # Liveness: after healing, the cluster must serve writes again.
                try:
                    wait_for(lambda: self.acked_writes_since(healed_at) >= 20, 30,
                             "20 acknowledged writes after the faults healed")
                except AssertionError:
                    for n in self.members():
                        print(f"status of {n.name}: {self.quick_status(n)}")
                    raise
            finally:
                stop_clients.set()
                for t in clients:
                    t.join(timeout=CLIENT_TIMEOUT_S + 10)
        self.assertEqual(nemesis_error, [])
        self.wait_lease_expired(keeper)
        self.final_reads()
        ops = self.history.ops
        print(linearizability.summarize(ops))
        self.assertEqual(self.history.unexpected, [], "replies that no fault excuses")
        result = linearizability.check_history(ops)
        if result.failures:
            self.fail("history is not linearizable:\n" + "\n\n".join(f.explanation for f in result.failures))
        self.assertEqual(result.unknown_keys, [], "the checker ran out of budget on these keys")
        self.check_watches_and_leases(watchers, keeper, revoker)
        for n in self.members():
            self.assertTrue(n.alive(), f"{n.name} died on its own:\n{n.log()[-3000:]}")
        for n in self.nodes:  # removed ones too: a sanitizer report is a bug wherever it happens
            for marker in ("ERROR: AddressSanitizer", "runtime error:", "WARNING: ThreadSanitizer"):
                self.assertNotIn(marker, n.log(), f"{n.name}'s log has a sanitizer report")
        if AUTH:
            self.check_no_secret_logged()

    def fail_with_seed(self, what, problems):
        shown = "\n".join(problems[:30]) + (f"\n... and {len(problems) - 30} more" if len(problems) > 30 else "")
        self.fail(f"seed {SEED}: {what}:\n{shown}")

    def wait_lease_expired(self, keeper):
        """With its keepalives stopped, the kept-alive key must go within its TTL (+ slack)."""
        keeper.stop.set()
        keeper.thread.join(timeout=30)
        stopped = time.monotonic()
        last = keeper.last_renewal()
        try:
            if last is not None:
                deadline = last["ret"] + last["ttl"] + LEASE_EXPIRY_SLACK_S
                wait_for(lambda: keeper.seen_absent_between(last["send"], deadline),
                         max(1.0, deadline - time.monotonic()),
                         f"the key of lease generation {last['gen']} to expire within {last['ttl']} s + "
                         f"{LEASE_EXPIRY_SLACK_S} s of its last keepalive (seed {SEED})")
                self.log_event(f"lease generation {last['gen']} expired after its keepalives stopped")
            # Every lease it granted goes too, also one whose attaching put was not answered
            # but committed: its expiry must not land after the final state is read below.
            node = self.members()[0]
            wait_for(lambda: self.as_root(keeper.leases_left, node) == [],
                     max(1.0, stopped + LEASE_TTL_S + LEASE_EXPIRY_SLACK_S - time.monotonic()),
                     f"every lease the keeper granted to expire once its keepalives stopped (seed {SEED})")
        finally:
            keeper.finish()

    def check_watches_and_leases(self, watchers, keeper, revoker):
        """The watchers' histories against the store's, checked first on its own (fault_checks)."""
        nodes = self.members()
        leader = self.wait_leader(nodes, timeout=30)
        final_state, final_revision = self.as_root(range_state, leader, "r", "s")
        truths = {}
        for n in nodes:
            events, revision, compacted = self.as_root(truth_watch, n, "r", "s", 1, 30)
            self.assertEqual(compacted, 0, f"{n.name}: the history was compacted (the test never compacts)")
            self.assertEqual(revision, final_revision, f"{n.name}'s progress revision after the quiesce")
            truths[n.name] = events
        truth = truths[leader.name]
        for name, events in truths.items():
            if events != truth:
                diff = next(i for i, (a, b) in enumerate(zip(events + [None] * len(truth), truth + [None] * len(events)))
                            if a != b)
                self.fail_with_seed(f"{name}'s history differs from {leader.name}'s from event {diff}",
                                    [f"{name}: {events[diff:diff + 3]}", f"{leader.name}: {truth[diff:diff + 3]}"])
        problems = fault_checks.check_truth(truth, final_state)
        # Every write of the run is under "r" and a revision is made only by a change: no revision is missing.
        missing = sorted(set(range(2, final_revision + 1)) - {e["rev"] for e in truth})
        if missing:
            problems.append(f"revisions missing from the history: {missing[:20]}")
        rng = random.Random(SEED)
        for revision in sorted(rng.sample(range(1, final_revision + 1), min(SPOT_CHECKED_REVISIONS, final_revision))):
            n = rng.choice(nodes)
            state, _ = self.as_root(range_state, n, "r", "s", revision=revision, serializable=True)
            if state != fault_checks.replay(truth, upto=revision):
                problems.append(f"a range at revision {revision} on {n.name} differs from the watched history")
        problems += self.check_acked_writes_in(truth)
        problems += fault_checks.check_revoked_in_one_revision(truth, revoker.revoked)
        problems += revoker.left_behind
        revoked = {k for keys in revoker.revoked for k in keys}
        for n in nodes:
            stale, _ = self.as_root(range_state, n, REVOKE_PREFIX, fault_checks.prefix_end(REVOKE_PREFIX),
                                    serializable=True)
            problems += [f"{n.name} still holds {k}, whose lease was revoked" for k in sorted(revoked & set(stale))]
        if problems:
            self.fail_with_seed("the store's history (watched from revision 1 after the run) is wrong", problems)
        for w in watchers:
            last = max((e["rev"] for e in truth
                        if fault_checks.in_range(e["key"], w.key, w.range_end) and e["rev"] >= w.sessions[0]["start"]),
                       default=0)
            wait_for(lambda: w.last_revision() >= last, 30, f"watcher {w.name} to reach revision {last} (seed {SEED})")
            w.finish()
        for w in watchers:
            record = w.record()
            sessions = record["sessions"]
            events = sum(len(r) for s in sessions for r in s["responses"])
            ends = {}
            for s in sessions:
                kind = (s["end"] or "").split(":")[0]
                ends[kind] = ends.get(kind, 0) + 1
            print(f"watcher {w.name}: {events} events over {len(sessions)} sessions (ends: {ends})")
            problems += fault_checks.check_watcher(record, truth, through=final_revision)
        renewals, reads, expiries = keeper.renewals, keeper.reads, keeper.expiries
        print(f"kept-alive lease: {keeper.gen} generations, {len(renewals)} renewals, {len(expiries)} expiries; reads "
              f"{sum(r['present'] is True for r in reads)} present, {sum(r['present'] is False for r in reads)} "
              f"absent, {sum(r['present'] is None for r in reads)} unanswered; {len(revoker.revoked)} leases revoked")
        problems += fault_checks.check_lease_kept(renewals, reads, expiries)
        if problems:
            self.fail_with_seed("watch or lease guarantees broken", problems)

    def check_acked_writes_in(self, truth):
        """Every acknowledged write of the registers is a put in the history; every put there was written."""
        puts = {}
        for e in truth:
            if e["type"] == "PUT" and e["key"] in KEYS:
                puts.setdefault((e["key"], e["value"]), []).append(e["rev"])
        with self.history.lock:
            written = [op for op in self.history.ops if op["f"] in ("set", "cas")]
        problems = [f"acknowledged {op['f']} {op['key']}={op['value']!r} ({op['node']}) is not in the history"
                    for op in written if op["type"] == "ok" and (op["key"], op["value"]) not in puts]
        # A write refused for its credentials was recorded failed: it must not have happened.
        problems += [f"{op['f']} {op['key']}={op['value']!r} ({op['node']}) was refused for its credentials but "
                     f"is in the history at revision {puts[(op['key'], op['value'])]}"
                     for op in written if op.get("auth_refused") and (op["key"], op["value"]) in puts]
        attempted = {(op["key"], op["value"]) for op in written}
        problems += [f"put {k}={v!r} at {revs} was never written by a client" for (k, v), revs in puts.items()
                     if (k, v) not in attempted]
        return problems

    def acked_writes_since(self, t):
        with self.history.lock:
            return sum(1 for op in self.history.ops
                       if op["f"] != "get" and op["type"] == "ok" and op["call"] >= t)

    def final_reads(self):
        """Every member converges: same applied index and same value for every key, and a
        linearizable read of every key through every node joins the checked history."""
        nodes = self.members()
        leader = self.wait_leader(nodes, timeout=30)

        def converged():
            commit = leader.status()["commitIndex"]
            return all(n.status()["appliedIndex"] >= commit for n in nodes)

        wait_for(converged, 30, "every member to apply the leader's commit index")
        process = 100000
        for n in nodes:
            for key in KEYS:
                call = time.monotonic()
                r = http_call(n.api, "GET", "/get?key=" + key, None, CLIENT_TIMEOUT_S, self.admin_headers(True))
                ret = time.monotonic()
                self.assertEqual(r[0], "reply", f"final read of {key} on {n.name}: {r}")
                self.assertIn(r[1], (200, 404), f"final read of {key} on {n.name}: {r}")
                value = json.loads(r[2])[key] if r[1] == 200 else None
                self.history.add({"process": process, "key": key, "f": "get", "value": value,
                                  "type": "ok", "call": call, "ret": ret, "node": n.name})
                process += 1
        for key in KEYS:
            stale = {}
            for n in nodes:
                r = http_call(n.api, "GET", f"/get?key={key}&consistency=stale", None, CLIENT_TIMEOUT_S,
                              self.admin_headers(True))
                self.assertEqual(r[0], "reply", f"stale read of {key} on {n.name}: {r}")
                stale[n.name] = json.loads(r[2]) if r[1] == 200 else None
            self.assertEqual(len({json.dumps(v, sort_keys=True) for v in stale.values()}), 1,
                             f"members disagree on {key}: {stale}")


if __name__ == "__main__":
    unittest.main()
