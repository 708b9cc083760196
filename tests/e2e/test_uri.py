# SPDX-License-Identifier: Apache-2.0
"""RFC 7512 URIs end to end (issue 21): every path attribute filters, the query names the module
(module-path, module-name through p11-kit's registry) and the PIN source, a key URI alone selects
module, token and key; the URIs tokenprov prints read the same in p11-kit's parser, p11tool and the
libp11 engine."""
import json
import os
import re
import subprocess

from harness import Sandbox, TestCA, main, expect, sh, pct, SOFTHSM_MODULE, USER_PIN

NOWHERE = "/nonexistent-module.so"  # a $TOKENPROV_MODULE that would fail: only the URI's module can work


def library_version():
    """SoftHSM2's CK_INFO libraryVersion, as pkcs11-tool (an independent reader) shows it."""
    r = sh(["pkcs11-tool", "--module", SOFTHSM_MODULE, "-I"])
    m = re.search(r"Library.*\(ver (\d+)\.(\d+)\)", r.stdout)
    expect(m, r.stdout)
    return "%d.%d" % (int(m.group(1)), int(m.group(2)))


def test_every_path_attribute_filters():
    with Sandbox() as sb:
        sb.create_token("alpha")  # and SoftHSM2's free slot: two tokens
        ver = library_version()
        for sel in ("pkcs11:slot-manufacturer=Nobody", "pkcs11:library-version=9.9",
                    "pkcs11:library-manufacturer=Snake%20Oil,%20Inc.", "pkcs11:token=alpha;library-version=9",
                    "pkcs11:library-description=Soft%20Token%20Library", "pkcs11:slot-description=Sun%20Metaslot"):
            r = sb.tp("list", "--token", sel)
            expect(r.returncode == 6 and "No token matches" in r.stderr, (sel, r.returncode, r.stderr))
        for sel in ("pkcs11:token=alpha;slot-manufacturer=SoftHSM%20project",
                    "pkcs11:token=alpha;library-manufacturer=SoftHSM;library-version=" + ver,
                    "pkcs11:token=alpha;library-version=" + ver.split(".")[0] + "." + ver.split(".")[1],
                    "pkcs11:token=alpha;library-description=Implementation%20of%20PKCS11"):
            doc = sb.list_json(token=sel)
            expect([t["label"] for t in doc["tokens"]] == ["alpha"], (sel, doc))
        slot = sb.list_json(token="alpha")["tokens"][0]["slot_id"]
        doc = sb.list_json(token="pkcs11:slot-id=%d" % slot)
        expect([t["label"] for t in doc["tokens"]] == ["alpha"], doc)
        # A vendor path attribute (the RFC's own example) is refused by name, never ignored.
        r = sb.tp("list", "--token", "pkcs11:token=alpha;vendor-aaa=value-a")
        expect(r.returncode == 2 and "'vendor-aaa'" in r.stderr, (r.returncode, r.stderr))
        # A vendor query attribute selects nothing: ignored.
        doc = sb.list_json(token="pkcs11:token=alpha?vendor-bbb=value-b")
        expect([t["label"] for t in doc["tokens"]] == ["alpha"], doc)


def test_module_path_and_module_name():
    with Sandbox() as sb:
        sb.create_token("alpha")
        # module-path names the module: it is loaded, not $TOKENPROV_MODULE or --module.
        r = sb.tp("list", "--token", "pkcs11:token=alpha?module-path=/nonexistent.so")
        expect(r.returncode == 6 and "/nonexistent.so" in r.stderr, (r.returncode, r.stderr))
        r = sb.tp("list", "--module", SOFTHSM_MODULE, "--token", "pkcs11:token=alpha?module-path=/nonexistent.so")
        expect(r.returncode == 2 and "--module" in r.stderr, (r.returncode, r.stderr))
        r = sb.tp("list", "--token", "pkcs11:token=alpha?module-path=lib.so")
        expect(r.returncode == 2 and "absolute" in r.stderr, (r.returncode, r.stderr))
        env = {"TOKENPROV_MODULE": NOWHERE}
        r = sb.tp("list", "--json", "--token", "pkcs11:token=alpha?module-path=" + SOFTHSM_MODULE, env=env, check=0)
        expect([t["label"] for t in json.loads(r.stdout)["tokens"]] == ["alpha"], r.stdout)
        # module-name through p11-kit's registry (/usr/share/p11-kit/modules/softhsm2.module);
        # SOFTHSM2_CONF points the module at this sandbox's tokens.
        r = sb.tp("list", "--json", "--token", "pkcs11:token=alpha?module-name=softhsm2", env=env, check=0)
        expect([t["label"] for t in json.loads(r.stdout)["tokens"]] == ["alpha"], r.stdout)
        # The same module named by --module and the URI is no conflict.
        sb.tp("list", "--json", "--module", os.path.realpath(SOFTHSM_MODULE), "--token",
              "pkcs11:token=alpha?module-name=softhsm2", check=0)
        r = sb.tp("list", "--token", "pkcs11:token=alpha?module-name=no-such-module")
        expect(r.returncode == 6 and "no-such-module" in r.stderr, (r.returncode, r.stderr))


