"""Who may use the helper, and what the helper keeps: socket mode and
group, the uid allowlist, inherited descriptors, no_new_privs and
capabilities, the raw event allowlist, and a valgrind run."""

import grp
import os
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from rel import SANITIZED, Helper, Rig, fc, fds, proc_status, qmp, require, rig, short_tmp  # noqa: F401 (fixtures)

OUTSIDER_UID = 64123   # no such user: nobody's files, nobody's groups
OUTSIDER_GID = 64123


@pytest.fixture
def open_dir():
    """A socket directory anyone may traverse (pytest's are 0700)."""
    d = tempfile.mkdtemp(prefix="qph-acc-", dir="/tmp")
    os.chmod(d, 0o755)
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


def connect_as(path, uid, gid, groups=()):
    """Connect to @path from a child running as uid/gid; returns what it
    saw: 'greeting', 'closed' or 'EACCES'/'ECONNREFUSED'/..."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.setgroups(list(groups))
            os.setgid(gid)
            os.setuid(uid)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(5)
            try:
                s.connect(path)
                data = s.recv(4096)
                out = b"greeting" if data.startswith(b'{"QMP"') else b"closed"
            except OSError as e:
                out = (os.strerror(e.errno) if e.errno else repr(e)).encode()
            os.write(w, out)
        finally:
            os._exit(0)
    os.close(w)
    out = b""
    while chunk := os.read(r, 100):
        out += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return out.decode()


def test_socket_0600_by_default(rig):
    st = os.stat(rig.helper.listen)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == os.geteuid()


def test_socket_group(open_dir):
    """--socket-mode 0660 --socket-group G: a member of G connects, a
    process of another group is refused by the kernel."""
    group = grp.getgrgid(65534).gr_name          # nogroup on Debian
    r = Rig(open_dir, extra=["--socket-mode", "0660", "--socket-group", group])
    try:
        # The helper listens right after bind() and sets the group just
        # after: a client can connect in between (an ASan build made the
        # window visible), so wait for the group, with a hang bound.
        deadline = time.monotonic() + 10
        while os.stat(r.helper.listen).st_gid != 65534 and time.monotonic() < deadline:
            time.sleep(0.01)
        st = os.stat(r.helper.listen)
        assert stat.S_IMODE(st.st_mode) == 0o660 and st.st_gid == 65534
        assert connect_as(r.helper.listen, OUTSIDER_UID, OUTSIDER_GID, [65534]) == "greeting"
        assert connect_as(r.helper.listen, OUTSIDER_UID, OUTSIDER_GID) == os.strerror(13)
    finally:
        r.close()


def test_allow_uid(open_dir):
    """--allow-uid U on a world-accessible socket: U is served, another
    uid is disconnected before the greeting (SO_PEERCRED)."""
    r = Rig(open_dir, extra=["--socket-mode", "0666", "--allow-uid", str(OUTSIDER_UID)])
    try:
        assert connect_as(r.helper.listen, OUTSIDER_UID, OUTSIDER_GID) == "greeting"
        assert connect_as(r.helper.listen, 65534, 65534) == "closed"
        assert "Refusing a client with uid 65534" in r.helper.log()
        assert r.client().command("query-status")      # root: the helper's own uid
    finally:
        r.close()


def test_inherited_fds_closed(short_tmp):
    """A descriptor the helper inherits (here a pipe) is closed at start;
    in fd mode --qemu-fd and --listen-fd stay."""
    require()
    vm = fc.VM(short_tmp).start()
    r, w = os.pipe()
    os.set_inheritable(w, True)
    h = Helper(short_tmp, vm.proxied_path)
    try:
        h.start(pass_fds=(w,))
        targets = fds(h.pid).values()
        leaked = f"pipe:[{os.fstat(w).st_ino}]"
        assert leaked not in targets, targets
    finally:
        os.close(r)
        os.close(w)
        h.kill()
        vm.kill()


def test_inherited_fds_fd_mode_kept(short_tmp):
    require()
    vm = fc.VM(short_tmp).start()
    q = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    q.connect(vm.proxied_path)
    lpath = str(short_tmp / "fdmode.sock")
    lst = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lst.bind(lpath)
    lst.listen(8)
    extra_r, extra_w = os.pipe()
    args = [str(fc.HELPER), "--qemu-fd", str(q.fileno()), "--listen-fd", str(lst.fileno())]
    p = subprocess.Popen(args, pass_fds=(q.fileno(), lst.fileno(), extra_w),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        c = qmp.QMPClient(lpath)
        c.negotiate()
        assert c.command("query-status")["status"] == "running"
        targets = list(fds(p.pid).values())
        assert f"pipe:[{os.fstat(extra_w).st_ino}]" not in targets
        c.close()
    finally:
        fc.kill_proc(p, timeout=3)
        for x in (extra_r, extra_w):
            os.close(x)
        q.close()
        lst.close()
        vm.kill()


CAP_NAMES = {21: "sys_admin", 19: "sys_ptrace", 38: "perfmon", 1: "dac_override", 0: "chown"}


def caps(mask):
    return {CAP_NAMES.get(i, str(i)) for i in range(64) if mask >> i & 1}


def test_no_new_privs_and_capabilities(rig):
    """Running as root, the helper keeps only the capabilities perf needs
    (and sys_ptrace, QEMU being root with every capability)."""
    st = proc_status(rig.helper.pid)
    assert st["NoNewPrivs"] == "1"
    eff, prm, bnd = (caps(int(st[k], 16)) for k in ("CapEff", "CapPrm", "CapBnd"))
    inh = int(st["CapInh"], 16)
    amb = int(st.get("CapAmb", "0"), 16)
    print(f"\ncapabilities kept: effective {sorted(eff)}, bounding {sorted(bnd)}")
    if os.geteuid() == 0:
        assert eff == prm == bnd
        assert eff <= {"perfmon", "sys_admin", "sys_ptrace"}
        assert eff & {"perfmon", "sys_admin"}
    assert inh == 0 and amb == 0
    # And it still does its work with them.
    c = rig.client()
    r = c.cmd("set-perf-events", {"events": [{"name": "task_clock", "enabled": True}]})
    if r.get("error", {}).get("class") != "CommandNotFound":
        assert r == {"return": {}}, r


def test_event_allowlist(short_tmp):
    """--allow-event: a raw event not listed is refused, and the whole
    request with it (all-or-nothing); catalog events stay allowed."""
    r = Rig(short_tmp, extra=["--allow-event", "PERF_COUNT_SW_CPU_CLOCK"])
    try:
        c = r.client()
        req = {"events": [{"name": "task_clock", "enabled": True},
                          {"name": "PERF_COUNT_SW_PAGE_FAULTS", "enabled": True}]}
        reply = c.cmd("set-perf-events", req)
        if reply.get("error", {}).get("class") == "CommandNotFound":
            pytest.skip("set-perf-events not in this build")
        assert "error" in reply and "PERF_COUNT_SW_PAGE_FAULTS" in reply["error"]["desc"], reply
        assert "not allowed" in reply["error"]["desc"]
        info = c.command("query-perf-events", {"names": ["task_clock"]})
        assert info[0]["enabled"] is False, info
        assert c.cmd("set-perf-events", {"events": [
            {"name": "task_clock", "enabled": True},
            {"name": "PERF_COUNT_SW_CPU_CLOCK", "enabled": True}]}) == {"return": {}}
        # Disabling is always allowed.
        assert c.cmd("set-perf-events", {"events": [
            {"name": "PERF_COUNT_SW_PAGE_FAULTS", "enabled": False}]}).get("error") is None
    finally:
        r.close()


VALGRIND = shutil.which("valgrind")


@pytest.mark.skipif(not VALGRIND, reason="valgrind not installed")
@pytest.mark.skipif(SANITIZED, reason="valgrind cannot run an ASan build")
def test_valgrind_no_leak(short_tmp):
    """The helper under valgrind: clients, commands, a perf event, an
    abandoned client, then SIGTERM: no error and no definite leak."""
    log = short_tmp / "valgrind.log"
    wrapper = [VALGRIND, "--leak-check=full", "--errors-for-leak-kinds=definite",
               "--error-exitcode=99", f"--log-file={log}"]
    r = Rig(short_tmp, wrapper=wrapper)
    try:
        a = r.client(timeout=60)
        b = r.client(timeout=60)
        a.command("query-status")
        b.command("query-cpus-fast")
        a.cmd("set-perf-events", {"events": [{"name": "task_clock", "enabled": True}]})
        a.cmd("query-perf-events")
        a.send_raw(b'{"execute": "query-qmp-schema", "id": 1}\n{"execute": "query-na')
        a.close()
        req, sid = qmp.sentinel()
        b.send_raw(b'{"execute": \xff}\n' + req)
        b.read_until_id(sid)
        r.helper.proc.terminate()
        r.helper.proc.wait(60)
        text = log.read_text()
        assert r.helper.proc.returncode == 0, text[-3000:]
        assert "definitely lost: 0 bytes" in text or "All heap blocks were freed" in text, text[-3000:]
        assert "ERROR SUMMARY: 0 errors" in text, text[-3000:]
    finally:
        r.close()
