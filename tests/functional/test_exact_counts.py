"""Exact totals, and answers that never wait on QEMU (issue 10).

A total is what one counter following the whole QEMU process since the
event was enabled would read.  The reference is the kernel's own accounting
of the process: utime + stime in /proc/PID/stat, which includes threads that
have exited.  Each test enables task_clock, takes a query, makes QEMU create
(and often end) threads the way it does in real life, takes a second query,
and compares the growth of the total with the growth of the process's CPU
time: not less than it by more than 1 % plus two clock ticks (utime and
stime in /proc/PID/stat are each whole ticks), the way a missed thread
shows; and not more than it by as much, except for what the kernel itself
accounts differently while threads copy data (see Interval.check).
Per-thread entries must add up to the total in the same reply.

Cases: nothing happening; a spinning vCPU; detached dump-guest-memory;
migration to exec:cat; disk I/O through thread-pool workers (aio=threads,
HMP qemu-io); vCPU hotplug; object-add / object-del of an iothread.

Then: with QEMU SIGSTOPped, a per-thread query after a change of the thread
set and a plain query pipelined behind it are both answered; and under
prlimit --nofile=1024:HARD, nine software events enable on a 128-vCPU VM.

The ratios (perf / process time) are printed; run with -s to read them.
Needs the real helper: skipped in QPH_SELFTEST_DIRECT mode.
"""

import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


# The harness (VM, Helper, make_env) and helpers of the perf tests, reused.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_perf_events as perf_tests  # noqa: E402

harness = perf_tests.harness
qmp = harness.qmp

pytestmark = pytest.mark.skipif(
    harness.SELFTEST, reason="query-perf-events is the helper's own command")

TICK_NS = 1e9 / os.sysconf("SC_CLK_TCK")
GUEST_NAME = ["-name", "guest=t,debug-threads=on"]
NINE_SOFTWARE = ["task_clock", "cpu_clock", "page_faults", "context_switches",
                 "cpu_migrations", "page_faults_min", "page_faults_maj",
                 "alignment_faults", "emulation_faults"]
RATIOS = []


def task_clock(c, per_thread=True):
    args = {"names": ["task_clock"]}
    if per_thread:
        args["per-thread"] = True
    (info,) = c.command("query-perf-events", args)
    assert info["enabled"], info
    return info


def assert_sum_is_total(info):
    s = sum(t["value"] for t in info["threads"])
    assert info["value"] == s + info["exited-value"], info
    tids = [t["thread-id"] for t in info["threads"]]
    assert len(tids) == len(set(tids)), tids


