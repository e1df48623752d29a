"""Integration: backups (etcdctl snapshot save, kvnode restore, kvnode snapshot status), leadership transfer (etcdctl move-leader, POST /transfer), quorum-loss recovery (-force-new-cluster) and removed members."""

import base64
import json
import os
import shutil
import subprocess
import time
import unittest

import kvcluster
from kvcluster import ClusterTest, free_port, request, wait_for

# Shared with the etcd cluster tests: imported as functions only, so that
# unittest does not collect that module's test classes here.
from test_etcd_cluster import ETCDCTL, etcdctl, node_id  # noqa: E402


def kvnode(*args):
    return subprocess.run([kvcluster.KVNODE, *args], capture_output=True, text=True, timeout=60)


class BackupTest(ClusterTest):
    def grpc_node(self, name, *args):
        n = self.node(name, *args)
        n.grpc = f"127.0.0.1:{free_port()}"
        n.extra_args.append(f"-grpc-address={n.grpc}")
        return n

    def wait_grpc_registered(self, via, nodes):
        def ok():
            got = {m["raftAddress"]: m.get("grpcAddress") for m in via.status()["members"] if m["role"] == "voter"}
            return got == {n.raft: n.grpc for n in nodes}

        wait_for(ok, 30, f"{via.name} to list {[n.name for n in nodes]} with their gRPC addresses")

    def revision_of(self, ep, key):
        out = json.loads(etcdctl([ep], "get", key, "-w", "json").stdout)
        return int(out["header"]["revision"]), [kv for kv in out.get("kvs", [])]

    def test_snapshot_save_restore_status_and_join(self):
        if not ETCDCTL:
            self.skipTest("etcdctl not installed")
        src = self.grpc_node("src", "-bootstrap").start()
        self.wait_leader([src])
        ep = src.grpc
        etcdctl([ep], "put", "k", "v1")
        rev_v1, _ = self.revision_of(ep, "k")
        etcdctl([ep], "put", "k", "v2")
        etcdctl([ep], "put", "other", "x")
        etcdctl([ep], "del", "other")
        lease = json.loads(etcdctl([ep], "lease", "grant", "600", "-w", "json").stdout)["ID"]
        etcdctl([ep], "put", "leased", "y", f"--lease={lease:x}")
        rev_now, _ = self.revision_of(ep, "k")
        src_cluster = json.loads(etcdctl([ep], "endpoint", "status", "-w", "json").stdout)[0]["Status"]["header"][
            "cluster_id"]

        backup = os.path.join(self.tmp, "backup.db")
        p = etcdctl([ep], "snapshot", "save", backup)
        self.assertIn("Snapshot saved at", p.stdout)

        st = kvnode("snapshot", "status", backup, "-w", "json")
        self.assertEqual(st.returncode, 0, st.stderr)
        status = json.loads(st.stdout)
        self.assertEqual(status["revision"], rev_now)
        self.assertEqual(status["totalSize"], os.path.getsize(backup))
        table = kvnode("snapshot", "status", backup, "-w", "table").stdout
        self.assertIn("| HASH | REVISION | TOTAL KEYS | TOTAL SIZE |".replace(" ", ""), table.replace(" ", ""))

        # A damaged or truncated backup: a clear error, exit 1, nothing written.
        data = open(backup, "rb").read()
        for what, bad in (("flipped", data[:100] + bytes([data[100] ^ 1]) + data[101:]),
                          ("truncated", data[:-7]), ("empty", b"")):
            path = os.path.join(self.tmp, f"bad-{what}.db")
            with open(path, "wb") as f:
                f.write(bad)
            target = os.path.join(self.tmp, f"restored-{what}")
            r = kvnode("restore", "--snapshot", path, "--data-dir", target, "--raft-address", "127.0.0.1:1")
            self.assertEqual(r.returncode, 1, f"{what}: {r.stdout} {r.stderr}")
            self.assertIn("not usable", r.stderr, what)
            self.assertFalse(os.path.exists(target), f"{what}: restore wrote {target}")
            self.assertFalse(os.path.exists(target + ".restoring"), what)
            self.assertNotEqual(kvnode("snapshot", "status", path).returncode, 0, what)

        # Restore into a new dir and start it: a new one-member cluster with the same data.
        new = self.grpc_node("new")
        r = kvnode("restore", "--snapshot", backup, "--data-dir", new.data_dir, "--raft-address", new.raft,
                   "--api-address", new.api)
        self.assertEqual(r.returncode, 0, r.stderr)
        # Restoring again into the now non-empty dir is refused.
        again = kvnode("restore", "--snapshot", backup, "--data-dir", new.data_dir, "--raft-address", new.raft)
        self.assertEqual(again.returncode, 1)
        self.assertIn("not empty", again.stderr)
        src.kill()
        new.start()
        self.wait_leader([new])
        nep = new.grpc
        rev, kvs = self.revision_of(nep, "k")
        self.assertEqual(rev, rev_now)
        self.assertEqual(kvs[0]["value"], "djI=")  # base64 "v2"
        old = json.loads(etcdctl([nep], "get", "k", f"--rev={rev_v1}", "-w", "json").stdout)["kvs"]
        self.assertEqual(old[0]["value"], "djE=")  # base64 "v1": history is kept
        self.assertEqual(etcdctl([nep], "get", "other").stdout, "")
        leases = etcdctl([nep], "lease", "list").stdout
        self.assertIn(f"{lease:x}", leases)
        ttl = etcdctl([nep], "lease", "timetolive", f"{lease:x}", "--keys").stdout
        self.assertIn("leased", ttl)
        new_cluster = json.loads(etcdctl([nep], "endpoint", "status", "-w", "json").stdout)[0]["Status"]["header"][
            "cluster_id"]
        self.assertNotEqual(new_cluster, src_cluster)
        members = json.loads(etcdctl([nep], "member", "list", "-w", "json").stdout)["members"]
        self.assertEqual([m["name"] for m in members], [new.raft])
        # Writes go on from the backup's revision.
        etcdctl([nep], "put", "k", "v3")
        self.assertEqual(self.revision_of(nep, "k")[0], rev_now + 1)

        # Another member joins the restored one and has everything.
        second = self.grpc_node("second", f"-join={new.api}").start()
        self.wait_voters(new, [new, second])
        self.wait_grpc_registered(new, [new, second])
        got = json.loads(etcdctl([second.grpc], "get", "k", f"--rev={rev_v1}", "-w", "json").stdout)["kvs"]
        self.assertEqual(got[0]["value"], "djE=")

    def test_gateway_snapshot_streams_the_same_backup(self):
        src = self.node("gw", "-bootstrap").start()
        self.wait_leader([src])
        for i in range(200):
            self.assertEqual(src.set(f"k{i}", "x" * 300).status, 200)  # ~60 KB: more than one 32 KiB chunk
        r = request("POST", src.api, "/v3/maintenance/snapshot", "{}", {"Content-Type": "application/json"},
                    timeout=60)
        self.assertEqual(r.status, 200)
        lines = [json.loads(line) for line in r.raw.splitlines() if line.strip()]
        self.assertGreater(len(lines), 2)
        for line in lines:  # etcd's shape: {"result": {"blob", "remaining_bytes" unless 0}}
            self.assertEqual(set(line), {"result"})
            self.assertLessEqual(set(line["result"]), {"blob", "remaining_bytes"})
        blobs = [base64.b64decode(line["result"]["blob"]) for line in lines]
        self.assertEqual(len(blobs[-1]), 32)  # the SHA-256 comes last
        self.assertEqual(int(lines[0]["result"]["remaining_bytes"]), sum(len(b) for b in blobs[1:-1]))
        backup = os.path.join(self.tmp, "gw.db")
        with open(backup, "wb") as f:
            f.write(b"".join(blobs))
        st = kvnode("snapshot", "status", backup, "-w", "json")
        self.assertEqual(st.returncode, 0, st.stderr)
        self.assertEqual(json.loads(st.stdout)["revision"], src.status()["revision"])

    def test_move_leader_and_transfer(self):
        if not ETCDCTL:
            self.skipTest("etcdctl not installed")
        nodes = self.start_joined(lambda name, *a: self.grpc_node(name, *a))
        self.wait_grpc_registered(nodes[0], nodes)
        leader = self.wait_leader(nodes)
        followers = [n for n in nodes if n is not leader]
        eps = [n.grpc for n in nodes]

        # etcdctl asks each endpoint's status for the leader, then calls it.
        target = followers[0]
        p = etcdctl(eps, "move-leader", f"{node_id(target.raft):x}")
        self.assertIn("Leadership transferred", p.stdout)
        wait_for(lambda: all((n.status() or {}).get("leader") == target.raft for n in nodes), 10,
                 "every node to follow the new leader")
        self.assertEqual(target.set("after-move", "1").status, 200)
        # Only followers given: etcdctl finds no leader among them (its own check).
        p = etcdctl([followers[1].grpc], "move-leader", f"{node_id(leader.raft):x}", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("no leader endpoint given", p.stderr)
        # etcd's errors, through its gateway (the same calls as gRPC): not the leader, a bad target.
        r = request("POST", followers[1].api, "/v3/maintenance/transfer-leadership",
                    json.dumps({"targetID": str(node_id(leader.raft))}))
        self.assertEqual((r.status, r.json["code"], r.json["error"]), (412, 9, "etcdserver: not leader"))
        r = request("POST", target.api, "/v3/maintenance/transfer-leadership", json.dumps({"targetID": "12345"}))
        self.assertEqual((r.status, r.json["error"]), (412, "etcdserver: bad leader transferee"))

        # The seed API: POST /transfer?to=<-id>, from any member (a follower forwards it).
        back = leader
        r = request("POST", followers[1].api, f"/transfer?to={back.raft}", b"")
        self.assertEqual(r.status, 200, r.raw)
        self.assertEqual(r.json["leader"], back.raft)
        wait_for(lambda: all((n.status() or {}).get("leader") == back.raft for n in nodes), 10,
                 "every node to follow the leader named in /transfer")
        self.assertEqual(followers[1].set("after-transfer", "1").status, 200)
        self.assertEqual(back.get("after-move").json, {"after-move": "1"})
        r = request("POST", back.api, "/transfer?to=nobody", b"")
        self.assertEqual(r.status, 404)
        self.assertEqual(request("POST", back.api, "/transfer", b"").status, 400)
        self.assertEqual(request("GET", back.api, f"/transfer?to={back.raft}").status, 405)

    def test_force_new_cluster_after_losing_two_of_three(self):
        nodes = self.start_joined(lambda name, *a: self.node(name, *a))
        leader = self.wait_leader(nodes)
        acked = {}
        for i in range(60):
            r = self.write_with_retry(nodes, f"key{i}", f"value{i}")
            self.assertEqual(r.status, 200)
            acked[f"key{i}"] = f"value{i}"
        survivor = next(n for n in nodes if n is not leader)
        commit = leader.status()["commitIndex"]
        # The operator picks the survivor with the highest lastIndex; here the
        # test makes sure it holds every acknowledged entry (maybe not yet
        # known committed: the tail is kept and committed).
        wait_for(lambda: survivor.status()["lastIndex"] >= commit, 10, "the survivor to hold every acked entry")
        for n in nodes:
            n.kill()  # kill -9, the survivor too: it restarts with the flag
        for n in nodes:
            if n is not survivor:
                shutil.rmtree(n.data_dir)  # lost for good
        survivor.extra_args.append("-force-new-cluster")
        survivor.start()
        self.wait_leader([survivor])
        st = survivor.status()
        self.assertEqual([m["raftAddress"] for m in st["members"]], [survivor.raft])
        self.assertIn("-force-new-cluster: this member is now the only voter", survivor.log())
        for k, v in acked.items():
            self.assertEqual(survivor.get(k).json, {k: v})
        # Two new members join; the cluster serves writes.
        survivor.extra_args.remove("-force-new-cluster")
        fresh = [self.node(f"n{i}", f"-join={survivor.api}") for i in (4, 5)]
        for n in fresh:
            n.start()
            self.wait_voters(survivor, [survivor] + fresh[:fresh.index(n) + 1])
        members = [survivor] + fresh
        r = self.write_with_retry(members, "after-recovery", "ok")
        self.assertEqual(r.status, 200)
        for n in fresh:
            wait_for(lambda: n.get("key59", consistency="stale").status == 200, 10, f"{n.name} to catch up")
            self.assertEqual(n.get("key0").json, {"key0": "value0"})
        # A restart without the flag agrees with the log: three voters.
        survivor.kill()
        survivor.start()
        self.wait_leader(members)
        self.wait_voters(survivor, members)
        self.assertEqual(self.write_with_retry(members, "after-restart", "ok").status, 200)

    def test_a_removed_member_learns_it_and_stops_campaigning(self):
        nodes = self.start_joined(lambda name, *a: self.node(name, *a))
        leader = self.wait_leader(nodes)
        for n in nodes:
            wait_for(lambda: (n.status() or {}).get("clusterId") == leader.status()["clusterId"], 10,
                     f"{n.name} to report the cluster id")
        victim, other = [n for n in nodes if n is not leader]
        r = request("POST", leader.api, f"/remove?id={victim.raft}", b"")
        self.assertEqual(r.status, 200, r.raw)
        # The leader stops replicating to it at once, so it never sees its
        # removal in its own log: it must learn it from a member.
        wait_for(lambda: (victim.status() or {}).get("removed") is True, 20, "the removed member to report it")
        self.assertIn("removed from the cluster", victim.log())
        self.assertFalse(leader.status()["removed"])
        # No more (pre-)vote requests: it stays a follower in its term, for
        # many election timeouts (FAST_TIMING: 200-400 ms each).
        term = victim.status()["term"]
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            st = victim.status()
            self.assertEqual((st["state"], st["term"], st["removed"]), ("follower", term, True))
            time.sleep(0.05)
        self.assertEqual(self.write_with_retry([leader, other], "after-removal", "1").status, 200)
        self.assertEqual({m["raftAddress"] for m in leader.status()["members"]}, {leader.raft, other.raft})

    def test_force_new_cluster_on_an_empty_data_dir_is_refused(self):
        n = self.node("empty", "-force-new-cluster")
        p = subprocess.run(n.args(), capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 1)
        self.assertIn("holds no state to recover", p.stderr)


if __name__ == "__main__":
    unittest.main()
