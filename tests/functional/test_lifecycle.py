"""The helper process: it follows QEMU's life and cleans up its socket.

Attach mode:  qemu-perf-helper --qemu QEMU-QMP-SOCKET --listen SOCKET
Launch mode:  qemu-perf-helper --listen SOCKET -- qemu-system-x86_64 ARGS...

Every test here starts its own VM: they quit or kill it.
"""

import os
import signal
import subprocess
import time

import pytest

import conftest
import qmp

EXIT_TIMEOUT = 10


def wait_exit(proc, timeout=EXIT_TIMEOUT, what="the helper"):
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{what} (pid {proc.pid}) did not exit within {timeout}s")


def test_quit_through_helper(real_helper, fresh_env):
    """`quit` through the helper: the reply, then EOF; QEMU and the helper
    exit 0 and the helper's socket is gone.

    QEMU 7.2 sends SHUTDOWN to every monitor except the one that issued
    `quit`. Through the helper that monitor is the helper's own upstream, so
    the asking client gets no SHUTDOWN (as on a monitor of its own) and
    another helper client gets none either, or exactly QEMU's.
    """
    env = fresh_env
    d = env.direct()
    a, b = env.client(), env.client()
    assert a.cmd("quit", id="q") == {"return": {}, "id": "q"}
    da, db, dd = (c.wait_closed(EXIT_TIMEOUT) for c in (a, b, d))
    assert [qmp.parse(x)["event"] for x in dd] == ["SHUTDOWN"], dd
    assert da == [], "the client that sent quit got more than its reply"
    assert db in ([], dd), f"SHUTDOWN through the helper differs from QEMU's: {db} vs {dd}"
    assert wait_exit(env.vm.proc, what="QEMU") == 0
    assert wait_exit(env.helper.proc) == 0, env.helper.log()
    assert not os.path.exists(env.helper.listen), "the helper left its socket behind"


def test_quit_from_other_monitor(real_helper, fresh_env):
    """`quit` on QEMU's other monitor: helper clients get QEMU's SHUTDOWN
    event, then EOF; the helper exits 0 and removes its socket."""
    env = fresh_env
    d = env.direct()
    a = env.client()
    u = env.client(negotiate=False)
    assert d.cmd("quit", id="q") == {"return": {}, "id": "q"}
    ra = a.wait_closed(EXIT_TIMEOUT)
    assert [qmp.parse(x)["event"] for x in ra] == ["SHUTDOWN"], ra
    assert u.wait_closed(EXIT_TIMEOUT) == [], "un-negotiated client got an event"
    assert wait_exit(env.vm.proc, what="QEMU") == 0
    assert wait_exit(env.helper.proc) == 0, env.helper.log()
    assert not os.path.exists(env.helper.listen), "the helper left its socket behind"


def test_qemu_killed(real_helper, fresh_env):
    """QEMU dies without a word: the helper closes its clients, exits and
    removes its socket."""
    env = fresh_env
    a = env.client()
    u = env.client(negotiate=False)
    os.kill(env.vm.pid, signal.SIGKILL)
    env.vm.proc.wait(EXIT_TIMEOUT)
    a.wait_closed(EXIT_TIMEOUT)
    u.wait_closed(EXIT_TIMEOUT)
    status = wait_exit(env.helper.proc)
    assert not os.path.exists(env.helper.listen), \
        f"the helper (status {status}) left its socket behind"


def test_helper_outlives_clients(real_helper, fresh_env):
    """Clients come and go, including abruptly; the helper stays, and a
    client after them gets a clean session."""
    env = fresh_env
    for i in range(20):
        c = env.client(negotiate=(i % 2 == 0))
        if i % 3 == 0:
            c.send_raw(qmp.request("query-qmp-schema", id=i))
        if i % 5 == 0:
            c.send_raw(b'{"execute": "query-status", "id": [1, 2, {"half": ')
        env.abandon(c)
    assert env.helper.alive(), env.helper.log()
    c = env.client()
    assert c.cmd("query-name", id="last") == {"return": {}, "id": "last"}
    assert c.pending(0.3) == b""


