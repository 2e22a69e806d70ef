#!/usr/bin/python3
# bench-profile.py: where a forwarded request's time goes (run it through
# tests/bench/profile.sh)
#
# The benchmark (bench.py) says how much slower the helper is than socat;
# this says why.  On one idle QEMU (-S, one vCPU) with three monitors it
# drives `query-status` with qph-bench through the helper, through socat and
# straight to QEMU, and measures each relay while it works:
#
#   perf stat   CPU time (user and system), context switches and system
#               calls per request of the relay process (and of QEMU on the
#               direct path), counted by the kernel;
#   perf record where the helper's CPU time goes, by shared object
#               (kernel, helper, GLib, libc);
#   callgrind   instructions per request in user space, which do not depend
#               on the load: two runs of different lengths, subtracted, so
#               start-up and connection set-up cancel out; split by
#               function into the concerns the issue names (main-loop
#               dispatch and wakeups, buffer copies, the id splice,
#               allocation, JSON framing, system-call wrappers).
#
# It prints markdown; --update-docs puts it into docs/performance.md between
# the profile markers.
#
# SPDX-License-Identifier: GPL-2.0-or-later
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (the same Vm, Helper and statistics)

STATUS = bench.STATUS

# Function name → concern, first match wins.  Names are callgrind's
# (file-less); the helper's own functions are grouped by what they do.
CONCERNS = [
    ("allocation", r"^(malloc|free|calloc|realloc|cfree|_int_malloc|_int_free"
     r"|_int_realloc|malloc_consolidate|tcache_|unlink_chunk|__libc_malloc"
     r"|__libc_free|__libc_calloc|__libc_realloc|g_malloc|g_malloc0|g_free"
     r"|g_realloc|g_try_malloc|g_slice_|g_new|g_strdup|g_strndup|g_memdup"
     r"|g_rc_box|g_atomic_rc_box|g_ref_count|g_byte_array_new|g_byte_array_unref"
     r"|g_byte_array_free|g_array_free|g_array_new|g_array_sized_new"
     r"|g_string_new|g_string_sized_new|g_string_free|g_ptr_array_new"
     r"|g_ptr_array_free|g_ptr_array_unref|g_queue_new|g_queue_free"
     r"|g_bytes_)"),
    ("buffer copies", r"(memcpy|memmove|mempcpy|g_byte_array_append"
     r"|g_byte_array_remove_range|g_array_append_vals|g_array_remove_range"
     r"|g_string_append_len|g_string_insert_len|g_string_append$"
     r"|g_array_maybe_expand|g_string_maybe_expand|g_string_truncate"
     r"|g_array_set_size|g_byte_array_set_size|stpcpy|strcpy)"),
    # The ids are printed with g_snprintf and read back with strtoull (the
    # callers were checked with callgrind_annotate --tree=caller).
    ("id splice", r"(splice|_id_|_id$|^id_|reply_id|upstream_id|rewrite"
     r"|g_snprintf|printf|_itoa|^_IO_|strtoul|strtoull)"),
    ("JSON framing and request checks", r"^(qmp_|json_|streamer_|lexer_"
     r"|qemu_scan|qemu_members|qemu_between|framer_|upstream_emit"
     r"|request_|client_request|scan_|skip_)"),
    # GLib's unnamed (static) functions here are main-loop internals called
    # from g_main_context_prepare/check/dispatch.
    ("main-loop dispatch and wakeups", r"^(g_main_|g_poll|poll$|__poll"
     r"|0x[0-9a-f]+ in libglib"
     r"|ppoll|g_source_|g_wakeup|g_get_monotonic_time|clock_gettime"
     r"|__clock_gettime|g_unix_fd_source|g_mutex_|g_cond_|pthread_mutex"
     r"|___pthread_mutex|__pthread_mutex|g_private_|g_thread_self"
     r"|g_hook_|g_ptr_array_|g_queue_|eventfd|g_timeout|"
     r"qph_channel_|channel_)"),
    ("system-call wrappers (user side)", r"^(read|write|__libc_read"
     r"|__libc_write|recvmsg|sendmsg|__libc_recvmsg|__libc_sendmsg|send"
     r"|recv|__libc_send|__libc_recv|writev|__writev|readv|syscall"
     r"|__GI___|__errno_location|__read|__write|__recvmsg|__sendmsg"
     r"|__syscall_cancel|__internal_syscall_cancel)"),
]


