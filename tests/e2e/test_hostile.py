# SPDX-License-Identifier: Apache-2.0
"""Hostile input and interruptions (issue 20): bytes that are not UTF-8 in
labels and manifests, a PIN inside a token URI, one token's PIN trouble in a
fleet, Ctrl-C at a PIN prompt, temporary files a killed run left, serials in
upper case. Each test failed before its fix."""

import fcntl
import json
import os
import pty
import select
import signal
import subprocess
import termios
import time

from harness import Sandbox, main, expect, BIN, SRC, SOFTHSM_MODULE, USER_PIN

DEMO = os.path.join(SRC, "tokens", "softhsm-demo.toml")


def run_bytes(sb, args, env=None):
    """tokenprov ARGS with stdout and stderr as bytes (they must still be UTF-8)."""
    e = dict(sb.env)
    e.update(env or {})
    return subprocess.run([BIN] + list(args), env=e, capture_output=True, timeout=300)


def utf8(b, what):
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError as ex:
        raise AssertionError("%s is not UTF-8: %s: %r" % (what, ex, b[:300]))


def json_lines(path):
    out = []
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                out.append(json.loads(utf8(line, path)))
    return out


def test_fleet_latin1_user_fails_its_row_only():
    with Sandbox() as sb:
        sb.create_token("good")
        sb.create_token("other")
        csrs = sb.path("csrs")
        os.makedirs(csrs)
        manifest = sb.write("m.csv", b"token,subject,user\ngood,/CN=Anna,anna\nother,/CN=Juergen,j\xfcrgen\n")
        state, audit = sb.path("state.jsonl"), sb.path("audit.jsonl")
        args = ["fleet", "--profile", DEMO, "--manifest", manifest, "--jobs", "2", "--pin-source", "env:TP_PIN",
                "--csr-dir", csrs, "--state", state, "--audit-log", audit, "--json"]
        for attempt in (1, 2):  # the rerun must not abort either
            r = run_bytes(sb, args)
            out, err = utf8(r.stdout, "stdout"), utf8(r.stderr, "stderr")
            expect(r.returncode == 10, "attempt %d: exit %d\n%s\n%s" % (attempt, r.returncode, out, err))
            lines = json_lines(state)
            bad = [l for l in lines if l.get("row") == 2 and "error" in l]
            expect(bad and bad[-1]["error"]["code"] == 5 and "not valid UTF-8" in bad[-1]["error"]["message"]
                   and "j\\xfcrgen" in bad[-1]["error"]["message"], lines)
            good = [l for l in lines if l.get("row") == 1 and l.get("ok")]
            expect(good, "row 1 not recorded as ok: %s" % lines)
            json_lines(audit)
        expect(sb.objects("other") == [], "the refused row's token was touched")
        expect(any(o["class"] == "private-key" for o in sb.objects("good")), "row 1 made no key")


def test_token_label_cut_at_a_character_and_foreign_labels_escaped():
    with Sandbox() as sb:
        csrs = sb.path("csrs")
        os.makedirs(csrs)
        user = "ü" * 20
        r = sb.tp("provision", "--profile", DEMO, "--subject", "/CN=Umlaut", "--user", user, "--pin-source",
                  "env:TP_PIN", "--so-pin-source", "env:TP_SO_PIN", "--csr-dir", csrs, "--json")
        expect(r.returncode == 0, r.stderr)
        labels = [t["label"] for t in sb.list_json()["tokens"] if t["initialized"]]
        want = ("demo-" + user)[:18]  # 5 + 13 x 2 bytes = 31 bytes: the 16th byte pair would pass 32
        expect(labels == [want], "token label %r, wanted %r" % (labels, want))
        # A label another tool wrote in Latin-1: list --json shows it escaped and exits 0.
        subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "t\udce9st", "--so-pin", "1234",
                        "--pin", USER_PIN], env=sb.env, check=True, capture_output=True)
        subprocess.run(["pkcs11-tool", "--module", SOFTHSM_MODULE, "--token-label", "t\udce9st", "--login",
                        "--pin", USER_PIN, "--keypairgen", "--key-type", "EC:prime256v1", "--label", "caf\udce9"],
                       env=sb.env, check=True, capture_output=True)
        doc = json.loads(utf8(run_bytes(sb, ["list", "--json"]).stdout, "stdout"))
        foreign = [t["serial"] for t in doc["tokens"] if t["label"] == "t\\xe9st"]
        expect(len(foreign) == 1, "the foreign token label is not shown escaped: %s" % doc)
        login = ["--token", "serial:" + foreign[0], "--pin-source", "env:TP_PIN"]
        for args in (["list", "--json"], ["list", "--json"] + login, ["list"]):
            r = run_bytes(sb, args)
            out = utf8(r.stdout, "stdout")
            expect(r.returncode == 0, "%s: exit %d: %s" % (args, r.returncode, r.stderr))
            shown = [t["label"] for t in json.loads(out)["tokens"]] if "--json" in args else out
            expect("t\\xe9st" in shown, "%s: the foreign token label is not shown escaped: %s" % (args, out))
        doc = json.loads(utf8(run_bytes(sb, ["list", "--json"] + login).stdout, "stdout"))
        objs = [o for t in doc["tokens"] for o in t.get("objects", [])]
        expect(any(o.get("label") == "caf\\xe9" for o in objs), objs)


