# SPDX-License-Identifier: Apache-2.0
"""The documentation stays in step with the binary: the committed man page is
what scripts/gen-man.sh makes from this build's --help, the bash completion
knows every command and option, and the user guide mentions each of them."""
import difflib
import os
import re
import shutil
import subprocess

from harness import BIN, SRC, expect, main, sh

MAN = os.path.join(SRC, "docs", "man", "tokenprov.1")
COMPLETION = os.path.join(SRC, "completion", "tokenprov.bash")
GUIDE = os.path.join(SRC, "docs", "user-guide.md")


def help_text(*cmd):
    r = sh([BIN] + list(cmd) + ["--help"])
    return r.stdout


def section(text, title):
    """The entries of a CLI11 help section ("Options:", "Subcommands:")."""
    out, on = [], False
    for line in text.splitlines():
        if line.startswith(title):
            on = True
            continue
        if on and not line.strip():
            break
        if on and line.startswith("  ") and not line.startswith("   "):
            out.append(line.split()[0])
    return out


def commands():
    """[("list",), ("pin", "change"), ...] as --help lists them."""
    out = []
    for c in section(help_text(), "Subcommands:"):
        nested = section(help_text(c), "Subcommands:")
        out += [(c, n) for n in nested] if nested else [(c,)]
    return out


def long_options(*cmd):
    opts = []
    for spec in section(help_text(*cmd), "Options:"):
        opts += [o for o in spec.split(",") if o.startswith("--")]
    return opts


def test_man_page_matches_help():
    r = sh(["bash", os.path.join(SRC, "scripts", "gen-man.sh"), BIN, "-"])
    with open(MAN) as f:
        committed = f.read()
    if r.stdout != committed:
        diff = "".join(difflib.unified_diff(committed.splitlines(True), r.stdout.splitlines(True),
                                            "docs/man/tokenprov.1 (committed)", "scripts/gen-man.sh output"))
        raise AssertionError("docs/man/tokenprov.1 is out of step with --help: run scripts/gen-man.sh "
                             "and commit the result.\n" + diff[:6000])


def test_man_page_is_clean_roff():
    if not shutil.which("groff"):
        print("groff not installed; skipped")
        return
    r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", MAN], capture_output=True, text=True)
    expect(r.returncode == 0 and not r.stderr.strip(), r.stderr)
    with open(MAN) as f:
        text = f.read()
    for sec in ("NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "EXIT STATUS", "ENVIRONMENT", "FILES", "SEE ALSO"):
        expect(".SH " + sec in text or '.SH "%s"' % sec in text, "man page has no %s section" % sec)


def completion_reply(line):
    script = 'source "$1"; COMP_LINE="$2"; COMP_POINT=${#COMP_LINE}; _tokenprov; printf "%s\\n" "${COMPREPLY[@]}"'
    r = subprocess.run(["bash", "-c", script, "bash", COMPLETION, line], capture_output=True, text=True, timeout=60)
    expect(r.returncode == 0, (line, r.stderr))
    return [w for w in r.stdout.splitlines() if w]


def test_completion_knows_every_command_and_option():
    cmds = commands()
    expect(len(cmds) >= 11, cmds)
    top = completion_reply("tokenprov ")
    for c in cmds:
        expect(c[0] in top, "completion does not offer the command %s: %s" % (c[0], top))
    glob = completion_reply("tokenprov --")
    for o in long_options():
        expect(o in glob, "completion does not offer the global option %s" % o)
    for c in cmds:
        offered = completion_reply("tokenprov %s --" % " ".join(c))
        for o in long_options(*c):
            expect(o in offered, "completion does not offer %s for '%s': %s" % (o, " ".join(c), offered))
    expect(completion_reply("tokenprov keygen --algorithm ") ==
           ["rsa2048", "rsa3072", "rsa4096", "ec-p256", "ec-p384", "ed25519"], "algorithm names")
    expect(completion_reply("tokenprov backup --compat ") == ["modern", "legacy"], "compat values")
    expect(completion_reply("tokenprov list --pin-source ") == ["env:", "file:", "fd:", "prompt"], "secret sources")
    # File options complete file names.
    expect("CMakeLists.txt" in completion_reply("tokenprov pickup --cert " + os.path.join(SRC, "CMake"))
           or os.path.join(SRC, "CMakeLists.txt") in completion_reply("tokenprov pickup --cert " + os.path.join(SRC, "CMake")),
           "file completion for --cert")


def test_user_guide_mentions_every_command_and_option():
    with open(GUIDE) as f:
        guide = f.read()
    for c in commands():
        name = " ".join(c)
        expect(re.search(r"^#+ .*`?tokenprov %s`?" % re.escape(name), guide, re.M) or
               re.search(r"^#+ .*\b%s\b" % re.escape(name), guide, re.M),
               "docs/user-guide.md has no heading for '%s'" % name)
        for o in long_options(*c):
            expect(o in guide, "docs/user-guide.md does not mention %s of '%s'" % (o, name))
    for o in long_options():
        expect(o in guide, "docs/user-guide.md does not mention the global option %s" % o)


if __name__ == "__main__":
    main([test_man_page_matches_help, test_man_page_is_clean_roff, test_completion_knows_every_command_and_option,
          test_user_guide_mentions_every_command_and_option])
