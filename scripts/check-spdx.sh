#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Checks that every git-tracked source, script and CMake file of the tree
# starts with the SPDX line of the project's license (LICENSE, Apache-2.0):
#
#   // SPDX-License-Identifier: Apache-2.0     *.cpp *.hpp *.c *.h
#   # SPDX-License-Identifier: Apache-2.0      *.py *.sh *.cmake *.toml,
#                                              CMakeLists.txt, .ci/run,
#                                              completion/*
#
# on the first line, or on the second after a "#!" line. Fuzzer corpora
# (tests/fuzz/corpus/) are inputs, not sources, and are left out.
#
#   scripts/check-spdx.sh [--missing] [ROOT]
#
# ROOT defaults to this script's tree. Exit 0 when all files have the line;
# 1, listing the files without it, when some do not (scripts/add-spdx.sh adds
# it); 2 when ROOT is not a git work tree. --missing only prints the files
# that have no SPDX-License-Identifier line where it belongs, one per line
# (what add-spdx.sh fixes), and exits 0.
# Should a file under another license ever be added, name it in
# packaging/copyright and give it its own case here.
set -euo pipefail
mode=check
if [[ "${1:-}" == "--missing" ]]; then mode=missing; shift; fi
root=${1:-$(dirname "$0")/..}
cd "$root"
git rev-parse --is-inside-work-tree >/dev/null 2>&1 ||
  { echo "check-spdx: $PWD is not a git work tree (the files checked are git's)" >&2; exit 2; }
cd "$(git rev-parse --show-toplevel)"

# The comment that starts the SPDX line of FILE, or nothing when FILE is not
# covered.
comment_of() {
  case "$1" in
    tests/fuzz/corpus/*) ;;
    *.cpp | *.hpp | *.c | *.h) echo "//" ;;
    *.py | *.sh | *.cmake | *.toml | CMakeLists.txt | */CMakeLists.txt | .ci/run | completion/*) echo "#" ;;
  esac
}

# The line of FILE where the SPDX line belongs: the second after a shebang.
header_line() {
  local first
  IFS= read -r first <"$1" || true
  if [[ "$first" == "#!"* ]]; then sed -n 2p "$1"; else printf '%s\n' "$first"; fi
}

n=0 bad=0
while IFS= read -r -d '' f; do
  [[ -f "$f" ]] || continue # deleted in the work tree, not yet in git
  c=$(comment_of "$f")
  [[ -n "$c" ]] || continue
  n=$((n + 1))
  line=$(header_line "$f")
  want="$c SPDX-License-Identifier: Apache-2.0"
  [[ "$line" == "$want" ]] && continue
  if [[ "$mode" == missing ]]; then
    [[ "$line" == *SPDX-License-Identifier:* ]] || printf '%s\n' "$f"
    continue
  fi
  bad=$((bad + 1))
  if [[ "$line" == *SPDX-License-Identifier:* ]]; then
    echo "$f: has '$line' where '$want' belongs" >&2
  else
    echo "$f: no '$want' line (first line, or second after #!)" >&2
  fi
done < <(git ls-files -z)

[[ "$mode" == check ]] || exit 0
if ((bad)); then
  echo "check-spdx: $bad of $n files lack the SPDX line; run: bash scripts/add-spdx.sh" >&2
  exit 1
fi
echo "check-spdx: all $n source, script and CMake files carry SPDX-License-Identifier: Apache-2.0"
