"""Bad input from one client: the helper survives, answers that client
with QEMU's errors or disconnects it, keeps serving the others without
delay, and stays within its memory bound.

The bound, per client (helper/client.h, helper/channel.c, qmp/):
  framing: the message in progress, at most QMP_JSON_MAX_TOKEN_SIZE (64 MiB)
      of token bytes plus bounded whitespace, plus the lexer's current token
      (at most 64 MiB), each in a GString that may have doubled: 2 x 128 MiB
      in the worst case, released once the message is done;
  output: QPH_CLIENT_HARD_QUEUED (16 MiB) plus one reply, then the client is
      disconnected;
  requests: QPH_CLIENT_MAX_INFLIGHT (8) answers owed, past which the client
      is not read.
So one abusive client may cost the helper up to ~300 MiB for as long as it
sends one oversized message; RSS_BOUND_KIB below is that plus the helper's
own baseline.  Measured figures are printed (pytest -s) and noted in
docs/security.md.
"""

import os
import select
import socket
import threading
import time

import pytest

import rel
from rel import SANITIZED, qmp, rss_kib, shared_rig  # noqa: F401 (fixture)

MiB = 1 << 20
RSS_BOUND_KIB = (300 * MiB + 64 * MiB) // 1024
# Another client's round trip while one client abuses the helper only has
# to come back: this bound catches a hang, not a slow answer (an ASan build
# on a loaded 2-core machine measured 1.19 s once, and a latency assert made
# CI flake).  The worst round trip is printed; tests/bench measures latency.
HANG_BOUND = 30.0


class Prober(rel.Prober):
    """Another client timing query-status round trips in a thread (rel.py);
    here a round trip fails the test only when it looks like a hang."""

    def check(self, what):
        worst = super().check(what)
        assert worst < HANG_BOUND, f"other client waited {worst:.2f}s during {what}"
        return worst


class RssWatch:
    """Peak RSS of a process, sampled in a thread."""

    def __init__(self, pid):
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, rss_kib(self.pid))
            except (OSError, ValueError, KeyError):
                return
            time.sleep(0.01)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join(10)


def sentinel_ok(c, timeout=60):
    """The client is served again: errors from before may still arrive."""
    req, sid = qmp.sentinel()
    c.send_raw(req)
    lines = c.read_until_id(sid, timeout)
    return lines


def send_big(c, chunks):
    c.sock.settimeout(120)
    for chunk in chunks:
        c.sock.sendall(chunk)


def test_oversized_token(shared_rig):
    """A 64 MiB + 1 KiB string: QEMU's token-size error, the client is
    served again afterwards, others are not delayed, RSS stays bounded."""
    rig = shared_rig
    pid = rig.helper.pid
    c = rig.client()
    body = b"A" * MiB
    chunks = [b'{"execute": "query-name", "id": "'] + [body] * 64 + [b"A" * 1024, b'"}\n']
    with RssWatch(pid) as rss, Prober(rig) as probe:
        send_big(c, chunks)
        lines = sentinel_ok(c, timeout=120)
    probe.check("a 64 MiB token")
    errors = [qmp.parse(l) for l in lines[:-1]]
    assert errors and all(e and "error" in e for e in errors), lines[:3]
    print(f"64 MiB token: {len(errors)} error replies; helper peak RSS {rss.peak // 1024} MiB, "
          f"now {rss_kib(pid) // 1024} MiB (bound {RSS_BOUND_KIB // 1024} MiB)")
    assert SANITIZED or rss.peak < RSS_BOUND_KIB
    assert rig.helper.alive()


def test_deep_nesting(shared_rig):
    """Past QEMU's nesting limit (1024): an error, then normal service."""
    c = shared_rig.client()
    c.send_raw(b"[" * 5000 + b"]" * 5000 + b"\n")
    c.send_raw(b'{"execute": "query-name", "arguments": ' + b'{"a": ' * 2000 + b"1" + b"}" * 2001 + b"\n")
    lines = sentinel_ok(c)
    assert any(b"nesting" in l or b"error" in l for l in lines[:-1]), lines[:3]
    assert shared_rig.helper.alive()


def test_invalid_utf8(shared_rig):
    """Every kind of bad UTF-8 in strings and outside them."""
    c = shared_rig.client()
    for bad in [b"\xc3\x28", b"\xa0\xa1", b"\xe2\x28\xa1", b"\xf0\x28\x8c\x28", b"\xf8\xa1\xa1\xa1\xa1",
                b"\xed\xa0\x80", b"\xc0\x80", b"\xff\xfe", b"\xf4\x90\x80\x80"]:
        c.send_raw(b'{"execute": "query-name", "id": "' + bad + b'"}\n')
        c.send_raw(bad + b"\n")
    sentinel_ok(c)
    assert shared_rig.helper.alive()


