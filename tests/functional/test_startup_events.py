"""Counters from the start, across restarts, and with a time origin.

    qemu-perf-helper --qemu SOCK --listen L --enable task_clock,page_faults
    qemu-perf-helper --listen L --enable task_clock,page_faults -- QEMU ...

enable events before the first client connects; every enabled event says
since when it counts:

    <- {"name": "task_clock", "enabled": true, "value": 91522011, ...,
        "enabled-at": {"seconds": 1764628800, "microseconds": 250313}}

and an attach-mode helper killed and started again in front of the same
QEMU enables the same events again, from zero, with a later enabled-at,
from its state file DIR/qemu-PID-STARTTIME.state.

References: the kernel's own accounting of the QEMU process (utime+stime,
minflt+majflt in /proc/PID/stat), the test's own clock for the origin, and
set-perf-events' own error text for a bad --enable.
"""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

import conftest
import qmp

pytestmark = pytest.mark.skipif(
    conftest.SELFTEST, reason="the helper's own options and commands; nothing "
    "to compare QEMU-vs-QEMU")

TICK = os.sysconf("SC_CLK_TCK")
EXIT_TIMEOUT = 10
BAD = "no_such_event_qph15"


# ---- references ------------------------------------------------------------

def proc_stat(pid):
    """Fields of /proc/PID/stat, numbered as in proc(5) (fields[1] is pid)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    head, tail = text.rsplit(")", 1)
    return [None, head.split(" (", 1)[0], head.split(" (", 1)[1]] + tail.split()


def cpu_ns(pid):
    """utime + stime of the whole process (dead threads included), in ns."""
    f = proc_stat(pid)
    return (int(f[14]) + int(f[15])) * 1_000_000_000 // TICK


def faults(pid):
    """minflt + majflt of the whole process."""
    f = proc_stat(pid)
    return int(f[10]) + int(f[12])


def start_time(pid):
    return int(proc_stat(pid)[22])


def origin(info):
    at = info["enabled-at"]
    assert set(at) == {"seconds", "microseconds"}, at
    assert 0 <= at["microseconds"] <= 999_999, at
    return at["seconds"] + at["microseconds"] / 1e6


def query(c, names):
    return {e["name"]: e for e in c.command("query-perf-events", {"names": names})}


def enabled(c):
    return [e["name"] for e in c.command("query-perf-events") if e["enabled"]]


def set_events(c, changes):
    return c.cmd("set-perf-events",
                 {"events": [{"name": n, "enabled": on} for n, on in changes]})


# ---- fixtures --------------------------------------------------------------

@pytest.fixture(scope="module")
def vm(tmp_path_factory):
    """One spinning VM (vCPU 0 runs `jmp $`) for the attach-mode tests; each
    test puts its own helpers in front of it, one at a time."""
    conftest.require_qemu()
    conftest.require_helper_binary()
    d, own = conftest.short_dir(tmp_path_factory.mktemp("startup", numbered=True))
    v = conftest.VM(d, spin=True).start()
    yield v
    v.kill()
    if own:
        import shutil
        shutil.rmtree(d, ignore_errors=True)


class Helpers:
    """Attach-mode helpers in front of one VM, each with extra options."""

    def __init__(self, vm, dir):
        self.vm = vm
        self.dir = Path(dir)
        self.state_dir = self.dir / "state"
        self.state_dir.mkdir()
        self.started = []

    def start(self, *extra, state=True):
        h = conftest.Helper(self.dir, self.vm.proxied_path)
        h.log_path = self.dir / f"helper{len(self.started)}.log"
        h.args += list(extra)
        if state:
            h.args += ["--state-dir", str(self.state_dir)]
        self.started.append(h)
        before = time.time()
        h.start()
        return h, before, time.time()

    def client(self, h):
        c = qmp.QMPClient(h.listen)
        c.negotiate()
        return c

    def stop_all(self):
        for h in self.started:
            h.kill()


@pytest.fixture
def helpers(vm, short_tmp):
    hs = Helpers(vm, short_tmp)
    yield hs
    hs.stop_all()


# ---- attach mode -------------------------------------------------------------

def test_attach_enable_counts_from_start(helpers, vm):
    """--enable task_clock,page_faults: the first client finds both counting
    since the helper started, without asking.

    <- query-perf-events: enabled, enabled-at between the helper's start and
       its socket appearing; task_clock no more than QEMU's CPU time since
       the helper started and no less than its CPU time since the socket
       appeared; page_faults no more than QEMU's faults since then."""
    s0, steal0, faults0 = conftest.process_sched_ns(vm.pid), conftest.machine_steal_ns(), faults(vm.pid)
    h, t0, t1 = helpers.start("--enable", "task_clock,page_faults")
    s1 = conftest.process_sched_ns(vm.pid)
    time.sleep(0.5)
    with helpers.client(h) as c:
        got = query(c, ["task_clock", "page_faults", "cpu_clock"])
        s2, steal2, faults2 = conftest.process_sched_ns(vm.pid), conftest.machine_steal_ns(), faults(vm.pid)
        assert enabled(c) == ["task_clock", "page_faults"]
    tc, pf = got["task_clock"], got["page_faults"]
    assert tc["enabled"] and pf["enabled"]
    assert not got["cpu_clock"]["enabled"] and "enabled-at" not in got["cpu_clock"]
    # One request enabled both: one origin, taken while the helper started.
    assert origin(tc) == origin(pf)
    assert t0 - 1 <= origin(tc) <= t1 + 1, (t0, origin(tc), t1)
    tick = 1_000_000_000 // TICK
    print(f"\ntask_clock {tc['value'] / 1e6:.1f} ms; QEMU's CPU time "
          f"{(s1 - s0) / 1e6:.1f}..{(s2 - s0) / 1e6:.1f} ms since start, "
          f"{(s2 - s1) / 1e6:.1f} ms since the socket appeared; steal "
          f"{(steal2 - steal0) / 1e6:.0f} ms")
    # The reference is the kernel's own CPU time of the process, to the
    # nanosecond (sum_exec_runtime).  task_clock runs on perf's clock and
    # also counts time stolen by the hypervisor, which sum_exec_runtime
    # leaves out: seen up to 2.4 % over on this shared host (docs/design.md
    # gives 0.99-1.02 for the exact-counts workloads).  So 2 %, plus the
    # machine's steal over the interval (tick-based, hence two ticks).
    assert tc["value"] <= 1.02 * (s2 - s0) + (steal2 - steal0) + 2 * tick, \
        "task_clock counted more than QEMU ran since before the helper"
    assert tc["value"] >= 0.9 * (s2 - s1) - 2 * tick, \
        "task_clock missed time QEMU spent after the helper was up"
    assert 0 <= pf["value"] <= faults2 - faults0


