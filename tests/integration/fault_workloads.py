"""The fault test's watch and lease clients: gateway watchers that resume on another member, a lease kept alive through any member, leases revoked with their keys, and the credentials every client sends once auth is on (stdlib only)."""

import base64
import http.client
import json
import random
import socket
import threading
import time

from fault_checks import b64, b64d, event_from_json

# A watch stream that brings nothing for this long is given up and resumed elsewhere: its member
# may be paused or cut off from the leader (writes go on all the time while the faults run).
WATCH_IDLE_S = 3.0
# A watcher also moves to another member on its own after a session of this many seconds (drawn
# per session), as a client behind a load balancer does: every move is a resume to check.
WATCH_SESSION_S = (1.0, 8.0)
# The kept-alive lease: TTL above the election timeout (and kvnode's minimum), renewed every
# KEEPALIVE_INTERVAL_S, each keepalive given KEEPALIVE_TIMEOUT_S before the next member is tried.
LEASE_TTL_S = 5
KEEPALIVE_INTERVAL_S = 1.0
KEEPALIVE_TIMEOUT_S = 1.5
READ_TIMEOUT_S = 2.0
LEASE_POLL_S = 0.2
# Leases whose keys are revoked: long enough never to expire during a run.
REVOKED_LEASE_TTL_S = 600
REVOKE_KEYS = ("a", "b", "c")
REVOKE_GAP_S = 1.0
RETRY_PAUSE_S = 0.05
# Gateway statuses that mean "not done, or outcome unknown: retry" (grpc-gateway's mapping of
# Unavailable, DeadlineExceeded, ResourceExhausted; 507 a member with a full disk).
RETRYABLE_STATUSES = (503, 504, 429, 507)


def http_call(address, method, path, body, timeout, headers=None):
    """One request (headers: extra ones, e.g. Authorization). Returns ("refused", err) when nothing
    was sent, ("lost", err) when it was sent but no answer came, or ("reply", status, body_bytes)."""
    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        try:
            conn.connect()
        except OSError as e:
            return ("refused", e)
        try:
            headers = ({"Content-Type": "application/json"} if body is not None else {}) | (headers or {})
            conn.request(method, path, body=body, headers=headers)
            r = conn.getresponse()
            return ("reply", r.status, r.read())
        except (OSError, http.client.HTTPException) as e:
            return ("lost", e)
    finally:
        conn.close()


# Refusals that fresh credentials fix, as etcd's clients treat them: a token this member does not know
# (expired after -auth-token-ttl unused there, forgotten by a restart or a snapshot install), and no
# user at all (a member that had not applied 'auth enable' yet passed the request on without one).
# Each is refused before or at apply: nothing was done.
AUTH_RETRY_ERRORS = ("etcdserver: invalid auth token", "etcdserver: user name is empty")
# Attempts to get a token before a client gives up on it for one operation.
AUTHENTICATE_TIMEOUT_S = 3.0


class Credentials:
    """What one client sends once auth is on: HTTP Basic on the seed API (basic=True) or a token from
    /v3/auth/authenticate, which the gateway always takes. A refused token is dropped and a new one
    fetched through any live member. Thread-safe; every token handed out is kept, so the test can
    check that none reached a log."""

    def __init__(self, test, user, password, basic=False):
        self.test = test
        self.user = user
        self.password = password
        self.basic = basic
        self.lock = threading.Lock()
        self.token = None
        self.issued = []
        self.refusals = 0  # operations refused for their credentials (recorded failed)
        self.rng = random.Random(f"credentials-{user}-{id(self)}")

    def seed_headers(self):
        """Authorization for the seed API (/set, /get, /delete, /join, /remove)."""
        if self.basic:
            pair = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            return {"Authorization": "Basic " + pair}
        token = self.current_token()
        return {"Authorization": "Bearer " + token} if token else {}

    def gateway_headers(self):
        """Authorization for etcd's gateway (/v3/...): the token itself, as etcd's is sent."""
        token = self.current_token()
        return {"Authorization": token} if token else {}

    def current_token(self):
        with self.lock:
            if self.token is not None:
                return self.token
        deadline = time.monotonic() + AUTHENTICATE_TIMEOUT_S
        body = json.dumps({"name": self.user, "password": self.password})
        while time.monotonic() < deadline:
            live = [n for n in self.test.members() if n.alive()]
            if not live:
                break
            r = http_call(self.rng.choice(live).api, "POST", "/v3/auth/authenticate", body, READ_TIMEOUT_S)
            if r[0] == "reply" and r[1] == 200:
                token = json.loads(r[2])["token"]
                with self.lock:
                    self.token = token
                    self.issued.append(token)
                return token
            if r[0] == "reply" and r[1] not in RETRYABLE_STATUSES:
                self.test.history.flag(f"authenticate {self.user}: {r[1]} {r[2][:200]!r}")
                break
            time.sleep(RETRY_PAUSE_S)
        return None  # sent without one: refused as "user name is empty", recorded failed

    def refused(self, result):
        """Whether `result` (http_call's) is a refusal that fresh credentials fix; if so the token is
        dropped (the next call authenticates again). Anything else auth refuses is the caller's to flag."""
        if result[0] != "reply" or result[1] not in (400, 401, 409):
            return False
        try:
            answer = json.loads(result[2])
        except ValueError:
            return False
        return self.refused_because(answer.get("message") or answer.get("error") or "")

    def refused_because(self, message):
        """As refused(), for the refusal's text (a watch's cancel_reason names it inside gRPC's words)."""
        if not any(e in message for e in AUTH_RETRY_ERRORS):
            return False
        with self.lock:
            self.token = None
            self.refusals += 1
        return True


