"""Integration: disks and operators (issue 7 items 8-11) — a locked data dir, damaged or missing files, a full disk."""

import errno
import glob
import json
import os
import shutil
import signal
import subprocess
import time
import unittest
import uuid

from kvcluster import ClusterTest, wait_for
from raft_wire import crc32c

REFUSAL_TIMEOUT_S = 20  # a refused start exits at once; this only bounds a hang
OPERATIONS_DOC = "docs/operations.md"


def hard_state_record(term, vote, commit):
    """The stored hard state (src/storage/log_store.h): format 2, crc32c of the body, term, vote, commit."""
    body = term.to_bytes(8, "little") + vote.to_bytes(8, "little") + commit.to_bytes(8, "little")
    return bytes([2]) + crc32c(body).to_bytes(4, "little") + body


def patch_hard_states(path, patch):
    """Rewrites, in place, every copy of the hard state record in an LMDB file (LMDB keeps old
    copies in free pages; the current one is among them). An LMDB leaf stores the key and then
    the value, so the 29 bytes after b"hard_state" are a record when they start with format 2.
    patch(term, vote, commit, raw) returns the new 29 bytes. Returns how many were patched."""
    with open(path, "r+b") as f:
        data = bytearray(f.read())
        count = 0
        at = data.find(b"hard_state")
        while at >= 0:
            rec = at + len(b"hard_state")
            raw = bytes(data[rec:rec + 29])
            if len(raw) == 29 and raw[0] == 2:
                term, vote, commit = (int.from_bytes(raw[5 + 8 * i:13 + 8 * i], "little") for i in range(3))
                data[rec:rec + 29] = patch(term, vote, commit, raw)
                count += 1
            at = data.find(b"hard_state", at + 1)
        f.seek(0)
        f.write(data)
    return count