def test_enable_bad_name_logs_and_serves(helpers, vm):
    """--enable task_clock,BAD: all or nothing, as set-perf-events; the
    error is logged with set-perf-events' own text and the helper serves."""
    h, _, _ = helpers.start("--enable", f"task_clock,{BAD}")
    with helpers.client(h) as c:
        assert enabled(c) == []
        # The reference: the same request through set-perf-events.
        reply = set_events(c, [("task_clock", True), (BAD, True)])
        desc = reply["error"]["desc"]
        assert BAD in desc
        assert enabled(c) == []
        # Serving as ever: a good request works.
        assert set_events(c, [("task_clock", True)]) == {"return": {}}
        assert enabled(c) == ["task_clock"]
        assert c.command("query-status")["status"] == "running"
    log = h.log()
    assert desc in log, log
    assert f"--enable (task_clock,{BAD})" in log, log
    assert h.alive()


def test_origin_monotonic_and_matches_enable(helpers):
    """enabled-at is when set-perf-events ran (the test's clock, within a
    second), survives enabling again, and moves on after a disable."""
    h, _, _ = helpers.start()
    with helpers.client(h) as c:
        t0 = time.time()
        assert set_events(c, [("task_clock", True)]) == {"return": {}}
        t1 = time.time()
        o1 = origin(query(c, ["task_clock"])["task_clock"])
        print(f"\nenabled-at - request sent: {(o1 - t0) * 1e3:.3f} ms "
              f"(request took {(t1 - t0) * 1e3:.3f} ms)")
        assert t0 - 1 <= o1 <= t1 + 1 and abs(o1 - t0) < 1, (t0, o1, t1)

        # Enabling an enabled event keeps its value, so its origin too.
        time.sleep(0.05)
        assert set_events(c, [("task_clock", True), ("page_faults", True)]) == {"return": {}}
        got = query(c, ["task_clock", "page_faults"])
        assert origin(got["task_clock"]) == o1
        o2 = origin(got["page_faults"])
        assert o2 > o1

        # Disabled and enabled again: a reset, visible as a later origin.
        time.sleep(0.05)
        assert set_events(c, [("task_clock", False)]) == {"return": {}}
        assert "enabled-at" not in query(c, ["task_clock"])["task_clock"]
        t2 = time.time()
        assert set_events(c, [("task_clock", True)]) == {"return": {}}
        o3 = origin(query(c, ["task_clock"])["task_clock"])
        assert o3 > o2 and abs(o3 - t2) < 1
        assert origin(query(c, ["page_faults"])["page_faults"]) == o2


