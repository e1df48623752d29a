"""Hostile peers against a real cluster (issue 7, items 5, 6, 7, 9, 17): idle sockets, spoofed hellos, huge partial frames, claimed addresses, wiped members, joins and removals that would hurt the cluster."""

import select
import shutil
import socket
import struct
import time
import urllib.parse

import raft_wire as wire
from kvcluster import ClusterTest, request, wait_for, free_port
from raft_wire import frame, node_id

HELLO_MAGIC = 0x54564B43
MIB = 1 << 20


def hello_now(frm, to, name="", raft="", api="", incarnation="", kind=0):
    """The hello this build speaks (raft_wire.HELLO_VERSION)."""
    return wire.hello(frm, to, name=name, raft_address=raft, api_address=api, incarnation=incarnation, kind=kind)


def hello_v2(frm, to, raft=""):
    """The hello of builds before issue 7: lets this test replay the attacks against them too."""
    b = raft.encode()
    return frame(struct.pack("<IBQQ", HELLO_MAGIC, 2, frm, to) + struct.pack("<H", len(b)) + b)


def probe_incarnation(address):
    """What anyone can learn from a node's raft port: the answer to a probe hello carries its
    incarnation, so a spoofer can claim it too (only mutual TLS, a later issue, stops that)."""
    s = connect(address)
    try:
        s.sendall(hello_now(0, 0, kind=1))
        data = b""
        while len(data) < 8 or len(data) < 8 + struct.unpack("<I", data[:4])[0]:
            chunk = s.recv(4096)
            if not chunk:
                return ""  # an older build: no answer
            data += chunk
    finally:
        s.close()
    payload = data[8:8 + struct.unpack("<I", data[:4])[0]]
    pos = 4 + 1 + 1 + 8 + 8
    fields = []
    for _ in range(4):
        n = payload[pos]
        fields.append(payload[pos + 1:pos + 1 + n].decode())
        pos += 1 + n
    return fields[3]


def spoofed_hellos(member, to, raft=""):
    """Hellos claiming to be member (a kvcluster Node), in this version and the pre-issue-7 one; a node refuses the one
    it does not speak. The current one carries the member's real incarnation, learned by probing."""
    inc = probe_incarnation(member.raft)
    frm = node_id(member.name)
    return [hello_now(frm, to, name=member.name, raft=raft, incarnation=inc), hello_v2(frm, to, raft)]


