"""A client of the helper sees what a client of QEMU sees.

Each test sends the same bytes to QEMU's own monitor (direct) and to the
helper, and compares what comes back, byte for byte where QEMU's answer is
deterministic. Introspection is compared as "the helper's answer contains
QEMU's" because the helper adds its own commands.
"""

import json

import pytest

import qmp
from qmp import exchange, same_bytes


def test_greeting_identical(env):
    d, h = env.pair(negotiate=False)
    assert d.greeting_raw.endswith(b"}\r\n")
    assert "oob" in d.greeting["QMP"]["capabilities"]
    same_bytes([d.greeting_raw], [h.greeting_raw])


NEGOTIATION = [
    # (request bytes, expected reply kind)
    (b'{"execute": "query-status", "id": 1}', "error"),
    (b'{"execute": "query-status"}', "error"),
    (b'{"execute": "no-such-command", "id": "x"}', "error"),
    (b'{"execute": "qmp_capabilities", "arguments": {"enable": ["no-such-cap"]}, "id": 2}', "error"),
    (b'{"execute": "qmp_capabilities", "arguments": {"enable": "oob"}, "id": 3}', "error"),
    (b'{"execute": "qmp_capabilities", "arguments": {"bogus": 1}}', "error"),
    (b'{"execute": "qmp_capabilities", "id": 4}', "return"),
    (b'{"execute": "qmp_capabilities", "id": 5}', "error"),
    (b'{"execute": "qmp_capabilities", "arguments": {"enable": ["oob"]}, "id": 6}', "error"),
    (b'{"execute": "query-status", "id": 7}', "return"),
]


def test_negotiation_transcript(env):
    """Commands before qmp_capabilities fail; bad capabilities fail; a second
    qmp_capabilities fails; then commands work."""
    d, h = env.pair(negotiate=False)
    for req, kind in NEGOTIATION:
        d.send_raw(req)
        h.send_raw(req)
        dr, hr = d.read_reply_raw(), h.read_reply_raw()
        assert kind in json.loads(dr), (req, dr)
        same_bytes([dr], [hr])


def test_negotiation_oob_transcript(env):
    d, h = env.pair(negotiate=False)
    req = b'{"execute": "qmp_capabilities", "arguments": {"enable": ["oob"]}, "id": "n"}'
    dl, hl = exchange([d, h], req)
    assert dl[0] == b'{"return": {}, "id": "n"}\r\n'
    same_bytes(dl, hl)


COMMANDS = [
    ("query-status", None, "return"),
    ("query-name", None, "return"),
    ("query-version", None, "return"),
    ("query-cpus-fast", None, "return"),
    ("query-kvm", None, "return"),
    ("query-machines", None, "return"),
    ("query-chardev", None, "return"),
    ("qom-list", {"path": "/machine"}, "return"),
    ("qom-get", {"path": "/machine", "property": "type"}, "return"),
    ("human-monitor-command", {"command-line": "info version"}, "return"),
    ("human-monitor-command", {"command-line": "no-such-hmp-command"}, "return"),
    ("no-such-command", None, "error"),
    ("query-status", {"unexpected": 1}, "error"),
    ("qom-list", None, "error"),
    ("qom-list", {"path": 1}, "error"),
    ("qom-list", {"path": "/no/such/path"}, "error"),
    ("human-monitor-command", {}, "error"),
]


@pytest.mark.parametrize("name,args,kind", COMMANDS,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(COMMANDS)])
@pytest.mark.parametrize("with_id", [True, False], ids=["id", "noid"])
def test_reply_identical(env, name, args, kind, with_id):
    d, h = env.pair()
    req = qmp.request(name, args, id="c1" if with_id else None)
    dl, hl = exchange([d, h], req)
    reply = json.loads(dl[0])
    assert kind in reply, dl[0]
    assert ("id" in reply) == with_id
    same_bytes(dl, hl)


def _schema_entry_key(e):
    return json.dumps(e, sort_keys=True)


def test_query_commands_superset(env):
    d, h = env.pair()
    dc = d.command("query-commands")
    hc = h.command("query-commands")
    dn = [c["name"] for c in dc]
    hn = [c["name"] for c in hc]
    assert len(hn) == len(set(hn)), "duplicate names in the helper's query-commands"
    missing = set(dn) - set(hn)
    assert not missing, f"QEMU commands missing through the helper: {sorted(missing)}"
    assert "query-status" in hn