def auth_headers(credentials, seed_api=False):
    """The headers of one call with credentials (None: auth is off)."""
    if credentials is None:
        return {}
    return credentials.seed_headers() if seed_api else credentials.gateway_headers()


class Workload:
    """Shared plumbing: the test (members(), history.flag, log_event), a seeded rng, a stop event."""

    def __init__(self, test, seed, credentials=None):
        self.test = test
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.thread = None
        self.credentials = credentials  # Credentials once auth is on

    def start(self, target):
        def run():
            try:
                target()
            except Exception as e:  # reported by the test; the other clients go on
                self.test.history.flag(f"{type(self).__name__} crashed: {e!r}")
                raise
        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def pick(self, avoid=None):
        live = [n for n in self.test.members() if n.alive()]
        others = [n for n in live if n is not avoid]
        return self.rng.choice(others or live or self.test.members())

    def post(self, path, body, timeout, avoid=None):
        """(node, outcome) of one POST of JSON to a random live member's gateway."""
        node = self.pick(avoid)
        return node, http_call(node.api, "POST", path, json.dumps(body), timeout, auth_headers(self.credentials))

    def auth_refused(self, r):
        """A refusal fresh credentials fix (Credentials.refused): nothing was done, retry."""
        return self.credentials is not None and self.credentials.refused(r)

    def call_until_answered(self, path, body, timeout, what, accept=(200,)):
        """Retries through random members until an answer with a status in `accept`; returns
        (status, parsed body) or None once stopped. Any other non-retryable answer is flagged."""
        node = None
        while not self.stop.is_set():
            node, r = self.post(path, body, timeout, avoid=node)
            if r[0] == "reply" and r[1] in accept:
                return r[1], json.loads(r[2])
            if self.auth_refused(r):
                continue
            if r[0] == "reply" and r[1] not in RETRYABLE_STATUSES:
                self.test.history.flag(f"{node.name}: {what}: {r[1]} {r[2][:200]!r}")
                return None
            time.sleep(RETRY_PAUSE_S)
        return None


