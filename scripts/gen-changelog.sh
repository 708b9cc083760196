#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Converts CHANGELOG.md into a Debian changelog (Debian Policy 4.4), the form
# dpkg and lintian expect in /usr/share/doc/tokenprov/changelog.gz of a native
# package.
#
#   scripts/gen-changelog.sh CHANGELOG.md "NAME <EMAIL>" OUT
#
# OUT "-" writes to standard output; OUT ending in .gz is written with
# gzip -9n (no name, no time stamp: the same input gives the same bytes).
# CHANGELOG.md's format (its own header says it too): an entry per release,
# "## VERSION - YYYY-MM-DD", then "- " items whose continuation lines are
# indented by two spaces; text before the first entry is ignored. Anything
# else inside an entry, or a change line over 80 characters once converted
# (Debian's limit), is an error, so
# the package never carries a changelog dpkg-parsechangelog cannot read.
set -euo pipefail
[[ $# -eq 3 ]] || { echo "usage: $0 CHANGELOG.md 'NAME <EMAIL>' OUT" >&2; exit 2; }
src=$1 maintainer=$2 out=$3
export LC_ALL=C

convert() {
  local line n=0 version="" date="" in_entry=0 lineno=0
  trailer() { printf '\n -- %s  %s\n' "$maintainer" "$(date -u -R -d "$date 00:00:00")"; }
  while IFS= read -r line || [[ -n "$line" ]]; do
    lineno=$((lineno + 1))
    if [[ "$line" =~ ^##\ ([0-9][0-9A-Za-z.+~]*)\ -\ ([0-9]{4}-[0-9]{2}-[0-9]{2})$ ]]; then
      if ((in_entry)); then trailer; echo; fi
      version=${BASH_REMATCH[1]} date=${BASH_REMATCH[2]} in_entry=1 n=$((n + 1))
      date -u -d "$date" >/dev/null 2>&1 || { echo "$src:$lineno: no such date '$date'" >&2; return 1; }
      printf 'tokenprov (%s) unstable; urgency=medium\n\n' "$version"
    elif ((!in_entry)) || [[ -z "$line" ]]; then
      continue
    elif [[ "$line" == "- "* ]]; then
      printf '  * %s\n' "${line#- }"
    elif [[ "$line" =~ ^\ \ [^\ ] ]]; then
      printf '    %s\n' "${line#  }"
    else
      echo "$src:$lineno: inside an entry only '- ' items and two-space continuation lines may stand: '$line'" >&2
      return 1
    fi
  done <"$src"
  ((n > 0)) || { echo "$src: no '## VERSION - YYYY-MM-DD' entry" >&2; return 1; }
  trailer
}

text=$(convert)
long=$(printf '%s\n' "$text" | awk '/^  [^-]/ && length($0) > 80 {print NR": "$0}')
[[ -z "$long" ]] || { echo "$src: changelog lines over 80 characters once converted:"$'\n'"$long" >&2; exit 1; }

case "$out" in
  -) printf '%s\n' "$text" ;;
  *.gz) printf '%s\n' "$text" | gzip -9n >"$out.tmp" && mv "$out.tmp" "$out" ;;
  *) printf '%s\n' "$text" >"$out.tmp" && mv "$out.tmp" "$out" ;;
esac