def test_attach_to_missing_qemu(real_helper, short_tmp):
    """No QEMU at --qemu: the helper fails and never creates its socket."""
    listen = str(short_tmp / "helper.sock")
    proc = subprocess.Popen([str(conftest.HELPER), "--qemu", str(short_tmp / "nothing.sock"),
                             "--listen", listen], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        status = proc.wait(EXIT_TIMEOUT)
    finally:
        conftest.kill_proc(proc)
    assert status != 0
    assert not os.path.exists(listen)


def test_socket_ready_when_it_appears(real_helper, fresh_env):
    """The listening socket appears only once the helper is ready: watched
    closely from the moment it exists, it is already listening. (A helper
    that binds the final name and then listens leaves a window in which
    connect() is refused.) Several starts against the same QEMU."""
    env = fresh_env
    env.helper.kill()
    for i in range(10):
        listen = str(env.vm.dir / f"h{i}.sock")
        proc = subprocess.Popen([str(conftest.HELPER), "--qemu", env.vm.proxied_path,
                                 "--listen", listen], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + EXIT_TIMEOUT
            while not os.path.exists(listen):
                assert proc.poll() is None, f"helper exited with {proc.returncode}"
                assert time.monotonic() < deadline, "socket never appeared"
            assert qmp.is_listening(listen), f"start {i}: {listen} exists but is not listening"
            with qmp.QMPClient(listen) as c:
                c.negotiate()
        finally:
            conftest.kill_proc(proc, signal.SIGTERM)
        assert not os.path.exists(listen), "the helper left its socket behind after SIGTERM"


def test_listen_socket_mode(real_helper, fresh_env):
    st = os.stat(fresh_env.helper.listen)
    assert st.st_mode & 0o777 == 0o600, oct(st.st_mode)


# -- launch mode ---------------------------------------------------------------

def launch(dir, qemu_args, listen=None):
    listen = listen or str(dir / "launch.sock")
    log = open(dir / "launch.log", "wb")
    proc = subprocess.Popen([str(conftest.HELPER), "--listen", listen, "--"] + qemu_args,
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    return proc, listen


@pytest.fixture
def launched(real_helper, short_tmp):
    procs = []

    def start(qemu_args):
        proc, listen = launch(short_tmp, qemu_args)
        procs.append(proc)
        return proc, listen
    yield start
    for p in procs:
        conftest.kill_proc(p, signal.SIGTERM)


def _threads_parent(tid):
    """The parent pid of the process that thread ``tid`` belongs to."""
    with open(f"/proc/{tid}/status") as f:
        tgid = int(next(line for line in f if line.startswith("Tgid:")).split()[1])
    with open(f"/proc/{tgid}/stat") as f:
        return tgid, int(f.read().rsplit(")", 1)[1].split()[1])


def test_launch_mode(launched, short_tmp):
    args = (conftest.qemu_base_args()
            + conftest.vm_extra_args(short_tmp, spin=True, smp=2))
    proc, listen = launched(args)
    qmp.wait_for_listening(listen, 15, proc)
    assert os.stat(listen).st_mode & 0o777 == 0o600
    c = qmp.QMPClient(listen)
    try:
        assert c.greeting["QMP"]["version"]["qemu"]["major"] >= 7
        assert "oob" in c.greeting["QMP"]["capabilities"]
        c.negotiate()
        assert c.command("query-status")["status"] == "running"
        cpus = c.command("query-cpus-fast")
        assert [x["cpu-index"] for x in cpus] == [0, 1]
        qemu_pid, parent = _threads_parent(cpus[0]["thread-id"])
        assert parent == proc.pid, "QEMU is not a child of the launching helper"
        assert c.cmd("quit", id="q") == {"return": {}, "id": "q"}
        c.wait_closed(EXIT_TIMEOUT)
    finally:
        c.close()
    assert wait_exit(proc) == 0, (short_tmp / "launch.log").read_text(errors="replace")
    assert not os.path.exists(listen)


def test_launch_mode_two_clients(launched, short_tmp):
    proc, listen = launched(conftest.qemu_base_args())
    qmp.wait_for_listening(listen, 15, proc)
    with qmp.QMPClient(listen) as a, qmp.QMPClient(listen) as b:
        a.negotiate()
        b.negotiate()
        a.send_raw(qmp.request("query-name", id=1))
        b.send_raw(qmp.request("query-status", id=1))
        assert a.read_reply() == {"return": {}, "id": 1}
        assert "status" in b.read_reply()["return"]
        b.command("quit")
        a.wait_closed(EXIT_TIMEOUT)
    assert wait_exit(proc) == 0


def test_launch_mode_exit_status(launched, short_tmp):
    """QEMU refusing its arguments: the helper exits with QEMU's status."""
    bad = conftest.qemu_base_args() + ["-no-such-option"]
    expected = subprocess.run(bad, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=EXIT_TIMEOUT).returncode
    assert expected != 0
    proc, listen = launched(bad)
    assert wait_exit(proc) == expected, (short_tmp / "launch.log").read_text(errors="replace")
    assert not os.path.exists(listen)


def test_launch_mode_qemu_sigterm(launched, short_tmp):
    """QEMU stopped by SIGTERM exits 0 on its own; so does the helper."""
    proc, listen = launched(conftest.qemu_base_args())
    qmp.wait_for_listening(listen, 15, proc)
    with qmp.QMPClient(listen) as c:
        c.negotiate()
        qemu_pid, _ = _threads_parent(c.command("query-cpus-fast")[0]["thread-id"])
        os.kill(qemu_pid, signal.SIGTERM)
        c.wait_closed(EXIT_TIMEOUT)
    assert wait_exit(proc) == 0
    assert not os.path.exists(listen)
