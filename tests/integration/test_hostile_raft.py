"""Integration: forged raft messages from anyone who reaches the raft port (hardening issue items 1-4) change nothing and crash nothing."""

import unittest

import raft_wire as wire
from kvcluster import ClusterTest, wait_for


class HostileRaftTest(ClusterTest):
    def start_cluster(self):
        first = self.node("n1", "-bootstrap=true").start()
        self.wait_leader([first])
        nodes = [first] + [self.node(f"n{i}", f"-join={first.api}").start() for i in (2, 3)]
        for n in nodes:
            self.wait_voters(n, nodes, timeout=60)
        for i in range(5):
            self.write_with_retry(nodes, f"k{i}", f"v{i}")
        leader = self.wait_leader(nodes)
        followers = [n for n in nodes if n is not leader]
        return nodes, leader, followers

    def forge(self, target, as_node):
        """A stream to target's raft port that claims to be as_node. Everything it needs is public:
        ids are FNV-1a of the name, and a probe hello makes any node tell its incarnation. (Only
        peer authentication, mutual TLS, can stop this; the core must survive what it is sent.)"""
        who = wire.probe(as_node.raft)
        self.assertIsNotNone(who, f"{as_node.name} did not answer a probe")
        peer = wire.HostilePeer(target.raft, who["from"], wire.node_id(target.raft))
        self.addCleanup(peer.close)
        peer.say_hello(name=who["name"], raft_address=who["raft_address"], incarnation=who["incarnation"])
        answer = peer.read_answer()
        self.assertIsNotNone(answer, f"{target.name} refused the spoofed stream")
        return peer

    def assert_dropped(self, node, reason):
        wait_for(lambda: reason in node.log(), 10, f"{node.name} to log that it dropped a message ({reason})")

    def assert_cluster_healthy(self, nodes, marker):
        """Every node alive, a new write acknowledged and readable on every node, terms sane."""
        self.write_with_retry(nodes, marker, "ok")
        for n in nodes:
            self.assertTrue(n.alive(), f"{n.name} died:\n{n.log()[-3000:]}")
            wait_for(lambda n=n: n.get(marker).status == 200, 15, f"{n.name} to read {marker}")
            self.assertLess(n.status()["term"], 1000, f"{n.name}'s term was inflated")

    def test_append_below_commit_with_foreign_entries_is_dropped(self):
        """Item 1: an append whose entries contradict the committed log must not put a foreign key anywhere."""
        nodes, leader, (f, other) = self.start_cluster()
        st = f.status()
        term, commit = st["term"], st["commitIndex"]
        forged_term = term + 5
        entries = [(forged_term, i, wire.ENTRY_NORMAL, wire.set_command(b"junk", b"x")) for i in range(1, commit + 1)]
        entries.append((forged_term, commit + 1, wire.ENTRY_NORMAL, wire.set_command(b"foreign", b"evil")))
        # As a non-member: not even heard.
        outsider = wire.HostilePeer(f.raft, wire.node_id("127.0.0.1:1"), wire.node_id(f.raft))
        self.addCleanup(outsider.close)
        outsider.say_hello(name="127.0.0.1:1", raft_address="127.0.0.1:1")
        self.assertTrue(outsider.closed_by_peer(timeout=10), "a non-member's stream was kept open")
        # As a member (spoofed id): heard, and refused by the core.
        peer = self.forge(f, other)
        peer.send(wire.message("Append", wire.node_id(other.raft), wire.node_id(f.raft), term=forged_term,
                               entries=entries, commit=commit + 1))
        self.assert_dropped(f, "contradicts a committed entry")
        self.assert_cluster_healthy(nodes, "after-item-1")
        for n in nodes:
            self.assertEqual(n.get("foreign").status, 404, f"{n.name} applied the forged entry")
            self.assertLess(n.status()["term"], forged_term, f"{n.name} took the forged term")

    def test_maximal_term_is_dropped_and_never_wraps(self):
        """Item 3: a heartbeat with term 2^64-1 used to wrap every node's term and brick the cluster for good."""
        nodes, leader, (f, other) = self.start_cluster()
        peer = self.forge(f, other)
        for term in (wire.U64_MAX, 1 << 62, f.status()["term"] + (1 << 21)):
            peer.send(wire.message("Heartbeat", wire.node_id(other.raft), wire.node_id(f.raft), term=term))
        self.assert_dropped(f, "term")
        self.assert_cluster_healthy(nodes, "after-item-3")
        # And after a restart (the term is persisted): still healthy.
        f.kill()
        f.start()
        self.assert_cluster_healthy(nodes, "after-item-3-restart")

    def test_indexes_out_of_range_never_reach_an_assertion(self):
        """Item 4: entries at index 999999, an ack of index 2^40: both aborted the receiver."""
        nodes, leader, (f, other) = self.start_cluster()
        term = leader.status()["term"]
        commit = f.status()["commitIndex"]
        to_follower = self.forge(f, leader)
        to_follower.send(wire.message("Append", wire.node_id(leader.raft), wire.node_id(f.raft), term=term,
                                      log_index=commit - 1, log_term=term,
                                      entries=[(term, 999999, wire.ENTRY_NORMAL, b"x")], commit=999999))
        self.assert_dropped(f, "not contiguous")
        to_leader = self.forge(leader, f)
        to_leader.send(wire.message("AppendResp", wire.node_id(f.raft), wire.node_id(leader.raft), term=term,
                                    index=1 << 40))
        to_leader.send(wire.message("SnapshotResp", wire.node_id(f.raft), wire.node_id(leader.raft), term=term,
                                    index=1 << 40, done=True))
        self.assert_dropped(leader, "beyond the leader's log")
        self.assert_cluster_healthy(nodes, "after-item-4")


if __name__ == "__main__":
    unittest.main()
