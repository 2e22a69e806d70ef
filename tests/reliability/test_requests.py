"""The helper's own commands under hostile requests (issue 11, items 2, 3
and 6): every request's memory and time is bounded, and the main loop never
waits, so another client is answered while one abuses set-perf-events or
query-perf-events, or while another resctrl user holds the root's lock.

Bounds (helper/dispatch.h, docs/security.md "Requests the helper answers"):
  QPH_DISPATCH_MAX_ENTRIES (1024) entries in set-perf-events' @events and
  in query-perf-events' @names; a repeated name is answered once.

Memory is read from /proc: VmHWM (the peak RSS) and USS (Private_Clean +
Private_Dirty of smaps_rollup).  Latencies of the other client are printed
(pytest -s), never asserted: the bounds here only catch a hang.
"""

import fcntl
import os
import select
import time

import pytest

from rel import SANITIZED, proc_status, qmp, rig, short_tmp  # noqa: F401 (fixtures)
from test_input import Prober

MiB = 1 << 20
LIMIT = 1024


def hwm_kib(pid):
    return int(proc_status(pid)["VmHWM"].split()[0])


def uss_kib(pid):
    uss = 0
    with open(f"/proc/{pid}/smaps_rollup") as fh:
        for line in fh:
            k, _, v = line.partition(":")
            if k in ("Private_Clean", "Private_Dirty"):
                uss += int(v.split()[0])
    return uss


def memory(pid):
    return {"hwm": hwm_kib(pid), "uss": uss_kib(pid)}


def report(what, before, after, probe):
    worst = max(probe.latencies) if probe.latencies else float("nan")
    print(f"\n{what}: VmHWM {before['hwm'] // 1024} -> {after['hwm'] // 1024} MiB, "
          f"USS {before['uss'] // 1024} -> {after['uss'] // 1024} MiB; other client "
          f"{len(probe.latencies)} round trips, worst {worst * 1000:.1f} ms")


def test_query_repeated_name_is_bounded(rig):
    """query-perf-events with one name 50,000 times (a 700 KB request) used to
    build a 42 MB reply and raise the helper's peak by ~200 MB.  Now it is
    refused with an error naming the limit, the peak stays low and the
    memory of the request itself goes back (malloc_trim)."""
    pid = rig.helper.pid
    c = rig.client()
    c.command("query-perf-events")  # the helper's baseline includes one query
    before = memory(pid)
    with Prober(rig) as probe:
        reply = c.cmd("query-perf-events", {"names": ["instructions"] * 50000}, timeout=60)
        time.sleep(0.3)  # a few of the other client's round trips after it
    after = memory(pid)
    probe.check("query-perf-events with 50,000 names")
    report("50,000 repeated names", before, after, probe)
    assert reply.get("error", {}).get("desc") == (
        "Parameter 'names' has 50000 entries; the helper accepts at most 1024"), reply
    if not SANITIZED:
        assert after["hwm"] - before["hwm"] < 32 * 1024, "the peak rose by more than 32 MiB"
        assert after["uss"] - before["uss"] < 4 * 1024, "the request's memory did not go back"
    assert rig.helper.alive()


