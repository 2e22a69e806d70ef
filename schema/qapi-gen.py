#!/usr/bin/python3
#
# qapi-gen.py: turn the helper's QAPI schema into C code, introspection
# data and the QMP reference manual
#
# The schema (schema/qemu-perf-helper.json) is the single source of truth
# for the commands the helper answers itself.  This script reads the subset
# of QEMU's QAPI language the helper needs (enums, structs, lists of str and
# of structs, commands; optional '*members'; doc comments) and writes:
#
#   qph-qapi-types.[ch]       C types, enum string tables, free functions
#   qph-qapi-visit.[ch]       QmpJson -> C (QEMU 7.2's input-visitor error
#                             texts and paths) and C -> QmpJson
#   qph-qapi-commands.[ch]    handler prototypes, marshallers, command table
#   qph-qapi-introspect.[ch]  SchemaInfo and query-commands elements
#   qmp-reference.md          the reference manual (--doc / --check-doc)
#
# Conventions of the generated C (documented at the top of each header):
#   - a list is a GPtrArray * whose free function frees the elements
#     (g_free for str); qph_new_<Elt>List() creates one;
#   - every optional member 'x' has a gboolean has_x, as in QEMU 7.2;
#   - input functions return NULL with a GError (QMP_ERROR,
#     QMP_ERROR_GENERIC_ERROR) whose message is exactly QEMU's;
#   - nothing reachable from input aborts.
#
# Python 3 standard library only.
#
# SPDX-License-Identifier: GPL-2.0-or-later

import argparse
import difflib
import json
import os
import re
import sys
from collections import OrderedDict


class SchemaError(Exception):
    def __init__(self, where, msg):
        super().__init__('%s: %s' % (where, msg))


# ---------------------------------------------------------------------------
# Parsing: QAPI's JSON dialect (single quotes, # comments) and doc blocks
# ---------------------------------------------------------------------------

class Doc:
    """One ## ... ## block."""

    TAGS = ('Returns', 'Errors', 'Since', 'Example', 'Examples', 'Note',
            'Notes')

    def __init__(self, fname, line, lines):
        self.where = '%s:%d' % (fname, line)
        self.symbol = None
        self.heading = None
        self.body = []          # paragraphs (str) before members
        self.members = OrderedDict()  # name -> text
        self.tail = []          # paragraphs after the members
        self.sections = []      # (tag, text); Example text verbatim
        self._parse(lines)

    def _parse(self, lines):
        if lines and re.match(r'^@[^:\s]+:\s*$', lines[0]):
            self.symbol = lines[0][1:].strip()[:-1]
            lines = lines[1:]
        elif lines and lines[0].startswith('= '):
            self.heading = lines[0][2:].strip()
            lines = lines[1:]
        para = []
        member = None
        section = None  # [tag, [lines]]

        def flush():
            nonlocal para
            if para:
                text = ' '.join(s.strip() for s in para)
                if member is not None:
                    self.members[member] += (' ' if self.members[member]
                                             else '') + text
                elif self.members:
                    self.tail.append(text)
                else:
                    self.body.append(text)
            para = []

        for ln in lines:
            tag = re.match(r'^(%s):\s*(.*)$' % '|'.join(self.TAGS), ln)
            if tag:
                flush()
                member = None
                section = [tag.group(1), [tag.group(2)] if tag.group(2)
                           else []]
                self.sections.append(section)
                continue
            if section is not None:
                section[1].append(ln)
                continue
            m = re.match(r'^@([^:\s]+):\s*(.*)$', ln)
            if m and self.symbol:
                flush()
                member = m.group(1)
                if member in self.members:
                    raise SchemaError(self.where,
                                      "'@%s' documented twice" % member)
                self.members[member] = ''
                para = [m.group(2)] if m.group(2) else []
                continue
            if not ln.strip():
                flush()
                member = None
                continue
            para.append(ln)
        flush()
        self.sections = [(t, self._dedent(t, ls)) for t, ls in self.sections]

    @staticmethod
    def _dedent(tag, lines):
        while lines and not lines[-1].strip():
            lines.pop()
        while lines and not lines[0].strip():
            lines.pop(0)
        if tag.startswith('Example'):
            ind = min((len(s) - len(s.lstrip()) for s in lines if s.strip()),
                      default=0)
            return '\n'.join(s[ind:] for s in lines)
        return '\n'.join(s.rstrip() for s in lines)

    def section(self, tag):
        for t, text in self.sections:
            if t == tag:
                return text
        return None


class Parser:
    def __init__(self, fname):
        self.fname = fname
        with open(fname, encoding='utf-8') as f:
            self.src = f.read()
        self.pos = 0
        self.line = 1
        self.items = []  # ('doc', Doc) or ('expr', dict, line, Doc|None)

    def where(self):
        return '%s:%d' % (self.fname, self.line)

    def parse(self):
        pending = None
        while True:
            tok = self._skip_space()
            if tok is None:
                break
            if tok == 'doc':
                doc = self._doc_block()
                if pending is not None:
                    self.items.append(('doc', pending))
                pending = doc
                continue
            line = self.line
            expr = self._value()
            if not isinstance(expr, dict):
                raise SchemaError('%s:%d' % (self.fname, line),
                                  'a top-level expression must be an object')
            if pending is not None and pending.symbol is None:
                self.items.append(('doc', pending))
                pending = None
            self.items.append(('expr', expr, line, pending))
            pending = None
        if pending is not None:
            self.items.append(('doc', pending))
        return self.items

    def _skip_space(self):
        src = self.src
        while self.pos < len(src):
            c = src[self.pos]
            if c == '\n':
                self.line += 1
                self.pos += 1
            elif c in ' \t\r':
                self.pos += 1
            elif c == '#':
                bol = self.pos == 0 or src[self.pos - 1] == '\n'
                end = src.find('\n', self.pos)
                end = len(src) if end < 0 else end
                if bol and src[self.pos:end].rstrip() == '##':
                    return 'doc'
                self.pos = end
            else:
                return c
        return None

    def _doc_block(self):
        start = self.line
        lines = []
        src = self.src
        end = src.find('\n', self.pos)
        self.pos = end + 1
        self.line += 1
        while True:
            if self.pos >= len(src):
                raise SchemaError('%s:%d' % (self.fname, start),
                                  'unterminated doc block')
            end = src.find('\n', self.pos)
            end = len(src) if end < 0 else end
            ln = src[self.pos:end]
            self.pos = min(end + 1, len(src))
            self.line += 1
            if ln.rstrip() == '##':
                break
            if not ln.startswith('#'):
                raise SchemaError('%s:%d' % (self.fname, self.line - 1),
                                  "doc comment lines must start with '#'")
            if ln.startswith('# '):
                lines.append(ln[2:].rstrip())
            elif ln.rstrip() == '#':
                lines.append('')
            else:
                raise SchemaError('%s:%d' % (self.fname, self.line - 1),
                                  "'#' must be followed by a space")
        return Doc(self.fname, start, lines)

    def _value(self):
        c = self._skip_space()
        if c is None:
            raise SchemaError(self.where(), 'unexpected end of file')
        if c == 'doc':
            raise SchemaError(self.where(), 'doc block inside an expression')
        if c == '{':
            self.pos += 1
            obj = OrderedDict()
            if self._skip_space() == '}':
                self.pos += 1
                return obj
            while True:
                if self._skip_space() != "'":
                    raise SchemaError(self.where(), 'expected a string key')
                key = self._string()
                if key in obj:
                    raise SchemaError(self.where(), "duplicate key '%s'" % key)
                if self._skip_space() != ':':
                    raise SchemaError(self.where(), "expected ':'")
                self.pos += 1
                obj[key] = self._value()
                c = self._skip_space()
                self.pos += 1
                if c == '}':
                    return obj
                if c != ',':
                    raise SchemaError(self.where(), "expected ',' or '}'")
        if c == '[':
            self.pos += 1
            arr = []
            if self._skip_space() == ']':
                self.pos += 1
                return arr
            while True:
                arr.append(self._value())
                c = self._skip_space()
                self.pos += 1
                if c == ']':
                    return arr
                if c != ',':
                    raise SchemaError(self.where(), "expected ',' or ']'")
        if c == "'":
            return self._string()
        for word, val in (('true', True), ('false', False)):
            if self.src.startswith(word, self.pos):
                self.pos += len(word)
                return val
        raise SchemaError(self.where(), "stray '%s'" % c)

    def _string(self):
        self.pos += 1
        out = []
        while True:
            if self.pos >= len(self.src) or self.src[self.pos] == '\n':
                raise SchemaError(self.where(), 'unterminated string')
            c = self.src[self.pos]
            self.pos += 1
            if c == "'":
                return ''.join(out)
            if c == '\\':
                c = self.src[self.pos]
                self.pos += 1
            out.append(c)