def test_restart_enables_the_same_events(helpers, vm):
    """kill -9 and a new helper for the same QEMU: the events enabled
    before come back (the state file wins over --enable, so a client's
    changes survive), counting from zero with a later origin."""
    state = helpers.state_dir / f"qemu-{vm.pid}-{start_time(vm.pid)}.state"
    a, _, _ = helpers.start("--enable", "task_clock")
    with helpers.client(a) as c:
        assert set_events(c, [("task_clock", False), ("cpu_clock", True),
                              ("page_faults", True)]) == {"return": {}}
        assert enabled(c) == ["cpu_clock", "page_faults"]
        before = query(c, ["cpu_clock", "page_faults"])
    assert state.exists(), sorted(os.listdir(helpers.state_dir))
    os.kill(a.proc.pid, signal.SIGKILL)
    a.proc.wait(EXIT_TIMEOUT)

    cpu0 = cpu_ns(vm.pid)
    b, t0, t1 = helpers.start("--enable", "task_clock")
    with helpers.client(b) as c:
        assert enabled(c) == ["cpu_clock", "page_faults"]
        after = query(c, ["cpu_clock", "page_faults"])
        cpu1 = cpu_ns(vm.pid)
    tick = 1_000_000_000 // TICK
    print(f"\nrestart: origin moved {origin(after['cpu_clock']) - origin(before['cpu_clock']):.3f} s; "
          f"new helper enabled them {(origin(after['cpu_clock']) - t0) * 1e3:.1f} ms after it "
          f"was started, its socket appeared after {(t1 - t0) * 1e3:.1f} ms")
    for name in ("cpu_clock", "page_faults"):
        assert origin(after[name]) > origin(before[name])
        assert t0 - 1 <= origin(after[name]) <= t1 + 1
    # From zero: no more than what QEMU ran since the new helper started.
    assert after["cpu_clock"]["value"] <= cpu1 - cpu0 + 2 * tick
    assert "Enabled again the events enabled before the helper restarted: " \
        "cpu_clock,page_faults" in b.log(), b.log()


