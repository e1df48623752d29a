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
        # n1's API yet, so its forwarded write below needs a new slot.
        self.assertEqual(n1.set("before", "attack").status, 200)

        # Open the slowloris sockets: each starts a request head and then
        # sends one more header byte every half second, never finishing it.
        socks = []
        self.addCleanup(lambda: [s.close() for s in socks])
        for i in range(SLOWLORIS_SOCKETS):
            s = connect_from(ATTACKER_IPS[i % len(ATTACKER_IPS)], n1.api)
            s.sendall(b"GET /status HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            s.setblocking(False)
            socks.append(s)
        opened = time.monotonic()
        open_socks = list(socks)

        def trickle():
            still = []
            for s in open_socks:
                if closed_by_server(s):
                    continue
                try:
                    s.send(b"a")
                    still.append(s)
                except OSError:
                    pass
            open_socks[:] = still
            return len(still)

        # The pool is full: a client from another address is refused at once
        # with a JSON 503 (not left hanging).
        wait_for(lambda: trickle() <= MAX_CONNECTIONS, PROMPT_S, "connections over the limit to be refused")
        t0 = time.monotonic()
        status, body = request_from("127.0.0.5", "GET", n1.api, "/status")
        self.assertEqual(status, 503, body)
        self.assertIn("too many connections", body["error"])
        self.assertLess(time.monotonic() - t0, PROMPT_S)

        # A follower's forwarded write gets one of the members' reserved slots.
        t0 = time.monotonic()
        r = n2.set("during", "attack", timeout=PROMPT_S)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers.get("X-Ckv-Leader"), n1.api)
        self.assertLess(time.monotonic() - t0, PROMPT_S)

        # Trickling does not keep a slot: the server closes every one of them
        # once the head deadline passes, although each keeps sending.
        self.assertGreater(trickle(), MAX_CONNECTIONS // 2, "the slowloris sockets were closed early")

        def all_closed():
            n = trickle()
            time.sleep(0.5)  # the trickle's pace: one byte per socket per half second
            return n == 0

        wait_for(all_closed, HEADER_TIMEOUT_S + 8, "the server to close every slowloris socket")
        self.assertGreater(time.monotonic() - opened, HEADER_TIMEOUT_S - 1, "closed before the deadline?")
        # Ordinary clients are served again.
        status, body = request_from("127.0.0.5", "GET", n1.api, "/get?key=during")
        self.assertEqual((status, body), (200, {"during": "attack"}))


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
        # The per-address share: a fifth connection from 127.0.0.2 is refused,
        # naming the address and the flag, while 127.0.0.1 is served.
        held = [connect_from("127.0.0.2", n.api) for _ in range(4)]
        self.addCleanup(lambda: [s.close() for s in held])
        for s in held:
            s.sendall(b"GET /status HTTP/1.1\r\n")

        def fifth_refused():
            status, body = request_from("127.0.0.2", "GET", n.api, "/status")
            return status == 503 and body
        body = wait_for(fifth_refused, PROMPT_S, "a fifth connection from 127.0.0.2 to be refused")
        self.assertIn("127.0.0.2", body["error"])
        self.assertIn("-http-max-connections-per-ip", body["error"])
        self.assertEqual(request_from("127.0.0.1", "GET", n.api, "/status")[0], 200)

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
