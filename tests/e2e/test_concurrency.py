#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Two tokenprov runs at once on one token (issue 20, finding 2): the second
waits for the first (the token lock, src/token_lock.cpp) and then finds the
work done, so the token holds one key, one leaf and one CA certificate. The
overlap is made certain, not timed: the first run is held inside its SCEP
enrollment by the CA's gate (gate.py) until the second says it is waiting."""
# ctest: one test per function
import os

from harness import Sandbox, main, expect
from gate import GatedCA, start, read_until, finish

DEMO = os.path.join(os.environ.get("TOKENPROV_SOURCE_DIR", os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))), "tokens", "softhsm-demo.toml")
WAITING = "in use by another tokenprov run"


def counts(sb, token):
    objs = sb.objects(token)
    return {
        "private": sum(o["class"] == "private-key" for o in objs),
        "public": sum(o["class"] == "public-key" for o in objs),
        "leaf": sum(o["class"] == "certificate" and not o["authority"] for o in objs),
        "ca": sum(o["class"] == "certificate" and o["authority"] for o in objs),
    }


def provision_args(ca, *extra):
    return ["provision", "--profile", DEMO, "--subject", "/CN=Conc Current/O=Example", "--scep-url", ca.url,
            "--challenge-source", "env:CH", "--ca-fingerprint", ca.fingerprint, "--pin-source", "env:TP_PIN",
            "--so-pin-source", "env:TP_SO_PIN"] + list(extra)


def test_two_provisions_one_token():
    with Sandbox() as sb, GatedCA() as ca:
        sb.create_token("conc")
        env = {"CH": "gate-otp"}
        a = start(sb, *provision_args(ca, "--token", "conc"), env=env)
        ca.wait_started(a)                      # A holds the token and waits for the CA
        b = start(sb, *provision_args(ca, "--token", "conc"), env=env)
        said = read_until(b, WAITING)           # B waits for A, and says so
        expect("token 'conc'" in said and "--lock-wait" in said, said)
        ca.release()
        ra, _, ea = finish(a)
        rb, _, eb = finish(b)
        expect(ra == 0, (ra, ea))
        expect(rb == 0 and "is on the token already" in eb, (rb, eb))
        c = counts(sb, "conc")
        expect(c == {"private": 1, "public": 1, "leaf": 1, "ca": 1}, c)
        expect(ca.issued_count() == 1, ca.issued_count())


def test_second_run_refused_at_once_with_lock_wait_0():
    with Sandbox() as sb, GatedCA() as ca:
        sb.create_token("conc0")
        env = {"CH": "gate-otp"}
        a = start(sb, *provision_args(ca, "--token", "conc0"), env=env)
        ca.wait_started(a)
        # keygen, pickup, delete, init --force: every writer takes the lock.
        kg = sb.tp("keygen", "--token", "conc0", "--pin-source", "env:TP_PIN", "--algorithm", "ec-p256",
                   "--label", "other", "--lock-wait", "0")
        ini = sb.tp("init", "--token", "conc0", "--label", "x", "--force", "--so-pin-source", "env:TP_SO_PIN",
                    "--pin-source", "env:TP_PIN", "--lock-wait", "0")
        ca.release()
        ra, _, ea = finish(a)
        expect(ra == 0, (ra, ea))
        for r in (kg, ini):
            expect(r.returncode == 6 and WAITING in r.stderr and "changed nothing" in r.stderr,
                   (r.returncode, r.stderr))
        c = counts(sb, "conc0")
        expect(c == {"private": 1, "public": 1, "leaf": 1, "ca": 1}, c)


def test_two_fleets_different_state_files():
    with Sandbox() as sb, GatedCA() as ca:
        for t in ("f1", "f2"):
            sb.create_token(t)
        manifest = sb.write("m.csv", "token,subject,user\nf1,/CN=Fleet One,one\nf2,/CN=Fleet Two,two\n", 0o644)

        def fleet(state):
            return start(sb, "fleet", "--profile", DEMO, "--manifest", manifest, "--jobs", "2",
                         "--pin-source", "env:TP_PIN", "--scep-url", ca.url, "--challenge-source", "env:CH",
                         "--ca-fingerprint", ca.fingerprint, "--state", sb.path(state), env={"CH": "gate-otp"})
        a = fleet("a.jsonl")
        ca.wait_started(a)
        b = fleet("b.jsonl")
        read_until(b, WAITING)
        ca.release()
        ra, _, ea = finish(a)
        rb, _, eb = finish(b)
        expect(ra == 0 and rb == 0, (ra, ea, rb, eb))
        for t in ("f1", "f2"):
            c = counts(sb, t)
            expect(c == {"private": 1, "public": 1, "leaf": 1, "ca": 1}, (t, c))
        expect(ca.issued_count() == 2, ca.issued_count())


