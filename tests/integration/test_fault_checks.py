"""Unit tests for fault_checks.py, the watch and lease checkers of the fault test (no cluster needed): each must fail on the fault it is for."""

import unittest

from fault_checks import (check_lease_kept, check_revoked_in_one_revision, check_truth, check_watcher,
                          event_from_json, in_range, replay)


def put(rev, key, value, version=1, create=None):
    return {"rev": rev, "type": "PUT", "key": key, "value": value, "version": version,
            "create": create if create is not None else rev}


def delete(rev, key):
    return {"rev": rev, "type": "DELETE", "key": key, "value": None, "version": 0, "create": 0}


# Revisions 2..7 of keys under "r": r1 created, updated, deleted; r2 created; r1 and r2 deleted at 7 (a revoke).
TRUTH = [put(2, "r1", "a"), put(3, "r1", "b", 2, 2), put(4, "r2", "x"), delete(5, "r1"), put(6, "r1", "c"),
         delete(7, "r1"), delete(7, "r2")]


def watcher(*sessions, key="r", range_end="s"):
    return {"name": "w", "key": key, "range_end": range_end,
            "sessions": [{"node": f"n{i}", "start": start, "responses": responses, "compact_revision": compact}
                         for i, (start, responses, compact) in enumerate(sessions)]}


class WatchCheckerTest(unittest.TestCase):
    def test_a_complete_history_over_reconnects_passes(self):
        w = watcher((2, [[TRUTH[0]], [TRUTH[1], TRUTH[2]]], 0), (5, [], 0), (5, [[TRUTH[3]], [TRUTH[4]]], 0),
                    (7, [[TRUTH[5], TRUTH[6]]], 0))
        self.assertEqual(check_watcher(w, TRUTH, through=7), [])

    def test_a_gap_fails(self):
        # Resumed at 5 but revision 4 (r2 created) was never delivered: the session started too late.
        w = watcher((2, [[TRUTH[0], TRUTH[1]]], 0), (5, [[TRUTH[3]], [TRUTH[4]], [TRUTH[5], TRUTH[6]]], 0))
        problems = check_watcher(w, TRUTH, through=7)
        self.assertTrue(any("gap: rev 4 PUT r2='x'" in p for p in problems), problems)
        self.assertTrue(any("started at revision 5, expected 4" in p for p in problems), problems)

    def test_a_silent_gap_inside_one_session_fails(self):
        w = watcher((2, [[TRUTH[0]], [TRUTH[1]], [TRUTH[3]], [TRUTH[4]], [TRUTH[5], TRUTH[6]]], 0))
        problems = check_watcher(w, TRUTH, through=7)
        self.assertEqual(len(problems), 1, problems)
        self.assertIn("gap: rev 4 PUT r2='x' (version 1, created 4) was never delivered (delivered around it: revisions 3 and 5)", problems[0])

    def test_a_duplicate_fails(self):
        # The second session resumed at the last revision seen instead of the one after it.
        w = watcher((2, [[TRUTH[0]], [TRUTH[1]]], 0), (3, [[TRUTH[1]], [TRUTH[2]]], 0))
        problems = check_watcher(w, TRUTH, through=4)
        self.assertTrue(any("duplicate event rev 3" in p for p in problems), problems)
        self.assertTrue(any("split across two responses or sent twice" in p for p in problems), problems)

    def test_a_revision_split_over_two_responses_fails(self):
        w = watcher((6, [[TRUTH[4]], [TRUTH[5]], [TRUTH[6]]], 0))
        problems = check_watcher(w, TRUTH, through=7)
        self.assertEqual(len(problems), 1, problems)
        self.assertIn("revision 7 split across two responses", problems[0])

    def test_revisions_going_back_fail(self):
        w = watcher((2, [[TRUTH[0]], [TRUTH[2]], [TRUTH[1]]], 0))
        self.assertTrue(any("after revision 4" in p for p in check_watcher(w, TRUTH, through=4)))

    def test_a_wrong_value_or_a_phantom_event_fails(self):
        wrong = dict(TRUTH[1], value="B")
        problems = check_watcher(watcher((2, [[TRUTH[0]], [wrong], [TRUTH[2]]], 0)), TRUTH, through=4)
        self.assertEqual(problems, ["w: delivered rev 3 PUT r1='B' (version 2, created 2), the history has "
                                    "rev 3 PUT r1='b' (version 2, created 2)"])
        phantom = put(3, "r9", "z")
        problems = check_watcher(watcher((2, [[TRUTH[0]], [TRUTH[1], phantom], [TRUTH[2]]], 0)), TRUTH, through=4)
        self.assertEqual(problems, ["w: rev 3 PUT r9='z' (version 1, created 3) is not in the store's history"])

    def test_a_watcher_that_stops_short_of_through_fails(self):
        w = watcher((2, [[TRUTH[0]], [TRUTH[1]]], 0))
        self.assertTrue(any("gap: rev 4" in p for p in check_watcher(w, TRUTH, through=7)))
        self.assertEqual(check_watcher(w, TRUTH), [])  # up to what it saw, it is complete

    def test_a_single_key_watcher_sees_only_its_key(self):
        w = watcher((2, [[TRUTH[2]], [TRUTH[6]]], 0), key="r2", range_end="")
        self.assertEqual(check_watcher(w, TRUTH, through=7), [])
        w = watcher((2, [[TRUTH[2]]], 0), key="r2", range_end="")
        self.assertTrue(any("gap: rev 7 DELETE r2" in p for p in check_watcher(w, TRUTH, through=7)))

    def test_a_compaction_cancel_excuses_only_the_compacted_span(self):
        w = watcher((2, [[TRUTH[0]]], 5), (5, [[TRUTH[3]], [TRUTH[4]], [TRUTH[5], TRUTH[6]]], 0))
        self.assertEqual(check_watcher(w, TRUTH, through=7), [])
        w = watcher((2, [[TRUTH[0]]], 5), (5, [[TRUTH[4]], [TRUTH[5], TRUTH[6]]], 0))
        self.assertTrue(any("gap: rev 5 DELETE r1" in p for p in check_watcher(w, TRUTH, through=7)))


