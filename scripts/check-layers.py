#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Checks that the #include lines of the library run down the layers of docs/architecture.md.

    python3 scripts/check-layers.py [--root DIR] [--list]

A file's layer is its folder under src/ (util, p11, crypto, enroll, ops, flows, cli); a header
include/tokenprov/NAME.hpp belongs to the layer of src/*/NAME.cpp (include/tokenprov/p11/* to p11;
the few headers without a .cpp are in HEADER_LAYER). The layers, each with what it may include
besides itself (MAY_USE):

    cli -> flows -> ops -> p11 | enroll -> crypto -> util      (p11 -> util; enroll -> crypto)

The PKCS#11 layer knows no OpenSSL and no enrollment protocol; the protocols know OpenSSL but no
PKCS#11 (a token key reaches them as an EVP_PKEY). Every arrow that breaks this is an error, except those in KNOWN,
each with the reason it is there; an entry of KNOWN that no longer occurs is an error too (so the
list only shrinks). --list prints every file with its layer. Exit 0 when all holds, 1 otherwise.
"""
import os
import re
import sys

MAY_USE = {
    "util": set(),
    "p11": {"util"},
    "crypto": {"util"},
    "enroll": {"util", "crypto"},
    "ops": {"util", "p11", "crypto", "enroll"},
    "flows": {"util", "p11", "crypto", "enroll", "ops"},
    "cli": {"util", "p11", "crypto", "enroll", "ops", "flows"},
}
RANK = {k: len(v) for k, v in MAY_USE.items()}
# Headers with no .cpp of the same name.
HEADER_LAYER = {
    "error.hpp": "util",  # src/util/error.cpp (src/p11/error.cpp is p11/error.hpp's)
    "p11/pkcs11.hpp": "p11",
    "p11/function_list.hpp": "p11",
}
# (including file, included header) -> why the upward or sideways arrow is there for now.
KNOWN = {
}

INCLUDE = re.compile(r'^\s*#\s*include\s+"(?:tokenprov/)?([^"]+)"', re.M)


def layer_of_source(path):
    parts = path.split("/")
    if parts[0] == "src" and len(parts) >= 3 and parts[1] in RANK:
        return parts[1]
    return None


def main(argv):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if "--root" in argv:
        root = argv[argv.index("--root") + 1]
    errors = []
    files = {}  # relative path -> layer
    cpp_layer = {}  # stem -> layer
    for dirpath, _, names in os.walk(os.path.join(root, "src")):
        for n in sorted(names):
            if not n.endswith((".cpp", ".hpp")):
                continue
            rel = os.path.relpath(os.path.join(dirpath, n), root)
            layer = layer_of_source(rel)
            if layer is None:
                errors.append("%s: not in a layer folder (src/%s/)" % (rel, "|".join(RANK)))
                continue
            files[rel] = layer
            if n.endswith(".cpp"):
                cpp_layer.setdefault(os.path.splitext(n)[0], layer)
    header_layer = {}  # name as included ("keys.hpp", "p11/module.hpp") -> layer
    inc_root = os.path.join(root, "include", "tokenprov")
    for dirpath, _, names in os.walk(inc_root):
        for n in sorted(names):
            rel_inc = os.path.relpath(os.path.join(dirpath, n), inc_root)
            if rel_inc in HEADER_LAYER:
                layer = HEADER_LAYER[rel_inc]
            elif rel_inc.startswith("p11/"):
                layer = "p11"
            else:
                layer = cpp_layer.get(os.path.splitext(n)[0])
            if layer is None:
                errors.append("include/tokenprov/%s: no src/*/%s.cpp gives it a layer; add it to HEADER_LAYER"
                              % (rel_inc, os.path.splitext(n)[0]))
                continue
            header_layer[rel_inc] = layer
            files[os.path.join("include", "tokenprov", rel_inc)] = layer
    # Private headers next to their sources (src/crypto/pkcs12_detail.hpp) are included by bare name.
    for rel, layer in files.items():
        if rel.startswith("src/") and rel.endswith(".hpp"):
            header_layer.setdefault(os.path.basename(rel), layer)
    if "--list" in argv:
        for rel in sorted(files):
            print("%-7s %s" % (files[rel], rel))
    seen_known = set()
    for rel, layer in sorted(files.items()):
        with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as f:
            text = f.read()
        for inc in INCLUDE.findall(text):
            if inc.startswith("../"):
                inc = os.path.basename(inc)  # a private header of another folder ("../enroll/http_post.hpp")
            target = header_layer.get(inc)
            if target is None:
                continue  # a test-side or third-party header
            ok = target == layer or target in MAY_USE[layer]
            if ok:
                continue
            if (rel, inc) in KNOWN:
                seen_known.add((rel, inc))
                continue
            errors.append("%s (%s) includes %s (%s): %s" % (
                rel, layer, inc, target,
                "an arrow that runs upward" if RANK[target] > RANK[layer] else "a layer it may not use"))
    for k in KNOWN:
        if k not in seen_known:
            errors.append("KNOWN lists %s -> %s, which no longer occurs: remove it from scripts/check-layers.py" % k)
    for e in errors:
        print("check-layers: " + e, file=sys.stderr)
    if errors:
        print("check-layers: %d problem(s); the layers are in docs/architecture.md" % len(errors), file=sys.stderr)
        return 1
    print("check-layers: %d files, every include runs down the layers (%d known exception(s))"
          % (len(files), len(KNOWN)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
