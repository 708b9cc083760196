# SPDX-License-Identifier: Apache-2.0
"""CMP enrollment on every module of the matrix (issue 16): on each module's token, `enroll
--protocol cmp` makes an RSA-2048 key (ir, the proof of possession signed on the token through
the RSA bridge) and an EC P-256 key (p10cr, the request signed on the token) and picks up the
certificate from tests/cmp/cmp_test_ca after one poll, MAC-protected with a reference and secret.
The certificate on the token must be the token key's. Where the module has no such keys, the
refusal is exit 6 with the token unchanged. Writes TOKENPROV_MATRIX_OUT/cmp/enroll.json."""
import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import envs  # noqa: E402
from cells import Cells, MAIN_LABEL  # noqa: E402
from matrix import Matrix, CellFailed, SECRETS, check, describe  # noqa: E402
from harness import TestCA  # noqa: E402
from cmpmock import CmpTestCa  # noqa: E402

# Module -> what each algorithm is expected to do over CMP.
EXPECT = {
    "softhsm-direct": {"rsa2048": "works", "ec-p256": "works"},
    "tpm2": {"rsa2048": "works", "ec-p256": "works"},
    "opencryptoki": {"rsa2048": "works", "ec-p256": (6, "no EC keys (no CKM_EC_KEY_PAIR_GEN)")},
    "nss": {"rsa2048": "works", "ec-p256": "works"},
}


class Folder:
    """What TestCA and CmpTestCa need of a sandbox: a folder and path()."""

    def __init__(self, d):
        self.dir = d

    def path(self, name):
        return os.path.join(self.dir, name)


def fingerprint(m, pem):
    out = m.sh(["openssl", "x509", "-in", pem, "-noout", "-fingerprint", "-sha256"]).stdout
    return out.strip().split("=", 1)[1].replace(":", "").lower()


def run_module(name, folder, ca):
    rows = []
    with dict(envs.ALL)[name]() as env:
        m = Matrix(env)
        c = Cells(m)
        if c.lim["init"]:
            r = m.tp("init", "--label", MAIN_LABEL, "--so-pin-source", "env:TP_SO_PIN", "--pin-source", "env:TP_PIN")
            check(r.returncode == 0, "init: " + describe(r))
        with CmpTestCa(folder, ca, polls=1, check_after=1) as srv:
            for alg, want in EXPECT[name].items():
                label = "cmp-" + alg
                before = m.snapshot(c.main)
                r = m.tp("enroll", "--protocol", "cmp", *c.pin(), "--cmp-url", srv.url, "--reference", "REF-4711",
                         "--secret-source", "env:CMP_SECRET", "--algorithm", alg, "--label", label, "--subject",
                         "/CN=%s %s/O=tokenprov matrix" % (name, alg), "--ca-fingerprint", fingerprint(m, ca.int),
                         "--wait", "60", "--json", env={"CMP_SECRET": "s3cret"})
                row = {"module": name, "algorithm": alg}
                try:
                    if want == "works":
                        check(r.returncode == 0, "enroll over CMP: " + describe(r))
                        doc = json.loads(r.stdout)
                        check(doc["polls"] == 1, "wanted one poll: %s" % doc)
                        kid = doc["key"]["id"]
                        objs = m.token(c.main)["objects"]
                        certs = [o for o in objs if o["class"] == "certificate" and o["id"] == kid]
                        check(len(certs) == 1 and not certs[0]["authority"], "no leaf under the key's id: %s" % objs)
                        # The leaf carries the token key: a request signed on the token now has its public key.
                        csr = os.path.join(folder.dir, "%s-%s.csr" % (name, alg))
                        m.tpj("csr", *c.pin(), "--key", "id:" + kid, "--subject", "/CN=check", "--out", csr)
                        leaf = os.path.join(folder.dir, "%s-%s-leaf.pem" % (name, alg))
                        r2 = m.tp("backup", *c.pin(), "--key", "id:" + kid, "--cert-only", "--out",
                                  os.path.join(folder.dir, "%s-%s.p12" % (name, alg)), "--password-source",
                                  "env:TP_BACKUP_PW")
                        check(r2.returncode == 0, "backup --cert-only: " + describe(r2))
                        m.sh(["openssl", "pkcs12", "-in", os.path.join(folder.dir, "%s-%s.p12" % (name, alg)),
                              "-passin", "env:TP_BACKUP_PW", "-nokeys", "-clcerts", "-out", leaf],
                             env=dict(os.environ, TP_BACKUP_PW=SECRETS["TP_BACKUP_PW"]))
                        got = m.sh(["openssl", "req", "-in", csr, "-noout", "-pubkey"]).stdout
                        want_pub = m.sh(["openssl", "x509", "-in", leaf, "-noout", "-pubkey"]).stdout
                        check(got == want_pub and "PUBLIC KEY" in got, "the certificate is not the token key's")
                        row.update(outcome="works", detail="issued after one poll; the leaf carries the token key")
                    else:
                        code, limit = want
                        check(r.returncode == code, "wanted exit %d (%s), got %s" % (code, limit, describe(r)))
                        check(m.snapshot(c.main) == before, "the refused enrollment changed the token")
                        row.update(outcome="limit", detail=limit, exit=code, message=describe(r))
                    row["ok"] = True
                except (CellFailed, KeyError, ValueError) as e:
                    row.update(ok=False, outcome="fails", detail=str(e)[:400])
                print("%-5s %-14s %-8s %s %s" % ("ok" if row["ok"] else "FAIL", name, alg, row["detail"],
                                                row.get("message", "")), flush=True)
                rows.append(row)
    return rows


def main():
    out = tempfile.mkdtemp(prefix="tokenprov-cmp-matrix-")
    rows = []
    try:
        folder = Folder(out)
        ca = TestCA(folder, "CMP matrix")
        for name in EXPECT:
            rows += run_module(name, folder, ca)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    dest = os.environ.get("TOKENPROV_MATRIX_OUT")
    if dest:
        os.makedirs(os.path.join(dest, "cmp"), exist_ok=True)
        with open(os.path.join(dest, "cmp", "enroll.json"), "w") as f:
            json.dump(rows, f, indent=1)
    failed = [r for r in rows if not r["ok"]]
    print("%d passed, %d failed" % (len(rows) - len(failed), len(failed)))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
