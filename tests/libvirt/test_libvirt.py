"""End to end with a real libvirtd: a domain whose <emulator> is qemu-perf-wrapper.

What a libvirt user does, through virsh only:

  1. libvirt from Debian (installed here if missing), virtlogd and libvirtd
     started by hand (no systemd on these machines), /dev/kvm opened to the
     kvm group so libvirt's QEMU user can use it.
  2. The build installed with DESTDIR into a world-readable tree, since
     QEMU, the wrapper and the helper run as libvirt-qemu.
  3. A control domain on the plain QEMU proves the harness (libvirt starts
     VMs here, the helper's commands are unknown to QEMU itself).
  4. A domain on the wrapper: query-perf-events/set-perf-events through
     `virsh qemu-monitor-command`, ordinary commands and --hmp passed
     through, a tap NIC's descriptor left to QEMU, suspend/resume (events),
     domstats, `virsh dump --memory-only` (a descriptor passed with getfd),
     a libvirtd restart that keeps the helper's state, save and restore
     (a new QEMU, a new helper), and `virsh destroy` that ends the helper.
  5. Two domains on one wrapper configuration that names one of them: that
     one counts its events from the start, and again after save and
     restore; the other counts nothing until asked.

Daemons, domains and stray processes are cleaned up by pid afterwards, even
when a test fails.  The test skips only when libvirt cannot be installed
(or it does not run as root, which installing needs).

Environment:
  QPH_BUILD_DIR   build directory (default <repo>/build)
  QPH_DESTDIR     where the build is installed (default /opt/qemu-perf-helper-test)
"""

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD_DIR = Path(os.environ.get("QPH_BUILD_DIR") or REPO / "build")
DESTDIR = Path(os.environ.get("QPH_DESTDIR") or "/opt/qemu-perf-helper-test")
PLAIN_QEMU = "/usr/bin/qemu-system-x86_64"
URI = "qemu:///system"
# Our daemons' pidfiles and logs; a fixed place so a crashed earlier run's
# daemons are found and stopped before this one starts its own.
STATE = Path("/run/qemu-perf-helper-test")
LIBVIRT_PACKAGES = [
    "libvirt-daemon-system",
    "libvirt-clients",
    "libvirt-daemon-driver-qemu",
]
DOMAIN_PREFIX = "qph-test-"


# ---------------------------------------------------------------------------
# Processes


def pid_alive(pid):
    """True if @pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def wait_gone(pid, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return False


def stop_pid(pid, timeout=10):
    """SIGTERM, then SIGKILL after @timeout; by pid, nothing broader."""
    if not pid_alive(pid):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    if not wait_gone(pid, timeout):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        wait_gone(pid, 5)


def read_pidfile(path):
    try:
        return int(Path(path).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def proc_cmdline(pid):
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0")[:-1]]


def helpers_of(qemu_pid):
    """Live helper processes started for QEMU @qemu_pid (found via /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        argv = proc_cmdline(entry.name)
        if (argv and os.path.basename(argv[0]) == "qemu-perf-helper"
                and "--qemu-pid" in argv
                and argv[argv.index("--qemu-pid") + 1:][:1] == [str(qemu_pid)]
                and pid_alive(int(entry.name))):
            found.append(int(entry.name))
    return found


def pids_named(name):
    """Live processes whose argv[0] is @name (a path or a bare name)."""
    return [int(e.name) for e in Path("/proc").iterdir()
            if e.name.isdigit()
            and os.path.basename((proc_cmdline(e.name) or [""])[0]) == name
            and pid_alive(int(e.name))]


def run(argv, timeout=120, check=True, **kwargs):
    res = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, timeout=timeout, **kwargs)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, argv))} exited "
                             f"{res.returncode}:\n{res.stdout}\n{res.stderr}")
    return res


def tail(path, lines=40):
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as e:
        return f"({path}: {e})"
    return f"--- {path} (last {lines} lines)\n" + "\n".join(
        text.splitlines()[-lines:])


# ---------------------------------------------------------------------------
# libvirt


def libvirt_installed():
    return (shutil.which("libvirtd") and shutil.which("virsh")
            and shutil.which("virtlogd")
            and Path("/usr/lib/x86_64-linux-gnu/libvirt/connection-driver/"
                     "libvirt_driver_qemu.so").exists())


