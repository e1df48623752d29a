"""Integration: etcd's Maintenance.HashKV, Hash, Defragment and Alarm with etcdctl and the /v3 gateway on a 3-node kvnode cluster, compared with a real etcd 3.4."""

import base64
import json
import os
import re
import unittest

import test_etcd_cluster as etcd_cluster  # a module attribute: its tests are not collected again here
from kvcluster import ClusterTest, request, wait_for
from test_etcd_cluster import ETCD, ETCDCTL, etcdctl, node_id, post, start_real_etcd

# Small WAL segments and few trailing entries, so that a defragment visibly drops segments.
SEGMENT_ARGS = ("-wal-segment-bytes=262144", "-snapshot-trailing=20", "-snapshot-threshold=100000")
NOSPACE_TEXT = "etcdserver: mvcc: database space exceeded"


def b64(s):
    return base64.b64encode(s.encode()).decode()


def data_dir_bytes(path):
    """What NodeStatus::data_dir_bytes counts: every regular file but the space reserve."""
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            if root == path and f == "space-reserve":
                continue
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total


def error_line(p):
    """etcdctl's own Error: line (its retry warnings carry timestamps and client ids)."""
    return next((line for line in p.stderr.splitlines() if line.startswith("Error:")), None)


def last_words(p, endpoint):
    """etcdctl's last line on stderr that is its own (not a timestamped retry warning), endpoint replaced."""
    own = [line for line in p.stderr.splitlines() if line and not line.startswith("{")]
    return own[-1].replace(endpoint, "<endpoint>") if own else None


def without_ids(text, *ids):
    for i in ids:
        text = text.replace(str(i), "<id>")
    return text