def test_two_provisions_from_blank_one_token():
    # Both name no token: the profile's label, else the next blank token. The
    # second finds the token the first initialized (after waiting for it), never
    # a second token with the same label.
    with Sandbox() as sb, GatedCA() as ca:
        env = {"CH": "gate-otp"}
        a = start(sb, *provision_args(ca), env=env)
        ca.wait_started(a)
        b = start(sb, *provision_args(ca), env=env)
        read_until(b, WAITING)
        ca.release()
        ra, _, ea = finish(a)
        rb, _, eb = finish(b)
        expect(ra == 0 and rb == 0, (ra, ea, rb, eb))
        labels = [t["label"] for t in sb.list_json()["tokens"] if t["initialized"]]
        expect(labels == ["demo-conc-current"], labels)
        c = counts(sb, "demo-conc-current")
        expect(c == {"private": 1, "public": 1, "leaf": 1, "ca": 1}, c)


def test_two_provisions_token_blank_refused_same_label():
    # --token blank: each takes a blank token; the second one's label is taken
    # already, so it is refused (exit 8) and its blank token stays blank.
    with Sandbox() as sb, GatedCA() as ca:
        env = {"CH": "gate-otp"}
        a = start(sb, *provision_args(ca, "--token", "blank"), env=env)
        ca.wait_started(a)
        rb = sb.tp(*provision_args(ca, "--token", "blank"), env=env)
        ca.release()
        ra, _, ea = finish(a)
        expect(ra == 0, (ra, ea))
        expect(rb.returncode == 8 and "demo-conc-current" in rb.stderr and "--token" in rb.stderr,
               (rb.returncode, rb.stderr))
        toks = sb.list_json()["tokens"]
        labels = [t["label"] for t in toks if t["initialized"]]
        expect(labels == ["demo-conc-current"], labels)
        expect(any(not t["initialized"] for t in toks), toks)


def test_lock_dies_with_its_holder():
    # A run killed while it holds the token leaves no lock behind.
    import signal
    with Sandbox() as sb, GatedCA() as ca:
        sb.create_token("dies")
        a = start(sb, "enroll", "--token", "dies", "--pin-source", "env:TP_PIN", "--scep-url", ca.url,
                  "--challenge-source", "env:CH", "--ca-fingerprint", ca.fingerprint, "--label", "k",
                  "--subject", "/CN=Dies", env={"CH": "gate-otp"})
        ca.wait_started(a)
        a.send_signal(signal.SIGKILL)
        a.wait()
        a.stdout.close()
        a.stderr.close()
        r = sb.tp("keygen", "--token", "dies", "--pin-source", "env:TP_PIN", "--algorithm", "ec-p256",
                  "--label", "after", "--lock-wait", "0")
        expect(r.returncode == 0, (r.returncode, r.stderr))
        ca.release()


def test_different_tokens_not_serialized():
    # A run holding one token does not stop a run on another token.
    with Sandbox() as sb, GatedCA() as ca:
        sb.create_token("one")
        sb.create_token("two")
        a = start(sb, *provision_args(ca, "--token", "one"), env={"CH": "gate-otp"})
        ca.wait_started(a)
        r = sb.tp("keygen", "--token", "two", "--pin-source", "env:TP_PIN", "--algorithm", "ec-p256",
                  "--label", "k2", "--lock-wait", "0")
        expect(r.returncode == 0, (r.returncode, r.stderr))
        ca.release()
        ra, _, ea = finish(a)
        expect(ra == 0, (ra, ea))


if __name__ == "__main__":
    main([test_two_provisions_one_token, test_second_run_refused_at_once_with_lock_wait_0,
          test_two_fleets_different_state_files, test_two_provisions_from_blank_one_token,
          test_two_provisions_token_blank_refused_same_label, test_lock_dies_with_its_holder,
          test_different_tokens_not_serialized])
