# SPDX-License-Identifier: Apache-2.0
"""The certificate lifecycle on every module of the matrix (issue 17): on each module's token an
RSA-2048 key is enrolled over EST (tests/e2e/estserver.py, a certificate valid two hours), then
  status   without a PIN (the certificate and its public key) and with one (its private key),
           days_left from the real expiry, `--expiring 1` exit 9;
  renew    over /simplereenroll, TLS client authentication by the token key: the new certificate
           (30 days) under the same CKA_ID, carrying the token key, the old one gone;
  rekey    `renew --rekey`: a new key under a new CKA_ID with the label, its certificate carrying
           it; the old key pair and certificate under the old CKA_ID, relabelled archived, never
           deleted; the archived key still signs and decrypts (pkcs11-tool on the token, openssl
           checks against the archived certificate).
An EC P-256 key enrolled over EST, renewed and rekeyed the same way (the TLS client authentication
signed on the token with CKM_ECDSA through the EC bridge); none on opencryptoki: keygen refused,
exit 6, nothing written.
Writes TOKENPROV_MATRIX_OUT/lifecycle/cells.json."""
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import envs  # noqa: E402
from cells import Cells, MAIN_LABEL  # noqa: E402
from matrix import Matrix, CellFailed, check, describe  # noqa: E402
from estserver import EstServer  # noqa: E402

MODULES = ("softhsm-direct", "tpm2", "opencryptoki", "nss")
EST_PW = {"EST_PW": "otp-matrix"}
VALIDITY = 7200                  # the enrolled certificate: two hours
REENROLL_VALIDITY = 30 * 86400   # the renewed ones: thirty days


def leaves(m, c, kid=None):
    objs = m.token(c.main)["objects"]
    return [o for o in objs if o["class"] == "certificate" and not o["authority"] and (kid is None or o["id"] == kid)]


def read_cert(m, c, kid, dest):
    """The certificate under KID, read by pkcs11-tool (the independent reader), as PEM."""
    der = dest + ".der"
    m.p11("--read-object", "--type", "cert", "--id", kid, "-o", der, token=c.main)
    m.sh(["openssl", "x509", "-inform", "DER", "-in", der, "-out", dest])
    return dest


def carries_key(m, c, kid, cert_pem, work):
    """The certificate's public key is the token key's: a request signed on the token by KID has it."""
    csr = os.path.join(work, "check-%s.csr" % kid[:8])
    m.tpj("csr", *c.pin(), "--key", "id:" + kid, "--subject", "/CN=check", "--out", csr, "--force")
    got = m.sh(["openssl", "req", "-in", csr, "-noout", "-pubkey"]).stdout
    want = m.sh(["openssl", "x509", "-in", cert_pem, "-noout", "-pubkey"]).stdout
    check(got == want and "PUBLIC KEY" in got, "the certificate under %s is not the token key's" % kid)


def status_row(doc, label):
    rows = [x for x in doc["certificates"] if not x["authority"] and x["label"] == label]
    check(len(rows) == 1, "status: wanted one leaf labelled %r: %s" % (label, doc["certificates"]))
    return rows[0]