def test_pin_value_never_echoed_or_stored():
    secret = "uri-pin-4711"
    with Sandbox() as sb:
        sb.create_token("alice")
        r = sb.tp("--json", "list", "--token", "pkcs11:token=nosuch?pin-value=" + secret)
        expect(r.returncode == 2, (r.returncode, r.stderr))
        expect(secret not in r.stdout + r.stderr, "the pin-value was echoed: %s %s" % (r.stdout, r.stderr))
        expect("--pin-source" in r.stderr, r.stderr)
        csrs = sb.path("csrs")
        os.makedirs(csrs)
        manifest = sb.write("m.csv", "token,subject\npkcs11:token=alice?pin-value=%s,/CN=Alice\n" % secret)
        state, audit = sb.path("state.jsonl"), sb.path("audit.jsonl")
        r = sb.tp("fleet", "--profile", DEMO, "--manifest", manifest, "--pin-source", "env:TP_PIN", "--csr-dir",
                  csrs, "--state", state, "--audit-log", audit, "--json")
        expect(r.returncode == 5, (r.returncode, r.stderr))
        expect(secret not in r.stdout + r.stderr, "the pin-value was echoed: %s %s" % (r.stdout, r.stderr))
        for p in (state, audit):
            expect(not os.path.exists(p) or secret not in open(p).read(), "the pin-value is in %s" % p)
        expect(sb.objects("alice") == [], "the token was touched")


def test_pin_source_without_scheme_not_echoed():
    with Sandbox() as sb:
        sb.create_token("alice")
        r = sb.tp("list", "--token", "alice", "--pin-source", "31415926")
        expect(r.returncode == 2, (r.returncode, r.stderr))
        expect("31415926" not in r.stderr, "the PIN was echoed: %s" % r.stderr)


def fleet_with_shim(sb, rv):
    """Two tokens; the first C_Login of the run (row 1's) answers RV through the shim."""
    sb.create_token("one")
    sb.create_token("two")
    csrs = sb.path("csrs-" + rv)
    os.makedirs(csrs)
    manifest = sb.write("m-%s.csv" % rv, "token,subject\none,/CN=One\ntwo,/CN=Two\n")
    env = {"FAULTP11_FAIL_FUNC": "C_Login", "FAULTP11_FAIL_AT": "1", "FAULTP11_RV": rv}
    r = sb.tp("--module", os.environ["FAULTP11_LIB"], "fleet", "--profile", DEMO, "--manifest", manifest,
              "--jobs", "1", "--pin-source", "env:TP_PIN", "--csr-dir", csrs, "--json", env=env)
    rows = {l["row"]: l for l in (json.loads(x) for x in r.stdout.splitlines() if x.strip()) if "row" in l}
    return r, rows


