#!/usr/bin/env python3
# gen-vectors.py: record how the real QEMU answers tricky QMP input.
#
# Each case is sent, after capabilities negotiation, to a fresh
# qemu-system-x86_64 (-machine none) over a socketpair, and every reply
# QEMU sends back is recorded byte for byte.  The result, qemu-vectors.inc,
# is compiled into test-qmp-vectors.c, which checks that the framing layer
# (streamer + request checks + reply writer) answers the same bytes.
#
# A case is (name, prefix, middle, count, suffix, oob): the input is
# prefix + middle * count + suffix, so huge inputs stay small here.
# Commands in the corpus never exist, so QEMU's answer to a well-formed
# request is always CommandNotFound, which the test can predict.  Every
# input ends with SENTINEL (a request for a command that does not exist
# either); its reply tells that QEMU has answered everything before it.
#
# QEMU's monitor reads one byte per main-loop iteration (about 120 KB/s
# here), so the 64 MiB token-size cases take many minutes each; they are
# only recorded with --slow.  Without it, their expectations in the unit
# tests come from QEMU's source (see test-json-streamer.c).
#
# Usage: tests/qmp/gen-vectors.py [--slow] > tests/qmp/qemu-vectors.inc
# SPDX-License-Identifier: GPL-2.0-or-later
import concurrent.futures
import select
import socket
import subprocess
import sys
import time

QEMU = "qemu-system-x86_64"
Mi = 1 << 20


def ask_qemu(data, oob):
    a, b = socket.socketpair()
    p = subprocess.Popen(
        [QEMU, "-nodefaults", "-display", "none", "-machine", "none",
         "-chardev", f"socket,id=m,fd={b.fileno()}",
         "-mon", "chardev=m,mode=control"],
        pass_fds=[b.fileno()])
    b.close()
    buf = b""

    def readline():
        nonlocal buf
        while b"\r\n" not in buf:
            buf += a.recv(65536)
        line, buf = buf.split(b"\r\n", 1)
        return line

    readline()  # greeting
    caps = b',"arguments":{"enable":["oob"]}' if oob else b""
    a.sendall(b'{"execute":"qmp_capabilities"%s}' % caps)
    assert readline() == b'{"return": {}}'
    a.setblocking(True)
    sender = concurrent.futures.ThreadPoolExecutor(1).submit(a.sendall, data)
    out = b""
    deadline = time.time() + 30 + len(data) / 50000
    while SENTINEL_REPLY not in out and time.time() < deadline:
        r, _, _ = select.select([a], [], [], 0.05)
        if r:
            d = a.recv(1 << 20)
            if not d:
                break
            out += d
    sender.result()
    p.kill()
    p.wait()
    a.close()
    return out


SENTINEL = b'{"execute":"sentinel-end","id":"end"}'
SENTINEL_REPLY = (b'{"id": "end", "error": {"class": "CommandNotFound", '
                  b'"desc": "The command sentinel-end has not been found"}}'
                  b'\r\n')


def c_string(data):
    out = '"'
    for i, c in enumerate(data):
        if c in b'"\\?':
            out += '\\' + chr(c)
        elif 0x20 <= c < 0x7F:
            out += chr(c)
        else:
            out += '\\%03o' % c
        if i % 60 == 59 and i + 1 < len(data):
            out += '"\n        "'
    return out + '"'


def case(name, prefix, middle=b"", count=0, suffix=b"", oob=False):
    return (name, prefix, middle, count, suffix + SENTINEL, oob)


def cmd(id_json):
    return b'{"execute":"x","id":' + id_json + b'}'


