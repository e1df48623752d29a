"""Integration: etcd's v3election service served by the server (the /v3/election/* gateway; gRPC serves the same request layer) on a 3-node kvnode cluster: the same requests as a real etcd 3.4 answer the same, campaigners win in order, a non-leader cannot proclaim, Observe streams leader changes, Resign and a lease's revoke hand over."""

import base64
import http.client
import json
import re
import shutil
import socket
import threading
import unittest

import test_etcd_cluster as etcd_cluster  # module attributes: their tests are not collected again here
import test_etcd_lease as etcd_lease
from kvcluster import ClusterTest, wait_for

ETCD = shutil.which("etcd")
post = etcd_lease.post


def b64(s):
    return base64.b64encode(s.encode()).decode()


def unb64(s):
    return base64.b64decode(s).decode()


def norm(raw):
    """A body without what differs between clusters (ids, term, the header's revision)."""
    return re.sub(r'"(cluster_id|member_id|raft_term|revision)":"\d+",?', "", raw)


class GatewayObserve:
    """POST /v3/election/observe; a thread waits for the head (etcd sends it with the first line) and collects lines."""

    def __init__(self, address, name=None, body=None):
        host, port = address.rsplit(":", 1)
        self.conn = http.client.HTTPConnection(host, int(port), timeout=60)
        self.conn.request("POST", "/v3/election/observe", body if body is not None else json.dumps({"name": b64(name)}),
                          {"Content-Type": "application/json"})
        self.sock = self.conn.sock
        self.status = None
        self.lines = []
        self.ended = False
        self.lock = threading.Lock()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        try:
            resp = self.conn.getresponse()
            self.status = resp.status
            for line in resp:
                with self.lock:
                    self.lines.append(json.loads(line))
        except (OSError, ValueError, AttributeError, http.client.HTTPException):  # closed by close()
            pass
        self.ended = True

    def got(self):
        with self.lock:
            return list(self.lines)

    def values(self):
        return [unb64(x["result"]["kv"].get("value", "")) for x in self.got() if "result" in x]

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # ends the reader's blocked recv
        except OSError:
            pass
        self.conn.close()


