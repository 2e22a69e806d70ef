"""qemu-perf-stat against a real QEMU and helper (issue 14).

Each test runs the installed-to-be binary (BUILD/contrib/qemu-perf-stat)
against the helper in front of one shared VM, reads what it prints as a
person or a script would, and checks it against an independent reference:
the kernel's own run time of the vCPU thread (/proc/PID/task/TID/schedstat),
the helper's own answers to a client of the test (set-perf-events errors,
which events are enabled), or the other output format.

The VM: vCPU 0 spins from the reset vector (`jmp $` in a 64 KiB -bios, as
test_perf_events.py), vCPU 1 stays halted (an AP waiting for its SIPI), an
iothread io0, named threads.

  test_interval_vcpu0_busy        -I --per-thread: vCPU 0 about 1 CPU per
                                  interval, as the kernel says it ran
  test_csv_and_json_agree         -x, and --json of the same counters, read
                                  at the same time, carry the same numbers
  test_hardware_event_not_supported  cpu_cycles (no PMU here): <not
                                  supported> and the helper's reason
  test_leaves_vm_as_found[...]    exit at --duration, SIGINT, SIGTERM: what
                                  it enabled is disabled, what was enabled
                                  before is still enabled, not reset, and
                                  its interval values are deltas
  test_no_helper_in_front         QEMU's own monitor: CommandNotFound said
  test_refused_event_reason       an unknown event: the helper's reason
  test_socket_permission          another user: permission, said so
  test_terminal_columns           tmux: a real terminal, aligned columns,
                                  Ctrl-C from the keyboard cleans up
  test_resctrl_units              cmt a level in MiB, mbmt MiB per interval
                                  and bytes/s, against the resctrl simulator
  test_vm_exits_meanwhile[...]    the VM quits: it says so and ends, with
                                  and without -I

Needs the real helper: skipped in QPH_SELFTEST_DIRECT mode.
"""

import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import test_perf_events as tpe  # noqa: E402  (its spin BIOS and harness)

harness = tpe.harness

STAT = Path(os.environ.get("QPH_PERF_STAT")
            or harness.BUILD_DIR / "contrib" / "qemu-perf-stat" / "qemu-perf-stat")

pytestmark = pytest.mark.skipif(
    harness.SELFTEST, reason="qemu-perf-stat needs the helper's own commands")

# perf stat's plain layout, in columns: with -I a 17-wide time stamp, with
# --per-thread a 26-wide "%16s-%-8s " comm-pid, then an 18-wide value, a
# 4-wide unit, the event name (32 wide, 25 when not counted), " # metric".
TS_W, THREAD_W, VALUE_W, UNIT_W = 17, 26, 18, 4


def parse_std(line, interval=False, per_thread=False):
    """One line of plain output cut at perf stat's columns; None if the
    line does not fit them (so misaligned output fails to parse)."""
    pos = 0
    row = {}
    if interval:
        ts = line[pos:pos + TS_W]
        if not re.fullmatch(r" *\d+\.\d{9} ", ts):
            return None
        row["ts"] = float(ts)
        pos += TS_W
    if per_thread:
        th = line[pos:pos + THREAD_W]
        if not re.fullmatch(r" *\S.*[- ].{8} ", th):
            return None
        row["thread"] = th.strip()
        pos += THREAD_W
    value = line[pos:pos + VALUE_W]
    if not re.fullmatch(r" *(\d+(\.\d+)?|<not supported>|<not counted>)", value):
        return None
    row["value"] = value.strip()
    pos += VALUE_W
    if line[pos] != " " or line[pos + 1 + UNIT_W] != " ":
        return None
    row["unit"] = line[pos + 1:pos + 1 + UNIT_W].strip()
    rest = line[pos + 2 + UNIT_W:]
    m = re.fullmatch(r"(\S+) *(?:# +([\d.]+) (.*?))? *(\(\d+\.\d\d%\))?", rest)
    if not m:
        return None
    row["event"], row["metric"], row["munit"] = m[1], m[2], m[3]
    row["event_col"] = pos + 2 + UNIT_W
    return row


def run_stat(env, *args, timeout=30, **kw):
    """Run qemu-perf-stat to its end; (returncode, stdout, stderr)."""
    p = subprocess.run([str(STAT), "-S", env.helper_path, *args], capture_output=True,
                       text=True, timeout=timeout, **kw)
    return p.returncode, p.stdout, p.stderr


