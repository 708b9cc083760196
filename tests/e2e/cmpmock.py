# SPDX-License-Identifier: Apache-2.0
"""OpenSSL's own CMP mock server (`openssl cmp -port`, OpenSSL 3.0) on
127.0.0.1 for the end-to-end tests. Standard library only.

    with CmpMock(sb, rsp_cert="leaf.pem", capubs="root.pem", extracerts="int.pem",
                 ref="REF", secret="s3cret", poll_count=2, check_after=1) as srv:
        run(["tokenprov", "enroll", "--protocol", "cmp", "--cmp-url", srv.url, ...])
        srv.requests()   # HTTP requests the server has received so far

What the mock does (the tests rely on it):
  * It answers every ir/cr/p10cr with the fixed -rsp_cert, whatever key the
    request names (so a test first issues that certificate for the key on the
    token), caPubs from -rsp_capubs in ip, extraCerts from -rsp_extracerts.
  * -srv_secret alone: its answers are MAC-protected (PBM) with that secret;
    -srv_cert/-srv_key: signed.
  * -poll_count N -check_after S: N pollReq are answered "waiting" before the
    certificate comes; after a withdrawn transaction it stays in polling mode, so
    each case gets a fresh server.
  * -pkistatus/-failure/-statusstring: the answer carries that status.
  * It reads one request per connection in HTTP/1.0 (keep-alive would tie a
    transaction to one connection).
"""

import os
import subprocess
import time

from scepserver import free_port, _die_with_parent


class CmpMock:
    def __init__(self, sb, rsp_cert, ref="REF-4711", secret="s3cret", capubs=None, extracerts=None,
                 poll_count=0, check_after=1, pkistatus=None, failure=None, statusstring=None,
                 srv_cert=None, srv_key=None):
        self.sb = sb
        self.port = free_port()
        self.url = "http://127.0.0.1:%d/pkix/" % self.port
        self.log = sb.path("cmpmock-%d.log" % self.port)
        args = ["openssl", "cmp", "-port", str(self.port), "-rsp_cert", rsp_cert, "-verbosity", "6"]
        if srv_cert:
            args += ["-srv_cert", srv_cert, "-srv_key", srv_key]
        else:
            args += ["-srv_ref", ref]
        # The secret reaches openssl through a file, not its command line.
        sec = sb.write("cmpmock-%d.secret" % self.port, secret + "\n")
        args += ["-srv_secret", "file:" + sec]
        if capubs:
            args += ["-rsp_capubs", capubs]
        if extracerts:
            args += ["-rsp_extracerts", extracerts]
        if poll_count:
            args += ["-poll_count", str(poll_count), "-check_after", str(check_after)]
        if pkistatus is not None:
            args += ["-pkistatus", str(pkistatus)]
        if failure is not None:
            args += ["-failure", str(failure)]
        if statusstring:
            args += ["-statusstring", statusstring]
        self.args = args

    def __enter__(self):
        self.logf = open(self.log, "w")
        self.proc = subprocess.Popen(self.args, stdout=self.logf, stderr=subprocess.STDOUT,
                                     preexec_fn=_die_with_parent)
        # Ready once it listens: it prints "ACCEPT" then (no fixed sleep).
        for _ in range(400):
            if "ACCEPT" in open(self.log).read():
                break
            if self.proc.poll() is not None:
                raise AssertionError("openssl cmp -port exited: " + open(self.log).read())
            time.sleep(0.05)
        else:
            raise AssertionError("openssl cmp -port did not start: " + open(self.log).read())
        return self

    def requests(self):
        return open(self.log).read().count("Received request")

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.logf.close()


class CmpTestCa:
    """tests/cmp/cmp_test_ca (OSSL_CMP_SRV_CTX with callbacks that issue for
    the requested key) on 127.0.0.1: issues with CA.int/CA.int_key, sends
    the issuing CA as extraCerts and the root as caPubs.

    mode        ok | reject | wrong-cert (a certificate for another key)
    polls       pollReq answered "waiting" before the certificate comes
    protect     mac (answers MAC-protected) | signature (signed with a CMP
                server certificate the issuing CA made)
    """

    BIN = os.environ.get("CMP_TEST_CA", "cmp_test_ca")

    def __init__(self, sb, ca, ref="REF-4711", secret="s3cret", mode="ok", polls=0, check_after=1, protect="mac"):
        self.sb = sb
        n = len([f for f in os.listdir(sb.dir) if f.startswith("cmpca-")])
        self.dir = sb.path("cmpca-%d" % n)
        os.makedirs(self.dir)
        self.portfile = os.path.join(self.dir, "port")
        self.log = os.path.join(self.dir, "log")
        sec = os.path.join(self.dir, "secret")
        with open(sec, "w") as f:
            f.write(secret + "\n")
        self.args = [self.BIN, "--port-file", self.portfile, "--ca-cert", ca.int, "--ca-key", ca.int_key,
                     "--chain", ca.int, "--capubs", ca.root, "--ref", ref, "--secret-file", sec, "--mode", mode,
                     "--polls", str(polls), "--check-after", str(check_after), "--log", self.log,
                     "--protect", protect]
        if protect == "signature":
            key, csr, cert = (os.path.join(self.dir, x) for x in ("srv.key", "srv.csr", "srv.pem"))
            subprocess.run(["openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
                            "-subj", "/CN=CMP server/O=tokenprov tests"], check=True, capture_output=True)
            ext = os.path.join(self.dir, "srv.ext")
            with open(ext, "w") as f:
                f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n")
            subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca.int, "-CAkey", ca.int_key,
                            "-CAcreateserial", "-out", cert, "-days", "30", "-extfile", ext],
                           check=True, capture_output=True)
            self.args += ["--srv-cert", cert, "--srv-key", key]

    def __enter__(self):
        self.proc = subprocess.Popen(self.args, stderr=subprocess.PIPE, preexec_fn=_die_with_parent)
        for _ in range(400):
            if os.path.exists(self.portfile):
                break
            if self.proc.poll() is not None:
                raise AssertionError("cmp_test_ca exited: " + self.proc.stderr.read().decode())
            time.sleep(0.05)
        else:
            raise AssertionError("cmp_test_ca did not start")
        self.port = int(open(self.portfile).read())
        self.url = "http://127.0.0.1:%d/pkix/" % self.port
        return self

    def events(self):
        return open(self.log).read().splitlines() if os.path.exists(self.log) else []

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stderr.close()
