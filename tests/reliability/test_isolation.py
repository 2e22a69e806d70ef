"""No client can hurt the other clients or the VM (issue 11, items 1, 4,
5, 8, 9, 10): each test is an attack one client (or the machine) makes,
what QEMU itself answers the same bytes where it answers them, and a
check that the helper stays usable for everyone else.  Measured figures
(peak memory, another client's worst round trip) are printed (pytest -s)
and noted in docs/security.md, "Isolation between clients".
"""

import os
import resource
import signal
import socket
import time

import pytest

from rel import SANITIZED, Prober, fds, qmp, rig, short_tmp  # noqa: F401 (fixtures)


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
    with Prober(rig) as probe:
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
            waiting = [qmp.QMPClient(rig.helper.listen, read_greeting=False)
                       for _ in range(3)]
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
    probe.check("out of descriptors")
    assert rig.client().command("query-status")
    assert b"Unable to accept a client" in rig.helper.log_path.read_bytes()


# -- item 1: limits as forwarded -------------------------------------------------

def tokens_request(n_tokens, id=None):
    """query-status with an array argument, exactly @n_tokens JSON tokens
    (an id member adds 4 more)."""
    k = (n_tokens - 13) // 2
    assert 13 + 2 * k == n_tokens
    body = b'{"execute":"query-status","arguments":{"a":[' + b"0," * (k - 1) + b"0]}"
    if id is not None:
        body += b',"id":' + id
    return body + b"}"


# QEMU's monitor reads one byte per main loop iteration: a 2 MB request
# costs it about 50 s of CPU.  Too slow for CI on 2 shared cores; the class
# of bug is covered there by tests/fuzz/fuzz-splice-limits.c (small limits)
# and its regressions.  QPH_SLOW_TESTS=1 runs it against QEMU's own size.
SLOW = os.environ.get("QPH_SLOW_TESTS", "") not in ("", "0")


@pytest.mark.skipif(not SLOW, reason="about 3 minutes of QEMU CPU: set QPH_SLOW_TESTS=1")
def test_requests_near_token_count_limit(rig):
    """Two requests of 2,097,149 tokens (3 under QEMU's 2 Mi): QEMU answers
    each "Parameter 'a' is unexpected".  Through the helper, which adds
    an id (4 tokens), they used to exceed the limit as forwarded; QEMU's
    id-less "JSON token count limit exceeded" answers were dropped and all
    forwarding stopped.  Now the answers match QEMU's byte for byte, the
    other client is served meanwhile, and new clients can negotiate."""
    req = tokens_request(2097149)
    d = rig.direct()
    d.sock.settimeout(300)
    d.send_raw(req)
    direct = d.read_reply_raw(timeout=300)
    assert direct == (b'{"error": {"class": "GenericError", '
                      b'"desc": "Parameter \'a\' is unexpected"}}\r\n'), direct
    # The other client's commands share the one monitor with QEMU reading
    # the 2 MB (docs/security.md, "Known limit"): its wait is reported.
    with Prober(rig, timeout=300) as probe:
        c = rig.client(timeout=300)
        c.sock.settimeout(300)
        c.send_raw(req + req)
        proxied = c.read_replies_raw(2, timeout=300)
        assert proxied == [direct, direct]
        # Forwarding goes on: for this client, others, and new ones.
        assert c.command("query-status")
        assert rig.client().command("query-status")
    probe.check("two 2,097,149-token requests")


# -- item 4: large replies --------------------------------------------------------

def read_line_big(cl, timeout=120, pause=None, pause_for=0.0):
    """The next CRLF-terminated line of client @cl, of any size, read as
    fast as possible (or, with @pause, a 64 KiB read every @pause seconds
    for @pause_for s).  What follows it stays in the client's buffer."""
    buf = bytearray(cl._buf)
    cl._buf = b""
    cl.sock.settimeout(timeout)
    t0 = time.monotonic()
    while b"\r\n" not in buf:
        chunk = cl.sock.recv(64 * 1024 if pause else 1 << 20)
        if not chunk:
            raise qmp.QMPClosed(f"closed after {len(buf)} bytes")
        buf += chunk
        if pause and time.monotonic() - t0 < pause_for:
            time.sleep(pause)
    end = buf.index(b"\r\n") + 2
    cl._buf = bytes(buf[end:])
    return bytes(buf[:end])


XP = {"command-line": "xp /3000000xb 0"}