# ---------------------------------------------------------------------------
# The schema model
# ---------------------------------------------------------------------------

def c_name(name):
    return re.sub(r'[^A-Za-z0-9_]', '_', name)


def camel_to_upper(name):
    # QEMU's rule, simplified for the names used here: PerfEventUnit ->
    # PERF_EVENT_UNIT.
    return re.sub(r'(?<=[a-z0-9])(?=[A-Z])', '_', name).upper()


class Builtin:
    # name -> (C type, JSON type in "expected: %s", introspection name)
    TABLE = {
        'str': ('char *', 'string', 'str'),
        'bool': ('gboolean ', 'boolean', 'bool'),
        'int': ('gint64 ', 'integer', 'int'),
        'int64': ('gint64 ', 'integer', 'int'),
        'uint64': ('guint64 ', 'integer', 'int'),
    }

    def __init__(self, name):
        self.name = name
        self.c_type, self.json_type, self.intro_name = Builtin.TABLE[name]
        self.is_pointer = name == 'str'


class Enum:
    def __init__(self, name, values, doc, line):
        self.name = name
        self.values = values
        self.doc = doc
        self.line = line
        self.prefix = camel_to_upper(name)
        self.c_type = name + ' '
        self.is_pointer = False

    def const(self, value):
        return '%s_%s' % (self.prefix, c_name(value).upper())

    @property
    def last(self):
        return self.prefix + '__LAST'


class Member:
    def __init__(self, name, typ, optional):
        self.name = name
        self.typ = typ
        self.optional = optional
        self.c = c_name(name)


class Struct:
    def __init__(self, name, members, doc, line, implicit=False):
        self.name = name
        self.members = members
        self.doc = doc
        self.line = line
        self.implicit = implicit
        self.c_type = name + ' *'
        self.is_pointer = True


class List:
    def __init__(self, elt):
        self.elt = elt
        self.name = elt.name + 'List'
        self.c_type = 'GPtrArray *'
        self.is_pointer = True


class Command:
    def __init__(self, name, arg, ret, allow_oob, doc, line):
        self.name = name
        self.arg = arg
        self.ret = ret
        self.allow_oob = allow_oob
        self.doc = doc
        self.line = line
        self.c = c_name(name)


class Schema:
    def __init__(self, fname):
        self.fname = fname
        self.items = Parser(fname).parse()
        self.types = OrderedDict()     # name -> Enum | Struct
        self.lists = OrderedDict()     # name -> List
        self.commands = []
        self.docs = []                 # free-form docs and entities, in order
        self._build()

    def where(self, line):
        return '%s:%d' % (self.fname, line)

    def _build(self):
        raw = []
        for item in self.items:
            if item[0] == 'doc':
                if item[1].symbol is not None:
                    raise SchemaError(item[1].where,
                                      "doc for '%s' is not followed by its "
                                      "definition" % item[1].symbol)
                self.docs.append(item[1])
                continue
            _, expr, line, doc = item
            meta = next(iter(expr))
            name = expr[meta]
            if meta not in ('enum', 'struct', 'command'):
                raise SchemaError(self.where(line),
                                  "'%s' is not supported by this generator"
                                  % meta)
            allowed = {'enum': {'enum', 'data'},
                       'struct': {'struct', 'data'},
                       'command': {'command', 'data', 'returns',
                                   'allow-oob'}}[meta]
            for key in expr:
                if key not in allowed:
                    raise SchemaError(self.where(line),
                                      "'%s' of %s '%s' is not supported"
                                      % (key, meta, name))
            if not isinstance(name, str) or not re.match(
                    r'^[A-Za-z][A-Za-z0-9_-]*$', name):
                raise SchemaError(self.where(line), 'bad name %r' % (name,))
            if doc is None:
                raise SchemaError(self.where(line),
                                  "'%s' has no doc block" % name)
            if doc.symbol != name:
                raise SchemaError(doc.where, "doc block is for '%s', not "
                                  "'%s'" % (doc.symbol, name))
            if name in self.types or any(c.name == name
                                         for c in self.commands):
                raise SchemaError(self.where(line),
                                  "'%s' is defined twice" % name)
            if meta == 'enum':
                vals = expr.get('data')
                if not isinstance(vals, list) or not vals or not all(
                        isinstance(v, str) for v in vals):
                    raise SchemaError(self.where(line),
                                      "enum '%s' needs a list of values"
                                      % name)
                if len(set(vals)) != len(vals):
                    raise SchemaError(self.where(line),
                                      "enum '%s' repeats a value" % name)
                ent = Enum(name, vals, doc, line)
                self.types[name] = ent
                self.docs.append(ent)
            elif meta == 'struct':
                if not name[0].isupper():
                    raise SchemaError(self.where(line), "type names are "
                                      "CamelCase: '%s'" % name)
                ent = Struct(name, expr.get('data'), doc, line)
                self.types[name] = ent
                raw.append(ent)
                self.docs.append(ent)
            else:
                oob = expr.get('allow-oob', False)
                if not isinstance(oob, bool):
                    raise SchemaError(self.where(line),
                                      "'allow-oob' must be true or false")
                arg = Struct('q_obj_%s_arg' % c_name(name),
                             expr.get('data', OrderedDict()), doc, line,
                             implicit=True)
                raw.append(arg)
                ent = Command(name, arg, expr.get('returns'), oob, doc, line)
                self.commands.append(ent)
                self.docs.append(ent)
        # Resolve member types now that every name is known.
        for st in raw:
            if not isinstance(st.members, dict):
                raise SchemaError(self.where(st.line),
                                  "'data' of '%s' must be an object"
                                  % st.name)
            members = []
            for key, tref in st.members.items():
                opt = key.startswith('*')
                mname = key[1:] if opt else key
                if not re.match(r'^[a-z][a-z0-9-]*$', mname):
                    raise SchemaError(self.where(st.line),
                                      "bad member name '%s'" % mname)
                members.append(Member(mname, self._resolve(tref, st.line),
                                      opt))
            cnames = [m.c for m in members]
            if len(set(cnames)) != len(cnames):
                raise SchemaError(self.where(st.line), "members of '%s' "
                                  "clash in C" % st.name)
            st.members = members
            self._check_member_docs(st.doc, [m.name for m in members])
        for ent in self.types.values():
            if isinstance(ent, Enum):
                self._check_member_docs(ent.doc, ent.values)
        for cmd in self.commands:
            if cmd.ret is not None:
                cmd.ret = self._resolve(cmd.ret, cmd.line)
                if not isinstance(cmd.ret, (Struct, List)):
                    raise SchemaError(self.where(cmd.line), "'returns' of "
                                      "'%s' must be a struct or a list"
                                      % cmd.name)
        for ent in self.docs:
            if not isinstance(ent, Doc) and not ent.doc.section('Since'):
                raise SchemaError(ent.doc.where, "'%s' has no 'Since:'"
                                  % ent.name)

    def _check_member_docs(self, doc, names):
        for n in names:
            if n not in doc.members or not doc.members[n]:
                raise SchemaError(doc.where, "'@%s' of '%s' is not "
                                  "documented" % (n, doc.symbol))
        for n in doc.members:
            if n not in names:
                raise SchemaError(doc.where, "'@%s' is documented but '%s' "
                                  "has no such member" % (n, doc.symbol))

    def _resolve(self, tref, line):
        if isinstance(tref, list):
            if len(tref) != 1 or not isinstance(tref[0], str):
                raise SchemaError(self.where(line),
                                  'an array type names exactly one type')
            elt = self._resolve(tref[0], line)
            if not (isinstance(elt, Struct) or
                    (isinstance(elt, Builtin) and elt.name == 'str')):
                raise SchemaError(self.where(line), "lists of '%s' are not "
                                  "supported (only str and structs)"
                                  % tref[0])
            lst = self.lists.get(elt.name + 'List')
            if lst is None:
                lst = List(elt)
                self.lists[lst.name] = lst
            return lst
        if not isinstance(tref, str):
            raise SchemaError(self.where(line), 'bad type %r' % (tref,))
        if tref in Builtin.TABLE:
            return Builtin(tref)
        if tref in self.types:
            return self.types[tref]
        raise SchemaError(self.where(line), "unknown type '%s'" % tref)

    def structs(self):
        out = [t for t in self.types.values() if isinstance(t, Struct)]
        return out + [c.arg for c in self.commands]

    def enums(self):
        return [t for t in self.types.values() if isinstance(t, Enum)]


# ---------------------------------------------------------------------------
# C generation helpers
# ---------------------------------------------------------------------------

BANNER = '''/*
 * %s: %s
 *
 * Generated by schema/qapi-gen.py from schema/qemu-perf-helper.json.
 * Do not edit: change the schema and rebuild.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
'''