def install_libvirt():
    """Install libvirt from Debian; return None or the reason it failed."""
    if libvirt_installed():
        return None
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "--no-install-recommends"]
    res = run(cmd + LIBVIRT_PACKAGES, timeout=900, check=False, env=env)
    if res.returncode != 0:
        run(["apt-get", "update"], timeout=600, check=False, env=env)
        res = run(cmd + LIBVIRT_PACKAGES, timeout=900, check=False, env=env)
    if res.returncode != 0 or not libvirt_installed():
        return (f"apt-get install {' '.join(LIBVIRT_PACKAGES)} failed "
                f"(exit {res.returncode}): {res.stderr.strip()[-500:]}")
    return None


def virsh(*args, check=True, timeout=120):
    return run(["virsh", "-c", URI, *args], check=check, timeout=timeout)


def libvirtd_ready():
    return virsh("-q", "version", check=False, timeout=10).returncode == 0


class Daemons:
    """virtlogd and libvirtd, started by hand and stopped by pid."""

    def __init__(self):
        self.owned = False
        self.env = dict(os.environ,
                        LIBVIRT_LOG_OUTPUTS=f"3:file:{STATE}/libvirtd.log")

    def pid(self, name):
        return read_pidfile(STATE / f"{name}.pid")

    def stop_leftovers(self):
        for name in ("libvirtd", "virtlogd"):
            pid = self.pid(name)
            argv = proc_cmdline(pid) if pid else []
            if argv and os.path.basename(argv[0]) == name:
                stop_pid(pid)

    def start_virtlogd(self):
        run(["virtlogd", "-d", "-p", str(STATE / "virtlogd.pid")],
            env=self.env)

    def start_libvirtd(self):
        run(["libvirtd", "-d", "-p", str(STATE / "libvirtd.pid")],
            env=self.env)
        deadline = time.monotonic() + 60
        while not libvirtd_ready():
            if time.monotonic() > deadline:
                raise AssertionError("libvirtd did not come up in 60 s\n" +
                                     tail(STATE / "libvirtd.log"))
            time.sleep(0.3)

    def start(self):
        STATE.mkdir(mode=0o755, parents=True, exist_ok=True)
        self.stop_leftovers()
        # A daemon someone stopped just before may still answer for a
        # second or two; only one that stays is someone else's to use.
        others = {name: [p for p in pids_named(name) if not wait_gone(p, 5)]
                  for name in ("libvirtd", "virtlogd")}
        if others["libvirtd"] and libvirtd_ready():
            return  # someone else's libvirtd: use it, leave it alone
        self.owned = True
        if not others["virtlogd"]:
            self.start_virtlogd()
        self.start_libvirtd()

    def restart_libvirtd(self):
        pid = self.pid("libvirtd")
        stop_pid(pid, timeout=20)
        assert not pid_alive(pid), "libvirtd did not exit"
        self.start_libvirtd()

    def stop(self):
        if self.owned:
            for name in ("libvirtd", "virtlogd"):
                pid = self.pid(name)
                if pid:
                    stop_pid(pid, timeout=20)


def tap_usable():
    return os.path.exists("/dev/net/tun")


def domain_xml(name, emulator, kvm, nic=False):
    # A tap NIC (libvirt opens the tap and passes "-netdev tap,fd=N") shows
    # that descriptors libvirt hands QEMU survive the wrapper.
    interface = ("<interface type='ethernet'><model type='virtio'/>"
                 "</interface>" if nic else "")
    return f"""<domain type='{"kvm" if kvm else "qemu"}'>
  <name>{name}</name>
  <memory unit='MiB'>64</memory>
  <vcpu>2</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <devices>
    <emulator>{emulator}</emulator>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
    <audio id='1' type='none'/>
    {interface}
  </devices>
</domain>
"""


