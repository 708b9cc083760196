# SPDX-License-Identifier: Apache-2.0
"""The operations of the module matrix, one function per row of docs/modules.md.

Each cell states what it expects from the module's facts (env.limits) before it runs, then checks
the outcome with an independent reader. State carries from cell to cell: the main token made by
`init` gets the keys, the CSRs, the certificates."""

import subprocess
import json
import os

from matrix import CellFailed, check, describe, first_line, BACKUP_PASSWORD  # noqa: F401
from harness import TestCA

POLICY_FLAGS = {"encrypt", "decrypt", "sign", "verify", "wrap", "unwrap", "derive"}
PUBLIC_OF = {"sign": "verify", "decrypt": "encrypt", "unwrap": "wrap", "derive": "derive"}
DEFAULT_USAGE = {"rsa": ["sign", "decrypt"], "ec": ["sign"], "ed25519": ["sign"]}
# The usage each key asks for: defaults and explicit lists, so every policy flag is exercised.
KEY_USAGE = {"rsa2048": None, "rsa3072": "sign", "rsa4096": "sign,decrypt,unwrap",
             "ec-p256": "sign,derive", "ec-p384": None, "ed25519": None}
# A refusal must name the module's limit, not just repeat what was asked (the algorithm's name
# is in every message about it, so it does not count).
LIMIT_WORDS = {
    "rsa4096": ["3072"],
    "ec-p256": ["CKM_EC_KEY_PAIR_GEN", "ECDSA", "no EC", "elliptic"],
    "ec-p384": ["CKM_EC_KEY_PAIR_GEN", "ECDSA", "no EC", "elliptic"],
    "ed25519": ["CKM_EC_EDWARDS_KEY_PAIR_GEN", "EdDSA", "EC_EDWARDS"],
}
KEYGEN_MECH = {"rsa": "RSA-PKCS-KEY-PAIR-GEN", "ec": "ECDSA-KEY-PAIR-GEN", "ed25519": "EC-EDWARDS-KEY-PAIR-GEN"}
MAIN_LABEL = "mx-main"
NSS_DB_TOKEN = "NSS Certificate DB"
# Profiles for `provision` and `fleet`: the shipped one of the module; NSS has none (it runs
# through p11-kit-proxy), so it uses a profile the test writes.
PROFILES = {"softhsm-direct": "softhsm", "softhsm-proxy": "softhsm", "tpm2": "tpm2-pkcs11",
            "opencryptoki": "opencryptoki"}
NSS_PROFILE = """description = "NSS softoken through p11-kit-proxy (module matrix)."
module = "/usr/lib/x86_64-linux-gnu/p11-kit-proxy.so"
token_label = "nss-{user}"
allow_export = true
[pin]
min_length = 4
max_length = 500
[[keys]]
role = "auth"
algorithm = "ec-p256"
usage = ["sign"]
label = "{role}-{user}"
"""


def kind(alg):
    return "rsa" if alg.startswith("rsa") else ("ed25519" if alg == "ed25519" else "ec")


def usage_of(alg, asked):
    return sorted(asked.split(",")) if asked else sorted(DEFAULT_USAGE[kind(alg)])