def c_string(s):
    out = []
    for ch in s:
        if ch in '"\\':
            out.append('\\' + ch)
        elif ch == '\n':
            out.append('\\n')
        elif 0x20 <= ord(ch) < 0x7f:
            out.append(ch)
        else:
            for b in ch.encode('utf-8'):
                out.append('\\%03o' % b)
    return '"%s"' % ''.join(out)


def free_func(typ):
    """Expression freeing a member of type @typ, or None for scalars."""
    if isinstance(typ, Builtin):
        return 'g_free' if typ.name == 'str' else None
    if isinstance(typ, Struct):
        return 'qph_free_' + typ.name
    if isinstance(typ, List):
        return 'g_ptr_array_unref'
    return None


def gen_types(schema):
    h = [BANNER % ('qph-qapi-types.h', 'C types of the helper\'s QAPI '
                   'schema'), '''
/*
 * Conventions:
 * - an enum has a _LAST sentinel and a table of its QAPI names,
 *   qph_<Enum>_names[]; qph_<Enum>_str() and qph_<Enum>_parse() convert;
 * - a struct is freed with qph_free_<Struct>() and works with g_autoptr();
 * - an optional member 'x' comes with "gboolean has_x" (QEMU 7.2 style);
 *   an absent pointer member is NULL;
 * - a list is a GPtrArray * that owns its elements (it frees them with
 *   g_free for str, qph_free_<Struct> for structs); create one with
 *   qph_new_<Elt>List() so the free function is right;
 * - q_obj_<command>_arg holds the arguments of a command, as in QEMU.
 */
#pragma once

#include <glib.h>
''']
    c = [BANNER % ('qph-qapi-types.c', 'enum tables and free functions'),
         '\n#include "qph-qapi-types.h"\n\n#include <string.h>\n']
    for e in schema.enums():
        h.append('\ntypedef enum %s {\n' % e.name)
        for v in e.values:
            h.append('    %s,\n' % e.const(v))
        h.append('    %s,\n} %s;\n\n' % (e.last, e.name))
        h.append('extern const char *const qph_%s_names[%s];\n'
                 % (e.name, e.last))
        h.append('/* The QAPI name of @value, or NULL if out of range. */\n')
        h.append('const char *qph_%s_str(%s value);\n' % (e.name, e.name))
        h.append('/* Set *@out to the value named @name; FALSE if none. */\n')
        h.append('gboolean qph_%s_parse(const char *name, %s *out);\n'
                 % (e.name, e.name))
        c.append('\nconst char *const qph_%s_names[%s] = {\n'
                 % (e.name, e.last))
        for v in e.values:
            c.append('    [%s] = %s,\n' % (e.const(v), c_string(v)))
        c.append('};\n')
        c.append('G_STATIC_ASSERT(G_N_ELEMENTS(qph_%s_names) == %s);\n'
                 % (e.name, e.last))
        c.append('''
const char *
qph_%(n)s_str(%(n)s value)
{
    if ((guint)value >= %(last)s) {
        return NULL;
    }
    return qph_%(n)s_names[value];
}

gboolean
qph_%(n)s_parse(const char *name, %(n)s *out)
{
    for (guint i = 0; i < %(last)s; i++) {
        if (strcmp(qph_%(n)s_names[i], name) == 0) {
            *out = (%(n)s)i;
            return TRUE;
        }
    }
    return FALSE;
}
''' % {'n': e.name, 'last': e.last})
    structs = schema.structs()
    h.append('\n')
    for s in structs:
        h.append('typedef struct %s %s;\n' % (s.name, s.name))
    for s in structs:
        doc = s.doc
        h.append('\n')
        if not s.implicit:
            h.append('/* %s: see docs/qmp-reference.md */\n' % s.name)
        else:
            h.append('/* The arguments of %s. */\n'
                     % next(cm.name for cm in schema.commands
                            if cm.arg is s))
        h.append('struct %s {\n' % s.name)
        for m in s.members:
            if m.optional:
                h.append('    gboolean has_%s;\n' % m.c)
            comment = ''
            if isinstance(m.typ, List):
                comment = ' /* %s * */' % (
                    'char' if isinstance(m.typ.elt, Builtin)
                    else m.typ.elt.name)
            h.append('    %s%s;%s\n' % (m.typ.c_type, m.c, comment))
        if not s.members:
            h.append('    char dummy; /* no members; C needs one */\n')
        h.append('};\n\n')
        h.append('void qph_free_%s(%s *obj);\n' % (s.name, s.name))
        h.append('G_DEFINE_AUTOPTR_CLEANUP_FUNC(%s, qph_free_%s)\n'
                 % (s.name, s.name))
        c.append('\nvoid\nqph_free_%s(%s *obj)\n{\n' % (s.name, s.name))
        c.append('    if (!obj) {\n        return;\n    }\n')
        for m in s.members:
            f = free_func(m.typ)
            if f == 'g_ptr_array_unref':
                c.append('    if (obj->%s) {\n        g_ptr_array_unref(obj->'
                         '%s);\n    }\n' % (m.c, m.c))
            elif f:
                c.append('    %s(obj->%s);\n' % (f, m.c))
        c.append('    g_free(obj);\n}\n')
    if schema.lists:
        h.append('\n/* Empty lists that free their elements. */\n')
    for lst in schema.lists.values():
        h.append('GPtrArray *qph_new_%s(void);\n' % lst.name)
        f = free_func(lst.elt)
        c.append('\nGPtrArray *\nqph_new_%s(void)\n{\n'
                 '    return g_ptr_array_new_with_free_func((GDestroyNotify)'
                 '%s);\n}\n' % (lst.name, f))
    return ''.join(h), ''.join(c)


VISIT_RUNTIME = r'''
/*
 * How a path is named.  QEMU's input visitor keeps a stack of the
 * containers it is inside and names a value by walking it: a member of an
 * object appends ".name", an element of a list appends "[i]", and a leading
 * "." is dropped ("events[0].enabled").  A frame here is one such container.
 * Which unexpected member QEMU reports first depends on the iteration order
 * of a GHashTable filled in QDict order and emptied as members are visited;
 * the same GLib table is used here, filled and emptied the same way.
 */
typedef struct QphVisitFrame QphVisitFrame;
struct QphVisitFrame {
    QphVisitFrame *up;     /* the enclosing container; NULL at the root */
    const char *name;      /* the name this container was visited under */
    gboolean is_list;
    guint index;           /* lists: the element being visited */
    const QmpJson *obj;    /* objects: the object */
    GHashTable *unvisited; /* objects: member names not visited yet */
};

static char *
full_name(const QphVisitFrame *top, const char *name)
{
    g_autoptr(GString) s = g_string_new("");

    for (const QphVisitFrame *f = top; f; f = f->up) {
        if (f->is_list) {
            char buf[32];

            g_snprintf(buf, sizeof(buf), "[%u]", f->index);
            g_string_prepend(s, buf);
        } else {
            g_string_prepend(s, name ? name : "<anonymous>");
            g_string_prepend_c(s, '.');
        }
        name = f->name;
    }
    if (name) {
        g_string_prepend(s, name);
    } else if (s->str[0] == '.') {
        g_string_erase(s, 0, 1);
    } else if (!s->str[0]) {
        g_string_assign(s, "<anonymous>");
    }
    return g_string_free(g_steal_pointer(&s), FALSE);
}

static gboolean
type_error(const QphVisitFrame *up, const char *name, const char *expected,
           GError **error)
{
    g_autofree char *path = full_name(up, name);

    g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR,
                "Invalid parameter type for '%s', expected: %s", path,
                expected);
    return FALSE;
}

static gboolean
missing_error(const QphVisitFrame *f, const char *name, GError **error)
{
    g_autofree char *path = full_name(f, name);

    g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR,
                "Parameter '%s' is missing", path);
    return FALSE;
}

static gboolean
enter_object(QphVisitFrame *f, QphVisitFrame *up, const char *name,
             const QmpJson *v, GError **error)
{
    g_autofree const char **keys = NULL;
    g_autofree guint *order = NULL;
    guint n;

    if (!v || v->type != QMP_JSON_OBJECT) {
        return type_error(up, name, "object", error);
    }
    *f = (QphVisitFrame){.up = up, .name = name, .obj = v};
    f->unvisited = g_hash_table_new(g_str_hash, g_str_equal);
    n = v->members ? v->members->len : 0;
    keys = g_new0(const char *, n + 1);
    for (guint i = 0; i < n; i++) {
        keys[i] = ((QmpJsonMember *)g_ptr_array_index(v->members, i))->key;
    }
    order = qmp_qdict_order(keys, n);
    for (guint i = 0; i < n; i++) {
        g_hash_table_insert(f->unvisited, (gpointer)keys[order[i]], NULL);
    }
    return TRUE;
}

static void
leave_object(QphVisitFrame *f)
{
    g_hash_table_unref(f->unvisited);
    f->unvisited = NULL;
}

/* The member @name of the object, marked visited; NULL if absent. */
static const QmpJson *
visit_member(QphVisitFrame *f, const char *name)
{
    const QmpJson *v = qmp_json_object_get(f->obj, name);

    if (v) {
        g_hash_table_remove(f->unvisited, name);
    }
    return v;
}

static gboolean
check_object(QphVisitFrame *f, GError **error)
{
    GHashTableIter iter;
    gpointer key;

    g_hash_table_iter_init(&iter, f->unvisited);
    if (g_hash_table_iter_next(&iter, &key, NULL)) {
        g_autofree char *path = full_name(f, key);

        g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR,
                    "Parameter '%s' is unexpected", path);
        return FALSE;
    }
    return TRUE;
}

static gboolean
visit_in_str(QphVisitFrame *up, const char *name, const QmpJson *v,
             char **out, GError **error)
{
    if (!v || v->type != QMP_JSON_STRING) {
        return type_error(up, name, "string", error);
    }
    *out = g_strdup(v->s);
    return TRUE;
}

static G_GNUC_UNUSED gboolean
visit_in_bool(QphVisitFrame *up, const char *name, const QmpJson *v,
              gboolean *out, GError **error)
{
    if (!v || v->type != QMP_JSON_BOOL) {
        return type_error(up, name, "boolean", error);
    }
    *out = v->b;
    return TRUE;
}

static G_GNUC_UNUSED gboolean
visit_in_int(QphVisitFrame *up, const char *name, const QmpJson *v,
             gint64 *out, GError **error)
{
    if (!v || v->type != QMP_JSON_INT) {
        return type_error(up, name, "integer", error);
    }
    *out = v->i;
    return TRUE;
}

/* Like QEMU, accept negative integers and wrap them (compatibility). */
static G_GNUC_UNUSED gboolean
visit_in_uint64(QphVisitFrame *up, const char *name, const QmpJson *v,
                guint64 *out, GError **error)
{
    g_autofree char *path = NULL;

    if (v && v->type == QMP_JSON_UINT) {
        *out = v->u;
        return TRUE;
    }
    if (v && v->type == QMP_JSON_INT) {
        *out = (guint64)v->i;
        return TRUE;
    }
    path = full_name(up, name);
    g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR,
                "Parameter '%s' expects uint64", path);
    return FALSE;
}

/* Enums: QEMU names the parameter by its bare name here, not its path. */
static gboolean
enum_error(const char *name, const char *value, GError **error)
{
    g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR,
                "Parameter '%s' does not accept value '%s'",
                name ? name : "null", value);
    return FALSE;
}

static gboolean
output_error(const char *type, const char *member, GError **error)
{
    g_set_error(error, QMP_ERROR, QMP_ERROR_GENERIC_ERROR,
                "Cannot build the reply: member '%s' of %s is missing or "
                "out of range.",
                member, type);
    return FALSE;
}

static G_GNUC_UNUSED QmpJson *
output_uint64(guint64 u)
{
    QmpJson *v;

    if (u <= (guint64)G_MAXINT64) {
        return qmp_json_new_int((gint64)u);
    }
    v = qmp_json_new(QMP_JSON_UINT);
    v->u = u;
    return v;
}
'''


