# SPDX-License-Identifier: Apache-2.0
"""The matrix's multi-step rows: provision, fleet, PIN isolation, backup, restore, re-init."""

import json
import os
import subprocess

from matrix import check, describe, first_line, BACKUP_PASSWORD, SRC
from cells import PROFILES, NSS_PROFILE, MAIN_LABEL

SUBJECT = "/CN=Pat Matrix/O=tokenprov matrix"


def profile_args(c):
    """--profile (and --module where the profile names another module than the env's)."""
    name = PROFILES.get(c.env.name)
    if name is None:
        path = c.file("nss-matrix.toml")
        with open(path, "w") as f:
            f.write(NSS_PROFILE)
        return ["--profile", path], path
    path = os.path.join(SRC, "tokens", name + ".toml")
    args = ["--profile", name]
    module = None
    for line in open(path):
        if line.startswith("module"):
            module = line.split("=", 1)[1].strip().strip('"')
    if module != c.env.module:
        args += ["--module", c.env.module]
    return args, path


def profile_key(path):
    """(algorithm, usage, exportable) of the profile's first key, read from its TOML."""
    import tomllib
    with open(path, "rb") as f:
        doc = tomllib.load(f)
    k = doc["keys"][0]
    alg = k["algorithm"]
    usage = k.get("usage") or (["sign", "decrypt"] if alg.startswith("rsa") else ["sign"])
    return alg, sorted(usage), bool(k.get("exportable", False))


def provision(c):
    pargs, path = profile_args(c)
    alg, usage, exportable = profile_key(path)
    csrs, certs = c.file("prov-csrs"), c.file("prov-certs")
    os.makedirs(csrs, exist_ok=True)
    os.makedirs(certs, exist_ok=True)
    base = ["provision"] + pargs + ["--subject", SUBJECT, "--pin-source", "env:TP_PIN"]
    blank = c.lim["blank_grows"]
    if blank:
        base += ["--so-pin-source", "env:TP_SO_PIN"]
    if not blank:
        base += ["--token", c.main]
    if alg not in c.lim["algorithms"]:
        raise AssertionError("profile %s asks for %s, which the module can't make" % (path, alg))
    # 1: the key and a request (a blank token is initialized first).
    r = c.m.tp(*base, "--csr-dir", csrs, "--json", module=False)
    check(r.returncode == 0, "provision --csr-dir: " + describe(r))
    doc = json.loads(r.stdout)
    label = doc["token"]["label"]
    k = doc["keys"][0]
    if blank:
        c.login_tokens.append(label)
    check(k["certificate"] == "awaiting-certificate" and os.path.exists(k["csr_file"]) and not doc["complete"],
          "first run: %s" % doc)
    check(doc["initialized"] == blank, "initialized=%s on a %s token" % (doc["initialized"],
                                                                        "blank" if blank else "ready"))
    # 2: the CA answers; the certificate and chain are picked up.
    c.get_ca().issue(k["csr_file"], c.file("prov-leaf.pem"))
    with open(os.path.join(certs, "pat.pem"), "w") as f:
        f.write(open(c.file("prov-leaf.pem")).read() + c.get_ca().chain_pem())
    doc = c.m.tpj(*base, "--cert-dir", certs, module=False)
    k2 = doc["keys"][0]
    check(doc["complete"] and k2["certificate"] == "picked-up" and k2["key"] == "present", "second run: %s" % doc)
    # 3: again: nothing changes.
    before = c.m.snapshot(label)
    doc = c.m.tpj(*base, "--cert-dir", certs, module=False)
    k3 = doc["keys"][0]
    check(doc["complete"] and not doc["initialized"] and k3["key"] == "present" and k3["certificate"] == "present",
          "third run: %s" % doc)
    check(c.m.snapshot(label) == before, "a repeated provision changed the token")
    key = [o for o in before["selected"]["objects"] if o["class"] == "private-key" and o["label"] == k["label"]]
    check(len(key) == 1, "provisioned key not listed: %s" % before["selected"]["objects"])
    pol = c.check_policy(label, key[0]["id"], usage, exportable)
    return {"detail": "profile %s on %s token '%s': %s %s; request, pickup, repeat: no change; %s" % (
        os.path.basename(path), "a blank" if blank else "the", label, alg, ",".join(usage), ", ".join(pol["access"]))}


