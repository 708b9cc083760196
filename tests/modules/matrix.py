# SPDX-License-Identifier: Apache-2.0
"""The module matrix: the built tokenprov binary through every operation on one PKCS#11 module.

A test script per module (test_matrix_<module>.py) calls run_module(NAME). Each operation is a
cell with a stated expectation, decided from the module's known facts (envs.Env.limits):
  works  - the operation succeeds and an independent reader (pkcs11-tool, openssl) confirms it;
  limit  - the module can't do it: tokenprov must refuse cleanly (the contract exit code given
           in the cell, a message naming the limit) and leave the token as it was (`list --json`
           before and after, objects included).
A cell whose outcome differs from its expectation fails the test. The results go to
$TOKENPROV_MATRIX_OUT/<module>.json when that variable names a folder; gen_table.py turns those
files into docs/modules.md.

PINs reach tokenprov and pkcs11-tool only through environment variables (env:VAR)."""

import json
import os
import re
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "e2e"))

import envs  # noqa: E402

BIN = os.environ.get("TOKENPROV_BIN", "tokenprov")
SRC = os.environ.get("TOKENPROV_SOURCE_DIR", os.path.dirname(os.path.dirname(HERE)))
OUT = os.environ.get("TOKENPROV_MATRIX_OUT", "")

WRONG_PIN = "999888"        # never a PIN of any token here
NEW_PIN = "24680246"
BACKUP_PASSWORD = "matrix-backup-pw"
SECRETS = {"TP_WRONG_PIN": WRONG_PIN, "TP_NEW_PIN": NEW_PIN, "TP_BACKUP_PW": BACKUP_PASSWORD}


class CellFailed(AssertionError):
    pass


def check(cond, msg):
    if not cond:
        raise CellFailed(msg)


def first_line(text):
    for line in (text or "").splitlines():
        line = line.strip()
        if line:
            return line[:300]
    return ""


def tool_message(r):
    """tokenprov's own message (its "tokenprov: ..." line), else the first line of stderr."""
    for line in (r.stderr or "").splitlines():
        if line.startswith("tokenprov:"):
            return line[len("tokenprov:"):].strip()[:300]
    return first_line(r.stderr)


def own_message(r):
    """What tokenprov itself said about a failure: the --json error's message and hint (one JSON
    object, or the failed lines of a fleet run), else its "tokenprov:" lines. Modules print to
    stderr too; that is not tokenprov naming a limit."""
    texts = []
    for line in (r.stdout or "").splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and isinstance(doc.get("error"), dict):
            check(doc.get("ok") is False, "an error object with ok true: %s" % line[:300])
            texts.append("%s %s" % (doc["error"].get("message", ""), doc["error"].get("hint", "")))
    if not texts:
        try:
            doc = json.loads(r.stdout)
            if isinstance(doc, dict) and isinstance(doc.get("error"), dict):
                check(doc.get("ok") is False and doc["error"].get("code") == r.returncode,
                      "JSON error object disagrees with the exit code: %s" % r.stdout[:300])
                texts.append("%s %s" % (doc["error"].get("message", ""), doc["error"].get("hint", "")))
        except ValueError:
            pass
    if not texts:
        texts = [tool_message(r)]
    return " ".join(t.strip() for t in texts)


def describe(r):
    """exit code and what tokenprov said (its own message, not the module's noise)."""
    msg = ""
    for line in (r.stderr or "").splitlines():
        if line.startswith("tokenprov:"):
            msg = line[len("tokenprov:"):].strip()
    if not msg:
        lines = [l.strip() for l in (r.stderr or "").splitlines() if l.strip()]
        msg = lines[-1] if lines else ""
    return "exit %d: %s" % (r.returncode, msg[:400])


class Result(dict):
    """One cell's record: op, expected, outcome (works|limit|n/a|fails), and details."""


