"""Integration: etcdctl member add (--learner) / promote / update / remove against a kvnode cluster through leader and follower, the new node serving, and errors compared with a real etcd."""

import json
import re
import shutil
import unittest

import kvcluster
import test_etcd_cluster
from kvcluster import ClusterTest, free_port, request, wait_for
from test_etcd_cluster import ETCD, ETCDCTL, etcdctl, node_id, post


def member_list(endpoint):
    return json.loads(etcdctl([endpoint], "member", "list", "-w", "json").stdout)


# Refusals that change nothing and pass once every voter has answered again
# (strict reconfiguration counts voters heard from in the last two election
# timeouts; a loaded machine can miss that window).
TRANSIENT = ("etcdserver: unhealthy cluster", "not enough started members")


def etcdctl_change(endpoints, *args):
    """etcdctl for a membership change, retried while it is refused for a transient reason."""
    def attempt():
        p = etcdctl(endpoints, *args, check=False)
        if p.returncode == 0:
            return p
        if any(t in p.stderr for t in TRANSIENT):
            return None
        raise AssertionError(f"etcdctl {' '.join(args)} failed ({p.returncode}): {p.stderr}")
    return wait_for(attempt, 30, f"etcdctl {' '.join(args)}")


def post_change(api, path, body):
    """A gateway membership change, retried while it is refused for a transient reason."""
    def attempt():
        r = post(api, path, body)
        if r.status in (500, 503) and any(t in (r.json or {}).get("message", "") for t in TRANSIENT):
            return None
        return r
    return wait_for(attempt, 30, f"POST {path}")


def error_line(p):
    """etcdctl's last 'Error: ...' line (it logs retries before it)."""
    lines = [line for line in p.stderr.splitlines() if line.startswith("Error:")]
    return lines[-1] if lines else p.stderr.strip()


