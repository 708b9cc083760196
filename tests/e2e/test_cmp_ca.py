# SPDX-License-Identifier: Apache-2.0
# ctest: one test per function
"""enroll and provision over CMP against tests/cmp/cmp_test_ca, a CA on
OpenSSL's server framework (OSSL_CMP_SRV_CTX) that really issues for the key
the request names: new keys made by the run (ir with the token's POPO for
RSA, p10cr for EC), polling, rejection, a certificate for another key, and
MAC- or signature-protected answers. Failures leave the token as it was."""
import json
import os
import signal
import subprocess
import time

from harness import Sandbox, TestCA, main, expect, sh, SRC, BIN
from cmpmock import CmpTestCa

PIN = ["--pin-source", "env:TP_PIN"]


def fp(pem):
    r = sh(["openssl", "x509", "-in", pem, "-noout", "-fingerprint", "-sha256"])
    return r.stdout.strip().split("=", 1)[1].replace(":", "").lower()


def enroll(sb, srv, *extra, secret="s3cret", check=None):
    return sb.tp("enroll", "--protocol", "cmp", "--token", "cmp", *PIN, "--cmp-url", srv.url, "--reference",
                 "REF-4711", "--secret-source", "env:CMP_SECRET", *extra, env={"CMP_SECRET": secret}, check=check)


def new_key(algorithm, label, protect, cas):
    with Sandbox() as sb:
        sb.create_token("cmp")
        ca = TestCA(sb)
        with CmpTestCa(sb, ca, polls=2, protect=protect) as srv:
            # The pin is the issuing CA's: it is in every answer's extraCerts (the root comes
            # only as caPubs of an ip, and a signer's chain is sent without its root).
            pin = fp(ca.int)
            r = enroll(sb, srv, "--algorithm", algorithm, "--label", label, "--subject", "/CN=%s/O=Example" % label,
                       "--ca-fingerprint", pin, "--wait", "30", "--json", check=0)
            ev = srv.events()
        doc = json.loads(r.stdout)
        expect(doc["polls"] == 2 and doc["written"] == 1 + cas, doc)
        expect(ev.count("pollRep") == 1 and "approved after polling" in ev and "certConf accepted" in ev, ev)
        expect(any(e.startswith("issued") for e in ev), ev)
        if protect == "mac":
            expect("MAC) only" in doc["trust"], doc)
        else:
            expect("signed by a certificate verified" in doc["trust"], doc)
        # The certificate is the token key's and verifies under the test CA.
        kid = doc["key"]["id"]
        der = sb.path("leaf.der")
        sb.pkcs11_tool("--token-label", "cmp", "--read-object", "--type", "cert", "--id", kid, "-o", der)
        pem = sb.path("leaf.pem")
        sh(["openssl", "x509", "-inform", "DER", "-in", der, "-out", pem])
        sh(["openssl", "verify", "-CAfile", ca.root, "-untrusted", ca.int, pem])
        pub = sb.path("pub.der")
        sb.pkcs11_tool("--token-label", "cmp", "--read-object", "--type", "pubkey", "--id", kid, "-o", pub)
        a = sh(["openssl", "pkey", "-pubin", "-inform", "DER", "-in", pub]).stdout
        b = sh(["openssl", "x509", "-in", pem, "-noout", "-pubkey"]).stdout
        expect(a == b and "PUBLIC KEY" in a, "the certificate's key is not the token key")


def test_rsa2048_new_key_ir_two_polls_mac():
    new_key("rsa2048", "alice", "mac", 2)  # ip: caPubs bring the root


def test_ec_p256_new_key_p10cr_two_polls_mac():
    new_key("ec-p256", "bob", "mac", 1)  # cp: extraCerts only


def test_rsa2048_signed_answers_two_polls():
    new_key("rsa2048", "carol", "signature", 2)


def test_ec_p256_signed_answers_two_polls():
    new_key("ec-p256", "dave", "signature", 1)


def failing(**kw):
    with Sandbox() as sb:
        return failing_in(sb, **kw)


