#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""tokenprov benchmark: tokenprov against the IT-desk pipeline on SoftHSM2.

Run by hand (not by the tests), usually through bench/run.sh. One run measures:

  (a) 10 tokens, EC P-256, one after another, from a blank token to a checked
      signature: init, keygen, CSR, a certificate from a local OpenSSL test CA,
      the certificate written to the token, a signature made on the token and
      verified with the certificate. Both ways, rounds alternating which goes
      first, every token in a fresh SoftHSM2 token folder per round and way.
  (b) the same with RSA-2048.
  (c) tokenprov's whole-command time (measured here, around the process)
      against the time its own PKCS#11 calls took (tokenprov --timings).
  (d) a fleet of 50 blank tokens: `fleet --jobs 1` against `fleet --jobs 2`.
  (e) peak RSS of tokenprov commands (/usr/bin/time -v).
  (latency) the same work under a card-latency model: every PKCS#11 call of
      both ways through tests/latencyp11 (waits per call from
      bench/latency/*.profile, counts calls and logins): one token under each
      profile, a fleet of 16 tokens --jobs 16 against --jobs 1, a 500-row
      fleet's time per row and peak RSS (docs/performance.md).

The two ways do the same work:

  pipeline (what a desk scripts today; every step a process, PINs on argv):
    softhsm2-util --init-token --free
    pkcs11-tool --keypairgen
    openssl req -new -engine pkcs11          (CSR signed on the token)
    openssl req -CA ... -CAkey ...           (the test CA; DER for pkcs11-tool)
    pkcs11-tool --write-object --type cert
    openssl dgst -sign -engine pkcs11        (signature made on the token)
    openssl pkeyutl -verify -certin          (verified with the certificate)

  tokenprov:
    tokenprov provision --token blank --csr-dir D          (init, keygen, CSR)
    openssl req -CA ... -CAkey ...           (the same test CA, PEM)
    tokenprov provision --token serial:S --cert-dir D2 --check-signature
                                             (pickup, sign on the token, verify)

Only the processes are timed (the sum of their wall times per token); Python's
own bookkeeping between steps is not. Times are medians over every token of
every round. Python 3 standard library only.
"""

import argparse
import csv
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)
MODULE = "/usr/lib/softhsm/libsofthsm2.so"
ENGINE = "/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so"
PIN = "123456"
SO_PIN = "87654321"
PROFILES = {"ec-p256": os.path.join(HERE, "profiles", "bench-ec-p256.toml"),
            "rsa2048": os.path.join(HERE, "profiles", "bench-rsa2048.toml")}
P11TOOL_KEY = {"ec-p256": ["--key-type", "EC:prime256v1", "--usage-sign"],
               "rsa2048": ["--key-type", "rsa:2048", "--usage-sign", "--usage-decrypt"]}
TIMINGS_RE = re.compile(r"timings: wall ([0-9.]+) ms; in PKCS#11 ([0-9.]+) ms \(([0-9.]+)%\), ([0-9]+) calls")


class StepFailed(Exception):
    pass


class Result:
    """One process: wall and CPU time (s), output. (maxrss from wait4 includes the forked
    Python before exec, so (e) uses /usr/bin/time -v instead.)"""

    def __init__(self, cmd, wall, cpu, maxrss, rc, out, err):
        self.cmd, self.wall, self.cpu, self.maxrss, self.rc, self.out, self.err = cmd, wall, cpu, maxrss, rc, out, err


def run(cmd, env, cwd=None, ok=(0,)):
    """Runs CMD; its wall time, CPU time (user + system) and peak RSS from wait4()."""
    with tempfile.TemporaryFile() as fo, tempfile.TemporaryFile() as fe:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=fo, stderr=fe)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        fo.seek(0)
        fe.seek(0)
        out, err = fo.read().decode(errors="replace"), fe.read().decode(errors="replace")
    r = Result(cmd, wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss, p.returncode, out, err)
    if p.returncode not in ok:
        raise StepFailed("%s: exit %d\nstdout: %s\nstderr: %s" % (" ".join(cmd), p.returncode, out[-2000:], err[-2000:]))
    return r


class Sandbox:
    """A private SoftHSM2 configuration and token folder (fresh per round and way)."""

    def __init__(self, base, name):
        self.dir = tempfile.mkdtemp(prefix="tokenprov-bench-%s-" % name, dir=base)
        self.tokens = self.sub("tokens")
        with open(os.path.join(SRC, "softhsm-config", "softhsm2.conf.in")) as f:
            conf = f.read().replace("@TOKENDIR@", self.tokens)
        self.conf = os.path.join(self.dir, "softhsm2.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        self.env = dict(os.environ)
        for k in ("OPENSSL_CONF", "TOKENPROV_PROFILE_DIR", "TOKENPROV_MODULE"):
            self.env.pop(k, None)
        self.env.update({"SOFTHSM2_CONF": self.conf, "BENCH_PIN": PIN, "BENCH_SO_PIN": SO_PIN})
        # The pipeline's openssl steps load the libp11 engine with SoftHSM2 as its module.
        self.engine_conf = os.path.join(self.dir, "openssl-engine.cnf")
        with open(self.engine_conf, "w") as f:
            f.write("openssl_conf = openssl_init\n[openssl_init]\nengines = engine_section\n"
                    "[engine_section]\npkcs11 = pkcs11_section\n[pkcs11_section]\nengine_id = pkcs11\n"
                    "dynamic_path = %s\nMODULE_PATH = %s\ninit = 0\n" % (ENGINE, MODULE))
        self.engine_env = dict(self.env, OPENSSL_CONF=self.engine_conf)

    def sub(self, name):
        p = os.path.join(self.dir, name)
        os.makedirs(p, exist_ok=True)
        return p

    def close(self, keep=False):
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)


class Ca:
    """A local OpenSSL test CA (EC P-256); both ways call it with the same command."""

    def __init__(self, workdir):
        self.key = os.path.join(workdir, "ca.key")
        self.cert = os.path.join(workdir, "ca.pem")
        env = dict(os.environ)
        env.pop("OPENSSL_CONF", None)
        self.env = env
        run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", self.key], env)
        run(["openssl", "req", "-new", "-x509", "-key", self.key, "-subj", "/CN=tokenprov bench test CA",
             "-days", "30", "-out", self.cert], env)
        self.serial = int(time.time()) * 1000
        self.workdir = workdir
        self.batches = 0

    def sign(self, csr, out, der=False):
        self.serial += 1
        # `openssl req -CA` issues from a CSR like `openssl x509 -req` does, at a quarter of the
        # CPU (OpenSSL 3.0's x509 command costs ~24 ms of CPU per run here); the same command both ways.
        return run(["openssl", "req", "-in", csr, "-CA", self.cert, "-CAkey", self.key,
                    "-set_serial", str(self.serial), "-days", "365", "-outform", "DER" if der else "PEM",
                    "-out", out], self.env)

    def sign_batch(self, csrs, outdir):
        """The same CA issuing a batch of requests in one process, as a CA takes a
        fleet's folder of requests: `openssl ca -batch -infiles`, each certificate
        written to OUTDIR as SERIAL.pem (fleet --cert-dir finds each by its key)."""
        self.batches += 1
        d = os.path.join(self.workdir, "batch-%d" % self.batches)
        os.makedirs(d)
        open(os.path.join(d, "index.txt"), "w").close()
        with open(os.path.join(d, "serial"), "w") as f:
            hexserial = "%X" % (self.serial + 1)
            f.write(("0" if len(hexserial) % 2 else "") + hexserial + "\n")  # openssl wants whole bytes
        self.serial += len(csrs)
        conf = os.path.join(d, "ca.cnf")
        with open(conf, "w") as f:
            f.write("[ca]\ndefault_ca = bench\n[bench]\ndir = %s\ndatabase = $dir/index.txt\n"
                    "serial = $dir/serial\nnew_certs_dir = %s\ncertificate = %s\nprivate_key = %s\n"
                    "default_md = sha256\ndefault_days = 365\npolicy = any\nunique_subject = no\n"
                    "[any]\ncommonName = optional\norganizationName = optional\n" % (d, outdir, self.cert, self.key))
        return run(["openssl", "ca", "-batch", "-notext", "-config", conf, "-out", os.path.join(d, "all.pem"),
                    "-infiles"] + list(csrs), self.env)


# ---------------------------------------------------------------------------
# One token, each way. Each returns a list of (step name, Result).

def tokenprov_token(args, sb, ca, alg, user, timings=False):
    tp = [args.bin, "-q", "--json"] + (["--timings"] if timings else [])
    common = ["--profile", PROFILES[alg], "--pin-source", "env:BENCH_PIN", "--subject", "/CN=%s/O=Bench" % user]
    steps = []
    csr_dir, cert_dir = sb.sub("csr"), sb.sub("certs")
    r = run(tp + ["provision", "--token", "blank", "--so-pin-source", "env:BENCH_SO_PIN", "--csr-dir", csr_dir]
            + common, sb.env)
    steps.append(("provision --csr-dir", r))
    j = json.loads(r.out)
    serial, csr = j["token"]["serial"], j["keys"][0]["csr_file"]
    steps.append(("CA", ca.sign(csr, os.path.join(cert_dir, serial + ".pem"))))
    r = run(tp + ["provision", "--token", "serial:" + serial, "--cert-dir", cert_dir, "--check-signature"] + common,
            sb.env)
    steps.append(("provision --cert-dir --check-signature", r))
    k = json.loads(r.out)["keys"][0]
    if k["certificate"] != "picked-up" or k["signature_check"] != "ok":
        raise StepFailed("tokenprov did not finish token %s: %s" % (user, r.out))
    return steps


def pipeline_token(args, sb, ca, alg, user):
    label, key = "bench-" + user, "auth-" + user
    d = sb.sub("pipe")
    csr, der = os.path.join(d, user + ".csr"), os.path.join(d, user + ".der")
    data, sig = os.path.join(d, user + ".data"), os.path.join(d, user + ".sig")
    with open(data, "wb") as f:
        f.write(os.urandom(32))
    p11 = ["pkcs11-tool", "--module", MODULE, "--token-label", label, "--login", "--pin", PIN]
    uri = "pkcs11:token=%s;object=%s;type=private;pin-value=%s" % (label, key, PIN)
    steps = []
    steps.append(("softhsm2-util --init-token", run(
        ["softhsm2-util", "--init-token", "--free", "--label", label, "--so-pin", SO_PIN, "--pin", PIN], sb.env)))
    steps.append(("pkcs11-tool --keypairgen", run(
        p11 + ["--keypairgen"] + P11TOOL_KEY[alg] + ["--id", "01", "--label", key], sb.env)))
    steps.append(("openssl req -engine pkcs11", run(
        ["openssl", "req", "-new", "-engine", "pkcs11", "-keyform", "engine", "-key", uri,
         "-subj", "/CN=%s/O=Bench" % user, "-out", csr], sb.engine_env)))
    steps.append(("CA", ca.sign(csr, der, der=True)))
    steps.append(("pkcs11-tool --write-object", run(
        p11 + ["--write-object", der, "--type", "cert", "--id", "01", "--label", key], sb.env)))
    steps.append(("openssl dgst -sign -engine pkcs11", run(
        ["openssl", "dgst", "-sha256", "-engine", "pkcs11", "-keyform", "engine", "-sign", uri, "-out", sig, data],
        sb.engine_env)))
    r = run(["openssl", "pkeyutl", "-verify", "-certin", "-inkey", der, "-keyform", "DER", "-rawin",
             "-digest", "sha256", "-in", data, "-sigfile", sig], sb.env)
    if "Signature Verified Successfully" not in r.out:
        raise StepFailed("the pipeline's signature did not verify for %s: %s" % (user, r.out))
    steps.append(("openssl pkeyutl -verify", r))
    return steps


def tokenprov_fleet(args, sb, ca, alg, users, jobs=1, timings=False, batch_ca=False):
    """N blank tokens with two fleet runs: fleet --csr-dir, the CA once per request
    (or, with BATCH_CA, once for all of them), fleet --cert-dir --check-signature.
    Returns [(step, Result)], one CA entry per token (or one for the batch)."""
    csr_dir, cert_dir = sb.sub("csr"), sb.sub("certs")
    m1 = os.path.join(sb.dir, "manifest-blank-%d.csv" % len(os.listdir(sb.dir)))
    with open(m1, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["token", "subject", "user"])
        for u in users:
            w.writerow(["blank", "/CN=%s/O=Bench" % u, u])
    base = [args.bin, "-q"] + (["--timings"] if timings else []) + [
        "--profile", PROFILES[alg], "--pin-source", "env:BENCH_PIN", "fleet", "--jobs", str(jobs)]
    steps = []
    r1 = run(base + ["--so-pin-source", "env:BENCH_SO_PIN", "--manifest", m1, "--csr-dir", csr_dir], sb.env)
    steps.append(("fleet --csr-dir", r1))
    lines = [json.loads(l) for l in r1.out.splitlines() if l.strip()]
    if len(lines) != len(users) or not all(l["ok"] for l in lines):
        raise StepFailed("fleet --csr-dir failed: " + r1.out[-2000:] + r1.err[-2000:])
    if batch_ca:
        steps.append(("CA", ca.sign_batch([l["keys"][0]["csr_file"] for l in lines], cert_dir)))
    else:
        for l in lines:
            steps.append(("CA", ca.sign(l["keys"][0]["csr_file"], os.path.join(cert_dir, l["token"] + ".pem"))))
    m2 = m1.replace("blank", "issued")
    with open(m2, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["token", "subject"])
        for l in lines:
            w.writerow(["serial:" + l["token"], l["subject"]])
    r2 = run(base + ["--manifest", m2, "--cert-dir", cert_dir, "--check-signature"], sb.env)
    steps.append(("fleet --cert-dir --check-signature", r2))
    lines2 = [json.loads(l) for l in r2.out.splitlines() if l.strip()]
    if len(lines2) != len(users) or not all(
            l["ok"] and l["keys"][0]["certificate"] == "picked-up" and l["keys"][0]["signature_check"] == "ok"
            for l in lines2):
        raise StepFailed("fleet --cert-dir failed: " + r2.out[-2000:] + r2.err[-2000:])
    return steps


# ---------------------------------------------------------------------------

def med(xs):
    return statistics.median(xs) if xs else float("nan")


def ms(x):
    return "%8.1f" % (x * 1e3)


def token_totals(tokens):
    """tokens: list of step lists -> (wall per token list, cpu per token list)."""
    return [sum(r.wall for _, r in t) for t in tokens], [sum(r.cpu for _, r in t) for t in tokens]


def step_medians(tokens):
    names, by = [], {}
    for t in tokens:
        for name, r in t:
            if name not in by:
                names.append(name)
                by[name] = []
            by[name].append(r)
    return [(n, med([r.wall for r in by[n]]), med([r.cpu for r in by[n]])) for n in names]


BATCH_WAY = "tokenprov fleet, CA batch"  # the fleet with one `openssl ca` run for all its requests
WAYS = ("pipeline", "tokenprov provision", "tokenprov fleet", BATCH_WAY)


def part_ab(args, ca, alg, out):
    """(a)/(b): N tokens one after another, each way once per round, the order rotating.

    pipeline: the seven processes per token. tokenprov provision: two tokenprov
    processes per token (a desk provisioning one token at a time). tokenprov
    fleet: `fleet --jobs 1` over the N tokens (one tokenprov process for the
    keys and requests of all of them, one for all the pickups); per token is
    the round's total over N. The CA is called once per token in these three
    ways. The fourth is the fleet again with the CA called once for the N
    requests (`openssl ca -infiles`), as a CA takes a fleet's folder of requests."""
    per_token = {w: [] for w in WAYS}   # each round's wall time over N: the same statistic for every way
    per_token_cpu = {w: [] for w in WAYS}
    single = {w: [] for w in WAYS}      # single tokens' times (pipeline, provision), for the spread
    steps_of = {w: [] for w in WAYS}    # step lists (per token; for the fleet, per round)
    rounds = []
    for rnd in range(args.rounds):
        order = list(WAYS[rnd % len(WAYS):] + WAYS[:rnd % len(WAYS)])
        rec = {}
        for way in order:
            sb = Sandbox(args.token_dir_base, way.split()[-1])
            try:
                users = ["r%dt%d" % (rnd, i) for i in range(args.tokens)]
                if way.startswith("tokenprov fleet"):
                    steps = tokenprov_fleet(args, sb, ca, alg, users, jobs=1, batch_ca=way == BATCH_WAY)
                    total, cpu = sum(r.wall for _, r in steps), sum(r.cpu for _, r in steps)
                    per_token[way].append(total / args.tokens)
                    per_token_cpu[way].append(cpu / args.tokens)
                    steps_of[way].append(steps)
                    rec[way] = total
                else:
                    tokens = []
                    for u in users:
                        tokens.append(pipeline_token(args, sb, ca, alg, u) if way == "pipeline"
                                      else tokenprov_token(args, sb, ca, alg, u))
                    wall, cpu = token_totals(tokens)
                    per_token[way].append(sum(wall) / args.tokens)
                    per_token_cpu[way].append(sum(cpu) / args.tokens)
                    single[way].extend(wall)
                    steps_of[way].extend(tokens)
                    rec[way] = sum(wall)
            finally:
                sb.close(args.keep)
        rounds.append(rec)
        print("  round %d (%s): %s" % (rnd + 1, " -> ".join(order),
                                       ", ".join("%s %.2f s" % (w, rec[w]) for w in WAYS)), flush=True)
    res = {"rounds": rounds}
    for way in WAYS:
        r = {"median_ms": med(per_token[way]) * 1e3, "median_cpu_ms": med(per_token_cpu[way]) * 1e3,
             "rounds_ms": [x * 1e3 for x in per_token[way]]}
        if single[way]:
            r["single_token_median_ms"] = med(single[way]) * 1e3
            r["single_token_min_ms"], r["single_token_max_ms"] = min(single[way]) * 1e3, max(single[way]) * 1e3
        if way == BATCH_WAY:
            names = ["fleet --csr-dir", "CA, one batch", "fleet --cert-dir --check-signature"]
            r["steps"] = []
            for n in names:
                rs = [x for st in steps_of[way] for name, x in st if name == n.split(",")[0]]
                r["steps"].append({"step": n + " (per token)", "median_ms": med([x.wall / args.tokens for x in rs]) * 1e3,
                                   "median_cpu_ms": med([x.cpu / args.tokens for x in rs]) * 1e3})
        elif way == "tokenprov fleet":
            # per token: each fleet run's time over N; the CA per call
            names = ["fleet --csr-dir", "CA", "fleet --cert-dir --check-signature"]
            r["steps"] = []
            for n in names:
                if n == "CA":
                    rs = [x for st in steps_of[way] for name, x in st if name == "CA"]
                    r["steps"].append({"step": "CA (per token)", "median_ms": med([x.wall for x in rs]) * 1e3,
                                       "median_cpu_ms": med([x.cpu for x in rs]) * 1e3})
                else:
                    rs = [x for st in steps_of[way] for name, x in st if name == n]
                    r["steps"].append({"step": n + " (per token)",
                                       "median_ms": med([x.wall / args.tokens for x in rs]) * 1e3,
                                       "median_cpu_ms": med([x.cpu / args.tokens for x in rs]) * 1e3})
        else:
            r["steps"] = [{"step": n, "median_ms": w * 1e3, "median_cpu_ms": c * 1e3}
                          for n, w, c in step_medians(steps_of[way])]
        res[way] = r
    for way in WAYS[1:]:
        res[way]["ratio"] = res["pipeline"]["median_ms"] / res[way]["median_ms"]
        res[way]["ratio_cpu"] = res["pipeline"]["median_cpu_ms"] / res[way]["median_cpu_ms"]
    ca_ms = med([x["median_ms"] for way in WAYS[:3] for x in res[way]["steps"] if x["step"].startswith("CA")])
    res["ca_ms"] = ca_ms
    print("  per token (a round's time over %d), median of %d rounds:  wall ms    CPU ms" % (args.tokens, args.rounds))
    for way in WAYS:
        print("    %-46s %s  %s" % (way, ms(res[way]["median_ms"] / 1e3), ms(res[way]["median_cpu_ms"] / 1e3)))
        for st in res[way]["steps"]:
            print("      %-44s %s  %s" % (st["step"], ms(st["median_ms"] / 1e3), ms(st["median_cpu_ms"] / 1e3)))
    for way in WAYS[1:]:
        way_ca = ca_ms if way != BATCH_WAY else res[way]["steps"][1]["median_ms"]
        without_ca = (res["pipeline"]["median_ms"] - ca_ms) / max(res[way]["median_ms"] - way_ca, 1e-9)
        res[way]["ratio_without_ca"] = without_ca
        print("    pipeline / %-26s %.2fx wall, %.2fx CPU; %.2fx leaving the CA (%.1f / %.1f ms per token) out"
              " (target: at least 6x)" % (way + ":", res[way]["ratio"], res[way]["ratio_cpu"], without_ca, ca_ms, way_ca))
    out[alg] = res
    return res


def part_c(args, ca, out):
    """(c): whole tokenprov commands, timed here around the process, against the time
    their own PKCS#11 calls took (tokenprov --timings); also the command's own wall
    time from inside (--timings: from static initialization to the end of main)."""
    res = {}
    for alg in args.algs:
        cmds = []
        for rnd in range(args.rounds):
            sb = Sandbox(args.token_dir_base, "timings")
            try:
                users = ["c%dt%d" % (rnd, i) for i in range(args.tokens)]
                runs = [s for u in users for s in tokenprov_token(args, sb, ca, alg, u, timings=True)]
                runs += tokenprov_fleet(args, sb, ca, alg, ["c%df%d" % (rnd, i) for i in range(args.tokens)],
                                        jobs=1, timings=True)
                for name, r in runs:
                    if name == "CA":
                        continue
                    m = TIMINGS_RE.search(r.err)
                    if not m:
                        raise StepFailed("no timings in: " + r.err)
                    cmds.append({"step": name, "whole_ms": r.wall * 1e3, "inner_ms": float(m.group(1)),
                                 "p11_ms": float(m.group(2)), "calls": int(m.group(4))})
            finally:
                sb.close(args.keep)
        steps = {}
        for c in cmds:
            steps.setdefault(c["step"], []).append(c)
        r = {"steps": {}}
        print("  %s, medians of %d runs each:                whole ms  in-process ms  PKCS#11 ms  calls  whole/PKCS#11"
              "  in-process/PKCS#11" % (alg, args.rounds * args.tokens))
        for name, cs in steps.items():
            row = {"whole_ms": med([c["whole_ms"] for c in cs]), "inner_ms": med([c["inner_ms"] for c in cs]),
                   "p11_ms": med([c["p11_ms"] for c in cs]), "calls": med([c["calls"] for c in cs]),
                   "ratio": med([c["whole_ms"] / c["p11_ms"] for c in cs]),
                   "inner_ratio": med([c["inner_ms"] / c["p11_ms"] for c in cs]), "runs": len(cs)}
            r["steps"][name] = row
            label = name + (" (%d tokens)" % args.tokens if name.startswith("fleet") else "")
            print("    %-46s %8.1f %12.1f %11.1f %6d %10.2fx %14.2fx" % (
                label, row["whole_ms"], row["inner_ms"], row["p11_ms"], row["calls"], row["ratio"], row["inner_ratio"]))
        prov = [c for c in cmds if c["step"].startswith("provision")]
        pairs = [(prov[i], prov[i + 1]) for i in range(0, len(prov) - 1, 2)]
        r["provision_token_ratio"] = med([(x["whole_ms"] + y["whole_ms"]) / (x["p11_ms"] + y["p11_ms"]) for x, y in pairs])
        r["provision_token_inner_ratio"] = med([(x["inner_ms"] + y["inner_ms"]) / (x["p11_ms"] + y["p11_ms"]) for x, y in pairs])
        fl = [c for c in cmds if c["step"].startswith("fleet")]
        fpairs = [(fl[i], fl[i + 1]) for i in range(0, len(fl) - 1, 2)]
        r["fleet_ratio"] = med([(x["whole_ms"] + y["whole_ms"]) / (x["p11_ms"] + y["p11_ms"]) for x, y in fpairs])
        print("    a token's two provision commands: whole/PKCS#11 %.2fx (in-process %.2fx); the two fleet runs: %.2fx"
              " (target: at most 1.3x)" % (r["provision_token_ratio"], r["provision_token_inner_ratio"], r["fleet_ratio"]))
        res[alg] = r
    out["c"] = res
    return res


FUNC_RE = re.compile(r"timings:\s+(C_\w+)\s+(\d+) calls\s+([0-9.]+) ms")


def fleet_run(args, ca, alg, jobs, n, timings=False):
    """One fleet of N blank tokens, timed per step. With TIMINGS, also the time
    inside each PKCS#11 function over both fleet commands (tokenprov --timings)."""
    sb = Sandbox(args.token_dir_base, "fleet-j%d" % jobs)
    try:
        steps = tokenprov_fleet(args, sb, ca, alg, ["f%03d" % i for i in range(n)], jobs=jobs, timings=timings)
        r1, r2 = steps[0][1], steps[-1][1]
        res = {"csr_s": r1.wall, "cert_s": r2.wall, "ca_s": sum(r.wall for name, r in steps if name == "CA"),
               "cpu_s": r1.cpu + r2.cpu}
        if timings:
            funcs = {}
            for r in (r1, r2):
                for name, calls, t in FUNC_RE.findall(r.err):
                    c, ms_ = funcs.get(name, (0, 0.0))
                    funcs[name] = (c + int(calls), ms_ + float(t))
            res["funcs"] = funcs
        return res
    finally:
        sb.close(args.keep)


def part_d(args, ca, out):
    """(d): fleet of N tokens, --jobs 1 against --jobs 2, alternating."""
    res = {}
    for alg in args.fleet_algs:
        runs = {1: [], 2: []}
        for rnd in range(args.fleet_rounds):
            for jobs in ((1, 2) if rnd % 2 == 0 else (2, 1)):
                r = fleet_run(args, ca, alg, jobs, args.fleet)
                runs[jobs].append(r)
                print("  %s round %d --jobs %d: fleet --csr-dir %.2f s, CA %.2f s, fleet --cert-dir %.2f s"
                      % (alg, rnd + 1, jobs, r["csr_s"], r["ca_s"], r["cert_s"]), flush=True)
        rr = {}
        for jobs in (1, 2):
            tp = med([x["csr_s"] + x["cert_s"] for x in runs[jobs]])
            rr["jobs%d" % jobs] = {"tokenprov_s": tp, "tokens_per_s": args.fleet / tp,
                                   "csr_s": med([x["csr_s"] for x in runs[jobs]]),
                                   "cert_s": med([x["cert_s"] for x in runs[jobs]]),
                                   "ca_s": med([x["ca_s"] for x in runs[jobs]]),
                                   "cpu_s": med([x["cpu_s"] for x in runs[jobs]])}
        rr["speedup"] = rr["jobs1"]["tokenprov_s"] / rr["jobs2"]["tokenprov_s"]
        for jobs in (1, 2):
            rr["jobs%d" % jobs]["cpus_used"] = rr["jobs%d" % jobs]["cpu_s"] / rr["jobs%d" % jobs]["tokenprov_s"]
            rr["jobs%d" % jobs]["csr_share"] = rr["jobs%d" % jobs]["csr_s"] / rr["jobs%d" % jobs]["tokenprov_s"]
        print("  %s, %d tokens, median of %d: --jobs 1 %.2f s (%.1f tokens/s, %.2f CPUs busy), --jobs 2 %.2f s "
              "(%.1f tokens/s, %.2f CPUs busy): %.2fx (target: at least 1.8x)"
              % (alg, args.fleet, args.fleet_rounds, rr["jobs1"]["tokenprov_s"], rr["jobs1"]["tokens_per_s"],
                 rr["jobs1"]["cpus_used"], rr["jobs2"]["tokenprov_s"], rr["jobs2"]["tokens_per_s"],
                 rr["jobs2"]["cpus_used"], rr["speedup"]))
        # Where the time goes with two workers: one more fleet each way with
        # --timings, for the module's own time per call (wall time in each
        # worker). Calls that take longer side by side than alone point at
        # contention inside the module (or the libraries it uses).
        t1, t2 = fleet_run(args, ca, alg, 1, args.fleet, True), fleet_run(args, ca, alg, 2, args.fleet, True)
        per_call = {}
        for name in sorted(t1["funcs"], key=lambda k: -t1["funcs"][k][1]):
            (c1, m1), (c2, m2) = t1["funcs"][name], t2["funcs"].get(name, (0, 0.0))
            if c1 and c2 and m1 >= 0.02 * sum(x[1] for x in t1["funcs"].values()):
                per_call[name] = {"jobs1_ms": m1 / c1, "jobs2_ms": m2 / c2, "calls": c1}
        sum1, sum2 = sum(x[1] for x in t1["funcs"].values()), sum(x[1] for x in t2["funcs"].values())
        rr["pkcs11_ms"] = {"jobs1": sum1, "jobs2": sum2, "per_call": per_call}
        print("  %s, time per PKCS#11 call, --jobs 1 -> --jobs 2 (one more fleet each, --timings): %s; all PKCS#11"
              " time %.0f -> %.0f ms (%.2fx, over %d tokens)"
              % (alg, ", ".join("%s %.2f -> %.2f ms" % (k, v["jobs1_ms"], v["jobs2_ms"]) for k, v in per_call.items()),
                 sum1, sum2, sum2 / max(sum1, 1e-9), args.fleet), flush=True)
        res[alg] = rr
    out["d"] = res
    return res


def time_v(cmd, env):
    r = run(["/usr/bin/time", "-v"] + cmd, env)
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.err)
    return int(m.group(1))


def part_e(args, ca, out):
    """(e): peak RSS of tokenprov commands under /usr/bin/time -v."""
    res = {}
    for alg in args.algs:
        sb = Sandbox(args.token_dir_base, "rss")
        try:
            common = ["--profile", PROFILES[alg], "--pin-source", "env:BENCH_PIN", "--subject", "/CN=rss/O=Bench"]
            csr_dir, cert_dir = sb.sub("csr"), sb.sub("certs")
            cmd = [args.bin, "-q", "--json", "provision", "--token", "blank", "--so-pin-source", "env:BENCH_SO_PIN",
                   "--csr-dir", csr_dir] + common
            kb1 = time_v(cmd, sb.env)
            serial = os.listdir(csr_dir)[0].split("-")[0]
            ca.sign(os.path.join(csr_dir, os.listdir(csr_dir)[0]), os.path.join(cert_dir, serial + ".pem"))
            kb2 = time_v([args.bin, "-q", "--json", "provision", "--token", "serial:" + serial, "--cert-dir", cert_dir,
                          "--check-signature"] + common, sb.env)
            res["provision --csr-dir (%s)" % alg] = kb1
            res["provision --cert-dir --check-signature (%s)" % alg] = kb2
        finally:
            sb.close(args.keep)
    sb = Sandbox(args.token_dir_base, "rss-fleet")
    try:
        m1 = os.path.join(sb.dir, "manifest.csv")
        with open(m1, "w") as f:
            f.write("token,subject\n" + "".join("blank,/CN=e%03d\n" % i for i in range(args.fleet)))
        kb = time_v([args.bin, "-q", "--profile", PROFILES[args.fleet_algs[0]], "--pin-source", "env:BENCH_PIN",
                     "--so-pin-source", "env:BENCH_SO_PIN", "fleet", "--jobs", "2", "--manifest", m1,
                     "--csr-dir", sb.sub("csr")], sb.env)
        res["fleet --jobs 2, %d tokens (%s)" % (args.fleet, args.fleet_algs[0])] = kb
    finally:
        sb.close(args.keep)
    for k, v in res.items():
        print("  %-50s %6.1f MB" % (k, v / 1024))
    print("  peak: %.1f MB (target: under 30 MB)" % (max(res.values()) / 1024))
    out["e"] = res
    return res


# ---------------------------------------------------------------------------
# (latency): the same work under a card-latency model. Every PKCS#11 call of
# both ways goes through tests/latencyp11 (a shim over SoftHSM2 that waits per
# call as bench/latency/*.profile says and counts calls at the module boundary).

LATENCY_DIR = os.path.join(HERE, "latency")
LATENCY_PROFILES = {"smartcard-opensc": os.path.join(LATENCY_DIR, "smartcard-opensc.profile"),
                    "yubikey-class": os.path.join(LATENCY_DIR, "yubikey-class.profile")}
# The long fleet's: yubikey-class without the per-slot cost of a slot scan (see the file).
LATENCY_FAST = os.path.join(LATENCY_DIR, "fast-card.profile")


class LatencySandbox(Sandbox):
    """A Sandbox whose module, for tokenprov (--module) and for the pipeline's
    pkcs11-tool and libp11 engine, is the latency shim over SoftHSM2. Each
    process writes its counters to counts/count-PID."""

    def __init__(self, base, name, shim, profile, scale=1.0):
        super().__init__(base, name)
        self.shim = shim
        self.counts = self.sub("counts")
        lat = {"LATENCYP11_PROFILE": profile, "LATENCYP11_COUNT_FILE": os.path.join(self.counts, "count-%p"),
               "LATENCYP11_SCALE": repr(scale)}
        self.env.update(lat)
        with open(self.engine_conf, "w") as f:
            f.write("openssl_conf = openssl_init\n[openssl_init]\nengines = engine_section\n"
                    "[engine_section]\npkcs11 = pkcs11_section\n[pkcs11_section]\nengine_id = pkcs11\n"
                    "dynamic_path = %s\nMODULE_PATH = %s\ninit = 0\n" % (ENGINE, shim))
        self.engine_env = dict(self.env, OPENSSL_CONF=self.engine_conf)

    def take_counts(self):
        """The counters of every process since the last call, summed; the files are removed."""
        total = {}
        for n in os.listdir(self.counts):
            if not n.startswith("count-") or n.endswith(".tmp"):
                continue
            p = os.path.join(self.counts, n)
            with open(p) as f:
                for line in f:
                    k, v = line.split()
                    total[k] = total.get(k, 0) + float(v)
            os.unlink(p)
        return total


def lat_tokenprov_token(args, sb, ca, alg, user):
    """Blank token to checked certificate, tokenprov's way (two processes and the CA)."""
    tp = [args.bin, "-q", "--json", "--module", sb.shim]
    common = ["--profile", PROFILES[alg], "--pin-source", "env:BENCH_PIN", "--subject", "/CN=%s/O=Bench" % user]
    csr_dir, cert_dir = sb.sub("csr"), sb.sub("certs")
    r1 = run(tp + ["provision", "--token", "blank", "--so-pin-source", "env:BENCH_SO_PIN", "--csr-dir", csr_dir]
             + common, sb.env)
    j = json.loads(r1.out)
    serial, csr = j["token"]["serial"], j["keys"][0]["csr_file"]
    c1 = sb.take_counts()
    rc = ca.sign(csr, os.path.join(cert_dir, serial + ".pem"))
    r2 = run(tp + ["provision", "--token", "serial:" + serial, "--cert-dir", cert_dir, "--check-signature"] + common,
             sb.env)
    k = json.loads(r2.out)["keys"][0]
    if k["certificate"] != "picked-up" or k["signature_check"] != "ok":
        raise StepFailed("tokenprov did not finish token %s: %s" % (user, r2.out))
    c2 = sb.take_counts()
    return {"wall": r1.wall + r2.wall, "ca": rc.wall, "steps": [r1.wall, r2.wall], "counts": [c1, c2]}


def lat_pipeline_token(args, sb, ca, alg, user):
    """The same with the public tools, every PKCS#11 step through the shim: the
    token is initialized with pkcs11-tool (softhsm2-util would bypass PKCS#11,
    and a desk initializes a card with pkcs11-tool or its vendor's tool)."""
    label, key = "bench-" + user, "auth-" + user
    d = sb.sub("pipe")
    csr, der = os.path.join(d, user + ".csr"), os.path.join(d, user + ".der")
    data, sig = os.path.join(d, user + ".data"), os.path.join(d, user + ".sig")
    with open(data, "wb") as f:
        f.write(os.urandom(32))
    mod = ["pkcs11-tool", "--module", sb.shim]
    p11 = mod + ["--token-label", label, "--login", "--pin", PIN]
    uri = "pkcs11:token=%s;object=%s;type=private;pin-value=%s" % (label, key, PIN)
    walls = []
    walls.append(run(mod + ["--init-token", "--label", label, "--so-pin", SO_PIN], sb.env).wall)
    walls.append(run(mod + ["--token-label", label, "--init-pin", "--login", "--login-type", "so", "--so-pin", SO_PIN,
                            "--new-pin", PIN], sb.env).wall)
    walls.append(run(p11 + ["--keypairgen"] + P11TOOL_KEY[alg] + ["--id", "01", "--label", key], sb.env).wall)
    walls.append(run(["openssl", "req", "-new", "-engine", "pkcs11", "-keyform", "engine", "-key", uri,
                      "-subj", "/CN=%s/O=Bench" % user, "-out", csr], sb.engine_env).wall)
    c1 = sb.take_counts()
    rc = ca.sign(csr, der, der=True)
    walls.append(run(p11 + ["--write-object", der, "--type", "cert", "--id", "01", "--label", key], sb.env).wall)
    walls.append(run(["openssl", "dgst", "-sha256", "-engine", "pkcs11", "-keyform", "engine", "-sign", uri, "-out", sig,
                      data], sb.engine_env).wall)
    r = run(["openssl", "pkeyutl", "-verify", "-certin", "-inkey", der, "-keyform", "DER", "-rawin",
             "-digest", "sha256", "-in", data, "-sigfile", sig], sb.env)
    if "Signature Verified Successfully" not in r.out:
        raise StepFailed("the pipeline's signature did not verify for %s: %s" % (user, r.out))
    walls.append(r.wall)
    c2 = sb.take_counts()
    return {"wall": sum(walls), "ca": rc.wall, "steps": walls, "counts": [c1, c2]}


def _sum_counts(cs):
    t = {}
    for c in cs:
        for k, v in c.items():
            t[k] = t.get(k, 0) + v
    return t


def lat_single(args, ca, out):
    """One token blank to certificate under each profile, both ways, EC P-256 and RSA-2048."""
    res = {}
    for pname, pfile in LATENCY_PROFILES.items():
        for alg in args.algs:
            ways = {"tokenprov": [], "pipeline": []}
            for i in range(args.latency_tokens):
                for way in (("tokenprov", "pipeline") if i % 2 == 0 else ("pipeline", "tokenprov")):
                    sb = LatencySandbox(args.token_dir_base, "lat-" + way, args.shim, pfile)
                    try:
                        f = lat_tokenprov_token if way == "tokenprov" else lat_pipeline_token
                        ways[way].append(f(args, sb, ca, alg, "l%d" % i))
                    finally:
                        sb.close(args.keep)
            r = {}
            for way, toks in ways.items():
                counts = [_sum_counts(t["counts"]) for t in toks]
                r[way] = {"wall_ms": med([t["wall"] for t in toks]) * 1e3,
                          "modelled_ms": med([c.get("modelled_us", 0) for c in counts]) / 1e3,
                          "calls": med([c.get("calls", 0) for c in counts]),
                          "logins_so": med([c.get("logins_so", 0) for c in counts]),
                          "logins_user": med([c.get("logins_user", 0) for c in counts]),
                          "processes": len(toks[0]["steps"]),
                          "per_function": {k: v for k, v in sorted(counts[0].items()) if k.startswith("C_")},
                          "first_step_counts": {k: v for k, v in toks[0]["counts"][0].items()
                                                if k in ("calls", "logins_so", "logins_user")}}
            t, p = r["tokenprov"], r["pipeline"]
            r["single_vs_card"] = med([x["wall"] / (_sum_counts(x["counts"]).get("modelled_us", 1) / 1e6)
                                       for x in ways["tokenprov"]])
            r["pipeline_vs_tokenprov"] = p["wall_ms"] / t["wall_ms"]
            r["calls_ratio"] = t["calls"] / p["calls"]
            res["%s %s" % (pname, alg)] = r
            print("  %-16s %-8s tokenprov %7.0f ms (modelled card time %7.0f ms: %.3fx), %3d calls, logins SO %d user %d"
                  " | pipeline %7.0f ms, %3d calls, logins SO %d user %d | pipeline/tokenprov %.2fx, calls %.2f"
                  % (pname, alg, t["wall_ms"], t["modelled_ms"], r["single_vs_card"], t["calls"], t["logins_so"],
                     t["logins_user"], p["wall_ms"], p["calls"], p["logins_so"], p["logins_user"],
                     r["pipeline_vs_tokenprov"], r["calls_ratio"]), flush=True)
    return res


def lat_fleet_run(args, ca, n, jobs, profile, scale, initialized, time_v_rss=False):
    """A fleet of N tokens under the model: `fleet --csr-dir`, the CA per
    request, `fleet --cert-dir --check-signature`. INITIALIZED: the tokens are
    initialized beforehand (softhsm2-util, outside the timing; rows name them by
    serial), as SoftHSM2 shows one blank token at a time where a desk's readers
    show all their blank cards at once. Returns the two fleet times, the
    per-row times (from the state file's order of finishing) and peak RSS."""
    sb = LatencySandbox(args.token_dir_base, "latfleet-j%d" % jobs, args.shim, profile, scale)
    try:
        users = ["f%03d" % i for i in range(n)]
        rows = []
        if initialized:
            for u in users:
                run(["softhsm2-util", "--init-token", "--free", "--label", "bench-" + u, "--so-pin", SO_PIN,
                     "--pin", PIN], sb.env)
                rows.append(("bench-" + u, u))
        else:
            rows = [("blank", u) for u in users]
        csr_dir, cert_dir = sb.sub("csr"), sb.sub("certs")
        m1 = os.path.join(sb.dir, "manifest-1.csv")
        with open(m1, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["token", "subject", "user"])
            for tok, u in rows:
                w.writerow([tok, "/CN=%s/O=Bench" % u, u])
        state = os.path.join(sb.dir, "state.jsonl")
        base = [args.bin, "-q", "--module", sb.shim, "--profile", PROFILES["ec-p256"], "--pin-source",
                "env:BENCH_PIN", "fleet", "--jobs", str(jobs)]
        cmd1 = base + ["--so-pin-source", "env:BENCH_SO_PIN", "--manifest", m1, "--csr-dir", csr_dir,
                       "--state", state]
        t0 = time.time()
        if time_v_rss:
            r1 = run(["/usr/bin/time", "-v"] + cmd1, sb.env)
            rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", r1.err).group(1))
        else:
            r1 = run(cmd1, sb.env)
            rss = None
        lines = [json.loads(l) for l in r1.out.splitlines() if l.strip()]
        if len(lines) != n or not all(l["ok"] for l in lines):
            raise StepFailed("fleet --csr-dir failed: " + r1.out[-2000:] + r1.err[-2000:])
        c1 = sb.take_counts()
        res = {"csr_s": r1.wall, "rss_kb": rss, "counts_csr": c1, "t0": t0, "stdout_times": None}
        if args.latency_fleet_pickup:
            for l in lines:
                ca.sign(l["keys"][0]["csr_file"], os.path.join(cert_dir, l["token"] + ".pem"))
            m2 = os.path.join(sb.dir, "manifest-2.csv")
            with open(m2, "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["token", "subject"])
                for l in lines:
                    w.writerow(["serial:" + l["token"], l["subject"]])
            r2 = run(base + ["--manifest", m2, "--cert-dir", cert_dir, "--check-signature"], sb.env)
            lines2 = [json.loads(l) for l in r2.out.splitlines() if l.strip()]
            if len(lines2) != n or not all(l["ok"] and l["keys"][0]["signature_check"] == "ok" for l in lines2):
                raise StepFailed("fleet --cert-dir failed: " + r2.out[-2000:] + r2.err[-2000:])
            res["cert_s"] = r2.wall
            res["counts_cert"] = sb.take_counts()
        res["total_s"] = res["csr_s"] + res.get("cert_s", 0)
        return res
    finally:
        sb.close(args.keep)


def lat_fleet16(args, ca):
    n = args.latency_fleet
    prof = LATENCY_PROFILES[args.latency_fleet_profile]
    runs = {1: [], 16: []}
    for rnd in range(args.latency_fleet_rounds):
        for jobs in ((1, n) if rnd % 2 == 0 else (n, 1)):
            r = lat_fleet_run(args, ca, n, jobs, prof, 1.0, initialized=True)
            runs[1 if jobs == 1 else 16].append(r)
            print("  fleet of %d (%s), --jobs %d: fleet --csr-dir %.2f s, fleet --cert-dir %.2f s, %d calls"
                  % (n, args.latency_fleet_profile, jobs, r["csr_s"], r.get("cert_s", 0),
                     r["counts_csr"].get("calls", 0) + r.get("counts_cert", {}).get("calls", 0)), flush=True)
    t1, t16 = med([x["total_s"] for x in runs[1]]), med([x["total_s"] for x in runs[16]])
    per_token_calls = med([(x["counts_csr"].get("calls", 0) + x.get("counts_cert", {}).get("calls", 0)) / n
                           for x in runs[1]])
    per_token_logins = med([(x["counts_csr"].get("logins_user", 0) + x.get("counts_cert", {}).get("logins_user", 0)
                             + x["counts_csr"].get("logins_so", 0)) / n for x in runs[1]])
    modelled = med([(x["counts_csr"].get("modelled_us", 0) + x.get("counts_cert", {}).get("modelled_us", 0)) / 1e6
                    for x in runs[1]])
    res = {"jobs1_s": t1, "jobs16_s": t16, "scaling": t1 / t16, "calls_per_token": per_token_calls,
           "logins_per_token": per_token_logins, "jobs1_modelled_s": modelled,
           "jobs1_vs_card": t1 / modelled if modelled else None}
    print("  fleet of %d: --jobs 1 %.2f s (modelled card time %.2f s), --jobs %d %.2f s: %.2fx (goal: at least 12x);"
          " %.1f calls and %.1f logins per token"
          % (n, t1, modelled, n, t16, res["scaling"], per_token_calls, per_token_logins), flush=True)
    return res


def lat_fleet500(args, ca):
    """A long fleet (blank rows, SoftHSM2's blank token after blank token) under
    a fast model: time per row from the order rows finish in (the audit log's
    timestamps would do too; tokenprov's stdout lines are read as they come)."""
    n = args.latency_long
    sb = LatencySandbox(args.token_dir_base, "latfleet-long", args.shim, LATENCY_FAST, args.latency_long_scale)
    try:
        m1 = os.path.join(sb.dir, "manifest.csv")
        with open(m1, "w") as f:
            f.write("token,subject,user\n" + "".join("blank,/CN=g%04d/O=Bench,g%04d\n" % (i, i) for i in range(n)))
        cmd = ["/usr/bin/time", "-v", args.bin, "-q", "--module", sb.shim, "--profile", PROFILES["ec-p256"],
               "--pin-source", "env:BENCH_PIN", "--so-pin-source", "env:BENCH_SO_PIN", "fleet", "--jobs", "1",
               "--manifest", m1, "--csr-dir", sb.sub("csr"), "--state", os.path.join(sb.dir, "state.jsonl")]
        stamps = []
        with tempfile.TemporaryFile() as fe:
            t0 = time.perf_counter()
            p = subprocess.Popen(cmd, env=sb.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=fe)
            for line in p.stdout:
                if line.strip():
                    stamps.append((time.perf_counter(), json.loads(line)))
            p.wait()
            wall = time.perf_counter() - t0
            fe.seek(0)
            err = fe.read().decode(errors="replace")
        if p.returncode != 0 or len(stamps) != n or not all(s[1]["ok"] for s in stamps):
            raise StepFailed("long fleet failed (exit %d, %d rows): %s" % (p.returncode, len(stamps), err[-2000:]))
        rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", err).group(1))
        times = [stamps[0][0] - t0] + [stamps[i][0] - stamps[i - 1][0] for i in range(1, n)]
        k = min(50, n // 4)
        first, last = statistics.mean(times[1:k + 1]), statistics.mean(times[-k:])
        counts = sb.take_counts()
        res = {"rows": n, "wall_s": wall, "rss_mb": rss_kb / 1024, "first_rows_ms": first * 1e3,
               "last_rows_ms": last * 1e3, "per_row_growth": last / first, "calls_per_row": counts.get("calls", 0) / n,
               "scale": args.latency_long_scale}
        print("  %d-row fleet (fast-card x %.2f), --jobs 1: %.1f s, per row rows 2-%d %.1f ms, last %d %.1f ms: growth %.2f"
              " (goal: at most 1.2); peak RSS %.1f MB (goal: under 30 MB); %.1f calls per row"
              % (n, args.latency_long_scale, wall, k + 1, first * 1e3, k, last * 1e3,
                 res["per_row_growth"], res["rss_mb"], res["calls_per_row"]), flush=True)
        return res
    finally:
        sb.close(args.keep)


def part_latency(args, ca, out):
    if not args.shim or not os.path.exists(args.shim):
        sys.exit("bench: no latency shim at %s (bench/run.sh builds it; or pass --shim)" % args.shim)
    res = {"profiles": {k: os.path.relpath(v, SRC) for k, v in LATENCY_PROFILES.items()}}
    res["profiles"]["fast-card"] = os.path.relpath(LATENCY_FAST, SRC)
    single = lat_single(args, ca, out)
    res["single"] = single
    res["single_vs_card"] = max(r["single_vs_card"] for r in single.values())
    res["pipeline_vs_tokenprov"] = min(r["pipeline_vs_tokenprov"] for r in single.values())
    res["calls_per_token"] = {k: {"tokenprov": r["tokenprov"]["calls"], "pipeline": r["pipeline"]["calls"],
                                  "tokenprov_logins_so": r["tokenprov"]["logins_so"],
                                  "tokenprov_logins_user": r["tokenprov"]["logins_user"],
                                  "pipeline_logins_so": r["pipeline"]["logins_so"],
                                  "pipeline_logins_user": r["pipeline"]["logins_user"]}
                              for k, r in single.items()}
    f16 = lat_fleet16(args, ca)
    res["fleet16"] = f16
    res["fleet16_scaling"] = f16["scaling"]
    f500 = lat_fleet500(args, ca)
    res["fleet500"] = f500
    res["fleet500_rss_mb"] = f500["rss_mb"]
    res["fleet500_per_row_growth"] = f500["per_row_growth"]
    print("  latency: single_vs_card %.3f (goal <= 1.10), pipeline_vs_tokenprov %.2f (goal >= 3), fleet16_scaling %.2f"
          " (goal >= 12), fleet500_per_row_growth %.2f (goal <= 1.2), fleet500_rss_mb %.1f (goal < 30)"
          % (res["single_vs_card"], res["pipeline_vs_tokenprov"], res["fleet16_scaling"],
             res["fleet500_per_row_growth"], res["fleet500_rss_mb"]), flush=True)
    out["latency"] = res
    return res


def machine():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass

    def ver(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True).stdout.strip().splitlines()[0]
        except Exception:
            return "?"

    def pkg(name):
        return ver(["dpkg-query", "-W", "-f", "${Version}", name])

    return {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "host": platform.node(), "kernel": platform.release(), "cpu": cpu, "cpus": os.cpu_count(),
            "loadavg": os.getloadavg(), "openssl": ver(["openssl", "version"]), "softhsm2": pkg("softhsm2"),
            "opensc": pkg("opensc"), "libengine-pkcs11-openssl": pkg("libengine-pkcs11-openssl")}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=os.environ.get("TOKENPROV_BIN", os.path.join(os.path.dirname(SRC), "build-bench", "tokenprov")),
                    help="the tokenprov binary (a Release build)")
    ap.add_argument("--parts", default="a,b,c,d,e", help="which parts to run, e.g. a,c")
    ap.add_argument("--rounds", type=int, default=5, help="rounds of (a), (b), (c); each way once per round")
    ap.add_argument("--tokens", type=int, default=10, help="tokens per round in (a), (b), (c)")
    ap.add_argument("--fleet", type=int, default=50, help="tokens in the fleet of (d)")
    ap.add_argument("--fleet-rounds", type=int, default=3, help="rounds of (d); each --jobs once per round")
    ap.add_argument("--fleet-algs", default="ec-p256", help="algorithms for (d), comma-separated")
    ap.add_argument("--token-dir-base", default="/dev/shm" if os.path.isdir("/dev/shm") else None,
                    help="where the SoftHSM2 token folders go (default /dev/shm: tmpfs; give a disk path to include the file system)")
    ap.add_argument("--keep", action="store_true", help="keep the token folders")
    ap.add_argument("--shim", default=os.environ.get("LATENCYP11_LIB"),
                    help="the latency shim liblatencyp11.so for the latency part (bench/run.sh passes it)")
    ap.add_argument("--latency-tokens", type=int, default=2,
                    help="tokens per profile and algorithm, each way, in the latency part's single-token figures")
    ap.add_argument("--latency-fleet", type=int, default=16, help="tokens in the latency part's parallel fleet")
    ap.add_argument("--latency-fleet-rounds", type=int, default=1, help="rounds of that fleet, each --jobs once")
    ap.add_argument("--latency-fleet-profile", default="smartcard-opensc", choices=sorted(LATENCY_PROFILES),
                    help="the latency profile of the fleets")
    ap.add_argument("--latency-fleet-pickup", type=int, default=1,
                    help="1: the parallel fleet also picks up its certificates (a second fleet run); 0: keys and requests only")
    ap.add_argument("--latency-long", type=int, default=500, help="rows of the latency part's long fleet")
    ap.add_argument("--latency-long-scale", type=float, default=0.1,
                    help="the long fleet's profile with every wait multiplied by this (a fast card)")
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--nice", type=int, default=0,
                    help="run at this nice value, and the session's scheduler autogroup too (negative needs "
                         "root): on a shared machine, keeps unrelated work from taking the CPUs; the same for "
                         "every way and every --jobs")
    args = ap.parse_args()
    args.algs = ["ec-p256", "rsa2048"]
    args.fleet_algs = [a.strip() for a in args.fleet_algs.split(",") if a.strip()]
    parts = set(p.strip() for p in args.parts.split(","))
    if not os.access(args.bin, os.X_OK):
        sys.exit("bench: no tokenprov binary at %s (build it, or pass --bin)" % args.bin)
    for tool in ("softhsm2-util", "pkcs11-tool", "openssl", "/usr/bin/time"):
        if not shutil.which(tool):
            sys.exit("bench: %s is missing (apt-get install softhsm2 opensc openssl libengine-pkcs11-openssl time)" % tool)
    if not os.path.exists(ENGINE):
        sys.exit("bench: the libp11 engine %s is missing (apt-get install libengine-pkcs11-openssl)" % ENGINE)

    autogroup_before = None
    if args.nice:
        os.nice(args.nice)
        # With the scheduler's autogroups (sched_autogroup_enabled), a process's nice value
        # counts only inside its session; the session's own nice decides its share
        # against other sessions. Set both, and put the session's back at the end.
        try:
            with open("/proc/self/autogroup") as f:
                autogroup_before = int(f.read().split("nice")[1])
            with open("/proc/self/autogroup", "w") as f:
                f.write(str(args.nice))
        except (OSError, ValueError, IndexError):
            autogroup_before = None
    info = machine()
    info["nice"] = os.nice(0)
    info["autogroup_nice"] = args.nice if autogroup_before is not None else None
    info["token_dir_base"] = args.token_dir_base or tempfile.gettempdir()
    info["bin"] = args.bin
    print("tokenprov benchmark, %s, %s (%d CPUs), load %.2f %.2f %.2f, nice %d, token folders under %s"
          % (info["date"], info["cpu"], info["cpus"], *info["loadavg"], info["nice"], info["token_dir_base"]), flush=True)
    out = {"machine": info}
    workdir = tempfile.mkdtemp(prefix="tokenprov-bench-ca-")
    try:
        ca = Ca(workdir)
        if "a" in parts:
            print("(a) %d tokens one after another, EC P-256, %d rounds" % (args.tokens, args.rounds), flush=True)
            part_ab(args, ca, "ec-p256", out)
        if "b" in parts:
            print("(b) %d tokens one after another, RSA-2048, %d rounds" % (args.tokens, args.rounds), flush=True)
            part_ab(args, ca, "rsa2048", out)
        if "c" in parts:
            print("(c) tokenprov whole command against its PKCS#11 time (--timings)", flush=True)
            part_c(args, ca, out)
        if "d" in parts:
            print("(d) fleet of %d tokens, --jobs 1 against --jobs 2" % args.fleet, flush=True)
            part_d(args, ca, out)
        if "e" in parts:
            print("(e) peak RSS (/usr/bin/time -v)", flush=True)
            part_e(args, ca, out)
        if "latency" in parts:
            print("(latency) under the card-latency model (tests/latencyp11, bench/latency/*.profile)", flush=True)
            part_latency(args, ca, out)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if autogroup_before is not None:
            try:
                with open("/proc/self/autogroup", "w") as f:
                    f.write(str(autogroup_before))
            except OSError:
                pass
    out["machine"]["loadavg_end"] = os.getloadavg()
    print("load at the end: %.2f %.2f %.2f" % out["machine"]["loadavg_end"])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
        print("figures written to " + args.json)


if __name__ == "__main__":
    main()
