"""Integration: the front ends' auth checks on a member whose auth state lags the leader's, watches refused by auth (against a real etcd), and what a node logs of an auth flow (never a secret)."""

import base64
import http.client
import json
import os
import subprocess
import unittest

import test_etcd_cluster
from kvcluster import ClusterTest, free_port, request, wait_for
from test_etcd_cluster import ETCD, ETCDCTL, etcdctl, start_real_etcd

# Rounds of "change on the leader, act at once through a follower": the follower has not
# applied the change yet in (nearly) every round, so one round already shows a refusal.
LAG_ROUNDS = 8
ROOT_PW = "rootpw-8f3e1c"
ALICE_PW = "alicepw-4b7d2a"
ADMIN_PW = "adminpw-9c1e5f"


def b64(s):
    return base64.b64encode(s.encode()).decode()


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def call(node_api, path, body, authorization=None):
    headers = {"Content-Type": "application/json"}
    if authorization:
        headers["Authorization"] = authorization
    return request("POST", node_api, path, json.dumps(body), headers, timeout=20)


def set_up_auth(api):
    """Through the gateway at api: root (role root), role app (no permission yet), alice
    holding app, admin (no role yet), auth enabled."""
    steps = [("/v3/auth/user/add", {"name": "root", "password": ROOT_PW}),
             ("/v3/auth/user/grant", {"user": "root", "role": "root"}),
             ("/v3/auth/role/add", {"name": "app"}),
             ("/v3/auth/user/add", {"name": "alice", "password": ALICE_PW}),
             ("/v3/auth/user/grant", {"user": "alice", "role": "app"}),
             ("/v3/auth/user/add", {"name": "admin", "password": ADMIN_PW}),
             ("/v3/auth/enable", {})]
    for path, body in steps:
        r = call(api, path, body)
        assert r.status == 200, (path, r)


def token(api, user, password):
    r = call(api, "/v3/auth/authenticate", {"name": user, "password": password})
    assert r.status == 200, r
    return r.json["token"]