class DiskTest(ClusterTest):
    def start_refused(self, node):
        """Runs node's command expecting a refusal: returns (exit code, output). Killed by PID on a hang."""
        p = subprocess.Popen(node.args(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.procs.append(p)
        try:
            out, _ = p.communicate(timeout=REFUSAL_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            p.kill()
            out, _ = p.communicate()
            self.fail(f"{node.name} did not refuse to start; it ran for {REFUSAL_TIMEOUT_S}s:\n{out[-3000:]}")
        return p.returncode, out

    def assert_refused(self, node, *expected):
        code, out = self.start_refused(node)
        # Positive: exited with a code. Negative would be a signal (abort, SIGBUS, SIGSEGV).
        self.assertGreater(code, 0, f"{node.name} should exit non-zero, not die of a signal:\n{out[-3000:]}")
        self.assertNotIn("check failed", out)
        for text in expected:
            self.assertIn(text, out, out[-3000:])
        return out

    def one_node_with_data(self, *extra, writes=5):
        n1 = self.node("n1", "-bootstrap", *extra).start()
        self.wait_leader([n1])
        for i in range(writes):
            self.write_with_retry([n1], f"k{i}", f"v{i}")
        n1.kill(signal.SIGTERM)
        return n1

    # --- item 8: one process per data dir ----------------------------------

    def test_second_process_on_the_same_data_dir_is_refused(self):
        n1 = self.node("n1", "-bootstrap").start()
        self.wait_leader([n1])
        self.write_with_retry([n1], "before", "1")
        twin = self.node("n1-twin", "-bootstrap")  # other ports, same data dir
        twin.data_dir = n1.data_dir
        self.assert_refused(twin, f"data dir {n1.data_dir} is in use by another kvnode (pid {n1.proc.pid}); "
                                  "stop it first")
        # Same ports too: still told about the dir, not the port.
        clone = self.node("n1-clone", "-bootstrap")
        clone.raft, clone.api, clone.data_dir = n1.raft, n1.api, n1.data_dir
        self.assert_refused(clone, f"(pid {n1.proc.pid})")
        self.assertTrue(n1.alive())
        self.assertEqual(n1.set("after", "2").status, 200)
        self.assertEqual(n1.get("before").json, {"before": "1"})
        self.assertEqual(n1.get("after").json, {"after": "2"})

    # --- items 9 and 11: damaged or missing files refuse the start ---------

    def test_deleted_log_store_is_refused(self):
        n1 = self.one_node_with_data()
        path = os.path.join(n1.data_dir, "raft.mdb")
        os.remove(path)
        self.assert_refused(n1, path, "is missing: this member lost its state", OPERATIONS_DOC)
        self.assertFalse(os.path.exists(path), "no empty log may be created in its place")

    def test_truncated_log_store_is_refused_without_sigbus(self):
        n1 = self.one_node_with_data(writes=200)
        path = os.path.join(n1.data_dir, "raft.mdb")
        size = os.path.getsize(path)
        for new_size in (size // 2, 4096, 0):
            os.truncate(path, new_size)
            self.assert_refused(n1, path, "truncated", OPERATIONS_DOC)

    def test_changed_vote_is_refused(self):
        n1 = self.one_node_with_data()
        path = os.path.join(n1.data_dir, "raft.mdb")

        def flip_vote(term, vote, commit, raw):
            return raw[:13] + bytes([raw[13] ^ 0x01]) + raw[14:]

        self.assertGreater(patch_hard_states(path, flip_vote), 0)
        self.assert_refused(n1, path, "checksum mismatch", OPERATIONS_DOC)

    def test_commit_beyond_the_log_is_refused(self):
        n1 = self.one_node_with_data()
        path = os.path.join(n1.data_dir, "raft.mdb")
        self.assertGreater(patch_hard_states(path, lambda t, v, c, raw: hard_state_record(t, v, 1_000_000)), 0)
        self.assert_refused(n1, path, "commit index 1000000 is beyond the last log entry", OPERATIONS_DOC)

    def test_term_above_the_ceiling_is_refused(self):
        n1 = self.one_node_with_data()
        path = os.path.join(n1.data_dir, "raft.mdb")
        self.assertGreater(patch_hard_states(path, lambda t, v, c, raw: hard_state_record(2**64 - 1, v, c)), 0)
        self.assert_refused(n1, path, "above the ceiling", OPERATIONS_DOC)

    def test_missing_or_damaged_snapshot_is_refused(self):
        n1 = self.one_node_with_data("-snapshot-threshold=20", "-snapshot-trailing=5", writes=0)
        n1.start()
        self.wait_leader([n1])
        for i in range(80):
            self.write_with_retry([n1], f"k{i}", f"v{i}")
        wait_for(lambda: n1.status()["snapshotIndex"] >= 40, 20, "a snapshot past index 40")
        n1.kill(signal.SIGTERM)
        (snap,) = glob.glob(os.path.join(n1.data_dir, "snapshot-*.snap"))
        saved = snap + ".saved"
        shutil.copy(snap, saved)
        with open(snap, "r+b") as f:
            f.seek(os.path.getsize(snap) // 2)
            b = f.read(1)
            f.seek(-1, os.SEEK_CUR)
            f.write(bytes([b[0] ^ 0xFF]))
        self.assert_refused(n1, snap, "is corrupt", OPERATIONS_DOC)
        os.remove(snap)
        self.assert_refused(n1, "the snapshot file is missing", OPERATIONS_DOC)
        os.rename(saved, snap)  # put back: the node resumes with everything
        n1.start()
        self.wait_leader([n1])
        self.assertEqual(n1.get("k79").json, {"k79": "v79"})

    def test_damaged_node_meta_is_refused(self):
        n1 = self.one_node_with_data()
        path = os.path.join(n1.data_dir, "node_meta")
        with open(path, "r+b") as f:
            data = bytearray(f.read())
            data[-1] ^= 0x01
            f.seek(0)
            f.write(data)
        self.assert_refused(n1, path, "is damaged", OPERATIONS_DOC)


# --- item 10: a full disk -------------------------------------------------

TMPFS_BYTES = 48 << 20         # room for the node's files, its reserve and the headroom to resume
RESERVE_BYTES = 4 << 20        # -space-reserve-bytes for the node on the small disk
FILL_CHUNK_BYTES = 256 << 10
VALUE_BYTES = 16 << 10         # writes big enough to need new pages at once


class DiskFullTest(ClusterTest):
    def setUp(self):
        super().setUp()
        if os.geteuid() != 0:
            self.skipTest("the disk-full test mounts a small tmpfs and needs root; run it as root")
        self.mnt = os.path.join(self.tmp, "small-disk")
        os.makedirs(self.mnt)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_BYTES}", "tmpfs", self.mnt],
                           capture_output=True, text=True)
        if r.returncode != 0:
            self.skipTest(f"cannot mount a tmpfs (needs root and mount rights): {r.stderr.strip()}")
        # Cleanups run last-in first-out: the unmount runs after the nodes are killed.
        self.addCleanup(lambda: subprocess.run(["umount", "-l", self.mnt], capture_output=True))
        self.addCleanup(self._cleanup_procs_first)
        self.fillers = []

    def _cleanup_procs_first(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)

    def fill(self):
        """Writes a filler file until the small disk reports ENOSPC."""
        path = os.path.join(self.mnt, f"filler-{len(self.fillers)}")
        self.fillers.append(path)
        chunk = b"\0" * FILL_CHUNK_BYTES
        with open(path, "wb", buffering=0) as f:
            while True:
                try:
                    f.write(chunk)
                except OSError as e:
                    self.assertEqual(e.errno, errno.ENOSPC)
                    break
        # Sub-chunk leftovers too, so that the node's next page allocation fails.
        with open(path, "ab", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * 4096)
            except OSError as e:
                self.assertEqual(e.errno, errno.ENOSPC)

    def free(self):
        for path in self.fillers:
            os.remove(path)
        self.fillers = []

    def write_until_no_space(self, node, acked, prefix, limit=500):
        """Writes through node until one write gets 507; records every acknowledged write."""
        for i in range(limit):
            key, value = f"{prefix}{i}", uuid.uuid4().hex * (VALUE_BYTES // 32)
            r = node.set(key, value)
            if r.status == 200:
                acked[key] = value
                continue
            self.assertEqual(r.status, 507, r)
            self.assertIn("no space left on device", r.json["error"])
            return r
        self.fail(f"no 507 after {limit} writes on a full disk")

    def check_acked(self, nodes, acked, consistency=None):
        for n in nodes:
            for key, value in acked.items():
                r = n.get(key, consistency=consistency)
                self.assertEqual(r.status, 200, (n.name, key, r))
                self.assertEqual(r.json, {key: value}, (n.name, key))

    def test_full_disk_refuses_writes_keeps_reads_and_resumes(self):
        small = [f"-space-reserve-bytes={RESERVE_BYTES}"]
        n1 = self.node("n1", "-bootstrap", *small)
        n1.data_dir = os.path.join(self.mnt, "n1")
        n1.start()
        self.wait_leader([n1])
        n2 = self.node("n2", f"-join={n1.api}").start()
        n3 = self.node("n3", f"-join={n1.api}").start()
        nodes = [n1, n2, n3]
        for n in nodes:
            self.wait_voters(n, nodes, timeout=60)
        self.assertEqual(self.wait_leader(nodes), n1)
        acked = {}
        for i in range(10):
            self.write_with_retry(nodes, f"before{i}", f"v{i}")
            acked[f"before{i}"] = f"v{i}"

        # The leader's disk fills: writes get a JSON 507 naming the cause;
        # reads keep working, linearizable ones through the full leader too.
        self.fill()
        self.write_until_no_space(n1, acked, "full")
        self.assertTrue(n1.status()["noSpace"])
        self.check_acked([n1], acked)
        self.assertIn("released the", n1.log())
        # It hands leadership to a member with space: the cluster takes writes again.
        wait_for(lambda: n2.set("moved", "1").status == 200, 20, "writes to succeed after the leader moved")
        acked["moved"] = "1"
        self.assertIn("disk full: handing leadership to", n1.log())
        self.assertNotEqual(self.wait_leader(nodes), n1)
        self.assertTrue(n1.status()["noSpace"])
        self.check_acked(nodes, acked)
        self.assertTrue(all(n.alive() for n in nodes))

        # Space returns: n1 takes entries again and catches up, without a restart.
        self.free()
        wait_for(lambda: not n1.status()["noSpace"], 20, "n1 to leave the no-space mode")
        self.assertIn("writes resume", n1.log())
        self.write_with_retry([n2, n3], "after-free", "1")
        acked["after-free"] = "1"
        leader = self.wait_leader(nodes)
        wait_for(lambda: n1.status()["appliedIndex"] >= leader.status()["commitIndex"], 20, "n1 to catch up")
        self.check_acked(nodes, acked)

        # Full again, now as a follower (the leader's entries fill it), the
        # reserve used up, then a crash and a restart on the full disk: the
        # node comes up (no abort) and serves; once space is freed it catches up.
        self.fill()
        for i in range(100):
            if n1.status()["noSpace"]:
                break
            self.write_with_retry([n2, n3], f"fill{i}", uuid.uuid4().hex * (VALUE_BYTES // 32))
            acked[f"fill{i}"] = None  # value checked below only for known ones
        self.assertTrue(n1.status()["noSpace"], "n1 should run out of space as a follower")
        self.fill()
        n1.kill()
        n1.start()
        self.assertIn("no space for the", n1.log())
        self.assertTrue(n1.status()["noSpace"])
        wait_for(lambda: n1.status()["leader"] != "", 20, "n1 to see a leader after its restart")
        for i in range(5):
            self.write_with_retry([n2, n3], f"restart{i}", f"r{i}")
            acked[f"restart{i}"] = f"r{i}"
        self.assertTrue(n1.alive(), n1.log()[-3000:])
        self.free()
        leader = self.wait_leader(nodes)
        commit = leader.status()["commitIndex"]
        wait_for(lambda: n1.status()["appliedIndex"] >= commit, 30, "n1 to catch up once space returns")
        self.assertTrue(all(n.alive() for n in nodes))
        self.check_acked(nodes, {k: v for k, v in acked.items() if v is not None})
        for n in nodes:  # the big writes too: present on every node
            for k in (k for k, v in acked.items() if v is None):
                self.assertEqual(n.get(k).status, 200, (n.name, k))
        self.assertNotIn("check failed", n1.log())

    def test_full_disk_without_reserve_holds_the_ready_and_resumes(self):
        """Without a reserve the leader cannot persist even its own entry: it holds that Ready
        (raft.h: never skipped), stays up, the others elect a leader, and it catches up later."""
        n1 = self.node("n1", "-bootstrap", "-space-reserve-bytes=0", "-commit-timeout-ms=2000")
        n1.data_dir = os.path.join(self.mnt, "n1")
        n1.start()
        self.wait_leader([n1])
        n2 = self.node("n2", f"-join={n1.api}").start()
        n3 = self.node("n3", f"-join={n1.api}").start()
        nodes = [n1, n2, n3]
        for n in nodes:
            self.wait_voters(n, nodes, timeout=60)
        acked = {"before": "1"}
        self.write_with_retry(nodes, "before", "1")
        self.fill()
        r = n1.set("stuck", uuid.uuid4().hex * (VALUE_BYTES // 32))
        self.assertIn(r.status, (504, 507), r)  # outcome unknown, or refused; never a reset
        if r.status == 504:
            self.assertIn("disk is full", r.json["error"])
        self.assertTrue(n1.alive())
        self.assertIn("retrying with backoff", n1.log())
        # The others carry on without it.
        others = [n2, n3]
        self.wait_leader(others)
        for i in range(5):
            self.write_with_retry(others, f"during{i}", f"d{i}")
            acked[f"during{i}"] = f"d{i}"
        self.free()
        wait_for(lambda: "persisted the held Ready" in n1.log(), 20, "n1 to persist its held Ready")
        leader = self.wait_leader(nodes)
        commit = leader.status()["commitIndex"]
        wait_for(lambda: n1.status()["appliedIndex"] >= commit, 30, "n1 to catch up")
        self.assertTrue(all(n.alive() for n in nodes))
        self.check_acked(nodes, acked)


if __name__ == "__main__":
    unittest.main()
