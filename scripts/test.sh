#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# README command (2): install what is missing, build, and run every test:
# a -Werror build with all tests (unit, softhsm, e2e), then an
# AddressSanitizer + UBSan build running them again.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
jobs=$(nproc 2>/dev/null || echo 2)

bash scripts/setup.sh --test

echo "== build (warnings are errors) =="
cmake -S . -B build -DTOKENPROV_WERROR=ON -DTOKENPROV_TESTS=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"

echo "== build with AddressSanitizer and UBSan =="
cmake -S . -B build-asan -DTOKENPROV_WERROR=ON -DTOKENPROV_TESTS=ON -DTOKENPROV_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-asan -j"$jobs"

echo "== tests, sanitizer build =="
# SoftHSM and OpenSC are not built with ASan; leaks inside them are not ours.
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
(cd build-asan && ctest --no-tests=error --output-on-failure -j2 --timeout 900)
unset ASAN_OPTIONS UBSAN_OPTIONS


echo "== fuzzing: libFuzzer smoke runs (clang; docs/fuzzing.md) =="
# The parsers instrumented with ASan + UBSan; each fuzzer runs its seed corpus
# (tests/fuzz/corpus/) and then mutates for at most 20000 inputs or 20 s.
# Only the fuzz targets are built (not the CLI); no Catch2 tests here.
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DTOKENPROV_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz --target fuzzers -j"$jobs"
(cd build-fuzz && ctest --no-tests=error -L fuzz --output-on-failure -j2 --timeout 300)

echo "== tests, release build =="
(cd build && ctest --no-tests=error --output-on-failure -j2 --timeout 900)
