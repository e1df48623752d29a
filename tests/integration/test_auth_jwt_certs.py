"""Integration: JWT auth tokens (-auth-token=jwt,...) and TLS client certificates as the user (-client-cert-auth), each against a real etcd 3.4 started with the same keys and certificates (generated here with openssl)."""

import base64
import json
import os
import shutil
import subprocess
import unittest

import kvcluster
from kvcluster import ClusterTest, free_port, request, wait_for
import test_etcd_auth
import test_tls
from test_etcd_auth import ALICE, ROOT, ctl, set_up_auth
from test_etcd_cluster import post, start_real_etcd

ETCDCTL = shutil.which("etcdctl")
ETCD = shutil.which("etcd")
OPENSSL = shutil.which("openssl")

VERIFY_ONLY = "Error: rpc error: code = Unknown desc = auth: token signing attempted with verify-only key"


def b64(s):
    return base64.b64encode(s.encode()).decode()


def jwt_claims(token):
    """The claims of a JWT, unverified (to look at what a server put there)."""
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def authenticate(address, name, password):
    r = post(address, "/v3/auth/authenticate", json.dumps({"name": name, "password": password}))
    if r.status != 200:
        raise AssertionError(f"authenticate {name} at {address}: {r.status} {r.raw}")
    return r.json["token"]


def gateway_put(address, token, key, value):
    """A put through the /v3 gateway with the token; returns (HTTP status, body)."""
    r = request("POST", address, "/v3/kv/put", json.dumps({"key": b64(key), "value": b64(value)}),
                {"Content-Type": "application/json", "Authorization": token})
    return r.status, r.json