CASES = [
    # Framing: objects split across reads or back to back; whitespace.
    case("plain request", b'{"execute":"x"}'),
    case("back to back", b'{"execute":"a"}{"execute":"b"}'),
    case("whitespace everywhere", b' \t\r\n{ "execute" :\t"x" ,\r\n "id" : 1 }\r\n'),
    case("empty input", b''),
    case("only whitespace", b'\n\n\t \r\n'),
    case("top-level integer", b'1 '),
    case("top-level string", b'"s"'),
    case("top-level array", b'[1, 2]'),
    case("top-level keyword", b'true '),
    case("top-level null", b'null '),
    case("two integers", b'1 2 '),
    case("empty object", b'{}'),
    case("nested arrays", b'[[[[[]]]]]'),
    # Strings and escapes.
    case("single quotes", b"{'execute':'x','id':'a\"b'}"),
    case("single quote escape", b"{'execute':'x','id':'it\\'s'}"),
    case("single quoted pair", b"{'execute':'x','id':'it''s'}"),
    case("escaped single quote in dq", cmd(b'"a\\\'b"')),
    case("all simple escapes", cmd(b'"\\/\\b\\f\\n\\r\\t\\\\\\""')),
    case("invalid escape", cmd(b'"\\x"')),
    case("escape of a space", cmd(b'"\\ "')),
    case("short unicode escape", b'{"execute":"\\u12"}'),
    case("unicode escape at end", cmd(b'"\\u"')),
    case("unicode escape one digit", cmd(b'"\\u1"')),
    case("unicode escape then digit", cmd(b'"\\u12345"')),
    case("unicode escape lowercase", cmd(b'"\\u00e9"')),
    case("unicode escape nul", cmd(b'"a\\u0000b"')),
    case("surrogate pair", cmd(b'"\\uD83D\\uDE00"')),
    case("lone leading surrogate", cmd(b'"\\uD83D"')),
    case("lone trailing surrogate", cmd(b'"\\uDE00"')),
    case("leading surrogate then letter", cmd(b'"\\uD83D\\u0041"')),
    case("leading surrogate then short", cmd(b'"\\uD83D\\u12"')),
    case("noncharacter FFFE", cmd(b'"\\uFFFE"')),
    case("noncharacter FDD0", cmd(b'"\\uFDD0"')),
    case("escape DEL", cmd(b'"\\u007f"')),
    case("raw DEL", cmd(b'"\x7f"')),
    case("raw two-byte utf8", cmd(b'"\xc3\xa9"')),
    case("raw four-byte utf8", cmd(b'"\xf0\x9f\x98\x80"')),
    case("raw overlong slash", cmd(b'"\xc0\xaf"')),
    case("raw overlong nul", cmd(b'"\xc0\x80"')),
    case("raw surrogate", cmd(b'"\xed\xa0\x80"')),
    case("raw truncated sequence", cmd(b'"\xc3"')),
    case("raw continuation byte", cmd(b'"\x80"')),
    case("raw five-byte sequence", cmd(b'"\xf8\x88\x80\x80\x80"')),
    case("raw beyond U+10FFFF", cmd(b'"\xf4\x90\x80\x80"')),
    case("raw noncharacter", cmd(b'"\xef\xbf\xbe"')),
    case("string with FE", cmd(b'"a\xfeb"')),
    case("string with control", cmd(b'"a\x01b"')),
    case("string with tab", cmd(b'"a\tb"')),
    case("string with newline", b'{"execute":"x","id":"a\nb"}'),
    case("string with nul", b'"a\x00b"'),
    case("unicode in command name", b'{"execute":"\\u00e9\xc3\xa9"}'),
    case("nul in command name", b'{"execute":"\\u0000"}'),
    # Stray bytes and recovery.
    case("stray letter", b'x'),
    case("capitalised keyword", b'True {"execute":"x"}'),
    case("stray in object", b'{"execute":x}'),
    case("stray at sign", b'@'),
    case("stray percent", b'%'),
    case("stray after message", b'{"execute":"x"}@'),
    case("stray nul", b'\x00'),
    case("stray nuls", b'\x00\x00\x00'),
    case("stray FF", b'\xff'),
    case("stray FE", b'\xfe'),
    case("two FF", b'\xff\xff'),
    case("FF in string", b'"ab\xff'),
    case("FF resync", b'{"execute":"x", "id": \xff {"execute":"y"}'),
    case("FF ends recovery", b'@abc\xff{"execute":"x"}'),
    case("brace ends recovery", b'@abc{"execute":"x"}'),
    case("newline ends recovery", b'@abc\n{"execute":"x"}'),
    case("tab does not end recovery", b'@\t"{"execute":"x"}'),
    case("quote does not end recovery", b'@"{"execute":"x"}'),
    case("recovery skips to colon", b'@abc:{"execute":"x"}'),
    case("error eats the terminator", b'1e}{"execute":"x"}'),
    case("unterminated string then FF", b'{"execute":"abc\xff{"execute":"y"}'),
    case("stray in the middle", b'{"execute":"x","id":[1,@,2]}'),
    # Numbers.
    case("leading zero", b'01'),
    case("minus alone", b'- '),
    case("minus letter", b'-a'),
    case("dot without digits", b'1. '),
    case("dot exponent", b'1.e5'),
    case("exponent without digits", b'1e '),
    case("exponent sign without digits", b'1e+ '),
    case("leading dot", b'.5'),
    case("plus sign", b'+1'),
    case("hex", b'0x10'),
    case("zero then brace", cmd(b'0')),
    case("minus zero", cmd(b'-0')),
    case("minus zero float", cmd(b'-0.0')),
    case("one point five zero", cmd(b'1.50')),
    case("tenth", cmd(b'0.1')),
    case("exponent", cmd(b'1E+2')),
    case("negative exponent", cmd(b'25e-1')),
    case("overflow to inf", cmd(b'1e400')),
    case("overflow to -inf", cmd(b'-1e400')),
    case("underflow", cmd(b'1e-400')),
    case("int64 max", cmd(b'9223372036854775807')),
    case("int64 max plus one", cmd(b'9223372036854775808')),
    case("int64 min", cmd(b'-9223372036854775808')),
    case("int64 min minus one", cmd(b'-9223372036854775809')),
    case("uint64 max", cmd(b'18446744073709551615')),
    case("uint64 max plus one", cmd(b'18446744073709551616')),
    case("thirty digits", cmd(b'123456789012345678901234567890')),
    case("many digits", b'{"execute":"x","id":', b'9', 400, b'}'),
    # Keywords.
    case("keywords as id", cmd(b'[true, false, null]')),
    case("short keyword", cmd(b'nul')),
    case("long keyword", cmd(b'nulll')),
    case("glued keywords", cmd(b'truefalse')),
    case("unknown keyword", b'abc '),
    case("huge keyword", b'', b'a', 2000, b' '),
    # Structure.
    case("closing brace alone", b'}'),
    case("closing bracket alone", b']'),
    case("colon alone", b':'),
    case("comma alone", b','),
    case("brace then bracket", b'{]'),
    case("bracket then brace", b'[}'),
    case("key without value", b'{"a"}'),
    case("colon without value", b'{"a":}'),
    case("missing colon", b'{"a" 1}'),
    case("integer key", b'{1:2}'),
    case("object key", b'{{}:1}'),
    case("trailing comma in object", b'{"execute":"x",}'),
    case("trailing comma in list", b'[1,]'),
    case("comma only list", b'[,]'),
    case("missing comma in list", b'[1 2]'),
    case("missing comma in object", b'{"a":1 "b":2}'),
    case("duplicate key", b'{"execute":"x","execute":"x","id":1}'),
    case("duplicate key after escape", b'{"a":1,"\\u0061":2}'),
    case("mismatched close", b'{"a":[1,2}]'),
    case("extra close", b'{"execute":"x"}}'),
    case("extra bracket", b'[1]]'),
    case("crossed", b'[{]}'),
    case("inner error before dup", b'{"a":1,"a":"\\x"}'),
    case("dup before later error", b'{"a":1,"a":2,"b" 3}'),
    case("key error first", b'{"\\x":1}'),
    case("error inside key value", b'{[1,"\\x"]:1}'),
    case("inner missing colon", b'{"a":{"b"},"a":1}'),
    # Request checks (no OOB negotiated).
    case("execute not a string", b'{"execute":1,"id":"a"}'),
    case("arguments not an object", b'{"execute":"x","arguments":1,"id":1}'),
    case("arguments array", b'{"execute":"x","arguments":[]}'),
    case("arguments object", b'{"execute":"x","arguments":{"a":1}}'),
    case("unexpected member", b'{"execute":"x","foo":1}'),
    case("first unexpected in hash order", b'{"foo":1,"bar":2,"execute":"y"}'),
    case("only id", b'{"id":1}'),
    case("only arguments", b'{"arguments":{}}'),
    case("exec-oob without oob", b'{"exec-oob":"x"}'),
    case("arguments and unexpected", b'{"execute":"x","arguments":1,"foo":2}'),
    case("execute and arguments bad", b'{"execute":1,"arguments":1}'),
    case("many members", b'{"zz":1,"a":1,"b":2,"execute":"x","id":null}'),
    case("array request", b'[{"execute":"x"}]'),
    # Request checks with OOB.
    case("oob execute", b'{"exec-oob":"x","id":1}', oob=True),
    case("oob clash", b'{"execute":"x","exec-oob":"y"}', oob=True),
    case("oob clash reversed", b'{"exec-oob":"y","execute":"x"}', oob=True),
    case("oob not a string", b'{"exec-oob":1}', oob=True),
    case("oob unexpected", b'{"exec-oob":"x","foo":1}', oob=True),
    # Ids are echoed as QEMU re-serializes them.
    case("object id", cmd(b'{"b":1,"a":[1,{"z":null,"y":true}],"execute":2}')),
    case("empty containers id", cmd(b'[[],{}]')),
    case("utf8 id", cmd(b'"\xc3\xa9\\u00e9"')),
    case("solidus id", cmd(b'"\\/"')),
    case("quoted id", cmd(b"'x\"y'")),
    case("control escapes id", cmd(b'"\\u0001\\u001f\\b"')),
    # Limits.
    case("nesting 1024", b'', b'[', 1024, b']' * 1024),
    case("nesting 1025", b'', b'[', 1025, b''),
    case("nesting mixed 1025", b'{"a":', b'[', 1024, b''),
    case("nesting in request", b'{"execute":"x","id":' + b'[' * 1023, b']', 1023, b'}'),
    case("token count 2Mi", b'[', b'0,', Mi - 1, b'0]'),
    case("token count 2Mi+1", b'[', b'0,', Mi, b''),
    case("token count then more", b'[', b'0,', Mi, b'0]'),
    case("long stray", b'"', b'a', 2000, b'\x01'),
]