WRITE_RUNTIME = r'''
/*
 * Direct writers: qph_write_<T>() appends the JSON text of a value, byte
 * for byte what qmp_json_write(qph_output_<T>()) prints, without building
 * the tree.  Integers print as "%%" G_GINT64_FORMAT / G_GUINT64_FORMAT do
 * (output_uint64() makes a UINT only beyond G_MAXINT64, and INT and UINT
 * print the same digits for the same number), so one formatter serves.
 *
 * A per-thread reply is thousands of short appends: write_len() copies
 * into the room the string already has and leaves growing to GLib, and
 * write_str() copies a string that needs no escaping (all printable ASCII
 * but '"' and '\\', as thread names and QOM paths are) in one go and
 * leaves the others to qmp_json_write_string(): the same bytes either way.
 */
static inline void
write_len(GString *out, const char *s, gsize n)
{
    if (G_LIKELY(n < out->allocated_len - out->len)) {
        memcpy(out->str + out->len, s, n);
        out->len += n;
        out->str[out->len] = '\0';
    } else {
        g_string_append_len(out, s, n);
    }
}

/* The bytes a JSON string holds as they are: printable ASCII but '"' and
 * '\\' (so not NUL, which ends the scan). */
static const guint8 write_plain[256] = {
%(plain)s};

static G_GNUC_UNUSED void
write_str(GString *out, const char *s)
{
    const char *p = s;

    while (write_plain[(guchar)*p]) {
        p++;
    }
    if (*p) {
        qmp_json_write_string(out, s);
        return;
    }
    write_len(out, "\"", 1);
    write_len(out, s, p - s);
    write_len(out, "\"", 1);
}

static G_GNUC_UNUSED void
write_uint(GString *out, guint64 u)
{
    char buf[20];
    char *p = buf + sizeof(buf);

    do {
        *--p = (char)('0' + u %% 10);
        u /= 10;
    } while (u);
    write_len(out, p, buf + sizeof(buf) - p);
}

static G_GNUC_UNUSED void
write_int(GString *out, gint64 i)
{
    if (i < 0) {
        write_len(out, "-", 1);
        write_uint(out, -(guint64)i);
        return;
    }
    write_uint(out, (guint64)i);
}

static G_GNUC_UNUSED void
write_bool(GString *out, gboolean b)
{
    if (b) {
        write_len(out, "true", 4);
    } else {
        write_len(out, "false", 5);
    }
}
'''


def plain_table():
    """write_plain[]'s rows: 1 for the bytes write_str() copies as they are."""
    flags = ['1' if 0x20 <= b < 0x7f and chr(b) not in '"\\' else '0'
             for b in range(256)]
    return ''.join('    %s,\n' % ', '.join(flags[i:i + 16])
                   for i in range(0, 256, 16))


def write_literal(text):
    """A statement appending @text, known at generation time."""
    lit = c_string(text)
    return 'write_len(out, %s, sizeof(%s) - 1);' % (lit, lit)


def is_plain(name):
    return all(0x20 <= ord(ch) < 0x7f for ch in name)


def write_stmts(typ, val, owner, member):
    """Statements appending @val (a member of @owner) as JSON to out."""
    fail = ('if (!%s) {\n    return output_error("%s", "%s", error);\n}\n'
            % (val, owner, member))
    if isinstance(typ, Builtin):
        if typ.name == 'str':
            return fail + 'write_str(out, %s);\n' % val
        if typ.name == 'bool':
            return 'write_bool(out, %s);\n' % val
        if typ.name == 'uint64':
            return 'write_uint(out, %s);\n' % val
        return 'write_int(out, %s);\n' % val
    if isinstance(typ, Enum):
        return ('if ((guint)%s >= %s) {\n    return output_error("%s", "%s", '
                'error);\n}\nwrite_str(out, qph_%s_names[%s]);\n'
                % (val, typ.last, owner, member, typ.name, val))
    return fail + ('if (!qph_write_%s(out, %s, error)) {\n    return FALSE;\n'
                   '}\n' % (typ.name, val))


def indent(text, n):
    return ''.join((' ' * n + ln) if ln.strip() else ln
                   for ln in text.splitlines(True))


def gen_struct_writer(s):
    """qph_write_<S>(): members in QDict order, computed here once."""
    order = qdict_order([mb.name for mb in s.members])
    # Whether something precedes each member: 'none', 'maybe' (only
    # optional members came before) or 'sure' (a required one did).
    states = []
    state = 'none'
    for idx in order:
        states.append(state)
        if not s.members[idx].optional:
            state = 'sure'
        elif state == 'none':
            state = 'maybe'
    need_flag = 'maybe' in states
    body = []
    for idx, st in zip(order, states):
        mb = s.members[idx]
        if is_plain(mb.name):
            key = qemu_json(mb.name) + ': '
            if st == 'sure':
                pre = write_literal(', ' + key) + '\n'
            elif st == 'none':
                pre = write_literal(key) + '\n'
            else:
                pre = ('if (more) {\n    write_len(out, ", ", 2);'
                       '\n}\n' + write_literal(key) + '\n')
        else:
            if st == 'sure':
                pre = 'write_len(out, ", ", 2);\n'
            elif st == 'none':
                pre = ''
            else:
                pre = ('if (more) {\n    write_len(out, ", ", 2);'
                       '\n}\n')
            pre += ('write_str(out, %s);\n'
                    'write_len(out, ": ", 2);\n' % c_string(mb.name))
        stmts = pre + write_stmts(mb.typ, 'obj->%s' % mb.c, s.name, mb.name)
        if need_flag and st != 'sure' and mb.optional:
            stmts += 'more = TRUE;\n'
        if mb.optional:
            stmts = 'if (obj->has_%s) {\n%s}\n' % (mb.c, indent(stmts, 4))
        body.append(indent(stmts, 4))
    return ('\ngboolean\nqph_write_%(n)s(GString *out, const %(n)s *obj, '
            'GError **error)\n{\n%(flag)s'
            '    if (!obj) {\n        return output_error("%(n)s", "*", error);'
            '\n    }\n    write_len(out, "{", 1);\n%(body)s'
            '    write_len(out, "}", 1);\n    return TRUE;\n}\n'
            % {'n': s.name, 'body': ''.join(body),
               'flag': '    gboolean more = FALSE;\n\n' if need_flag else ''})


