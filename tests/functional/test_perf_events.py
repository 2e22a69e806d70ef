"""set-perf-events / query-perf-events against a real QEMU (issue 3).

Every test talks QMP to the helper (attach mode) in front of a real QEMU and
reads like a transcript: what is sent, what comes back, and what /proc says
about the helper and QEMU meanwhile.

The module shares one VM whose vCPU 0 spins, with -smp 1,maxcpus=3 so vCPUs
can be hotplugged, and named threads (debug-threads=on: "CPU 0/KVM").
vCPU 0 spins on `EB FE` (jmp $) like the boot sector of
/work/shared/notes/perf.md, but placed at the reset vector of a 64 KiB
-bios image: it spins from the first instruction.  (The boot sector on a
floppy, conftest's spin=True, did not boot here: on this nested-KVM host
SeaBIOS hung in "Booting from Floppy..." for more than 15 s, and from an
IDE disk it took ~8 s; the reset vector costs no boot time at all.)  Every test
leaves no event enabled (the autouse `clean` fixture disables what is left).
The vCPU hotplug test changes the thread set and runs last on that VM.

The cost measurement (query-perf-events with and without per-thread on a
32-vCPU VM) prints its numbers; run with `pytest -s` (or see the junit
properties) to read them.

Needs the real helper: skipped in QPH_SELFTEST_DIRECT mode.
"""

import importlib.util
import os
import re
import shutil
import statistics
import sys
import time
from pathlib import Path

import pytest



def _load_conftest():
    """The harness (VM, Helper, make_env) of this directory, reused as is."""
    here = Path(__file__).resolve().parent / "conftest.py"
    mod = sys.modules.get("conftest")
    if mod is not None and Path(getattr(mod, "__file__", "")).resolve() == here:
        return mod
    spec = importlib.util.spec_from_file_location("_qph_functional_conftest", here)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


harness = _load_conftest()

pytestmark = pytest.mark.skipif(
    harness.SELFTEST, reason="query-perf-events is the helper's own command; "
    "QEMU-vs-QEMU self-test mode has nothing to compare")

REFERENCE = harness.REPO / "docs" / "qmp-reference.md"

# libvirt's 22 names, in the order of issue 3 (and of the reference).
CATALOG = [
    "cmt", "mbmt", "mbml", "cpu_cycles", "instructions", "cache_references",
    "cache_misses", "branch_instructions", "branch_misses", "bus_cycles",
    "stalled_cycles_frontend", "stalled_cycles_backend", "ref_cpu_cycles",
    "cpu_clock", "task_clock", "page_faults", "context_switches", "cpu_migrations",
    "page_faults_min", "page_faults_maj", "alignment_faults", "emulation_faults",
]
RESCTRL_EVENTS = {"cmt", "mbmt", "mbml"}
NS_EVENTS = {"cpu_clock", "task_clock"}
# Software events this host can count (no hardware PMU here).
SOFTWARE_EVENTS = ["task_clock", "cpu_clock", "page_faults", "context_switches",
                   "cpu_migrations", "page_faults_min"]

GUEST_NAME = ["-name", "guest=t,debug-threads=on"]

# The spin loop: `jmp $` at F000:FFF0, the x86 reset vector.
SPIN_EIP = "0000fff0"


def write_spin_bios(path):
    """A 64 KiB BIOS whose reset vector (offset 0xfff0) is EB FE."""
    img = bytearray(0x10000)
    img[0xfff0:0xfff2] = b"\xeb\xfe"
    Path(path).write_bytes(bytes(img))
    return str(path)


def sched_runtime_ns(pid, tid):
    """The kernel's own CPU time of a thread (/proc/.../schedstat, ns)."""
    return int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])


# ---- helpers ----------------------------------------------------------------

def perf_fds(pid):
    """How many perf_event fds process ``pid`` holds (/proc/PID/fd)."""
    n = 0
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            if os.readlink(f"{fd_dir}/{fd}") == "anon_inode:[perf_event]":
                n += 1
        except FileNotFoundError:
            pass
    return n


def proc_tids(pid):
    return {int(t) for t in os.listdir(f"/proc/{pid}/task")}


def comm(pid, tid):
    try:
        return Path(f"/proc/{pid}/task/{tid}/comm").read_text().rstrip("\n")
    except FileNotFoundError:
        return None


