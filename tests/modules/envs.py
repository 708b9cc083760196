# SPDX-License-Identifier: Apache-2.0
"""Private instances of the PKCS#11 modules of the module matrix (issue 14).

Each context manager starts one module in a temporary folder, yields an Env and,
on the way out (normal or not), stops every process it started and removes the
folder. Nothing on the machine is configured: where a module insists on fixed
paths (opencryptoki's /etc, /var/lib and /run; p11-kit's module directory) the
module runs in a private mount namespace made with `unshare -m`, and the mounts
are made inside that namespace only, so they vanish with it.

    with envs.tpm2() as e:
        e.run(["pkcs11-tool", "--module", e.module, "-L"])

Env fields:
  name        module name as the matrix reports it ("softhsm-direct", ...)
  module      the .so to pass as --module
  env         variables to add for subprocesses (module config, and the PINs
              as TP_PIN / TP_SO_PIN so tools take `env:TP_PIN`)
  cmd(argv)   argv with the prefix that enters the module's private world
  run(argv, env=None, **kw)  subprocess.run of cmd(argv), env merged, text output
  so_pin, user_pin      the PINs the tests use (pass them via env or file only)
  blank_token_count     blank tokens present when the env starts
  limits      known facts about the module (used only to decide expected outcomes)
  dir         the private temporary folder

Needs root (mount namespaces, tpm2-abrmd --allow-root) and the packages of
scripts/setup.sh --test. Daemons get PR_SET_PDEATHSIG, so they also die when the
process that started them is killed outright. Start envs from the main thread.
"""

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

MULTIARCH = "/usr/lib/x86_64-linux-gnu"
SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
P11KIT_PROXY = MULTIARCH + "/p11-kit-proxy.so"
TPM2_MODULE = MULTIARCH + "/pkcs11/libtpm2_pkcs11.so"
OPENCRYPTOKI_MODULE = MULTIARCH + "/pkcs11/libopencryptoki.so"
NSS_SOFTOKN = MULTIARCH + "/libsoftokn3.so"
P11KIT_MODULE_DIRS = ("/usr/share/p11-kit/modules", "/etc/pkcs11")

PIN_VAR = "TP_PIN"
SO_PIN_VAR = "TP_SO_PIN"
USER_PIN = "123456"
SO_PIN = "87654321"        # also opencryptoki's factory SO PIN
READY_SECONDS = 60         # how long a daemon may take to come up on a busy machine

ALGORITHMS = ("rsa2048", "rsa3072", "rsa4096", "ec-p256", "ec-p384", "ed25519")


class Unavailable(RuntimeError):
    """The module can't be started here (missing package, not root)."""


def _set_pdeathsig():
    # PR_SET_PDEATHSIG = 1: the daemon gets SIGKILL when its parent thread dies.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL, 0, 0, 0)


