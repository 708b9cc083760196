# SPDX-License-Identifier: Apache-2.0
"""EST (RFC 7030) against the project's own EST server (tests/e2e/estserver.py): enroll with HTTP
Basic, pending (202 + Retry-After), wrong credentials, a server the --ca-bundle does not verify;
renew over /simplereenroll authenticated by the token key in TLS, and --rekey keeping the old key.
curl and openssl are independent clients of the same server."""
# ctest: one test per function
import base64
import json
import os
import shutil
import subprocess

from harness import Sandbox, main, expect, sh, BIN, SRC, SOFTHSM_MODULE, USER_PIN
from estserver import EstServer, ext_request_attr
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID


def enroll_args(est, token, label, *extra):
    return ["enroll", "--protocol", "est", "--token", token, "--pin-source", "env:TP_PIN", "--est-url", est.url,
            "--est-user", "dev", "--secret-source", "env:EST_PW", "--ca-bundle", est.tls_ca_path,
            "--label", label, "--subject", "/CN=%s/O=Example" % label] + list(extra)


def leaves(sb, token):
    return [o for o in sb.objects(token) if o["class"] == "certificate" and not o["authority"]]


def test_est_server_with_curl_and_openssl():
    with Sandbox() as sb, EstServer(sb.path("est"), user="dev", password="otp") as est:
        # curl: /cacerts is base64 PKCS#7 holding the EST CA; openssl reads it.
        r = sh(["curl", "-sS", "--fail", "--cacert", est.tls_ca_path, est.url + "/cacerts"])
        p7 = sb.write("cacerts.der", base64.b64decode(r.stdout))
        r = sh(["openssl", "pkcs7", "-inform", "DER", "-in", p7, "-print_certs"])
        expect("EST Test CA" in r.stdout, r.stdout)
        # openssl s_client: the TLS certificate verifies against the TLS root only.
        r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % est.port, "-CAfile", est.tls_ca_path,
                            "-verify_return_error", "-brief"], input="", capture_output=True, text=True, timeout=60)
        expect(r.returncode == 0 and "Verification: OK" in r.stderr, r.stderr)
        r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % est.port, "-CAfile", est.ca_path,
                            "-verify_return_error", "-brief"], input="", capture_output=True, text=True, timeout=60)
        expect(r.returncode != 0, "s_client trusted the server with the wrong CA")
        # curl: wrong credentials 401, right ones 200 with a certificate for the request's key.
        key, csr = sb.path("k.pem"), sb.path("c.der")
        sh(["openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-outform", "DER", "-out", csr,
            "-subj", "/CN=curl"])
        body = base64.b64encode(open(csr, "rb").read())
        for user, code in (("dev:bad", "401"), ("dev:otp", "200")):
            r = subprocess.run(["curl", "-sS", "-o", sb.path("out"), "-w", "%{http_code}", "--cacert", est.tls_ca_path,
                                "--user", user, "-H", "Content-Type: application/pkcs10", "--data-binary", "@-",
                                est.url + "/simpleenroll"], input=body, capture_output=True, timeout=60)
            expect(r.stdout.decode() == code, (user, r.stdout, r.stderr))
        cert = sb.write("issued.der", base64.b64decode(open(sb.path("out"), "rb").read()))
        r = sh(["openssl", "pkcs7", "-inform", "DER", "-in", cert, "-print_certs"])
        expect("CN = curl" in r.stdout or "CN=curl" in r.stdout, r.stdout)


