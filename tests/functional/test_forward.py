"""QEMU is given a client's in-band request as the client sent it (issue 13).

The helper used to splice its own integer id into every request and put the
client's back into the answer; QEMU reads a monitor one byte per recvmsg(),
so those bytes cost it a main-loop turn each.  Now an in-band request goes
byte for byte and QEMU's answer, matched by order, comes back as QEMU wrote
it; only exec-oob requests carry the helper's id ("qph-oob-N").

Each test compares two things against QEMU's own monitor given the same
bytes: the answers, byte for byte, and what QEMU parsed, read from its
trace (`handle_qmp_command` prints each request as QEMU parsed it, id
included).  The VM of this module runs with that trace on.
"""

import json
import re
import time

import pytest

import conftest as fc
import qmp
from qmp import exchange, same_bytes

TRACE_RE = re.compile(rb"^handle_qmp_command mon (0x[0-9a-f]+) req: (.*)$")
# The helper's own upstream calls (vm.c, proxy.c): none of these tests
# sends them.
OWN_CALLS = {"query-cpus-fast", "query-iothreads", "query-commands"}


class Trace:
    """QEMU's handle_qmp_command trace: the requests each monitor parsed."""

    def __init__(self, path):
        self.path = path
        self.pos = 0
        self.mons = {}  # "direct" / "helper" -> monitor address
        self.seen = {}  # monitor address -> requests read, not yet taken

    def _read(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.pos)
                data = f.read()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n") + 1
        self.pos += end
        for line in data[:end].splitlines():
            m = TRACE_RE.match(line)
            if m:
                self.seen.setdefault(m.group(1).decode(), []).append(
                    json.loads(m.group(2)))

    def skip(self):
        """Forget what was traced so far."""
        self._read()
        self.seen = {}

    def take(self, who, n, timeout=10.0):
        """The next requests monitor @who parsed (the helper's own calls
        left out), waiting up to @timeout for @n of them."""
        deadline = time.monotonic() + timeout
        while True:
            self._read()
            got = [r for r in self.seen.get(self.mons[who], [])
                   if not (who == "helper" and isinstance(r, dict)
                           and r.get("execute") in OWN_CALLS)]
            if len(got) >= n or time.monotonic() > deadline:
                self.seen[self.mons[who]] = []
                return got
            time.sleep(0.02)


@pytest.fixture(scope="module")
def traced(tmp_path_factory):
    """A VM tracing the requests its monitors parse, the helper in front."""
    d, _ = fc.short_dir(tmp_path_factory.mktemp("fwd", numbered=True))
    log = d / "trace.log"
    env = None
    try:
        env = fc.make_env(d, extra_args=["-trace", "enable=handle_qmp_command",
                                         "-D", str(log)])
        if env.selftest:
            pytest.skip("needs the helper in front of QEMU")
        trace = Trace(log)
        # Which monitor is which: the one a direct client's marker reaches.
        d0 = env.direct()
        # Guest memory stays as it is: xp reads the same bytes each time.
        d0.command("stop")
        d0.cmd("query-name", id="direct-marker")
        trace._read()
        for mon, reqs in trace.seen.items():
            if {"execute": "query-name", "id": "direct-marker"} in reqs:
                trace.mons["direct"] = mon
            else:
                trace.mons["helper"] = mon
        assert len(trace.mons) == 2, trace.seen
        env.close_clients()
        yield env, trace
    finally:
        fc.destroy_env(env)


@pytest.fixture
def fwd(traced):
    env, trace = traced
    yield env, trace
    env.close_clients()
    assert env.helper.alive()
    assert "Dropping" not in env.helper.log(), env.helper.log()


def parsed(data):
    """The JSON values in @data, in order, as QEMU would parse them."""
    dec, text, out = json.JSONDecoder(), data.decode(), []
    text = text.replace("'single-quoted'", '"single-quoted"')
    while text.strip():
        text = text.lstrip()
        v, end = dec.raw_decode(text)
        out.append(v)
        text = text[end:]
    return out


# Raw id texts of every JSON type, and odd spellings QEMU re-serializes.
IDS = [
    None,
    b'"abc"',
    b'"esc\\"aped \\u00e9 \\ud83d\\ude00"',
    b"'single-quoted'",
    b'0',
    b'-7',
    b'18446744073709551615',
    b'18446744073709551616',
    b'1.50',
    b'1E+2',
    b'{ "b" :1,\t"a": [ 1 , {"z": null, "y": "s"} ] }',
    b'{}',
    b'[1, "two", [], null]',
    b'null',
    b'true',
    b'false',
    b'"qph-oob-1"',
]


