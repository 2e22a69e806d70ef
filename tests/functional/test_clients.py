"""Several clients on one helper, events, disconnects, and out-of-band.

QEMU serves one client per monitor; the helper serves many over one upstream
connection. Each client must see exactly what it would see on a monitor of
its own: its own replies only, in order, events once negotiated.
"""

import json
import time

import qmp
from qmp import exchange, same_bytes


def test_two_clients_interleaved(env):
    """A and B use the same ids for different commands; each gets only its
    own replies, in order, byte-identical to QEMU's."""
    d = env.direct()
    a, b = env.client(), env.client()
    n = 20
    for i in range(n):
        a.send_raw(qmp.request("query-name", id=i))
        b.send_raw(qmp.request("query-status", id=i))
    ar = a.read_replies_raw(n)
    br = b.read_replies_raw(n)
    for i in range(n):
        dn = d.cmd_raw("query-name", id=i)
        ds = d.cmd_raw("query-status", id=i)
        assert ar[i] == dn, (i, ar[i], dn)
        assert br[i] == ds, (i, br[i], ds)
    assert a.pending(0.2) == b"" and b.pending(0.0) == b"", "stray replies"


def test_two_clients_bytewise_interleaved(env):
    """A and B each write half-finished commands, alternating byte by byte."""
    a, b = env.client(), env.client()
    ca = b'{"execute": "query-name", "id": "same"}' + b'{"execute": "no-such", "id": "a2"}'
    cb = (b'{"execute": "query-status", "id": "same"}'
          + b'{"execute": "qom-list", "arguments": {"path": "/machine"}, "id": "b2"}')
    for i in range(max(len(ca), len(cb))):
        if i < len(ca):
            a.send_raw(ca[i:i + 1])
        if i < len(cb):
            b.send_raw(cb[i:i + 1])
    a1, a2 = [json.loads(x) for x in a.read_replies_raw(2)]
    b1, b2 = [json.loads(x) for x in b.read_replies_raw(2)]
    assert a1 == {"return": {}, "id": "same"}
    assert a2["id"] == "a2" and a2["error"]["class"] == "CommandNotFound"
    assert b1["id"] == "same" and "running" in b1["return"]
    assert b2["id"] == "b2" and isinstance(b2["return"], list)


def test_events_reach_negotiated_clients_only(env):
    d = env.direct()
    a, b = env.client(), env.client()
    c = env.client(negotiate=False)
    try:
        assert a.cmd("stop", id="stop") == {"return": {}, "id": "stop"}
        da, db, dd = a.wait_event("STOP"), b.wait_event("STOP"), d.wait_event("STOP")
        assert da == db == dd
        assert a.cmd("cont", id="cont") == {"return": {}, "id": "cont"}
        for x in (a, b, d):
            x.wait_event("RESUME")
        # QEMU writes the same event object to every monitor, timestamp
        # included: the helper must pass it on unchanged.
        assert a.last_event_raw == b.last_event_raw == d.last_event_raw
        assert a.last_event_raw.endswith(b'"event": "RESUME"}\r\n')
    finally:
        if d.cmd("query-status")["return"]["status"] != "running":
            d.cmd("cont")
    # The un-negotiated client got nothing at all, and after negotiating it
    # gets its reply with no old event before it.
    time.sleep(0.1)
    assert c.pending(0.2) == b"", "events reached a client before negotiation"
    c.negotiate()
    assert c.events == []


def test_events_after_late_negotiation(env):
    """A client that negotiates later gets events from then on."""
    d = env.direct()
    c = env.client(negotiate=False)
    d.cmd("stop")
    d.wait_event("STOP")
    c.negotiate()
    assert c.events == [], "an event from before negotiation was delivered"
    d.cmd("cont")
    c.wait_event("RESUME")
    d.wait_event("RESUME")
    assert c.last_event_raw == d.last_event_raw
    assert c.events == []