class Watcher(Workload):
    """One watch over the gateway's streaming POST /v3/watch. On an error, a cancel, the end of
    the stream or WATCH_IDLE_S of silence it reconnects to another member and resumes from the
    last revision seen + 1 (from the compact revision after a compaction cancel), as etcd's
    clients do. Every session is recorded for fault_checks.check_watcher."""

    def __init__(self, test, seed, name, key, range_end, start_revision, credentials=None):
        super().__init__(test, seed, credentials)
        self.name = name
        self.key = key
        self.range_end = range_end
        self.resume = start_revision
        self.lock = threading.Lock()
        self.sessions = []
        self.sock = None

    def record(self):
        with self.lock:
            return {"name": self.name, "key": self.key, "range_end": self.range_end,
                    "sessions": [dict(s, responses=list(s["responses"])) for s in self.sessions]}

    def last_revision(self):
        with self.lock:
            return self.resume - 1

    def run(self):
        node = None
        while not self.stop.is_set():
            node = self.pick(avoid=node)
            with self.lock:
                session = {"node": node.name, "start": self.resume, "responses": [], "compact_revision": 0,
                           "end": None}
                self.sessions.append(session)
            end = self.session(node, session)
            session["end"] = end
            if end == "refused":
                time.sleep(RETRY_PAUSE_S)

    def session(self, node, session):
        host, port = node.api.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=WATCH_IDLE_S)
        create = {"key": b64(self.key), "start_revision": str(session["start"])}
        if self.range_end:
            create["range_end"] = b64(self.range_end)
        try:
            try:
                conn.connect()
            except OSError:
                return "refused"
            with self.lock:
                self.sock = conn.sock
            if self.stop.is_set():
                return "stopped"
            conn.request("POST", "/v3/watch", json.dumps({"create_request": create}),
                         {"Content-Type": "application/json"} | auth_headers(self.credentials))
            resp = conn.getresponse()
            if resp.status != 200:
                body = resp.read()
                if self.auth_refused(("reply", resp.status, body)):
                    return f"HTTP {resp.status}: refused for its credentials"
                if resp.status not in RETRYABLE_STATUSES:
                    self.test.history.flag(f"{node.name}: /v3/watch answered {resp.status} {body[:200]!r}")
                return f"HTTP {resp.status}"
            rotate_at = time.monotonic() + self.rng.uniform(*WATCH_SESSION_S)
            while not self.stop.is_set():
                if time.monotonic() > rotate_at:
                    return "moved"
                line = resp.readline()
                if not line:
                    return "closed"
                msg = json.loads(line)
                if "result" not in msg:
                    return f"error {msg}"
                r = msg["result"]
                events = [event_from_json(e) for e in r.get("events", [])]
                with self.lock:
                    if events:
                        session["responses"].append(events)
                        self.resume = max(self.resume, max(e["rev"] for e in events) + 1)
                    if r.get("canceled") and r.get("watch_id") == "-1" and self.credentials is not None:
                        # Refused by auth (etcd answers created + canceled): new credentials, resume.
                        reason = r.get("cancel_reason", "")
                        if not self.credentials.refused_because(reason):
                            self.test.history.flag(f"{node.name}: watch {self.name} refused: {reason}")
                        return f"refused: {reason}"
                    if r.get("canceled"):
                        compact = int(r.get("compact_revision", 0))
                        session["compact_revision"] = compact
                        self.resume = max(self.resume, compact)
                        return f"canceled: {r.get('cancel_reason', '')}"
            return "stopped"
        except socket.timeout:
            return "idle"
        except (OSError, http.client.HTTPException, ValueError) as e:
            return f"lost: {e!r}"
        finally:
            with self.lock:
                self.sock = None
            conn.close()

    def finish(self):
        """Stops the watcher; shutdown() ends a blocked read at once."""
        self.stop.set()
        with self.lock:
            sock = self.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.thread.join(timeout=WATCH_IDLE_S + 10)


def truth_watch(node, key, range_end, start_revision, timeout, headers=None):
    """Every event of [key, range_end) from start_revision up to the member's current revision, by a
    watch with a progress request behind it (answered once the watcher has caught up: docs/api.md).
    Returns (events, revision the progress answer names, compact revision or 0)."""
    host, port = node.api.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    create = {"key": b64(key), "range_end": b64(range_end), "start_revision": str(start_revision)}
    body = json.dumps({"create_request": create}) + json.dumps({"progress_request": {}})
    try:
        conn.request("POST", "/v3/watch", body, {"Content-Type": "application/json"} | (headers or {}))
        resp = conn.getresponse()
        if resp.status != 200:
            raise AssertionError(f"truth watch on {node.name}: {resp.status} {resp.read()[:200]!r}")
        events = []
        while True:
            line = resp.readline()
            if not line:
                raise AssertionError(f"truth watch on {node.name}: the stream ended")
            r = json.loads(line)["result"]
            if r.get("canceled") and r.get("watch_id") == "-1":
                raise AssertionError(f"truth watch on {node.name}: refused: {r.get('cancel_reason')}")
            if r.get("canceled"):
                return events, 0, int(r.get("compact_revision", 0))
            events.extend(event_from_json(e) for e in r.get("events", []))
            if r.get("watch_id") == "-1" or (not r.get("created") and not r.get("events")):
                return events, int(r["header"]["revision"]), 0
    finally:
        conn.close()


def range_state(node, key, range_end, revision=0, serializable=False, timeout=READ_TIMEOUT_S * 3, headers=None):
    """(key -> (value, create, mod, version), header revision) of a range through the gateway."""
    body = {"key": b64(key), "range_end": b64(range_end)}
    if revision:
        body["revision"] = str(revision)
    if serializable:
        body["serializable"] = True
    r = http_call(node.api, "POST", "/v3/kv/range", json.dumps(body), timeout, headers)
    if r[0] != "reply" or r[1] != 200:
        raise AssertionError(f"range on {node.name}: {r}")
    answer = json.loads(r[2])
    state = {b64d(kv["key"]): (b64d(kv.get("value", "")), int(kv.get("create_revision", 0)),
                               int(kv.get("mod_revision", 0)), int(kv.get("version", 0)))
             for kv in answer.get("kvs", [])}
    return state, int(answer["header"]["revision"])