class Interval:
    """task_clock and the process's CPU time, from one query to the next."""

    def __init__(self, c, pid):
        self.c, self.pid = c, pid

    # Each end is a query bracketed by two readings of the process's CPU
    # time: the query's own round trip (milliseconds on a loaded machine,
    # while a spinning vCPU keeps running) is then a known interval, not
    # an error in the count.
    # Work that is ending (a thread exiting) settles before each end.
    SETTLE = 0.1

    def _query(self):
        before = harness.process_sched_ns(self.pid)
        info = task_clock(self.c)
        return before, info, harness.process_sched_ns(self.pid)

    def __enter__(self):
        time.sleep(self.SETTLE)
        self.steal0 = harness.machine_steal_ns()
        self.cpu0a, info, self.cpu0b = self._query()
        self.v0 = info["value"]
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            time.sleep(self.SETTLE)
            self.cpu1a, self.info, self.cpu1b = self._query()
            self.steal1 = harness.machine_steal_ns()

    def check(self, case, min_cpu_ns=0, io=False):
        perf = self.info["value"] - self.v0
        # What the process ran between the two counter readings lies in
        # [least, most]: from after the first query to before the second,
        # and from before the first to after the second.
        least = self.cpu1a - self.cpu0b
        most = self.cpu1b - self.cpu0a
        proc = (least + most) / 2
        ratio = perf / proc if proc else float("nan")
        RATIOS.append((case, perf, proc, ratio))
        print(f"\n{case}: task_clock {perf / 1e6:.1f} ms, process CPU "
              f"{least / 1e6:.1f}..{most / 1e6:.1f} ms, ratio {ratio:.4f}; "
              f"machine steal {(self.steal1 - self.steal0) / 1e6:.0f} ms")
        assert_sum_is_total(self.info)
        assert proc >= min_cpu_ns, f"{case}: the case did too little ({proc / 1e6:.1f} ms)"
        # perf's clock and the scheduler's differ by a little: 1 % plus
        # 2 ms, and two ticks more, the allowance of the tick-based
        # reference this replaced (the migration case, ~70 ms, has read
        # up to 4 ms under the exact reference; not explained yet).
        # task_clock also counts time the hypervisor stole, which
        # sum_exec_runtime leaves out: the machine's steal (tick-based) is
        # allowed above.
        slack = 0.01 * proc + 2 * TICK_NS + 2e6
        assert perf >= least - slack, (
            f"{case}: task_clock grew {perf / 1e6:.1f} ms, the process used "
            f"at least {least / 1e6:.1f} ms (ratio {ratio:.3f}): threads "
            f"were missed")
        slack += self.steal1 - self.steal0 + 2 * TICK_NS
        # task_clock runs on perf's clock while a thread is on a CPU, the
        # scheduler's runtime (hence utime + stime) on rq->clock_task, which
        # leaves out interrupt and steal time.  For a thread copying to and
        # from the page cache the two differ: one plain task_clock counter
        # on one thread doing six 16 MiB pwrite+pread read 10-20 % more
        # than its schedstat on this (nested) host.  Cases that move data
        # get that much room above; a thread counted twice would still
        # show (the main loop or a worker is most of the time).
        room = 0.25 if io else 0
        assert perf <= most + slack + room * most, (
            f"{case}: task_clock grew {perf / 1e6:.1f} ms, the process used "
            f"at most {most / 1e6:.1f} ms (ratio {ratio:.3f}): counted twice?")


def make_vm_env(d, smp="1,maxcpus=4", mem="256", extra=()):
    img = Path(d) / "disk.img"
    with open(img, "wb") as f:
        f.truncate(64 << 20)
    args = ["-m", mem, "-drive", f"file={img},format=raw,if=none,id=d0,aio=threads"]
    return harness.make_env(d, smp=smp, extra_args=GUEST_NAME + args + list(extra))


@pytest.fixture(scope="module")
def xvm(tmp_path_factory):
    d, _ = harness.short_dir(tmp_path_factory.mktemp("exact", numbered=True))
    env = None
    try:
        env = make_vm_env(d)
        yield env
    finally:
        harness.destroy_env(env)
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def xenv(xvm):
    yield xvm
    xvm.close_clients()
    if not xvm.helper.alive():
        pytest.fail(f"the helper died:\n{xvm.helper.log()}")


@pytest.fixture
def counting(xenv):
    """A client with task_clock enabled; disabled again afterwards."""
    c = xenv.client()
    assert c.cmd("set-perf-events", {"events": [
        {"name": "task_clock", "enabled": True}]}) == {"return": {}}
    yield c
    c.cmd("set-perf-events", {"events": [{"name": "task_clock", "enabled": False}]})


def hmp(c, line):
    return c.command("human-monitor-command", {"command-line": line})


