# SPDX-License-Identifier: Apache-2.0
"""enroll and provision against a real scepserver on 127.0.0.1."""
import json
import os

from harness import Sandbox, main, expect, sh, pct, USER_PIN, SRC
from scepserver import ScepServer

DEMO = os.path.join(SRC, "tokens", "softhsm-demo.toml")


def test_enroll_rsa_puts_matching_certificate():
    with Sandbox() as sb, ScepServer(challenge="pickup-pin") as ca:
        sb.create_token("enr")
        doc = sb.tpj("enroll", "--token", "enr", "--pin-source", "env:TP_PIN", "--scep-url", ca.url,
                     "--challenge-source", "env:CH", "--ca-fingerprint", ca.fingerprint, "--algorithm", "rsa2048",
                     "--label", "alice", "--subject", "/CN=Alice Enrolled/O=Example", "--exportable",
                     env={"CH": "pickup-pin"})
        kid = doc["key"]["id"]
        expect("CN=Alice Enrolled" in doc["certificate"]["subject"], doc)
        objs = sb.objects("enr")
        leaf = [o for o in objs if o["class"] == "certificate" and not o["authority"]]
        expect(len(leaf) == 1 and leaf[0]["id"] == kid and leaf[0]["label"] == "alice", objs)
        expect(any(o["class"] == "certificate" and o["authority"] for o in objs), "CA certificate not written")
        # pkcs11-tool sees key and certificate under one id.
        r = sb.pkcs11_tool("--token-label", "enr", "-O")
        expect(r.stdout.count("ID:         " + kid) == 3, r.stdout)
        # The certificate verifies under the CA.
        cert = sb.path("leaf.der")
        sb.pkcs11_tool("--token-label", "enr", "--read-object", "--type", "cert", "--id", kid, "-o", cert)
        pem = sb.path("leaf.pem")
        sh(["openssl", "x509", "-inform", "DER", "-in", cert, "-out", pem])
        sh(["openssl", "verify", "-CAfile", ca.ca_pem_path, pem])


def test_wrong_challenge_exit_7_no_key_left():
    with Sandbox() as sb, ScepServer(challenge="right") as ca:
        sb.create_token("wc")
        before = sb.objects("wc")
        r = sb.tp("enroll", "--token", "wc", "--pin-source", "env:TP_PIN", "--scep-url", ca.url,
                  "--challenge-source", "env:CH", "--ca-fingerprint", ca.fingerprint, "--label", "bob",
                  "--subject", "/CN=Bob", env={"CH": "wrong"})
        expect(r.returncode == 7, (r.returncode, r.stderr))
        expect(sb.objects("wc") == before, "a key was left behind")
        # Unpinned CA in a non-interactive run: refused, fingerprint shown, nothing generated.
        r = sb.tp("enroll", "--token", "wc", "--pin-source", "env:TP_PIN", "--scep-url", ca.url,
                  "--challenge-source", "env:CH", "--label", "bob", "--subject", "/CN=Bob", env={"CH": "right"})
        expect(r.returncode == 7 and ca.fingerprint in r.stderr.lower().replace(":", ""), (r.returncode, r.stderr))
        expect(sb.objects("wc") == before, "a key was left behind")
        # A wrong pinned fingerprint.
        r = sb.tp("enroll", "--token", "wc", "--pin-source", "env:TP_PIN", "--scep-url", ca.url,
                  "--challenge-source", "env:CH", "--ca-fingerprint", "00" * 32, "--label", "bob",
                  "--subject", "/CN=Bob", env={"CH": "right"})
        expect(r.returncode == 7, (r.returncode, r.stderr))
        # Unreachable CA.
        r = sb.tp("enroll", "--token", "wc", "--pin-source", "env:TP_PIN", "--scep-url", "http://127.0.0.1:9/scep",
                  "--challenge-source", "env:CH", "--ca-fingerprint", ca.fingerprint, "--label", "bob",
                  "--subject", "/CN=Bob", env={"CH": "right"})
        expect(r.returncode == 7 and "127.0.0.1:9" in r.stderr, (r.returncode, r.stderr))
        expect(sb.objects("wc") == before, "a key was left behind")