class Lifecycle:
    def __init__(self, name, env, est, work):
        self.name, self.est, self.work = name, est, work
        self.m = Matrix(env)
        self.c = Cells(self.m)
        self.state = {}

    def renew_args(self, label, *extra):
        return ["renew", *self.c.pin(), "--key", label, "--est-url", self.est.url, "--ca-bundle",
                self.est.tls_ca_path] + list(extra)

    def enroll(self):
        m, c = self.m, self.c
        doc = m.tpj("enroll", "--protocol", "est", *c.pin(), "--est-url", self.est.url, "--est-user", "dev",
                    "--secret-source", "env:EST_PW", "--ca-bundle", self.est.tls_ca_path, "--algorithm", "rsa2048",
                    "--label", "lc-rsa", "--subject", "/CN=%s lifecycle/O=tokenprov matrix" % self.name, env=EST_PW)
        kid = doc["key"]["id"]
        lv = leaves(m, c, kid)
        check(len(lv) == 1 and lv[0]["label"] == "lc-rsa", "enroll: no leaf under the key's id: %s" % lv)
        pem = read_cert(m, c, kid, os.path.join(self.work, "enrolled.pem"))
        carries_key(m, c, kid, pem, self.work)
        self.state.update(kid=kid, serial=doc["certificate"]["serial"])
        return {"detail": "RSA-2048 over EST /simpleenroll, valid %d s; the leaf carries the token key" % VALIDITY}

    def status(self):
        m, c = self.m, self.c
        t0 = time.time()
        doc = m.tpj("status", "--token", c.main)       # no PIN: certificates and public keys
        row = status_row(doc, "lc-rsa")
        check(row["id"] == self.state["kid"], row)
        check(row["key"] and row["key"]["class"] == "public-key", "no PIN: wanted the public key: %s" % row)
        left = row["seconds_left"]
        check(VALIDITY - (time.time() - t0) - 600 <= left <= VALIDITY, "seconds_left %s for %d s" % (left, VALIDITY))
        check(0 < row["days_left"] < VALIDITY / 86400.0 + 0.001, row)
        doc = m.tpj("status", *c.pin())
        row = status_row(doc, "lc-rsa")
        check(row["key"] and row["key"]["class"] == "private-key", "with a PIN: wanted the private key: %s" % row)
        r = m.tp("status", "--token", c.main, "--expiring", "1", "--json")
        check(r.returncode == 9, "status --expiring 1: wanted exit 9, got %s" % describe(r))
        doc = json.loads(r.stdout)
        check([x["label"] for x in doc["certificates"] if x.get("expiring")] == ["lc-rsa"], doc)
        return {"detail": "no PIN: certificate and public key; PIN: private key; days_left %.4f; --expiring 1 exit 9"
                % row["days_left"]}

    def renew(self):
        m, c, kid = self.m, self.c, self.state["kid"]
        doc = m.tpj(*self.renew_args("lc-rsa"))
        check(doc["key"]["id"] == kid and doc["old_certificate_state"] == "deleted", doc)
        serial = doc["certificate"]["serial"]
        check(serial != self.state["serial"], "renew: the same certificate again")
        re = self.est.requests("/simplereenroll")
        check(re and re[-1][4] == 200 and re[-1][3] == int(self.state["serial"], 16),
              "the EST server did not see the old certificate in TLS: %s" % re)
        lv = leaves(m, c, kid)
        check(len(lv) == 1 and lv[0]["serial"] == serial and lv[0]["label"] == "lc-rsa", "after renew: %s" % lv)
        pem = read_cert(m, c, kid, os.path.join(self.work, "renewed.pem"))
        carries_key(m, c, kid, pem, self.work)
        r = m.tp("status", "--token", c.main, "--expiring", "1", "--json")
        check(r.returncode == 0, "status --expiring 1 after renew: %s" % describe(r))
        self.state["serial"] = serial
        return {"detail": "same CKA_ID, new certificate carries the key, old one deleted; --expiring 1 exit 0"}

    def rekey(self):
        m, c, kid = self.m, self.c, self.state["kid"]
        doc = m.tpj(*self.renew_args("lc-rsa", "--rekey"))
        new = doc["key"]["id"]
        check(new != kid and doc["key"]["label"] == "lc-rsa" and doc["archived_key"]["id"] == kid, doc)
        objs = m.token(c.main)["objects"]
        old = [o for o in objs if o["id"] == kid]
        check(sorted(o["class"] for o in old) == ["certificate", "private-key", "public-key"], "archived: %s" % old)
        check(all("archived" in o["label"] for o in old), "archived labels: %s" % old)
        fresh = [o for o in objs if o["id"] == new]
        check(sorted(o["class"] for o in fresh) == ["certificate", "private-key", "public-key"], "new: %s" % fresh)
        check(all(o["label"] == "lc-rsa" for o in fresh), fresh)
        carries_key(m, c, new, read_cert(m, c, new, os.path.join(self.work, "rekeyed.pem")), self.work)
        # The archived key still signs and decrypts, checked against the archived certificate.
        old_pem = read_cert(m, c, kid, os.path.join(self.work, "archived.pem"))
        pub = os.path.join(self.work, "archived.pub")
        with open(pub, "w") as f:
            f.write(m.sh(["openssl", "x509", "-in", old_pem, "-noout", "-pubkey"]).stdout)
        msg = os.path.join(self.work, "msg.txt")
        with open(msg, "wb") as f:
            f.write(b"written before the rekey\n")
        sig = os.path.join(self.work, "msg.sig")
        # CKM_RSA_PKCS (what tokenprov's own RSA bridge uses): opencryptoki's soft token answers
        # C_SignInit(CKM_SHA256_RSA_PKCS) with CKR_MECHANISM_INVALID.
        m.p11("--sign", "--id", kid, "-m", "RSA-PKCS", "--input-file", msg, "--output-file", sig, token=c.main)
        m.sh(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", pub, "-in", msg, "-sigfile", sig])
        enc, dec = os.path.join(self.work, "msg.enc"), os.path.join(self.work, "msg.dec")
        m.sh(["openssl", "pkeyutl", "-encrypt", "-pubin", "-inkey", pub, "-in", msg, "-out", enc])
        m.p11("--decrypt", "--id", kid, "-m", "RSA-PKCS", "--input-file", enc, "--output-file", dec, token=c.main)
        with open(dec, "rb") as f:
            check(f.read() == b"written before the rekey\n", "the archived key decrypted something else")
        st = m.tpj("status", *c.pin())
        labels = sorted(x["label"] for x in st["certificates"] if not x["authority"] and x["label"].startswith("lc-rsa"))
        check(len(labels) == 2 and "lc-rsa" in labels, "status after rekey: %s" % labels)
        return {"detail": "new key %s... certified; old key pair and certificate '%s' kept under their id; "
                          "the archived key signs and decrypts" % (new[:8], doc["archived_key"]["label"])}

    def ec_sample(self):
        m, c = self.m, self.c
        before = m.snapshot(c.main)
        r = m.tp("enroll", "--protocol", "est", *c.pin(), "--est-url", self.est.url, "--est-user", "dev",
                 "--secret-source", "env:EST_PW", "--ca-bundle", self.est.tls_ca_path, "--algorithm", "ec-p256",
                 "--label", "lc-ec", "--subject", "/CN=%s lifecycle ec/O=tokenprov matrix" % self.name, "--json",
                 env=EST_PW)
        if "ec-p256" not in m.env.limits["algorithms"]:
            return m.refused(r, (6,), ["EC", "CKM_EC_KEY_PAIR_GEN"], c.main, before,
                             limit="no EC keys (no CKM_EC_KEY_PAIR_GEN), refused before anything is written")
        check(r.returncode == 0, "enroll ec-p256 over EST: " + describe(r))
        kid = json.loads(r.stdout)["key"]["id"]
        serial = json.loads(r.stdout)["certificate"]["serial"]
        # renew: TLS client authentication signed on the token by CKM_ECDSA (the EC bridge).
        doc = m.tpj(*self.renew_args("lc-ec"))
        check(doc["key"]["id"] == kid and doc["old_certificate_state"] == "deleted", doc)
        re = self.est.requests("/simplereenroll")
        check(re and re[-1][4] == 200 and re[-1][3] == int(serial, 16),
              "the EST server did not see the old EC certificate in TLS: %s" % re)
        serial = doc["certificate"]["serial"]
        lv = leaves(m, c, kid)
        check(len(lv) == 1 and lv[0]["serial"] == serial and lv[0]["label"] == "lc-ec", "after EC renew: %s" % lv)
        carries_key(m, c, kid, read_cert(m, c, kid, os.path.join(self.work, "ec-renewed.pem")), self.work)
        # renew --rekey: a new P-256 key under a new CKA_ID, the old one archived.
        doc = m.tpj(*self.renew_args("lc-ec", "--rekey"))
        new = doc["key"]["id"]
        check(new != kid and doc["archived_key"]["id"] == kid and doc["key"]["label"] == "lc-ec", doc)
        re = self.est.requests("/simplereenroll")
        check(re[-1][4] == 200 and re[-1][3] == int(serial, 16), "EC rekey: the server saw %s" % re)
        carries_key(m, c, new, read_cert(m, c, new, os.path.join(self.work, "ec-rekeyed.pem")), self.work)
        return {"detail": "EC P-256 enrolled over EST; renew (same CKA_ID, TLS client auth by CKM_ECDSA on the "
                          "token) and renew --rekey (new key %s..., old one archived)" % new[:8]}


def run_module(name, est, work):
    t0 = time.monotonic()
    with dict(envs.ALL)[name]() as env:
        lc = Lifecycle(name, env, est, work)
        m, c = lc.m, lc.c
        if c.lim["init"]:
            r = m.tp("init", "--label", MAIN_LABEL, "--so-pin-source", "env:TP_SO_PIN", "--pin-source", "env:TP_PIN")
            check(r.returncode == 0, "init: " + describe(r))
        ok = m.cell("enroll (EST)", "works", lc.enroll)["ok"]
        for op, fn in (("status", lc.status), ("renew", lc.renew), ("renew --rekey", lc.rekey)):
            if ok:
                ok = m.cell(op, "works", fn)["ok"]
        m.cell("EC renew", "works" if "ec-p256" in env.limits["algorithms"] else "limit", lc.ec_sample)
    rows = [dict(cell, module=name) for cell in m.cells]
    print("%s: %.1f s" % (name, time.monotonic() - t0), flush=True)
    return rows, round(time.monotonic() - t0, 1)


def main():
    work = tempfile.mkdtemp(prefix="tokenprov-lifecycle-matrix-")
    rows, seconds = [], {}
    try:
        with EstServer(os.path.join(work, "est"), user="dev", password=EST_PW["EST_PW"], validity=VALIDITY,
                       reenroll_validity=REENROLL_VALIDITY) as est:
            for name in MODULES:
                d = os.path.join(work, name)
                os.makedirs(d)
                try:
                    got, seconds[name] = run_module(name, est, d)
                except envs.Unavailable as e:
                    print("skip %s: %s" % (name, e), flush=True)
                    continue
                except (CellFailed, KeyError, ValueError, RuntimeError) as e:
                    got = [{"module": name, "op": "setup", "ok": False, "outcome": "fails", "detail": str(e)[:400]}]
                    print("FAIL  %s setup: %s" % (name, e), flush=True)
                rows += got
    finally:
        shutil.rmtree(work, ignore_errors=True)
    dest = os.environ.get("TOKENPROV_MATRIX_OUT")
    if dest:
        os.makedirs(os.path.join(dest, "lifecycle"), exist_ok=True)
        with open(os.path.join(dest, "lifecycle", "cells.json"), "w") as f:
            json.dump({"cells": rows, "seconds": seconds}, f, indent=1)
    if not rows:
        sys.exit(77)
    failed = [r for r in rows if not r["ok"]]
    print("%d passed, %d failed" % (len(rows) - len(failed), len(failed)))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