class JwtTest(ClusterTest):
    def setUp(self):
        super().setUp()
        if not (ETCDCTL and ETCD and OPENSSL):
            self.skipTest("etcd, etcdctl and openssl are needed (scripts/setup.sh installs them)")
        self.keys = os.path.join(self.tmp, "jwt")
        os.mkdir(self.keys)
        # Made at run time, never committed.
        test_tls.run_openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "jwt.key",
                             cwd=self.keys)
        test_tls.run_openssl("pkey", "-in", "jwt.key", "-pubout", "-out", "jwt.pub", cwd=self.keys)

    def token_flag(self, ttl="5m", private=True):
        priv = f",priv-key={self.keys}/jwt.key" if private else ""
        return f"jwt,pub-key={self.keys}/jwt.pub{priv},sign-method=RS256,ttl={ttl}"

    def start_cluster(self, *per_node):
        """Three nodes; per_node[i] are node i's extra flags (its -auth-token)."""
        grpc = {}

        def make(name, *extra):
            g = f"127.0.0.1:{free_port()}"
            i = int(name[1:]) - 1
            node = self.node(name, f"-grpc-address={g}", *per_node[i], *extra)
            grpc[node.name] = g
            return node

        nodes = self.start_joined(make)
        for n in nodes:
            n.grpc = grpc[n.name]
        return nodes

    def test_etcdctl_flows_and_tokens_match_a_real_etcd(self):
        flag = f"-auth-token={self.token_flag()}"
        # n3 holds only the public key: it verifies tokens but cannot sign them.
        nodes = self.start_cluster([flag], [flag], [f"-auth-token={self.token_flag(private=False)}"])
        signers, verify_only = nodes[:2], nodes[2]
        ours = [n.grpc for n in signers]
        theirs, _ = start_real_etcd(self, f"--auth-token={self.token_flag()}")
        their_verify_only, _ = start_real_etcd(self, f"--auth-token={self.token_flag(private=False)}")
        set_up_auth([nodes[0].grpc])
        set_up_auth([theirs])
        set_up_auth([their_verify_only])
        # Authenticate on a verify-only member: etcd's error, code and text...
        got = ctl([verify_only.grpc], "put", "k", "v", user=ROOT)
        want = ctl([their_verify_only], "put", "k", "v", user=ROOT)
        self.assertEqual((got[0], got[2]), (want[0], want[2]))
        self.assertEqual(got[2], VERIFY_ONLY)
        # ...a wrong password there is still "authentication failed", as etcd.
        got = ctl([verify_only.grpc], "put", "k", "v", user="root:wrong")
        want = ctl([their_verify_only], "put", "k", "v", user="root:wrong")
        self.assertEqual((got[0], got[2]), (want[0], want[2]))
        # The same etcdctl steps (each authenticates with --user, gets a JWT and uses it) on both.
        for user, args in test_etcd_auth.DIFFERENTIAL_STEPS:
            got = ctl(ours, *args, user=user)
            want = ctl([theirs], *args, user=user)
            self.assertEqual((got[0], got[2]), (want[0], want[2]), f"{user} {args}")

    def test_tokens_verify_on_every_member_and_across_systems(self):
        flag = f"-auth-token={self.token_flag()}"
        nodes = self.start_cluster([flag], [flag], [f"-auth-token={self.token_flag(private=False)}"])
        theirs, _ = start_real_etcd(self, f"--auth-token={self.token_flag()}")
        set_up_auth([nodes[0].grpc])
        set_up_auth([theirs])
        token = authenticate(nodes[1].api, "alice", "alicepw")
        their_token = authenticate(theirs, "alice", "alicepw")
        # etcd's claims, and the same auth revision after the same changes.
        self.assertEqual(sorted(jwt_claims(token)), ["exp", "revision", "username"])
        self.assertEqual(jwt_claims(token)["username"], "alice")
        self.assertEqual(jwt_claims(token)["revision"], jwt_claims(their_token)["revision"])
        self.assertEqual(token.split(".")[0], their_token.split(".")[0])  # {"alg":"RS256","typ":"JWT"}
        # Verified locally by every member (no log entry: the verify-only one too).
        for n in nodes:
            self.assertEqual(gateway_put(n.api, token, "/app/x", n.name)[0], 200, n.name)
            self.assertEqual(gateway_put(n.api, token, "/other", "1")[0], 403, n.name)
        # Across systems with the same key pair: each accepts the other's tokens
        # (same claims, same signature method, same auth revision).
        self.assertEqual(gateway_put(theirs, token, "/app/ours", "1")[0], 200)
        for n in nodes:
            self.assertEqual(gateway_put(n.api, their_token, "/app/theirs", "1")[0], 200, n.name)
        # A tampered token (alice's claims rewritten to root's) is refused by both, with the same text.
        head, claims, sig = token.split(".")
        forged = dict(jwt_claims(token), username="root")
        forged_part = base64.urlsafe_b64encode(json.dumps(forged, separators=(",", ":")).encode()).decode().rstrip("=")
        forged_token = ".".join([head, forged_part, sig])
        got, want = gateway_put(nodes[0].api, forged_token, "/x", "1"), gateway_put(theirs, forged_token, "/x", "1")
        self.assertEqual((got[0], got[1]["message"]), (want[0], want[1]["message"]))
        self.assertEqual(got[1]["message"], "etcdserver: invalid auth token")
        # An auth change makes every earlier token old, on both (on n3 once it applied the change).
        self.assertEqual(ctl([nodes[0].grpc], "role", "add", "extra", user=ROOT)[0], 0)
        self.assertEqual(ctl([theirs], "role", "add", "extra", user=ROOT)[0], 0)
        wait_for(lambda: gateway_put(nodes[2].api, token, "/app/x", "1")[0] != 200, 15, "n3 to refuse the old token")
        got, want = gateway_put(nodes[2].api, token, "/app/x", "1"), gateway_put(theirs, their_token, "/app/x", "1")
        self.assertEqual((got[0], got[1]["message"]), (want[0], want[1]["message"]))
        self.assertEqual(got[1]["message"], "etcdserver: revision of auth store is old")
        # Nothing secret in the logs.
        for n in nodes:
            self.assertNotIn(token, n.log())
            self.assertNotIn("alicepw", n.log())

    def test_expired_tokens_are_refused_as_etcd_does(self):
        flag = f"-auth-token={self.token_flag(ttl='2s')}"
        nodes = self.start_cluster([flag], [flag], [flag])
        theirs, _ = start_real_etcd(self, f"--auth-token={self.token_flag(ttl='2s')}")
        set_up_auth([nodes[0].grpc])
        set_up_auth([theirs])
        token = authenticate(nodes[0].api, "alice", "alicepw")
        their_token = authenticate(theirs, "alice", "alicepw")
        self.assertEqual(jwt_claims(token)["exp"] - jwt_claims(their_token)["exp"] in (-1, 0, 1), True)
        self.assertEqual(gateway_put(nodes[1].api, token, "/app/x", "1")[0], 200)
        # Wait until both refuse (exp is whole seconds: at most ~3 s), then compare the answers.
        wait_for(lambda: gateway_put(nodes[1].api, token, "/app/x", "1")[0] == 401, 15, "our token to expire")
        wait_for(lambda: gateway_put(theirs, their_token, "/app/x", "1")[0] == 401, 15, "etcd's token to expire")
        got, want = gateway_put(nodes[1].api, token, "/app/x", "1"), gateway_put(theirs, their_token, "/app/x", "1")
        self.assertEqual((got[0], got[1]["message"], got[1]["code"]), (want[0], want[1]["message"], want[1]["code"]))
        # etcdctl re-authenticates per command: the flow still works with a 2 s ttl.
        self.assertEqual(ctl([nodes[2].grpc], "put", "/app/y", "1", user=ALICE)[:2], (0, "OK\n"))

    def test_bad_flags_and_keys_stop_the_start(self):
        cases = [
            ("jwt,sign-method=RS256", 1),                                     # no key at all
            (f"jwt,pub-key={self.keys}/jwt.pub,sign-method=XX256", 2),         # unknown method
            (f"jwt,pub-key={self.keys}/jwt.pub", 2),                           # no sign-method
            (f"jwt,pub-key={self.keys}/jwt.pub,sign-method=ES256", 1),         # an RSA key for ES256
            (f"jwt,pub-key={self.keys}/missing.pub,sign-method=RS256", 1),
            (f"jwt,pub-key={self.keys}/jwt.pub,sign-method=RS256,ttl=soon", 2),
            (f"jwt,pub-key={self.keys}/jwt.pub,pub-key=x,sign-method=RS256", 2),  # given twice
            ("opaque", 2),
        ]
        for value, code in cases:
            d = os.path.join(self.tmp, f"bad{cases.index((value, code))}")
            p = subprocess.run([kvcluster.KVNODE,
                                f"-raft-address=127.0.0.1:{free_port()}", f"-api-address=127.0.0.1:{free_port()}",
                                f"-data-dir={d}", "-bootstrap", f"-auth-token={value}"],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(p.returncode, code, f"{value}: {p.stderr}")
            self.assertIn("auth", p.stderr.lower(), value)
            self.assertFalse(os.path.exists(d), f"{value}: the data dir must not be touched")


# A member's certificate serves its API and is the client certificate it
# presents when it forwards; users' certificates name them in their CN.
USERS = ("root", "alice", "bob")


class ClientCertIdentityTest(ClusterTest):
    def setUp(self):
        super().setUp()
        if not (ETCDCTL and ETCD and OPENSSL):
            self.skipTest("etcd, etcdctl and openssl are needed (scripts/setup.sh installs them)")
        self.pki = os.path.join(self.tmp, "pki")
        os.mkdir(self.pki)
        test_tls.make_ca(self.pki, "ca")
        test_tls.make_cert(self.pki, "ca", "member", test_tls.MEMBER_EXT)
        test_tls.make_cert(self.pki, "ca", "client", test_tls.CLIENT_EXT)  # start_tls_cluster's admin client
        for u in USERS:
            test_tls.make_cert(self.pki, "ca", u, test_tls.CLIENT_EXT)

    f = test_tls.TlsTest.f
    client_context = test_tls.TlsTest.client_context
    start_tls_cluster = test_tls.TlsTest.start_cluster

    def ctl(self, endpoint, cert, *args):
        """etcdctl over TLS with cert (a user's name) and no --user: (rc, stdout, error line)."""
        p = subprocess.run([ETCDCTL, f"--endpoints=https://{endpoint}", "--dial-timeout=5s", "--command-timeout=10s",
                            "--cacert", self.f("ca.crt"), "--cert", self.f(f"{cert}.crt"),
                            "--key", self.f(f"{cert}.key"), *args],
                           env=dict(os.environ, ETCDCTL_API="3"), capture_output=True, text=True, timeout=60)
        errors = [line for line in p.stderr.splitlines() if line.startswith("Error:")]
        return p.returncode, p.stdout, errors[-1] if errors else ""

    def start_etcd(self):
        def ready(client):
            return self.ctl(client, "root", "endpoint", "health")[0] == 0

        client, _ = start_real_etcd(self, f"--cert-file={self.f('member.crt')}", f"--key-file={self.f('member.key')}",
                                    f"--trusted-ca-file={self.f('ca.crt')}", "--client-cert-auth",
                                    scheme="https", ready=ready)
        return client

    def set_up(self, endpoint):
        for args in [("user", "add", "root", "--new-user-password=rootpw"), ("user", "grant-role", "root", "root"),
                     ("role", "add", "app"), ("role", "grant-permission", "--prefix", "app", "readwrite", "/app/"),
                     ("user", "add", "alice", "--no-password"), ("user", "grant-role", "alice", "app"),
                     ("auth", "enable")]:
            rc, _, err = self.ctl(endpoint, "root", *args)
            self.assertEqual(rc, 0, f"{args}: {err}")

    def test_certificate_cn_is_the_user_like_etcd(self):
        nodes = self.start_tls_cluster(True)
        leader = self.wait_leader(nodes)
        follower = next(n for n in nodes if n is not leader)
        theirs = self.start_etcd()
        self.set_up(leader.grpc)
        self.set_up(theirs)
        lease_out = {}
        steps = [
            ("alice", ("put", "/app/x", "1")),
            ("alice", ("get", "/app/x", "--print-value-only")),
            ("alice", ("put", "/other", "1")),         # permission denied
            ("alice", ("get", "/other")),              # permission denied
            ("alice", ("user", "list")),               # root only
            ("bob", ("put", "/app/x", "1")),           # not a user: permission denied
            ("member", ("put", "/app/x", "1")),        # the member's own certificate is not a user here either
            ("root", ("put", "/other", "1")),
            ("root", ("user", "list")),
            ("root", ("role", "get", "app")),
            ("root", ("member", "remove", "1234")),    # root: forwarded to the leader with root's identity
            ("alice", ("member", "remove", "1234")),   # permission denied
            ("alice", ("lease", "grant", "60")),
        ]
        for n in (follower, leader):
            for cert, args in steps:
                got = self.ctl(n.grpc, cert, *args)
                want = self.ctl(theirs, cert, *args)
                if args[0] == "lease":
                    lease_out[n.name] = got[1].split()[1]
                    lease_out["etcd"] = want[1].split()[1]
                    self.assertEqual((got[0], got[2]), (want[0], want[2]), f"{n.name}: {cert} {args}")
                    continue
                self.assertEqual((got[0], got[1], got[2]), (want[0], want[1], want[2]), f"{n.name}: {cert} {args}")
        # A lease revoke on a follower goes to the leader with alice's identity,
        # which must hold WRITE on every key attached.
        for n, lease in ((follower, lease_out[follower.name]), (leader, lease_out[leader.name])):
            got = self.ctl(n.grpc, "alice", "put", "/app/leased", "1", "--lease", lease)
            self.assertEqual(got[0], 0, got[2])
            got = self.ctl(n.grpc, "alice", "lease", "revoke", lease)
            self.assertEqual(got[:1] + got[2:], (0, ""), f"{n.name}: {got}")
        self.assertEqual(self.ctl(theirs, "alice", "put", "/app/leased", "1", "--lease", lease_out["etcd"])[0], 0)
        self.assertEqual(self.ctl(theirs, "alice", "lease", "revoke", lease_out["etcd"])[0], 0)

    def test_certificate_cn_on_the_seed_api_and_gateway(self):
        nodes = self.start_tls_cluster(True)
        leader = self.wait_leader(nodes)
        follower = next(n for n in nodes if n is not leader)
        self.set_up(leader.grpc)
        alice, bob, root = (self.client_context(u) for u in ("alice", "bob", "root"))
        for n in (follower, leader):
            r = request("POST", n.api, "/set", json.dumps({"key": "/app/s", "value": n.name}), tls=alice)
            self.assertEqual(r.status, 200, r.raw)
            r = request("GET", n.api, "/get?key=/app/s", tls=alice)
            self.assertEqual((r.status, r.json), (200, {"/app/s": n.name}))
            r = request("POST", n.api, "/set", json.dumps({"key": "/other", "value": "x"}), tls=alice)
            self.assertEqual((r.status, r.json["error"]), (403, "etcdserver: permission denied"))
            r = request("POST", n.api, "/set", json.dumps({"key": "/app/s", "value": "x"}), tls=bob)
            self.assertEqual(r.status, 403, r.raw)
            r = request("POST", n.api, "/v3/kv/put", json.dumps({"key": b64("/app/g"), "value": b64("1")}), tls=alice)
            self.assertEqual(r.status, 200, r.raw)
            r = request("POST", n.api, "/v3/kv/put", json.dumps({"key": b64("/g"), "value": b64("1")}), tls=alice)
            self.assertEqual(r.status, 403, r.raw)
            # Membership needs root: a follower forwards /remove to the leader,
            # which must see root (the forwarding member's claim), not the member.
            r = request("GET", n.api, "/remove?peerAddress=127.0.0.1:1", tls=alice)
            self.assertEqual(r.status, 403, r.raw)
            r = request("GET", n.api, "/remove?peerAddress=127.0.0.1:1", tls=root)
            self.assertEqual((r.status, r.json.get("error")), (404, "no such member"), f"{n.name}: {r.raw}")
        # A forged forwarded-caller claim from a client is refused, not believed.
        forged = {"X-Ckv-Forwarded": "1", "Ckv-Forwarded-Caller": "v1.cm9vdA.99.AAAA"}
        r = request("GET", leader.api, "/remove?peerAddress=127.0.0.1:1", None, forged, tls=alice)
        self.assertEqual((r.status, r.json["error"]), (401, "etcdserver: invalid auth token"), r.raw)
        wait_for(lambda: "not made by a member" in leader.log(), 10, "the forged claim logged")


if __name__ == "__main__":
    unittest.main()