def _free_port_pair():
    """Two consecutive free TCP ports on 127.0.0.1 (swtpm's TCTI takes the control port as port+1)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as a:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
            if port >= 65535:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as b:
                try:
                    b.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
                return port, port + 1
    raise RuntimeError("no two consecutive free ports on 127.0.0.1")


def _need(*paths):
    for p in paths:
        if not os.path.exists(p):
            raise Unavailable("%s is missing: run scripts/setup.sh --test (module matrix packages)" % p)


def _need_root(what):
    if os.geteuid() != 0:
        raise Unavailable("%s needs root (mount namespace / daemon as root)" % what)


class Daemons:
    """Processes started by one env: each in its own process group, all stopped by stop_all()."""

    def __init__(self, logdir):
        self.logdir = logdir
        self.procs = []   # (name, Popen, log file object)

    def start(self, name, argv, env=None):
        log = open(os.path.join(self.logdir, name + ".log"), "wb")
        try:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                 env=env, start_new_session=True, preexec_fn=_set_pdeathsig)
        except BaseException:
            log.close()
            raise
        self.procs.append((name, p, log))
        return p

    def log_text(self, name):
        try:
            with open(os.path.join(self.logdir, name + ".log"), errors="replace") as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def check_alive(self, name, p):
        if p.poll() is not None:
            raise RuntimeError("%s exited (%s) while starting: %s" % (name, p.returncode, self.log_text(name)))

    def wait_for(self, name, p, cond, what):
        """Polls cond() until true; fails early when the daemon died."""
        deadline = time.monotonic() + READY_SECONDS
        while True:
            self.check_alive(name, p)
            if cond():
                return
            if time.monotonic() > deadline:
                raise RuntimeError("%s: %s not ready after %d s: %s" % (name, what, READY_SECONDS, self.log_text(name)))
            time.sleep(0.05)

    def stop_all(self):
        # Reverse order: clients of a daemon go before it.
        for name, p, log in reversed(self.procs):
            try:
                if p.poll() is None:
                    try:
                        os.killpg(p.pid, signal.SIGTERM)
                    except ProcessLookupError:
                        pass
                    try:
                        p.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        os.killpg(p.pid, signal.SIGKILL)
                        p.wait()
                else:
                    # The group may still hold children (a daemon that forked).
                    try:
                        os.killpg(p.pid, signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):
                        pass
            finally:
                log.close()
        self.procs = []

    def pids(self):
        return [p.pid for _, p, _ in self.procs]


class Env:
    def __init__(self, name, module, workdir):
        self.name = name
        self.module = module
        self.dir = workdir
        self.so_pin = SO_PIN
        self.user_pin = USER_PIN
        self.env = {PIN_VAR: USER_PIN, SO_PIN_VAR: SO_PIN}
        self.prefix = []
        self.blank_token_count = 1
        self.limits = {}
        self.daemons = Daemons(workdir)

    def cmd(self, argv):
        return list(self.prefix) + list(argv)

    def full_env(self, extra=None):
        e = dict(os.environ)
        e.update(self.env)
        if extra:
            e.update(extra)
        return e

    def run(self, argv, env=None, **kw):
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        kw.setdefault("timeout", 600)
        return subprocess.run(self.cmd(argv), env=self.full_env(env), **kw)

    def path(self, name):
        return os.path.join(self.dir, name)

    def __repr__(self):
        return "Env(%s, %s)" % (self.name, self.module)


def _limits(**kw):
    base = {
        "algorithms": set(ALGORITHMS),   # what keygen can make
        "rsa_max_bits": 4096,
        "exportable": True,              # extractable private keys
        "private_key_import": True,      # restore of a PKCS#12 key
        "init": True,                    # C_InitToken on a blank token
        "reinit": True,                  # C_InitToken again on an initialized token
        "has_so": True,                  # an SO who sets the user PIN
        "blank_grows": False,            # a new empty slot appears after each init
        "shared_serial": False,          # all tokens report the same serial
        "certificate_category": True,    # accepts CKA_CERTIFICATE_CATEGORY
        "local": True,                   # generated keys get CKA_LOCAL true
        "pin_min": 4, "pin_max": 255,
    }
    base.update(kw)
    return base


@contextlib.contextmanager
def _workdir(prefix):
    d = tempfile.mkdtemp(prefix="tokenprov-%s-" % prefix)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _softhsm_conf(d):
    tokdir = os.path.join(d, "softhsm-tokens")
    os.makedirs(tokdir)
    conf = os.path.join(d, "softhsm2.conf")
    with open(conf, "w") as f:
        f.write("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n"
                "slots.removable = false\n" % tokdir)
    return conf


def _softhsm_limits():
    return _limits(blank_grows=True)


def _namespace(env, mounts_script, unshare_flags=("-m",)):
    """Starts the namespace holder: `unshare` runs mounts_script (sh, set -e) inside the new
    namespace and then sleeps; env.prefix enters it with nsenter. The mounts can never reach the
    machine's own namespace: they are made by the shell unshare started."""
    marker = env.path("ns-ready")
    script = "set -e\n%s\n: > %s\nexec sleep infinity\n" % (mounts_script, marker)
    holder = env.daemons.start("namespace", ["unshare"] + list(unshare_flags) + ["--propagation", "private",
                                                                              "--", "sh", "-c", script])
    env.daemons.wait_for("namespace", holder, lambda: os.path.exists(marker), "mount namespace")
    own = os.readlink("/proc/self/ns/mnt")
    theirs = os.readlink("/proc/%d/ns/mnt" % holder.pid)
    if own == theirs:
        raise RuntimeError("namespace holder shares the machine's mount namespace; refusing to go on")
    nsflags = ["-m"] + (["-i"] if "-i" in unshare_flags else [])
    env.prefix = ["nsenter", "-t", str(holder.pid)] + nsflags + ["--"]
    return holder


