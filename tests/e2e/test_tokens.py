# SPDX-License-Identifier: Apache-2.0
"""Token choice on modules that are not kind: a damaged token among good ones,
several tokens that need a login, tokens that share a serial (tpm2-pkcs11 and
NSS give every token the same one). PKCS#11 calls are counted with OpenSC's
pkcs11-spy, an independent wrapper around SoftHSM2."""
from harness import Sandbox, TestCA, main, expect, SOFTHSM_MODULE
from faultp11 import read_log, run_with_fault, shim_path
import glob
import json
import os

SPY = "/usr/lib/x86_64-linux-gnu/pkcs11-spy.so"


def token_dir(sb, serial):
    """The SoftHSM2 folder of the token with SERIAL (the folder names are UUIDs)."""
    for d in glob.glob(os.path.join(sb.tokens, "*")):
        data = open(os.path.join(d, "token.object"), "rb").read()
        if serial.encode() in data:
            return d
    raise AssertionError("no folder holds the token with serial %s" % serial)


def spied(sb, log):
    return {"TOKENPROV_MODULE": SPY, "PKCS11SPY": SOFTHSM_MODULE, "PKCS11SPY_OUTPUT": log}


def calls(log, name):
    with open(log) as f:
        return sum(1 for line in f if (" %s\n" % name) in line or line.rstrip().endswith(name))


def test_damaged_token_does_not_hide_the_others():
    with Sandbox() as sb:
        sb.create_token("good")
        bad = sb.create_token("bad")
        with open(os.path.join(token_dir(sb, bad), "token.object"), "r+b") as f:
            f.truncate(10)
        r = sb.tp("list", "--json", check=0)
        doc = json.loads(r.stdout)
        labels = [t["label"] for t in doc["tokens"]]
        expect("good" in labels and "bad" not in labels, doc)
        expect(len(doc.get("unreadable_slots", [])) == 1, doc)
        expect(doc["unreadable_slots"][0]["error"].startswith("CKR_"), doc)
        r = sb.tp("list", check=0)
        expect("cannot read its token" in r.stdout, r.stdout)
        objs = sb.objects("good")
        expect(objs == [], objs)
        sb.tp("keygen", "--token", "good", "--pin-source", "env:TP_PIN", "--algorithm", "ec-p256",
              "--label", "k", check=0)
        # Only a command aimed at the damaged token fails, and says why.
        r = sb.tp("list", "--token", "bad", check=6)
        expect("could not read the token in slot" in r.stderr, r.stderr)


def test_pin_goes_only_to_the_selected_token():
    with Sandbox() as sb:
        sb.create_token("alice")
        sb.create_token("bob", pin="654321")
        log = sb.path("spy.log")
        r = sb.tp("list", "--pin-source", "env:TP_PIN", env=spied(sb, log), check=2)
        expect("alice" in r.stderr and "bob" in r.stderr and "slot-id=" in r.stderr, r.stderr)
        expect(calls(log, "C_Login") == 0, open(log).read()[-2000:])
        os.unlink(log)
        sb.tp("list", "--token", "alice", "--pin-source", "env:TP_PIN", env=spied(sb, log), check=0)
        expect(calls(log, "C_Login") == 1, "one login, on alice")
        # Without a PIN source every token is listed, and none is logged into.
        os.unlink(log)
        doc = json.loads(sb.tp("list", "--json", env=spied(sb, log), check=0).stdout)
        expect({"alice", "bob"} <= {t["label"] for t in doc["tokens"]}, doc)
        expect(calls(log, "C_Login") == 0, "no login without a PIN source")


def test_tokens_sharing_a_serial():
    """tpm2-pkcs11 and NSS give every token the serial 0000000000000000; the faultp11 shim makes
    SoftHSM2's tokens answer the same (FAULTP11_SERIAL), with the real tokens behind it."""
    with Sandbox() as sb:
        sb.create_token("twin")
        sb.create_token("twin")
        shared = "0000000000000000"
        env = {"TOKENPROV_MODULE": shim_path(), "FAULTP11_SERIAL": shared}
        doc = json.loads(sb.tp("list", "--json", env=env, check=0).stdout)
        twins = [t for t in doc["tokens"] if t["label"] == "twin"]
        expect(len(twins) == 2 and all(t["serial"] == shared for t in twins), doc)
        expect(twins[0]["slot_id"] != twins[1]["slot_id"], twins)
        # A serial (or the label) alone names neither: exit 2 with URIs that do.
        r = sb.tp("list", "--token", "serial:" + shared, env=env, check=2)
        # Both twins and the free slot (which reports the same serial through the shim).
        expect("3 tokens match" in r.stderr and r.stderr.count("slot-id=") == 3, r.stderr)
        sb.tp("list", "--token", "twin", env=env, check=2)
        # The URI with the slot names one; a key made there is on that one only.
        one = "pkcs11:serial=%s;slot-id=%d" % (shared, twins[0]["slot_id"])
        other = "pkcs11:serial=%s;slot-id=%d" % (shared, twins[1]["slot_id"])
        sb.tp("keygen", "--token", one, "--pin-source", "env:TP_PIN", "--algorithm", "ec-p256",
              "--label", "only-here", env=env, check=0)

        def objects(uri):
            d = json.loads(sb.tp("list", "--token", uri, "--pin-source", "env:TP_PIN", "--json", env=env,
                                 check=0).stdout)
            return [o["label"] for o in d["tokens"][0]["objects"]]
        expect(objects(one) == ["only-here", "only-here"], objects(one))
        expect(objects(other) == [], objects(other))


