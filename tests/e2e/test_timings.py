# SPDX-License-Identifier: Apache-2.0
"""--timings: the wall time and the time in PKCS#11 calls, on stderr, at exit; stdout untouched."""
import json
import re

from harness import Sandbox, main, expect

HEAD = re.compile(r"^tokenprov: timings: wall [0-9.]+ ms; in PKCS#11 [0-9.]+ ms \([0-9.]+%\), ([0-9]+) calls$", re.M)
ROW = re.compile(r"^tokenprov: timings:   (C_\w+) +([0-9]+) calls +[0-9.]+ ms$", re.M)


def test_timings_counts_the_calls():
    with Sandbox() as sb:
        sb.create_token("tim")
        r = sb.tp("--timings", "list", "--json", "--pin-source", "env:TP_PIN", check=0)
        json.loads(r.stdout)  # stdout is still one JSON document
        head = HEAD.search(r.stderr)
        expect(head, r.stderr)
        rows = {m.group(1): int(m.group(2)) for m in ROW.finditer(r.stderr)}
        expect(rows.get("C_Initialize") == 1 and rows.get("C_Finalize") == 1, rows)
        expect(rows.get("C_Login", 0) >= 1, rows)
        expect(sum(rows.values()) == int(head.group(1)), (rows, head.group(0)))


def test_no_timings_without_the_flag():
    with Sandbox() as sb:
        sb.create_token("tim")
        r = sb.tp("list", "--pin-source", "env:TP_PIN", check=0)
        expect("timings" not in r.stderr, r.stderr)


def test_timings_after_a_failure():
    with Sandbox() as sb:
        r = sb.tp("list", "--token", "nosuch", "--timings", check=6)
        expect(HEAD.search(r.stderr) and r.stderr.index("tokenprov: timings") > r.stderr.index("nosuch"), r.stderr)


if __name__ == "__main__":
    main([test_timings_counts_the_calls, test_no_timings_without_the_flag, test_timings_after_a_failure])
