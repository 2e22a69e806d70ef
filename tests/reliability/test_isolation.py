"""No client can hurt the other clients or the VM (issue 11, items 1, 4,
5, 8, 9, 10): each test is an attack one client (or the machine) makes,
what QEMU itself answers the same bytes where it answers them, and a
check that the helper stays usable for everyone else.  Measured figures
(peak memory, another client's worst round trip) are printed (pytest -s)
and noted in docs/security.md, "Isolation between clients".
"""

import errno
import os
import resource
import signal
import socket
import threading
import time

import pytest

from rel import SANITIZED, fc, fds, qmp, rig, shared_rig, short_tmp  # noqa: F401 (fixtures)


def proc_cpu_seconds(pid):
    """utime + stime of a process (kernel accounting), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def vm_hwm_kib(pid):
    """Peak resident set (VmHWM) of a process."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


class Prober:
    """Another client timing query-status round trips in a thread; a
    hang shows as an error (30 s), latencies are only reported."""

    def __init__(self, rig):
        self.c = rig.client()
        self.latencies = []
        self.errors = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        i = 0
        while not self._stop.is_set():
            i += 1
            t0 = time.monotonic()
            try:
                r = self.c.cmd("query-status", id=f"probe-{i}", timeout=30)
                if r.get("id") != f"probe-{i}" or "return" not in r:
                    self.errors.append(r)
            except Exception as e:  # noqa: BLE001
                self.errors.append(repr(e))
                return
            self.latencies.append(time.monotonic() - t0)
            time.sleep(0.02)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join(60)

    def check(self, what):
        assert not self.errors, f"other client failed during {what}: {self.errors[:3]}"
        assert self.latencies, f"other client got no answer during {what}"
        worst = max(self.latencies)
        print(f"\n{what}: other client {len(self.latencies)} round trips, "
              f"worst {worst * 1000:.1f} ms")
        return worst


# -- item 10: a burst of connects -------------------------------------------------

def test_burst_of_300_connects(rig):
    """300 clients connect while the helper is not scheduled (SIGSTOP): all
    wait in the backlog (SOMAXCONN, not 128) and all get the greeting."""
    os.kill(rig.helper.pid, signal.SIGSTOP)
    socks, refused = [], 0
    try:
        for _ in range(300):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect(rig.helper.listen)
                socks.append(s)
            except (BlockingIOError, ConnectionRefusedError):
                refused += 1
                s.close()
    finally:
        os.kill(rig.helper.pid, signal.SIGCONT)
    try:
        print(f"\n300 connects: {len(socks)} queued, {refused} refused")
        assert refused == 0
        for s in socks:
            s.setblocking(True)
            s.settimeout(30)
            buf = b""
            while b"\n" not in buf:
                chunk = s.recv(4096)
                assert chunk, "the helper closed a queued client"
                buf += chunk
            assert buf.startswith(b'{"QMP"')
    finally:
        for s in socks:
            s.close()
    assert rig.client().command("query-status")


# -- item 5: out of descriptors ------------------------------------------------

def test_out_of_descriptors_does_not_spin(rig):
    """With accept() failing EMFILE (RLIMIT_NOFILE lowered on the helper by
    prlimit), the helper neither spins nor floods its log; the clients it
    has keep being served, and once one leaves a waiting one is accepted."""
    pid = rig.helper.pid
    first = rig.client()
    n_open = len(fds(pid))
    limit = n_open + 2
    old = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (limit, old[1]))
    extra = []
    try:
        # Fill the table: clients up to the limit are served ...
        while len(fds(pid)) < limit:
            extra.append(rig.client())
        # ... the next ones wait in the backlog, accept() failing EMFILE.
        waiting = [qmp.QMPClient(rig.helper.listen, read_greeting=False) for _ in range(3)]
        log0 = rig.helper.log_path.stat().st_size
        cpu0 = proc_cpu_seconds(pid)
        time.sleep(3.0)
        cpu = proc_cpu_seconds(pid) - cpu0
        log = rig.helper.log_path.stat().st_size - log0
        print(f"\nout of descriptors for 3 s: helper CPU {cpu * 1000:.0f} ms, "
              f"log grew {log} bytes")
        assert cpu < 0.5, f"the helper spun: {cpu:.2f} s of CPU in 3 s"
        assert log < 4096, f"the helper flooded its log: {log} bytes in 3 s"
        assert first.command("query-status")
        # A client leaves: a waiting one gets its greeting.
        extra.pop().close()
        line = waiting[0].read_line(timeout=10)
        assert line.startswith(b'{"QMP"')
        for w in waiting:
            w.close()
    finally:
        resource.prlimit(pid, resource.RLIMIT_NOFILE, old)
        for c in extra:
            c.close()
    assert rig.client().command("query-status")
    assert b"Unable to accept a client" in rig.helper.log_path.read_bytes()