def gen_list_writer(lst):
    if isinstance(lst.elt, Builtin):
        elt = ('        const char *s = g_ptr_array_index(list, i);\n\n'
               '        if (i) {\n            write_len(out, ", ", 2);'
               '\n        }\n'
               '        if (!s) {\n            return output_error("%s", "[]", '
               'error);\n        }\n'
               '        write_str(out, s);\n' % lst.name)
    else:
        elt = ('        if (i) {\n            write_len(out, ", ", 2);'
               '\n        }\n'
               '        if (!qph_write_%s(out, g_ptr_array_index(list, i), '
               'error)) {\n            return FALSE;\n        }\n'
               % lst.elt.name)
    return ('\ngboolean\nqph_write_%(n)s(GString *out, const GPtrArray *list, '
            'GError **error)\n{\n'
            '    if (!list) {\n        return output_error("list", "%(n)s", '
            'error);\n    }\n    write_len(out, "[", 1);\n'
            '    for (guint i = 0; i < list->len; i++) {\n%(elt)s    }\n'
            '    write_len(out, "]", 1);\n    return TRUE;\n}\n'
            % {'n': lst.name, 'elt': elt})


def in_call(typ, up, name, v, out):
    fn = typ.name
    if isinstance(typ, Builtin) and fn == 'int64':
        fn = 'int'
    return 'visit_in_%s(%s, %s, %s, %s, error)' % (fn, up, name, v, out)


def out_expr(typ, val, owner, member):
    """(statements, expression) producing a QmpJson * for @val into m."""
    if isinstance(typ, Builtin):
        if typ.name == 'str':
            return ('    if (!%s) {\n        output_error("%s", "%s", '
                    'error);\n        return NULL;\n    }\n' %
                    (val, owner, member), 'qmp_json_new_string(%s)' % val)
        if typ.name == 'bool':
            return '', 'qmp_json_new_bool(%s)' % val
        if typ.name == 'uint64':
            return '', 'output_uint64(%s)' % val
        return '', 'qmp_json_new_int(%s)' % val
    if isinstance(typ, Enum):
        return ('    if (!qph_%s_str(%s)) {\n        output_error("%s", "%s", '
                'error);\n        return NULL;\n    }\n' %
                (typ.name, val, owner, member),
                'qmp_json_new_string(qph_%s_str(%s))' % (typ.name, val))
    return ('    if (!%s) {\n        output_error("%s", "%s", error);\n'
            '        return NULL;\n    }\n' % (val, owner, member),
            None)


def gen_visit(schema):
    h = [BANNER % ('qph-qapi-visit.h', 'QmpJson <-> C for the helper\'s '
                   'QAPI types'), '''
/*
 * Input: qph_input_<T>(value, error) builds a T from a QmpJson tree the
 * way QEMU 7.2's QObject input visitor does, with its error texts and
 * paths ("Parameter 'events[0].name' is missing", "Invalid parameter type
 * for 'events[0].enabled', expected: boolean", "Parameter 'x' is
 * unexpected", "Parameter 'unit' does not accept value 'y'", "Parameter 'x'
 * expects uint64").  The value is the root: a command's arguments object.
 * Errors are in QMP_ERROR, code QMP_ERROR_GENERIC_ERROR.
 *
 * Output: qph_output_<T>(obj, error) builds the reply tree, members in
 * schema order (the JSON writer prints them in QEMU's QDict order).  It
 * fails only on a bug in the caller: a required pointer member that is
 * NULL, or an enum value out of range.
 *
 * Direct output: qph_write_<T>(out, obj, error) appends to @out the text
 * qmp_json_write() would print for qph_output_<T>(obj), byte for byte,
 * without the tree (member order is QEMU's QDict order, computed by the
 * generator).  It fails where qph_output_<T>() fails, leaving a partial
 * text in @out.
 */
#pragma once

#include <glib.h>

#include "qmp/json-value.h"
#include "qph-qapi-types.h"
''']
    c = [BANNER % ('qph-qapi-visit.c', 'QmpJson <-> C for the helper\'s '
                   'QAPI types'),
         '\n#include "qph-qapi-visit.h"\n\n#include "qmp/qmp-error.h"\n\n'
         '#include <string.h>\n',
         VISIT_RUNTIME]

    structs = schema.structs()
    # Prototypes first: types refer to each other in any order.
    c.append('\n')
    for e in schema.enums():
        c.append('static G_GNUC_UNUSED gboolean visit_in_%s(QphVisitFrame *up,'
                 ' const char *name, const QmpJson *v, %s *out, GError '
                 '**error);\n' % (e.name, e.name))
    for s in structs:
        c.append('static gboolean visit_in_%s(QphVisitFrame *up, const char '
                 '*name, const QmpJson *v, %s **out, GError **error);\n'
                 % (s.name, s.name))
    for lst in schema.lists.values():
        c.append('static gboolean visit_in_%s(QphVisitFrame *up, const char '
                 '*name, const QmpJson *v, GPtrArray **out, GError **error);'
                 '\n' % lst.name)

    for e in schema.enums():
        c.append('''
static gboolean
visit_in_%(n)s(QphVisitFrame *up, const char *name, const QmpJson *v,
%(pad)s%(n)s *out, GError **error)
{
    if (!v || v->type != QMP_JSON_STRING) {
        return type_error(up, name, "string", error);
    }
    if (!qph_%(n)s_parse(v->s, out)) {
        return enum_error(name, v->s, error);
    }
    return TRUE;
}
''' % {'n': e.name, 'pad': ' ' * len('visit_in_%s(' % e.name)})

    for s in structs:
        c.append('\nstatic gboolean\nvisit_members_%s(QphVisitFrame *f, %s '
                 '*obj, GError **error)\n{\n    const QmpJson *m;\n\n'
                 % (s.name, s.name))
        for mb in s.members:
            c.append('    m = visit_member(f, "%s");\n' % mb.name)
            call = in_call(mb.typ, 'f', '"%s"' % mb.name, 'm',
                           '&obj->%s' % mb.c)
            if mb.optional:
                c.append('    if (m) {\n        obj->has_%s = TRUE;\n'
                         '        if (!%s) {\n            return FALSE;\n'
                         '        }\n    }\n' % (mb.c, call))
            else:
                c.append('    if (!m) {\n        return missing_error(f, "%s",'
                         ' error);\n    }\n    if (!%s) {\n        return '
                         'FALSE;\n    }\n' % (mb.name, call))
        if not s.members:
            c.append('    (void)m;\n    (void)obj;\n    (void)error;\n')
        c.append('    return TRUE;\n}\n')
        c.append('''
static gboolean
visit_in_%(n)s(QphVisitFrame *up, const char *name, const QmpJson *v,
               %(n)s **out, GError **error)
{
    QphVisitFrame f;
    g_autoptr(%(n)s) obj = NULL;
    gboolean ok;

    if (!enter_object(&f, up, name, v, error)) {
        return FALSE;
    }
    obj = g_new0(%(n)s, 1);
    ok = visit_members_%(n)s(&f, obj, error) && check_object(&f, error);
    leave_object(&f);
    if (!ok) {
        return FALSE;
    }
    *out = g_steal_pointer(&obj);
    return TRUE;
}

%(n)s *
qph_input_%(n)s(const QmpJson *value, GError **error)
{
    %(n)s *obj = NULL;

    if (!visit_in_%(n)s(NULL, NULL, value, &obj, error)) {
        return NULL;
    }
    return obj;
}
''' % {'n': s.name})
        h.append('\n%s *qph_input_%s(const QmpJson *value, GError **error);\n'
                 % (s.name, s.name))
        h.append('QmpJson *qph_output_%s(const %s *obj, GError **error);\n'
                 % (s.name, s.name))

    for lst in schema.lists.values():
        elt_c = lst.elt.c_type
        c.append('''
static gboolean
visit_in_%(n)s(QphVisitFrame *up, const char *name, const QmpJson *v,
               GPtrArray **out, GError **error)
{
    QphVisitFrame f = {.up = up, .name = name, .is_list = TRUE};
    g_autoptr(GPtrArray) list = NULL;

    if (!v || v->type != QMP_JSON_ARRAY) {
        return type_error(up, name, "array", error);
    }
    list = qph_new_%(n)s();
    for (guint i = 0; i < v->elements->len; i++) {
        %(elt)selt = NULL;

        f.index = i;
        if (!%(call)s) {
            return FALSE;
        }
        g_ptr_array_add(list, elt);
    }
    *out = g_steal_pointer(&list);
    return TRUE;
}

GPtrArray *
qph_input_%(n)s(const QmpJson *value, GError **error)
{
    GPtrArray *list = NULL;

    if (!visit_in_%(n)s(NULL, NULL, value, &list, error)) {
        return NULL;
    }
    return list;
}

QmpJson *
qph_output_%(n)s(const GPtrArray *list, GError **error)
{
    g_autoptr(QmpJson) v = qmp_json_new(QMP_JSON_ARRAY);

    if (!list) {
        output_error("list", "%(n)s", error);
        return NULL;
    }
    for (guint i = 0; i < list->len; i++) {
        QmpJson *e;

%(out)s        qmp_json_array_append(v, e);
    }
    return g_steal_pointer(&v);
}
''' % {'n': lst.name, 'elt': elt_c,
       'call': in_call(lst.elt, '&f', 'NULL', 'g_ptr_array_index(v->'
                       'elements, i)', '&elt'),
       'out': (('        if (!g_ptr_array_index(list, i)) {\n'
                '            output_error("%s", "[]", error);\n'
                '            return NULL;\n        }\n'
                '        e = qmp_json_new_string(g_ptr_array_index(list, i));'
                '\n' % lst.name) if isinstance(lst.elt, Builtin) else
               ('        e = qph_output_%s(g_ptr_array_index(list, i), '
                'error);\n        if (!e) {\n            return NULL;\n'
                '        }\n' % lst.elt.name))})
        h.append('\nGPtrArray *qph_input_%s(const QmpJson *value, GError '
                 '**error);\n' % lst.name)
        h.append('QmpJson *qph_output_%s(const GPtrArray *list, GError '
                 '**error);\n' % lst.name)

    for s in structs:
        c.append('\nQmpJson *\nqph_output_%s(const %s *obj, GError **error)\n'
                 '{\n    g_autoptr(QmpJson) v = NULL;\n\n'
                 '    if (!obj) {\n        output_error("%s", "*", error);\n'
                 '        return NULL;\n    }\n'
                 '    v = qmp_json_new(QMP_JSON_OBJECT);\n'
                 % (s.name, s.name, s.name))
        for mb in s.members:
            val = 'obj->%s' % mb.c
            stmts, expr = out_expr(mb.typ, val, s.name, mb.name)
            body = stmts
            if expr is None:
                fn = 'qph_output_%s' % mb.typ.name
                body += ('    {\n        QmpJson *m = %s(%s, error);\n\n'
                         '        if (!m) {\n            return NULL;\n'
                         '        }\n        qmp_json_object_set(v, "%s", m);'
                         '\n    }\n' % (fn, val, mb.name))
            else:
                body += '    qmp_json_object_set(v, "%s", %s);\n' % (mb.name,
                                                                       expr)
            if mb.optional:
                body = '\n'.join(('    ' + ln) if ln else ln
                                 for ln in body.split('\n'))
                c.append('    if (obj->has_%s) {\n%s    }\n' % (mb.c, body))
            else:
                c.append(body)
        if not s.members:
            c.append('    (void)error;\n')
        c.append('    return g_steal_pointer(&v);\n}\n')

    c.append(WRITE_RUNTIME % {'plain': plain_table()})
    for s in structs:
        h.append('\ngboolean qph_write_%s(GString *out, const %s *obj, '
                 'GError **error);\n' % (s.name, s.name))
        c.append(gen_struct_writer(s))
    for lst in schema.lists.values():
        h.append('\ngboolean qph_write_%s(GString *out, const GPtrArray *list,'
                 ' GError **error);\n' % lst.name)
        c.append(gen_list_writer(lst))
    return ''.join(h), ''.join(c)


