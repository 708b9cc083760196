# SPDX-License-Identifier: Apache-2.0
"""Cross-module restore (issue 15): a PKCS#12 backup tokenprov made on one module is restored onto
another, and the restored key signs a request whose public key is the certificate's. Sources:
SoftHSM2 and NSS softoken (RSA-2048 and EC P-256 each); targets: opencryptoki, NSS,
SoftHSM2 and tpm2-pkcs11. What a target cannot take is a refusal with its contract exit code and
the token unchanged. Writes TOKENPROV_MATRIX_OUT/cross/restore.json (not read by tests/modules/gen_table.py);
docs/modules.md's "Restore across modules" table is written from this test's output."""
import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import envs  # noqa: E402
from cells import Cells, MAIN_LABEL  # noqa: E402
from matrix import Matrix, CellFailed, check, describe  # noqa: E402
from harness import TestCA  # noqa: E402

# Target module -> what a backup of each algorithm is expected to do there.
EXPECT = {
    "opencryptoki": {"rsa2048": "works",
                     "ec-p256": (6, "no EC keys (neither CKM_EC_KEY_PAIR_GEN nor CKM_ECDSA): refused "
                                    "before C_UnwrapKey")},
    "nss": {"rsa2048": "works", "ec-p256": "works"},
    "softhsm-direct": {"rsa2048": "works", "ec-p256": "works"},
    "tpm2": {"rsa2048": (6, "no private-key import"), "ec-p256": (6, "no private-key import")},
}
SOURCES = (("softhsm-direct", ("rsa2048", "ec-p256")), ("nss", ("rsa2048", "ec-p256")))


class Ca:
    """TestCA needs an object with path(); one CA signs for every module."""

    def __init__(self, d):
        self.dir = d

    def path(self, name):
        return os.path.join(self.dir, name)


def ready(env):
    m = Matrix(env)
    c = Cells(m)
    if c.lim["init"]:
        r = m.tp("init", "--label", MAIN_LABEL, "--so-pin-source", "env:TP_SO_PIN", "--pin-source", "env:TP_PIN")
        check(r.returncode == 0, "init: " + describe(r))
    return m, c


def make_backups(out, ca):
    files = {}
    for name, algs in SOURCES:
        with dict(envs.ALL)[name]() as env:
            m, c = ready(env)
            for alg in algs:
                label = "x-" + alg
                k = m.tpj("keygen", *c.pin(), "--algorithm", alg, "--label", label, "--exportable")["key"]
                csr = os.path.join(out, "%s-%s.csr" % (name, alg))
                m.tpj("csr", *c.pin(), "--key", "id:" + k["id"], "--subject", "/CN=Cross %s %s" % (name, alg),
                      "--out", csr)
                leaf = ca.issue(csr, os.path.join(out, "%s-%s.pem" % (name, alg)))
                chain = os.path.join(out, "%s-%s-chain.pem" % (name, alg))
                with open(chain, "w") as f:
                    f.write(open(leaf).read() + ca.chain_pem())
                m.tpj("pickup", *c.pin(), "--cert", chain)
                p12 = os.path.join(out, "%s-%s.p12" % (name, alg))
                m.tpj("backup", *c.pin(), "--key", "id:" + k["id"], "--out", p12, "--password-source",
                      "env:TP_BACKUP_PW")
                files[(name, alg)] = (p12, leaf)
    return files


def restore_onto(target, files, out):
    rows = []
    with dict(envs.ALL)[target]() as env:
        m, c = ready(env)
        for (src, alg), (p12, leaf) in sorted(files.items()):
            want = EXPECT[target][alg]
            label = "r-%s-%s" % (src, alg)
            args = ["restore", *c.pin(), "--in", p12, "--password-source", "env:TP_BACKUP_PW", "--label", label,
                    "--usage", "sign", "--json"]
            before = m.snapshot(c.main)
            r = m.tp(*args)
            row = {"target": target, "source": src, "algorithm": alg}
            try:
                if want == "works":
                    check(r.returncode == 0, "restore: " + describe(r))
                    keys = [o for o in m.token(c.main)["objects"]
                            if o["class"] == "private-key" and o["label"] == label]
                    check(len(keys) == 1, "restored key not listed")
                    csr = os.path.join(out, "%s-%s.csr" % (label, target))
                    m.tpj("csr", *c.pin(), "--key", "id:" + keys[0]["id"], "--subject", "/CN=" + label, "--out", csr)
                    m.sh(["openssl", "req", "-in", csr, "-noout", "-verify"])
                    got = m.sh(["openssl", "req", "-in", csr, "-noout", "-pubkey"]).stdout
                    cert = m.sh(["openssl", "x509", "-in", leaf, "-noout", "-pubkey"]).stdout
                    check(got == cert, "the restored key is not the certificate's key")
                    row.update(outcome="works", detail="restored; signs; public key = the certificate's")
                else:
                    code, limit = want
                    check(r.returncode == code, "wanted exit %d (%s), got %s" % (code, limit, describe(r)))
                    said = {"no EC keys": "has no EC keys", "no private-key import": "put a private key on it"}
                    for k, v in said.items():
                        check(k not in limit or v in r.stderr, "the refusal does not say %r: %s" % (v, describe(r)))
                    check(m.snapshot(c.main) == before, "the refused restore changed the token")
                    row.update(outcome="limit", detail=limit, exit=code, message=describe(r))
                row["ok"] = True
            except CellFailed as e:
                row.update(ok=False, outcome="fails", detail=str(e)[:400])
            print("%-5s %-14s <- %-14s %-8s %s %s" % ("ok" if row["ok"] else "FAIL", target, src, alg, row["detail"],
                                                    row.get("message", "")), flush=True)
            rows.append(row)
    return rows


def main():
    out = tempfile.mkdtemp(prefix="tokenprov-cross-")
    try:
        ca = TestCA(Ca(out), "Cross")
        files = make_backups(out, ca)
        rows = []
        for target in EXPECT:
            rows += restore_onto(target, files, out)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    dest = os.environ.get("TOKENPROV_MATRIX_OUT")
    if dest:
        os.makedirs(os.path.join(dest, "cross"), exist_ok=True)
        with open(os.path.join(dest, "cross", "restore.json"), "w") as f:
            json.dump(rows, f, indent=1)
    failed = [r for r in rows if not r["ok"]]
    print("%d passed, %d failed" % (len(rows) - len(failed), len(failed)))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
