#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs what tokenprov needs to build and test, from Debian 12's packages.
# As root it runs apt-get; otherwise it prints the exact command and stops.
set -euo pipefail

BUILD_PKGS=(build-essential cmake pkg-config
  libssl-dev libp11-dev libp11-kit-dev libcli11-dev catch2
  nlohmann-json3-dev libtomlplusplus-dev libcurl4-openssl-dev libcsv-dev)
RUN_PKGS=(softhsm2 opensc opensc-pkcs11 libengine-pkcs11-openssl p11-kit openssl scep ca-certificates)
TEST_PKGS=(gnutls-bin libnss3-tools default-jre-headless python3 procps clang libclang-rt-14-dev valgrind
  python3-cryptography lintian)
# The module matrix (tests/modules/, docs/modules.md): every PKCS#11 module Debian 12 ships that
# runs without hardware. The tests start each one privately; nothing here is configured system-wide.
MATRIX_PKGS=(libtpm2-pkcs11-1 swtpm swtpm-tools libtss2-tcti-swtpm0 tpm2-tools tpm2-abrmd
  libtss2-tcti-tabrmd0 dbus-daemon opencryptoki libnss3 util-linux)

want=("${BUILD_PKGS[@]}" "${RUN_PKGS[@]}")
if [[ "${1:-}" == "--test" ]]; then
  want+=("${TEST_PKGS[@]}" "${MATRIX_PKGS[@]}")
fi

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "setup: all packages present" >&2
  exit 0
fi

cmd="apt-get install -y --no-install-recommends ${missing[*]}"
if [[ $(id -u) -ne 0 ]]; then
  echo "setup: missing packages: ${missing[*]}" >&2
  echo "setup: run as root:  apt-get update && $cmd" >&2
  exit 1
fi

echo "setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
$cmd
