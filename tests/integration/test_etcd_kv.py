"""Integration: etcd's KV API (etcdctl put/get/del/txn/compaction and the /v3/kv gateway) on a 3-node kvnode cluster, through a follower and the leader, compared with a real etcd."""

import base64
import json
import os
import re
import shutil
import subprocess
import unittest

import test_etcd_cluster as etcd_cluster  # a module attribute: its tests are not collected again here
from kvcluster import ClusterTest, free_port, request, wait_for

ETCDCTL = shutil.which("etcdctl")
ETCD = shutil.which("etcd")

# Header fields that name a particular cluster or member, or its term: stripped before comparing.
ID_FIELDS = {"cluster_id", "member_id", "raft_term"}
# Fields holding a store revision: compared relative to the run's base revision.
REVISION_FIELDS = {"revision", "create_revision", "mod_revision"}


def b64(s):
    return base64.b64encode(s.encode()).decode()


def run_etcdctl(endpoint, args, stdin=None):
    env = dict(os.environ, ETCDCTL_API="3")
    return subprocess.run([ETCDCTL, f"--endpoints={endpoint}", "--dial-timeout=5s", "--command-timeout=10s", *args],
                          env=env, input=stdin, capture_output=True, text=True, timeout=60)


def relative(v, base):
    """A revision as an offset from the run's base (0 stays 0: "none")."""
    if isinstance(v, str) and v.isdigit():
        return str(int(v) - base) if int(v) else v
    if isinstance(v, int) and not isinstance(v, bool):
        return v - base if v else v
    return v


def normalize_json(v, base):
    """Ids and terms stripped, revisions relative to base; field order kept (it is compared too)."""
    if isinstance(v, dict):
        out = {}
        for k, x in v.items():
            if k in ID_FIELDS:
                continue
            out[k] = relative(x, base) if k in REVISION_FIELDS else normalize_json(x, base)
        return out
    if isinstance(v, list):
        return [normalize_json(x, base) for x in v]
    return v


def normalize_etcdctl(p, base, as_json):
    """(exit code, stdout, the Error: line) with ids stripped and revisions relative to base.
    etcdctl's retry warnings on stderr carry timestamps and client ids: only its Error: line counts."""
    out = p.stdout
    if as_json and p.returncode == 0:
        out = json.dumps(normalize_json(json.loads(out), base))
    out = re.sub(r"compacted revision (\d+)", lambda m: f"compacted revision {int(m.group(1)) - base}", out)
    # -w fields: one '"Name" : value' line per field.
    out = re.sub(r'^"(ClusterID|MemberID|RaftTerm)" : \d+\n', "", out, flags=re.M)
    out = re.sub(r'^"(Revision|CreateRevision|ModRevision)" : (\d+)$',
                 lambda m: f'"{m.group(1)}" : {relative(int(m.group(2)), base)}', out, flags=re.M)
    errors = [line for line in p.stderr.splitlines() if line.startswith("Error:")]
    return p.returncode, out, errors


