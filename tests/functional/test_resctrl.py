"""cmt, mbmt and mbml end to end: QMP -> helper -> resctrl (issue 4).

Each test starts tests/resctrl-sim (a FUSE double of /sys/fs/resctrl, three
L3 domains), a real QEMU with two vCPUs, and the helper in attach mode with
--resctrl-root pointing at the sim.  The tests speak QMP to the helper, set
the counters the sim returns over its control socket, and look at the sim's
tree (mon_groups/, tasks) to see what the helper did.  A failing test prints
its transcript: "->"/"<-" for QMP, "sim>"/"sim<" for the control socket,
"sim$" for what the test itself did in the tree.
"""

import fcntl
import os
import signal
import subprocess
import time

import pytest

import conftest
import qmp
from resctrl_fixtures import (EVENT_FILES, GROUP_PREFIX, SIM_MODES, Rig, fuse_problem,
                              query, set_events, threads)

ALL = ("cmt", "mbmt", "mbml")


def require_helper():
    if conftest.SELFTEST:
        pytest.skip("resctrl is served by the helper itself; nothing to compare in "
                    "QPH_SELFTEST_DIRECT mode")
    conftest.require_qemu()
    conftest.require_helper_binary()


def require_sim():
    require_helper()
    problem = fuse_problem()
    if problem:
        pytest.skip(problem)


@pytest.fixture
def make_rig_on(short_tmp):
    """Rigs on a simulator started with the given sim_args."""
    rigs = []

    def make(sim=True, before_helper=None, **kw):
        if sim:
            require_sim()
        else:
            require_helper()
        r = Rig(short_tmp, sim=sim, **kw)
        rigs.append(r)
        return r.start(before_helper)

    yield make
    for r in rigs:
        r.stop()


@pytest.fixture(params=list(SIM_MODES))
def make_rig(request, make_rig_on):
    """Every test that takes a rig runs on an old kernel and in mbm_event
    mode: the helper must behave the same where counters are assigned."""
    def make(**kw):
        kw.setdefault("sim_args", SIM_MODES[request.param])
        return make_rig_on(**kw)

    return make


@pytest.fixture
def rig(make_rig):
    return make_rig()


def wait_exit(proc, timeout=10.0):
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{proc.args[0]} did not exit within {timeout}s")


def set_domains(sim, group, event, values):
    for d, v in enumerate(values):
        sim.ok(f"set {group} {d} {EVENT_FILES[event]} {v}")


def assert_refused(c, reply, *phrases):
    """A GenericError whose text has every phrase; and nothing enabled."""
    assert "error" in reply, f"expected an error, got {reply}"
    assert reply["error"]["class"] == "GenericError", reply
    for p in phrases:
        assert p in reply["error"]["desc"], f"{p!r} not in {reply['error']['desc']!r}"
    after = query(c, "task_clock", *ALL)
    assert {n: i["enabled"] for n, i in after.items()} == \
        {"task_clock": False, "cmt": False, "mbmt": False, "mbml": False}, after


# ---- enable, read --------------------------------------------------------


def test_enable_moves_every_thread_and_sums_domains(rig):
    sim, c = rig.sim, rig.client()
    assert sim.mon_groups() == []

    assert set_events(c, cmt=True, mbmt=True, mbml=True) == {"return": {}}

    assert sim.mon_groups() == [f"{GROUP_PREFIX}{rig.pid}"]
    tids = threads(rig.pid)
    assert len(tids) >= 3, "main loop and two vCPUs at least"
    assert sim.tasks(rig.group) == tids
    assert not (sim.tasks("/") & tids) - sim.tasks(rig.group)

    values = {"cmt": [1 << 20, 3 << 20, 5 << 20],
              "mbmt": [1000, 2 ** 62, 7],
              "mbml": [0, 123456789, 42]}
    for ev, vals in values.items():
        set_domains(sim, rig.group, ev, vals)

    got = query(c, *ALL)
    for ev, vals in values.items():
        assert got[ev]["enabled"] is True
        assert got[ev]["value"] == sum(vals), ev
        assert got[ev]["unit"] == "bytes"
        assert got[ev]["source"] == "resctrl"

    got = query(c, *ALL, per_thread=True)
    for ev, vals in values.items():
        # In mbm_event mode an MBM event's domains say a counter is there.
        extra = {"assigned": True} if sim.mbm_event and ev != "cmt" else {}
        assert got[ev]["value"] == sum(vals)
        assert got[ev]["domains"] == [{"domain": d, "value": v, "status": "ok", **extra}
                                      for d, v in enumerate(vals)], ev

    # A gauge goes down as well as up: the helper reads, it does not keep.
    set_domains(sim, rig.group, "cmt", [0, 4096, 0])
    assert query(c, "cmt")["cmt"]["value"] == 4096