class Domain:
    def __init__(self, name, emulator, kvm, nic=False):
        self.name = name
        self.emulator = emulator
        self.kvm = kvm
        self.nic = nic
        self.qemu_pid = None
        self.helper_pids = set()

    def define(self):
        remove_domain(self.name)
        path = STATE / f"{self.name}.xml"
        path.write_text(domain_xml(self.name, self.emulator, self.kvm,
                                  self.nic))
        virsh("define", str(path))

    def start(self):
        res = virsh("start", self.name, check=False, timeout=120)
        if res.returncode != 0:
            raise AssertionError(f"virsh start {self.name} failed: "
                                 f"{res.stderr}\n{self.logs()}")
        self.qemu_pid = read_pidfile(f"/run/libvirt/qemu/{self.name}.pid")
        assert self.qemu_pid and pid_alive(self.qemu_pid)

    def state(self):
        return virsh("domstate", self.name).stdout.strip()

    def qmp(self, execute, arguments=None, expect_ok=True):
        cmd = {"execute": execute}
        if arguments is not None:
            cmd["arguments"] = arguments
        res = virsh("qemu-monitor-command", self.name, json.dumps(cmd))
        reply = json.loads(res.stdout)
        if expect_ok:
            assert "return" in reply, f"{execute}: {reply}"
        return reply

    def hmp(self, command):
        return virsh("qemu-monitor-command", self.name, "--hmp",
                     command).stdout

    def logs(self):
        return "\n".join([tail(f"/var/log/libvirt/qemu/{self.name}.log"),
                          tail(STATE / "libvirtd.log")])


def remove_domain(name):
    """Destroy and undefine @name if libvirt knows it."""
    if virsh("domstate", name, check=False).returncode != 0:
        return
    virsh("destroy", name, check=False)
    virsh("undefine", name, check=False)


def kvm_for_libvirt():
    """Give the kvm group /dev/kvm (no udev here); return (usable, restore)."""
    if not os.path.exists("/dev/kvm"):
        return False, lambda: None
    st = os.stat("/dev/kvm")
    try:
        shutil.chown("/dev/kvm", group="kvm")
        os.chmod("/dev/kvm", 0o660)
    except (OSError, LookupError):
        return False, lambda: None

    def restore():
        os.chown("/dev/kvm", st.st_uid, st.st_gid)
        os.chmod("/dev/kvm", st.st_mode & 0o7777)

    return True, restore


def install_build():
    """meson install into DESTDIR; return the installed wrapper's path."""
    helper = BUILD_DIR / "helper" / "qemu-perf-helper"
    if not helper.exists():
        pytest.fail(f"{helper} is missing: build the project first "
                    f"(meson setup {BUILD_DIR} && ninja -C {BUILD_DIR})")
    if DESTDIR.exists():
        shutil.rmtree(DESTDIR)
    old = os.umask(0o022)
    try:
        run(["meson", "install", "-C", str(BUILD_DIR), "--no-rebuild",
             "--destdir", str(DESTDIR)], timeout=300)
    finally:
        os.umask(old)
    wrappers = sorted(DESTDIR.rglob("bin/qemu-perf-wrapper"))
    assert wrappers, f"meson install put no bin/qemu-perf-wrapper in {DESTDIR}"
    wrapper = wrappers[0]
    assert (wrapper.parent / "qemu-perf-helper").exists()
    # libvirt-qemu must reach it: every directory on the way world-searchable.
    for d in [wrapper.parent, *wrapper.parent.parents]:
        d.chmod(d.stat().st_mode | 0o055)
        if d == DESTDIR.parent:
            break
    return wrapper


# ---------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def env():
    """libvirt installed and running; yields (Daemons, kvm usable)."""
    if os.geteuid() != 0:
        pytest.skip("the libvirt test runs as root: it installs libvirt and "
                    "starts libvirtd")
    reason = install_libvirt()
    if reason:
        pytest.skip(f"libvirt cannot be installed here: {reason}")
    kvm, restore_kvm = kvm_for_libvirt()
    daemons = Daemons()
    domains = []
    try:
        daemons.start()
        yield daemons, kvm, domains
    finally:
        cleanup(daemons, domains)
        restore_kvm()


def cleanup(daemons, domains):
    """Remove our domains and stop what we started, by pid, whatever state
    the tests left behind."""
    alive = libvirtd_ready()
    for dom in domains:
        if alive:
            remove_domain(dom.name)
        if dom.qemu_pid:
            stop_pid(dom.qemu_pid)
            dom.helper_pids.update(helpers_of(dom.qemu_pid))
        for pid in dom.helper_pids:
            stop_pid(pid)
        (STATE / f"{dom.name}.xml").unlink(missing_ok=True)
    daemons.stop()


