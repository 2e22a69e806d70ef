#!/usr/bin/python3
# exporter-bench.py: what qemu-perf-exporter costs for 1, 10 and 50 VMs
#
# Starts small real VMs (-S: vCPU threads exist, no guest code runs), a
# helper in front of each, enables six software events on each through
# the exporter's --enable, and then, for each fleet size, a fresh exporter
# that is scraped over HTTP the way Prometheus does (OpenMetrics Accept
# header, one scrape after another). Reports the scrape latency (median,
# p99, from request to the last byte), the response size and series count,
# and the exporter's memory from /proc/PID/smaps_rollup: USS (private
# clean + dirty), PSS, and RSS for reference.
#
# Not part of the test suite. Run it through tests/bench/exporter-bench.sh.
#
# SPDX-License-Identifier: GPL-2.0-or-later
import argparse
import http.client
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

SRC = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(SRC / "tests" / "functional"))

import qmp  # noqa: E402

EVENTS = "task_clock,cpu_clock,context_switches,cpu_migrations,page_faults,page_faults_min"
ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
          "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def pct(xs, p):
    s = sorted(xs)
    return s[max(0, min(len(s) - 1, int(-(-p * len(s) // 100)) - 1))]


def median(xs):
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def kvm_usable():
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR))
        return True
    except OSError:
        return False


def cpu_seconds(pid):
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def smaps_rollup(pid):
    kb = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        k, v = line.split(":", 1)
        kb[k] = int(v.split()[0])
    return {"uss_kib": kb["Private_Clean"] + kb["Private_Dirty"],
            "pss_kib": kb["Pss"], "rss_kib": kb["Rss"]}


class Fleet:
    def __init__(self, build, base):
        self.build = Path(build)
        self.base = base
        self.helpers_dir = base / "helpers"
        self.helpers_dir.mkdir()
        self.procs = []  # (proc, kind)
        self.n = 0
        self.qemu = shutil.which("qemu-system-x86_64")
        self.accel = "kvm" if kvm_usable() else "tcg"

    def add(self, count):
        """Start @count more VMs and helpers, in parallel."""
        started = []
        for _ in range(count):
            i = self.n
            self.n += 1
            d = self.base / f"vm{i}"
            d.mkdir()
            mon = d / "qmp.sock"
            vm = subprocess.Popen(
                [self.qemu, "-display", "none", "-nodefaults", "-S", "-M", "pc",
                 "-m", "32", "-accel", self.accel, "-name", f"bench-{i}",
                 "-uuid", f"00000000-0000-4000-8000-{i:012d}",
                 "-qmp", f"unix:{mon},server=on,wait=off"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=open(d / "qemu.log", "wb"))
            self.procs.append(vm)
            started.append((d, mon, vm))
        for d, mon, vm in started:
            qmp.wait_for_listening(str(mon), 60, vm)
            listen = self.helpers_dir / f"{d.name}.sock"
            h = subprocess.Popen(
                [str(self.build / "helper" / "qemu-perf-helper"), "--qemu", str(mon),
                 "--listen", str(listen)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=open(d / "helper.log", "wb"))
            self.procs.append(h)
            qmp.wait_for_listening(str(listen), 60, h)

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(self.procs):
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def start_exporter(build, fleet, log_path):
    proc = subprocess.Popen(
        [str(Path(build) / "contrib" / "qemu-perf-exporter" / "qemu-perf-exporter"),
         "--listen", "127.0.0.1:0", "--socket", str(fleet.helpers_dir / "*.sock"),
         "--enable", EVENTS, "--timeout", "5"],
        stdin=subprocess.DEVNULL, stdout=open(log_path, "wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)/", Path(log_path).read_text())
        if m:
            return proc, int(m.group(1))
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("exporter did not start")


def scrape(conn):
    t0 = time.perf_counter()
    conn.request("GET", "/metrics", headers={"Accept": ACCEPT})
    r = conn.getresponse()
    body = r.read()
    return time.perf_counter() - t0, r.status, body


def measure(build, fleet, rounds, base):
    proc, port = start_exporter(build, fleet, base / f"exporter-{fleet.n}.log")
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        # Warm-up: connections, name/uuid, enabling, first readings.
        for _ in range(5):
            _, status, body = scrape(conn)
        up = len(re.findall(rb"^qemu_perf_up\{.*\} 1$", body, re.M))
        if up != fleet.n:
            raise RuntimeError(f"only {up} of {fleet.n} VMs up:\n{body.decode()[:2000]}")
        times, slowest = [], []
        cpu0 = cpu_seconds(proc.pid)
        for _ in range(rounds):
            dt, status, body = scrape(conn)
            assert status == 200
            times.append(dt)
            slowest.append(max(float(v) for v in re.findall(
                rb"^qemu_perf_scrape_duration_seconds\{.*\} (\S+)$", body, re.M)))
        cpu = (cpu_seconds(proc.pid) - cpu0) / rounds
        mem = smaps_rollup(proc.pid)
        series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
        conn.close()
        return {"vms": fleet.n, "rounds": rounds,
                "median_ms": median(times) * 1e3, "p99_ms": pct(times, 99) * 1e3,
                "min_ms": min(times) * 1e3, "cpu_ms": cpu * 1e3,
                "slowest_vm_ms": median(slowest) * 1e3, "bytes": len(body), "series": series, **mem}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=str(SRC / "build"))
    ap.add_argument("--sizes", default="1,10,50")
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--json")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    base = Path(tempfile.mkdtemp(prefix="qpe-bench-", dir="/tmp"))
    fleet = Fleet(args.build, base)
    results = []
    try:
        for n in sizes:
            log(f"starting {n - fleet.n} more VMs ...")
            fleet.add(n - fleet.n)
            r = measure(args.build, fleet, args.rounds, base)
            log(f"{n:3d} VMs: scrape median {r['median_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, "
                f"slowest VM {r['slowest_vm_ms']:.2f} ms, exporter CPU {r['cpu_ms']:.2f} ms; "
                f"{r['series']} series, {r['bytes']} bytes; USS {r['uss_kib']} KiB, "
                f"PSS {r['pss_kib']} KiB, RSS {r['rss_kib']} KiB")
            results.append(r)
    finally:
        fleet.stop()
        shutil.rmtree(base, ignore_errors=True)
    load = os.getloadavg()
    print("| VMs | series | body | scrape median | scrape p99 | slowest VM (median) "
          "| exporter CPU per scrape | USS | PSS | RSS |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        print(f"| {r['vms']} | {r['series']} | {r['bytes'] / 1024:.1f} KiB | "
              f"{r['median_ms']:.2f} ms | {r['p99_ms']:.2f} ms | "
              f"{r['slowest_vm_ms']:.2f} ms | {r['cpu_ms']:.2f} ms | "
              f"{r['uss_kib'] / 1024:.2f} MiB | {r['pss_kib'] / 1024:.2f} MiB | "
              f"{r['rss_kib'] / 1024:.2f} MiB |")
    print(f"\n{args.rounds} scrapes per size, {fleet.accel.upper()}, load average "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {os.cpu_count()} CPUs")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
