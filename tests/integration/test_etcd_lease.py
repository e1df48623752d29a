"""Integration: etcd's Lease API (etcdctl lease grant/keep-alive/timetolive/revoke/list, put --lease, the /v3/lease gateway) on a 3-node kvnode cluster, through a follower and the leader, expiry after the TTL, a keepalive surviving a leader kill -9, and a real etcd for comparison."""

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import unittest

import test_etcd_cluster as etcd_cluster  # a module attribute: its tests are not collected again here
from kvcluster import ClusterTest, request, wait_for

ETCDCTL = shutil.which("etcdctl")
ETCD = shutil.which("etcd")


def run_etcdctl(endpoint, args, stdin=None, timeout=60):
    env = dict(os.environ, ETCDCTL_API="3")
    return subprocess.run([ETCDCTL, f"--endpoints={endpoint}", "--dial-timeout=5s", "--command-timeout=10s", *args],
                          env=env, input=stdin, capture_output=True, text=True, timeout=timeout)


def post(api, path, body):
    return request("POST", api, path, json.dumps(body) if isinstance(body, dict) else body,
                   {"Content-Type": "application/json"})


def granted_id(p):
    m = re.match(r"lease ([0-9a-f]{16}) granted with TTL\((\d+)s\)", p.stdout)
    assert m, f"no lease granted: {p.stdout!r} {p.stderr!r}"
    return m.group(1), int(m.group(2))


def base64_decode(s):
    return base64.b64decode(s).decode()


def errors(p):
    return [line for line in p.stderr.splitlines() if line.startswith("Error:")]


def normalize(text, ids):
    """Lease ids as <L0>, <L1>... in order of appearance; 'remaining(Ns)' kept only as a shape."""
    for i, lid in enumerate(ids):
        text = text.replace(lid, f"<L{i}>")
    text = re.sub(r"remaining\(\d+s\)", "remaining(Ns)", text)
    # etcd lists a lease's keys in its map's order (random); ours are sorted.
    return re.sub(r"attached keys\(\[([^\]]*)\]\)", lambda m: f"attached keys([{' '.join(sorted(m.group(1).split()))}])",
                  text)