def handler_params(cmd):
    params = []
    for m in cmd.arg.members:
        if m.optional:
            params.append('gboolean has_%s' % m.c)
        params.append('%s%s' % (m.typ.c_type, m.c))
    params += ['gpointer opaque', 'GError **error']
    return params


def handler_ret(cmd):
    return 'gboolean ' if cmd.ret is None else cmd.ret.c_type


def gen_commands(schema):
    h = [BANNER % ('qph-qapi-commands.h', 'the helper\'s QMP commands: '
                   'handlers, marshallers, table'), '''
/*
 * For each command the dispatcher implements a handler,
 * qph_qmp_<command>(), taking the arguments one by one (an optional
 * argument 'x' as gboolean has_x plus x), then the dispatcher's opaque
 * pointer and a GError **.  Arguments are borrowed: the marshaller frees
 * them after the call.  A handler returns TRUE (no 'returns' in the schema)
 * or a new value it hands over, and FALSE/NULL with the error set on
 * failure.
 *
 * qph_qmp_marshal_<command>() checks the QMP arguments (NULL when the
 * client sent none) with QEMU's error texts, calls the handler and builds
 * the reply's "return" value into *ret.  qph_qmp_marshal_text_<command>()
 * does the same but appends the value's JSON text to @ret_json (what
 * qmp_json_write() would print for *ret; on failure @ret_json holds
 * garbage).  qph_qmp_commands[] lists every command, indexed by
 * QphQmpCommandIndex.
 */
#pragma once

#include <glib.h>

#include "qmp/json-value.h"
#include "qph-qapi-types.h"

typedef gboolean (*QphQmpMarshal)(const QmpJson *args, QmpJson **ret,
                                  gpointer opaque, GError **error);

typedef gboolean (*QphQmpMarshalText)(const QmpJson *args, GString *ret_json,
                                      gpointer opaque, GError **error);

typedef struct QphQmpCommand {
    const char *name;
    QphQmpMarshal marshal;
    QphQmpMarshalText marshal_text;
    gboolean allow_oob;
} QphQmpCommand;

typedef enum QphQmpCommandIndex {
''']
    for cmd in schema.commands:
        h.append('    QPH_QMP_COMMAND_%s,\n' % c_name(cmd.name).upper())
    h.append('    QPH_QMP_COMMAND__LAST,\n} QphQmpCommandIndex;\n\n')
    h.append('extern const QphQmpCommand qph_qmp_commands['
             'QPH_QMP_COMMAND__LAST];\n'
             'extern const guint qph_qmp_commands_count;\n\n'
             '/* The command named @name, or NULL if the helper has none. */\n'
             'const QphQmpCommand *qph_qmp_command_lookup(const char *name);'
             '\n')
    c = [BANNER % ('qph-qapi-commands.c', 'marshallers and the command '
                   'table'),
         '\n#include "qph-qapi-commands.h"\n\n#include <string.h>\n\n'
         '#include "qmp/qmp-error.h"\n#include "qph-qapi-visit.h"\n']
    for cmd in schema.commands:
        params = handler_params(cmd)
        ret = handler_ret(cmd)
        proto = '%sqph_qmp_%s(' % (ret, cmd.c)
        h.append('\n/* %s */\n' % cmd.name)
        line = proto
        out = []
        for i, p in enumerate(params):
            piece = p + (', ' if i + 1 < len(params) else ');')
            if len(line) + len(piece.rstrip()) > 80:
                out.append(line.rstrip())
                line = ' ' * len(proto) + piece
            else:
                line += piece
        out.append(line)
        h.append('\n'.join(out) + '\n')
        h.append('gboolean qph_qmp_marshal_%s(const QmpJson *args, QmpJson '
                 '**ret,\n%sgpointer opaque, GError **error);\n'
                 % (cmd.c, ' ' * len('gboolean qph_qmp_marshal_%s('
                                     % cmd.c)))
        h.append('gboolean qph_qmp_marshal_text_%s(const QmpJson *args, '
                 'GString *ret_json,\n%sgpointer opaque, GError **error);\n'
                 % (cmd.c, ' ' * len('gboolean qph_qmp_marshal_text_%s('
                                     % cmd.c)))
        args = []
        for m in cmd.arg.members:
            if m.optional:
                args.append('arg->has_%s' % m.c)
            args.append('arg->%s' % m.c)
        args += ['opaque', '&local']
        call = 'qph_qmp_%s(%s)' % (cmd.c, ', '.join(args))
        decl = ''
        if cmd.ret is None:
            run_text = ('    if (!%s) {\n        return failed("%s", local, '
                        'error);\n    }\n'
                        '    g_string_append_len(ret_json, "{}", 2);\n'
                        '    return TRUE;\n' % (call, cmd.name))
            run = ('    if (!%s) {\n        return failed("%s", local, error);'
                   '\n    }\n    *ret = qmp_json_new(QMP_JSON_OBJECT);\n'
                   '    return TRUE;\n' % (call, cmd.name))
        else:
            if isinstance(cmd.ret, List):
                decl = '    g_autoptr(GPtrArray) retval = NULL;\n'
            else:
                decl = ('    g_autoptr(%s) retval = NULL;\n'
                        % cmd.ret.name)
            run = ('    retval = %s;\n    if (!retval) {\n'
                   '        return failed("%s", local, error);\n    }\n'
                   '    *ret = qph_output_%s(retval, error);\n'
                   '    return *ret != NULL;\n'
                   % (call, cmd.name, cmd.ret.name))
            run_text = ('    retval = %s;\n    if (!retval) {\n'
                        '        return failed("%s", local, error);\n    }\n'
                        '    return qph_write_%s(ret_json, retval, error);\n'
                        % (call, cmd.name, cmd.ret.name))
        c.append('''
gboolean
qph_qmp_marshal_%(c)s(const QmpJson *args, QmpJson **ret, gpointer opaque,
%(pad)sGError **error)
{
    g_autoptr(QmpJson) empty = NULL;
    g_autoptr(%(arg)s) arg = NULL;
%(decl)s    GError *local = NULL;

    if (!args) {
        empty = qmp_json_new(QMP_JSON_OBJECT);
        args = empty;
    }
    arg = qph_input_%(arg)s(args, error);
    if (!arg) {
        return FALSE;
    }
%(run)s}

gboolean
qph_qmp_marshal_text_%(c)s(const QmpJson *args, GString *ret_json,
%(padt)sgpointer opaque, GError **error)
{
    g_autoptr(QmpJson) empty = NULL;
    g_autoptr(%(arg)s) arg = NULL;
%(decl)s    GError *local = NULL;

    if (!args) {
        empty = qmp_json_new(QMP_JSON_OBJECT);
        args = empty;
    }
    arg = qph_input_%(arg)s(args, error);
    if (!arg) {
        return FALSE;
    }
%(run_text)s}
''' % {'c': cmd.c, 'arg': cmd.arg.name, 'run': run, 'decl': decl,
       'run_text': run_text,
       'pad': ' ' * len('qph_qmp_marshal_%s(' % cmd.c),
       'padt': ' ' * len('qph_qmp_marshal_text_%s(' % cmd.c)})
    c.insert(2, '''
/* A handler failed: pass its error on, and never fail without one. */
static gboolean
failed(const char *command, GError *local, GError **error)
{
    if (!local) {
        local = g_error_new(QMP_ERROR, QMP_ERROR_GENERIC_ERROR,
                            "Command '%s' failed without saying why.",
                            command);
    }
    g_propagate_error(error, local);
    return FALSE;
}
''')
    c.append('\nconst QphQmpCommand qph_qmp_commands[QPH_QMP_COMMAND__LAST] '
             '= {\n')
    for cmd in schema.commands:
        c.append('    [QPH_QMP_COMMAND_%s] = {"%s", qph_qmp_marshal_%s,\n'
                 '        qph_qmp_marshal_text_%s, %s},\n'
                 % (c_name(cmd.name).upper(), cmd.name, cmd.c, cmd.c,
                    'TRUE' if cmd.allow_oob else 'FALSE'))
    c.append('};\nG_STATIC_ASSERT(G_N_ELEMENTS(qph_qmp_commands) == '
             'QPH_QMP_COMMAND__LAST);\n\n'
             'const guint qph_qmp_commands_count = QPH_QMP_COMMAND__LAST;\n')
    c.append('''
const QphQmpCommand *
qph_qmp_command_lookup(const char *name)
{
    for (guint i = 0; i < QPH_QMP_COMMAND__LAST; i++) {
        if (strcmp(qph_qmp_commands[i].name, name) == 0) {
            return &qph_qmp_commands[i];
        }
    }
    return NULL;
}
''')
    return ''.join(h), ''.join(c)