def fleet(c):
    pargs, path = profile_args(c)
    csrs = c.file("fleet-csrs")
    os.makedirs(csrs, exist_ok=True)
    manifest = c.file("fleet.csv")
    with open(manifest, "w") as f:
        f.write("token,subject,user\nblank,/CN=Fleet One/O=tokenprov matrix,fone\n"
                "blank,/CN=Fleet Two/O=tokenprov matrix,ftwo\n")
    args = ["fleet"] + pargs + ["--manifest", manifest, "--pin-source", "env:TP_PIN", "--so-pin-source",
                                "env:TP_SO_PIN", "--csr-dir", csrs, "--state", c.file("fleet-state.jsonl")]
    before = c.m.snapshot()
    r = c.m.tp(*args, module=False, env=c.so_pin_env())
    lines = [json.loads(l) for l in r.stdout.splitlines() if l.strip().startswith("{")]
    if not c.lim["blank_grows"]:
        check(r.returncode == 10, "fleet with no blank token: wanted exit 10, got " + describe(r))
        check(len(lines) == 2 and all(not l["ok"] and l["error"]["code"] == 6 for l in lines),
              "each blank row must fail with code 6: %s" % lines)
        check(all("blank" in l["error"]["message"].lower() for l in lines), "rows don't say blank: %s" % lines)
        check(c.m.snapshot() == before, "the failed fleet run changed the tokens")
        return {"outcome": "limit", "exit": 10, "message": lines[0]["error"]["message"][:300],
                "limit": "no blank token to hand out: one %s, no empty slot appears" % (
                    "database" if c.env.name == "nss" else "token"),
                "evidence": "C_GetSlotList: %d slot(s), none with an uninitialized token" % len(before["tokens"])}
    check(r.returncode == 0, "fleet: %s; failed rows: %s" % (describe(r), "; ".join(
        "row %s: %s" % (l.get("row"), l["error"].get("message")) for l in lines if not l.get("ok") and l.get("error"))))
    check(len(lines) == 2 and all(l["ok"] and l["initialized"] for l in lines), "fleet lines: %s" % lines)
    labels = [l["label"] for l in lines]
    check(len(set(labels)) == 2, "two rows, one label: %s" % labels)
    toks = {t["label"]: t for t in c.m.tokens()}
    check(all(l in toks for l in labels), "fleet tokens not listed: %s" % sorted(toks))
    check(len({toks[l]["slot_id"] for l in labels}) == 2, "two rows took one slot")
    for l in labels:
        objs = c.m.p11_objects(l)
        check(any(o["class"] == "private-key" for o in objs), "no key on fleet token %s (pkcs11-tool)" % l)
        c.login_tokens.append(l)
    check(len(os.listdir(csrs)) == 2, "wanted two requests: %s" % os.listdir(csrs))
    return {"detail": "two blank rows -> tokens %s in slots %s, a key and a request each" % (
        ", ".join(labels), ", ".join(str(toks[l]["slot_id"]) for l in labels))}