@pytest.mark.parametrize("written,status", [
    ("Unavailable", "unavailable"), ("Error", "error"), ("Unassigned", "unassigned"),
    # A read that fails with the kernel's internal errno means the same states.
    ("errno:EINVAL", "unavailable"), ("errno:EIO", "error"), ("errno:ENOENT", "unassigned"),
])
def test_domain_state_reported_never_fails_query(rig, written, status):
    sim, c = rig.sim, rig.client()
    assert set_events(c, cmt=True, mbml=True) == {"return": {}}
    set_domains(sim, rig.group, "cmt", [1000, 20000, 300000])
    set_domains(sim, rig.group, "mbml", [1, 2, 4])

    sim.ok(f"set {rig.group} 1 llc_occupancy {written}")
    got = query(c, "cmt", "mbml", per_thread=True)
    assert got["cmt"]["value"] == 1000 + 300000, "only the OK domains count"
    assert got["cmt"]["domains"] == [
        {"domain": 0, "value": 1000, "status": "ok"},
        {"domain": 1, "status": status},
        {"domain": 2, "value": 300000, "status": "ok"}]
    assert got["mbml"]["value"] == 7, "another event's domain 1 is unaffected"

    # Every domain bad: still an answer, enabled, but no total to give.
    sim.ok(f"set {rig.group} * llc_occupancy {written}")
    got = query(c, "cmt", per_thread=True)["cmt"]
    assert got["enabled"] is True
    assert "value" not in got, got
    assert got["domains"] == [{"domain": d, "status": status} for d in range(3)]


# ---- threads that come later ---------------------------------------------


def iothread_tid(direct, id):
    for t in direct.command("query-iothreads"):
        if t["id"] == id:
            return t["thread-id"]
    raise AssertionError(f"no iothread {id}")


def test_thread_created_later_joins_the_group(rig):
    sim, c, direct = rig.sim, rig.client(), rig.direct()
    assert set_events(c, cmt=True) == {"return": {}}
    before = sim.tasks(rig.group)

    # Through the helper: it moves the new thread right after object-add.
    c.command("object-add", {"qom-type": "iothread", "id": "io1"})
    io1 = iothread_tid(direct, "io1")
    assert io1 not in before
    assert io1 in sim.tasks(rig.group)

    # Behind the helper's back (QEMU's other monitor): the sim, unlike the
    # kernel, leaves a new thread in the root group, so the next query is
    # what moves it.
    direct.command("object-add", {"qom-type": "iothread", "id": "io2"})
    io2 = iothread_tid(direct, "io2")
    assert io2 not in sim.tasks(rig.group)
    assert query(c, "cmt")["cmt"]["enabled"] is True
    assert io2 in sim.tasks(rig.group)
    assert sim.tasks(rig.group) == threads(rig.pid)


# ---- disabling -------------------------------------------------------------


