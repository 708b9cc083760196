# SPDX-License-Identifier: Apache-2.0
"""A SCEP CA whose answers wait at a gate the test opens: scepserver with a
-csrverifierexec script that notes each request (file 'started') and holds it
until the file 'release' exists. A tokenprov run is thus known to be inside its
enrollment (its key made, its token lock held, waiting for the CA) without any
timing; the test then starts a second run, sends a signal, or kills it.

Also helpers to read a running tokenprov's stderr line by line."""

import os
import subprocess
import time

from scepserver import ScepServer

GATE_SCRIPT = r"""#!/bin/sh
d=$(dirname "$0")
cat > /dev/null
touch "$d/started"
while [ ! -e "$d/release" ]; do sleep 0.05; done
# scepserver's file depot has no lock of its own: one certificate at a time.
exec 9>"$d/depot.lock"
flock 9
sleep 0.05
exit 0
"""


class GatedCA(ScepServer):
    def __init__(self, challenge="gate-otp"):
        super().__init__(challenge=challenge, verifier_script=GATE_SCRIPT)

    def started(self):
        return os.path.exists(os.path.join(self.dir, "started"))

    def wait_started(self, proc=None, bound=240):
        """Until a request reached the gate. Fails if PROC exits first or after BOUND s (a hang)."""
        end = time.monotonic() + bound
        while not self.started():
            if proc is not None and proc.poll() is not None:
                raise AssertionError("tokenprov exited %d before its request reached the CA: %s"
                                     % (proc.returncode, proc.stderr.read() if proc.stderr else ""))
            if time.monotonic() > end:
                raise AssertionError("no request reached the CA in %d s" % bound)
            time.sleep(0.05)

    def release(self):
        open(os.path.join(self.dir, "release"), "w").close()

    def close_gate(self):
        for n in ("release", "started"):
            try:
                os.unlink(os.path.join(self.dir, n))
            except FileNotFoundError:
                pass


def start(sb, *args, env=None):
    """tokenprov ARGS in the background, stderr a pipe read by read_until()."""
    e = dict(sb.env)
    if env:
        e.update(env)
    from harness import BIN
    return subprocess.Popen([BIN] + list(args), env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def read_until(proc, needle):
    """stderr lines of PROC up to and including the first holding NEEDLE; AssertionError if it exits first."""
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if needle in line:
            return "".join(seen)
    proc.wait()
    raise AssertionError("tokenprov exited %s without saying %r:\n%s" % (proc.returncode, needle, "".join(seen)))


def finish(proc, bound=300):
    out, err = proc.communicate(timeout=bound)
    return proc.returncode, out, err
