# SPDX-License-Identifier: Apache-2.0
"""pickup from PEM, DER and PKCS#7 files; the write checked by pkcs11-tool,
OpenSSL's pkcs11 engine (libp11) and NSS."""
import json
import os
import subprocess

from harness import Sandbox, TestCA, main, expect, sh, pct, SOFTHSM_MODULE, USER_PIN


def keygen_csr(sb, token, label, alg="rsa2048", subject=None):
    doc = sb.tpj("keygen", "--token", token, "--pin-source", "env:TP_PIN", "--algorithm", alg, "--label", label)
    csr = sb.path(label + ".csr")
    sb.tp("csr", "--token", token, "--pin-source", "env:TP_PIN", "--key", label, "--subject",
          subject or "/CN=%s/O=Example" % label, "--out", csr, check=0)
    return doc["key"]["id"], csr


def certs_on(sb, token):
    return [o for o in sb.objects(token) if o["class"] == "certificate"]


def test_pickup_pem_bundle_and_idempotence():
    with Sandbox() as sb:
        sb.create_token("pick")
        kid, csr = keygen_csr(sb, "pick", "alice")
        ca = TestCA(sb)
        leaf = ca.issue(csr, sb.path("alice.pem"))
        # Leaf, then root, then intermediate: any order.
        bundle = sb.write("bundle.pem", open(leaf).read() + open(ca.root).read() + open(ca.int).read())
        doc = sb.tpj("pickup", "--token", "pick", "--pin-source", "env:TP_PIN", "--cert", bundle,
                     "--ca-bundle", ca.root)
        expect(doc["written"] == 3 and doc["key"]["id"] == kid, doc)
        expect([c["subject"] for c in doc["chain"]] == ["O=tokenprov tests,CN=Test Issuing CA",
                                                        "O=tokenprov tests,CN=Test Root CA"], doc)
        certs = certs_on(sb, "pick")
        leafobj = [c for c in certs if not c["authority"]]
        expect(len(leafobj) == 1 and leafobj[0]["id"] == kid and leafobj[0]["label"] == "alice", certs)
        expect(sum(1 for c in certs if c["authority"]) == 2, certs)
        # The same again adds nothing.
        doc = sb.tpj("pickup", "--token", "pick", "--pin-source", "env:TP_PIN", "--cert", bundle)
        expect(doc["written"] == 0 and doc["already_present"] == 3, doc)
        expect(len(certs_on(sb, "pick")) == 3, "a second pickup added objects")

        # Independent reader 1: pkcs11-tool shows key and certificate under the same ID.
        r = sb.pkcs11_tool("--token-label", "pick", "-O")
        expect(r.stdout.count("ID:         " + kid) == 3, r.stdout)  # private, public, certificate

        # Independent reader 2: libp11's engine signs by the key's URI; the signature verifies with the cert.
        data = sb.write("data.bin", b"tokenprov interop\n")
        sig = sb.path("data.sig")
        pinf = sb.write("pin.txt", USER_PIN)
        uri = "pkcs11:token=pick;id=%s;type=private?pin-source=file:%s" % (pct(kid), pinf)
        sh(["openssl", "dgst", "-engine", "pkcs11", "-keyform", "engine", "-sign", uri, "-sha256", "-out", sig, data],
           env=sb.env)
        sh(["openssl", "x509", "-in", leaf, "-pubkey", "-noout", "-out", sb.path("pub.pem")])
        r = sh(["openssl", "dgst", "-sha256", "-verify", sb.path("pub.pem"), "-signature", sig, data])
        expect("Verified OK" in r.stdout, r.stdout)

        # Independent reader 3: NSS pairs the key with its certificate.
        db = sb.path("nssdb")
        os.makedirs(db)
        sh(["certutil", "-N", "-d", "sql:" + db, "--empty-password"])
        sh(["modutil", "-force", "-dbdir", "sql:" + db, "-add", "softhsm", "-libfile", SOFTHSM_MODULE], env=sb.env)
        r = sh(["certutil", "-K", "-d", "sql:" + db, "-h", "pick", "-f", pinf], env=sb.env)
        expect("alice" in r.stdout and "orphan" not in r.stdout.lower(), r.stdout)
        r = sh(["certutil", "-L", "-d", "sql:" + db, "-h", "pick", "-f", pinf], env=sb.env)
        expect("pick:alice" in r.stdout, r.stdout)


