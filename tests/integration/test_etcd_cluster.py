"""Integration: etcdctl's `member list` and `endpoint status` against a 3-node kvnode cluster on -grpc-address, the /v3 gateway, and the same calls against a real etcd for shape."""

import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

from kvcluster import ClusterTest, free_port, request, wait_for

ETCDCTL = shutil.which("etcdctl")
ETCD = shutil.which("etcd")


def node_id(name):
    """node::node_id_for: FNV-1a 64 of the name, never 0."""
    h = 0xcbf29ce484222325
    for b in name.encode():
        h ^= b
        h = (h * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h or 1


def etcdctl(endpoints, *args, check=True):
    env = dict(os.environ, ETCDCTL_API="3")
    p = subprocess.run([ETCDCTL, "--endpoints=" + ",".join(endpoints), "--dial-timeout=5s", "--command-timeout=10s",
                        *args], env=env, capture_output=True, text=True, timeout=60)
    if check and p.returncode != 0:
        raise AssertionError(f"etcdctl {' '.join(args)} failed ({p.returncode}): {p.stderr}")
    return p


def shape(v):
    """A JSON value's structure: names and types, not values."""
    if isinstance(v, dict):
        return {k: shape(x) for k, x in v.items()}
    if isinstance(v, list):
        return [shape(v[0])] if v else []
    return type(v).__name__


def post(api, path, body="{}"):
    return request("POST", api, path, body, {"Content-Type": "application/json"})


def start_real_etcd(test, *extra, scheme="http", ready=None, peer_tls_args=()):
    """A single-member etcd on loopback ports in test.tmp, killed by PID in test's cleanup; returns (client, peer) host:port.
    extra: more etcd flags; scheme "https" (with extra's --cert-file...) serves TLS; ready(client) says when it
    answers (default: the plain-HTTP gateway); peer_tls_args (etcd's --peer-cert-file=... flags) make its peer
    URLs https://."""
    client, peer = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    data = tempfile.mkdtemp(prefix="ckv-etcd-", dir=test.tmp)
    log = open(os.path.join(data, "etcd.log"), "w")
    ps = "https" if peer_tls_args else "http"
    proc = subprocess.Popen([ETCD, "--name=e1", f"--data-dir={data}/data", f"--listen-client-urls={scheme}://{client}",
                             f"--advertise-client-urls={scheme}://{client}", f"--listen-peer-urls={ps}://{peer}",
                             f"--initial-advertise-peer-urls={ps}://{peer}", f"--initial-cluster=e1={ps}://{peer}",
                             *peer_tls_args, *extra],
                            stdout=log, stderr=subprocess.STDOUT)
    log.close()
    test.procs.append(proc)  # killed by PID in cleanup
    ready = ready or (lambda c: post(c, "/v3/maintenance/status").status == 200)
    wait_for(lambda: ready(client), 30, "etcd to answer")
    return client, peer


class EtcdClusterTest(ClusterTest):
    def start_cluster(self):
        """Three nodes, each with -grpc-address; returns them once every member's client URL is replicated."""
        grpc = {}

        def make(name, *args):
            g = f"127.0.0.1:{free_port()}"
            n = self.node(name, f"-grpc-address={g}", *args)
            grpc[n.name] = g
            return n

        nodes = self.start_joined(make)
        for n in nodes:
            n.grpc = grpc[n.name]

        def replicated():
            # Every node's view lists every member as a voter with its gRPC address
            # (registered like the API address).
            for n in nodes:
                got = {m["raftAddress"]: (m["role"], m.get("grpcAddress")) for m in n.status()["members"]}
                if got != {m.raft: ("voter", m.grpc) for m in nodes}:
                    return False
            return True

        wait_for(replicated, 30, "every member's gRPC address in every node's membership")
        return nodes

    def expected_members(self, nodes):
        return sorted(({"ID": node_id(n.raft), "name": n.raft, "peerURLs": [f"http://{n.raft}"],
                        "clientURLs": [f"http://{n.grpc}"]} for n in nodes), key=lambda m: m["ID"])

    def test_member_list_and_endpoint_status_with_etcdctl(self):
        if not ETCDCTL:
            self.skipTest("etcdctl is not installed (Debian package etcd-client; scripts/setup.sh installs it)")
        nodes = self.start_cluster()
        leader = self.wait_leader(nodes)
        term = leader.status()["term"]
        cluster_ids = set()
        for n in nodes:
            # member list, JSON: every member with its id, name and URLs; the header names the node asked.
            out = json.loads(etcdctl([n.grpc], "member", "list", "-w", "json").stdout)
            self.assertEqual(out["members"], self.expected_members(nodes), n.name)
            self.assertEqual(out["header"]["member_id"], node_id(n.raft))
            self.assertEqual(out["header"]["raft_term"], term)
            self.assertNotIn("revision", out["header"])  # as etcd's Cluster service
            cluster_ids.add(out["header"]["cluster_id"])
            # member list, table: etcdctl's simple format, one line per member in id order.
            table = etcdctl([n.grpc], "member", "list").stdout.splitlines()
            self.assertEqual(table, [f"{m['ID']:x}, started, {m['name']}, {m['peerURLs'][0]}, {m['clientURLs'][0]}, false"
                                     for m in self.expected_members(nodes)])
        self.assertEqual(len(cluster_ids), 1, "every node must report the same cluster_id")
        (cluster_id,) = cluster_ids
        self.assertNotEqual(cluster_id, 0)

        # endpoint status over all three: one leader, one term, this node's indexes.
        out = json.loads(etcdctl([n.grpc for n in nodes], "endpoint", "status", "-w", "json").stdout)
        self.assertEqual([e["Endpoint"] for e in out], [n.grpc for n in nodes])
        for n, e in zip(nodes, out):
            s = e["Status"]
            self.assertEqual(s["header"]["member_id"], node_id(n.raft))
            self.assertEqual(s["header"]["cluster_id"], cluster_id)
            self.assertEqual(s["leader"], node_id(leader.raft))
            self.assertEqual(s["raftTerm"], term)
            self.assertEqual(s["header"]["raft_term"], term)
            self.assertEqual(s["header"]["revision"], 1)  # the store's revision: no writes yet, as a fresh etcd
            self.assertGreaterEqual(s["raftIndex"], s["raftAppliedIndex"])
            self.assertGreater(s["raftAppliedIndex"], 0)
            self.assertEqual(s["version"], "3.4.0")
            self.assertNotIn("isLearner", s)
            # dbSize: the data dir on disk (WAL segments are preallocated: at least one);
            # dbSizeInUse: the state machine's estimate in memory (the members' records).
            self.assertGreaterEqual(s["dbSize"], 4096, s)
            self.assertNotIn("dbSizeInUse", s)  # nothing stored yet: 0, omitted
            self.assertNotIn("errors", s)
        table = etcdctl([n.grpc for n in nodes], "endpoint", "status").stdout.splitlines()
        self.assertEqual(len(table), 3)
        for n, line in zip(nodes, table):
            cols = line.split(", ")
            self.assertEqual(cols[:3] + cols[4:6], [n.grpc, f"{node_id(n.raft):x}", "3.4.0", str(n is leader).lower(),
                                                     "false"], line)
            self.assertRegex(cols[3], r"^[0-9.]+ [kMG]B$", line)  # a size, as etcd's (e.g. "20 kB")
            self.assertEqual(int(cols[6]), term)

        # A follower answers too (test_etcd_maintenance.py covers the alarms themselves).
        follower = next(n for n in nodes if n is not leader)
        p = etcdctl([follower.grpc], "alarm", "list")
        self.assertEqual(p.stdout, "")

    def test_gateway_member_list_and_status(self):
        nodes = self.start_cluster()
        leader = self.wait_leader(nodes)
        term = leader.status()["term"]
        for n in nodes:
            r = post(n.api, "/v3/cluster/member/list")
            self.assertEqual(r.status, 200, r)
            want = [{k: (str(v) if k == "ID" else v) for k, v in m.items()} for m in self.expected_members(nodes)]
            # etcd's gateway orders a member's fields as rpc.proto does: ID, name, peerURLs, clientURLs.
            self.assertEqual(r.json["members"], want)
            self.assertEqual([list(m) for m in r.json["members"]], [["ID", "name", "peerURLs", "clientURLs"]] * 3)
            self.assertEqual(r.json["header"]["member_id"], str(node_id(n.raft)))
            self.assertEqual(r.json["header"]["raft_term"], str(term))

            r = post(n.api, "/v3/maintenance/status", "")
            self.assertEqual(r.status, 200, r)
            s = r.json
            self.assertEqual(s["leader"], str(node_id(leader.raft)))
            self.assertEqual(s["raftTerm"], str(term))
            self.assertEqual(s["header"]["revision"], "1")  # the store's revision: no writes yet
            for k in ("raftIndex", "raftAppliedIndex"):
                self.assertIsInstance(s[k], str)  # protobuf's JSON mapping: 64-bit integers as strings

        api = nodes[1].api
        self.assertEqual(post(api, "/v3/no/such/thing").status, 404)
        r = post(api, "/v3/maintenance/status", "junk")
        self.assertEqual((r.status, r.json["code"]), (400, 3), r)
        self.assertEqual(request("GET", api, "/v3/maintenance/status").status, 405)

    def test_a_restart_with_another_grpc_address_re_registers_it(self):
        nodes = self.start_cluster()
        n1, _, n3 = nodes

        def client_urls_seen_by(via):
            r = post(via.api, "/v3/cluster/member/list")
            return {m["name"]: m.get("clientURLs") for m in r.json["members"]} if r.status == 200 else None

        # A new address replaces the old one in every member's view.
        n3.kill()
        n3.grpc = f"127.0.0.1:{free_port()}"
        n3.extra_args = [a for a in n3.extra_args if not a.startswith("-grpc-address=")] + [
            f"-grpc-address={n3.grpc}"]
        n3.start()
        wait_for(lambda: client_urls_seen_by(n1)[n3.raft] == [f"http://{n3.grpc}"], 30,
                 "n1 to list n3's new gRPC address")

        # Without the flag the node registers nothing new, and does not retry forever:
        # an empty address never replaces a registered one (docs/design-notes.md).
        n3.kill()
        n3.extra_args = [a for a in n3.extra_args if not a.startswith("-grpc-address=")]
        before = n3.log().count("registering API address")
        n3.start()
        self.wait_leader(nodes)
        wait_for(lambda: n3.status()["appliedIndex"] >= n1.status()["commitIndex"], 20, "n3 to catch up")
        time.sleep(3)  # registration retries once a second: three seconds would show a loop
        self.assertLessEqual(n3.log().count("registering API address") - before, 1, n3.log()[-3000:])
        self.assertEqual(client_urls_seen_by(n1)[n3.raft], [f"http://{n3.grpc}"])
        self.assertNotIn("clientURLs", next(m for m in post(n3.api, "/v3/cluster/member/list").json["members"]
                                            if m["name"] == n3.raft), "n3 serves no gRPC now: its own view says so")

    def test_a_taken_grpc_address_stops_the_start(self):
        # grpc++ would share a port with SO_REUSEPORT; kvnode turns that off, so a
        # second node on the same -grpc-address must refuse to start.
        first = self.start_cluster()[0]
        import kvcluster
        p = subprocess.run([kvcluster.KVNODE, f"-raft-address=127.0.0.1:{free_port()}",
                            f"-api-address=127.0.0.1:{free_port()}", f"-grpc-address={first.grpc}",
                            f"-data-dir={os.path.join(self.tmp, 'second')}", "-bootstrap"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 1, p.stderr[-2000:])
        self.assertIn(f"cannot serve gRPC on {first.grpc}", p.stderr + p.stdout)

    def test_shape_matches_a_real_etcd(self):
        if not ETCDCTL:
            self.skipTest("etcdctl is not installed (Debian package etcd-client)")
        if not ETCD:
            self.skipTest("etcd is not installed (Debian package etcd-server): no comparison with a real etcd")
        etcd_client, _ = start_real_etcd(self)

        nodes = self.start_cluster()
        self.wait_leader(nodes)
        ours = nodes[1]  # a follower or the leader: the shape is the same
        # One key each, so that every size (dbSizeInUse too) is non-zero on both sides.
        etcdctl([etcd_client], "put", "shape", "v")
        etcdctl([ours.grpc], "put", "shape", "v")
        for args in (("member", "list", "-w", "json"), ("endpoint", "status", "-w", "json")):
            theirs = json.loads(etcdctl([etcd_client], *args).stdout)
            mine = json.loads(etcdctl([ours.grpc], *args).stdout)
            self.assert_same_shape(shape(mine), shape(theirs), " ".join(args))
        for args in (("member", "list"), ("endpoint", "status")):
            theirs = etcdctl([etcd_client], *args).stdout.splitlines()[0].split(", ")
            mine = etcdctl([ours.grpc], *args).stdout.splitlines()[0].split(", ")
            self.assertEqual(len(mine), len(theirs), f"etcdctl {' '.join(args)} columns: {mine} vs {theirs}")
        for path in ("/v3/cluster/member/list", "/v3/maintenance/status"):
            theirs = post(etcd_client, path).json
            mine = post(ours.api, path).json
            self.assert_same_shape(shape(mine), shape(theirs), path)
            self.assertEqual(list(mine), list(theirs), f"{path}: field order")

    def assert_same_shape(self, mine, theirs, what):
        """Same fields with the same types."""
        if isinstance(theirs, dict):
            self.assertIsInstance(mine, dict, what)
            missing = set(theirs) - set(mine)
            extra = set(mine) - set(theirs)
            self.assertFalse(missing or extra, f"{what}: fields missing {sorted(missing)}, extra {sorted(extra)}")
            for k in mine:
                self.assert_same_shape(mine[k], theirs[k], f"{what}.{k}")
        elif isinstance(theirs, list):
            self.assertIsInstance(mine, list, what)
            if mine and theirs:
                self.assert_same_shape(mine[0], theirs[0], f"{what}[0]")
        else:
            self.assertEqual(mine, theirs, what)


if __name__ == "__main__":
    unittest.main()