class Matrix:
    def __init__(self, env):
        self.env = env
        self.cells = []
        self.info = {}
        self.mechs = {}
        self.ca = None

    # ---- running tools -------------------------------------------------------------------------
    def tp(self, *args, module=True, env=None, timeout=600):
        argv = [BIN] + list(args)
        if module:
            argv += ["--module", self.env.module]
        e = dict(SECRETS)
        if env:
            e.update(env)
        return self.env.run(argv, env=e, timeout=timeout)

    def tpj(self, *args, **kw):
        """tokenprov with --json, exit 0 wanted; returns the document."""
        r = self.tp(*args, "--json", **kw)
        check(r.returncode == 0, "tokenprov %s: %s" % (" ".join(a for a in args[:2] if not a.startswith("-")),
                                                        describe(r)))
        try:
            return json.loads(r.stdout)
        except ValueError:
            raise CellFailed("tokenprov %s: stdout is not JSON: %r" % (" ".join(args), r.stdout[:500]))

    def p11(self, *args, token=None, login=True, pin_var="TP_PIN", check_ok=True, env=None):
        """pkcs11-tool on the env's module (the independent reader); PIN through env:VAR."""
        argv = ["pkcs11-tool", "--module", self.env.module]
        if token is not None:
            argv += ["--token-label", token]
        if login:
            argv += ["--login", "--pin", "env:" + pin_var]
        e = dict(SECRETS)
        if env:
            e.update(env)
        r = self.env.run(argv + list(args), env=e)
        if check_ok:
            check(r.returncode == 0, "pkcs11-tool %s: exit %d: %s %s" % (" ".join(args), r.returncode,
                                                                          r.stdout[-800:], r.stderr[-800:]))
        return r

    def sh(self, argv, **kw):
        kw.setdefault("text", True)
        r = subprocess.run(argv, capture_output=True, **kw)
        check(r.returncode == 0, "%s: exit %d: %s" % (" ".join(argv), r.returncode, str(r.stderr)[-500:]))
        return r

    # ---- token views ---------------------------------------------------------------------------
    def tokens(self):
        return self.tpj("list")["tokens"]

    def token(self, label, login=True):
        args = ["list", "--token", label]
        if login:
            args += ["--pin-source", "env:TP_PIN"]
        toks = self.tpj(*args)["tokens"]
        check(len(toks) == 1, "list --token %s: %d tokens" % (label, len(toks)))
        return toks[0]

    def snapshot(self, label=None, login=True):
        """What must not change when an operation is refused: every token (no login), and the
        selected token's objects (login)."""
        snap = {"tokens": self.tokens()}
        if label is not None:
            snap["selected"] = self.token(label, login=login)
        return snap

    def p11_objects(self, label, login=True, pin_var="TP_PIN"):
        r = self.p11("--list-objects", token=label, login=login, pin_var=pin_var)
        return parse_objects(r.stdout)

    # ---- module facts (evidence) ---------------------------------------------------------------
    def read_mechanisms(self):
        r = self.p11("-M", login=False, check_ok=False)
        self.mechs = parse_mechanisms(r.stdout)
        return self.mechs

    def mech_evidence(self, name):
        m = self.mechs.get(name)
        if m is None:
            return "C_GetMechanismList: no %s" % pkcs11_name(name)
        lo, hi = m["size"] if m["size"] else ("?", "?")
        return "C_GetMechanismInfo(%s): key sizes %s-%s" % (pkcs11_name(name), lo, hi)

    # ---- cells ---------------------------------------------------------------------------------
    def cell(self, op, expected, fn):
        """Runs fn() -> dict (detail fields); records it. expected: 'works', 'limit' or 'n/a'."""
        t0 = time.monotonic()
        rec = Result(op=op, expected=expected)
        try:
            out = fn() or {}
            rec.update(out)
            rec.setdefault("outcome", expected)
            rec["ok"] = True
        except Exception as e:  # a cell's failure is recorded; the others still run
            rec["outcome"] = "fails"
            rec["ok"] = False
            rec["detail"] = str(e)[:1500]
            if not isinstance(e, CellFailed):
                rec["detail"] = traceback.format_exc()[-1500:]
        for k in ("detail", "message", "evidence"):
            if isinstance(rec.get(k), str):
                rec[k] = rec[k].replace(self.env.dir, "$DIR")
        rec["seconds"] = round(time.monotonic() - t0, 1)
        self.cells.append(rec)
        print("%-5s %-22s expected %-5s -> %s (%.1f s)%s" % (
            "ok" if rec["ok"] else "FAIL", op, expected, rec["outcome"], rec["seconds"],
            "" if rec["ok"] else "\n      " + rec["detail"].replace("\n", "\n      ")), flush=True)
        return rec

    def refused(self, r, codes, words, before_label=None, before=None, limit="", evidence=""):
        """The checks of a limit cell: exit code in CODES, tokenprov's own message (the --json error,
        not what the module printed) naming the limit (one of WORDS, case-insensitive, whole
        words), and the token unchanged (BEFORE vs now)."""
        check(r.returncode in codes, "wanted a clean refusal (exit %s), got %s" % (
            " or ".join(str(c) for c in codes), describe(r)))
        msg = own_message(r)
        # Whole words; an upper-case word (SO, CKU_SO) must appear in upper case.
        check(any(re.search(r"(?<![A-Za-z0-9_])%s(?![A-Za-z0-9_])" % re.escape(w), msg,
                            0 if w.isupper() else re.I) for w in words),
              "the refusal names no limit (wanted one of %s): exit %d: %s" % (words, r.returncode, msg[:300]))
        if before is not None:
            after = self.snapshot(before_label)
            check(after == before, "the refused operation changed the token:\nbefore %s\nafter  %s" % (
                json.dumps(before)[:1500], json.dumps(after)[:1500]))
        return {"outcome": "limit", "exit": r.returncode, "message": msg[:300], "limit": limit,
                "evidence": evidence}

    # ---- the report ----------------------------------------------------------------------------
    def report(self):
        doc = {"module": self.env.name, "module_path": self.env.module, "info": self.info,
               "sanitized": os.environ.get("TOKENPROV_SANITIZED", ""), "cells": self.cells}
        if OUT:
            os.makedirs(OUT, exist_ok=True)
            path = os.path.join(OUT, self.env.name + ".json")
            tmp = path + ".tmp"
            with open(tmp, "w") as f:
                json.dump(doc, f, indent=1, sort_keys=True)
                f.write("\n")
            os.replace(tmp, path)
        return doc