def test_large_reply_reaches_reader(rig):
    """human-monitor-command "xp /3000000xb 0" (about 22.9 MB from QEMU):
    a client reading as fast as it can, and one that first reads 64 KiB
    every 2 s for longer than QPH_CLIENT_STALL_S (10 s), get QEMU's answer
    byte for byte; the helper's peak memory (VmHWM) is reported."""
    d = rig.direct()
    d.command("stop")  # guest memory stays as it is for both reads
    d.send_raw(qmp.request("human-monitor-command", XP, id="xp"))
    direct = read_line_big(d)
    print(f"\nQEMU's answer: {len(direct)} bytes")
    assert len(direct) > 20_000_000 and direct.endswith(b'"id": "xp"}\r\n')
    pid = rig.helper.pid
    hwm0 = vm_hwm_kib(pid)
    with Prober(rig) as probe:
        c = rig.client()
        c.send_raw(qmp.request("human-monitor-command", XP, id="xp"))
        fast = read_line_big(c)
        hwm_fast = vm_hwm_kib(pid)
        c.send_raw(qmp.request("human-monitor-command", XP, id="xp"))
        slow = read_line_big(c, pause=2.0, pause_for=12.0)
    worst = probe.check("two 22.9 MB replies")
    print(f"large reply: helper VmHWM {hwm0 // 1024} MiB before, {hwm_fast // 1024} MiB after "
          f"one, {vm_hwm_kib(pid) // 1024} MiB after both; other client worst "
          f"{worst * 1000:.0f} ms")
    assert fast == direct
    assert slow == direct
    # Passed through as it came: the helper holds a window of it, and its
    # queue to the client what the client has not read yet (all of it at
    # worst, on a loaded machine); holding it whole, it grew by 43 MiB.
    assert SANITIZED or (hwm_fast - hwm0) * 1024 < 1.5 * len(direct), (hwm0, hwm_fast)
    # Behind an answer still owed (thread labels asked of QEMU first) it
    # waits whole, in order; an exec-oob answer during it waits after it.
    o = rig.client(negotiate=False)
    o.negotiate(oob=True)
    o.send_raw(qmp.request("query-perf-events", {"per-thread": True}, id="q")
               + qmp.request("human-monitor-command", XP, id="xp")
               + qmp.request("query-name", id="n"))
    assert b'"id": "q"' in o.read_line(timeout=60)
    assert read_line_big(o) == direct
    assert b'"id": "n"' in o.read_line(timeout=60)
    o.send_raw(qmp.request("human-monitor-command", XP, id="xp"))
    time.sleep(0.5)
    o.send_raw(qmp.request("query-perf-events", id="oob", oob=True))
    first = read_line_big(o)
    assert first == direct or b'"id": "oob"' in first, first[:200]
    if first != direct:
        assert read_line_big(o) == direct
    else:
        assert b'"id": "oob"' in o.read_line(timeout=60)
    assert c.command("query-status")
    d.command("cont")


def uss_kib(pid):
    """Private memory (USS: private clean + dirty) from smaps_rollup."""
    v = {}
    for line in open(f"/proc/{pid}/smaps_rollup"):
        key, _, rest = line.partition(":")
        if key in ("Private_Clean", "Private_Dirty"):
            v[key] = int(rest.split()[0])
    return v["Private_Clean"] + v["Private_Dirty"]


def test_memory_returns_after_large_reply(rig):
    """After a 20 MB answer went through, the helper's private memory goes
    back to about what it was idle: the upstream buffer that held it is
    replaced (its size is the most it held, not what is left) and freed heap
    is returned (malloc_trim once the loop is idle, and again when the
    queued answer has been written), before the helper next sleeps.
    Before, USS stayed at about 2.5 x idle (0.82 -> 2.05 MiB)."""
    pid = rig.helper.pid
    c = rig.client()
    assert c.command("query-status")
    time.sleep(1.0)
    idle = uss_kib(pid)
    c.send_raw(qmp.request("human-monitor-command",
                           {"command-line": "xp /2650000xb 0"}, id="xp"))
    answer = read_line_big(c)
    assert len(answer) > 19_000_000, len(answer)
    time.sleep(0.5)  # the helper's last turn after the answer, not a timer
    after = uss_kib(pid)
    print(f"\nhelper USS idle {idle / 1024:.2f} MiB, after a {len(answer) / 1e6:.1f} MB "
          f"answer {after / 1024:.2f} MiB ({after / idle:.2f} x)")
    # Sanitizers keep freed memory in quarantine: nothing to measure there.
    assert SANITIZED or (after <= idle + 512 and after <= 2 * idle), (idle, after)
