"""Integration: TLS on the client listeners (-cert-file, -key-file, -trusted-ca-file, -client-cert-auth) with real kvnode processes, python's ssl and etcdctl."""

import json
import os
import shutil
import socket
import ssl
import subprocess
import time
import unittest
import urllib.error

from kvcluster import ClusterTest, free_port, request, wait_for
from test_etcd_cluster import node_id

ETCDCTL = shutil.which("etcdctl")
CURL = shutil.which("curl")
OPENSSL = shutil.which("openssl")
EXIT_USAGE = 2
EXIT_RUNTIME = 1
# A short head deadline, so that the "handshake never finishes" checks take seconds.
HEADER_TIMEOUT_MS = 1500


def run_openssl(*args, cwd):
    subprocess.run([OPENSSL, *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(d, name):
    """A self-signed CA: d/name.crt, d/name.key."""
    run_openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2", "-subj", f"/CN={name}", cwd=d)


def make_cert(d, ca, name, ext):
    """A certificate signed by ca: d/name.crt, d/name.key, with the X.509 v3 extensions in ext."""
    with open(os.path.join(d, f"{name}.ext"), "w") as f:
        f.write(ext)
    run_openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
    run_openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
                "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext", cwd=d)


# What docs/operations.md tells operators to make: a member's certificate
# serves its API and is also the client certificate it presents to other
# members, hence both usages.
MEMBER_EXT = "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n"
CLIENT_EXT = "extendedKeyUsage=clientAuth\n"


class TlsTest(ClusterTest):
    def setUp(self):
        super().setUp()
        if not OPENSSL:
            self.skipTest("openssl is not installed (scripts/setup.sh installs it)")
        self.pki = os.path.join(self.tmp, "pki")
        os.mkdir(self.pki)
        make_ca(self.pki, "ca")
        make_cert(self.pki, "ca", "member", MEMBER_EXT)
        make_cert(self.pki, "ca", "client", CLIENT_EXT)
        make_ca(self.pki, "other-ca")
        make_cert(self.pki, "other-ca", "stranger", CLIENT_EXT)

    def f(self, name):
        return os.path.join(self.pki, name)

    def refusal(self, call, *expected):
        """Runs call(); it must fail with one of `expected` (urllib's wrapping removed); returns the error."""
        try:
            call()
        except urllib.error.URLError as e:
            err = e.reason
        except OSError as e:
            err = e
        else:
            self.fail("the call succeeded; it must be refused")
        self.assertIsInstance(err, expected)
        return err

    def client_context(self, cert=None):
        """Trusts our CA; presents cert (a name in the PKI dir) when given."""
        ctx = ssl.create_default_context(cafile=self.f("ca.crt"))
        if cert:
            ctx.load_cert_chain(self.f(f"{cert}.crt"), self.f(f"{cert}.key"))
        return ctx

    def start_cluster(self, client_cert_auth):
        """Three TLS members on loopback, joined over TLS (-join); returns them with their gRPC addresses."""
        tls_args = [f"-cert-file={self.f('member.crt')}", f"-key-file={self.f('member.key')}",
                    f"-http-header-timeout-ms={HEADER_TIMEOUT_MS}"]
        if client_cert_auth:
            tls_args += [f"-trusted-ca-file={self.f('ca.crt')}", "-client-cert-auth"]
        # Without -trusted-ca-file a member verifies the others' certificates
        # against OpenSSL's default store, which SSL_CERT_FILE replaces
        # (docs/operations.md, "TLS").
        env = None if client_cert_auth else dict(os.environ, SSL_CERT_FILE=self.f("ca.crt"))
        admin = self.client_context("client" if client_cert_auth else None)

        def make(name, *args):
            g = f"127.0.0.1:{free_port()}"
            n = self.node(name, f"-grpc-address={g}", *tls_args, *args)
            n.grpc, n.tls, n.env = g, admin, env
            return n

        return self.start_joined(make)

    def etcdctl(self, node, *args, cert=None, check=True):
        tls = ["--cacert", self.f("ca.crt")]
        if cert:
            tls += ["--cert", self.f(f"{cert}.crt"), "--key", self.f(f"{cert}.key")]
        p = subprocess.run([ETCDCTL, f"--endpoints=https://{node.grpc}", "--dial-timeout=5s",
                            "--command-timeout=10s", *tls, *args],
                           env=dict(os.environ, ETCDCTL_API="3"), capture_output=True, text=True, timeout=60)
        if check and p.returncode != 0:
            raise AssertionError(f"etcdctl {' '.join(args)} failed ({p.returncode}): {p.stderr}")
        return p

    def check_reads_and_forwarded_writes(self, nodes):
        leader = self.wait_leader(nodes)
        follower = next(n for n in nodes if n is not leader)
        # A follower forwards /set to the leader's API, over TLS.
        r = follower.set("greeting", "hello over tls")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers.get("X-Ckv-Leader"), leader.api)
        for n in nodes:
            r = n.get("greeting")
            self.assertEqual((r.status, r.json), (200, {"greeting": "hello over tls"}), n.name)
        return leader, follower

    def check_etcdctl(self, nodes, cert):
        if not ETCDCTL:
            return
        out = json.loads(self.etcdctl(nodes[1], "member", "list", "-w", "json", cert=cert).stdout)
        self.assertEqual(sorted(m["name"] for m in out["members"]), sorted(n.raft for n in nodes))
        # Clients that dial the member list (etcdctl --cluster) must get https.
        self.assertEqual(sorted(u for m in out["members"] for u in m.get("clientURLs", [])),
                         sorted(f"https://{n.grpc}" for n in nodes))
        for n in nodes:
            table = self.etcdctl(n, "endpoint", "status", cert=cert).stdout
            self.assertTrue(table.startswith(f"https://{n.grpc}, "), table)
        # KV writes on every member: a follower forwards them to the leader's
        # gRPC port over TLS (member channel credentials), then every member
        # reads them back linearizably.
        for i, n in enumerate(nodes):
            self.assertEqual(self.etcdctl(n, "put", f"tls-key-{i}", f"v{i}", cert=cert).stdout.strip(), "OK")
        for n in nodes:
            got = self.etcdctl(n, "get", "tls-key-", "--prefix", "--print-value-only", cert=cert).stdout.split()
            self.assertEqual(got, [f"v{i}" for i in range(len(nodes))], n.name)

    def assert_closed_at_deadline(self, address, first_bytes=b""):
        """Connects, sends first_bytes (a start of a handshake, or nothing) and never more: the node
        must close the connection at its head deadline (-http-header-timeout-ms), not before, not much after."""
        host, port = address.rsplit(":", 1)
        s = socket.create_connection((host, int(port)), timeout=5)
        try:
            start = time.monotonic()
            if first_bytes:
                s.sendall(first_bytes)
            s.settimeout(HEADER_TIMEOUT_MS / 1000 + 8)
            try:
                data = s.recv(4096)
            except ConnectionResetError:
                data = b""
            except TimeoutError:
                self.fail(f"{address} kept a connection whose handshake never finished open past its deadline")
            elapsed = time.monotonic() - start
        finally:
            s.close()
        self.assertEqual(data, b"", "the server answered a handshake that never finished")
        self.assertGreater(elapsed, HEADER_TIMEOUT_MS / 1000 * 0.8, "closed before the deadline")
        self.assertLess(elapsed, HEADER_TIMEOUT_MS / 1000 + 5, "not closed at the deadline")

    def test_server_tls_cluster_forwards_refuses_plaintext_and_times_out_handshakes(self):
        nodes = self.start_cluster(client_cert_auth=False)
        leader, follower = self.check_reads_and_forwarded_writes(nodes)
        self.check_etcdctl(nodes, cert=None)
        # The /v3 gateway is on the same (TLS) port.
        r = request("POST", follower.api, "/v3/maintenance/status", "{}", tls=follower.tls)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["leader"], str(node_id(leader.raft)))

        # Plain HTTP to the TLS port: a plain-HTTP 400 with a JSON body saying why, then closed.
        r = request("GET", follower.api, "/status")
        self.assertEqual(r.status, 400, r)
        self.assertEqual(r.json, {"error": "Client sent an HTTP request to an HTTPS server."})
        # A client that does not trust the node's CA refuses it.
        self.refusal(lambda: request("GET", follower.api, "/status", tls=ssl.create_default_context()),
                     ssl.SSLCertVerificationError)
        # A certificate that does not name the host dialled is refused too (SANs are 127.0.0.1 and localhost).
        ctx = self.client_context()
        with self.assertRaises(ssl.SSLCertVerificationError):
            with socket.create_connection(tuple(follower.api.rsplit(":", 1))) as raw:
                ctx.wrap_socket(raw, server_hostname="elsewhere.example")

        # A handshake that never finishes is closed at the head deadline: nothing sent, or a
        # TLS record header promising a ClientHello that never comes. gRPC's port the same.
        self.assert_closed_at_deadline(follower.api)
        self.assert_closed_at_deadline(follower.api, bytes([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]))
        self.assert_closed_at_deadline(follower.grpc)
        # The node is unharmed: it still serves TLS clients and forwards.
        self.assertEqual(follower.set("after", "still fine").status, 200)
        self.assertEqual(leader.get("after").json, {"after": "still fine"})
        self.assertIn("plaintext HTTP request on the TLS port", follower.log())

    def test_client_cert_auth_requires_a_certificate_from_the_trusted_ca(self):
        nodes = self.start_cluster(client_cert_auth=True)
        # Members present their certificates to each other: forwarding and -join worked.
        leader, follower = self.check_reads_and_forwarded_writes(nodes)
        self.check_etcdctl(nodes, cert="client")
        if CURL:  # curl, as docs/operations.md shows it
            def curl(*args):
                return subprocess.run([CURL, "-sS", "--max-time", "10", "--cacert", self.f("ca.crt"), *args,
                                       f"https://{follower.api}/get?key=greeting"],
                                      capture_output=True, text=True, timeout=30)
            p = curl("--cert", self.f("client.crt"), "--key", self.f("client.key"))
            self.assertEqual((p.returncode, json.loads(p.stdout or "null")), (0, {"greeting": "hello over tls"}),
                             p.stderr)
            self.assertNotEqual(curl().returncode, 0)  # no client certificate

        # No client certificate: refused in the handshake (TLS 1.3 reports it at the first read).
        for cert, alert in ((None, "CERTIFICATE_REQUIRED"), ("stranger", "UNKNOWN_CA")):
            err = self.refusal(lambda: request("GET", follower.api, "/status", tls=self.client_context(cert), timeout=10),
                               ssl.SSLError, ConnectionResetError, BrokenPipeError)
            self.assertIn(alert, str(err), cert)  # the node's alert, not a local failure
        # The same over TLS 1.2, where the refusal comes within the handshake itself.
        ctx12 = self.client_context()
        ctx12.maximum_version = ssl.TLSVersion.TLSv1_2
        err = self.refusal(lambda: request("GET", follower.api, "/status", tls=ctx12, timeout=10), ssl.SSLError)
        self.assertIn("HANDSHAKE_FAILURE", str(err))
        if ETCDCTL:
            for cert in (None, "stranger"):
                p = self.etcdctl(follower, "member", "list", cert=cert, check=False)
                self.assertNotEqual(p.returncode, 0, (cert, p.stdout))
        # The node still serves a client with the right certificate.
        self.assertEqual(follower.status()["leader"], leader.raft)
        wait_for(lambda: "refused a TLS connection" in follower.log(), 10, "the refusal in the log")

        # TLS 1.1 and older are refused whatever the certificate.
        old = self.client_context("client")
        old.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        old.maximum_version = ssl.TLSVersion.TLSv1_1
        old.set_ciphers("DEFAULT:@SECLEVEL=0")  # else python's OpenSSL refuses TLS 1.1 itself, before asking the node
        err = self.refusal(lambda: request("GET", follower.api, "/status", tls=old, timeout=10), ssl.SSLError)
        self.assertIn("PROTOCOL_VERSION", str(err))  # the node's alert: "protocol version"

    def test_a_connection_over_the_limits_gets_its_503_over_tls(self):
        big_value_bytes = 8 << 20  # more than loopback's socket buffers hold: the answer's write blocks
        n = self.node("n1", "-bootstrap", f"-cert-file={self.f('member.crt')}", f"-key-file={self.f('member.key')}",
                      "-http-max-connections-per-ip=1", f"-max-body-bytes={big_value_bytes + 1024}")
        n.tls = self.client_context()
        n.start()
        self.wait_leader([n])
        self.assertEqual(n.set("big", "v" * big_value_bytes, timeout=30).status, 200)
        host, port = n.api.split(":")
        ctx = self.client_context()

        def connect_from(source):
            raw = socket.create_connection((host, int(port)), timeout=10, source_address=(source, 0))
            return ctx.wrap_socket(raw, server_hostname=host)

        # 127.0.0.2's one slot, busy: its answer is being written to a reader that stopped reading.
        reader = connect_from("127.0.0.2")
        self.addCleanup(reader.close)
        reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        reader.sendall(b"GET /get?key=big&consistency=stale HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(reader.recv(12), b"HTTP/1.1 200")

        def refused():
            with connect_from("127.0.0.2") as s:
                s.sendall(b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n")
                answer = b""
                while chunk := s.recv(4096):
                    answer += chunk
            head, _, body = answer.partition(b"\r\n\r\n")
            return head.startswith(b"HTTP/1.1 503") and json.loads(body)

        body = wait_for(refused, 10, "127.0.0.2's second connection to be refused, over TLS")
        self.assertIn("too many connections from 127.0.0.2", body["error"])
        # Another address is served meanwhile.
        self.assertEqual(n.status()["isLeader"], True)

    def test_a_plaintext_raft_address_off_loopback_is_warned_about(self):
        warning = "is not loopback, and raft traffic is plaintext and unauthenticated"
        local = self.node("local", "-bootstrap").start()
        everywhere = self.node("everywhere", "-bootstrap")
        everywhere.raft = f"0.0.0.0:{free_port('0.0.0.0')}"
        everywhere.start()
        wait_for(lambda: "serving the API" in everywhere.log(), 10, "everywhere to finish starting")
        self.assertIn(f"raft address {everywhere.raft} {warning}", everywhere.log())
        wait_for(lambda: "serving the API" in local.log(), 10, "local to finish starting")
        self.assertNotIn(warning, local.log())

    def run_kvnode(self, *args):
        d = os.path.join(self.tmp, f"data-{len(os.listdir(self.tmp))}")
        p = subprocess.run([self.kvnode(), f"-raft-address=127.0.0.1:{free_port()}",
                            f"-api-address=127.0.0.1:{free_port()}", f"-data-dir={d}", *args],
                           capture_output=True, text=True, timeout=30)
        return p

    def kvnode(self):
        import kvcluster
        return kvcluster.KVNODE

    def test_flags_and_files_are_checked_at_start(self):
        with open(self.f("garbage.pem"), "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
        cert, key, ca = self.f("member.crt"), self.f("member.key"), self.f("ca.crt")
        cases = [
            ((f"-cert-file={cert}",), EXIT_USAGE, "-cert-file and -key-file go together"),
            ((f"-key-file={key}",), EXIT_USAGE, "-cert-file and -key-file go together"),
            ((f"-cert-file={cert}", f"-key-file={key}", "-client-cert-auth"), EXIT_USAGE,
             "-client-cert-auth needs -trusted-ca-file"),
            ((f"-trusted-ca-file={ca}",), EXIT_USAGE, "-trusted-ca-file needs -cert-file and -key-file"),
            ((f"-cert-file={self.f('missing.crt')}", f"-key-file={key}"), EXIT_RUNTIME,
             f"-cert-file {self.f('missing.crt')}: cannot open it"),
            ((f"-cert-file={self.f('garbage.pem')}", f"-key-file={key}"), EXIT_RUNTIME,
             f"-cert-file {self.f('garbage.pem')}: no PEM certificate in it"),
            ((f"-cert-file={cert}", f"-key-file={self.f('member.crt')}"), EXIT_RUNTIME,
             f"-key-file {self.f('member.crt')}: no unencrypted PEM private key in it"),
            ((f"-cert-file={cert}", f"-key-file={self.f('stranger.key')}"), EXIT_RUNTIME,
             f"-key-file {self.f('stranger.key')} is not the key of the certificate in -cert-file {cert}"),
            ((f"-cert-file={cert}", f"-key-file={key}", f"-trusted-ca-file={self.f('garbage.pem')}"), EXIT_RUNTIME,
             f"-trusted-ca-file {self.f('garbage.pem')}: no PEM certificate in it"),
        ]
        for args, code, message in cases:
            p = self.run_kvnode(*args)
            self.assertEqual(p.returncode, code, (args, p.stderr[-2000:]))
            self.assertIn(message, p.stderr, args)
        # A key file the process cannot read (running as root ignores modes: use a directory).
        p = self.run_kvnode(f"-cert-file={cert}", f"-key-file={self.pki}")
        self.assertEqual(p.returncode, EXIT_RUNTIME, p.stderr[-2000:])
        self.assertIn(f"-key-file {self.pki}", p.stderr)


if __name__ == "__main__":
    unittest.main()
