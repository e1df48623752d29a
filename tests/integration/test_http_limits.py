"""Integration: the HTTP server's limits against real kvnode processes: slowloris, deadlines, per-address and key limits, -max-body-bytes."""

import http.client
import json
import resource
import socket
import subprocess
import time
import urllib.parse

import kvcluster
from kvcluster import ClusterTest, request, wait_for

# kvnode's defaults (src/http/server.h, limits.h); the slowloris test runs
# with them, as an attacked operator would.
HEADER_TIMEOUT_S = 10
MAX_CONNECTIONS = 1024
MAX_KEY_BYTES = 64 << 10
MAX_BODY_BYTES = 3 << 19
BODY_BUDGET_BYTES = 256 << 20
# Sockets the slowloris test holds open at once, and the loopback addresses
# it sends from. Every address of 127.0.0.0/8 is loopback on Linux; none of
# these is a member's host (the members listen on 127.0.0.1), and each stays
# under the per-address share (512), so together they fill the whole pool.
SLOWLORIS_SOCKETS = 1100
ATTACKER_IPS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
# How long a check that must not wait for a deadline may take.
PROMPT_S = 3


def raise_fd_limit(wanted):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def connect_from(source_ip, address):
    host, port = address.split(":")
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((source_ip, 0))
    s.connect((host, int(port)))
    return s


def request_from(source_ip, method, address, path, body=None, timeout=10):
    """One request sent from source_ip; returns (status, json body)."""
    host, port = address.split(":")
    c = http.client.HTTPConnection(host, int(port), timeout=timeout, source_address=(source_ip, 0))
    try:
        c.request(method, path, body=body)
        r = c.getresponse()
        raw = r.read()
        return r.status, json.loads(raw) if raw else None
    finally:
        c.close()


def closed_by_server(sock):
    """True when the server has closed sock (EOF or reset). sock must be non-blocking."""
    try:
        data = sock.recv(4096)
        return data == b"" or data.startswith(b"HTTP/1.1 503")
    except BlockingIOError:
        return False
    except OSError:  # reset
        return True