def test_pin_source_and_pin_value():
    with Sandbox() as sb:
        sb.create_token("alpha")
        sb.tp("keygen", "--token", "alpha", "--pin-source", "env:TP_PIN", "--algorithm", "ec-p256",
              "--label", "k1", check=0)
        pinf = sb.write("pin.txt", USER_PIN + "\n")
        for ps in (pinf, "file:" + pinf, "file://" + pinf, "file://localhost" + pinf):
            doc = sb.list_json(token="pkcs11:token=alpha?pin-source=" + ps)
            objs = doc["tokens"][0]["objects"]
            expect(any(o["class"] == "private-key" for o in objs), (ps, objs))  # logged in with the URI's PIN
        for ps, needle in (("%7C/bin/echo", "runs no program"), ("https://example.org/pin", "https:"),
                           ("file://elsewhere/pin", "another host")):
            r = sb.tp("list", "--token", "pkcs11:token=alpha?pin-source=" + ps)
            expect(r.returncode == 2 and needle in r.stderr, (ps, r.returncode, r.stderr))
        r = sb.tp("list", "--token", "pkcs11:token=alpha?pin-source=" + pinf, "--pin-source", "env:TP_PIN")
        expect(r.returncode == 2 and "different PIN sources" in r.stderr, (r.returncode, r.stderr))
        # pin-value stays refused (issue 20): no PIN is taken from a URI, and the PIN is never echoed.
        r = sb.tp("list", "--token", "pkcs11:token=alpha?pin-value=" + USER_PIN, "--pin-source", "env:TP_PIN")
        expect(r.returncode == 2 and "pin-value" in r.stderr and USER_PIN not in r.stderr, (r.returncode, r.stderr))


def make_key_with_certificate(sb, token, label, kid):
    sb.tp("keygen", "--token", token, "--pin-source", "env:TP_PIN", "--algorithm", "rsa2048", "--label", label,
          "--id", kid, "--exportable", check=0)
    ca = TestCA(sb)
    csr, crt = sb.path(label + ".csr"), sb.path(label + ".pem")
    sb.tp("csr", "--token", token, "--pin-source", "env:TP_PIN", "--key", label, "--subject", "/CN=" + label,
          "--out", csr, check=0)
    ca.issue(csr, crt)
    sb.tp("pickup", "--token", token, "--pin-source", "env:TP_PIN", "--cert", crt, check=0)
    return crt


def test_key_uri_alone_names_module_token_and_key():
    with Sandbox() as sb:
        sb.create_token("alpha")
        sb.create_token("beta")  # two initialized tokens: without the URI's token a command could not choose
        make_key_with_certificate(sb, "beta", "bk", "b1")
        pinf = sb.write("pin.txt", USER_PIN)
        uri = "pkcs11:token=beta;object=bk;type=private?module-name=softhsm2&pin-source=file:" + pinf
        env = {"TOKENPROV_MODULE": NOWHERE, "TP_PW": "backup-password-1"}
        out = sb.path("bk.p12")
        doc = sb.tpj("backup", "--key", uri, "--out", out, "--password-source", "env:TP_PW", env=env)
        expect(doc["key"]["label"] == "bk" and os.path.exists(out), doc)
        r = sh(["openssl", "pkcs12", "-in", out, "-nokeys", "-passin", "env:TP_PW"], env=dict(sb.env, **env))
        expect("CN = bk" in r.stdout or "CN=bk" in r.stdout, r.stdout)
        csr = sb.path("again.csr")
        sb.tp("csr", "--key", uri, "--subject", "/CN=again", "--out", csr, env=env, check=0)
        sh(["openssl", "req", "-in", csr, "-noout", "-verify"])
        # --token and the key URI naming different tokens: no token is both.
        r = sb.tp("csr", "--token", "alpha", "--key", uri, "--subject", "/CN=x", "--out", sb.path("x.csr"), env=env)
        expect(r.returncode == 6 and "both --token and --key" in r.stderr, (r.returncode, r.stderr))
        # The key URI's slot and library attributes filter too.
        for extra in ("slot-manufacturer=Nobody", "library-version=9.9"):
            r = sb.tp("csr", "--key", uri.replace("object=bk", extra + ";object=bk"), "--subject", "/CN=x",
                      "--out", sb.path("y.csr"), env=env)
            expect(r.returncode == 6 and "No token matches" in r.stderr, (extra, r.returncode, r.stderr))


