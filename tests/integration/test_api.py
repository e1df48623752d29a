"""Integration: the reference README walkthrough, joining, forwarding, flags and bad input against real kvnode processes."""

import http.client
import json
import signal
import socket
import subprocess
import unittest

import kvcluster
from kvcluster import ClusterTest, request, wait_for


class WalkthroughTest(ClusterTest):
    def test_readme_walkthrough(self):
        """The reference README verbatim: bootstrap node 1, start 2 and 3, /join via node 1 by raft address only."""
        n1 = self.node("n1", "-bootstrap=true").start()
        n2 = self.node("n2").start()
        n3 = self.node("n3").start()
        self.wait_leader([n1])
        for n in (n2, n3):
            r = n1.join(n)  # curl http://N1/join?peerAddress=RAFT (GET, no apiAddress, no id)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json["raftAddress"], n.raft)
            self.assertEqual(r.json["id"], n.raft)  # the reference's server id is its raft address
        # Members that joined by raft address only register their API address themselves.
        self.wait_voters(n1, [n1, n2, n3])
        self.assertIs(self.wait_leader([n1, n2, n3]), n1)

        # set / get / delete through every node; a read right after an acknowledged
        # write sees it on every node (linearizable by default).
        for i, writer in enumerate((n1, n2, n3)):
            key, value = f"foo{i}", f"bar{i}"
            r = writer.set(key, value)
            self.assertEqual(r.status, 200, r)
            self.assertEqual((r.json["key"], r.json["value"]), (key, value))
            self.assertIsInstance(r.json["index"], int)
            for reader in (n1, n2, n3):
                g = reader.get(key)
                self.assertEqual((g.status, g.json), (200, {key: value}), reader.name)
            d = (n1, n2, n3)[(i + 1) % 3].delete(key)
            self.assertEqual(d.status, 200, d)
            self.assertEqual((d.json["key"], d.json["deleted"]), (key, True))
            for reader in (n1, n2, n3):
                g = reader.get(key)
                self.assertEqual(g.status, 404, g)
                self.assertEqual(g.json, {"error": "key not found", "key": key})

        # A long key written in a body can be read back through the URL (Beast's
        # default 8 KiB header limit would refuse it).
        long_key = "L" * 20000
        self.assertEqual(n2.set(long_key, "long").status, 200)
        self.assertEqual(n3.get(long_key).json, {long_key: "long"})

        # /status on every node.
        for n in (n1, n2, n3):
            s = n.status()
            self.assertEqual(s["isLeader"], n is n1)
            self.assertEqual(s["leader"], n1.raft)
            self.assertEqual(s["leaderApiAddress"], n1.api)
            self.assertIsInstance(s["term"], int)
            self.assertEqual(s["state"], "leader" if n is n1 else "follower")
            self.assertGreaterEqual(s["commitIndex"], s["appliedIndex"] - 0)
            self.assertEqual(sorted(m["raftAddress"] for m in s["members"]), sorted([n1.raft, n2.raft, n3.raft]))

        # Forwarding TO a member that joined by raft address only: make it the
        # leader by stopping n1 (a graceful stop hands leadership over).
        n1.kill(signal.SIGTERM)
        self.assertEqual(n1.proc.returncode, 0, "SIGTERM must stop kvnode cleanly with exit 0")
        leader = self.wait_leader([n2, n3])
        follower = n3 if leader is n2 else n2
        r = self.write_with_retry([follower], "after", "handoff")
        self.assertEqual(r.headers.get("X-Ckv-Leader"), leader.api, "the follower forwards to the leader's API")
        self.assertEqual(follower.get("after").json, {"after": "handoff"})

        # Restarting n1 with the very same command (-bootstrap=true included)
        # resumes from its data dir: it rejoins as a follower, no second cluster.
        n1.start()
        wait_for(lambda: n1.status()["leader"] == leader.raft, 20, "n1 to follow the new leader")
        self.assertEqual(n1.get("after").json, {"after": "handoff"})
        self.assertEqual(len(n1.status()["members"]), 3)