@pytest.fixture(scope="module")
def wrapper(env):
    return install_build()


@pytest.fixture(scope="module")
def wrapped(env, wrapper):
    """A running domain whose emulator is the installed wrapper."""
    daemons, kvm, domains = env
    dom = Domain(DOMAIN_PREFIX + "wrapped", str(wrapper), kvm,
                 nic=tap_usable())
    domains.append(dom)
    dom.define()
    t0 = time.monotonic()
    dom.start()
    print(f"domain started through the wrapper in "
          f"{time.monotonic() - t0:.2f} s")
    return dom


@pytest.fixture(autouse=True)
def show_logs_on_failure(request):
    """Print the domain's and libvirtd's logs; pytest shows them only for a
    failing test."""
    yield
    for name in ("wrapped", "plain", "configured", "unconfigured"):
        if "env" in request.fixturenames:
            print(tail(f"/var/log/libvirt/qemu/{DOMAIN_PREFIX}{name}.log"))
    print(tail(STATE / "libvirtd.log"))


# ---------------------------------------------------------------------------
# The control: libvirt and the plain QEMU, no helper


def test_harness_plain_qemu(env, wrapper):
    daemons, kvm, domains = env
    dom = Domain(DOMAIN_PREFIX + "plain", PLAIN_QEMU, kvm)
    domains.append(dom)
    dom.define()
    dom.start()
    assert dom.state() == "running"
    assert dom.qmp("query-status")["return"]["status"] == "running"
    reply = dom.qmp("query-perf-events", expect_ok=False)
    assert reply["error"]["class"] == "CommandNotFound"
    assert helpers_of(dom.qemu_pid) == []
    # qemu-perf-stat finds libvirt's socket by name and says what is wrong
    stat = run([str(perf_stat_of(wrapper)), "--domain", dom.name, "--duration",
                "0.2"], check=False, timeout=30)
    assert stat.returncode == 1, stat.stderr
    assert "no qemu-perf-helper in front" in stat.stderr, stat.stderr
    assert "/var/lib/libvirt/qemu/domain-" in stat.stderr, stat.stderr
    virsh("destroy", dom.name)
    assert wait_gone(dom.qemu_pid, 10)
    virsh("undefine", dom.name)


# ---------------------------------------------------------------------------
# The wrapped domain; the tests run in this order and share the domain


def test_wrapper_process_layout(wrapped):
    """QEMU has libvirt's pid, the helper runs beside it."""
    qemu_argv = proc_cmdline(wrapped.qemu_pid)
    assert os.path.realpath(f"/proc/{wrapped.qemu_pid}/exe") == \
        os.path.realpath(PLAIN_QEMU)
    chardev = qemu_argv[qemu_argv.index("-chardev") + 1]
    assert chardev.startswith("socket,id=charmonitor,fd=")
    assert "server" not in chardev

    helpers = helpers_of(wrapped.qemu_pid)
    assert len(helpers) == 1, helpers
    wrapped.helper_pids.update(helpers)
    helper = helpers[0]
    # Same user and same cgroup as QEMU: libvirt's resource controls hold.
    assert os.stat(f"/proc/{helper}").st_uid == \
        os.stat(f"/proc/{wrapped.qemu_pid}").st_uid
    assert Path(f"/proc/{helper}/cgroup").read_text() == \
        Path(f"/proc/{wrapped.qemu_pid}/cgroup").read_text()
    # Its own descriptors: the monitor pair end and libvirt's socket.
    fds = {int(fd) for fd in os.listdir(f"/proc/{helper}/fd")}
    assert {0, 1, 2, 3, 4} <= fds
    assert os.readlink(f"/proc/{helper}/fd/4").startswith("socket:")
    # The tap libvirt opened is still QEMU's, and only QEMU's.
    if wrapped.nic:
        netdev = json.loads(qemu_argv[qemu_argv.index("-netdev") + 1])
        tap = f"/proc/{wrapped.qemu_pid}/fd/{netdev['fd']}"
        assert os.readlink(tap) == "/dev/net/tun"
        assert not [fd for fd in fds if os.readlink(
            f"/proc/{helper}/fd/{fd}") == "/dev/net/tun"]


def test_query_perf_events(wrapped):
    reply = wrapped.qmp("query-perf-events")
    assert isinstance(reply["return"], list)
    assert not [e for e in reply["return"] if e.get("enabled")]


