"""Integration: crashes and quorum loss — kill -9 of the leader, restart from the data dir, minority and majority loss."""

import threading
import time
import unittest

from kvcluster import ClusterTest, request, wait_for


class FaultTest(ClusterTest):
    def start_cluster(self, count, *extra):
        """node 1 bootstraps; the others join with -join via node 1 (and register their API addresses)."""
        first = self.node("n1", "-bootstrap=true", *extra).start()
        self.wait_leader([first])
        nodes = [first] + [self.node(f"n{i}", f"-join={first.api}", *extra).start() for i in range(2, count + 1)]
        # Every node, not only the leader, must know the final configuration
        # before a test kills anyone: the leader's view counts configurations
        # from when they are appended, before they commit.
        for n in nodes:
            self.wait_voters(n, nodes, timeout=60)
        return nodes

    def test_leader_kill9_no_acknowledged_write_lost_and_restart_catches_up(self):
        """Acknowledged writes survive a leader crash (Raft §5.4 Leader Completeness); a restarted node replays its disk."""
        nodes = self.start_cluster(3)
        acked = {}
        for i in range(30):
            key = f"k{i}"
            self.write_with_retry(nodes, key, f"v{i}")
            acked[key] = f"v{i}"
        old = self.wait_leader(nodes)
        rest = [n for n in nodes if n is not old]

        # Writers keep going through the crash; whatever they got a 200 for must survive.
        stop = threading.Event()
        lock = threading.Lock()
        unexpected = []

        def writer(w, via):
            i = 0
            while not stop.is_set():
                key, value = f"w{w}-{i}", f"x{i}"
                try:
                    r = via.set(key, value, timeout=10)
                except OSError:
                    continue  # connection refused by the dead node: not acknowledged
                if r.status == 200:
                    with lock:
                        acked[key] = value
                    i += 1
                elif r.status not in (503, 504):
                    with lock:
                        unexpected.append(r)

        threads = [threading.Thread(target=writer, args=(w, via)) for w, via in enumerate(rest + rest)]
        for t in threads:
            t.start()
        try:
            wait_for(lambda: len(acked) >= 40, 10, "writes before the crash")
            old.kill()  # SIGKILL: no hand-off, no flush beyond what was fsynced
            new = self.wait_leader(rest, timeout=20)
            self.assertIsNot(new, old)
            before = len(acked)
            wait_for(lambda: len(acked) >= before + 20, 20, "writes to be acknowledged after the failover")
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=30)
        self.assertEqual(unexpected, [], "writes may fail only with 503/504 during a failover")
        for i in range(30, 45):
            key = f"k{i}"
            self.write_with_retry(rest, key, f"v{i}")
            acked[key] = f"v{i}"
        for n in rest:
            for key, value in acked.items():
                r = n.get(key)
                self.assertEqual((r.status, r.json), (200, {key: value}), n.name)

        # Restart the crashed node with the very same command (-bootstrap=true
        # included for n1): it resumes from its data dir and catches up.
        old.start()
        wait_for(lambda: old.status()["appliedIndex"] >= new.status()["commitIndex"], 20,
                 f"{old.name} to catch up")
        self.assertEqual(old.status()["leader"], new.raft)
        for key, value in acked.items():
            r = old.get(key, consistency="stale")
            self.assertEqual(r.json, {key: value})
        self.assertIn("resuming from the data dir", old.log())
        # And it serves linearizable reads and forwarded writes again.
        self.assertEqual(old.set("after-restart", "yes").status, 200)
        self.assertEqual(new.get("after-restart").json, {"after-restart": "yes"})

    def test_minority_loss_continues_majority_loss_fails_fast(self):
        nodes = self.start_cluster(5, "-commit-timeout-ms=2000")
        leader = self.wait_leader(nodes)
        # Kill two, the leader among them: 3 of 5 remain, a quorum.
        victims = [leader, next(n for n in nodes if n is not leader)]
        for v in victims:
            v.kill()
        rest = [n for n in nodes if n not in victims]
        self.wait_leader(rest, timeout=20)
        for i in range(10):
            self.write_with_retry(rest, f"m{i}", "x")
        # Kill a third: 2 of 5 cannot commit. Writes must fail with 503/504, promptly, not hang.
        rest[0].kill()
        survivors = rest[1:]
        for n in survivors:
            t0 = time.monotonic()
            r = n.set("doomed", "x", timeout=30)
            elapsed = time.monotonic() - t0
            self.assertIn(r.status, (503, 504), r)
            self.assertIn("error", r.json)
            self.assertLess(elapsed, 12, f"a write without quorum took {elapsed:.1f}s")
            if r.status == 503:
                self.assertEqual(r.headers.get("Retry-After"), "1")
            t0 = time.monotonic()
            g = n.get("m1")
            self.assertIn(g.status, (503, 504), g)
            self.assertLess(time.monotonic() - t0, 12)
        # A stale read still answers from local state.
        self.assertEqual(survivors[0].get("m1", consistency="stale").json, {"m1": "x"})

    def test_remove_the_leader_through_a_follower(self):
        """Thesis §4.2.2: a leader removed from the configuration keeps leading until the removal
        commits, then steps down; the remaining members elect a leader and go on."""
        nodes = self.start_cluster(3)
        leader = self.wait_leader(nodes)
        follower = next(n for n in nodes if n is not leader)
        self.assertEqual(self.write_with_retry(nodes, "before", "1").status, 200)

        r = request("POST", follower.api, "/remove?peerAddress=" + leader.raft, b"", timeout=40)
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json["raftAddress"], r.json["removed"]), (leader.raft, True))
        rest = [n for n in nodes if n is not leader]
        new = self.wait_leader(rest, timeout=20)
        self.assertIsNot(new, leader)
        for n in rest:
            self.wait_voters(n, rest)
        self.assertEqual(self.write_with_retry(rest, "after", "2").status, 200)
        for n in rest:
            self.assertEqual(n.get("before").json, {"before": "1"})
            self.assertEqual(n.get("after").json, {"after": "2"})
        # The removed node is out: removing it again is a 404, bad input a 400.
        r = request("POST", new.api, "/remove?peerAddress=" + leader.raft, b"")
        self.assertEqual(r.status, 404, r)
        r = request("POST", new.api, "/remove", b"")
        self.assertEqual((r.status, "error" in r.json), (400, True), r)


if __name__ == "__main__":
    unittest.main()