# ---- parsing pkcs11-tool output -------------------------------------------------------------------

PKCS11_NAMES = {
    "RSA-PKCS-KEY-PAIR-GEN": "CKM_RSA_PKCS_KEY_PAIR_GEN",
    "ECDSA-KEY-PAIR-GEN": "CKM_EC_KEY_PAIR_GEN",
    "EC-EDWARDS-KEY-PAIR-GEN": "CKM_EC_EDWARDS_KEY_PAIR_GEN",
    "AES-KEY-WRAP": "CKM_AES_KEY_WRAP",
    "AES-KEY-WRAP-PAD": "CKM_AES_KEY_WRAP_PAD",
}


def pkcs11_name(tool_name):
    return PKCS11_NAMES.get(tool_name, tool_name)


def parse_mechanisms(text):
    """pkcs11-tool -M: {name: {"size": (min, max) or None, "flags": [...]}}."""
    mechs = {}
    for line in text.splitlines():
        if not line.startswith("  ") or line.startswith("   "):
            continue
        line = line.strip()
        m = re.match(r"([^,]+)(?:, keySize=\{(\d+),(\d+)\})?(.*)$", line)
        if not m:
            continue
        name = m.group(1).strip()
        size = (int(m.group(2)), int(m.group(3))) if m.group(2) else None
        flags = [f.strip() for f in m.group(4).split(",") if f.strip()]
        mechs[name] = {"size": size, "flags": flags}
    return mechs


OBJ_HEADS = {"Private Key Object": "private-key", "Public Key Object": "public-key",
             "Certificate Object": "certificate", "Secret Key Object": "secret-key", "Data object": "data"}


