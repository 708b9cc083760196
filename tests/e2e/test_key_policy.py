# SPDX-License-Identifier: Apache-2.0
"""The key policy is explicit for every key type: keygen and restore set every
policy attribute true or false from the usage (--usage, a profile key's
usage, or the default), never leaving one to the module's defaults (SoftHSM2's
make EC private keys decrypt, unwrap and derive). pkcs11-tool reads the keys
back, independently of tokenprov."""
import os

from harness import Sandbox, TestCA, main, expect, sh

PW = "correct horse battery"


def p11tool_keys(sb, token):
    """{(class, label): {"usage": set, "access": set}} from pkcs11-tool -O."""
    out = sb.pkcs11_tool("--token-label", token, "-O").stdout
    keys, cur = {}, None
    for line in out.splitlines():
        if line.startswith("Public Key Object") or line.startswith("Private Key Object"):
            cur = {"class": "public" if line.startswith("Public") else "private", "usage": set(), "access": set()}
        elif not line.startswith(" "):
            cur = None
        elif cur is not None:
            name, _, value = line.strip().partition(":")
            value = value.strip()
            if name == "label":
                keys[(cur["class"], value)] = cur
            elif name in ("Usage", "Access"):
                words = set(w.strip() for w in value.split(",") if w.strip() and w.strip() != "none")
                cur[name.lower()] = words
    return keys


# What each usage must give, written out by hand (not from tokenprov's code).
PRIV = {"sign": "sign", "decrypt": "decrypt", "unwrap": "unwrap", "derive": "derive"}
PUB = {"sign": "verify", "decrypt": "encrypt", "unwrap": "wrap", "derive": "derive"}


def expect_policy(keys, label, usage, exportable, local=True):
    priv, pub = keys[("private", label)], keys[("public", label)]
    expect(priv["usage"] == {PRIV[u] for u in usage}, (label, "private usage", priv["usage"], usage))
    expect(pub["usage"] == {PUB[u] for u in usage}, (label, "public usage", pub["usage"], usage))
    expect("sensitive" in priv["access"], (label, priv["access"]))
    expect(("extractable" in priv["access"]) == exportable, (label, priv["access"]))
    expect(("local" in priv["access"]) == local, (label, priv["access"]))


CASES = [
    ("rsa2048", None, ["sign", "decrypt"], False),
    ("rsa2048", "sign", ["sign"], True),
    ("rsa3072", "sign,unwrap", ["sign", "unwrap"], False),
    ("ec-p256", None, ["sign"], False),
    ("ec-p256", "sign,derive", ["sign", "derive"], True),
    ("ec-p384", "derive", ["derive"], False),
    ("ed25519", None, ["sign"], True),
]


def test_keygen_every_type_and_usage():
    with Sandbox() as sb:
        sb.create_token("kp")
        for i, (alg, usage, want, exportable) in enumerate(CASES):
            label = "k%d-%s" % (i, alg)
            args = ["keygen", "--token", "kp", "--pin-source", "env:TP_PIN", "--algorithm", alg, "--label", label]
            if usage:
                args += ["--usage", usage]
            if exportable:
                args.append("--exportable")
            doc = sb.tpj(*args)
            expect(doc["key"]["usage"] == want, doc)
        keys = p11tool_keys(sb, "kp")
        for i, (alg, usage, want, exportable) in enumerate(CASES):
            expect_policy(keys, "k%d-%s" % (i, alg), want, exportable)
        # A usage the type cannot have: exit 2, nothing made.
        n = len(sb.objects("kp"))
        r = sb.tp("keygen", "--token", "kp", "--pin-source", "env:TP_PIN", "--algorithm", "ec-p256", "--label", "bad",
                  "--usage", "sign,decrypt")
        expect(r.returncode == 2 and "cannot decrypt" in r.stderr, (r.returncode, r.stderr))
        expect(len(sb.objects("kp")) == n, "an object was made")


def provisioned(sb, token, label, alg):
    sb.tpj("keygen", "--token", token, "--pin-source", "env:TP_PIN", "--algorithm", alg, "--label", label,
           "--exportable", "--usage", "sign")
    csr = sb.path(label + ".csr")
    sb.tp("csr", "--token", token, "--pin-source", "env:TP_PIN", "--key", label, "--subject", "/CN=" + label,
          "--out", csr, check=0)
    if not hasattr(sb, "ca"):
        sb.ca = TestCA(sb)
    leaf = sb.ca.issue(csr, sb.path(label + ".pem"))
    bundle = sb.write(label + "-bundle.pem", open(leaf).read() + sb.ca.chain_pem())
    sb.tp("pickup", "--token", token, "--pin-source", "env:TP_PIN", "--cert", bundle, check=0)
    out = sb.path(label + ".p12")
    sb.tp("backup", "--token", token, "--pin-source", "env:TP_PIN", "--key", label, "--out", out,
          "--password-source", "env:PW", env={"PW": PW}, check=0)
    return out


def restore(sb, token, p12, *extra, check=0):
    return sb.tp("restore", "--token", token, "--pin-source", "env:TP_PIN", "--in", p12, "--password-source",
                 "env:PW", *extra, env={"PW": PW}, check=check)


def test_restore_honours_usage():
    with Sandbox() as sb:
        for t in ("src", "d1", "d2", "d3"):
            sb.create_token(t)
        rsa = provisioned(sb, "src", "r1", "rsa2048")
        ec = provisioned(sb, "src", "e1", "ec-p256")
        # Defaults of the type: RSA sign,decrypt; EC sign only. (SoftHSM2 2.6 can neither wrap nor unwrap
        # Ed25519 keys, so no Ed25519 backup is made here.)
        restore(sb, "d1", rsa, "--label", "r-default")
        restore(sb, "d1", ec, "--label", "e-default")
        # --usage and --exportable.
        restore(sb, "d2", rsa, "--label", "r-sign", "--usage", "sign", "--exportable")
        restore(sb, "d2", ec, "--label", "e-derive", "--usage", "sign,derive")
        # A profile key's usage and exportability (--profile, --role).
        prof = sb.write("p.toml", 'description = "test"\n[[keys]]\nrole = "enc"\nalgorithm = "rsa2048"\n'
                                  'usage = ["decrypt", "unwrap"]\nexportable = true\nlabel = "{role}"\n')
        restore(sb, "d3", rsa, "--label", "r-role", "--profile", prof, "--role", "enc")
        keys = p11tool_keys(sb, "d1")
        keys.update(p11tool_keys(sb, "d2"))
        keys.update(p11tool_keys(sb, "d3"))
        expect_policy(keys, "r-default", ["sign", "decrypt"], False, local=False)
        expect_policy(keys, "e-default", ["sign"], False, local=False)
        expect_policy(keys, "r-sign", ["sign"], True, local=False)
        expect_policy(keys, "e-derive", ["sign", "derive"], False, local=False)
        expect_policy(keys, "r-role", ["decrypt", "unwrap"], True, local=False)
        # A usage the backup's key cannot have: exit 2, nothing written.
        before = sb.objects("d3")
        r = restore(sb, "d3", ec, "--label", "e-bad", "--usage", "decrypt", check=None)
        expect(r.returncode == 2 and "cannot decrypt" in r.stderr, (r.returncode, r.stderr))
        r = restore(sb, "d3", ec, "--label", "e-bad", "--role", "enc", check=None)
        expect(r.returncode == 2 and "--profile" in r.stderr, (r.returncode, r.stderr))
        expect(sb.objects("d3") == before, "the token changed")


if __name__ == "__main__":
    main([test_keygen_every_type_and_usage, test_restore_honours_usage])
