# SPDX-License-Identifier: Apache-2.0
"""`cmake --install` into a temporary prefix, then the installed binary: its
--version, a profile found in PREFIX/share/tokenprov/tokens (not the source
tree), the man page and the bash completion where man and bash-completion
look for them. Then the Debian package `cpack -G DEB` makes of the same build:
its fields, its contents, and lintian finding no error or warning in it."""
import gzip
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


def changelog_version():
    """The version of CHANGELOG.md's newest entry."""
    with open(os.path.join(SRC, "CHANGELOG.md")) as f:
        m = re.search(r"^## (\S+) - \d{4}-\d{2}-\d{2}$", f.read(), re.M)
    expect(m, "no '## VERSION - YYYY-MM-DD' entry in CHANGELOG.md")
    return m.group(1)


def expect_gzip_9n(path):
    """PATH is gzip made with -9n: best compression, no name or time stamp in
    its header (so the same text always gives the same bytes)."""
    with open(path, "rb") as f:
        head = f.read(10)
    expect(head[:3] == b"\x1f\x8b\x08", "%s is not gzip" % path)
    expect(head[3] & 0x08 == 0 and head[4:8] == b"\0\0\0\0", "%s has a name or time stamp (not gzip -n)" % path)
    expect(head[8] == 2, "%s is not compressed with gzip -9" % path)
    with gzip.open(path, "rt") as f:
        return f.read()


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
        man = inst.path("share", "man", "man1", "tokenprov.1.gz")
        expect(os.path.isfile(man), "no man page at %s" % man)
        with open(os.path.join(SRC, "docs", "man", "tokenprov.1")) as g:
            expect(expect_gzip_9n(man) == g.read(), "the installed man page is not docs/man/tokenprov.1")
        comp = inst.path("share", "bash-completion", "completions", "tokenprov")
        expect(os.path.isfile(comp), "no bash completion at %s" % comp)
        for doc in ("README.md", "user-guide.md", "it-desk-runbook.md", "key-policy.md", "architecture.md",
                    "profiles.md", "copyright", "changelog.gz"):
            expect(os.path.isfile(inst.path("share", "doc", "tokenprov", doc)), "no %s in share/doc/tokenprov" % doc)
        with open(inst.path("share", "doc", "tokenprov", "copyright")) as f, \
                open(os.path.join(SRC, "packaging", "copyright")) as g:
            expect(f.read() == g.read(), "the installed copyright file is not packaging/copyright")


def test_installed_version():
    with Installed() as inst, Sandbox() as sb:
        r = run(sb, inst.bin, "--version")
        expect(r.returncode == 0, (r.returncode, r.stderr))
        expect(r.stdout.strip() == "tokenprov " + project_version(), repr(r.stdout))
        # The build's binary says the same.
        r2 = run(sb, BIN, "--version")
        expect(r2.stdout == r.stdout, (r.stdout, r2.stdout))
        # So do the man page (scripts/gen-man.sh reads --version) and the changelog.
        version = project_version()
        page = expect_gzip_9n(inst.path("share", "man", "man1", "tokenprov.1.gz"))
        expect('.TH TOKENPROV 1 "" "tokenprov %s"' % version in page, "the man page is not of version " + version)
        expect(changelog_version() == version,
               "CHANGELOG.md's newest entry is %s, the project is %s: add an entry" % (changelog_version(), version))
        log = expect_gzip_9n(inst.path("share", "doc", "tokenprov", "changelog.gz"))
        expect(log.startswith("tokenprov (%s) unstable; urgency=medium\n" % version), log[:200])


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


def test_debian_package():
    """The package README's install section makes (cpack -G DEB), from this
    build: its fields, its files, and lintian clean of errors and warnings."""
    if os.environ.get("TOKENPROV_SANITIZED") == "1":
        print("sanitizer build: the package is made from the release build; skipped")
        return
    for tool in ("cpack", "dpkg-deb", "lintian"):
        expect(shutil.which(tool), "no %s: run bash scripts/setup.sh --test" % tool)
    out = tempfile.mkdtemp(prefix="tokenprov-deb-")
    try:
        sh(["cpack", "-G", "DEB", "--config", os.path.join(BUILD_DIR, "CPackConfig.cmake"), "-B", out], timeout=900)
        version = project_version()
        arch = sh(["dpkg", "--print-architecture"]).stdout.strip()
        deb = os.path.join(out, "tokenprov_%s_%s.deb" % (version, arch))
        expect(os.path.isfile(deb), "no %s; cpack made %s" % (os.path.basename(deb), os.listdir(out)))

        def field(name):
            return sh(["dpkg-deb", "-f", deb, name]).stdout.rstrip("\n")

        expect(field("Package") == "tokenprov" and field("Version") == version, (field("Package"), field("Version")))
        expect(field("Section") == "utils" and field("Priority") == "optional" and "@" in field("Maintainer"),
               (field("Section"), field("Priority"), field("Maintainer")))
        description = field("Description").split("\n")
        expect(len(description) > 4 and all(len(line) < 80 for line in description), description)
        expect(re.search(r"^ +\d+ bytes, +\d+ lines +md5sums", sh(["dpkg-deb", "-I", deb]).stdout, re.M),
               "no md5sums in the package")

        root = os.path.join(out, "root")
        sh(["dpkg-deb", "-x", deb, root])
        r = sh([os.path.join(root, "usr", "bin", "tokenprov"), "--version"])
        expect(r.stdout == "tokenprov %s\n" % version, r.stdout)
        doc = os.path.join(root, "usr", "share", "doc", "tokenprov")
        log = expect_gzip_9n(os.path.join(doc, "changelog.gz"))
        expect(log.startswith("tokenprov (%s) " % version), log[:200])
        expect_gzip_9n(os.path.join(root, "usr", "share", "man", "man1", "tokenprov.1.gz"))
        # The copyright file names every library the package depends on.
        with open(os.path.join(doc, "copyright")) as f:
            copyright_text = f.read()
        for dep in field("Depends").split(","):
            name = dep.split()[0]
            expect(name in copyright_text, "the package depends on %s, which packaging/copyright does not name" % name)

        r = subprocess.run(["lintian", "--fail-on", "error,warning", "--display-info", deb],
                           capture_output=True, text=True, timeout=900)
        print(r.stdout, end="")
        findings = [line for line in r.stdout.splitlines() if line[:2] in ("E:", "W:")]
        expect(r.returncode == 0 and not findings, "lintian (exit %d):\n%s%s" % (r.returncode, r.stdout, r.stderr))
    finally:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main([test_installed_layout, test_installed_version, test_installed_binary_uses_installed_profile,
          test_installed_man_page_and_completion_work, test_debian_package])