def test_set_perf_events(wrapped):
    wrapped.qmp("set-perf-events",
                {"events": [{"name": "task_clock", "enabled": True}]})
    time.sleep(0.2)
    reply = wrapped.qmp("query-perf-events", {"names": ["task_clock"]})
    [event] = reply["return"]
    assert event["name"] == "task_clock"
    assert event["enabled"] is True
    assert isinstance(event["value"], int) and event["value"] >= 0


def test_per_thread_labels_from_qemu(wrapped):
    """The helper's own upstream questions (query-cpus-fast) work while
    libvirt is connected: vCPU threads carry their index."""
    reply = wrapped.qmp("query-perf-events",
                        {"names": ["task_clock"], "per-thread": True})
    [event] = reply["return"]
    vcpus = {t["cpu-index"]: t for t in event["threads"]
             if t.get("kind") == "vcpu"}
    assert sorted(vcpus) == [0, 1]
    assert vcpus[0]["name"] == "CPU 0/KVM"
    assert sum(t["value"] for t in event["threads"]) + \
        event["exited-value"] == event["value"]


def perf_stat_of(wrapper):
    """qemu-perf-stat as installed beside the wrapper."""
    stat = wrapper.parent / "qemu-perf-stat"
    assert stat.exists(), f"meson install put no {stat}"
    return stat


def test_perf_stat_domain(wrapper, wrapped):
    """qemu-perf-stat --domain reaches the helper through libvirt's
    monitor socket, reads task_clock (enabled above, so not its own) and
    leaves it enabled; page_faults, its own, is disabled again."""
    stat = run([str(perf_stat_of(wrapper)), "--domain", wrapped.name, "-e",
                "task_clock,page_faults", "--duration", "1"], timeout=30)
    assert re.search(r"msec task_clock +# +[\d.]+ CPUs utilized",
                     stat.stdout), stat.stdout
    assert re.search(r"^ +\d+ +page_faults", stat.stdout, re.M), stat.stdout
    assert f"VM '{wrapped.name}'" in stat.stdout
    enabled = {e["name"] for e in wrapped.qmp("query-perf-events")["return"]
               if e.get("enabled")}
    assert enabled == {"task_clock"}


def test_set_perf_events_unknown_changes_nothing(wrapped):
    reply = wrapped.qmp("set-perf-events",
                        {"events": [{"name": "cpu_clock", "enabled": True},
                                    {"name": "no_such_event_qph",
                                     "enabled": True}]},
                        expect_ok=False)
    assert reply["error"]["class"] == "GenericError"
    assert "no_such_event_qph" in reply["error"]["desc"]
    enabled = {e["name"] for e in wrapped.qmp("query-perf-events")["return"]
               if e.get("enabled")}
    assert enabled == {"task_clock"}


def test_qemu_commands_pass_through(wrapped):
    assert wrapped.qmp("query-status")["return"]["status"] == "running"
    cpus = wrapped.qmp("query-cpus-fast")["return"]
    assert [c["cpu-index"] for c in cpus] == [0, 1]
    assert "VM status: running" in wrapped.hmp("info status")
    names = {c["name"] for c in wrapped.qmp("query-commands")["return"]}
    assert {"query-perf-events", "set-perf-events", "query-status"} <= names


def test_bad_requests_are_only_errors(wrapped):
    """The helper must outlive any request: libvirt kills the VM if its
    monitor goes away."""
    helpers = helpers_of(wrapped.qemu_pid)
    bad = [
        ("set-perf-events", None),
        ("set-perf-events", {"events": "task_clock"}),
        ("set-perf-events", {"events": [{"name": 42, "enabled": True}]}),
        ("set-perf-events", {"events": [{"name": "x" * 100000,
                                         "enabled": True}]}),
        ("set-perf-events", {"events": [{"name": "task_clock"}],
                             "bogus": 1}),
        ("query-perf-events", {"names": "task_clock"}),
        ("query-perf-events", {"per-thread": "yes"}),
    ]
    for execute, arguments in bad:
        reply = wrapped.qmp(execute, arguments, expect_ok=False)
        assert reply["error"]["class"] == "GenericError", (execute, reply)
    assert helpers_of(wrapped.qemu_pid) == helpers
    assert wrapped.state() == "running"
    enabled = {e["name"] for e in wrapped.qmp("query-perf-events")["return"]
               if e.get("enabled")}
    assert enabled == {"task_clock"}


