#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Turns the module matrix's results (<module>.json files written by the test_matrix_*.py
scripts into $TOKENPROV_MATRIX_OUT) into the table of docs/modules.md.

    python3 tests/modules/gen_table.py build/matrix             # prints the generated part
    python3 tests/modules/gen_table.py build/matrix --doc docs/modules.md   # rewrites it in place

The generated part sits between the markers <!-- matrix:begin --> and <!-- matrix:end -->;
the text around them is kept."""

import argparse
import datetime
import glob
import json
import os
import sys

ORDER = ["softhsm-direct", "softhsm-proxy", "tpm2", "opencryptoki", "nss"]
TITLES = {"softhsm-direct": "SoftHSM2", "softhsm-proxy": "SoftHSM2 via p11-kit-proxy",
          "tpm2": "tpm2-pkcs11 (swtpm)", "opencryptoki": "opencryptoki soft token",
          "nss": "NSS softoken via p11-kit-proxy"}
BEGIN, END = "<!-- matrix:begin -->", "<!-- matrix:end -->"


def esc(text):
    return str(text).replace("|", "\\|").replace("\n", " ").strip()


def cell_text(c):
    out = c["outcome"]
    if out == "works":
        return "works"
    if out == "limit":
        text = "limit: " + c.get("limit", "")
        if c.get("evidence"):
            text += " (%s)" % c["evidence"]
        return esc(text + "; exit %s" % c.get("exit", "?"))
    if out == "n/a":
        return esc("n/a: " + c.get("detail", ""))
    detail = (c.get("detail") or "").splitlines()
    return esc("**fails today** (expected %s): %s" % (c.get("expected"), detail[0][:160] if detail else ""))


def load(folder):
    docs = {}
    for path in glob.glob(os.path.join(folder, "*.json")):
        with open(path) as f:
            d = json.load(f)
        docs[d["module"]] = d
    return docs


def render(docs):
    mods = [m for m in ORDER if m in docs] + sorted(m for m in docs if m not in ORDER)
    ops = []
    for m in mods:
        for c in docs[m]["cells"]:
            if c["op"] not in ops:
                ops.append(c["op"])
    lines = ["| operation | " + " | ".join(TITLES.get(m, m) for m in mods) + " |",
             "|---|" + "---|" * len(mods)]
    for op in ops:
        row = []
        for m in mods:
            c = next((x for x in docs[m]["cells"] if x["op"] == op), None)
            row.append(cell_text(c) if c else "not run")
        lines.append("| `%s` | %s |" % (op, " | ".join(row)))
    lines.append("")
    sanitized = {m: docs[m].get("sanitized") in ("1", "ON", "TRUE", "true") for m in mods}
    when = max(os.path.getmtime(docs[m]["_path"]) for m in mods) if all("_path" in docs[m] for m in mods) else None
    lines.append("Measured %s with the %s build; seconds per module: %s." % (
        datetime.datetime.fromtimestamp(when, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC") if when
        else "in one run", "sanitizer" if any(sanitized.values()) else "release",
        ", ".join("%s %s" % (m, docs[m]["info"].get("seconds", "?")) for m in mods)))
    lines.append("")
    lines.append("### What each cell checked")
    lines.append("")
    for m in mods:
        d = docs[m]
        lib = "; ".join(d["info"].get("library", [])[1:4])
        lines.append("**%s** — `%s`%s" % (TITLES.get(m, m), d["module_path"], (" (%s)" % esc(lib)) if lib else ""))
        lines.append("")
        for c in d["cells"]:
            detail = c.get("detail") or c.get("message") or ""
            if c["outcome"] == "limit":
                detail = "refused with exit %s: %s" % (c.get("exit"), c.get("message", ""))
            lines.append("- `%s`: %s" % (c["op"], esc(detail)[:400]))
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", help="where the <module>.json files are ($TOKENPROV_MATRIX_OUT)")
    ap.add_argument("--doc", help="rewrite the generated part of this markdown file")
    a = ap.parse_args()
    docs = load(a.folder)
    if not docs:
        sys.exit("no <module>.json in %s: run the matrix first (ctest -L modules)" % a.folder)
    for path in glob.glob(os.path.join(a.folder, "*.json")):
        with open(path) as f:
            docs[json.load(f)["module"]]["_path"] = path
    table = render(docs)
    if not a.doc:
        sys.stdout.write(table)
        return
    text = open(a.doc).read()
    if BEGIN not in text or END not in text:
        sys.exit("%s has no %s ... %s markers" % (a.doc, BEGIN, END))
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    new = head + BEGIN + "\n" + table + END + tail
    tmp = a.doc + ".tmp"
    with open(tmp, "w") as f:
        f.write(new)
    os.replace(tmp, a.doc)
    failed = [(m, c["op"]) for m, d in docs.items() for c in d["cells"] if not c["ok"]]
    if failed:
        print("note: failing cells: %s" % ", ".join("%s/%s" % x for x in failed), file=sys.stderr)


if __name__ == "__main__":
    main()
