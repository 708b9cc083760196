# SPDX-License-Identifier: Apache-2.0
"""status: every certificate on the token(s), with its key and the exact time left; exit 9 with
--expiring. The certificates are made by a test CA to expire in hours and days from now (real
expiry, no clock faking); `openssl x509` reads the same dates independently."""
# ctest: one test per function
import calendar
import time

from harness import Sandbox, TestCA, main, expect, sh


def asn1(t):
    return time.strftime("%Y%m%d%H%M%SZ", time.gmtime(t))


def keygen_csr(sb, token, label):
    doc = sb.tpj("keygen", "--token", token, "--pin-source", "env:TP_PIN", "--algorithm", "ec-p256", "--label", label)
    csr = sb.path(label + ".csr")
    sb.tp("csr", "--token", token, "--pin-source", "env:TP_PIN", "--key", label, "--subject", "/CN=%s/O=Example" % label,
          "--out", csr, check=0)
    return doc["key"]["id"], csr


def put(sb, ca, token, label, not_after, chain=True):
    """A key with a certificate valid until NOT_AFTER (epoch seconds), picked up with its chain."""
    kid, csr = keygen_csr(sb, token, label)
    pem = ca.issue(csr, sb.path(label + ".pem"), not_before=asn1(time.time() - 7200), not_after=asn1(not_after))
    bundle = sb.write(label + "-bundle.pem", open(pem).read() + (ca.chain_pem() if chain else ""))
    sb.tp("pickup", "--token", token, "--pin-source", "env:TP_PIN", "--cert", bundle, "--allow-expired", check=0)
    # The independent reader: openssl's idea of the end date.
    end = sh(["openssl", "x509", "-in", pem, "-noout", "-enddate"]).stdout.strip().split("=", 1)[1]
    expect(calendar.timegm(time.strptime(end, "%b %d %H:%M:%S %Y GMT")) == int(not_after), (end, not_after))
    return kid


def status(sb, *args, check=0):
    return sb.tpj("status", *args, check=check)


def test_status_window_is_exact_and_public():
    with Sandbox() as sb:
        sb.create_token("st")
        ca = TestCA(sb)
        t0 = int(time.time())
        day = put(sb, ca, "st", "day", t0 + 86400)            # exactly 24 h from t0
        later = put(sb, ca, "st", "later", t0 + 3 * 86400 + 3600, chain=False)
        before = time.time()
        doc = status(sb, "--token", "st")  # no PIN: certificates are public objects
        after = time.time()
        certs = doc["certificates"]
        leaves = {c["label"]: c for c in certs if not c["authority"]}
        cas = [c for c in certs if c["authority"]]
        expect(set(leaves) == {"day", "later"}, certs)
        expect(sorted(c["subject"] for c in cas) == ["O=tokenprov tests,CN=Test Issuing CA",
                                                   "O=tokenprov tests,CN=Test Root CA"], cas)
        for c in certs:
            for f in ("token", "uri", "id", "label", "subject", "issuer", "not_after", "days_left"):
                expect(f in c, (f, c))
        d = leaves["day"]
        expect(d["id"] == day and d["key"] and d["key"]["class"] == "public-key" and d["key"]["label"] == "day", d)
        expect(leaves["later"]["id"] == later, leaves)
        # days_left from exact times (whole seconds): between what was left when the command started
        # and when it ended.
        expect((t0 + 86400 - int(after) - 1) / 86400 <= d["days_left"] <= (t0 + 86400 - int(before)) / 86400,
               (d["days_left"], t0, before, after))
        expect(d["seconds_left"] <= 86400 and d["days_left"] > 0, d)
        expect(0 <= 1 - d["days_left"] < 0.01, d)  # 24 hours minus the seconds this test took
        expect("not_logged_in" in doc, doc)
        # 24 hours from expiry: outside --expiring 0, inside --expiring 1.
        doc = status(sb, "--token", "st", "--expiring", "0")
        expect(doc["expiring"] == 0 and not any(c["expiring"] for c in doc["certificates"]), doc)
        doc = status(sb, "--token", "st", "--expiring", "1", check=9)
        expect([c["label"] for c in doc["certificates"] if c["expiring"]] == ["day"], doc)
        # 3 days and an hour: outside 3, inside 3.05 (fractions allowed).
        doc = status(sb, "--token", "st", "--expiring", "3", check=9)
        expect(sorted(c["label"] for c in doc["certificates"] if c["expiring"]) == ["day"], doc)
        doc = status(sb, "--token", "st", "--expiring", "3.05", check=9)
        expect(sorted(c["label"] for c in doc["certificates"] if c["expiring"]) == ["day", "later"], doc)
        # Human output names the expiring certificate.
        r = sb.tp("status", "--token", "st", "--expiring", "1", check=9)
        expect("EXPIRING" in r.stdout and "'day'" in r.stdout, r.stdout)
        # With a PIN the private key is matched.
        doc = status(sb, "--token", "st", "--pin-source", "env:TP_PIN")
        d = [c for c in doc["certificates"] if c["label"] == "day"][0]
        expect(d["key"]["class"] == "private-key" and "type=private" in d["key"]["uri"], d)
        expect("not_logged_in" not in doc, doc)


def test_status_expired_every_token_and_refusals():
    with Sandbox() as sb:
        sb.create_token("old")
        sb.create_token("new")
        ca = TestCA(sb)
        t0 = int(time.time())
        put(sb, ca, "old", "gone", t0 - 3600)  # expired an hour ago
        put(sb, ca, "new", "fresh", t0 + 30 * 86400, chain=False)
        doc = status(sb)  # every token
        by = {c["label"]: c for c in doc["certificates"]}
        serials = {t["label"]: t["serial"] for t in sb.list_json()["tokens"]}
        expect(by["gone"]["token"] == serials["old"] and by["fresh"]["token"] == serials["new"], by)
        expect(by["gone"]["days_left"] < 0 and by["gone"]["expired"] and by["gone"]["seconds_left"] <= -3600, by["gone"])
        expect(by["fresh"]["days_left"] > 29.9, by["fresh"])
        # The expired one counts for --expiring 0; the other token alone does not.
        doc = status(sb, "--expiring", "0", check=9)
        expect([c["label"] for c in doc["certificates"] if c["expiring"]] == ["gone"], doc)
        status(sb, "--token", "new", "--expiring", "29")
        status(sb, "--token", "new", "--expiring", "30", check=9)
        # Refusals: a negative window is a usage error, a PIN for two tokens without --token too,
        # a wrong PIN exit 3 (never retried), an unknown token exit 6.
        r = sb.tp("status", "--expiring", "-1")
        expect(r.returncode == 2, (r.returncode, r.stderr))
        r = sb.tp("status", "--pin-source", "env:TP_PIN")
        expect(r.returncode == 2 and "--token" in r.stderr, (r.returncode, r.stderr))
        r = sb.tp("status", "--token", "new", "--pin-source", "env:BAD", env={"BAD": "999999"})
        expect(r.returncode == 3, (r.returncode, r.stderr))
        r = sb.tpj("status", "--token", "nosuch", check=6)
        expect(r["ok"] is False and r["error"]["code"] == 6, r)


if __name__ == "__main__":
    main([test_status_window_is_exact_and_public, test_status_expired_every_token_and_refusals])
