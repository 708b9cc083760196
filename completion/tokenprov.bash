# SPDX-License-Identifier: Apache-2.0
# bash completion for tokenprov                              -*- shell-script -*-
#
# Installed as share/bash-completion/completions/tokenprov (bash-completion
# loads it on first use); or `source completion/tokenprov.bash` by hand. It
# needs nothing from the bash-completion package.
#
# The lists below follow `tokenprov --help` and `tokenprov COMMAND --help`;
# tests/e2e/test_docs.py fails when a command or an option is missing here.

_tokenprov_commands="list init pin keygen csr pickup enroll revoke backup restore provision fleet delete status renew"
_tokenprov_global_opts="--module --profile --token --pin-source --so-pin-source --json -q --quiet --timings --lock-wait -h --help --version"

# Options of each command (global options are accepted everywhere as well).
_tokenprov_cmd_opts() {
  local enroll_opts="--scep-url --challenge-source --protocol --cmp-url --reference --secret-source --cmp-request --ca-bundle --ca-fingerprint --wait --csr-dir --cert-dir --backup-dir --password-source --audit-log --allow-expired --check-signature --est-url --est-user --renew-expiring --rekey"
  case "$1" in
    list) echo "" ;;
    init) echo "--label --force" ;;
    "pin change" | "pin unblock") echo "--new-pin-source" ;;
    keygen) echo "--algorithm --label --id --exportable --usage" ;;
    csr) echo "--key --subject --san --out --pss --force" ;;
    pickup) echo "--cert --ca-bundle --allow-expired" ;;
    enroll) echo "--protocol --scep-url --cmp-url --reference --cmp-request --est-url --est-user --secret-source --ca-bundle --key --challenge-source --algorithm --label --id --subject --san --exportable --ca-fingerprint --wait --allow-expired" ;;
    revoke) echo "--key --reason --cmp-url --reference --secret-source --ca-bundle --ca-fingerprint --protocol" ;;
    status) echo "--expiring" ;;
    renew) echo "--key --rekey --protocol --est-url --ca-bundle --scep-url --cmp-url --ca-fingerprint --wait" ;;
    backup) echo "--key --out --compat --password-source --cert-only --force" ;;
    restore) echo "--in --password-source --label --exportable --usage --role" ;;
    provision) echo "--subject --san --user --label $enroll_opts" ;;
    fleet) echo "--manifest --jobs --state --dry-run $enroll_opts" ;;
    delete) echo "--key --force --with-certificate" ;;
  esac
}

# Options that take no value.
_tokenprov_flags=" --json -q --quiet --timings -h --help --version --force --exportable --pss --allow-expired --cert-only --dry-run --check-signature --with-certificate --rekey "

# Profile names: the folders tokenprov searches for --profile NAME.
_tokenprov_profiles() {
  local exe dir f
  local -a dirs=()
  [[ -n "${TOKENPROV_PROFILE_DIR:-}" ]] && dirs+=("$TOKENPROV_PROFILE_DIR")
  exe=$(type -P tokenprov 2>/dev/null) && dirs+=("${exe%/*}/../share/tokenprov/tokens")
  dirs+=(/usr/local/share/tokenprov/tokens /usr/share/tokenprov/tokens)
  for dir in "${dirs[@]}"; do
    for f in "$dir"/*.toml; do
      [[ -e "$f" ]] || continue
      f=${f##*/}
      echo "${f%.toml}"
    done
  done | sort -u
}

# Replies for CUR from WORDS (blank-separated).
_tokenprov_reply() { # cur words...
  local cur=$1
  shift
  local IFS=$' \t\n'
  mapfile -t COMPREPLY < <(compgen -W "$*" -- "$cur")
}

