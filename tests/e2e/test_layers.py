# SPDX-License-Identifier: Apache-2.0
"""The include directions of docs/architecture.md hold (scripts/check-layers.py on the source
tree), and the check finds what it should on scratch copies: an arrow that runs upward, a layer
a folder may not use, a file outside the layer folders, and an exception that is no longer
needed."""
import os
import shutil
import subprocess
import sys
import tempfile

from harness import SRC, expect, main

CHECK = os.path.join(SRC, "scripts", "check-layers.py")


def run(root=None):
    # A scratch copy is checked by its own copy of the script (a case may edit its KNOWN list).
    script = os.path.join(root, "scripts", "check-layers.py") if root else CHECK
    args = [sys.executable, script] + (["--root", root] if root else [])
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


def scratch():
    root = tempfile.mkdtemp(prefix="tokenprov-layers-")
    for d in ("src", "include", "scripts"):
        shutil.copytree(os.path.join(SRC, d), os.path.join(root, d))
    return root


def append(root, rel, text):
    with open(os.path.join(root, rel), "a") as f:
        f.write(text)


def test_the_tree_holds():
    r = run()
    expect(r.returncode == 0 and "every include runs down the layers" in r.stdout, (r.returncode, r.stdout, r.stderr))


def test_the_check_finds_each_kind_of_problem():
    cases = [
        # The PKCS#11 layer reaching up into a flow.
        (lambda root: append(root, "src/p11/uri.cpp", '#include "tokenprov/fleet.hpp"\n'),
         "src/p11/uri.cpp (p11) includes fleet.hpp (flows): an arrow that runs upward"),
        # The PKCS#11 layer using OpenSSL's glue (a layer it may not use).
        (lambda root: append(root, "include/tokenprov/p11/module.hpp", '#include "tokenprov/ossl.hpp"\n'),
         "include/tokenprov/p11/module.hpp (p11) includes ossl.hpp (crypto): a layer it may not use"),
        # A source file outside every layer folder.
        (lambda root: open(os.path.join(root, "src", "loose.cpp"), "w").close(),
         "src/loose.cpp: not in a layer folder"),
        # A known exception listed that the code no longer has.
        (lambda root: _add_known(root, "src/enroll/scep.cpp", "token_pkey.hpp"),
         "no longer occurs"),
    ]
    for change, want in cases:
        root = scratch()
        try:
            change(root)
            r = run(root)
            expect(r.returncode == 1 and want in r.stderr, (want, r.returncode, r.stderr))
        finally:
            shutil.rmtree(root, ignore_errors=True)


def _add_known(root, rel, header):
    path = os.path.join(root, "scripts", "check-layers.py")
    with open(path) as f:
        text = f.read()
    expect("KNOWN = {\n" in text, "check-layers.py has no KNOWN = { line")
    with open(path, "w") as f:
        f.write(text.replace("KNOWN = {\n", "KNOWN = {\n    (%r, %r): \"a test entry\",\n" % (rel, header), 1))


if __name__ == "__main__":
    main([test_the_tree_holds, test_the_check_finds_each_kind_of_problem])
