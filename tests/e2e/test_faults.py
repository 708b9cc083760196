# SPDX-License-Identifier: Apache-2.0
"""Fault-injection sweep: every PKCS#11 call that provision, pickup and restore
make is failed in turn through the faultp11 shim (tests/faultp11), and what the
command leaves behind is read back through the real SoftHSM2 module.

For each command the sweep first runs it once without a fault to count its
calls (and log which function each call is). Then, for every call index N
(a stride for the read-only calls before the first write, every call from the
first write on), it restores the token folder from a snapshot and runs the
command with call N failing, CKR_DEVICE_REMOVED and CKR_DEVICE_ERROR taking
turns; a subset (the calls that write and the call after each) is run again
with a sticky fault, as if the token were pulled out there. After each run:

  * the exit status is a contract code (0, 3, 5, 6, 7, 8): never 1, never a
    signal; a failure says something on stderr;
  * the token, read by `tokenprov list --json` through the real module, is
    exactly as before or fully done: no private key without its certificate,
    no certificate without its key, no half chain, no transport key. A sticky
    fault (a pulled-out token) cannot be rolled back on the token, so there a
    partial state is allowed as long as it is one a rerun completes;
  * an exit 0 only with the token fully done;
  * no file half written (backups are complete PKCS#12 files or absent, and no
    temporary file is left);
  * a second run without the fault completes (every run whose token is not
    as before, and a sample of the others).

Runs go to FAULT_JOBS worker slots (default 2), each with its own SoftHSM2
configuration and token folder. FAULT_STRIDE (default 3) is the stride for
the read-only calls before the first write.

The sanitizer build (TOKENPROV_SANITIZED=1, set by CTest) runs a deterministic
sample of each plan (sample() below: every call that writes, the first run of
every function, the sticky run on each write, and every FAULT_SAMPLE-th of the
rest, default 3), so every phase of every command is still failed while ASan's
slowdown stays far from the CTest timeout. The release build runs every plan
whole; FAULT_SAMPLE=1 forces the whole plan anywhere (the longer run). CTest
runs each sweep as a test of its own (e2e.test_faults.test_..._sweep)."""

# ctest: one test per function

import concurrent.futures
import contextlib
import json
import os
import queue
import shutil
import subprocess
import time

from harness import Sandbox, TestCA, main, expect, sh, SRC, SOFTHSM_MODULE, USER_PIN
from faultp11 import count_calls, run_with_fault, read_log
from scepserver import ScepServer

DEMO = os.path.join(SRC, "tokens", "softhsm-demo.toml")
CONTRACT_CODES = {0, 3, 5, 6, 7, 8}
RVS = ("CKR_DEVICE_REMOVED", "CKR_DEVICE_ERROR")
# Calls that change the token (or start doing so).
WRITES = {"C_InitToken", "C_InitPIN", "C_SetPIN", "C_CreateObject", "C_CopyObject", "C_DestroyObject",
          "C_SetAttributeValue", "C_GenerateKeyPair", "C_GenerateKey", "C_UnwrapKey", "C_DeriveKey",
          "C_WrapKey"}
JOBS = max(1, int(os.environ.get("FAULT_JOBS", "2")))
STRIDE = max(1, int(os.environ.get("FAULT_STRIDE", "3")))
SANITIZED = os.environ.get("TOKENPROV_SANITIZED") == "1"
SAMPLE = max(1, int(os.environ.get("FAULT_SAMPLE", "3" if SANITIZED else "1")))
RERUN_SAMPLE = 4  # every RERUN_SAMPLE-th run whose token is as before is rerun too
TRANSPORT_LABEL = "tokenprov transport key"


# --------------------------------------------------------------------------
# Token state, read through the real module.

def norm(o):
    return (o["class"], o.get("label", ""), o.get("id", ""), o.get("subject", ""), o.get("issuer", ""),
            o.get("serial", ""), bool(o.get("authority", False)), o.get("key_type", ""),
            o.get("extractable"), o.get("sensitive"))