def kv_script(p, base):
    """The etcdctl steps of one run over keys under prefix p; base is the store revision before the run's
    first write, so revisions the steps name are base + n. Each step: (args, stdin or None)."""
    r = lambda n: str(base + n)  # noqa: E731
    txn_in = (f'value("{p}/a") = "1"\nversion("{p}/b") = "2"\ncreate("{p}/c") > "0"\nmod("{p}/c") = "{r(3)}"\n\n'
              f"get {p}/a\nput {p}/t1 yes\ndel {p}/c\n\nput {p}/t1 no\n\n")
    txn_fail = f'value("{p}/a") != "1"\n\nput {p}/t2 yes\n\nget {p}/ --prefix\nput {p}/t2 no\n\n'
    txn_dup = f"\nput {p}/d 1\nput {p}/d 2\n\n\n"
    txn_big = "\n" + "".join(f"put {p}/m{i} v\n" for i in range(129)) + "\n\n"
    return [
        (["put", f"{p}/a", "1"], None),                                        # base+1
        (["put", f"{p}/b", "2", "-w", "json"], None),                          # base+2
        (["put", f"{p}/c", "3"], None),                                        # base+3
        (["put", f"{p}/b", "22", "--prev-kv"], None),                          # base+4
        (["get", f"{p}/", "--prefix"], None),
        (["get", f"{p}/", "--prefix", "-w", "json"], None),
        (["get", f"{p}/b", "--from-key"], None),
        (["get", f"{p}/", "--prefix", "--limit=2", "-w", "json"], None),
        (["get", f"{p}/", "--prefix", "--sort-by=MODIFY", "--order=DESCEND"], None),
        (["get", f"{p}/", "--prefix", "--sort-by=VERSION", "--order=ASCEND", "--keys-only"], None),
        (["get", f"{p}/", "--prefix", "--sort-by=CREATE", "--order=DESCEND", "-w", "json"], None),
        (["get", f"{p}/", "--prefix", "--sort-by=VALUE"], None),
        (["get", f"{p}/", "--prefix", "--sort-by=KEY", "--order=DESCEND", "--limit=1"], None),
        (["get", f"{p}/", "--prefix", "--limit=1", "-w", "fields"], None),
        (["get", f"{p}/b", f"--rev={r(2)}"], None),
        (["get", f"{p}/b", f"--rev={r(2)}", "-w", "json"], None),
        (["get", f"{p}/", "--prefix", "--consistency=s"], None),
        (["get", f"{p}/a", "--print-value-only"], None),
        (["get", f"{p}/nosuch", "-w", "json"], None),
        (["put", f"{p}/a", "--ignore-value"], None),                           # base+5
        (["get", f"{p}/a", "-w", "json"], None),
        (["put", f"{p}/nokey", "--ignore-value"], None),                       # error: key not found
        (["put", f"{p}/x", "v", "--lease=1234"], None),                        # error: lease not found
        (["txn", "-w", "json"], txn_in),                                       # base+6: success
        (["txn"], txn_fail),                                                   # base+7: failure branch
        (["txn", "-i"], txn_in),                                               # compares fail now: failure
        (["txn"], txn_dup),                                                    # error: duplicate key
        (["txn"], txn_big),                                                    # error: too many operations
        (["get", f"{p}/", "--prefix", "-w", "json"], None),
        (["del", f"{p}/t", "--prefix", "--prev-kv"], None),                    # base+8
        (["del", f"{p}/nosuch"], None),
        (["compaction", r(3)], None),
        (["get", f"{p}/b", f"--rev={r(2)}"], None),                            # error: compacted
        (["get", f"{p}/b", f"--rev={r(3)}"], None),                            # the compacted revision itself reads
        (["get", f"{p}/b", f"--rev={r(1000)}"], None),                         # error: future revision
        (["compaction", r(2)], None),                                          # error: compacted
        (["compaction", "--physical", r(5)], None),
        (["del", f"{p}/", "--prefix", "-w", "json"], None),                    # base+9
        (["get", f"{p}/", "--prefix", "-w", "json"], None),
        (["put", f"{p}/z", "last"], None),                                     # base+10
        (["del", f"{p}/y", "--from-key", "--prev-kv"], None),                  # base+11
        (["put", f"{p}/r1", "x"], None),                                       # base+12
        (["put", f"{p}/r2", "y"], None),                                       # base+13
        (["get", f"{p}/r1", f"{p}/r3", "-w", "json"], None),                   # [key, range_end)
        (["get", f"{p}/r1", f"{p}/r2"], None),
        (["get", f"{p}/", "--prefix", f"--rev={r(12)}", "--keys-only", "-w", "json"], None),
        (["del", f"{p}/r1", f"{p}/r2", "--prev-kv"], None),                    # base+14: r1 only
        (["get", f"{p}/", "--prefix", "--keys-only"], None),
        (["get", f"{p}/", "--prefix", "--order=DESCEND", "--limit=2", "--keys-only"], None),
        (["txn"], f'version("{p}/new") = "0"\ncreate("{p}/new") = "0"\n\nput {p}/new made\n\n\n'),  # base+15
        (["txn"], f'version("{p}/new") = "0"\n\nput {p}/new again\n\nget {p}/new\n\n'),  # fails: exists
        (["put", f"{p}/big"], "x" * (1400 << 10)),                            # base+16: under 1.5 MiB
        (["del", f"{p}/big"], None),                                           # base+17
        (["put", f"{p}/big"], "x" * (1600 << 10)),                            # error: request is too large
    ]