def test_disabling_one_keeps_group_last_removes_it(rig):
    sim, c = rig.sim, rig.client()
    assert set_events(c, cmt=True, mbmt=True, mbml=True) == {"return": {}}
    tids = sim.tasks(rig.group)
    set_domains(sim, rig.group, "mbmt", [5, 6, 7])

    assert set_events(c, cmt=False) == {"return": {}}
    assert sim.mon_groups() == [f"{GROUP_PREFIX}{rig.pid}"]
    assert sim.tasks(rig.group) == tids
    got = query(c, *ALL)
    assert [got[e]["enabled"] for e in ALL] == [False, True, True]
    assert "value" not in got["cmt"]
    assert got["mbmt"]["value"] == 18, "the group (and its counts) survived"

    assert set_events(c, mbmt=False) == {"return": {}}
    assert sim.mon_groups() == [f"{GROUP_PREFIX}{rig.pid}"]

    assert set_events(c, mbml=False) == {"return": {}}
    assert sim.mon_groups() == []
    assert tids <= sim.tasks("/"), "rmdir sent the threads back to the root"
    got = query(c, *ALL)
    assert [got[e]["enabled"] for e in ALL] == [False, False, False]

    # And it can come back.
    assert set_events(c, mbml=True) == {"return": {}}
    assert sim.tasks(rig.group) == threads(rig.pid)


# ---- errors: say what happened, change nothing ---------------------------


def test_error_no_resctrl_mounted(make_rig, short_tmp):
    empty = short_tmp / "not-resctrl"
    empty.mkdir()
    rig = make_rig(sim=False, root=empty)
    c = rig.client()

    reply = set_events(c, task_clock=True, cmt=True)
    assert_refused(c, reply, f"No resctrl filesystem is mounted at {empty}",
                   "mount -t resctrl resctrl /sys/fs/resctrl")
    assert os.listdir(empty) == []
    # task_clock alone works: the refusal above was all-or-nothing, not perf.
    assert set_events(c, task_clock=True) == {"return": {}}


def test_error_no_l3_mon(rig):
    sim, c = rig.sim, rig.client()
    sim.ok("l3-mon off")
    reply = set_events(c, task_clock=True, mbmt=True)
    assert_refused(c, reply, "Unable to enable event 'mbmt'",
                   f"{sim.mount} has no monitoring support (no info/L3_MON)")
    sim.ok("l3-mon on")
    assert sim.mon_groups() == []
    assert set_events(c, task_clock=True, mbmt=True) == {"return": {}}


def test_error_feature_missing(rig):
    sim, c = rig.sim, rig.client()
    sim.ok("mon-features llc_occupancy,mbm_total_bytes")
    reply = set_events(c, task_clock=True, cmt=True, mbml=True)
    assert_refused(c, reply, "Event 'mbml' is not supported on this host",
                   f"'mbm_local_bytes' is not listed in {sim.mount}/info/L3_MON/mon_features")
    assert sim.mon_groups() == []
    # The supported ones still work on their own.
    assert set_events(c, cmt=True, mbmt=True) == {"return": {}}


@pytest.mark.parametrize("fault,strerror", [
    ("fail-next-mkdir EBUSY", "Device or resource busy"),   # RMIDs in limbo
    ("fail-next-mkdir ENOSPC", "No space left on device"),
    ("rmids 1", "No space left on device"),                 # the root holds the only one
])
def test_error_out_of_rmids(rig, fault, strerror):
    sim, c = rig.sim, rig.client()
    sim.ok(fault)
    reply = set_events(c, task_clock=True, cmt=True)
    assert_refused(c, reply, "Unable to enable event 'cmt'",
                   "out of monitoring IDs (RMIDs)", strerror,
                   'info/last_cmd_status: "Out of RMIDs"')
    assert sim.mon_groups() == []
    assert sim.tasks("/") >= threads(rig.pid), "no thread was moved"
    sim.ok("rmids 8")
    assert set_events(c, task_clock=True, cmt=True) == {"return": {}}
    assert sim.tasks(rig.group) == threads(rig.pid)


def test_error_permission_denied(rig):
    sim, c = rig.sim, rig.client()
    sim.ok("fail-next-mkdir EACCES")
    reply = set_events(c, task_clock=True, cmt=True)
    assert_refused(c, reply, "permission denied", "needs root")
    assert sim.mon_groups() == []


