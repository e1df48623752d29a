"""Integration: scripts/package.sh builds a .deb whose contents, control fields, unit file and default flags are right."""

import os
import re
import shlex
import shutil
import subprocess
import tempfile
import unittest

import kvcluster
from kvcluster import ClusterTest, free_port, request, wait_for

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def run(*args, **kw):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120, **kw)


class PackageTest(ClusterTest):
    @classmethod
    def setUpClass(cls):
        cls.out = tempfile.mkdtemp(prefix="ckv-pkg-")
        p = run(os.path.join(ROOT, "scripts", "package.sh"), "--kvnode", kvcluster.KVNODE, "--out", cls.out,
                "--version", "1.2.3-test")
        if p.returncode != 0:
            raise AssertionError(f"package.sh failed:\n{p.stdout}{p.stderr}")
        cls.deb = p.stdout.strip().splitlines()[-1]
        cls.root = os.path.join(cls.out, "root")
        x = run("dpkg-deb", "-x", cls.deb, cls.root)
        assert x.returncode == 0, x.stderr

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.out, ignore_errors=True)

    def test_contents_and_control_fields(self):
        self.assertTrue(self.deb.endswith(".deb") and os.path.basename(self.deb).startswith("consensuskv_1.2.3-test_"))
        listing = run("dpkg-deb", "-c", self.deb).stdout
        entries = {}
        for line in listing.splitlines():
            perms, owner, *_rest, path = line.split()
            entries[path.lstrip(".")] = (perms, owner)
        for path, perms in (("/usr/bin/kvnode", "-rwxr-xr-x"),
                            ("/lib/systemd/system/consensuskv.service", "-rw-r--r--"),
                            ("/etc/default/consensuskv", "-rw-r--r--"),
                            ("/usr/share/doc/consensuskv/operations.md", "-rw-r--r--")):
            self.assertIn(path, entries, listing)
            self.assertEqual(entries[path], (perms, "root/root"), path)
        fields = run("dpkg-deb", "-f", self.deb).stdout
        self.assertRegex(fields, r"(?m)^Package: consensuskv$")
        self.assertRegex(fields, r"(?m)^Version: 1\.2\.3-test$")
        depends = re.search(r"(?m)^Depends: (.*)$", fields).group(1)
        for lib in ("adduser", "libc6", "libgrpc++", "libssl3"):
            self.assertIn(lib, depends)
        ctrl = os.path.join(self.out, "ctrl")
        self.assertEqual(run("dpkg-deb", "-e", self.deb, ctrl).returncode, 0)
        with open(os.path.join(ctrl, "conffiles")) as f:
            self.assertEqual(f.read().split(), ["/etc/default/consensuskv"])
        for script in ("postinst", "prerm", "postrm"):
            path = os.path.join(ctrl, script)
            self.assertTrue(os.access(path, os.X_OK), script)
            self.assertEqual(run("sh", "-n", path).returncode, 0, f"{script} is not valid sh")
        with open(os.path.join(ctrl, "postinst")) as f:
            postinst = f.read()
        self.assertIn("adduser --system", postinst)
        self.assertIn("/var/lib/consensuskv", postinst)

    def test_unit_file(self):
        with open(os.path.join(self.root, "lib/systemd/system/consensuskv.service")) as f:
            unit = f.read()
        for line in ("User=consensuskv", "EnvironmentFile=/etc/default/consensuskv",
                     "ExecStart=/usr/bin/kvnode $KVNODE_FLAGS", "Restart=on-failure", "LimitNOFILE=65536",
                     "StateDirectory=consensuskv", "WantedBy=multi-user.target"):
            self.assertIn(line + "\n", unit)
        analyze = shutil.which("systemd-analyze")
        if analyze is None:
            self.skipTest("systemd-analyze not installed")
        # verify wants the unit's programs to exist: check a copy pointing into the extracted tree.
        copy = os.path.join(self.out, "consensuskv.service")
        with open(copy, "w") as f:
            f.write(unit.replace("/usr/bin/kvnode", os.path.join(self.root, "usr/bin/kvnode"))
                        .replace("/etc/default/consensuskv", os.path.join(self.root, "etc/default/consensuskv")))
        p = run(analyze, "verify", "--recursive-errors=no", "--man=no", copy)
        self.assertEqual((p.returncode, p.stdout + p.stderr), (0, ""))

    def test_default_flags_start_a_node(self):
        """The packaged binary, with the packaged flags (addresses and data dir moved), founds a cluster."""
        with open(os.path.join(self.root, "etc/default/consensuskv")) as f:
            text = f.read()
        flags = shlex.split(re.search(r'(?m)^KVNODE_FLAGS="(.*)"$', text).group(1))
        names = [f.split("=", 1)[0] for f in flags]
        self.assertEqual(names, ["-raft-address", "-api-address", "-grpc-address", "-data-dir", "-bootstrap"])
        api = f"127.0.0.1:{free_port()}"
        moved = {"-raft-address": f"127.0.0.1:{free_port()}", "-api-address": api,
                 "-grpc-address": f"127.0.0.1:{free_port()}", "-data-dir": os.path.join(self.tmp, "data")}
        args = [f"{n}={moved.get(n, f.split('=', 1)[1])}" for n, f in zip(names, flags)]
        log = open(os.path.join(self.tmp, "pkg-node.log"), "w")
        proc = subprocess.Popen([os.path.join(self.root, "usr/bin/kvnode"), *args], stdout=log,
                                stderr=subprocess.STDOUT)
        log.close()
        self.procs.append(proc)  # killed by PID in cleanup
        wait_for(lambda: request("GET", api, "/readyz", timeout=5).status == 200, 20, "the packaged node ready")
        self.assertEqual(request("GET", api, "/healthz").raw, "ok")


if __name__ == "__main__":
    unittest.main()