class EtcdMaintenanceTest(ClusterTest):
    start_cluster = etcd_cluster.EtcdClusterTest.start_cluster

    def setUp(self):
        super().setUp()
        if not ETCDCTL:
            self.skipTest("etcdctl is not installed (Debian package etcd-client)")

    def hashkv(self, nodes, *args):
        out = json.loads(etcdctl([nodes[0].grpc], "endpoint", "hashkv", "--cluster", "-w", "json", *args).stdout)
        return {e["Endpoint"]: e["HashKV"] for e in out}

    def test_hashkv_is_equal_on_every_member_and_refuses_as_etcd(self):
        nodes = self.start_cluster()
        leader = self.wait_leader(nodes)
        follower = next(n for n in nodes if n is not leader)
        for i in range(20):
            etcdctl([(leader if i % 2 else follower).grpc], "put", f"k{i}", f"v{i}")
        etcdctl([follower.grpc], "put", "k3", "again")
        etcdctl([follower.grpc], "del", "k4")
        rev = json.loads(etcdctl([leader.grpc], "get", "k0", "-w", "json").stdout)["header"]["revision"]
        etcdctl([leader.grpc], "compact", str(rev - 5))

        # Every member has applied everything once their hashes agree; they must come to agree.
        def agreed():
            got = self.hashkv(nodes)
            return got if len({(h["hash"], h["header"]["revision"]) for h in got.values()}) == 1 else None

        got = wait_for(agreed, 15, "equal HashKV on every member")
        self.assertEqual(sorted(got), sorted(f"http://{n.grpc}" for n in nodes))  # every member's client URL
        for h in got.values():
            self.assertEqual(h["compact_revision"], rev - 5)
            self.assertEqual(h["header"]["revision"], rev)
        (current,) = {h["hash"] for h in got.values()}
        # At a past revision: equal too, different from the current one; the header still shows the current revision.
        past = self.hashkv(nodes, f"--rev={rev - 2}")
        self.assertEqual(len({h["hash"] for h in past.values()}), 1, past)
        self.assertNotEqual(next(iter(past.values()))["hash"], current)
        self.assertEqual({h["header"]["revision"] for h in past.values()}, {rev})
        # A write changes it, on every member alike.
        etcdctl([follower.grpc], "put", "k0", "changed")
        changed = wait_for(agreed, 15, "equal HashKV after one more write")
        self.assertNotEqual({h["hash"] for h in changed.values()}, {current})
        # etcdctl's table: "<endpoint>, <hash>".
        lines = etcdctl([leader.grpc], "endpoint", "hashkv").stdout.splitlines()
        self.assertRegex(lines[0], rf"^{re.escape(leader.grpc)}, \d+$")

        # Compacted and future revisions: etcd's errors, word for word.
        mine = {}
        for what, r in (("future", rev + 100), ("compacted", rev - 5), ("older", 1)):
            p = etcdctl([leader.grpc], "endpoint", "hashkv", f"--rev={r}", check=False)
            mine[what] = (p.returncode, error_line(p))
        self.assertEqual(mine["future"], (1, "Error: etcdserver: mvcc: required revision is a future revision"))
        self.assertEqual(mine["compacted"], (1, "Error: etcdserver: mvcc: required revision has been compacted"))
        if not ETCD:
            return
        client, _ = start_real_etcd(self)
        for i in range(rev - 1):  # the same revisions: rev - 1 writes after revision 1
            post(client, "/v3/kv/put", json.dumps({"key": b64(f"k{i % 20}"), "value": b64("v")}))
        etcdctl([client], "compact", str(rev - 5))
        theirs = {}
        for what, r in (("future", rev + 100), ("compacted", rev - 5), ("older", 1)):
            p = etcdctl([client], "endpoint", "hashkv", f"--rev={r}", check=False)
            theirs[what] = (p.returncode, error_line(p))
        self.assertEqual(mine, theirs)
        real = json.loads(etcdctl([client], "endpoint", "hashkv", "-w", "json").stdout)[0]["HashKV"]
        self.assertEqual(etcd_cluster.shape(real), etcd_cluster.shape(next(iter(got.values()))))

    def test_defragment_drops_the_log_a_snapshot_covers(self):
        def make(name, *args):
            return self.node(name, *args, *SEGMENT_ARGS)

        nodes = self.start_joined(make)
        leader = self.wait_leader(nodes)
        value = "x" * 16384
        for i in range(60):  # ~1 MiB of entries: several 256 KiB segments on every member
            r = post(leader.api, "/v3/kv/put", json.dumps({"key": b64(f"big{i % 5}"), "value": b64(value)}))
            self.assertEqual(r.status, 200, r)
        # As etcd's operators do: compact the history first, then defragment.
        r = post(leader.api, "/v3/kv/compaction", json.dumps({"revision": r.json["header"]["revision"]}))
        self.assertEqual(r.status, 200, r)
        applied = leader.status()["appliedIndex"]
        wait_for(lambda: all(n.status()["appliedIndex"] >= applied for n in nodes), 15, "every member to apply")
        before = {n.name: data_dir_bytes(n.data_dir) for n in nodes}
        for n in nodes:
            r = post(n.api, "/v3/maintenance/defragment")
            self.assertEqual((r.status, r.raw), (200, "{}"), r)  # etcd 3.4 answers {} once done
        for n in nodes:
            after = data_dir_bytes(n.data_dir)
            self.assertLess(after, before[n.name], f"{n.name}: {before[n.name]} -> {after} bytes")
            self.assertIn("defragment: done", n.log())
            self.assertGreaterEqual(n.status()["snapshotIndex"], applied)
        # The data survived, and a defragment with nothing new to cover succeeds at once.
        r = post(nodes[2].api, "/v3/kv/range", json.dumps({"key": b64("big0")}))
        self.assertEqual(base64.b64decode(r.json["kvs"][0]["value"]).decode(), value)
        self.assertEqual(post(nodes[0].api, "/v3/maintenance/defragment").status, 200)
        # Hash over the gateway (etcd maps it to /v3/maintenance/hash): equal on every member.
        hashes = {post(n.api, "/v3/maintenance/hash").json["hash"] for n in nodes}
        self.assertEqual(len(hashes), 1, hashes)

    def test_defrag_and_alarms_with_etcdctl_as_a_real_etcd(self):
        nodes = self.start_cluster()
        leader = self.wait_leader(nodes)
        follower = next(n for n in nodes if n is not leader)
        etcdctl([follower.grpc], "put", "a", "1")
        before = {n.name: data_dir_bytes(n.data_dir) for n in nodes}
        p = etcdctl([follower.grpc], "defrag", "--cluster")
        self.assertEqual(sorted(p.stdout.splitlines()),
                         sorted(f"Finished defragmenting etcd member[http://{n.grpc}]" for n in nodes))
        for n in nodes:
            # A snapshot file now, but no more than a few KiB: the preallocated WAL segment dominates.
            self.assertLessEqual(data_dir_bytes(n.data_dir), before[n.name] + 64 * 1024, n.name)

        mine = self.alarm_script(follower.grpc, follower.api, node_id(follower.raft))
        if not ETCD:
            return
        client, _ = start_real_etcd(self)
        real_id = int(post(client, "/v3/maintenance/status").json["header"]["member_id"])
        etcdctl([client], "put", "a", "1")
        theirs = self.alarm_script(client, client, real_id)
        self.assertEqual(mine, theirs)

    def alarm_script(self, grpc, api, member_id):
        """The alarm walk-through on one endpoint; returns what it saw, member ids replaced by <id>."""
        seen = []

        def run(*args):
            p = etcdctl([grpc], *args, check=False)
            seen.append((args, p.returncode, without_ids(p.stdout, member_id), error_line(p)))
            return p

        run("alarm", "list")
        self.assertEqual(seen[-1][1:3], (0, ""))
        r = post(api, "/v3/maintenance/alarm", json.dumps({"action": "ACTIVATE", "memberID": str(member_id),
                                                           "alarm": "NOSPACE"}))
        seen.append(("activate", r.status, without_ids(r.raw, member_id)))
        self.assertEqual(r.json, {"alarms": [{"memberID": str(member_id), "alarm": "NOSPACE"}]})
        run("alarm", "list")
        self.assertEqual(seen[-1][2], "memberID:<id> alarm:NOSPACE \n")
        run("put", "b", "1")
        self.assertEqual(seen[-1][1], 1)
        self.assertEqual(seen[-1][3], f"Error: {NOSPACE_TEXT}")
        run("lease", "grant", "60")
        self.assertIn(NOSPACE_TEXT, seen[-1][3])
        run("del", "a")
        self.assertEqual(seen[-1][1:3], (0, "1\n"))  # deletes still work
        run("get", "a")
        self.assertEqual(seen[-1][1], 0)
        status = json.loads(etcdctl([grpc], "endpoint", "status", "-w", "json").stdout)[0]["Status"]
        seen.append(("status errors", [without_ids(e, member_id) for e in status.get("errors", [])]))
        self.assertEqual(seen[-1][1], ["memberID:<id> alarm:NOSPACE "])
        r = post(api, "/v3/kv/put", json.dumps({"key": b64("c"), "value": b64("1")}))
        seen.append(("gateway put", r.status, r.raw))
        self.assertEqual(r.status, 429, r)
        # A txn that would put on either branch is refused; one that only deletes is not.
        put_op = {"request_put": {"key": b64("c"), "value": b64("1")}}
        r = post(api, "/v3/kv/txn", json.dumps({"failure": [put_op]}))
        seen.append(("txn with a put", r.status, r.raw))
        self.assertEqual(r.status, 429, r)
        r = post(api, "/v3/kv/txn", json.dumps({"success": [{"request_delete_range": {"key": b64("zz")}}]}))
        seen.append(("txn without a put", r.status))
        self.assertEqual(r.status, 200, r)
        run("alarm", "disarm")
        self.assertEqual(seen[-1][1:3], (0, "memberID:<id> alarm:NOSPACE \n"))
        run("alarm", "list")
        run("put", "b", "2")
        self.assertEqual(seen[-1][1:3], (0, "OK\n"))
        r = post(api, "/v3/maintenance/alarm", json.dumps({"action": "DEACTIVATE", "memberID": "1", "alarm": "NOSPACE"}))
        seen.append(("deactivate absent", r.status, r.raw))
        return seen

    def test_auth_rules_as_etcd(self):
        nodes = self.start_cluster()
        leader = self.wait_leader(nodes)
        mine = self.auth_script(leader.grpc)
        self.assertIsNotNone(ETCD, "etcd (Debian etcd-server) is needed: scripts/setup.sh installs it")
        client, _ = start_real_etcd(self)
        theirs = self.auth_script(client)
        self.assertEqual(mine, theirs)

    def auth_script(self, grpc):
        for args in (("user", "add", "root:rootpw"), ("role", "add", "root"), ("user", "grant-role", "root", "root"),
                     ("user", "add", "bob:bobpw"), ("auth", "enable")):
            etcdctl([grpc], *args)
        seen = []
        for user in ("bob:bobpw", "root:rootpw"):
            for args in (("alarm", "list"), ("defrag",), ("endpoint", "hashkv")):
                p = etcdctl([grpc], f"--user={user}", *args, check=False)
                seen.append((user, args, p.returncode, last_words(p, grpc)))
        self.assertEqual(seen[0][2], 0)  # alarms need no role, as etcd 3.4
        self.assertNotEqual(seen[1][2], 0)  # defragment needs root
        self.assertNotEqual(seen[2][2], 0)
        self.assertEqual([s[2] for s in seen[3:]], [0, 0, 0])
        return seen

    def test_alarm_changes_need_root_with_auth(self):
        """Beyond etcd 3.4 (which lets anyone raise NOSPACE and so stop every write): with auth on, raising or
        clearing an alarm needs root; listing needs no role."""
        nodes = self.start_cluster()
        leader = self.wait_leader(nodes)
        follower = next(n for n in nodes if n is not leader)
        for args in (("user", "add", "root:rootpw"), ("role", "add", "root"), ("user", "grant-role", "root", "root"),
                     ("user", "add", "bob:bobpw"), ("auth", "enable")):
            etcdctl([leader.grpc], *args)
        activate = json.dumps({"action": "ACTIVATE", "memberID": "1", "alarm": "NOSPACE"})
        r = post(follower.api, "/v3/maintenance/alarm", activate)
        self.assertNotEqual(r.status, 200, r.raw)  # no credentials
        p = etcdctl([leader.grpc], "--user=root:rootpw", "alarm", "list", check=False)
        self.assertEqual((p.returncode, p.stdout.strip()), (0, ""), "an alarm raised without credentials")

        def with_token(user, password):
            t = post(follower.api, "/v3/auth/authenticate", json.dumps({"name": user, "password": password}))
            self.assertEqual(t.status, 200, t.raw)
            return {"Content-Type": "application/json", "Authorization": t.json["token"]}

        r = request("POST", follower.api, "/v3/maintenance/alarm", activate, with_token("bob", "bobpw"))
        self.assertNotEqual(r.status, 200, r.raw)
        r = request("POST", follower.api, "/v3/maintenance/alarm", activate, with_token("root", "rootpw"))
        self.assertEqual(r.status, 200, r.raw)
        p = etcdctl([follower.grpc], "--user=bob:bobpw", "alarm", "list", check=False)
        self.assertEqual((p.returncode, p.stdout.strip()), (0, "memberID:1 alarm:NOSPACE"), p.stderr)
        # etcdctl's disarm lists the alarms, then clears each: bob may list, not clear.
        p = etcdctl([follower.grpc], "--user=bob:bobpw", "alarm", "disarm", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("auth: permission denied", p.stderr)
        p = etcdctl([follower.grpc], "--user=root:rootpw", "alarm", "disarm", check=False)
        self.assertEqual(p.returncode, 0, p.stderr)
        p = etcdctl([follower.grpc], "--user=root:rootpw", "alarm", "list", check=False)
        self.assertEqual((p.returncode, p.stdout.strip()), (0, ""), p.stderr)

if __name__ == "__main__":
    unittest.main()