def test_query_names_answered_once(rig):
    """Within the limit, a repeated name is answered once, where first
    asked: the reply is bounded by the distinct names, not by the request."""
    c = rig.client()
    names = ["instructions", "cmt", "no_such_event"] * (LIMIT // 3)
    ret = c.command("query-perf-events", {"names": names, "per-thread": True})
    assert [i["name"] for i in ret] == ["instructions", "cmt", "no_such_event"]


def test_set_many_entries_is_bounded(rig):
    """set-perf-events with 40,000 distinct entries (about 1.2 MB) kept the
    main loop busy 5.6 s (quadratic duplicate checks).  Now: an error naming
    the limit, and the other client is answered meanwhile."""
    pid = rig.helper.pid
    c = rig.client()
    events = [{"name": f"no_such_event_{i}", "enabled": False} for i in range(40000)]
    before = memory(pid)
    with Prober(rig) as probe:
        t0 = time.monotonic()
        reply = c.cmd("set-perf-events", {"events": events}, timeout=60)
        took = time.monotonic() - t0
        time.sleep(0.3)
    after = memory(pid)
    probe.check("set-perf-events with 40,000 entries")
    report(f"40,000 set-perf-events entries (answered in {took * 1000:.0f} ms)",
           before, after, probe)
    assert reply.get("error", {}).get("desc") == (
        "Parameter 'events' has 40000 entries; the helper accepts at most 1024"), reply
    assert rig.helper.alive()


def test_set_last_entry_wins_at_the_limit(rig):
    """At the limit, duplicates still resolve as before: the last entry for a
    name wins, whatever came before it."""
    c = rig.client()
    events = []
    for i in range(LIMIT // 2 - 1):
        events.append({"name": "task_clock", "enabled": i % 2 == 0})
        events.append({"name": f"no_such_event_{i}", "enabled": False})
    events += [{"name": "page_faults", "enabled": True}, {"name": "task_clock", "enabled": False}]
    assert len(events) == LIMIT
    assert c.cmd("set-perf-events", {"events": events}) == {"return": {}}
    got = {i["name"]: i["enabled"] for i in
           c.command("query-perf-events", {"names": ["task_clock", "page_faults"]})}
    assert got == {"task_clock": False, "page_faults": True}


# ---- item 6: the resctrl lock never stalls the main loop ---------------------

@pytest.fixture
def resctrl_rig(short_tmp):
    import resctrl_fixtures as rf  # tests/functional, on the path via rel

    from rel import require
    require()
    problem = rf.fuse_problem()
    if problem:
        pytest.skip(problem)
    r = rf.Rig(short_tmp)
    try:
        r.start()
        yield r
    finally:
        r.stop()


def test_resctrl_lock_does_not_stall_others(resctrl_rig):
    """While another resctrl user holds the root's flock, set-perf-events cmt
    waits for it (retried from a timer) and another client's query-status is
    answered meanwhile; releasing the lock completes the first request.
    The helper used to retry with g_usleep inside the main loop: nothing was
    answered until the lock came free."""
    r = resctrl_rig
    a, b = r.client(), r.client()
    fd = os.open(r.sim.mount, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        a.send_raw(qmp.request("set-perf-events",
                               {"events": [{"name": "cmt", "enabled": True}]}, id="set"))
        time.sleep(0.2)  # the helper has tried the lock once
        t0 = time.monotonic()
        assert "return" in b.cmd("query-status", id="probe", timeout=30)
        waited = time.monotonic() - t0
        print(f"\nquery-status while the resctrl lock is held: {waited * 1000:.1f} ms")
        # The set is still waiting for the lock: its reply has not come.
        assert not a._buf and not select.select([a.sock], [], [], 0)[0], \
            "set-perf-events answered while the lock was held"
        assert r.sim.mon_groups() == []
    finally:
        os.close(fd)
    assert a.read_reply(timeout=30) == {"id": "set", "return": {}}
    assert r.sim.mon_groups() == [f"{rf_prefix()}{r.pid}"]


def rf_prefix():
    import resctrl_fixtures as rf
    return rf.GROUP_PREFIX


def test_resctrl_disable_does_not_wait_for_the_lock(resctrl_rig):
    """Disabling removes the helper's own group even while another resctrl
    user holds the lock (as before), but without waiting 5 s for it in the
    main loop first: the helper used to log "Timed out after 5000 ms" here,
    and every client waited that long."""
    r = resctrl_rig
    a, b = r.client(), r.client()
    assert a.cmd("set-perf-events", {"events": [{"name": "cmt", "enabled": True}]}) == \
        {"return": {}}
    fd = os.open(r.sim.mount, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        t0 = time.monotonic()
        assert a.cmd("set-perf-events", {"events": [{"name": "cmt", "enabled": False}]},
                     timeout=30) == {"return": {}}
        assert "return" in b.cmd("query-status", timeout=30)
        print(f"\ndisable and another client's query-status with the lock held: "
              f"{(time.monotonic() - t0) * 1000:.1f} ms")
        assert r.sim.mon_groups() == []
    finally:
        os.close(fd)
    assert "Timed out" not in r.helper.log(), r.helper.log()


def test_resctrl_new_thread_joins_once_the_lock_is_free(resctrl_rig):
    """A thread QEMU starts (object-add iothread) while another resctrl user
    holds the lock joins the helper's group from a timer once the lock is
    free, with no further command; meanwhile other clients are answered.
    The helper used to wait up to 5 s in the main loop, then give up until
    the next query."""
    r = resctrl_rig
    a, b = r.client(), r.client()
    assert a.cmd("set-perf-events", {"events": [{"name": "cmt", "enabled": True}]}) == \
        {"return": {}}
    group = r.group
    fd = os.open(r.sim.mount, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        a.send_raw(qmp.request("object-add", {"qom-type": "iothread", "id": "io1"}, id="add"))
        assert "return" in b.cmd("query-status", id="probe", timeout=30)
        assert a.read_reply(timeout=30) == {"id": "add", "return": {}}
        io1 = next(t["thread-id"] for t in b.command("query-iothreads") if t["id"] == "io1")
        assert io1 not in r.sim.tasks(group), "moved without the lock"
    finally:
        os.close(fd)
    deadline = time.monotonic() + 20
    while io1 not in r.sim.tasks(group) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert io1 in r.sim.tasks(group), "the new thread never joined the group"


def rig_with_nofile(dir, want):
    """A VM and helper started with RLIMIT_NOFILE @want (they inherit it)."""
    import resource

    from rel import Rig
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY:
        want = min(hard, want)
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    try:
        return Rig(dir)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture
def many_fds_rig(short_tmp):
    """A helper whose descriptor limit lets it reach the event limit before
    EMFILE: 1024 events on each of QEMU's threads."""
    r = rig_with_nofile(short_tmp, 65536)
    yield r
    r.close()


@pytest.fixture
def few_fds_rig(short_tmp):
    """A helper whose descriptor limit is 256, soft and hard: set from
    outside once it runs, since the helper raises its soft limit to the
    hard one at start-up."""
    import resource

    r = rig_with_nofile(short_tmp, 256)
    resource.prlimit(r.helper.pid, resource.RLIMIT_NOFILE, (256, 256))
    yield r
    r.close()


def test_enabled_set_is_bounded(many_fds_rig):
    """Each request is bounded by its entries; the set of enabled events by
    QPH_PERF_SET_MAX_EVENTS (1024), else requests of distinct raw events
    (libpfm4 takes any period=N) would grow every later query and rescan
    without end."""
    r = many_fds_rig
    c = r.client()

    def raw(i):
        return f"perf::cpu-clock:period={1000 + i}"

    reply = c.cmd("set-perf-events",
                  {"events": [{"name": raw(i), "enabled": True} for i in range(LIMIT)]},
                  timeout=60)
    if "error" in reply:
        pytest.skip(f"cannot enable {LIMIT} software events here: {reply['error']['desc']}")
    reply = c.cmd("set-perf-events", {"events": [{"name": raw(LIMIT), "enabled": True}]})
    assert reply.get("error", {}).get("desc") == (
        "Cannot enable 1 more perf events: 1024 are enabled, and the helper "
        "counts at most 1024 at once."), reply
    # Disabling one makes room for another in the same request.
    assert c.cmd("set-perf-events", {"events": [{"name": raw(0), "enabled": False},
                                                {"name": raw(LIMIT), "enabled": True}]}) == \
        {"return": {}}
    assert c.cmd("set-perf-events",
                 {"events": [{"name": raw(i), "enabled": False} for i in range(1, LIMIT + 1)]},
                 timeout=60) == {"return": {}}


def test_perf_keeps_descriptors_for_clients(few_fds_rig):
    """With RLIMIT_NOFILE 256, a client enabling one raw event per request
    (one descriptor per QEMU thread each) is refused while 64 descriptors
    (a quarter of the limit) are still free: new clients connect and are
    served.  The helper used to open perf descriptors until EMFILE, leaving
    fewer than one event's worth for everything else."""
    r = few_fds_rig
    c = r.client()
    refusal = None
    for i in range(300):
        reply = c.cmd("set-perf-events",
                      {"events": [{"name": f"perf::cpu-clock:period={1000 + i}",
                                   "enabled": True}]})
        if "error" in reply:
            refusal = reply["error"]["desc"]
            break
    print(f"\nrefused after {i} events: {refusal}")
    assert refusal and "(RLIMIT_NOFILE is 256, 64 kept for clients)" in refusal, \
        refusal
    others = [r.client() for _ in range(16)]
    for o in others:
        assert "return" in o.cmd("query-status", timeout=30)
    got = others[0].command("query-perf-events",
                            {"names": ["perf::cpu-clock:period=1000"], "per-thread": True})
    assert got[0]["enabled"] and got[0]["threads"], got
    assert r.helper.alive()
