"""Integration: the .deb cpack builds (scripts/package.sh --tree) has the right files, modes, control fields, unit and maintainer scripts; every flag is documented."""

import gzip
import os
import re
import shlex
import shutil
import stat
import subprocess
import tempfile
import unittest

import kvcluster
from kvcluster import ClusterTest, free_port, request, wait_for

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
UNIT = "lib/systemd/system/kvnode.service"
DEFAULTS = "etc/default/kvnode"
MAN = "usr/share/man/man1/kvnode.1.gz"


def run(*args, **kw):
    kw.setdefault("timeout", 180)
    return subprocess.run(list(args), capture_output=True, text=True, **kw)


def unit_settings(text):
    """A systemd unit as {(section, key): [values]}, in order (keys may repeat)."""
    out, section = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.setdefault((section, key), []).append(value)
    return out


class PackageTest(ClusterTest):
    """Builds the package once from the tree the tested kvnode was built in."""

    @classmethod
    def setUpClass(cls):
        cls.out = tempfile.mkdtemp(prefix="ckv-pkg-")
        tree = os.path.dirname(kvcluster.KVNODE)
        p = run(os.path.join(ROOT, "scripts", "package.sh"), "--tree", tree, "--out", cls.out,
                "--version", "1.2.3-test")
        if p.returncode != 0:
            raise AssertionError(f"package.sh failed:\n{p.stdout}{p.stderr}")
        cls.deb = p.stdout.strip().splitlines()[-1]
        cls.root = os.path.join(cls.out, "root")
        x = run("dpkg-deb", "-x", cls.deb, cls.root)
        assert x.returncode == 0, x.stderr
        cls.ctrl = os.path.join(cls.out, "ctrl")
        e = run("dpkg-deb", "-e", cls.deb, cls.ctrl)
        assert e.returncode == 0, e.stderr

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.out, ignore_errors=True)

    def test_file_list_and_modes(self):
        self.assertEqual(os.path.basename(self.deb),
                         f"consensuskv_1.2.3-test_{run('dpkg', '--print-architecture').stdout.strip()}.deb")
        listing = run("dpkg-deb", "--contents", self.deb).stdout
        entries = {}
        for line in listing.splitlines():
            perms, owner, _size, _date, _time, path = line.split(None, 5)
            entries[path.lstrip(".").rstrip("/") or "/"] = (perms, owner)
        expected = {
            "/usr/bin/kvnode": "-rwxr-xr-x",
            "/" + UNIT: "-rw-r--r--",
            "/" + DEFAULTS: "-rw-r--r--",
            "/" + MAN: "-rw-r--r--",
            "/usr/share/doc/consensuskv/operations.md": "-rw-r--r--",
            "/usr/share/doc/consensuskv/README.md": "-rw-r--r--",
        }
        for path, perms in expected.items():
            self.assertEqual(entries.get(path), (perms, "root/root"), f"{path} in\n{listing}")
        files = {p for p, (perms, _) in entries.items() if not perms.startswith("d")}
        docs = {p for p in files if p.startswith("/usr/share/doc/consensuskv/")}
        self.assertEqual(files - docs, set(expected) - docs, "files outside the expected set")
        # postinst makes these (owned by the service's user); dpkg must not own them.
        for path in ("/var/lib/consensuskv", "/etc/consensuskv", "/usr/local"):
            self.assertFalse(any(p == path or p.startswith(path + "/") for p in entries), path)
        self.assertTrue(all(owner == "root/root" for _, owner in entries.values()))
        # Stripped (CPACK_STRIP_FILES): no debug sections left in the binary.
        sections = run("readelf", "-S", os.path.join(self.root, "usr/bin/kvnode")).stdout
        self.assertNotIn(".debug_info", sections)

    def test_control_fields(self):
        info = run("dpkg-deb", "--info", self.deb)
        self.assertEqual(info.returncode, 0, info.stderr)
        fields = run("dpkg-deb", "-f", self.deb).stdout
        for name, value in (("Package", "consensuskv"), ("Version", "1.2.3-test"),
                            ("Architecture", run("dpkg", "--print-architecture").stdout.strip()),
                            ("Section", "database"), ("Priority", "optional")):
            self.assertRegex(fields, rf"(?m)^{name}: {re.escape(value)}$")
        self.assertRegex(fields, r"(?m)^Maintainer: .+ <.+@.+>$")
        self.assertRegex(fields, r"(?m)^Installed-Size: [1-9][0-9]*$")
        self.assertRegex(fields, r"(?m)^Description: Raft-replicated key-value store with etcd's v3 API\n .+")
        long_description = re.search(r"(?m)^Description: .*\n((?: .*\n?)+)", fields).group(1).splitlines()
        self.assertGreaterEqual(len(long_description), 3, long_description)
        for line in long_description:  # Debian policy 5.6.13: indented, under 80 columns
            self.assertTrue(line.startswith(" ") and len(line) < 80 and ";" not in line, line)
        depends = re.search(r"(?m)^Depends: (.*)$", fields).group(1)
        for lib in ("adduser", "libc6", "libgrpc++", "libssl3", "libsodium"):
            self.assertIn(lib, depends)
        with open(os.path.join(self.ctrl, "conffiles")) as f:
            self.assertEqual(f.read().split(), ["/etc/default/kvnode"])
        for script in ("postinst", "prerm", "postrm"):
            path = os.path.join(self.ctrl, script)
            self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o755, script)
            self.assertEqual(run("sh", "-n", path).returncode, 0, f"{script} is not valid sh")
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(self.ctrl, "conffiles")).st_mode), 0o644)

    def maintainer_script(self, script, *args, user_exists):
        """Runs a packaged maintainer script with every command it may change the system with
        replaced by a stub that records its arguments; returns the recorded calls."""
        stubs = os.path.join(self.tmp, f"stubs-{script}-{'-'.join(args)}")
        os.makedirs(stubs)
        calls = os.path.join(stubs, "calls")
        for cmd in ("adduser", "deluser", "delgroup", "install", "rm", "rmdir", "systemctl",
                    "deb-systemd-helper", "deb-systemd-invoke", "getent"):
            rc = 2 if cmd == "getent" and not user_exists else 0
            with open(os.path.join(stubs, cmd), "w") as f:
                f.write(f'#!/bin/sh\necho "{cmd} $*" >>"{calls}"\nexit {rc}\n')
            os.chmod(os.path.join(stubs, cmd), 0o755)
        env = dict(os.environ, PATH=f"{stubs}:/usr/bin:/bin")
        p = run("sh", os.path.join(self.ctrl, script), *args, env=env)
        self.assertEqual(p.returncode, 0, f"{script} {args}: {p.stdout}{p.stderr}")
        if not os.path.exists(calls):
            return []
        with open(calls) as f:
            return [line.rstrip("\n") for line in f if not line.startswith("getent ")]

    def test_postinst_creates_the_user_and_dirs(self):
        calls = self.maintainer_script("postinst", "configure", "", user_exists=False)
        adduser = [c for c in calls if c.startswith("adduser ")]
        self.assertEqual(len(adduser), 1, calls)
        for arg in ("--system", "--group", "--home /var/lib/consensuskv", " consensuskv"):
            self.assertIn(arg, adduser[0])
        if not os.path.exists("/var/lib/consensuskv"):  # made only when missing
            self.assertIn("install -d -m 0750 -o consensuskv -g consensuskv /var/lib/consensuskv", calls)
        if not os.path.exists("/etc/consensuskv"):
            self.assertIn("install -d -m 0750 -o root -g consensuskv /etc/consensuskv", calls)
        self.assertFalse([c for c in calls if c.startswith(("rm ", "deluser"))], calls)
        # Not started on a first install (the flags need the operator first).
        self.assertFalse([c for c in calls if "start" in c], calls)
        again = self.maintainer_script("postinst", "configure", "1.0.0", user_exists=True)
        self.assertFalse([c for c in again if c.startswith("adduser ")], again)

    def test_remove_keeps_data_purge_deletes_it(self):
        for script in ("prerm", "postrm"):
            calls = self.maintainer_script(script, "remove", user_exists=True)
            self.assertFalse([c for c in calls if c.startswith(("rm", "deluser", "delgroup"))], (script, calls))
        for script, arg in (("prerm", "upgrade"), ("postrm", "upgrade")):
            calls = self.maintainer_script(script, arg, "1.2.4", user_exists=True)
            self.assertFalse([c for c in calls if c.startswith(("rm", "deluser")) or "stop" in c], (script, calls))
        purge = self.maintainer_script("postrm", "purge", user_exists=True)
        self.assertIn("rm -rf /var/lib/consensuskv", purge)
        self.assertIn("deluser --system consensuskv", purge)
        self.assertFalse([c for c in purge if c.startswith("rm ") and c != "rm -rf /var/lib/consensuskv"], purge)

    def test_unit_file(self):
        with open(os.path.join(self.root, UNIT)) as f:
            unit = f.read()
        s = unit_settings(unit)
        for key, values in ((("Service", "User"), ["consensuskv"]), (("Service", "Group"), ["consensuskv"]),
                            (("Service", "EnvironmentFile"), ["-/etc/default/kvnode",
                                                              "-/etc/consensuskv/kvnode.conf"]),
                            (("Service", "ExecStart"), ["/usr/bin/kvnode $KVNODE_FLAGS"]),
                            (("Service", "Restart"), ["on-failure"]),
                            (("Service", "LimitNOFILE"), ["65536"]),
                            (("Service", "StateDirectory"), ["consensuskv"]),
                            (("Service", "WorkingDirectory"), ["/var/lib/consensuskv"]),
                            (("Install", "WantedBy"), ["multi-user.target"])):
            self.assertEqual(s.get(key), values, key)
        self.assertNotIn("@", unit, "an unconfigured @VARIABLE@ is left")
        analyze = shutil.which("systemd-analyze")
        if analyze is None:
            self.skipTest("systemd-analyze not installed")
        # verify wants the unit's programs to exist: check a copy pointing into the extracted tree.
        unit_dir = os.path.join(self.out, "units")
        os.makedirs(unit_dir, exist_ok=True)
        copy = os.path.join(unit_dir, "kvnode.service")
        with open(copy, "w") as f:
            f.write(unit.replace("/usr/bin/kvnode", os.path.join(self.root, "usr/bin/kvnode")))
        p = run(analyze, "verify", "--recursive-errors=no", "--man=no", copy)
        self.assertEqual((p.returncode, p.stdout + p.stderr), (0, ""))

    def test_lintian(self):
        lintian = shutil.which("lintian")
        if lintian is None:
            self.skipTest("lintian not installed (not in scripts/setup.sh: it pulls ~130 packages)")
        p = run(lintian, "--fail-on", "error", self.deb)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_packaged_man_page_is_docs_kvnode_1(self):
        with gzip.open(os.path.join(self.root, MAN), "rt") as f:
            packaged = f.read()
        with open(os.path.join(ROOT, "docs", "kvnode.1")) as f:
            self.assertEqual(packaged, f.read())

    def test_default_flags_start_a_node(self):
        """The packaged binary, with the packaged flags (addresses and data dir moved), founds a cluster."""
        with open(os.path.join(self.root, DEFAULTS)) as f:
            text = f.read()
        flags = shlex.split(re.search(r'(?m)^KVNODE_FLAGS="(.*)"$', text).group(1))
        names = [f.split("=", 1)[0] for f in flags]
        self.assertEqual(names, ["-raft-address", "-api-address", "-grpc-address", "-data-dir", "-bootstrap"])
        self.assertIn("-data-dir=/var/lib/consensuskv/data", flags)
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


