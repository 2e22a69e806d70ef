#!/usr/bin/python3
# bench.py: the benchmark driver (run it through tests/bench/run.sh)
#
# Starts real QEMUs, the helper in front of one of their monitors and socat
# in front of another, runs qph-bench (the C client) against them with the
# targets interleaved round by round, and reports medians, p99s, ratios and
# PASS/MISS against the targets of issues 7 and 13.  Memory is read the way
# a host pays it: USS (private pages) and PSS from /proc/PID/smaps_rollup,
# with RSS beside them for reference.  With --update-docs it rewrites
# the generated part of docs/performance.md and docs/perf-latency.svg.
#
# Why three monitors and not two: a QEMU monitor serves one client at a
# time, and socat connects anew for every client, so the relay needs a
# monitor of its own.  All three belong to the same QEMU and main loop.
#
# SPDX-License-Identifier: GPL-2.0-or-later
import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[2]
EVENTS = ["task_clock", "cpu_clock", "context_switches", "cpu_migrations",
          "page_faults", "page_faults_min"]
SET_ON = json.dumps({"execute": "set-perf-events", "arguments": {
    "events": [{"name": e, "enabled": True} for e in EVENTS]}})
SET_OFF = json.dumps({"execute": "set-perf-events", "arguments": {
    "events": [{"name": e, "enabled": False} for e in EVENTS]}})
QUERY = json.dumps({"execute": "query-perf-events"})
# Answered by the helper's dispatch alone (an argument error): the cheapest
# round trip through it, with no QEMU and no counter in it.
OWN = json.dumps({"execute": "query-perf-events", "arguments": {"bogus": 1}})
QUERY_PT = json.dumps({"execute": "query-perf-events",
                       "arguments": {"per-thread": True}})
STATUS = '{"execute":"query-status"}'
SCHEMA = '{"execute":"query-qmp-schema"}'
# About 20 MB of reply: QEMU's HMP dump of 2.65 million bytes of guest
# memory, 8 per line, escaped into one JSON string.
BIG = json.dumps({"execute": "human-monitor-command",
                  "arguments": {"command-line": "xp /2650000xb 0"}})
MIB = 1024 * 1024


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- statistics

def median(xs):
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def pct(xs, p):
    """Nearest-rank percentile."""
    s = sorted(xs)
    k = max(0, min(len(s) - 1, int(-(-p * len(s) // 100)) - 1))
    return s[k]


def summary(xs):
    return {"n": len(xs), "median": median(xs), "p99": pct(xs, 99),
            "min": min(xs)}


def paired_ratio(a, b):
    """Median of the per-round ratios a[i]/b[i] (same round, adjacent)."""
    return median([x / y for x, y in zip(a, b) if y > 0])


# ---------------------------------------------------------------- processes

class Procs:
    """Everything started here, stopped in reverse order at the end."""

    def __init__(self):
        self.procs = []

    def start(self, args, **kw):
        p = subprocess.Popen(args, stdin=subprocess.DEVNULL, **kw)
        self.procs.append(p)
        return p

    def stop(self, p, timeout=5):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if p in self.procs:
            self.procs.remove(p)

    def stop_all(self):
        for p in reversed(list(self.procs)):
            self.stop(p)


def wait_for_socket(path, proc, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode} "
                               f"before {path} appeared")
        time.sleep(0.02)
    raise RuntimeError(f"{path} did not appear within {timeout} s")


def kvm_usable():
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC))
        return True
    except OSError:
        return False


class Vm:
    """A QEMU with no guest code: paused at -S, so its threads (one per vCPU
    plus the main loop, RCU and workers) exist and stay quiet, and no guest
    activity sends QMP events into the idle measurements."""

    def __init__(self, procs, tmp, name, smp, monitors):
        self.dir = Path(tmp) / name
        self.dir.mkdir()
        self.sock = {m: str(self.dir / f"{m}.sock") for m in monitors}
        args = [os.environ.get("QPH_QEMU") or "qemu-system-x86_64",
                "-display", "none", "-nodefaults", "-M", "pc", "-m", "256",
                "-accel", "kvm" if kvm_usable() else "tcg",
                "-smp", str(smp), "-S"]
        for m in monitors:
            args += ["-qmp", f"unix:{self.sock[m]},server=on,wait=off"]
        self.err = open(self.dir / "qemu.log", "w")
        self.proc = procs.start(args, stdout=self.err, stderr=self.err)
        for m in monitors:
            wait_for_socket(self.sock[m], self.proc)
        self.pid = self.proc.pid
        # vCPU threads are created during machine init, before the monitor
        # is served; wait until their number settles anyway.
        last, stable = -1, 0
        while stable < 5:
            n = len(os.listdir(f"/proc/{self.pid}/task"))
            stable = stable + 1 if n == last else 0
            last = n
            time.sleep(0.05)
        self.n_threads = last


def smaps(pid):
    """kB from /proc/PID/smaps_rollup: USS (private clean + dirty), PSS,
    RSS; and the kernel's RSS high-water mark (VmHWM)."""
    f = {}
    with open(f"/proc/{pid}/smaps_rollup") as fh:
        for line in fh:
            k, _, v = line.partition(":")
            if v.strip().endswith("kB"):
                f[k] = int(v.split()[0])
    out = {"USS": f.get("Private_Clean", 0) + f.get("Private_Dirty", 0),
           "PSS": f.get("Pss", 0), "RSS": f.get("Rss", 0),
           "Anon": f.get("Anonymous", 0)}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                out["HWM"] = int(line.split()[1])
    return out


class Helper:
    def __init__(self, procs, binary, qemu_sock, listen, env=None):
        self.listen = listen
        self.log = open(listen + ".log", "w")
        self.proc = procs.start([binary, "--qemu", qemu_sock,
                                 "--listen", listen],
                                stdout=self.log, stderr=self.log, env=env)
        wait_for_socket(listen, self.proc)
        self.pid = self.proc.pid

    def status(self):
        """VmRSS etc. (kB) of the process, context switches of all threads."""
        out = {}
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "RssAnon", "RssFile", "RssShmem", "VmHWM",
                         "Threads"):
                    out[k] = int(v.split()[0])
        cs = 0
        for tid in os.listdir(f"/proc/{self.pid}/task"):
            try:
                with open(f"/proc/{self.pid}/task/{tid}/status") as f:
                    for line in f:
                        if line.startswith(("voluntary_ctxt_switches",
                                            "nonvoluntary_ctxt_switches")):
                            cs += int(line.split()[1])
            except FileNotFoundError:
                pass
        out["ctxt"] = cs
        out["fds"] = len(os.listdir(f"/proc/{self.pid}/fd"))
        out.update(smaps(self.pid))
        return out