class JoinTest(ClusterTest):
    def test_join_flag_rejoin_and_forwarded_join(self):
        n1 = self.node("n1", "-bootstrap").start()
        self.wait_leader([n1])
        # -join=HOST:APIPORT with a custom id; started before anything else is up is fine (it retries).
        n2 = self.node("n2", f"-join={n1.api}", "-id=node-two").start()
        self.wait_voters(n1, [n1, n2])
        self.assertIn("node-two", [m["id"] for m in n1.status()["members"]])

        # Idempotent: the same join again is a no-op success (GET and POST with a JSON body).
        r = n1.join(n2, with_api=True, name="node-two")
        self.assertEqual(r.status, 200, r)
        r = request("POST", n1.api, "/join", json.dumps({"peerAddress": n2.raft, "apiAddress": n2.api,
                                                          "id": "node-two"}))
        self.assertEqual(r.status, 200, r)
        # By raft address alone the leader asks the node who it is (its transport hello), so it
        # is the same member, not a new one named after its address.
        r = n1.join(n2)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["id"], "node-two", r)
        # The same raft address under another name is a conflict, and changes nothing.
        r = n1.join(n2, name="someone-else")
        self.assertEqual(r.status, 409, r)
        self.assertIn("node-two", r.json["error"])
        self.assertEqual(len(n1.status()["members"]), 2)

        # A /join sent to a follower is forwarded to the leader.
        n3 = self.node("n3").start()
        r = n2.join(n3, method="POST", with_api=True)
        self.assertEqual(r.status, 200, r)
        self.wait_voters(n1, [n1, n2, n3])

        # Restarting a joined node with the same command (-join included) resumes.
        n2.kill()
        n2.start()
        wait_for(lambda: n2.status()["leader"] == n1.raft, 20, "n2 to follow n1 again")
        self.assertEqual(n2.set("k", "v").status, 200)
        self.assertEqual(n3.get("k").json, {"k": "v"})


class IdempotencyTest(ClusterTest):
    """Issue 8: a write with an Idempotency-Key is applied once, however often and wherever it is retried."""

    def keyed(self, node, path, body, key):
        return request("POST", node.api, path, json.dumps(body),
                       {"Content-Type": "application/json", "Idempotency-Key": key}, timeout=10)

    def revision(self, leader):
        # A linearizable read first: the leader has then applied everything committed.
        leader.get("barrier")
        return leader.status()["revision"]

    def test_retried_writes_apply_once_across_a_leader_change(self):
        n1 = self.node("n1", "-bootstrap").start()
        self.wait_leader([n1])
        n2 = self.node("n2").start()
        n3 = self.node("n3").start()
        for n in (n2, n3):
            self.assertEqual(n1.join(n, with_api=True).status, 200)
        self.wait_voters(n1, [n1, n2, n3])

        # First attempt through a follower (forwarded with its header), retries through the others.
        r = self.keyed(n2, "/set", {"key": "k", "value": "first"}, "client-1:req-1")
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json["key"], r.json["value"]), ("k", "first"))
        applied = self.revision(n1)
        for via in (n1, n3):
            retry = self.keyed(via, "/set", {"key": "k", "value": "first"}, "client-1:req-1")
            self.assertEqual(retry.status, 200, retry)
        self.assertEqual(self.revision(n1), applied, "a retry must not create a revision")
        # The key names the request: a "retry" with another body still returns the first result.
        self.assertEqual(self.keyed(n3, "/set", {"key": "k", "value": "other"}, "client-1:req-1").status, 200)
        self.assertEqual(n3.get("k").json, {"k": "first"})
        self.assertEqual(self.revision(n1), applied)

        # A keyed delete, then the key is written again: retrying the delete deletes nothing.
        self.assertEqual(self.keyed(n3, "/delete", {"key": "k"}, "client-1:req-2").status, 200)
        self.assertEqual(n1.set("k", "again").status, 200)
        self.assertEqual(self.keyed(n2, "/delete", {"key": "k"}, "client-1:req-2").status, 200)
        self.assertEqual(n2.get("k").json, {"k": "again"})

        # After a leader change the table is still there (it is replicated state, thesis §6.3).
        before = self.revision(n1)
        n1.kill(signal.SIGTERM)  # a graceful stop hands leadership over
        leader = self.wait_leader([n2, n3])
        self.assertEqual(self.revision(leader), before)
        for via in (n2, n3):
            retry = self.keyed(via, "/set", {"key": "k", "value": "first"}, "client-1:req-1")
            self.assertEqual(retry.status, 200, retry)
        self.assertEqual(self.revision(leader), before)
        self.assertEqual(n2.get("k").json, {"k": "again"})
        # A new key is a new write.
        self.assertEqual(self.keyed(n3, "/set", {"key": "k", "value": "new"}, "client-1:req-3").status, 200)
        self.assertEqual(self.revision(leader), before + 1)

    def test_auto_compaction_on_a_running_cluster(self):
        """-auto-compaction-retention=1s (periodic): the leader compacts to about a second ago, on every node."""
        n1 = self.node("n1", "-bootstrap", "-auto-compaction-retention=1s").start()
        self.wait_leader([n1])
        n2 = self.node("n2", "-auto-compaction-retention=1s").start()
        self.assertEqual(n1.join(n2, with_api=True).status, 200)
        self.wait_voters(n1, [n1, n2])
        for i in range(10):
            self.assertEqual(n1.set("k", str(i)).status, 200)
        written = self.revision(n1)
        for n in (n1, n2):
            wait_for(lambda: n.get("k").status == 200 and n.status()["compactRevision"] >= written, 15,
                     f"{n.name} to compact to {written}")
        self.assertIn("auto-compaction: compacting to revision", n1.log())

    def test_bad_idempotency_keys_are_refused(self):
        n1 = self.node("n1", "-bootstrap").start()
        self.wait_leader([n1])
        for bad, why in (("x" * 257, "over the limit of 256"), ("", "must not be empty"),
                         ("a\x01b", "bad value"),  # Beast's parser refuses control bytes first
                         ("caf\u00e9".encode("utf-8").decode("latin-1"), "printable ASCII")):
            for path, body in (("/set", {"key": "k", "value": "v"}), ("/delete", {"key": "k"})):
                r = self.keyed(n1, path, body, bad)
                self.assertEqual(r.status, 400, (path, bad, r))
                self.assertIn(why, r.json["error"])
        self.assertEqual(n1.get("k").status, 404, "a refused write changes nothing")
        self.assertEqual(self.keyed(n1, "/set", {"key": "k", "value": "v"}, "x" * 256).status, 200)