def with_id(body, raw_id):
    """@body (a request without its closing brace) with @raw_id, or none."""
    return body + (b', "id": ' + raw_id if raw_id is not None else b"") + b"}"


def requests_with(raw_id):
    return (with_id(b'{"execute": "query-status"', raw_id)
            + with_id(b'{"execute": "no-such-command"', raw_id)
            + with_id(b'{"execute": "query-status", "arguments": {"x": 1}', raw_id)
            + with_id(b'{"arguments": {"path": "/machine", "property": "type"},'
                      b' "execute": "qom-get"', raw_id))


def test_ids_of_every_type_reach_qemu_as_sent(fwd):
    """Requests with ids of every JSON type, and none: the answers are
    QEMU's to a direct client byte for byte, and QEMU parsed the same
    requests from both (before issue 13 it saw the helper's id)."""
    env, trace = fwd
    d, h = env.pair()
    trace.skip()
    data = b"".join(requests_with(i) for i in IDS)
    n = 4 * len(IDS) + 1  # and exchange()'s sentinel
    dl, hl = exchange([d, h], data)
    assert len(dl) == n, dl
    same_bytes(dl, hl)
    direct, helper = trace.take("direct", n), trace.take("helper", n)
    assert len(direct) == n, direct
    assert helper == direct


def test_clients_with_equal_ids_interleaved(fwd):
    """Three clients send bursts with the same ids (and none) at once, in
    small pieces that interleave; each gets exactly QEMU's answers to its
    own bytes, in order, and QEMU parsed each request as sent."""
    env, trace = fwd
    ids = [b'1', b'1', b'"x"', None, b'null', b'{"a": 1}', b'[1]', b'1']
    bodies = [b'{"execute": "query-name"',
              b'{"execute": "query-status"',
              b'{"execute": "qom-get", "arguments": {"path": "/machine", '
              b'"property": "no-such"}']
    per_client = [b"".join(with_id(body, i) for i in ids) for body in bodies]
    # QEMU's own answers to each client's bytes.
    want = []
    for data in per_client:
        d = env.direct()
        d.send_raw(data)
        want.append(d.read_replies_raw(len(ids)))
        d.close()
    clients = [env.client() for _ in bodies]
    trace.skip()
    step = 7
    for off in range(0, max(len(x) for x in per_client), step):
        for c, data in zip(clients, per_client):
            if off < len(data):
                c.send_raw(data[off:off + step])
    for c, w in zip(clients, want):
        same_bytes(w, c.read_replies_raw(len(ids)))
        assert c.pending(0.1) == b"", "a stray answer"
    seen = trace.take("helper", len(ids) * len(bodies))
    assert sorted(map(json.dumps, seen)) == \
        sorted(json.dumps(r) for data in per_client for r in parsed(data))
    for data in per_client:  # each client's in its order
        mine = [r for r in seen if r in parsed(data)]
        assert mine == parsed(data)


XP_BUSY = {"command-line": "xp /1000000xb 0"}  # about 7.5 MB: QEMU is busy


def oob_burst():
    """An in-band request that keeps QEMU busy, then exec-oob requests
    with ids equal to in-band ones, with the helper's own form, and none,
    mixed with in-band ones (one with an id of the helper's form)."""
    return [
        (b'{"execute": "human-monitor-command", "arguments": '
         + json.dumps(XP_BUSY).encode() + b', "id": 1}', False),
        (b'{"exec-oob": "migrate-pause", "id": 1}', True),
        (b'{"execute": "query-status", "id": "qph-oob-1"}', False),
        (b'{"exec-oob": "query-yank", "id": "qph-oob-1"}', True),
        (b'{"exec-oob": "migrate-pause"}', True),
        (b'{"execute": "query-name", "id": 1}', False),
        (b'{"exec-oob": "no-such-command", "id": {"b": 2, "a": 1}}', True),
        (b'{"execute": "query-name"}', False),
        (b'{"exec-oob": "query-yank", "id": "qph-oob-2"}', True),
        (b'{"execute": "query-status", "id": "qph-oob-2"}', False),
    ]


def read_all(c, n, timeout=60):
    return [c.read_reply_raw(timeout) for _ in range(n)]