# --- every flag documented -------------------------------------------------

COMMANDS = {"kvnode": [], "restore": ["restore"], "snapshot status": ["snapshot", "status"]}


def help_flags(text):
    """The long flags (and -w) of a CLI11 --help text, without the dashes."""
    flags = set()
    for line in text.splitlines():
        m = re.match(r"^\s{1,4}((?:-[a-z], )?--?[a-z][a-z0-9-]*(?:,\s*--?[a-z][a-z0-9-]*)*)", line)
        if m:
            flags.update(f.lstrip("-") for f in re.split(r",\s*", m.group(1)))
    return flags


def source_flags():
    """Every option added to a parser in src/cmd/kvnode.cc, per command (by the function it is in)."""
    with open(os.path.join(ROOT, "src", "cmd", "kvnode.cc")) as f:
        src = f.read()
    parts = {"restore": src[src.index("int run_restore("):src.index("int run_snapshot(")],
             "snapshot status": src[src.index("int run_snapshot("):src.index("int main(")],
             "kvnode": src[src.index("int main("):]}
    out = {}
    for cmd, text in parts.items():
        names = set()
        for spec in re.findall(r'add_(?:option|flag)\(\s*"([^"]+)"', text):
            names.update(n.lstrip("-") for n in spec.split(",") if n.startswith("-"))
        out[cmd] = names | {"h", "help"}
    return out