def gateway_script(p, base):
    """(path, body) steps against /v3/kv/*, under prefix p."""
    r = lambda n: str(base + n)  # noqa: E731
    end = b64(p + "0")  # the prefix's range end: "/" + 1
    txn = {"compare": [{"key": b64(f"{p}/a"), "target": "VALUE", "result": "EQUAL", "value": b64("1")},
                       {"key": b64(f"{p}/a"), "target": "MOD", "result": "LESS", "mod_revision": r(100)},
                       {"key": b64(f"{p}/"), "range_end": end, "target": "VERSION", "result": "GREATER",
                        "version": "0"}],
           "success": [{"request_range": {"key": b64(f"{p}/"), "range_end": end}},
                       {"request_put": {"key": b64(f"{p}/t"), "value": b64("x"), "prev_kv": True}},
                       {"request_txn": {"success": [{"request_delete_range": {"key": b64(f"{p}/t")}}]}}],
           "failure": [{"requestPut": {"key": b64(f"{p}/f"), "value": b64("y")}}]}
    return [
        ("/v3/kv/put", {"key": b64(f"{p}/a"), "value": b64("1")}),              # base+1
        ("/v3/kv/put", {"key": b64(f"{p}/b"), "value": b64("2"), "prev_kv": True}),
        ("/v3/kv/put", {"key": b64(f"{p}/b"), "value": b64("3"), "prev_kv": True, "unknown_field": 1}),
        ("/v3/kv/range", {"key": b64(f"{p}/a")}),
        ("/v3/kv/range", {"key": b64(f"{p}/"), "range_end": end, "sort_order": "DESCEND", "sort_target": "MOD",
                          "limit": 1}),
        ("/v3/kv/range", {"key": b64(f"{p}/"), "range_end": end, "keys_only": True, "serializable": True}),
        ("/v3/kv/range", {"key": b64(f"{p}/"), "range_end": end, "count_only": True}),
        ("/v3/kv/range", {"key": b64(f"{p}/b"), "revision": r(2)}),
        ("/v3/kv/range", {"key": b64(f"{p}/"), "range_end": end, "min_mod_revision": r(3)}),
        ("/v3/kv/range", {"key": b64(f"{p}/b"), "revision": r(1000)}),          # 400, OutOfRange
        ("/v3/kv/range", {}),                                                    # 400, key is not provided
        ("/v3/kv/put", {"key": b64(f"{p}/l"), "value": b64("v"), "lease": "123"}),  # 404, lease not found
        ("/v3/kv/txn", {"compare": [{"key": b64(f"{p}/a"), "target": "LEASE", "result": "EQUAL", "lease": "0"},
                                    {"key": b64(f"{p}/none"), "target": "CREATE", "result": "EQUAL",
                                     "create_revision": "0"}],
                        "failure": [{"request_range": {"key": b64(f"{p}/a")}}]}),  # read-only: base+3 still
        ("/v3/kv/txn", txn),                                                     # base+4
        ("/v3/kv/txn", txn),                                                     # compares fail: base+5
        ("/v3/kv/deleterange", {"key": b64(f"{p}/f"), "prev_kv": True}),        # base+6
        ("/v3/kv/deleterange", {"key": b64(f"{p}/"), "range_end": end}),        # base+7
        ("/v3/kv/compaction", {"revision": r(2), "physical": True}),
        ("/v3/kv/compaction", {"revision": r(2)}),                               # 400, compacted
        ("/v3/kv/range", {"key": b64(f"{p}/b"), "revision": r(1)}),             # 400, compacted
    ]


def post(address, path, body, headers=None):
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    return request("POST", address, path, body if isinstance(body, str) else json.dumps(body), h)


def normalize_reply(reply, base):
    body = normalize_json(reply.json, base) if reply.json is not None else reply.raw
    return reply.status, json.dumps(body)


