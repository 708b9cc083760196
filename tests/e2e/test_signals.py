#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Signals and leftovers (issue 20, findings 4 and 9, and the empty SO PIN of
finding 5's neighbour): SIGTERM, SIGINT and SIGHUP during an enrollment roll
back what the run made; a rerun after SIGKILL finishes the key its earlier run
left; `tokenprov delete` removes a key pair on purpose. The run is held inside
its enrollment by the CA's gate (gate.py), so the signal arrives while the CA
is answering, every time, without timing."""
# ctest: one test per function
import os
import signal

from harness import Sandbox, TestCA, main, expect, sh
from gate import GatedCA, start, finish

ENV = {"CH": "gate-otp"}


def enroll_args(ca, token, label="k"):
    return ["enroll", "--token", token, "--pin-source", "env:TP_PIN", "--scep-url", ca.url,
            "--challenge-source", "env:CH", "--ca-fingerprint", ca.fingerprint, "--label", label,
            "--subject", "/CN=Signal Test/O=Example"]


def signal_rolls_back(sig, name):
    with Sandbox() as sb, GatedCA() as ca:
        sb.create_token("sig")
        sb.tp("keygen", "--token", "sig", "--pin-source", "env:TP_PIN", "--algorithm", "ec-p256",
              "--label", "keep", check=0)
        before = sb.objects("sig")
        p = start(sb, *enroll_args(ca, "sig"), env=ENV)
        ca.wait_started(p)           # the key is made, the request is at the CA
        p.send_signal(sig)
        rc, _, err = finish(p)
        ca.release()
        expect(rc == 7 and ("Stopped by " + name) in err, (rc, err))
        expect(sb.objects("sig") == before, "the interrupted enroll left objects behind")
        # The token is usable and the same command runs through afterwards.
        ca.close_gate()
        ca.release()
        sb.tp(*enroll_args(ca, "sig"), env=ENV, check=0)


def test_sigterm_during_enroll_rolls_back():
    signal_rolls_back(signal.SIGTERM, "SIGTERM")


def test_sigint_during_enroll_rolls_back():
    signal_rolls_back(signal.SIGINT, "SIGINT")


def test_sighup_during_enroll_rolls_back():
    signal_rolls_back(signal.SIGHUP, "SIGHUP")


def test_rerun_after_sigkill_finishes_its_key():
    with Sandbox() as sb, GatedCA() as ca:
        sb.create_token("kill")
        p = start(sb, *enroll_args(ca, "kill", "victim"), env=ENV)
        ca.wait_started(p)
        p.send_signal(signal.SIGKILL)
        p.wait()
        p.stdout.close()
        p.stderr.close()
        objs = sb.objects("kill")
        left = [o for o in objs if o["class"] == "private-key"]
        expect(len(left) == 1 and not any(o["class"] == "certificate" for o in objs), objs)
        ca.release()
        r = sb.tp(*enroll_args(ca, "kill", "victim"), "--json", env=ENV)
        expect(r.returncode == 0 and "interrupted run" in r.stderr, (r.returncode, r.stderr))
        objs = sb.objects("kill")
        privs = [o for o in objs if o["class"] == "private-key"]
        leafs = [o for o in objs if o["class"] == "certificate" and not o["authority"]]
        expect(len(privs) == 1 and privs[0]["id"] == left[0]["id"], objs)
        expect(len(leafs) == 1 and leafs[0]["id"] == left[0]["id"], objs)
        # A key of the same label that is not an unfinished enroll's (another
        # algorithm) is never taken over: exit 8, left as it is.
        sb.tp("keygen", "--token", "kill", "--pin-source", "env:TP_PIN", "--algorithm", "ec-p256",
              "--label", "foreign", check=0)
        before = sb.objects("kill")
        r = sb.tp(*enroll_args(ca, "kill", "foreign"), env=ENV)
        expect(r.returncode == 8, (r.returncode, r.stderr))
        expect(sb.objects("kill") == before, "a foreign key was changed")


def test_delete_key_with_and_without_flags():
    with Sandbox() as sb:
        sb.create_token("del")
        pin = ["--token", "del", "--pin-source", "env:TP_PIN"]
        sb.tp("keygen", *pin, "--algorithm", "rsa2048", "--label", "gone", check=0)
        sb.tp("keygen", *pin, "--algorithm", "ec-p256", "--label", "stays", check=0)
        # Without --force: exit 8, nothing removed.
        before = sb.objects("del")
        r = sb.tp("delete", *pin, "--key", "gone")
        expect(r.returncode == 8 and "--force" in r.stderr, (r.returncode, r.stderr))
        expect(sb.objects("del") == before, "delete without --force removed something")
        doc = sb.tpj("delete", *pin, "--key", "gone", "--force")
        expect(doc["deleted"]["label"] == "gone" and doc["deleted"]["public_key"], doc)
        objs = sb.objects("del")
        expect(not any(o["label"] == "gone" for o in objs), objs)
        expect(sum(o["label"] == "stays" for o in objs) == 2, objs)
        # A key with a certificate: refused without --with-certificate, even with --force.
        ca = TestCA(sb)
        csr = sb.path("stays.csr")
        sb.tp("csr", *pin, "--key", "stays", "--subject", "/CN=Stays", "--out", csr, check=0)
        cert = ca.issue(csr, sb.path("stays.pem"))
        chain = sb.write("chain.pem", open(cert).read() + ca.chain_pem())
        sb.tp("pickup", *pin, "--cert", chain, check=0)
        before = sb.objects("del")
        r = sb.tp("delete", *pin, "--key", "stays", "--force")
        expect(r.returncode == 8 and "--with-certificate" in r.stderr, (r.returncode, r.stderr))
        expect(sb.objects("del") == before, "a key with a certificate was touched")
        doc = sb.tpj("delete", *pin, "--key", "stays", "--force", "--with-certificate")
        expect(len(doc["deleted"]["certificates"]) == 1, doc)
        objs = sb.objects("del")
        expect(all(o["class"] == "certificate" and o["authority"] for o in objs), objs)  # the CA certificates stay
        expect(len(objs) == 2, objs)
        # No such key: exit 5, named.
        r = sb.tp("delete", *pin, "--key", "stays", "--force")
        expect(r.returncode == 5 and "stays" in r.stderr, (r.returncode, r.stderr))


def test_pickup_finishes_certificate_left_without_label():
    # What a kill between SoftHSM2's object creation and its attribute writes
    # leaves: the certificate object with its value but without label and id
    # (written here by pkcs11-tool, an independent writer). pickup of the same
    # certificate finds it by its value and finishes it; no second copy.
    with Sandbox() as sb:
        sb.create_token("half")
        pin = ["--token", "half", "--pin-source", "env:TP_PIN"]
        kid = sb.tpj("keygen", *pin, "--algorithm", "ec-p256", "--label", "auth")["key"]["id"]
        ca = TestCA(sb)
        csr = sb.path("auth.csr")
        sb.tp("csr", *pin, "--key", "auth", "--subject", "/CN=Half", "--out", csr, check=0)
        cert = ca.issue(csr, sb.path("auth.pem"))
        der = sb.path("auth.der")
        sh(["openssl", "x509", "-in", cert, "-outform", "DER", "-out", der])
        sb.pkcs11_tool("--token-label", "half", "--write-object", der, "--type", "cert")
        leafs = [o for o in sb.objects("half") if o["class"] == "certificate"]
        expect(len(leafs) == 1 and not leafs[0]["label"] and not leafs[0]["id"], leafs)
        sb.tp("pickup", *pin, "--cert", cert, check=0)
        leafs = [o for o in sb.objects("half") if o["class"] == "certificate"]
        expect(len(leafs) == 1 and leafs[0]["label"] == "auth" and leafs[0]["id"] == kid, leafs)


def test_empty_so_pin_source_only_fails_when_needed():
    demo = os.path.join(os.environ.get("TOKENPROV_SOURCE_DIR", "."), "tokens", "softhsm-demo.toml")
    with Sandbox() as sb:
        sb.create_token("demo-empty")
        os.makedirs(sb.path("csrs"))
        args = ["provision", "--profile", demo, "--subject", "/CN=Empty", "--user", "empty",
                "--pin-source", "env:TP_PIN", "--so-pin-source", "env:EMPTY", "--csr-dir", sb.path("csrs")]
        # The token is initialized: no SO PIN is needed, the empty one stops nothing.
        r = sb.tp(*args, env={"EMPTY": ""})
        expect(r.returncode == 0, (r.returncode, r.stderr))
        # A blank token needs it: exit 3, saying the SO PIN is empty.
        r = sb.tp(*args[:-2], "--token", "blank", "--csr-dir", sb.path("csrs"), env={"EMPTY": ""})
        expect(r.returncode == 3 and "SO PIN" in r.stderr and "empty" in r.stderr, (r.returncode, r.stderr))


if __name__ == "__main__":
    main([test_sigterm_during_enroll_rolls_back, test_sigint_during_enroll_rolls_back,
          test_sighup_during_enroll_rolls_back, test_rerun_after_sigkill_finishes_its_key,
          test_delete_key_with_and_without_flags, test_pickup_finishes_certificate_left_without_label,
          test_empty_so_pin_source_only_fails_when_needed])
