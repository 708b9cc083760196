# SPDX-License-Identifier: Apache-2.0
"""Renewals run by provision and fleet (issue 17, item 4): `--renew-expiring DAYS` renews every
certificate on the token that expires within DAYS once the profile's keys are in place, over the
protocol of the run (here EST against the project's own server: /simplereenroll authenticated by
the token key in TLS); the profile decides per key whether a renewal makes a new key. fleet does
the same per row, with its state file, audit log and JSON lines, and a manifest column `renew`
asks for a renewal per row."""
# ctest: one test per function
import json
import os

from harness import Sandbox, main, expect
from estserver import EstServer


def profile(sb, est, rekey=False):
    text = ('description = "EST, renewals"\nprotocol = "est"\ntoken_label = "tp-{user}"\n'
            '[pin]\nmin_length = 4\n'
            '[[keys]]\nrole = "auth"\nalgorithm = "rsa2048"\nlabel = "auth-{user}"\nusage = ["sign", "decrypt"]\n'
            + ('renew = "rekey"\n' if rekey else 'renew = "same-key"\n') +
            '[est]\nurl = "%s"\nuser = "dev"\n' % est.url)
    return sb.write("est%s.toml" % ("-rekey" if rekey else ""), text, 0o644)


def run_args(prof, est, *extra, secret=True):
    return (["--profile", prof, "--pin-source", "env:TP_PIN", "--ca-bundle", est.tls_ca_path] +
            (["--secret-source", "env:EST_PW"] if secret else []) + list(extra))


def leaves(sb, token):
    return [o for o in sb.objects(token) if o["class"] == "certificate" and not o["authority"]]


def test_provision_over_est_then_renew_expiring():
    with Sandbox() as sb, EstServer(sb.path("est"), user="dev", password="otp", validity=7200,
                                    reenroll_validity=30 * 86400) as est:
        sb.create_token("tp-ann")
        prof = profile(sb, est)
        env = {"EST_PW": "otp"}
        # EST from the profile: the key, its two-hour certificate; a fresh certificate is not renewed
        # in the run that got it, even with a window that holds it.
        doc = sb.tpj("provision", *run_args(prof, est, "--subject", "/CN=Ann/O=Example", "--renew-expiring", "1"),
                     env=env)
        expect(doc["keys"][0]["certificate"] == "enrolled" and doc["renewals"] == [], doc)
        kid, first = doc["keys"][0]["id"], doc["keys"][0]["certificate_serial"]
        expect(len(est.requests("/simpleenroll")) == 1 and not est.requests("/simplereenroll"), est.log)
        sb.tpj("status", "--token", "tp-ann", "--expiring", "1", check=9)
        # Outside the window: nothing is renewed, nothing changes.
        before = sb.objects("tp-ann")
        doc = sb.tpj("provision", *run_args(prof, est, "--subject", "/CN=Ann/O=Example", "--renew-expiring", "0.01"),
                     env=env)
        expect(doc["renewals"] == [] and sb.objects("tp-ann") == before, doc)
        # Within it: the same key gets a new certificate, the old one is gone; no EST password needed.
        doc = sb.tpj("provision", "--profile", prof, "--pin-source", "env:TP_PIN", "--ca-bundle", est.tls_ca_path,
                     "--subject", "/CN=Ann/O=Example", "--renew-expiring", "1")
        rn = doc["renewals"]
        expect(len(rn) == 1 and rn[0]["id"] == kid and rn[0]["old_serial"] == first and not rn[0]["rekey"], doc)
        re = est.requests("/simplereenroll")
        expect(len(re) == 1 and re[0][4] == 200 and re[0][3] == int(first, 16), re)
        lv = leaves(sb, "tp-ann")
        expect(len(lv) == 1 and lv[0]["id"] == kid and lv[0]["serial"] == rn[0]["serial"], lv)
        sb.tpj("status", "--token", "tp-ann", "--expiring", "1")  # 30 days left: exit 0
        # Again: nothing due.
        doc = sb.tpj("provision", *run_args(prof, est, "--subject", "/CN=Ann/O=Example", "--renew-expiring", "1"),
                     env=env)
        expect(doc["renewals"] == [] and len(est.requests("/simplereenroll")) == 1, doc)


def test_provision_renewal_rekeys_when_the_profile_says_so():
    with Sandbox() as sb, EstServer(sb.path("est"), user="dev", password="otp", validity=7200,
                                    reenroll_validity=30 * 86400) as est:
        sb.create_token("tp-bo")
        env = {"EST_PW": "otp"}
        doc = sb.tpj("provision", *run_args(profile(sb, est), est, "--subject", "/CN=Bo"), env=env)
        kid = doc["keys"][0]["id"]
        doc = sb.tpj("provision", *run_args(profile(sb, est, rekey=True), est, "--subject", "/CN=Bo",
                                            "--renew-expiring", "1"), env=env)
        rn = doc["renewals"]
        expect(len(rn) == 1 and rn[0]["rekey"] and rn[0]["archived"]["id"] == kid and rn[0]["id"] != kid, doc)
        expect("archived" in rn[0]["archived"]["label"] and rn[0]["label"] == "auth-bo", rn)
        objs = sb.objects("tp-bo")
        old = [o for o in objs if o["id"] == kid]
        expect(sorted(o["class"] for o in old) == ["certificate", "private-key", "public-key"], old)
        expect(all("archived" in o["label"] for o in old), old)
        # The archived key's certificate expires within the window, but an archived key is history:
        # the next run renews nothing.
        doc = sb.tpj("provision", *run_args(profile(sb, est, rekey=True), est, "--subject", "/CN=Bo",
                                            "--renew-expiring", "1"), env=env)
        expect(doc["renewals"] == [], doc)