def test_error_in_perf_part_removes_the_new_group(rig):
    sim, c = rig.sim, rig.client()
    reply = set_events(c, cmt=True, no_such_event=True)
    assert_refused(c, reply, "no_such_event")
    assert sim.mon_groups() == [], "the group made for cmt was removed again"
    assert sim.tasks("/") >= threads(rig.pid)


def test_failed_request_keeps_what_was_enabled(rig):
    sim, c = rig.sim, rig.client()
    assert set_events(c, cmt=True, mbmt=True) == {"return": {}}
    tids = sim.tasks(rig.group)
    sim.ok("mon-features llc_occupancy,mbm_total_bytes")

    # Disabling everything is part of a request that fails: nothing happens.
    reply = set_events(c, cmt=False, mbmt=False, no_such_event=True)
    assert "error" in reply and "no_such_event" in reply["error"]["desc"], reply
    reply = set_events(c, cmt=False, mbmt=False, mbml=True)
    assert "error" in reply and "'mbm_local_bytes' is not listed" in reply["error"]["desc"]

    got = query(c, *ALL)
    assert [got[e]["enabled"] for e in ALL] == [True, True, False]
    assert sim.mon_groups() == [f"{GROUP_PREFIX}{rig.pid}"]
    assert sim.tasks(rig.group) == tids


# ---- someone else's group (libvirt's <cachetune><monitor>) ---------------


def plant_libvirt_monitor(rig, tids=None):
    rig.sim.mkdir("mon_groups/libvirt-mon")
    rig.sim.move("mon_groups/libvirt-mon", threads(rig.pid) if tids is None else tids)


def test_foreign_group_is_read_not_changed_not_removed(rig):
    sim, c = rig.sim, rig.client()
    plant_libvirt_monitor(rig)
    theirs = sim.tasks("mon_groups/libvirt-mon")
    assert theirs == threads(rig.pid)
    set_domains(sim, "mon_groups/libvirt-mon", "cmt", [100, 200, 300])

    assert set_events(c, cmt=True, mbmt=True) == {"return": {}}
    assert sim.mon_groups() == ["libvirt-mon"], "no group of the helper's"
    assert sim.tasks("mon_groups/libvirt-mon") == theirs
    assert query(c, "cmt")["cmt"]["value"] == 600

    assert set_events(c, cmt=False, mbmt=False) == {"return": {}}
    assert sim.mon_groups() == ["libvirt-mon"]
    assert sim.tasks("mon_groups/libvirt-mon") == theirs

    assert set_events(c, cmt=True) == {"return": {}}
    c.close()
    rig.helper.proc.send_signal(signal.SIGTERM)
    assert wait_exit(rig.helper.proc) == 0
    assert sim.mon_groups() == ["libvirt-mon"]
    assert sim.tasks("mon_groups/libvirt-mon") == theirs


def test_foreign_group_with_some_threads_is_refused(rig):
    sim, c = rig.sim, rig.client()
    vcpus = {t["thread-id"] for t in rig.direct().command("query-cpus-fast")}
    plant_libvirt_monitor(rig, vcpus)
    reply = set_events(c, task_clock=True, cmt=True)
    assert_refused(c, reply, "mon_groups/libvirt-mon", "does not take threads out of "
                   "another tool's group")
    assert sim.mon_groups() == ["libvirt-mon"]
    assert sim.tasks("mon_groups/libvirt-mon") == vcpus