def failing_in(sb, mode=None, protect="mac", trust=None, secret="s3cret", words=()):
    if True:
        sb.create_token("cmp")
        ca = TestCA(sb)
        sb.tp("keygen", "--token", "cmp", *PIN, "--algorithm", "ec-p256", "--label", "old", check=0)
        before = sb.objects("cmp")
        with CmpTestCa(sb, ca, mode=mode or "ok", polls=1, protect=protect) as srv:
            r = enroll(sb, srv, "--algorithm", "rsa2048", "--label", "new", "--subject", "/CN=new",
                       *(trust or ["--ca-fingerprint", fp(ca.root)]), "--wait", "30", secret=secret)
            ev = srv.events()
        expect(r.returncode == 7, (r.returncode, r.stderr))
        for w in words:
            expect(w in r.stderr, (w, r.stderr))
        expect(sb.objects("cmp") == before, "the token changed: " + r.stderr)
        expect("certConf accepted" not in ev, ev)
        return ev


def test_reject_leaves_token_as_before():
    failing(mode="reject", words=["rejection", "badCertTemplate", "the RA did not approve this request"])


def test_wrong_certificate_leaves_token_as_before():
    ev = failing(mode="wrong-cert", words=["not the token key"])
    expect("certConf rejected" in ev, ev)


def test_wrong_secret_leaves_token_as_before():
    failing(secret="wrong", words=["CA at http://127.0.0.1"])


def test_signed_answers_from_an_untrusted_signer_leave_token_as_before():
    failing(protect="signature", trust=["--ca-fingerprint", "cd" * 32], words=["cd" * 32, "cannot be tied"])
    with Sandbox() as sb:
        other = TestCA(sb, name="Other")
        failing_in(sb, protect="signature", trust=["--ca-bundle", other.root], words=["cannot be trusted"])


def test_provision_over_cmp():
    """The demo profile's RSA key on a blank token, enrolled over CMP; a second run changes nothing."""
    with Sandbox() as sb:
        ca = TestCA(sb)
        sb.create_token("x")  # a token that is not the one provisioned
        with CmpTestCa(sb, ca, polls=1) as srv:
            args = ["provision", "--profile", os.path.join(SRC, "tokens", "softhsm-demo.toml"), "--subject",
                    "/CN=Erin Demo/O=Example", "--protocol", "cmp", "--cmp-url", srv.url, "--reference", "REF-4711",
                    "--secret-source", "env:CMP_SECRET", "--ca-fingerprint", fp(ca.root), "--wait", "30",
                    "--pin-source", "env:TP_PIN", "--so-pin-source", "env:TP_SO_PIN"]
            sb.create_token("demo-erin-demo")
            doc = sb.tpj(*args, env={"CMP_SECRET": "s3cret"})
            expect(doc["keys"][0]["certificate"] == "enrolled", doc)
            objs = sb.objects("demo-erin-demo")
            doc2 = sb.tpj(*args, env={"CMP_SECRET": "s3cret"})
            expect(sb.objects("demo-erin-demo") == objs, "a second provision changed the token")
            expect(sum(1 for e in srv.events() if e.startswith("issued")) == 1, srv.events())
            expect(doc2["keys"][0]["certificate"] == "present", doc2)