def pin_isolation(c):
    """A PIN source without --token: the PIN must reach no token the user did not pick."""
    if c.env.name == "nss":
        # One token needs a login (the database), one needs none (Generic Crypto Services).
        r = c.m.tp("list", "--pin-source", "env:TP_PIN", "--json")
        check(r.returncode in (0, 2), "list --pin-source on NSS: " + describe(r))
        if r.returncode == 0:
            toks = json.loads(r.stdout)["tokens"]
            db = [t for t in toks if t["label"] == c.main]
            check(db and db[0]["objects"], "the database token's objects are not listed: %s" % toks)
        return {"detail": "exit %d; the token without CKF_LOGIN_REQUIRED is not logged into" % r.returncode}
    inited = [t["label"] for t in c.m.tokens() if t["initialized"]]
    if len(inited) < 2:
        return {"outcome": "n/a", "detail": "one token only: there is no unselected token to protect"}
    counter = c.tpm_counter()
    before = c.m.snapshot()
    r = c.m.tp("list", "--pin-source", "env:TP_WRONG_PIN", "--json")
    check(r.returncode in (0, 2), "list --pin-source (wrong PIN) with %d tokens and no --token: wanted exit 2 "
          "(pick a token) or 0 (listed without login), got %s" % (len(inited), describe(r)))
    check(c.m.snapshot() == before, "tokens changed")
    detail = "exit %d with %d initialized tokens: %s" % (r.returncode, len(inited), first_line(r.stderr))
    if counter is not None:
        now = c.tpm_counter()
        check(now == counter, "TPM lockout counter %d -> %d: the PIN went to a token nobody selected" % (counter, now))
        detail += "; TPM lockout counter unchanged"
    return {"detail": detail}


def backup(c):
    if not c.lim["exportable"]:
        k = next(iter(c.keys.values()), None)
        check(k is not None, "no key to try a backup of")
        out = c.file("refused.p12")
        before = c.m.snapshot(c.main)
        r = c.m.tp("backup", *c.pin(), "--key", "id:" + k["id"], "--out", out, "--password-source",
                   "env:TP_BACKUP_PW", "--json")
        res = c.m.refused(r, (4,), ["export", "extractable"], c.main, before,
                          limit="no extractable private keys, so no key leaves the token",
                          evidence="see keygen --exportable")
        check(not os.path.exists(out), "a refused backup left %s" % out)
        return res
    k = c.keys.get("export")
    check(k is not None, "no exportable key (keygen --exportable failed)")
    check("export" in c.csrs, "no request for the exportable key (csr failed)")
    leaf = c.get_ca().issue(c.csrs["export"], c.file("cert-export.pem"))
    c.m.tpj("pickup", *c.pin(), "--cert", c.chain_file(leaf, "chain-export.pem"))
    out = c.file("backup.p12")
    doc = c.m.tpj("backup", *c.pin(), "--key", "id:" + k["id"], "--out", out, "--password-source", "env:TP_BACKUP_PW")
    check(doc.get("ok", True), "backup: %s" % doc)
    env = dict(os.environ, PW=BACKUP_PASSWORD)
    r = subprocess.run(["openssl", "pkcs12", "-in", out, "-passin", "env:PW", "-nodes"], capture_output=True,
                       text=True, env=env)
    check(r.returncode == 0 and "PRIVATE KEY" in r.stdout and r.stdout.count("BEGIN CERTIFICATE") == 3,
          "openssl pkcs12 can't read the backup as key + 3 certificates: %s" % r.stderr[-500:])
    key_pub = c.m.sh(["openssl", "pkey", "-pubout"], input=r.stdout).stdout
    cert_pub = c.m.sh(["openssl", "x509", "-noout", "-pubkey", "-in", leaf]).stdout
    check(key_pub == cert_pub, "the backed-up key is not the certificate's key")
    return {"detail": "PKCS#12 read by openssl: the key of the certificate, and the chain"}


