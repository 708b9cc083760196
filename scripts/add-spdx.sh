#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Adds the SPDX line scripts/check-spdx.sh checks ("// SPDX-License-Identifier:
# Apache-2.0" in C and C++, "# ..." elsewhere) to every covered git-tracked
# file that has none: as the first line, or after the "#!" line of a script.
# Files that already carry an SPDX-License-Identifier line are left alone, so
# running it again changes nothing.
#
#   scripts/add-spdx.sh [ROOT]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=${1:-$here/..}
missing=$(bash "$here/check-spdx.sh" --missing "$root")
cd "$root"
cd "$(git rev-parse --show-toplevel)"

n=0
while IFS= read -r f; do
  [[ -n "$f" ]] || continue
  case "$f" in
    *.cpp | *.hpp | *.c | *.h) line="// SPDX-License-Identifier: Apache-2.0" ;;
    *) line="# SPDX-License-Identifier: Apache-2.0" ;;
  esac
  first=""
  IFS= read -r first <"$f" || true
  if [[ ! -s "$f" ]]; then
    printf '%s\n' "$line" >"$f"
  elif [[ "$first" == "#!"* ]]; then
    sed -i "1a $line" "$f" # GNU sed -i keeps the file's mode
  else
    sed -i "1i $line" "$f"
  fi
  n=$((n + 1))
done <<<"$missing"
echo "add-spdx: added the SPDX line to $n files" >&2
