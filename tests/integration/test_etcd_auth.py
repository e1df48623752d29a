"""Integration: etcd's Auth (users, roles, permissions, tokens) with etcdctl against a 3-node cluster, the same flows against a real etcd for error texts, the seed API with Basic and Bearer, auth state across restarts and snapshots."""

import base64
import json
import os
import shutil
import subprocess
import time
import unittest

from kvcluster import ClusterTest, free_port, request, wait_for
import test_etcd_cluster
from test_etcd_cluster import etcdctl, post, start_real_etcd

ETCDCTL = shutil.which("etcdctl")
ETCD = shutil.which("etcd")

ROOT = "root:rootpw"
ALICE = "alice:alicepw"


def ctl(endpoints, *args, user=None):
    """etcdctl without raising: (returncode, stdout, the error line etcdctl prints)."""
    extra = [f"--user={user}"] if user else []
    p = etcdctl(endpoints, *extra, *args, check=False)
    errors = [line for line in p.stderr.splitlines() if line.startswith("Error:")]
    return p.returncode, p.stdout, errors[-1] if errors else ""


def set_up_auth(endpoints):
    """root (with the root role), role app with READWRITE on the prefix /app/, alice holding app, auth enabled."""
    etcdctl(endpoints, "user", "add", ROOT)
    etcdctl(endpoints, "user", "grant-role", "root", "root")
    etcdctl(endpoints, "role", "add", "app")
    etcdctl(endpoints, "role", "grant-permission", "--prefix", "app", "readwrite", "/app/")
    etcdctl(endpoints, "user", "add", ALICE)
    etcdctl(endpoints, "user", "grant-role", "alice", "app")
    etcdctl(endpoints, "auth", "enable")


# The same requests against both systems; each step's return code and error line are compared.
DIFFERENTIAL_STEPS = [
    (None, ("put", "k", "v")),                       # user name is empty
    ("root:wrong", ("put", "k", "v")),               # authentication failed
    (ALICE, ("put", "/app/x", "1")),
    (ALICE, ("put", "/other", "1")),                 # permission denied
    (ALICE, ("get", "/other")),                      # permission denied
    (ALICE, ("get", "/app/", "--prefix")),
    (ALICE, ("user", "list")),                       # permission denied (root only)
    (ALICE, ("user", "get", "alice")),               # allowed: itself
    (ALICE, ("role", "get", "app")),                 # allowed: holds it
    (ROOT, ("user", "add", ALICE)),                  # user name already exists
    (ROOT, ("role", "add", "app")),                  # role name already exists
    (ROOT, ("user", "get", "nobody")),               # user name not found
    (ROOT, ("role", "get", "nobody")),               # role name not found
    (ROOT, ("user", "delete", "root")),              # invalid auth management
    (ROOT, ("role", "delete", "root")),              # invalid auth management
    (ROOT, ("user", "revoke-role", "root", "root")),  # invalid auth management
    (ROOT, ("role", "revoke-permission", "app", "/zzz")),  # permission is not granted
    (ROOT, ("user", "revoke-role", "alice", "nope")),  # role is not granted
    (ROOT, ("role", "grant-permission", "--from-key", "app", "read", "/m")),
    (ALICE, ("get", "/n")),
    (ALICE, ("put", "/n", "1")),                     # READ only there
    (ROOT, ("role", "revoke-permission", "--prefix", "app", "/app/")),
    (ALICE, ("put", "/app/x", "2")),                 # revoked
    (ROOT, ("auth", "disable")),
    (None, ("put", "k", "v")),
]


