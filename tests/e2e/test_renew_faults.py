# SPDX-License-Identifier: Apache-2.0
"""renew and renew --rekey are all or nothing: each PKCS#11 call that writes (key generation,
label changes, certificate writes and deletions) fails in turn through the faultp11 shim, and the
token must be left as it was, with a contract exit code. The CA is the project's EST server."""
# ctest: one test per function
import os

from harness import Sandbox, main, expect
from estserver import EstServer
from faultp11 import run_with_fault, read_log


def snapshot(sb, token):
    return sorted((o["class"], o["id"], o["label"], o.get("serial", "")) for o in sb.objects(token))


def sweep(rekey, funcs):
    with Sandbox() as sb, EstServer(sb.path("est"), user="dev", password="otp") as est:
        sb.create_token("f1")
        sb.tpj("enroll", "--protocol", "est", "--token", "f1", "--pin-source", "env:TP_PIN", "--est-url", est.url,
               "--est-user", "dev", "--secret-source", "env:PW", "--ca-bundle", est.tls_ca_path, "--label", "fay",
               "--subject", "/CN=Fay", env={"PW": "otp"})
        args = ["renew", "--token", "f1", "--pin-source", "env:TP_PIN", "--key", "fay", "--est-url", est.url,
                "--ca-bundle", est.tls_ca_path] + (["--rekey"] if rekey else [])
        failed = 0
        hits = {}
        for func, upto in funcs:
            for n in range(1, upto + 1):
                before = snapshot(sb, "f1")
                log = sb.path("fault.log")
                if os.path.exists(log):
                    os.unlink(log)
                r = run_with_fault(sb, args, n, func=func, log=log)
                injected = any(e[3] for e in read_log(log))
                if not injected:  # fewer calls of FUNC than N: the renewal went through
                    expect(r.returncode == 0, (func, n, r.returncode, r.stderr))
                    continue
                failed += 1
                hits[func] = hits.get(func, 0) + 1
                expect(r.returncode == 6, (func, n, r.returncode, r.stderr))
                after = snapshot(sb, "f1")
                expect(after == before, "%s #%d left the token changed:\n%s\n%s" % (func, n, before, after))
        print("faults injected per function:", hits)
        # Every function of the list failed at least once, so each phase was failed.
        expect(set(hits) == {f for f, _ in funcs}, hits)


def test_rekey_faults_leave_token_unchanged():
    # Labels: the new pair's final id (keygen), the old private key, public key and certificate
    # archived, the new pair's label; then the certificate written.
    sweep(True, [("C_GenerateKeyPair", 1), ("C_SetAttributeValue", 10), ("C_CreateObject", 2)])


def test_renew_faults_leave_token_unchanged():
    sweep(False, [("C_CreateObject", 2), ("C_DestroyObject", 1)])


if __name__ == "__main__":
    main([test_rekey_faults_leave_token_unchanged, test_renew_faults_leave_token_unchanged])
