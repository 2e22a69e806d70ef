#!/usr/bin/env python3
"""Fail when files of helper/ or qmp/ depend on each other in a cycle.

The proxy core is meant to be read top-down: proxy.c composes the pieces,
lower layers get what they need at creation and never call up (see
docs/design.md).  This check keeps that shape.  It builds two graphs whose
nodes are files without their suffix (helper/client.c, client.h and
client-priv.h would be one node, "helper/client"):

- symbols: from `nm` on the built static libraries, an edge A -> B when an
  object of A leaves undefined a symbol that an object of B defines;
- includes: from the sources, an edge A -> B when a file of A includes a
  header of B ("helper/b.h", "helper/b-priv.h", "qmp/b.h").

A file that includes another's private header (helper/resctrl-assign.c
includes helper/resctrl-priv.h) is part of that node: one concern split in
two files that share their internals on purpose.

Any strongly connected component of more than one node is a cycle; the
check prints each one with the symbols or includes that close it and exits
1.  Usage: check-cycles.py --src SOURCE_ROOT [--nm NM] LIBRARY.a...
"""
import argparse
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

DIRS = ("helper", "qmp")
INCLUDE = re.compile(r'^\s*#\s*include\s+"((?:helper|qmp)/[^"]+)\.h"', re.M)


PRIV = re.compile(r'^\s*#\s*include\s+"((?:helper|qmp)/[^"]+)-priv\.h"', re.M)
UNIT = {}  # helper/resctrl-assign -> helper/resctrl, filled by main()


def node_of(path):
    """helper/client-priv.h -> helper/client; None outside DIRS."""
    p = Path(path)
    if p.parent.name not in DIRS:
        return None
    stem = p.name.split(".")[0]
    if stem.endswith("-priv"):
        stem = stem[: -len("-priv")]
    node = f"{p.parent.name}/{stem}"
    return UNIT.get(node, node)


def find_units(src):
    for d in DIRS:
        for f in sorted((Path(src) / d).glob("*.c")):
            for owner in PRIV.findall(f.read_text(errors="replace")):
                UNIT[f"{d}/{f.name[:-2]}"] = owner


def symbol_graph(nm, archives):
    """Edges from undefined to defined global symbols, with the symbols."""
    defined, undefined = {}, defaultdict(set)
    for archive in archives:
        out = subprocess.run([nm, "-A", "-g", archive], check=True,
                             capture_output=True, text=True).stdout
        dirname = Path(archive).parent.name  # build/helper/libqph-core.a
        for line in out.splitlines():
            # archive:member.c.o:[value] TYPE name
            fields = line.rsplit(None, 2)
            if len(fields) < 2:
                continue
            where, kind, sym = (fields if len(fields) == 3
                                else (fields[0], fields[0][-1:], fields[1]))
            member = where.split(":")[1] if ":" in where else where
            node = node_of(f"{dirname}/{Path(member).name}")
            if node is None:
                continue
            if kind == "U":
                undefined[node].add(sym)
            else:
                defined[sym] = node
    edges = defaultdict(lambda: defaultdict(set))
    for node, syms in undefined.items():
        for sym in syms:
            dst = defined.get(sym)
            if dst is not None and dst != node:
                edges[node][dst].add(sym)
    return edges


def include_graph(src):
    edges = defaultdict(lambda: defaultdict(set))
    for d in DIRS:
        for f in sorted((Path(src) / d).glob("*.[ch]")):
            node = node_of(f"{d}/{f.name}")
            for inc in INCLUDE.findall(f.read_text(errors="replace")):
                dst = node_of(inc + ".h")
                if dst is not None and dst != node:
                    edges[node][dst].add(f"{d}/{f.name} includes {inc}.h")
    return edges


def cycles(edges):
    """Tarjan's strongly connected components of more than one node."""
    index, low, stack, on, out = {}, {}, [], set(), []
    nodes = set(edges) | {d for e in edges.values() for d in e}

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def report(title, edges):
    found = cycles(edges)
    for comp in found:
        print(f"{title} cycle among: {' '.join(comp)}")
        for a in comp:
            for b in sorted(edges.get(a, {})):
                if b in comp:
                    why = sorted(edges[a][b])
                    more = f" (+{len(why) - 4} more)" if len(why) > 4 else ""
                    print(f"  {a} -> {b}: {', '.join(why[:4])}{more}")
    return len(found)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", required=True, help="source root")
    ap.add_argument("--nm", default="nm")
    ap.add_argument("archives", nargs="+")
    a = ap.parse_args()
    find_units(a.src)
    sym = symbol_graph(a.nm, a.archives)
    if not sym:
        sys.exit("check-cycles: no symbols read; is nm working?")
    n = report("symbol", sym) + report("include", include_graph(a.src))
    n_sym = sum(len(d) for d in sym.values())
    print(f"{n_sym} symbol edges between files of {', '.join(DIRS)}; "
          f"{n} cycle(s)")
    sys.exit(1 if n else 0)


if __name__ == "__main__":
    main()
