"""Fixtures for the functional tests: real QEMU, real helper, no mocks.

A VM is started with two QMP monitors on the same QEMU:

  DIR/direct.sock    the tests talk to QEMU directly here (the reference)
  DIR/proxied.sock   the helper (attach mode) connects here and serves
                     DIR/helper.sock

so what a client gets through the helper can be compared with what QEMU
itself answers on its other monitor.

Environment:
  QPH_BUILD_DIR        build directory (default <repo>/build)
  QPH_HELPER           helper binary (default BUILD/helper/qemu-perf-helper)
  QPH_QEMU             QEMU binary (default qemu-system-x86_64 on PATH)
  QPH_SELFTEST_DIRECT  1: no helper; "helper" clients talk to proxied.sock
                       (and spare monitors for extra clients), to check that
                       the tests themselves are right (QEMU-vs-QEMU).
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import qmp  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
BUILD_DIR = Path(os.environ.get("QPH_BUILD_DIR") or REPO / "build")
HELPER = Path(os.environ.get("QPH_HELPER") or BUILD_DIR / "helper" / "qemu-perf-helper")
QEMU = os.environ.get("QPH_QEMU") or shutil.which("qemu-system-x86_64")
SELFTEST = os.environ.get("QPH_SELFTEST_DIRECT", "") not in ("", "0")

# Spare monitors a self-test VM gets so several "helper clients" can exist at
# once (a QEMU monitor serves one client at a time).
# QEMU may hand replies to commands of a client that went away to the next
# client of that monitor, so a monitor whose client left with commands in
# flight is not reused (see Env.abandon).
SELFTEST_SPARES = 6

SUN_PATH_MAX = 107


def process_sched_ns(pid):
    """The kernel's CPU time of the whole process @pid, exited threads
    included, to the nanosecond: clock_gettime() on its CPU-time clock (the
    thread group's CPUCLOCK_SCHED, as clock_getcpuclockid(3) makes), the sum
    of sum_exec_runtime with running threads' current slice."""
    return time.clock_gettime_ns(((~pid) << 3) | 2)


def machine_steal_ns():
    """Time the hypervisor took from this machine's CPUs (/proc/stat,
    summed over CPUs; tick-based).  sum_exec_runtime leaves it out
    (paravirt steal accounting), perf's task_clock does not."""
    with open("/proc/stat") as f:
        return int(f.readline().split()[8]) * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def kvm_usable():
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    os.close(fd)
    return True


def helper_available():
    return HELPER.is_file() and os.access(HELPER, os.X_OK)


HELPER_MISSING = (f"helper binary {HELPER} not found: build it (meson compile -C {BUILD_DIR}), "
                  "or set QPH_HELPER / QPH_BUILD_DIR; QPH_SELFTEST_DIRECT=1 runs the "
                  "comparisons QEMU-vs-QEMU without the helper")


def require_helper_binary():
    if not helper_available():
        pytest.skip(HELPER_MISSING)


def require_qemu():
    if not QEMU:
        pytest.skip("qemu-system-x86_64 not found (set QPH_QEMU)")


def short_dir(base):
    """A directory for unix sockets; short enough for sun_path."""
    base = Path(base)
    if len(str(base / "helper.sock")) <= SUN_PATH_MAX - 10:
        return base, False
    return Path(tempfile.mkdtemp(prefix="qph-", dir="/tmp")), True


def write_spin_image(path):
    """A boot sector that spins forever: EB FE, zeros, 55 AA at 510."""
    img = bytearray(512)
    img[0:2] = b"\xeb\xfe"
    img[510:512] = b"\x55\xaa"
    Path(path).write_bytes(bytes(img))


def kill_proc(proc, sig=signal.SIGKILL, timeout=5.0):
    """Kill one process we started, by pid, and reap it."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.kill(proc.pid, sig)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout)


def qemu_base_args():
    args = [QEMU, "-display", "none", "-nodefaults", "-M", "pc", "-m", "64"]
    args += ["-accel", "kvm"] if kvm_usable() else ["-accel", "tcg"]
    return args


def vm_extra_args(dir, spin=False, smp=None):
    args = []
    if smp:
        args += ["-smp", str(smp)]
    if spin:
        img = Path(dir) / "spin.img"
        write_spin_image(img)
        args += ["-drive", f"file={img},format=raw,if=floppy"]
    return args


class VM:
    """A QEMU with a direct and a proxied QMP monitor (plus spares in self-test)."""

    def __init__(self, dir, spin=False, smp=None, spares=0, extra_args=()):
        self.dir = Path(dir)
        self.direct_path = str(self.dir / "direct.sock")
        self.proxied_path = str(self.dir / "proxied.sock")
        self.spare_paths = [str(self.dir / f"spare{i}.sock") for i in range(spares)]
        self.log_path = self.dir / "qemu.log"
        args = qemu_base_args() + vm_extra_args(dir, spin, smp)
        for p in [self.direct_path, self.proxied_path] + self.spare_paths:
            args += ["-qmp", f"unix:{p},server=on,wait=off"]
        args += list(extra_args)
        self.args = args
        self.proc = None

    def start(self, timeout=15.0):
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT)
        try:
            # QEMU creates the socket file at bind(), just before listen().
            for p in [self.direct_path, self.proxied_path] + self.spare_paths:
                qmp.wait_for_listening(p, timeout, self.proc)
        except Exception as e:
            self.kill()
            raise RuntimeError(f"QEMU did not start: {e}\n{self.log()}") from e
        return self

    @property
    def pid(self):
        return self.proc.pid

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def kill(self):
        kill_proc(self.proc)


class Helper:
    """The helper in attach mode in front of a VM's proxied monitor."""

    def __init__(self, dir, qemu_sock, listen=None):
        self.dir = Path(dir)
        self.listen = listen or str(self.dir / "helper.sock")
        self.log_path = self.dir / "helper.log"
        self.args = [str(HELPER), "--qemu", qemu_sock, "--listen", self.listen]
        self.proc = None

    def start(self, timeout=10.0):
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT)
        try:
            # test_lifecycle checks that the socket is ready when it appears;
            # here we only want a working helper.
            qmp.wait_for_listening(self.listen, timeout, self.proc)
        except Exception as e:
            self.kill()
            raise RuntimeError(f"helper did not come up: {e}\n{self.log()}") from e
        return self

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        # SIGTERM first so a helper may clean up; then SIGKILL.
        if self.proc is not None and self.proc.poll() is None:
            try:
                kill_proc(self.proc, signal.SIGTERM, timeout=3.0)
            except subprocess.TimeoutExpired:
                kill_proc(self.proc)


