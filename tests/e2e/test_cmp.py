# SPDX-License-Identifier: Apache-2.0
# ctest: one test per function
"""enroll --protocol cmp against OpenSSL's own CMP server (`openssl cmp -port`)
on 127.0.0.1, with SoftHSM2 tokens: the certificate the mock answers with is
issued first (by a test CA made with the openssl CLI) for the key already on
the token, and tokenprov enrolls that key with --key. Every failure leaves the
token exactly as it was (a listing before and after) and exits 7 with the
server's words."""
import json

from harness import Sandbox, TestCA, main, expect, sh
from cmpmock import CmpMock

PIN = ["--pin-source", "env:TP_PIN"]


def fingerprint(pem_path):
    r = sh(["openssl", "x509", "-in", pem_path, "-noout", "-fingerprint", "-sha256"])
    return r.stdout.strip().split("=", 1)[1].replace(":", "").lower()


def setup(sb, label, algorithm, token="cmp"):
    """A token with a key LABEL and a test CA; returns (ca, leaf.pem) where leaf
    is the CA's certificate for that key (what the mock will answer)."""
    sb.create_token(token)
    sb.tp("keygen", "--token", token, *PIN, "--algorithm", algorithm, "--label", label, check=0)
    csr = sb.path(label + ".csr")
    sb.tp("csr", "--token", token, *PIN, "--key", label, "--subject", "/CN=%s/O=Example" % label, "--out", csr, check=0)
    ca = TestCA(sb)
    leaf = ca.issue(csr, sb.path(label + ".pem"))
    return ca, leaf


def enroll(sb, srv, *extra, token="cmp", secret="s3cret", ref="REF-4711", check=None):
    return sb.tp("enroll", "--protocol", "cmp", "--token", token, *PIN, "--cmp-url", srv.url, "--reference", ref,
                 "--secret-source", "env:CMP_SECRET", *extra, env={"CMP_SECRET": secret}, check=check)


def leaf_verifies(sb, ca, kid, token="cmp"):
    der = sb.path("got-%s.der" % kid[:8])
    sb.pkcs11_tool("--token-label", token, "--read-object", "--type", "cert", "--id", kid, "-o", der)
    pem = sb.path("got-%s.pem" % kid[:8])
    sh(["openssl", "x509", "-inform", "DER", "-in", der, "-out", pem])
    sh(["openssl", "verify", "-CAfile", ca.root, "-untrusted", ca.int, pem])


def two_polls(algorithm, request_json_kind, cas):
    """The mock's ip carries caPubs (the root) and extraCerts (the issuing CA);
    its cp (the answer to p10cr) only extraCerts. The pin is the issuing CA's."""
    with Sandbox() as sb:
        ca, leaf = setup(sb, "alice", algorithm)
        with CmpMock(sb, leaf, capubs=ca.root, extracerts=ca.int, poll_count=2, check_after=1) as srv:
            r = enroll(sb, srv, "--key", "alice", "--subject", "/CN=alice/O=Example",
                       "--ca-fingerprint", fingerprint(ca.int), "--wait", "30", "--json", check=0)
            expect(srv.requests() == 4, "ir/p10cr, two pollReq, certConf: %d requests" % srv.requests())
        doc = json.loads(r.stdout)
        expect(doc["ok"] and doc["protocol"] == "cmp" and doc["polls"] == 2, doc)
        expect("shared secret (MAC) only" in doc["trust"], doc)
        expect(doc["written"] == 1 + cas, doc)
        kid = doc["key"]["id"]
        objs = sb.objects("cmp")
        leafs = [o for o in objs if o["class"] == "certificate" and not o["authority"]]
        expect(len(leafs) == 1 and leafs[0]["id"] == kid and leafs[0]["label"] == "alice", objs)
        expect(sum(1 for o in objs if o["class"] == "certificate" and o["authority"]) == cas, objs)
        leaf_verifies(sb, ca, kid)
        expect(request_json_kind in r.stderr, r.stderr)


def test_interop_rsa2048_ir_two_polls():
    two_polls("rsa2048", "Sending the ir", 2)


def test_interop_ec_p256_p10cr_two_polls():
    two_polls("ec-p256", "Sending the p10cr", 1)


def test_interop_rsa2048_p10cr_two_polls_ca_bundle():
    with Sandbox() as sb:
        ca, leaf = setup(sb, "bob", "rsa2048")
        with CmpMock(sb, leaf, capubs=ca.root, extracerts=ca.int, poll_count=2, check_after=1) as srv:
            doc = sb.tpj("enroll", "--protocol", "cmp", "--token", "cmp", *PIN, "--cmp-url", srv.url,
                         "--reference", "REF-4711", "--secret-source", "env:CMP_SECRET", "--key", "bob",
                         "--cmp-request", "p10cr", "--subject", "/CN=bob/O=Example", "--ca-bundle", ca.root,
                         "--wait", "30", env={"CMP_SECRET": "s3cret"})
        expect(doc["polls"] == 2 and doc["written"] == 2, doc)
        leaf_verifies(sb, ca, doc["key"]["id"])