def start_stat(env, *args):
    return subprocess.Popen([str(STAT), "-S", env.helper_path, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def enabled(c):
    return {e["name"]: e for e in c.command("query-perf-events") if e["enabled"]}


def schedstat_ns(pid, tid):
    return tpe.sched_runtime_ns(pid, tid)


@pytest.fixture(scope="module")
def svm(tmp_path_factory):
    if not STAT.is_file():
        pytest.fail(f"{STAT} is missing: build it (ninja -C {harness.BUILD_DIR})")
    d, _ = harness.short_dir(tmp_path_factory.mktemp("stat", numbered=True))
    env = None
    try:
        bios = tpe.write_spin_bios(Path(d) / "spin-bios.bin")
        env = harness.make_env(d, smp=2, extra_args=["-bios", bios, "-name",
                                                      "guest=stat,debug-threads=on",
                                                      "-object", "iothread,id=io0"])
        yield env
    finally:
        harness.destroy_env(env)
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def senv(svm):
    """The shared VM; every event disabled before and after a test."""
    c = svm.client()
    left = enabled(c)
    if left:
        tpe.set_ok(c, [(n, False) for n in left])
    svm.close_clients()
    yield svm
    svm.close_clients()
    if not svm.helper.alive():
        pytest.fail(f"the helper died:\n{svm.helper.log()}")
    c = svm.client()
    left = enabled(c)
    if left:
        tpe.set_ok(c, [(n, False) for n in left])
    svm.close_clients()


@pytest.fixture(scope="module")
def vcpu0(svm):
    """vCPU 0's thread id, once it is seen spinning (kernel run time grows)."""
    c = svm.client()
    tid = tpe.vcpu_tid(c, 0)
    svm.close_clients()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        a = schedstat_ns(svm.vm.pid, tid)
        time.sleep(0.5)
        # on a loaded host a spinning vCPU may get little of a CPU
        if schedstat_ns(svm.vm.pid, tid) - a > 0.01e9:
            return tid
    pytest.fail("vCPU 0 does not spin")


def parse_csv(text, sep=","):
    """perf stat -x rows with -I and --per-thread: dicts of the fields."""
    rows = []
    for line in text.splitlines():
        f = line.split(sep)
        assert len(f) == 9, f"not 9 fields: {line!r}"
        rows.append({"interval": float(f[0]), "thread": f[1], "value": f[2], "unit": f[3],
                     "event": f[4], "run": int(f[5]), "pcnt": float(f[6]),
                     "metric": f[7], "munit": f[8]})
    return rows


def test_interval_vcpu0_busy(senv, vcpu0):
    pid = senv.vm.pid
    t0, ref0 = time.monotonic(), schedstat_ns(pid, vcpu0)
    rc, out, err = run_stat(senv, "-I", "500", "--duration", "2.6", "--per-thread",
                            "-e", "task-clock")
    ref_s = (schedstat_ns(pid, vcpu0) - ref0) / 1e9
    wall = time.monotonic() - t0
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["#", "time", "comm-pid", "counts", "unit", "events"]
    per_interval = {}
    for line in lines[1:]:
        m = parse_std(line, interval=True, per_thread=True)
        assert m, f"not perf stat's layout: {line!r}"
        assert m["event"] == "task-clock" and m["unit"] == "msec"
        per_interval.setdefault(m["ts"], []).append(m)
    stamps = sorted(per_interval)
    assert len(stamps) == 6, out  # 0.5 .. 2.5, then 2.6 (the last, partial)
    prev = 0.0
    busy = []
    for ts in stamps:
        rows = per_interval[ts]
        threads = [r["thread"] for r in rows]
        assert threads[0] == f"vCPU 0-{vcpu0}", f"vCPU 0 is not the busiest: {threads}"
        assert {"main loop-" + str(pid), "others"} <= set(threads), threads
        assert any(t.startswith("vCPU 1-") for t in threads)
        assert any(t.startswith("iothread io0-") for t in threads)
        v0 = rows[0]
        utilized = float(v0["metric"])
        assert v0["munit"] == "CPUs utilized"
        # the derived column is task-clock over the interval's wall time
        assert utilized == pytest.approx(float(v0["value"]) / 1e3 / (ts - prev), abs=0.02)
        vcpu1 = [r for r in rows if r["thread"].startswith("vCPU 1-")][0]
        assert float(vcpu1["metric"]) < 0.05, "vCPU 1 is halted"
        busy.append(utilized)
        prev = ts
    # Against the kernel: vCPU 0's run time over the whole run (which
    # includes qemu-perf-stat's start and exit, so it is a bit longer).
    ref_rate = ref_s / wall
    mean = sum(float(per_interval[ts][0]["value"]) / 1e3 for ts in stamps) / stamps[-1]
    print(f"vCPU 0 CPUs utilized per interval: {busy}; kernel: {ref_rate:.3f}")
    assert mean == pytest.approx(ref_rate, abs=0.1)
    if ref_rate > 0.9:
        # the host gave it a whole CPU: so must every interval say
        assert min(busy) > 0.8, busy


def test_csv_and_json_agree(senv, vcpu0):
    """Both formats read the same (pre-enabled) counters side by side."""
    c = senv.client()
    tpe.set_ok(c, [("task_clock", True), ("context_switches", True)])
    args = ["-I", "400", "--duration", "1.7", "--per-thread",
            "-e", "task-clock,cs,cycles"]
    csv_p = start_stat(senv, "-x", ",", *args)
    json_p = start_stat(senv, "--json", *args)
    csv_out, csv_err = csv_p.communicate(timeout=30)
    json_out, json_err = json_p.communicate(timeout=30)
    assert csv_p.returncode == 0, csv_err
    assert json_p.returncode == 0, json_err
    csv_rows = parse_csv(csv_out)
    json_rows = [json.loads(line) for line in json_out.splitlines()]
    assert csv_rows and json_rows

    # Intervals of the two runs, paired by time stamp (on a loaded host a
    # late sample may merge the last interval with the partial one).
    csv_ts = sorted({r["interval"] for r in csv_rows})
    json_ts = sorted({r["interval"] for r in json_rows})
    pairs = {a: b for a in csv_ts for b in json_ts if abs(a - b) < 0.1}
    assert len(pairs) >= 3, (csv_ts, json_ts)
    csv_k = {(pairs[r["interval"]], r["thread"], r["event"]): r
             for r in csv_rows if r["interval"] in pairs}
    json_k = {(r["interval"], r["thread"], r["event"]): r
              for r in json_rows if r["interval"] in pairs.values()}
    # the same lines (rows of equal value may come in another order)
    assert set(csv_k) == set(json_k)
    for key, a in csv_k.items():
        b = json_k[key]
        assert a["unit"] == b["unit"]
        if a["event"] == "cycles":
            assert a["value"] == b["counter-value"] == "<not supported>"
            assert a["munit"] == b["metric-unit"] == ""
            continue
        assert a["pcnt"] == b["pcnt-running"] == 100.0
        if a["metric"] and b["metric-unit"]:
            # a rate per task-clock second exists only where the row ran
            assert a["munit"] == b["metric-unit"]
        if a["thread"].startswith("vCPU 0-") and a["event"] == "task-clock":
            # read a few ms apart: the same CPU share, about the same count
            assert float(a["metric"]) == pytest.approx(b["metric-value"], abs=0.1)
            assert float(a["value"]) == pytest.approx(float(b["counter-value"]),
                                                      rel=0.25, abs=50)
        if a["event"] == "task-clock":
            assert a["unit"] == "msec"
            # each format is consistent with itself: value over interval
            assert b["event-runtime"] > 0
    # the rows of one interval add up to the event's run: vCPU 0 dominates
    vcpu_rows = [b for b in json_rows if b["event"] == "task-clock"
                 and b["thread"] == f"vCPU 0-{vcpu0}"]
    assert len(vcpu_rows) == len({b["interval"] for b in json_rows})
    # qemu-perf-stat enabled nothing, so it disabled nothing
    assert set(enabled(c)) == {"task_clock", "context_switches"}


def hardware_reason(c):
    """The helper's reason for refusing cpu_cycles, or skip on a PMU host."""
    reply = c.cmd("set-perf-events", {"events": [{"name": "cpu_cycles", "enabled": True}]})
    if "return" in reply:
        tpe.set_ok(c, [("cpu_cycles", False)])
        pytest.skip("this host has a hardware PMU: cpu_cycles can be counted")
    return reply["error"]["desc"]


def test_hardware_event_not_supported(senv):
    c = senv.client()
    reason = hardware_reason(c)
    rc, out, err = run_stat(senv, "--duration", "0.5", "-e", "task_clock,cpu_cycles")
    assert rc == 0, err
    line = [ln for ln in out.splitlines() if "cpu_cycles" in ln]
    assert len(line) == 1, out
    assert re.match(r"^ {3}<not supported> {6}cpu_cycles +$", line[0]), line
    assert f"cpu_cycles: <not supported>: {reason}" in err
    # JSON and CSV say it the way perf does
    rc, out, err = run_stat(senv, "--duration", "0.3", "-j", "-e", "cpu_cycles")
    assert json.loads(out)["counter-value"] == "<not supported>"
    rc, out, err = run_stat(senv, "--duration", "0.3", "-x,", "-e", "cycles")
    assert out == "<not supported>,,cycles,0,100.00,,\n"
    assert "cpu_cycles" not in enabled(c)


@pytest.mark.parametrize("how", ["duration", "SIGINT", "SIGTERM"])
def test_leaves_vm_as_found(senv, how):
    c = senv.client()
    # someone else enabled task_clock a while ago
    tpe.set_ok(c, [("task_clock", True)])
    time.sleep(1.0)
    before = enabled(c)["task_clock"]["value"]
    args = ["-I", "200", "-e", "task_clock,context_switches,page_faults"]
    if how == "duration":
        args += ["--duration", "1"]
    p = start_stat(senv, *args)
    if how != "duration":
        # wait for the first interval: it has enabled its events by then
        first = p.stdout.readline()
        assert first.startswith("#"), first
        line = p.stdout.readline()
        assert "task_clock" in line, line
        assert set(enabled(c)) == {"task_clock", "context_switches", "page_faults"}
        os.kill(p.pid, getattr(signal, how))
    else:
        first = line = ""
    out, err = p.communicate(timeout=30)
    out = first + line + out
    if how == "duration":
        assert p.returncode == 0, err
    else:
        assert p.returncode == -getattr(signal, how), (p.returncode, err)
    # what it enabled is disabled; task_clock still counts, never reset
    now = enabled(c)
    assert set(now) == {"task_clock"}, now
    assert now["task_clock"]["value"] > before
    # values are deltas: no interval shows the total since task_clock began
    rows = [parse_std(ln, interval=True) for ln in out.splitlines()[1:]]
    assert None not in rows, out
    # (an interval in which no QEMU thread ran, on a loaded host, is
    # <not counted>, as perf stat says it)
    ms = [float(m["value"]) for m in rows
          if m["event"] == "task_clock" and m["value"] != "<not counted>"]
    assert ms, out
    assert max(ms) * 1e6 < before, (ms, before)
    assert max(ms) < 200 * 2 * 1.5  # two vCPUs at most, per 200 ms


def test_no_helper_in_front(senv):
    p = subprocess.run([str(STAT), "-S", senv.vm.direct_path, "--duration", "0.2"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1
    assert p.stdout == ""
    assert "no qemu-perf-helper in front" in p.stderr
    assert "CommandNotFound" in p.stderr
    assert "The command query-perf-events has not been found" in p.stderr


def test_refused_event_reason(senv):
    c = senv.client()
    reply = c.cmd("set-perf-events", {"events": [{"name": "no_such_event", "enabled": True}]})
    reason = reply["error"]["desc"]
    rc, out, err = run_stat(senv, "--duration", "0.3", "-e", "no_such_event,task_clock")
    assert rc == 0, err
    assert f"no_such_event: <not supported>: {reason}" in err
    assert re.search(r"<not supported> {6}no_such_event", out)
    assert re.search(r"msec task_clock +# +[\d.]+ CPUs utilized", out)


def test_socket_permission(senv):
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to run as another user")
    pw = pwd.getpwnam("nobody")
    as_nobody = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}",
                 "--clear-groups", "--"]
    if subprocess.run(as_nobody + [str(STAT), "--help"], capture_output=True).returncode:
        pytest.skip(f"{STAT} is not executable by nobody")
    p = subprocess.run(as_nobody + [str(STAT), "-S", senv.helper_path, "--duration", "0.2"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1
    assert f"Unable to connect to '{senv.helper_path}': Permission denied." in p.stderr
    assert "--socket-mode" in p.stderr


def tmux(sock, *args):
    return subprocess.run(["tmux", "-S", str(sock), *args], capture_output=True, text=True,
                          timeout=10)


def test_terminal_columns(senv, vcpu0, short_tmp):
    if not shutil.which("tmux"):
        pytest.fail("tmux is missing: scripts/install-deps.sh installs it")
    sock = short_tmp / "tmux.sock"
    tmux(sock, "-f", "/dev/null", "new-session", "-d", "-x", "160", "-y", "50",
         "env", "PS1=$ ", "sh")
    try:
        cmd = f"{STAT} -S {senv.helper_path} -I 500 --per-thread -e task-clock,cs,cycles"
        tmux(sock, "send-keys", cmd, "Enter")
        c = senv.client()
        deadline = time.monotonic() + 20
        stamps = set()
        while time.monotonic() < deadline and len(stamps) < 2:
            time.sleep(0.2)
            screen = tmux(sock, "capture-pane", "-p").stdout
            stamps = set(re.findall(r"^ +(\d+\.\d{9}) ", screen, re.M))
        assert set(enabled(c)) == {"task_clock", "context_switches"}, screen
        tmux(sock, "send-keys", "C-c")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            screen = tmux(sock, "capture-pane", "-p", "-S", "-50").stdout
            if screen.rstrip().endswith("$"):
                break
            time.sleep(0.2)
        assert screen.rstrip().endswith("$"), screen
        # Ctrl-C from the terminal: it cleaned up
        assert enabled(c) == {}, screen
    finally:
        tmux(sock, "kill-server")
    rows = [ln for ln in screen.splitlines() if re.match(r"^\s+\d+\.\d{9} ", ln)]
    assert rows, screen
    # columns: time stamps, comm-pid, values, units and event names line up
    for ln in rows:
        m = parse_std(ln, interval=True, per_thread=True)
        assert m, f"misaligned: {ln!r}"
        assert m["event"] in ("task-clock", "cs", "cycles"), ln
    metric_cols = {ln.index(" # ") for ln in rows if " # " in ln}
    assert len(metric_cols) == 1, screen
    assert any(f"vCPU 0-{vcpu0}" in ln for ln in rows)
    header = [ln for ln in screen.splitlines() if ln.startswith("#           time")]
    assert header, screen
    assert header[0].index("counts") + len("counts") == 17 + 26 + 18


def test_resctrl_units(short_tmp):
    """cmt in MiB as a level, mbmt as MiB per interval and bytes per second,
    against the resctrl simulator whose values the test sets itself."""
    import resctrl_fixtures as rf

    problem = rf.fuse_problem()
    if problem:
        pytest.skip(problem)
    rig = rf.Rig(short_tmp)
    try:
        rig.start()
        c = rig.client()
        # enabled by someone else: qemu-perf-stat only reads them
        assert rf.set_events(c, cmt=True, mbmt=True) == {"return": {}}
        rig.sim.ok(f"set {rig.group} 0 llc_occupancy {3 << 20}")
        rig.sim.ok(f"set {rig.group} 1 llc_occupancy {1 << 20}")
        rig.sim.ok(f"set {rig.group} 0 mbm_total_bytes 1000")
        p = subprocess.Popen([str(STAT), "-S", rig.helper.listen, "-x,", "-I", "300",
                              "--duration", "1.3", "-e", "cmt,mbmt"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        head = p.stdout.readline() + p.stdout.readline()  # the first interval
        rig.sim.ok(f"set {rig.group} 0 mbm_total_bytes {1000 + (300 << 20)}")
        out, err = p.communicate(timeout=30)
        assert p.returncode == 0, err
        rows = [ln.split(",") for ln in (head + out).splitlines()]
        assert all(len(r) == 8 for r in rows), rows
        cmt = [r for r in rows if r[3] == "cmt"]
        mbmt = [r for r in rows if r[3] == "mbmt"]
        assert len(cmt) == len(mbmt) >= 4
        # a level, the same each interval: 4 MiB, no metric
        assert {tuple(r[1:3]) for r in cmt} == {("4.00", "MiB")}
        assert {r[6] + r[7] for r in cmt} == {""}
        # differences: nothing in the first interval, 300 MiB once after
        assert mbmt[0][1] == "0.00"
        moved = [r for r in mbmt if r[1] != "0.00"]
        assert len(moved) == 1 and moved[0][1] == "300.00", mbmt
        t = float(moved[0][0]) - float(mbmt[mbmt.index(moved[0]) - 1][0])
        rate, prefix = (300 << 20) / t, ""
        for p_ in "KMG":  # perf's convert_unit_double
            if rate > 1000:
                rate, prefix = rate / 1000, p_
        assert moved[0][7] == prefix + "B/s"
        assert float(moved[0][6]) == pytest.approx(rate, rel=0.01)
        assert set(enabled(c)) == {"cmt", "mbmt"}
    finally:
        rig.stop()


@pytest.mark.parametrize("interval", [True, False])
def test_vm_exits_meanwhile(fresh_env, interval):
    """The VM quits while qemu-perf-stat waits: it says so and ends, also
    without -I (where it would otherwise wait for Ctrl-C)."""
    p = start_stat(fresh_env, *(["-I", "200"] if interval else []), "-e", "task_clock")
    c = fresh_env.client()
    deadline = time.monotonic() + 20
    while "task_clock" not in enabled(c):
        assert time.monotonic() < deadline and p.poll() is None, p.stderr.read()
        time.sleep(0.05)
    c.cmd("quit")
    out, err = p.communicate(timeout=20)
    assert p.returncode == 1, (out, err)
    assert f"'{fresh_env.helper_path}' closed the connection" in err, err
    assert "Unable to disable" not in err, err  # its counters died with it
