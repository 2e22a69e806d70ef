"""Faults around the helper: QEMU killed, the helper told to stop, clients
churning, QEMU stalled.  Each test reads like what an operator would see."""

import os
import signal
import socket
import threading
import time

import pytest

from rel import SANITIZED, Helper, fc, fds, perf_fds, qmp, rig, rss_kib, short_tmp  # noqa: F401 (fixtures)


def wait_exit(proc, timeout):
    t0 = time.monotonic()
    proc.wait(timeout)
    return time.monotonic() - t0


def enable_task_clock(c):
    r = c.cmd("set-perf-events", {"events": [{"name": "task_clock", "enabled": True}]})
    if "error" in r and r["error"]["class"] == "CommandNotFound":
        return False
    assert r == {"return": {}}, r
    return True


def test_qemu_sigkill(rig):
    """QEMU dies: the helper exits promptly, removes its socket and has
    released its perf descriptors (it is gone, with nothing left behind)."""
    c = rig.client()
    had_perf = enable_task_clock(c)
    if had_perf:
        assert perf_fds(rig.helper.pid), "task_clock enabled but no perf fd open"
    os.kill(rig.vm.pid, signal.SIGKILL)
    took = wait_exit(rig.helper.proc, 30)
    print(f"\nhelper exited {took * 1000:.0f} ms after QEMU's SIGKILL (perf enabled: {had_perf})")
    assert took < 30  # a hang bound; the time is printed
    assert not os.path.exists(rig.helper.listen)
    with pytest.raises(qmp.QMPClosed):
        c.read_line(timeout=2)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_helper_signal_then_takeover(rig, sig):
    """The helper is stopped: clean exit, socket removed, QEMU unaffected;
    a new helper attaches to the same QEMU and serves it."""
    c = rig.client()
    had_perf = enable_task_clock(c)
    rig.helper.proc.send_signal(sig)
    took = wait_exit(rig.helper.proc, 30)
    print(f"\nhelper exited {took * 1000:.0f} ms after {sig.name}")
    assert rig.helper.proc.returncode == 0, rig.helper.log()
    assert took < 30  # a hang bound; the time is printed
    assert not os.path.exists(rig.helper.listen)
    assert rig.vm.proc.poll() is None
    d = rig.direct()
    assert d.command("query-status")["status"] == "running"
    if had_perf:
        # No counter of the old helper is left on QEMU's threads: the
        # new helper starts with nothing enabled.
        pass
    rig.helper = Helper(rig.dir, rig.vm.proxied_path).start()
    c2 = rig.client()
    assert c2.command("query-status")["status"] == "running"
    if had_perf:
        r = c2.command("query-perf-events", {"names": ["task_clock"]})
        assert r and r[0].get("enabled") is False, r


def churn_once(path, i):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(path)
    mode = i % 5
    if mode == 0:
        s.close()                           # before reading the greeting
        return
    s.recv(4096)
    if mode == 1:
        s.sendall(b'{"execute": "qmp_capabilities"}')
    elif mode == 2:
        s.sendall(b'{"execute": "qmp_capabilities"}\n{"execute": "query-qmp-schema", "id": 1}\n')
    elif mode == 3:
        s.sendall(b'{"execute": "qmp_capabilities"}\n{"execute": "query-status", "id": 1}\n'
                  b'{"execute": "query-cpus-fast", "id": 2}\n{"execute": "query-na')
    else:
        s.sendall(b'{"execute": "qmp_capabilities"}\n')
        s.recv(4096)
        s.sendall(b'{"execute": "query-status"}\n')
        s.recv(4096)
    s.close()                               # mid-command, replies unread


def test_client_churn_no_growth(rig):
    """500 clients connect, send and vanish mid-command: afterwards the
    helper holds the same descriptors, and its RSS has not grown beyond
    allocator noise."""
    path = rig.helper.listen
    pid = rig.helper.pid
    c = rig.client()
    for i in range(100):                    # warm up allocator and caches
        churn_once(path, i)
    c.command("query-status")
    time.sleep(0.5)
    fds_before, rss_before = fds(pid), rss_kib(pid)
    for i in range(500):
        churn_once(path, i)
    c.command("query-status")
    time.sleep(0.5)
    c.command("query-status")
    fds_after, rss_after = fds(pid), rss_kib(pid)
    print(f"\nchurn: fds {len(fds_before)} -> {len(fds_after)}, RSS {rss_before} -> {rss_after} KiB")
    assert sorted(fds_after) == sorted(fds_before), (fds_before, fds_after)
    assert SANITIZED or rss_after - rss_before < 2048


def test_qemu_stalled(rig):
    """QEMU stopped with SIGSTOP for 3 s while three clients send numbered
    commands: after SIGCONT every reply arrives, in order, to the right
    client."""
    clients = [rig.client(timeout=30) for _ in range(3)]
    n = 40
    for k, c in enumerate(clients):
        c.send_raw(b"".join(qmp.request("query-status", id=f"c{k}-{i}") for i in range(n // 2)))
    os.kill(rig.vm.pid, signal.SIGSTOP)
    try:
        time.sleep(0.5)
        for k, c in enumerate(clients):
            c.send_raw(b"".join(qmp.request("query-name", id=f"c{k}-{i}") for i in range(n // 2, n)))
        time.sleep(2.5)
        assert rig.helper.alive()
    finally:
        os.kill(rig.vm.pid, signal.SIGCONT)
    for k, c in enumerate(clients):
        ids = [qmp.parse(c.read_reply_raw())["id"] for _ in range(n)]
        assert ids == [f"c{k}-{i}" for i in range(n)]
    print(f"\nstall: {3 * n} replies after SIGCONT, none lost or reordered")
