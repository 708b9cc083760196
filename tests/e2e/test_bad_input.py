# SPDX-License-Identifier: Apache-2.0
"""Bad-input catalogue: files, manifests, profiles, modules, tokens, PIN
sources and output paths tokenprov must refuse with the right exit code and a
message that names the file or object involved, leaving every token as it was.

CASES below is the one table; docs/bad-input.md is generated from it:

    python3 tests/e2e/test_bad_input.py --markdown > docs/bad-input.md

and test_doc_matches_table fails when the two drift apart.

Commands are templates: {name} is a fixture file the setup makes in the
sandbox (see make_fixtures), {shim} the faultp11 module."""

import json
import os
import resource
import signal
import subprocess
import sys
from collections import namedtuple

from harness import Sandbox, TestCA, main, expect, sh, BIN, SRC, SOFTHSM_MODULE

DOC = os.path.join(SRC, "docs", "bad-input.md")

# name: short id; input: what is wrong, for people; cmd: tokenprov's argv (templates);
# code: exit code; msg: a substring of stderr; names: what the message must name (template;
# defaults to the first {fixture} in cmd); env: extra environment; limit: RLIMIT_FSIZE bytes.
Case = namedtuple("Case", "name input cmd code msg names env limit")


def case(name, input, cmd, code, msg, names=None, env=None, limit=None):
    return Case(name, input, cmd, code, msg, names, env or {}, limit)


T = ["--token", "bad", "--pin-source", "env:TP_PIN"]
PICKUP = ["pickup"] + T + ["--cert"]
RESTORE = ["restore", "--token", "spare", "--pin-source", "env:TP_PIN", "--password-source", "env:PW", "--in"]
BACKUP = ["backup"] + T + ["--key", "alice", "--password-source", "env:PW", "--out"]
FLEET = ["fleet", "--dry-run", "--profile", "softhsm-demo", "--manifest"]
PW = {"PW": "backup-password"}

