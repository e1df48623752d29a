"""Integration: etcd's Watch (etcdctl watch: key, prefix, range, --rev, --prev-kv, -i, compaction) on a 3-node kvnode cluster, through a follower, compared with a real etcd; a watcher resuming on another member after kill -9."""

import base64
import http.client
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import unittest

import test_etcd_cluster as etcd_cluster  # a module attribute: its tests are not collected again here
from kvcluster import ClusterTest, request, wait_for
from test_etcd_kv import normalize_json

ETCDCTL = shutil.which("etcdctl")
ETCD = shutil.which("etcd")


def etcdctl(endpoints, args, stdin=None):
    env = dict(os.environ, ETCDCTL_API="3")
    return subprocess.run([ETCDCTL, f"--endpoints={endpoints}", "--dial-timeout=5s", "--command-timeout=10s", *args],
                          env=env, input=stdin, capture_output=True, text=True, timeout=60)


class Watch:
    """A running `etcdctl watch ...`; threads collect its stdout and stderr lines. Killed by PID in cleanup."""

    def __init__(self, test, endpoints, args, interactive=False):
        env = dict(os.environ, ETCDCTL_API="3")
        self.proc = subprocess.Popen([ETCDCTL, f"--endpoints={endpoints}", "--dial-timeout=5s", "watch", *args],
                                     env=env, stdin=subprocess.PIPE if interactive else subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        test.procs.append(self.proc)
        self.out, self.err = [], []
        self.lock = threading.Lock()
        for stream, into in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=self._pump, args=(stream, into), daemon=True).start()

    def _pump(self, stream, into):
        for line in stream:
            with self.lock:
                into.append(line.rstrip("\n"))

    def lines(self):
        with self.lock:
            return list(self.out)

    def errors(self):
        with self.lock:
            return list(self.err)

    def send(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def wait_for_line(self, text, count=1, timeout=30):
        wait_for(lambda: self.lines().count(text) >= count, timeout,
                 f"{count}x {text!r} from etcdctl watch (got {self.lines()[-20:]}, stderr {self.errors()[-5:]})")

    def wait_exit(self, timeout=30):
        return self.proc.wait(timeout=timeout)


def store_revision(endpoint):
    p = etcdctl(endpoint, ["get", "nothing-here", "-w", "json"])
    assert p.returncode == 0, p.stderr
    return int(json.loads(p.stdout)["header"]["revision"])


def writes(p):
    """The writes of one run under prefix p (etcdctl args, stdin): puts, deletes, a txn, a range delete; the
    last one writes "end" to p/a and p/c, which every watcher of the run sees."""
    return [
        (["put", f"{p}/a", "1"], None),
        (["put", f"{p}/b", "2"], None),
        (["put", f"{p}/a", "11"], None),
        (["del", f"{p}/b"], None),
        (["txn"], f"\nput {p}/c 3\nput {p}/d 4\ndel {p}/a\n\n\n"),
        (["put", f"{p}/e", "5"], None),
        (["del", f"{p}/d", f"{p}/f"], None),
        (["put", f"{p}/b", "again"], None),
        (["txn"], f"\nput {p}/a end\nput {p}/c end\n\n\n"),
    ]


class GatewayWatch:
    """POST /v3/watch with a body of WatchRequests; a thread reads the streamed {"result": ...} lines."""

    def __init__(self, address, body):
        host, port = address.rsplit(":", 1)
        self.conn = http.client.HTTPConnection(host, int(port), timeout=60)
        self.conn.request("POST", "/v3/watch", body, {"Content-Type": "application/json"})
        self.sock = self.conn.sock
        self.resp = self.conn.getresponse()
        self.results = []
        self.lock = threading.Lock()
        if self.resp.status == 200:
            threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        try:
            for line in self.resp:
                with self.lock:
                    self.results.append(json.loads(line))
        except (OSError, ValueError, AttributeError, http.client.HTTPException):  # closed by close()
            pass

    def got(self):
        with self.lock:
            return list(self.results)

    def close(self):
        # shutdown() first: it ends the reader thread's blocked recv (closing alone would wait for it).
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.conn.close()


class EtcdWatchTest(ClusterTest):
    def setUp(self):
        super().setUp()
        if not ETCDCTL:
            self.skipTest("etcdctl is not installed (Debian etcd-client; scripts/setup.sh)")

    def start_cluster(self):
        nodes = etcd_cluster.EtcdClusterTest.start_cluster(self)
        leader = self.wait_leader(nodes)
        follower = next(n for n in nodes if n is not leader)
        return nodes, leader, follower

    def run_watch_script(self, watch_at, write_at, p):
        """Watchers on watch_at from the next revision on, writes through write_at. The first write is a marker
        every watcher sees: once all show it they are created (etcdctl prints nothing for that), so the rest
        arrives live, while --rev makes the output the same whatever the timing. Returns (marker revision,
        the watchers)."""
        start = store_revision(write_at) + 1
        watches = {
            "prefix": Watch(self, watch_at, ["--prefix", f"{p}/", "--prev-kv", f"--rev={start}"]),
            "key": Watch(self, watch_at, [f"{p}/a", f"--rev={start}"]),
            "range": Watch(self, watch_at, [f"{p}/b", f"{p}/d", f"--rev={start}"]),
            "json": Watch(self, watch_at, ["--prefix", f"{p}/", "-w", "json", f"--rev={start}"]),
        }
        r = etcdctl(write_at, ["txn", "-w", "json"], f"\nput {p}/a m\nput {p}/b m\n\n\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        marker_rev = int(json.loads(r.stdout)["header"]["revision"])
        self.assertEqual(marker_rev, start)
        wait_for(lambda: all(w.lines() for w in watches.values()), 30, "every watcher to show the marker")
        for args, stdin in writes(p):
            r = etcdctl(write_at, args, stdin)
            self.assertEqual(r.returncode, 0, f"{args}: {r.stderr}")
        for name in ("prefix", "key", "range"):
            watches[name].wait_for_line("end")
        # The last write's revision, not its key: p/c is also written by an earlier txn, whose response
        # used to end this wait before the last one had arrived.
        last_rev = marker_rev + len(writes(p))
        wait_for(lambda: any(f'"revision":{last_rev},' in l.replace(" ", "") for l in watches["json"].lines()), 30,
                 "the json watcher's last txn")
        return marker_rev, watches

    def check_json_watch(self, w, marker_rev):
        """One revision per live response, consecutive revisions from the marker on, each txn whole."""
        responses = [json.loads(l) for l in w.lines()]
        revs = []
        for r in responses:
            rs = {int(e["kv"]["mod_revision"]) for e in r.get("Events") or []}
            self.assertEqual(len(rs), 1, f"one revision per live response: {r}")
            (rev,) = rs
            self.assertEqual(int(r["Header"]["revision"]), rev)
            revs.append(rev)
        self.assertEqual(revs, list(range(marker_rev, marker_rev + 1 + len(writes("x")))),
                         "one response per write, in order, no gap, no duplicate")
        by_rev = {int(r["Header"]["revision"]): r for r in responses}
        self.assertEqual(len(by_rev[marker_rev]["Events"]), 2, "the marker txn's two events in one response")
        self.assertEqual(len(by_rev[marker_rev + 5]["Events"]), 3, "the txn's three events in one response")

    def test_watchers_on_a_follower_see_the_leaders_writes_as_a_real_etcd_shows_them(self):
        nodes, leader, follower = self.start_cluster()
        marker_rev, mine = self.run_watch_script(follower.grpc, leader.grpc, "w")
        self.check_json_watch(mine["json"], marker_rev)
        got = {name: mine[name].lines() for name in ("prefix", "key", "range")}
        self.assertEqual(got["key"], ["PUT", "w/a", "m", "PUT", "w/a", "1", "PUT", "w/a", "11", "DELETE", "w/a", "",
                                      "PUT", "w/a", "end"])
        self.assertEqual(got["range"][:9], ["PUT", "w/b", "m", "PUT", "w/b", "2", "DELETE", "w/b", ""])
        if ETCD:
            etcd = etcd_cluster.start_real_etcd(self)[0]
            _, theirs = self.run_watch_script(etcd, etcd, "w")
            for name in ("prefix", "key", "range"):
                self.assertEqual(got[name], theirs[name].lines(), f"etcdctl watch ({name}) as on a real etcd")

        # --rev replays the history, then goes live: the same events again, then a new one.
        replay = Watch(self, follower.grpc, ["--prefix", "w/", f"--rev={marker_rev}", "--prev-kv"])
        replay.wait_for_line("end", 2)
        r = etcdctl(leader.grpc, ["put", "w/live", "now"])
        self.assertEqual(r.returncode, 0, r.stderr)
        replay.wait_for_line("now")
        self.assertEqual(replay.lines(), got["prefix"] + ["PUT", "w/live", "now"])

        # A start revision below the compacted one: etcd's cancel, and etcdctl exits.
        r = etcdctl(leader.grpc, ["compaction", str(marker_rev + 3)])
        self.assertEqual(r.returncode, 0, r.stderr)
        # The follower serves watches from its own applied state: wait until it has applied the compaction.
        wait_for(lambda: all(n.status()["compactRevision"] == marker_rev + 3 for n in nodes), 20,
                 "every member to apply the compaction")
        for at in (follower.grpc, leader.grpc):
            old = Watch(self, at, ["w/a", f"--rev={marker_rev + 1}"])
            self.assertEqual(old.wait_exit(), 5)  # etcdctl's ExitInterrupted: "watch is canceled by the server"
            wait_for(lambda: len(old.errors()) >= 2, 10, "etcdctl's messages")
            self.assertEqual(old.errors()[0],
                             "watch was canceled (etcdserver: mvcc: required revision has been compacted)")
            self.assertEqual(old.lines(), [])
        # At the compacted revision itself the history replays.
        at = Watch(self, follower.grpc, ["w/a", f"--rev={marker_rev + 3}"])
        at.wait_for_line("end")
        self.assertEqual(at.lines(), ["PUT", "w/a", "11", "DELETE", "w/a", "", "PUT", "w/a", "end"])

    def test_interactive_watch_and_progress(self):
        nodes, leader, follower = self.start_cluster()
        w = Watch(self, follower.grpc, ["-i"], interactive=True)
        w.send("watch i/a")
        w.send("watch i/ --prefix --prev-kv")
        # Both created once a write shows in both (three lines each).
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and w.lines().count("i/a") < 2:
            etcdctl(leader.grpc, ["put", "i/a", "x"])
            time.sleep(0.3)
        self.assertGreaterEqual(w.lines().count("i/a"), 2, w.lines())
        r = etcdctl(leader.grpc, ["put", "i/b", "y", "-w", "json"])
        rev = int(json.loads(r.stdout)["header"]["revision"])
        w.wait_for_line("y")
        w.send("progress")
        # Broadcast to every watcher of the stream: one line each, at the current revision.
        w.wait_for_line(f"progress notify: {rev}", 2)
        w.send("bogus")
        wait_for(lambda: any("Invalid command bogus" in e for e in w.errors()), 10, "etcdctl's complaint")

    def gateway_run(self, api, grpc, p):
        """A /v3/watch stream with a prefix watch (prev_kv) and a key watch with a chosen id, from the next
        revision on, while etcdctl writes; returns (base revision, the normalized result lines)."""
        base = store_revision(grpc)
        b = lambda k: base64.b64encode(k.encode()).decode()  # noqa: E731
        body = (json.dumps({"create_request": {"key": b(f"{p}/"), "range_end": b(f"{p}0"), "prev_kv": True,
                                               "start_revision": str(base + 1)}}) + "\n" +
                json.dumps({"create_request": {"key": b(f"{p}/a"), "watch_id": 7, "start_revision": str(base + 1),
                                               "filters": ["NODELETE"]}}))
        g = GatewayWatch(api, body)
        if g.resp.status != 200:
            self.fail(f"/v3/watch answered {g.resp.status}: {g.resp.read()}")
        self.assertEqual(g.resp.getheader("Content-Type"), "application/json")
        for args, stdin in writes(p):
            r = etcdctl(grpc, args, stdin)
            self.assertEqual(r.returncode, 0, r.stderr)
        end = b("end")
        wait_for(lambda: sum(1 for x in g.got() for e in x["result"].get("events", [])
                             if e["kv"].get("value") == end) >= 3, 30, f"the last writes on /v3/watch ({g.got()})")
        g.close()
        # Per watch id, in order (the two watchers' responses may interleave differently).
        by_id = {}
        for x in g.got():
            res = normalize_json(x["result"], base)
            by_id.setdefault(res.get("watch_id", "0"), []).append(json.dumps(res, sort_keys=False))
        return base, by_id

    def test_gateway_watch_streams_as_a_real_etcds(self):
        nodes, leader, follower = self.start_cluster()
        _, mine = self.gateway_run(follower.api, leader.grpc, "g")
        self.assertEqual(len(mine["0"]), 1 + len(writes("x")), mine["0"])  # created, then one line per write
        self.assertEqual(len(mine["7"]), 1 + 3, mine["7"])  # created, the three puts of g/a (its delete filtered)
        if ETCD:
            client, _ = etcd_cluster.start_real_etcd(self)
            _, theirs = self.gateway_run(client, client, "g")
            self.assertEqual(mine, theirs)
        # A body the gateway cannot read: etcd's 500 with code 2.
        bad = GatewayWatch(follower.api, "garbage")
        self.assertEqual(bad.resp.status, 500)
        self.assertEqual(json.loads(bad.resp.read())["code"], 2)
        # A stream whose client left frees its place: more streams one after the other than the server
        # serves at once (kMaxGatewayWatchStreams, 256) are all served.
        body = json.dumps({"create_request": {"key": base64.b64encode(b"g/a").decode()}})
        for i in range(260):
            g = GatewayWatch(follower.api, body)
            self.assertEqual(g.resp.status, 200, f"stream {i}")
            wait_for(lambda: g.got(), 10, f"stream {i}'s created response")
            g.close()

    def test_progress_notify_at_the_flags_interval(self):
        n = self.node("p1", "-bootstrap", "-experimental-watch-progress-notify-interval=300ms").start()
        self.wait_leader([n])
        key = base64.b64encode(b"p/a").decode()
        g = GatewayWatch(n.api, json.dumps({"create_request": {"key": key, "progress_notify": True}}))
        r = request("POST", n.api, "/v3/kv/put", json.dumps({"key": base64.b64encode(b"p/other").decode(),
                                                            "value": ""}))
        self.assertEqual(r.status, 200, r.raw)
        rev = r.json["header"]["revision"]
        # Idle: a response with no events at the current revision, every interval (etcd's progress notify).
        wait_for(lambda: sum(1 for x in g.got() if x["result"]["header"]["revision"] == rev) >= 2, 10,
                 f"two progress notifications at revision {rev} ({g.got()})")
        got = g.got()
        g.close()
        self.assertTrue(got[0]["result"].get("created"))
        for x in got[1:]:
            self.assertNotIn("events", x["result"])
            self.assertNotIn("watch_id", x["result"])  # watch id 0, omitted as etcd's gateway omits zeros

    def test_a_member_without_a_leader_ends_require_leader_watches(self):
        nodes, leader, follower = self.start_cluster()
        # From the next revision: the put below may land before etcdctl has
        # created its watch (seen once in CI), and must still be seen.
        base = store_revision(leader.grpc)
        w = Watch(self, follower.grpc, ["x", f"--rev={base + 1}"])  # etcdctl watches WithRequireLeader
        r = etcdctl(leader.grpc, ["put", "x", "1"])
        self.assertEqual(r.returncode, 0, r.stderr)
        w.wait_for_line("1")
        for n in nodes:
            if n is not follower:
                n.kill()
        # etcd's monitorLeader: the stream ends with "no leader" (after 3 s without one) and etcdctl exits.
        self.assertEqual(w.wait_exit(timeout=15), 5)  # without the monitor it lasted ~30 s
        wait_for(lambda: w.errors(), 10, "etcdctl's message")
        self.assertEqual(w.errors()[0], "watch was canceled (etcdserver: no leader)")

    def test_a_watcher_resumes_on_another_member_after_its_member_is_killed(self):
        nodes, leader, follower = self.start_cluster()
        endpoints = ",".join(n.grpc for n in nodes)
        base = store_revision(leader.grpc)
        w = Watch(self, endpoints, ["--prefix", "r/", "-w", "json", f"--rev={base + 1}"])
        acked = []
        stop = threading.Event()

        def writer():
            # Exactly-once writes (Idempotency-Key): a retry through another member never applies twice.
            i = 0
            while not stop.is_set():
                for n in nodes:
                    if stop.is_set():
                        break
                    try:
                        reply = request("POST", n.api, "/set", json.dumps({"key": f"r/{i:05d}", "value": str(i)}),
                                        {"Content-Type": "application/json", "Idempotency-Key": f"r{i}"}, timeout=5)
                    except OSError:
                        continue
                    if reply.status == 200:
                        acked.append(i)
                        i += 1
                        break
                time.sleep(0.01)

        t = threading.Thread(target=writer, daemon=True)
        t.start()
        try:
            wait_for(lambda: len(w.lines()) > 5, 30, "the watcher to get events")
            # Kill every member once (one at a time, restarting it): the watcher's member is one of them.
            for victim in nodes:
                seen = len(w.lines())
                victim.kill()
                before = len(acked)
                wait_for(lambda: len(acked) > before + 20, 40, f"writes to go on without {victim.name}")
                wait_for(lambda: len(w.lines()) > seen + 5, 40, f"the watcher to go on without {victim.name}")
                victim.start()
                self.wait_leader(nodes, timeout=30)
        finally:
            stop.set()
            t.join(timeout=30)
        last_key = base64.b64encode(f"r/{acked[-1]:05d}".encode()).decode()
        wait_for(lambda: any(last_key in l for l in w.lines()), 40, "the last acknowledged write at the watcher")
        events = []
        for line in w.lines():
            resp = json.loads(line)
            for e in resp.get("Events") or []:
                events.append((int(e["kv"]["mod_revision"]), base64.b64decode(e["kv"]["key"]).decode()))
        revs = [r for r, _ in events]
        self.assertEqual(revs, sorted(revs), "in revision order")
        self.assertEqual(len(revs), len(set(revs)), "no duplicate")
        # Exactly the committed history: every key the store holds, each once, and nothing else.
        final = etcdctl(leader.grpc, ["get", "r/", "--prefix", "--keys-only", "-w", "json"])
        kvs = json.loads(final.stdout).get("kvs") or []
        stored = {(int(kv["mod_revision"]), base64.b64decode(kv["key"]).decode()) for kv in kvs}
        seen_keys = [k for _, k in events]
        self.assertEqual(len(seen_keys), len(set(seen_keys)))
        self.assertEqual(set(events), stored, "the watcher saw exactly the stored writes")
        self.assertTrue(all(f"r/{i:05d}" in set(seen_keys) for i in acked), "every acknowledged write")
        self.assertEqual(revs[0], base + 1, "from the first write on, no gap at the start")
        self.assertEqual(revs, list(range(base + 1, base + 1 + len(revs))), "no gap")


if __name__ == "__main__":
    unittest.main()