# The stages of one forwarded request, by the inclusive cost of the helper
# function that does each (a stage includes what it calls).
STAGES = {
    "client_read": "client socket readable: recvmsg, framing as QEMU "
                   "does, checks, id splice, forwarding (includes the four "
                   "rows below it)",
    "qmp_request_check": "… … checking the request's members",
    "qph_upstream_prepare_forward": "… the id splice on the way up "
                                    "(new upstream id)",
    "qph_upstream_forward": "… queueing it upstream",
    "upstream_send": "… … writing it to QEMU (sendmsg)",
    "upstream_read": "QEMU socket readable: recvmsg, framing the answer, "
                     "matching it by order, queueing for the client",
    "qemu_scan": "… framing the reply: its bytes and members",
    "qph_client_rewrite_reply": "… putting the client's id back",
    "channel_flush": "writing to sockets (both directions)",
    "g_main_context_prepare": "main loop: prepare",
    "g_main_context_check": "main loop: check",
    "g_main_context_dispatch": "main loop: dispatch (includes the reads "
                               "above)",
}


# For a query the helper answers itself, first these (printf there writes
# numbers into the reply, not ids).
QUERY_CONCERNS = [
    ("writing the reply (JSON)", r"^(qph_write_|qph_output_|qmp_json_write"
     r"|qph_qmp_marshal|g_string_append_printf|g_string_append_vprintf"
     r"|g_ascii_dtostr|g_ascii_formatd|g_snprintf|g_vasprintf|printf|_itoa"
     r"|^_IO_|__vfprintf|__vsnprintf|__vasprintf|__printf_fp|hack_digit"
     r"|__mpn_)"),
    ("reading the counters", r"^(qph_perf_|read$|__libc_read|__read"
     r"|__GI___read)"),
    ("listing /proc/PID/task", r"(readdir|opendir|closedir|getdents"
     r"|qph_threads|qph_vm_|__open|open64|__libc_open|strtol|atoi)"),
]


def concern(fn, query=False):
    for name, rx in (QUERY_CONCERNS + CONCERNS if query else CONCERNS):
        if re.search(rx, fn):
            return name
    return "other"


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- perf stat

PERF_EVENTS = "task-clock,context-switches,raw_syscalls:sys_enter"