def test_suspend_resume(wrapped):
    """libvirt learns the state from QEMU's STOP/RESUME events."""
    virsh("suspend", wrapped.name)
    assert wrapped.state() == "paused"
    virsh("resume", wrapped.name)
    assert wrapped.state() == "running"


def test_domstats(wrapped):
    out = virsh("domstats", wrapped.name).stdout
    assert "state.state=1" in out
    assert "vcpu.current=2" in out


def test_dump_memory_only(wrapped):
    """libvirt opens the file and passes it with getfd (SCM_RIGHTS)."""
    path = Path("/var/lib/libvirt/qemu/dump") / f"{wrapped.name}.core"
    path.unlink(missing_ok=True)
    try:
        t0 = time.monotonic()
        virsh("dump", "--memory-only", wrapped.name, str(path), timeout=300)
        print(f"dump took {time.monotonic() - t0:.2f} s")
        with open(path, "rb") as f:
            assert f.read(4) == b"\x7fELF"
        assert path.stat().st_size > 60 * 1024 * 1024
    finally:
        path.unlink(missing_ok=True)
    assert wrapped.state() == "running"


def test_libvirtd_restart_keeps_helper_state(env, wrapped):
    daemons = env[0]
    if not daemons.owned:
        pytest.skip("libvirtd was started by someone else; not restarting it")
    helpers = helpers_of(wrapped.qemu_pid)
    daemons.restart_libvirtd()
    assert wrapped.state() == "running"
    assert helpers_of(wrapped.qemu_pid) == helpers
    enabled = {e["name"] for e in wrapped.qmp("query-perf-events")["return"]
               if e.get("enabled")}
    assert enabled == {"task_clock"}
    assert wrapped.qmp("query-status")["return"]["status"] == "running"


def test_save_restore(wrapped):
    """save stops QEMU (the helper goes with it); restore starts a new QEMU
    through the wrapper (-incoming defer, the state file passed with getfd)
    and a new helper, whose counters start empty."""
    old_qemu, old_helpers = wrapped.qemu_pid, helpers_of(wrapped.qemu_pid)
    wrapped.helper_pids.update(old_helpers)
    path = Path("/var/lib/libvirt/qemu/save") / f"{wrapped.name}.save"
    path.unlink(missing_ok=True)
    try:
        virsh("save", wrapped.name, str(path), timeout=300)
        assert wait_gone(old_qemu, 10)
        for pid in old_helpers:
            assert wait_gone(pid, 10), f"helper {pid} outlived QEMU"
        virsh("restore", str(path), timeout=300)
    finally:
        path.unlink(missing_ok=True)
    wrapped.qemu_pid = read_pidfile(f"/run/libvirt/qemu/{wrapped.name}.pid")
    assert wrapped.qemu_pid != old_qemu
    assert len(helpers_of(wrapped.qemu_pid)) == 1
    assert wrapped.state() == "running"
    assert wrapped.qmp("query-status")["return"]["status"] == "running"
    assert not [e for e in wrapped.qmp("query-perf-events")["return"]
                if e.get("enabled")]


def test_destroy_ends_helper(wrapped):
    helpers = helpers_of(wrapped.qemu_pid)
    assert helpers
    wrapped.helper_pids.update(helpers)
    virsh("destroy", wrapped.name)
    assert wait_gone(wrapped.qemu_pid, 10)
    for pid in helpers:
        assert wait_gone(pid, 10), f"helper {pid} outlived QEMU"
    assert wrapped.state() == "shut off"


def test_helper_death_stops_the_vm(wrapped):
    """What docs/libvirt.md warns about: libvirt takes a lost monitor for a
    crashed QEMU and stops the VM.  (Why the helper must never exit.)"""
    virsh("start", wrapped.name)
    wrapped.qemu_pid = read_pidfile(f"/run/libvirt/qemu/{wrapped.name}.pid")
    [helper] = helpers_of(wrapped.qemu_pid)
    wrapped.helper_pids.add(helper)
    os.kill(helper, signal.SIGKILL)
    assert wait_gone(wrapped.qemu_pid, 30), "QEMU outlived its monitor"
    deadline = time.monotonic() + 10
    while wrapped.state() != "shut off" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert virsh("domstate", "--reason",
                 wrapped.name).stdout.strip() == "shut off (crashed)"