class EtcdKvTest(ClusterTest):
    def start_cluster(self):
        nodes = etcd_cluster.EtcdClusterTest.start_cluster(self)
        leader = self.wait_leader(nodes)
        follower = next(n for n in nodes if n is not leader)
        return nodes, leader, follower

    def start_etcd(self):
        return etcd_cluster.start_real_etcd(self)[0]

    def store_revision(self, endpoint):
        p = run_etcdctl(endpoint, ["get", "nothing-here", "-w", "json"])
        self.assertEqual(p.returncode, 0, p.stderr)
        return json.loads(p.stdout)["header"]["revision"]

    def run_script(self, endpoint, prefix):
        base = self.store_revision(endpoint)
        out = []
        for args, stdin in kv_script(prefix, base):
            p = run_etcdctl(endpoint, args, stdin)
            out.append((" ".join(args), normalize_etcdctl(p, base, "json" in args)))
        return out

    def assert_same_runs(self, mine, theirs, what):
        self.assertEqual(len(mine), len(theirs))
        for (cmd, m), (_, t) in zip(mine, theirs):
            self.assertEqual(m, t, f"{what}: etcdctl {cmd}")

    def test_etcdctl_script_matches_a_real_etcd_through_a_follower_and_the_leader(self):
        if not ETCDCTL or not ETCD:
            self.skipTest("etcd and etcdctl are not installed (Debian etcd-server, etcd-client; scripts/setup.sh)")
        etcd = self.start_etcd()
        nodes, leader, follower = self.start_cluster()
        # Same prefixes in the same order on both sides: each run sees the same store.
        theirs_f = self.run_script(etcd, "f")
        mine_f = self.run_script(follower.grpc, "f")
        self.assert_same_runs(mine_f, theirs_f, "through a follower")
        theirs_l = self.run_script(etcd, "l")
        mine_l = self.run_script(leader.grpc, "l")
        self.assert_same_runs(mine_l, theirs_l, "through the leader")
        # The script did what it says (not only the same thing on both sides): spot checks.
        outputs = dict(mine_f)
        self.assertEqual(outputs["get f/ --prefix"][1], "f/a\n1\nf/b\n22\nf/c\n3\n")
        self.assertEqual(outputs["put f/x v --lease=1234"][2], ["Error: etcdserver: requested lease not found"])
        errors = [e for _, (_, _, errs) in mine_f for e in errs]
        for text in ("required revision has been compacted", "required revision is a future revision",
                     "duplicate key given in txn request", "too many operations in txn request", "key not found"):
            self.assertTrue(any(text in e for e in errors), f"no step answered {text!r}: {errors}")
        # Every node ends with the same store, read locally on each.
        wait_for(lambda: len({run_etcdctl(n.grpc, ["get", "", "--from-key", "--consistency=s"]).stdout
                              for n in nodes}) == 1, 20, "every node to apply the same writes")

    def test_gateway_matches_a_real_etcd(self):
        if not ETCD:
            self.skipTest("etcd is not installed (Debian etcd-server)")
        etcd = self.start_etcd()
        nodes, leader, follower = self.start_cluster()
        for prefix, ours in (("gf", follower), ("gl", leader)):
            bases = {}
            for who, address in (("etcd", etcd), ("ours", ours.api)):
                r = post(address, "/v3/kv/range", {"key": b64("nothing-here")})
                self.assertEqual(r.status, 200, r)
                bases[who] = int(r.json["header"]["revision"])
            # The steps name revisions relative to each side's base.
            steps_theirs = gateway_script(prefix, bases["etcd"])
            steps_mine = gateway_script(prefix, bases["ours"])
            for (path, body), (_, my_body) in zip(steps_theirs, steps_mine):
                theirs = post(etcd, path, body)
                mine = post(ours.api, path, my_body)
                self.assertEqual(normalize_reply(mine, bases["ours"]), normalize_reply(theirs, bases["etcd"]),
                                 f"{ours.name} {path} {body}")
        # Bodies etcd's parser words differently (Go's encoding/json): same status and gRPC code.
        for body in ("{bad", "[]", '{"key":"!!!"}', '{"sort_target":"BOGUS","key":"YQ=="}'):
            theirs, mine = post(etcd, "/v3/kv/range", body), post(follower.api, "/v3/kv/range", body)
            self.assertEqual((mine.status, mine.json["code"]), (theirs.status, theirs.json["code"]), body)
        self.assertEqual(request("GET", follower.api, "/v3/kv/range").status,
                         request("GET", etcd, "/v3/kv/range").status)
        # etcd 3.4 still serves the deprecated /v3beta/ prefix (not /v3alpha/).
        for address in (etcd, follower.api):
            self.assertEqual(post(address, "/v3beta/kv/put", {"key": b64("beta"), "value": b64("v")}).status, 200)
        for path in ("/v3beta/kv/range", "/v3alpha/kv/range"):
            theirs, mine = post(etcd, path, {"key": b64("beta")}), post(follower.api, path, {"key": b64("beta")})
            self.assertEqual(mine.status, theirs.status, path)
            if theirs.status == 200:
                self.assertEqual(mine.json["kvs"][0]["value"], theirs.json["kvs"][0]["value"], path)

    def test_gateway_request_sizes_match_a_real_etcd(self):
        """etcd's gateway has no body limit of its own: a put is refused by its gRPC server's limits
        (1.5 MiB --max-request-bytes: 400; 2 MiB messages: 429), never with 413."""
        if not ETCD:
            self.skipTest("etcd is not installed (Debian etcd-server)")
        etcd = self.start_etcd()
        nodes, leader, follower = self.start_cluster()
        for kib in (1400, 1600, 2100):
            body = {"key": b64("big"), "value": base64.b64encode(b"x" * (kib << 10)).decode()}
            theirs, mine = post(etcd, "/v3/kv/put", body), post(follower.api, "/v3/kv/put", body)
            self.assertEqual(mine.status, theirs.status, f"{kib} KiB: {mine.raw[:200]}")
            if theirs.status == 200:
                continue
            self.assertEqual(mine.json, theirs.json, f"{kib} KiB")  # error, message and code, byte for byte
        self.assertEqual(post(leader.api, "/v3/kv/range", {"key": b64("big")}).json["kvs"][0]["value"],
                         base64.b64encode(b"x" * (1400 << 10)).decode())
        # A body too large to hold the largest message etcd takes is refused before it is read:
        # etcd's status and code (its text counts the message's bytes, ours the body's).
        body = json.dumps({"key": b64("big"), "value": base64.b64encode(b"x" * (3400 << 10)).decode()})
        theirs, mine = post(etcd, "/v3/kv/put", body), post(follower.api, "/v3/kv/put", body)
        self.assertEqual((mine.status, mine.json["code"]), (theirs.status, theirs.json["code"]), mine.raw[:200])
        self.assertIn("grpc: received message larger than max (", mine.json["error"])
        # The seed API keeps its own limit (-max-body-bytes) and status.
        r = request("POST", follower.api, "/set", json.dumps({"key": "k", "value": "x" * (1600 << 10)}))
        self.assertEqual(r.status, 413, r)

    def test_a_follower_reads_its_own_writes_and_retries_are_applied_once(self):
        nodes, leader, follower = self.start_cluster()
        # etcd answers a write through a follower once that follower applied it: a
        # serializable read there right after must see it.
        for i in range(20):
            p = run_etcdctl(follower.grpc, ["put", "ryw", str(i)])
            self.assertEqual(p.returncode, 0, p.stderr)
            p = run_etcdctl(follower.grpc, ["get", "ryw", "--consistency=s", "--print-value-only"])
            self.assertEqual(p.stdout, f"{i}\n")
        # The gateway's Idempotency-Key: a retry returns the first result, applied once.
        for via in (follower, leader):
            key = f"retry-{via.name}"
            first = post(via.api, "/v3/kv/put", {"key": b64(key), "value": b64("v"), "prev_kv": True},
                         {"Idempotency-Key": key})
            self.assertEqual(first.status, 200, first)
            again = post(via.api, "/v3/kv/put", {"key": b64(key), "value": b64("v"), "prev_kv": True},
                         {"Idempotency-Key": key})
            self.assertEqual(again.status, 200, again)
            self.assertEqual(again.json["header"]["revision"], first.json["header"]["revision"])
            self.assertNotIn("prev_kv", again.json)  # the first result: there was no previous value
            got = post(via.api, "/v3/kv/range", {"key": b64(key)}).json
            self.assertEqual(got["kvs"][0]["version"], "1", "the retry must not apply again")
        # A put with an over-long key for idempotency is refused before anything is proposed.
        r = post(follower.api, "/v3/kv/put", {"key": b64("k"), "value": b64("v")}, {"Idempotency-Key": "x" * 300})
        self.assertEqual(r.status, 400, r)

    def test_writes_through_followers_follow_a_new_leader(self):
        nodes, leader, follower = self.start_cluster()
        p = run_etcdctl(follower.grpc, ["put", "before", "1"])
        self.assertEqual(p.returncode, 0, p.stderr)
        leader.kill()
        rest = [n for n in nodes if n is not leader]
        new_leader = self.wait_leader(rest)
        other = next(n for n in rest if n is not new_leader)
        # The surviving follower forwards to the new leader (another channel). Until it has
        # one, a call fails Unavailable with one of etcd's texts ("no leader", "request timed
        # out, possibly due to connection lost"), which clients retry.
        def put_via_follower():
            p = run_etcdctl(other.grpc, ["put", "after", "2"])
            if p.returncode != 0:
                self.assertIn("code = Unavailable desc = etcdserver: ", p.stderr)
            return p.returncode == 0
        wait_for(put_via_follower, 20, "a put through the surviving follower")
        leader.start()
        # The old leader, now a follower, reads both writes linearizably and forwards its own.
        wait_for(lambda: run_etcdctl(leader.grpc, ["get", "after", "--print-value-only"]).stdout == "2\n", 20,
                 "the restarted node to read the write made while it was down")
        wait_for(lambda: run_etcdctl(leader.grpc, ["put", "third", "3"]).returncode == 0, 20,
                 "a put through the restarted node")
        for n in nodes:
            p = run_etcdctl(n.grpc, ["get", "", "--from-key", "--keys-only"])
            self.assertEqual(p.stdout.split(), ["after", "before", "third"], n.name)


if __name__ == "__main__":
    unittest.main()
