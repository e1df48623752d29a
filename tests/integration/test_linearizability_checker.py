"""Unit tests for linearizability.py, the key-value history checker used by the fault tests (no cluster needed)."""

import itertools
import random
import sys
import time
import unittest

import linearizability
from linearizability import check_history, format_op, summarize


class History:
    """Builds records in the checker's input format with little noise in each test."""

    def __init__(self):
        self.ops = []

    def add(self, process, f, value, type_, call, ret, key="k"):
        self.ops.append({"process": process, "key": key, "f": f, "value": value,
                         "type": type_, "call": call, "ret": ret})
        return self

    def set(self, process, value, call, ret, type_="ok", key="k"):
        return self.add(process, "set", value, type_, call, None if type_ == "info" else ret, key)

    def delete(self, process, call, ret, type_="ok", key="k"):
        return self.add(process, "delete", None, type_, call, None if type_ == "info" else ret, key)

    def get(self, process, value, call, ret, type_="ok", key="k"):
        return self.add(process, "get", value, type_, call, ret, key)

    def cas(self, process, expected, value, call, ret, type_="ok", key="k"):
        self.add(process, "cas", value, type_, call, None if type_ == "info" else ret, key)
        self.ops[-1]["expected"] = expected
        return self


def simulate_register(n_ops, n_processes, info_write_fraction, seed):
    """A history from a simulated linearizable register.

    Each op gets a linearization point inside its [call, ret] window (or, for info writes, any
    time after the call, or never); applying ops in linearization-point order gives the reads.
    Returns the records and, per record index, its linearization point (None if it never happened).
    """
    rng = random.Random(seed)
    free_at = [rng.uniform(0, 0.005) for _ in range(n_processes)]
    process_ids = list(range(n_processes))
    next_process_id = n_processes
    records, points = [], []
    for n in range(n_ops):
        slot = min(range(n_processes), key=lambda i: free_at[i])
        call = free_at[slot]
        ret = call + rng.uniform(0.0005, 0.02)
        roll = rng.random()
        f = "get" if roll < 0.5 else "set" if roll < 0.9 else "delete"
        type_ = "ok"
        if f != "get" and rng.random() < info_write_fraction * 2:  # half the ops are writes
            type_ = "info"
        elif f == "set" and rng.random() < 0.02:
            type_ = "fail"
        value = f"v{n}" if f == "set" else None
        if type_ == "ok":
            point = rng.uniform(call, ret)
        elif type_ == "fail":
            point = None
        else:
            # An unknown outcome: applied at some point after the call, possibly long after, or never.
            point = call + rng.uniform(0, 0.3) if rng.random() < 0.7 else None
        records.append({"process": process_ids[slot], "key": "k", "f": f, "value": value, "type": type_,
                        "call": call, "ret": None if type_ == "info" else ret})
        points.append(point)
        if type_ == "info":
            # Like Jepsen, a client whose op timed out continues as a new process.
            process_ids[slot] = next_process_id
            next_process_id += 1
            ret = call + 0.05
        free_at[slot] = ret + rng.uniform(0, 0.002)
    register = None
    for index in sorted((i for i, p in enumerate(points) if p is not None), key=lambda i: points[i]):
        record = records[index]
        if record["f"] == "get":
            record["value"] = register
        else:
            register = record["value"] if record["f"] == "set" else None
    return records


def definitely_stale_read(records):
    """Index of an ok get, and a value it cannot have read, chosen by construction.

    A set s of value v, then an ok write w called after s returned, then the get called after w
    returned: v was overwritten before the get began, and set values are unique, so reading v is
    impossible. Searches outward from the middle so the checker has a long valid prefix to explore.
    """
    ok_writes = [r for r in records if r["type"] == "ok" and r["f"] != "get"]
    middle = len(records) // 2
    for offset in range(len(records)):
        for index in (middle + offset, middle - offset):
            if not 0 <= index < len(records):
                continue
            get = records[index]
            if get["f"] != "get" or get["type"] != "ok":
                continue
            done_before = [w for w in ok_writes if w["ret"] < get["call"]]
            if not done_before:
                continue
            overwrite = max(done_before, key=lambda w: w["call"])
            for s in ok_writes:
                if s["f"] == "set" and s["ret"] < overwrite["call"] and s["value"] != get["value"]:
                    return index, s["value"]
    raise AssertionError("no definitely stale read could be constructed")