def test_est_enroll_pending_and_chain():
    with Sandbox() as sb, EstServer(sb.path("est"), user="dev", password="otp", pending=1, retry_after=1) as est:
        sb.create_token("e1")
        env = {"EST_PW": "otp"}
        # Pending and no --wait: exit 7, nothing left on the token.
        before = sb.objects("e1")
        r = sb.tp(*enroll_args(est, "e1", "alice"), env=env)
        expect(r.returncode == 7 and "202" in r.stderr and "--wait" in r.stderr, (r.returncode, r.stderr))
        expect(sb.objects("e1") == before, "a key was left behind")
        # Pending once more, waited for within --wait.
        est.pending = 1
        doc = sb.tpj(*enroll_args(est, "e1", "alice", "--wait", "20"), env=env)
        codes = [e[4] for e in est.requests("/simpleenroll")]
        expect(codes == [202, 202, 200], est.log)
        expect(doc["protocol"] == "est" and doc["written"] == 2, doc)
        kid = doc["key"]["id"]
        lv = leaves(sb, "e1")
        expect(len(lv) == 1 and lv[0]["id"] == kid and lv[0]["label"] == "alice", lv)
        cas = [o for o in sb.objects("e1") if o["class"] == "certificate" and o["authority"]]
        expect([c["subject"] for c in cas] == ["O=tokenprov EST tests,CN=EST Test CA"], cas)  # /cacerts' chain
        # Independent check: pkcs11-tool reads the certificate; openssl verifies it under the EST CA.
        der = sb.path("leaf.der")
        sb.pkcs11_tool("--token-label", "e1", "--read-object", "--type", "cert", "--id", kid, "-o", der)
        pem = sb.path("leaf.pem")
        sh(["openssl", "x509", "-inform", "DER", "-in", der, "-out", pem])
        sh(["openssl", "verify", "-CAfile", est.ca_path, pem])


def test_est_enroll_existing_ec_key_and_csrattrs():
    """--key: an EC key already on the token (EST takes every algorithm); /csrattrs read and sorted."""
    with Sandbox() as sb, EstServer(sb.path("est"), user="dev", password="otp",
                                    csrattrs=["1.2.840.10045.4.3.2", "1.2.840.113549.1.9.7"]) as est:
        sb.create_token("e3")
        kid = sb.tpj("keygen", "--token", "e3", "--pin-source", "env:TP_PIN", "--algorithm", "ec-p256",
                     "--label", "gus")["key"]["id"]
        args = enroll_args(est, "e3", "gus")
        i = args.index("--label")
        del args[i:i + 2]
        r = sb.tp(*(args + ["--key", "gus", "--json"]), env={"EST_PW": "otp"}, check=0)
        doc = json.loads(r.stdout)
        expect(doc["key"]["id"] == kid and doc["protocol"] == "est", doc)
        # ecdsa-with-SHA256 is what the request carries; challengePassword (tls-unique) is not done.
        expect(doc["csrattrs"]["applied"] == ["1.2.840.10045.4.3.2 ecdsa-with-SHA256"], doc["csrattrs"])
        expect(doc["csrattrs"]["ignored"] == ["1.2.840.113549.1.9.7 challengePassword"], doc["csrattrs"])
        expect("ignored" in r.stderr and "challengePassword" in r.stderr, r.stderr)
        lv = leaves(sb, "e3")
        expect(len(lv) == 1 and lv[0]["id"] == kid and lv[0]["label"] == "gus", lv)