def _p11kit_private(env, module_files):
    """A private p11-kit configuration: only module_files {name: text}, in a mount namespace
    where the module directory (and /etc/pkcs11, if the machine has one) is a private folder.
    As root p11-kit reads no per-user configuration, so this is the way to give it one."""
    _need_root("a private p11-kit configuration")
    _need(P11KIT_PROXY)
    mdir = env.path("p11-kit-modules")
    os.makedirs(mdir)
    for name, text in module_files.items():
        with open(os.path.join(mdir, name + ".module"), "w") as f:
            f.write(text)
    empty = env.path("p11-kit-etc")
    os.makedirs(empty)
    lines = ["mount --bind %s /usr/share/p11-kit/modules" % mdir]
    if os.path.isdir("/etc/pkcs11"):
        lines.append("mount --bind %s /etc/pkcs11" % empty)
    _namespace(env, "\n".join(lines))


@contextlib.contextmanager
def softhsm_direct():
    """SoftHSM2 loaded directly, its own token folder."""
    _need(SOFTHSM_MODULE)
    with _workdir("softhsm") as d:
        e = Env("softhsm-direct", SOFTHSM_MODULE, d)
        e.env["SOFTHSM2_CONF"] = _softhsm_conf(d)
        e.limits = _softhsm_limits()
        try:
            yield e
        finally:
            e.daemons.stop_all()


@contextlib.contextmanager
def softhsm_proxy():
    """SoftHSM2 behind p11-kit-proxy, with a private p11-kit configuration naming only it."""
    _need(SOFTHSM_MODULE)
    with _workdir("softhsm-proxy") as d:
        e = Env("softhsm-proxy", P11KIT_PROXY, d)
        e.env["SOFTHSM2_CONF"] = _softhsm_conf(d)
        e.limits = _softhsm_limits()
        try:
            _p11kit_private(e, {"softhsm2": "module: %s\n" % SOFTHSM_MODULE})
            yield e
        finally:
            e.daemons.stop_all()


@contextlib.contextmanager
def tpm2():
    """tpm2-pkcs11 over swtpm, through tpm2-abrmd on a private D-Bus session bus.
    The TPM's dictionary-attack lockout is relaxed: 1000 tries before a lock, and a failure
    counter that does not decay during a run (a day per step), so a test can count the tries
    a tool spends (tpm2_lockout_counter)."""
    _need_root("tpm2-abrmd --allow-root")
    for p in (TPM2_MODULE, "/usr/bin/swtpm", "/usr/sbin/tpm2-abrmd", "/usr/bin/dbus-daemon",
              "/usr/bin/tpm2_dictionarylockout"):
        _need(p)
    with _workdir("tpm2") as d:
        e = Env("tpm2", TPM2_MODULE, d)
        # The TPM gives every key sign and decrypt whatever the template says (C_GenerateKeyPair:
        # an RSA template without both fails CKR_GENERAL_ERROR, an EC key gets CKA_DECRYPT anyway);
        # C_SetAttributeValue can switch the extra flags off afterwards (tests/modules/p11probe.py).
        e.limits = _limits(
            forced_usage=("sign", "decrypt"),
            algorithms={"rsa2048", "rsa3072", "ec-p256", "ec-p384"}, rsa_max_bits=3072,
            exportable=False, private_key_import=False, reinit=False, blank_grows=True,
            shared_serial=True, pin_min=0, pin_max=128)
        try:
            _start_tpm2(e)
            yield e
        finally:
            e.daemons.stop_all()