def open_slowloris(sources, count, address):
    """count sockets, from the source addresses in turn, each with a request head begun and never finished."""
    socks = []
    for i in range(count):
        s = connect_from(sources[i % len(sources)], address)
        s.sendall(b"GET /status HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        s.setblocking(False)
        socks.append(s)
    return socks


def trickle(socks):
    """Sends one more header byte on every socket the server has not closed; keeps and counts those."""
    still = []
    for s in socks:
        if closed_by_server(s):
            s.close()
            continue
        try:
            s.send(b"a")
            still.append(s)
        except OSError:
            s.close()
    socks[:] = still
    return len(still)


class SlowlorisTest(ClusterTest):
    def test_slowloris_neither_starves_clients_nor_forwarded_writes(self):
        self.assertGreaterEqual(raise_fd_limit(SLOWLORIS_SOCKETS + 200), SLOWLORIS_SOCKETS + 100,
                                "the test needs more file descriptors (ulimit -n)")
        n1 = self.node("n1", "-bootstrap").start()
        self.wait_leader([n1])
        n2 = self.node("n2").start()
        self.assertEqual(n1.join(n2, with_api=True).status, 200)
        self.wait_voters(n1, [n1, n2])
        # Written on the leader itself: n2 has no kept-alive connection to
        # n1's API yet, so its forwarded writes below need new slots.
        self.assertEqual(n1.set("before", "attack").status, 200)

        def served_promptly():
            t0 = time.monotonic()
            for source in ("127.0.0.5", "127.0.0.1"):
                status, body = request_from(source, "GET", n1.api, "/get?key=before", timeout=PROMPT_S)
                self.assertEqual((status, body), (200, {"before": "attack"}), source)
            r = n2.set("during", "attack", timeout=PROMPT_S)  # forwarded by the follower
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.headers.get("X-Ckv-Leader"), n1.api)
            self.assertLess(time.monotonic() - t0, PROMPT_S)

        # 1. From three addresses that are not members' hosts, more sockets
        # than the pool holds; each sends one more header byte every half
        # second, never finishing its head.
        socks = open_slowloris(ATTACKER_IPS, SLOWLORIS_SOCKETS, n1.api)
        self.addCleanup(lambda: [s.close() for s in socks])
        opened = time.monotonic()
        wait_for(lambda: trickle(socks) <= MAX_CONNECTIONS, PROMPT_S, "the pool to hold at most its limit")
        # Clients and the follower's forwarded write are served at once: the
        # slow connections are the ones that make room (eviction).
        served_promptly()
        # Trickling does not keep a slot: the server closes every remaining
        # one once the head deadline passes, although each keeps sending.
        self.assertGreater(trickle(socks), MAX_CONNECTIONS // 2, "the slowloris sockets were closed early")

        def all_closed():
            n = trickle(socks)
            time.sleep(0.5)  # the trickle's pace: one byte per socket per half second
            return n == 0

        wait_for(all_closed, HEADER_TIMEOUT_S + 8, "the server to close every slowloris socket")
        self.assertGreater(time.monotonic() - opened, HEADER_TIMEOUT_S - 1, "closed before the deadline?")

        # 2. The same from 127.0.0.1, the address of every client and member
        # here (the attack as first reported): still served at once.
        socks[:] = open_slowloris(("127.0.0.1",), SLOWLORIS_SOCKETS, n1.api)
        trickle(socks)
        served_promptly()
        self.assertEqual(n1.get("during").json, {"during": "attack"})


class ReserveTest(ClusterTest):
    def test_when_no_client_can_be_evicted_limits_refuse_and_forwards_use_the_reserve(self):
        """Every client slot busy (slow readers of a large value): outsiders get 503, members' forwards get through."""
        big_value_bytes = 8 << 20  # more than loopback's socket buffers hold, so the answer's write blocks
        n1 = self.node("n1", "-bootstrap", "-http-max-connections=8", "-http-max-connections-per-ip=4",
                       "-http-member-connections=2", f"-max-body-bytes={big_value_bytes + 1024}").start()
        self.wait_leader([n1])
        n2 = self.node("n2").start()
        self.assertEqual(n1.join(n2, with_api=True).status, 200)
        self.wait_voters(n1, [n1, n2])
        self.assertEqual(n1.set("big", "v" * big_value_bytes, timeout=30).status, 200)
        readers = []
        self.addCleanup(lambda: [s.close() for s in readers])
        host, port = n1.api.split(":")

        def slow_readers(source, count):
            for _ in range(count):
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                s.bind((source, 0))
                s.connect((host, int(port)))
                s.sendall(b"GET /get?key=big&consistency=stale HTTP/1.1\r\nHost: x\r\n\r\n")
                readers.append(s)  # never read: the server stays busy writing
                # Busy once its answer has started (before that it could be evicted).
                s.settimeout(PROMPT_S)
                self.assertEqual(s.recv(12, socket.MSG_PEEK), b"HTTP/1.1 200")

        def refused(source):
            status, body = request_from(source, "GET", n1.api, "/status", timeout=PROMPT_S)
            return status == 503 and body

        # One address's share, all busy: its next connection is refused, others are not.
        slow_readers("127.0.0.2", 4)
        body = wait_for(lambda: refused("127.0.0.2"), PROMPT_S * 2, "127.0.0.2's fifth connection to be refused")
        self.assertIn("from 127.0.0.2", body["error"])
        self.assertIn("-http-max-connections-per-ip", body["error"])
        self.assertEqual(request_from("127.0.0.5", "GET", n1.api, "/status")[0], 200)
        # The whole pool busy: everyone outside is refused...
        slow_readers("127.0.0.3", 4)
        body = wait_for(lambda: refused("127.0.0.5"), PROMPT_S * 2, "an outside client to be refused")
        self.assertIn("-http-max-connections)", body["error"])
        # ... but a follower's forwarded write takes a reserved slot.
        t0 = time.monotonic()
        r = n2.set("reserved", "slot", timeout=PROMPT_S)
        self.assertEqual(r.status, 200, r)
        self.assertLess(time.monotonic() - t0, PROMPT_S)
        # A member's host that does not forward gets no reserved slot.
        self.assertTrue(refused("127.0.0.1"))
        for s in readers:
            s.close()
        readers.clear()
        wait_for(lambda: request_from("127.0.0.5", "GET", n1.api, "/status")[0] == 200, PROMPT_S * 2,
                 "slots to free once the slow readers are gone")


class BodyBudgetTest(ClusterTest):
    def test_slow_large_bodies_are_bounded_in_total(self):
        """Heads declaring the largest body, bodies never sent: the node holds at most its body budget."""
        n1 = self.node("n1", "-bootstrap").start()
        self.wait_leader([n1])
        n2 = self.node("n2").start()
        self.assertEqual(n1.join(n2, with_api=True).status, 200)
        self.wait_voters(n1, [n1, n2])
        fits = BODY_BUDGET_BYTES // MAX_BODY_BYTES
        held = []
        self.addCleanup(lambda: [s.close() for s in held])
        head = (f"POST /set HTTP/1.1\r\nHost: x\r\nContent-Length: {MAX_BODY_BYTES}\r\n\r\n{{").encode()
        for i in range(fits):
            s = connect_from(ATTACKER_IPS[i % len(ATTACKER_IPS)], n1.api)
            s.sendall(head)
            held.append(s)
        # One more does not fit: 503 before its body is read.
        def refused():
            s = connect_from("127.0.0.5", n1.api)
            try:
                s.settimeout(PROMPT_S)
                s.sendall(head)
                return s.recv(4096)
            finally:
                s.close()
        answer = wait_for(lambda: (lambda a: a if a.startswith(b"HTTP/1.1 503") else None)(refused()),
                          PROMPT_S * 2, "a body over the budget to be refused")
        self.assertIn(b"too many request bytes in flight", answer)
        # Small bodies still fit, and members' forwarded writes are not counted.
        self.assertEqual(n1.set("small", "write").status, 200)
        self.assertEqual(n2.set("forwarded", "write").status, 200)
        # The held bodies give their budget back when their connections end.
        for s in held:
            s.close()
        held.clear()
        big = "x" * (MAX_BODY_BYTES - 100)
        wait_for(lambda: n1.set("big", big).status == 200, PROMPT_S * 2, "the budget to be free again")


class DeadlinesAndShareTest(ClusterTest):
    def test_deadlines_and_per_address_share(self):
        n = self.node("n1", "-bootstrap", "-http-max-connections=16", "-http-max-connections-per-ip=4",
                      "-http-header-timeout-ms=1500", "-http-idle-timeout-ms=1500",
                      "-http-body-timeout-ms=1500").start()
        self.wait_leader([n])
        # The per-address share: with 127.0.0.2's four slots taken by heads
        # that never finish, its fifth connection is served by pushing out
        # its own oldest one, not another address's older connection.
        other = connect_from("127.0.0.1", n.api)
        self.addCleanup(other.close)
        other.sendall(b"GET /status HTTP/1.1\r\n")
        held = []
        self.addCleanup(lambda: [s.close() for s in held])
        for _ in range(4):
            held.append(connect_from("127.0.0.2", n.api))
            # The server admits in the kernel's accept order (FIFO): held[0] is the oldest.
            held[-1].sendall(b"GET /status HTTP/1.1\r\n")
        for s in held + [other]:
            s.setblocking(False)
        self.assertEqual(request_from("127.0.0.2", "GET", n.api, "/status")[0], 200)
        wait_for(lambda: closed_by_server(held[0]), PROMPT_S, "127.0.0.2's oldest connection to be evicted")
        self.assertFalse(any(closed_by_server(s) for s in held[1:] + [other]))
        for s in held + [other]:
            s.setblocking(True)

        def closes_within(sock, seconds):
            sock.settimeout(seconds)
            t0 = time.monotonic()
            try:
                while sock.recv(4096):
                    pass
            except ConnectionResetError:
                pass
            return time.monotonic() - t0

        # Head deadline: the held heads never finish; they are closed.
        for s in held:
            self.assertLess(closes_within(s, 5), 5)
        # A connection that sends nothing at all is closed by the same deadline.
        silent = connect_from("127.0.0.1", n.api)
        self.addCleanup(silent.close)
        self.assertLess(closes_within(silent, 5), 5)
        # Body deadline: a head promising 100 bytes, then only 10.
        slow_body = connect_from("127.0.0.1", n.api)
        self.addCleanup(slow_body.close)
        slow_body.sendall(b"POST /set HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"key\":\"k\"")
        self.assertLess(closes_within(slow_body, 5), 5)
        # Idle keep-alive: one request answered, then nothing: closed.
        c = http.client.HTTPConnection(*n.api.split(":"), timeout=10)
        c.request("GET", "/status")
        self.assertEqual(c.getresponse().read()[:1], b"{")
        t0 = time.monotonic()
        self.assertLess(closes_within(c.sock, 5), 5)
        self.assertGreater(time.monotonic() - t0, 1.0, "closed before the idle timeout")
        c.close()
        self.assertIsNone(n.proc.poll())


class KeyLimitTest(ClusterTest):
    def test_longest_key_round_trips_and_longer_is_refused(self):
        n1 = self.node("n1", "-bootstrap").start()
        self.wait_leader([n1])
        n2 = self.node("n2").start()
        self.assertEqual(n1.join(n2, with_api=True).status, 200)
        self.wait_voters(n1, [n1, n2])
        # Two UTF-8 bytes per character, each of which URL-encodes to three.
        longest = "é" * (MAX_KEY_BYTES // 2)
        self.assertEqual(len(longest.encode()), MAX_KEY_BYTES)
        for writer, reader in ((n1, n2), (n2, n1)):  # written on the leader and forwarded
            r = writer.set(longest, "v")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(reader.get(longest).json, {longest: "v"})
            self.assertEqual(reader.get(longest, "stale").json, {longest: "v"})
            self.assertEqual(writer.delete(longest).status, 200)
            self.assertEqual(reader.get(longest).status, 404)

        for key in (longest + "a", "k" * (1 << 20)):  # one byte more; the issue's 1 MiB key
            for reply in (n1.set(key, "v"), n2.set(key, "v"), n1.delete(key), n2.delete(key)):
                self.assertEqual(reply.status, 400, reply)
                self.assertIn(str(MAX_KEY_BYTES), reply.json["error"])
        # One byte over still fits the request head: /get refuses it by the
        # key limit. A 1 MiB key in a URL is over the head limit itself (431).
        for reply in (n1.get(longest + "a"), n2.get(longest + "a")):
            self.assertEqual(reply.status, 400, reply)
            self.assertIn(str(MAX_KEY_BYTES), reply.json["error"])
        reply = n1.get("k" * (1 << 20))
        self.assertEqual(reply.status, 431, reply)
        self.assertIn(str(MAX_KEY_BYTES), reply.json["error"])
        # Nothing reached the log.
        self.assertEqual(n1.get(longest + "a").status, 400)
        self.assertEqual(request("GET", n1.api, "/get?" + urllib.parse.urlencode({"key": "k" * 10})).status, 404)


class BodyLimitFlagTest(ClusterTest):
    def run_kvnode(self, *args):
        return subprocess.run([kvcluster.KVNODE, *args], capture_output=True, text=True, timeout=10)

    def test_max_body_bytes_must_be_replicable(self):
        for too_big in (64 << 20, 1 << 40):
            p = self.run_kvnode(f"-raft-address=127.0.0.1:{kvcluster.free_port()}", "-inmem",
                                f"-max-body-bytes={too_big}")
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertIn("-max-body-bytes", p.stderr)
            self.assertIn("Raft", p.stderr)
        # The largest value the message names is accepted: the node starts.
        limit = int(p.stderr.split("at most ")[1].split(" ")[0])
        self.assertGreater(limit, 60 << 20)
        n = self.node("n1", "-bootstrap", "-inmem", f"-max-body-bytes={limit}").start()
        self.wait_leader([n])
        self.assertEqual(n.set("k", "v").status, 200)
