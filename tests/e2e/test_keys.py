# SPDX-License-Identifier: Apache-2.0
"""init, pin change/unblock, keygen and csr through the CLI, read back by
pkcs11-tool and openssl."""
import json
import re

from harness import Sandbox, main, expect, sh, USER_PIN, SO_PIN


def pkcs11_tool_objects(sb, label):
    """Parses `pkcs11-tool -O` into {(type, id): text block}."""
    r = sb.pkcs11_tool("--token-label", label, "-O")
    blocks = {}
    cur = None
    for line in r.stdout.splitlines():
        m = re.match(r"^(Private Key|Public Key|Certificate) Object", line)
        if m:
            cur = [m.group(1), None, []]
            blocks.setdefault("_list", []).append(cur)
        elif cur is not None:
            cur[2].append(line)
            mm = re.match(r"^\s*ID:\s*(\S+)", line)
            if mm:
                cur[1] = mm.group(1)
    return {(b[0], b[1]): "\n".join(b[2]) for b in blocks.get("_list", [])}


def test_init_blank_token_then_refuse_reinit():
    with Sandbox() as sb:
        r = sb.tp("init", "--label", "fresh", "--so-pin-source", "env:TP_SO_PIN", "--pin-source", "env:TP_PIN",
                  "--json", check=0)
        doc = json.loads(r.stdout)
        expect(doc["ok"] and doc["token"]["label"] == "fresh", doc)
        serial = doc["token"]["serial"]
        sb.tp("keygen", "--token", "fresh", "--pin-source", "env:TP_PIN", "--algorithm", "ec-p256",
              "--label", "keep", check=0)
        before = sb.objects("fresh")
        r = sb.tp("init", "--token", "fresh", "--label", "again", "--so-pin-source", "env:TP_SO_PIN",
                  "--pin-source", "env:TP_PIN")
        expect(r.returncode == 8 and "--force" in r.stderr, (r.returncode, r.stderr))
        expect(sb.objects("fresh") == before, "token changed by a refused init")
        # With --force it is erased and re-labelled.
        sb.tp("init", "--token", "serial:" + serial, "--label", "again", "--force", "--so-pin-source",
              "env:TP_SO_PIN", "--pin-source", "env:TP_PIN", check=0)
        expect(sb.objects("again") == [], "re-init did not erase")
        # A wrong SO PIN on re-init: exit 3, token unchanged.
        r = sb.tp("init", "--token", "again", "--label", "x", "--force", "--so-pin-source", "env:BAD",
                  "--pin-source", "env:TP_PIN", env={"BAD": "00000000"})
        expect(r.returncode == 3, (r.returncode, r.stderr))
        expect(any(t["label"] == "again" for t in sb.list_json()["tokens"]), "token label changed")


def test_pin_too_short_and_wrong_pin_once():
    with Sandbox() as sb:
        r = sb.tp("init", "--label", "short", "--so-pin-source", "env:TP_SO_PIN", "--pin-source", "env:P",
                  env={"P": "12"})
        expect(r.returncode == 3 and "too short" in r.stderr, (r.returncode, r.stderr))
        sb.create_token("wrong")
        r = sb.tp("keygen", "--token", "wrong", "--pin-source", "env:P", "--algorithm", "ec-p256",
                  "--label", "x", env={"P": "999999"})
        expect(r.returncode == 3, (r.returncode, r.stderr))
        expect("tries" in r.stderr or "token reports" in r.stderr, r.stderr)
        expect(sb.objects("wrong") == [], "a key was generated after a wrong PIN")
        # Exactly one C_Login was made: the call log of the fault shim (no fault injected) shows it.
        from faultp11 import shim_path
        log = sb.path("calls.log")
        r = sb.tp("keygen", "--module", shim_path(), "--token", "wrong", "--pin-source", "env:P", "--algorithm",
                  "ec-p256", "--label", "x", env={"P": "999999", "FAULTP11_LOG": log})
        expect(r.returncode == 3, (r.returncode, r.stderr))
        logins = [l for l in open(log).read().splitlines() if " C_Login " in l]
        expect(len(logins) == 1, logins)


def test_pin_change_and_unblock():
    with Sandbox() as sb:
        sb.create_token("pins")
        sb.tp("pin", "change", "--token", "pins", "--pin-source", "env:TP_PIN", "--new-pin-source", "env:NEW",
              env={"NEW": "654321"}, check=0)
        r = sb.tp("list", "--token", "pins", "--pin-source", "env:TP_PIN")
        expect(r.returncode == 3, "old PIN still works")
        sb.tp("list", "--token", "pins", "--pin-source", "env:NEW", env={"NEW": "654321"}, check=0)
        sb.tp("pin", "unblock", "--token", "pins", "--so-pin-source", "env:TP_SO_PIN", "--new-pin-source",
              "env:TP_PIN", check=0)
        sb.tp("list", "--token", "pins", "--pin-source", "env:TP_PIN", check=0)