def _start_tpm2(e):
    state, store = e.path("tpm-state"), e.path("tpm2-store")
    os.makedirs(state)
    os.makedirs(store)
    bus = e.path("bus")
    for attempt in range(3):
        port, ctrl = _free_port_pair()
        sw = e.daemons.start("swtpm", [
            "swtpm", "socket", "--tpm2",
            "--server", "type=tcp,port=%d,bindaddr=127.0.0.1" % port,
            "--ctrl", "type=tcp,port=%d,bindaddr=127.0.0.1" % ctrl,
            "--tpmstate", "dir=%s" % state, "--flags", "not-need-init,startup-clear"])

        def listening():
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                return s.connect_ex(("127.0.0.1", port)) == 0
        try:
            e.daemons.wait_for("swtpm", sw, listening, "TCP port %d" % port)
            break
        except RuntimeError:
            if attempt == 2:
                raise
            e.daemons.stop_all()
    e.daemons.start("dbus", ["dbus-daemon", "--session", "--nofork", "--nopidfile",
                             "--address=unix:path=%s" % bus])
    dbus = e.daemons.procs[-1][1]
    e.daemons.wait_for("dbus", dbus, lambda: os.path.exists(bus), "bus socket")
    e.env.update({
        "DBUS_SESSION_BUS_ADDRESS": "unix:path=%s" % bus,
        "TPM2_PKCS11_TCTI": "tabrmd:bus_type=session",
        "TPM2TOOLS_TCTI": "tabrmd:bus_type=session",
        "TPM2_PKCS11_STORE": store,
        "TPM2_PKCS11_LOG_LEVEL": "0",
    })
    full = e.full_env()
    abrmd = e.daemons.start("tpm2-abrmd", ["tpm2-abrmd", "--session", "--allow-root", "--flush-all",
                                           "--tcti=swtpm:port=%d" % port], env=full)

    def lockout_relaxed():
        r = subprocess.run(["tpm2_dictionarylockout", "-s", "-n", "1000", "-t", "86400", "-l", "1"],
                           env=full, capture_output=True, text=True)
        return r.returncode == 0
    e.daemons.wait_for("tpm2-abrmd", abrmd, lockout_relaxed, "tpm2_dictionarylockout through abrmd")
    e.tpm_port = port


def tpm2_lockout_counter(e):
    """TPM2_PT_LOCKOUT_COUNTER of the env's TPM (the failed-authorization count)."""
    r = e.run(["tpm2_getcap", "properties-variable"])
    for line in r.stdout.splitlines():
        if line.strip().startswith("TPM2_PT_LOCKOUT_COUNTER"):
            return int(line.split(":")[1].strip(), 0)
    raise RuntimeError("tpm2_getcap: no lockout counter in %r" % r.stdout)


OCK_CONF = """version opencryptoki-3.1
slot 3
{
stdll = libpkcs11_sw.so
}
"""