def test_fleet_locked_pin_stops_only_its_row():
    with Sandbox() as sb:
        r, rows = fleet_with_shim(sb, "CKR_PIN_LOCKED")
        expect(r.returncode == 10, (r.returncode, r.stderr))
        expect(not rows[1]["ok"] and "locked" in rows[1]["error"]["message"], rows)
        expect(rows[2]["ok"], "row 2 was not attempted after a locked PIN on row 1: %s" % rows[2])


def test_fleet_refused_pin_stops_the_others():
    with Sandbox() as sb:
        r, rows = fleet_with_shim(sb, "CKR_PIN_INCORRECT")
        expect(r.returncode == 10, (r.returncode, r.stderr))
        expect(not rows[2]["ok"] and "Not attempted" in rows[2]["error"]["message"], rows)


def test_ctrl_c_at_prompt_restores_echo():
    with Sandbox() as sb:
        sb.create_token("alice")
        master, slave = os.openpty()

        def ctty():
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        p = subprocess.Popen([BIN, "list", "--token", "alice", "--pin-source", "prompt"], stdin=slave, stdout=slave,
                             stderr=slave, env=sb.env, preexec_fn=ctty)
        seen = b""
        try:
            while b"PIN" not in seen:
                ready, _, _ = select.select([master], [], [], 60)
                expect(ready, "no prompt within 60 s: %r" % seen)
                seen += os.read(master, 1024)
            # The prompt is written after echo is turned off: wait for that state, then interrupt.
            for _ in range(600):
                if not termios.tcgetattr(slave)[3] & termios.ECHO:
                    break
                time.sleep(0.05)
            expect(not termios.tcgetattr(slave)[3] & termios.ECHO, "echo was never turned off")
            p.send_signal(signal.SIGINT)
            rc = p.wait(timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        expect(rc == -signal.SIGINT, "exit %r after SIGINT" % rc)
        expect(termios.tcgetattr(slave)[3] & termios.ECHO, "the terminal was left with echo off")
        os.close(master)
        os.close(slave)


def test_stale_temp_files_removed_only_ours_and_unlocked():
    with Sandbox() as sb:
        sb.create_token("alice")
        sb.tpj("keygen", "--token", "alice", "--pin-source", "env:TP_PIN", "--algorithm", "ec-p256", "--label", "k")
        out = sb.path("out")
        os.makedirs(out)
        old = time.time() - 3600

        def temp(name, age=old):
            p = os.path.join(out, name)
            with open(p, "w") as f:
                f.write("half")
            os.utime(p, (age, age))
            return p

        stale = temp(".k.csr.tmp-AbC123")
        fresh = temp(".k.csr.tmp-Fresh1", age=time.time())
        held = temp(".k.csr.tmp-Held01")
        other = temp(".other.csr.tmp-AbC123")
        longer = temp(".k.csr.tmp-AbC1234")
        lock = open(held)
        fcntl.flock(lock, fcntl.LOCK_EX)  # a run still writing it
        try:
            sb.tp("csr", "--token", "alice", "--pin-source", "env:TP_PIN", "--key", "k", "--subject", "/CN=k",
                  "--out", os.path.join(out, "k.csr"), check=0)
        finally:
            lock.close()
        expect(not os.path.exists(stale), "the stale temporary file was left")
        for p in (fresh, held, other, longer):
            expect(os.path.exists(p), "%s was removed" % p)


def test_serial_in_upper_case_matches():
    with Sandbox() as sb:
        serial = sb.create_token("alice")
        for sel in ("serial:" + serial.upper(), "serial:" + serial.lower()):
            doc = sb.tpj("list", "--token", sel)
            expect([t["serial"] for t in doc["tokens"]] == [serial], (sel, doc))


if __name__ == "__main__":
    main([test_fleet_latin1_user_fails_its_row_only, test_token_label_cut_at_a_character_and_foreign_labels_escaped,
          test_pin_value_never_echoed_or_stored, test_pin_source_without_scheme_not_echoed,
          test_fleet_locked_pin_stops_only_its_row, test_fleet_refused_pin_stops_the_others,
          test_ctrl_c_at_prompt_restores_echo, test_stale_temp_files_removed_only_ours_and_unlocked,
          test_serial_in_upper_case_matches])
