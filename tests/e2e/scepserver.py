# SPDX-License-Identifier: Apache-2.0
"""A real SCEP CA for the end-to-end tests: Debian's scepserver (micromdm/scep
2.1.0) on 127.0.0.1 with a fresh depot in a temporary folder. Standard library
only.

    from scepserver import ScepServer

    with ScepServer("s3cret") as ca:
        run(["tokenprov", "enroll", "--scep-url", ca.url,
             "--ca-fingerprint", ca.fingerprint, ...])
        ca.issued_count()   # certificates the CA has issued so far

What scepserver does (the tests rely on it):
  * GetCACert answers with the bare DER CA certificate; CertReps are signed with
    the CA key (the CA is its own RA) and encrypted with single DES-CBC (OpenSSL 3
    needs its legacy provider to read them, e.g. `openssl cms -decrypt -legacy`).
  * With -challenge it compares the CSR's challengePassword attribute; a wrong or
    missing one, or a verifier exiting non-zero, gives a CertRep FAILURE with
    failInfo badRequest (2). It never answers PENDING.
  * It refuses a second certificate for the same subject DN unless the old one
    expires within -allowrenew days; allowrenew=0 (the default here) always allows.
  * It listens on all interfaces (it has no bind-address flag); the tests only ever
    talk to 127.0.0.1.
"""

import hashlib
import http.client
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

SCEPSERVER = "/usr/bin/scepserver"


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent():
    # Linux: the server gets SIGTERM if the test process dies first.
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # pragma: no cover - best effort
        pass


class ScepServer:
    """Context manager: a scepserver CA on 127.0.0.1.

    challenge   the challenge password the CA enforces ("" or None: none)
    verifier    path of an executable passed as -csrverifierexec (gets the CSR on
                stdin and $TRANSACTIONID; exit 0 accepts), or None
    verifier_script
                alternatively, the text of a shell script; it is written to
                <dir>/verifier.sh (mode 0755), so it can find files beside it as
                "$(dirname "$0")/..."
    allowrenew  -allowrenew days (0: the same subject may always enroll again;
                None: the server's default of 14)
    """

    def __init__(self, challenge="s3cret-challenge", verifier=None, allowrenew=0, verifier_script=None):
        self.challenge = challenge
        self.verifier = verifier
        self.verifier_script = verifier_script
        self.allowrenew = allowrenew
        self.dir = None
        self.port = None
        self.url = None
        self.fingerprint = None
        self._proc = None
        self._log = None

    # ---- paths ------------------------------------------------------------------
    @property
    def depot(self):
        return os.path.join(self.dir, "depot")

    @property
    def ca_pem_path(self):
        return os.path.join(self.depot, "ca.pem")

    @property
    def log_path(self):
        return os.path.join(self.dir, "scepserver.log")

    def log(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def issued_count(self):
        """Certificates the CA has issued (lines of depot/index.txt)."""
        try:
            with open(os.path.join(self.depot, "index.txt"), encoding="utf-8") as f:
                return sum(1 for line in f if line.strip())
        except OSError:
            return 0

    def ca_der(self):
        with open(self.ca_pem_path, encoding="ascii") as f:
            return ssl.PEM_cert_to_DER_cert(f.read())

    # ---- lifecycle --------------------------------------------------------------
    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def start(self):
        self.dir = tempfile.mkdtemp(prefix="tokenprov-scep-")
        try:
            self._log = open(self.log_path, "ab")
            subprocess.run(
                [SCEPSERVER, "ca", "-init", "-depot", self.depot, "-keySize", "2048", "-years", "2",
                 "-organization", "tokenprov-test", "-country", "US"],
                stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log, check=True, timeout=60)
            self.fingerprint = hashlib.sha256(self.ca_der()).hexdigest()
            verifier = self.verifier
            if self.verifier_script is not None:
                verifier = os.path.join(self.dir, "verifier.sh")
                with open(verifier, "w", encoding="utf-8") as f:
                    f.write(self.verifier_script)
                os.chmod(verifier, 0o755)
            self._start_server(verifier)
        except BaseException:
            self.stop()
            raise

    def _start_server(self, verifier):
        for _attempt in range(3):  # the port may be taken between free_port() and the bind
            self.port = free_port()
            argv = [SCEPSERVER, "-depot", self.depot, "-port", str(self.port)]
            if self.challenge:
                argv += ["-challenge", self.challenge]
            if verifier:
                argv += ["-csrverifierexec", os.fspath(verifier)]
            if self.allowrenew is not None:
                argv += ["-allowrenew", str(self.allowrenew)]
            self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
                                          preexec_fn=_die_with_parent)
            if self._wait_ready(10):
                self.url = "http://127.0.0.1:%d/scep" % self.port
                return
            self._stop_server()
        raise RuntimeError("scepserver did not start:\n" + self.log())

    def _caps_answer(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            conn.request("GET", "/scep?operation=GetCACaps")
            resp = conn.getresponse()
            resp.read()
            return resp.status == 200
        except OSError:
            return False
        finally:
            conn.close()

    def _wait_ready(self, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:  # exited: port taken, bad flag...
                return False
            if self._caps_answer():
                return True
            time.sleep(0.05)
        return False

    def _stop_server(self):
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def stop(self):
        self._stop_server()
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


if __name__ == "__main__":  # smoke check: python3 tests/e2e/scepserver.py
    with ScepServer() as ca:
        c = http.client.HTTPConnection("127.0.0.1", ca.port, timeout=5)
        c.request("GET", "/scep?operation=GetCACaps")
        caps = c.getresponse().read().decode()
        c.close()
        print("url", ca.url)
        print("fingerprint", ca.fingerprint)
        print("caps", caps.split())
        assert "POSTPKIOperation" in caps
        d = ca.dir
    assert not os.path.exists(d)
    print("ok")