def test_est_csrattrs_profile_decides():
    """/csrattrs asks for keyUsage and extendedKeyUsage with values, and a challengePassword: the
    profile's [est] csrattrs_allow decides what goes into the request; the rest is ignored and said."""
    ku = x509.KeyUsage(True, False, False, False, False, False, False, False, False)
    eku = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.EMAIL_PROTECTION])
    asked = [ext_request_attr([ku, eku]), "1.2.840.113549.1.9.7"]
    with Sandbox() as sb, EstServer(sb.path("est"), user="dev", password="otp", csrattrs=asked) as est:
        sb.create_token("ca1")
        keys = '[[keys]]\nrole = "auth"\nalgorithm = "rsa2048"\n'
        allow = sb.write("allow.toml", (keys + '[est]\ncsrattrs_allow = ["extendedKeyUsage"]\n').encode())
        # No profile: nothing is added; all three are reported ignored.
        r = sb.tp(*(enroll_args(est, "ca1", "plain") + ["--json"]), env={"EST_PW": "otp"}, check=0)
        doc = json.loads(r.stdout)
        expect(doc["csrattrs"]["applied"] == [], doc["csrattrs"])
        expect(doc["csrattrs"]["ignored"] == ["2.5.29.15 keyUsage", "2.5.29.37 extendedKeyUsage",
                                              "1.2.840.113549.1.9.7 challengePassword"], doc["csrattrs"])
        expect("does not allow" in r.stderr and "keyUsage" in r.stderr, r.stderr)
        expect(len(est.csrs[-1].extensions) == 0, est.csrs[-1].extensions)
        # The profile allows extendedKeyUsage: it goes in with the CA's values, keyUsage does not.
        r = sb.tp(*(enroll_args(est, "ca1", "allowed") + ["--profile", allow, "--json"]), env={"EST_PW": "otp"},
                  check=0)
        doc = json.loads(r.stdout)
        expect(doc["csrattrs"]["applied"] == ["2.5.29.37 extendedKeyUsage"], doc["csrattrs"])
        expect(doc["csrattrs"]["ignored"] == ["2.5.29.15 keyUsage", "1.2.840.113549.1.9.7 challengePassword"],
               doc["csrattrs"])
        exts = est.csrs[-1].extensions
        expect([e.oid for e in exts] == [x509.oid.ExtensionOID.EXTENDED_KEY_USAGE], exts)
        expect(list(exts[0].value) == [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.EMAIL_PROTECTION], exts)
        # An allow list naming something that is not an extension: the profile is refused, nothing made.
        bad = sb.write("bad.toml", (keys + '[est]\ncsrattrs_allow = ["challengePassword"]\n').encode())
        before = sb.objects("ca1")
        r = sb.tp(*(enroll_args(est, "ca1", "bad") + ["--profile", bad]), env={"EST_PW": "otp"})
        expect(r.returncode == 5 and "csrattrs_allow" in r.stderr, (r.returncode, r.stderr))
        expect(sb.objects("ca1") == before, "a key was made")


def test_est_refusals_leave_token_unchanged():
    with Sandbox() as sb, EstServer(sb.path("est"), user="dev", password="otp") as est, \
            EstServer(sb.path("bad"), untrusted_tls=True) as bad:
        sb.create_token("e2")
        before = sb.objects("e2")
        r = sb.tp(*enroll_args(est, "e2", "bob"), env={"EST_PW": "wrong"})
        expect(r.returncode == 7 and "401" in r.stderr and "--est-user" in r.stderr, (r.returncode, r.stderr))
        expect(sb.objects("e2") == before, "a key was left behind")
        # A server the bundle does not verify gets no request at all.
        args = enroll_args(bad, "e2", "bob")
        args[args.index("--ca-bundle") + 1] = est.tls_ca_path
        r = sb.tp(*args, env={"EST_PW": "otp"})
        expect(r.returncode == 7 and "--ca-bundle" in r.stderr, (r.returncode, r.stderr))
        expect(not [e for e in bad.log if e[0] != "TLS"] and bad.tls_failures(), bad.log)
        expect(sb.objects("e2") == before, "a key was left behind")
        # A bundle that holds no certificate: bad input (5), nothing generated.
        args = enroll_args(est, "e2", "bob")
        args[args.index("--ca-bundle") + 1] = sb.write("junk.pem", "not a certificate\n")
        r = sb.tp(*args, env={"EST_PW": "otp"})
        expect(r.returncode == 5 and "junk.pem" in r.stderr, (r.returncode, r.stderr))
        # No --ca-bundle: usage error before anything happens.
        args = enroll_args(est, "e2", "bob")
        i = args.index("--ca-bundle")
        del args[i:i + 2]
        r = sb.tp(*args, env={"EST_PW": "otp"})
        expect(r.returncode == 2 and "--ca-bundle" in r.stderr, (r.returncode, r.stderr))
        expect(sb.objects("e2") == before, "a key was left behind")


