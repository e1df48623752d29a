"""Linearizability checker (Wing & Gong search with Lowe's memoization, per key) for key-value histories from the fault tests."""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional

DEFAULT_MAX_STEPS = 5_000_000
# Budget of the second, slower search run only to explain a violation (see check_history).
DEFAULT_EXPLAIN_MAX_STEPS = 100_000
# A 2,000-op prefix would drown the CI log; the ops just before the violation are the useful ones.
DEFAULT_PREFIX_LINES = 40

# "cas" is a compare-and-set: it wrote `value` because the register held `expected` (a
# failed compare is recorded as the get of the value it saw).
FUNCTIONS = ("set", "delete", "get", "cas")
TYPES = ("ok", "fail", "info")


# ---------------------------------------------------------------------------
# Public result types


@dataclass(frozen=True)
class KeyFailure:
    """A key whose sub-history is definitely not linearizable."""

    key: str
    explanation: str


@dataclass
class CheckResult:
    failures: list[KeyFailure] = field(default_factory=list)
    unknown_keys: list[str] = field(default_factory=list)
    keys_checked: int = 0
    steps: int = 0

    @property
    def ok(self) -> bool:
        # A search cut short by the budget proves nothing, so it cannot count as a pass.
        return not self.failures and not self.unknown_keys

    @property
    def verdict(self) -> str:
        if self.failures:
            return "not linearizable"
        if self.unknown_keys:
            return "unknown"
        return "linearizable"

    def report(self) -> str:
        lines = [f"{self.verdict}: {self.keys_checked} key(s) checked, {self.steps} search steps"]
        if self.unknown_keys:
            lines.append("search budget exhausted (verdict unknown) on keys: "
                         + ", ".join(repr(k) for k in self.unknown_keys))
        lines.extend(failure.explanation for failure in self.failures)
        return "\n".join(lines)


# ---------------------------------------------------------------------------
# Formatting


def _format_value(value: Any) -> str:
    return "absent" if value is None else repr(value)


def _format_time(t: Optional[float], t0: float) -> str:
    return "?" if t is None else f"{t - t0:.6f}s"


def format_op(op: dict, t0: float = 0.0) -> str:
    """One history record on one line; times are printed relative to t0 (pass the history's first call)."""
    f = op.get("f")
    if f == "get":
        what = "get" if op.get("type") != "ok" else f"get -> {_format_value(op.get('value'))}"
    elif f == "set":
        what = f"set {op.get('value')!r}"
    elif f == "cas":
        what = f"cas {_format_value(op.get('expected'))} -> {op.get('value')!r}"
    else:
        what = str(f)
    ret = op.get("ret") if op.get("type") != "info" else None
    return (f"p{op.get('process')} {what} {op.get('type')} "
            f"[{_format_time(op.get('call'), t0)} .. {_format_time(ret, t0)}]")