def test_exec_oob_while_qemu_busy(fwd):
    """exec-oob requests sent while QEMU runs a long in-band one are
    answered first, as QEMU answers them; every answer, in-band or not,
    is QEMU's to a direct client byte for byte; in-band answers keep
    their order; QEMU parsed each in-band request as sent."""
    env, trace = fwd
    burst = oob_burst()
    data = b"".join(r for r, _ in burst)
    n = len(burst)
    n_oob = sum(1 for _, oob in burst if oob)
    d = env.direct(negotiate="oob")
    d.send_raw(data)
    dl = read_all(d, n)
    d.close()
    h = env.client(negotiate="oob")
    other = env.client()
    trace.skip()
    h.send_raw(data)
    # Another client's in-band requests, with the same ids, meanwhile.
    other.send_raw(b'{"execute": "query-version", "id": 1}'
                   b'{"execute": "query-kvm", "id": "qph-oob-1"}')
    hl = read_all(h, n)
    assert sorted(dl) == sorted(hl), (dl, hl)
    for lines in (dl, hl):
        xp = next(i for i, x in enumerate(lines) if x.startswith(b'{"return": "0000'))
        # Every exec-oob answer overtook the busy in-band one: QEMU was busy.
        assert xp >= n_oob, [x[:60] for x in lines]
    inband = [x for x in dl if x in hl and not x.startswith(b'{"id"')]
    assert [x for x in hl if x in inband] == [x for x in dl if x in inband]
    o1, o2 = [json.loads(x) for x in other.read_replies_raw(2)]
    assert o1["id"] == 1 and "qemu" in o1["return"], o1
    assert o2["id"] == "qph-oob-1" and "enabled" in o2["return"], o2
    seen = trace.take("helper", n + 2, timeout=30)
    want = [r for (raw, oob), r in zip(burst, parsed(data)) if not oob]
    assert [r for r in seen if "execute" in r and r["execute"]
            not in ("query-version", "query-kvm")] == want
    # exec-oob went with the helper's id in place of the client's.
    oob_seen = [r for r in seen if "exec-oob" in r]
    assert len(oob_seen) == n_oob
    assert all(re.fullmatch(r"qph-oob-[0-9]+", r["id"]) for r in oob_seen), oob_seen


def test_client_gone_mid_flight(fwd):
    """A client leaves with in-band requests queued and running (one a
    large answer being streamed) and exec-oob ones in flight, all with the
    ids another client uses: that client gets exactly QEMU's answers to
    its own bytes, nothing of the other's, and a new client is served."""
    env, trace = fwd
    mine = (b'{"execute": "query-status", "id": 1}'
            b'{"execute": "no-such-command", "id": 1}'
            b'{"execute": "query-name"}'
            b'{"exec-oob": "migrate-pause", "id": 1}'
            b'{"execute": "query-status", "id": "qph-oob-1"}')
    d = env.direct(negotiate="oob")
    d.send_raw(mine)
    want = sorted(read_all(d, 5))
    d.close()
    gone = env.client(negotiate="oob")
    y = env.client(negotiate="oob")
    trace.skip()
    gone.send_raw(b'{"execute": "human-monitor-command", "arguments": '
                  + json.dumps(XP_BUSY).encode() + b', "id": 1}'
                  + b'{"execute": "query-qmp-schema", "id": 1}' * 3
                  + b'{"exec-oob": "query-yank", "id": 1}'
                  + b'{"execute": "query-status", "id": "qph-oob-1"}'
                  + b'{"exec-oob": "migrate-pause"}')
    # Its large answer has started to come: leave in the middle of it.
    gone.sock.settimeout(30)
    assert gone.sock.recv(4096)
    env.abandon(gone)
    y.send_raw(mine)
    assert sorted(read_all(y, 5)) == want
    assert y.pending(0.3) == b"", "an answer of the client that left"
    z = env.client()
    assert z.cmd_raw("query-name", id=1) == b'{"return": {}, "id": 1}\r\n'
    # QEMU parsed all that reached it before it answered z: what the client
    # that left had still waiting for its turn never did.
    seen = trace.take("helper", 0)
    for r in parsed(mine):
        if "execute" in r:
            assert r in seen, (r, seen)