def parse_objects(text):
    """pkcs11-tool --list-objects: list of {class, label, id, usage:set, access:set, type}."""
    objs = []
    cur = None
    for line in text.splitlines():
        head = next((c for h, c in OBJ_HEADS.items() if line.startswith(h)), None)
        if head:
            cur = {"class": head, "label": "", "id": "", "usage": set(), "access": set(), "type": line}
            objs.append(cur)
            continue
        if cur is None or ":" not in line:
            continue
        key, _, val = line.strip().partition(":")
        key, val = key.strip().lower(), val.strip()
        if key == "label":
            cur["label"] = val
        elif key == "id":
            cur["id"] = val.lower()
        elif key == "usage":
            cur["usage"] = {w.strip() for w in val.split(",") if w.strip() and w.strip() != "none"}
        elif key == "ec_point":
            cur["ec_point"] = val.lower()
        elif key == "access":
            cur["access"] = {w.strip() for w in val.split(",") if w.strip() and w.strip() != "none"}
    return objs


# ---- one module, every row ----------------------------------------------------------------------

def plan(lim):
    """(op, expected, function name) for every row, expectations from the module's facts."""
    import cells_flow
    rows = [("list", "works", "list_tokens"),
            ("init", "works" if lim["init"] else "limit", "init")]
    for alg in envs.ALGORITHMS:
        rows.append(("keygen " + alg, "works" if alg in lim["algorithms"] else "limit", ("keygen", alg)))
    rows += [("keygen --exportable", "works" if lim["exportable"] else "limit", "keygen_exportable"),
             ("csr", "works", "csr"),
             ("pickup (chain)", "works", "pickup"),
             ("pin change", "works", "pin_change"),
             ("pin unblock", "works" if lim["has_so"] else "limit", "pin_unblock"),
             ("wrong PIN", "works", "wrong_pin")]
    expect = {"provision": "works", "fleet": "works" if lim["blank_grows"] else "limit",
              "pin isolation": "works", "backup": "works" if lim["exportable"] else "limit",
              "restore": "works" if lim["private_key_import"] else "limit",
              "init --force": "works" if lim["reinit"] else "limit"}
    for op, fn in cells_flow.FLOW:
        rows.append((op, expect[op], fn))
    return rows


SKIP = 77   # CTest's SKIP_RETURN_CODE for the matrix tests


def sanitized():
    return os.environ.get("TOKENPROV_SANITIZED", "").upper() in ("1", "ON", "TRUE", "YES")


def run_module(name, release_only=False):
    """Runs every row against module NAME (a name in envs.ALL); exits non-zero when a cell fails.
    release_only: skipped (exit 77) in the sanitizer build, to keep CI short where a module adds
    no code path of tokenprov's own (SoftHSM2 through the proxy is SoftHSM2 again)."""
    import cells
    if release_only and sanitized():
        print("module matrix: %s runs in the release build only (TOKENPROV_SANITIZED)" % name)
        sys.exit(SKIP)
    factory = dict(envs.ALL)[name]
    print("module matrix: %s, tokenprov %s" % (name, BIN), flush=True)
    t0 = time.monotonic()
    pids = []
    doc = None
    with factory() as env:
        m = Matrix(env)
        c = cells.Cells(m)
        r = m.p11("-I", login=False, check_ok=False)
        m.info = {"library": [l.strip() for l in r.stdout.splitlines() if l.strip()][:6]}
        m.read_mechanisms()
        m.info["keygen_mechanisms"] = {k: v["size"] for k, v in m.mechs.items() if k.endswith("KEY-PAIR-GEN")}
        for op, expected, fn in plan(env.limits):
            if callable(fn):
                m.cell(op, expected, lambda fn=fn: fn(c))
            elif isinstance(fn, tuple):
                m.cell(op, expected, lambda fn=fn: getattr(c, fn[0])(*fn[1:]))
            else:
                m.cell(op, expected, getattr(c, fn))
        m.info["seconds"] = round(time.monotonic() - t0, 1)
        doc = m.report()
        pids = env.daemons.pids()
    left = envs.leftovers(pids)
    failed = [x for x in doc["cells"] if not x["ok"]]
    print("%s: %d cells, %d failed, %.0f s" % (name, len(doc["cells"]), len(failed), time.monotonic() - t0))
    if left:
        print("FAIL: processes left running: %s" % left)
    sys.exit(1 if failed or left else 0)