class EtcdAuthTest(ClusterTest):
    def setUp(self):
        super().setUp()
        if not ETCDCTL:
            self.skipTest("etcdctl is not installed (Debian package etcd-client; scripts/setup.sh installs it)")

    def start_cluster(self):
        return test_etcd_cluster.EtcdClusterTest.start_cluster(self)

    def test_etcdctl_flow_on_every_member(self):
        nodes = self.start_cluster()
        leader = self.wait_leader(nodes)
        followers = [n for n in nodes if n is not leader]
        eps = [n.grpc for n in nodes]
        # AuthEnable without a root user fails as etcd's does.
        rc, _, err = ctl(eps, "auth", "enable")
        self.assertNotEqual(rc, 0)
        self.assertEqual(err, "Error: etcdserver: root user does not exist")
        set_up_auth(eps)
        for n in nodes:
            # A write without credentials, through each member.
            rc, _, err = ctl([n.grpc], "put", "k", "v")
            self.assertEqual(err, "Error: etcdserver: user name is empty", n.name)
            # alice writes her prefix through each member: a follower's
            # forwarded proposal carries alice, not the follower.
            rc, out, err = ctl([n.grpc], "put", f"/app/{n.name}", "1", user=ALICE)
            self.assertEqual((rc, out.strip()), (0, "OK"), err)
            # ...and nothing else, via a follower too.
            rc, _, err = ctl([n.grpc], "put", "/other", "1", user=ALICE)
            self.assertEqual(err, "Error: etcdserver: permission denied", n.name)
            rc, _, err = ctl([n.grpc], "del", "/other", user=ALICE)
            self.assertEqual(err, "Error: etcdserver: permission denied", n.name)
            rc, _, err = ctl([n.grpc], "get", "/other", user=ALICE)
            self.assertEqual(err, "Error: etcdserver: permission denied", n.name)
            rc, _, err = ctl([n.grpc], "member", "remove", "1", user=ALICE)
            self.assertEqual(err, "Error: etcdserver: permission denied", n.name)
        # Nothing outside the prefix was written; root sees alice's writes.
        rc, out, _ = ctl([followers[0].grpc], "get", "--prefix", "/", "--keys-only", user=ROOT)
        self.assertEqual(sorted(filter(None, out.split())), sorted(f"/app/{n.name}" for n in nodes))
        # A txn reading outside the grant is refused too.
        p = subprocess.run([ETCDCTL, f"--endpoints={followers[1].grpc}", f"--user={ALICE}", "txn"],
                           input="\nput /app/t 1\n\nget /other\n\n", capture_output=True, text=True,
                           env=dict(os.environ, ETCDCTL_API="3"), timeout=60)
        self.assertIn("etcdserver: permission denied", p.stderr)
        # Refusals are logged; the password never is.
        wait_for(lambda: any("auth: refused" in n.log() for n in nodes), 10, "a logged refusal")
        for n in nodes:
            self.assertNotIn("alicepw", n.log())
            self.assertNotIn("rootpw", n.log())
        # auth disable: anyone again.
        etcdctl(eps, "--user", ROOT, "auth", "disable")
        rc, out, err = ctl(eps, "put", "k", "v")
        self.assertEqual(rc, 0, err)

    def test_error_texts_match_a_real_etcd(self):
        if not ETCD:
            self.skipTest("etcd is not installed (Debian package etcd-server)")
        nodes = self.start_cluster()
        ours = [n.grpc for n in nodes]
        theirs = [start_real_etcd(self)[0]]
        got = {}
        for name, eps in (("consensuskv", ours), ("etcd", theirs)):
            rc, _, err = ctl(eps, "auth", "enable")
            steps = [(rc, err)]
            set_up_auth(eps)
            for user, args in DIFFERENTIAL_STEPS:
                rc, _, err = ctl(eps, *args, user=user)
                steps.append((rc, err))
            got[name] = steps
        for i, (ours_step, etcd_step) in enumerate(zip(got["consensuskv"], got["etcd"])):
            what = DIFFERENTIAL_STEPS[i - 1] if i else "auth enable"
            self.assertEqual(ours_step, etcd_step, f"step {i}: {what}")

    def test_token_expires_after_the_ttl_and_renews_on_use(self):
        nodes = self.start_cluster_with("-auth-token-ttl=2")
        eps = [n.grpc for n in nodes]
        set_up_auth(eps)
        n = nodes[0]
        r = post(n.api, "/v3/auth/authenticate", json.dumps({"name": "alice", "password": "alicepw"}))
        self.assertEqual(r.status, 200, r.raw)
        token = r.json["token"]
        # Valid on every member (simple tokens are replicated as digests).
        for m in nodes:
            wait_for(lambda: bearer_get(m, token, "/app/x").status == 404, 10, f"{m.name} to know the token")
        # Used every second it stays valid past its TTL...
        start = time.monotonic()
        while time.monotonic() - start < 3.5:
            self.assertEqual(bearer_get(n, token, "/app/x").status, 404)
            time.sleep(0.5)
        # ...and unused for longer than the TTL it is gone, with etcd's error.
        time.sleep(2.5)
        r = bearer_get(n, token, "/app/x")
        self.assertEqual(r.status, 401, r.raw)
        self.assertEqual(r.json["error"], "etcdserver: invalid auth token")
        r = request("POST", n.api, "/v3/kv/range", json.dumps({"key": base64.b64encode(b"/app/x").decode()}),
                    {"Content-Type": "application/json", "Authorization": token})
        self.assertEqual(r.status, 401, r.raw)
        self.assertEqual(r.json["message"], "etcdserver: invalid auth token")

    def start_cluster_with(self, *args):
        grpc = {}

        def make(name, *extra):
            g = f"127.0.0.1:{free_port()}"
            node = self.node(name, f"-grpc-address={g}", *args, *extra)
            grpc[node.name] = g
            return node

        nodes = self.start_joined(make)
        for n in nodes:
            n.grpc = grpc[n.name]
        return nodes

    def test_seed_api_with_basic_and_bearer(self):
        nodes = self.start_cluster()
        eps = [n.grpc for n in nodes]
        set_up_auth(eps)
        leader = self.wait_leader(nodes)
        follower = next(n for n in nodes if n is not leader)
        for n in (leader, follower):
            r = n.set("/app/s", "1")
            self.assertEqual(r.status, 401, r.raw)
            self.assertEqual(r.json["error"], "etcdserver: user name is empty")
            r = seed(n, "POST", "/set", {"key": "/app/s", "value": n.name}, basic("alice", "wrong"))
            self.assertEqual(r.status, 401, r.raw)
            self.assertEqual(r.json["error"], "etcdserver: authentication failed, invalid user ID or password")
            r = seed(n, "POST", "/set", {"key": "/app/s", "value": n.name}, basic("alice", "alicepw"))
            self.assertEqual(r.status, 200, r.raw)
            r = seed(n, "POST", "/set", {"key": "/other", "value": "x"}, basic("alice", "alicepw"))
            self.assertEqual(r.status, 403, r.raw)
            self.assertEqual(r.json["error"], "etcdserver: permission denied")
            r = seed(n, "GET", "/get?key=/app/s", None, basic("alice", "alicepw"))
            self.assertEqual((r.status, r.json), (200, {"/app/s": n.name}))
            r = seed(n, "GET", "/get?key=/other", None, basic("alice", "alicepw"))
            self.assertEqual(r.status, 403, r.raw)
            r = seed(n, "POST", "/delete", {"key": "/app/s"}, basic("alice", "alicepw"))
            self.assertEqual(r.status, 200, r.raw)
            # Membership needs root.
            r = seed(n, "GET", "/join?peerAddress=127.0.0.1:1", None, basic("alice", "alicepw"))
            self.assertEqual(r.status, 403, r.raw)
        # Bearer: a token from the gateway's authenticate.
        r = post(follower.api, "/v3/auth/authenticate", json.dumps({"name": "alice", "password": "alicepw"}))
        self.assertEqual(r.status, 200, r.raw)
        token = r.json["token"]
        r = seed(leader, "POST", "/set", {"key": "/app/b", "value": "bearer"}, "Bearer " + token)
        self.assertEqual(r.status, 200, r.raw)
        r = seed(leader, "POST", "/set", {"key": "/nope", "value": "bearer"}, "Bearer " + token)
        self.assertEqual(r.status, 403, r.raw)
        r = seed(leader, "POST", "/set", {"key": "/app/b", "value": "x"}, "Bearer not-a-token")
        self.assertEqual((r.status, r.json["error"]), (401, "etcdserver: invalid auth token"))
        # A password change drops the user's tokens and cached Basic credentials.
        change_password(follower, "alice", "newpw")
        r = seed(leader, "POST", "/set", {"key": "/app/b", "value": "x"}, "Bearer " + token)
        self.assertEqual(r.status, 401, r.raw)
        r = seed(leader, "POST", "/set", {"key": "/app/b", "value": "x"}, basic("alice", "alicepw"))
        self.assertEqual(r.status, 401, r.raw)
        r = seed(leader, "POST", "/set", {"key": "/app/b", "value": "x"}, basic("alice", "newpw"))
        self.assertEqual(r.status, 200, r.raw)

    def test_auth_state_survives_restarts_and_reaches_a_new_member_by_snapshot(self):
        nodes = self.start_cluster_with("-snapshot-threshold=20", "-snapshot-trailing=5")
        eps = [n.grpc for n in nodes]
        set_up_auth(eps)
        # Enough writes for every member to snapshot past the auth changes.
        for i in range(60):
            etcdctl(eps, "--user", ALICE, "put", f"/app/{i}", "v")
        for n in nodes:
            n.kill()
        for n in nodes:
            n.start()
        self.wait_leader(nodes)
        for n in nodes:
            rc, _, err = ctl([n.grpc], "put", "/other", "1", user=ALICE)
            self.assertEqual(err, "Error: etcdserver: permission denied", n.name)
            wait_for(lambda: ctl([n.grpc], "put", "/app/after", "1", user=ALICE)[0] == 0, 20,
                     f"alice to write via {n.name} after the restart")
        # A new member gets the state from a snapshot (the log it would need is compacted).
        g = f"127.0.0.1:{free_port()}"
        n4 = self.node("n4", f"-grpc-address={g}", "-snapshot-threshold=20", "-snapshot-trailing=5")
        n4.grpc = g
        n4.start()
        r = seed(nodes[0], "GET", f"/join?peerAddress={n4.raft}", None, basic("root", "rootpw"))
        self.assertEqual(r.status, 200, r.raw)
        wait_for(lambda: "installed the leader's snapshot" in n4.log(), 30, "n4 to install a snapshot")
        wait_for(lambda: ctl([n4.grpc], "get", "/app/1", user=ALICE)[0] == 0, 30, "alice to read via n4")
        rc, _, err = ctl([n4.grpc], "get", "/other", user=ALICE)
        self.assertEqual(err, "Error: etcdserver: permission denied")
        rc, out, err = ctl([n4.grpc], "user", "list", user=ROOT)
        self.assertEqual(sorted(out.split()), ["alice", "root"], err)


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def seed(node, method, path, body, authorization):
    headers = {"Content-Type": "application/json"}
    if authorization:
        headers["Authorization"] = authorization
    return request(method, node.api, path, json.dumps(body) if body is not None else None, headers)


def bearer_get(node, token, key):
    return seed(node, "GET", "/get?key=" + key, None, "Bearer " + token)


def change_password(node, user, password):
    """UserChangePassword as root through the gateway (etcdctl's passwd prompts on a terminal)."""
    r = post(node.api, "/v3/auth/authenticate", json.dumps({"name": "root", "password": "rootpw"}))
    assert r.status == 200, r.body
    r = request("POST", node.api, "/v3/auth/user/changepw", json.dumps({"name": user, "password": password}),
                {"Content-Type": "application/json", "Authorization": r.json["token"]})
    assert r.status == 200, r.body


if __name__ == "__main__":
    unittest.main()