def test_keygen_policy_read_by_pkcs11_tool():
    with Sandbox() as sb:
        sb.create_token("pol")
        ids = {}
        for alg, exportable in (("rsa2048", True), ("rsa3072", False), ("ec-p256", False), ("ec-p384", True),
                                ("ed25519", False)):
            args = ["keygen", "--token", "pol", "--pin-source", "env:TP_PIN", "--algorithm", alg,
                    "--label", "key-" + alg]
            if exportable:
                args.append("--exportable")
            doc = sb.tpj(*args)
            expect(doc["ok"] and len(doc["key"]["id"]) == 40, doc)
            ids[alg] = (doc["key"]["id"], exportable)
        objs = pkcs11_tool_objects(sb, "pol")
        for alg, (kid, exportable) in ids.items():
            priv = objs.get(("Private Key", kid))
            expect(priv is not None, "pkcs11-tool does not show key %s (%s): %s" % (alg, kid, objs.keys()))
            expect(("Public Key", kid) in objs, "no public key for " + alg)
            expect("sensitive" in priv, priv)
            expect(("never extractable" in priv) != exportable, (alg, priv))
            expect(("extractable" in priv.replace("never extractable", "")) == exportable, (alg, priv))
            expect("label:      key-" + alg in priv or "key-" + alg in priv, priv)
        # list --json agrees.
        for o in sb.objects("pol"):
            if o["class"] == "private-key":
                alg = o["label"][4:]
                expect(o["extractable"] == ids[alg][1] and o["sensitive"] and o["local"], o)
                expect(o["id"] == ids[alg][0], o)
        # The same label again: exit 8, nothing added.
        n = len(sb.objects("pol"))
        r = sb.tp("keygen", "--token", "pol", "--pin-source", "env:TP_PIN", "--algorithm", "ec-p256",
                  "--label", "key-ec-p256")
        expect(r.returncode == 8, (r.returncode, r.stderr))
        r = sb.tp("keygen", "--token", "pol", "--pin-source", "env:TP_PIN", "--algorithm", "ec-p256",
                  "--label", "other", "--id", ids["rsa2048"][0])
        expect(r.returncode == 8, (r.returncode, r.stderr))
        expect(len(sb.objects("pol")) == n, "objects added by a refused keygen")
        r = sb.tp("keygen", "--token", "pol", "--pin-source", "env:TP_PIN", "--algorithm", "rsa1024",
                  "--label", "bad")
        expect(r.returncode == 2, (r.returncode, r.stderr))


def test_csr_for_every_algorithm_verifies():
    with Sandbox() as sb:
        sb.create_token("csr")
        sb.create_token("ptok")  # libp11 cannot enumerate a token that holds an Ed25519 key
        for alg in ("rsa2048", "ec-p256", "ec-p384", "ed25519"):
            sb.tp("keygen", "--token", "ptok" if alg == "ec-p384" else "csr", "--pin-source", "env:TP_PIN",
                  "--algorithm", alg, "--label", "k-" + alg, check=0)
        for alg in ("rsa2048", "ec-p256", "ec-p384", "ed25519"):
            out = sb.path("req-%s.pem" % alg)
            tok = "ptok" if alg == "ec-p384" else "csr"
            sb.tp("csr", "--token", tok, "--pin-source", "env:TP_PIN", "--key", "k-" + alg, "--subject",
                  "/CN=User %s/O=Example" % alg, "--san", "email:user@example.org", "--san", "upn:user@EXAMPLE",
                  "--out", out, check=0)
            r = sh(["openssl", "req", "-in", out, "-noout", "-verify", "-text"])
            expect("User " + alg in r.stdout and "user@example.org" in r.stdout, r.stdout)
            # The request's public key is the token's (pkcs11-tool reads it independently).
            pub = sh(["openssl", "req", "-in", out, "-noout", "-pubkey"]).stdout
            der = sb.path("tok-%s.der" % alg)
            kid = [o["id"] for o in sb.objects(tok) if o["label"] == "k-" + alg and o["class"] == "public-key"][0]
            if alg == "ec-p384":
                # pkcs11-tool (OpenSC 0.23) cannot read P-384 public keys; the libp11 engine can.
                tokpub = sh(["openssl", "pkey", "-engine", "pkcs11", "-inform", "engine", "-pubin", "-pubout",
                             "-in", "pkcs11:token=ptok;type=public;id=" + "".join("%" + kid[i:i + 2]
                                                                                  for i in range(0, len(kid), 2))],
                            env=sb.env).stdout
            elif alg == "ed25519":
                # pkcs11-tool (OpenSC 0.23) writes an Ed25519 public key as PEM.
                sb.pkcs11_tool("--token-label", "csr", "--read-object", "--type", "pubkey", "--id", kid, "-o", der)
                tokpub = open(der).read()
            else:
                sb.pkcs11_tool("--token-label", "csr", "--read-object", "--type", "pubkey", "--id", kid, "-o", der)
                tokpub = sh(["openssl", "pkey", "-pubin", "-inform", "DER", "-in", der]).stdout
            expect(tokpub.strip() == pub.strip(), (alg, tokpub, pub))
        # An existing output file is not replaced without --force.
        out = sb.path("req-rsa2048.pem")
        r = sb.tp("csr", "--token", "csr", "--pin-source", "env:TP_PIN", "--key", "k-rsa2048", "--subject", "/CN=x",
                  "--out", out)
        expect(r.returncode == 8, (r.returncode, r.stderr))
        # CSR to stdout.
        r = sb.tp("csr", "--token", "csr", "--pin-source", "env:TP_PIN", "--key", "k-ec-p256", "--subject", "/CN=y",
                  check=0)
        expect(r.stdout.startswith("-----BEGIN CERTIFICATE REQUEST-----"), r.stdout)
        r = sb.tp("csr", "--token", "csr", "--pin-source", "env:TP_PIN", "--key", "nokey", "--subject", "/CN=y")
        expect(r.returncode == 5 and "nokey" in r.stderr, (r.returncode, r.stderr))
        r = sb.tp("csr", "--token", "csr", "--pin-source", "env:TP_PIN", "--key", "k-ec-p256", "--subject", "CN")
        expect(r.returncode == 2, (r.returncode, r.stderr))


if __name__ == "__main__":
    main([test_init_blank_token_then_refuse_reinit, test_pin_too_short_and_wrong_pin_once,
          test_pin_change_and_unblock, test_keygen_policy_read_by_pkcs11_tool, test_csr_for_every_algorithm_verifies])
