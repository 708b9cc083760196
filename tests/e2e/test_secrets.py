# SPDX-License-Identifier: Apache-2.0
"""No secret leaks: PINs, the SCEP challenge and backup passwords reach
tokenprov only through env:/file: sources, and never come out again: not in
the argv of tokenprov or of any process while it runs (tokenprov starts none),
not on stdout or stderr, not in the audit log or the fleet state file, not in
any file written (the sandbox, SoftHSM's token files included, is searched for
each secret in UTF-8, UTF-16, hex and base64; the encrypted PKCS#12 backups
too). And no option of any command takes a secret as its value."""

import base64
import os
import re
import subprocess
import threading
import time

from harness import Sandbox, main, expect, sh, BIN, SRC
from scepserver import ScepServer

DEMO = os.path.join(SRC, "tokens", "softhsm-demo.toml")
SECRETS = {
    "user PIN": "PIN-7f3a91",
    "new user PIN": "PIN-new-4d19b7",
    "SO PIN": "SO-PIN-5c2e88",
    "challenge": "CHAL-93be10",
    "backup password": "PW-backup-2b8c61e0",
    "wrong user PIN": "PIN-wrong-e1c2d4",
    "wrong backup password": "PW-wrong-77aa19",
    "wrong challenge": "CHAL-wrong-5521f0",
}
ENV = {"TPS_PIN": SECRETS["user PIN"], "TPS_NEWPIN": SECRETS["new user PIN"], "TPS_SO": SECRETS["SO PIN"],
       "TPS_CH": SECRETS["challenge"], "TPS_PW": SECRETS["backup password"],
       "TPS_BADPIN": SECRETS["wrong user PIN"], "TPS_BADPW": SECRETS["wrong backup password"],
       "TPS_BADCH": SECRETS["wrong challenge"]}


def encodings(secret):
    b = secret.encode()
    return {"utf-8": b, "utf-16-le": secret.encode("utf-16-le"), "utf-16-be": secret.encode("utf-16-be"),
            "hex": b.hex().encode(), "HEX": b.hex().upper().encode(), "base64": base64.b64encode(b).rstrip(b"=")}


# --------------------------------------------------------------------------
# Watching every process while a command runs.

def _procs():
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                argv = f.read().split(b"\0")
            with open("/proc/%s/stat" % d) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        out[int(d)] = (ppid, argv)
    return out


class Watch(threading.Thread):
    """Polls /proc until stopped; remembers every process seen (pid -> (ppid, argv))."""

    def __init__(self):
        super().__init__(daemon=True)
        self.seen, self.stop_flag, self.polls = {}, threading.Event(), 0

    def run(self):
        while not self.stop_flag.is_set():
            for pid, v in _procs().items():
                self.seen.setdefault(pid, v)
            self.polls += 1

    def stop(self):
        self.stop_flag.set()
        self.join()