def restore(c):
    """An openssl-made PKCS#12 (independent writer) restored onto the main token."""
    d = c.file("p12")
    os.makedirs(d, exist_ok=True)
    ca = c.get_ca()
    key, csr, leaf, p12 = (os.path.join(d, n) for n in ("key.pem", "req.csr", "leaf.pem", "restore.p12"))
    c.m.sh(["openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
            "-subj", "/CN=Matrix Restore/O=tokenprov matrix"])
    ca.issue(csr, leaf)
    chain = os.path.join(d, "chain.pem")
    with open(chain, "w") as f:
        f.write(ca.chain_pem())
    env = dict(os.environ, PW=BACKUP_PASSWORD)
    c.m.sh(["openssl", "pkcs12", "-export", "-inkey", key, "-in", leaf, "-certfile", chain, "-name",
            "matrix-restore", "-out", p12, "-passout", "env:PW"], env=env)
    args = ["restore", *c.pin(), "--in", p12, "--password-source", "env:TP_BACKUP_PW", "--label", "r-key", "--json"]
    if not c.lim["private_key_import"]:
        before = c.m.snapshot(c.main)
        r = c.m.tp(*args)
        return c.m.refused(r, (6,), ["import", "imported"], c.main, before,
                           limit="no private-key import (C_UnwrapKey / C_CreateObject of a private key)",
                           evidence=probe_import(c, key))
    c.m.tpj(*args[:-1])
    objs = c.m.token(c.main)["objects"]
    keys = [o for o in objs if o["class"] == "private-key" and o["label"] == "r-key"]
    check(len(keys) == 1, "restored key not listed: %s" % [o["label"] for o in objs])
    kid = keys[0]["id"]
    check(any(o["class"] == "certificate" and o["id"] == kid and not o["authority"] for o in objs),
          "the restored certificate is not under the key's id")
    pol = c.check_policy(c.main, kid, ["decrypt", "sign"], exportable=False, local=False)
    want = c.m.sh(["openssl", "pkey", "-in", key, "-pubout"]).stdout
    c.check_same_public_key(kid, want, "the restored key")
    return {"detail": "openssl's PKCS#12 -> key (%s) and certificate under one id" % ", ".join(pol["access"])}


def probe_import(c, key_pem):
    der = c.file("probe-key.der")
    c.m.sh(["openssl", "pkcs8", "-topk8", "-nocrypt", "-in", key_pem, "-outform", "DER", "-out", der])
    r = c.m.p11("--write-object", der, "--type", "privkey", "--label", "mx-probe", "--id", "eeef",
                token=c.main, check_ok=False)
    if r.returncode == 0:
        c.m.p11("--delete-object", "--type", "privkey", "--id", "eeef", token=c.main, check_ok=False)
        return "pkcs11-tool --write-object privkey: accepted"
    ckr = [l for l in (r.stdout + r.stderr).splitlines() if "CKR_" in l]
    return "pkcs11-tool --write-object privkey (C_CreateObject): " + (first_line(ckr[-1]) if ckr else
                                                                        "exit %d" % r.returncode)


def reinit(c):
    """init --force on the main token (last: it erases it)."""
    args = ["init", "--token", c.main, "--label", "mx-again", "--force", "--so-pin-source", "env:TP_SO_PIN",
            "--pin-source", "env:TP_PIN", "--json"]
    if not c.lim["reinit"]:
        before = c.m.snapshot(c.main)
        r = c.m.tp(*args, env=c.so_pin_env())
        if c.env.name == "nss":
            return c.m.refused(r, (3, 6), ["SO PIN", "security officer", "no SO", "database"], c.main, before,
                               limit="no SO: C_InitToken would wipe the whole database with an empty SO PIN")
        return c.m.refused(r, (6,), ["already initialized", "initialized already", "re-initial", "reinitial"],
                           c.main, before,
                           limit="an initialized token can't be initialized again",
                           evidence=probe_reinit(c))
    r = c.m.tp(*args)
    check(r.returncode == 0, "init --force: " + describe(r))
    t = c.m.token("mx-again")
    check(t["initialized"] and not t["objects"], "after init --force: %s" % t)
    c.m.p11("--list-objects", token="mx-again")
    return {"detail": "erased and initialized again as 'mx-again'; pkcs11-tool logs in"}


def probe_reinit(c):
    r = c.m.p11("--init-token", "--label", c.main, "--so-pin", "env:TP_SO_PIN", token=c.main, login=False,
                check_ok=False)
    ckr = [l for l in (r.stdout + r.stderr).splitlines() if "CKR_" in l]
    if r.returncode == 0:
        raise AssertionError("pkcs11-tool re-initialized the token: the module fact 'reinit' is wrong")
    return "pkcs11-tool --init-token on it: " + (first_line(ckr[-1]) if ckr else "exit %d" % r.returncode)


FLOW = [("provision", provision), ("fleet", fleet), ("pin isolation", pin_isolation), ("backup", backup),
        ("restore", restore), ("init --force", reinit)]
