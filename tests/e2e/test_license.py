# SPDX-License-Identifier: Apache-2.0
"""The license is in place and stays so: LICENSE is the Apache-2.0 text,
packaging/copyright (the package's machine-readable copyright file) says the
same, every source, script and CMake file carries its SPDX line
(scripts/check-spdx.sh), and the check and scripts/add-spdx.sh do what they
say on scratch trees."""
import os
import shutil
import subprocess
import tempfile

from harness import SRC, expect, main, sh

CHECK = os.path.join(SRC, "scripts", "check-spdx.sh")
ADD = os.path.join(SRC, "scripts", "add-spdx.sh")
SPDX_HASH = "# SPDX-License-Identifier: Apache-2.0"
SPDX_SLASH = "// SPDX-License-Identifier: Apache-2.0"


def run(script, *args):
    return subprocess.run(["bash", script] + list(args), capture_output=True, text=True, timeout=120)


def git_tree(files):
    """A scratch git repository holding FILES ({path: text}); its path."""
    root = tempfile.mkdtemp(prefix="tokenprov-spdx-")
    for path, text in files.items():
        full = os.path.join(root, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as f:
            f.write(text)
    sh(["git", "init", "-q", root])
    sh(["git", "-C", root, "add", "-A"])
    return root


def read(root, path):
    with open(os.path.join(root, path)) as f:
        return f.read()


def test_license_file_is_apache_2():
    with open(os.path.join(SRC, "LICENSE")) as f:
        text = f.read()
    expect("Apache License" in text and "Version 2.0, January 2004" in text, "LICENSE is not the Apache-2.0 text")
    common = "/usr/share/common-licenses/Apache-2.0"  # Debian's copy (base-files)
    if os.path.exists(common):
        with open(common) as f:
            expect(f.read() == text, "LICENSE differs from %s" % common)
    with open(os.path.join(SRC, "README.md")) as f:
        readme = f.read()
    expect("## License" in readme and "Apache-2.0" in readme.split("## License", 1)[1], "README has no License section")


def test_copyright_file_is_machine_readable():
    """packaging/copyright: deb822 paragraphs in copyright-format 1.0, Files: *
    under Apache-2.0, every License named by a paragraph given its text."""
    with open(os.path.join(SRC, "packaging", "copyright")) as f:
        text = f.read()
    paragraphs = []
    for block in text.strip("\n").split("\n\n"):
        fields, name = {}, None
        for line in block.split("\n"):
            expect(line and not line.startswith("#"), "empty or comment line inside a paragraph: %r" % block[:60])
            if line[0] in " \t":
                expect(name, "continuation line without a field: %r" % line)
                fields[name] += "\n" + line
            else:
                name, _, value = line.partition(":")
                expect(_ and name and " " not in name, "not a field: %r" % line)
                expect(name not in fields, "field %s twice in one paragraph" % name)
                fields[name] = value.strip()
        paragraphs.append(fields)
    head = paragraphs[0]
    expect(head.get("Format") == "https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/", head)
    expect(head.get("Upstream-Name") == "tokenprov", head)
    files = [p for p in paragraphs[1:] if "Files" in p]
    expect(len(files) == 1 and files[0]["Files"] == "*" and files[0]["License"] == "Apache-2.0", files)
    expect(files[0]["Copyright"].strip(), "Files: * has no Copyright")
    texts = {p["License"].split("\n")[0]: p["License"] for p in paragraphs[1:] if "Files" not in p}
    expect("Apache-2.0" in texts and "/usr/share/common-licenses/Apache-2.0" in texts["Apache-2.0"], texts.keys())
    for line in text.splitlines():
        expect(len(line) < 80, "line over 79 characters: %r" % line)


def test_sources_carry_spdx_headers():
    """The tree itself (fails until `bash scripts/add-spdx.sh` has run on it)."""
    r = run(CHECK, SRC)
    expect(r.returncode == 0, "scripts/check-spdx.sh failed (%d):\n%s" % (r.returncode, r.stderr[-6000:]))


def test_spdx_check_and_add_on_a_scratch_tree():
    root = git_tree({
        "src/a.cpp": "#include <x>\n",
        "include/b.hpp": "#pragma once\n",
        "c.c": "/* c */\n",
        "d.h": "",
        "tool.py": "#!/usr/bin/env python3\nprint('ok')\n",
        "mod.py": '"""doc"""\nX = 1\n',
        "run.sh": "#!/bin/sh\necho ok\n",
        "CMakeLists.txt": "project(x)\n",
        "sub/CMakeLists.txt": "# sub\n",
        "m.cmake": "set(A 1)\n",
        "p.toml": "a = 1\n",
        ".ci/run": "#!/usr/bin/env bash\ntrue\n",
        "completion/x.bash": "complete -F _x x\n",
        "README.md": "# readme\n",
        "tests/fuzz/corpus/profile/seed.toml": "b = 2\n",
    })
    try:
        os.chmod(os.path.join(root, "run.sh"), 0o755)
        r = run(CHECK, root)
        expect(r.returncode == 1 and "13 files lack" in r.stderr, (r.returncode, r.stderr))
        r = run(ADD, root)
        expect(r.returncode == 0 and "to 13 files" in r.stderr, (r.returncode, r.stderr))
        r = run(CHECK, root)
        expect(r.returncode == 0, (r.returncode, r.stderr))
        expect(read(root, "src/a.cpp") == SPDX_SLASH + "\n#include <x>\n", read(root, "src/a.cpp"))
        expect(read(root, "d.h") == SPDX_SLASH + "\n", read(root, "d.h"))
        expect(read(root, "tool.py") == "#!/usr/bin/env python3\n" + SPDX_HASH + "\nprint('ok')\n", read(root, "tool.py"))
        expect(read(root, "mod.py").startswith(SPDX_HASH + '\n"""doc"""'), read(root, "mod.py"))
        expect(read(root, ".ci/run").split("\n")[:2] == ["#!/usr/bin/env bash", SPDX_HASH], read(root, ".ci/run"))
        expect(os.stat(os.path.join(root, "run.sh")).st_mode & 0o777 == 0o755, "add-spdx lost run.sh's mode")
        r = subprocess.run([os.path.join(root, "run.sh")], capture_output=True, text=True, timeout=60)
        expect(r.stdout == "ok\n", (r.stdout, r.stderr))
        expect(read(root, "README.md") == "# readme\n", "README.md is not covered but was changed")
        expect(read(root, "tests/fuzz/corpus/profile/seed.toml") == "b = 2\n", "a fuzz seed was changed")
        # Idempotent: a second run changes nothing.
        before = {p: read(root, p) for p in ("src/a.cpp", "tool.py", "CMakeLists.txt")}
        r = run(ADD, root)
        expect(r.returncode == 0 and "to 0 files" in r.stderr, r.stderr)
        expect(all(read(root, p) == t for p, t in before.items()), "the second add-spdx run changed files")
        # One header removed: the check fails and names that file only.
        with open(os.path.join(root, "sub", "CMakeLists.txt"), "w") as f:
            f.write("# sub\n")
        r = run(CHECK, root)
        expect(r.returncode == 1 and "sub/CMakeLists.txt: no" in r.stderr and "1 of 13" in r.stderr, r.stderr)
        # Another license, or the line further down, is not the header either.
        with open(os.path.join(root, "m.cmake"), "w") as f:
            f.write("# SPDX-License-Identifier: MIT\nset(A 1)\n")
        with open(os.path.join(root, "src", "a.cpp"), "w") as f:
            f.write("#include <x>\n" + SPDX_SLASH + "\n")
        r = run(CHECK, root)
        expect(r.returncode == 1 and "m.cmake: has '# SPDX-License-Identifier: MIT'" in r.stderr
               and "src/a.cpp: no" in r.stderr and "3 of 13" in r.stderr, r.stderr)
        # A file not in git is not checked (the check is of what is committed).
        with open(os.path.join(root, "new.cpp"), "w") as f:
            f.write("int x;\n")
        r = run(CHECK, "--missing", root)
        expect(r.returncode == 0 and r.stdout.split() == ["src/a.cpp", "sub/CMakeLists.txt"], r.stdout)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_add_spdx_on_a_copy_of_this_tree():
    """What the lead runs on main: after add-spdx the check passes, and the
    headers break no script, Python file or TOML profile."""
    listed = subprocess.run(["git", "-C", SRC, "ls-files", "-z"], capture_output=True, timeout=60)
    expect(listed.returncode == 0, "the source tree is not a git work tree: %s" % listed.stderr)
    root = tempfile.mkdtemp(prefix="tokenprov-spdx-tree-")
    try:
        files = [p for p in listed.stdout.decode().split("\0") if p and os.path.isfile(os.path.join(SRC, p))]
        for p in files:
            os.makedirs(os.path.dirname(os.path.join(root, p)), exist_ok=True)
            shutil.copy2(os.path.join(SRC, p), os.path.join(root, p))
        sh(["git", "init", "-q", root])
        sh(["git", "-C", root, "add", "-A"])
        r = run(os.path.join(root, "scripts", "add-spdx.sh"))
        expect(r.returncode == 0, r.stderr)
        r = run(os.path.join(root, "scripts", "check-spdx.sh"))
        expect(r.returncode == 0, r.stderr[-6000:])
        covered = [p for p in files if p.endswith((".sh", ".py", ".toml")) or p in (".ci/run",)
                   or p.startswith("completion/")]
        for p in covered:
            full = os.path.join(root, p)
            if p.endswith(".py"):
                sh(["python3", "-c", "import ast, sys; ast.parse(open(sys.argv[1]).read())", full])
            elif p.endswith(".toml"):
                sh(["python3", "-c", "import sys, tomllib; tomllib.load(open(sys.argv[1], 'rb'))", full])
            else:
                sh(["bash", "-n", full])
            with open(os.path.join(SRC, p)) as f:
                first = f.readline()
            if first.startswith("#!"):
                expect(read(root, p).startswith(first), "%s: the #! line is no longer first" % p)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main([test_license_file_is_apache_2, test_copyright_file_is_machine_readable, test_sources_carry_spdx_headers,
          test_spdx_check_and_add_on_a_scratch_tree, test_add_spdx_on_a_copy_of_this_tree])