class LeaseKeeper(Workload):
    """Grants a lease (LEASE_TTL_S), attaches a key to it, and keeps it alive through random
    members (POST /v3/lease/keepalive, the next member on any error) until stopped. A lease that
    the cluster lets expire (the keepalive says TTL 0) starts a new generation: a new lease and key.
    A second thread reads the current generation's key with linearizable reads all the time.
    Records what fault_checks.check_lease_kept needs."""

    def __init__(self, test, seed, prefix, credentials=None):
        super().__init__(test, seed, credentials)
        self.prefix = prefix
        self.lock = threading.Lock()
        self.gen = 0
        self.key = None  # the current generation's key, once attached
        self.renewals = []
        self.reads = []
        self.expiries = []
        self.grants = 0
        self.granted = []  # every lease id granted, attached or not (an attach may commit unanswered)
        self.stop_reads = threading.Event()
        self.reader = None

    def begin(self):
        self.start(self.run)
        self.reader = threading.Thread(target=self.read_loop, daemon=True)
        self.reader.start()

    def run(self):
        while not self.stop.is_set():
            lease = self.grant_and_attach()
            if lease is None:
                return
            self.keep_alive(*lease)

    def grant_and_attach(self):
        """A new generation: a lease and a key attached to it; (gen, lease id, ttl), None once stopped."""
        while not self.stop.is_set():
            with self.lock:
                self.gen += 1
                gen = self.gen
                self.key = None
            send = time.monotonic()
            got = self.call_until_answered("/v3/lease/grant", {"TTL": LEASE_TTL_S}, KEEPALIVE_TIMEOUT_S,
                                           "lease grant")
            if got is None:
                return None
            lease_id, ttl = got[1]["ID"], int(got[1]["TTL"])
            with self.lock:
                self.grants += 1
                self.granted.append(str(lease_id))
                self.renewals.append({"gen": gen, "send": send, "ret": time.monotonic(), "ttl": ttl})
            key = f"{self.prefix}{gen}"
            put = {"key": b64(key), "value": b64(f"gen-{gen}"), "lease": lease_id}
            got = self.call_until_answered("/v3/kv/put", put, KEEPALIVE_TIMEOUT_S * 2, "put with a lease",
                                           accept=(200, 404))
            if got is None:
                return None
            if got[0] == 404:  # the lease expired before the key could be attached (a long outage)
                continue
            with self.lock:
                self.key = (gen, key)
            return gen, lease_id, ttl
        return None

    def keep_alive(self, gen, lease_id, ttl):
        """Renews every KEEPALIVE_INTERVAL_S until stopped or the lease is reported expired."""
        node = None
        next_at = time.monotonic() + KEEPALIVE_INTERVAL_S
        while not self.stop.wait(max(0.0, next_at - time.monotonic())):
            send = time.monotonic()
            node, r = self.post("/v3/lease/keepalive", {"ID": lease_id}, KEEPALIVE_TIMEOUT_S, avoid=node)
            ret = time.monotonic()
            if r[0] != "reply" or r[1] != 200:
                if r[0] == "reply" and r[1] not in RETRYABLE_STATUSES and not self.auth_refused(r):
                    self.test.history.flag(f"{node.name}: keepalive answered {r[1]} {r[2][:200]!r}")
                next_at = ret + RETRY_PAUSE_S  # the next member at once
                continue
            left = int(json.loads(r[2])["result"].get("TTL", 0))
            with self.lock:
                if left <= 0:
                    self.expiries.append({"gen": gen, "send": send, "ret": ret, "node": node.name})
                    self.test.log_event(f"lease generation {gen} reported expired by {node.name}")
                    return
                self.renewals.append({"gen": gen, "send": send, "ret": ret, "ttl": ttl})
            next_at = send + KEEPALIVE_INTERVAL_S

    def read_loop(self):
        node = None
        while not self.stop_reads.wait(LEASE_POLL_S):
            with self.lock:
                current = self.key
            if current is None:
                continue
            gen, key = current
            node = self.pick(avoid=node)
            call = time.monotonic()
            r = http_call(node.api, "GET", "/get?key=" + key, None, READ_TIMEOUT_S,
                          auth_headers(self.credentials, seed_api=True))
            ret = time.monotonic()
            present = None  # no answer, or an error: says nothing
            if r[0] == "reply" and r[1] in (200, 404):
                present = r[1] == 200
            elif r[0] == "reply" and r[1] not in (503, 504, 421) and not self.auth_refused(r):
                self.test.history.flag(f"{node.name}: GET {key} answered {r[1]} {r[2][:200]!r}")
            with self.lock:
                self.reads.append({"gen": gen, "call": call, "ret": ret, "present": present, "node": node.name})

    def last_renewal(self):
        with self.lock:
            return max((r for r in self.renewals if self.key and r["gen"] == self.key[0]),
                       key=lambda r: r["send"], default=None)

    def seen_absent_between(self, t, until):
        """Whether a read called in [t, until] found the current key absent (one called later
        would not show that it went by `until`)."""
        with self.lock:
            gen = self.key[0] if self.key else None
            return any(rd["gen"] == gen and t <= rd["call"] <= until and rd["present"] is False for rd in self.reads)

    def leases_left(self, node, headers=None):
        """The granted leases `node` still lists (LeaseLeases), or None without an answer."""
        r = http_call(node.api, "POST", "/v3/lease/leases", "{}", READ_TIMEOUT_S, headers)
        if r[0] == "reply" and r[1] == 401:
            raise AssertionError(f"leases on {node.name}: {r}")  # the caller's credentials: its to fix
        if r[0] != "reply" or r[1] != 200:
            return None
        listed = {str(lease["ID"]) for lease in json.loads(r[2]).get("leases", [])}
        with self.lock:
            return [lease for lease in self.granted if lease in listed]

    def finish(self):
        self.stop.set()
        self.stop_reads.set()
        self.thread.join(timeout=30)
        self.reader.join(timeout=30)