def test_revoke_signed_and_mac():
    """revoke --key: rr signed with the key and its certificate, or MAC-protected with reference and secret;
    the CA gets the certificate's serial; the token is not changed; a refusal is exit 7 with the CA's words."""
    with Sandbox() as sb:
        sb.create_token("cmp")
        ca = TestCA(sb)
        with CmpTestCa(sb, ca) as srv:
            doc = json.loads(enroll(sb, srv, "--algorithm", "rsa2048", "--label", "rita", "--subject", "/CN=rita",
                                    "--ca-fingerprint", fp(ca.int), "--json", check=0).stdout)
            serial = doc["certificate"]["serial"]
            before = sb.objects("cmp")
            r = sb.tpj("revoke", "--token", "cmp", *PIN, "--key", "rita", "--cmp-url", srv.url, "--reference",
                       "REF-4711", "--secret-source", "env:CMP_SECRET", "--ca-fingerprint", fp(ca.int),
                       env={"CMP_SECRET": "s3cret"})
            expect(r["revoked"]["serial"] == serial and r["reason"] == -1, r)
            rr = [int(e.split()[1], 16) for e in srv.events() if e.startswith("rr ")]
            expect(rr == [int(serial, 16)], (serial, srv.events()))
        # Signed with the key and its certificate; the CA signs its answer too.
        with CmpTestCa(sb, ca, protect="signature") as srv:
            r = sb.tpj("revoke", "--token", "cmp", *PIN, "--key", "rita", "--reason", "keyCompromise", "--cmp-url",
                       srv.url, "--ca-fingerprint", fp(ca.int))
            expect(r["revoked"]["serial"] == serial and r["reason"] == 1, r)
            rr = [int(e.split()[1], 16) for e in srv.events() if e.startswith("rr ")]
            expect(rr == [int(serial, 16)], (serial, srv.events()))
            expect(sb.objects("cmp") == before, "revoke changed the token")
        with CmpTestCa(sb, ca, mode="reject") as srv:
            r = sb.tp("revoke", "--token", "cmp", *PIN, "--key", "rita", "--cmp-url", srv.url, "--ca-fingerprint",
                      fp(ca.int))
            expect(r.returncode == 7 and "revocation refused" in r.stderr, (r.returncode, r.stderr))
            expect(sb.objects("cmp") == before, "revoke changed the token")
        # A key without a certificate: exit 5, nothing sent.
        sb.tp("keygen", "--token", "cmp", *PIN, "--algorithm", "ec-p256", "--label", "nocert", check=0)
        r = sb.tp("revoke", "--token", "cmp", *PIN, "--key", "nocert", "--cmp-url", "http://127.0.0.1:9/",
                  "--ca-fingerprint", fp(ca.int))
        expect(r.returncode == 5 and "no certificate" in r.stderr, (r.returncode, r.stderr))


def test_ctrl_c_while_waiting_withdraws_and_leaves_token_as_before():
    """SIGINT while the CA keeps the request waiting: the request is withdrawn (an error message to
    the CA), the key made for it removed, exit 7 with how to resume."""
    with Sandbox() as sb:
        sb.create_token("cmp")
        ca = TestCA(sb)
        before = sb.objects("cmp")
        with CmpTestCa(sb, ca, polls=1000, check_after=1) as srv:
            env = dict(sb.env)
            env["CMP_SECRET"] = "s3cret"
            p = subprocess.Popen([BIN, "enroll", "--protocol", "cmp", "--token", "cmp", *PIN, "--cmp-url", srv.url,
                                  "--reference", "REF-4711", "--secret-source", "env:CMP_SECRET", "--algorithm",
                                  "ec-p256", "--label", "ctrlc", "--subject", "/CN=ctrlc", "--ca-fingerprint",
                                  fp(ca.int), "--wait", "600"], env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
            # Interrupt once the CA has answered a pollReq (the run is waiting); no fixed sleep.
            for _ in range(600):
                if "pollRep" in srv.events() or p.poll() is not None:
                    break
                time.sleep(0.1)
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=120)
            ev = srv.events()
        expect(p.returncode == 7 and "Interrupted" in err and "same command again" in err, (p.returncode, err))
        expect(any(e.startswith("error from client") for e in ev), ev)
        expect(sb.objects("cmp") == before, "the token changed: " + err)


