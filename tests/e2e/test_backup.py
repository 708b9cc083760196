# SPDX-License-Identifier: Apache-2.0
"""backup (PKCS#12) where the key policy permits, and restore; read by
openssl, NSS pk12util and Java keytool; a restored key signs through the
libp11 engine on a second token."""
import json
import os
import stat

from harness import Sandbox, TestCA, main, expect, sh, pct, USER_PIN

PW = "correct horse battery"


def provisioned(sb, token, label, alg, exportable=True):
    args = ["keygen", "--token", token, "--pin-source", "env:TP_PIN", "--algorithm", alg, "--label", label]
    if exportable:
        args.append("--exportable")
    kid = sb.tpj(*args)["key"]["id"]
    csr = sb.path(label + ".csr")
    sb.tp("csr", "--token", token, "--pin-source", "env:TP_PIN", "--key", label, "--subject",
          "/CN=%s/O=Example" % label, "--out", csr, check=0)
    if not hasattr(sb, "ca"):
        sb.ca = TestCA(sb)
    leaf = sb.ca.issue(csr, sb.path(label + ".pem"))
    bundle = sb.write(label + "-bundle.pem", open(leaf).read() + sb.ca.chain_pem())
    sb.tp("pickup", "--token", token, "--pin-source", "env:TP_PIN", "--cert", bundle, check=0)
    return kid


def backup(sb, token, key, out, compat="modern", extra=(), check=0):
    return sb.tp("backup", "--token", token, "--pin-source", "env:TP_PIN", "--key", key, "--out", out,
                 "--compat", compat, "--password-source", "env:PW", *extra, env={"PW": PW}, check=check)


def test_backup_readers_both_profiles():
    with Sandbox() as sb:
        sb.create_token("bk")
        pwf = sb.write("pw.txt", PW)
        for alg in ("rsa2048", "ec-p256"):
            label = "user-" + alg
            kid = provisioned(sb, "bk", label, alg)
            for compat in ("modern", "legacy"):
                out = sb.path("%s-%s.p12" % (label, compat))
                backup(sb, "bk", label, out, compat)
                st = os.stat(out)
                expect(stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode))
                # openssl: key, leaf, chain; the legacy file needs -legacy in OpenSSL 3 for 3DES? try both.
                args = ["openssl", "pkcs12", "-in", out, "-passin", "file:" + pwf, "-nodes", "-info"]
                r = sh(args, check=False)
                if r.returncode != 0 and compat == "legacy":
                    r = sh(args + ["-legacy"])
                expect(r.returncode == 0, r.stderr)
                expect(r.stdout.count("BEGIN CERTIFICATE") == 3 and "PRIVATE KEY" in r.stdout, r.stdout)
                expect("friendlyName: " + label in r.stdout, r.stdout)
                if compat == "modern":
                    expect("AES-256-CBC" in r.stderr and "PBKDF2" in r.stderr, r.stderr)
                else:
                    expect("pbeWithSHA1And3-KeyTripleDES-CBC" in r.stderr, r.stderr)
                # NSS: one key, leaf and chain.
                db = sb.path("nss-%s-%s" % (alg, compat))
                os.makedirs(db)
                sh(["certutil", "-N", "-d", "sql:" + db, "--empty-password"])
                sh(["pk12util", "-i", out, "-d", "sql:" + db, "-w", pwf, "-K", ""])
                r = sh(["certutil", "-L", "-d", "sql:" + db])
                expect(label in r.stdout and "Issuing CA" in r.stdout and "Root CA" in r.stdout, r.stdout)
                r = sh(["certutil", "-K", "-d", "sql:" + db])
                expect(r.stdout.count("<") == 1 and label in r.stdout, r.stdout)
                # Java keytool: one PrivateKeyEntry with a chain of 3, and import into another store.
                r = sh(["keytool", "-list", "-v", "-storetype", "PKCS12", "-keystore", out, "-storepass:file", pwf])
                expect("PrivateKeyEntry" in r.stdout and "Certificate chain length: 3" in r.stdout, r.stdout)
                dest = sb.path("dest-%s-%s.p12" % (alg, compat))
                sh(["keytool", "-importkeystore", "-srckeystore", out, "-srcstoretype", "PKCS12",
                    "-srcstorepass:file", pwf, "-destkeystore", dest, "-deststoretype", "PKCS12",
                    "-deststorepass:file", pwf, "-noprompt"])
        # An existing file is not overwritten without --force; with --force it is.
        out = sb.path("user-rsa2048-modern.p12")
        before = open(out, "rb").read()
        r = backup(sb, "bk", "user-rsa2048", out, check=None)
        expect(r.returncode == 8 and "--force" in r.stderr, (r.returncode, r.stderr))
        expect(open(out, "rb").read() == before, "file changed")
        backup(sb, "bk", "user-rsa2048", out, extra=("--force",))
        expect(open(out, "rb").read() != before, "--force did not replace")