def test_renewal_refusals_come_before_anything_is_done():
    with Sandbox() as sb, EstServer(sb.path("est"), user="dev", password="otp", validity=7200) as est:
        sb.create_token("tp-flo")
        before = sb.objects("tp-flo")
        # No CA to renew with (certificates from files only): a usage error, the token untouched.
        r = sb.tp("provision", "--profile", profile(sb, est), "--protocol", "scep", "--pin-source", "env:TP_PIN",
                  "--subject", "/CN=Flo", "--csr-dir", sb.path(""), "--renew-expiring", "30", "--json")
        expect(r.returncode == 2 and "Renewing needs the CA" in r.stdout, (r.returncode, r.stdout, r.stderr))
        # Rekeys over CMP (the profile's renew = "rekey"): refused before a key is made.
        r = sb.tp("provision", "--profile", profile(sb, est, rekey=True), "--protocol", "cmp", "--cmp-url",
                  "http://127.0.0.1:9/pkix/", "--ca-fingerprint", "00" * 32, "--pin-source", "env:TP_PIN",
                  "--subject", "/CN=Flo", "--renew-expiring", "30", "--json")
        expect(r.returncode == 2 and "kur" in r.stdout, (r.returncode, r.stdout, r.stderr))
        # --rekey without --renew-expiring says what is missing.
        r = sb.tp("provision", *run_args(profile(sb, est), est, "--subject", "/CN=Flo", "--rekey"))
        expect(r.returncode == 2 and "--renew-expiring" in r.stderr, (r.returncode, r.stderr))
        expect(sb.objects("tp-flo") == before, "a refused run changed the token")
        expect(not est.requests("/simpleenroll") and not est.requests("/simplereenroll"), est.log)


def test_fleet_renews_with_state_file_audit_and_manifest_column():
    with Sandbox() as sb, EstServer(sb.path("est"), user="dev", password="otp", validity=7200,
                                    reenroll_validity=30 * 86400) as est:
        for u in ("cy", "di", "ed"):
            sb.create_token("tp-" + u)
        prof = profile(sb, est)
        env = {"EST_PW": "otp"}
        rows = "".join("tp-%s,/CN=%s,%s\n" % (u, u, u) for u in ("cy", "di", "ed"))
        manifest = sb.write("m.csv", "token,subject,user\n" + rows, 0o644)
        r = sb.tp("fleet", *run_args(prof, est, "--manifest", manifest, "--jobs", "2", "--json"), env=env)
        expect(r.returncode == 0, (r.returncode, r.stdout, r.stderr))
        serials = {u: leaves(sb, "tp-" + u)[0]["serial"] for u in ("cy", "di", "ed")}
        # A renewal run of the fleet: state file and audit log as for any run.
        state, audit = sb.path("renew.state"), sb.path("renew.audit")
        args = run_args(prof, est, "--manifest", manifest, "--jobs", "2", "--json", "--renew-expiring", "1",
                        "--state", state, "--audit-log", audit, secret=False)  # renewals need no EST password
        r = sb.tp("fleet", *args)
        expect(r.returncode == 0, (r.returncode, r.stdout, r.stderr))
        lines = [json.loads(l) for l in r.stdout.splitlines() if l.strip()]
        expect(len(lines) == 3 and all(l["ok"] for l in lines), lines)
        text = json.dumps(lines)
        for u, s in serials.items():
            expect(s in text, (u, s, lines))
            lv = leaves(sb, "tp-" + u)
            expect(len(lv) == 1 and lv[0]["serial"] != s, lv)
        audit_lines = [json.loads(l) for l in open(audit)]
        expect(len(audit_lines) == 3 and all(s in json.dumps(audit_lines) for s in serials.values()), audit_lines)
        expect(len(est.requests("/simplereenroll")) == 3, est.log)
        # The same run again: every row is done in the state file; nothing is renewed twice.
        r = sb.tp("fleet", *args)
        expect(r.returncode == 0 and len(est.requests("/simplereenroll")) == 3, (r.returncode, r.stderr, est.log))
        # A manifest column asks for a renewal of one row whatever the window: `renew` = all.
        m2 = sb.write("m2.csv", "token,subject,user,renew\ntp-cy,/CN=cy,cy,all\ntp-di,/CN=di,di,\n", 0o644)
        before = leaves(sb, "tp-di")
        r = sb.tp("fleet", *run_args(prof, est, "--manifest", m2, "--json", secret=False))
        expect(r.returncode == 0, (r.returncode, r.stdout, r.stderr))
        expect(len(est.requests("/simplereenroll")) == 4 and leaves(sb, "tp-di") == before, est.log)
        # A bad value in the column is a bad manifest (exit 5), nothing done.
        m3 = sb.write("m3.csv", "token,subject,user,renew\ntp-cy,/CN=cy,cy,soon\n", 0o644)
        r = sb.tp("fleet", *run_args(prof, est, "--manifest", m3, "--json", secret=False))
        expect(r.returncode == 5 and "renew" in r.stdout + r.stderr, (r.returncode, r.stdout, r.stderr))
        expect(len(est.requests("/simplereenroll")) == 4, est.log)


if __name__ == "__main__":
    main([test_provision_over_est_then_renew_expiring, test_provision_renewal_rekeys_when_the_profile_says_so,
          test_renewal_refusals_come_before_anything_is_done,
          test_fleet_renews_with_state_file_audit_and_manifest_column])