def test_kur_renews_with_the_current_key_and_certificate():
    """cmp::kur() (tests/cmp/cmp_kur_probe until `renew` calls it): kur signed with the token key and its
    certificate, two polls, a new certificate for the same key written beside it, certConf after."""
    probe = os.environ.get("CMP_KUR_PROBE", "cmp_kur_probe")
    with Sandbox() as sb:
        sb.create_token("cmp")
        ca = TestCA(sb)
        with CmpTestCa(sb, ca) as srv:
            doc = json.loads(enroll(sb, srv, "--algorithm", "rsa2048", "--label", "kim", "--subject", "/CN=kim",
                                    "--ca-fingerprint", fp(ca.int), "--json", check=0).stdout)
        with CmpTestCa(sb, ca, protect="signature", polls=2) as srv:
            r = subprocess.run([probe, "/usr/lib/softhsm/libsofthsm2.so", "cmp", "kim", srv.url, fp(ca.int)],
                               env=sb.env, capture_output=True, text=True, timeout=120)
            ev = srv.events()
        expect(r.returncode == 0, (r.returncode, r.stderr))
        out = json.loads(r.stdout)
        expect(out["old_serial"] == doc["certificate"]["serial"] and out["serial"] != out["old_serial"], out)
        expect(out["polls"] == 2 and not out["mac_only"], out)
        expect("certConf accepted" in ev and any(e.endswith(" crmf") for e in ev), ev)
        leafs = [o for o in sb.objects("cmp") if o["class"] == "certificate" and not o["authority"]]
        expect(sorted(o["serial"] for o in leafs) == sorted([out["serial"], out["old_serial"]]), leafs)
        expect(all(o["id"] == doc["key"]["id"] for o in leafs), leafs)


def test_fleet_over_cmp_jobs_2():
    """fleet --protocol cmp: three tokens, two workers, one reference and secret for the run."""
    with Sandbox() as sb:
        ca = TestCA(sb)
        for i in (1, 2, 3):
            sb.create_token("f%d" % i)
        manifest = sb.write("fleet.csv", "token,subject,user\n" +
                            "".join("f%d,/CN=Fleet User %d/O=Example,fu%d\n" % (i, i, i) for i in (1, 2, 3)), 0o644)
        with CmpTestCa(sb, ca) as srv:
            r = sb.tp("fleet", "--profile", os.path.join(SRC, "tokens", "softhsm-demo.toml"), "--manifest", manifest,
                      "--jobs", "2", "--pin-source", "env:TP_PIN", "--protocol", "cmp", "--cmp-url", srv.url,
                      "--reference", "REF-4711", "--secret-source", "env:CMP_SECRET", "--ca-fingerprint", fp(ca.int),
                      env={"CMP_SECRET": "s3cret"})
            ev = srv.events()
        expect(r.returncode == 0, (r.returncode, r.stdout, r.stderr))
        rows = [json.loads(l) for l in r.stdout.splitlines() if l.strip()]
        expect(len(rows) == 3 and all(x["ok"] for x in rows), rows)
        expect(sum(1 for e in ev if e.startswith("issued")) == 3 and ev.count("certConf accepted") == 3, ev)
        for i in (1, 2, 3):
            leafs = [o for o in sb.objects("f%d" % i) if o["class"] == "certificate" and not o["authority"]]
            expect(len(leafs) == 1 and "Fleet User %d" % i in leafs[0]["subject"], leafs)


def test_renew_over_cmp_replaces_the_certificate_of_the_same_key():
    """renew --protocol cmp: kur signed with the token key and its certificate (one poll); afterwards one
    leaf under the key's id, the new one; --rekey over CMP is refused (exit 2) with the token unchanged."""
    with Sandbox() as sb:
        sb.create_token("cmp")
        ca = TestCA(sb)
        with CmpTestCa(sb, ca) as srv:
            doc = json.loads(enroll(sb, srv, "--algorithm", "rsa2048", "--label", "rex", "--subject", "/CN=rex",
                                    "--ca-fingerprint", fp(ca.int), "--json", check=0).stdout)
        with CmpTestCa(sb, ca, protect="signature", polls=1) as srv:
            before = sb.objects("cmp")
            r = sb.tp("renew", "--token", "cmp", *PIN, "--key", "rex", "--rekey", "--protocol", "cmp", "--cmp-url",
                      srv.url, "--ca-fingerprint", fp(ca.int), "--json")
            expect(r.returncode == 2 and "kur" in r.stdout + r.stderr, (r.returncode, r.stdout, r.stderr))
            expect(sb.objects("cmp") == before, "a refused rekey changed the token")
            r = sb.tp("renew", "--token", "cmp", *PIN, "--key", "rex", "--protocol", "cmp", "--cmp-url", srv.url,
                      "--ca-fingerprint", fp(ca.int), "--wait", "30", "--json")
            ev = srv.events()
        expect(r.returncode == 0, (r.returncode, r.stdout, r.stderr))
        out = json.loads(r.stdout)
        expect(out["protocol"] == "cmp" and out["old_certificate_state"] == "deleted", out)
        expect(out["old_certificate"]["serial"] == doc["certificate"]["serial"], (out, doc))
        expect(out["certificate"]["serial"] != doc["certificate"]["serial"], out)
        expect("certConf accepted" in ev and any(e.endswith(" crmf") for e in ev), ev)
        leafs = [o for o in sb.objects("cmp") if o["class"] == "certificate" and not o["authority"]]
        expect([o["serial"] for o in leafs] == [out["certificate"]["serial"]], leafs)
        expect(leafs[0]["id"] == doc["key"]["id"], leafs)