def test_non_exportable_refused_no_file():
    with Sandbox() as sb:
        sb.create_token("ne")
        provisioned(sb, "ne", "locked", "ec-p256", exportable=False)
        out = sb.path("locked.p12")
        r = backup(sb, "ne", "locked", out, check=None)
        expect(r.returncode == 4 and "locked" in r.stderr and "never leave" in r.stderr, (r.returncode, r.stderr))
        expect(not os.path.exists(out), "a file was written")
        expect(not [f for f in os.listdir(sb.dir) if f.startswith(".locked")], "a temp file was left")
        r = backup(sb, "ne", "locked", out, extra=("--cert-only",))
        r = sh(["openssl", "pkcs12", "-in", out, "-passin", "pass:" + PW, "-nokeys", "-info"])
        expect(r.stdout.count("BEGIN CERTIFICATE") == 3 and "PRIVATE KEY" not in r.stdout, r.stdout)
        # A profile that forbids export refuses even an exportable key.
        sb.create_token("pf")
        provisioned(sb, "pf", "free", "rsa2048", exportable=True)
        r = sb.tp("backup", "--profile", os.path.join(os.environ.get("TOKENPROV_SOURCE_DIR", "."), "tokens",
                                                      "yubikey-piv.toml"),
                  "--module", "/usr/lib/softhsm/libsofthsm2.so", "--token", "pf", "--pin-source", "env:TP_PIN",
                  "--key", "free", "--out", sb.path("free.p12"), "--password-source", "env:PW", env={"PW": PW})
        expect(r.returncode == 4 and "profile" in r.stderr, (r.returncode, r.stderr))
        expect(not os.path.exists(sb.path("free.p12")), "file written")
        # Too short a password.
        r = sb.tp("backup", "--token", "pf", "--pin-source", "env:TP_PIN", "--key", "free", "--out",
                  sb.path("free.p12"), "--password-source", "env:PW", env={"PW": "short"})
        expect(r.returncode == 5 and "too short" in r.stderr, (r.returncode, r.stderr))


def test_restore_round_trip_and_sign_on_second_token():
    with Sandbox() as sb:
        sb.create_token("src")
        sb.create_token("dst")
        for alg in ("rsa2048", "ec-p256"):
            label = "rt-" + alg
            kid = provisioned(sb, "src", label, alg)
            out = sb.path(label + ".p12")
            backup(sb, "src", label, out)
            doc = sb.tpj("restore", "--token", "dst", "--pin-source", "env:TP_PIN", "--in", out,
                         "--password-source", "env:PW", env={"PW": PW})
            expect(doc["key"]["id"] == kid and doc["key"]["label"] == label, doc)
            objs = [o for o in sb.objects("dst") if o["id"] == kid]
            classes = sorted(o["class"] for o in objs)
            expect(classes == ["certificate", "private-key", "public-key"], objs)
            priv = [o for o in objs if o["class"] == "private-key"][0]
            expect(priv["sensitive"] and not priv["extractable"], priv)
            # The libp11 engine signs on the second token; the signature verifies against the certificate.
            data = sb.write("d.bin", b"restored\n")
            sig = sb.path("d.sig")
            pinf = sb.write("pin.txt", USER_PIN)
            uri = "pkcs11:token=dst;id=%s;type=private?pin-source=file:%s" % (pct(kid), pinf)
            sh(["openssl", "dgst", "-engine", "pkcs11", "-keyform", "engine", "-sign", uri, "-sha256", "-out", sig,
                data], env=sb.env)
            sh(["openssl", "x509", "-in", sb.path(label + ".pem"), "-pubkey", "-noout", "-out", sb.path("p.pem")])
            r = sh(["openssl", "dgst", "-sha256", "-verify", sb.path("p.pem"), "-signature", sig, data])
            expect("Verified OK" in r.stdout, r.stdout)
            # Restoring the same file again: exit 8, nothing added.
            n = len(sb.objects("dst"))
            r = sb.tp("restore", "--token", "dst", "--pin-source", "env:TP_PIN", "--in", out,
                      "--password-source", "env:PW", env={"PW": PW})
            expect(r.returncode == 8, (r.returncode, r.stderr))
            expect(len(sb.objects("dst")) == n, "objects added")
        # CA certificates were written once.
        cas = [o for o in sb.objects("dst") if o["class"] == "certificate" and o["authority"]]
        expect(len(cas) == 2, cas)


def test_restore_wrong_password_and_bad_files():
    with Sandbox() as sb:
        sb.create_token("a")
        sb.create_token("b")
        provisioned(sb, "a", "x", "rsa2048")
        out = sb.path("x.p12")
        backup(sb, "a", "x", out)
        before = sb.objects("b")
        r = sb.tp("restore", "--token", "b", "--pin-source", "env:TP_PIN", "--in", out, "--password-source",
                  "env:PW", env={"PW": "wrong password"})
        expect(r.returncode == 5 and "password" in r.stderr, (r.returncode, r.stderr))
        trunc = sb.write("t.p12", open(out, "rb").read()[:200])
        r = sb.tp("restore", "--token", "b", "--pin-source", "env:TP_PIN", "--in", trunc, "--password-source",
                  "env:PW", env={"PW": PW})
        expect(r.returncode == 5 and "t.p12" in r.stderr, (r.returncode, r.stderr))
        certonly = sb.path("c.p12")
        backup(sb, "a", "x", certonly, extra=("--cert-only",))
        r = sb.tp("restore", "--token", "b", "--pin-source", "env:TP_PIN", "--in", certonly, "--password-source",
                  "env:PW", env={"PW": PW})
        expect(r.returncode == 5, (r.returncode, r.stderr))
        expect(sb.objects("b") == before, "token b changed")
        # A file made by openssl pkcs12 -export (defaults) restores too.
        key = sb.path("sw.key")
        sh(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
            key, "-subj", "/CN=software", "-days", "10", "-out", sb.path("sw.pem")])
        sw = sb.path("sw.p12")
        sh(["openssl", "pkcs12", "-export", "-inkey", key, "-in", sb.path("sw.pem"), "-out", sw, "-passout",
            "pass:" + PW, "-name", "software"])
        doc = sb.tpj("restore", "--token", "b", "--pin-source", "env:TP_PIN", "--in", sw, "--password-source",
                     "env:PW", env={"PW": PW})
        expect(doc["key"]["label"] == "software", doc)


if __name__ == "__main__":
    main([test_backup_readers_both_profiles, test_non_exportable_refused_no_file,
          test_restore_round_trip_and_sign_on_second_token, test_restore_wrong_password_and_bad_files])
