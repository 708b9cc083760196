# SPDX-License-Identifier: Apache-2.0
"""Key-wrap negotiation for backup and restore, on real modules: SoftHSM2
(CKM_AES_KEY_WRAP_PAD, its RFC 5649 reading) and NSS softoken through
p11-kit-proxy (CKM_AES_KEY_WRAP_KWP; with KWP hidden, its PKCS#7 reading of
CKM_AES_KEY_WRAP_PAD; with both hidden, CKM_AES_CBC_PAD). The faultp11 shim
hides mechanisms (FAULTP11_HIDE_MECHANISMS) over the real module; a module
with none of the three is exit 6 naming them, with nothing written. Backups
made on one module restore onto the other and the restored key signs.

NSS runs in a private mount namespace whose p11-kit module folder holds only
an NSS module file (x-init-reserved: configdir=...), so the machine's p11-kit
configuration is not touched."""
import os
import shutil
import subprocess

from harness import Sandbox, TestCA, main, expect, sh, USER_PIN

PW = "correct horse battery"
PROXY = "/usr/lib/x86_64-linux-gnu/p11-kit-proxy.so"
NSS_TOKEN = "NSS Certificate DB"
FAULT = os.environ.get("FAULTP11_LIB", "")


class Nss:
    """An NSS database with USER_PIN as its password, seen through p11-kit-proxy."""

    def __init__(self, sb):
        self.sb = sb
        self.db = sb.path("nssdb")
        self.mods = sb.path("p11-modules")
        os.makedirs(self.db)
        os.makedirs(self.mods)
        sh(["certutil", "-N", "-d", "sql:" + self.db, "-f", sb.write("nsspw", USER_PIN)])
        with open(os.path.join(self.mods, "nss.module"), "w") as f:
            f.write("module: /usr/lib/x86_64-linux-gnu/libsoftokn3.so\n"
                    "x-init-reserved: configdir='sql:%s' certPrefix='' keyPrefix='' secmod='secmod.db'\n" % self.db)

    def tp(self, *args, env=None, module=PROXY):
        e = dict(self.sb.env)
        e.update(env or {})
        if module != PROXY:
            e["FAULTP11_MODULE"] = PROXY
        cmd = ["unshare", "-m", "--propagation", "private", "sh", "-c",
               'mount --bind "$0" /usr/share/p11-kit/modules && exec "$@"', self.mods,
               os.environ.get("TOKENPROV_BIN", "tokenprov"), "--module", module, "--token", NSS_TOKEN,
               "--pin-source", "env:TP_PIN"] + list(args)
        return subprocess.run(cmd, env=e, capture_output=True, text=True, timeout=300)


def usable():
    return shutil.which("unshare") and os.path.exists(PROXY) and FAULT and \
        subprocess.run(["unshare", "-m", "true"]).returncode == 0


def leaf_for(sb, run, label, alg):
    """keygen + csr + pickup through RUN (a function taking tokenprov arguments)."""
    r = run("keygen", "--algorithm", alg, "--label", label, "--exportable")
    expect(r.returncode == 0, r.stderr)
    csr = sb.path(label + ".csr")
    r = run("csr", "--key", label, "--subject", "/CN=" + label, "--out", csr)
    expect(r.returncode == 0, r.stderr)
    if not hasattr(sb, "ca"):
        sb.ca = TestCA(sb)
    leaf = sb.ca.issue(csr, sb.path(label + ".pem"))
    r = run("pickup", "--cert", sb.write(label + "-b.pem", open(leaf).read() + sb.ca.chain_pem()))
    expect(r.returncode == 0, r.stderr)


def softhsm_run(sb, token, module=None):
    def run(*args, env=None):
        extra = ["--module", module] if module else []
        return sb.tp(*args[:1], *extra, "--token", token, "--pin-source", "env:TP_PIN", *args[1:], env=env)
    return run


def backup_args(label, out):
    return ("backup", "--key", label, "--out", out, "--password-source", "env:PW")