CASES = [
    # --- certificates (pickup) ---
    case("pem-garbage", "PEM armour around text that is not base64", PICKUP + ["{junk_pem}"], 5, "is corrupt or truncated"),
    case("pem-truncated", "a PEM certificate cut off after 300 bytes", PICKUP + ["{trunc_pem}"], 5, "is corrupt or truncated"),
    case("pem-not-der", "valid base64 in a CERTIFICATE block that is not DER", PICKUP + ["{notder_pem}"], 5,
         "holds a CERTIFICATE block that is not valid DER"),
    case("der-garbage", "2 KB of random bytes", PICKUP + ["{junk_der}"], 5, "No certificate could be read"),
    case("der-truncated", "a DER certificate cut in half", PICKUP + ["{trunc_der}"], 5, "No certificate could be read"),
    case("p7-truncated", "a DER PKCS#7 bundle cut in half", PICKUP + ["{trunc_p7}"], 5, "No certificate could be read"),
    case("p7-garbage", "a PEM PKCS7 block whose content is not PKCS#7", PICKUP + ["{junk_p7}"], 5,
         "holds a PKCS7 block that is not valid DER"),
    case("p7-empty", "a PKCS#7 bundle without certificates", PICKUP + ["{empty_p7}"], 5, "No certificate could be read"),
    case("cert-empty", "an empty file", PICKUP + ["{empty_file}"], 5, "is empty"),
    case("cert-missing", "a certificate path that does not exist", PICKUP + ["{missing_pem}"], 5, "No such file"),
    case("cert-other-key", "a certificate for a key that is not on the token", PICKUP + ["{other_pem}"], 5,
         "No key on the token matches"),
    case("cert-expired", "a certificate that expired in 2021", PICKUP + ["{expired_pem}"], 5, "expired on 2021-01-01"),
    case("cert-not-yet-valid", "a certificate valid from 2099", PICKUP + ["{future_pem}"], 5, "is not valid yet"),
    case("chain-does-not-verify", "a chain checked against another CA's root", PICKUP + ["{bob_pem}", "--ca-bundle",
         "{other_root}"], 5, "does not verify against the CA bundle", names="{other_root}"),
    case("ca-bundle-garbage", "a CA bundle that holds no certificate", PICKUP + ["{bob_pem}", "--ca-bundle",
         "{junk_der}"], 5, "No certificate could be read", names="{junk_der}"),
    # --- PKCS#12 (restore) ---
    case("p12-wrong-password", "a backup opened with the wrong password", RESTORE + ["{alice_p12}"], 5, "password",
         env={"PW": "not-the-password"}),
    case("p12-truncated", "a backup cut off after 200 bytes", RESTORE + ["{trunc_p12}"], 5, "trunc.p12", env=PW),
    case("p12-garbage", "a PEM certificate given as a backup", RESTORE + ["{bob_pem}"], 5, "PKCS#12", env=PW),
    case("p12-no-key", "a certificate-only backup", RESTORE + ["{certonly_p12}"], 5, "no private key", env=PW),
    case("p12-missing", "a backup path that does not exist", RESTORE + ["{missing_p12}"], 5, "No such file", env=PW),
    # --- manifests (fleet --dry-run) ---
    case("manifest-no-subject", "a manifest without the subject column", FLEET + ["{m_nosubject}"], 5,
         "has no 'subject' column"),
    case("manifest-duplicate-token", "the same token on two rows", FLEET + ["{m_duptoken}"], 5, "a second time"),
    case("manifest-bad-dn", "a subject that is not a DN", FLEET + ["{m_baddn}"], 5, "column 'subject'"),
    case("manifest-short-row", "a row with fewer fields than the header", FLEET + ["{m_short}"], 5, "fields; the header has"),
    case("manifest-empty", "an empty manifest", FLEET + ["{empty_file}"], 5, "is empty"),
    # --- profiles ---
    case("profile-unknown-algorithm", "a key with algorithm rsa1024", ["provision", "--profile", "{p_alg}", "--subject",
         "/CN=x", "--pin-source", "env:TP_PIN", "--cert-dir", "{cert_dir}"], 5, "'rsa1024' is not one of"),
    case("profile-unknown-field", "a profile with a misspelt field", ["provision", "--profile", "{p_field}", "--subject",
         "/CN=x", "--pin-source", "env:TP_PIN", "--cert-dir", "{cert_dir}"], 5, "unknown"),
    case("profile-not-toml", "a profile that is not TOML", ["provision", "--profile", "{p_syntax}", "--subject", "/CN=x",
         "--pin-source", "env:TP_PIN", "--cert-dir", "{cert_dir}"], 5, "p_syntax.toml"),
    case("profile-missing", "a profile name that is nowhere", ["provision", "--profile", "no-such-profile", "--subject",
         "/CN=x", "--pin-source", "env:TP_PIN", "--cert-dir", "{cert_dir}"], 5, "no-such-profile",
         names="no-such-profile"),
    # --- modules and tokens ---
    case("module-missing", "a module path that does not exist", ["list", "--module", "{missing_so}"], 6, "does not exist"),
    case("module-not-pkcs11", "a shared library that is not a PKCS#11 module", ["list", "--module", "{not_p11}"], 6,
         "is not a PKCS#11 module"),
    case("module-not-a-library", "a text file given as the module", ["list", "--module", "{junk_pem}"], 6,
         "Cannot load the PKCS#11 module"),
    case("token-not-present", "a token label no slot has", ["list", "--token", "no-such-token", "--pin-source",
         "env:TP_PIN"], 6, "No token matches 'no-such-token'", names="no-such-token"),
    # --- PINs ---
    case("pin-file-missing", "a PIN source naming a missing file", ["list", "--token", "bad", "--pin-source",
         "file:{missing_pin}"], 3, "Cannot open the user PIN file"),
    case("pin-env-unset", "a PIN source naming an unset variable", ["list", "--token", "bad", "--pin-source",
         "env:TP_NO_SUCH_VAR"], 3, "not set", names="TP_NO_SUCH_VAR"),
    case("pin-wrong", "a wrong user PIN", ["list", "--token", "bad", "--pin-source", "env:WRONG"], 3, "is incorrect",
         names="bad", env={"WRONG": "999999"}),
    case("pin-too-short", "init with a 2-character user PIN", ["init", "--label", "fresh", "--so-pin-source",
         "env:TP_SO_PIN", "--pin-source", "env:SHORT"], 3, "user PIN is too short", names="the token in slot",
         env={"SHORT": "12"}),
    case("pin-locked", "a token whose user PIN is locked (CKR_PIN_LOCKED, played by the faultp11 shim: SoftHSM "
         "2.6 never locks a PIN)", ["--module", "{shim}", "list", "--token", "lockme", "--pin-source", "env:TP_PIN"], 3,
         "is locked", names="lockme",
         env={"FAULTP11_FAIL_FUNC": "C_Login", "FAULTP11_FAIL_AT": "1", "FAULTP11_RV": "CKR_PIN_LOCKED"}),
    case("challenge-unset", "a SCEP challenge source naming an unset variable", ["enroll"] + T + ["--scep-url",
         "http://127.0.0.1:9/scep", "--challenge-source", "env:TP_NO_CHALLENGE", "--label", "x", "--subject", "/CN=x"],
         7, "not set", names="TP_NO_CHALLENGE"),
    case("password-file-missing", "a backup password source naming a missing file", ["backup"] + T + ["--key",
         "alice", "--password-source", "file:{missing_pw}", "--out", "{new_p12}"], 5,
         "Cannot open the backup password file", names="{missing_pw}"),
    # --- outputs ---
    case("out-folder-missing", "an output file in a folder that does not exist", ["csr"] + T + ["--key", "alice",
         "--subject", "/CN=x", "--out", "{no_dir}/x.csr"], 5, "Cannot create a file in the folder",
         names="{no_dir}"),
    case("out-under-a-file", "an output path under a regular file", BACKUP + ["/etc/passwd/x.p12"], 5,
         "is not a folder", names="/etc/passwd/x.p12", env=PW),
    case("out-disk-full", "a backup written with a 1000-byte file size limit (a full disk)", BACKUP + ["{new_p12}"], 5,
         "Cannot write", env=PW, limit=1000),
    case("out-exists", "a backup path that exists already", BACKUP + ["{existing_p12}"], 8, "exists already", env=PW),
    case("csr-out-exists", "a CSR path that exists already", ["csr"] + T + ["--key", "alice", "--subject", "/CN=x",
         "--out", "{existing_csr}"], 8, "exists already"),
    case("cert-dir-missing", "provision --cert-dir naming a missing folder", ["provision", "--profile", "softhsm-demo",
         "--token", "bad", "--subject", "/CN=x", "--pin-source", "env:TP_PIN", "--cert-dir", "{no_dir}"], 5,
         "Cannot read the folder"),
    # --- special files (read only as regular files, never hanging, with a size limit) ---
    case("cert-folder", "a folder given as the certificate", PICKUP + ["{cert_dir}"], 5, "it is a folder"),
    case("cert-fifo", "a FIFO given as the certificate (nobody writes to it)", PICKUP + ["{fifo}"], 5, "FIFO"),
    case("cert-dev-zero", "/dev/zero given as the certificate", PICKUP + ["/dev/zero"], 5, "character device",
         names="/dev/zero"),
    case("cert-too-large", "a 5 MiB (sparse) file given as the certificate", PICKUP + ["{big_file}"], 5,
         "larger than the 4 MiB"),
    case("ca-bundle-fifo", "a FIFO given as the CA bundle", PICKUP + ["{bob_pem}", "--ca-bundle", "{fifo}"], 5,
         "FIFO", names="{fifo}"),
    case("p12-fifo", "a FIFO given as the backup to restore", RESTORE + ["{fifo}"], 5, "FIFO", env=PW),
    case("manifest-folder", "a folder given as the manifest", FLEET + ["{cert_dir}"], 5, "it is a folder"),
    case("manifest-fifo", "a FIFO given as the manifest", FLEET + ["{fifo}"], 5, "FIFO"),
    case("profile-fifo", "a FIFO given as the profile", ["provision", "--profile", "{fifo}", "--subject", "/CN=x",
         "--pin-source", "env:TP_PIN", "--cert-dir", "{cert_dir}"], 5, "FIFO"),
    case("pin-file-fifo", "a PIN source file: naming a FIFO", ["list", "--token", "bad", "--pin-source",
         "file:{fifo}"], 3, "FIFO"),
    # --- text that must be UTF-8, and names a certificate cannot hold ---
    case("subject-latin1", "a subject DN in Latin-1 (/CN=J\\xfcrgen)", ["csr"] + T + ["--key", "alice", "--subject",
         "{latin1_dn}", "--out", "{new_csr}"], 5, "is not valid UTF-8", names="J\\xfcrgen"),
    case("key-label-latin1", "a key label in Latin-1 (caf\\xe9)", ["keygen"] + T + ["--algorithm", "ec-p256",
         "--label", "{latin1_label}"], 5, "is not valid UTF-8", names="caf\\xe9"),
    case("token-label-latin1", "a token label in Latin-1 (caf\\xe9)", ["init", "--label", "{latin1_label}",
         "--so-pin-source", "env:TP_SO_PIN", "--pin-source", "env:TP_PIN"], 5, "is not valid UTF-8",
         names="caf\\xe9"),
    case("manifest-latin1-subject", "a manifest whose subject is Latin-1", FLEET + ["{m_latin1}"], 5,
         "is not valid UTF-8"),
    case("san-dns-idn", "a DNS name SAN that is not ASCII", ["csr"] + T + ["--key", "alice", "--subject", "/CN=x",
         "--san", "dns:bücher.example", "--out", "{new_csr}"], 5, "A-label", names="dns:bücher.example"),
    case("san-email-idn", "an e-mail SAN that is not ASCII", ["csr"] + T + ["--key", "alice", "--subject", "/CN=x",
         "--san", "email:anna@bücher.example", "--out", "{new_csr}"], 5, "A-label",
         names="email:anna@bücher.example"),
    # --- secrets where they do not belong ---
    case("uri-pin-value", "a token URI carrying pin-value", ["list", "--token",
         "pkcs11:token=nosuch?pin-value=uri-secret"], 2, "carries a PIN", names="pin-value=***"),
    case("manifest-pin-value", "a manifest token URI carrying pin-value", FLEET + ["{m_pinvalue}"], 5,
         "carries a PIN", names="pin-value=***"),
    case("pin-source-no-scheme", "a PIN source without a scheme (the PIN itself)", ["list", "--token", "bad",
         "--pin-source", "9999"], 2, "is not a secret source", names="its value is not shown"),
    # --- modules ---
    case("module-null-entry", "a module whose function list has a NULL entry (the faultp11 shim with "
         "FAULTP11_NULL)", ["--module", "{shim}", "list"], 6, "has no C_GetTokenInfo", names="{shim}",
         env={"FAULTP11_NULL": "C_GetTokenInfo"}),
    # --- the audit log, checked before a token is touched ---
    case("audit-log-unwritable", "provision --audit-log in a folder that does not exist", ["provision", "--profile",
         "softhsm-demo", "--token", "bad", "--subject", "/CN=x", "--pin-source", "env:TP_PIN", "--cert-dir",
         "{cert_dir}", "--audit-log", "{no_dir}/audit.log"], 5, "Cannot open the audit log", names="{no_dir}"),
    case("fleet-audit-log-unwritable", "fleet --audit-log in a folder that does not exist", ["fleet", "--profile",
         "softhsm-demo", "--manifest", "{m_good}", "--pin-source", "env:TP_PIN", "--cert-dir", "{cert_dir}",
         "--audit-log", "{no_dir}/audit.log"], 5, "Cannot open the audit log", names="{no_dir}"),
    case("backup-dir-missing", "provision --backup-dir naming a missing folder", ["provision", "--profile",
         "softhsm-demo", "--token", "bad", "--subject", "/CN=x", "--pin-source", "env:TP_PIN", "--cert-dir",
         "{cert_dir}", "--backup-dir", "{no_dir}", "--password-source", "env:PW"], 5, "does not exist",
         names="{no_dir}", env=PW),
]