def test_renew_ec_key_over_cmp():
    """renew --protocol cmp of an EC P-256 key: kur protected by a signature made on the token with
    CKM_ECDSA through the EC bridge, and its POPO too; the new certificate under the key's id."""
    with Sandbox() as sb:
        sb.create_token("cmp")
        ca = TestCA(sb)
        with CmpTestCa(sb, ca) as srv:
            doc = json.loads(enroll(sb, srv, "--algorithm", "ec-p256", "--label", "eve", "--subject", "/CN=eve",
                                    "--ca-fingerprint", fp(ca.int), "--json", check=0).stdout)
        with CmpTestCa(sb, ca, protect="signature", polls=1) as srv:
            r = sb.tp("renew", "--token", "cmp", *PIN, "--key", "eve", "--protocol", "cmp", "--cmp-url", srv.url,
                      "--ca-fingerprint", fp(ca.int), "--wait", "30", "--json")
            ev = srv.events()
        expect(r.returncode == 0, (r.returncode, r.stdout, r.stderr))
        out = json.loads(r.stdout)
        expect(out["old_certificate"]["serial"] == doc["certificate"]["serial"], (out, doc))
        expect(out["certificate"]["serial"] != doc["certificate"]["serial"], out)
        expect("certConf accepted" in ev and any(e.endswith(" crmf") for e in ev), ev)
        leafs = [o for o in sb.objects("cmp") if o["class"] == "certificate" and not o["authority"]]
        expect([o["serial"] for o in leafs] == [out["certificate"]["serial"]], leafs)
        expect(leafs[0]["id"] == doc["key"]["id"], leafs)
        # A signed rr with the EC key and its new certificate.
        with CmpTestCa(sb, ca, protect="signature") as srv:
            rv = sb.tpj("revoke", "--token", "cmp", *PIN, "--key", "eve", "--cmp-url", srv.url, "--ca-fingerprint",
                        fp(ca.int))
            rr = [int(e.split()[1], 16) for e in srv.events() if e.startswith("rr ")]
        expect(rv["revoked"]["serial"] == out["certificate"]["serial"], rv)
        expect(rr == [int(out["certificate"]["serial"], 16)], rr)


if __name__ == "__main__":
    main([test_rsa2048_new_key_ir_two_polls_mac, test_ec_p256_new_key_p10cr_two_polls_mac,
          test_rsa2048_signed_answers_two_polls, test_ec_p256_signed_answers_two_polls,
          test_reject_leaves_token_as_before, test_wrong_certificate_leaves_token_as_before,
          test_wrong_secret_leaves_token_as_before, test_signed_answers_from_an_untrusted_signer_leave_token_as_before,
          test_provision_over_cmp, test_revoke_signed_and_mac,
          test_ctrl_c_while_waiting_withdraws_and_leaves_token_as_before,
          test_kur_renews_with_the_current_key_and_certificate, test_fleet_over_cmp_jobs_2,
          test_renew_over_cmp_replaces_the_certificate_of_the_same_key,
          test_renew_ec_key_over_cmp])