def summarize(ops: list[dict]) -> str:
    """Counts per function and outcome, for the test log."""
    counts = Counter((op.get("f"), op.get("type")) for op in ops)
    keys = {op.get("key") for op in ops}
    processes = {op.get("process") for op in ops}
    lines = [f"history: {len(ops)} ops on {len(keys)} key(s) from {len(processes)} process id(s)"]
    for f in FUNCTIONS:
        per_type = " ".join(f"{t}={counts[(f, t)]}" for t in TYPES)
        lines.append(f"  {f:<6} total={sum(counts[(f, t)] for t in TYPES)} {per_type}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# Input normalisation


class _Op:
    """A record reduced to what the search needs; `record` is kept for explanations."""

    __slots__ = ("record", "f", "value", "expected", "call", "ret", "is_info", "effect")

    def __init__(self, record: dict):
        self.record = record
        self.f = record["f"]
        self.value = record.get("value")
        self.expected = record.get("expected")  # cas only: the value it required
        self.call = float(record["call"])
        self.is_info = record["type"] == "info"
        # Unknown-outcome writes have no deadline: they may take effect arbitrarily late.
        self.ret = float("inf") if self.is_info else float(record["ret"])
        self.effect = self.value if self.f in ("set", "cas") else None

    def reads(self) -> bool:
        """Whether the op constrains the register's value when it takes effect (a get, a cas's compare)."""
        return self.f in ("get", "cas")

    @property
    def read_value(self) -> Any:
        return self.value if self.f == "get" else self.expected


def _validate(record: dict) -> None:
    if record.get("f") not in FUNCTIONS:
        raise ValueError(f"unknown f in {record!r}")
    if record.get("type") not in TYPES:
        raise ValueError(f"unknown type in {record!r}")
    if record.get("call") is None:
        raise ValueError(f"missing call time in {record!r}")
    if record["f"] == "cas" and "expected" not in record:
        raise ValueError(f"cas without an expected value: {record!r}")
    if record["type"] == "ok":
        if record.get("ret") is None:
            raise ValueError(f"ok op without a return time: {record!r}")
        if record["ret"] < record["call"]:
            raise ValueError(f"op returns before it is called: {record!r}")


def _constraining_ops(records: list[dict]) -> tuple[list[_Op], list[_Op]]:
    """The ok ops (must be linearized) and the info writes (may be) of one key."""
    ok_ops = [_Op(r) for r in records if r["type"] == "ok"]
    # fail ops did not happen and info reads returned nothing, so neither constrains anything.
    info_writes = [_Op(r) for r in records if r["type"] == "info" and r["f"] != "get"]
    return ok_ops, info_writes


# ---------------------------------------------------------------------------
# Search


class _UnreadValue:
    """Stands for any register value that no remaining ok read returns.

    From such a state only a write can come next, whatever the value is, so configurations that
    differ only in which unread value the register holds are merged under this one marker.
    """

    def __repr__(self) -> str:
        return "<unread value>"


_UNREAD = _UnreadValue()
_ANY = object()  # an info group's expected value when it is not a cas

# Successor kinds.
_PLACE_OK, _APPLY_INFO, _ABSORB_BLIND = "ok", "info", "absorb"


@dataclass
class _InfoGroup:
    """Info writes with the same effect on the register.

    Same-effect writes are interchangeable once enabled, so the search only ever applies the
    earliest-called unapplied one: the applied members are always a prefix of `bits`. That keeps
    the info part of a configuration canonical and makes "applied fewer" mean "bitmask subset".
    """

    effect: Any
    # What a cas group requires the register to hold (_ANY for sets and deletes).
    expected: Any
    calls: list[float]
    bits: list[int]
    # Index (in call order) of the last ok get that reads `effect`: past it, applying the group is pointless.
    last_reader: int


def _is_linearized(base: int, window: int, index: int) -> bool:
    return index < base or (window >> (index - base)) & 1 == 1


def _normalize(base: int, window: int) -> tuple[int, int]:
    """Folds the leading run of linearized ops into base, so equal op sets get equal memo keys."""
    shift = (window ^ (window + 1)).bit_length() - 1
    return base + shift, window >> shift


class _Frame:
    """A search configuration plus the iterator over its untried successors.

    The set of linearized ok ops is stored as (base, window): every op with call-order index < base
    is linearized, and bit j of window says whether op base + j is. Only a few ops around the
    frontier are ever undecided, so memo keys stay small even for 2,000-op histories.
    """

    __slots__ = ("base", "window", "info_mask", "state", "ret_ptr", "remaining", "path", "successors")

    def __init__(self, base, window, info_mask, state, ret_ptr, remaining, path):
        self.base = base
        self.window = window
        self.info_mask = info_mask
        self.state = state
        self.ret_ptr = ret_ptr  # position in ret order of the unlinearized ok op that returns first
        self.remaining = remaining  # unlinearized ok ops that are not blind writes
        self.path = path  # (op, parent path) linked list: cheap to extend and to keep for the deepest frame
        self.successors: Optional[Iterator] = None

    def linearized_ok_count(self) -> int:
        return self.base + self.window.bit_count()

    def is_linearized(self, index: int) -> bool:
        return _is_linearized(self.base, self.window, index)


@dataclass
class _Outcome:
    status: str  # "linearizable" | "not linearizable" | "unknown"
    steps: int
    deepest: _Frame


class _KeySearch:
    """Wing & Gong search with Lowe's memoization over one key's ok ops and relevant info writes."""

    def __init__(self, ok_ops: list[_Op], info_writes: list[_Op], exempt_reads_from: float = float("inf")):
        self.ops = sorted(ok_ops, key=lambda op: (op.call, op.ret))
        self.n = len(self.ops)
        self.calls = [op.call for op in self.ops]
        self.rets = [op.ret for op in self.ops]
        self.ret_order = sorted(range(self.n), key=lambda i: self.rets[i])
        # A cas reads its expected value (it can only take effect on it) and writes its own.
        self.readers = self._indices_by_value(lambda op: op.reads(), lambda op: op.read_value)
        self.writers = self._indices_by_value(lambda op: op.f != "get", lambda op: op.effect)
        self.last_reader = {value: indices[-1] for value, indices in self.readers.items()}
        # Reads the orphan check protects; see _explain for why some are exempted.
        self.guarded_readers = {value: [i for i in indices if self.calls[i] < exempt_reads_from]
                                for value, indices in self.readers.items()}
        # A blind write's value is never read, so all that matters is that some write follows it.
        # Values an info cas compares against: read, in effect, if that cas applies. (Every info
        # cas counts: a superset only makes the search keep more states apart.)
        self.info_expected = {op.expected for op in info_writes if op.f == "cas"}
        # A cas is never blind: its compare constrains where it can go.
        self.blind = [op.f in ("set", "delete") and op.effect not in self.last_reader
                      and op.effect not in self.info_expected for op in self.ops]
        self.required = self.n - sum(self.blind)
        self.info_ops, self.groups = self._group_info_writes(info_writes)
        self.groups_of: dict[Any, list[_InfoGroup]] = defaultdict(list)
        for group in self.groups:
            self.groups_of[group.effect].append(group)
        self._alive_cache: dict[int, list[_InfoGroup]] = {}
        self._live_bits_cache: dict[int, int] = {}
        self._visited: dict[tuple, list[int]] = {}

    def _indices_by_value(self, wanted, value_of) -> dict[Any, list[int]]:
        """Call-order indices of the wanted ok ops, per value_of(op) (ascending)."""
        indices: dict[Any, list[int]] = defaultdict(list)
        for index, op in enumerate(self.ops):
            if wanted(op):
                indices[value_of(op)].append(index)
        return dict(indices)

    def _group_info_writes(self, info_writes: list[_Op]) -> tuple[list[_Op], list[_InfoGroup]]:
        by_effect: dict[tuple, list[_Op]] = defaultdict(list)
        for op in info_writes:
            # An info write whose value no ok read returned (nor an info cas compares against) can
            # never help explain a read.
            if op.effect in self.last_reader or op.effect in self.info_expected:
                by_effect[(op.effect, op.expected if op.f == "cas" else _ANY)].append(op)
        info_ops: list[_Op] = []
        groups = []
        for (effect, expected), members in by_effect.items():
            members.sort(key=lambda op: op.call)
            bits = []
            for op in members:
                bits.append(1 << len(info_ops))
                info_ops.append(op)
            # Needed by an info cas only: no deadline, like the cas itself.
            groups.append(_InfoGroup(effect, expected, [op.call for op in members], bits,
                                     self.n if effect in self.info_expected else self.last_reader[effect]))
        groups.sort(key=lambda g: g.calls[0])
        return info_ops, groups

    def _alive_groups(self, base: int) -> list[_InfoGroup]:
        """Groups that may be worth applying while op `base` is the first unlinearized one.

        The frontier never exceeds ret[base] (op base is unlinearized), so a group called later
        cannot be enabled yet.
        """
        groups = self._alive_cache.get(base)
        if groups is None:
            deadline = self.rets[base]
            groups = [g for g in self.groups if g.calls[0] <= deadline and g.last_reader >= base]
            self._alive_cache[base] = groups
        return groups

    def _live_info_bits(self, base: int) -> int:
        """Bits of the groups some read at or after `base` may still need."""
        bits = self._live_bits_cache.get(base)
        if bits is None:
            bits = 0
            for group in self.groups:
                if group.last_reader >= base:
                    for bit in group.bits:
                        bits |= bit
            self._live_bits_cache[base] = bits
        return bits

    def _first_unlinearized(self, indices: list[int], base: int, window: int) -> Optional[int]:
        for index in indices[bisect_left(indices, base):]:
            if not _is_linearized(base, window, index):
                return index
        return None

    def _orphaned(self, value: Any, base: int, window: int, info_mask: int) -> bool:
        """True if an unplaced ok read returns `value` but nothing left can write it again.

        Checked when `value` is overwritten: such a configuration is a dead end, but without this
        check the search would only find out when it reaches that read, possibly much later.
        """
        if self._first_unlinearized(self.guarded_readers.get(value, []), base, window) is None:
            return False
        if self._first_unlinearized(self.writers.get(value, []), base, window) is not None:
            return False
        # An unapplied cas group might not be applicable; counting it as a possible writer only prunes less.
        return all(info_mask & bit for group in self.groups_of.get(value, []) for bit in group.bits)

    def _frontier_at(self, ret_ptr: int) -> float:
        return self.rets[self.ret_order[ret_ptr]] if ret_ptr < self.n else float("inf")

    def frontier(self, frame: _Frame) -> float:
        return self._frontier_at(frame.ret_ptr)

    def _advance_ret_ptr(self, ret_ptr: int, base: int, window: int) -> int:
        while ret_ptr < self.n and _is_linearized(base, window, self.ret_order[ret_ptr]):
            ret_ptr += 1
        return ret_ptr

    def _canonical_state(self, state: Any, base: int) -> Any:
        # A value an info cas compares against stays concrete: that cas may still apply to it.
        if state is not _UNREAD and state not in self.info_expected and self.last_reader.get(state, -1) < base:
            return _UNREAD
        return state

    def _successors(self, frame: _Frame) -> Iterator[tuple]:
        """Yields (kind, op, ok index or info bit, new state); ok ops first so valid histories rarely backtrack."""
        frontier = self.frontier(frame)
        state = frame.state
        writes = []
        fitting_cas = []
        blind_enabled = False
        for index in range(frame.base, self.n):
            if self.calls[index] > frontier:
                break
            if frame.is_linearized(index):
                continue
            op = self.ops[index]
            if op.f == "get":
                if op.value == state:
                    # A read that fits now can be placed now without branching: any linearization that
                    # places it later still works with it moved here, since reads change nothing and
                    # placing an op earlier only relaxes the others' frontier.
                    yield _PLACE_OK, op, index, state
                    return
            elif op.f == "cas":
                if op.expected == state:  # never equal to _UNREAD: its expected value counts as read
                    fitting_cas.append(index)
            elif self.blind[index]:
                blind_enabled = True
            else:
                writes.append(index)
        # A cas that fits must be tried before blind writes are absorbed: after a blind write the
        # register holds a value nobody reads, which no cas expects, so none could follow it.
        for index in fitting_cas:
            yield _PLACE_OK, self.ops[index], index, self.ops[index].effect
        if blind_enabled:
            # No read fits, so a write comes next; blind writes can always go just before it (earlier
            # only relaxes the frontier, and the next write hides their value), so do that for all of
            # them at once instead of branching on every subset.
            yield _ABSORB_BLIND, None, 0, _UNREAD
            return
        for index in writes:
            yield _PLACE_OK, self.ops[index], index, self.ops[index].effect
        for group in self._alive_groups(frame.base):
            # Applying a write that leaves the register unchanged only yields a dominated configuration.
            if group.effect == state:
                continue
            if group.expected is not _ANY and group.expected != state:
                continue  # a cas applies only to the value it compared
            member = self._next_unapplied(group, frame.info_mask)
            if member is not None and group.calls[member] <= frontier:
                bit = group.bits[member]
                yield _APPLY_INFO, self.info_ops[bit.bit_length() - 1], bit, group.effect

    @staticmethod
    def _next_unapplied(group: _InfoGroup, info_mask: int) -> Optional[int]:
        for member, bit in enumerate(group.bits):
            if not info_mask & bit:
                return member
        return None

    def _absorb_blind_writes(self, frame: _Frame) -> tuple[int, int, int, Any]:
        """Places every enabled blind write, including those enabled by placing the others."""
        base, window, ret_ptr, path = frame.base, frame.window, frame.ret_ptr, frame.path
        while True:
            frontier = self._frontier_at(ret_ptr)
            placed = False
            for index in range(base, self.n):
                if self.calls[index] > frontier:
                    break
                if self.blind[index] and not _is_linearized(base, window, index):
                    window |= 1 << (index - base)
                    path = (self.ops[index], path)
                    placed = True
            if not placed:
                return base, window, ret_ptr, path
            base, window = _normalize(base, window)
            ret_ptr = self._advance_ret_ptr(ret_ptr, base, window)

    def _dominated(self, base: int, window: int, state: Any, info_mask: int) -> bool:
        """Lowe's memo, extended: a configuration is also covered by a visited one that applied a subset of its info writes.

        Unapplied info writes have no deadline, so having applied fewer of them never removes an option.
        """
        key = (base, window, state)
        seen = self._visited.get(key)
        if seen is None:
            self._visited[key] = [info_mask]
            return False
        for mask in seen:
            if mask & info_mask == mask:
                return True
        seen.append(info_mask)
        return False

    def _child(self, frame: _Frame, kind: str, op: Optional[_Op], ref: int, state: Any) -> Optional[_Frame]:
        base, window, info_mask, ret_ptr = frame.base, frame.window, frame.info_mask, frame.ret_ptr
        remaining, path = frame.remaining, frame.path
        if kind == _ABSORB_BLIND:
            base, window, ret_ptr, path = self._absorb_blind_writes(frame)
        elif kind == _PLACE_OK:
            window |= 1 << (ref - base)
            remaining -= 1
            path = (op, path)
        else:
            info_mask |= ref
            path = (op, path)
        base, window = _normalize(base, window)
        state = self._canonical_state(state, base)
        if state != frame.state and frame.state is not _UNREAD:
            if self._orphaned(frame.state, base, window, info_mask):
                return None
        # Whether a group nobody will read again was applied cannot matter any more; forgetting it
        # lets configurations that differ only in such history share one memo entry.
        info_mask &= self._live_info_bits(base)
        if self._dominated(base, window, state, info_mask):
            return None
        ret_ptr = self._advance_ret_ptr(ret_ptr, base, window)
        return _Frame(base, window, info_mask, state, ret_ptr, remaining, path)

    def run(self, max_steps: int) -> _Outcome:
        root = _Frame(0, 0, 0, self._canonical_state(None, 0), 0, self.required, None)
        self._dominated(root.base, root.window, root.state, root.info_mask)
        if root.remaining == 0:
            # Only blind writes: they can always be placed last, in return order.
            return _Outcome("linearizable", 0, root)
        root.successors = self._successors(root)
        deepest, steps = root, 0
        stack = [root]  # explicit stack: per-key histories are far deeper than Python's recursion limit
        while stack:
            frame = stack[-1]
            successor = next(frame.successors, None)
            if successor is None:
                stack.pop()
                continue
            child = self._child(frame, *successor)
            if child is None:
                continue
            steps += 1
            if child.remaining == 0:
                # Blind writes left over go last, in return order: each is then enabled.
                return _Outcome("linearizable", steps, child)
            if child.linearized_ok_count() > deepest.linearized_ok_count():
                deepest = child
            if steps >= max_steps:
                return _Outcome("unknown", steps, deepest)
            child.successors = self._successors(child)
            stack.append(child)
        return _Outcome("not linearizable", steps, deepest)


# ---------------------------------------------------------------------------
# Explanations


def _path_ops(path) -> list[_Op]:
    ops = []
    while path is not None:
        op, path = path
        ops.append(op)
    ops.reverse()
    return ops


def _replay(prefix: list[_Op]) -> Any:
    """The actual register value after the prefix (the search itself may only know it is unread)."""
    state = None
    for op in prefix:
        state = state if op.f == "get" else op.effect
    return state


def _prefix_lines(prefix: list[_Op], t0: float, limit: int) -> list[str]:
    lines = []
    state = None
    start = max(0, len(prefix) - limit)
    for position, op in enumerate(prefix):
        state = state if op.f == "get" else op.effect
        if position >= start:
            note = "  (outcome unknown; assumed to take effect here)" if op.is_info else ""
            lines.append(f"    {position + 1:>5}. {format_op(op.record, t0)}  => register {_format_value(state)}{note}")
    if start:
        lines.insert(0, f"    ... {start} earlier op(s) omitted ...")
    return lines


def _writers_of(value: Any, records: list[dict], t0: float) -> str:
    if value is None:
        return ""
    writers = [r for r in records if r["f"] in ("set", "cas") and r.get("value") == value]
    if not writers:
        return f"; no set on this key ever wrote {value!r}"
    return f"; {value!r} was written by " + ", ".join(format_op(r, t0) for r in writers)


def _blocked_reason(op: _Op, state: Any, blind: bool, records: list[dict], t0: float) -> str:
    if op.f == "get" and op.value != state:
        return (f"reads {_format_value(op.value)} but the register holds {_format_value(state)}"
                + _writers_of(op.value, records, t0))
    if op.f == "cas" and op.expected != state:
        return (f"compares against {_format_value(op.expected)} but the register holds {_format_value(state)}"
                + _writers_of(op.expected, records, t0))
    if blind:
        return "no read returned its value, so it needs another write to follow it, and none can"
    return ("could be placed here, but every continuation after it dead-ends"
            " (e.g. it would hide a value that a later read returns)")


def _truncated(records: list[dict], cutoff: float) -> list[dict]:
    """The history as if observation stopped at `cutoff`.

    Reads called later are dropped and ok writes called later become info writes, so a
    linearizable history stays linearizable however early it is cut: checkability is monotone in
    the cutoff, which is what lets _first_violating_call bisect on it.
    """
    kept = []
    for record in records:
        if record["call"] <= cutoff:
            kept.append(record)
        elif record["f"] != "get" and record["type"] != "fail":
            kept.append(dict(record, type="info"))
    return kept


def _first_violating_call(records: list[dict], max_steps: int) -> float:
    """The earliest call time at which cutting the history already makes it non-linearizable."""
    calls = sorted({r["call"] for r in records if r["type"] == "ok"})
    low, high = 0, len(calls) - 1  # cutting at calls[high] is known to fail: it keeps every ok op
    while low < high:
        middle = (low + high) // 2
        outcome = _KeySearch(*_constraining_ops(_truncated(records, calls[middle]))).run(max_steps)
        # An inconclusive probe counts as failing: the cut only gets earlier, which costs speed, not correctness.
        if outcome.status == "linearizable":
            low = middle + 1
        else:
            high = middle
    return calls[low]


def _explain(key: str, records: list[dict], t0: float, verdict_steps: int, prefix_limit: int,
             explain_max_steps: int) -> str:
    """Finds the op that introduces the violation, then a long linearizable prefix leading up to it.

    The verdict search prunes a write as soon as it hides a value some later read needs, which is
    fast but can stop thousands of ops before the read that is actually wrong. Re-searching with
    the reads from the culprit on exempted from that pruning reaches the culprit instead, while
    the pruning still keeps the search over the valid part small.
    """
    culprit_call = _first_violating_call(records, explain_max_steps)
    search = _KeySearch(*_constraining_ops(records), exempt_reads_from=culprit_call)
    outcome = search.run(explain_max_steps)
    if outcome.status == "linearizable":
        raise AssertionError(f"linearizability checker is inconsistent on key {key!r}; please report this history")
    prefix = _path_ops(outcome.deepest.path)
    culprits = [r for r in records if r["type"] == "ok" and r["call"] == culprit_call]
    lines = [
        f"key {key!r} is not linearizable ({search.n} ok ops, {len(search.info_ops)} relevant info writes, "
        f"{verdict_steps} search steps; times are relative to the first op in the history)",
        "  violation starts at (the ops called earlier are linearizable by themselves): "
        + "; ".join(format_op(r, t0) for r in culprits),
    ]
    if outcome.status == "unknown":
        lines.append(f"  (the prefix search stopped after {outcome.steps} steps; a longer prefix may exist)")
    lines.append(f"  longest linearizable prefix: {outcome.deepest.linearized_ok_count()} of {search.n} ok ops"
                 f" (+{sum(op.is_info for op in prefix)} info write(s) assumed to take effect),"
                 f" in linearization order:")
    lines.extend(_prefix_lines(prefix, t0, prefix_limit) or ["    (empty: not even the first op can be placed)"])
    lines.extend(_blocked_lines(search, outcome.deepest, _replay(prefix), records, t0))
    return "\n".join(lines)


def _blocked_lines(search: _KeySearch, deepest: _Frame, state: Any, records: list[dict], t0: float) -> list[str]:
    """The register after the prefix and why each ok op that could go next does not fit."""
    frontier = search.frontier(deepest)
    lines = [
        f"  register after the prefix: {_format_value(state)}",
        f"  ok ops eligible to go next (called no later than {_format_time(frontier, t0)}, the earliest "
        f"return among unplaced ok ops); none can be placed:",
    ]
    for index in range(deepest.base, search.n):
        if search.calls[index] > frontier:
            break
        if not deepest.is_linearized(index):
            op = search.ops[index]
            reason = _blocked_reason(op, state, search.blind[index], records, t0)
            lines.append(f"    {format_op(op.record, t0)}: {reason}")
    return lines


# ---------------------------------------------------------------------------
# Entry point


def check_history(ops: list[dict], max_steps: int = DEFAULT_MAX_STEPS, prefix_limit: int = DEFAULT_PREFIX_LINES,
                  explain_max_steps: int = DEFAULT_EXPLAIN_MAX_STEPS) -> CheckResult:
    """Checks every key independently: a history is linearizable iff each key's sub-history is (P-compositionality).

    max_steps bounds the verdict search per key (exceeded: the key is "unknown"). A key found not
    linearizable is searched a second time, bounded by explain_max_steps, only to build its
    explanation; that bound never changes a verdict.
    """
    for record in ops:
        _validate(record)
    result = CheckResult()
    if not ops:
        return result
    t0 = min(r["call"] for r in ops)
    by_key: dict[str, list[dict]] = defaultdict(list)
    for record in ops:
        by_key[record["key"]].append(record)
    for key in sorted(by_key, key=str):
        records = by_key[key]
        outcome = _KeySearch(*_constraining_ops(records)).run(max_steps)
        result.keys_checked += 1
        result.steps += outcome.steps
        if outcome.status == "unknown":
            result.unknown_keys.append(key)
        elif outcome.status == "not linearizable":
            explanation = _explain(key, records, t0, outcome.steps, prefix_limit, explain_max_steps)
            result.failures.append(KeyFailure(key, explanation))
    return result