def test_provision_blank_token_idempotent_with_backup():
    with Sandbox() as sb, ScepServer(challenge="otp") as ca:
        backups = sb.path("backups")
        os.makedirs(backups)
        args = ["provision", "--profile", DEMO, "--subject", "/CN=Dana Demo/O=Example", "--scep-url", ca.url,
                "--challenge-source", "env:CH", "--ca-fingerprint", ca.fingerprint, "--pin-source", "env:TP_PIN",
                "--so-pin-source", "env:TP_SO_PIN", "--backup-dir", backups, "--password-source", "env:PW",
                "--audit-log", sb.path("audit.jsonl")]
        env = {"CH": "otp", "PW": "backup-password"}
        doc = sb.tpj(*args, env=env)
        expect(doc["initialized"] and doc["complete"] and doc["token"]["label"] == "demo-dana-demo", doc)
        k = doc["keys"][0]
        expect(k["key"] == "generated" and k["certificate"] == "enrolled" and k["backup"] == "written", k)
        expect(os.path.exists(k["backup_file"]), k)
        issued = ca.issued_count()
        # Run again: nothing changes.
        objs = sb.objects("demo-dana-demo")
        doc2 = sb.tpj(*args, env=env)
        k2 = doc2["keys"][0]
        expect(not doc2["initialized"] and k2["key"] == "present" and k2["certificate"] == "present"
               and k2["backup"] == "present", doc2)
        expect(sb.objects("demo-dana-demo") == objs, "a second provision changed the token")
        expect(ca.issued_count() == issued, "a second provision enrolled again")
        # The backup opens with the password and holds the key and chain.
        r = sh(["openssl", "pkcs12", "-in", k["backup_file"], "-passin", "pass:backup-password", "-nodes", "-info"])
        expect("PRIVATE KEY" in r.stdout and r.stdout.count("BEGIN CERTIFICATE") >= 2, r.stdout)
        # The audit log never holds a secret.
        log = open(sb.path("audit.jsonl")).read()
        for secret in ("otp", "backup-password", USER_PIN, "87654321"):
            expect(('"%s"' % secret) not in log and secret not in log.replace("otp", "") if secret != "otp"
                   else '"otp"' not in log, "secret %s in audit log" % secret)
        lines = [json.loads(l) for l in log.splitlines()]
        expect(len(lines) == 2 and all(l["ok"] for l in lines) and lines[0]["token"], lines)


def test_provision_csr_dir_then_cert_dir():
    from harness import TestCA
    with Sandbox() as sb:
        sb.create_token("tp-carol")
        csrs, certs = sb.path("csrs"), sb.path("certs")
        os.makedirs(csrs)
        os.makedirs(certs)
        base = ["provision", "--profile", DEMO, "--token", "tp-carol", "--subject", "/CN=Carol/O=Example",
                "--pin-source", "env:TP_PIN"]
        doc = sb.tpj(*base, "--csr-dir", csrs)
        k = doc["keys"][0]
        expect(not doc["complete"] and k["certificate"] == "awaiting-certificate" and os.path.exists(k["csr_file"]),
               doc)
        ca = TestCA(sb)
        ca.issue(k["csr_file"], os.path.join(certs, "carol.pem"))
        doc = sb.tpj(*base, "--cert-dir", certs)
        expect(doc["complete"] and doc["keys"][0]["certificate"] == "picked-up", doc)
        expect(doc["keys"][0]["key"] == "present", doc)


if __name__ == "__main__":
    main([test_enroll_rsa_puts_matching_certificate, test_wrong_challenge_exit_7_no_key_left,
          test_provision_blank_token_idempotent_with_backup, test_provision_csr_dir_then_cert_dir])
