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
from raft_wire import _CRC_TABLE

REFUSAL_TIMEOUT_S = 20  # a refused start exits at once; this only bounds a hang
OPERATIONS_DOC = "docs/operations.md"


WAL_SEGMENT_HEADER_BYTES = 32
WAL_RECORD_HEADER_BYTES = 8
WAL_HARD_STATE = 2


def crc32c_seeded(seed, data):
    """crc32c(seed, data) as src/common/crc32c.h: a running CRC continued from seed."""
    crc = seed ^ 0xFFFFFFFF
    for b in data:
        crc = _CRC_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def wal_segments(data_dir):
    return sorted(glob.glob(os.path.join(data_dir, "wal", "*.wal")))


def wal_records(path):
    """(offset, type, payload) of every record in a WAL segment (src/storage/wal/wal_format.h), and its salt."""
    with open(path, "rb") as f:
        data = f.read()
    salt = int.from_bytes(data[20:24], "little")
    pos, out = WAL_SEGMENT_HEADER_BYTES, []
    while pos + WAL_RECORD_HEADER_BYTES <= len(data):
        length = int.from_bytes(data[pos:pos + 4], "little")
        if length == 0:
            break
        body = data[pos + WAL_RECORD_HEADER_BYTES:pos + WAL_RECORD_HEADER_BYTES + length]
        out.append((pos, body[0], body[1:]))
        pos += WAL_RECORD_HEADER_BYTES + length
    return salt, out


def patch_last_hard_state(data_dir, patch, fix_checksum=True):
    """Rewrites, in place, the hard state record replay uses (the last one in the newest segment
    holding one). patch(term, vote, commit, payload) returns the new 24-byte payload; with
    fix_checksum the record's salted CRC is recomputed (a forged but well-formed record), else
    left as it was (damage). Returns the segment's path."""
    for path in reversed(wal_segments(data_dir)):
        salt, records = wal_records(path)
        hs = [r for r in records if r[1] == WAL_HARD_STATE]
        if not hs:
            continue
        offset, _, payload = hs[-1]
        term, vote, commit = (int.from_bytes(payload[8 * i:8 * i + 8], "little") for i in range(3))
        new = patch(term, vote, commit, payload)
        body = bytes([WAL_HARD_STATE]) + new
        with open(path, "r+b") as f:
            if fix_checksum:
                f.seek(offset + 4)
                f.write(crc32c_seeded(salt, body).to_bytes(4, "little"))
            f.seek(offset + WAL_RECORD_HEADER_BYTES)
            f.write(body)
        return path
    raise AssertionError(f"no hard state record in {data_dir}/wal")