# --------------------------------------------------------------------------
# Fixtures

def make_fixtures(sb):
    f = {}
    def put(key, filename, data):
        f[key] = sb.write(filename, data)

    sb.create_token("bad")
    sb.create_token("spare")
    sb.create_token("lockme")
    sb.tpj("keygen", "--token", "bad", "--pin-source", "env:TP_PIN", "--algorithm", "ec-p256", "--label", "alice",
           "--exportable")
    sb.tpj("keygen", "--token", "bad", "--pin-source", "env:TP_PIN", "--algorithm", "ec-p256", "--label", "bob")
    ca = TestCA(sb)
    csrs = {}
    for k in ("alice", "bob"):
        csrs[k] = sb.path(k + ".csr")
        sb.tp("csr", "--token", "bad", "--pin-source", "env:TP_PIN", "--key", k, "--subject", "/CN=%s/O=Example" % k,
              "--out", csrs[k], check=0)
    alice = ca.issue(csrs["alice"], sb.path("alice.pem"))
    sb.tp("pickup", "--token", "bad", "--pin-source", "env:TP_PIN", "--cert",
          sb.write("alice-bundle.pem", open(alice).read() + ca.chain_pem()), check=0)
    f["bob_pem"] = ca.issue(csrs["bob"], sb.path("bob.pem"))
    f["expired_pem"] = ca.issue(csrs["bob"], sb.path("expired.pem"), not_before="20200101000000Z",
                                not_after="20210101000000Z")
    f["future_pem"] = ca.issue(csrs["bob"], sb.path("future.pem"), not_before="20990101000000Z",
                               not_after="20991231000000Z")
    sh(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
        sb.path("other.key"), "-out", sb.path("other.csr"), "-subj", "/CN=other"])
    f["other_pem"] = ca.issue(sb.path("other.csr"), sb.path("other.pem"))
    f["other_root"] = TestCA(sb, "Other").root
    pem = open(f["bob_pem"]).read()
    put("junk_pem", "junk.pem", "-----BEGIN CERTIFICATE-----\nnot base64!!\n-----END CERTIFICATE-----\n")
    put("trunc_pem", "trunc.pem", pem[:300])
    put("notder_pem", "notder.pem", "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n")
    put("junk_der", "junk.der", os.urandom(2048))
    der = subprocess.run(["openssl", "x509", "-in", f["bob_pem"], "-outform", "DER"], capture_output=True,
                         check=True).stdout
    put("trunc_der", "trunc.der", der[:len(der) // 2])
    p7 = sb.path("chain.p7b")
    sh(["openssl", "crl2pkcs7", "-nocrl", "-certfile", f["bob_pem"], "-certfile", ca.int, "-outform", "DER",
        "-out", p7])
    p7der = open(p7, "rb").read()
    put("trunc_p7", "trunc.p7b", p7der[:len(p7der) // 2])
    put("junk_p7", "junk.p7b", "-----BEGIN PKCS7-----\naGVsbG8gd29ybGQ=\n-----END PKCS7-----\n")
    empty_p7 = sb.path("empty.p7b")
    sh(["openssl", "crl2pkcs7", "-nocrl", "-outform", "DER", "-out", empty_p7])
    f["empty_p7"] = empty_p7
    put("empty_file", "empty.txt", "")
    f["missing_pem"] = sb.path("missing.pem")
    # PKCS#12
    f["alice_p12"] = sb.path("alice.p12")
    sb.tp(*BACKUP, f["alice_p12"], env=PW, check=0)
    put("trunc_p12", "trunc.p12", open(f["alice_p12"], "rb").read()[:200])
    f["certonly_p12"] = sb.path("certonly.p12")
    sb.tp(*BACKUP, f["certonly_p12"], "--cert-only", env=PW, check=0)
    f["missing_p12"] = sb.path("missing.p12")
    # manifests
    put("m_nosubject", "m-nosubject.csv", "token,user\nbad,alice\n")
    put("m_duptoken", "m-duptoken.csv", "token,subject\nbad,/CN=Alice\nbad,/CN=Bob\n")
    put("m_baddn", "m-baddn.csv", "token,subject\nbad,/NOSUCHATTR=Alice\n")
    put("m_short", "m-short.csv", "token,subject,user\nbad\n")
    put("m_latin1", "m-latin1.csv", b"token,subject\nbad,/CN=J\xfcrgen\n")
    put("m_pinvalue", "m-pinvalue.csv", "token,subject\npkcs11:token=bad?pin-value=manifest-secret,/CN=Alice\n")
    put("m_good", "m-good.csv", "token,subject\nbad,/CN=Fleet\n")
    # special files
    f["fifo"] = sb.path("fifo.toml")  # .toml: --profile takes it as a path
    os.mkfifo(f["fifo"])
    f["big_file"] = sb.path("big.pem")
    with open(f["big_file"], "wb") as fh:
        fh.truncate(5 << 20)
    # text in Latin-1 (bytes that are not UTF-8: os.fsencode turns the surrogates back into them)
    f["latin1_dn"] = "/CN=J\udcfcrgen"
    f["latin1_label"] = "caf\udce9"
    f["new_csr"] = sb.path("new.csr")
    # profiles
    demo = open(os.path.join(SRC, "tokens", "softhsm-demo.toml")).read()
    put("p_alg", "p_alg.toml", demo.replace('algorithm = "rsa2048"', 'algorithm = "rsa1024"'))
    put("p_field", "p_field.toml", demo.replace("allow_export = true", "allow_export = true\nalow_export = true"))
    put("p_syntax", "p_syntax.toml", "this is [not toml\n")
    f["cert_dir"] = sb.path("certs")
    os.makedirs(f["cert_dir"])
    # modules
    f["missing_so"] = sb.path("no-such-module.so")
    f["not_p11"] = next(p for p in ("/usr/lib/x86_64-linux-gnu/libz.so.1", "/lib/x86_64-linux-gnu/libz.so.1",
                                    "/usr/lib/x86_64-linux-gnu/libc.so.6") if os.path.exists(p))
    f["shim"] = os.environ.get("FAULTP11_LIB", "")
    # PIN and password sources
    f["missing_pin"] = sb.path("no-such-pin.txt")
    f["missing_pw"] = sb.path("no-such-password.txt")
    # outputs
    f["no_dir"] = sb.path("no-such-folder")
    f["new_p12"] = sb.path("new.p12")
    put("existing_p12", "existing.p12", b"keep me")
    put("existing_csr", "existing.csr", "keep me")
    return f


def fill(template, f):
    return template.format(**f)


def token_state(sb):
    """Every token (no login) and the objects of the tokens the cases use (with login)."""
    r = sb.tp("list", "--json", check=0)
    toks = json.loads(r.stdout)["tokens"]
    for t in toks:
        # The tries-left flags are the token's own PIN counter: a wrong PIN counts (once; tokenprov
        # never retries) and the next right one resets it. Everything else must stay.
        t.pop("flags", None)
    objs = {t: sb.objects(t) for t in ("bad", "spare", "lockme")}
    return toks, objs


def run_case(sb, c, f):
    argv = [BIN] + [fill(a, f) for a in c.cmd]
    env = dict(sb.env)
    env.update(c.env)

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (c.limit, c.limit))

    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120,
                          preexec_fn=limit if c.limit else None)


def first_fixture(c):
    for a in c.cmd:
        if "{" in a:
            return a[a.index("{"):a.index("}") + 1]
    return None


# --------------------------------------------------------------------------
# Tests

def test_catalogue():
    expect(len(CASES) >= 30, "only %d cases" % len(CASES))
    expect(len({c.name for c in CASES}) == len(CASES), "duplicate case names")
    with Sandbox() as sb:
        f = make_fixtures(sb)
        keep = {k: open(f[k], "rb").read() for k in ("existing_p12", "existing_csr")}
        before = token_state(sb)
        problems = []
        for c in CASES:
            r = run_case(sb, c, f)
            names = fill(c.names or first_fixture(c) or "", f)
            err = r.stderr
            where = "%s (tokenprov %s)" % (c.name, " ".join(fill(a, f) for a in c.cmd))
            if r.returncode != c.code:
                problems.append("%s: exit %d, wanted %d\n    %s" % (where, r.returncode, c.code, err.strip()))
            if c.msg not in err:
                problems.append("%s: the message lacks %r\n    %s" % (where, c.msg, err.strip()))
            if names and names not in err:
                problems.append("%s: the message does not name %r\n    %s" % (where, names, err.strip()))
            if r.stdout.strip() and "--json" not in c.cmd:
                problems.append("%s: output on stdout: %r" % (where, r.stdout[:200]))
            after = token_state(sb)
            if after != before:
                import difflib
                diff = difflib.unified_diff(json.dumps(before, indent=1, sort_keys=True).splitlines(),
                                            json.dumps(after, indent=1, sort_keys=True).splitlines(), lineterm="")
                problems.append("%s: a token changed:\n%s" % (where, "\n".join(list(diff)[:40])))
                before = after
            for k, data in keep.items():
                if open(f[k], "rb").read() != data:
                    problems.append("%s: %s was changed" % (where, f[k]))
            leftovers = [n for n in os.listdir(sb.dir) if n.startswith(".") and ".tmp-" in n]
            made = [p for p in (f["new_p12"], f["new_csr"]) if os.path.exists(p)]
            if leftovers or made:
                problems.append("%s: files left: %s" % (where, leftovers + made))
        expect(not problems, "%d problem(s):\n  %s" % (len(problems), "\n  ".join(problems)))


def test_json_errors_carry_the_code():
    """The same refusals under --json: one document with ok false and the exit code."""
    with Sandbox() as sb:
        f = make_fixtures(sb)
        for c in CASES:
            if c.name not in ("cert-other-key", "p12-wrong-password", "manifest-duplicate-token", "module-missing",
                              "pin-env-unset", "out-exists"):
                continue
            r = run_case(sb, c._replace(cmd=c.cmd + ["--json"]), f)
            expect(r.returncode == c.code, (c.name, r.returncode, r.stderr))
            lines = [l for l in r.stdout.splitlines() if l.strip()]
            doc = json.loads(lines[-1])
            expect(doc["ok"] is False and doc["error"]["code"] == c.code and c.msg in doc["error"]["message"],
                   (c.name, doc))


def markdown():
    esc = lambda s: s.replace("|", "\\|")
    out = ["# Bad input: what tokenprov says",
           "",
           "Every case below is run by `tests/e2e/test_bad_input.py`, which generates this file",
           "(`python3 tests/e2e/test_bad_input.py --markdown > docs/bad-input.md`) and fails when",
           "the two differ. In each case the command exits with the code shown, the message on",
           "stderr contains the text shown and names the file or object involved, and no token",
           "is changed. `{name}` stands for a file the test makes; `--token bad` is a SoftHSM2",
           "token holding the keys `alice` (with her certificate) and `bob` (without).",
           "",
           "| case | input | command | exit | message contains |",
           "|---|---|---|---|---|"]
    for c in CASES:
        out.append("| %s | %s | `tokenprov %s` | %d | %s |" % (c.name, esc(c.input), esc(" ".join(c.cmd)), c.code,
                                                                esc(c.msg)))
    out += ["",
            "Exit codes: 3 PIN problem, 5 bad input, 6 token or module problem, 7 CA or enrollment",
            "failure, 8 refused to overwrite (see the CLI contract)."]
    return "\n".join(out) + "\n"


def test_doc_matches_table():
    with open(DOC) as fh:
        doc = fh.read()
    expect(doc == markdown(), "%s is out of step with the table in %s; regenerate it with --markdown"
           % (DOC, os.path.basename(__file__)))


if __name__ == "__main__":
    if sys.argv[1:] == ["--markdown"]:
        sys.stdout.write(markdown())
        sys.exit(0)
    main([test_catalogue, test_json_errors_carry_the_code, test_doc_matches_table])