def test_softhsm_without_a_wrap_mechanism_refuses():
    if not FAULT:
        raise AssertionError("FAULTP11_LIB is not set")
    with Sandbox() as sb:
        sb.create_token("s")
        leaf_for(sb, softhsm_run(sb, "s"), "k", "ec-p256")
        out = sb.path("k.p12")
        hide = {"FAULTP11_HIDE_MECHANISMS": "0x210A", "PW": PW}
        r = softhsm_run(sb, "s", FAULT)(*backup_args("k", out), env=hide)
        expect(r.returncode == 6 and "CKM_AES_KEY_WRAP_KWP (0x210B)" in r.stderr and
               "CKM_AES_KEY_WRAP_PAD (0x210A)" in r.stderr and "CKM_AES_CBC_PAD" in r.stderr, (r.returncode, r.stderr))
        expect(not os.path.exists(out), "a file was written")
        r = softhsm_run(sb, "s")(*backup_args("k", out), env={"PW": PW})
        expect(r.returncode == 0, r.stderr)
        sb.create_token("t")
        before = sb.objects("t")
        r = softhsm_run(sb, "t", FAULT)("restore", "--in", out, "--password-source", "env:PW", env=hide)
        expect(r.returncode == 6 and "CKF_UNWRAP" in r.stderr and "import" in r.stderr, (r.returncode, r.stderr))
        expect(sb.objects("t") == before, "the token changed")


def signs_with(sb, run, label, pem):
    """The restored key signs (through tokenprov's csr) and the request carries the certificate's key."""
    csr = sb.path(label + "-again.csr")
    r = run("csr", "--key", label, "--subject", "/CN=again", "--out", csr)
    expect(r.returncode == 0, r.stderr)
    sh(["openssl", "req", "-in", csr, "-noout", "-verify"])
    a = sh(["openssl", "req", "-in", csr, "-noout", "-pubkey"]).stdout
    b = sh(["openssl", "x509", "-in", pem, "-noout", "-pubkey"]).stdout
    expect(a == b, "the restored key is not the certificate's")


def test_nss_every_way_and_across_modules():
    if not usable():
        raise AssertionError("unshare, p11-kit-proxy or FAULTP11_LIB missing")
    with Sandbox() as sb:
        nss = Nss(sb)
        sb.create_token("s")
        nrun = lambda *a, env=None: nss.tp(*a, env=env)
        frun = lambda *a, env=None: nss.tp(*a, env=env, module=FAULT)
        # Backups out of NSS by each of the three ways.
        ways = [("kwp", {}), ("pad-pkcs7", {"FAULTP11_HIDE_MECHANISMS": "0x210B"}),
                ("cbc-pad", {"FAULTP11_HIDE_MECHANISMS": "0x210B,0x210A"})]
        for alg in ("rsa2048", "ec-p256"):
            label = "n-" + alg
            leaf_for(sb, nrun, label, alg)
            for way, env in ways:
                out = sb.path("%s-%s.p12" % (label, way))
                r = (frun if env else nrun)(*backup_args(label, out), env=dict(env, PW=PW))
                expect(r.returncode == 0, (way, r.stderr))
                # GnuTLS reads it (EC keys carry their public key).
                with open(sb.write("pw", PW)) as pw:
                    g = sh(["certtool", "--p12-info", "--inder", "--infile", out], stdin=pw, check=False)
                expect(g.returncode == 0 and "failed" not in g.stdout + g.stderr, (way, g.stdout, g.stderr))
        # NSS -> SoftHSM2: RSA and EC restore and sign.
        srun = softhsm_run(sb, "s")
        for alg in ("rsa2048", "ec-p256"):
            label = "n-" + alg
            r = srun("restore", "--in", sb.path("%s-kwp.p12" % label), "--password-source", "env:PW", env={"PW": PW})
            expect(r.returncode == 0, r.stderr)
            signs_with(sb, srun, label, sb.path(label + ".pem"))
        # SoftHSM2 -> NSS (RSA and EC: NSS needs the EC point in CKA_NSS_DB), by each way;
        # the restored key signs on NSS.
        for i, ((way, env), alg) in enumerate((w, a) for w in ways for a in ("rsa2048", "ec-p256")):
            label = "s-%s-%d" % (alg, i)
            leaf_for(sb, srun, label, alg)
            out = sb.path(label + ".p12")
            expect(srun(*backup_args(label, out), env={"PW": PW}).returncode == 0, "softhsm backup")
            r = (frun if env else nrun)("restore", "--in", out, "--password-source", "env:PW", "--json",
                                        env=dict(env, PW=PW))
            expect(r.returncode == 0, (way, r.stderr))
            signs_with(sb, nrun, label, sb.path(label + ".pem"))


if __name__ == "__main__":
    main([test_softhsm_without_a_wrap_mechanism_refuses, test_nss_every_way_and_across_modules])
