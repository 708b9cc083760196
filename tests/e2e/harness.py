# SPDX-License-Identifier: Apache-2.0
"""End-to-end test harness: the built tokenprov binary against real SoftHSM2
tokens, with independent readers (pkcs11-tool, openssl, NSS, keytool).

Each Sandbox is a private SoftHSM2 configuration and token folder in a
temporary directory, removed afterwards. PINs reach tokenprov only through
environment variables or files, never argv."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import traceback

SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
SO_PIN = "87654321"
USER_PIN = "123456"
BIN = os.environ.get("TOKENPROV_BIN", "tokenprov")
SRC = os.environ.get("TOKENPROV_SOURCE_DIR", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


class Sandbox:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="tokenprov-e2e-")
        self.tokens = os.path.join(self.dir, "tokens")
        os.makedirs(self.tokens)
        with open(os.path.join(SRC, "softhsm-config", "softhsm2.conf.in")) as f:
            conf = f.read().replace("@TOKENDIR@", self.tokens)
        self.conf = os.path.join(self.dir, "softhsm2.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        self.env = dict(os.environ)
        self.env["SOFTHSM2_CONF"] = self.conf
        self.env["TOKENPROV_MODULE"] = SOFTHSM_MODULE
        self.env["TP_PIN"] = USER_PIN
        self.env["TP_SO_PIN"] = SO_PIN
        self.env.pop("TOKENPROV_PROFILE_DIR", None)

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def path(self, name):
        return os.path.join(self.dir, name)

    def write(self, name, data, mode=0o600):
        p = self.path(name)
        with open(p, "wb" if isinstance(data, bytes) else "w") as f:
            f.write(data)
        os.chmod(p, mode)
        return p

    def create_token(self, label, so_pin=SO_PIN, pin=USER_PIN):
        """Initializes the free slot with softhsm2-util (the independent writer); returns the serial."""
        subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", label,
                        "--so-pin", so_pin, "--pin", pin], env=self.env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for t in self.list_json()["tokens"]:
            if t["label"] == label:
                return t["serial"]
        raise AssertionError("token %s not listed" % label)

    def tp(self, *args, env=None, input=None, check=None):
        """Runs tokenprov; returns CompletedProcess with text stdout/stderr."""
        e = dict(self.env)
        if env:
            e.update(env)
        r = subprocess.run([BIN] + list(args), env=e, input=input, capture_output=True, text=True, timeout=300)
        if check is not None and r.returncode != check:
            raise AssertionError("tokenprov %s: exit %d, wanted %d\nstdout: %s\nstderr: %s"
                                 % (" ".join(args), r.returncode, check, r.stdout, r.stderr))
        return r

    def tpj(self, *args, check=0, **kw):
        r = self.tp(*args, "--json", check=check, **kw)
        return json.loads(r.stdout)

    def list_json(self, token=None, login=False):
        args = ["list"]
        if token:
            args += ["--token", token]
        if login:
            args += ["--pin-source", "env:TP_PIN"]
        r = self.tp(*args, "--json", check=0)
        return json.loads(r.stdout)

    def objects(self, token):
        doc = self.list_json(token=token, login=True)
        return doc["tokens"][0]["objects"]

    def pkcs11_tool(self, *args, login=True, check=True):
        cmd = ["pkcs11-tool", "--module", SOFTHSM_MODULE] + list(args)
        if login:
            cmd += ["--login", "--pin", USER_PIN]
        r = subprocess.run(cmd, env=self.env, capture_output=True, text=True)
        if check and r.returncode != 0:
            raise AssertionError("pkcs11-tool %s failed: %s %s" % (args, r.stdout, r.stderr))
        return r


def sh(cmd, check=True, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if check and r.returncode != 0:
        raise AssertionError("%s failed (%d): %s %s" % (cmd, r.returncode, r.stdout, r.stderr))
    return r


def expect(cond, msg):
    if not cond:
        raise AssertionError(msg)


def main(tests):
    """Runs the given test functions; prints 'N passed, N failed'; exits 1 on failure."""
    only = sys.argv[1:]
    passed = failed = 0
    for t in tests:
        if only and t.__name__ not in only:
            continue
        try:
            t()
            passed += 1
            print("PASS", t.__name__, flush=True)
        except Exception:
            failed += 1
            print("FAIL", t.__name__, flush=True)
            traceback.print_exc()
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed or not passed else 0)


class TestCA:
    """A root and an intermediate CA made with the openssl CLI; issues leaf
    certificates for CSRs (the CA's answer a user picks up)."""

    def __init__(self, sb, name="Test"):
        self.sb = sb
        d = sb.path("ca-" + name)
        os.makedirs(d, exist_ok=True)
        self.dir = d
        self.root_key, self.root = os.path.join(d, "root.key"), os.path.join(d, "root.pem")
        self.int_key, self.int = os.path.join(d, "int.key"), os.path.join(d, "int.pem")
        ext = os.path.join(d, "ca.ext")
        with open(ext, "w") as f:
            f.write("basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
                    "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
        sh(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", self.root_key, "-out", self.root,
            "-subj", "/CN=%s Root CA/O=tokenprov tests" % name, "-days", "3650",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        csr = os.path.join(d, "int.csr")
        sh(["openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", self.int_key, "-out", csr,
            "-subj", "/CN=%s Issuing CA/O=tokenprov tests" % name])
        sh(["openssl", "x509", "-req", "-in", csr, "-CA", self.root, "-CAkey", self.root_key, "-CAcreateserial",
            "-out", self.int, "-days", "3650", "-extfile", ext])
        self.leaf_ext = os.path.join(d, "leaf.ext")
        with open(self.leaf_ext, "w") as f:
            f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                    "extendedKeyUsage=clientAuth,emailProtection\n")

    def issue(self, csr, out, days=365, not_before=None, not_after=None):
        """Signs CSR with the intermediate; PEM to OUT."""
        if not_before or not_after:
            # openssl ca would be needed for arbitrary dates; use x509 with -not_before/-not_after is 3.4+,
            # so make the validity with a config-free "openssl ca" run.
            return self._issue_ca(csr, out, not_before, not_after)
        sh(["openssl", "x509", "-req", "-in", csr, "-CA", self.int, "-CAkey", self.int_key, "-CAcreateserial",
            "-out", out, "-days", str(days), "-extfile", self.leaf_ext, "-sha256"])
        return out

    def _issue_ca(self, csr, out, not_before, not_after):
        db = os.path.join(self.dir, "db")
        os.makedirs(db, exist_ok=True)
        idx = os.path.join(db, "index.txt")
        if not os.path.exists(idx):
            open(idx, "w").close()
            with open(os.path.join(db, "serial"), "w") as f:
                f.write("1000\n")
        conf = os.path.join(self.dir, "ca.cnf")
        with open(conf, "w") as f:
            f.write("[ca]\ndefault_ca=CA_default\n[CA_default]\ndatabase=%s\nserial=%s\nnew_certs_dir=%s\n"
                    "default_md=sha256\npolicy=pol\nunique_subject=no\ncopy_extensions=none\n"
                    "[pol]\ncommonName=supplied\n[ext]\nbasicConstraints=CA:FALSE\n"
                    % (idx, os.path.join(db, "serial"), db))
        sh(["openssl", "ca", "-batch", "-config", conf, "-in", csr, "-out", out, "-cert", self.int,
            "-keyfile", self.int_key, "-startdate", not_before, "-enddate", not_after, "-extensions", "ext",
            "-notext"])
        return out

    def chain_pem(self):
        return open(self.int).read() + open(self.root).read()


def pct(hexid):
    return "".join("%" + hexid[i:i + 2] for i in range(0, len(hexid), 2))