class TokenState:
    """What `tokenprov list --json` shows of one token: initialized or not, and its objects."""

    def __init__(self, initialized, user_pin_ok, objects):
        self.initialized = initialized
        self.user_pin_ok = user_pin_ok
        self.objects = sorted(norm(o) for o in objects)

    def key(self):
        return (self.initialized, self.user_pin_ok, tuple(self.objects))

    def __eq__(self, other):
        return self.key() == other.key()

    def by_class(self, cls):
        return [o for o in self.objects if o[0] == cls]

    def describe(self):
        if not self.initialized:
            return "blank token"
        if not self.user_pin_ok:
            return "initialized token without a usable user PIN"
        return ", ".join("%s %r id=%s%s" % (o[0], o[1], o[2][:8], " (CA)" if o[6] else "") for o in self.objects) \
            or "initialized token, no objects"


def read_state(sb, slot, serial):
    """The token with SERIAL as the real SoftHSM module sees it in SLOT's token folder. SERIAL
    None: the only initialized token, else the blank one (SoftHSM gives a token its serial when
    it is initialized)."""
    env = dict(slot.env)
    r = sb.tp("--module", SOFTHSM_MODULE, "list", "--json", env=env)
    expect(r.returncode == 0, "list failed: %s" % r.stderr)
    all_toks = json.loads(r.stdout)["tokens"]
    if serial is None:
        toks = [t for t in all_toks if t["initialized"]] or [t for t in all_toks if not t["initialized"]]
    else:
        toks = [t for t in all_toks if t["serial"] == serial]
    expect(len(toks) == 1, "token %s not listed: %s" % (serial, r.stdout))
    t = toks[0]
    serial = t["serial"]
    if not t["initialized"]:
        return TokenState(False, False, [])
    r = sb.tp("--module", SOFTHSM_MODULE, "list", "--json", "--token", "serial:" + serial,
              "--pin-source", "env:TP_PIN", env=env)
    if r.returncode == 3:  # initialized, but the user PIN cannot log in (never set)
        return TokenState(True, False, [])
    expect(r.returncode == 0, "list --pin-source failed (%d): %s" % (r.returncode, r.stderr))
    return TokenState(True, True, json.loads(r.stdout)["tokens"][0]["objects"])


def invariants(st, before):
    """Problems in a token state whatever the command: the pairing of keys and certificates
    the run made (objects that were there before the run are not its doing)."""
    bad = []
    old = set(before.objects)
    ids = lambda objs: {o[2] for o in objs}
    new = [o for o in st.objects if o not in old]
    privs, pubs = ids(st.by_class("private-key")), ids(st.by_class("public-key"))
    leaves = ids(o for o in st.by_class("certificate") if not o[6])
    new_privs = ids(o for o in new if o[0] == "private-key")
    new_leaves = ids(o for o in new if o[0] == "certificate" and not o[6])
    new_pubs = ids(o for o in new if o[0] == "public-key")
    if any(o[1] == TRANSPORT_LABEL for o in st.objects) or st.by_class("secret-key"):
        bad.append("a secret key (the transport key?) is on the token")
    for i in sorted(new_privs - leaves):
        bad.append("the run left private key id %s without a certificate" % i)
    for i in sorted(new_leaves - privs):
        bad.append("the run left certificate id %s without its private key" % i)
    for i in sorted((new_privs - pubs) | (new_pubs - privs)):
        bad.append("the run left id %s with only one half of the key pair" % i)
    return bad


# --------------------------------------------------------------------------
# Worker slots: a private SoftHSM2 configuration and token folder each.

