"""Malformed input: the helper answers what QEMU answers, in the same order,
and recovers the same way.

Every corpus entry is sent to QEMU's own monitor and to the helper, followed
by a valid sentinel command; the transcripts (every line up to the sentinel's
reply) must be byte-identical, and the sentinel must succeed (the stream
recovered). Entries that leave QEMU's parser waiting for more input end in a
0xFF byte, which makes QEMU's lexer report an error and start afresh.
"""

import json

import pytest

from qmp import exchange, same_bytes

QS = b'{"execute": "query-status", '

CORPUS = [
    # stray characters
    ("stray-x", b"x"),
    ("stray-close-brace", b"}"),
    ("stray-close-bracket", b"]"),
    ("stray-colon", b":"),
    ("stray-comma", b","),
    ("stray-at", b"@"),
    ("stray-escape-char", b"\x1b"),
    ("stray-nul", b"\x00"),
    ("stray-slash-comment", b"/* comment */"),
    ("stray-percent", QS + b'"id": %d}'),
    ("whitespace-only", b"  \r\n\t \n"),
    # bad escapes
    ("escape-q", QS + b'"id": "\\q"}'),
    ("escape-x", QS + b'"id": "\\x41"}'),
    ("escape-short-u", QS + b'"id": "\\u12"}'),
    ("escape-lone-surrogate", QS + b'"id": "\\ud800"}'),
    ("escape-nul-ok", QS + b'"id": "\\u0000"}'),
    ("string-control-char", QS + b'"id": "\x01"}'),
    ("string-unterminated-newline", b'"unterminated\n'),
    # invalid UTF-8
    ("utf8-bad-continuation", QS + b'"id": "\xc3\x28"}'),
    ("utf8-truncated", QS + b'"id": "\xc3"}'),
    ("utf8-overlong-nul", QS + b'"id": "\xc0\x80"}'),
    ("utf8-surrogate", QS + b'"id": "\xed\xa0\x80"}'),
    ("utf8-beyond-unicode", QS + b'"id": "\xf4\x90\x80\x80"}'),
    ("utf8-fe", b"\xfe"),
    ("utf8-ff-in-string", QS + b'"id": "\xff"}'),
    ("utf8-bare-bad-sequence", b"\xc3\x28"),
    # unbalanced brackets (0xFF to resynchronise where QEMU would wait)
    ("open-brace", b"{\xff"),
    ("open-bracket", b"[\xff"),
    ("unterminated-object", QS + b'"id": 1\xff'),
    ("unclosed-array-in-object", QS + b'"id": [1}\xff'),
    ("extra-close-brace", QS + b'"id": 1}}'),
    ("extra-close-bracket", QS + b'"id": 1}]'),
    ("bracket-closes-object", QS + b'"id": 1]'),
    ("close-close", b"}}"),
    # top-level values that are not objects
    ("toplevel-string", b'"abc"'),
    ("toplevel-int", b"42"),
    ("toplevel-float", b"-1.5"),
    ("toplevel-null", b"null"),
    ("toplevel-true", b"true"),
    ("toplevel-array", b"[1, 2]"),
    ("toplevel-empty-array", b"[]"),
    ("toplevel-array-of-command", b'[{"execute": "query-status"}]'),
    # quoting
    ("single-quoted", b"{'execute': 'query-status', 'id': 'sq'}"),
    ("mixed-quotes", b"{\"execute\": 'query-status', 'id': \"mq\"}"),
    ("single-quoted-escape", b"{'execute': 'query-status', 'id': 'it\\'s'}"),
    # 0xFF resynchronisation
    ("ff-alone", b"\xff"),
    ("ff-inside-object", QS + b'\xff "id": 1}'),
    ("ff-after-command", QS + b'"id": "before-ff"}\xff'),
    ("ff-between-commands", QS + b'"id": 1}\xff' + QS + b'"id": 2}'),
    # structure of a request
    ("duplicate-id", QS + b'"id": 1, "id": 2}'),
    ("duplicate-execute", b'{"execute": "query-status", "execute": "query-name", "id": 1}'),
    ("unknown-member", QS + b'"foo": 1}'),
    ("unknown-member-with-id", QS + b'"foo": 1, "id": "u"}'),
    ("unknown-member-control", QS + b'"control": {}}'),
    ("exec-oob-not-negotiated", b'{"exec-oob": "migrate-pause", "id": "o"}'),
    ("exec-oob-not-negotiated-noid", b'{"exec-oob": "migrate-pause"}'),
    ("execute-and-exec-oob", b'{"execute": "query-status", "exec-oob": "query-status", "id": 1}'),
    ("execute-not-string", b'{"execute": 1, "id": 1}'),
    ("execute-null", b'{"execute": null}'),
    ("arguments-not-object", QS + b'"arguments": [], "id": 1}'),
    ("arguments-null", QS + b'"arguments": null}'),
    ("empty-object", b"{}"),
    ("arguments-only", b'{"arguments": {}, "id": 1}'),
    ("id-only", b'{"id": 1}'),
    # syntax
    ("trailing-comma", QS + b'"id": 1,}'),
    ("missing-colon", b'{"execute" "query-status"}'),
    ("missing-comma", b'{"execute": "query-status" "id": 1}'),
    ("colon-for-comma", b'{"execute": "query-status": "id"}'),
    ("non-string-key", b"{1: 2}"),
    ("leading-zero", QS + b'"id": 01}'),
    ("trailing-dot", QS + b'"id": 1.}'),
    ("bare-minus", QS + b'"id": -}'),
    ("bad-exponent", QS + b'"id": 1e}'),
    ("leading-dot", QS + b'"id": .5}'),
    ("bad-keyword", QS + b'"id": tru}'),
    ("capital-keyword", QS + b'"id": True}'),
    ("hex-number", QS + b'"id": 0x10}'),
    # nesting limit (QEMU: 1024)
    ("nesting-1024-ok", QS + b'"id": ' + b"[" * 1023 + b"]" * 1023 + b"}"),
    ("nesting-1025", QS + b'"id": ' + b"[" * 1024 + b"]" * 1024 + b"}"),
    ("nesting-arrays-1025", b"[" * 1025 + b"]" * 1025),
    ("nesting-objects-1025", b'{"a": ' * 1025 + b"1" + b"}" * 1025),
]