class Lines:
    """A process whose output lines are collected by a thread, so a test can wait for one without blocking."""

    def __init__(self, test, args):
        env = dict(os.environ, ETCDCTL_API="3")
        self.proc = subprocess.Popen([ETCDCTL, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        test.procs.append(self.proc)  # killed by PID in cleanup
        self.lines = []
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_line(self, pred, timeout, what):
        return wait_for(lambda: next((x for x in self.lines if pred(x)), None), timeout, what)


class EtcdLeaseTest(ClusterTest):
    def start_cluster(self):
        nodes = etcd_cluster.EtcdClusterTest.start_cluster(self)
        leader = self.wait_leader(nodes)
        follower = next(n for n in nodes if n is not leader)
        return nodes, leader, follower

    def key_on(self, node, key):
        p = run_etcdctl(node.grpc, ["get", key, "--consistency=s", "--print-value-only"])
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout

    def test_grant_keepalive_timetolive_revoke_list_through_a_follower_and_the_leader(self):
        if not ETCDCTL:
            self.skipTest("etcdctl is not installed (Debian etcd-client; scripts/setup.sh)")
        nodes, leader, follower = self.start_cluster()
        for via, tag in ((follower, "f"), (leader, "l")):
            lid, ttl = granted_id(run_etcdctl(via.grpc, ["lease", "grant", "60"]))
            self.assertEqual(ttl, 60)
            for k in (f"{tag}/b", f"{tag}/a"):
                p = run_etcdctl(via.grpc, ["put", f"--lease={lid}", k, "v"])
                self.assertEqual((p.returncode, p.stdout), (0, "OK\n"), p.stderr)
            p = run_etcdctl(via.grpc, ["lease", "timetolive", "--keys", lid])
            self.assertRegex(p.stdout, rf"^lease {lid} granted with TTL\(60s\), remaining\((59|60)s\), "
                                       rf"attached keys\(\[{tag}/a {tag}/b\]\)\n$")
            p = run_etcdctl(via.grpc, ["-w", "json", "lease", "timetolive", "--keys", lid])
            j = json.loads(p.stdout)
            self.assertEqual((j["id"], j["granted-ttl"], len(j["keys"])), (int(lid, 16), 60, 2))
            p = run_etcdctl(via.grpc, ["lease", "keep-alive", "--once", lid])
            self.assertEqual(p.stdout, f"lease {lid} keepalived with TTL(60)\n", p.stderr)
            p = run_etcdctl(via.grpc, ["lease", "list"])
            self.assertIn(lid, p.stdout.split())
            p = run_etcdctl(via.grpc, ["lease", "revoke", lid])
            self.assertEqual(p.stdout, f"lease {lid} revoked\n", p.stderr)
            # The keys went with it, on every member, in one revision.
            for n in nodes:
                wait_for(lambda: self.key_on(n, f"{tag}/a") == "" and self.key_on(n, f"{tag}/b") == "", 10,
                         f"{n.name} to drop the revoked lease's keys")
            p = run_etcdctl(via.grpc, ["lease", "timetolive", lid])
            self.assertEqual(p.stdout, f"lease {lid} already expired\n")
            self.assertNotIn(lid, run_etcdctl(via.grpc, ["lease", "list"]).stdout.split())
            # Unknown leases: etcd's errors.
            self.assertEqual(errors(run_etcdctl(via.grpc, ["lease", "revoke", lid])),
                             ["Error: failed to revoke lease (etcdserver: requested lease not found)"])
            self.assertEqual(errors(run_etcdctl(via.grpc, ["lease", "keep-alive", "--once", lid])),
                             ["Error: etcdserver: requested lease not found"])
            self.assertEqual(errors(run_etcdctl(via.grpc, ["put", f"--lease={lid}", f"{tag}/c", "v"])),
                             ["Error: etcdserver: requested lease not found"])
            self.assertEqual(errors(run_etcdctl(via.grpc, ["lease", "grant", "9000000001"])),
                             ["Error: failed to grant lease (etcdserver: too large lease TTL)"])

    def test_a_leased_key_disappears_after_its_ttl_and_not_before(self):
        if not ETCDCTL:
            self.skipTest("etcdctl is not installed")
        nodes, leader, follower = self.start_cluster()
        lid, ttl = granted_id(run_etcdctl(follower.grpc, ["lease", "grant", "3"]))
        self.assertEqual(ttl, 3)
        granted_at = time.monotonic()
        self.assertEqual(run_etcdctl(follower.grpc, ["put", f"--lease={lid}", "short", "v"]).returncode, 0)
        self.assertEqual(self.key_on(follower, "short"), "v\n")
        wait_for(lambda: all(self.key_on(n, "short") == "" for n in nodes), 15, "the leased key to expire")
        # The leader's clock started at the grant's apply, after granted_at was taken above.
        self.assertGreaterEqual(time.monotonic() - granted_at, ttl - 0.1)
        self.assertEqual(run_etcdctl(leader.grpc, ["lease", "timetolive", lid]).stdout,
                         f"lease {lid} already expired\n")

    def test_a_lease_kept_alive_through_a_follower_survives_a_kill_of_the_leader(self):
        if not ETCDCTL:
            self.skipTest("etcdctl is not installed")
        nodes, leader, follower = self.start_cluster()
        ttl = 4
        lid, _ = granted_id(run_etcdctl(follower.grpc, ["lease", "grant", str(ttl)]))
        self.assertEqual(run_etcdctl(follower.grpc, ["put", f"--lease={lid}", "alive", "v"]).returncode, 0)
        env = dict(os.environ, ETCDCTL_API="3")
        keeper = subprocess.Popen([ETCDCTL, f"--endpoints={follower.grpc}", "lease", "keep-alive", lid],
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.procs.append(keeper)  # killed by PID in cleanup
        wait_for(lambda: self.key_on(follower, "alive") == "v\n", 5, "the key")
        leader.kill()  # SIGKILL
        survivors = [n for n in nodes if n is not leader]
        new_leader = self.wait_leader(survivors, timeout=20)
        self.assertIsNot(new_leader, leader)
        # For three TTLs after the failover the key must be there at every look.
        until = time.monotonic() + 3 * ttl
        looks = 0
        while time.monotonic() < until:
            self.assertEqual(self.key_on(follower, "alive"), "v\n", "the kept-alive key vanished")
            self.assertIsNone(keeper.poll(), "etcdctl keep-alive gave up")
            looks += 1
        self.assertGreater(looks, 3)
        p = run_etcdctl(new_leader.grpc, ["lease", "timetolive", lid])
        self.assertRegex(p.stdout, rf"^lease {lid} granted with TTL\({ttl}s\), remaining\(\d+s\)\n$")
        # Once nobody keeps it alive, it expires (through the new leader's revoke).
        keeper.kill()
        keeper.wait(timeout=10)
        wait_for(lambda: all(self.key_on(n, "alive") == "" for n in survivors), 3 * ttl + 10,
                 "the key to expire once its keepalives stopped")

    def lease_script(self, endpoint, prefix):
        """etcdctl steps whose outputs a real etcd and kvnode must print alike (ids normalized)."""
        out, ids = [], []
        p = run_etcdctl(endpoint, ["lease", "grant", "100"])
        ids.append(granted_id(p)[0])
        lid = ids[0]
        steps = [["put", f"--lease={lid}", f"{prefix}/a", "1"], ["put", f"--lease={lid}", f"{prefix}/b", "2"],
                 ["lease", "timetolive", "--keys", lid], ["lease", "timetolive", lid],
                 ["lease", "keep-alive", "--once", lid], ["lease", "timetolive", "0000000000001234"],
                 ["lease", "keep-alive", "--once", "1234"], ["lease", "revoke", "1234"],
                 ["put", "--lease=1234", f"{prefix}/c", "v"], ["lease", "grant", "9000000001"],
                 ["lease", "revoke", lid], ["get", f"{prefix}/", "--prefix"], ["lease", "timetolive", lid]]
        out.append(("grant", normalize(p.stdout, ids), errors(p), p.returncode))
        for args in steps:
            p = run_etcdctl(endpoint, args)
            out.append((normalize(" ".join(args), ids), normalize(p.stdout, ids), errors(p), p.returncode))
        return out

    def gateway_script(self, api):
        def norm(r):
            body = r.raw.decode() if isinstance(r.raw, bytes) else r.raw
            body = re.sub(r'"(cluster_id|member_id|raft_term|revision)":"\d+",?', "", body)
            return r.status, body
        return [norm(post(api, path, body)) for path, body in [
            ("/v3/lease/grant", {"TTL": 100, "ID": 77}), ("/v3/lease/grant", {"TTL": 100, "ID": 77}),
            ("/v3/lease/keepalive", {"ID": 77}), ("/v3/lease/keepalive", {"ID": 78}),
            ("/v3/lease/timetolive", {"ID": 78}), ("/v3/kv/lease/timetolive", {"ID": 78, "keys": True}),
            ("/v3/lease/revoke", {"ID": 77}), ("/v3/kv/lease/revoke", {"ID": 77}), ("/v3/lease/revoke", {}),
            ("/v3/lease/leases", {}), ("/v3/kv/lease/leases", {})]]

    def test_etcdctl_and_gateway_match_a_real_etcd(self):
        if not ETCDCTL or not ETCD:
            self.skipTest("etcd and etcdctl are not installed (Debian etcd-server, etcd-client; scripts/setup.sh)")
        etcd, _ = etcd_cluster.start_real_etcd(self)
        nodes, leader, follower = self.start_cluster()
        theirs = self.lease_script(etcd, "e")
        for via in (follower, leader):
            mine = self.lease_script(via.grpc, "e")
            self.assertEqual(len(mine), len(theirs))
            for m, t in zip(mine, theirs):
                self.assertEqual(m, t, f"etcdctl {t[0]} via {via.name}")
        etcd_api = etcd  # etcd serves its gateway on the client URL
        theirs = self.gateway_script(etcd_api)
        mine = self.gateway_script(follower.api)
        for i, (m, t) in enumerate(zip(mine, theirs)):
            self.assertEqual(m, t, f"gateway step {i}")


    # --- etcd's v3lock service (gateway /v3/lock/*; gRPC serves the same request layer) ---

    def lock_script(self, api):
        def norm(r):
            return r.status, re.sub(r'"(cluster_id|member_id|raft_term|revision)":"\d+",?', "", r.raw)
        b64 = lambda s: base64.b64encode(s.encode()).decode()
        steps = [("/v3/lease/grant", {"TTL": 100, "ID": 91}),
                 ("/v3/lock/lock", {"name": b64("lk"), "lease": "91"}),
                 ("/v3/lock/lock", {"name": b64("lk"), "lease": "91"}),  # the same lease: the same key, a no-op
                 ("/v3/lock/lock", {"name": b64("lk"), "lease": "12345"}),  # no such lease
                 ("/v3/lock/lock", {"name": "", "lease": "91"}),
                 ("/v3/kv/range", {"key": b64("lk/"), "range_end": b64("lk0")}),
                 ("/v3/lock/unlock", {"key": b64("lk/5b")}),
                 ("/v3/lock/unlock", {"key": b64("nokey")}),
                 ("/v3/lock/unlock", {}),
                 ("/v3/lock/lock", {"name": b64("lk"), "ignored": 1, "lease": "91"})]
        return [norm(post(api, path, body)) for path, body in steps]

    def test_lock_gateway_matches_a_real_etcd(self):
        if not ETCD:
            self.skipTest("etcd is not installed (Debian etcd-server; scripts/setup.sh)")
        etcd, _ = etcd_cluster.start_real_etcd(self)
        nodes, leader, follower = self.start_cluster()
        theirs = self.lock_script(etcd)
        mine = self.lock_script(follower.api)
        self.assertEqual(len(mine), len(theirs))
        for i, (m, t) in enumerate(zip(mine, theirs)):
            self.assertEqual(m, t, f"lock step {i}")

    def test_lock_waiters_are_served_in_order_as_holders_unlock_or_lose_their_lease(self):
        nodes, leader, follower = self.start_cluster()
        b64 = lambda s: base64.b64encode(s.encode()).decode()
        for lid in (101, 102, 103, 104, 105):
            self.assertEqual(post(leader.api, "/v3/lease/grant", {"TTL": 100, "ID": lid}).status, 200)
        answers = {}

        def lock_in_background(name, via, lease):
            def run():
                answers[lease] = post(via.api, "/v3/lock/lock", {"name": b64(name), "lease": str(lease)})
            t = threading.Thread(target=run, daemon=True)
            t.start()
            return t

        def holders(name):
            r = post(leader.api, "/v3/kv/range", {"key": b64(name + "/"), "range_end": b64(name + "0")})
            return [base64_decode(kv["key"]) for kv in r.json.get("kvs") or []]

        def revision(reply):
            return int(reply.json["header"]["revision"])

        a = post(follower.api, "/v3/lock/lock", {"name": b64("c"), "lease": "101"})
        self.assertEqual(a.status, 200, a)
        self.assertEqual(base64_decode(a.json["key"]), "c/65")
        # B (through the leader) queues behind A, then C (through a follower) behind B.
        tb = lock_in_background("c", leader, 102)
        wait_for(lambda: "c/66" in holders("c"), 20, "B's key")
        tc = lock_in_background("c", follower, 103)
        wait_for(lambda: "c/67" in holders("c"), 20, "C's key")
        self.assertNotIn(102, answers, "B was answered while A held the lock")
        unlocked = post(leader.api, "/v3/lock/unlock", {"key": a.json["key"]})
        self.assertEqual(unlocked.status, 200, unlocked)
        tb.join(20)
        self.assertEqual(answers[102].status, 200, answers.get(102))
        self.assertEqual(base64_decode(answers[102].json["key"]), "c/66")
        self.assertGreaterEqual(revision(answers[102]), revision(unlocked), "B's answer follows A's unlock")
        self.assertNotIn(103, answers, "C was answered while B held the lock")
        # B's lease ends: its key goes, and C holds the lock.
        revoked = post(follower.api, "/v3/lease/revoke", {"ID": 102})
        self.assertEqual(revoked.status, 200, revoked)
        tc.join(20)
        self.assertEqual(answers[103].status, 200, answers.get(103))
        self.assertGreaterEqual(revision(answers[103]), revision(revoked))
        self.assertEqual(holders("c"), ["c/67"])
        # A waiter whose own lease ends while it waits is not given the lock (etcd 3.5's check; 3.4 gave it).
        d = post(leader.api, "/v3/lock/lock", {"name": b64("d"), "lease": "104"})
        self.assertEqual(d.status, 200, d)
        te = lock_in_background("d", follower, 105)
        wait_for(lambda: "d/69" in holders("d"), 20, "E's key")
        self.assertEqual(post(leader.api, "/v3/lease/revoke", {"ID": 105}).status, 200)
        self.assertEqual(post(leader.api, "/v3/lock/unlock", {"key": d.json["key"]}).status, 200)
        te.join(20)
        self.assertEqual((answers[105].status, answers[105].json),
                         (500, {"error": "mutex: session is expired", "message": "mutex: session is expired",
                                "code": 2}))
        self.assertEqual(holders("d"), [])
        # Without a lease, the lock gets one of etcd's session TTL (60 s) that nobody keeps alive.
        s = post(follower.api, "/v3/lock/lock", {"name": b64("s")})
        self.assertEqual(s.status, 200, s)
        lease_hex = base64_decode(s.json["key"]).split("/", 1)[1]
        ttl = post(leader.api, "/v3/lease/timetolive", {"ID": str(int(lease_hex, 16))})
        self.assertEqual(ttl.json["grantedTTL"], "60", ttl)

    def test_a_watcher_sees_a_revoke_as_one_revision_of_deletes(self):
        if not ETCDCTL:
            self.skipTest("etcdctl is not installed")
        nodes, leader, follower = self.start_cluster()
        lid, _ = granted_id(run_etcdctl(leader.grpc, ["lease", "grant", "60"]))
        for k in ("W/a", "W/b", "W/c"):
            self.assertEqual(run_etcdctl(leader.grpc, ["put", f"--lease={lid}", k, "v"]).returncode, 0)
        rev = json.loads(run_etcdctl(leader.grpc, ["get", "W/a", "-w", "json"]).stdout)["header"]["revision"]
        watcher = Lines(self, [f"--endpoints={follower.grpc}", "watch", "--prefix", "W/", f"--rev={rev + 1}",
                               "-w", "json"])
        wait_for(lambda: run_etcdctl(follower.grpc, ["get", "W/c", "--consistency=s", "--print-value-only"]).stdout
                 == "v\n", 10, "the follower to have the keys")
        # Nothing happened after rev yet; the revoke is the next revision.
        self.assertEqual(run_etcdctl(follower.grpc, ["lease", "revoke", lid]).returncode, 0)
        line = watcher.wait_line(lambda x: x.startswith("{") and '"Events"' in x, 20, "the revoke's watch response")
        resp = json.loads(line)
        events = resp["Events"]
        self.assertEqual([(e.get("type"), base64_decode(e["kv"]["key"])) for e in events],
                         [(1, "W/a"), (1, "W/b"), (1, "W/c")])  # DELETE = 1, key order, one response
        self.assertEqual({e["kv"]["mod_revision"] for e in events}, {rev + 1})

    # ---- client recipes over txn, lease and watch: lock and election ----------------

    def keys_under(self, node, prefix):
        p = run_etcdctl(node.grpc, ["get", prefix, "--prefix", "--keys-only", "--consistency=s"])
        return [k for k in p.stdout.splitlines() if k]

    def test_lock_contention_between_two_etcdctl_processes(self):
        if not ETCDCTL:
            self.skipTest("etcdctl is not installed")
        nodes, leader, follower = self.start_cluster()
        first = Lines(self, [f"--endpoints={follower.grpc}", "lock", "--ttl=2", "L"])
        held = first.wait_line(lambda x: x.startswith("L/"), 20, "the first etcdctl to hold the lock")
        second = Lines(self, [f"--endpoints={leader.grpc}", "lock", "--ttl=2", "L"])
        # The second waits: its key exists (behind the first's), and it has not said it holds the lock.
        wait_for(lambda: len(self.keys_under(follower, "L/")) == 2, 20, "the second etcdctl's lock key")
        self.assertEqual(second.lines, [], "the second etcdctl claims a lock the first holds")
        self.assertIsNone(second.proc.poll())
        # SIGTERM: etcdctl unlocks (deletes its key, revokes its session's lease); the waiter gets the lock.
        first.proc.send_signal(signal.SIGTERM)
        got = second.wait_line(lambda x: x.startswith("L/"), 20, "the second etcdctl to get the lock")
        self.assertNotEqual(got, held)
        # kill -9 of the holder: no unlock; its session lease expires (TTL 2 s) and the lock passes on.
        third = Lines(self, [f"--endpoints={follower.grpc}", "lock", "--ttl=2", "L"])
        wait_for(lambda: len(self.keys_under(follower, "L/")) == 2, 20, "the third etcdctl's lock key")
        self.assertEqual(third.lines, [])
        second.proc.kill()
        third.wait_line(lambda x: x.startswith("L/"), 30, "the lock to pass on once the killed holder's lease expired")
        # etcdctl lock NAME cmd: the command runs while the lock is held, then the lock is released.
        third.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: self.keys_under(follower, "L/") == [], 20, "the lock to be free")
        p = run_etcdctl(follower.grpc, ["lock", "L", "--", "sh", "-c", "echo ran; exit 0"])
        self.assertEqual((p.returncode, p.stdout), (0, "ran\n"), p.stderr)
        self.assertEqual(self.keys_under(follower, "L/"), [])

    def test_elect_and_observe(self):
        if not ETCDCTL:
            self.skipTest("etcdctl is not installed")
        nodes, leader, follower = self.start_cluster()
        a = Lines(self, [f"--endpoints={follower.grpc}", "elect", "E", "pa"])
        a.wait_line(lambda x: x == "pa", 20, "pa to be elected")
        b = Lines(self, [f"--endpoints={leader.grpc}", "elect", "E", "pb"])
        wait_for(lambda: len(self.keys_under(follower, "E/")) == 2, 20, "pb's campaign key")
        self.assertEqual(b.lines, [], "pb elected while pa leads")
        watcher = Lines(self, [f"--endpoints={follower.grpc}", "elect", "-l", "E"])
        watcher.wait_line(lambda x: x == "pa", 20, "the observer to see pa")
        a.proc.send_signal(signal.SIGTERM)  # resigns
        b.wait_line(lambda x: x == "pb", 20, "pb to be elected once pa resigned")
        watcher.wait_line(lambda x: x == "pb", 20, "the observer to see pb")
        self.assertEqual([x for x in watcher.lines if not x.startswith("E/")], ["pa", "pb"])


if __name__ == "__main__":
    unittest.main()
