"""Fairness between clients that share the helper's one upstream monitor.

QEMU takes one request from each of its monitors in turn
(monitor_qmp_requests_pop_any_with_lock), so with direct connections a
client that keeps its queue full of slow commands delays another monitor's
command by about one of them.  Through the helper every client shares one
monitor; the helper keeps at most a couple of client requests in QEMU at a
time and takes the next one round-robin from the clients that have one
waiting (helper/upstream.c, docs/design.md "Fairness").  Without that, the
other client waited behind all 8 requests the busy one may have in flight.

Bounds are relative to the cost of one query-qmp-schema in the same run:
the larger of its round trip alone and the busy client's time per request
while the other client probes (both are measured under whatever else loads
the machine, so the bounds hold on 2 loaded cores and sanitizer builds).
With the helper's window of 2 client requests in QEMU, the other client
waits behind at most the one running and the one queued: about 1.5 of that
unit at the median, 2 at worst.  Before, it was about 5 and 8-10.
"""

import statistics
import threading
import time

from rel import qmp, shared_rig  # noqa: F401 (fixture)

SLOW = "query-qmp-schema"
DEPTH = 8  # QPH_CLIENT_MAX_INFLIGHT
BUSY_SECONDS = 2.0
PROBES = 20


def one_cost(c, n=5):
    """Median round trip of one query-qmp-schema, alone."""
    times = []
    for _ in range(n):
        t0 = time.monotonic()
        r = c.cmd(SLOW, timeout=30)
        times.append(time.monotonic() - t0)
        assert "return" in r
    return statistics.median(times)


class Busy:
    """A client that keeps DEPTH query-qmp-schema in flight, in a thread.
    Its ~200 KB replies are checked by their id only, not parsed: parsing
    would hold Python's GIL and slow down the measuring thread."""

    def __init__(self, c):
        self.c = c
        self.sent = 0
        self.answered = 0
        self.errors = []
        self.running = threading.Event()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _send(self):
        self.sent += 1
        self.c.send_raw(qmp.request(SLOW, id=f"busy-{self.sent}"))

    def _lines(self):
        buf = b""
        sock = self.c.sock
        sock.settimeout(60)
        while True:
            chunk = sock.recv(1 << 20)
            if not chunk:
                raise EOFError("the helper closed the busy client")
            buf += chunk
            *lines, buf = buf.split(b"\n")
            yield from (line.strip() for line in lines if line.strip())

    def _run(self):
        try:
            for _ in range(DEPTH):
                self._send()
            self.running.set()
            lines = self._lines()
            while self.answered < self.sent:
                line = next(lines)
                if line.startswith(b'{"timestamp"'):
                    continue  # an event
                self.answered += 1
                if not (line.startswith(b'{"return"') and
                        line.endswith(b'"id": "busy-%d"}' % self.answered)):
                    self.errors.append(line[:100] + b"..." + line[-100:])
                if not self._stop.is_set():
                    self._send()
        except Exception as e:  # noqa: BLE001
            self.errors.append(repr(e))
        finally:
            self.running.set()

    def __enter__(self):
        self._t.start()
        self.running.wait(30)
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join(120)


def test_busy_client_delays_another_by_about_one_request(shared_rig):
    """Client A keeps its 8 slots full of query-qmp-schema for ~2 s while
    client B sends query-status 20 times, one after the other: B waits
    behind about one of A's requests, not 8."""
    rig = shared_rig
    a = rig.client()
    b = rig.client()
    cost = one_cost(a)
    latencies = []
    with Busy(a) as busy:
        time.sleep(0.2)  # A's pipeline is full
        t_start, n_start = time.monotonic(), busy.answered
        deadline = time.monotonic() + BUSY_SECONDS
        for i in range(PROBES):
            t0 = time.monotonic()
            r = b.cmd("query-status", id=f"b-{i}", timeout=60)
            latencies.append(time.monotonic() - t0)
            assert r.get("id") == f"b-{i}" and "return" in r, r
            # Spread the probes over A's busy period.
            time.sleep(max(0.0, min(0.05, deadline - time.monotonic())))
        busy_answered = busy.answered - n_start
        busy_time = time.monotonic() - t_start
    assert not busy.errors, busy.errors[:3]
    # A was really busy all along, and still got its share.
    assert busy_answered >= PROBES
    per_request = busy_time / busy_answered
    unit = max(cost, per_request)
    p50 = statistics.median(latencies)
    worst = max(latencies)
    print(f"\nfairness: one {SLOW} costs {cost * 1000:.1f} ms alone, "
          f"{per_request * 1000:.1f} ms per request while busy "
          f"({busy_answered} replies); B's query-status p50 {p50 * 1000:.1f} ms "
          f"({p50 / unit:.2f} x), max {worst * 1000:.1f} ms ({worst / unit:.2f} x)")
    # The property is the median in units of A's own requests on the same
    # machine at the same time (forwarding in arrival order measured 5 x),
    # so load scales both sides.  The worst single wait is printed, not
    # asserted: one unlucky scheduling on a loaded machine is not a defect
    # (issue 11); only a hang fails.
    assert p50 < 2.5 * unit, f"B's median wait {p50:.3f}s, {p50 / unit:.1f} x one {SLOW}"
    assert worst < 30, f"B waited {worst:.3f}s: a hang"
    # Both clients are still served normally.
    assert b.command("query-status")
    assert "return" in a.cmd("query-name")