def brute_force_linearizable(ops):
    """Reference verdict by trying every order of every subset of info writes; only for tiny histories."""
    ok = [o for o in ops if o["type"] == "ok"]
    info = [o for o in ops if o["type"] == "info" and o["f"] != "get"]

    def deadline(o):
        return float("inf") if o["type"] == "info" else o["ret"]

    def respects_real_time(order):
        return all(deadline(later) >= earlier["call"]
                   for i, earlier in enumerate(order) for later in order[i + 1:])

    def explains_reads(order):
        register = None
        for o in order:
            if o["f"] == "get" and o["value"] != register:
                return False
            if o["f"] == "cas" and o["expected"] != register:
                return False
            if o["f"] != "get":
                register = o["value"] if o["f"] in ("set", "cas") else None
        return True

    for size in range(len(info) + 1):
        for applied in itertools.combinations(info, size):
            for order in itertools.permutations(ok + list(applied)):
                if respects_real_time(order) and explains_reads(order):
                    return True
    return False


def random_tiny_history(rng, unique_values):
    ops = []
    for process in range(rng.randint(1, 6)):
        call = rng.randint(0, 10)
        f = rng.choice(["set", "set", "get", "get", "delete", "cas"])
        type_ = rng.choice(["ok"] * 5 + ["info", "fail"])
        values = [f"u{p}" for p in range(6)] if unique_values else ["a", "b", "c"]
        if f == "get":
            value = rng.choice(values + [None])
        elif f in ("set", "cas"):
            value = f"u{process}" if unique_values else rng.choice(values)
        else:
            value = None
        ops.append({"process": process, "key": "k", "f": f, "value": value, "type": type_,
                    "call": call, "ret": None if type_ == "info" else call + rng.randint(0, 4)})
        if f == "cas":
            ops[-1]["expected"] = rng.choice(values)
    return ops


class CheckerTestCase(unittest.TestCase):
    def assertLinearizable(self, ops, **kwargs):
        result = check_history(ops, **kwargs)
        self.assertEqual(result.failures, [], "\n".join(f.explanation for f in result.failures))
        self.assertEqual(result.unknown_keys, [])
        self.assertTrue(result.ok)
        self.assertEqual(result.verdict, "linearizable")
        return result

    def assertNotLinearizable(self, ops, keys=("k",), **kwargs):
        result = check_history(ops, **kwargs)
        self.assertFalse(result.ok)
        self.assertEqual(result.verdict, "not linearizable")
        self.assertEqual([f.key for f in result.failures], list(keys))
        return result


class BasicHistoriesTest(CheckerTestCase):
    def test_empty_history_is_linearizable(self):
        self.assertLinearizable([])

    def test_sequential_valid_history(self):
        h = (History().get(1, None, 0, 1).set(1, "a", 2, 3).get(2, "a", 4, 5)
             .set(2, "b", 6, 7).get(1, "b", 8, 9).delete(1, 10, 11).get(2, None, 12, 13))
        self.assertLinearizable(h.ops)

    def test_concurrent_set_and_get_either_order(self):
        # The get overlaps the set, so it may observe the register before or after it.
        for seen in (None, "a"):
            with self.subTest(seen=seen):
                h = History().set(1, "a", 0, 10).get(2, seen, 1, 5)
                self.assertLinearizable(h.ops)

    def test_concurrent_sets_either_order(self):
        for winner in ("a", "b"):
            with self.subTest(winner=winner):
                h = History().set(1, "a", 0, 10).set(2, "b", 1, 9).get(3, winner, 11, 12)
                self.assertLinearizable(h.ops)

    def test_stale_read_after_completed_write_fails(self):
        h = History().set(1, "a", 0, 1).set(1, "b", 2, 3).get(2, "a", 4, 5)
        self.assertNotLinearizable(h.ops)

    def test_read_of_value_never_written_fails(self):
        h = History().set(1, "a", 0, 1).get(2, "zzz", 2, 3)
        result = self.assertNotLinearizable(h.ops)
        self.assertIn("no set on this key ever wrote 'zzz'", result.failures[0].explanation)

    def test_read_after_later_completed_overwrite_fails(self):
        # The get overlaps nothing: "b" replaced "a" before the get was even called.
        h = History().set(1, "a", 0, 1).get(2, "a", 1.5, 1.8).set(1, "b", 2, 3).get(2, "a", 4, 5)
        self.assertNotLinearizable(h.ops)

    def test_read_your_writes_across_nodes(self):
        # Set "new" acknowledged by one node; a later read through another node returns "old".
        h = History().set(1, "old", 0, 1).set(1, "new", 2, 3).get(2, "old", 3.5, 4)
        self.assertNotLinearizable(h.ops)

    def test_reads_disagreeing_on_order_of_concurrent_writes_fail(self):
        h = (History().set(1, "v1", 0, 10).set(2, "v2", 0, 10)
             .get(3, "v1", 11, 12).get(3, "v2", 13, 14).get(3, "v1", 15, 16))
        self.assertNotLinearizable(h.ops)

    def test_reads_agreeing_on_order_of_concurrent_writes_pass(self):
        h = (History().set(1, "v1", 0, 10).set(2, "v2", 0, 10)
             .get(3, "v1", 1, 2).get(3, "v2", 11, 12).get(4, "v2", 13, 14))
        self.assertLinearizable(h.ops)

    def test_repeated_values_are_still_checked_correctly(self):
        # The fault test keeps set values unique, but the verdict must not depend on it.
        valid = History().set(1, "x", 0, 1).set(1, "y", 2, 3).set(1, "x", 4, 5).get(2, "x", 6, 7)
        self.assertLinearizable(valid.ops)
        invalid = History().set(1, "x", 0, 1).set(1, "y", 2, 3).set(1, "x", 4, 5).get(2, "y", 6, 7)
        self.assertNotLinearizable(invalid.ops)