NAMES = [c[0] for c in CORPUS]
assert len(NAMES) == len(set(NAMES))


def _check(dl, hl):
    last = json.loads(dl[-1])
    assert "return" in last, f"QEMU itself did not recover: {dl[-3:]}"
    same_bytes(dl, hl)


@pytest.mark.parametrize("data", [c[1] for c in CORPUS], ids=NAMES)
def test_malformed(env, data):
    d, h = env.pair()
    dl, hl = exchange([d, h], data)
    _check(dl, hl)


def test_malformed_before_negotiation(env):
    """Parse errors look the same before qmp_capabilities."""
    d, h = env.pair(negotiate=False)
    for name, data in CORPUS[:12]:
        d.send_raw(data + b"\xff")
        h.send_raw(data + b"\xff")
    d.send_raw(b'{"execute": "qmp_capabilities", "id": "neg"}')
    h.send_raw(b'{"execute": "qmp_capabilities", "id": "neg"}')
    dl, hl = d.read_until_id("neg"), h.read_until_id("neg")
    assert dl[-1] == b'{"return": {}, "id": "neg"}\r\n'
    same_bytes(dl, hl)


def test_malformed_corpus_one_stream(env):
    """The whole corpus back to back in one write, as one stream."""
    d, h = env.pair()
    data = b"".join(c[1] for c in CORPUS)
    dl, hl = exchange([d, h], data, timeout=30)
    assert len(dl) > len(CORPUS)
    _check(dl, hl)


SMALL = [c for c in CORPUS if len(c[1]) < 200]


def test_malformed_corpus_bytewise(env):
    """The corpus (without the big nesting entries) one byte per write:
    the lexer state must survive arbitrary splits."""
    d, h = env.pair()
    data = b"".join(c[1] for c in SMALL)
    dl, hl = exchange([d, h], data, bytewise=True, timeout=30)
    _check(dl, hl)
