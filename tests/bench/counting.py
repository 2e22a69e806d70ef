#!/usr/bin/python3
# counting.py: what following every thread costs, at 64 and 128 vCPUs
#
# Starts a real QEMU (KVM if usable, else TCG; 64 MiB, idle) with N vCPUs
# and the helper in front of it, then measures, for six software events:
#   enable    set-perf-events on (then off again, not timed), per round
#   query     query-perf-events, total only
#   per-thread query-perf-events {per-thread: true}
# as the median round trip and the helper's own CPU time per request
# (schedstat of its threads, robust to a busy machine).  QPH_HELPER picks
# the helper binary, so one run per tree gives "before" and "after":
#
#   python3 tests/bench/counting.py --helper OLD/qemu-perf-helper
#   python3 tests/bench/counting.py --helper build/helper/qemu-perf-helper
#
# Not part of the test suite; the figures are in docs/performance.md.
#
# SPDX-License-Identifier: GPL-2.0-or-later
import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "functional"))
import qmp  # noqa: E402

EVENTS = ["task_clock", "cpu_clock", "context_switches", "cpu_migrations",
          "page_faults", "page_faults_min"]


def kvm_usable():
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR))
        return True
    except OSError:
        return False


def cpu_ns(pid):
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            total += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
        except FileNotFoundError:
            pass
    return total


def timed(c, hpid, name, args, rounds, after=None):
    rtt = []
    cpu0 = cpu_ns(hpid)
    spent = 0
    for _ in range(rounds):
        t0 = time.perf_counter()
        r = c.cmd(name, args, timeout=60)
        rtt.append(time.perf_counter() - t0)
        assert "return" in r, r
        if after:
            s0 = cpu_ns(hpid)
            after()
            spent += cpu_ns(hpid) - s0
    return statistics.median(rtt), (cpu_ns(hpid) - cpu0 - spent) / rounds


def run(helper_bin, smp, rounds, tmp):
    d = Path(tempfile.mkdtemp(prefix=f"qph-count{smp}-", dir=tmp))
    mon, listen = str(d / "qemu.sock"), str(d / "helper.sock")
    accel = ["-accel", "kvm"] if kvm_usable() else ["-accel", "tcg,thread=multi"]
    qemu = subprocess.Popen(
        ["qemu-system-x86_64", "-display", "none", "-nodefaults", "-M", "pc", "-m", "64",
         "-smp", str(smp), "-S", "-name", "guest=b,debug-threads=on", "-qmp",
         f"unix:{mon},server=on,wait=off"] + accel,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    helper = None
    try:
        qmp.wait_for_listening(mon, 30, qemu)
        helper = subprocess.Popen([helper_bin, "--qemu", mon, "--listen", listen],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        qmp.wait_for_listening(listen, 30, helper)
        c = qmp.QMPClient(listen)
        c.negotiate()
        threads = len(os.listdir(f"/proc/{qemu.pid}/task"))
        on = {"events": [{"name": e, "enabled": True} for e in EVENTS]}
        off = {"events": [{"name": e, "enabled": False} for e in EVENTS]}
        enable = timed(c, helper.pid, "set-perf-events", on, rounds,
                       after=lambda: c.cmd("set-perf-events", off, timeout=60))
        c.cmd("set-perf-events", on, timeout=60)
        c.cmd("query-perf-events", {"per-thread": True})  # labels, once
        time.sleep(0.2)
        plain = timed(c, helper.pid, "query-perf-events", None, rounds * 5)
        per = timed(c, helper.pid, "query-perf-events", {"per-thread": True}, rounds * 5)
        c.close()
        return {"smp": smp, "threads": threads, "enable": enable, "query": plain,
                "per_thread": per}
    finally:
        for p in (helper, qemu):
            if p and p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(d, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--helper", default=os.environ.get("QPH_HELPER", "build/helper/qemu-perf-helper"))
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--json")
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    rows = [run(a.helper, smp, a.rounds, tempfile.gettempdir()) for smp in (64, 128)]
    print(f"{len(EVENTS)} software events, helper {a.helper}")
    print("| vCPUs | threads | enable: rtt / helper CPU | query: rtt / CPU "
          "| per-thread query: rtt / CPU |")
    print("|---|---|---|---|---|")
    for r in rows:
        cells = [f"{r[k][0] * 1e3:.2f} / {r[k][1] / 1e6:.2f} ms"
                 for k in ("enable", "query", "per_thread")]
        print(f"| {r['smp']} | {r['threads']} | " + " | ".join(cells) + " |")
    if a.json:
        Path(a.json).write_text(json.dumps(rows))


if __name__ == "__main__":
    main()
