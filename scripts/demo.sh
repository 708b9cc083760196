#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# README command (1), the main job on the embedded default: install what is
# missing, build, then on a SoftHSM2 token in a folder under build/demo and a
# local SCEP CA on 127.0.0.1: provision the token (key on the token, CSR,
# SCEP enrollment, certificate and chain written beside the key) and make
# its PKCS#12 backup; list the token; stop the CA; say where everything is.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

bash scripts/setup.sh

echo "== build =="
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTOKENPROV_TESTS=OFF >/dev/null
cmake --build build -j"$(nproc 2>/dev/null || echo 2)" --target tokenprov
tp="$root/build/tokenprov"

run="$root/build/demo/run-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$run/tokens" "$run/backups" "$run/secrets"
chmod 700 "$run/secrets"
sed "s|@TOKENDIR@|$run/tokens|" softhsm-config/softhsm2.conf.in >"$run/softhsm2.conf"
export SOFTHSM2_CONF="$run/softhsm2.conf"

# Demo secrets: random, in files only this user can read; never on a command line.
umask 077
openssl rand -hex 4 >"$run/secrets/user-pin"
openssl rand -hex 8 >"$run/secrets/so-pin"
openssl rand -hex 8 >"$run/secrets/challenge"
openssl rand -base64 18 >"$run/secrets/backup-password"
umask 022

echo "== local SCEP CA on 127.0.0.1 =="
depot="$run/ca-depot"
scepserver ca -init -depot "$depot" -keySize 2048 -years 2 -organization "tokenprov demo CA" -country US >/dev/null 2>&1
port=""
for _ in $(seq 1 50); do
  p=$((20000 + RANDOM % 20000))
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
done
[[ -n "$port" ]] || { echo "demo: no free port found" >&2; exit 1; }
scepserver -depot "$depot" -port "$port" -challenge "$(cat "$run/secrets/challenge")" -allowrenew 0 \
  >"$run/scepserver.log" 2>&1 &
scep_pid=$!
trap 'kill $scep_pid 2>/dev/null || true; wait $scep_pid 2>/dev/null || true' EXIT
url="http://127.0.0.1:$port/scep"
for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  sleep 0.1
done
fingerprint=$(openssl x509 -in "$depot/ca.pem" -outform DER | sha256sum | cut -d' ' -f1)
echo "CA at $url, SHA-256 fingerprint $fingerprint"

echo "== provision =="
"$tp" provision --profile softhsm-demo \
  --subject "/CN=Demo User/O=tokenprov demo" --san email:demo.user@example.org \
  --so-pin-source "file:$run/secrets/so-pin" --pin-source "file:$run/secrets/user-pin" \
  --scep-url "$url" --ca-fingerprint "$fingerprint" --challenge-source "file:$run/secrets/challenge" \
  --backup-dir "$run/backups" --password-source "file:$run/secrets/backup-password" \
  --audit-log "$run/audit.jsonl"

echo "== the token =="
"$tp" list --module /usr/lib/softhsm/libsofthsm2.so --token demo-demo-user --pin-source "file:$run/secrets/user-pin"

backup=$(ls "$run"/backups/*.p12)
echo "== the backup opens with its password =="
openssl pkcs12 -in "$backup" -passin "file:$run/secrets/backup-password" -nokeys -info 2>&1 |
  grep -E "friendlyName|subject=|MAC:|PBES2" || true

cat <<EOT

Done. Everything is under $run:
  tokens/            the SoftHSM2 token folder (SOFTHSM2_CONF=$run/softhsm2.conf)
  backups/           the PKCS#12 backup: $backup
  secrets/           the demo's PINs, challenge and backup password (mode 0600)
  ca-depot/          the local SCEP CA (stopped now)
  audit.jsonl        the audit log
Try: SOFTHSM2_CONF=$run/softhsm2.conf $tp list --module /usr/lib/softhsm/libsofthsm2.so --pin-source file:$run/secrets/user-pin --json
EOT