class Runner:
    def __init__(self, sb, secret_dir):
        self.sb, self.secret_dir = sb, secret_dir
        self.problems, self.runs, self.children = [], 0, []
        self.missed = []  # runs whose process the watcher never saw (too short-lived under load)

    def tp(self, *args, code=0, extra_env=None):
        env = dict(self.sb.env)
        env.update(ENV)
        env.update(extra_env or {})
        watch = Watch()
        watch.start()
        time.sleep(0.01)
        p = subprocess.Popen([BIN] + list(args), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = p.communicate(timeout=300)
        watch.stop()
        self.runs += 1
        what = "tokenprov " + " ".join(args)
        if p.returncode != code:
            self.problems.append("%s: exit %d, wanted %d: %s" % (what, p.returncode, code, err.decode()[-500:]))
        expect(watch.polls > 0, "the /proc watcher never ran")
        if p.pid not in watch.seen:
            self.missed.append(what)
        # tokenprov and everything under it: no secret in argv, and no child at all.
        tree, grew = {p.pid}, True
        while grew:
            grew = False
            for pid, (ppid, _argv) in watch.seen.items():
                if ppid in tree and pid not in tree:
                    tree.add(pid)
                    grew = True
        for pid in sorted(tree - {p.pid}):
            self.children.append("%s started %r" % (what, watch.seen[pid][1]))
        for pid, (ppid, argv) in watch.seen.items():
            if argv and os.path.basename(argv[0]) == b"scepserver":
                continue  # the test CA: its -challenge is its own configuration
            for name, s in SECRETS.items():
                if any(s.encode() in a for a in argv):
                    self.problems.append("%s: the %s is in the argv of process %d: %r" % (what, name, pid, argv))
        for stream, data in (("stdout", out), ("stderr", err)):
            for name, s in SECRETS.items():
                for enc, b in encodings(s).items():
                    if b in data:
                        self.problems.append("%s: the %s (%s) is on %s" % (what, name, enc, stream))
        return out.decode(), err.decode()


def scan_files(root, skip):
    """(path, secret name, encoding) for every file under ROOT but SKIP holding a secret."""
    hits = []
    for d, dirs, files in os.walk(root):
        if os.path.abspath(d).startswith(os.path.abspath(skip)):
            continue
        for fn in files:
            p = os.path.join(d, fn)
            try:
                with open(p, "rb") as f:
                    data = f.read()
            except OSError:
                continue
            for name, s in SECRETS.items():
                for enc, b in encodings(s).items():
                    if b in data:
                        hits.append((p, name, enc))
    return hits


# --------------------------------------------------------------------------
# Tests

def test_no_secret_leaks():
    with Sandbox() as sb, ScepServer(challenge=SECRETS["challenge"]) as ca:
        sdir = sb.path("secret-inputs")  # the only place a secret may be: the source files
        os.makedirs(sdir)
        files = {}
        for name, s in SECRETS.items():
            files[name] = sb.write(os.path.join("secret-inputs", name.replace(" ", "-") + ".txt"), s + "\n")
        fs = lambda name: "file:" + files[name]
        run = Runner(sb, sdir)
        out = sb.path("out")
        os.makedirs(out)
        fp = ["--ca-fingerprint", ca.fingerprint, "--scep-url", ca.url]

        # init, pin change and unblock, keygen, csr, enroll, list.
        run.tp("init", "--label", "sec-a", "--so-pin-source", fs("SO PIN"), "--pin-source", "env:TPS_PIN")
        run.tp("pin", "change", "--token", "sec-a", "--pin-source", fs("user PIN"), "--new-pin-source", "env:TPS_NEWPIN")
        run.tp("pin", "unblock", "--token", "sec-a", "--so-pin-source", "env:TPS_SO", "--new-pin-source",
               fs("user PIN"))
        a = ["--token", "sec-a", "--pin-source", "env:TPS_PIN"]
        run.tp("keygen", *a, "--algorithm", "ec-p256", "--label", "k2", "--json")
        run.tp("csr", *a, "--key", "k2", "--subject", "/CN=K2", "--out", os.path.join(out, "k2.csr"))
        run.tp("enroll", "--token", "sec-a", "--pin-source", fs("user PIN"), "--challenge-source", fs("challenge"),
               *fp, "--label", "alice", "--subject", "/CN=Alice/O=Example", "--exportable", "--json")
        run.tp("list", *a, "--json")
        # backup and restore.
        p12 = os.path.join(out, "alice.p12")
        run.tp("backup", *a, "--key", "alice", "--out", p12, "--password-source", fs("backup password"), "--json")
        run.tp("init", "--label", "sec-b", "--so-pin-source", "env:TPS_SO", "--pin-source", fs("user PIN"))
        run.tp("restore", "--token", "sec-b", "--pin-source", fs("user PIN"), "--in", p12, "--password-source",
               "env:TPS_PW", "--json")
        # provision a blank token: SO PIN, user PIN, challenge, backup password, audit log.
        audit = os.path.join(out, "audit.jsonl")
        run.tp("provision", "--profile", DEMO, "--subject", "/CN=Dana/O=Example", *fp, "--challenge-source",
               "env:TPS_CH", "--so-pin-source", "env:TPS_SO", "--pin-source", fs("user PIN"), "--backup-dir", out,
               "--password-source", "env:TPS_PW", "--audit-log", audit, "--json")
        # fleet: a blank token from a manifest, with a state file and an audit log.
        manifest = sb.write("fleet.csv", "token,subject,user\nblank,/CN=Fred/O=Example,fred\n")
        state = os.path.join(out, "fleet-state.json")
        faudit = os.path.join(out, "fleet-audit.jsonl")
        run.tp("fleet", "--profile", DEMO, "--manifest", manifest, "--state", state, "--audit-log", faudit, *fp,
               "--challenge-source", fs("challenge"), "--so-pin-source", fs("SO PIN"), "--pin-source", "env:TPS_PIN",
               "--backup-dir", out, "--password-source", fs("backup password"))
        # Refusals must not echo what they refuse.
        run.tp("list", "--token", "sec-a", "--pin-source", "env:TPS_BADPIN", code=3)
        run.tp("restore", "--token", "sec-b", "--pin-source", "env:TPS_PIN", "--in", p12, "--password-source",
               fs("wrong backup password"), code=5)
        run.tp("enroll", *a, "--challenge-source", "env:TPS_BADCH", *fp, "--label", "bob", "--subject", "/CN=Bob",
               code=7)
        run.tp("provision", "--profile", DEMO, "--token", "sec-a", "--subject", "/CN=Gina", *fp, "--challenge-source",
               fs("wrong challenge"), "--pin-source", "env:TPS_PIN", "--audit-log", audit, "--user", "gina", code=7)

        # The watcher must have seen most runs, or its silence means nothing. A
        # busy machine can starve it for a short run, so a few misses are allowed.
        expect(len(run.missed) * 4 <= run.runs,
               "the /proc watcher missed %d of %d tokenprov runs: %s" % (len(run.missed), run.runs, run.missed))
        expect(not run.problems, "%d problem(s):\n  %s" % (len(run.problems), "\n  ".join(run.problems)))
        expect(not run.children, "tokenprov started processes:\n  " + "\n  ".join(run.children))
        # The files the runs wrote are there (so the scan below means something).
        for p in (audit, faudit, state, p12):
            expect(os.path.getsize(p) > 0, "%s is empty or missing" % p)
        backups = [f for f in os.listdir(out) if f.endswith(".p12")]
        expect(len(backups) == 3, backups)  # alice, the provisioned token's, the fleet token's
        for b in backups:  # encrypted under the password: openssl opens them with it
            sh(["openssl", "pkcs12", "-in", os.path.join(out, b), "-passin", "env:TPS_PW", "-noout"],
               env=dict(os.environ, TPS_PW=SECRETS["backup password"]))
        hits = scan_files(sb.dir, sdir)
        expect(not hits, "secrets in files:\n  " + "\n  ".join("%s: the %s (%s)" % h for h in hits))
        print("  %d runs, %d files scanned" % (run.runs, sum(len(f) for _, _, f in os.walk(sb.dir))))


SECRET_WORDS = re.compile(r"pin|pass|challenge|secret|otp|key-?phrase", re.I)


def help_options(argv):
    r = subprocess.run([BIN] + argv + ["--help"], capture_output=True, text=True)
    expect(r.returncode == 0, (argv, r.stderr))
    opts, subs, section = [], [], None
    for line in r.stdout.splitlines():
        if re.match(r"^\S.*:$", line):
            section = line.strip()
            continue
        m = re.match(r"^\s+((?:-\w,)?--?[\w-]+)(\s+(\S+))?", line)
        if m and section and section.startswith("Options"):
            names = m.group(1).split(",")
            takes = m.group(3) if m.group(3) and m.group(3).isupper() else None
            opts.append((names, takes))
        elif section and section.startswith("Subcommands"):
            m2 = re.match(r"^\s+(\w[\w-]*)\s", line)
            if m2:
                subs.append(m2.group(1))
    return opts, subs


def test_no_option_takes_a_secret():
    todo, seen, bad, count = [[]], set(), [], 0
    while todo:
        argv = todo.pop()
        opts, subs = help_options(argv)
        for names, takes in opts:
            count += 1
            for n in names:
                if SECRET_WORDS.search(n) and not n.endswith("-source"):
                    bad.append("tokenprov %s: %s%s" % (" ".join(argv), n, " " + takes if takes else ""))
        for s in subs:
            if tuple(argv + [s]) not in seen:
                seen.add(tuple(argv + [s]))
                todo.append(argv + [s])
    expect(len(seen) >= 12, "found only %d commands in --help: %s" % (len(seen), sorted(seen)))
    expect(not bad, "options that take a secret as their value:\n  " + "\n  ".join(bad))
    print("  %d commands, %d options checked" % (len(seen) + 1, count))


if __name__ == "__main__":
    main([test_no_secret_leaks, test_no_option_takes_a_secret])