def test_stale_state_files_removed(helpers, vm):
    """A starting helper removes the state files of QEMUs that are gone
    (no such process, or a pid reused by another), keeps live ones and
    anything not named like a state file."""
    sd = helpers.state_dir
    dead = subprocess.Popen(["true"])
    dead.wait()
    me = os.getpid()
    files = {
        f"qemu-{dead.pid}-{12345}.state": False,               # process gone
        f"qemu-{dead.pid}-{12345}.state.tmp": False,           # half-written, gone
        f"qemu-{me}-{start_time(me) + 1}.state": False,        # pid reused
        f"qemu-{me}-{start_time(me)}.state": True,             # alive
        "qemu-notes.state": True,                              # not ours
        "README": True,
    }
    for name in files:
        (sd / name).write_text("[state]\n")
    h, _, _ = helpers.start()
    with helpers.client(h) as c:
        c.command("query-perf-events")
    left = set(os.listdir(sd))
    for name, kept in files.items():
        assert (name in left) == kept, (name, sorted(left))


def test_state_file_goes_with_qemu(helpers, short_tmp):
    """QEMU quits: its helper exits and its state file goes."""
    vm = conftest.VM(short_tmp / "own", spin=False)
    vm.dir.mkdir()
    vm.start()
    try:
        helpers.vm = vm
        h, _, _ = helpers.start("--enable", "task_clock")
        state = helpers.state_dir / f"qemu-{vm.pid}-{start_time(vm.pid)}.state"
        assert state.exists()
        assert "task_clock" in state.read_text()
        with qmp.QMPClient(vm.direct_path) as d:
            d.negotiate()
            d.command("quit")
        assert h.proc.wait(EXIT_TIMEOUT) == 0
        assert not state.exists(), sorted(os.listdir(helpers.state_dir))
    finally:
        vm.kill()


# ---- launch mode -------------------------------------------------------------

def qemu_child(helper_pid):
    """The QEMU the launching helper started (its only child)."""
    children = Path(f"/proc/{helper_pid}/task/{helper_pid}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def test_launch_enable_counts_from_start(helper_binary, short_tmp):
    """Launch mode: the events count from before the first client, and a
    launched QEMU keeps no state file (the helper is its parent)."""
    listen = str(short_tmp / "launch.sock")
    args = conftest.qemu_base_args() + conftest.vm_extra_args(short_tmp, spin=True)
    env = dict(os.environ, RUNTIME_DIRECTORY=str(short_tmp))
    t0 = time.time()
    with open(short_tmp / "launch.log", "wb") as log:
        proc = subprocess.Popen([helper_binary, "--listen", listen,
                                 "--enable", "task_clock,page_faults", "--"] + args,
                                stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=env)
    try:
        qmp.wait_for_listening(listen, 15, proc)
        t1 = time.time()
        qemu = qemu_child(proc.pid)
        cpu1 = cpu_ns(qemu)
        time.sleep(0.5)
        with qmp.QMPClient(listen) as c:
            c.negotiate()
            got = query(c, ["task_clock", "page_faults"])
            cpu2, faults2 = cpu_ns(qemu), faults(qemu)
            tc, pf = got["task_clock"], got["page_faults"]
            assert tc["enabled"] and pf["enabled"]
            assert t0 - 1 <= origin(tc) <= t1 + 1
            tick = 1_000_000_000 // TICK
            print(f"\nlaunch: task_clock {tc['value'] / 1e6:.1f} ms of QEMU's "
                  f"{cpu2 / 1e6:.0f} ms; page_faults {pf['value']} of {faults2}")
            assert tc["value"] <= cpu2 + 2 * tick
            assert tc["value"] >= 0.9 * (cpu2 - cpu1) - 2 * tick
            assert 0 < pf["value"] <= faults2
            assert not list(short_tmp.glob("qemu-*.state"))
            c.command("quit")
            c.wait_closed(EXIT_TIMEOUT)
        assert proc.wait(EXIT_TIMEOUT) == 0
    finally:
        conftest.kill_proc(proc, signal.SIGTERM)