@contextlib.contextmanager
def opencryptoki():
    """opencryptoki's soft token (swtok), pkcsslotd in a private mount + IPC namespace:
    own /etc/opencryptoki (one slot: the soft token), a copy of /var/lib/opencryptoki,
    tmpfs over /run and /dev/shm."""
    _need_root("opencryptoki's private pkcsslotd")
    for p in (OPENCRYPTOKI_MODULE, "/usr/sbin/pkcsslotd", "/var/lib/opencryptoki", "/etc/opencryptoki"):
        _need(p)
    with _workdir("opencryptoki") as d:
        e = Env("opencryptoki", OPENCRYPTOKI_MODULE, d)
        e.limits = _limits(
            algorithms={"rsa2048", "rsa3072", "rsa4096"}, reinit=True,
            certificate_category=False, pin_min=4, pin_max=8)
        try:
            etc, var = e.path("etc-opencryptoki"), e.path("var-lib-opencryptoki")
            os.makedirs(etc)
            with open(os.path.join(etc, "opencryptoki.conf"), "w") as f:
                f.write(OCK_CONF)
            shutil.copytree("/var/lib/opencryptoki", var, symlinks=True)
            shutil.copystat("/var/lib/opencryptoki", var)
            script = "\n".join([
                "mount -t tmpfs -o mode=755 tmpfs /run",
                "mkdir -p /run/lock/opencryptoki/swtok /run/opencryptoki",
                "chgrp -R pkcs11 /run/lock/opencryptoki /run/opencryptoki",
                "chmod -R 770 /run/lock/opencryptoki /run/opencryptoki",
                "mount -t tmpfs -o mode=1777 tmpfs /dev/shm",
                "mount --bind %s /etc/opencryptoki" % etc,
                "mount --bind %s /var/lib/opencryptoki" % var,
            ])
            holder = _namespace(e, script, unshare_flags=("-m", "-i"))
            slotd = e.daemons.start("pkcsslotd", e.cmd(["pkcsslotd", "-f"]))
            sock = "/proc/%d/root/run/pkcsslotd.socket" % holder.pid
            e.daemons.wait_for("pkcsslotd", slotd, lambda: os.path.exists(sock), "pkcsslotd socket")
            yield e
        finally:
            e.daemons.stop_all()


@contextlib.contextmanager
def nss():
    """NSS softoken behind p11-kit-proxy (x-init-reserved: configdir=...), a fresh database
    whose password is the user PIN. No SO."""
    _need(NSS_SOFTOKN, "/usr/bin/certutil")
    with _workdir("nss") as d:
        e = Env("nss", P11KIT_PROXY, d)
        e.so_pin = ""
        e.env[SO_PIN_VAR] = ""
        e.blank_token_count = 0
        e.limits = _limits(
            algorithms={"rsa2048", "rsa3072", "rsa4096", "ec-p256", "ec-p384"}, init=False, reinit=False,
            has_so=False, shared_serial=True, local=False, pin_min=0, pin_max=500)
        try:
            db = e.path("nssdb")
            os.makedirs(db)
            pw = e.path("nss-password")
            with open(pw, "w") as f:
                f.write(e.user_pin + "\n")
            os.chmod(pw, 0o600)
            subprocess.run(["certutil", "-N", "-d", "sql:" + db, "-f", pw], check=True,
                           capture_output=True, text=True)
            os.unlink(pw)
            module = ("module: %s\nx-init-reserved: configdir='sql:%s' certPrefix='' keyPrefix='' "
                      "secmod='secmod.db'\n" % (NSS_SOFTOKN, db))
            _p11kit_private(e, {"nss-softokn": module})
            e.nssdb = db
            yield e
        finally:
            e.daemons.stop_all()


ALL = [
    ("softhsm-direct", softhsm_direct),
    ("softhsm-proxy", softhsm_proxy),
    ("tpm2", tpm2),
    ("opencryptoki", opencryptoki),
    ("nss", nss),
]


def leftovers(pids):
    """Of the given pids, those that still run (not zombies): for the no-leftover check."""
    alive = []
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            if state != "Z":
                alive.append(pid)
        except OSError:
            pass
    return alive


if __name__ == "__main__":
    # Smoke: bring every module up, list its slots, stop it, check nothing is left.
    import sys
    names = sys.argv[1:]
    for name, factory in ALL:
        if names and name not in names:
            continue
        with factory() as e:
            r = e.run(["pkcs11-tool", "--module", e.module, "-L"])
            print("==", name, "exit", r.returncode)
            print(r.stdout.strip())
            if r.returncode != 0:
                print(r.stderr.strip())
            pids = e.daemons.pids()
        left = leftovers(pids)
        print("leftover processes:", left or "none")
