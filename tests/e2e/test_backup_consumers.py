# SPDX-License-Identifier: Apache-2.0
"""Every backup the suite makes (RSA, EC P-256, EC P-384; modern and legacy) read by the five consumers a backup is carried to: OpenSSL
(openssl pkcs12), NSS (pk12util import), Java (keytool -list and
-importkeystore), GnuTLS (certtool --p12-info and gnutls_pkcs12_simple_parse,
the import call of GnuTLS programs) and Python's cryptography (Debian's, run
with /usr/bin/python3). What a consumer cannot read by design is asserted as
a refusal (KNOWN_REFUSALS, written up in docs/key-policy.md), never skipped.
Ed25519: SoftHSM2 2.6 cannot wrap an Ed25519 key (CKR_KEY_NOT_WRAPPABLE), so
no Ed25519 backup can be made here; the test asserts that refusal.
Passwords reach the tools through files or standard input, never argv."""
import json
import os

import gnutls_p12
from harness import Sandbox, TestCA, main, expect, sh

PW = "correct horse battery"
ALGS = ("rsa2048", "ec-p256", "ec-p384")
COMPATS = ("modern", "legacy")
# (consumer, algorithm): what the consumer answers. NSS 3.87 (Debian 12) has no Ed25519.
KNOWN_REFUSALS = {("nss", "ed25519"): "SEC_ERROR_PKCS12_UNABLE_TO_IMPORT_KEY"}
GNUTLS_ALG = {"rsa2048": "RSA", "ec-p256": "EC/ECDSA", "ec-p384": "EC/ECDSA", "ed25519": "EdDSA (Ed25519)"}
PY_KEY = {"rsa2048": "RSAPrivateKey", "ec-p256": "EllipticCurvePrivateKey", "ec-p384": "EllipticCurvePrivateKey",
          "ed25519": "Ed25519PrivateKey"}

PY_READER = r"""
import json, sys
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa, ec, ed25519
from cryptography.hazmat.primitives.serialization import pkcs12
pw = open(sys.argv[1], "rb").read()
out = {}
for path in sys.argv[2:]:
    p = pkcs12.load_pkcs12(open(path, "rb").read(), pw)
    kinds = [n for n, t in (("RSAPrivateKey", rsa.RSAPrivateKey), ("EllipticCurvePrivateKey", ec.EllipticCurvePrivateKey),
                            ("Ed25519PrivateKey", ed25519.Ed25519PrivateKey)) if isinstance(p.key, t)]
    spki = lambda k: k.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    out[path] = {"key": kinds, "matches": spki(p.key.public_key()) == spki(p.cert.certificate.public_key()),
                 "leaf": p.cert.certificate.subject.rfc4514_string(),
                 "name": (p.cert.friendly_name or b"").decode(),
                 "chain": [c.certificate.subject.rfc4514_string() for c in p.additional_certs]}
print(json.dumps(out))
"""


def make_backups(sb):
    sb.create_token("bk")
    sb.ca = TestCA(sb)
    files = {}
    for alg in ALGS:
        label = "user-" + alg
        kid = sb.tpj("keygen", "--token", "bk", "--pin-source", "env:TP_PIN", "--algorithm", alg, "--label", label,
                     "--exportable")["key"]["id"]
        csr = sb.path(label + ".csr")
        sb.tp("csr", "--token", "bk", "--pin-source", "env:TP_PIN", "--key", label, "--subject",
              "/CN=%s/O=Example" % label, "--out", csr, check=0)
        leaf = sb.ca.issue(csr, sb.path(label + ".pem"))
        sb.tp("pickup", "--token", "bk", "--pin-source", "env:TP_PIN", "--cert",
              sb.write(label + "-b.pem", open(leaf).read() + sb.ca.chain_pem()), check=0)
        for compat in COMPATS:
            out = sb.path("%s-%s.p12" % (label, compat))
            sb.tp("backup", "--token", "bk", "--pin-source", "env:TP_PIN", "--key", label, "--out", out,
                  "--compat", compat, "--password-source", "env:PW", env={"PW": PW}, check=0)
            files[(alg, compat)] = (out, label, kid)
    return files


def check_openssl(sb, path, label, kid, pwf):
    r = sh(["openssl", "pkcs12", "-in", path, "-passin", "file:" + pwf, "-nodes", "-info"])
    expect(r.stdout.count("BEGIN CERTIFICATE") == 3 and "PRIVATE KEY" in r.stdout, r.stdout)
    expect("friendlyName: " + label in r.stdout, r.stdout)
    want_id = " ".join(kid[i:i + 2] for i in range(0, len(kid), 2)).upper()
    expect(r.stdout.count("localKeyID: " + want_id) == 2, (want_id, r.stdout))  # the key and the leaf
    return r.stdout


def check_ec_key_has_public(sb, path, pwf):
    """RFC 5915: the PKCS#8 names the curve (id-ecPublicKey with the curve's OID) and its ECPrivateKey carries
    publicKey ([1] BIT STRING), which GnuTLS requires."""
    pem = sh(["openssl", "pkcs12", "-in", path, "-passin", "file:" + pwf, "-nodes", "-nocerts"]).stdout
    key = sb.write("k.pem", pem[pem.index("-----BEGIN PRIVATE KEY"):])
    top = sh(["openssl", "asn1parse", "-in", key]).stdout
    expect("id-ecPublicKey" in top and ("prime256v1" in top or "secp384r1" in top), top)
    off = [l.split(":")[0].strip() for l in top.splitlines() if "d=1" in l and "OCTET STRING" in l][0]
    inner = sh(["openssl", "asn1parse", "-in", key, "-strparse", off]).stdout
    expect("cont [ 1 ]" in inner and "BIT STRING" in inner, inner)