def test_renew_and_rekey_over_est():
    with Sandbox() as sb, EstServer(sb.path("est"), user="dev", password="otp", validity=7200,
                                    reenroll_validity=30 * 86400) as est:
        sb.create_token("r1")
        doc = sb.tpj(*enroll_args(est, "r1", "carol", "--exportable"), env={"EST_PW": "otp"})
        kid = doc["key"]["id"]
        first_serial = doc["certificate"]["serial"]
        # Two hours left: status finds it within a day.
        sb.tpj("status", "--token", "r1", "--expiring", "1", check=9)
        renew = ["renew", "--token", "r1", "--pin-source", "env:TP_PIN", "--key", "carol", "--est-url", est.url,
                 "--ca-bundle", est.tls_ca_path]
        doc = sb.tpj(*renew)
        expect(doc["key"]["id"] == kid and doc["old_certificate_state"] == "deleted", doc)
        new_serial = doc["certificate"]["serial"]
        re = est.requests("/simplereenroll")
        # The server saw the OLD certificate as the TLS client certificate (its serial, as an int).
        expect(len(re) == 1 and re[0][4] == 200 and re[0][3] == int(first_serial, 16), (re, first_serial))
        lv = leaves(sb, "r1")
        expect(len(lv) == 1 and lv[0]["id"] == kid and lv[0]["label"] == "carol" and lv[0]["serial"] == new_serial, lv)
        sb.tpj("status", "--token", "r1", "--expiring", "1")  # 30 days now: exit 0
        # The renewed token works in a TLS client-auth handshake with the NEW certificate: renew again,
        # the server verifies the client certificate and records its serial.
        doc = sb.tpj(*renew)
        re = est.requests("/simplereenroll")
        expect(len(re) == 2 and re[1][4] == 200 and re[1][3] == int(new_serial, 16), (re, new_serial))
        current = doc["certificate"]["serial"]
        # --rekey: a new key takes the label; the old key, public key and certificate keep their id, archived.
        doc = sb.tpj(*(renew + ["--rekey"]))
        newid = doc["key"]["id"]
        expect(newid != kid and doc["key"]["label"] == "carol" and doc["archived_key"]["id"] == kid, doc)
        expect("archived" in doc["archived_key"]["label"], doc)
        re = est.requests("/simplereenroll")
        expect(re[-1][3] == int(current, 16), re)
        objs = sb.objects("r1")
        old = [o for o in objs if o["id"] == kid]
        expect(sorted(o["class"] for o in old) == ["certificate", "private-key", "public-key"], old)
        expect(all("archived" in o["label"] for o in old), old)
        new = [o for o in objs if o["id"] == newid]
        expect(sorted(o["class"] for o in new) == ["certificate", "private-key", "public-key"], new)
        expect(all(o["label"] == "carol" for o in new), new)
        expect([o for o in new if o["class"] == "private-key"][0]["extractable"], new)  # the old key's policy
        # The archived key still decrypts: encrypt to the archived certificate, decrypt on the token by its id.
        der = sb.path("old.der")
        sb.pkcs11_tool("--token-label", "r1", "--read-object", "--type", "cert", "--id", kid, "-o", der)
        pem = sb.path("old.pem")
        sh(["openssl", "x509", "-inform", "DER", "-in", der, "-out", pem])
        msg = sb.write("msg.txt", b"data encrypted before the rekey\n")
        enc = sb.path("msg.enc")
        sh(["openssl", "pkeyutl", "-encrypt", "-certin", "-inkey", pem, "-in", msg, "-out", enc])
        out = sb.path("msg.dec")
        sb.pkcs11_tool("--token-label", "r1", "--decrypt", "--id", kid, "-m", "RSA-PKCS", "--input-file", enc,
                       "--output-file", out)
        expect(open(out, "rb").read() == b"data encrypted before the rekey\n", open(out, "rb").read())
        # status shows both, the archived one with its key.
        st = sb.tpj("status", "--token", "r1", "--pin-source", "env:TP_PIN")
        labels = sorted(c["label"] for c in st["certificates"] if not c["authority"])
        expect(len(labels) == 2 and "carol" in labels and any("archived" in l for l in labels), labels)


