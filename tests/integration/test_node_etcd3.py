"""Integration: the npm etcd3 client (microsoft/etcd3 on @grpc/grpc-js, an HTTP/2 and protobuf stack nobody here
wrote, as Node.js services use it) runs the same scenarios against a 3-node kvnode cluster (through a follower) and
against a real etcd 3.4, and must observe the same: values, metadata and relative revisions, txn outcomes and the
library's STM, leases and their errors, watch events and replay, its lock and election recipes, auth.

The scenarios are tests/clients/node/scenarios.js; scripts/setup.sh installs Node.js and the client (npm ci)."""

import json
import os
import shutil
import subprocess
import unittest

import test_etcd_cluster as etcd_cluster  # a module attribute: its tests are not collected again here
from kvcluster import ClusterTest

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT_DIR = os.path.normpath(os.path.join(HERE, "..", "clients", "node"))
SCENARIOS = os.path.join(CLIENT_DIR, "scenarios.js")
NODE = shutil.which("node")
ETCD = shutil.which("etcd")
SCENARIO_TIMEOUT_S = 90


def run_scenario(name, endpoint, prefix):
    r = subprocess.run([NODE, SCENARIOS, name, endpoint, prefix], capture_output=True, text=True,
                       timeout=SCENARIO_TIMEOUT_S, cwd=CLIENT_DIR)
    if r.returncode != 0:
        raise AssertionError(f"scenario {name} against {endpoint} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout)


class NodeEtcd3Test(ClusterTest):
    """Each scenario runs against a real etcd and a kvnode follower; the two outputs must be equal."""

    @classmethod
    def setUpClass(cls):
        missing = [what for what, ok in (("etcd (Debian etcd-server)", ETCD), ("node (Node.js)", NODE),
                                         ("the npm etcd3 client", os.path.isdir(os.path.join(CLIENT_DIR, "node_modules", "etcd3"))))
                   if not ok]
        if missing:
            raise AssertionError(", ".join(missing) + " needed: scripts/setup.sh installs them")

    def endpoints(self):
        nodes = etcd_cluster.EtcdClusterTest.start_cluster(self)
        leader = self.wait_leader(nodes)
        follower = next(n for n in nodes if n is not leader)
        etcd_client, _ = etcd_cluster.start_real_etcd(self)
        return follower.grpc, etcd_client

    def assert_same(self, name, ours, theirs, prefix="/node/"):
        expected = run_scenario(name, theirs, prefix)
        got = run_scenario(name, ours, prefix)
        for want, have in zip(expected, got):
            self.assertEqual(have, want, f"{name}: kvnode differs from etcd at {want[0]!r}")
        self.assertEqual(len(got), len(expected), name)

    def test_kv_txn_stm_lease_watch_and_recipes(self):
        ours, theirs = self.endpoints()
        for name in ("kv", "txn", "lease", "watch", "lock_election"):
            with self.subTest(scenario=name):
                self.assert_same(name, ours, theirs, prefix=f"/node/{name}/")

    def test_members_and_status(self):
        ours, theirs = self.endpoints()
        expected = run_scenario("cluster", theirs, "/")
        got = run_scenario("cluster", ours, "/")
        # Sizes differ by construction (one etcd member, three of ours); everything else must not.
        self.assertEqual(expected[0], ["members", 1])
        self.assertEqual(got[0], ["members", 3])
        self.assertEqual(got[1:], expected[1:])

    def test_auth(self):
        ours, theirs = self.endpoints()
        self.assert_same("auth", ours, theirs)


if __name__ == "__main__":
    unittest.main()