def test_chain_outside_the_bundle_leaves_token_as_before():
    """--ca-bundle names another CA: the certificate is refused before anything is written."""
    with Sandbox() as sb:
        ca, leaf = setup(sb, "carol", "rsa2048")
        other = TestCA(sb, name="Other")
        before = sb.objects("cmp")
        with CmpMock(sb, leaf, capubs=ca.root, extracerts=ca.int, poll_count=1, check_after=1) as srv:
            r = enroll(sb, srv, "--key", "carol", "--subject", "/CN=carol/O=Example", "--ca-bundle", other.root,
                       "--wait", "30")
        expect(r.returncode == 7 and "does not verify against" in r.stderr, (r.returncode, r.stderr))
        expect(sb.objects("cmp") == before, "the token changed")


def failure_case(sb, ca, leaf, want_words, args=(), **mock):
    """One failing enrollment of a new key; the token is compared before and after."""
    before = sb.objects("cmp")
    with CmpMock(sb, leaf, capubs=ca.root, extracerts=ca.int, **mock) as srv:
        r = enroll(sb, srv, "--algorithm", "rsa2048", "--label", "newkey", "--subject", "/CN=newkey",
                   "--ca-fingerprint", fingerprint(ca.int), *args)
    expect(r.returncode == 7, (r.returncode, r.stderr))
    for w in want_words:
        expect(w in r.stderr, (w, r.stderr))
    expect(sb.objects("cmp") == before, "the token changed: %s" % r.stderr)
    return r


def test_rejection_leaves_token_as_before():
    with Sandbox() as sb:
        ca, leaf = setup(sb, "dave", "rsa2048")
        # -pkistatus 2 = rejection, -failure 2 = badRequest (bit number), the CA's text.
        failure_case(sb, ca, leaf, ["rejection", "badRequest", "not approved by the RA"],
                     pkistatus=2, failure=2, statusstring="not approved by the RA")


def test_wrong_secret_leaves_token_as_before():
    with Sandbox() as sb:
        ca, leaf = setup(sb, "erin", "rsa2048")
        failure_case(sb, ca, leaf, ["rejection", "wrong pbm value"], secret="other-secret")


def test_certificate_for_another_key_leaves_token_as_before():
    with Sandbox() as sb:
        ca, leaf = setup(sb, "frank", "rsa2048")
        # The mock answers with frank's certificate; the new key is another one.
        failure_case(sb, ca, leaf, ["not the token key"])
        # The same with --key for an existing key that is not the certificate's: the key stays.
        sb.tp("keygen", "--token", "cmp", *PIN, "--algorithm", "ec-p256", "--label", "other", check=0)
        before = sb.objects("cmp")
        with CmpMock(sb, leaf, capubs=ca.root, extracerts=ca.int) as srv:
            r = enroll(sb, srv, "--key", "other", "--subject", "/CN=other", "--ca-fingerprint", fingerprint(ca.root))
        expect(r.returncode == 7 and "not the token key" in r.stderr, (r.returncode, r.stderr))
        expect(sb.objects("cmp") == before, "the token changed")


def test_pending_beyond_wait_leaves_token_as_before():
    with Sandbox() as sb:
        ca, leaf = setup(sb, "gina", "rsa2048")
        failure_case(sb, ca, leaf, ["not approved the request yet", "--wait"], args=("--wait", "2"),
                     poll_count=5, check_after=1)


def test_untrusted_chain_leaves_token_as_before():
    with Sandbox() as sb:
        ca, leaf = setup(sb, "hank", "rsa2048")
        before = sb.objects("cmp")
        with CmpMock(sb, leaf, capubs=ca.root, extracerts=ca.int) as srv:
            r = enroll(sb, srv, "--key", "hank", "--subject", "/CN=hank", "--ca-fingerprint", "ab" * 32)
        expect(r.returncode == 7 and "ab" * 32 in r.stderr, (r.returncode, r.stderr))
        expect(sb.objects("cmp") == before, "the token changed")
        # No trust anchor at all: refused before anything is made.
        with CmpMock(sb, leaf) as srv:
            r = enroll(sb, srv, "--algorithm", "rsa2048", "--label", "newkey", "--subject", "/CN=hank")
        expect(r.returncode == 2 and "--ca-fingerprint" in r.stderr, (r.returncode, r.stderr))
        expect(srv.requests() == 0, "a request was sent without a trust anchor")
        expect(sb.objects("cmp") == before, "the token changed")


def test_unreachable_server_exit_7():
    with Sandbox() as sb:
        sb.create_token("cmp")
        before = sb.objects("cmp")
        r = sb.tp("enroll", "--protocol", "cmp", "--token", "cmp", *PIN, "--cmp-url", "http://127.0.0.1:9/pkix/",
                  "--reference", "R", "--secret-source", "env:S", "--algorithm", "ec-p256", "--label", "k",
                  "--subject", "/CN=k", "--ca-fingerprint", "ab" * 32, env={"S": "x"})
        expect(r.returncode == 7 and "127.0.0.1:9" in r.stderr, (r.returncode, r.stderr))
        expect(sb.objects("cmp") == before, "the token changed")


if __name__ == "__main__":
    main([test_interop_rsa2048_ir_two_polls, test_interop_ec_p256_p10cr_two_polls,
          test_interop_rsa2048_p10cr_two_polls_ca_bundle, test_chain_outside_the_bundle_leaves_token_as_before,
          test_rejection_leaves_token_as_before, test_wrong_secret_leaves_token_as_before,
          test_certificate_for_another_key_leaves_token_as_before, test_pending_beyond_wait_leaves_token_as_before,
          test_untrusted_chain_leaves_token_as_before, test_unreachable_server_exit_7])
