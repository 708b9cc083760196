# SPDX-License-Identifier: Apache-2.0
"""`tokenprov list` against tokens made by softhsm2-util and objects made by pkcs11-tool."""
from harness import Sandbox, main, expect, sh, SOFTHSM_MODULE
import json


def test_list_tokens_json():
    with Sandbox() as sb:
        serial = sb.create_token("alice")
        doc = sb.list_json()
        toks = [t for t in doc["tokens"] if t["label"] == "alice"]
        expect(len(toks) == 1, doc)
        t = toks[0]
        for k in ("uri", "label", "serial", "manufacturer", "model", "slot_id", "initialized", "objects"):
            expect(k in t, "missing %s in %s" % (k, t))
        expect(t["serial"] == serial, t)
        expect(t["initialized"] is True, t)
        expect(t["objects"] == [], t)
        expect(t["uri"].startswith("pkcs11:") and "token=alice" in t["uri"], t["uri"])
        expect(t["manufacturer"] == "SoftHSM project", t)
        blanks = [t for t in doc["tokens"] if not t["initialized"]]
        expect(len(blanks) == 1, "SoftHSM keeps one free slot: %s" % doc)


def test_objects_made_by_pkcs11_tool():
    with Sandbox() as sb:
        sb.create_token("interop")
        # A non-extractable EC key, an extractable RSA key and a certificate, by the independent writer.
        sb.pkcs11_tool("--token-label", "interop", "--keypairgen", "--key-type", "EC:prime256v1",
                       "--label", "eckey", "--id", "01")
        sb.pkcs11_tool("--token-label", "interop", "--keypairgen", "--key-type", "rsa:2048",
                       "--label", "rsakey", "--id", "02", "--extractable")
        key = sb.path("ca.key")
        crt = sb.path("ca.der")
        sh(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", key, "-subj", "/CN=Interop CA", "-days", "30", "-outform", "DER", "-out", crt])
        sb.pkcs11_tool("--token-label", "interop", "--write-object", crt, "--type", "cert",
                       "--label", "cacert", "--id", "03")
        objs = sb.objects("interop")
        by = {(o["class"], o["id"]): o for o in objs}
        ec = by[("private-key", "01")]
        expect(ec["label"] == "eckey" and ec["key_type"] == "ec" and ec["curve"] == "P-256", ec)
        expect(ec["extractable"] is False and ec["sensitive"] is True and ec["local"] is True, ec)
        expect(ec["never_extractable"] is True and ec["always_sensitive"] is True, ec)
        rsa = by[("private-key", "02")]
        expect(rsa["key_type"] == "rsa" and rsa["bits"] == 2048 and rsa["extractable"] is True, rsa)
        expect(("public-key", "01") in by and ("public-key", "02") in by, by.keys())
        cert = by[("certificate", "03")]
        expect(cert["label"] == "cacert" and cert["subject"] == "CN=Interop CA", cert)
        expect(cert["issuer"] == "CN=Interop CA" and cert["authority"] is True, cert)
        expect(cert["not_after"].endswith("Z") and "T" in cert["not_before"], cert)
        expect(len(cert["serial"]) > 0 and cert["serial"] == cert["serial"].lower(), cert)
        for o in objs:
            expect(o["uri"].startswith("pkcs11:") and "id=" in o["uri"], o)
        # Without a PIN, private objects stay hidden: no private key listed.
        doc = sb.list_json(token="interop")
        expect(all(o["class"] != "private-key" for o in doc["tokens"][0]["objects"]), doc)


def test_errors_have_contract_codes():
    with Sandbox() as sb:
        sb.create_token("errs")
        r = sb.tp("list", "--module", "/nonexistent/module.so")
        expect(r.returncode == 6 and "/nonexistent/module.so" in r.stderr, (r.returncode, r.stderr))
        expect(len(r.stderr.strip().splitlines()) <= 2, r.stderr)
        r = sb.tp("list", "--token", "nobody")
        expect(r.returncode == 6 and "nobody" in r.stderr, (r.returncode, r.stderr))
        r = sb.tp("list", "--token", "errs", "--pin-source", "env:WRONG", env={"WRONG": "999999"})
        expect(r.returncode == 3 and "incorrect" in r.stderr, (r.returncode, r.stderr))
        r = sb.tp("list", "--token", "errs", "--pin-source", "env:WRONG", "--json", env={"WRONG": "999999"})
        doc = json.loads(r.stdout)
        expect(doc["ok"] is False and doc["error"]["code"] == 3, doc)
        r = sb.tp("list", "--token", "errs", "--pin-source", "env:UNSET_VAR_XYZ")
        expect(r.returncode == 3 and "UNSET_VAR_XYZ" in r.stderr, (r.returncode, r.stderr))
        r = sb.tp("list", "--bogus-option")
        expect(r.returncode == 2, r.returncode)
        r = sb.tp("list", "--token", "pkcs11:token=%zz")
        expect(r.returncode == 2, (r.returncode, r.stderr))
        # Options are accepted before and after the command name.
        r = sb.tp("--json", "list")
        expect(r.returncode == 0 and json.loads(r.stdout)["tokens"], r.stdout)


def test_human_table():
    with Sandbox() as sb:
        sb.create_token("table")
        r = sb.tp("list", "--token", "table", "--pin-source", "env:TP_PIN", check=0)
        expect("Token 'table'" in r.stdout, r.stdout)


if __name__ == "__main__":
    main([test_list_tokens_json, test_objects_made_by_pkcs11_tool, test_errors_have_contract_codes, test_human_table])