def test_renew_and_rekey_ec_over_est():
    """An EC P-256 key: the TLS client authentication of /simplereenroll signs with the token key through
    the EC bridge (CKM_ECDSA on the token); renew keeps the key, --rekey makes a new P-256 key."""
    with Sandbox() as sb, EstServer(sb.path("est"), user="dev", password="otp", validity=7200,
                                    reenroll_validity=30 * 86400) as est:
        sb.create_token("e1")
        doc = sb.tpj(*enroll_args(est, "e1", "erin", "--algorithm", "ec-p256"), env={"EST_PW": "otp"})
        kid = doc["key"]["id"]
        first_serial = doc["certificate"]["serial"]
        renew = ["renew", "--token", "e1", "--pin-source", "env:TP_PIN", "--key", "erin", "--est-url", est.url,
                 "--ca-bundle", est.tls_ca_path]
        doc = sb.tpj(*renew)
        expect(doc["key"]["id"] == kid and doc["old_certificate_state"] == "deleted", doc)
        new_serial = doc["certificate"]["serial"]
        re = est.requests("/simplereenroll")
        expect(len(re) == 1 and re[0][4] == 200 and re[0][3] == int(first_serial, 16), (re, first_serial))
        lv = leaves(sb, "e1")
        expect(len(lv) == 1 and lv[0]["id"] == kid and lv[0]["serial"] == new_serial, lv)
        doc = sb.tpj(*(renew + ["--rekey"]))
        newid = doc["key"]["id"]
        expect(newid != kid and doc["key"]["label"] == "erin" and doc["archived_key"]["id"] == kid, doc)
        re = est.requests("/simplereenroll")
        expect(len(re) == 2 and re[1][4] == 200 and re[1][3] == int(new_serial, 16), (re, new_serial))
        # The new certificate carries the new key, a P-256 one.
        der = sb.path("new.der")
        sb.pkcs11_tool("--token-label", "e1", "--read-object", "--type", "cert", "--id", newid, "-o", der)
        text = sh(["openssl", "x509", "-inform", "DER", "-in", der, "-noout", "-text"]).stdout
        expect("prime256v1" in text or "P-256" in text, text)
        new = [o for o in sb.objects("e1") if o["id"] == newid]
        expect(sorted(o["class"] for o in new) == ["certificate", "private-key", "public-key"], new)
        # The renewed key authenticates again (its new certificate in the handshake).
        sb.tpj(*renew)
        re = est.requests("/simplereenroll")
        expect(len(re) == 3 and re[2][4] == 200 and re[2][3] == int(doc["certificate"]["serial"], 16), re)
        # SCEP stays RSA-only (RFC 8894's CertRep is encrypted to the key): refused before anything changes.
        before = sb.objects("e1")
        r = sb.tp("renew", "--protocol", "scep", "--token", "e1", "--pin-source", "env:TP_PIN", "--key", "erin",
                  "--scep-url", "http://127.0.0.1:9/scep", "--ca-fingerprint", "00" * 32)
        expect(r.returncode == 2 and "RSA" in r.stderr, (r.returncode, r.stderr))
        expect(sb.objects("e1") == before, "a refused SCEP renewal changed the token")


def test_renew_refusals():
    with Sandbox() as sb, EstServer(sb.path("est"), user="dev", password="otp") as est:
        sb.create_token("r2")
        sb.tpj("keygen", "--token", "r2", "--pin-source", "env:TP_PIN", "--algorithm", "rsa2048", "--label", "nocert")
        before = sb.objects("r2")
        renew = ["renew", "--token", "r2", "--pin-source", "env:TP_PIN", "--est-url", est.url,
                 "--ca-bundle", est.tls_ca_path]
        r = sb.tp(*(renew + ["--key", "nocert"]))
        expect(r.returncode == 5 and "no certificate" in r.stderr, (r.returncode, r.stderr))
        r = sb.tp(*(renew + ["--key", "nocert", "--rekey"]))
        expect(r.returncode == 5, (r.returncode, r.stderr))
        r = sb.tp(*(renew + ["--key", "nocert", "--protocol", "cmp"]))
        expect(r.returncode in (2, 5), (r.returncode, r.stderr))
        expect(sb.objects("r2") == before, "renew changed the token")
        # A certificate from another CA: the EST server refuses the client certificate in the TLS
        # handshake, nothing changes.
        csr = sb.path("n.csr")
        sb.tp("csr", "--token", "r2", "--pin-source", "env:TP_PIN", "--key", "nocert", "--subject", "/CN=nocert",
              "--out", csr, check=0)
        sh(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", sb.path("o.key"), "-out",
            sb.path("o.pem"), "-subj", "/CN=Other CA", "-days", "2"])
        sh(["openssl", "x509", "-req", "-in", csr, "-CA", sb.path("o.pem"), "-CAkey", sb.path("o.key"),
            "-CAcreateserial", "-out", sb.path("n.pem"), "-days", "2"])
        sb.tp("pickup", "--token", "r2", "--pin-source", "env:TP_PIN", "--cert", sb.path("n.pem"), check=0)
        before = sb.objects("r2")
        r = sb.tp(*(renew + ["--key", "nocert", "--rekey"]))
        expect(r.returncode == 7 and "client certificate" in r.stderr and "Other CA" in r.stderr, (r.returncode, r.stderr))
        expect(est.tls_failures() and not est.requests("/simplereenroll"), est.log)
        expect(sb.objects("r2") == before, "a failed rekey changed the token")


