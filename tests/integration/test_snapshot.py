"""Integration: snapshots with a low -snapshot-threshold compact the log, and a new member catches up via InstallSnapshot."""

import glob
import os
import unittest

from kvcluster import ClusterTest, wait_for

SNAP_ARGS = ("-snapshot-threshold=50", "-snapshot-trailing=10")


class SnapshotTest(ClusterTest):
    def test_snapshot_and_install_snapshot_catch_up(self):
        n1 = self.node("n1", "-bootstrap", *SNAP_ARGS).start()
        self.wait_leader([n1])
        n2 = self.node("n2", f"-join={n1.api}", *SNAP_ARGS).start()
        self.wait_voters(n1, [n1, n2])
        for i in range(200):
            self.write_with_retry([n1, n2], f"s{i:03d}", f"value-{i}")

        def snapshots(n):
            return glob.glob(os.path.join(n.data_dir, "snapshot-*.snap"))

        for n in (n1, n2):
            wait_for(lambda: snapshots(n), 20, f"a snapshot file in {n.name}'s data dir")
            wait_for(lambda: n.status()["snapshotIndex"] > 100, 20, f"{n.name}'s snapshot index to pass 100")

        # n3 joins after the log was compacted past its start: it can only catch
        # up through InstallSnapshot (plus the trailing entries).
        n3 = self.node("n3", f"-join={n1.api}", *SNAP_ARGS).start()
        self.wait_voters(n1, [n1, n2, n3])
        commit = n1.status()["commitIndex"]
        wait_for(lambda: n3.status()["appliedIndex"] >= commit, 30, "n3 to apply everything")
        self.assertGreater(n3.status()["snapshotIndex"], 0, "n3 should have installed a snapshot")
        for i in range(0, 200, 7):
            r = n3.get(f"s{i:03d}", consistency="stale")
            self.assertEqual(r.json, {f"s{i:03d}": f"value-{i}"})

        # After a restart a node loads its snapshot and replays only the tail.
        n3.kill()
        n3.start()
        wait_for(lambda: n3.status()["appliedIndex"] >= commit and n3.status()["leader"] == n1.raft, 20,
                 "n3 to resume from snapshot + log and follow n1")
        self.assertEqual(n3.get("s199").json, {"s199": "value-199"})


if __name__ == "__main__":
    unittest.main()