class EtcdMembersTest(ClusterTest):
    def setUp(self):
        super().setUp()
        if not ETCDCTL:
            self.skipTest("etcdctl is not installed (Debian package etcd-client; scripts/setup.sh installs it)")

    def start_cluster(self):
        return test_etcd_cluster.EtcdClusterTest.start_cluster(self)

    def wait_all_active(self, leader):
        """Strict reconfiguration counts a voter once the leader has heard from it lately."""
        wait_for(lambda: all(m.get("active") for m in leader.status()["members"] if m["role"] == "voter"), 20,
                 "the leader to see every voter active")

    def new_node(self, name):
        g = f"127.0.0.1:{free_port()}"
        n = self.node(name, f"-grpc-address={g}")
        n.grpc = g
        return n

    def cluster_ids(self, nodes):
        return {member_list(n.grpc)["header"]["cluster_id"] for n in nodes if n.alive()}

    def test_learner_add_promote_remove_and_a_voter_add_through_follower_and_leader(self):
        nodes = self.start_cluster()
        leader = self.wait_leader(nodes)
        follower = next(n for n in nodes if n is not leader)
        self.wait_all_active(leader)
        (cluster_id,) = self.cluster_ids(nodes)

        # add --learner through a follower: answered at once, listed as an unstarted learner everywhere.
        n4 = self.new_node("n4")
        p = etcdctl_change([follower.grpc], "member", "add", "n4", "--learner", f"--peer-urls=http://{n4.raft}")
        new_id = node_id(n4.raft)
        self.assertIn(f"Member {new_id:16x} added to cluster {cluster_id:16x}", p.stdout)
        self.assertIn('ETCD_INITIAL_CLUSTER_STATE="existing"', p.stdout)
        for n in nodes:
            table = etcdctl([n.grpc], "member", "list").stdout.splitlines()
            self.assertIn(f"{new_id:x}, unstarted, , http://{n4.raft}, , true", table, n.name)

        # Not started: nothing replicated, so not in sync; a second learner is one too many.
        p = etcdctl([follower.grpc], "member", "promote", f"{new_id:x}", check=False)
        self.assertEqual(error_line(p), "Error: etcdserver: can only promote a learner member which is in sync with leader")
        p = etcdctl([leader.grpc], "member", "add", "n5", "--learner", f"--peer-urls=http://127.0.0.1:{free_port()}",
                    check=False)
        self.assertEqual(error_line(p), "Error: etcdserver: too many learner members in cluster")

        # Started without -bootstrap or -join, it is brought in by the leader and serves.
        n4.start()
        wait_for(lambda: json.loads(etcdctl([n4.grpc], "endpoint", "status", "-w", "json", check=False).stdout or "[]"),
                 20, "n4 to answer endpoint status")

        def n4_status():
            (e,) = json.loads(etcdctl([n4.grpc], "endpoint", "status", "-w", "json").stdout)
            return e["Status"]

        wait_for(lambda: n4_status().get("leader") == node_id(leader.raft), 20, "n4 to know the leader")
        s = n4_status()
        self.assertTrue(s["isLearner"])
        self.assertEqual(s["header"]["cluster_id"], cluster_id)
        self.assertEqual(s["header"]["member_id"], new_id)
        # Caught up, it stays a learner: only an explicit promotion makes it a voter.
        wait_for(lambda: n4.status()["appliedIndex"] >= leader.status()["commitIndex"], 20, "n4 to catch up")
        self.assertEqual({m["raftAddress"]: m["role"] for m in leader.status()["members"]}[n4.raft], "learner")

        def promoted():
            p = etcdctl([follower.grpc], "member", "promote", f"{new_id:x}", check=False)
            if p.returncode == 0:
                return p
            # The refusals a caught-up learner may still see for a moment.
            self.assertTrue("in sync with leader" in p.stderr or any(t in p.stderr for t in TRANSIENT), p.stderr)
            return None

        p = wait_for(promoted, 20, "the promotion to be accepted")
        self.assertIn(f"Member {new_id:16x} promoted in cluster {cluster_id:16x}", p.stdout)
        # The follower answered once its own list shows it: no wait needed here.
        table = etcdctl([follower.grpc], "member", "list").stdout.splitlines()
        self.assertIn(f"{new_id:x}, started, {n4.raft}, http://{n4.raft}, http://{n4.grpc}, false", table)
        p = etcdctl([leader.grpc], "member", "promote", f"{new_id:x}", check=False)
        self.assertEqual(error_line(p), "Error: etcdserver: can only promote a learner member")

        # Remove it through the leader: gone from every list; the cluster id never moved.
        self.wait_all_active(leader)
        p = etcdctl_change([leader.grpc], "member", "remove", f"{new_id:x}")
        self.assertIn(f"Member {new_id:16x} removed from cluster {cluster_id:16x}", p.stdout)
        self.assertNotIn(new_id, [m["ID"] for m in member_list(leader.grpc)["members"]])
        wait_for(lambda: all(new_id not in [m["ID"] for m in member_list(n.grpc)["members"]] for n in nodes), 10,
                 "every node to drop n4")
        n4.kill()

        # add without --learner, through a follower, of a node started first: the leader
        # promotes it once it has caught up; it is listed as a voter from the start.
        n5 = self.new_node("n5").start()
        p = etcdctl_change([follower.grpc], "member", "add", "n5", f"--peer-urls=http://{n5.raft}")
        self.assertIn(f"Member {node_id(n5.raft):16x} added to cluster {cluster_id:16x}", p.stdout)
        entry = next(m for m in member_list(follower.grpc)["members"] if m["ID"] == node_id(n5.raft))
        self.assertNotIn("isLearner", entry)
        wait_for(lambda: {m["raftAddress"]: m["role"] for m in leader.status()["members"]}.get(n5.raft) == "voter",
                 20, "n5 to become a voter")
        (e,) = json.loads(etcdctl([n5.grpc], "endpoint", "status", "-w", "json").stdout)
        self.assertEqual(e["Status"]["header"]["cluster_id"], cluster_id)
        self.assertEqual(self.cluster_ids(nodes + [n5]), {cluster_id})

        # Errors as etcd words them.
        cases = [(("member", "remove", "1234"), "Error: etcdserver: member not found"),
                 (("member", "promote", "1234"), "Error: etcdserver: member not found"),
                 (("member", "update", "1234", f"--peer-urls=http://127.0.0.1:{free_port()}"),
                  "Error: etcdserver: member not found"),
                 (("member", "add", "x", f"--peer-urls=http://{leader.raft}"),
                  "Error: etcdserver: Peer URLs already exists"),
                 (("member", "promote", f"{node_id(leader.raft):x}"),
                  "Error: etcdserver: can only promote a learner member")]
        for args, want in cases:
            for via in (leader, follower):
                p = etcdctl([via.grpc], *args, check=False)
                self.assertNotEqual(p.returncode, 0, args)
                self.assertEqual(error_line(p), want, (args, via.name))

        # A restart keeps the id.
        follower.kill()
        follower.start()
        wait_for(lambda: self.cluster_ids([follower]) == {cluster_id}, 20, "the restarted follower's cluster id")

    def test_gateway_member_calls_through_follower_and_leader(self):
        nodes = self.start_cluster()
        leader = self.wait_leader(nodes)
        follower = next(n for n in nodes if n is not leader)
        self.wait_all_active(leader)
        address = f"127.0.0.1:{free_port()}"
        r = post_change(follower.api, "/v3/cluster/member/add", json.dumps({"peerURLs": [f"http://{address}"],
                                                                           "isLearner": True}))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(list(r.json), ["header", "member", "members"])
        self.assertEqual(r.json["member"], {"ID": str(node_id(address)), "peerURLs": [f"http://{address}"],
                                            "isLearner": True})
        self.assertIn(r.json["member"], r.json["members"])
        # As etcd's follower: its own header (the member asked), not the leader's it forwarded to.
        self.assertEqual(r.json["header"]["member_id"], str(node_id(follower.raft)), r)
        r = post(leader.api, "/v3/cluster/member/promote", json.dumps({"ID": str(node_id(address))}))
        self.assertEqual((r.status, r.json["code"], r.json["message"]),
                         (412, 9, "etcdserver: can only promote a learner member which is in sync with leader"), r)
        r = post(follower.api, "/v3/cluster/member/update",
                 json.dumps({"ID": str(node_id(address)), "peerURLs": [f"http://{leader.raft}"]}))
        self.assertEqual((r.status, r.json["code"], r.json["message"]),
                         (412, 9, "etcdserver: Peer URLs already exists"), r)
        moved = f"127.0.0.1:{free_port()}"
        r = post(follower.api, "/v3/cluster/member/update",
                 json.dumps({"ID": node_id(address), "peerURLs": [f"http://{moved}"]}))
        self.assertEqual(r.status, 200, r)
        self.assertIn({"ID": str(node_id(address)), "peerURLs": [f"http://{moved}"], "isLearner": True},
                      r.json["members"])
        self.assertEqual(r.json["header"]["member_id"], str(node_id(follower.raft)), r)
        # The gRPC service answers the same way (etcdctl -w json shows the header).
        p = etcdctl([follower.grpc], "member", "update", f"{node_id(address):x}", f"--peer-urls=http://{address}",
                    "-w", "json")
        self.assertEqual(json.loads(p.stdout)["header"]["member_id"], node_id(follower.raft), p.stdout)
        r = post_change(follower.api, "/v3/cluster/member/remove", json.dumps({"ID": str(node_id(address))}))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(len(r.json["members"]), 3)
        self.assertEqual(r.json["header"]["member_id"], str(node_id(follower.raft)), r)
        for path, body, want in [("/v3/cluster/member/remove", '{"ID":"1234"}', (404, 5, "etcdserver: member not found")),
                                 ("/v3/cluster/member/add", '{"peerURLs":["foo"]}',
                                  (400, 3, "etcdserver: given member URLs are invalid")),
                                 ("/v3/cluster/member/add", '{}', (400, 3, "etcdserver: given member URLs are invalid")),
                                 ("/v3/cluster/member/promote", '{"ID":"x"}', (400, 3, None)),
                                 ("/v3/cluster/member/add", 'junk', (400, 3, None))]:
            r = post(follower.api, path, body)
            self.assertEqual((r.status, r.json["code"]), want[:2], (path, body, r))
            if want[2]:
                self.assertEqual(r.json["message"], want[2])
        self.assertEqual(request("GET", leader.api, "/v3/cluster/member/add").status, 405)

    def test_the_same_sequence_as_a_real_etcd(self):
        """Differential: one etcdctl sequence on a real 1-member etcd and on a 1-member kvnode cluster, ids normalized."""
        if not ETCD:
            self.skipTest("etcd is not installed (Debian package etcd-server): no comparison with a real etcd")
        etcd_client, etcd_peer = test_etcd_cluster.start_real_etcd(self)

        n1 = self.new_node("n1")
        n1.extra_args.append("-bootstrap")
        n1.start()
        self.wait_leader([n1])

        def run(endpoint, self_peer):
            """The sequence; returns normalized lines (ids, cluster id, URLs and names as tokens)."""
            ports = [free_port() for _ in range(3)]
            learner = f"http://127.0.0.1:{ports[0]}"
            self_id = member_list(endpoint)["header"]["member_id"]
            tokens = {}

            def norm(text):
                for k, v in tokens.items():
                    text = text.replace(k, v)
                return re.sub(r"(Member|cluster) +<", r"\1 <", text)  # the %16x padding

            out = []

            def step(*args, json_out=False):
                p = etcdctl([endpoint], *args, *(("-w", "json") if json_out else ()), check=False)
                if json_out and p.returncode == 0:
                    body = json.loads(p.stdout)
                    text = json.dumps({"members": sorted(norm(json.dumps(m, sort_keys=True))
                                                         for m in body.get("members", []))})
                else:
                    text = p.stdout.strip() if p.returncode == 0 else error_line(p)
                out.append(f"{' '.join(args)} -> rc={p.returncode} {text}")
                return p

            # A just-started etcd may still refuse for a moment (its leader's first term,
            # a loaded machine): the first change is retried while nothing was changed.
            p = step("member", "add", "l1", "--learner", f"--peer-urls={learner}")
            if p.returncode != 0 and any(t in p.stderr for t in TRANSIENT + ("etcdserver: no leader",)):
                out.pop()
                p = step("member", "add", "l1", "--learner", f"--peer-urls={learner}")
            self.assertEqual(p.returncode, 0, p.stderr)
            # etcdctl prints ids as %16x: space-padded when they have leading zero digits.
            (lid,) = re.findall(r"Member +([0-9a-f]+) added", p.stdout)
            (cid,) = re.findall(r"to cluster +([0-9a-f]+)", p.stdout)
            tokens.update({lid: "<LEARNER>", str(int(lid, 16)): "<LEARNER>", cid: "<CLUSTER>",
                           f"{self_id:x}": "<SELF>", str(self_id): "<SELF>", learner: "<LEARNER_URL>",
                           f"http://{self_peer}": "<SELF_PEER>", f"http://127.0.0.1:{ports[1]}": "<OTHER_URL>",
                           f"http://127.0.0.1:{ports[2]}": "<MOVED_URL>"})
            out[-1] = out[-1].split("\n")[0]  # etcdctl's ETCD_* lines name the client's arguments only
            step("member", "add", "l2", "--learner", f"--peer-urls=http://127.0.0.1:{ports[1]}")
            step("member", "promote", lid)
            step("member", "promote", f"{self_id:x}")
            step("member", "promote", "1234")
            step("member", "remove", "1234")
            step("member", "update", "1234", f"--peer-urls=http://127.0.0.1:{ports[1]}")
            step("member", "add", "v", f"--peer-urls=http://{self_peer}")
            step("member", "update", lid, f"--peer-urls=http://{self_peer}")
            step("member", "update", lid, f"--peer-urls=http://127.0.0.1:{ports[2]}")
            p = step("member", "list", json_out=True)
            step("member", "remove", lid)
            step("member", "remove", lid)
            return [norm(line) for line in out], p

        theirs, _ = run(etcd_client, etcd_peer)
        mine, _ = run(n1.grpc, n1.raft)
        # The self entry differs in name and client URL (e1 vs its raft address); compare the rest.
        norm_self = lambda lines: [re.sub(r'\{[^{}]*<SELF>[^{}]*\}', "<SELF_ENTRY>", l) for l in lines]
        # One difference on purpose: etcd 3.4.23's MemberUpdate drops the learner flag
        # from its member list (the member stays a learner in its raft configuration);
        # ours keeps listing it as the learner it is (docs/api.md, "Cluster").
        listed = next(i for i, line in enumerate(mine) if line.startswith("member list"))
        self.assertIn('\\"isLearner\\": true, ', mine[listed])
        self.assertNotIn("isLearner", theirs[listed])
        mine[listed] = mine[listed].replace('\\"isLearner\\": true, ', "")
        self.maxDiff = None
        self.assertEqual(norm_self(mine), norm_self(theirs))
        for body, path in [('{"ID":"1234"}', "/v3/cluster/member/promote"), ('{"peerURLs":["foo"]}', "/v3/cluster/member/add"),
                           ('{"ID":"1234"}', "/v3/cluster/member/remove")]:
            a, b = post(etcd_client, path, body), post(n1.api, path, body)
            self.assertEqual((b.status, b.json), (a.status, a.json), path)


if __name__ == "__main__":
    unittest.main()