def test_printed_uris_read_the_same_everywhere():
    with Sandbox() as sb:
        sb.create_token("Token; with %odd& chars")
        tok = "Token; with %odd& chars"
        make_key_with_certificate(sb, tok, "my key", "0a1b")
        sb.tp("keygen", "--token", tok, "--pin-source", "env:TP_PIN", "--algorithm", "ec-p256", "--label", "ec/1",
              "--id", "ff00", check=0)
        doc = sb.list_json(login=True)
        uris = []
        for t in doc["tokens"]:
            uris.append(t["uri"])
            uris += [o["uri"] for o in t["objects"]]
        lines = sb.write("uris.txt", "\n".join(uris) + "\n")
        # p11-kit's parser reads each printed URI as tokenprov does.
        r = subprocess.run([os.environ["URI_DIFF_BIN"], "--lines", lines], capture_output=True, text=True)
        expect(r.returncode == 0, r.stdout + r.stderr)
        token = [t for t in doc["tokens"] if t["label"] == tok][0]
        # Each object URI selects its object in p11tool (GnuTLS's own URI code) and tokenprov.
        genv = dict(sb.env, GNUTLS_PIN=USER_PIN)
        for o in token["objects"]:
            r = sh(["p11tool", "--provider", SOFTHSM_MODULE, "--login", "--list-all", o["uri"]], env=genv)
            expect(r.stdout.count("URL:") == 1 and ("Label: " + o["label"]) in r.stdout, (o["uri"], r.stdout))
        r = sh(["p11tool", "--provider", SOFTHSM_MODULE, "--login", "--list-all", token["uri"]], env=genv)
        expect(r.stdout.count("URL:") == len(token["objects"]), (token["uri"], r.stdout))
        # The libp11 engine reads the printed URIs: the public key, and a signature by the private key.
        pub = [o for o in token["objects"] if o["class"] == "public-key" and o["id"] == "0a1b"][0]
        r = sh(["openssl", "pkey", "-engine", "pkcs11", "-inform", "engine", "-pubin", "-pubout", "-in", pub["uri"]],
               env=sb.env)
        expect("BEGIN PUBLIC KEY" in r.stdout, r.stdout)
        priv = [o for o in token["objects"] if o["class"] == "private-key" and o["id"] == "0a1b"][0]
        pinf = sb.write("pin.txt", USER_PIN)
        data, sig = sb.write("data.bin", b"uri\n"), sb.path("data.sig")
        sh(["openssl", "dgst", "-engine", "pkcs11", "-keyform", "engine", "-sign",
            priv["uri"] + "?pin-source=file:" + pinf, "-sha256", "-out", sig, data], env=sb.env)
        pem = sb.path("pub.pem")
        with open(pem, "w") as f:
            f.write(r.stdout)
        r = sh(["openssl", "dgst", "-sha256", "-verify", pem, "-signature", sig, data])
        expect("Verified OK" in r.stdout, r.stdout)
        # And tokenprov itself selects the key by its printed URI.
        sb.tp("csr", "--pin-source", "env:TP_PIN", "--key", priv["uri"], "--subject", "/CN=x", "--out",
              sb.path("x.csr"), check=0)


if __name__ == "__main__":
    main([test_every_path_attribute_filters, test_module_path_and_module_name, test_pin_source_and_pin_value,
          test_key_uri_alone_names_module_token_and_key, test_printed_uris_read_the_same_everywhere])