def test_foreign_ctrl_mon_group_gets_the_helpers_group_inside(make_rig):
    # A CTRL_MON group (libvirt's <cachetune>) holding the VM and another
    # process: the helper's MON group goes under it, keeping the allocation.
    other = subprocess.Popen(["sleep", "60"])
    try:
        rig = make_rig()
        sim, c = rig.sim, rig.client()
        # (After the helper connected: the sim does not put threads QEMU
        # makes later in their creator's group, as the kernel would.)
        sim.mkdir("libvirt-ct")
        sim.move("libvirt-ct", threads(rig.pid) | {other.pid})
        assert set_events(c, mbmt=True) == {"return": {}}
        ours = f"libvirt-ct/mon_groups/{GROUP_PREFIX}{rig.pid}"
        assert sim.mon_groups("libvirt-ct") == [f"{GROUP_PREFIX}{rig.pid}"]
        assert sim.mon_groups() == []
        assert sim.tasks(ours) == threads(rig.pid)
        set_domains(sim, ours, "mbmt", [1, 10, 100])
        assert query(c, "mbmt")["mbmt"]["value"] == 111
        assert set_events(c, mbmt=False) == {"return": {}}
        assert sim.mon_groups("libvirt-ct") == []
        assert sim.tasks("libvirt-ct") == threads(rig.pid) | {other.pid}
    finally:
        conftest.kill_proc(other)


# ---- the flock libvirt takes ----------------------------------------------