class AbsentReadsTest(CheckerTestCase):
    def test_absent_read_after_set_without_delete_fails(self):
        h = History().set(1, "a", 0, 1).get(2, None, 2, 3)
        self.assertNotLinearizable(h.ops)

    def test_absent_read_passes_with_concurrent_delete(self):
        h = History().set(1, "a", 0, 1).delete(3, 1.5, 4).get(2, None, 2, 3)
        self.assertLinearizable(h.ops)

    def test_absent_read_passes_with_info_delete(self):
        h = History().set(1, "a", 0, 1).delete(3, 1.5, None, type_="info").get(2, None, 2, 3)
        self.assertLinearizable(h.ops)

    def test_absent_read_fails_when_info_delete_was_invoked_after_the_read(self):
        h = History().set(1, "a", 0, 1).get(2, None, 2, 3).delete(3, 4, None, type_="info")
        self.assertNotLinearizable(h.ops)

    def test_failed_delete_does_not_excuse_absent_read(self):
        h = History().set(1, "a", 0, 1).delete(3, 1.5, 4, type_="fail").get(2, None, 2, 3)
        self.assertNotLinearizable(h.ops)


class IndeterminateAndFailedOpsTest(CheckerTestCase):
    def test_info_set_that_later_becomes_visible_passes(self):
        # The client timed out, yet the write was applied long after: allowed, info has no deadline.
        h = History().set(1, "a", 0, None, type_="info").get(2, None, 1, 2).get(2, "a", 50, 51)
        self.assertLinearizable(h.ops)

    def test_info_set_never_visible_passes(self):
        h = History().set(1, "a", 0, None, type_="info").get(2, None, 1, 2).get(2, None, 50, 51)
        self.assertLinearizable(h.ops)

    def test_info_set_read_before_it_was_invoked_fails(self):
        h = History().get(2, "a", 0, 1).set(1, "a", 2, None, type_="info")
        self.assertNotLinearizable(h.ops)

    def test_info_set_cannot_take_effect_twice(self):
        h = (History().set(1, "a", 0, None, type_="info").get(2, "a", 1, 2).set(2, "b", 3, 4)
             .get(2, "a", 5, 6))
        self.assertNotLinearizable(h.ops)

    def test_info_reads_are_ignored(self):
        h = History().set(1, "a", 0, 1).get(2, "nonsense", 2, None, type_="info").get(2, "a", 3, 4)
        self.assertLinearizable(h.ops)

    def test_read_of_failed_set_value_fails(self):
        h = History().set(1, "a", 0, 1).set(1, "b", 2, 3, type_="fail").get(2, "b", 4, 5)
        result = self.assertNotLinearizable(h.ops)
        self.assertIn("'b' was written by p1 set 'b' fail", result.failures[0].explanation)

    def test_failed_set_not_read_passes(self):
        h = History().set(1, "a", 0, 1).set(1, "b", 2, 3, type_="fail").get(2, "a", 4, 5)
        self.assertLinearizable(h.ops)


