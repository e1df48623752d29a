"""Checkers for the fault test's watch and lease workloads (pure functions over recorded histories; stdlib only)."""

import base64

# --- events and key ranges -----------------------------------------------------


def b64(s):
    return base64.b64encode(s.encode()).decode()


def b64d(s):
    return base64.b64decode(s).decode()


def prefix_end(prefix):
    """etcd's GetPrefixRangeEnd for an ASCII prefix: the range [prefix, prefix_end) is every key under it."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def in_range(key, start, end):
    """etcd's range rule: no end is the key alone, "\\0" every key from start on, else [start, end)."""
    if not end:
        return key == start
    if end == "\0":
        return key >= start
    return start <= key < end


def event_from_json(e):
    """One mvccpb.Event of the gateway's JSON (zero fields omitted, 64-bit numbers as strings) as a dict."""
    kv = e.get("kv", {})
    kind = e.get("type", "PUT")
    return {"rev": int(kv.get("mod_revision", 0)), "type": kind, "key": b64d(kv.get("key", "")),
            "value": b64d(kv.get("value", "")) if kind == "PUT" else None,
            "version": int(kv.get("version", 0)), "create": int(kv.get("create_revision", 0))}


def fmt(e):
    if e["type"] == "PUT":
        return f"rev {e['rev']} PUT {e['key']}={e['value']!r} (version {e['version']}, created {e['create']})"
    return f"rev {e['rev']} DELETE {e['key']}"


# --- the ground truth ----------------------------------------------------------


def replay(events, start_state=None, upto=None):
    """The key -> (value, create_revision, mod_revision, version) map after `events` (those at or
    below `upto` when given), starting from start_state."""
    state = dict(start_state or {})
    for e in events:
        if upto is not None and e["rev"] > upto:
            break
        if e["type"] == "PUT":
            state[e["key"]] = (e["value"], e["create"], e["rev"], e["version"])
        else:
            state.pop(e["key"], None)
    return state


def check_truth(events, final_state, start_state=None):
    """Problems with a history of events that claims to be a store's: revisions never go back,
    each put's version and create revision follow from the key's previous put (MVCC's rules),
    deletes only delete present keys, and replaying it gives final_state (a linearizable range)."""
    problems = []
    state = dict(start_state or {})
    last_rev = 0
    for e in events:
        if e["rev"] < last_rev:
            problems.append(f"revision goes back: {fmt(e)} after revision {last_rev}")
        last_rev = max(last_rev, e["rev"])
        prev = state.get(e["key"])
        if e["type"] == "PUT":
            want = (prev[3] + 1, prev[1]) if prev else (1, e["rev"])
            if (e["version"], e["create"]) != want:
                problems.append(f"{fmt(e)}: expected version {want[0]}, created {want[1]}")
            state[e["key"]] = (e["value"], e["create"], e["rev"], e["version"])
        elif prev is None:
            problems.append(f"{fmt(e)}: the key was absent")
        else:
            del state[e["key"]]
    for key in sorted(set(state) | set(final_state)):
        if state.get(key) != final_state.get(key):
            problems.append(f"{key}: the history ends with {state.get(key)}, the store holds {final_state.get(key)}")
    return problems


def check_revoked_in_one_revision(events, revoked):
    """revoked: lists of keys, each the keys of one revoked lease. Every key of a lease must end with
    a delete, and a lease's deletes must all be at one revision (revoke deletes in one revision)."""
    problems = []
    last = {}
    for e in events:
        last[e["key"]] = e
    for keys in revoked:
        ends = {k: last.get(k) for k in keys}
        if any(e is None or e["type"] != "DELETE" for e in ends.values()):
            problems.append(f"keys of a revoked lease that do not end deleted: "
                            f"{ {k: fmt(e) if e else None for k, e in ends.items()} }")
            continue
        revs = {e["rev"] for e in ends.values()}
        if len(revs) != 1:
            problems.append(f"a revoked lease's keys were deleted at several revisions: "
                            f"{ {k: e['rev'] for k, e in ends.items()} }")
    return problems


# --- one watcher's history against the truth ----------------------------------