def next_handle(h, trace):
    """The handle the helper gives the next request of client @h: one more
    than that of an exec-oob probe, whose id QEMU's trace shows."""
    trace.skip()
    h.send_raw(b'{"exec-oob": "query-yank", "id": "probe"}')
    h.read_reply_raw()
    probe = [r for r in trace.take("helper", 1) if "exec-oob" in r]
    assert len(probe) == 1, probe
    return int(probe[0]["id"][len("qph-oob-"):]) + 1


def test_client_ids_of_the_helpers_form(fwd):
    """A client whose in-band ids are exactly the helper's exec-oob ids of
    requests in QEMU at the same time (the handles are predictable):
    in-band ones just before the exec-oob whose id they take, so that
    QEMU answers the in-band one while it still reads the exec-oob one,
    and one while QEMU is busy.  Every answer is QEMU's to a direct client
    byte for byte, in-band ones in order; QEMU saw both ids at once, and
    the in-band answer was not taken for the exec-oob one's."""
    env, trace = fwd
    h = env.client(negotiate="oob")
    k = next_handle(h, trace)

    def burst(k):
        out, want = [], []
        for i in range(6):  # in-band k, exec-oob k + 1, ...
            out.append(b'{"execute": "query-status", "id": "qph-oob-%d"}' % (k + 1))
            out.append(b'{"exec-oob": "query-yank", "id": "o%d"}' % i)
            want.append("qph-oob-%d" % (k + 1))
            k += 2
        out.append(b'{"execute": "human-monitor-command", "arguments": '
                   + json.dumps(XP_BUSY).encode() + b', "id": "xp"}')
        out.append(b'{"execute": "query-name", "id": "qph-oob-%d"}' % (k + 2))
        out.append(b'{"exec-oob": "migrate-pause", "id": "late"}')
        want.append("qph-oob-%d" % (k + 2))
        return b"".join(out), want
    data, colliding = burst(k)
    n = 6 * 2 + 3
    d = env.direct(negotiate="oob")
    d.send_raw(data)
    dl = read_all(d, n)
    d.close()
    trace.skip()
    h.send_raw(data)
    hl = read_all(h, n)
    assert sorted(dl) == sorted(hl), (dl, hl)
    inband = [x for x in dl if b'"id": "o' not in x and b'"id": "late"' not in x]
    assert [x for x in hl if x in inband] == inband
    # The collisions happened: QEMU was sent those ids for exec-oob too.
    oob_ids = [r["id"] for r in trace.take("helper", n) if "exec-oob" in r]
    assert set(colliding) <= set(oob_ids), (colliding, oob_ids)


def test_huge_id_left_out(fwd):
    """An id longer than QPH_SPLICE_INBAND_ID_MAX (256 bytes) does not go
    to QEMU, which reads its monitor one byte per main-loop turn: QEMU
    parses the request without it, and the answers, a streamed large one
    among them, are QEMU's to a direct client byte for byte."""
    env, trace = fwd
    ids = [b'"' + b"i" * 20000 + b'"', b'{"k": [' + b"1, " * 200 + b'2]}']
    data = b"".join(
        with_id(b'{"execute": "query-status"', i)
        + with_id(b'{"execute": "no-such-command"', i)
        + with_id(b'{"execute": "human-monitor-command", "arguments": '
                  + json.dumps(XP_BUSY).encode(), i)
        for i in ids)
    d, h = env.pair()
    trace.skip()
    dl, hl = exchange([d, h], data, timeout=60)
    assert len(dl) == 3 * len(ids) + 1, [x[:80] for x in dl]
    same_bytes(dl, hl)
    direct, helper = trace.take("direct", len(dl)), trace.take("helper", len(dl))
    assert helper == [{k: v for k, v in r.items() if k != "id"} for r in direct[:-1]] \
        + direct[-1:]


def test_huge_id_in_negotiation(fwd):
    """A client's qmp_capabilities reaches QEMU too (QEMU checks its
    arguments): with a huge id, QEMU's error comes back with it."""
    env, trace = fwd
    big = b'"' + b"n" * 1000 + b'"'
    data = (with_id(b'{"execute": "qmp_capabilities", "arguments": {"enable": "oob"}', big)
            + with_id(b'{"execute": "qmp_capabilities", "arguments": {"x": 1}', big)
            + with_id(b'{"execute": "qmp_capabilities"', big))
    d, h = env.pair(negotiate=False)
    d.send_raw(data)
    h.send_raw(data)
    dl, hl = d.read_replies_raw(3), h.read_replies_raw(3)
    assert b"error" in dl[0] and b"return" in dl[2], dl
    same_bytes(dl, hl)