class Cells:
    def __init__(self, m):
        self.m = m
        self.env = m.env
        self.lim = m.env.limits
        self.main = MAIN_LABEL if self.lim["init"] else NSS_DB_TOKEN
        self.keys = {}      # alg -> {"id", "label", "usage", "exportable"}
        self.csrs = {}      # alg -> CSR file
        self.ca = None
        self.login_tokens = []   # labels of initialized tokens with the matrix's user PIN

    def so_pin_env(self):
        """NSS has no SO and an empty SO PIN; where a command wants an SO PIN source at all, it
        gets a value no SO could have."""
        return {"TP_SO_PIN": "no-so-here"} if not self.lim["has_so"] else {}

    def pin(self, token=None):
        return ["--token", token or self.main, "--pin-source", "env:TP_PIN"]

    def file(self, name):
        return self.env.path(name)

    def get_ca(self):
        if self.ca is None:
            self.ca = TestCA(self.env, "Matrix")
        return self.ca

    def chain_file(self, leaf, name):
        path = self.file(name)
        with open(path, "w") as f:
            f.write(open(leaf).read() + self.get_ca().chain_pem())
        return path

    # ---- key policy, read back by pkcs11-tool --------------------------------------------------
    def check_policy(self, token, key_id, usage, exportable, local=True):
        objs = [o for o in self.m.p11_objects(token) if o["id"] == key_id]
        priv = [o for o in objs if o["class"] == "private-key"]
        pub = [o for o in objs if o["class"] == "public-key"]
        check(len(priv) == 1 and len(pub) == 1,
              "pkcs11-tool sees %d private and %d public keys with id %s" % (len(priv), len(pub), key_id))
        want_priv = set(usage)
        want_pub = {PUBLIC_OF[u] for u in usage}
        got_priv, got_pub = priv[0]["usage"] & POLICY_FLAGS, pub[0]["usage"] & POLICY_FLAGS
        check(got_priv == want_priv, "private key %s usage %s, asked for %s (pkcs11-tool)" % (
            key_id, sorted(got_priv), sorted(want_priv)))
        check(got_pub == want_pub, "public key %s usage %s, wanted %s (pkcs11-tool)" % (
            key_id, sorted(got_pub), sorted(want_pub)))
        acc = priv[0]["access"]
        check("sensitive" in acc, "private key %s is not sensitive: %s" % (key_id, sorted(acc)))
        check(("extractable" in acc) == exportable, "private key %s extractable=%s, wanted %s: %s" % (
            key_id, "extractable" in acc, exportable, sorted(acc)))
        if not exportable and local:   # an imported key is never CKA_NEVER_EXTRACTABLE (PKCS#11 2.40, 4.9)
            check("never extractable" in acc, "private key %s: not never-extractable: %s" % (key_id, sorted(acc)))
        if local and self.lim["local"]:
            check("local" in acc, "private key %s: not CKA_LOCAL: %s" % (key_id, sorted(acc)))
        return {"private_usage": sorted(priv[0]["usage"]), "public_usage": sorted(pub[0]["usage"]),
                "access": sorted(acc)}

    def key_from_list(self, token, label):
        objs = self.m.token(token)["objects"]
        keys = [o for o in objs if o["class"] == "private-key" and o["label"] == label]
        check(len(keys) == 1, "list --json: %d private keys labelled %s" % (len(keys), label))
        return keys[0]

    # ---- cells ---------------------------------------------------------------------------------
    def list_tokens(self):
        toks = self.m.tokens()
        r = self.m.p11("-L", login=False)
        slots = r.stdout.count("token label") + r.stdout.count("token state:")
        check(len(toks) == slots, "list shows %d tokens, pkcs11-tool -L %d: %s" % (len(toks), slots, r.stdout))
        for t in toks:
            for field in ("uri", "label", "serial", "manufacturer", "model", "slot_id", "initialized", "objects"):
                check(field in t, "token without %s: %s" % (field, t))
        serials = [t["serial"] for t in toks]
        return {"detail": "%d token(s); serials %s" % (len(toks), ", ".join(serials) or "-")}

    def init(self):
        args = ["init", "--label", MAIN_LABEL, "--so-pin-source", "env:TP_SO_PIN", "--pin-source", "env:TP_PIN",
                "--json"]
        if not self.lim["init"]:
            before = self.m.snapshot(self.main)
            r = self.m.tp(*args, env=self.so_pin_env())
            return self.m.refused(r, (6, 8), ["blank", "uninitialized", "not initialized", "--force"], self.main,
                                  before, limit="no blank token: the database token is always initialized "
                                                 "(C_InitToken would wipe it; no SO)",
                                  evidence="C_GetTokenInfo: CKF_TOKEN_INITIALIZED on every slot")
        r = self.m.tp(*args)
        check(r.returncode == 0, "init: " + describe(r))
        t = self.m.token(MAIN_LABEL)
        check(t["initialized"] and t.get("user_pin_initialized", True), "after init: %s" % t)
        self.m.p11("--list-objects", token=MAIN_LABEL)   # the user PIN works (pkcs11-tool logs in)
        self.login_tokens.append(MAIN_LABEL)
        return {"detail": "token '%s' initialized, user PIN set (pkcs11-tool logs in)" % MAIN_LABEL}

    def keygen(self, alg):
        asked = KEY_USAGE[alg]
        label = "k%d" % (list(KEY_USAGE).index(alg) + 1)   # no algorithm name: refusals must say more
        args = ["keygen"] + self.pin() + ["--algorithm", alg, "--label", label]
        if asked:
            args += ["--usage", asked]
        usage = usage_of(alg, asked)
        if alg not in self.lim["algorithms"]:
            before = self.m.snapshot(self.main)
            r = self.m.tp(*args, "--json")
            mech = KEYGEN_MECH[kind(alg)]
            if kind(alg) == "rsa":
                lim = "RSA key pairs up to %d bits" % self.lim["rsa_max_bits"]
            else:
                lim = "no %s key generation" % ("EdDSA" if kind(alg) == "ed25519" else "EC")
            return self.m.refused(r, (6,), LIMIT_WORDS[alg], self.main, before, limit=lim,
                                  evidence=self.m.mech_evidence(mech))
        doc = self.m.tpj(*args)
        key_id = doc["key"]["id"]
        lk = self.key_from_list(self.main, label)
        check(lk["id"] == key_id and lk["key_type"] == kind(alg), "list --json: %s" % lk)
        if kind(alg) == "rsa":
            check(lk.get("bits") == int(alg[3:]), "list --json bits: %s" % lk)
        check(lk["sensitive"] and not lk["extractable"] and lk["local"] == self.lim["local"],
              "list --json policy: %s" % lk)
        pol = self.check_policy(self.main, key_id, usage, exportable=False)
        self.keys[alg] = {"id": key_id, "label": label, "usage": usage}
        return {"detail": "usage %s; pkcs11-tool: private %s, public %s; %s" % (
            ",".join(usage), ",".join(pol["private_usage"]), ",".join(pol["public_usage"]), ", ".join(pol["access"]))}

    def keygen_exportable(self):
        label = "kx"
        args = ["keygen"] + self.pin() + ["--algorithm", "rsa2048", "--label", label, "--exportable", "--json"]
        if not self.lim["exportable"]:
            before = self.m.snapshot(self.main)
            r = self.m.tp(*args)
            res = self.m.refused(r, (4, 6), ["extractable", "CKA_EXTRACTABLE", "exportable keys"], self.main, before,
                                 limit="no extractable private keys")
            res["evidence"] = self.probe_extractable()
            return res
        doc = self.m.tpj(*args[:-1])
        key_id = doc["key"]["id"]
        lk = self.key_from_list(self.main, label)
        check(lk["extractable"] and lk["sensitive"], "list --json: %s" % lk)
        pol = self.check_policy(self.main, key_id, ["decrypt", "sign"], exportable=True)
        self.keys["export"] = {"id": key_id, "label": label, "usage": ["decrypt", "sign"]}
        return {"detail": "rsa2048, extractable and sensitive: %s" % ", ".join(pol["access"])}

    def probe_extractable(self):
        """Evidence: pkcs11-tool asks the module for an extractable EC key (an independent client)."""
        r = self.m.p11("--keypairgen", "--key-type", "EC:prime256v1", "--extractable", "--label", "mx-probe",
                       "--id", "eeee", token=self.main, check_ok=False)
        if r.returncode == 0:
            for t in ("privkey", "pubkey"):
                self.m.p11("--delete-object", "--type", t, "--id", "eeee", token=self.main, check_ok=False)
            objs = [o for o in self.m.p11_objects(self.main) if o["id"] == "eeee"]
            acc = objs[0]["access"] if objs else set()
            return "pkcs11-tool --extractable: key made, access %s" % ", ".join(sorted(acc))
        return "pkcs11-tool --keypairgen --extractable: %s" % first_line(
            [l for l in r.stderr.splitlines() if "CKR_" in l][-1] if "CKR_" in r.stderr else r.stderr)

    def csr(self):
        check(self.keys, "no key to make a request with (every keygen failed)")
        done = []
        for alg, k in sorted(self.keys.items()):
            out = self.file("csr-%s.pem" % alg)
            subject = "/CN=Matrix %s/O=tokenprov matrix" % alg
            self.m.tpj("csr", *self.pin(), "--key", "id:" + k["id"], "--subject", subject, "--out", out)
            self.m.sh(["openssl", "req", "-in", out, "-noout", "-verify"])
            got = self.m.sh(["openssl", "req", "-in", out, "-noout", "-pubkey"]).stdout
            self.check_same_public_key(k["id"], got, "the CSR of " + alg)
            self.csrs[alg] = out
            done.append(alg)
        return {"detail": "signature verified by openssl, public key = token's: %s" % ", ".join(done)}

    def check_same_public_key(self, key_id, pem, what):
        """PEM (SubjectPublicKeyInfo) is the token's public key KEY_ID, as pkcs11-tool reads it.
        Where pkcs11-tool can't make a key of the object (NSS's EC keys), the EC point it lists."""
        want = self.token_public_key(key_id, check_ok=False)
        if want is not None:
            check(normalize_pem(pem) == normalize_pem(want), "%s carries another public key" % what)
            return
        objs = [o for o in self.m.p11_objects(self.main) if o["id"] == key_id and o["class"] == "public-key"]
        check(objs and objs[0].get("ec_point"), "pkcs11-tool can read neither the public key %s nor its point" % key_id)
        der = self.m.sh(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pem.encode(), text=False).stdout
        # P-256 / P-384 / Ed25519 SubjectPublicKeyInfo
        point = (der[-65:] if len(der) == 91 else der[-32:] if len(der) == 44 else der[-97:]).hex()
        check(point in objs[0]["ec_point"], "%s: public point %s not in the token's CKA_EC_POINT %s" % (
            what, point[:20], objs[0]["ec_point"][:24]))

    def token_public_key(self, key_id, check_ok=True):
        der = self.file("pub-%s.der" % key_id)
        r = self.m.p11("--read-object", "--type", "pubkey", "--id", key_id, "--output-file", der, token=self.main,
                       check_ok=check_ok)
        if r.returncode != 0:
            return None
        # pkcs11-tool 0.23 writes an Ed25519 key as its raw point, which openssl does not read.
        r = subprocess.run(["openssl", "pkey", "-pubin", "-inform", "DER", "-in", der, "-pubout"],
                           capture_output=True, text=True)
        return r.stdout if r.returncode == 0 else None

    def pickup(self):
        algs = [a for a in sorted(self.csrs) if a.startswith("rsa")][:1] + \
               [a for a in sorted(self.csrs) if not a.startswith("rsa") and a != "export"][:1]
        check(algs, "no CSR to have signed")
        ca = self.get_ca()
        for alg in algs:
            k = self.keys[alg]
            leaf = ca.issue(self.csrs[alg], self.file("cert-%s.pem" % alg))
            chain = self.chain_file(leaf, "chain-%s.pem" % alg)
            self.m.tpj("pickup", *self.pin(), "--cert", chain)
            objs = self.m.token(self.main)["objects"]
            leafs = [o for o in objs if o["class"] == "certificate" and o["id"] == k["id"]]
            check(len(leafs) == 1 and not leafs[0]["authority"] and leafs[0]["label"] == k["label"],
                  "the leaf of %s is not under the key's id and label: %s" % (alg, leafs))
            k["cert"] = leaf
        auth = [o for o in self.m.token(self.main)["objects"] if o["class"] == "certificate" and o["authority"]]
        check(len(auth) == 2, "wanted root and issuing CA once each, got %s" % [a["subject"] for a in auth])
        certs = [o for o in self.m.p11_objects(self.main) if o["class"] == "certificate"]
        check(len(certs) == len(algs) + 2, "pkcs11-tool sees %d certificates" % len(certs))
        before = self.m.token(self.main)
        self.m.tpj("pickup", *self.pin(), "--cert", chain)
        check(self.m.token(self.main) == before, "a second pickup of the same chain changed the token")
        return {"detail": "leaf under its key's CKA_ID and label, 2 CA certificates; again: no change (%s)" %
                ", ".join(algs)}

    def pin_change(self):
        self.m.tpj("pin", "change", *self.pin(), "--new-pin-source", "env:TP_NEW_PIN")
        self.m.p11("--list-objects", token=self.main, pin_var="TP_NEW_PIN")
        self.m.tpj("pin", "change", "--token", self.main, "--pin-source", "env:TP_NEW_PIN",
                   "--new-pin-source", "env:TP_PIN")
        self.m.p11("--list-objects", token=self.main)
        return {"detail": "changed and back; pkcs11-tool logs in with each new PIN"}

    def pin_unblock(self):
        args = ["pin", "unblock", "--token", self.main, "--so-pin-source", "env:TP_SO_PIN",
                "--new-pin-source", "env:TP_NEW_PIN", "--json"]
        if not self.lim["has_so"]:
            before = self.m.snapshot(self.main)
            r = self.m.tp(*args, env=self.so_pin_env())
            return self.m.refused(r, (6,), ["SO", "security officer", "CKU_SO"], self.main, before,
                                  limit="no security officer (C_Login as CKU_SO is refused)",
                                  evidence=self.probe_so_login())
        self.m.tpj(*args[:-1])
        self.m.p11("--list-objects", token=self.main, pin_var="TP_NEW_PIN")
        self.m.tpj("pin", "change", "--token", self.main, "--pin-source", "env:TP_NEW_PIN",
                   "--new-pin-source", "env:TP_PIN")
        return {"detail": "new user PIN set with the SO PIN; pkcs11-tool logs in with it"}

    def probe_so_login(self):
        r = self.m.p11("--login", "--login-type", "so", "--so-pin", "env:TP_SO_PIN", "-O", token=self.main,
                       login=False, check_ok=False, env=self.so_pin_env())
        ckr = [l for l in (r.stdout + r.stderr).splitlines() if "CKR_" in l]
        return "pkcs11-tool --login-type so: " + (first_line(ckr[-1]) if ckr else "exit %d" % r.returncode)

    def wrong_pin(self):
        before = without_pin_flags(self.m.snapshot(self.main))
        counter = self.tpm_counter()
        r = self.m.tp("list", "--token", self.main, "--pin-source", "env:TP_WRONG_PIN", "--json")
        check(r.returncode == 3, "a wrong PIN: wanted exit 3, got " + describe(r))
        check("PIN" in r.stderr, "the message does not say PIN: " + first_line(r.stderr))
        after = without_pin_flags(self.m.snapshot(self.main))
        check(after == before, "a wrong PIN changed the token (PIN counter flags aside)")
        detail = "exit 3: " + first_line(r.stderr)
        if counter is not None:
            now = self.tpm_counter()
            check(now == counter + 1, "TPM lockout counter %d -> %d: one wrong PIN must cost one try" % (counter, now))
            detail += "; TPM lockout counter +1 (not retried)"
        return {"detail": detail}

    def tpm_counter(self):
        if self.env.name != "tpm2":
            return None
        import envs
        return envs.tpm2_lockout_counter(self.env)


def without_pin_flags(snap):
    """A snapshot without the PIN counter flags, which a wrong PIN rightly changes."""
    snap = json.loads(json.dumps(snap))
    for t in snap["tokens"] + ([snap["selected"]] if "selected" in snap else []):
        t.pop("flags", None)
    return snap


def normalize_pem(text):
    return "".join(l.strip() for l in text.splitlines() if l.strip() and not l.startswith("-----"))