# ---------------------------------------------------------------------------
# Introspection: SchemaInfo elements, printed as QEMU prints them
# ---------------------------------------------------------------------------

def tdb_hash(key):
    """QEMU's qobject/qdict.c tdb_hash(), 32-bit unsigned arithmetic."""
    b = key.encode('utf-8')
    v = (0x238F13AF * len(b)) & 0xffffffff
    for i, ch in enumerate(b):
        v = (v + (ch << (i * 5 % 24))) & 0xffffffff
    return (1103515243 * v + 12345) & 0xffffffff


def qdict_order(keys):
    """QEMU's QDict iteration order: 512 buckets ascending, newest first."""
    return sorted(range(len(keys)),
                  key=lambda i: (tdb_hash(keys[i]) % 512, -i))


def qemu_json(v):
    """A QObject as QEMU 7.2 writes it in a reply (", " and ": ")."""
    if isinstance(v, bool):
        return 'true' if v else 'false'
    if v is None:
        return 'null'
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        out = []
        for ch in v:
            if ch == '"':
                out.append('\\"')
            elif ch == '\\':
                out.append('\\\\')
            elif 0x20 <= ord(ch) < 0x7f:
                out.append(ch)
            else:
                out.append(json.dumps(ch)[1:-1])
        return '"%s"' % ''.join(out)
    if isinstance(v, list):
        return '[%s]' % ', '.join(qemu_json(e) for e in v)
    # QEMU's introspection QLit lists keys sorted; the QDict reorders them.
    keys = sorted(v)
    return '{%s}' % ', '.join('%s: %s' % (qemu_json(keys[i]),
                                          qemu_json(v[keys[i]]))
                              for i in qdict_order(keys))


class Introspector:
    def __init__(self, schema):
        self.schema = schema
        self.names = {}      # entity key -> SchemaInfo name
        self.entries = []    # SchemaInfo dicts, in order of first use
        self.count = 0

    def _name(self, key, make):
        if key not in self.names:
            self.names[key] = 'qph-%d' % self.count
            self.count += 1
            entry = {'name': self.names[key]}
            self.entries.append(entry)
            entry.update(make(self.names[key]))
        return self.names[key]

    def ref(self, typ):
        if isinstance(typ, Builtin):
            return typ.intro_name
        if isinstance(typ, List):
            elt = self.ref(typ.elt)
            if isinstance(typ.elt, Builtin):
                return '[%s]' % elt  # "[str]", "[int]": QEMU has them
            name = '[%s]' % elt
            if name not in self.names:
                self.names[name] = name
                self.entries.append({'name': name, 'element-type': elt,
                                     'meta-type': 'array'})
            return name
        if isinstance(typ, Enum):
            return self._name(('enum', typ.name), lambda n: {
                'meta-type': 'enum', 'values': list(typ.values),
                'members': [{'name': v} for v in typ.values]})
        if isinstance(typ, Struct):
            def make(n):
                members = []
                for m in typ.members:
                    d = {'name': m.name, 'type': self.ref(m.typ)}
                    if m.optional:
                        d['default'] = None
                    members.append(d)
                return {'meta-type': 'object', 'members': members}
            if not typ.members:
                return self._name(('empty',), lambda n: {
                    'meta-type': 'object', 'members': []})
            return self._name(('struct', typ.name), make)
        raise ValueError(typ)

    def generate(self):
        cmds = []
        empty = Struct('', [], None, 0)
        for cmd in self.schema.commands:
            entry = {'name': cmd.name, 'meta-type': 'command',
                     'arg-type': self.ref(cmd.arg),
                     'ret-type': self.ref(cmd.ret if cmd.ret else empty)}
            if cmd.allow_oob:
                entry['allow-oob'] = True
            cmds.append(entry)
        return cmds + self.entries


def gen_introspect(schema):
    infos = Introspector(schema).generate()
    text = ', '.join(qemu_json(e) for e in infos)
    cmds = ', '.join(qemu_json({'name': c.name}) for c in schema.commands)
    h = BANNER % ('qph-qapi-introspect.h', 'the helper\'s entries for '
                  'QEMU\'s introspection answers') + '''
/*
 * qph_qapi_introspect_schema: SchemaInfo objects for query-qmp-schema, as
 * comma-separated array elements (no brackets, no leading or trailing
 * comma) printed as QEMU prints them.  They are the helper's command
 * entries and the object, enum and array types those use, named "qph-N"
 * (QEMU masks its own type names to plain numbers, so they cannot clash)
 * and "[qph-N]".  They refer to QEMU's builtins "str", "bool" and "int"
 * (every integer type is "int", as in QEMU) and to QEMU's "[str]" and
 * "[int]", which every QEMU answer already holds; none is repeated here.
 *
 * qph_qapi_introspect_commands: the {"name": ...} elements for
 * query-commands, same format.
 */
#pragma once

extern const char qph_qapi_introspect_schema[];
extern const char qph_qapi_introspect_commands[];
'''
    c = (BANNER % ('qph-qapi-introspect.c', 'the helper\'s entries for '
                   'QEMU\'s introspection answers') +
         '\n#include "qph-qapi-introspect.h"\n\n'
         'const char qph_qapi_introspect_schema[] =\n')
    parts = [qemu_json(e) for e in infos]
    for i, p in enumerate(parts):
        c += '    %s%s\n' % (c_string(p + (', ' if i + 1 < len(parts)
                                             else '')),
                             ';' if i + 1 == len(parts) else '')
    c += '\nconst char qph_qapi_introspect_commands[] =\n    %s;\n' % \
        c_string(cmds)
    return h, c, text


