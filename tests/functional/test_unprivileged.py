"""set-perf-events / query-perf-events with an unprivileged helper (issue 3).

"Unprivileged: where the kernel allows only user-space counting, fall back
to it and say so in the reply; where it allows nothing, the error says what
would."  As root the helper keeps CAP_PERFMON (helper/privilege.c), so the
other functional tests never reach the fallback.  Here QEMU and the helper
run as an ordinary user (`nobody`, via setpriv: no capabilities, no
supplementary groups) in a directory of that user's; the test itself stays
root and connects to the helper's 0600 socket anyway (root may).

  test_user_only_fallback        QEMU and helper both `nobody`, paranoid 2:
                                 task_clock opens user-only and says so.
  test_other_owner_refused       helper `nobody`, QEMU `daemon`: the kernel
                                 allows nothing (the ptrace access check),
                                 the error says what would; nothing changes.
  test_paranoid_3_refused        only on kernels where perf_event_paranoid 3
                                 forbids unprivileged counting (the Debian /
                                 Ubuntu patch); the setting is put back in a
                                 finally block.  Skipped where 3 acts as 2.

Needs root (to change users), the helper binary reachable by `nobody`
(build in e.g. /tmp: every directory on the way must be searchable), and
kernel.perf_event_paranoid 2 (what the fallback is about).  KVM is used only
if `nobody` may open /dev/kvm (it is never chmod'ed); otherwise TCG.
"""

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import test_perf_events as tpe  # noqa: E402  (its helpers and its harness)

harness = tpe.harness

PARANOID = Path("/proc/sys/kernel/perf_event_paranoid")
HELPER_USER = "nobody"
QEMU_OTHER_USER = "daemon"  # an ordinary uid that is not the helper's

pytestmark = pytest.mark.skipif(
    harness.SELFTEST, reason="query-perf-events is the helper's own command; "
    "QEMU-vs-QEMU self-test mode has nothing to compare")


# ---- running things as another user ---------------------------------------

def as_user(pw):
    return ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}",
            "--clear-groups", "--inh-caps=-all", "--"]


def user_can(pw, *test_args):
    """`test ARGS` run as the user: True if it succeeds."""
    return subprocess.run(as_user(pw) + ["/usr/bin/test"] + list(test_args),
                          stdin=subprocess.DEVNULL, capture_output=True).returncode == 0


def read_paranoid():
    return int(PARANOID.read_text().strip())


def proc_status(pid):
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        out[k] = v.split()
    return out


def user_or_skip(name):
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pytest.skip(f"no user '{name}' on this host")


def require_setup(pw):
    if os.geteuid() != 0:
        pytest.skip("needs root to start QEMU and the helper as another user")
    if not shutil.which("setpriv"):
        pytest.skip("setpriv (util-linux) not found")
    harness.require_qemu()
    harness.require_helper_binary()
    if pw.pw_uid == 0:
        pytest.skip(f"user '{pw.pw_name}' is root")
    helper = str(harness.HELPER.resolve())
    if not user_can(pw, "-x", helper):
        pytest.skip(f"user '{pw.pw_name}' cannot execute {helper} (a directory on the "
                    "way is not searchable?): build in e.g. /tmp and set QPH_BUILD_DIR")
    if not user_can(pw, "-x", harness.QEMU):
        pytest.skip(f"user '{pw.pw_name}' cannot execute {harness.QEMU}")
    try:
        p = read_paranoid()
    except (OSError, ValueError) as e:
        pytest.skip(f"cannot read {PARANOID}: {e}")
    if p != 2:
        pytest.skip(f"kernel.perf_event_paranoid is {p}; these tests are about 2 "
                    "(user-space counting only, the common default)")


def qemu_args_for(vm, pw):
    """The VM's command line as `pw`: TCG unless that user may open /dev/kvm."""
    args = list(vm.args)
    if "-accel" in args and not user_can(pw, "-r", "/dev/kvm", "-a", "-w", "/dev/kvm"):
        i = args.index("-accel")
        args[i + 1] = "tcg"
    return as_user(pw) + args


def start_env(d, qemu_pw, helper_pw, qemu_dir, helper_dir):
    """A VM (vCPU 0 spins from the reset vector) run as qemu_pw, and the
    helper as helper_pw in front of it."""
    bios = tpe.write_spin_bios(Path(qemu_dir) / "spin-bios.bin")
    vm = harness.VM(qemu_dir, smp="1", extra_args=["-bios", bios] + tpe.GUEST_NAME)
    vm.args = qemu_args_for(vm, qemu_pw)
    os.chown(bios, qemu_pw.pw_uid, qemu_pw.pw_gid)
    old = os.umask(0)  # QEMU's monitors: a helper of another user must connect
    try:
        vm.start()
    finally:
        os.umask(old)
    helper = harness.Helper(helper_dir, vm.proxied_path)
    helper.args = as_user(helper_pw) + helper.args
    try:
        helper.start()
    except Exception:
        vm.kill()
        raise
    return harness.Env(vm, helper)