def test_renew_service_script():
    """packaging/systemd/tokenprov-renew, as the service runs it (its EnvironmentFile's variables),
    and the units checked by systemd-analyze."""
    script = os.path.join(SRC, "packaging", "systemd", "tokenprov-renew")
    units = [os.path.join(SRC, "packaging", "systemd", u) for u in ("tokenprov-renew.service", "tokenprov-renew.timer")]
    if shutil.which("systemd-analyze"):
        r = subprocess.run(["systemd-analyze", "verify", "--man=no"] + units, capture_output=True, text=True)
        problems = [l for l in (r.stdout + r.stderr).splitlines()
                    if l.strip() and "/usr/libexec/tokenprov/tokenprov-renew is not executable" not in l]
        expect(not problems, problems)
    with Sandbox() as sb, EstServer(sb.path("est"), user="dev", password="otp", validity=3 * 86400,
                                    reenroll_validity=60 * 86400) as est:
        sb.create_token("svc")
        doc = sb.tpj(*enroll_args(est, "svc", "erin"), env={"EST_PW": "otp"})
        first = doc["certificate"]["serial"]
        pin = sb.write("pin", USER_PIN)
        env = dict(sb.env, TOKENPROV_BIN=BIN, TOKENPROV_TOKEN="svc", TOKENPROV_KEY="erin",
                   TOKENPROV_PIN_SOURCE="file:" + pin, TOKENPROV_MODULE=SOFTHSM_MODULE, RENEW_DAYS="2",
                   RENEW_EST_URL=est.url, RENEW_CA_BUNDLE=est.tls_ca_path)
        # Three days left, window two: nothing to do, exit 0, no request.
        r = subprocess.run([script], env=env, capture_output=True, text=True, timeout=120)
        expect(r.returncode == 0 and "no certificate" in r.stdout and not est.requests("/simplereenroll"),
               (r.returncode, r.stdout, r.stderr))
        # Window five: renewed, exit 0; the new certificate is outside the window.
        env["RENEW_DAYS"] = "5"
        r = subprocess.run([script], env=env, capture_output=True, text=True, timeout=120)
        expect(r.returncode == 0 and len(est.requests("/simplereenroll")) == 1, (r.returncode, r.stdout, r.stderr))
        lv = leaves(sb, "svc")
        expect(len(lv) == 1 and lv[0]["serial"] != first, lv)
        sb.tpj("status", "--token", "svc", "--expiring", "5")
        # A wrong PIN: the unit fails with tokenprov's 3, once (never retried).
        env["RENEW_DAYS"] = "90"
        bad = sb.write("badpin", "999999")
        env["TOKENPROV_PIN_SOURCE"] = "file:" + bad
        r = subprocess.run([script], env=env, capture_output=True, text=True, timeout=120)
        expect(r.returncode == 3, (r.returncode, r.stdout, r.stderr))
        # Not configured: a usage failure naming the variable.
        del env["TOKENPROV_KEY"]
        r = subprocess.run([script], env=env, capture_output=True, text=True, timeout=120)
        expect(r.returncode != 0 and "TOKENPROV_KEY" in r.stderr, (r.returncode, r.stderr))


if __name__ == "__main__":
    main([test_est_server_with_curl_and_openssl, test_est_enroll_pending_and_chain,
          test_est_enroll_existing_ec_key_and_csrattrs, test_est_csrattrs_profile_decides,
          test_est_refusals_leave_token_unchanged, test_renew_and_rekey_over_est, test_renew_and_rekey_ec_over_est,
          test_renew_refusals,
          test_renew_service_script])