class AuthFrontEndTest(ClusterTest):
    def setUp(self):
        super().setUp()
        self.tokens = []  # every token handed out: none may reach a log

    def token(self, api, user, password):
        t = token(api, user, password)
        self.tokens.append(t)
        return t

    def start_cluster(self):
        return test_etcd_cluster.EtcdClusterTest.start_cluster(self)

    def grant(self, api, root, role, prefix, perm="READWRITE"):
        r = call(api, "/v3/auth/role/grant",
                 {"name": role, "perm": {"permType": perm, "key": b64(prefix), "range_end": b64(prefix[:-1] + "0")}},
                 root)
        self.assertEqual(r.status, 200, r)

    def test_a_client_cannot_claim_a_certificate_name_through_the_front_end(self):
        # Our gRPC front end tells the grpc++ services behind it a verified
        # certificate's CN in the ckv-frontend-client-cn metadata; one sent by
        # a client must never count, on a call it relays (Auth) or answers (KV).
        try:
            import grpc
            from etcd3 import etcdrpc
        except ImportError:
            self.skipTest("python3-grpcio / python3-etcd3 are not installed")
        nodes = self.start_cluster()
        set_up_auth(nodes[0].api)
        channel = grpc.insecure_channel(nodes[0].grpc)
        self.addCleanup(channel.close)
        spoof = (("ckv-frontend-client-cn", "root"),)
        with self.assertRaises(grpc.RpcError) as relayed:
            etcdrpc.AuthStub(channel).UserList(etcdrpc.AuthUserListRequest(), metadata=spoof, timeout=10)
        self.assertEqual(relayed.exception.code(), grpc.StatusCode.INVALID_ARGUMENT, relayed.exception)
        self.assertEqual(relayed.exception.details(), "etcdserver: user name is empty")
        with self.assertRaises(grpc.RpcError) as answered:
            etcdrpc.KVStub(channel).Put(etcdrpc.PutRequest(key=b"k", value=b"v"), metadata=spoof, timeout=10)
        self.assertEqual(answered.exception.details(), "etcdserver: user name is empty")
        # The root user's own token works on the same channel: the refusals were about the claim.
        tok = token(nodes[0].api, "root", ROOT_PW)
        etcdrpc.KVStub(channel).Put(etcdrpc.PutRequest(key=b"k", value=b"v"), metadata=(("token", tok),), timeout=10)

    def test_a_lagging_member_checks_again_after_a_read_barrier(self):
        """Each round changes auth on the leader and at once acts through a follower that has
        (most likely) not applied the change: the seed API's /set and /delete with Basic, a
        gateway put with a token, LeaseRevoke, an auth change by a user just made root, and a
        write without credentials right after 'auth disable'. Every one must succeed."""
        nodes = self.start_cluster()
        leader = self.wait_leader(nodes)
        followers = [n for n in nodes if n is not leader]
        set_up_auth(leader.api)
        root = self.token(leader.api, "root", ROOT_PW)
        alice = self.token(leader.api, "alice", ALICE_PW)
        refused = []

        def expect_ok(what, r):
            if r.status != 200:
                refused.append(f"{what}: {r.status} {r.raw[:200]}")

        for i in range(LAG_ROUNDS):
            via = followers[i % 2]
            # A grant, then the seed API with Basic through a follower.
            self.grant(leader.api, root, "app", f"/seed{i}/")
            expect_ok(f"round {i}: /set via {via.name}",
                      request("POST", via.api, "/set", json.dumps({"key": f"/seed{i}/k", "value": "v"}),
                              {"Authorization": basic("alice", ALICE_PW)}))
            self.grant(leader.api, root, "app", f"/del{i}/")
            expect_ok(f"round {i}: /delete via {via.name}",
                      request("POST", via.api, "/delete", json.dumps({"key": f"/del{i}/k"}),
                              {"Authorization": basic("alice", ALICE_PW)}))
            # A grant, then a gateway put with a token resolved at the old revision there.
            self.grant(leader.api, root, "app", f"/kv{i}/")
            expect_ok(f"round {i}: /v3/kv/put via {via.name}",
                      call(via.api, "/v3/kv/put", {"key": b64(f"/kv{i}/k"), "value": b64("v")}, alice))
            # LeaseRevoke needs WRITE on the lease's keys: root attaches one alice cannot write yet.
            lease = call(leader.api, "/v3/lease/grant", {"TTL": 600}, root)
            self.assertEqual(lease.status, 200, lease)
            lease_id = lease.json["ID"]
            r = call(leader.api, "/v3/kv/put", {"key": b64(f"/lease{i}/k"), "value": b64("v"), "lease": lease_id},
                     root)
            self.assertEqual(r.status, 200, r)
            self.grant(leader.api, root, "app", f"/lease{i}/")
            expect_ok(f"round {i}: /v3/lease/revoke via {via.name}",
                      call(via.api, "/v3/lease/revoke", {"ID": lease_id}, alice))
        # An auth change by a user made root on the leader a moment before.
        for i in range(LAG_ROUNDS):
            via = followers[i % 2]
            admin = self.token(leader.api, "admin", ADMIN_PW)
            r = call(leader.api, "/v3/auth/user/grant", {"user": "admin", "role": "root"}, root)
            self.assertEqual(r.status, 200, r)
            expect_ok(f"round {i}: /v3/auth/role/add by admin via {via.name}",
                      call(via.api, "/v3/auth/role/add", {"name": f"made{i}"}, admin))
            r = call(leader.api, "/v3/auth/user/revoke", {"name": "admin", "role": "root"}, root)
            self.assertEqual(r.status, 200, r)
        # 'auth disable' on the leader, then writes without credentials through a follower.
        for i in range(LAG_ROUNDS):
            via = followers[i % 2]
            root = self.token(leader.api, "root", ROOT_PW)
            r = call(leader.api, "/v3/auth/disable", {}, root)
            self.assertEqual(r.status, 200, r)
            expect_ok(f"round {i}: /set without credentials via {via.name} after auth disable",
                      request("POST", via.api, "/set", json.dumps({"key": f"open{i}", "value": "v"})))
            r = call(leader.api, "/v3/auth/enable", {})
            self.assertEqual(r.status, 200, r)
        if refused:
            self.fail("refused by a member whose auth state lagged:\n" + "\n".join(refused))
        # The refusals that stand are still refused, through every member.
        for n in nodes:
            r = request("POST", n.api, "/set", json.dumps({"key": "/other", "value": "v"}),
                        {"Authorization": basic("alice", ALICE_PW)})
            self.assertEqual(r.status, 403, r)
            r = request("POST", n.api, "/set", json.dumps({"key": "/seed0/k", "value": "v"}))
            self.assertEqual(r.status, 401, r)
            r = call(n.api, "/v3/auth/role/add", {"name": "never"}, self.token(leader.api, "alice", ALICE_PW))
            self.assertEqual(r.status, 403, r)
        self.check_logs(nodes)

    def test_join_sends_the_credentials_of_its_auth_file(self):
        """With auth enabled /join needs root: -join alone is refused (401, logged, retried); with
        -join-auth-file the node joins, a file others can read draws a warning, and the password is in
        no log."""
        n1 = self.node("n1", "-bootstrap").start()
        self.wait_leader([n1])
        set_up_auth(n1.api)
        bare = self.node("n2", f"-join={n1.api}").start()
        wait_for(lambda: f"join via {n1.api} failed" in bare.log() and "HTTP 401" in bare.log(), 20,
                 "a join without credentials to be refused")
        bare.kill()
        self.assertEqual([m["raftAddress"] for m in n1.status()["members"]], [n1.raft])
        auth_file = os.path.join(self.tmp, "join-auth")
        with open(auth_file, "w") as f:
            f.write(f"root:{ROOT_PW}\n")
        os.chmod(auth_file, 0o644)
        joined = self.node("n3", f"-join={n1.api}", f"-join-auth-file={auth_file}").start()
        self.wait_voters(n1, [n1, joined])
        self.assertIn("can be read by group or others; chmod 600 it", joined.log())
        for n in (n1, bare, joined):
            self.assertNotIn(ROOT_PW, n.log(), n.name)
            self.assertNotIn(basic("root", ROOT_PW)[6:], n.log(), n.name)
        wrong = os.path.join(self.tmp, "no-colon")
        with open(wrong, "w") as f:
            f.write("root\n")
        p = subprocess.run([*self.node("n4", f"-join={n1.api}", f"-join-auth-file={wrong}").args()],
                           capture_output=True, text=True, timeout=20)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(f"-join-auth-file {wrong}: the first line is not user:password", p.stdout + p.stderr)

    def check_logs(self, nodes):
        """Every refusal above is logged where it was refused (who, what, why), and no password,
        token or Basic credential of the whole flow is in any log."""
        for n in nodes:
            log = n.log()
            for line in ('auth: refused /set for user "alice": etcdserver: permission denied',
                         'auth: refused /set for user "<none>": etcdserver: user name is empty',
                         'auth: refused add role "never" for user "alice": etcdserver: permission denied'):
                self.assertTrue(line in log, f"{n.name} did not log: {line}")
            secrets = [ROOT_PW, ALICE_PW, ADMIN_PW, basic("alice", ALICE_PW)[6:], *self.tokens]
            self.assertEqual([x for x in secrets if x in log], [], f"{n.name} logged a secret")

    def watch_lines(self, api, body, authorization, count):
        """The first `count` lines of a gateway /v3/watch stream, headers without their
        per-cluster values; (HTTP status, lines)."""
        host, port = api.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        headers = {"Content-Type": "application/json"}
        if authorization:
            headers["Authorization"] = authorization
        try:
            conn.request("POST", "/v3/watch", body, headers)
            resp = conn.getresponse()
            if resp.status != 200:
                return resp.status, [resp.read().decode()]
            lines = []
            for _ in range(count):
                msg = json.loads(resp.readline())
                msg.get("result", {}).pop("header", None)
                lines.append(msg)
            return resp.status, lines
        finally:
            conn.close()

    def test_a_refused_watch_is_created_and_canceled_as_etcd_answers(self):
        """Gateway and gRPC (etcdctl watch): a create auth refuses is answered created + canceled with
        watch_id -1 and the refusal's gRPC text, in its place among the others; the stream goes on."""
        if not (ETCD and ETCDCTL):
            raise unittest.SkipTest("etcd and etcdctl are not installed (scripts/setup.sh installs them)")
        grpc = f"127.0.0.1:{free_port()}"
        ours = self.node("n1", "-bootstrap", f"-grpc-address={grpc}").start()
        self.wait_leader([ours])
        etcd_client, _ = start_real_etcd(self)
        systems = {"etcd": (etcd_client, etcd_client), "consensuskv": (ours.api, grpc)}
        answers = {}
        for name, (api, _) in systems.items():
            set_up_auth(api)
            root = token(api, "root", ROOT_PW)
            self.grant(api, root, "app", "/app/")
            alice = token(api, "alice", ALICE_PW)
            denied = json.dumps({"create_request": {"key": b64("/other")}})
            denied_id = json.dumps({"create_request": {"key": b64("/other"), "watch_id": "7"}})
            allowed = json.dumps({"create_request": {"key": b64("/app/x")}})
            answers[name] = [
                self.watch_lines(api, denied, alice, 1),
                self.watch_lines(api, denied_id, alice, 1),
                self.watch_lines(api, denied, None, 1),
                self.watch_lines(api, denied, "not-a-token", 1),
                self.watch_lines(api, denied + allowed, alice, 2),
                self.watch_lines(api, allowed + denied, alice, 2),
            ]
        self.assertEqual(answers["consensuskv"], answers["etcd"])
        # The stream goes on after a refusal: a put to the allowed key arrives.
        host, port = ours.api.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        alice = token(ours.api, "alice", ALICE_PW)
        try:
            conn.request("POST", "/v3/watch", json.dumps({"create_request": {"key": b64("/other")}}) +
                         json.dumps({"create_request": {"key": b64("/app/x")}}),
                         {"Content-Type": "application/json", "Authorization": alice})
            resp = conn.getresponse()
            self.assertTrue(json.loads(resp.readline())["result"]["canceled"])
            self.assertTrue(json.loads(resp.readline())["result"]["created"])
            r = call(ours.api, "/v3/kv/put", {"key": b64("/app/x"), "value": b64("v")}, alice)
            self.assertEqual(r.status, 200, r)
            events = json.loads(resp.readline())["result"]["events"]
            self.assertEqual([base64.b64decode(e["kv"]["key"]).decode() for e in events], ["/app/x"])
        finally:
            conn.close()
        # etcdctl watch over gRPC: the same output, error and exit code.
        for user in (f"alice:{ALICE_PW}", None):
            got = {}
            for name, (_, endpoint) in systems.items():
                extra = [f"--user={user}"] if user else []
                p = etcdctl([endpoint], *extra, "watch", "/other", check=False)
                got[name] = (p.returncode, p.stdout, p.stderr.strip().splitlines()[-1:])
            self.assertEqual(got["consensuskv"], got["etcd"], user)


if __name__ == "__main__":
    unittest.main()