class CompareAndSetTest(CheckerTestCase):
    def test_cas_on_the_value_it_saw_passes(self):
        self.assertLinearizable(History().set(1, "a", 0, 1).cas(2, "a", "b", 2, 3).get(3, "b", 4, 5).ops)

    def test_cas_on_a_value_the_register_never_held_fails(self):
        self.assertNotLinearizable(History().set(1, "a", 0, 1).cas(2, "x", "b", 2, 3).ops)

    def test_two_cas_from_the_same_value_cannot_both_win(self):
        self.assertNotLinearizable(History().set(1, "a", 0, 1).cas(2, "a", "b", 2, 5).cas(3, "a", "c", 2, 5).ops)

    def test_chained_concurrent_cas_pass_in_one_order(self):
        self.assertLinearizable(History().set(1, "a", 0, 1).cas(2, "b", "c", 2, 5).cas(3, "a", "b", 2, 5)
                                .get(4, "c", 6, 7).ops)

    def test_cas_goes_before_a_concurrent_blind_write(self):
        # set z is never read (a blind write); only "cas, then set z" explains both acknowledgements.
        self.assertLinearizable(History().set(1, "a", 0, 1).set(2, "z", 2, 5).cas(3, "a", "b", 2, 5).ops)

    def test_cas_after_an_overwrite_of_its_expected_value_fails(self):
        self.assertNotLinearizable(History().set(1, "a", 0, 1).set(2, "z", 2, 3).cas(3, "a", "b", 4, 5).ops)

    def test_info_cas_explains_a_read_only_where_its_compare_held(self):
        self.assertLinearizable(History().set(1, "a", 0, 1).cas(2, "a", "b", 2, None, "info")
                                .get(3, "b", 4, 5).ops)
        self.assertNotLinearizable(History().set(1, "a", 0, 1).cas(2, "x", "b", 2, None, "info")
                                   .get(3, "b", 4, 5).ops)

    def test_format_op_shows_the_compare(self):
        op = History().cas(4, "a", "b", 1.0, 1.5).ops[0]
        self.assertEqual(format_op(op, t0=1.0), "p4 cas 'a' -> 'b' ok [0.000000s .. 0.500000s]")


class IndependentKeysTest(CheckerTestCase):
    def test_violation_reported_for_its_key_only(self):
        h = (History().set(1, "a", 0, 1, key="good").get(2, "a", 2, 3, key="good")
             .set(1, "x", 0, 1, key="bad").set(1, "y", 2, 3, key="bad").get(2, "x", 4, 5, key="bad")
             .set(3, "p", 0, 1, key="also-good").delete(3, 2, 3, key="also-good").get(3, None, 4, 5, key="also-good"))
        result = self.assertNotLinearizable(h.ops, keys=("bad",))
        self.assertEqual(result.keys_checked, 3)
        self.assertEqual(result.unknown_keys, [])

    def test_values_do_not_leak_between_keys(self):
        h = History().set(1, "a", 0, 1, key="k1").get(2, "a", 2, 3, key="k2")
        self.assertNotLinearizable(h.ops, keys=("k2",))


class ExplanationAndFormattingTest(CheckerTestCase):
    def test_explanation_shows_prefix_and_blocked_op_with_relative_times(self):
        h = History().set(1, "a", 100, 101).set(1, "b", 102, 103).get(2, "a", 104, 105)
        explanation = self.assertNotLinearizable(h.ops).failures[0].explanation
        print("\n--- sample explanation ---\n" + explanation)
        self.assertIn("key 'k'", explanation)
        self.assertIn("violation starts at (the ops called earlier are linearizable by themselves): "
                      "p2 get -> 'a' ok [4.000000s .. 5.000000s]", explanation)
        self.assertIn("2 of 3 ok ops", explanation)
        self.assertIn("1. p1 set 'a' ok [0.000000s .. 1.000000s]  => register 'a'", explanation)
        self.assertIn("2. p1 set 'b' ok [2.000000s .. 3.000000s]  => register 'b'", explanation)
        self.assertIn("p2 get -> 'a' ok [4.000000s .. 5.000000s]: reads 'a' but the register holds 'b'", explanation)

    def test_long_prefix_is_truncated(self):
        h = History()
        for i in range(100):
            h.set(1, f"v{i}", 2 * i, 2 * i + 1)
        h.get(2, "v0", 500, 501)
        explanation = check_history(h.ops, prefix_limit=5).failures[0].explanation
        self.assertIn("95 earlier op(s) omitted", explanation)
        self.assertIn("100. p1 set 'v99'", explanation)

    def test_format_op(self):
        self.assertEqual(format_op({"process": 3, "key": "k", "f": "get", "value": None, "type": "ok",
                                    "call": 1.5, "ret": 2.0}, t0=1.0),
                         "p3 get -> absent ok [0.500000s .. 1.000000s]")
        self.assertEqual(format_op({"process": 1, "key": "k", "f": "set", "value": "v", "type": "info",
                                    "call": 1.0, "ret": 9.0}),
                         "p1 set 'v' info [1.000000s .. ?]")

    def test_summarize_counts_per_function_and_type(self):
        h = History().set(1, "a", 0, 1).set(1, "b", 2, None, type_="info").get(2, "a", 3, 4).delete(2, 5, 6, type_="fail")
        text = summarize(h.ops)
        self.assertIn("4 ops on 1 key(s)", text)
        self.assertIn("set    total=2 ok=1 fail=0 info=1", text)
        self.assertIn("get    total=1 ok=1 fail=0 info=0", text)
        self.assertIn("delete total=1 ok=0 fail=1 info=0", text)

    def test_malformed_records_are_rejected(self):
        with self.assertRaises(ValueError):
            check_history(History().set(1, "a", 0, None).ops)  # ok op without ret
        with self.assertRaises(ValueError):
            check_history(History().add(1, "cas", "a", "ok", 0, 1).ops)


