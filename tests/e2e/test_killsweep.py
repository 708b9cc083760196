#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The kill sweep (issue 20, findings 4 and 9): a command is killed with
SIGKILL before each of its PKCS#11 calls in turn (the faultp11 shim's
FAULTP11_KILL_AT), then run again as a desk would, and the token must end
exactly as one clean run leaves it: one private key, one public key and one
leaf certificate under one CKA_ID, the CA certificate, every object labelled,
nothing twice. A rerun that fails, or any other end state, is a bad state.

CI runs a deterministic sample (every KILL_SAMPLE-th call, default 6, 12
under the sanitizers, plus the first and last calls); the longer run, not in
CI, is every call: KILL_SAMPLE=1 ctest -R e2e.test_killsweep (or
scripts/kill-sweep.sh). Each test prints "kill sweep NAME: C calls, K kills
tried, B bad states"; docs/reliability.md has the measured figures."""
# ctest: one test per function
import os
import shutil
import time

from harness import Sandbox, main, expect, SRC
from faultp11 import count_calls, run_killed_at
from scepserver import ScepServer

SANITIZED = os.environ.get("TOKENPROV_SANITIZED") == "1"
SAMPLE = max(1, int(os.environ.get("KILL_SAMPLE", "12" if SANITIZED else "6")))
DEMO = os.path.join(SRC, "tokens", "softhsm-demo.toml")
CH = {"CH": "kill-otp"}


def plan(total):
    return sorted(set([1, total] + list(range(1, total + 1, SAMPLE))))


def end_state(sb, token):
    toks = [t["label"] for t in sb.list_json()["tokens"] if t["initialized"]]
    if toks != [token]:
        return ["initialized tokens %s" % toks]
    objs = sb.objects(token)
    privs = [o for o in objs if o["class"] == "private-key"]
    pubs = [o for o in objs if o["class"] == "public-key"]
    leaves = [o for o in objs if o["class"] == "certificate" and not o["authority"]]
    cas = [o for o in objs if o["class"] == "certificate" and o["authority"]]
    bad = []
    if len(privs) != 1 or len(pubs) != 1 or len(leaves) != 1:
        bad.append("%d private, %d public keys, %d leaf certificates" % (len(privs), len(pubs), len(leaves)))
    elif not (privs[0]["id"] == pubs[0]["id"] == leaves[0]["id"]):
        bad.append("the key pair and its certificate do not share one id")
    if len(cas) != 1:
        bad.append("%d CA certificates" % len(cas))
    if any(not o.get("label") for o in objs):
        bad.append("an object without a label")
    if len(objs) != 4:
        bad.append("%d objects" % len(objs))
    return bad


def sweep(name, sb, token, args, env):
    snap = sb.path("snap")
    shutil.copytree(sb.tokens, snap)

    def restore():
        shutil.rmtree(sb.tokens)
        shutil.copytree(snap, sb.tokens)

    total = count_calls(sb, args, env=env)
    expect(not end_state(sb, token), "the clean run: %s" % end_state(sb, token))
    kills, bad, t0 = 0, [], time.monotonic()
    for n in plan(total):
        restore()
        r = run_killed_at(sb, args, n, env=env)
        if r.returncode == -9:
            kills += 1
        elif r.returncode != 0:
            bad.append("call %d: the killed run exited %d: %s" % (n, r.returncode, r.stderr[-400:]))
            continue
        again = sb.tp(*args, env=env)  # the desk runs the same command again
        if again.returncode != 0:
            bad.append("call %d: the rerun exited %d: %s" % (n, again.returncode, again.stderr[-600:]))
            continue
        for b in end_state(sb, token):
            bad.append("call %d: %s" % (n, b))
    print("kill sweep %s: %d calls, %d kills tried, %d bad states (sample 1/%d, %.0f s)"
          % (name, total, kills, len(bad), SAMPLE, time.monotonic() - t0), flush=True)
    expect(kills > 0, "no run was killed")
    expect(not bad, "\n".join(bad[:20]))


def test_enroll_kill_sweep():
    with Sandbox() as sb, ScepServer(challenge="kill-otp") as ca:
        sb.create_token("ks")
        args = ["enroll", "--token", "ks", "--pin-source", "env:TP_PIN", "--scep-url", ca.url,
                "--challenge-source", "env:CH", "--ca-fingerprint", ca.fingerprint, "--label", "k",
                "--subject", "/CN=Kill Sweep/O=Example"]
        sweep("enroll", sb, "ks", args, CH)


def test_provision_kill_sweep():
    with Sandbox() as sb, ScepServer(challenge="kill-otp") as ca:
        sb.create_token("demo-sweep")
        args = ["provision", "--profile", DEMO, "--token", "demo-sweep", "--user", "sweep",
                "--subject", "/CN=Kill Sweep/O=Example", "--scep-url", ca.url, "--challenge-source", "env:CH",
                "--ca-fingerprint", ca.fingerprint, "--pin-source", "env:TP_PIN"]
        sweep("provision", sb, "demo-sweep", args, CH)


def test_provision_blank_kill_sweep():
    # From a blank token: C_InitToken, C_InitPIN, the key, the enrollment.
    with Sandbox() as sb, ScepServer(challenge="kill-otp") as ca:
        args = ["provision", "--profile", DEMO, "--user", "sweep", "--subject", "/CN=Kill Sweep/O=Example",
                "--scep-url", ca.url, "--challenge-source", "env:CH", "--ca-fingerprint", ca.fingerprint,
                "--pin-source", "env:TP_PIN", "--so-pin-source", "env:TP_SO_PIN"]
        sweep("provision-blank", sb, "demo-sweep", args, CH)


if __name__ == "__main__":
    main([test_enroll_kill_sweep, test_provision_kill_sweep, test_provision_blank_kill_sweep])