def man_flags():
    """The flags documented in docs/kvnode.1's .TP headings, per command (OPTIONS; SUBCOMMANDS' .SS)."""
    with open(os.path.join(ROOT, "docs", "kvnode.1")) as f:
        lines = f.read().splitlines()
    out = {c: set() for c in COMMANDS}
    cmd = None
    for i, line in enumerate(lines):
        if line.startswith(".SH "):
            cmd = "kvnode" if line == ".SH OPTIONS" else None
        elif line.startswith(".SS kvnode "):
            cmd = line[len(".SS kvnode "):]
        elif line == ".TP" and cmd is not None and i + 1 < len(lines):
            head = re.sub(r"\\f[BIRP]", " ", lines[i + 1].replace("\\-", "-"))
            out[cmd].update(re.findall(r"(?<![\w-])--?([a-z][a-z0-9-]*)", head))
    return out


def operations_flags():
    """The flags in docs/operations.md's "## Flags" tables, per command ("### `kvnode restore`" ...)."""
    with open(os.path.join(ROOT, "docs", "operations.md")) as f:
        text = f.read()
    section = text[text.index("\n## Flags\n"):]
    nxt = re.search(r"\n## ", section[1:])
    section = section[:nxt.start() + 1] if nxt else section
    out = {c: set() for c in COMMANDS}
    cmd = "kvnode"
    for line in section.splitlines():
        m = re.match(r"^### `kvnode (.+)`$", line)
        if m:
            cmd = m.group(1)
            continue
        if line.startswith("| `-"):
            first = line.split("|")[1]
            out[cmd].update(f.lstrip("-") for f in re.findall(r"`(--?[a-z][a-z0-9-]*)`", first))
    return out


