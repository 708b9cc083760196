# SPDX-License-Identifier: Apache-2.0
"""renew and renew --rekey over SCEP (RenewalReq signed with the current key and certificate)
against Debian's scepserver on 127.0.0.1. scepserver (micromdm/scep 2.1) compares its -challenge
on every request, RenewalReq included (its ChallengeMiddleware has no message-type check), so
this CA runs without one: renew sends no challenge."""
from harness import Sandbox, main, expect, sh
from scepserver import ScepServer


def test_renew_and_rekey_over_scep():
    with Sandbox() as sb, ScepServer(challenge=None) as ca:
        sb.create_token("s1")
        doc = sb.tpj("enroll", "--token", "s1", "--pin-source", "env:TP_PIN", "--scep-url", ca.url,
                     "--challenge-source", "env:CH", "--ca-fingerprint", ca.fingerprint, "--label", "dave",
                     "--subject", "/CN=Dave/O=Example", env={"CH": "otp"})
        kid, first = doc["key"]["id"], doc["certificate"]["serial"]
        issued = ca.issued_count()
        renew = ["renew", "--protocol", "scep", "--token", "s1", "--pin-source", "env:TP_PIN", "--key", "dave",
                 "--scep-url", ca.url, "--ca-fingerprint", ca.fingerprint]
        doc = sb.tpj(*renew)  # no challenge: the current certificate authenticates
        expect(doc["key"]["id"] == kid and doc["certificate"]["serial"] != first, doc)
        expect(doc["old_certificate"]["serial"] == first and doc["old_certificate_state"] == "deleted", doc)
        expect(ca.issued_count() == issued + 1, "the CA did not issue")
        leaves = [o for o in sb.objects("s1") if o["class"] == "certificate" and not o["authority"]]
        expect(len(leaves) == 1 and leaves[0]["serial"] == doc["certificate"]["serial"] and leaves[0]["label"] == "dave",
               leaves)
        # The new certificate verifies under the CA (openssl, from pkcs11-tool's copy).
        der, pem = sb.path("new.der"), sb.path("new.pem")
        sb.pkcs11_tool("--token-label", "s1", "--read-object", "--type", "cert", "--id", kid, "-o", der)
        sh(["openssl", "x509", "-inform", "DER", "-in", der, "-out", pem])
        sh(["openssl", "verify", "-CAfile", ca.ca_pem_path, pem])
        # --rekey over SCEP: a new key under a new id; the old pair and certificate archived.
        doc = sb.tpj(*(renew + ["--rekey"]))
        expect(doc["key"]["id"] != kid and doc["key"]["label"] == "dave" and doc["archived_key"]["id"] == kid, doc)
        objs = sb.objects("s1")
        old = [o for o in objs if o["id"] == kid]
        expect(len(old) == 3 and all("archived" in o["label"] for o in old), old)
        new = [o for o in objs if o["id"] == doc["key"]["id"]]
        expect(len(new) == 3 and all(o["label"] == "dave" for o in new), new)


if __name__ == "__main__":
    main([test_renew_and_rekey_over_scep])