class Qmp:
    """A plain blocking QMP client for setup (not for timing)."""

    def __init__(self, path, negotiate=True):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)
        self.f = self.s.makefile("rb")
        self.greeting = json.loads(self.f.readline())
        if negotiate:
            self.cmd('{"execute":"qmp_capabilities"}')

    def cmd(self, text):
        self.s.sendall(text.encode() + b"\n")
        while True:
            msg = json.loads(self.f.readline())
            if "event" not in msg:
                return msg

    def close(self):
        self.f.close()
        self.s.close()


# ---------------------------------------------------------------- qph-bench

def run_client(binary, mode, rounds, param, cmd, targets, cmd2=None):
    args = [binary, mode, str(rounds)]
    args += [cmd, cmd2] if mode == "toggle" else [str(param), cmd]
    args += [f"{k}={v}" for k, v in targets.items()]
    out = subprocess.run(args, check=True, stdout=subprocess.PIPE,
                         text=True).stdout
    res = {}
    for line in out.splitlines():
        name, *vals = line.split()
        res[name] = [int(v) for v in vals]
    return res


# ---------------------------------------------------------------- phases

def phase_proxy(a, procs, tmp, R):
    """Forwarded latency and throughput: direct / helper / socat."""
    vm = Vm(procs, tmp, "proxy", 1, ["direct", "proxied", "relay"])
    helper = Helper(procs, a.helper, vm.sock["proxied"],
                    str(vm.dir / "helper.sock"))
    time.sleep(0.5)
    R["mem"]["idle_1vcpu"] = helper.status()
    # 100 idle clients, negotiated, on a fresh helper.
    clients = [Qmp(helper.listen) for _ in range(100)]
    time.sleep(0.5)
    R["mem"]["clients100"] = helper.status()
    for c in clients:
        c.close()
    time.sleep(0.5)
    R["mem"]["clients100_closed"] = helper.status()
    phase_big_reply(helper, R)

    relay = str(vm.dir / "relay-front.sock")
    socat = procs.start(["socat", f"UNIX-LISTEN:{relay},fork",
                         f"UNIX-CONNECT:{vm.sock['relay']}"],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_socket(relay, socat)
    targets = {"direct": "unix:" + vm.sock["direct"],
               "helper": "unix:" + helper.listen,
               "socat": "unix:" + relay}
    for key, cmd, rounds in (("query-status", STATUS, a.rounds_small),
                             ("query-qmp-schema", SCHEMA, a.rounds_schema)):
        log(f"latency {key}: {rounds} interleaved rounds")
        t = dict(targets)
        R["latency"][key] = run_client(a.client, "latency", rounds,
                                       max(5, rounds // 50), cmd, t)
    log(f"pipeline: {a.rounds_pipe} rounds of {a.depth} query-status")
    R["pipeline"] = run_client(a.client, "pipeline", a.rounds_pipe, a.depth,
                               STATUS, targets)
    R["pipeline_depth"] = a.depth
    procs.stop(socat)
    procs.stop(helper.proc)
    procs.stop(vm.proc)


def phase_big_reply(helper, R):
    """A ~20 MB reply through the helper: USS sampled every 5 ms while it
    passes (the high-water mark), then after it has been read and the
    helper had a second to return what it took."""
    q = Qmp(helper.listen)
    R["mem"]["before_big"] = helper.status()
    peak = dict(R["mem"]["before_big"])
    done = threading.Event()

    def sample():
        while not done.is_set():
            m = smaps(helper.pid)
            if m["USS"] > peak["USS"]:
                peak.update(m)
            time.sleep(0.005)

    th = threading.Thread(target=sample)
    th.start()
    t0 = time.monotonic()
    q.s.sendall(BIG.encode() + b"\n")
    n = 0
    while True:
        line = q.f.readline()
        if not line:
            raise RuntimeError("helper closed the connection on a large reply")
        if not line.startswith(b'{"timestamp"'):
            n = len(line)
            break
    done.set()
    th.join()
    log(f"large reply: {n:,} bytes in {time.monotonic() - t0:.1f} s")
    if n < 19_000_000 or b'"return"' not in line[:20]:
        raise RuntimeError(f"large reply: {n} bytes, {line[:200]!r}")
    R["big_bytes"] = n
    R["mem"]["big_peak"] = peak
    time.sleep(1.0)
    R["mem"]["big_after"] = helper.status()
    q.close()


def phase_deps(a, procs, tmp, R):
    """What linking GIO or json-glib would cost in private memory: the
    helper (and qemu-perf-stat, a client program) started plain and with
    the library preloaded, alternately, three times; kB medians.  Preload
    maps the library, runs its constructors and relocates it, which is what
    linking costs before any of its code is used."""
    libdir = "/usr/lib/x86_64-linux-gnu"
    variants = {"plain": None,
                "gio": f"{libdir}/libgio-2.0.so.0",
                "json-glib": f"{libdir}/libjson-glib-1.0.so.0"}
    variants = {k: v for k, v in variants.items()
                if v is None or os.path.exists(v)}
    vm = Vm(procs, tmp, "deps", 1, ["h"])
    out = R["deps"] = {"helper": {k: [] for k in variants},
                       "stat": {k: [] for k in variants}}
    stat = a.stat if os.path.exists(a.stat) else None
    # The same socket work with GLib alone and through GIO (dep-cost.c).
    users = {k: str(Path(a.client).parent / f"qph-dep-cost-{k}")
             for k in ("glib", "gio")}
    if all(os.path.exists(p) for p in users.values()):
        out["sockets"] = {k: [] for k in users}
    for rnd in range(3):
        for k, lib in variants.items():
            env = dict(os.environ)
            if lib:
                env["LD_PRELOAD"] = lib
            h = Helper(procs, a.helper, vm.sock["h"],
                       str(vm.dir / f"h-{k}-{rnd}.sock"), env=env)
            q = Qmp(h.listen)
            q.cmd(STATUS)
            time.sleep(0.3)
            out["helper"][k].append(smaps(h.pid))
            if stat:
                # qemu-perf-stat reading one event every second: its
                # memory once it is in its loop.
                p = procs.start([stat, "-S", h.listen, "-e", "task_clock",
                                 "-I", "1000", "--duration", "5"],
                                stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env=env)
                time.sleep(1.5)
                if p.poll() is None:
                    out["stat"][k].append(smaps(p.pid))
                procs.stop(p)
            if lib is None and "sockets" in out:
                for k, binary in users.items():
                    p = procs.start([binary, h.listen], stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL)
                    if p.stdout.readline().strip() == b"ready":
                        time.sleep(0.3)
                        out["sockets"][k].append(smaps(p.pid))
                    procs.stop(p)
            q.close()
            procs.stop(h.proc)
    procs.stop(vm.proc)


def perf_supported(q):
    names = {c["name"] for c in q.cmd('{"execute":"query-commands"}')["return"]}
    return "set-perf-events" in names and "query-perf-events" in names


def phase_perf(a, procs, tmp, R, smp):
    vm = Vm(procs, tmp, f"vm{smp}", smp, ["proxied"])
    helper = Helper(procs, a.helper, vm.sock["proxied"],
                    str(vm.dir / "helper.sock"))
    time.sleep(0.5)
    P = R["perf"][str(smp)] = {"threads": vm.n_threads}
    if smp >= 64:
        R["mem"][f"idle_{smp}vcpu"] = P["idle"] = helper.status()
    ctl = Qmp(helper.listen)
    supported = perf_supported(ctl)
    R["perf_supported"] = supported
    targets = {}
    rounds = a.rounds_perf64 if smp >= 64 else a.rounds_perf
    if supported:
        if smp >= 64:
            log(f"set-perf-events, {smp} vCPUs: {a.rounds_set} on/off rounds")
            P["set"] = run_client(a.client, "toggle", a.rounds_set, 0, SET_ON,
                                  {"helper": "unix:" + helper.listen},
                                  cmd2=SET_OFF)
        r = ctl.cmd(SET_ON)
        if "error" in r:
            raise RuntimeError(f"set-perf-events: {r['error']}")
        r = ctl.cmd(QUERY_PT)
        if "error" in r:
            raise RuntimeError(f"query-perf-events: {r['error']}")
        P["reply_bytes"] = len(json.dumps(r["return"]))
        P["reply_bytes_total"] = len(json.dumps(ctl.cmd(QUERY)["return"]))
        P["helper_fds"] = helper.status()["fds"]
        targets["total"] = f"unix:{helper.listen}|{QUERY}"
        targets["per-thread"] = f"unix:{helper.listen}|{QUERY_PT}"
        # The helper's own round trip, interleaved: half of the fair floor.
        targets["status"] = f"unix:{helper.listen}|{STATUS}"
        targets["own"] = f"unix-err:{helper.listen}|{OWN}"
    targets["floor"] = f"floor:{vm.pid}"
    targets["floor-scan"] = f"floor-scan:{vm.pid}"
    targets["floor-group"] = f"floor-group:{vm.pid}"
    log(f"query-perf-events, {smp} vCPUs ({vm.n_threads} threads): "
        f"{rounds} interleaved rounds")
    P.update(run_client(a.client, "latency", rounds, max(5, rounds // 50),
                        STATUS, targets))
    if smp == 128 and supported:
        R["mem"]["events_128x6"] = helper.status()
    if smp == 64 and supported:
        R["mem"]["events_64x6"] = helper.status()
        clients = [Qmp(helper.listen) for _ in range(100)]
        # Idle starts when the last answer is in: whatever the helper does
        # after a request (a trim after a large reply) is done by then.
        time.sleep(0.5)
        R["mem"]["events_64x6_clients100"] = before = helper.status()
        log(f"idle wakeups: {a.idle_seconds} s, 101 clients, "
            f"{len(EVENTS)} events on {vm.n_threads} threads, nothing asked")
        time.sleep(a.idle_seconds)
        after = helper.status()
        R["idle"] = {"seconds": a.idle_seconds, "clients": len(clients) + 1,
                     "ctxt": after["ctxt"] - before["ctxt"],
                     "fds": after["fds"]}
        for c in clients:
            c.close()
    elif smp == 64:
        # Without the perf commands: idle wakeups with clients only.
        clients = [Qmp(helper.listen) for _ in range(100)]
        time.sleep(0.5)
        before = helper.status()
        time.sleep(a.idle_seconds)
        after = helper.status()
        R["idle"] = {"seconds": a.idle_seconds, "clients": len(clients) + 1,
                     "ctxt": after["ctxt"] - before["ctxt"],
                     "fds": after["fds"], "no_events": True}
        for c in clients:
            c.close()
    ctl.close()
    procs.stop(helper.proc)
    procs.stop(vm.proc)


# ---------------------------------------------------------------- runs

def merge_runs(runs):
    """Several runs as one: the samples of each measure pooled (each run
    interleaves its targets, so pooling keeps the comparison fair), memory
    and counts the median of the runs, machine data from the first with
    every run's load average."""
    if len(runs) == 1:
        return runs[0]
    runs = sorted(runs, key=lambda r: r["machine"]["date"])

    def pool(xs):
        x0 = xs[0]
        if isinstance(x0, list):
            return [v for x in xs for v in x]
        if isinstance(x0, dict):
            keys = list(dict.fromkeys(k for x in xs for k in x))
            return {k: pool([x[k] for x in xs if k in x]) for k in keys}
        if isinstance(x0, bool):
            return x0
        if isinstance(x0, int):
            return int(round(median(xs)))
        if isinstance(x0, float):
            return median(xs)
        return x0

    R = {k: pool([r[k] for r in runs if k in r])
         for k in runs[0] if k not in ("machine", "mem", "deps")}
    # A target only some runs have (direct-id is newer than the others)
    # keeps the direct samples of those same runs beside it.
    for cmd, targets in R["latency"].items():
        for t in list(targets):
            have = [r for r in runs if t in r["latency"].get(cmd, {})]
            if len(have) < len(runs):
                targets[t + ":base"] = [v for r in have
                                        for v in r["latency"][cmd]["direct"]]
    R["mem"] = {k: {f: int(round(median([r["mem"][k][f] for r in runs
                               if k in r["mem"] and f in r["mem"][k]])))
                    for f in runs[0]["mem"][k]} for k in runs[0]["mem"]}
    progs = {p: r["deps"][p] for r in runs for p in r.get("deps", {})}
    if progs:
        R["deps"] = {prog: {lib: [m for r in runs
                                  for m in r.get("deps", {}).get(prog, {})
                                  .get(lib, [])]
                            for lib in libs}
                     for prog, libs in progs.items()}
    # A wakeup in any run counts.
    R["idle"]["ctxt"] = max(r["idle"]["ctxt"] for r in runs)
    R["machine"] = dict(runs[0]["machine"])
    R["machine"]["load"] = "; ".join(r["machine"]["load"] for r in runs)
    R["machine"]["date"] = (runs[0]["machine"]["date"] + " to "
                            + runs[-1]["machine"]["date"])
    R["runs"] = len(runs)
    R["elapsed"] = sum(r["elapsed"] for r in runs)
    return R


# ---------------------------------------------------------------- report

def machine():
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    qemu = subprocess.run([os.environ.get("QPH_QEMU") or "qemu-system-x86_64",
                           "--version"], stdout=subprocess.PIPE,
                          text=True).stdout.splitlines()[0]
    rev = os.environ.get("QPH_BENCH_COMMIT", "")
    if not rev:
        try:
            rev = subprocess.run(["git", "-C", str(SRC), "describe", "--always",
                                  "--dirty"], stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL,
                                 text=True).stdout.strip() or "unknown"
        except OSError:
            rev = "unknown"
    return {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(),
            "qemu": qemu, "accel": "KVM" if kvm_usable() else "TCG",
            "date": datetime.datetime.now().astimezone().strftime(
                "%Y-%m-%d %H:%M %Z"),
            "commit": rev,
            "load": " ".join(f"{x:.2f}" for x in os.getloadavg())}


def us(ns):
    return f"{ns / 1000:.1f}"


def verdict(ok):
    return "PASS" if ok else "MISS"


def mib(kb):
    return f"{kb / 1024:.2f}"


def fair_floor(P):
    """The helper's own query-status round trip plus the cheapest read of
    the same counters (group reads), both medians of the same run."""
    return median(P["status"]) + median(P["floor-group"])


def build_report(R):
    """Rows of (measure, value, target, verdict) and detail tables."""
    rows = []
    detail = []
    lat = R["latency"]
    detail.append("| command | direct p50 / p99 (µs) | helper p50 / p99 (µs) "
                  "| socat p50 / p99 (µs) | helper ÷ socat (p50 / p99) "
                  "| helper ÷ direct (p50 / p99) | socat ÷ direct (p50) "
                  "| helper ÷ socat (paired) |")
    detail.append("|---|---|---|---|---|---|---|---|")
    for key in ("query-status", "query-qmp-schema"):
        d, h, s = (summary(lat[key][t]) for t in ("direct", "helper", "socat"))
        hs50, hs99 = h["median"] / s["median"], h["p99"] / s["p99"]
        hd50, hd99 = h["median"] / d["median"], h["p99"] / d["p99"]
        detail.append(
            f"| `{key}` ({d['n']} rounds) | {us(d['median'])} / {us(d['p99'])} "
            f"| {us(h['median'])} / {us(h['p99'])} "
            f"| {us(s['median'])} / {us(s['p99'])} | {hs50:.3f} / {hs99:.3f} "
            f"| {hd50:.3f} / {hd99:.3f} | {s['median'] / d['median']:.3f} "
            f"| {paired_ratio(lat[key]['helper'], lat[key]['socat']):.3f} |")
        if key == "query-status" and "direct-id" in lat[key]:
            di = summary(lat[key]["direct-id"])
            base = median(lat[key].get("direct-id:base", lat[key]["direct"]))
            detail.append(
                f"| `query-status` with `\"id\": 1234` added, straight to "
                f"QEMU ({di['n']} rounds; ÷ direct of the same runs) "
                f"| {us(di['median'])} / {us(di['p99'])} | | | "
                f"| {di['median'] / base:.3f} | | |")
            rows.append(("`query-status`, QEMU given an id as the helper "
                         "adds it, ÷ without (p50)",
                         f"{di['median'] / base:.3f} "
                         f"(+{us(di['median'] - base)} µs)",
                         "(reported)", "—"))
            # The helper against a relay that also paid QEMU's price for
            # the id: what is the helper's own.
            own = h["median"] / (s["median"] * di["median"] / base)
            rows.append(("… helper ÷ socat with that price taken out: helper "
                         "÷ (socat × id ratio), p50", f"{own:.3f}",
                         "(derived)", "—"))
        if key == "query-status":
            rows.append(("`query-status` round trip, helper ÷ socat, p50",
                         f"{hs50:.3f} (÷ direct {hd50:.3f}; socat ÷ direct "
                         f"{s['median'] / d['median']:.3f})", "≤ 1.05",
                         verdict(hs50 <= 1.05)))
            rows.append(("`query-status` round trip, helper ÷ socat, p99",
                         f"{hs99:.3f} (÷ direct {hd99:.3f})", "≤ 1.05",
                         verdict(hs99 <= 1.05)))
        else:
            rows.append((f"`{key}` round trip, helper ÷ direct (p50)",
                         f"{hd50:.3f} (socat {s['median'] / d['median']:.3f})",
                         "≤ 1.10", verdict(hd50 <= 1.10)))
    pipe = R["pipeline"]
    depth = R["pipeline_depth"]
    tput = {t: depth / (median(pipe[t]) / 1e9) for t in pipe}
    detail.append("")
    detail.append(f"Pipelined: {depth} `query-status` in one write, "
                  f"{len(pipe['direct'])} interleaved rounds, "
                  "commands/s from the median batch time:")
    detail.append("")
    detail.append("| target | commands/s | batch p50 / p99 (ms) |")
    detail.append("|---|---|---|")
    for t in ("direct", "helper", "socat"):
        s = summary(pipe[t])
        detail.append(f"| {t} | {tput[t]:,.0f} | {s['median'] / 1e6:.2f} / "
                      f"{s['p99'] / 1e6:.2f} |")
    tr = tput["helper"] / tput["direct"]
    rows.append(("pipelined throughput, helper ÷ direct",
                 f"{tr:.3f} (socat {tput['socat'] / tput['direct']:.3f})",
                 "≥ 1.0", verdict(tr >= 1.0)))

    smps = [s for s in ("1", "8", "64", "128") if s in R["perf"]]
    detail.append("")
    detail.append("`query-perf-events`, 6 software events, interleaved with "
                  "the helper's own `query-status` and the read floors "
                  "(µs, p50 / p99). *Fair floor* = `query-status` through "
                  "the helper + group read, medians:")
    detail.append("")
    detail.append("| vCPUs | threads | total | per-thread | `query-status` "
                  "| group read | fair floor | per-thread ÷ fair | total ÷ fair "
                  "| helper-only answer | per-thread ÷ (helper-only + group) "
                  "| one read per fd | reply bytes (total / per-thread) |")
    detail.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for smp in smps:
        P = R["perf"][smp]
        f = summary(P["floor"])
        g = summary(P["floor-group"])
        if "total" in P:
            t = summary(P["total"])
            pt = summary(P["per-thread"])
            st = summary(P["status"])
            ff = fair_floor(P)
            detail.append(
                f"| {smp} | {P['threads']} | {us(t['median'])} / {us(t['p99'])} "
                f"| {us(pt['median'])} / {us(pt['p99'])} "
                f"| {us(st['median'])} / {us(st['p99'])} "
                f"| {us(g['median'])} / {us(g['p99'])} | {us(ff)} "
                f"| {pt['median'] / ff:.2f} | {t['median'] / ff:.2f} "
                f"| {us(median(P['own']))} "
                f"| {pt['median'] / (median(P['own']) + g['median']):.2f} "
                f"| {us(f['median'])} / {us(f['p99'])} "
                f"| {P['reply_bytes_total']:,} / {P['reply_bytes']:,} |")
    for smp in ("64", "128"):
        P = R["perf"].get(smp, {})
        if "total" not in P:
            continue
        ff = fair_floor(P)
        pt = median(P["per-thread"])
        rows.append((f"`query-perf-events` {smp} vCPUs × 6, per-thread ÷ fair "
                     "floor (p50)", f"{pt / ff:.2f} ({us(pt)} µs; floor "
                     f"{us(ff)} µs = {us(median(P['status']))} round trip + "
                     f"{us(median(P['floor-group']))} group read)",
                     "≤ 1.3" if smp == "64" else "(reported)",
                     verdict(pt / ff <= 1.3) if smp == "64" else "—"))
    detail.append("")
    detail.append("`set-perf-events` of the 6 events (enable, then disable, "
                  "each timed; descriptors = helper fds enabled − idle):")
    detail.append("")
    detail.append("| vCPUs | threads | descriptors | enable p50 / p99 (ms) "
                  "| per descriptor (µs, p50) | disable p50 / p99 (ms) |")
    detail.append("|---|---|---|---|---|---|")
    for smp in ("64", "128"):
        P = R["perf"].get(smp, {})
        if "set" not in P:
            continue
        s_on, s_off = summary(P["set"]["helper:on"]), summary(P["set"]["helper:off"])
        nd = max(1, P["helper_fds"] - P["idle"]["fds"])
        detail.append(f"| {smp} | {P['threads']} | {nd} "
                      f"| {s_on['median'] / 1e6:.2f} / {s_on['p99'] / 1e6:.2f} "
                      f"| {s_on['median'] / nd / 1e3:.1f} "
                      f"| {s_off['median'] / 1e6:.2f} / {s_off['p99'] / 1e6:.2f} |")
        rows.append((f"`set-perf-events` enable 6 events, {smp} vCPUs (p50)",
                     f"{s_on['median'] / 1e6:.2f} ms, {nd} descriptors, "
                     f"{s_on['median'] / nd / 1e3:.1f} µs each",
                     "(reported)", "—"))

    M = R["mem"]
    detail.append("")
    detail.append("Helper memory (MiB; USS = private clean + dirty and PSS "
                  "from /proc/PID/smaps_rollup; RSS for reference: it counts "
                  "shared library pages in full):")
    detail.append("")
    detail.append("| state | USS | PSS | RSS | anonymous | fds |")
    detail.append("|---|---|---|---|---|---|")
    labels = {"idle_1vcpu": "idle, attached to a 1-vCPU VM",
              "clients100": "100 idle clients (1-vCPU VM, no events)",
              "clients100_closed": "… after they closed",
              "big_peak": f"high-water while a {R.get('big_bytes', 0) / 1e6:.1f} MB "
                          "reply passes (sampled every 5 ms)",
              "big_after": "1 s after the large reply was read",
              "idle_64vcpu": "idle, attached to a 64-vCPU VM",
              "events_64x6": "64 vCPUs × 6 events, after the query benchmark",
              "events_64x6_clients100": "… and 100 idle clients",
              "idle_128vcpu": "idle, attached to a 128-vCPU VM",
              "events_128x6": "128 vCPUs × 6 events, after the query benchmark"}
    for k, label in labels.items():
        if k in M:
            m = M[k]
            detail.append(f"| {label} | {mib(m['USS'])} | {mib(m['PSS'])} "
                          f"| {mib(m['RSS'])} | {mib(m['Anon'])} "
                          f"| {m.get('fds', '')} |")
    if "big_peak" in M:
        detail.append("")
        detail.append(f"RSS high-water (VmHWM) after the large reply: "
                      f"{mib(M['big_after']['HWM'])} MiB.")
    idle = M["idle_1vcpu"]
    rows.append(("USS idle", f"{mib(idle['USS'])} MiB (anonymous "
                 f"{mib(idle['Anon'])}; PSS {mib(idle['PSS'])}, "
                 f"RSS {mib(idle['RSS'])})", "< 0.5 MiB",
                 verdict(idle["USS"] < 512)))
    c = M["clients100"]
    rows.append(("USS, 100 idle clients", f"{mib(c['USS'])} MiB (PSS "
                 f"{mib(c['PSS'])}, RSS {mib(c['RSS'])})", "(reported)", "—"))
    if "events_64x6" in M:
        e = M["events_64x6"]
        rows.append(("USS, 64 vCPUs × 6 events", f"{mib(e['USS'])} MiB (PSS "
                     f"{mib(e['PSS'])}, RSS {mib(e['RSS'])})", "< 1 MiB",
                     verdict(e["USS"] < 1024)))
    if "big_peak" in M:
        pk, af = M["big_peak"], M["big_after"]
        rows.append(("USS high-water while a 20 MB reply passes",
                     f"{mib(pk['USS'])} MiB", "(reported)", "—"))
        rows.append(("USS after the large reply, ÷ idle",
                     f"{af['USS'] / idle['USS']:.2f} ({mib(af['USS'])} MiB)",
                     "≤ 2.0", verdict(af["USS"] <= 2 * idle["USS"])))
    I = R["idle"]
    what = ("clients connected" if I.get("no_events")
            else "clients connected, 6 events × 64 vCPUs enabled")
    rows.append((f"context switches over {I['seconds']} s idle "
                 f"({I['clients']} {what})", str(I["ctxt"]), "0",
                 verdict(I["ctxt"] == 0)))

    D = R.get("deps")
    if D:
        detail.append("")
        detail.append("What a library costs before any of its code runs: the "
                      "program started plain and with the library in "
                      "`LD_PRELOAD`, alternately, 3 times each per run; MiB, medians "
                      "(qemu-perf-stat in its `-I 1000` loop); and a tiny "
                      "program doing the same socket work with GLib alone "
                      "and through GIO (tests/bench/dep-cost.c), which "
                      "counts what using GIO costs:")
        detail.append("")
        detail.append("| program | library | USS | PSS | RSS | USS added "
                      "| PSS added |")
        detail.append("|---|---|---|---|---|---|---|")
        for prog, name in (("helper", "qemu-perf-helper"),
                           ("stat", "qemu-perf-stat"),
                           ("sockets", "connect, negotiate, wait (dep-cost.c)")):
            if prog not in D:
                continue
            base = D[prog].get("plain") or D[prog].get("glib") or []
            if not base:
                continue
            b = {k: median([m[k] for m in base]) for k in ("USS", "PSS", "RSS")}
            for lib, ms in D[prog].items():
                if not ms:
                    continue
                v = {k: median([m[k] for m in ms]) for k in ("USS", "PSS", "RSS")}
                first = lib in ("plain", "glib")
                what = ({"glib": "GLib alone", "gio": "GIO, used"}
                        if prog == "sockets" else
                        {"gio": "GIO (preloaded)",
                         "json-glib": "json-glib (preloaded)"}).get(lib, lib)
                detail.append(f"| {name} | {what} | {mib(v['USS'])} "
                              f"| {mib(v['PSS'])} | {mib(v['RSS'])} "
                              f"| {'' if first else mib(v['USS'] - b['USS'])} "
                              f"| {'' if first else mib(v['PSS'] - b['PSS'])} |")
    return rows, detail


def table(rows):
    out = ["| measure | result | target | verdict |", "|---|---|---|---|"]
    out += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return out


def svg_plot(R):
    """query-perf-events p50 (with p99 whiskers) against vCPUs, beside the
    floor; a dependency-free SVG on a log-log scale."""
    import math
    smps = [s for s in (1, 8, 64, 128) if str(s) in R["perf"]]
    series = [("per-thread", "query-perf-events per-thread", "#d62728"),
              ("total", "query-perf-events (totals)", "#1f77b4"),
              ("status", "query-status via the helper", "#7f7f7f"),
              ("floor-group", "group read (C loop, no JSON)", "#2ca02c")]
    pts = {}
    for key, _, _ in series:
        if all(key in R["perf"][str(s)] for s in smps):
            pts[key] = [summary(R["perf"][str(s)][key]) for s in smps]
    W, H, L, Rm, T, B = 720, 440, 80, 250, 40, 60
    vals = [v for p in pts.values() for s in p for v in (s["median"], s["p99"])]
    lo = 10 ** math.floor(math.log10(min(vals) / 1000))
    hi = 10 ** math.ceil(math.log10(max(max(vals) / 1000, 1000)))

    def x(smp):
        return L + (W - L - Rm) * math.log2(smp) / math.log2(smps[-1])

    def y(v_us):
        return T + (H - T - B) * (1 - (math.log10(v_us) - math.log10(lo)) /
                                  (math.log10(hi) - math.log10(lo)))

    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
         f'font-family="sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{(W - Rm + L) / 2}" y="22" text-anchor="middle" '
         f'font-size="14">query-perf-events latency, 6 software events '
         f'(p50, whisker to p99)</text>']
    d = lo
    while d <= hi * 1.0001:
        yy = y(d)
        o.append(f'<line x1="{L}" y1="{yy:.1f}" x2="{W - Rm}" y2="{yy:.1f}" '
                 f'stroke="#ddd"/>')
        o.append(f'<text x="{L - 6}" y="{yy + 4:.1f}" text-anchor="end">'
                 f'{d:g} µs</text>')
        d *= 10
    for s in smps:
        o.append(f'<line x1="{x(s):.1f}" y1="{T}" x2="{x(s):.1f}" '
                 f'y2="{H - B}" stroke="#eee"/>')
        o.append(f'<text x="{x(s):.1f}" y="{H - B + 18}" '
                 f'text-anchor="middle">{s}</text>')
    o.append(f'<text x="{(W - Rm + L) / 2}" y="{H - 18}" '
             f'text-anchor="middle">vCPUs (threads: '
             f'{", ".join(str(R["perf"][str(s)]["threads"]) for s in smps)})'
             f'</text>')
    o.append(f'<line x1="{L}" y1="{H - B}" x2="{W - Rm}" y2="{H - B}" '
             f'stroke="#000"/>')
    o.append(f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H - B}" stroke="#000"/>')
    ly = T + 10
    if "floor-group" in pts and "status" in pts:
        ff = [1.3 * (g["median"] + st["median"]) / 1000
              for g, st in zip(pts["floor-group"], pts["status"])]
        path = " ".join(f"{x(s):.1f},{y(v):.1f}" for s, v in zip(smps, ff))
        o.append(f'<polyline points="{path}" fill="none" stroke="#000" '
                 f'stroke-width="1" stroke-dasharray="6,4"/>')
        o.append(f'<text x="{x(smps[-1]) - 6:.1f}" y="{y(ff[-1]) - 6:.1f}" '
                 f'text-anchor="end">target: 1.3 × fair floor</text>')
    for n, (key, label, colour) in enumerate(series):
        if key not in pts:
            continue
        p = pts[key]
        dx = (n - 1.5) * 4
        path = " ".join(f"{x(s):.1f},{y(v['median'] / 1000):.1f}"
                        for s, v in zip(smps, p))
        o.append(f'<polyline points="{path}" fill="none" stroke="{colour}" '
                 f'stroke-width="2"/>')
        for s, v in zip(smps, p):
            o.append(f'<line x1="{x(s) + dx:.1f}" '
                     f'y1="{y(v["median"] / 1000):.1f}" x2="{x(s) + dx:.1f}" '
                     f'y2="{y(v["p99"] / 1000):.1f}" stroke="{colour}" '
                     f'stroke-opacity="0.6"/>')
            o.append(f'<circle cx="{x(s):.1f}" cy="{y(v["median"] / 1000):.1f}" '
                     f'r="4" fill="{colour}"/>')
        o.append(f'<rect x="{W - Rm + 16}" y="{ly - 9}" width="14" height="4" '
                 f'fill="{colour}"/>')
        o.append(f'<text x="{W - Rm + 36}" y="{ly - 3}">{label}</text>')
        o.append(f'<text x="{W - Rm + 36}" y="{ly + 12}" fill="#555">'
                 f'{" / ".join(us(v["median"]) for v in p)} µs</text>')
        ly += 40
    o.append("</svg>")
    return "\n".join(o) + "\n"


BEGIN = "<!-- bench:begin (generated by tests/bench/bench.py; edit outside) -->"
END = "<!-- bench:end -->"


def update_docs(R, rows, detail):
    doc = SRC / "docs" / "performance.md"
    m = R["machine"]
    gen = [BEGIN, "",
           f"Measured {m['date']} on {m['cpu']} ({m['cores']} cores), "
           f"Linux {m['kernel']}, {m['qemu']}, {m['accel']}, "
           f"tree `{m['commit']}`; load average {m['load']} at the start"
           f"{' of each run' if R.get('runs', 1) > 1 else ''}; "
           f"{R.get('runs', 1)} run(s), samples pooled; "
           f"total {R['elapsed']:.0f} s.", ""]
    gen += table(rows) + [""] + detail + ["",
                                          "![query-perf-events latency against "
                                          "vCPU count](perf-latency.svg)", "",
                                          END]
    text = doc.read_text() if doc.exists() else f"# Performance\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text:
        text += f"\n{BEGIN}\n{END}\n"
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    doc.write_text(head + "\n".join(gen) + tail)
    if all("per-thread" in R["perf"][s] or "floor" in R["perf"][s]
           for s in R["perf"]):
        (SRC / "docs" / "perf-latency.svg").write_text(svg_plot(R))
    log(f"wrote {doc} and docs/perf-latency.svg")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--build", help="meson build directory")
    ap.add_argument("--quick", action="store_true",
                    help="fewer rounds (a smoke test, about a minute)")
    ap.add_argument("--update-docs", action="store_true",
                    help="rewrite the generated part of docs/performance.md "
                    "and docs/perf-latency.svg")
    ap.add_argument("--json", help="also write the raw samples here")
    ap.add_argument("--from-json", nargs="+", help="report on samples saved "
                    "by --json instead of measuring (several files: pooled)")
    ap.add_argument("--runs", type=int, default=1, help="measure this many "
                    "times and pool the runs (the machine is shared)")
    a = ap.parse_args()
    build = Path(a.build or "build-bench").resolve()
    a.helper = os.environ.get("QPH_HELPER") or str(build / "helper" / "qemu-perf-helper")
    a.client = str(build / "tests" / "bench" / "qph-bench")
    a.stat = str(build / "contrib" / "qemu-perf-stat" / "qemu-perf-stat")
    q = 5 if a.quick else 1
    a.rounds_small = 4000 // q
    a.rounds_schema = 150 // q
    a.rounds_pipe = 40 // q
    a.depth = 1000
    a.rounds_perf = 1500 // q
    a.rounds_perf64 = 600 // q
    a.rounds_set = 40 // q
    a.idle_seconds = 2 if a.quick else 10
    for tool in ("socat", os.environ.get("QPH_QEMU") or "qemu-system-x86_64"):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} not found")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))

    if a.from_json:
        runs = []
        for f in a.from_json:
            data = json.loads(Path(f).read_text())
            runs += data if isinstance(data, list) else [data]
    else:
        runs = []
        for _ in range(a.runs):
            t0 = time.monotonic()
            R = {"machine": machine(), "mem": {}, "latency": {}, "perf": {}}
            procs = Procs()
            tmp = tempfile.mkdtemp(prefix="qph-bench-")
            try:
                phase_proxy(a, procs, tmp, R)
                for smp in (1, 8, 64, 128):
                    phase_perf(a, procs, tmp, R, smp)
                phase_deps(a, procs, tmp, R)
            finally:
                procs.stop_all()
                shutil.rmtree(tmp, ignore_errors=True)
            R["elapsed"] = time.monotonic() - t0
            runs.append(R)
    R = merge_runs(runs)

    rows, detail = build_report(R)
    m = R["machine"]
    print(f"\nqemu-perf-helper benchmark: {m['cpu']} ({m['cores']} cores), "
          f"Linux {m['kernel']}, {m['qemu']}, {m['accel']}, {m['date']}, "
          f"tree {m['commit']}, load {m['load']}, {R['elapsed']:.0f} s\n")
    print("\n".join(table(rows)))
    print()
    print("\n".join(detail))
    if a.json and not a.from_json:
        Path(a.json).write_text(json.dumps(runs if len(runs) > 1 else R))
    if a.update_docs:
        update_docs(R, rows, detail)


if __name__ == "__main__":
    main()