# ---------------------------------------------------------------------------
# Events from boot: the wrapper's per-domain configuration
#
# Two domains on one wrapper configuration that names only the first:
#
#   [domain qph-test-configured]
#   enable=task_clock,page_faults
#
# The first counts from its start (and again after save and restore: the
# new QEMU gets a new helper through the same configuration), the second
# counts nothing until asked.

CONFIGURED = DOMAIN_PREFIX + "configured"
UNCONFIGURED = DOMAIN_PREFIX + "unconfigured"
WRAPPER_CONF = f"""# written by tests/libvirt/test_libvirt.py
[wrapper]

[domain {CONFIGURED}]
enable=task_clock,page_faults
"""


@pytest.fixture(scope="module")
def conf_wrapper(wrapper):
    """The installed wrapper, reading a configuration of the test's own
    (the installed one reads the prefix's etc, shared with the host)."""
    conf = DESTDIR / "wrapper-test.conf"
    conf.write_text(WRAPPER_CONF)
    conf.chmod(0o644)
    text = wrapper.read_text()
    assert re.search(r'--config "[^"]*"', text), text
    script = wrapper.parent / "qemu-perf-wrapper-test"
    script.write_text(re.sub(r'--config "[^"]*"', f'--config "{conf}"', text))
    script.chmod(0o755)
    return script


def enabled_events(dom):
    return {e["name"]: e for e in dom.qmp("query-perf-events")["return"]
            if e.get("enabled")}


def origin(event):
    at = event["enabled-at"]
    return at["seconds"] + at["microseconds"] / 1e6


@pytest.fixture(scope="module")
def two_domains(env, conf_wrapper):
    daemons, kvm, domains = env
    doms = []
    for name in (CONFIGURED, UNCONFIGURED):
        dom = Domain(name, str(conf_wrapper), kvm)
        domains.append(dom)
        dom.define()
        t0 = time.time()
        dom.start()
        dom.started = (t0, time.time())
        doms.append(dom)
    return doms


def test_wrapper_conf_enables_per_domain(two_domains):
    configured, unconfigured = two_domains
    [helper] = helpers_of(configured.qemu_pid)
    configured.helper_pids.add(helper)
    assert "--enable=task_clock,page_faults" in proc_cmdline(helper)
    on = enabled_events(configured)
    assert list(on) == ["task_clock", "page_faults"]
    t0, t1 = configured.started
    for event in on.values():
        assert t0 - 1 <= origin(event) <= t1 + 1, (t0, event, t1)
    assert on["page_faults"]["value"] > 0

    [other] = helpers_of(unconfigured.qemu_pid)
    unconfigured.helper_pids.add(other)
    assert not [a for a in proc_cmdline(other) if a.startswith("--enable")]
    assert enabled_events(unconfigured) == {}


def test_wrapper_conf_survives_save_restore(two_domains):
    """What docs/libvirt.md promises for save/restore and migration: the
    new QEMU's helper enables the same events, counting from zero with a
    later origin."""
    dom = two_domains[0]
    before = enabled_events(dom)
    old_qemu = dom.qemu_pid
    path = Path("/var/lib/libvirt/qemu/save") / f"{dom.name}.save"
    path.unlink(missing_ok=True)
    try:
        virsh("save", dom.name, str(path), timeout=300)
        assert wait_gone(old_qemu, 10)
        t0 = time.time()
        virsh("restore", str(path), timeout=300)
        t1 = time.time()
    finally:
        path.unlink(missing_ok=True)
    dom.qemu_pid = read_pidfile(f"/run/libvirt/qemu/{dom.name}.pid")
    assert dom.qemu_pid != old_qemu
    dom.helper_pids.update(helpers_of(dom.qemu_pid))
    after = enabled_events(dom)
    assert list(after) == list(before)
    for name, event in after.items():
        assert origin(event) > origin(before[name])
        assert t0 - 1 <= origin(event) <= t1 + 1
    for dom in two_domains:
        virsh("destroy", dom.name)
        assert wait_gone(dom.qemu_pid, 10)
