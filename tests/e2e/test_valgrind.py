# SPDX-License-Identifier: Apache-2.0
"""valgrind --error-exitcode=1 on an end-to-end provision (SCEP enrollment and
backup) is clean. Runs on the regular build; the sanitizer build, whose binary
valgrind cannot run, says so and checks nothing else."""
import os
import subprocess

from harness import Sandbox, main, expect, BIN, SRC
from scepserver import ScepServer

DEMO = os.path.join(SRC, "tokens", "softhsm-demo.toml")


def test_provision_under_valgrind():
    if os.environ.get("TOKENPROV_SANITIZED") == "1":
        print("sanitizer build: valgrind runs on the regular build instead")
        return
    with Sandbox() as sb, ScepServer(challenge="vg-otp") as ca:
        os.makedirs(sb.path("backups"))
        env = dict(sb.env, CH="vg-otp", PW="valgrind-backup")
        cmd = ["valgrind", "--error-exitcode=1", "--leak-check=full", "--errors-for-leak-kinds=definite", "-q",
               BIN, "provision", "--profile", DEMO, "--subject", "/CN=Valgrind User/O=Example",
               "--pin-source", "env:TP_PIN", "--so-pin-source", "env:TP_SO_PIN", "--scep-url", ca.url,
               "--challenge-source", "env:CH", "--ca-fingerprint", ca.fingerprint,
               "--backup-dir", sb.path("backups"), "--password-source", "env:PW", "--json"]
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        expect(r.returncode == 0, "valgrind or tokenprov failed (%d):\n%s" % (r.returncode, r.stderr[-4000:]))
        expect('"complete":true' in r.stdout.replace(" ", ""), r.stdout)
        expect(len(os.listdir(sb.path("backups"))) == 1, os.listdir(sb.path("backups")))


if __name__ == "__main__":
    main([test_provision_under_valgrind])