def hard_state_payload(term, vote, commit):
    return term.to_bytes(8, "little") + vote.to_bytes(8, "little") + commit.to_bytes(8, "little")


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
        path = os.path.join(n1.data_dir, "wal")
        shutil.rmtree(path)
        self.assert_refused(n1, path, "is missing", "this member lost its state", OPERATIONS_DOC)
        self.assertFalse(os.path.exists(path), "no empty log may be created in its place")

    def test_truncated_log_store_is_refused(self):
        n1 = self.one_node_with_data(writes=200)
        path = wal_segments(n1.data_dir)[-1]
        size = os.path.getsize(path)
        for new_size in (size // 2, 4096, 0):
            os.truncate(path, new_size)
            self.assert_refused(n1, path, "truncated", OPERATIONS_DOC)

    def test_changed_vote_is_refused(self):
        n1 = self.one_node_with_data()

        def flip_vote(term, vote, commit, payload):
            return payload[:8] + bytes([payload[8] ^ 0x01]) + payload[9:]

        path = patch_last_hard_state(n1.data_dir, flip_vote, fix_checksum=False)
        self.assert_refused(n1, path, "checksum mismatch", OPERATIONS_DOC)

    def test_commit_beyond_the_log_is_refused(self):
        n1 = self.one_node_with_data()
        patch_last_hard_state(n1.data_dir, lambda t, v, c, p: hard_state_payload(t, v, 1_000_000))
        self.assert_refused(n1, os.path.join(n1.data_dir, "wal"), "commit index 1000000 is beyond the last log entry",
                            OPERATIONS_DOC)

    def test_term_above_the_ceiling_is_refused(self):
        n1 = self.one_node_with_data()
        path = patch_last_hard_state(n1.data_dir, lambda t, v, c, p: hard_state_payload(2**64 - 1, v, c))
        self.assert_refused(n1, path, "above the ceiling", OPERATIONS_DOC)

    def test_flipped_byte_before_the_last_batch_is_refused_with_the_offset(self):
        """Mid-log damage is never taken for a torn tail: the entries after it were acknowledged."""
        n1 = self.one_node_with_data(writes=20)
        path = wal_segments(n1.data_dir)[-1]
        _, records = wal_records(path)
        offset = records[len(records) // 2][0]
        with open(path, "r+b") as f:
            f.seek(offset + WAL_RECORD_HEADER_BYTES + 1)
            b = f.read(1)
            f.seek(-1, os.SEEK_CUR)
            f.write(bytes([b[0] ^ 0x01]))
        self.assert_refused(n1, f"{path}: offset {offset}: checksum mismatch", OPERATIONS_DOC)

    def test_torn_last_batch_is_cut_and_the_node_resumes(self):
        n1 = self.one_node_with_data(writes=20)
        path = wal_segments(n1.data_dir)[-1]
        _, records = wal_records(path)
        end = records[-1][0] + WAL_RECORD_HEADER_BYTES + 1 + len(records[-1][2])
        with open(path, "r+b") as f:  # half a batch that a crash cut short: an entry record, no commit
            f.seek(end)
            f.write(b"\x40\x00\x00\x00\x12\x34\x56\x78\x01" + b"\xab" * 20)
        n1.start()
        self.wait_leader([n1])
        self.assertIn("cut off a torn last batch", n1.log())
        for i in range(20):
            self.assertEqual(n1.get(f"k{i}").json, {f"k{i}": f"v{i}"})

    def test_lmdb_data_dir_is_migrated(self):
        """A data dir from before the WAL (raft.mdb) is migrated once at start. Made by
        CKV_OLD_KVNODE, a kvnode built from a commit before the WAL, when it is set."""
        old = os.environ.get("CKV_OLD_KVNODE")
        if not old:
            self.skipTest("set CKV_OLD_KVNODE to a kvnode built before the WAL (unit test OpenLogTest covers this)")
        n1 = self.node("n1", "-bootstrap")
        new_args = n1.args
        n1.args = lambda: [old] + new_args()[1:]
        n1.start()
        self.wait_leader([n1])
        for i in range(30):
            self.write_with_retry([n1], f"k{i}", f"v{i}")
        n1.kill(signal.SIGTERM)
        self.assertTrue(os.path.exists(os.path.join(n1.data_dir, "raft.mdb")))
        n1.args = new_args
        n1.start()
        self.wait_leader([n1])
        self.assertIn("migrating it to the WAL", n1.log())
        for i in range(30):
            self.assertEqual(n1.get(f"k{i}").json, {f"k{i}": f"v{i}"})
        self.assertFalse(os.path.exists(os.path.join(n1.data_dir, "raft.mdb")))
        self.assertTrue(os.path.exists(os.path.join(n1.data_dir, "raft.mdb.pre-wal")))

    def test_missing_or_damaged_snapshot_is_refused(self):
        n1 = self.one_node_with_data("-snapshot-threshold=20", "-snapshot-trailing=5", writes=0)
        n1.start()
        self.wait_leader([n1])
        for i in range(80):
            self.write_with_retry([n1], f"k{i}", f"v{i}")
        wait_for(lambda: n1.status()["snapshotIndex"] >= 40, 20, "a snapshot past index 40")

        def settled():
            # One snapshot, finished (the node took it: its index is the status's), and no
            # next one due; else a snapshot being written at the kill leaves two files.
            st = n1.status()
            snaps = glob.glob(os.path.join(n1.data_dir, "snapshot-*.snap"))
            return (len(snaps) == 1 and not glob.glob(os.path.join(n1.data_dir, "*.tmp")) and
                    int(os.path.basename(snaps[0]).split("-")[1]) == st["snapshotIndex"] and
                    st["appliedIndex"] - st["snapshotIndex"] < 20)

        wait_for(settled, 20, "the last snapshot to finish")
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
# WAL segments smaller than one write: every big write starts a segment and
# so needs new space at once (a preallocated segment would absorb a few).
SMALL_SEGMENT_BYTES = 4096


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
        small = [f"-space-reserve-bytes={RESERVE_BYTES}", f"-wal-segment-bytes={SMALL_SEGMENT_BYTES}"]
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
        n1 = self.node("n1", "-bootstrap", "-space-reserve-bytes=0", "-commit-timeout-ms=2000",
                       f"-wal-segment-bytes={SMALL_SEGMENT_BYTES}")
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