def test_disconnect_before_reply(env):
    """A client queues slow commands and leaves; others go on unaffected."""
    d = env.direct()
    x = env.client()
    for i in range(8):
        x.send_raw(qmp.request("query-qmp-schema", id=i))
    env.abandon(x)
    y = env.client()
    yl = [y.cmd_raw("query-status", id="y")]
    dl = [d.cmd_raw("query-status", id="y")]
    same_bytes(dl, yl)
    assert y.pending(0.3) == b"", "the departed client's replies leaked"


def test_disconnect_mid_command(env):
    """Half a command from a client that leaves must not reach QEMU."""
    x = env.client()
    x.send_raw(b'{"execute": "stop", "id": ')
    env.abandon(x)
    y = env.client()
    reply = y.cmd("query-status", id=1)
    assert reply["return"]["status"] == "running", reply
    assert y.pending(0.2) == b""
    assert y.events == []


def test_stalled_reader_does_not_block_others(env):
    """A client that asks for a lot and never reads must not stall others."""
    x = env.client()
    for i in range(20):
        x.send_raw(qmp.request("query-qmp-schema", id=i))
    y = env.client()
    t0 = time.monotonic()
    reply = y.cmd("query-name", id="y", timeout=10)
    assert reply == {"return": {}, "id": "y"}
    assert time.monotonic() - t0 < 10
    env.abandon(x)


def test_many_clients(env):
    n = env.free_client_slots() or 16
    assert n >= 2
    clients = [env.client() for _ in range(n)]
    for i, c in enumerate(clients):
        c.send_raw(qmp.request("query-name", id=i))
    for i, c in enumerate(clients):
        assert c.read_reply() == {"return": {}, "id": i}


# -- out-of-band -------------------------------------------------------------

OOB = [
    b'{"exec-oob": "migrate-pause", "id": "o1"}',
    b'{"exec-oob": "migrate-pause"}',
    b'{"exec-oob": "migrate-recover", "arguments": {"uri": "tcp:127.0.0.1:1"}, "id": "o2"}',
    b'{"exec-oob": "query-yank", "id": "o3"}',
    b'{"exec-oob": "query-status", "id": "o4"}',
    b'{"exec-oob": "no-such-command", "id": "o5"}',
    b'{"exec-oob": "migrate-pause", "arguments": {"x": 1}, "id": "o6"}',
    b'{"execute": "query-status", "exec-oob": "query-status", "id": "o7"}',
    b'{"execute": "migrate-pause", "id": "o8"}',
    b'{"execute": "query-status", "id": "o9"}',
]


def test_allow_oob_commands_exist(env):
    """The OOB tests below rely on these QEMU commands being allow-oob."""
    d = env.direct()
    schema = d.command("query-qmp-schema")
    oob = {e["name"] for e in schema if e["meta-type"] == "command" and e.get("allow-oob")}
    assert {"migrate-pause", "migrate-recover", "query-yank"} <= oob, oob


def test_exec_oob(env):
    d, h = env.direct(negotiate="oob"), env.client(negotiate="oob")
    for req in OOB:
        dl, hl = exchange([d, h], req)
        same_bytes(dl, hl)


def test_exec_oob_pipelined(env):
    d, h = env.direct(negotiate="oob"), env.client(negotiate="oob")
    dl, hl = exchange([d, h], b"".join(OOB))
    assert len(dl) == len(OOB) + 1
    # The order of OOB vs in-band replies is up to QEMU's scheduling; the
    # set of replies is not.
    assert sorted(dl) == sorted(hl), (dl, hl)


def test_oob_and_plain_clients_side_by_side(env):
    """One client negotiated OOB, another did not: exec-oob is refused for
    the second exactly as QEMU refuses it."""
    d = env.direct()
    o = env.client(negotiate="oob")
    p = env.client()
    req = b'{"exec-oob": "migrate-pause", "id": "x"}'
    dl, pl = exchange([d, p], req)
    same_bytes(dl, pl)
    ol = exchange([o], req)[0]
    assert b"postcopy" in ol[0], ol