def voluntary_switches(pid):
    """voluntary_ctxt_switches summed over every thread of ``pid``."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            for line in Path(f"/proc/{pid}/task/{tid}/status").read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def set_ok(c, events):
    """events: list of (name, enabled); asserts {"return": {}}."""
    reply = c.cmd("set-perf-events",
                  {"events": [{"name": n, "enabled": e} for n, e in events]})
    assert reply == {"return": {}}, reply
    return reply


def query(c, names=None, per_thread=None):
    args = {}
    if names is not None:
        args["names"] = names
    if per_thread is not None:
        args["per-thread"] = per_thread
    return c.command("query-perf-events", args or None)


def query_one(c, name, per_thread=None):
    (info,) = query(c, [name], per_thread)
    assert info["name"] == name
    return info


def enabled_names(c):
    return [e["name"] for e in query(c) if e["enabled"]]


def thread_of(info, tid):
    found = [t for t in info["threads"] if t["thread-id"] == tid]
    assert len(found) == 1, f"thread {tid} appears {len(found)} times in {info['threads']}"
    return found[0]


def assert_sum_is_total(info):
    """value == sum(threads) + exited-value, all from one reply."""
    s = sum(t["value"] for t in info["threads"])
    assert info["value"] == s + info["exited-value"], (
        f"{info['name']}: value {info['value']} != sum(threads) {s} + exited "
        f"{info['exited-value']}")


def assert_each_tid_once(info):
    tids = [t["thread-id"] for t in info["threads"]]
    assert len(tids) == len(set(tids)), f"{info['name']}: a thread is listed twice: {tids}"


def timed_query(c, names, per_thread=None):
    """One query, and the monotonic time in the middle of its round trip."""
    t0 = time.monotonic()
    r = query(c, names, per_thread)
    t1 = time.monotonic()
    return r, (t0 + t1) / 2, t1 - t0


def vcpu_tid(c, index):
    for cpu in c.command("query-cpus-fast"):
        if cpu["cpu-index"] == index:
            return cpu["thread-id"]
    raise AssertionError(f"no vCPU {index} in query-cpus-fast")


# ---- fixtures ---------------------------------------------------------------

@pytest.fixture(scope="module")
def pvm(tmp_path_factory):
    """The module's VM: vCPU 0 spins, room for one hotplugged vCPU, named
    threads; the helper in front of it."""
    d, _ = harness.short_dir(tmp_path_factory.mktemp("perf", numbered=True))
    env = None
    try:
        bios = write_spin_bios(Path(d) / "spin-bios.bin")
        env = harness.make_env(d, smp="1,maxcpus=3", extra_args=["-bios", bios] + GUEST_NAME)
        yield env
    finally:
        harness.destroy_env(env)
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def penv(pvm):
    """The shared VM; afterwards every event is disabled again (through a
    client of our own), clients are closed and the helper must be alive."""
    yield pvm
    pvm.close_clients()
    if not pvm.helper.alive():
        pytest.fail(f"the helper died (status {pvm.helper.proc.returncode}):\n"
                    f"{pvm.helper.log()}")
    c = pvm.client()
    left = enabled_names(c)
    if left:
        set_ok(c, [(n, False) for n in left])
    pvm.close_clients()


@pytest.fixture(scope="module")
def spinning(pvm):
    """Wait until vCPU 0 runs its `jmp $` and is busy; its thread id.

    The instruction pointer (HMP `info registers` on the direct monitor)
    says the loop is reached; then vCPU 0's per-thread task_clock must be
    seen to grow (> 0.1 s/s over 0.5 s, polled up to the deadline)."""
    c = pvm.client()
    d = pvm.direct()
    try:
        deadline = time.monotonic() + 20
        regs = ""
        while time.monotonic() < deadline:
            regs = d.command("human-monitor-command",
                             {"command-line": "info registers"})
            if f"EIP={SPIN_EIP}" in regs:
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"vCPU 0 did not reach the spin loop:\n{regs}")
        tid = vcpu_tid(c, 0)
        set_ok(c, [("task_clock", True)])
        prev, tprev, _ = timed_query(c, ["task_clock"], True)
        while True:
            time.sleep(0.5)
            cur, tcur, _ = timed_query(c, ["task_clock"], True)
            rate = ((thread_of(cur[0], tid)["value"] - thread_of(prev[0], tid)["value"])
                    / 1e9 / (tcur - tprev))
            if rate > 0.1:
                break
            if time.monotonic() > deadline:
                pytest.fail(f"vCPU 0 (tid {tid}) at the loop but not busy: {rate:.2f} s/s")
            prev, tprev = cur, tcur
        set_ok(c, [("task_clock", False)])
        return tid
    finally:
        pvm.close_clients()


# ---- the catalog ------------------------------------------------------------

def test_reference_lists_the_same_22_names():
    """The reference's sentence naming libvirt's events is this list, in order
    (so the tests below check what the reference promises)."""
    text = REFERENCE.read_text()
    m = re.search(r"libvirt's perf event names \(([^)]*)\)", text.replace("\n", " "))
    assert m, "the reference no longer names libvirt's events"
    assert [n.strip() for n in m.group(1).split(",")] == CATALOG


def test_catalog_always_listed_disabled_by_default(penv):
    """-> query-perf-events
    <- 22 entries, libvirt's names in order, enabled false, no value,
       unit/source as the reference says (ns: cpu_clock, task_clock; bytes
       and resctrl: cmt, mbmt, mbml; count and perf: the rest)."""
    c = penv.client()
    ret = query(c)
    assert [e["name"] for e in ret] == CATALOG
    for e in ret:
        name = e["name"]
        assert e["enabled"] is False, e
        for absent in ("value", "threads", "domains", "time-enabled", "time-running",
                       "scaled", "exited-value"):
            assert absent not in e, e
        if name in RESCTRL_EVENTS:
            assert (e["unit"], e["source"]) == ("bytes", "resctrl"), e
        elif name in NS_EVENTS:
            assert (e["unit"], e["source"]) == ("ns", "perf"), e
        else:
            assert (e["unit"], e["source"]) == ("count", "perf"), e
    # per-thread changes nothing for disabled events
    assert query(c, per_thread=True) == ret
    # a name that is neither known nor enabled is reported, not enabled
    assert query(c, ["no_such_event", "task_clock"]) == [
        {"name": "no_such_event", "enabled": False, "unit": "count", "source": "perf"},
        next(e for e in ret if e["name"] == "task_clock")]


# ---- task_clock on a spinning vCPU -----------------------------------------

def test_task_clock_on_spinning_vcpu(penv, spinning):
    """vCPU 0 runs `jmp $`: its task_clock grows at about 1 s per second.

    -> set-perf-events task_clock on
    -> query-perf-events {names: [task_clock], per-thread: true}   (t1)
       ... 2 s ...
    -> query-perf-events {names: [task_clock], per-thread: true}   (t2)
    rate = (vCPU 0's value at t2 - at t1) / (t2 - t1)

    Bounds.  Upper 1.1: a thread cannot run more than 1 s per wall second;
    the extra 0.1 covers the timestamps (middle of each round trip; well
    under 10 ms of error over 2 s).  Lower 0.5: on an idle machine the
    spinning vCPU owns a core (~1.0; notes/perf.md saw 1001 ms/s), and 0.5
    is what CFS still gives it with two other busy threads on the 2 cores.
    On a machine busier than that the absolute bound says nothing about the
    helper, so the rate is also compared with the kernel's own accounting
    of the same thread over the same window (/proc/PID/task/TID/schedstat,
    which lags by at most a scheduler tick): within 10% + 0.02 s/s.  The
    absolute lower bound is waived only when schedstat itself says the
    thread got less than 0.55 s/s.  Not counting the vCPU, counting a part
    of it, or counting some other (halted) thread fails either way."""
    c = penv.client()
    tid = spinning
    pid = penv.vm.pid
    set_ok(c, [("task_clock", True)])
    s1 = sched_runtime_ns(pid, tid)
    (a,), t1, _ = timed_query(c, ["task_clock"], True)
    s1 = (s1 + sched_runtime_ns(pid, tid)) / 2
    time.sleep(2.0)
    s2 = sched_runtime_ns(pid, tid)
    (b,), t2, _ = timed_query(c, ["task_clock"], True)
    s2 = (s2 + sched_runtime_ns(pid, tid)) / 2
    va, vb = thread_of(a, tid), thread_of(b, tid)
    assert va["kind"] == "vcpu" and va["cpu-index"] == 0
    rate = (vb["value"] - va["value"]) / 1e9 / (t2 - t1)
    kernel_rate = (s2 - s1) / 1e9 / (t2 - t1)
    print(f"\ntask_clock on vCPU 0 (tid {tid}): {rate:.3f} s/s over {t2 - t1:.2f} s "
          f"(schedstat says {kernel_rate:.3f} s/s; load average "
          f"{os.getloadavg()[0]:.1f})")
    assert rate <= 1.1, f"vCPU 0 task_clock grew {rate:.3f} s/s: more than one CPU"
    assert abs(rate - kernel_rate) <= 0.1 * kernel_rate + 0.02, (
        f"vCPU 0 task_clock grew {rate:.3f} s/s, the kernel ran it {kernel_rate:.3f} s/s")
    assert rate >= 0.5 or kernel_rate < 0.55, f"vCPU 0 task_clock grew {rate:.3f} s/s"
    # the total grows at least as fast as vCPU 0 alone
    total_rate = (b["value"] - a["value"]) / 1e9 / (t2 - t1)
    assert total_rate >= rate
    for info in (a, b):
        assert info["unit"] == "ns" and info["enabled"] is True
        assert info["scaled"] is False and info["time-running"] == info["time-enabled"]
        assert_each_tid_once(info)
        assert_sum_is_total(info)


def test_per_thread_sums_to_total(penv):
    """-> set-perf-events task_clock, page_faults, context_switches on
    -> query-perf-events {per-thread: true}
    <- for each: value == sum(threads[].value) + exited-value (one reply);
       the threads are QEMU's, once each; without per-thread no threads."""
    c = penv.client()
    events = ["task_clock", "page_faults", "context_switches"]
    set_ok(c, [(n, True) for n in events])
    time.sleep(0.3)
    pid = penv.vm.pid
    before = proc_tids(pid)
    ret = query(c, per_thread=True)
    after = proc_tids(pid)
    on = [e for e in ret if e["enabled"]]
    assert [e["name"] for e in on] == events
    for info in on:
        assert_each_tid_once(info)
        assert_sum_is_total(info)
        tids = {t["thread-id"] for t in info["threads"]}
        assert before & after <= tids <= before | after, (info["name"], tids, before, after)
    assert on[0]["value"] > 0
    for info in query(c, events):
        assert "threads" not in info and info["value"] >= 0


# ---- labels -----------------------------------------------------------------

def test_labels_match_query_cpus_fast(penv):
    """-> query-cpus-fast (QEMU's own monitor)
    -> query-perf-events {names: [task_clock], per-thread: true}
    <- each vCPU thread: kind vcpu, cpu-index, qom-path as QEMU says; every
       thread's name is its /proc comm; the process id is the main loop."""
    c = penv.client()
    d = penv.direct()
    cpus = d.command("query-cpus-fast")
    set_ok(c, [("task_clock", True)])
    # QOM paths come from QEMU in the background, never waited for: the
    # query answers at once, and has them once QEMU has answered.
    deadline = time.monotonic() + 10
    while True:
        info = query_one(c, "task_clock", True)
        if all("qom-path" in t for t in info["threads"] if t["kind"] == "vcpu"):
            break
        assert time.monotonic() < deadline, info["threads"]
        time.sleep(0.05)
    pid = penv.vm.pid
    by_tid = {t["thread-id"]: t for t in info["threads"]}
    for cpu in cpus:
        t = by_tid[cpu["thread-id"]]
        assert t["kind"] == "vcpu", t
        assert t["cpu-index"] == cpu["cpu-index"], (t, cpu)
        assert t["qom-path"] == cpu["qom-path"], (t, cpu)
        assert t["name"] == f"CPU {cpu['cpu-index']}/" + ("KVM" if harness.kvm_usable()
                                                            else "TCG"), t
    vcpu_tids = {cpu["thread-id"] for cpu in cpus}
    for t in info["threads"]:
        name = comm(pid, t["thread-id"])
        if name is not None:  # a worker that exited since has no comm
            assert t["name"] == name, t
        if t["thread-id"] not in vcpu_tids:
            assert "cpu-index" not in t and "qom-path" not in t, t
    mains = [t for t in info["threads"] if t["kind"] == "main-loop"]
    assert [t["thread-id"] for t in mains] == [pid], mains


# ---- errors change nothing ---------------------------------------------------

def _resctrl_mounted():
    try:
        return any(line.split()[2] == "resctrl"
                   for line in Path("/proc/mounts").read_text().splitlines())
    except OSError:
        return False


REFUSED = [
    ("no_such_event", ["Unknown perf event 'no_such_event'", "not found"]),
    ("cpu_cycles", ["'cpu_cycles'", "hardware PMU"]),
    ("cmt", ["'cmt'", "resctrl"]),
]


@pytest.mark.parametrize("bad,why", REFUSED, ids=[r[0] for r in REFUSED])
def test_refused_event_changes_nothing(penv, bad, why):
    """-> set-perf-events [page_faults on, BAD on]     (and BAD first)
    <- GenericError naming BAD and why; page_faults is not enabled, BAD is
       not enabled, the helper holds no perf fd.
    With context_switches already on:
    -> set-perf-events [context_switches off, BAD on]
    <- GenericError; context_switches still on, its count not reset."""
    if bad == "cmt" and _resctrl_mounted():
        pytest.skip("resctrl is mounted here: cmt may be countable")
    if bad == "cpu_cycles" and os.path.exists("/sys/bus/event_source/devices/cpu"):
        pytest.skip("this host has a hardware PMU")
    c = penv.client()
    hpid = penv.helper.proc.pid
    assert perf_fds(hpid) == 0
    for order in ([("page_faults", True), (bad, True)], [(bad, True), ("page_faults", True)]):
        reply = c.cmd("set-perf-events",
                      {"events": [{"name": n, "enabled": e} for n, e in order]})
        assert reply["error"]["class"] == "GenericError", reply
        for part in why:
            assert part in reply["error"]["desc"], reply
        assert [(e["name"], e["enabled"]) for e in query(c, ["page_faults", bad])] == [
            ("page_faults", False), (bad, False)]
        assert enabled_names(c) == []
        assert perf_fds(hpid) == 0, "a refused request left perf fds open"

    set_ok(c, [("context_switches", True)])
    fds = perf_fds(hpid)
    assert fds > 0
    time.sleep(0.2)
    v1 = query_one(c, "context_switches")["value"]
    reply = c.cmd("set-perf-events", {"events": [
        {"name": "context_switches", "enabled": False}, {"name": bad, "enabled": True}]})
    assert reply["error"]["class"] == "GenericError", reply
    info = query_one(c, "context_switches")
    assert info["enabled"] is True and info["value"] >= v1, (info, v1)
    assert enabled_names(c) == ["context_switches"]
    assert perf_fds(hpid) == fds


def test_enable_twice_disable_unknown(penv):
    """The reference: enabling an enabled event, or disabling one that is
    not, is not an error and does not reset the value; in one request the
    last entry for a name wins.
    -> set-perf-events [task_clock on]                      <- {}
    -> set-perf-events [task_clock on, page_faults off]     <- {}, value kept
    -> set-perf-events [page_faults on, page_faults off]    <- {}, not enabled
    -> set-perf-events []                                   <- {}"""
    c = penv.client()
    hpid = penv.helper.proc.pid
    set_ok(c, [("task_clock", True)])
    fds = perf_fds(hpid)
    time.sleep(0.2)
    v1 = query_one(c, "task_clock")["value"]
    set_ok(c, [("task_clock", True), ("page_faults", False)])
    v2 = query_one(c, "task_clock")["value"]
    assert v2 >= v1 > 0, (v1, v2)
    assert perf_fds(hpid) == fds, "enabling an enabled event opened it again"
    set_ok(c, [("page_faults", True), ("page_faults", False)])
    set_ok(c, [])
    assert enabled_names(c) == ["task_clock"]
    set_ok(c, [("task_clock", False), ("task_clock", True)])
    assert enabled_names(c) == ["task_clock"]
    assert query_one(c, "task_clock")["value"] >= v2


def test_argument_errors(penv):
    """QEMU 7.2's texts for bad arguments, and nothing changes:
    -> set-perf-events {}                                  Parameter 'events' is missing
    -> set-perf-events {events: [{name: task_clock, enabled: 1}]}
                       Invalid parameter type for 'events[0].enabled', expected: boolean
    -> set-perf-events {events: [...], x: 1}               Parameter 'x' is unexpected
    -> query-perf-events {per-thread: "yes"}
                       Invalid parameter type for 'per-thread', expected: boolean"""
    c = penv.client()
    good = {"name": "task_clock", "enabled": True}
    cases = [
        ("set-perf-events", {}, "Parameter 'events' is missing"),
        ("set-perf-events", None, "Parameter 'events' is missing"),
        ("set-perf-events", {"events": [{"name": "task_clock", "enabled": 1}]},
         "Invalid parameter type for 'events[0].enabled', expected: boolean"),
        ("set-perf-events", {"events": [good, {"name": "page_faults", "enabled": "yes"}]},
         "Invalid parameter type for 'events[1].enabled', expected: boolean"),
        ("set-perf-events", {"events": [good], "x": 1}, "Parameter 'x' is unexpected"),
        ("set-perf-events", {"events": [{"name": "task_clock"}]},
         "Parameter 'events[0].enabled' is missing"),
        ("set-perf-events", {"events": "task_clock"},
         "Invalid parameter type for 'events', expected: array"),
        ("query-perf-events", {"per-thread": "yes"},
         "Invalid parameter type for 'per-thread', expected: boolean"),
        ("query-perf-events", {"y": True}, "Parameter 'y' is unexpected"),
    ]
    for cmd, args, desc in cases:
        reply = c.cmd(cmd, args, id="e")
        assert reply == {"id": "e", "error": {"class": "GenericError", "desc": desc}}, \
            (cmd, args, reply)
    assert enabled_names(c) == []
    assert perf_fds(penv.helper.proc.pid) == 0


# ---- libpfm4 names -----------------------------------------------------------

def test_libpfm4_names(penv):
    """-> set-perf-events [perf::PAGE-FAULTS on, perf::TASK-CLOCK on]
    -> query-perf-events
    <- the 22 catalog names, then perf::PAGE-FAULTS, perf::TASK-CLOCK (enabled,
       counting, units count and ns)
    -> set-perf-events [both off]
    -> query-perf-events
    <- the 22 catalog names only"""
    c = penv.client()
    pfm = ["perf::PAGE-FAULTS", "perf::TASK-CLOCK"]
    set_ok(c, [(n, True) for n in pfm])
    # Counting, once QEMU has run at all (bounded only to catch a hang:
    # on a loaded machine 0.3 s may pass before it is scheduled).
    deadline = time.monotonic() + 20
    while True:
        time.sleep(0.3)
        ret = query(c, per_thread=True)
        if ret[-1]["value"] > 0 or time.monotonic() > deadline:
            break
    assert [e["name"] for e in ret] == CATALOG + pfm
    assert all(not e["enabled"] for e in ret[:22])
    pf, tc = ret[22], ret[23]
    for e in (pf, tc):
        assert e["enabled"] is True and e["source"] == "perf", e
        assert_sum_is_total(e)
        assert_each_tid_once(e)
    assert pf["unit"] == "count" and tc["unit"] == "ns"
    assert tc["value"] > 0
    # asked by name, too
    assert query_one(c, "perf::TASK-CLOCK")["enabled"] is True
    set_ok(c, [(n, False) for n in pfm])
    assert [e["name"] for e in query(c)] == CATALOG
    assert query(c, pfm) == [
        {"name": n, "enabled": False, "unit": "count", "source": "perf"} for n in pfm]
    assert perf_fds(penv.helper.proc.pid) == 0


# ---- fds and timers ----------------------------------------------------------

def test_disable_all_closes_every_fd(penv):
    """/proc/HELPER/fd: no perf fd before; one per (event, thread), plus one
    per thread for the leader of their group, while six software events
    are on; none after disabling them all."""
    c = penv.client()
    hpid = penv.helper.proc.pid
    assert perf_fds(hpid) == 0
    set_ok(c, [(n, True) for n in SOFTWARE_EVENTS])
    ret = [e for e in query(c, per_thread=True) if e["enabled"]]
    n_threads = sum(len(e["threads"]) for e in ret)
    leaders = len(ret[0]["threads"])
    assert [e["name"] for e in ret] == [n for n in CATALOG if n in SOFTWARE_EVENTS]
    assert perf_fds(hpid) == n_threads + leaders > leaders > 0
    # disabling a part closes that part; the leader stays for the others
    set_ok(c, [("cpu_clock", False), ("cpu_migrations", False)])
    n_left = sum(len(e["threads"]) for e in query(c, per_thread=True) if e["enabled"])
    assert perf_fds(hpid) == n_left + leaders
    assert n_left < n_threads
    set_ok(c, [(n, False) for n in SOFTWARE_EVENTS])
    assert perf_fds(hpid) == 0
    assert enabled_names(c) == []


def test_idle_helper_runs_no_timer(penv):
    """Nothing enabled, a client connected, the VM idle at its QMP side:
    the helper's threads do not wake up (voluntary_ctxt_switches over 3 s).
    A timer of any period up to 1.5 s would add at least 2."""
    c = penv.client()
    assert enabled_names(c) == []
    hpid = penv.helper.proc.pid
    before = voluntary_switches(hpid)
    time.sleep(3.0)
    after = voluntary_switches(hpid)
    assert after - before <= 1, f"the idle helper woke {after - before} times in 3 s"
    assert c.pending(0.0) == b""


# ---- clients -----------------------------------------------------------------

def test_every_client_sees_the_same_set(penv):
    """A: set-perf-events page_faults on
    B: query-perf-events  -> page_faults enabled
    C (connects later): query-perf-events -> page_faults enabled
    B: set-perf-events page_faults off
    A: query-perf-events  -> page_faults disabled"""
    a, b = penv.client(), penv.client()
    set_ok(a, [("page_faults", True)])
    assert enabled_names(b) == ["page_faults"]
    assert "value" in query_one(b, "page_faults")
    c = penv.client()
    assert enabled_names(c) == ["page_faults"]
    a.close()
    assert enabled_names(c) == ["page_faults"], "a client leaving disabled its events"
    set_ok(b, [("page_faults", False)])
    assert enabled_names(c) == []
    assert perf_fds(penv.helper.proc.pid) == 0


# ---- introspection -----------------------------------------------------------

def parse_reference(text):
    """docs/qmp-reference.md: per "### Name" section its table rows (member
    and type for objects and commands, value for enums), its Returns line,
    and whether it is an enum."""
    out = {}
    for sec in re.split(r"^### ", text, flags=re.M)[1:]:
        name = sec.split("\n", 1)[0].strip()
        rows = []
        for line in sec.splitlines():
            if not line.startswith("| `"):
                continue
            cells = [x.strip() for x in line.strip().strip("|").split(" | ")]
            rows.append((cells[0].strip("`"), cells[1] if len(cells) == 3 else None))
        ret = re.search(r"^\*\*Returns:\*\* (.*)$", sec, re.M)
        out[name] = {"rows": rows, "returns": ret.group(1) if ret else None,
                     "enum": "*enum*" in sec}
    return out


REF_BUILTIN = {"str": "str", "bool": "bool", "int": "int", "uint64": "int"}


def check_type(schema, ref, type_name, ref_type, path):
    """SchemaInfo ``type_name`` (resolved in ``schema``) matches the
    reference's type text ``ref_type`` ("`str`", "array of [`X`](#x)", ...)."""
    assert type_name in schema, f"{path}: type {type_name!r} not in the same answer"
    info = schema[type_name]
    ref_type = ref_type.strip()
    m = re.match(r"array of (.*)$", ref_type)
    if m:
        assert info["meta-type"] == "array", (path, info)
        return check_type(schema, ref, info["element-type"], m.group(1), path + "[]")
    m = re.match(r"`([^`]+)`( \(optional\))?$", ref_type) or \
        re.match(r"\[`([^`]+)`\]\(#[a-z]+\)( \(optional\))?$", ref_type)
    assert m, f"{path}: cannot read the reference type {ref_type!r}"
    name = m.group(1)
    if name in REF_BUILTIN:
        assert info["meta-type"] == "builtin" and info["name"] == REF_BUILTIN[name], \
            (path, info)
        return
    sec = ref[name]
    if sec["enum"]:
        assert info["meta-type"] == "enum", (path, info)
        assert info["values"] == [r[0] for r in sec["rows"]], (path, info)
        return
    check_object(schema, ref, type_name, sec["rows"], path)


def check_object(schema, ref, type_name, rows, path):
    info = schema[type_name]
    assert info["meta-type"] == "object", (path, info)
    got = [m["name"] for m in info["members"]]
    assert got == [r[0] for r in rows], f"{path}: members {got} vs reference {rows}"
    for m, (rname, rtype) in zip(info["members"], rows):
        optional = rtype.endswith("(optional)")
        assert ("default" in m) == optional, (path, m, rtype)
        check_type(schema, ref, m["type"], re.sub(r" \(optional\)$", "", rtype),
                   f"{path}.{rname}")


def test_introspection(penv):
    """-> query-commands        <- lists set-perf-events and query-perf-events
    -> query-qmp-schema      <- command entries for both; arg-type and
       ret-type resolve to entries of the same answer (object / array of
       object), members and their types as in docs/qmp-reference.md."""
    c = penv.client()
    names = [e["name"] for e in c.command("query-commands")]
    for cmd in ("set-perf-events", "query-perf-events"):
        assert names.count(cmd) == 1, cmd
    entries = c.command("query-qmp-schema")
    schema = {}
    for e in entries:
        assert e["name"] not in schema, f"two entries named {e['name']!r}"
        schema[e["name"]] = e
    ref = parse_reference(REFERENCE.read_text())

    set_cmd = schema["set-perf-events"]
    assert set_cmd["meta-type"] == "command"
    check_object(schema, ref, set_cmd["arg-type"], ref["set-perf-events"]["rows"],
                 "set-perf-events")
    ret = schema[set_cmd["ret-type"]]
    assert ref["set-perf-events"]["returns"] == "`{}`"
    assert ret["meta-type"] == "object" and ret["members"] == [], ret

    q_cmd = schema["query-perf-events"]
    assert q_cmd["meta-type"] == "command"
    check_object(schema, ref, q_cmd["arg-type"], ref["query-perf-events"]["rows"],
                 "query-perf-events")
    ret_ref = ref["query-perf-events"]["returns"].split(":")[0]
    check_type(schema, ref, q_cmd["ret-type"], ret_ref, "query-perf-events->")
    assert schema[q_cmd["ret-type"]]["meta-type"] == "array"
    # QEMU's own view of the helper's commands is nowhere (they are the
    # helper's): the direct monitor does not know them
    d = penv.direct()
    assert d.cmd("query-perf-events")["error"]["class"] == "CommandNotFound"


# ---- hotplug (changes the VM's threads: runs last on the shared VM) ----------

def inherited(info):
    return {t["thread-id"] for t in info["inherited-threads"]}


def test_hotplug_vcpu_and_iothread_appear(penv):
    """With task_clock and page_faults on:
    -> query-hotpluggable-cpus; device_add {driver: TYPE, id: cpu1, PROPS}
    -> query-perf-events {per-thread: true}
    <- the new vCPU's thread has no entry of its own: it is listed in
       inherited-threads (created after enabling) and counted in its
       creator's entry; no descriptor was opened for it
    -> human-monitor-command "info registers -a" (runs on every vCPU thread)
    <- the total grew at least by what the new vCPU used (its schedstat)
    -> device_add of a third vCPU on QEMU's own monitor (not the helper's)
    <- the same, found without the helper being told
    -> object-add {qom-type: iothread, id: iot1}; object-del {id: iot1}
    <- the iothread is listed while it lives, gone after; the total kept
    Every tid once, sum(threads) + exited == value."""
    c = penv.client()
    d = penv.direct()
    hpid = penv.helper.proc.pid
    events = ["task_clock", "page_faults"]
    set_ok(c, [(n, True) for n in events])
    fds = perf_fds(hpid)

    slots = c.command("query-hotpluggable-cpus")
    free = [s for s in slots if "qom-path" not in s]
    assert len(free) == 2, slots
    free.sort(key=lambda s: sorted(s["props"].items()))
    dev = {"driver": free[0]["type"], "id": "cpu1", **free[0]["props"]}
    assert c.command("device_add", dev) == {}

    new_cpu = [cpu for cpu in d.command("query-cpus-fast") if cpu["cpu-index"] == 1]
    assert len(new_cpu) == 1
    new_tid = new_cpu[0]["thread-id"]
    ret = [e for e in query(c, per_thread=True) if e["enabled"]]
    for info in ret:
        assert new_tid not in {t["thread-id"] for t in info["threads"]}
        assert new_tid in inherited(info), info["inherited-threads"]
        assert_each_tid_once(info)
        assert_sum_is_total(info)
    assert perf_fds(hpid) == fds, "no descriptor for a thread created later"

    v1 = query_one(c, "task_clock")["value"]
    s1 = sched_runtime_ns(penv.vm.pid, new_tid)
    for _ in range(5):
        d.command("human-monitor-command", {"command-line": "info registers -a"})
    s2 = sched_runtime_ns(penv.vm.pid, new_tid)
    v2 = query_one(c, "task_clock")["value"]
    assert s2 > s1
    assert v2 - v1 >= s2 - s1, "the hotplugged vCPU's time is in the total"

    assert c.command("object-add", {"qom-type": "iothread", "id": "iot1"}) == {}
    iot = [t for t in d.command("query-iothreads") if t["id"] == "iot1"]
    assert len(iot) == 1
    for info in [e for e in query(c, per_thread=True) if e["enabled"]]:
        assert iot[0]["thread-id"] in inherited(info)
        assert_each_tid_once(info)
        assert_sum_is_total(info)

    # A vCPU added behind the helper's back (QEMU's other monitor).
    d.command("device_add", {"driver": free[1]["type"], "id": "cpu2", **free[1]["props"]})
    cpu2 = [cpu for cpu in d.command("query-cpus-fast") if cpu["cpu-index"] == 2]
    assert len(cpu2) == 1
    for info in [e for e in query(c, per_thread=True) if e["enabled"]]:
        assert cpu2[0]["thread-id"] in inherited(info)
        assert_each_tid_once(info)
        assert_sum_is_total(info)

    # -> object-del iot1: its thread ends; the total keeps what it counted
    (last,) = query(c, ["task_clock"], True)
    assert c.command("object-del", {"id": "iot1"}) == {}
    (after,) = query(c, ["task_clock"], True)
    assert iot[0]["thread-id"] not in inherited(after)
    assert after["value"] >= last["value"]
    assert_each_tid_once(after)
    assert_sum_is_total(after)
    assert perf_fds(hpid) == fds


# ---- cost with many vCPUs (measured, not asserted) ----------------------------

@pytest.fixture(scope="module")
def big_vm(tmp_path_factory):
    d, _ = harness.short_dir(tmp_path_factory.mktemp("perfbig", numbered=True))
    env = None
    smp = 32 if harness.kvm_usable() else 4
    try:
        env = harness.make_env(d, smp=smp, extra_args=GUEST_NAME)
        yield env, smp
    finally:
        harness.destroy_env(env)
        shutil.rmtree(d, ignore_errors=True)


def process_cpu_ns(pid):
    """CPU time of every thread of ``pid`` (schedstat, ns)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            total += sched_runtime_ns(pid, int(tid))
        except FileNotFoundError:
            pass
    return total


def measure_queries(c, helper_pid, per_thread, n=50):
    """Median round trip, the helper's CPU time per query, reply size."""
    args = {"per-thread": True} if per_thread else None
    c.cmd("query-perf-events", args)  # warm-up (labels are asked of QEMU once)
    times, size = [], 0
    cpu0 = process_cpu_ns(helper_pid)
    for _ in range(n):
        t0 = time.perf_counter()
        raw = c.cmd_raw("query-perf-events", args)
        times.append(time.perf_counter() - t0)
        size = len(raw)
    cpu = (process_cpu_ns(helper_pid) - cpu0) / n
    return statistics.median(times), cpu / 1e9, size


def test_query_cost_many_vcpus(pvm, big_vm, record_property):
    """Six software events on; per query-perf-events with and without
    per-thread: the median round trip (noisy on a busy machine) and the
    helper's own CPU time (schedstat, robust to load), on the module's
    small VM and on a 32-vCPU one (4 under TCG).  Printed for the issue,
    not asserted (beyond "it answers")."""
    rows = []
    for env in (pvm, big_vm[0]):
        c = env.client()
        label = f"{len(c.command('query-cpus-fast'))} vCPUs"
        hpid = env.helper.proc.pid
        try:
            set_ok(c, [(n, True) for n in SOFTWARE_EVENTS])
            n_threads = len(query_one(c, "task_clock", True)["threads"])
            plain = measure_queries(c, hpid, False)
            per = measure_queries(c, hpid, True)
            rows.append((label, n_threads, plain, per))
        finally:
            set_ok(c, [(n, False) for n in SOFTWARE_EVENTS])
            env.close_clients()
    lines = ["", "query-perf-events, 6 software events, 50 queries each "
             "(round trip median / helper CPU per query / reply size):"]
    for label, n_threads, (rt, cpu, size), (prt, pcpu, psize) in rows:
        lines.append(f"  {label:>9} ({n_threads:3d} threads): plain {rt * 1e3:6.3f} ms / "
                     f"{cpu * 1e3:6.3f} ms / {size:6d} B   per-thread {prt * 1e3:6.3f} ms / "
                     f"{pcpu * 1e3:6.3f} ms / {psize:6d} B")
        key = label.replace(" ", "_")
        record_property(f"query_rtt_ms_{key}", round(rt * 1e3, 3))
        record_property(f"query_helper_cpu_ms_{key}", round(cpu * 1e3, 3))
        record_property(f"query_per_thread_rtt_ms_{key}", round(prt * 1e3, 3))
        record_property(f"query_per_thread_helper_cpu_ms_{key}", round(pcpu * 1e3, 3))
    (_, t1, (_, c1, _), (_, pc1, _)), (_, tn, (_, cn, _), (_, pcn, _)) = rows
    lines.append(f"  helper CPU per extra thread: plain {(cn - c1) / (tn - t1) * 1e6:.1f} us, "
                 f"per-thread {(pcn - pc1) / (tn - t1) * 1e6:.1f} us")
    print("\n".join(lines))
    assert tn > t1
