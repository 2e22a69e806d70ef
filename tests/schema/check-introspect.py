#!/usr/bin/python3
#
# check-introspect.py: the helper's query-qmp-schema entries are sound
#
# Usage: check-introspect.py INTROSPECT.C [--qemu QEMU-BINARY]
#
# Reads the two C string constants from the generated qph-qapi-introspect.c
# (the exact text the helper splices into QEMU's answers) and checks:
#   - each is a valid list of JSON array elements, printed the QEMU way
#     (", " and ": ", no whitespace elsewhere, no trailing comma);
#   - every arg-type, ret-type, element-type and member type resolves to an
#     entry in the text or to one of QEMU's builtins ("str", "int", "bool",
#     "number", "null", "any") or QEMU's "[str]"/"[int]" arrays;
#   - the helper's type names cannot collide with QEMU's masked numbers;
#   - query-commands lists exactly the command entries, once each;
#   - with --qemu: spliced into a real QEMU's query-qmp-schema answer, the
#     result is valid JSON, names are unique, every reference resolves, and
#     the builtins relied on are really there.  Exit 77 (skip) when the
#     binary is missing.
#
# SPDX-License-Identifier: GPL-2.0-or-later

import ast
import json
import os
import re
import shutil
import socket
import subprocess
import sys

QEMU_BUILTINS = {'str', 'int', 'bool', 'number', 'null', 'any',
                 '[str]', '[int]'}


def fail(msg):
    print('not ok: ' + msg)
    sys.exit(1)


def c_constant(src, name):
    m = re.search(r'const char %s\[\] =\s*((?:"(?:[^"\\]|\\.)*"\s*)+);'
                  % re.escape(name), src)
    if not m:
        fail('%s not found' % name)
    parts = re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(1))
    return ''.join(ast.literal_eval('"%s"' % p) for p in parts)


def refs(entry):
    for key in ('arg-type', 'ret-type', 'element-type'):
        if key in entry:
            yield key, entry[key]
    for m in entry.get('members', []):
        if 'type' in m:
            yield 'member %s' % m.get('name', '(alternative)'), m['type']


def check_refs(entries, known, where):
    for e in entries:
        for what, ref in refs(e):
            if ref not in known:
                fail('%s: %s of %s refers to %r, which does not exist'
                     % (where, what, e['name'], ref))


def canonical(elements):
    """Re-print as QEMU does, preserving the key order seen."""
    return ', '.join(json.dumps(e, separators=(', ', ': '),
                                ensure_ascii=True) for e in elements)


def qemu_schema(binary):
    a, b = socket.socketpair()
    proc = subprocess.Popen(
        [binary, '-machine', 'none', '-nodefaults', '-display', 'none', '-S',
         '-chardev', 'socket,id=m,fd=%d' % b.fileno(),
         '-mon', 'chardev=m,mode=control'],
        pass_fds=[b.fileno()], stdout=subprocess.DEVNULL)
    b.close()
    a.settimeout(30)
    f = a.makefile('rb')
    try:
        f.readline()  # greeting
        for cmd in ('qmp_capabilities', 'query-qmp-schema'):
            a.sendall(b'{"execute": "%s"}\n' % cmd.encode())
            while True:
                line = f.readline().decode()
                if not line.startswith('{"timestamp"'):
                    break
        return line.rstrip('\r\n')
    finally:
        proc.kill()
        proc.wait()


def main():
    args = sys.argv[1:]
    with open(args[0], encoding='utf-8') as f:
        src = f.read()
    schema_text = c_constant(src, 'qph_qapi_introspect_schema')
    commands_text = c_constant(src, 'qph_qapi_introspect_commands')
    try:
        entries = json.loads('[' + schema_text + ']')
        commands = json.loads('[' + commands_text + ']')
    except ValueError as e:
        fail('not valid JSON elements: %s' % e)
    if canonical(entries) != schema_text:
        fail('schema text is not printed the QEMU way')
    if canonical(commands) != commands_text:
        fail('commands text is not printed the QEMU way')
    names = [e['name'] for e in entries]
    if len(set(names)) != len(names):
        fail('duplicate SchemaInfo names: %s' % names)
    for n in names:
        if re.fullmatch(r'\[?[0-9]+\]?', n):
            fail('%r could collide with QEMU\'s masked type names' % n)
        if n in QEMU_BUILTINS:
            fail('%r duplicates a QEMU builtin' % n)
    check_refs(entries, set(names) | QEMU_BUILTINS, 'helper entries')
    cmd_entries = [e['name'] for e in entries if e['meta-type'] == 'command']
    if [c['name'] for c in commands] != cmd_entries:
        fail('query-commands %s != command entries %s'
             % ([c['name'] for c in commands], cmd_entries))
    for want in ('set-perf-events', 'query-perf-events'):
        if want not in cmd_entries:
            fail('%s is missing' % want)
    print('ok: %d SchemaInfo entries, %d commands' % (len(entries),
                                                      len(commands)))

    if len(args) >= 3 and args[1] == '--qemu':
        binary = shutil.which(args[2])
        if not binary:
            print('skip: %s not found' % args[2])
            sys.exit(77)
        reply = qemu_schema(binary)
        prefix = '{"return": ['
        if not reply.startswith(prefix) or not reply.endswith(']}'):
            fail('unexpected reply from QEMU: %.200s' % reply)
        spliced = reply[:-2] + ', ' + schema_text + ']}'
        try:
            full = json.loads(spliced)['return']
        except ValueError as e:
            fail('spliced answer is not JSON: %s' % e)
        all_names = [e['name'] for e in full]
        dup = {n for n in all_names if all_names.count(n) > 1}
        if dup:
            fail('names defined twice after splicing: %s' % sorted(dup))
        qemu_names = {e['name'] for e in json.loads(reply)['return']}
        missing = QEMU_BUILTINS - qemu_names
        if missing:
            fail('QEMU lacks the builtins relied on: %s' % sorted(missing))
        check_refs(full, set(all_names), 'spliced answer')
        print('ok: spliced into QEMU\'s %d entries' % len(qemu_names))


if __name__ == '__main__':
    main()