# Inputs of 64 MiB and more: recorded only with --slow.
SLOW_CASES = [
    case("token size single string", b'"', b'a', 64 * Mi, b'bcd'),
    case("token size just fits", b'{"execute":"x","id":"', b'a', 64 * Mi - 40, b'"}'),
    case("token size sum", b'["', b'a', 40 * Mi, b'","' + b'b' * (30 * Mi) + b'"]'),
    case("token size number", b'1', b'0', 64 * Mi, b' '),
]


def main():
    cases = CASES + (SLOW_CASES if "--slow" in sys.argv else [])
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(ask_qemu, c[1] + c[2] * c[3] + c[4], c[5])
                   for c in cases]
        results = [f.result() for f in futures]
    for c, out in zip(cases, results):
        if not out.endswith(SENTINEL_REPLY):
            sys.exit(f"QEMU did not answer the sentinel for {c[0]!r}")
    print("/* Generated by tests/qmp/gen-vectors.py from QEMU 7.2; "
          "do not edit. */")
    for (name, prefix, middle, count, suffix, oob), out in zip(cases, results):
        print("{")
        print("    .name = %s," % c_string(name.encode()))
        print("    .prefix = %s," % c_string(prefix))
        print("    .prefix_len = %d," % len(prefix))
        print("    .middle = %s," % c_string(middle))
        print("    .middle_len = %d," % len(middle))
        print("    .count = %d," % count)
        print("    .suffix = %s," % c_string(suffix))
        print("    .suffix_len = %d," % len(suffix))
        print("    .oob = %s," % ("TRUE" if oob else "FALSE"))
        print("    .replies = %s," % c_string(out))
        print("    .replies_len = %d," % len(out))
        print("},")


if __name__ == "__main__":
    main()
