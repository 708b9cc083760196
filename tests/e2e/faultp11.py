# SPDX-License-Identifier: Apache-2.0
"""Helpers for end-to-end fault sweeps with the faultp11 shim (tests/faultp11).

The shim is a PKCS#11 module that forwards to SoftHSM2 and fails the call the
FAULTP11_* environment names. A sweep first runs a command once without a
fault to learn how many PKCS#11 calls it makes (count_calls), then fails each
of them in turn (run_with_fault) and checks what the command left behind:

    total = count_calls(sb, ["keygen", "--token", "t", ...])
    for n in range(1, total + 1):
        r = run_with_fault(sb, ["keygen", ...], n, "CKR_DEVICE_ERROR")
        ...

The built shim's path comes from $FAULTP11_LIB. The shim is passed with
--module, so it takes precedence over the sandbox's TOKENPROV_MODULE and any
profile module. Calls are counted over the whole process
(FAULTP11_SCOPE=process), so a command that loads the module more than once
is still swept call by call.

Python standard library only."""

import os
import tempfile

FAULT_VARS = ("FAULTP11_FAIL_AT", "FAULTP11_FAIL_FUNC", "FAULTP11_RV", "FAULTP11_STICKY",
              "FAULTP11_COUNT_FILE", "FAULTP11_LOG", "FAULTP11_SCOPE", "FAULTP11_KILL_AT")


def shim_path():
    """The built libfaultp11.so, from $FAULTP11_LIB."""
    p = os.environ.get("FAULTP11_LIB", "")
    if not p:
        raise RuntimeError("FAULTP11_LIB is not set: point it at the built libfaultp11.so")
    if not os.path.isfile(p):
        raise RuntimeError("FAULTP11_LIB=%s does not exist" % p)
    return p


def _run(sandbox, args, fault_env, input=None):
    """tokenprov --module SHIM ARGS in the sandbox, with exactly FAULT_ENV's
    FAULTP11_* variables (any inherited ones are removed)."""
    saved = {k: sandbox.env.pop(k) for k in FAULT_VARS if k in sandbox.env}
    try:
        env = {"FAULTP11_SCOPE": "process"}
        env.update(fault_env or {})
        return sandbox.tp("--module", shim_path(), *args, env=env, input=input)
    finally:
        sandbox.env.update(saved)


def _scratch(sandbox, suffix):
    fd, path = tempfile.mkstemp(prefix="faultp11-", suffix=suffix, dir=sandbox.dir)
    os.close(fd)
    os.unlink(path)
    return path


def count_calls(sandbox, args, env=None, input=None, check=0):
    """Runs tokenprov ARGS once through the shim with no fault and returns how
    many PKCS#11 calls it made (C_GetFunctionList not counted). ENV adds
    variables for that run. Raises if the exit status is not CHECK (None:
    any status) or if the shim wrote no count."""
    count_file = _scratch(sandbox, ".count")
    fault_env = dict(env or {})
    fault_env["FAULTP11_COUNT_FILE"] = count_file
    r = _run(sandbox, args, fault_env, input=input)
    if check is not None and r.returncode != check:
        raise AssertionError("tokenprov %s through faultp11: exit %d, wanted %d\nstdout: %s\nstderr: %s"
                             % (" ".join(args), r.returncode, check, r.stdout, r.stderr))
    try:
        with open(count_file) as f:
            text = f.read().strip()
    except OSError:
        raise AssertionError("faultp11 wrote no call count for: tokenprov %s\nstderr: %s"
                             % (" ".join(args), r.stderr))
    finally:
        if os.path.exists(count_file):
            os.unlink(count_file)
    return int(text)


def run_with_fault(sandbox, args, n, rv="CKR_DEVICE_ERROR", sticky=False, func=None, log=None,
                   env=None, input=None):
    """Runs tokenprov ARGS through the shim with the Nth PKCS#11 call (1-based;
    with FUNC, the Nth call of that function, e.g. "C_CreateObject") failing
    with RV (a CKR_ name or "0x..."), not forwarded to the token. STICKY: every
    later call fails too, as if the token were pulled out (cleanup calls still
    pass). LOG: a file the shim appends "N FUNCTION RV [injected]" lines to.
    Returns the CompletedProcess (returncode, stdout, stderr)."""
    fault_env = dict(env or {})
    fault_env["FAULTP11_FAIL_AT"] = str(int(n))
    fault_env["FAULTP11_RV"] = rv
    if sticky:
        fault_env["FAULTP11_STICKY"] = "1"
    if func:
        fault_env["FAULTP11_FAIL_FUNC"] = func
    if log:
        fault_env["FAULTP11_LOG"] = log
    return _run(sandbox, args, fault_env, input=input)


def read_log(path):
    """Parses a FAULTP11_LOG file into (n, function, rv, injected) tuples."""
    out = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3:
                out.append((int(parts[0]), parts[1], parts[2], len(parts) > 3 and parts[3] == "injected"))
    return out


def run_killed_at(sandbox, args, n, env=None):
    """Runs tokenprov ARGS through the shim, which kills the process with
    SIGKILL just before its Nth PKCS#11 call (a run stopped between two calls).
    Returns the CompletedProcess (returncode -9 when the kill happened)."""
    fault_env = dict(env or {})
    fault_env["FAULTP11_KILL_AT"] = str(n)
    return _run(sandbox, args, fault_env)