def test_pickup_der_and_pkcs7():
    with Sandbox() as sb:
        sb.create_token("fmt")
        kid1, csr1 = keygen_csr(sb, "fmt", "der-user", alg="ec-p256")
        kid2, csr2 = keygen_csr(sb, "fmt", "p7-user", alg="ec-p384")
        ca = TestCA(sb)
        pem1 = ca.issue(csr1, sb.path("1.pem"))
        der1 = sb.path("1.der")
        sh(["openssl", "x509", "-in", pem1, "-outform", "DER", "-out", der1])
        doc = sb.tpj("pickup", "--token", "fmt", "--pin-source", "env:TP_PIN", "--cert", der1)
        expect(doc["written"] == 1 and doc["key"]["id"] == kid1, doc)
        pem2 = ca.issue(csr2, sb.path("2.pem"))
        for form in ("PEM", "DER"):
            p7 = sb.path("2.p7b." + form)
            sh(["openssl", "crl2pkcs7", "-nocrl", "-certfile", ca.root, "-certfile", pem2, "-certfile", ca.int,
                "-outform", form, "-out", p7])
            doc = sb.tpj("pickup", "--token", "fmt", "--pin-source", "env:TP_PIN", "--cert", p7)
            expect(doc["key"]["id"] == kid2 and len(doc["chain"]) == 2, doc)
        certs = certs_on(sb, "fmt")
        expect(len(certs) == 4, certs)  # two leaves, two CAs
        expect({c["id"] for c in certs if not c["authority"]} == {kid1, kid2}, certs)


def test_pickup_refusals_leave_token_untouched():
    with Sandbox() as sb:
        sb.create_token("ref")
        kid, csr = keygen_csr(sb, "ref", "bob")
        ca = TestCA(sb)
        before = sb.objects("ref")
        # A certificate of another key (made in software).
        other_csr = sb.path("other.csr")
        sh(["openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", sb.path("other.key"),
            "-out", other_csr, "-subj", "/CN=other"])
        other = ca.issue(other_csr, sb.path("other.pem"))
        r = sb.tp("pickup", "--token", "ref", "--pin-source", "env:TP_PIN", "--cert", other)
        expect(r.returncode == 5 and "No key on the token matches" in r.stderr, (r.returncode, r.stderr))
        # Expired, and not yet valid.
        exp = ca.issue(csr, sb.path("exp.pem"), not_before="20200101000000Z", not_after="20210101000000Z")
        r = sb.tp("pickup", "--token", "ref", "--pin-source", "env:TP_PIN", "--cert", exp)
        expect(r.returncode == 5 and "expired" in r.stderr, (r.returncode, r.stderr))
        fut = ca.issue(csr, sb.path("fut.pem"), not_before="20990101000000Z", not_after="20991231000000Z")
        r = sb.tp("pickup", "--token", "ref", "--pin-source", "env:TP_PIN", "--cert", fut)
        expect(r.returncode == 5 and "not valid yet" in r.stderr, (r.returncode, r.stderr))
        # A chain that does not verify against the bundle.
        good = ca.issue(csr, sb.path("good.pem"))
        other_ca = TestCA(sb, "Other")
        r = sb.tp("pickup", "--token", "ref", "--pin-source", "env:TP_PIN", "--cert", good,
                  "--ca-bundle", other_ca.root)
        expect(r.returncode == 5 and "does not verify" in r.stderr, (r.returncode, r.stderr))
        # Garbage and truncated files.
        junk = sb.write("junk.pem", "-----BEGIN CERTIFICATE-----\nnot base64!!\n-----END CERTIFICATE-----\n")
        r = sb.tp("pickup", "--token", "ref", "--pin-source", "env:TP_PIN", "--cert", junk)
        expect(r.returncode == 5 and "junk.pem" in r.stderr, (r.returncode, r.stderr))
        trunc = sb.write("trunc.der", open(sb.path("good.pem")).read()[:300])
        r = sb.tp("pickup", "--token", "ref", "--pin-source", "env:TP_PIN", "--cert", trunc)
        expect(r.returncode == 5, (r.returncode, r.stderr))
        r = sb.tp("pickup", "--token", "ref", "--pin-source", "env:TP_PIN", "--cert", sb.path("missing.pem"))
        expect(r.returncode == 5 and "missing.pem" in r.stderr, (r.returncode, r.stderr))
        expect(sb.objects("ref") == before, "a refused pickup changed the token")
        # --allow-expired stores the expired one.
        doc = sb.tpj("pickup", "--token", "ref", "--pin-source", "env:TP_PIN", "--cert", exp, "--allow-expired")
        expect(doc["written"] == 1, doc)


if __name__ == "__main__":
    main([test_pickup_pem_bundle_and_idempotence, test_pickup_der_and_pkcs7, test_pickup_refusals_leave_token_untouched])