def test_fleet_blank_rows_on_tokens_sharing_a_serial():
    """Each blank row gets its own blank token although every token shows one serial (before,
    the second row found 'no blank token left'); a rerun finds each row's token again."""
    with Sandbox() as sb:
        env = {"TOKENPROV_MODULE": shim_path(), "FAULTP11_SERIAL": "0000000000000000"}
        prof = sb.write("p.toml", 'description = "twins"\ntoken_label = "tw-{user}"\n[pin]\nmin_length = 4\n'
                        '[[keys]]\nrole = "sig"\nalgorithm = "ec-p256"\nusage = ["sign"]\n')
        man = sb.write("m.csv", "token,subject\nblank,/CN=ann\nblank,/CN=bob\n")
        csrs = sb.path("csrs")
        os.makedirs(csrs)
        args = ["fleet", "--profile", prof, "--manifest", man, "--state", sb.path("state.jsonl"),
                "--pin-source", "env:TP_PIN", "--so-pin-source", "env:TP_SO_PIN", "--csr-dir", csrs, "--json"]
        r = sb.tp(*args, env=env)
        expect(r.returncode == 0, r.stdout + r.stderr)
        doc = json.loads(sb.tp("list", "--json", env=env, check=0).stdout)
        labels = sorted(t["label"] for t in doc["tokens"] if t["initialized"])
        expect(labels == ["tw-ann", "tw-bob"], doc)
        # Request files are named by token label where the serial tells tokens apart no more.
        expect(sorted(os.listdir(csrs)) == ["tw-ann-sig.csr.pem", "tw-bob-sig.csr.pem"], os.listdir(csrs))
        r = sb.tp(*args, env=env)
        expect(r.returncode == 0, r.stdout + r.stderr)
        doc = json.loads(sb.tp("list", "--json", env=env, check=0).stdout)
        expect(sorted(t["label"] for t in doc["tokens"] if t["initialized"]) == labels, doc)


def test_certificate_written_without_an_attribute_the_module_refuses():
    """opencryptoki 3.8 answers CKR_ATTRIBUTE_TYPE_INVALID to CKA_CERTIFICATE_CATEGORY: the shim
    gives that answer to the first C_CreateObject; the certificates are written without it,
    and no key-policy attribute is ever dropped this way (only certificates carry optional ones)."""
    with Sandbox() as sb:
        sb.create_token("oc")
        doc = sb.tpj("keygen", "--token", "oc", "--pin-source", "env:TP_PIN", "--algorithm", "ec-p256",
                     "--label", "k")
        csr = sb.path("k.csr")
        sb.tp("csr", "--token", "oc", "--pin-source", "env:TP_PIN", "--key", "k", "--subject", "/CN=k",
              "--out", csr, check=0)
        ca = TestCA(sb)
        leaf = ca.issue(csr, sb.path("k.pem"))
        bundle = sb.write("bundle.pem", open(leaf).read() + ca.chain_pem())
        log = sb.path("fault.log")
        r = run_with_fault(sb, ["pickup", "--token", "oc", "--pin-source", "env:TP_PIN", "--cert", bundle],
                           1, rv="CKR_ATTRIBUTE_TYPE_INVALID", func="C_CreateObject", log=log)
        expect(r.returncode == 0, r.stderr)
        creates = [e for e in read_log(log) if e[1] == "C_CreateObject"]
        # 1 refused, then 3 certificates: the module is remembered as refusing the attribute.
        expect(len(creates) == 4 and creates[0][3] and not any(e[3] for e in creates[1:]), creates)
        certs = [o for o in sb.objects("oc") if o["class"] == "certificate"]
        expect(len(certs) == 3 and sum(1 for c in certs if c["authority"]) == 2, certs)
        expect([c["id"] for c in certs if not c["authority"]] == [doc["key"]["id"]], certs)


if __name__ == "__main__":
    main([test_damaged_token_does_not_hide_the_others, test_pin_goes_only_to_the_selected_token,
          test_tokens_sharing_a_serial, test_fleet_blank_rows_on_tokens_sharing_a_serial,
          test_certificate_written_without_an_attribute_the_module_refuses])