class EtcdElectionTest(ClusterTest):
    def start_cluster(self):
        return etcd_lease.EtcdLeaseTest.start_cluster(self)

    def script(self, api):
        """The same election requests, in order; each answer as (status, body without ids and header revisions)."""
        leader_key = lambda rev, lease="91", name="e", key="e/5b": {
            "name": b64(name), "key": b64(key), "rev": str(rev), "lease": lease}
        steps = [("/v3/lease/grant", {"TTL": 100, "ID": 91}),
                 ("/v3/election/campaign", {"name": b64("e"), "lease": "91", "value": b64("v1")}),
                 # The same lease: the same key, its value proclaimed.
                 ("/v3/election/campaign", {"name": b64("e"), "lease": "91", "value": b64("v2")}),
                 ("/v3/election/leader", {"name": b64("e")}),
                 ("/v3/election/leader", {"name": b64("nobody")}),
                 ("/v3/election/proclaim", {"value": b64("v3")}),
                 ("/v3/election/proclaim", {"leader": leader_key(1), "value": b64("v3")}),  # another create revision
                 ("/v3/election/proclaim", {"leader": leader_key(2), "value": b64("v3")}),
                 ("/v3/election/leader", {"name": b64("e")}),
                 ("/v3/election/resign", {}),
                 ("/v3/election/resign", {"leader": leader_key(1)}),  # not the leader: no error, no change
                 ("/v3/election/campaign", {"name": b64("e"), "lease": "12345", "value": b64("v")}),
                 ("/v3/election/campaign", {"lease": "91"}),  # no name: key "/5b"
                 ("/v3/election/proclaim", {"leader": {}}),
                 ("/v3/election/resign", {"leader": {}}),
                 ("/v3/kv/range", {"key": b64("e/"), "range_end": b64("e0")}),
                 ("/v3/election/resign", {"leader": leader_key(2)}),
                 ("/v3/election/leader", {"name": b64("e")}),
                 ("/v3/election/campaign", {"name": b64("e"), "ignored": 1, "lease": "91", "value": b64("v4")})]
        out = [(r.status, norm(r.raw)) for r in (post(api, path, body) for path, body in steps)]
        # A body that is not JSON: 400 and code 3 (the parser's words differ: Go's and ours).
        for path in ("/v3/election/campaign", "/v3/election/observe"):
            r = post(api, path, "nonsense")
            out.append((path, r.status, r.json and r.json.get("code")))
        return out

    def test_gateway_matches_a_real_etcd(self):
        if not ETCD:
            self.skipTest("etcd is not installed (Debian etcd-server; scripts/setup.sh)")
        etcd, _ = etcd_cluster.start_real_etcd(self)
        nodes, leader, follower = self.start_cluster()
        theirs = self.script(etcd)
        mine = self.script(follower.api)
        self.assertEqual(len(mine), len(theirs))
        for i, (m, t) in enumerate(zip(mine, theirs)):
            self.assertEqual(m, t, f"election step {i}")

    def test_observe_streams_as_a_real_etcds(self):
        if not ETCD:
            self.skipTest("etcd is not installed (Debian etcd-server; scripts/setup.sh)")
        etcd, _ = etcd_cluster.start_real_etcd(self)
        nodes, leader, follower = self.start_cluster()

        def run(api):
            self.assertEqual(post(api, "/v3/lease/grant", {"TTL": 100, "ID": 71}).status, 200)
            self.assertEqual(post(api, "/v3/lease/grant", {"TTL": 100, "ID": 72}).status, 200)
            o = GatewayObserve(api, "ob")
            a = post(api, "/v3/election/campaign", {"name": b64("ob"), "lease": "71", "value": b64("a1")})
            self.assertEqual(a.status, 200, a)
            wait_for(lambda: len(o.got()) == 1, 20, "the first leader's line")
            self.assertEqual(post(api, "/v3/election/proclaim", {"leader": a.json["leader"], "value": b64("a2")}).status,
                             200)
            wait_for(lambda: len(o.got()) == 2, 20, "the proclamation's line")
            b = {}
            t = threading.Thread(target=lambda: b.update(r=post(api, "/v3/election/campaign", {
                "name": b64("ob"), "lease": "72", "value": b64("b1")})), daemon=True)
            t.start()
            wait_for(lambda: post(api, "/v3/kv/range", {"key": b64("ob/48")}).json.get("kvs"), 20, "b's key")
            self.assertEqual(post(api, "/v3/election/resign", {"leader": a.json["leader"]}).status, 200)
            t.join(20)
            self.assertEqual(b["r"].status, 200, b.get("r"))
            wait_for(lambda: len(o.got()) == 3, 20, "the next leader's line")
            # A second observer joins while b leads: b's kv, as etcd's first line.
            late = GatewayObserve(api, "ob")
            wait_for(lambda: len(late.got()) == 1, 20, "the late observer's line")
            lines = [norm(json.dumps(x, separators=(",", ":"))) for x in o.got() + late.got()]
            statuses = (o.status, late.status)
            o.close()
            late.close()
            return statuses, lines

        theirs = run(etcd)
        mine = run(follower.api)
        self.assertEqual(mine, theirs)

    def test_campaigners_win_in_order_proclaim_observe_resign_and_lease_revoke(self):
        nodes, leader, follower = self.start_cluster()
        for lid in (101, 102, 103):
            self.assertEqual(post(leader.api, "/v3/lease/grant", {"TTL": 100, "ID": lid}).status, 200)
        answers = {}

        def campaign_in_background(via, lease, value):
            def run():
                answers[lease] = post(via.api, "/v3/election/campaign",
                                      {"name": b64("E"), "lease": str(lease), "value": b64(value)})
            t = threading.Thread(target=run, daemon=True)
            t.start()
            return t

        def keys():
            r = post(leader.api, "/v3/kv/range", {"key": b64("E/"), "range_end": b64("E0")})
            return {unb64(kv["key"]): kv for kv in r.json.get("kvs") or []}

        def leader_value(via):
            r = post(via.api, "/v3/election/leader", {"name": b64("E")})
            return unb64(r.json["kv"]["value"]) if r.status == 200 else r.json["error"]

        self.assertEqual(leader_value(follower), "election: no leader")
        watcher = GatewayObserve(follower.api, "E")
        a = post(follower.api, "/v3/election/campaign", {"name": b64("E"), "lease": "101", "value": b64("a")})
        self.assertEqual(a.status, 200, a)
        self.assertEqual(unb64(a.json["leader"]["key"]), "E/65")
        tb = campaign_in_background(leader, 102, "b")
        wait_for(lambda: "E/66" in keys(), 20, "b's campaign key")
        self.assertNotIn(102, answers, "b won while a leads")
        # Proclaim checks only the key's create revision (etcd's recipe): one who holds no such key, or names
        # a's key with another revision, is not the leader...
        stale = dict(a.json["leader"], rev=str(int(a.json["leader"]["rev"]) - 1))
        never = {"name": b64("E"), "key": b64("E/68"), "rev": a.json["leader"]["rev"], "lease": "101"}
        for usurper in (stale, never):
            r = post(leader.api, "/v3/election/proclaim", {"leader": usurper, "value": b64("usurps")})
            self.assertEqual((r.status, r.json), (500, {"error": "election: not leader",
                                                        "message": "election: not leader", "code": 2}))
        # ...while a waiting campaigner may proclaim on its own key, as on etcd: the leader stays a.
        b_key = {"name": b64("E"), "key": b64("E/66"), "rev": keys()["E/66"]["create_revision"], "lease": "102"}
        self.assertEqual(post(leader.api, "/v3/election/proclaim", {"leader": b_key, "value": b64("b")}).status, 200)
        self.assertEqual(leader_value(follower), "a")
        r = post(leader.api, "/v3/election/proclaim", {"leader": a.json["leader"], "value": b64("a2")})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(leader_value(leader), "a2")
        # a resigns: b wins, and its answer follows the resignation.
        resigned = post(leader.api, "/v3/election/resign", {"leader": a.json["leader"]})
        self.assertEqual(resigned.status, 200, resigned)
        tb.join(20)
        self.assertEqual(answers[102].status, 200, answers.get(102))
        self.assertEqual(unb64(answers[102].json["leader"]["key"]), "E/66")
        self.assertEqual(leader_value(follower), "b")
        # c waits behind b; b's lease is revoked: c leads.
        tc = campaign_in_background(follower, 103, "c")
        wait_for(lambda: "E/67" in keys(), 20, "c's campaign key")
        self.assertNotIn(103, answers, "c won while b leads")
        self.assertEqual(post(follower.api, "/v3/lease/revoke", {"ID": 102}).status, 200)
        tc.join(20)
        self.assertEqual(answers[103].status, 200, answers.get(103))
        self.assertEqual(leader_value(leader), "c")
        self.assertEqual(list(keys()), ["E/67"])
        # The observer saw every leader and proclamation, in order.
        wait_for(lambda: watcher.values() == ["a", "a2", "b", "c"], 20, f"the observer's lines ({watcher.got()})")
        watcher.close()
        # Without a lease, a campaign gets one of etcd's session TTL (60 s) that nobody keeps alive.
        s = post(follower.api, "/v3/election/campaign", {"name": b64("S"), "value": b64("s")})
        self.assertEqual(s.status, 200, s)
        ttl = post(leader.api, "/v3/lease/timetolive", {"ID": s.json["leader"]["lease"]})
        self.assertEqual(ttl.json["grantedTTL"], "60", ttl)

    def test_a_stopping_member_ends_its_observe_streams(self):
        n = self.node("s1", "-bootstrap").start()
        self.wait_leader([n])
        self.assertEqual(post(n.api, "/v3/lease/grant", {"TTL": 100, "ID": 5}).status, 200)
        self.assertEqual(post(n.api, "/v3/election/campaign",
                              {"name": b64("x"), "lease": "5", "value": b64("v")}).status, 200)
        o = GatewayObserve(n.api, "x")
        wait_for(lambda: len(o.got()) == 1, 20, "the observer's first line")
        n.proc.terminate()
        wait_for(lambda: o.ended, 20, "the observe stream to end with the member")
        rest = o.got()[1:]
        self.assertIn(rest, ([], [{"error": {"grpc_code": 2, "http_code": 500, "message": "etcdserver: server stopped",
                                              "http_status": "Internal Server Error"}}]))
        o.close()


if __name__ == "__main__":
    unittest.main()
