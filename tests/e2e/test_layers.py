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
    args = [sys.executable, CHECK] + (["--root", root] if root else [])
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
        # The known exception removed from the code but still listed.
        (lambda root: _drop_line(root, "src/enroll/scep_request.cpp", "token_pkey.hpp"),
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


def _drop_line(root, rel, needle):
    path = os.path.join(root, rel)
    with open(path) as f:
        lines = f.readlines()
    with open(path, "w") as f:
        f.writelines(l for l in lines if needle not in l)


if __name__ == "__main__":
    main([test_the_tree_holds, test_the_check_finds_each_kind_of_problem])