def make_dir(path, pw, mode=0o700):
    os.makedirs(path, exist_ok=True)
    os.chown(path, pw.pw_uid, pw.pw_gid)
    os.chmod(path, mode)
    return path


@pytest.fixture
def scratch():
    d = tempfile.mkdtemp(prefix="qph-up-", dir="/tmp")
    os.chmod(d, 0o755)
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


def assert_runs_as(pid, pw, what):
    st = proc_status(pid)
    assert [int(x) for x in st["Uid"]] == [pw.pw_uid] * 4, (what, st["Uid"])
    assert int(st["CapEff"][0], 16) == 0, (what, "has capabilities", st["CapEff"])


def assert_refusal(reply, name):
    assert "error" in reply, reply
    desc = reply["error"]["desc"]
    assert reply["error"]["class"] == "GenericError", reply
    for part in (f"'{name}'", "kernel.perf_event_paranoid", "CAP_PERFMON"):
        assert part in desc, (part, desc)


def assert_nothing_enabled(c, hpid):
    assert tpe.enabled_names(c) == []
    assert tpe.perf_fds(hpid) == 0, "a refused request left perf fds open"


# ---- the environments --------------------------------------------------------

@pytest.fixture
def same_user_env(scratch):
    """QEMU and the helper both run as `nobody`."""
    pw = user_or_skip(HELPER_USER)
    require_setup(pw)
    work = make_dir(scratch / "w", pw)
    env = None
    try:
        env = start_env(work, pw, pw, work, work)
        yield env, pw
    finally:
        harness.destroy_env(env)


@pytest.fixture
def other_owner_env(scratch):
    """The helper as `nobody`, QEMU as `daemon`."""
    hpw = user_or_skip(HELPER_USER)
    qpw = user_or_skip(QEMU_OTHER_USER)
    require_setup(hpw)
    require_setup(qpw)
    qdir = make_dir(scratch / "q", qpw, 0o755)
    hdir = make_dir(scratch / "h", hpw)
    env = None
    try:
        env = start_env(scratch, qpw, hpw, qdir, hdir)
        yield env, hpw, qpw
    finally:
        harness.destroy_env(env)


# ---- tests -------------------------------------------------------------------

def test_user_only_fallback(same_user_env):
    """QEMU and helper as `nobody` (no capabilities), paranoid 2:
    -> set-perf-events [task_clock on]
    <- {"return": {}}
    -> query-perf-events {names: [task_clock], per-thread: true}  (t1, t2)
    <- enabled, "user-only": true, the value grows from t1 to t2 (vCPU 0
       spins), value == sum(threads) + exited-value, every QEMU thread once,
       one perf fd per thread in the helper; disabling closes them."""
    env, pw = same_user_env
    hpid, qpid = env.helper.proc.pid, env.vm.pid
    assert_runs_as(hpid, pw, "helper")
    assert_runs_as(qpid, pw, "QEMU")
    c = env.client()
    assert tpe.perf_fds(hpid) == 0

    tpe.set_ok(c, [("task_clock", True)])
    before = tpe.proc_tids(qpid)
    a = tpe.query_one(c, "task_clock", True)
    t1 = time.monotonic()
    time.sleep(1.0)
    b = tpe.query_one(c, "task_clock", True)
    t2 = time.monotonic()
    after = tpe.proc_tids(qpid)

    for info in (a, b):
        assert info["enabled"] is True, info
        assert info["user-only"] is True, (
            "an unprivileged helper at perf_event_paranoid 2 counts user space only "
            f"and must say so: {info}")
        tpe.assert_each_tid_once(info)
        tpe.assert_sum_is_total(info)
        tids = {t["thread-id"] for t in info["threads"]}
        assert before & after <= tids, (tids, before, after)
    grown = (b["value"] - a["value"]) / 1e9 / (t2 - t1)
    vcpu = tpe.vcpu_tid(c, 0)
    vgrown = tpe.thread_of(b, vcpu)["value"] - tpe.thread_of(a, vcpu)["value"]
    print(f"\nunprivileged task_clock: total {grown:.3f} s/s, vCPU 0 grew "
          f"{vgrown / 1e6:.1f} ms in {t2 - t1:.2f} s, {len(b['threads'])} threads")
    assert grown > 0.1, f"task_clock grew only {grown:.3f} s/s with a spinning vCPU"
    assert vgrown > 0, "vCPU 0's task_clock did not grow"
    assert tpe.perf_fds(hpid) == len(b["threads"])

    # every other event is still off; without per-thread the flag is there too
    for info in tpe.query(c):
        if info["name"] != "task_clock":
            assert info["enabled"] is False, info
    assert tpe.query_one(c, "task_clock")["user-only"] is True

    tpe.set_ok(c, [("task_clock", False)])
    assert_nothing_enabled(c, hpid)


