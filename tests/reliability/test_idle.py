"""An idle helper costs the host nothing it could give back (issue 13): it
does not wake while nobody asks anything, counters enabled or not, and the
memory a burst of work took (a large answer, many clients) goes back.

Wakeups are counted by the kernel: the voluntary and non-voluntary context
switches of every thread of the helper (/proc/PID/task/*/status), which do
not move while all of them sleep in poll().  Memory is USS (private clean +
dirty from /proc/PID/smaps_rollup), compared with the same helper idle.
Figures are printed (pytest -s); docs/performance.md has the benchmark's.
"""

import os
import time

import pytest

from rel import SANITIZED, WRAPPER, qmp, rig, short_tmp  # noqa: F401 (fixtures)
from test_isolation import read_line_big, uss_kib

# The benchmark's six software events (tests/bench/bench.py).
EVENTS = ["task_clock", "cpu_clock", "context_switches", "cpu_migrations",
          "page_faults", "page_faults_min"]
# About 3 MB from QEMU: past the size after which the helper trims, and,
# read late, past what the helper queues for a client before it watches
# that the client keeps reading (QPH_CLIENT_MAX_QUEUED, 1 MiB).
XP_3MB = {"command-line": "xp /400000xb 0"}
# Idle starts once the last answer is in and the helper had this long to
# finish what it does after a request; a wakeup later than that is one.
SETTLE_S = 0.5
IDLE_S = 3.0


def context_switches(pid):
    """Voluntary + non-voluntary context switches of all threads of @pid."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches",
                                        "nonvoluntary_ctxt_switches")):
                        total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def idle_wakeups(pid):
    time.sleep(SETTLE_S)
    before = context_switches(pid)
    time.sleep(IDLE_S)
    return context_switches(pid) - before


def busy(c):
    """Requests of every kind that leave work behind: a forwarded answer
    past the trim size, read only after it has filled the socket and more
    than 1 MiB waits in the helper's queue; the helper's own per-thread
    answer; a plain one."""
    c.send_raw(qmp.request("human-monitor-command", XP_3MB, id="xp"))
    time.sleep(0.5)
    assert len(read_line_big(c)) > 2_000_000
    assert c.command("query-perf-events", {"per-thread": True}) is not None
    assert c.command("query-status")


@pytest.mark.skipif(bool(WRAPPER), reason="a wrapper (valgrind) has threads of its own")
def test_idle_helper_never_wakes(rig):
    """Three clients connected, the VM paused (no events from QEMU): after
    work that used to leave a timer behind (the one-second trim timer, the
    stall check of a client whose queue had passed 1 MiB), the helper does
    not wake over 3 s, with no event enabled and then with six enabled on
    every thread of QEMU.  Before, the timers woke it after each burst."""
    pid = rig.helper.pid
    rig.direct().command("stop")
    clients = [rig.client() for _ in range(3)]
    c = clients[0]
    busy(c)
    without = idle_wakeups(pid)
    r = c.cmd("set-perf-events",
              {"events": [{"name": e, "enabled": True} for e in EVENTS]})
    if "error" in r:
        pytest.skip(f"perf events unavailable here: {r['error']['desc']}")
    busy(c)
    with_events = idle_wakeups(pid)
    print(f"\nhelper context switches over {IDLE_S} s idle, {SETTLE_S} s after the "
          f"last answer: {without} without events, {with_events} with "
          f"{len(EVENTS)} enabled")
    assert (without, with_events) == (0, 0)
    assert c.command("query-status")  # still serving


@pytest.mark.skipif(SANITIZED, reason="sanitizers keep freed memory in quarantine")
def test_memory_returns_after_clients_close(rig):
    """100 negotiated clients connect and close: the helper's USS goes back
    to within 2 x its idle USS (their buffers were freed, and the heap
    trimmed, before the helper next slept).  Before, it kept all they took
    (0.59 -> 1.28 MiB, 2.2 x)."""
    pid = rig.helper.pid
    assert rig.client().command("query-status")
    time.sleep(SETTLE_S)
    idle = uss_kib(pid)
    idle_fds = len(os.listdir(f"/proc/{pid}/fd"))
    many = [rig.client() for _ in range(100)]
    busy_uss = uss_kib(pid)
    for c in many:
        c.close()
    rig.clients = rig.clients[:1]
    # Closed clients are freed from an idle turn of the loop: wait for the
    # helper to have seen every hang-up (a bound, not a latency).
    deadline = time.monotonic() + 10
    while len(os.listdir(f"/proc/{pid}/fd")) > idle_fds and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(SETTLE_S)
    after = uss_kib(pid)
    print(f"\nhelper USS idle {idle} KiB, 100 clients {busy_uss} KiB, after they "
          f"closed {after} KiB ({after / idle:.2f} x idle)")
    assert after <= 2 * idle, (idle, busy_uss, after)