def hold_root_lock(sim):
    fd = os.open(sim.mount, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    print(f"sim$ flock -x {sim.mount}   (another resctrl user, as libvirt would)")
    return fd


def test_changes_wait_for_the_resctrl_lock(rig):
    sim, c = rig.sim, rig.client()
    fd = hold_root_lock(sim)
    try:
        req = qmp.request("set-perf-events", {"events": [{"name": "cmt", "enabled": True}]})
        print(f"-> {req.decode()}")
        c.send_raw(req)
        time.sleep(0.5)
        assert sim.mon_groups() == [], "nothing changes while someone else holds the lock"
    finally:
        os.close(fd)
        print("sim$ (lock released)")
    reply = c.read_reply()
    print(f"<- {reply}")
    assert reply == {"return": {}}
    assert sim.mon_groups() == [f"{GROUP_PREFIX}{rig.pid}"]


def test_lock_held_too_long_is_an_error(rig):
    sim, c = rig.sim, rig.client()
    fd = hold_root_lock(sim)
    try:
        t0 = time.monotonic()
        reply = set_events(c, task_clock=True, cmt=True)
        waited = time.monotonic() - t0
    finally:
        os.close(fd)
    # It gives up after 5 s (QPH_RESCTRL_LOCK_TIMEOUT_MS), not before; the
    # upper bound only catches a hang.
    print(f"\nset-perf-events gave up after {waited:.2f} s")
    assert 4.5 < waited < 60, f"the helper waits about 5 s, not {waited:.1f} s"
    assert_refused(c, reply, "Timed out after 5000 ms waiting for the lock",
                   "another resctrl user")
    assert sim.mon_groups() == []


def test_query_does_not_wait_for_the_lock(rig):
    """Reads take no lock: with every thread in its group, a query answers at
    once while another resctrl user holds the root's flock."""
    sim, c = rig.sim, rig.client()
    assert set_events(c, cmt=True) == {"return": {}}
    set_domains(sim, rig.group, "cmt", [10, 20, 30])
    fd = hold_root_lock(sim)
    try:
        t0 = time.monotonic()
        got = query(c, "cmt")
        waited = time.monotonic() - t0
    finally:
        os.close(fd)
    assert got["cmt"]["value"] == 60
    # A query that waited for the lock would log that it could not take it;
    # the time bound only catches a hang (latency is the benchmark's).
    print(f"\nquery-perf-events with the lock held: {waited * 1000:.1f} ms")
    assert waited < 30, f"the query waited {waited:.1f} s for the lock"
    assert "Timed out" not in rig.helper.log()
    assert "Cannot lock the resctrl root" not in rig.helper.log()


# ---- the helper goes away --------------------------------------------------


def test_sigterm_removes_the_group(rig):
    sim, c = rig.sim, rig.client()
    assert set_events(c, cmt=True, mbml=True) == {"return": {}}
    assert sim.mon_groups() == [f"{GROUP_PREFIX}{rig.pid}"]
    rig.helper.proc.send_signal(signal.SIGTERM)
    assert wait_exit(rig.helper.proc) == 0
    assert sim.mon_groups() == []
    assert threads(rig.pid) <= sim.tasks("/")


def test_qemu_quit_removes_the_group(rig):
    sim, c = rig.sim, rig.client()
    assert set_events(c, mbmt=True) == {"return": {}}
    assert sim.mon_groups() == [f"{GROUP_PREFIX}{rig.pid}"]
    c.command("quit")
    wait_exit(rig.helper.proc)
    wait_exit(rig.vm.proc)
    assert sim.mon_groups() == []


def test_sigkill_leftover_then_next_helper_enables(rig):
    sim, c = rig.sim, rig.client()
    assert set_events(c, cmt=True) == {"return": {}}
    rig.helper.proc.send_signal(signal.SIGKILL)
    wait_exit(rig.helper.proc)
    assert sim.mon_groups() == [f"{GROUP_PREFIX}{rig.pid}"], "SIGKILL leaves it behind"

    rig.start_helper()
    c = rig.client()
    assert query(c, "cmt")["cmt"]["enabled"] is False
    assert set_events(c, cmt=True) == {"return": {}}
    assert sim.mon_groups() == [f"{GROUP_PREFIX}{rig.pid}"]
    assert sim.tasks(rig.group) == threads(rig.pid)
    set_domains(sim, rig.group, "cmt", [1, 2, 3])
    assert query(c, "cmt")["cmt"]["value"] == 6

    rig.helper.proc.send_signal(signal.SIGTERM)
    assert wait_exit(rig.helper.proc) == 0
    assert sim.mon_groups() == []


def test_sigkill_leftover_does_not_outlive_the_next_helper(rig):
    """The next helper for the same (living) QEMU removes the group at start
    even if no client enables anything: a new helper has nothing enabled, so
    the group would hold an RMID (and the threads) for no one, forever."""
    sim, c = rig.sim, rig.client()
    assert set_events(c, cmt=True) == {"return": {}}
    rig.helper.proc.send_signal(signal.SIGKILL)
    wait_exit(rig.helper.proc)

    rig.start_helper()
    assert sim.mon_groups() == [], "cleaned at start"
    assert threads(rig.pid) <= sim.tasks("/")
    c = rig.client()
    assert query(c, "cmt")["cmt"]["enabled"] is False
    c.close()
    rig.helper.proc.send_signal(signal.SIGTERM)
    assert wait_exit(rig.helper.proc) == 0
    assert sim.mon_groups() == []
    assert threads(rig.pid) <= sim.tasks("/")


def test_stale_groups_of_dead_qemus_cleaned_at_start(make_rig):
    dead = subprocess.Popen(["true"])
    dead.wait()

    def plant(r):
        r.sim.mkdir(f"mon_groups/{GROUP_PREFIX}{dead.pid}")
        r.sim.mkdir("libvirt-ct")
        r.sim.mkdir(f"libvirt-ct/mon_groups/{GROUP_PREFIX}{dead.pid}")
        r.sim.mkdir("mon_groups/libvirt-mon")
        r.sim.mkdir(f"mon_groups/{GROUP_PREFIX}1")   # pid 1 lives: not stale
    rig = make_rig(before_helper=plant)
    sim = rig.sim
    # No client yet: the start alone cleaned up.
    assert sim.mon_groups() == sorted([f"{GROUP_PREFIX}1", "libvirt-mon"])
    assert sim.mon_groups("libvirt-ct") == []


# ---- hosts run in 2026: counter assignment, SNC, energy (issue 16) --------
#
# On Linux 6.18+ in mbm_event mode (AMD ABMC's default) an MBM event counts
# only while a hardware counter is assigned to it, and an L3 domain has few.
# The sim's default group holds one counter per MBM event and domain, as
# the kernel's documentation shows, so 32 counters leave 30 free.

MBM_EVENT = ("--mbm-assign-mode", "mbm_event")


def all_domains(state, n=3):
    return {d: state for d in range(n)}


def test_cmt_alone_holds_no_mbm_counter(make_rig_on):
    rig = make_rig_on(sim_args=MBM_EVENT)
    sim, c = rig.sim, rig.client()
    before = sim.available()
    assert before == all_domains(30)

    assert set_events(c, cmt=True) == {"return": {}}
    # mkdir assigned two counters per domain; the helper gave both back.
    assert sim.assignments(rig.group) == {"mbm_total_bytes": all_domains("_"),
                                          "mbm_local_bytes": all_domains("_")}
    assert sim.available() == before
    set_domains(sim, rig.group, "cmt", [1, 2, 3])
    assert query(c, "cmt")["cmt"]["value"] == 6


def test_mbmt_assigns_and_releases_one_counter_per_domain(make_rig_on):
    rig = make_rig_on(sim_args=MBM_EVENT)
    sim, c = rig.sim, rig.client()
    before = sim.available()
    assert set_events(c, cmt=True) == {"return": {}}

    assert set_events(c, mbmt=True) == {"return": {}}
    assert sim.available() == {d: n - 1 for d, n in before.items()}
    assert sim.assignments(rig.group) == {"mbm_total_bytes": all_domains("e"),
                                          "mbm_local_bytes": all_domains("_")}
    set_domains(sim, rig.group, "mbmt", [10, 20, 30])
    got = query(c, "mbmt", per_thread=True)["mbmt"]
    assert got["value"] == 60
    assert [d["assigned"] for d in got["domains"]] == [True] * 3

    assert set_events(c, mbmt=False) == {"return": {}}
    assert sim.available() == before
    assert sim.assignments(rig.group)["mbm_total_bytes"] == all_domains("_")
    assert query(c, "cmt")["cmt"]["enabled"] is True

    assert set_events(c, cmt=False) == {"return": {}}
    assert sim.mon_groups() == []
    assert sim.available() == before


def test_no_counter_left_fails_all_or_nothing(make_rig_on):
    # Three counters per domain: the default group holds two, so one is
    # free; another group's mkdir takes it in every domain.
    rig = make_rig_on(sim_args=MBM_EVENT + ("--mbm-counters", "3"))
    sim, c = rig.sim, rig.client()
    assert set_events(c, cmt=True) == {"return": {}}
    ours = sim.assignments(rig.group)
    sim.mkdir("mon_groups/other")
    assert sim.available() == all_domains(0)

    reply = set_events(c, task_clock=True, mbmt=True)
    assert "error" in reply, reply
    assert reply["error"]["desc"].startswith(
        "Unable to enable event 'mbmt': No MBM counter is free in L3 domain 0: "
        "all 3 counters of the domain are assigned"), reply
    after = query(c, "task_clock", *ALL)
    assert {n: i["enabled"] for n, i in after.items()} == \
        {"task_clock": False, "cmt": True, "mbmt": False, "mbml": False}
    assert sim.assignments(rig.group) == ours
    assert sim.available() == all_domains(0)

    # Domain 0 has one again, domains 1 and 2 not: what domain 0 got is
    # given back, and the error names domain 1.
    sim.write("mon_groups/other", "mbm_L3_assignments", "mbm_total_bytes:0=_\n")
    reply = set_events(c, mbmt=True, mbml=False)
    assert "No MBM counter is free in L3 domain 1: all 3 counters" in \
        reply["error"]["desc"], reply
    assert sim.available() == {0: 1, 1: 0, 2: 0}
    assert sim.assignments(rig.group) == ours

    # Once the other group lets go, the same request works.
    sim.write("mon_groups/other", "mbm_L3_assignments", "mbm_total_bytes:*=_\n")
    assert set_events(c, mbmt=True) == {"return": {}}
    assert sim.assignments(rig.group)["mbm_total_bytes"] == all_domains("e")


def test_adopted_libvirt_group_is_never_written(make_rig_on):
    rig = make_rig_on(sim_args=MBM_EVENT)
    sim, c = rig.sim, rig.client()
    plant_libvirt_monitor(rig)
    # libvirt (or an administrator) gave up domain 1's local counter.
    sim.write("mon_groups/libvirt-mon", "mbm_L3_assignments", "mbm_local_bytes:1=_\n")
    theirs = sim.assignments("mon_groups/libvirt-mon")
    before = sim.available()

    assert set_events(c, cmt=True, mbmt=True, mbml=True) == {"return": {}}
    assert sim.mon_groups() == ["libvirt-mon"], "no group of the helper's"
    set_domains(sim, "mon_groups/libvirt-mon", "mbml", [5, 6, 7])
    got = query(c, "mbml", per_thread=True)["mbml"]
    assert got["value"] == 5 + 7
    assert got["domains"][1] == {"domain": 1, "status": "unassigned", "assigned": False}
    assert [d["assigned"] for d in got["domains"]] == [True, False, True]

    assert set_events(c, mbmt=False, mbml=False) == {"return": {}}
    assert sim.assignments("mon_groups/libvirt-mon") == theirs
    assert sim.available() == before


def test_snc_node_shares_add_up_to_the_l3_value(make_rig_on):
    rig = make_rig_on(sim_args=("--snc", "2"))
    sim, c = rig.sim, rig.client()
    assert set_events(c, mbmt=True) == {"return": {}}
    shares = [100, 250, 4000, 5, 0, 77]      # nodes 0..5, two per L3 domain
    for node, v in enumerate(shares):
        sim.ok(f"set-node {rig.group} {node} mbm_total_bytes {v}")

    got = query(c, "mbmt", per_thread=True)["mbmt"]
    # The reference: the sim's own mon_L3_XX files, each the domain's sum.
    l3 = [int((sim.path(rig.group) / "mon_data" / f"mon_L3_{d:02d}" /
               "mbm_total_bytes").read_text()) for d in range(3)]
    assert l3 == [350, 4005, 77]
    assert got["value"] == sum(l3), "the sums, not sums and shares"
    for d, dom in enumerate(got["domains"]):
        assert dom["value"] == l3[d]
        subs = dom["sub-domains"]
        assert [s["node"] for s in subs] == [2 * d, 2 * d + 1]
        assert sum(s["value"] for s in subs) == dom["value"]
        assert all(s["status"] == "ok" for s in subs)


def test_energy_reads_with_its_unit(make_rig_on):
    rig = make_rig_on(sim_args=("--pkg-domains", "2"))
    sim, c = rig.sim, rig.client()
    assert set_events(c, core_energy=True, activity=True) == {"return": {}}
    sim.ok(f"set {rig.group} 0 core_energy 12.500000")
    sim.ok(f"set {rig.group} 1 core_energy 0.000125")
    sim.ok(f"set {rig.group} * activity 3.25")

    got = query(c, "core_energy", "activity", per_thread=True)
    e = got["core_energy"]
    assert (e["unit"], e["source"], e["enabled"]) == ("nanojoules", "resctrl", True)
    assert e["value"] == 12_500_125_000
    assert e["domains"] == [{"domain": 0, "value": 12_500_000_000, "status": "ok"},
                            {"domain": 1, "value": 125_000, "status": "ok"}]
    assert got["activity"]["unit"] == "nanofarads"
    assert got["activity"]["value"] == 6_500_000_000
    # Enabled, they are listed after libvirt's names.
    names = [i["name"] for i in c.command("query-perf-events")]
    assert names[-2:] == ["core_energy", "activity"], names


def test_energy_refused_where_the_kernel_has_none(make_rig_on):
    rig = make_rig_on()
    c = rig.client()
    reply = set_events(c, cmt=True, core_energy=True)
    assert_refused(c, reply, "Unable to enable event 'core_energy'",
                   "no monitoring support (no info/PERF_PKG_MON)")
    assert rig.sim.mon_groups() == []
