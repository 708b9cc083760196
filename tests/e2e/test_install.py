"""`cmake --install` into a temporary prefix, then the installed binary: its
--version, a profile found in PREFIX/share/tokenprov/tokens (not the source
tree), the man page and the bash completion where man and bash-completion
look for them."""
import json
import os
import re
import shutil
import subprocess
import tempfile

from harness import BIN, SRC, SOFTHSM_MODULE, Sandbox, expect, main, sh

BUILD_DIR = os.path.dirname(os.path.abspath(BIN))


def project_version():
    with open(os.path.join(SRC, "CMakeLists.txt")) as f:
        m = re.search(r"project\(tokenprov\s+VERSION\s+([0-9.]+)", f.read())
    expect(m, "no project(tokenprov VERSION ...) in CMakeLists.txt")
    return m.group(1)


class Installed:
    """The build folder of $TOKENPROV_BIN installed into a temporary prefix."""

    def __init__(self):
        expect(os.path.exists(os.path.join(BUILD_DIR, "cmake_install.cmake")),
               "%s is not a CMake build folder (TOKENPROV_BIN=%s)" % (BUILD_DIR, BIN))
        self.prefix = tempfile.mkdtemp(prefix="tokenprov-install-")
        sh([shutil.which("cmake") or "cmake", "--install", BUILD_DIR, "--prefix", self.prefix])
        self.bin = os.path.join(self.prefix, "bin", "tokenprov")

    def path(self, *parts):
        return os.path.join(self.prefix, *parts)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        shutil.rmtree(self.prefix, ignore_errors=True)


def run(sb, binary, *args, env=None):
    e = dict(sb.env)
    e.pop("TOKENPROV_MODULE", None)  # the module must come from the installed profile
    if env:
        e.update(env)
    return subprocess.run([binary] + list(args), env=e, capture_output=True, text=True, timeout=120)


def test_installed_layout():
    with Installed() as inst:
        expect(os.access(inst.bin, os.X_OK), "no executable at %s" % inst.bin)
        for name in ("softhsm-demo", "softhsm", "opensc", "yubikey-piv", "safenet-etoken", "tpm2-pkcs11",
                     "opencryptoki"):
            expect(os.path.isfile(inst.path("share", "tokenprov", "tokens", name + ".toml")), name)
        man = inst.path("share", "man", "man1", "tokenprov.1")
        expect(os.path.isfile(man), "no man page at %s" % man)
        with open(man) as f, open(os.path.join(SRC, "docs", "man", "tokenprov.1")) as g:
            expect(f.read() == g.read(), "the installed man page is not docs/man/tokenprov.1")
        comp = inst.path("share", "bash-completion", "completions", "tokenprov")
        expect(os.path.isfile(comp), "no bash completion at %s" % comp)
        for doc in ("README.md", "user-guide.md", "it-desk-runbook.md", "key-policy.md", "architecture.md",
                    "profiles.md"):
            expect(os.path.isfile(inst.path("share", "doc", "tokenprov", doc)), "no %s in share/doc/tokenprov" % doc)


def test_installed_version():
    with Installed() as inst, Sandbox() as sb:
        r = run(sb, inst.bin, "--version")
        expect(r.returncode == 0, (r.returncode, r.stderr))
        expect(r.stdout.strip() == "tokenprov " + project_version(), repr(r.stdout))
        # The build's binary says the same.
        r2 = run(sb, BIN, "--version")
        expect(r2.stdout == r.stdout, (r.stdout, r2.stdout))


def test_installed_binary_uses_installed_profile():
    with Installed() as inst, Sandbox() as sb:
        serial = sb.create_token("installed")
        # No TOKENPROV_MODULE: the module comes from the profile the installed binary finds.
        r = run(sb, inst.bin, "list", "--profile", "softhsm-demo", "--token", "installed",
                "--pin-source", "env:TP_PIN", "--json")
        expect(r.returncode == 0, (r.returncode, r.stdout, r.stderr))
        doc = json.loads(r.stdout)
        expect([t["serial"] for t in doc["tokens"]] == [serial], doc)
        # The profile read is the installed copy, not the source tree's: break the
        # installed one and the error names the broken module path.
        demo = inst.path("share", "tokenprov", "tokens", "softhsm-demo.toml")
        with open(demo) as f:
            text = f.read()
        expect(SOFTHSM_MODULE in text, "softhsm-demo.toml names no SoftHSM module")
        with open(demo, "w") as f:
            f.write(text.replace(SOFTHSM_MODULE, "/nonexistent/installed-copy.so"))
        r = run(sb, inst.bin, "list", "--profile", "softhsm-demo")
        expect(r.returncode == 6 and "/nonexistent/installed-copy.so" in r.stderr, (r.returncode, r.stderr))
        # An unknown name lists the installed folder among those searched.
        r = run(sb, inst.bin, "list", "--profile", "no-such-profile")
        expect(r.returncode == 5 and inst.path("share", "tokenprov", "tokens") in r.stderr, (r.returncode, r.stderr))


def test_installed_man_page_and_completion_work():
    with Installed() as inst, Sandbox() as sb:
        if shutil.which("man"):
            r = subprocess.run(["man", "-M", inst.path("share", "man"), "tokenprov"], capture_output=True, text=True,
                               env=dict(sb.env, MANPAGER="cat", PAGER="cat", MANWIDTH="100"), timeout=60)
            expect(r.returncode == 0 and "EXIT STATUS" in r.stdout and "keygen" in r.stdout, (r.returncode, r.stderr))
        comp = inst.path("share", "bash-completion", "completions", "tokenprov")
        script = ('source "$1"; COMP_LINE="tokenprov ke"; COMP_POINT=${#COMP_LINE}; _tokenprov; '
                  'echo "${COMPREPLY[*]}"; COMP_LINE="tokenprov backup --compat "; COMP_POINT=${#COMP_LINE}; '
                  '_tokenprov; echo "${COMPREPLY[*]}"; complete -p tokenprov')
        r = subprocess.run(["bash", "-c", script, "bash", comp], capture_output=True, text=True, timeout=60)
        lines = r.stdout.splitlines()
        expect(r.returncode == 0 and len(lines) == 3, (r.returncode, r.stdout, r.stderr))
        expect(lines[0] == "keygen", lines)
        expect(lines[1] == "modern legacy", lines)
        expect("_tokenprov" in lines[2], lines)


if __name__ == "__main__":
    main([test_installed_layout, test_installed_version, test_installed_binary_uses_installed_profile,
          test_installed_man_page_and_completion_work])
