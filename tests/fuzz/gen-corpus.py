#!/usr/bin/env python3
"""Write the seed corpus of the fuzz targets (run once; the output is
checked in under tests/fuzz/corpus/TARGET/).

Seeds: every input of the functional tests' malformed corpus
(tests/functional/test_malformed.py CORPUS), and real QMP traffic: the
requests libvirt and qmp-shell send and QEMU's replies, events, ids of
every JSON type, exec-oob, introspection replies with lists.
"""
import hashlib
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "functional"))

TRAFFIC = [
    b'{"execute": "qmp_capabilities"}',
    b'{"execute": "qmp_capabilities", "arguments": {"enable": ["oob"]}}',
    b'{"execute":"query-status","id":"libvirt-1"}\r\n',
    b'{"execute":"query-cpus-fast","id":"libvirt-2"}\r\n',
    b'{"execute":"query-commands","id":1}',
    b'{"execute":"query-qmp-schema","id":{"a":[1,2.5,-3e7,true,null]}}',
    b'{"exec-oob":"migrate-pause","id":"oob-1"}',
    b'{"execute":"query-perf-events","id":7}',
    b'{"execute":"set-perf-events","arguments":{"events":[{"name":"task_clock","enable":true},{"name":"cpu_cycles","enable":false}]},"id":8}',
    b'{"execute":"set-perf-events","arguments":{"events":[{"name":"INST_RETIRED:ANY_P:u","enable":true}]}}',
    b'{"execute":"getfd","arguments":{"fdname":"fd0"},"id":"libvirt-9"}',
    b'{"execute":"human-monitor-command","arguments":{"command-line":"info registers"},"id":18446744073709551615}',
    b"{'execute': 'query-name', 'id': 'single \\'quoted\\''}",
    b'{"execute": "query-name", "id": "\\u00e9\\ud83d\\ude00"}',
    b'{"execute": "query-name", "id": 1.50}',
    b'{"execute": "query-name", "id": -0}',
    b'{"execute": "query-name", "id": 123456789012345678901234567890}',
    b'{"execute": "query-name", "id": [] , "arguments": {}}',
    # Ids of the helper's exec-oob form, spelled every way (splice.c).
    b'{"execute": "query-name", "id": "qph-oob-1"}',
    b'{"exec-oob": "migrate-pause", "id": "qph-oob-18446744073709551615"}',
    b'{"execute": "query-name", "id": "\\u0071ph-oob-7"}',
    b"{'execute': 'query-name', 'id': 'qph-oob-3'}",
    b'{"execute": "query-name", "id": "qph-oob-01"}',
    b'{"execute": "query-name", "id": "qph-oob-18446744073709551616"}',
    b'{"execute": "query-name", "id": "qph-oob-"}',
    b'{"execute": "query-name", "id": "qph-oob-2\\u0000"}',
    b'{"execute": "query-name", "id": ["qph-oob-1"]}',
    # Ids past QPH_SPLICE_INBAND_ID_MAX, left out in-band (splice.c).
    b'{"execute": "query-name", "id": "' + b"x" * 300 + b'"}',
    b'{"id": {"k": [' + b"1, " * 150 + b'2]}, "execute": "query-status"}',
    b'{"return": {}, "id": 1}',
    b'{"return": [{"name": "query-status"}, {"name": "quit"}], "id": 2}',
    b'{"return": [], "id": 3}',
    b'{"id": 4, "error": {"class": "GenericError", "desc": "x"}}',
    b'{"timestamp": {"seconds": 1700000000, "microseconds": 1}, "event": "STOP"}',
    b'{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": ""}, "capabilities": ["oob"]}}',
    b'{"execute":"query-name"}{"execute":"query-name","id":2}  {"execute":"quit"}',
    b'[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]',
    b'{"a":{"a":{"a":{"a":{"a":{"a":{"a":{}}}}}}}}',
    b'{"events": [{"name": "task_clock", "enabled": true}, {"name": "cmt", "enabled": false}]}',
    b'{"events": [{"name": "x", "enabled": 1}]}',
    b'{"events": [{"name": "x"}], "extra": null}',
    b'{"names": ["task_clock", "INST_RETIRED:ANY_P"], "per-thread": true}',
    b'{"names": [], "per-thread": "yes"}',
]


def write(target, data):
    d = HERE / "corpus" / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()[:16]).write_bytes(data)


def main():
    seeds = list(TRAFFIC)
    try:
        import test_malformed
        seeds += [data for _, data in test_malformed.CORPUS]
    except Exception as e:  # pytest not installed: traffic only
        print(f"malformed corpus not imported: {e}", file=sys.stderr)
    for data in seeds:
        if len(data) > 65536:
            continue
        for target in ("framing", "splice", "json", "args"):
            write(target, data)
    print(f"{len(seeds)} seeds per target")


if __name__ == "__main__":
    main()