class BadInputTest(ClusterTest):
    def test_bad_input_changes_nothing(self):
        n = self.node("n1", "-bootstrap", "-max-body-bytes=1024").start()
        self.wait_leader([n])
        first = n.set("k", "v0")
        self.assertEqual(first.status, 200)

        def expect(status, method, path, body=None, headers=None):
            r = request(method, n.api, path, body, headers)
            self.assertEqual(r.status, status, f"{method} {path} {body!r}: {r}")
            self.assertIsInstance(r.json, dict, r)
            self.assertIsInstance(r.json.get("error"), str, r)
            return r

        for body in ['{"key":"k","value":', "not json", "[1,2]", '"k"', "", "{}", '{"key":""}',
                     '{"key":5,"value":"v"}', '{"key":"k","value":7}', '{"key":"k","value":null}',
                     '{"key":"k"}', '{"value":"v"}', "[" * 1000]:
            expect(400, "POST", "/set", body)
        for body in ['{"key":', '{"key":""}', '{"key":null}', '{"key":["k"]}', "", "{}"]:
            expect(400, "POST", "/delete", body)
        expect(413, "POST", "/set", json.dumps({"key": "k", "value": "x" * 2000}))
        # A body far over the limit: the 413 must still arrive (no reset while the client sends).
        expect(413, "POST", "/set", json.dumps({"key": "k", "value": "x" * 3_000_000}))
        expect(404, "GET", "/nope")
        expect(404, "POST", "/set/extra", '{"key":"k","value":"v"}')
        r = expect(405, "GET", "/set")
        self.assertEqual(r.headers.get("Allow"), "POST")
        r = expect(405, "POST", "/get?key=k", "")
        self.assertEqual(r.headers.get("Allow"), "GET")
        r = expect(405, "DELETE", "/join?peerAddress=127.0.0.1:1")
        self.assertEqual(r.headers.get("Allow"), "GET, POST")
        expect(405, "PUT", "/status", "")
        expect(400, "GET", "/get")
        expect(400, "GET", "/get?key=")
        expect(400, "GET", "/get?key=%zz")
        expect(400, "GET", "/get?key=k&consistency=eventual")
        expect(400, "GET", "/join")
        expect(400, "GET", "/join?peerAddress=nonsense")
        expect(400, "GET", "/join?peerAddress=127.0.0.1:99999")
        expect(400, "GET", "/join?peerAddress=127.0.0.1:5000&apiAddress=x")
        expect(400, "POST", "/join", '{"peerAddress": 5}')
        expect(400, "POST", "/join", "{bad")

        # Nothing changed: same value, and nothing was appended to the log
        # (the next write lands right after the last good one).
        self.assertEqual(n.get("k").json, {"k": "v0"})
        nxt = n.set("k2", "x")
        self.assertEqual(nxt.json["index"], first.json["index"] + 1, "a bad request reached the log")

        # URL decoding of keys ('+' and %20 are spaces, like Go's URL.Query) and stale reads.
        self.assertEqual(n.set("a b/ü&=", "v").status, 200)
        r = request("GET", n.api, "/get?key=a+b%2F%C3%BC%26%3D")
        self.assertEqual(r.json, {"a b/ü&=": "v"})
        r = request("GET", n.api, "/get?key=a%20b/%C3%BC%26%3D&consistency=stale")
        self.assertEqual(r.json, {"a b/ü&=": "v"})
        # Not HTTP at all: 400 with a JSON body, then the connection closes.
        host, port = n.api.split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(b"GARBAGE\r\n\r\n")
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
        self.assertTrue(answer.startswith(b"HTTP/1.1 400"), answer)
        self.assertIn(b'"error"', answer)
        # Keep-alive: several requests on one connection.
        c = http.client.HTTPConnection(n.api.split(":")[0], int(n.api.split(":")[1]), timeout=10)
        for _ in range(3):
            c.request("GET", "/get?key=k")
            resp = c.getresponse()
            self.assertEqual((resp.status, json.loads(resp.read())), (200, {"k": "v0"}))
        c.close()