class Revoker(Workload):
    """Over and over: grants a lease, attaches REVOKE_KEYS under prefix/<n>/ to it, revokes it
    through a random member (retrying until answered), then checks with a linearizable range that
    none of its keys is left. Records each revoked lease's keys."""

    def __init__(self, test, seed, prefix, credentials=None):
        super().__init__(test, seed, credentials)
        self.prefix = prefix
        self.revoked = []  # lists of keys
        self.left_behind = []  # problems: keys still there after their revoke was acknowledged

    def run(self):
        n = 0
        while not self.stop.wait(REVOKE_GAP_S):
            n += 1
            got = self.call_until_answered("/v3/lease/grant", {"TTL": REVOKED_LEASE_TTL_S}, READ_TIMEOUT_S,
                                           "lease grant")
            if got is None:
                return
            lease_id = got[1]["ID"]
            keys = [f"{self.prefix}{n}/{k}" for k in REVOKE_KEYS]
            for key in keys:
                put = {"key": b64(key), "value": b64(f"{n}{key}"), "lease": lease_id}
                if self.call_until_answered("/v3/kv/put", put, READ_TIMEOUT_S, "put with a lease") is None:
                    return
            if not self.revoke(lease_id):
                return
            self.revoked.append(keys)
            got = self.call_until_answered("/v3/kv/range", {"key": b64(f"{self.prefix}{n}/"),
                                                            "range_end": b64(f"{self.prefix}{n}0"),
                                                            "count_only": True}, READ_TIMEOUT_S, "range")
            if got is not None and int(got[1].get("count", 0)) != 0:
                self.left_behind.append(f"{got[1].get('count')} keys of revoked lease {lease_id} ({keys}) "
                                        f"still there after the revoke was acknowledged")

    def revoke(self, lease_id):
        """True once a revoke was acknowledged; "not found" after a lost attempt counts (it went through)."""
        node = None
        tried = False
        while not self.stop.is_set():
            node, r = self.post("/v3/lease/revoke", {"ID": lease_id}, READ_TIMEOUT_S, avoid=node)
            if r[0] == "reply" and (r[1] == 200 or (r[1] == 404 and tried)):
                return True
            if self.auth_refused(r):
                continue  # refused before or at apply: this attempt did nothing
            if r[0] == "reply" and r[1] not in RETRYABLE_STATUSES:
                self.test.history.flag(f"{node.name}: revoke of {lease_id} answered {r[1]} {r[2][:200]!r}")
                return False
            tried = tried or r[0] != "refused"
            time.sleep(RETRY_PAUSE_S)
        return False

    def finish(self):
        self.stop.set()
        self.thread.join(timeout=30)
