#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The benchmark, by hand (the tests never run it): builds a Release tokenprov in
# its own folder, then runs bench/bench.py with any options given here, e.g.
#   bash bench/run.sh                       # everything: (a) to (e), ~5 minutes on 2 cores
#   bash bench/run.sh --parts a,b --rounds 5
#   bash bench/run.sh --token-dir-base /var/tmp   # token folders on disk, not tmpfs
#   bash bench/run.sh --json bench-results.json
#   bash bench/run.sh --parts latency --json FILE  # under the card-latency model (tests/latencyp11,
#                                                  # bench/latency/*.profile), ~10 minutes
# BUILD=DIR picks the build folder (default: build-bench beside the sources).
# See docs/performance.md for what it measures and the figures.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(dirname "$here")
build=${BUILD:-$src/build-bench}

need=()
for p in softhsm2 opensc libengine-pkcs11-openssl openssl time; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [[ ${#need[@]} -gt 0 ]]; then
  echo "bench: missing packages: ${need[*]} (apt-get install ${need[*]}; scripts/setup.sh installs the build ones)" >&2
  exit 1
fi

cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DTOKENPROV_TESTS=OFF -DTOKENPROV_BENCH=ON >/dev/null
cmake --build "$build" -j"$(nproc)" --target tokenprov latencyp11 >/dev/null
exec python3 "$here/bench.py" --bin "$build/tokenprov" --shim "$build/tests/latencyp11/liblatencyp11.so" "$@"