class TruthTest(unittest.TestCase):
    def test_a_consistent_history_replays_to_the_final_state(self):
        self.assertEqual(check_truth(TRUTH, {}), [])
        self.assertEqual(replay(TRUTH, upto=4), {"r1": ("b", 2, 3, 2), "r2": ("x", 4, 4, 1)})

    def test_inconsistent_histories_fail(self):
        self.assertTrue(check_truth(TRUTH[:2], {"r1": ("b", 2, 3, 2), "r2": ("x", 4, 4, 1)}))  # not the final state
        self.assertTrue(check_truth([TRUTH[0], put(3, "r1", "b", 3, 2)], {"r1": ("b", 2, 3, 3)}))  # version skipped
        self.assertTrue(check_truth([delete(2, "r1")], {}))  # deletes an absent key
        self.assertTrue(check_truth([TRUTH[1], TRUTH[0]], {"r1": ("a", 2, 2, 1)}))  # goes back

    def test_revoked_keys_must_go_in_one_revision(self):
        self.assertEqual(check_revoked_in_one_revision(TRUTH, [["r1", "r2"]]), [])
        split = TRUTH[:6] + [delete(8, "r2")]
        self.assertEqual(len(check_revoked_in_one_revision(split, [["r1", "r2"]])), 1)
        self.assertEqual(len(check_revoked_in_one_revision(TRUTH[:5], [["r1", "r2"]])), 1)  # r2 never deleted

    def test_gateway_json_events(self):
        self.assertEqual(event_from_json({"kv": {"key": "cjE=", "value": "YQ==", "create_revision": "2",
                                                 "mod_revision": "3", "version": "2"}}), put(3, "r1", "a", 2, 2))
        self.assertEqual(event_from_json({"type": "DELETE", "kv": {"key": "cjE=", "mod_revision": "5"}}),
                         delete(5, "r1"))

    def test_ranges(self):
        self.assertTrue(in_range("r1", "r", "s"))
        self.assertFalse(in_range("s", "r", "s"))
        self.assertTrue(in_range("r1", "r1", ""))
        self.assertFalse(in_range("r10", "r1", ""))
        self.assertTrue(in_range("zz", "r", "\0"))


class LeaseCheckerTest(unittest.TestCase):
    RENEWALS = [{"gen": 1, "send": 10.0, "ret": 10.1, "ttl": 5}, {"gen": 1, "send": 11.0, "ret": 11.2, "ttl": 5}]

    def test_absent_inside_the_window_fails(self):
        reads = [{"gen": 1, "call": 15.0, "ret": 15.1, "present": False}]  # kept until 16.0 by the 11.0 renewal
        problems = check_lease_kept(self.RENEWALS, reads, [])
        self.assertEqual(len(problems), 1, problems)
        self.assertIn("renewal sent at 11.000", problems[0])

    def test_absent_after_the_window_or_overlapping_a_renewal_passes(self):
        reads = [{"gen": 1, "call": 16.0, "ret": 16.2, "present": False},  # after 11.0 + 5
                 {"gen": 1, "call": 11.1, "ret": 11.3, "present": False},  # the read may precede the 11.0 renewal
                 {"gen": 1, "call": 12.0, "ret": 12.1, "present": None}]  # timed out
        self.assertEqual(check_lease_kept(self.RENEWALS[1:], reads[:2], []), [])
        self.assertEqual(check_lease_kept(self.RENEWALS, reads[2:], []), [])
        # Another generation's renewals say nothing of this one.
        self.assertEqual(check_lease_kept(self.RENEWALS, [dict(reads[0], gen=2, call=12.0, ret=12.1)], []), [])

    def test_an_early_expiry_answer_fails(self):
        self.assertEqual(len(check_lease_kept(self.RENEWALS, [], [{"gen": 1, "send": 12.0, "ret": 12.2}])), 1)
        self.assertEqual(check_lease_kept(self.RENEWALS, [], [{"gen": 1, "send": 17.0, "ret": 17.2}]), [])


if __name__ == "__main__":
    unittest.main()