class Slot:
    def __init__(self, sb, i):
        self.dir = sb.path("slot%d" % i)
        self.tokens = os.path.join(self.dir, "tokens")
        os.makedirs(self.tokens)
        with open(os.path.join(SRC, "softhsm-config", "softhsm2.conf.in")) as f:
            conf = f.read().replace("@TOKENDIR@", self.tokens)
        self.conf = os.path.join(self.dir, "softhsm2.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        self.out = os.path.join(self.dir, "out")  # files a command writes (backups)
        self.env = {"SOFTHSM2_CONF": self.conf}

    def restore(self, snapshot):
        shutil.rmtree(self.tokens)
        shutil.copytree(snapshot, self.tokens)
        shutil.rmtree(self.out, ignore_errors=True)
        os.makedirs(self.out)


def snapshot(sb, name):
    dst = sb.path("snap-" + name)
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(sb.tokens, dst)
    return dst


# --------------------------------------------------------------------------
# The sweep.

class Scenario:
    """name; args(slot) -> argv; env: extra environment (secrets); serial: the token's;
    is_done(state) -> bool; before: the TokenState before; resumable(state): a partial
    state a rerun is expected to complete even after a non-sticky fault (blank init)."""

    def __init__(self, name, args, env, serial, is_done, before, resumable=None, check_files=None,
                 full=None, stride=None):
        self.name, self.args, self.env, self.serial = name, args, env, serial
        self.full, self.stride = full, stride
        self.is_done, self.before = is_done, before
        self.resumable = resumable or (lambda st: False)
        self.check_files = check_files or (lambda slot, st, rc: [])


def write_phase(names):
    """From the call before the first write to the last call."""
    first_write = next((i + 1 for i, f in enumerate(names) if f in WRITES), len(names))
    return range(max(1, first_write - 1), len(names) + 1)


def plan(names, full=write_phase, stride=None):
    """(n, rv, sticky) runs for a command whose calls are NAMES[n-1]: every call in FULL(names);
    outside it every STRIDE-th call and the first call of each function."""
    total = len(names)
    stride = stride or STRIDE
    always = set(full(names))
    runs, seen = [], set()
    for n in range(1, total + 1):
        if n in always or n % stride == 1 or n == total or names[n - 1] not in seen:
            runs.append((n, RVS[n % 2], False))
        seen.add(names[n - 1])
    sticky = set()
    for i, f in enumerate(names):
        if f in WRITES:
            sticky.update((i + 1, i + 2))
    runs += [(n, "CKR_DEVICE_REMOVED", True) for n in sorted(sticky) if n <= total]
    return sample(runs, names, SAMPLE)


def sample(runs, names, every):
    """A deterministic subset of RUNS that still fails every phase: each call that writes (and
    its sticky run), the first run of each function, the last call, and every EVERY-th of the
    other runs. EVERY 1: all of RUNS."""
    if every <= 1:
        return runs
    kept, seen, rest = [], set(), 0
    for n, rv, sticky in runs:
        fn = names[n - 1]
        key = (fn, sticky)
        if fn in WRITES or key not in seen or n == len(names):
            kept.append((n, rv, sticky))
        else:
            rest += 1
            if rest % every == 0:
                kept.append((n, rv, sticky))
        seen.add(key)
    return kept


def sweep(sb, sc, snap, slots):
    """Counts SC's calls, runs the plan over SLOTS; returns (runs, seconds); raises on the first
    failures (all of them listed)."""
    t0 = time.monotonic()
    slot = slots.get()
    try:
        slot.restore(snap)
        log = os.path.join(slot.dir, "count.log")
        env = dict(slot.env, **sc.env)
        env["FAULTP11_LOG"] = log
        total = count_calls(sb, sc.args(slot), env=env)
        names = [f for (_, f, _, _) in read_log(log)]
        os.unlink(log)
        expect(len(names) == total, "log and count disagree")
        st = read_state(sb, slot, sc.serial)
        expect(sc.is_done(st), "%s: the run without a fault did not finish the token: %s" % (sc.name, st.describe()))
        expect(not sc.check_files(slot, st, 0), "%s: files after a clean run: %s" % (sc.name, sc.check_files(slot, st, 0)))
    finally:
        slots.put(slot)
    runs = plan(names, sc.full or write_phase, sc.stride)
    problems, counter = [], {"rerun": 0}

    def one(run):
        n, rv, sticky = run
        slot = slots.get()
        try:
            return check_one(sb, sc, snap, slot, n, rv, sticky, names[n - 1], counter)
        finally:
            slots.put(slot)

    with concurrent.futures.ThreadPoolExecutor(max_workers=slots.qsize()) as ex:
        for res in ex.map(one, runs):
            problems.extend(res)
    secs = time.monotonic() - t0
    print("  %s: %d calls, %d faulty runs%s, %d reruns, exit codes %s, %.1fs"
          % (sc.name, total, len(runs), " (sample 1/%d of the rest)" % SAMPLE if SAMPLE > 1 else "", counter["rerun"], sorted(counter.get("codes", {}).items()), secs), flush=True)
    expect(not problems, "%s: %d problem(s):\n  %s" % (sc.name, len(problems), "\n  ".join(problems)))
    return len(runs), secs


def check_one(sb, sc, snap, slot, n, rv, sticky, fn, counter):
    where = "%s: call %d (%s) failing with %s%s" % (sc.name, n, fn, rv, " (sticky)" if sticky else "")
    slot.restore(snap)
    env = dict(slot.env, **sc.env)
    r = run_with_fault(sb, sc.args(slot), n, rv, sticky=sticky, env=env)
    out = []
    if r.returncode < 0:
        return ["%s: killed by signal %d\n%s" % (where, -r.returncode, r.stderr[-2000:])]
    if r.returncode not in CONTRACT_CODES:
        out.append("%s: exit %d, not a contract code\n    %s" % (where, r.returncode, r.stderr.strip()[-1500:]))
    if r.returncode != 0 and "tokenprov:" not in r.stderr:
        out.append("%s: exit %d without a message on stderr" % (where, r.returncode))
    # A device error is a token problem (6), whatever the command was doing, and the message
    # says which: never "bad input" or "CA failure" for what the token did.
    if r.returncode not in (0, 6):
        out.append("%s: exit %d for a token failure, not 6\n    %s" % (where, r.returncode, r.stderr.strip()[-600:]))
    elif r.returncode == 6 and rv not in r.stderr:
        out.append("%s: the message does not name %s\n    %s" % (where, rv, r.stderr.strip()[-600:]))
    st = read_state(sb, slot, sc.serial)
    done, before = sc.is_done(st), st == sc.before
    if not sticky:
        for p in invariants(st, sc.before):
            out.append("%s: %s (token: %s)" % (where, p, st.describe()))
    else:
        # A pulled-out token cannot be rolled back, but the write order keeps what is left
        # harmless: never a certificate before its key and chain, never the transport key.
        new = [o for o in st.objects if o not in set(sc.before.objects)]
        if any(o[0] == "certificate" and not o[6] for o in new) and not done:
            out.append("%s: a certificate was written before the rest was complete: %s" % (where, st.describe()))
        if st.by_class("secret-key"):
            out.append("%s: a secret key is on the token: %s" % (where, st.describe()))
    if r.returncode == 0 and not done:
        out.append("%s: exit 0 but the token is not done: %s" % (where, st.describe()))
    partial = not done and not before
    if partial and not sticky and not sc.resumable(st):
        out.append("%s: exit %d left the token half done: %s\n    %s"
                   % (where, r.returncode, st.describe(), r.stderr.strip()[-600:]))
    out += ["%s: %s" % (where, p) for p in sc.check_files(slot, st, r.returncode)]
    counter.setdefault("seen", 0)
    counter["seen"] += 1
    codes = counter.setdefault("codes", {})
    codes[r.returncode] = codes.get(r.returncode, 0) + 1
    if (not before and not done) or (before and counter["seen"] % RERUN_SAMPLE == 0):
        counter["rerun"] += 1
        shutil.rmtree(slot.out, ignore_errors=True)
        os.makedirs(slot.out)
        r2 = sb.tp("--module", SOFTHSM_MODULE, *sc.args(slot), env=env)
        st2 = read_state(sb, slot, sc.serial)
        if r2.returncode != 0 or not sc.is_done(st2):
            out.append("%s: the rerun without a fault exited %d and left: %s (after the fault: %s)\n    %s"
                       % (where, r2.returncode, st2.describe(), st.describe(), r2.stderr.strip()[-600:]))
        else:
            out += ["%s: after the rerun: %s" % (where, p) for p in invariants(st2, sc.before)]
    return out


def make_slots(sb):
    q = queue.Queue()
    for i in range(JOBS):
        q.put(Slot(sb, i))
    return q


# --------------------------------------------------------------------------
# What "done" means per command.

def exact(done_state):
    return lambda st: st == done_state


def p12_files(slot, st, rc):
    """Backups: complete or absent; never a temporary file."""
    bad = []
    for f in os.listdir(slot.out):
        p = os.path.join(slot.out, f)
        if f.startswith("."):
            bad.append("temporary file left: " + f)
            continue
        r = subprocess.run(["openssl", "pkcs12", "-in", p, "-passin", "env:PW", "-noout"], capture_output=True,
                           env=dict(os.environ, PW="backup-password"))
        if r.returncode != 0:
            bad.append("backup %s does not open: %s" % (f, r.stderr.strip()[:200]))
    if rc == 0 and not os.listdir(slot.out):
        bad.append("exit 0 but no backup file")
    return bad


def provisioned(label, n_cas):
    """One key pair LABEL with its certificate under one id, N_CAS CA certificates, nothing else."""
    def done(st):
        if not st.initialized or not st.user_pin_ok:
            return False
        privs, pubs = st.by_class("private-key"), st.by_class("public-key")
        certs = st.by_class("certificate")
        leaves = [c for c in certs if not c[6]]
        return (len(privs) == 1 and len(pubs) == 1 and len(leaves) == 1 and privs[0][1] == label
                and privs[0][2] == pubs[0][2] == leaves[0][2] and len(certs) - 1 == n_cas
                and len(st.objects) == 3 + n_cas)
    return done


# --------------------------------------------------------------------------
# The tests.

def keygen_csr(sb, token, label, alg="ec-p256", exportable=False):
    args = ["keygen", "--token", token, "--pin-source", "env:TP_PIN", "--algorithm", alg, "--label", label]
    if exportable:
        args.append("--exportable")
    kid = sb.tpj(*args)["key"]["id"]
    csr = sb.path(label + ".csr")
    sb.tp("csr", "--token", token, "--pin-source", "env:TP_PIN", "--key", label, "--subject",
          "/CN=%s/O=Example" % label, "--out", csr, check=0)
    return kid, csr


def test_pickup_sweep():
    with Sandbox() as sb:
        serial = sb.create_token("flt")
        _, csr = keygen_csr(sb, "flt", "alice")
        ca = TestCA(sb)
        leaf = ca.issue(csr, sb.path("alice.pem"))
        bundle = sb.write("bundle.pem", open(leaf).read() + open(ca.int).read() + open(ca.root).read())
        snap = snapshot(sb, "pickup")
        slots = make_slots(sb)
        slot = slots.queue[0]
        slot.restore(snap)
        before = read_state(sb, slot, serial)
        args = lambda s: ["pickup", "--token", "flt", "--pin-source", "env:TP_PIN", "--cert", bundle]
        sb.tp("--module", SOFTHSM_MODULE, *args(slot), env=slot.env, check=0)
        done = read_state(sb, slot, serial)
        expect(len(done.by_class("certificate")) == 3, done.describe())
        sweep(sb, Scenario("pickup", args, {}, serial, exact(done), before), snap, slots)


def test_restore_sweep():
    with Sandbox() as sb:
        sb.create_token("src")
        serial = sb.create_token("dst")
        _, csr = keygen_csr(sb, "src", "bob", exportable=True)
        ca = TestCA(sb)
        leaf = ca.issue(csr, sb.path("bob.pem"))
        sb.tp("pickup", "--token", "src", "--pin-source", "env:TP_PIN", "--cert",
              sb.write("b.pem", open(leaf).read() + ca.chain_pem()), check=0)
        p12 = sb.path("bob.p12")
        sb.tp("backup", "--token", "src", "--pin-source", "env:TP_PIN", "--key", "bob", "--out", p12,
              "--password-source", "env:PW", "--compat", "legacy", env={"PW": "backup-password"}, check=0)
        snap = snapshot(sb, "restore")
        slots = make_slots(sb)
        slot = slots.queue[0]
        slot.restore(snap)
        before = read_state(sb, slot, serial)
        env = {"PW": "backup-password"}
        args = lambda s: ["restore", "--token", "dst", "--pin-source", "env:TP_PIN", "--in", p12,
                          "--password-source", "env:PW"]
        sb.tp("--module", SOFTHSM_MODULE, *args(slot), env=dict(slot.env, **env), check=0)
        done = read_state(sb, slot, serial)
        expect(len(done.objects) == 5, done.describe())
        sweep(sb, Scenario("restore", args, env, serial, exact(done), before), snap, slots)


def test_provision_cert_dir_sweep():
    with Sandbox() as sb:
        serial = sb.create_token("tp-carol")
        csrs, certs = sb.path("csrs"), sb.path("certs")
        os.makedirs(csrs)
        os.makedirs(certs)
        base = ["provision", "--profile", DEMO, "--token", "tp-carol", "--subject", "/CN=Carol/O=Example",
                "--pin-source", "env:TP_PIN"]
        doc = sb.tpj(*base, "--csr-dir", csrs)
        ca = TestCA(sb)
        leaf = ca.issue(doc["keys"][0]["csr_file"], sb.path("carol.pem"))
        # The CA's answer: leaf and both CA certificates in one file, beside an unrelated file.
        with open(os.path.join(certs, "carol.pem"), "w") as f:
            f.write(open(leaf).read() + ca.chain_pem())
        with open(os.path.join(certs, "README.txt"), "w") as f:
            f.write("not a certificate\n")
        snap = snapshot(sb, "certdir")
        slots = make_slots(sb)
        slot = slots.queue[0]
        slot.restore(snap)
        before = read_state(sb, slot, serial)
        args = lambda s: base + ["--cert-dir", certs, "--backup-dir", s.out, "--password-source", "env:PW"]
        sweep(sb, Scenario("provision --cert-dir, backup", args, {"PW": "backup-password"}, serial,
                           provisioned("auth-carol", 2), before, check_files=p12_files), snap, slots)


def with_cas(stack, slots):
    """A CA of its own for every slot: scepserver revokes the subject's older certificate on
    every enrollment, and two of those at the same moment occasionally make it answer
    badRequest (a CA-side race the sweep would report as a wrong exit code)."""
    for s in slots.queue:
        s.ca = stack.enter_context(ScepServer(challenge="otp"))


def test_provision_scep_sweep():
    with Sandbox() as sb, contextlib.ExitStack() as stack:
        serial = sb.create_token("demo-dana")
        snap = snapshot(sb, "scep")
        slots = make_slots(sb)
        with_cas(stack, slots)
        slot = slots.queue[0]
        slot.restore(snap)
        before = read_state(sb, slot, serial)
        env = {"CH": "otp"}
        args = lambda s: ["provision", "--profile", DEMO, "--subject", "/CN=Dana/O=Example", "--scep-url", s.ca.url,
                          "--challenge-source", "env:CH", "--ca-fingerprint", s.ca.fingerprint,
                          "--pin-source", "env:TP_PIN"]
        sweep(sb, Scenario("provision (SCEP)", args, env, serial, provisioned("auth-dana", 1), before),
              snap, slots)


def test_provision_blank_token_sweep():
    """A blank token: initialization cannot be undone, so a token left initialized and empty
    is allowed, as long as the rerun completes it (with the same SO PIN)."""
    with Sandbox() as sb, contextlib.ExitStack() as stack:
        r = sb.tp("list", "--json", check=0)  # SoftHSM2 always offers one blank token in a free slot
        expect([t["initialized"] for t in json.loads(r.stdout)["tokens"]] == [False], r.stdout)
        serial = None
        snap = snapshot(sb, "blank")
        slots = make_slots(sb)
        with_cas(stack, slots)
        slot = slots.queue[0]
        slot.restore(snap)
        before = read_state(sb, slot, serial)
        env = {"CH": "otp"}
        args = lambda s: ["provision", "--profile", DEMO, "--subject", "/CN=Erin/O=Example", "--scep-url", s.ca.url,
                          "--challenge-source", "env:CH", "--ca-fingerprint", s.ca.fingerprint,
                          "--pin-source", "env:TP_PIN", "--so-pin-source", "env:TP_SO_PIN"]
        resumable = lambda st: st.initialized and not st.objects

        def init_phase(names):
            # Every call up to the user's login after the initialization; the rest is the
            # SCEP sweep's, sampled here.
            logins = [i + 1 for i, f in enumerate(names) if f == "C_Login"]
            return range(1, logins[1] + 2)

        sweep(sb, Scenario("provision (blank token)", args, env, serial, provisioned("auth-erin", 1), before,
                           resumable=resumable, full=init_phase, stride=6), snap, slots)


if __name__ == "__main__":
    main([test_pickup_sweep, test_restore_sweep, test_provision_cert_dir_sweep, test_provision_scep_sweep,
          test_provision_blank_token_sweep])
