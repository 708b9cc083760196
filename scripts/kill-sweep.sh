#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# The longer kill sweep (not in CI; docs/reliability.md): enroll and provision
# killed with SIGKILL before every one of their PKCS#11 calls, each followed by
# the desk's rerun. Prints one line per sweep: calls, kills tried, bad states.
#   scripts/kill-sweep.sh [BUILD_DIR]      (default: build)
set -eu
build=${1:-build}
cd "$build"
KILL_SAMPLE=1 ctest -R 'e2e\.test_killsweep\.' --output-on-failure -V 2>&1 | grep -E 'kill sweep|tests passed|Failed|FAIL'