def test_query_qmp_schema_superset(env):
    d, h = env.pair()
    d.send_raw(b'{"execute": "query-qmp-schema", "id": "s"}')
    h.send_raw(b'{"execute": "query-qmp-schema", "id": "s"}')
    draw, hraw = d.read_reply_raw(30), h.read_reply_raw(30)
    assert draw.endswith(b"\r\n") and hraw.endswith(b"\r\n")
    dj, hj = json.loads(draw), json.loads(hraw)
    assert dj["id"] == "s" and hj["id"] == "s"
    assert len(dj["return"]) > 100
    hkeys = {_schema_entry_key(e) for e in hj["return"]}
    missing = [e for e in dj["return"] if _schema_entry_key(e) not in hkeys]
    assert not missing, f"{len(missing)} schema entries changed or missing, e.g. {missing[:3]}"
    names = [e["name"] for e in hj["return"]]
    assert len(names) == len(set(names)), "the helper's schema has duplicate names"
    cmds = {e["name"] for e in hj["return"] if e["meta-type"] == "command"}
    assert set(c["name"] for c in h.command("query-commands")) == cmds, \
        "query-commands and query-qmp-schema disagree through the helper"


# Each id as raw JSON text in the request; QEMU re-serializes it (1.50 -> 1.5,
# 1e3 -> 1000, keys reordered, beyond-u64 -> double, 1e999 -> inf), and the
# helper must answer exactly what QEMU answers.
IDS = [
    b'"abc"',
    b'""',
    b'"esc\\"aped \\\\ \\n \\u00e9 \\ud83d\\ude00 \\u0000"',
    b'"utf-8 \xc3\xa9 \xe2\x82\xac"',
    b"'single-quoted \"x\"'",
    b'-1',
    b'0',
    b'-0',
    b'42',
    b'9223372036854775807',
    b'9223372036854775808',
    b'18446744073709551615',
    b'18446744073709551616',
    b'-9223372036854775808',
    b'-9223372036854775809',
    b'1.50',
    b'1e3',
    b'1E+2',
    b'-0.0',
    b'1e999',
    b'{"b": 1, "a": [1, 2], "c": {"z": null, "y": "s"}}',
    b'{}',
    b'[1, "two", {"x": 3}, [], null]',
    b'[]',
    b'null',
    b'true',
    b'false',
    b'"' + b"x" * 16384 + b'"',
]


@pytest.mark.parametrize("raw_id", IDS, ids=[i[:24].decode("utf-8", "replace") for i in IDS])
def test_id_echo(env, raw_id):
    d, h = env.pair()
    data = (b'{"execute": "query-status", "id": ' + raw_id + b'}'
            b'{"id": ' + raw_id + b', "execute": "query-name"}'
            b'{"execute": "no-such-command", "id": ' + raw_id + b'}'
            b'{"execute": "query-status", "arguments": {"x": 1}, "id": ' + raw_id + b'}')
    dl, hl = exchange([d, h], data)
    assert len(dl) == 5, dl
    assert b'"id": ' in dl[0]
    same_bytes(dl, hl)


def test_no_id_no_id_in_reply(env):
    d, h = env.pair()
    data = (b'{"execute": "query-status"}{"execute": "no-such-command"}'
            b'{"execute": "qom-list", "arguments": {}}')
    dl, hl = exchange([d, h], data)
    for line in hl[:-1]:
        assert "id" not in json.loads(line), line
    same_bytes(dl, hl)


def _batch(n):
    cmds = []
    kinds = [
        lambda i: qmp.request("query-status", id=i),
        lambda i: qmp.request("query-name", id=f"n{i}"),
        lambda i: qmp.request("no-such-command", id=[i]),
        lambda i: qmp.request("qom-list", {"path": "/machine"}, id={"k": i}),
        lambda i: qmp.request("query-version"),
        lambda i: qmp.request("human-monitor-command", {"command-line": "info version"}, id=i),
        lambda i: qmp.request("query-status", {"bad": True}, id=i),
    ]
    seps = [b"", b"\n", b"\r\n", b" \t ", b"\n\n"]
    for i in range(n):
        cmds.append(kinds[i % len(kinds)](i) + seps[i % len(seps)])
    return b"".join(cmds)


def test_pipelined_batch(env):
    """50 commands in one write: 50 replies, in order, identical to direct."""
    d, h = env.pair()
    dl, hl = exchange([d, h], _batch(50))
    assert len(dl) == 51
    same_bytes(dl, hl)


def test_bytewise_writes(env):
    """Several commands sent one byte per write."""
    d, h = env.pair()
    data = _batch(7)
    dl, hl = exchange([d, h], data, bytewise=True)
    assert len(dl) == 8
    same_bytes(dl, hl)


def test_bytewise_negotiation(env):
    d, h = env.pair(negotiate=False)
    data = b'{"execute":"qmp_capabilities"}\r\n{"execute":"query-status","id":1}'
    dl, hl = exchange([d, h], data, bytewise=True)
    assert dl[0] == b'{"return": {}}\r\n'
    same_bytes(dl, hl)