def test_random_bytes(shared_rig):
    """8 MiB of random bytes: errors or a disconnect for that client; the
    helper and the other clients carry on."""
    rig = shared_rig
    c = rig.client()
    data = os.urandom(8 * MiB)
    with RssWatch(rig.helper.pid) as rss, Prober(rig) as probe:
        # The helper answers as it reads; read its answers meanwhile so the
        # test, not the helper, is what would block.
        stop = threading.Event()

        def reader():
            while not stop.is_set():
                r, _, _ = select.select([c.sock], [], [], 0.5)
                if not r:
                    continue
                try:
                    if not c.sock.recv(1 << 20):
                        return
                except OSError:
                    return

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        c.sock.settimeout(120)
        try:
            for i in range(0, len(data), 64 * 1024):
                c.sock.sendall(data[i:i + 64 * 1024])
        except (BrokenPipeError, ConnectionResetError):
            pass  # disconnected: allowed
        time.sleep(0.5)
        stop.set()
        t.join(5)
    probe.check("8 MiB of random bytes")
    print(f"random bytes: helper peak RSS {rss.peak // 1024} MiB")
    assert SANITIZED or rss.peak < RSS_BOUND_KIB
    assert rig.helper.alive()
    # A new client is served normally.
    assert rig.client().command("query-status")["status"] in ("running", "prelaunch", "paused")


def test_client_never_reads(shared_rig):
    """A client that sends commands with big answers (query-qmp-schema,
    ~200 KB each) and never reads them: the helper stops reading it once
    1 MiB is queued (QPH_CLIENT_MAX_QUEUED) and disconnects it past 16 MiB
    (QPH_CLIENT_HARD_QUEUED); memory stays bounded; the other client keeps
    being answered.

    Its wait is bounded by the abuser's requests that QEMU runs before the
    other client's.  The helper lets at most QPH_UPSTREAM_FAIR_WINDOW (2)
    client requests into QEMU and picks the next one round-robin
    (test_fairness.py measures that); this test keeps the looser bound of
    the abuser's QPH_CLIENT_MAX_INFLIGHT (8) requests; the worst round trip
    is printed, and only a hang (HANG_BOUND) fails the test."""
    rig = shared_rig
    d = rig.direct()
    t0 = time.monotonic()
    d.cmd_raw("query-qmp-schema")
    cost = time.monotonic() - t0
    d.close()
    c = rig.client()
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    req = b'{"execute": "query-qmp-schema"}\n'
    closed = False
    stalled = 0.0
    with RssWatch(rig.helper.pid) as rss, Prober(rig) as probe:
        c.sock.settimeout(0.2)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and stalled < 5.0:
            try:
                c.sock.send(req * 16)
                stalled = 0.0
            except socket.timeout:
                stalled += 0.2  # the helper does not read us any more
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            time.sleep(0.01)
        # Events still go to it: past 16 MiB it is disconnected.
    assert not probe.errors, probe.errors[:3]
    worst = max(probe.latencies)
    print(f"\nnever-reading client: disconnected={closed}, no longer read={stalled >= 5.0}; "
          f"helper peak RSS {rss.peak // 1024} MiB; other client {len(probe.latencies)} round trips, "
          f"worst {worst * 1000:.0f} ms (one query-qmp-schema costs {cost * 1000:.0f} ms)")
    assert closed or stalled >= 5.0, "the helper kept reading a client that never reads"
    assert worst < HANG_BOUND
    assert SANITIZED or rss.peak < RSS_BOUND_KIB
    assert rig.helper.alive()


def test_client_past_hard_limit_is_disconnected(shared_rig):
    """A reply bigger than QPH_CLIENT_HARD_QUEUED (16 MiB) to a client that
    does not read: the helper drops its queue and closes its socket (it
    used to wait forever for the queue to drain, keeping both)."""
    rig = shared_rig
    c = rig.client()
    c.sock.settimeout(120)
    c.sock.sendall(b'{"execute": "query-name", "id": "' + b"A" * (20 * MiB) + b'"}\n')
    p = select.poll()
    p.register(c.sock, select.POLLRDHUP | select.POLLHUP)
    deadline = time.monotonic() + 20
    events = []
    while time.monotonic() < deadline and not events:
        events = p.poll(200)
    assert events, "the helper kept the connection of a client past the hard limit"
    assert rig.helper.alive()
    assert rig.client().command("query-status")