def perf_stat(pid, run, command=None, ready=None):
    """Counts of PERF_EVENTS for @pid while run(); or, with @command, for
    that command started under perf stat (it must exit when run() ends;
    @ready is the socket it listens on)."""
    out = tempfile.mktemp(prefix="qph-perfstat-")
    args = ["perf", "stat", "-x", ",", "-o", out, "-e", PERF_EVENTS]
    p = subprocess.Popen(args + (["--"] + command if command
                                 else ["-p", str(pid)]),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if ready:
        bench.wait_for_socket(ready, p)
    time.sleep(0.3)
    try:
        run()
    finally:
        if command:
            p.wait(30)
        else:
            p.send_signal(signal.SIGINT)
            p.wait()
    res = {}
    with open(out) as f:
        for line in f:
            parts = line.strip().split(",")
            if len(parts) < 3 or line.startswith("#"):
                continue
            try:
                v = float(parts[0])
            except ValueError:
                continue
            # Times in µs, whatever unit perf printed them in.
            v *= {"msec": 1000.0, "ns": 0.001, "usec": 1.0}.get(parts[1], 1.0)
            res[parts[2]] = v
    os.unlink(out)
    return res


def perf_record(pid, run, tmp):
    """Share of the helper's CPU samples per shared object and per symbol."""
    data = str(Path(tmp) / "perf.data")
    p = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-c",
                          "20000", "-o", data, "-p", str(pid)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    try:
        run()
    finally:
        p.send_signal(signal.SIGINT)
        p.wait()
    res = {}
    for key in ("dso", "sym"):
        out = subprocess.run(["perf", "report", "-i", data, "--stdio",
                              "--sort", key, "--percent-limit", "1.5"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             text=True).stdout
        rows = []
        for line in out.splitlines():
            m = re.match(r"\s*([\d.]+)%\s+(.*\S)", line)
            if m:
                rows.append((float(m.group(1)), m.group(2)))
        res[key] = rows
    return res


# ---------------------------------------------------------------- callgrind

def callgrind_functions(path, inclusive=False):
    """{function: self (or inclusive) instructions} from a callgrind file."""
    out = subprocess.run(["callgrind_annotate", "--threshold=100",
                          f"--inclusive={'yes' if inclusive else 'no'}",
                          "--auto=no", path],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True).stdout
    fns = {}
    for line in out.splitlines():
        # "1,508,764 ( 6.06%)  FILE:FUNCTION [OBJECT]"
        m = re.match(r"\s*([\d,]+)\s+\([\s\d.]+%\)\s+(\S.*) \[(.*)\]$", line)
        if not m:
            continue
        where = m.group(2)
        fn = where.rsplit(":", 1)[1] if ":" in where else where
        if fn.startswith("0x"):
            fn = f"{fn} in {Path(m.group(3)).name}"
        fns[fn] = fns.get(fn, 0) + int(m.group(1).replace(",", ""))
    return fns


def callgrind_run(a, vm, sock, rounds, tmp, tag, relay=False, cmd=STATUS,
                  setup=None):
    """Instructions of the relay process for @rounds of @cmd (after @setup,
    a command sent once, untimed)."""
    out = str(Path(tmp) / f"cg-{tag}-{rounds}.%p")
    listen = str(Path(tmp) / f"cg-{tag}-{rounds}.sock")
    vg = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
          "--trace-children=yes"]
    if relay:
        args = vg + ["socat", f"UNIX-LISTEN:{listen},fork",
                     f"UNIX-CONNECT:{vm.sock[sock]}"]
    else:
        args = vg + [a.helper, "--qemu", vm.sock[sock], "--listen", listen]
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bench.wait_for_socket(listen, p, timeout=60)
    time.sleep(1.0 if not relay else 0.3)
    if setup:
        q = bench.Qmp(listen)
        r = q.cmd(setup)
        if "error" in r:
            raise RuntimeError(f"{setup}: {r['error']}")
    bench.run_client(a.client, "latency", rounds, 5, cmd,
                     {tag: "unix:" + listen})
    if setup:
        q.close()
    time.sleep(0.3)
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(30)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    fns, incl = {}, {}
    for f in Path(tmp).glob(f"cg-{tag}-{rounds}.*"):
        if f.suffix == ".sock":
            continue
        for k, v in callgrind_functions(str(f)).items():
            fns[k] = fns.get(k, 0) + v
        for k, v in callgrind_functions(str(f), inclusive=True).items():
            incl[k] = incl.get(k, 0) + v
    return fns, incl


def per_request(short, long_, n):
    keys = set(short) | set(long_)
    return {k: (long_.get(k, 0) - short.get(k, 0)) / n for k in keys}


# ---------------------------------------------------------------- report

def report(P):
    o = []
    m = P["machine"]
    o.append(f"Profiled {m['date']}, tree `{m['commit']}`, load average "
             f"{m['load']} at the start; {P['rounds']} `query-status` per "
             "target for perf, callgrind runs of "
             f"{P['cg_short']} and {P['cg_long']} subtracted (per-thread "
             f"queries: {P.get('q_short', 20)} and {P.get('q_long', 120)}).")
    o.append("")
    o.append("Per request, counted by the kernel (`perf stat` on each "
             "process while only its target is driven; socat serves the one "
             "connection, without fork, started under `perf stat`):")
    o.append("")
    o.append("| process | CPU (µs) | context switches | system calls |")
    o.append("|---|---|---|---|")
    for key, label in (("helper", "qemu-perf-helper"), ("socat", "socat"),
                       ("qemu-direct", "QEMU, client direct"),
                       ("qemu-helper", "QEMU, behind the helper"),
                       ("helper-pipe", "qemu-perf-helper, pipelined"),
                       ("qemu-pipe-direct", "QEMU, pipelined, client direct"),
                       ("qemu-pipe-helper", "QEMU, pipelined, behind the "
                        "helper")):
        s = P["stat"].get(key)
        if not s:
            continue
        n = P["rounds"] + 20  # and 20 warm-up rounds
        if "pipe" in key:
            # one warm-up batch of 1000 and rounds // 1000 batches
            n = 1000 * ((P["rounds"] // 1000 or 1) + 1)
        o.append(f"| {label} | {s.get('task-clock', 0) / n:.1f} "
                 f"| {s.get('context-switches', 0) / n:.2f} "
                 f"| {s.get('raw_syscalls:sys_enter', 0) / n:.2f} |")
    o.append("")
    rec = P.get("record")
    if rec:
        o.append("Where the helper's CPU time goes (`perf record -e cpu-clock`, "
                 "share of samples, ≥ 1.5 %):")
        o.append("")
        o.append("| shared object | share |")
        o.append("|---|---|")
        for pc, name in rec["dso"]:
            o.append(f"| `{name}` | {pc:.1f} % |")
        o.append("")
        o.append("| symbol | share |")
        o.append("|---|---|")
        for pc, name in rec["sym"][:15]:
            o.append(f"| `{name}` | {pc:.1f} % |")
        o.append("")
    for key, label in (("helper", "qemu-perf-helper"), ("socat", "socat"),
                       ("query64", "per-thread `query-perf-events`, 6 events "
                        f"× {P.get('q_threads', 67)} threads")):
        cg = P["callgrind"].get(key)
        if not cg:
            continue
        total = sum(cg.values())
        by = {}
        q = key == "query64"
        for fn, v in cg.items():
            by[concern(fn, q)] = by.get(concern(fn, q), 0) + v
        o.append(f"{label}: **{total:,.0f} instructions per "
                 f"{'query' if key == 'query64' else 'forwarded request'}** "
                 "in user space (callgrind), each function's own "
                 "instructions grouped by concern:")
        o.append("")
        o.append("| concern | instructions | share | largest functions |")
        o.append("|---|---|---|---|")
        for name, v in sorted(by.items(), key=lambda kv: -kv[1]):
            if v < 1:
                continue
            top = sorted(((x, fn) for fn, x in cg.items()
                          if concern(fn, q) == name), reverse=True)[:4]
            tops = ", ".join(f"`{fn}` {x:,.0f}" for x, fn in top if x >= 1)
            o.append(f"| {name} | {v:,.0f} | {100 * v / total:.0f} % | {tops} |")
        o.append("")
        inc = P.get("callgrind_incl", {}).get(key)
        if inc:
            o.append("By stage (inclusive instructions per request of the "
                     "function that does it):")
            o.append("")
            o.append("| stage | function | instructions |")
            o.append("|---|---|---|")
            for fn, what in STAGES.items():
                if inc.get(fn, 0) >= 1:
                    o.append(f"| {what} | `{fn}` | {inc[fn]:,.0f} |")
            o.append("")
    return o


BEGIN = "<!-- profile:begin (generated by tests/bench/bench-profile.py; edit outside) -->"
END = "<!-- profile:end -->"


def update_docs(lines):
    doc = bench.SRC / "docs" / "performance.md"
    text = doc.read_text()
    if BEGIN not in text:
        text += f"\n{BEGIN}\n{END}\n"
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    doc.write_text(head + "\n".join([BEGIN, ""] + lines + [END]) + tail)
    log(f"wrote {doc}")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--build", default="build-bench")
    ap.add_argument("--rounds", type=int, default=3000)
    ap.add_argument("--update-docs", action="store_true")
    ap.add_argument("--json")
    ap.add_argument("--from-json")
    a = ap.parse_args()
    build = Path(a.build).resolve()
    a.helper = os.environ.get("QPH_HELPER") or str(build / "helper" / "qemu-perf-helper")
    a.client = str(build / "tests" / "bench" / "qph-bench")
    if a.from_json:
        P = json.loads(Path(a.from_json).read_text())
    else:
        P = {"machine": bench.machine(), "rounds": a.rounds, "stat": {},
             "callgrind": {}, "callgrind_incl": {}, "cg_short": 200,
             "cg_long": 2200, "q_short": 20, "q_long": 120}
        procs = bench.Procs()
        tmp = tempfile.mkdtemp(prefix="qph-profile-")
        try:
            vm = bench.Vm(procs, tmp, "vm", 1,
                          ["direct", "proxied", "relay", "cg1", "cg2"])
            relay1 = str(vm.dir / "relay1.sock")
            helper = bench.Helper(procs, a.helper, vm.sock["proxied"],
                                  str(vm.dir / "helper.sock"))
            time.sleep(0.5)

            def drive(path):
                return lambda: bench.run_client(
                    a.client, "latency", a.rounds, 20, STATUS,
                    {"t": "unix:" + path})

            log("perf stat: helper, socat, QEMU")
            P["stat"]["helper"] = perf_stat(helper.pid, drive(helper.listen))
            P["stat"]["socat"] = perf_stat(
                None, drive(relay1), ready=relay1,
                command=["socat", f"UNIX-LISTEN:{relay1}",
                         f"UNIX-CONNECT:{vm.sock['relay']}"])
            P["stat"]["qemu-direct"] = perf_stat(
                vm.pid, drive(vm.sock["direct"]))
            P["stat"]["qemu-helper"] = perf_stat(vm.pid, drive(helper.listen))
            def pipe(path):
                return lambda: bench.run_client(
                    a.client, "pipeline", a.rounds // 1000 or 1, 1000, STATUS,
                    {"t": "unix:" + path})

            P["stat"]["helper-pipe"] = perf_stat(helper.pid,
                                                 pipe(helper.listen))
            P["stat"]["qemu-pipe-direct"] = perf_stat(
                vm.pid, pipe(vm.sock["direct"]))
            P["stat"]["qemu-pipe-helper"] = perf_stat(vm.pid,
                                                      pipe(helper.listen))
            log("perf record: helper")
            P["record"] = perf_record(helper.pid, drive(helper.listen), tmp)
            procs.stop(helper.proc)
            if shutil.which("valgrind"):
                for tag, sock, relay_ in (("helper", "cg1", False),
                                          ("socat", "cg2", True)):
                    log(f"callgrind: {tag}")
                    short, short_i = callgrind_run(a, vm, sock, P["cg_short"],
                                                   tmp, tag, relay_)
                    long_, long_i = callgrind_run(a, vm, sock, P["cg_long"],
                                                  tmp, tag, relay_)
                    n = P["cg_long"] - P["cg_short"]
                    P["callgrind"][tag] = {
                        k: v for k, v in per_request(short, long_, n).items()
                        if abs(v) >= 0.5}
                    P["callgrind_incl"][tag] = {
                        k: v for k, v in per_request(short_i, long_i, n).items()
                        if k in STAGES}
            procs.stop(vm.proc)
            if shutil.which("valgrind"):
                # One per-thread query of 6 events on 64 vCPUs.
                vm64 = bench.Vm(procs, tmp, "vm64", 64, ["cg"])
                log("callgrind: per-thread query-perf-events, 64 vCPUs")
                runs = [callgrind_run(a, vm64, "cg", n, tmp, f"q64-{n}",
                                      cmd=bench.QUERY_PT, setup=bench.SET_ON)
                        for n in (P["q_short"], P["q_long"])]
                n = P["q_long"] - P["q_short"]
                P["callgrind"]["query64"] = {
                    k: v for k, v in per_request(runs[0][0], runs[1][0],
                                                 n).items() if abs(v) >= 0.5}
                P["q_threads"] = vm64.n_threads
        finally:
            procs.stop_all()
            shutil.rmtree(tmp, ignore_errors=True)
    lines = report(P)
    print("\n".join(lines))
    if a.json and not a.from_json:
        Path(a.json).write_text(json.dumps(P))
    if a.update_docs:
        update_docs(lines)


if __name__ == "__main__":
    main()
