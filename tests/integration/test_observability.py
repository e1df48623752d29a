"""Integration: /metrics (promtool-valid, values that move), /healthz, /readyz, /health and the /ui page on a real cluster."""

import os
import re
import shutil
import signal
import subprocess
import tempfile
import unittest
import urllib.parse

from kvcluster import ClusterTest, free_port, request, wait_for

PROMTOOL = shutil.which("promtool")
ETCDCTL = shutil.which("etcdctl")
CHROMIUM = shutil.which("chromium")


def scrape(node):
    r = request("GET", node.api, "/metrics", timeout=10)
    assert r.status == 200, r
    return r


def samples(text):
    """{(name, frozenset(labels)): value} of a text exposition."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)', line)
        assert m, f"not a sample line: {line!r}"
        labels = frozenset(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def value(text, name, **labels):
    return samples(text).get((name, frozenset(labels.items())))


class ObservabilityTest(ClusterTest):
    def start_cluster(self):
        # Elections after 1-2 s, not kvcluster's 0.2-0.4 s: these tests name a leader and then read
        # its leader-only metrics, which a spurious election on a loaded CI machine would move.
        # (Repeated flags: the last wins, as with Go's flag package.)
        def make(name, *args):
            n = self.node(name, f"-grpc-address=127.0.0.1:{free_port()}", "-election-ticks=50", *args)
            n.grpc = n.extra_args[0].split("=", 1)[1]  # the -grpc-address above
            return n

        nodes = self.start_joined(make)
        for n in nodes:
            self.wait_voters(n, nodes)
        return nodes

    def check_with_promtool(self, text, what):
        if PROMTOOL is None:
            self.fail("promtool not installed (Debian package prometheus; scripts/setup.sh)")
        p = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, f"promtool check metrics on {what}:\n{p.stdout}{p.stderr}")

    def test_metrics_are_valid_and_move_with_writes_and_leader_changes(self):
        nodes = self.start_cluster()
        leader = self.wait_leader(nodes)
        follower = next(n for n in nodes if n is not leader)
        # A small load on both front ends: seed API writes and reads, etcdctl over gRPC.
        for i in range(20):
            self.assertEqual(self.write_with_retry([leader], f"k{i}", "v").status, 200)
            self.assertEqual(follower.get(f"k{i}").status, 200)
        self.assertEqual(request("GET", leader.api, "/no/such/path").status, 404)
        if ETCDCTL:
            for args in (["put", "g", "1"], ["get", "g"], ["endpoint", "status"]):
                subprocess.run([ETCDCTL, f"--endpoints={follower.grpc}", *args], check=True, capture_output=True,
                               timeout=30, env=dict(os.environ, ETCDCTL_API="3"))
            # A read of a future revision fails with OutOfRange: the KV service records its own calls'
            # codes (no interceptor, etcd/grpc_metrics.h), errors included.
            bad = subprocess.run([ETCDCTL, f"--endpoints={follower.grpc}", "get", "g", "--rev=1000000"],
                                 capture_output=True, text=True, timeout=30, env=dict(os.environ, ETCDCTL_API="3"))
            self.assertIn("required revision is a future revision", bad.stderr)

        for n in nodes:
            r = scrape(n)
            self.assertEqual(r.headers["Content-Type"], "text/plain; version=0.0.4; charset=utf-8")
            self.check_with_promtool(r.raw, n.name)

        text = scrape(leader).raw
        for name in ("consensuskv_server_has_leader", "consensuskv_server_leader_changes_seen_total",
                     "consensuskv_raft_term", "consensuskv_raft_commit_index", "consensuskv_raft_applied_index",
                     "consensuskv_raft_apply_lag_entries", "consensuskv_server_proposals_committed_total",
                     "consensuskv_server_proposals_failed_total", "consensuskv_server_proposals_pending",
                     "consensuskv_disk_wal_fsync_duration_seconds_count", "consensuskv_snapshot_size_bytes",
                     "consensuskv_watch_watchers", "consensuskv_lease_active", "consensuskv_mvcc_keys",
                     "consensuskv_mvcc_revision", "consensuskv_mvcc_compact_revision",
                     "process_resident_memory_bytes", "process_cpu_seconds_total"):
            self.assertIsNotNone(value(text, name), f"{name} missing from the leader's /metrics")
        self.assertEqual(value(text, "consensuskv_server_has_leader"), 1)
        self.assertEqual(value(text, "consensuskv_server_is_leader"), 1)
        self.assertGreater(value(text, "consensuskv_disk_wal_fsync_duration_seconds_count"), 0)
        self.assertGreater(value(text, "process_resident_memory_bytes"), 1 << 20)
        self.assertGreaterEqual(value(text, "consensuskv_http_requests_total", route="/set", code="200"), 20)
        self.assertEqual(value(text, "consensuskv_http_requests_total", route="other", code="404"), 1)
        # Traffic per peer, labelled by id; member_info names each id.
        st = samples(text)
        peers = {dict(l)["peer"] for (name, l) in st if name == "consensuskv_network_peer_sent_bytes_total"}
        named = {dict(l)["peer"]: dict(l)["name"] for (name, l) in st if name == "consensuskv_cluster_member_info"}
        # Members are named by their raft address (no -id).
        self.assertEqual(sorted(named[p] for p in peers if p in named), sorted(n.raft for n in nodes if n is not leader))
        for p in peers & set(named):
            self.assertGreater(st[("consensuskv_network_peer_received_messages_total", frozenset({("peer", p)}))], 0)
        rtt = [v for (name, l), v in st.items() if name == "consensuskv_network_peer_round_trip_time_seconds_count"]
        self.assertTrue(rtt and min(rtt) > 0, "the leader times heartbeats to each follower")
        if ETCDCTL:
            ftext = scrape(follower).raw
            self.assertGreaterEqual(
                value(ftext, "consensuskv_grpc_server_handled_total", method="etcdserverpb.KV/Put", code="OK"), 1)
            self.assertGreaterEqual(
                value(ftext, "consensuskv_grpc_server_handled_total", method="etcdserverpb.KV/Range", code="OK"), 1)
            self.assertGreaterEqual(value(ftext, "consensuskv_grpc_server_handled_total",
                                          method="etcdserverpb.KV/Range", code="OutOfRange"), 1)
            self.assertGreaterEqual(value(ftext, "consensuskv_grpc_server_handling_seconds_count",
                                          method="etcdserverpb.KV/Put"), 1)
            # Other services keep the interceptor: endpoint status is Maintenance/Status.
            self.assertGreaterEqual(value(ftext, "consensuskv_grpc_server_handled_total",
                                          method="etcdserverpb.Maintenance/Status", code="OK"), 1)

        # One put moves the applied index and the write counters.
        before = samples(scrape(leader).raw)
        self.assertEqual(leader.set("moved", "x").status, 200)
        after = samples(scrape(leader).raw)
        key = lambda name, **l: (name, frozenset(l.items()))  # noqa: E731
        self.assertGreater(after[key("consensuskv_raft_applied_index")], before[key("consensuskv_raft_applied_index")])
        self.assertEqual(after[key("consensuskv_server_proposals_committed_total")],
                         before[key("consensuskv_server_proposals_committed_total")] + 1)
        self.assertEqual(after[key("consensuskv_http_requests_total", route="/set", code="200")],
                         before[key("consensuskv_http_requests_total", route="/set", code="200")] + 1)
        self.assertEqual(after[key("consensuskv_mvcc_revision")], before[key("consensuskv_mvcc_revision")] + 1)

        # Killing the leader: each survivor sees one more leader change.
        survivors = [n for n in nodes if n is not leader]
        changes = {n.name: value(scrape(n).raw, "consensuskv_server_leader_changes_seen_total") for n in survivors}
        leader.kill()
        self.wait_leader(survivors)
        for n in survivors:
            wait_for(lambda n=n: value(scrape(n).raw, "consensuskv_server_leader_changes_seen_total")
                     > changes[n.name], 20, f"{n.name} to count the leader change")
            self.check_with_promtool(scrape(n).raw, f"{n.name} after the leader change")

    def test_probes_healthy_then_leaderless(self):
        nodes = self.start_cluster()
        self.wait_leader(nodes)
        for n in nodes:
            # Every member answers 200 on all three once the cluster is up (a follower's
            # read barrier needs its first heartbeat: wait, with a deadline).
            wait_for(lambda n=n: request("GET", n.api, "/readyz").status == 200, 20, f"{n.name} ready")
            self.assertEqual(request("GET", n.api, "/healthz").raw, "ok")
            r = request("GET", n.api, "/health")
            self.assertEqual((r.status, r.raw), (200, '{"health":"true"}'))
            r = request("GET", n.api, "/readyz?verbose")
            self.assertEqual(r.status, 200)
            self.assertEqual(r.raw.splitlines(), ["[+]raft-loop ok", "[+]leader ok", "[+]member ok",
                                                   "[+]applied ok", "[+]linearizable-read ok", "readyz check passed"])
        self.assertEqual(request("POST", nodes[0].api, "/health").status, 405)
        # Threads carry their job's name, so that top -H and perf tell the Raft thread from the rest.
        pid = nodes[0].proc.pid
        names = set()
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                names.add(f.read().strip())
        for name in ("ckv-raft", "ckv-peers", "ckv-http", "ckv-kv-worker", "ckv-watch-notif"):
            self.assertIn(name, names)

        # Two of three gone for good: the survivor is alive but not ready, and etcd's /health says false.
        survivor = nodes[2]
        for n in nodes[:2]:
            n.kill()
        wait_for(lambda: survivor.status()["leader"] == "", 20, "the survivor to have no leader")
        r = request("GET", survivor.api, "/readyz")
        self.assertEqual(r.status, 503, r)
        self.assertIn("[-]leader failed: no leader known", r.raw)
        self.assertIn("[+]raft-loop ok", r.raw)
        self.assertTrue(r.raw.endswith("readyz check failed\n"), r.raw)
        r = request("GET", survivor.api, "/readyz?exclude=leader,linearizable-read")
        self.assertEqual(r.status, 200, r)
        r = request("GET", survivor.api, "/health")
        self.assertEqual((r.status, r.raw), (503, '{"health":"false"}\n'))  # etcd 3.4's exact answer
        self.assertEqual(request("GET", survivor.api, "/health?serializable=true").status, 503)
        r = request("GET", survivor.api, "/healthz")
        self.assertEqual((r.status, r.raw), (200, "ok"))
        self.assertEqual(value(scrape(survivor).raw, "consensuskv_server_has_leader"), 0)

    def test_minority_partition_is_not_ready(self):
        """A member cut off from the others (SIGSTOP on both peers: nothing reaches it) is alive but not ready."""
        nodes = self.start_cluster()
        leader = self.wait_leader(nodes)
        cut = next(n for n in nodes if n is not leader)
        others = [n for n in nodes if n is not cut]
        wait_for(lambda: request("GET", cut.api, "/readyz").status == 200, 20, f"{cut.name} ready")
        for n in others:
            n.proc.send_signal(signal.SIGSTOP)  # cleanup's SIGKILL ends stopped processes too
        try:
            # Until it notices, it may still name its old leader; the read barrier fails then.
            wait_for(lambda: request("GET", cut.api, "/readyz").status == 503, 20, f"{cut.name} not ready")
            self.assertEqual(request("GET", cut.api, "/healthz").status, 200)
            wait_for(lambda: request("GET", cut.api, "/health").status == 503, 20, f"{cut.name} /health false")
        finally:
            for n in others:
                n.proc.send_signal(signal.SIGCONT)
        wait_for(lambda: request("GET", cut.api, "/readyz").status == 200, 30, f"{cut.name} ready again")

    def test_status_page_in_headless_chromium(self):
        if CHROMIUM is None:
            self.fail("chromium not installed (scripts/setup.sh)")
        nodes = self.start_cluster()
        leader = self.wait_leader(nodes)
        follower = next(n for n in nodes if n is not leader)
        page = request("GET", follower.api, "/ui")
        self.assertEqual(page.status, 200)
        self.assertTrue(page.headers["Content-Type"].startswith("text/html"))
        self.assertNotRegex(page.raw, r'(src|href)="?(https?:)?//', "the page loads nothing from elsewhere")
        # /status?member= reaches every member through the node serving the page.
        for n in nodes:  # members are named by their raft address (no -id)
            r = request("GET", follower.api, "/status?member=" + urllib.parse.quote(n.raft))
            self.assertEqual((r.status, r.json and r.json["id"]), (200, n.raft), r)
        self.assertEqual(request("GET", follower.api, "/status?member=nobody").status, 404)
        lead = request("GET", follower.api, "/status?member=" + urllib.parse.quote(leader.raft)).json
        self.assertTrue(all("match" in m and "next" in m for m in lead["members"]), lead)

        profile = os.path.join(self.tmp, "chromium-profile")
        common = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--no-first-run", f"--user-data-dir={profile}", "--window-size=1280,720",
                  # Virtual time runs the page's fetches and timers before the dump.
                  "--virtual-time-budget=5000"]
        url = f"http://{follower.api}/ui"

        def dump():
            p = subprocess.run(common + ["--dump-dom", url], capture_output=True, text=True, timeout=90)
            self.assertEqual(p.returncode, 0, p.stderr[-2000:])
            return p.stdout

        def drawn():
            dom = dump()
            rows = re.findall(r'<tr[^>]*data-member="([^"]+)"', dom)
            down = re.findall(r'<tr[^>]*class="down"', dom)  # a member the page could not reach
            return dom if sorted(rows) == sorted(n.raft for n in nodes) and not down else None

        dom = wait_for(drawn, 120, "the page to draw every member")
        self.assertNotEqual(re.search(r'data-refreshes="(\d+)"', dom).group(1), "0")
        self.assertRegex(dom, rf'<tr[^>]*data-member="{re.escape(leader.raft)}"[^>]*class="leader"')
        # The test's temp dir is removed at cleanup: the artifact goes to CKV_ARTIFACT_DIR
        # (default: ckv-artifacts in the system temp dir), overwritten by each run.
        artifacts = os.environ.get("CKV_ARTIFACT_DIR", os.path.join(tempfile.gettempdir(), "ckv-artifacts"))
        os.makedirs(artifacts, exist_ok=True)
        shot = os.path.join(artifacts, "status_page.png")
        p = subprocess.run(common + [f"--screenshot={shot}", url], capture_output=True, text=True, timeout=90)
        self.assertEqual(p.returncode, 0, p.stderr[-2000:])
        self.assertGreater(os.path.getsize(shot), 1000)
        print(f"\nstatus page screenshot: {shot}")


if __name__ == "__main__":
    unittest.main()