class Env:
    """One VM, optionally one helper, and every client a test opened.

    direct()  -> a client on QEMU's own monitor (only one at a time: QEMU
                 serves one client per monitor; close it before the next)
    client()  -> a client through the helper (in self-test mode: on
                 proxied.sock or a free spare monitor)
    pair()    -> (direct, helper client)
    """

    def __init__(self, vm, helper=None, selftest=False):
        self.vm = vm
        self.helper = helper
        self.selftest = selftest
        self.clients = []
        self.tainted = set()

    @property
    def helper_path(self):
        return self.helper.listen if self.helper else self.vm.proxied_path

    def _open(self, path, negotiate, read_greeting=True):
        c = qmp.QMPClient(path, read_greeting=read_greeting)
        self.clients.append(c)
        if negotiate:
            c.negotiate(oob=(negotiate == "oob"))
        return c

    def direct(self, negotiate=True):
        return self._open(self.vm.direct_path, negotiate)

    def client(self, negotiate=True, read_greeting=True):
        if not self.selftest:
            return self._open(self.helper_path, negotiate, read_greeting)
        busy = {c.path for c in self.clients if c.sock is not None} | self.tainted
        for p in [self.vm.proxied_path] + self.vm.spare_paths:
            if p not in busy:
                return self._open(p, negotiate, read_greeting)
        raise RuntimeError("self-test mode: no free monitor left for another client")

    def free_client_slots(self):
        """How many more clients client() can open (None: no limit)."""
        if not self.selftest:
            return None
        busy = {c.path for c in self.clients if c.sock is not None} | self.tainted
        return len([p for p in [self.vm.proxied_path] + self.vm.spare_paths if p not in busy])

    def abandon(self, c):
        """Close a client that may have commands in flight. In self-test mode
        its monitor is not handed out again (QEMU would deliver the late
        replies to the next client there; the helper must not)."""
        c.close()
        if self.selftest:
            self.tainted.add(c.path)

    def pair(self, negotiate=True):
        return self.direct(negotiate), self.client(negotiate)

    def close_clients(self):
        for c in self.clients:
            c.close()
        self.clients = []


def make_env(dir, spin=False, smp=None, extra_args=()):
    """Start a VM (and the helper unless in self-test mode)."""
    require_qemu()
    if not SELFTEST:
        require_helper_binary()
    vm = VM(dir, spin=spin, smp=smp, spares=SELFTEST_SPARES if SELFTEST else 0,
            extra_args=extra_args)
    vm.start()
    helper = None
    if not SELFTEST:
        helper = Helper(dir, vm.proxied_path)
        try:
            helper.start()
        except Exception:
            vm.kill()
            raise
    return Env(vm, helper, SELFTEST)


def destroy_env(env):
    if env is None:
        return
    env.close_clients()
    if env.helper:
        env.helper.kill()
    env.vm.kill()


@pytest.fixture
def short_tmp(tmp_path):
    d, own = short_dir(tmp_path)
    yield d
    if own:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def shared_env(tmp_path_factory):
    """One VM (+ helper) shared by the tests of a module."""
    d, _ = short_dir(tmp_path_factory.mktemp("vm", numbered=True))
    env = None
    try:
        env = make_env(d)
        yield env
    finally:
        destroy_env(env)
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def env(shared_env):
    """The module's shared VM; every client opened is closed afterwards,
    and the helper must still be running when the test ends."""
    yield shared_env
    shared_env.close_clients()
    if shared_env.helper and not shared_env.helper.alive():
        pytest.fail(f"the helper died (status {shared_env.helper.proc.returncode}):\n"
                    f"{shared_env.helper.log()}")


@pytest.fixture
def fresh_env(short_tmp):
    """A VM (+ helper) of the test's own, for tests that quit or kill it."""
    e = None
    try:
        e = make_env(short_tmp)
        yield e
    finally:
        destroy_env(e)


@pytest.fixture
def helper_binary():
    require_qemu()
    require_helper_binary()
    return str(HELPER)


@pytest.fixture
def real_helper():
    """Tests about the helper process itself (exit status, socket removal)."""
    if SELFTEST:
        pytest.skip("needs the helper process; not meaningful in QPH_SELFTEST_DIRECT mode")
    require_qemu()
    require_helper_binary()