def check_watcher(watcher, truth_events, truth_from=1, through=None):
    """Problems in what one watcher received, across all its sessions (one per connection).

    watcher: {"name", "key", "range_end", "sessions": [{"node", "start", "responses": [[event, ...], ...],
    "compact_revision"}]}: each session asked to start at "start" (the first one's start is where
    the watcher's promise begins); "responses" hold the events of each response, in arrival order;
    a session cancelled for compaction names its compact_revision, where the next one resumes.
    truth_events: every event of the store, in order, from revision truth_from on.
    through: the watcher must have seen every event of its range up to this revision (None: up
    to the last revision it saw).

    Checked: revisions strictly increase from one response to the next (so all events of a revision
    came together and none came twice), each session resumes at the revision after the last one seen,
    and the events between the first start and the end equal the truth's events of the range: no
    gap, no extra event, same values, versions and create revisions."""
    name = watcher["name"]
    problems = []
    sessions = watcher["sessions"]
    if not sessions:
        return [f"{name}: never connected"]
    first_start = sessions[0]["start"]
    resume = first_start
    last_max = None  # the highest revision of the responses so far
    seen = []
    excused = []  # [lo, hi] revision spans a compaction cancel let go
    keys_at = {}
    for s in sessions:
        if s["start"] != resume:
            problems.append(f"{name}: session on {s['node']} started at revision {s['start']}, expected {resume} "
                            f"(last revision seen + 1)")
        for resp in s["responses"]:
            if not resp:
                continue
            revs = [e["rev"] for e in resp]
            if revs != sorted(revs):
                problems.append(f"{name}: a response from {s['node']} is out of revision order: {revs}")
            if last_max is not None and revs[0] <= last_max:
                what = ("split across two responses or sent twice" if revs[0] == last_max
                        else f"after revision {last_max}")
                problems.append(f"{name}: {fmt(resp[0])} from {s['node']}: revision {revs[0]} {what}")
            for e in resp:
                k = (e["rev"], e["key"])
                if k in keys_at:
                    problems.append(f"{name}: duplicate event {fmt(e)} (first from {keys_at[k]}, again from "
                                    f"{s['node']})")
                keys_at.setdefault(k, s["node"])
            seen.extend(resp)
            last_max = max(revs) if last_max is None else max(last_max, max(revs))
            resume = last_max + 1
        if s.get("compact_revision"):
            if s["compact_revision"] > resume:
                excused.append((resume, s["compact_revision"] - 1))
            resume = max(resume, s["compact_revision"])
    end = through if through is not None else (last_max or first_start - 1)
    lo = max(first_start, truth_from)

    def checked(e):
        return lo <= e["rev"] <= end and not any(a <= e["rev"] <= b for a, b in excused)

    want = [e for e in truth_events
            if checked(e) and in_range(e["key"], watcher["key"], watcher.get("range_end", ""))]
    got = [e for e in seen if e["rev"] >= lo]
    want_by = {(e["rev"], e["key"]): e for e in want}
    got_by = {(e["rev"], e["key"]): e for e in got}
    for k in sorted(set(want_by) - set(got_by)):
        before = max((r for r, _ in got_by if r < k[0]), default=None)
        after = min((r for r, _ in got_by if r > k[0]), default=None)
        problems.append(f"{name}: gap: {fmt(want_by[k])} was never delivered (delivered around it: "
                        f"revisions {before} and {after})")
    for k in sorted(set(got_by) - set(want_by)):
        if k[0] <= end:
            problems.append(f"{name}: {fmt(got_by[k])} is not in the store's history")
    for k in sorted(set(got_by) & set(want_by)):
        if got_by[k] != want_by[k]:
            problems.append(f"{name}: delivered {fmt(got_by[k])}, the history has {fmt(want_by[k])}")
    return problems


# --- leases kept alive ---------------------------------------------------------


def check_lease_kept(renewals, reads, expiries):
    """Problems with one client's leases kept alive under faults.

    renewals: {"gen", "send", "ret", "ttl"}: answers proving lease `gen` alive with `ttl` seconds
    (the grant, and each keepalive answered with TTL > 0). Such an answer was given on the
    leader's arrival a in [send, ret] and sets the deadline to at least a + ttl >= send + ttl
    (a new leader only extends), so the lease must live through [ret, send + ttl).
    reads: {"gen", "call", "ret", "present"}: linearizable reads of the lease's key, made after
    the key was attached. expiries: {"gen", "send", "ret"}: keepalives answered TTL 0.
    A read that says absent, or a keepalive that says expired, wholly inside such a window is a
    lease that died early."""
    problems = []

    def window_covering(gen, call, ret):
        best = None
        for r in renewals:
            if r["gen"] == gen and r["ret"] <= call and ret < r["send"] + r["ttl"]:
                if best is None or r["send"] > best["send"]:
                    best = r
        return best

    for rd in reads:
        if rd["present"] is False:
            w = window_covering(rd["gen"], rd["call"], rd["ret"])
            if w is not None:
                problems.append(f"lease generation {rd['gen']}: its key was absent in a read at "
                                f"[{rd['call']:.3f}, {rd['ret']:.3f}] though a renewal sent at {w['send']:.3f} "
                                f"(answered {w['ret']:.3f}, TTL {w['ttl']} s) keeps it until {w['send'] + w['ttl']:.3f}")
    for x in expiries:
        w = window_covering(x["gen"], x["send"], x["ret"])
        if w is not None:
            problems.append(f"lease generation {x['gen']}: a keepalive at [{x['send']:.3f}, {x['ret']:.3f}] answered "
                            f"TTL 0 though a renewal sent at {w['send']:.3f} (TTL {w['ttl']} s) keeps it until "
                            f"{w['send'] + w['ttl']:.3f}")
    return problems