# Files (or, with -d, folders) matching CUR, after an optional PREFIX such as "file:".
_tokenprov_files() { # [-d] cur [prefix]
  local kind=-f
  if [[ "$1" == -d ]]; then kind=-d; shift; fi
  local cur=$1 prefix=${2:-} f
  local IFS=$'\n'
  COMPREPLY=()
  if [[ -z "$prefix" ]]; then
    mapfile -t COMPREPLY < <(compgen "$kind" -- "$cur")
    compopt -o filenames 2>/dev/null # readline quotes them and marks folders with '/'
    return
  fi
  for f in $(compgen "$kind" -- "${cur#"$prefix"}"); do
    [[ -d "$f" ]] && f="$f/"
    COMPREPLY+=("$prefix$f")
  done
  if [[ ${#COMPREPLY[@]} -ne 1 || "${COMPREPLY[0]}" == */ ]]; then compopt -o nospace 2>/dev/null; fi
}

# A secret source: env:VAR, file:PATH, fd:N or prompt.
_tokenprov_source() { # cur
  local cur=$1
  case "$cur" in
    env:*) _tokenprov_reply "$cur" "$(compgen -e | sed 's/^/env:/')" ;;
    file:*) _tokenprov_files "$cur" "file:" ;;
    fd:*) COMPREPLY=() ;;
    *)
      _tokenprov_reply "$cur" "env: file: fd: prompt"
      [[ ${#COMPREPLY[@]} -eq 1 && "${COMPREPLY[0]}" == *: ]] && compopt -o nospace 2>/dev/null
      ;;
  esac
}

_tokenprov() {
  local cur prev
  local -a words
  # Split the line ourselves on blanks: COMP_WORDS splits at ':' and '=' too.
  local line=${COMP_LINE:0:COMP_POINT}
  read -r -a words <<<"$line"
  if [[ "$line" =~ [[:space:]]$ ]]; then
    cur=""
  else
    cur=${words[${#words[@]}-1]}
    unset 'words[${#words[@]}-1]'
  fi
  prev=${words[${#words[@]}-1]:-}
  if [[ "$cur" == --*=* ]]; then # --option=value
    prev=${cur%%=*}
    cur=${cur#*=}
  fi

  # The command: the first word that is not an option or an option's value.
  local cmd="" i w
  for ((i = 1; i < ${#words[@]}; i++)); do
    w=${words[i]}
    if [[ "$w" == -* ]]; then
      [[ "$w" != *=* && "$_tokenprov_flags" != *" $w "* ]] && ((i++))
      continue
    fi
    if [[ -z "$cmd" ]]; then
      cmd=$w
    elif [[ "$cmd" == pin && ( "$w" == change || "$w" == unblock ) ]]; then
      cmd="pin $w"
    fi
  done

  case "$prev" in
    --module) _tokenprov_files "$cur"; _tokenprov_fix_colon "$cur"; return ;;
    --profile)
      _tokenprov_reply "$cur" "$(_tokenprov_profiles)"
      if [[ "$cur" == */* || "$cur" == .* || ${#COMPREPLY[@]} -eq 0 ]]; then _tokenprov_files "$cur"; fi
      _tokenprov_fix_colon "$cur"
      return
      ;;
    --pin-source | --so-pin-source | --new-pin-source | --challenge-source | --password-source | --secret-source)
      _tokenprov_source "$cur"; _tokenprov_fix_colon "$cur"; return ;;
    --algorithm)
      if [[ "$cmd" == enroll ]]; then
        _tokenprov_reply "$cur" "rsa2048 rsa3072 rsa4096"
      else
        _tokenprov_reply "$cur" "rsa2048 rsa3072 rsa4096 ec-p256 ec-p384 ed25519"
      fi
      return
      ;;
    --compat) _tokenprov_reply "$cur" "modern legacy"; return ;;
    --protocol)
      if [[ "$cmd" == renew ]]; then _tokenprov_reply "$cur" "est scep cmp"; else _tokenprov_reply "$cur" "scep cmp est"; fi
      return
      ;;
    --cmp-request) _tokenprov_reply "$cur" "ir p10cr"; return ;;
    --usage)
      local done_part="" last=$cur
      if [[ "$cur" == *,* ]]; then done_part=${cur%,*},; last=${cur##*,}; fi
      _tokenprov_reply "$last" "sign decrypt unwrap derive"
      local k
      for k in "${!COMPREPLY[@]}"; do COMPREPLY[k]="$done_part${COMPREPLY[k]}"; done
      return
      ;;
    --san)
      _tokenprov_reply "$cur" "email: dns: uri: upn:"
      compopt -o nospace 2>/dev/null
      _tokenprov_fix_colon "$cur"
      return
      ;;
    --out | --cert | --ca-bundle | --in | --manifest | --state | --audit-log)
      _tokenprov_files "$cur"; _tokenprov_fix_colon "$cur"; return ;;
    --csr-dir | --cert-dir | --backup-dir)
      _tokenprov_files -d "$cur"; _tokenprov_fix_colon "$cur"; return ;;
    --token | --key | --label | --id | --subject | --user | --scep-url | --ca-fingerprint | --wait | --jobs | \
      --est-url | --est-user | --expiring)
      COMPREPLY=()
      return
      ;;
  esac

  if [[ -z "$cmd" ]]; then
    if [[ "$cur" == -* ]]; then
      _tokenprov_reply "$cur" "$_tokenprov_global_opts"
    else
      _tokenprov_reply "$cur" "$_tokenprov_commands"
    fi
    return
  fi
  if [[ "$cmd" == pin ]]; then
    if [[ "$cur" == -* ]]; then _tokenprov_reply "$cur" "$_tokenprov_global_opts"; else _tokenprov_reply "$cur" "change unblock"; fi
    return
  fi
  # Options of the command not given yet (repeatable ones always), then the global ones.
  local opts="" o
  for o in $(_tokenprov_cmd_opts "$cmd"); do
    if [[ "$o" == --san || " ${words[*]} " != *" $o "* ]]; then opts+="$o "; fi
  done
  _tokenprov_reply "$cur" "$opts $_tokenprov_global_opts"
}

# With ':' in COMP_WORDBREAKS bash replaces only the part after the last ':'
# of the word: drop what comes before it from each reply.
_tokenprov_fix_colon() { # cur
  local cur=$1
  if [[ "$cur" == *:* && "$COMP_WORDBREAKS" == *:* ]]; then
    local colon_word=${cur%"${cur##*:}"} k
    for k in "${!COMPREPLY[@]}"; do COMPREPLY[k]=${COMPREPLY[k]#"$colon_word"}; done
  fi
}

complete -F _tokenprov tokenprov