def wait_status(c, command, key, done, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = c.command(command)
        if r.get(key) in done:
            return r
        time.sleep(0.05)
    raise AssertionError(f"{command} did not finish: {r}")


def test_spinning_vcpu(short_tmp):
    """vCPU 0 spins from the reset vector (`jmp $` at 0xfff0)."""
    bios = Path(short_tmp) / "spin.bin"
    img = bytearray(0x10000)
    img[0xfff0:0xfff2] = b"\xeb\xfe"
    bios.write_bytes(bytes(img))
    env = harness.make_env(short_tmp, extra_args=["-bios", str(bios)] + GUEST_NAME)
    try:
        c = env.client()
        assert c.cmd("set-perf-events", {"events": [
            {"name": "task_clock", "enabled": True}]}) == {"return": {}}
        time.sleep(0.3)
        with Interval(c, env.vm.pid) as iv:
            time.sleep(1.5)
        iv.check("spinning vCPU", min_cpu_ns=0.3e9)
    finally:
        harness.destroy_env(env)


def test_detached_dump_guest_memory(xenv, counting):
    """Three detached dumps of 256 MiB: each runs in a thread of its own
    that starts and ends between the two queries."""
    d = xenv.direct()
    with Interval(counting, xenv.vm.pid) as iv:
        for _ in range(3):
            assert d.command("dump-guest-memory", {
                "paging": False, "protocol": "file:/dev/null", "detach": True}) == {}
            wait_status(d, "query-dump", "status", ("completed", "failed"))
    iv.check("detached dump-guest-memory", io=True)


def test_aio_threads_disk_io(xenv, counting):
    """HMP qemu-io on an aio=threads drive: the I/O runs in thread-pool
    workers spawned on demand."""
    d = xenv.direct()
    with Interval(counting, xenv.vm.pid) as iv:
        for i in range(1, 7):
            hmp(d, f'qemu-io d0 "write -P {i} 0 16M"')
            hmp(d, 'qemu-io d0 "read 0 16M"')
    # qemu-io prints to QEMU's stdout; the image says the writes happened.
    with open(xenv.vm.dir / "disk.img", "rb") as f:
        f.seek((16 << 20) - 1)
        assert f.read(1) == b"\x06"
    iv.check("aio=threads disk I/O", io=True)


def test_vcpu_hotplug(xenv, counting):
    d = xenv.direct()
    slots = [s for s in d.command("query-hotpluggable-cpus") if "qom-path" not in s]
    slots.sort(key=lambda s: sorted(s["props"].items()))
    with Interval(counting, xenv.vm.pid) as iv:
        # On QEMU's own monitor: the helper sees no reply that says so.
        dev = {"driver": slots[0]["type"], "id": "hcpu1", **slots[0]["props"]}
        assert d.command("device_add", dev) == {}
        for _ in range(150):
            hmp(d, "info registers -a")
    iv.check("vCPU hotplug")


def test_iothread_add_del(xenv, counting):
    with Interval(counting, xenv.vm.pid) as iv:
        for i in range(3):
            assert counting.command("object-add", {"qom-type": "iothread",
                                                   "id": f"xiot{i}"}) == {}
            assert counting.command("object-del", {"id": f"xiot{i}"}) == {}
    iv.check("object-add/del iothread")


def test_nothing_happening(xenv, counting):
    with Interval(counting, xenv.vm.pid) as iv:
        time.sleep(1.0)
    iv.check("nothing happening")


def test_migration_to_exec(xenv, counting):
    """Last on this VM: it ends in the postmigrate state."""
    d = xenv.direct()
    with Interval(counting, xenv.vm.pid) as iv:
        assert d.command("migrate", {"uri": "exec:cat >/dev/null"}) == {}
        wait_status(d, "query-migrate", "status", ("completed", "failed"))
    iv.check("migration to exec:cat", io=True)


def test_queries_never_wait_on_qemu(short_tmp):
    """QEMU stopped by SIGSTOP right after its thread set changed: a
    per-thread query and a plain one pipelined behind it are answered."""
    env = harness.make_env(short_tmp, extra_args=GUEST_NAME)
    stopped = False
    try:
        c = env.client()
        assert c.cmd("set-perf-events", {"events": [
            {"name": "task_clock", "enabled": True}]}) == {"return": {}}
        task_clock(c)
        assert c.command("object-add", {"qom-type": "iothread", "id": "siot"}) == {}
        os.kill(env.vm.pid, signal.SIGSTOP)
        stopped = True
        c.send_raw(qmp.encode({"execute": "query-perf-events", "id": 1,
                               "arguments": {"per-thread": True}}) +
                   qmp.encode({"execute": "query-perf-events", "id": 2}))
        replies = [c.read_reply(timeout=10) for _ in range(2)]
        assert [r.get("id") for r in replies] == [1, 2], replies
        (tc,) = [e for e in replies[0]["return"] if e["name"] == "task_clock"]
        assert_sum_is_total(tc)
        kinds = {t["kind"] for t in tc["threads"]}
        assert kinds <= {"main-loop", "vcpu", "iothread", "other", "unknown"}
        # the main loop is known without QEMU
        (main,) = [t for t in tc["threads"] if t["thread-id"] == env.vm.pid]
        assert main["kind"] == "main-loop"
        # the iothread created after enabling: listed, counted by its creator
        iot = [t for t in os.listdir(f"/proc/{env.vm.pid}/task")
               if Path(f"/proc/{env.vm.pid}/task/{t}/comm").read_text().strip() == "IO siot"]
        assert len(iot) == 1
        assert {"thread-id": int(iot[0])} in tc["inherited-threads"], tc
        assert "return" in replies[1] and replies[1]["return"], replies[1]
    finally:
        if stopped:
            os.kill(env.vm.pid, signal.SIGCONT)
        harness.destroy_env(env)


def test_descriptor_budget_128_vcpus(short_tmp):
    """Soft RLIMIT_NOFILE 1024, hard as the system allows: nine software
    events on the threads of a 128-vCPU VM (about 1,200 descriptors)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 4096:
        pytest.skip(f"hard RLIMIT_NOFILE {hard} is too low for the test")
    d = Path(short_tmp)
    vm = harness.VM(d, smp=128, extra_args=["-accel", "tcg,thread=multi"] + GUEST_NAME)
    # qemu_base_args chose an accelerator; TCG keeps 128 vCPUs cheap here.
    i = vm.args.index("-accel")
    del vm.args[i:i + 2]
    vm.start()
    helper = harness.Helper(d, vm.proxied_path)
    helper.args = ["prlimit", f"--nofile=1024:{hard}", "--"] + helper.args
    helpers = [helper]
    try:
        deadline = time.monotonic() + 30
        while len(os.listdir(f"/proc/{vm.pid}/task")) < 129:
            assert time.monotonic() < deadline, "the vCPU threads did not start"
            time.sleep(0.1)
        helper.start()
        c = qmp.QMPClient(helper.listen)
        c.negotiate()
        r = c.cmd("set-perf-events", {"events": [
            {"name": n, "enabled": True} for n in NINE_SOFTWARE]}, timeout=60)
        assert r == {"return": {}}, r
        info = task_clock(c)
        assert len(info["threads"]) >= 129
        c.close()

        # A hard limit of 1024 too: refused before anything is opened, and
        # the error says how many descriptors it needs and may have.
        short = harness.Helper(d, vm.direct_path, listen=str(d / "short.sock"))
        short.log_path = d / "short.log"
        short.args = ["prlimit", "--nofile=1024:1024", "--"] + short.args
        helpers.append(short)
        short.start()
        c = qmp.QMPClient(short.listen)
        c.negotiate()
        r = c.cmd("set-perf-events", {"events": [
            {"name": n, "enabled": True} for n in NINE_SOFTWARE]}, timeout=60)
        desc = r["error"]["desc"]
        assert re.search(r"^Cannot enable 9 perf event\(s\) on \d+ threads: that needs "
                         r"\d+ file descriptors and the helper can open only \d+ more "
                         r"\(RLIMIT_NOFILE is 1024, ", desc), desc
        assert perf_tests.perf_fds(short.proc.pid) == 0
        c.close()
    finally:
        for h in helpers:
            h.kill()
        vm.kill()


def test_zz_print_ratios():
    """Not a check: the perf / process-time ratios of this run, for the issue."""
    for case, perf, proc, ratio in RATIOS:
        print(f"RATIO {case}: {perf / 1e6:.1f} / {proc / 1e6:.1f} ms = {ratio:.4f}")