def test_other_owner_refused(other_owner_env):
    """The helper (`nobody`) may not count QEMU's (`daemon`) threads at all,
    not even in user space (perf_event_open's ptrace access check):
    -> set-perf-events [task_clock on]                 -> GenericError
    -> set-perf-events [page_faults on, task_clock on] -> GenericError
    <- each names the event, kernel.perf_event_paranoid and CAP_PERFMON;
       nothing is enabled and the helper holds no perf fd afterwards."""
    env, hpw, qpw = other_owner_env
    hpid = env.helper.proc.pid
    assert_runs_as(hpid, hpw, "helper")
    assert_runs_as(env.vm.pid, qpw, "QEMU")
    c = env.client()
    assert_nothing_enabled(c, hpid)

    reply = c.cmd("set-perf-events", {"events": [{"name": "task_clock", "enabled": True}]})
    print(f"\n{reply}")
    assert_refusal(reply, "task_clock")
    # lowering the paranoid level would not help here (the kernel's ptrace
    # access check); the owner would, and so would CAP_SYS_PTRACE
    desc = reply["error"]["desc"]
    assert "a lower kernel.perf_event_paranoid" not in desc, desc
    for part in (f"uid {qpw.pw_uid}", f"uid {hpw.pw_uid}", "CAP_SYS_PTRACE",
                 "the user that owns the thread"):
        assert part in desc, (part, desc)
    assert_nothing_enabled(c, hpid)

    reply = c.cmd("set-perf-events", {"events": [{"name": "page_faults", "enabled": True},
                                                 {"name": "task_clock", "enabled": True}]})
    assert "error" in reply, reply
    assert_refusal(reply, "page_faults")  # the first entry that fails
    assert_nothing_enabled(c, hpid)
    for info in tpe.query(c, ["page_faults", "task_clock"], True):
        assert info["enabled"] is False and "value" not in info, info


def user_only_open_allowed(pw):
    """Whether `pw` may open a user-only task_clock on itself right now."""
    probe = (
        "import ctypes, struct, sys\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "attr = bytearray(128)\n"
        "struct.pack_into('IIQ', attr, 0, 1, 128, 1)\n"       # SOFTWARE, size, TASK_CLOCK
        "struct.pack_into('Q', attr, 40, (1 << 5) | (1 << 6))\n"  # exclude_kernel, _hv
        "fd = libc.syscall(298, ctypes.create_string_buffer(bytes(attr)), 0, -1, -1, 0)\n"
        "sys.exit(0 if fd >= 0 else 1)\n")
    r = subprocess.run(as_user(pw) + ["/usr/bin/python3", "-c", probe],
                       stdin=subprocess.DEVNULL, capture_output=True)
    return r.returncode == 0


def test_paranoid_3_refused(same_user_env):
    """Where perf_event_paranoid 3 forbids unprivileged perf_event_open
    (a distribution patch), with task_clock already counting user-only:
    -> (paranoid := 3) set-perf-events [task_clock off, page_faults on]
    <- GenericError naming page_faults, kernel.perf_event_paranoid,
       CAP_PERFMON; task_clock still on, still growing, same fds.
    The setting is restored in a finally block."""
    env, pw = same_user_env
    hpid = env.helper.proc.pid
    c = env.client()
    tpe.set_ok(c, [("task_clock", True)])
    fds = tpe.perf_fds(hpid)
    v1 = tpe.query_one(c, "task_clock")["value"]
    if not os.access(PARANOID, os.W_OK):
        pytest.skip(f"{PARANOID} is not writable here")
    old = PARANOID.read_text()
    try:
        try:
            PARANOID.write_text("3\n")
        except OSError as e:
            pytest.skip(f"cannot write {PARANOID}: {e}")
        if user_only_open_allowed(pw):
            pytest.skip("this kernel lets unprivileged users count in user space at "
                        "perf_event_paranoid 3 too (no 'paranoid 3' patch): nothing "
                        "to refuse")
        reply = c.cmd("set-perf-events", {"events": [
            {"name": "task_clock", "enabled": False},
            {"name": "page_faults", "enabled": True}]})
        print(f"\n{reply}")
        assert_refusal(reply, "page_faults")
        assert "is 3" in reply["error"]["desc"], reply
        time.sleep(0.2)
        info = tpe.query_one(c, "task_clock")
        assert info["enabled"] is True and info["user-only"] is True, info
        assert info["value"] > v1, (info, v1)
        assert tpe.enabled_names(c) == ["task_clock"]
        assert tpe.perf_fds(hpid) == fds
    finally:
        PARANOID.write_text(old)
        assert PARANOID.read_text() == old