# ---------------------------------------------------------------------------
# The reference manual
# ---------------------------------------------------------------------------

def anchor(name):
    return name.lower()


def md_inline(text):
    """@name -> `name`; keep the rest."""
    return re.sub(r'@([A-Za-z][A-Za-z0-9_.-]*[A-Za-z0-9])', r'`\1`', text)


def md_type(typ):
    if isinstance(typ, Builtin):
        return '`%s`' % typ.name
    if isinstance(typ, List):
        return 'array of %s' % md_type(typ.elt)
    return '[`%s`](#%s)' % (typ.name, anchor(typ.name))


def md_members(doc, members):
    out = ['| Member | Type | Description |', '| --- | --- | --- |']
    for m in members:
        desc = md_inline(doc.members[m.name]).replace('|', '\\|')
        opt = ' (optional)' if m.optional else ''
        out.append('| `%s` | %s%s | %s |' % (m.name, md_type(m.typ), opt,
                                             desc))
    return out


def md_sections(doc, skip=()):
    out = []
    for tag, text in doc.sections:
        if tag in skip:
            continue
        if tag.startswith('Example'):
            out += ['**%s:**' % tag, '', '```', text, '```', '']
        elif tag == 'Errors':
            out += ['**Errors:**', '']
            for ln in text.split('\n'):
                ln = ln.strip()
                if ln.startswith('- '):
                    out.append('- ' + md_inline(ln[2:]))
                elif ln and out[-1].startswith('- '):
                    out[-1] += ' ' + md_inline(ln)
            out.append('')
        else:
            out += ['**%s:** %s' % (tag, md_inline(' '.join(
                s.strip() for s in text.split('\n')))), '']
    return out


def gen_markdown(schema):
    out = ['<!-- Generated by schema/qapi-gen.py from '
           'schema/qemu-perf-helper.json.',
           '     Do not edit: change the schema, then run',
           '     `ninja -C BUILDDIR update-qmp-reference`. -->', '',
           '# qemu-perf-helper QMP reference', '',
           'The commands below are answered by qemu-perf-helper itself; '
           'every other QMP command goes to QEMU unchanged. Argument errors '
           'use the texts of QEMU 7.2 (for example "Parameter \'events\' is '
           'missing").', '']
    for d in schema.docs:
        if isinstance(d, Doc):
            if d.heading:
                out += ['## %s' % d.heading, '']
            for p in d.body + d.tail:
                out += [md_inline(p), '']
    out += ['## Commands', '']
    for cmd in schema.commands:
        doc = cmd.doc
        out += ['### %s' % cmd.name, '']
        out += [md_inline(p) + '\n' for p in doc.body]
        if cmd.arg.members:
            out += ['**Arguments:**', ''] + md_members(doc, cmd.arg.members)
            out.append('')
        else:
            out += ['**Arguments:** none', '']
        ret = ('%s' % md_type(cmd.ret)) if cmd.ret else '`{}`'
        rdoc = doc.section('Returns')
        out += ['**Returns:** %s%s' % (ret, (': ' + md_inline(rdoc))
                                       if rdoc and cmd.ret else ''), '']
        if cmd.allow_oob:
            out += ['**Out-of-band:** allowed', '']
        out += [md_inline(p) + '\n' for p in doc.tail]
        out += md_sections(doc, skip=('Returns',))
    out += ['## Types', '']
    for ent in schema.docs:
        if isinstance(ent, (Doc, Command)):
            continue
        doc = ent.doc
        kind = 'enum' if isinstance(ent, Enum) else 'object'
        out += ['### %s' % ent.name, '', '*%s*' % kind, '']
        out += [md_inline(p) + '\n' for p in doc.body]
        if isinstance(ent, Enum):
            out += ['| Value | Description |', '| --- | --- |']
            for v in ent.values:
                out.append('| `%s` | %s |' % (v, md_inline(doc.members[v])
                                              .replace('|', '\\|')))
            out.append('')
        else:
            out += md_members(doc, ent.members) + ['']
        out += [md_inline(p) + '\n' for p in doc.tail]
        out += md_sections(doc)
    text = '\n'.join(out)
    text = re.sub(r'\n{3,}', '\n\n', text).rstrip('\n') + '\n'
    return text


def gen_man(schema):
    """A man(7) page: the commands, their arguments and examples."""
    def esc(s):
        s = s.replace('\\', '\\e')
        return '\n'.join(('\\&' + ln) if ln[:1] in ('.', "'") else ln
                         for ln in s.split('\n'))

    out = ['.\\" Generated by schema/qapi-gen.py; do not edit.',
           '.TH QEMU-PERF-HELPER-QMP 7 "" "qemu-perf-helper" '
           '"QMP reference"',
           '.SH NAME', 'qemu-perf-helper-qmp \\- the QMP commands of '
           'qemu-perf-helper', '.SH DESCRIPTION']
    for d in schema.docs:
        if isinstance(d, Doc):
            for p in d.body + d.tail:
                out += ['.PP', esc(md_inline(p).replace('`', ''))]
    out.append('.SH COMMANDS')
    for cmd in schema.commands:
        doc = cmd.doc
        out += ['.SS %s' % cmd.name]
        for p in doc.body:
            out += ['.PP', esc(p.replace('@', ''))]
        for m in cmd.arg.members:
            out += ['.TP', '.B %s%s' % (m.name, ' (optional)'
                                        if m.optional else ''),
                    esc(doc.members[m.name].replace('@', ''))]
        for tag, text in doc.sections:
            if tag.startswith('Example'):
                out += ['.PP', 'Example:', '.PP', '.nf', '.RS 4',
                        esc(text), '.RE', '.fi']
            else:
                out += ['.PP', '%s: %s' % (tag, esc(' '.join(
                    s.strip() for s in text.split('\n')).replace('@', '')))]
    out += ['.SH SEE ALSO', 'qemu-perf-helper(8), docs/qmp-reference.md']
    return '\n'.join(out) + '\n'


# ---------------------------------------------------------------------------

def write_if_changed(path, text):
    try:
        with open(path, encoding='utf-8') as f:
            if f.read() == text:
                return
    except FileNotFoundError:
        pass
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)


def main():
    ap = argparse.ArgumentParser(
        description='Generate C code and docs from a QAPI schema.')
    ap.add_argument('schema')
    ap.add_argument('-o', '--output-dir', help='write the C files here')
    ap.add_argument('-p', '--prefix', default='',
                    help='prefix the C file names (for test schemas)')
    ap.add_argument('--doc', help='write the Markdown reference to this file')
    ap.add_argument('--man', help='write the man(7) page to this file')
    ap.add_argument('--check-doc', metavar='FILE',
                    help='exit 1 (with a diff) unless FILE is up to date')
    ap.add_argument('--introspect-json', metavar='FILE',
                    help='write the query-qmp-schema elements as a JSON '
                    'array (for tests)')
    args = ap.parse_args()
    try:
        schema = Schema(args.schema)
        md = gen_markdown(schema)
        files = {}
        files['qph-qapi-types.h'], files['qph-qapi-types.c'] = \
            gen_types(schema)
        files['qph-qapi-visit.h'], files['qph-qapi-visit.c'] = \
            gen_visit(schema)
        files['qph-qapi-commands.h'], files['qph-qapi-commands.c'] = \
            gen_commands(schema)
        files['qph-qapi-introspect.h'], files['qph-qapi-introspect.c'], \
            intro = gen_introspect(schema)
    except SchemaError as e:
        print('qapi-gen.py: %s' % e, file=sys.stderr)
        return 1
    if args.output_dir:
        for name, text in files.items():
            if args.prefix:
                name = args.prefix + name
                text = text.replace('"qph-qapi-', '"%sqph-qapi-'
                                    % args.prefix)
            write_if_changed(os.path.join(args.output_dir, name), text)
    if args.doc:
        write_if_changed(args.doc, md)
    if args.man:
        write_if_changed(args.man, gen_man(schema))
    if args.introspect_json:
        write_if_changed(args.introspect_json, '[' + intro + ']\n')
    if args.check_doc:
        try:
            with open(args.check_doc, encoding='utf-8') as f:
                have = f.read()
        except FileNotFoundError:
            have = ''
        if have != md:
            sys.stdout.writelines(difflib.unified_diff(
                have.splitlines(True), md.splitlines(True),
                args.check_doc, 'generated from ' + args.schema))
            print('%s is out of date: run "ninja -C BUILDDIR '
                  'update-qmp-reference" and commit it.' % args.check_doc,
                  file=sys.stderr)
            return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