class AgainstBruteForceTest(CheckerTestCase):
    """The search prunes and reorders aggressively; every shortcut must agree with plain enumeration."""

    def test_random_tiny_histories_agree_with_brute_force(self):
        rng = random.Random(7)
        verdicts = {True: 0, False: 0}
        for trial in range(1500):
            ops = random_tiny_history(rng, unique_values=trial % 2 == 0)
            expected = brute_force_linearizable(ops)
            verdicts[expected] += 1
            with self.subTest(trial=trial):
                self.assertEqual(check_history(ops).ok, expected, ops)
        self.assertGreater(min(verdicts.values()), 300, "both verdicts should be exercised")


class LargeHistoriesTest(CheckerTestCase):
    N_OPS = 2000

    def setUp(self):
        self.ops = simulate_register(self.N_OPS, n_processes=5, info_write_fraction=0.05, seed=20240611)
        info_writes = sum(1 for r in self.ops if r["type"] == "info" and r["f"] != "get")
        self.assertGreater(info_writes, 40, "the simulation should produce ~5% info writes")

    def test_random_valid_history_is_linearizable_quickly(self):
        self.assertGreater(self.N_OPS, sys.getrecursionlimit(), "must not depend on recursion")
        start = time.monotonic()
        result = self.assertLinearizable(self.ops)
        elapsed = time.monotonic() - start
        print(f"\n{summarize(self.ops)}\nvalid {self.N_OPS}-op history checked in {elapsed:.3f} s "
              f"({result.steps} search steps)")
        self.assertLess(elapsed, 10.0)

    def test_many_seeds_are_linearizable(self):
        for seed in range(20):
            with self.subTest(seed=seed):
                self.assertLinearizable(simulate_register(300, 5, 0.05, seed))

    def test_stale_read_in_large_history_is_caught(self):
        index, stale_value = definitely_stale_read(self.ops)
        self.ops[index] = dict(self.ops[index], value=stale_value)
        start = time.monotonic()
        result = self.assertNotLinearizable(self.ops)
        elapsed = time.monotonic() - start
        print(f"\nstale read at op {index} caught in {elapsed:.3f} s ({result.steps} search steps)")
        explanation = result.failures[0].explanation
        culprit = format_op(self.ops[index], t0=min(r["call"] for r in self.ops))
        self.assertIn(f"violation starts at (the ops called earlier are linearizable by themselves): {culprit}",
                      explanation)
        # The prefix must lead up to the stale read itself, not stop where its value was overwritten.
        self.assertIn(f"{culprit}: reads {stale_value!r} but the register holds", explanation)
        self.assertLess(elapsed, 10.0)

    def test_budget_exhaustion_is_unknown_not_pass_or_failure(self):
        result = check_history(self.ops, max_steps=100)
        self.assertFalse(result.ok)
        self.assertEqual(result.verdict, "unknown")
        self.assertEqual(result.unknown_keys, ["k"])
        self.assertEqual(result.failures, [])
        self.assertIn("budget", result.report())


if __name__ == "__main__":
    unittest.main()