class FlagsTest(ClusterTest):
    def run_kvnode(self, *args):
        return subprocess.run([kvcluster.KVNODE, *args], capture_output=True, text=True, timeout=10)

    def test_bad_flags_exit_2(self):
        for args in ([], ["-raft-address=127.0.0.1"], ["-raft-address=127.0.0.1:5000", "-api-address=:x"],
                     ["-raft-address=127.0.0.1:5000", "-no-such-flag"], ["--raft-address", "h:70000"],
                     ["-raft-address=127.0.0.1:5000", "-tick-ms=abc"], ["-raft-address=127.0.0.1:5000", "-join=x"]):
            p = self.run_kvnode(*args)
            self.assertEqual(p.returncode, 2, f"{args}: {p.stderr}")
            self.assertIn("kvnode:", p.stderr)
        # etcd's auto-compaction flags, with etcd's words for bad values.
        for args, why in ((["-auto-compaction-retention=abc"], 'time: invalid duration "abc"'),
                          (["-auto-compaction-mode=weekly", "-auto-compaction-retention=1"],
                           'unknown auto-compaction-mode "weekly"'),
                          (["-auto-compaction-mode=revision", "-auto-compaction-retention=1h"], "revision count")):
            p = self.run_kvnode("-raft-address=127.0.0.1:5000", *args)
            self.assertEqual(p.returncode, 2, f"{args}: {p.stderr}")
            self.assertIn(why, p.stderr)
        p = self.run_kvnode("--help")
        self.assertEqual(p.returncode, 0)
        for flag in ("raft-address", "api-address", "data-dir", "bootstrap", "join", "inmem", "id",
                     "snapshot-threshold", "snapshot-trailing", "max-body-bytes", "commit-timeout-ms",
                     "auto-compaction-mode", "auto-compaction-retention"):
            self.assertIn(flag, p.stdout)
        self.assertEqual(self.run_kvnode("-help").returncode, 0)

    def test_ports_in_use_exit_1(self):
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            taken = f"127.0.0.1:{busy.getsockname()[1]}"
            for which in ("-raft-address", "-api-address"):
                other = "-api-address" if which == "-raft-address" else "-raft-address"
                p = self.run_kvnode(f"{which}={taken}", f"{other}=127.0.0.1:{kvcluster.free_port()}", "-inmem")
                self.assertEqual(p.returncode, 1, f"{which}: {p.stderr}")
                self.assertIn(taken, p.stderr)

    def test_go_style_flag_forms(self):
        """-flag=v, --flag=v, --flag v and -flag v all work, a repeated flag's last value wins (Go's flag
        package); -bootstrap=false does not bootstrap."""
        n = self.node("n1")
        n.args = lambda: [kvcluster.KVNODE, "-raft-address", n.raft, f"--api-address={n.api}", "--data-dir",
                          n.data_dir, "-bootstrap=true", "-id=overridden", "-id", "first"] + kvcluster.FAST_TIMING
        n.start()
        self.wait_leader([n])
        self.assertEqual(n.status()["id"], "first")
        m = self.node("n2", "-bootstrap=false", "-inmem")
        m.start()
        # A non-bootstrapped empty node has no cluster: no leader, no members.
        s = m.status()
        self.assertEqual((s["leader"], s["members"]), ("", []))


if __name__ == "__main__":
    unittest.main()