def check_nss(sb, path, alg, compat, label, pwf):
    db = sb.path("nss-%s-%s" % (alg, compat))
    os.makedirs(db)
    sh(["certutil", "-N", "-d", "sql:" + db, "--empty-password"])
    r = sh(["pk12util", "-i", path, "-d", "sql:" + db, "-w", pwf, "-K", ""], check=False)
    if ("nss", alg) in KNOWN_REFUSALS:
        expect(r.returncode != 0 and KNOWN_REFUSALS[("nss", alg)] in r.stdout + r.stderr, (r.returncode, r.stdout,
                                                                                            r.stderr))
        return
    expect(r.returncode == 0, (r.stdout, r.stderr))
    r = sh(["certutil", "-L", "-d", "sql:" + db])
    expect(label in r.stdout and "Issuing CA" in r.stdout and "Root CA" in r.stdout, r.stdout)
    r = sh(["certutil", "-K", "-d", "sql:" + db])
    expect(r.stdout.count("<") == 1 and label in r.stdout, r.stdout)


def check_java(sb, path, alg, compat, label, pwf):
    r = sh(["keytool", "-list", "-v", "-storetype", "PKCS12", "-keystore", path, "-storepass:file", pwf])
    expect("Alias name: " + label in r.stdout and "PrivateKeyEntry" in r.stdout, r.stdout)
    expect("Certificate chain length: 3" in r.stdout, r.stdout)
    dest = sb.path("java-%s-%s.p12" % (alg, compat))
    sh(["keytool", "-importkeystore", "-srckeystore", path, "-srcstoretype", "PKCS12", "-srcstorepass:file", pwf,
        "-destkeystore", dest, "-deststoretype", "PKCS12", "-deststorepass:file", pwf, "-noprompt"])
    r = sh(["keytool", "-list", "-storetype", "PKCS12", "-keystore", dest, "-storepass:file", pwf])
    expect("PrivateKeyEntry" in r.stdout, r.stdout)


def check_gnutls(sb, path, alg, label, kid, pwf):
    with open(pwf) as pw:
        r = sh(["certtool", "--p12-info", "--inder", "--infile", path], stdin=pw)
    out = r.stdout + r.stderr
    expect("Decryption has failed" not in out and "error" not in out.lower(), out)
    expect("PKCS #8 Encrypted key" in out or "PKCS #8 key" in out or "Encrypted" in out, out)
    expect(out.count("BEGIN CERTIFICATE") == 3 and "PRIVATE KEY" in out, out)
    expect(("Friendly name: " + label) in out, out)
    want_id = ":".join(kid[i:i + 2] for i in range(0, len(kid), 2)).upper()
    expect(("Key ID: " + want_id) in out, (want_id, out))
    got = gnutls_p12.simple_parse(open(path, "rb").read(), PW)
    expect(got["algorithm"] == GNUTLS_ALG[alg] and got["key_ok"], got)
    expect(got["chain"] + got["extra"] == 3, got)


def check_python(files, pwf):
    paths = [v[0] for v in files.values()]
    r = sh(["/usr/bin/python3", "-c", PY_READER, pwf] + paths)
    got = json.loads(r.stdout)
    for (alg, compat), (path, label, kid) in files.items():
        g = got[path]
        expect(g["key"] == [PY_KEY[alg]] and g["matches"], (alg, compat, g))
        expect(g["leaf"] == "O=Example,CN=" + label and g["name"] == label, (alg, compat, g))
        expect(len(g["chain"]) == 2 and "Issuing CA" in g["chain"][0] and "Root CA" in g["chain"][1],
               (alg, compat, g))


def test_ed25519_backup_refused_by_softhsm():
    with Sandbox() as sb:
        sb.create_token("ed")
        sb.ca = TestCA(sb)
        sb.tpj("keygen", "--token", "ed", "--pin-source", "env:TP_PIN", "--algorithm", "ed25519", "--label", "ed",
               "--exportable")
        csr = sb.path("ed.csr")
        sb.tp("csr", "--token", "ed", "--pin-source", "env:TP_PIN", "--key", "ed", "--subject", "/CN=ed",
              "--out", csr, check=0)
        sb.tp("pickup", "--token", "ed", "--pin-source", "env:TP_PIN", "--cert", sb.ca.issue(csr, sb.path("ed.pem")),
              check=0)
        out = sb.path("ed.p12")
        r = sb.tp("backup", "--token", "ed", "--pin-source", "env:TP_PIN", "--key", "ed", "--out", out,
                  "--password-source", "env:PW", env={"PW": PW})
        expect(r.returncode == 6 and "CKR_KEY_NOT_WRAPPABLE" in r.stderr and "Ed25519" in r.stderr,
               (r.returncode, r.stderr))
        expect(not os.path.exists(out), "a file was written")


def test_every_backup_in_every_consumer():
    with Sandbox() as sb:
        files = make_backups(sb)
        pwf = sb.write("pw.txt", PW)
        for (alg, compat), (path, label, kid) in files.items():
            try:
                check_openssl(sb, path, label, kid, pwf)
                if alg.startswith("ec-"):
                    check_ec_key_has_public(sb, path, pwf)
                check_nss(sb, path, alg, compat, label, pwf)
                check_java(sb, path, alg, compat, label, pwf)
                check_gnutls(sb, path, alg, label, kid, pwf)
            except AssertionError as e:
                raise AssertionError("%s %s: %s" % (alg, compat, e))
        check_python(files, pwf)


if __name__ == "__main__":
    main([test_every_backup_in_every_consumer, test_ed25519_backup_refused_by_softhsm])