def connect(address, timeout=5):
    host, port = address.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def closed_by_peer(s, timeout):
    """True once the other end closed s (EOF or reset) within timeout; bytes it sends are skipped."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([s], [], [], max(0.0, deadline - time.monotonic()))
        if not r:
            return False
        try:
            if not s.recv(65536):
                return True
        except OSError:
            return True
    return False


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise ValueError("no VmRSS")


class HostilePeersTest(ClusterTest):
    def start_three(self, *extra):
        n1 = self.node("n1", "-id=n1", "-bootstrap", *extra).start()
        self.wait_leader([n1])
        n2 = self.node("n2", "-id=n2", *extra).start()
        n3 = self.node("n3", "-id=n3", *extra).start()
        for n in (n2, n3):
            r = n1.join(n)
            self.assertEqual(r.status, 200, r)
        self.wait_voters(n1, [n1, n2, n3])
        return n1, n2, n3

    def assert_writes_work(self, nodes, key):
        r = self.write_with_retry(nodes, key, "v", timeout=20)
        self.assertEqual(r.status, 200, r)

    def sockets(self):
        opened = []

        def close_all():
            for s in opened:
                try:
                    s.close()
                except OSError:
                    pass

        self.addCleanup(close_all)
        return opened

    # --- item 6 -------------------------------------------------------------

    def test_idle_sockets_and_spoofed_hellos_do_not_stop_the_cluster(self):
        """252 idle connections per node plus a spoofed hello from every member's id to every
        node: before issue 7 a full outage while held (the spoof closed the real stream, the
        reconnect found no free slot). Now idle sockets are closed after the hello timeout,
        cannot take more than the pending-hello cap, and a spoof cannot evict a live stream."""
        nodes = self.start_three()
        opened = self.sockets()
        for n in nodes:
            for _ in range(252):
                opened.append(connect(n.raft))
        for target in nodes:
            for member in nodes:
                if member is target:
                    continue
                for h in spoofed_hellos(member, node_id(target.name), member.raft):
                    s = connect(target.raft)
                    s.sendall(h)
                    opened.append(s)
        for i in range(20):
            self.assert_writes_work(nodes, f"k{i}")
        leader = self.wait_leader(nodes)
        self.assertEqual(leader.get("k19").json, {"k19": "v"})
        # The idle ones are closed by the nodes (hello timeout or the pending cap).
        self.assertTrue(closed_by_peer(opened[0], 10), "an idle connection was never closed")
        logs = "".join(n.log() for n in nodes)
        self.assertTrue("without a hello" in logs or "no hello within" in logs, "no refusal was logged")

    # --- item 7 -------------------------------------------------------------

    def test_partial_frames_keep_rss_bounded(self):
        """24 connections, each with a spoofed hello from a member's id and 60 MiB of a 64 MiB
        frame: before issue 7 RSS reached 1.6 GB. Now a sender holds at most 2 streams, all
        inbound streams together at most -raft-inbound-buffer-bytes (128 MiB), and writes go on."""
        nodes = self.start_three()
        leader = self.wait_leader(nodes)
        followers = [n for n in nodes if n is not leader]
        before = rss_bytes(leader.proc.pid)
        partial = struct.pack("<II", 64 * MIB - 1, 0) + b"x" * (60 * MIB)
        opened = self.sockets()
        peak = before
        refused = 0
        hellos = [spoofed_hellos(f, node_id(leader.name))[0] for f in followers]
        for i in range(24):
            s = connect(leader.raft, timeout=20)
            opened.append(s)
            try:
                s.sendall(hellos[i % 2])
                s.sendall(partial)
            except OSError:
                refused += 1  # closed by the node: over the per-sender cap or the budget
            peak = max(peak, rss_bytes(leader.proc.pid))
            r = leader.status()
            self.assertIsNotNone(r)
        self.assert_writes_work(nodes, "after-partials")
        peak = max(peak, rss_bytes(leader.proc.pid))
        print(f"\nleader RSS before {before / MIB:.0f} MiB, peak {peak / MIB:.0f} MiB, "
              f"{refused} of 24 partial-frame connections refused")
        self.assertGreater(refused, 0)
        self.assertLess(peak - before, 128 * MIB + 64 * MIB, "inbound buffers are not bounded")

    def test_hello_address_is_never_dialled(self):
        """A hello from a stranger whose from_address points at a listener of ours: before issue 7
        the node created a peer and dialled it (any host:port), and never removed it. Now a
        stranger is refused and nothing is dialled."""
        nodes = self.start_three()
        trap = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(trap.close)
        trap.bind(("127.0.0.1", free_port()))
        trap.listen(16)
        trap_address = "127.0.0.1:%d" % trap.getsockname()[1]
        opened = self.sockets()
        stranger = node_id("stranger")
        for n in nodes:
            for h in (hello_now(stranger, node_id(n.name), "stranger", trap_address), hello_v2(stranger, node_id(n.name), trap_address)):
                s = connect(n.raft)
                s.sendall(h)
                opened.append(s)
        wait_for(lambda: all("is not a member" in n.log() for n in nodes), 10, "every node to refuse the stranger")
        r, _, _ = select.select([trap], [], [], 1.0)
        self.assertEqual(r, [], "a node dialled the address a hello claimed")
        self.assert_writes_work(nodes, "k")

    # --- items 9 and 17 -------------------------------------------------------

    def test_join_by_raft_address_records_name_and_api_address_at_once(self):
        """A bare node started with -id=X and joined with /join?peerAddress= only: the leader probes
        it, so the member is X (not its raft address) and its API address is known when /join
        returns (before: added under the wrong name, and no API address until it registered)."""
        n1 = self.node("n1", "-bootstrap").start()
        self.wait_leader([n1])
        n2 = self.node("n2", "-id=node-b").start()
        r = n1.join(n2)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["id"], "node-b")
        self.assertEqual(r.json["apiAddress"], n2.api)
        members = {m["id"]: m for m in n1.status()["members"]}
        self.assertEqual(members["node-b"]["apiAddress"], n2.api, members)
        self.assertEqual(members["node-b"]["role"], "voter")

    def test_wiped_member_is_refused_until_removed_and_added_again(self):
        """A member whose data dir was wiped comes back with a new incarnation: the leader refuses
        its stream with a clear message, so it cannot vote or ack as the member it was. The
        documented repair (remove, add again) brings it back."""
        n1, n2, n3 = self.start_three()
        self.assert_writes_work([n1, n2, n3], "before")
        leader = self.wait_leader([n1, n2, n3])
        victim = n3 if leader is not n3 else n2
        victim.kill()
        shutil.rmtree(victim.data_dir)
        victim.start()
        wait_for(lambda: "answered with a different data dir" in leader.log(), 15, "the leader to refuse the wiped member")
        self.assertIn("remove it and add it again", leader.log())
        self.assertEqual(victim.status()["members"], [])
        self.assert_writes_work([n1, n2, n3], "while-wiped")
        # Joining it again as it is now is refused: the member it was is still in the configuration.
        r = leader.join(victim, name=victim.name)
        self.assertEqual(r.status, 409, r)
        self.assertIn("wiped", r.json["error"])
        r = request("POST", leader.api, "/remove?id=" + victim.name, b"")
        self.assertEqual(r.status, 200, r)
        r = leader.join(victim)
        self.assertEqual(r.status, 200, r)
        wait_for(lambda: victim.get("while-wiped", consistency="stale").status == 200, 20, "the re-added member to catch up")

    # --- item 5 ---------------------------------------------------------------

    def test_joins_of_dead_addresses_cannot_pile_up(self):
        """~1,022 /join calls for dead addresses used to push the configuration past the decoder's
        1,024-member cap. Now at most one learner waits for promotion: the next join is refused
        with a clear 503 until it is promoted or removed."""
        n1 = self.node("n1", "-bootstrap", "-join-timeout-ms=1000").start()
        self.wait_leader([n1])
        dead = [f"127.0.0.1:{free_port()}" for _ in range(3)]
        r = request("GET", n1.api, "/join?" + urllib.parse.urlencode({"peerAddress": dead[0]}))
        self.assertEqual(r.status, 504, r)  # added as a learner that never catches up
        for address in dead[1:]:
            r = request("GET", n1.api, "/join?" + urllib.parse.urlencode({"peerAddress": address}))
            self.assertEqual(r.status, 503, r)
            self.assertIn("learner", r.json["error"])
        self.assertEqual(len(n1.status()["members"]), 2)
        r = request("POST", n1.api, "/remove?" + urllib.parse.urlencode({"peerAddress": dead[0]}), b"")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(len(n1.status()["members"]), 1)
        self.assert_writes_work([n1], "k")

    def test_removal_that_would_lose_quorum_needs_force(self):
        """Strict reconfiguration: with one of three down, removing a live follower would leave
        {leader, the dead one}: one active voter of two, below their quorum. Refused (503)
        unless force=true; forced, the change is made and commits once the dead one is back."""
        n1, n2, n3 = self.start_three("-join-timeout-ms=5000")
        leader = self.wait_leader([n1, n2, n3])
        down, other = [n for n in (n1, n2, n3) if n is not leader]
        down.kill()

        def seen_down():
            return any(m["id"] == down.name and m.get("active") is False for m in leader.status()["members"])

        wait_for(seen_down, 10, f"the leader to see {down.name} inactive")
        r = request("POST", leader.api, "/remove?id=" + other.name, b"")
        self.assertEqual(r.status, 503, r)
        self.assertIn("force=true", r.json["error"])
        self.assertEqual(len(leader.status()["members"]), 3)
        self.assert_writes_work([leader], "still-three")
        # Forced: proposed, but it cannot commit without the dead member (504: it may still).
        r = request("POST", leader.api, "/remove?id=" + other.name + "&force=true", b"", timeout=40)
        self.assertEqual(r.status, 504, r)
        self.assertEqual({m["id"] for m in leader.status()["members"]}, {leader.name, down.name})
        down.start()
        self.assert_writes_work([leader, down], "after-forced-remove")
