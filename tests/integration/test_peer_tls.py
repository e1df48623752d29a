"""Integration: peer mutual TLS (-peer-cert-file, -peer-key-file, -peer-trusted-ca-file) and the cluster id on the raft port, with real kvnode processes and certificates made by openssl at run time."""

import os
import re
import socket
import ssl
import subprocess

import json
import unittest

import raft_wire as wire
import kvcluster
from kvcluster import OPENSSL, ClusterTest, free_port, wait_for
from test_etcd_cluster import ETCD, ETCDCTL, etcdctl, start_real_etcd
from raft_wire import node_id

EXIT_USAGE = 2
EXIT_RUNTIME = 1
HOSTS = ("127.0.0.1", "127.0.0.2", "127.0.0.3")


def cluster_id_from_log(node):
    """The id a founder drew ("bootstrapped a new cluster <hex> in ...")."""
    m = re.search(r"bootstrapped a new cluster ([0-9a-f]{16})", node.log())
    return m.group(1) if m else None


class PeerTlsTest(ClusterTest):
    def setUp(self):
        super().setUp()
        self.pki = self.enable_peer_tls()

    def make(self, name, *args):
        """n1..n3 on their own loopback hosts, so each certificate names one member; -id=name, so
        that their node ids are node_id(name)."""
        return self.node(name, f"-id={name}", *args, host=HOSTS[int(name[1:]) - 1])

    def start_three(self):
        nodes = self.start_joined(self.make)
        self.wait_leader(nodes)
        return nodes

    def tls_client(self, cert_host, ca="ca"):
        """A TLS client context presenting the member certificate for cert_host signed by ca,
        trusting our CA (the server's certificate verifies; whether ours does is the question)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.load_verify_locations(self.pki.ca("ca"))
        cert, key = self.pki.member(cert_host, ca)
        ctx.load_cert_chain(cert, key)
        return ctx

    def assert_refused_and_logged(self, node, conn, first_bytes, logged):
        """Sends first_bytes on conn (a socket, TLS or not); the node must close it, and log
        `logged` naming conn's address."""
        local = "%s:%d" % conn.getsockname()[:2]
        conn.settimeout(10)
        try:
            conn.sendall(first_bytes)
            while conn.recv(4096):
                pass  # an answer would be bytes; the node must close instead
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
            pass  # refused during or right after the handshake: what we want
        finally:
            conn.close()
        wait_for(lambda: f"from {local}" in node.log() and logged in node.log(), 10,
                 f"{node.name} to log '{logged}' for {local}")

    def check_writes(self, nodes, key, value):
        self.assertEqual(self.write_with_retry(nodes, key, value).status, 200)
        for n in nodes:
            wait_for(lambda n=n: n.get(key, consistency="stale").json == {key: value}, 20,
                     f"{n.name} to have {key}")

    def test_cluster_elects_replicates_and_survives_a_restart(self):
        nodes = self.start_three()
        for n in nodes:
            self.assertIn("peer TLS: every raft connection is mutual TLS", n.log())
            self.assertNotIn("raft traffic is plaintext", n.log())
        self.check_writes(nodes, "k1", "v1")
        victim = nodes[1]
        victim.kill()
        self.check_writes([n for n in nodes if n is not victim], "k2", "v2")
        victim.start()
        wait_for(lambda: victim.get("k2", consistency="stale").json == {"k2": "v2"}, 20,
                 f"{victim.name} to catch up after its restart")
        self.wait_leader(nodes)
        self.check_writes(nodes, "k3", "v3")

    def test_plaintext_other_ca_and_another_members_certificate_are_refused(self):
        n1, n2, n3 = self.start_three()
        host, port = n1.raft.rsplit(":", 1)
        # Plain TCP with a well-formed hello: it is no TLS handshake.
        plain = socket.create_connection((host, int(port)))
        self.assert_refused_and_logged(n1, plain, wire.hello(node_id(n2.name), node_id(n1.name), name=n2.name,
                                                             raft_address=n2.raft), "TLS handshake failed")
        # A certificate for n2's host from another CA.
        host, port = n2.raft.rsplit(":", 1)
        raw = socket.create_connection((host, int(port)))
        try:
            other = self.tls_client("127.0.0.1", ca="other-ca").wrap_socket(raw)
        except (ssl.SSLError, ConnectionResetError):
            other = None  # refused within the handshake (TLS 1.2 order); still logged below
        if other is not None:
            self.assert_refused_and_logged(n2, other, wire.hello(node_id(n1.name), node_id(n2.name)),
                                           "TLS handshake failed")
        else:
            wait_for(lambda: "TLS handshake failed" in n2.log(), 10, "n2 to log the failed handshake")
        # A valid certificate from the cluster's CA, but n2's (127.0.0.2), claiming to be n1.
        host, port = n3.raft.rsplit(":", 1)
        raw = socket.create_connection((host, int(port)), source_address=("127.0.0.2", 0))
        spoof = self.tls_client("127.0.0.2").wrap_socket(raw)
        self.assert_refused_and_logged(
            n3, spoof, wire.hello(node_id(n1.name), node_id(n3.name), name=n1.name, raft_address=n1.raft),
            f"claiming to be node {node_id(n1.name)} ('{n1.name}') at {n1.raft}: its certificate "
            f"(CN=127.0.0.2, SAN IP:127.0.0.2) does not name host 127.0.0.1")
        # The same certificate for what it is, n2, would pass that check: the refusal was about the claim.
        # And the cluster never noticed any of it.
        self.wait_leader([n1, n2, n3])
        self.check_writes([n1, n2, n3], "after", "intruders")

    def test_a_node_with_another_trusted_ca_cannot_join(self):
        n1 = self.make("n1", "-bootstrap").start()
        self.wait_leader([n1])
        # Its own certificate is from the cluster's CA, but it trusts only another CA, so it
        # refuses every member's certificate (and says so at start).
        n2 = self.make("n2", f"-join={n1.api}", *self.pki.args("127.0.0.2", trusted_ca="other-ca"))
        n2.start()
        self.assertIn("is not signed by a CA in -peer-trusted-ca-file", n2.log())
        wait_for(lambda: "TLS handshake" in n2.log() and "failed" in n2.log(), 20,
                 "n2 to refuse the cluster's certificates")
        self.check_writes([n1], "k", "v")
        self.assertEqual(n2.get("k", consistency="stale").status, 404)
        voters = [m["raftAddress"] for m in n1.status()["members"] if m["role"] == "voter"]
        self.assertEqual(voters, [n1.raft])

    def test_another_cluster_on_reused_addresses_is_refused_by_its_cluster_id(self):
        """Cluster A loses two members; cluster B starts on their addresses (same hosts, same CA,
        same names: only the data differs) while A's survivor keeps dialling them."""
        a1, a2, a3 = self.start_three()
        a_id = cluster_id_from_log(a1)
        self.assertIsNotNone(a_id)
        self.check_writes([a1, a2, a3], "a-key", "from A")
        a1.kill()
        a2.kill()
        # Fresh data dirs, but A's members' names (so their node ids), hosts and ports.
        b1 = self.node("b1", "-id=n1", "-bootstrap", host=HOSTS[0])
        b1.raft, b1.api = a1.raft, a1.api
        b1.start()
        self.wait_leader([b1])
        b2 = self.node("b2", "-id=n2", f"-join={b1.api}", host=HOSTS[1])
        b2.raft, b2.api = a2.raft, a2.api
        b2.start()
        self.wait_voters(b1, [b1, b2])
        b_id = cluster_id_from_log(b1)
        self.assertIsNotNone(b_id)
        self.assertNotEqual(a_id, b_id)
        self.check_writes([b1, b2], "b-key", "from B")
        # Both sides refuse, and say why: the acceptor in B, and A's survivor, the dialler.
        wait_for(lambda: f"cluster id mismatch: local {b_id}, remote {a_id} from 127.0.0.3:" in b1.log() + b2.log(),
                 20, "a member of B to refuse A's survivor")
        wait_for(lambda: f"cluster id mismatch: local {a_id}, remote {b_id} from {a1.raft}" in a3.log(), 20,
                 "A's survivor to refuse B's answer")
        # No message crossed: A's survivor has none of B's data, and B none of A's.
        self.assertEqual(a3.get("b-key", consistency="stale").status, 404)
        self.assertEqual(b1.get("a-key", consistency="stale").status, 404)
        self.assertEqual(sorted(m["raftAddress"] for m in b1.status()["members"]), sorted([b1.raft, b2.raft]))
        self.assertFalse(a3.status()["isLeader"])

    def run_kvnode(self, *args):
        d = os.path.join(self.tmp, f"data-{len(os.listdir(self.tmp))}")
        return subprocess.run([kvcluster.KVNODE, f"-raft-address=127.0.0.1:{free_port()}",
                               f"-api-address=127.0.0.1:{free_port()}", f"-data-dir={d}", *args],
                              capture_output=True, text=True, timeout=30)

    def test_flags_and_files_are_checked_at_start(self):
        cert, key = self.pki.member("127.0.0.1")
        ca = self.pki.ca()
        _, other_key = self.pki.member("127.0.0.2")
        garbage = self.pki.path("garbage.pem")
        with open(garbage, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
        expired, expired_key = self.expired_member_cert()
        together = "-peer-cert-file, -peer-key-file and -peer-trusted-ca-file go together"
        cases = [
            ((f"-peer-cert-file={cert}",), EXIT_USAGE, together),
            ((f"-peer-cert-file={cert}", f"-peer-key-file={key}"), EXIT_USAGE, together),
            ((f"-peer-trusted-ca-file={ca}",), EXIT_USAGE, together),
            (("-peer-cert-allowed-cn=x",), EXIT_USAGE, "-peer-cert-allowed-cn needs -peer-cert-file"),
            (("-peer-client-cert-auth",), EXIT_USAGE, "-peer-client-cert-auth needs -peer-cert-file"),
            ((f"-peer-cert-file={cert}", f"-peer-key-file={key}", f"-peer-trusted-ca-file={ca}",
              "-peer-client-cert-auth=false"), EXIT_USAGE, "-peer-client-cert-auth=false is not supported"),
            ((f"-peer-cert-file={self.pki.path('missing.crt')}", f"-peer-key-file={key}", f"-peer-trusted-ca-file={ca}"),
             EXIT_RUNTIME, f"-peer-cert-file {self.pki.path('missing.crt')}: cannot open it"),
            ((f"-peer-cert-file={garbage}", f"-peer-key-file={key}", f"-peer-trusted-ca-file={ca}"),
             EXIT_RUNTIME, f"-peer-cert-file {garbage}: no PEM certificate in it"),
            ((f"-peer-cert-file={cert}", f"-peer-key-file={cert}", f"-peer-trusted-ca-file={ca}"),
             EXIT_RUNTIME, f"-peer-key-file {cert}: no unencrypted PEM private key in it"),
            ((f"-peer-cert-file={cert}", f"-peer-key-file={other_key}", f"-peer-trusted-ca-file={ca}"),
             EXIT_RUNTIME, f"-peer-key-file {other_key} is not the key of the certificate in -peer-cert-file {cert}"),
            ((f"-peer-cert-file={cert}", f"-peer-key-file={key}", f"-peer-trusted-ca-file={garbage}"),
             EXIT_RUNTIME, f"-peer-trusted-ca-file {garbage}: no PEM certificate in it"),
            ((f"-peer-cert-file={expired}", f"-peer-key-file={expired_key}", f"-peer-trusted-ca-file={ca}"),
             EXIT_RUNTIME, "has expired: every peer would refuse it"),
        ]
        for args, code, message in cases:
            p = self.run_kvnode(*args)
            self.assertEqual(p.returncode, code, (args, p.stderr[-2000:]))
            self.assertIn(message, p.stderr, args)

    def test_member_list_shows_https_peer_urls_as_etcd_does(self):
        """Under peer TLS etcd lists its peer URLs as https://; so must we (the same certificates)."""
        if not (ETCD and ETCDCTL):
            raise unittest.SkipTest("etcd and etcdctl are not installed (scripts/setup.sh installs them)")
        grpc = {}

        def make(name, *args):
            host = HOSTS[int(name[1:]) - 1]
            grpc[name] = f"{host}:{free_port(host)}"
            return self.make(name, f"-grpc-address={grpc[name]}", *args)

        nodes = self.start_joined(make)
        cert, key = self.pki.member("127.0.0.1")
        etcd_client, etcd_peer = start_real_etcd(self, peer_tls_args=(f"--peer-cert-file={cert}", f"--peer-key-file={key}",
                                                        f"--peer-trusted-ca-file={self.pki.ca()}",
                                                        "--peer-client-cert-auth"))
        theirs = json.loads(etcdctl([etcd_client], "member", "list", "-w", "json").stdout)["members"]
        self.assertEqual([m["peerURLs"] for m in theirs], [[f"https://{etcd_peer}"]])
        for n in nodes:
            ours = json.loads(etcdctl([grpc[n.name]], "member", "list", "-w", "json").stdout)["members"]
            self.assertEqual(sorted(u for m in ours for u in m["peerURLs"]),
                             sorted(f"https://{m.raft}" for m in nodes), n.name)
            # The table's peer URL column too (client URLs stay http://: no client TLS here).
            rows = [line.split(", ") for line in etcdctl([grpc[n.name]], "member", "list").stdout.splitlines()]
            self.assertEqual(sorted(r[3] for r in rows), sorted(f"https://{m.raft}" for m in nodes), rows)
        # member add takes the https:// URL it shows (the scheme chooses nothing: the flags do).
        learner = f"127.0.0.4:{free_port('127.0.0.4')}"
        p = etcdctl([grpc["n1"]], "member", "add", "n4", f"--peer-urls=https://{learner}", "--learner")
        self.assertIn(f"https://{learner}", p.stdout)
        wait_for(lambda: f"https://{learner}" in etcdctl([grpc["n2"]], "member", "list").stdout, 20,
                 "n2 to list the learner with its https:// peer URL")

    def expired_member_cert(self):
        """A member certificate whose validity ended yesterday (openssl x509 -req with a CA and
        explicit dates needs `openssl ca`; a one-off config keeps it short)."""
        d = self.pki.dir
        self.pki.ca()
        with open(os.path.join(d, "expired.cnf"), "w") as f:
            f.write("[ca]\ndefault_ca=c\n[c]\ndatabase=index.txt\nnew_certs_dir=.\nserial=serial\n"
                    "default_md=sha256\npolicy=p\ncopy_extensions=copy\n[p]\ncommonName=supplied\n")
        open(os.path.join(d, "index.txt"), "w").close()
        with open(os.path.join(d, "serial"), "w") as f:
            f.write("1000\n")
        subprocess.run([OPENSSL, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                        "-keyout", "expired.key", "-out", "expired.csr", "-subj", "/CN=expired"],
                       cwd=d, check=True, capture_output=True, timeout=60)
        subprocess.run([OPENSSL, "ca", "-batch", "-config", "expired.cnf", "-cert", "ca.crt", "-keyfile", "ca.key",
                        "-in", "expired.csr", "-out", "expired.crt", "-startdate", "20200101000000Z",
                        "-enddate", "20200102000000Z", "-notext"],
                       cwd=d, check=True, capture_output=True, timeout=60)
        return os.path.join(d, "expired.crt"), os.path.join(d, "expired.key")


if __name__ == "__main__":
    import unittest
    unittest.main()