class FlagDocsTest(unittest.TestCase):
    """A flag the parser knows must be in --help, in kvnode(1) and in operations.md; nothing there that it does not know."""

    def documented(self, cmd):
        """What the docs must list for cmd: -h/--help is documented once, for kvnode itself."""
        return self.parser[cmd] if cmd == "kvnode" else self.parser[cmd] - {"h", "help"}

    @classmethod
    def setUpClass(cls):
        cls.help = {}
        for cmd, argv in COMMANDS.items():
            p = run(kvcluster.KVNODE, *argv, "--help", timeout=20)
            assert p.returncode == 0, (cmd, p.returncode, p.stderr)
            cls.help[cmd] = p.stdout
        cls.parser = source_flags()

    def test_help_lists_every_parser_flag(self):
        for cmd in COMMANDS:
            self.assertEqual(help_flags(self.help[cmd]), self.parser[cmd], cmd)
        # The main --help names the subcommands.
        self.assertIn("kvnode restore --snapshot FILE --data-dir DIR --raft-address", self.help["kvnode"])
        self.assertIn("kvnode snapshot status FILE", self.help["kvnode"])

    def test_man_page_documents_every_flag(self):
        man = man_flags()
        for cmd in COMMANDS:
            want = self.documented(cmd)
            self.assertEqual(man[cmd], want, f"docs/kvnode.1, {cmd}: missing "
                             f"{sorted(want - man[cmd])}, unknown {sorted(man[cmd] - want)}")

    def test_man_page_is_clean_troff(self):
        groff = shutil.which("groff")
        if groff is None:
            self.skipTest("groff not installed")
        p = run(groff, "-man", "-ww", "-z", "-t", os.path.join(ROOT, "docs", "kvnode.1"))
        self.assertEqual((p.returncode, p.stderr), (0, ""))

    def test_operations_md_lists_every_flag(self):
        ops = operations_flags()
        for cmd in COMMANDS:
            want = self.documented(cmd)
            self.assertEqual(ops[cmd], want, f"docs/operations.md, Flags, {cmd}: missing "
                             f"{sorted(want - ops[cmd])}, unknown {sorted(ops[cmd] - want)}")


if __name__ == "__main__":
    unittest.main()
