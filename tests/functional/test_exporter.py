"""qemu-perf-exporter scraped by a real Prometheus, in front of real helpers.

The story of one host: VM "vm-a" (vCPU 0 spins in a boot sector) runs
behind its helper; the exporter globs DIR/helpers/*.sock and enables
task_clock on what it finds; Prometheus scrapes the exporter every second.
Then a second VM appears, a helper freezes, a QEMU freezes. The references
are independent of the exporter: the kernel's own accounting of the QEMU
threads (/proc/PID/task/TID/stat), promtool, and Prometheus's view of the
scrape (/api/v1/targets).

Environment (beside conftest.py's): QPH_EXPORTER (default
BUILD/contrib/qemu-perf-exporter/qemu-perf-exporter), QPH_PROMETHEUS,
QPH_PROMTOOL (default on PATH).
"""

import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

import conftest
import qmp
from conftest import BUILD_DIR, SELFTEST, kill_proc

EXPORTER = Path(os.environ.get("QPH_EXPORTER")
                or BUILD_DIR / "contrib" / "qemu-perf-exporter" / "qemu-perf-exporter")
PROMETHEUS = os.environ.get("QPH_PROMETHEUS") or shutil.which("prometheus")
PROMTOOL = os.environ.get("QPH_PROMTOOL") or shutil.which("promtool")
CLK_TCK = os.sysconf("SC_CLK_TCK")
OPENMETRICS = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
# Per-VM timeout of the exporter; Prometheus gives each scrape 1 s.
VM_TIMEOUT = 0.5

pytestmark = pytest.mark.skipif(SELFTEST, reason="needs the helper and the exporter")


def require_tools():
    conftest.require_qemu()
    conftest.require_helper_binary()
    if not (EXPORTER.is_file() and os.access(EXPORTER, os.X_OK)):
        pytest.skip(f"exporter binary {EXPORTER} not built")
    if not PROMETHEUS or not PROMTOOL:
        pytest.skip("prometheus/promtool not installed (scripts/install-deps.sh)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what, fn, timeout=20.0, interval=0.2):
    """Poll fn() until it returns a true value; fail after timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = fn()
        except (OSError, ValueError, KeyError, IndexError) as e:
            last = e
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def thread_cpu_seconds(pid, tid):
    fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def vcpu0_tid(helper_sock):
    """vCPU 0's thread id, as the helper labels it (its CPU time then
    comes from the kernel)."""
    def enabled():
        with qmp.QMPClient(helper_sock) as c:
            c.negotiate()
            info = c.command("query-perf-events",
                             {"names": ["task_clock"], "per-thread": True})
        return info if info[0]["enabled"] else None

    # The exporter enables task_clock (--enable) once it has met the VM.
    info = wait_until("task_clock enabled by the exporter", enabled)
    for t in info[0]["threads"]:
        if t["kind"] == "vcpu" and t.get("cpu-index") == 0:
            return t["thread-id"]
    raise AssertionError(f"no vCPU 0 thread in {info}")


def parse_samples(text):
    """{(name, frozenset(labels)): value} of an exposition's sample lines."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$', line)
        assert m, f"unparsable sample line {line!r}"
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def select(samples, name, **labels):
    want = set(labels.items())
    return {k: v for k, v in samples.items() if k[0] == name and want <= set(k[1])}


class Machine:
    """A VM and its helper, with the helper's socket under the exporter's glob."""

    def __init__(self, base, name, uuid, helpers_dir):
        self.dir = base / name
        self.dir.mkdir()
        self.name = name
        self.vm = conftest.VM(self.dir, spin=True,
                              extra_args=["-name", name, "-uuid", uuid])
        self.helper = conftest.Helper(self.dir, self.vm.proxied_path,
                                      listen=str(helpers_dir / f"{name}.sock"))

    def start(self):
        self.vm.start()
        self.helper.start()
        return self

    def stop(self):
        for p in (self.helper.proc, self.vm.proc):
            if p is not None and p.poll() is None:
                os.kill(p.pid, signal.SIGCONT)
        kill_proc(self.helper.proc)
        self.vm.kill()


class Fleet:
    def __init__(self, base):
        self.base = base
        self.helpers = base / "helpers"
        self.helpers.mkdir()
        self.machines = {}
        self.exporter = None
        self.prometheus = None
        self.url = None
        self.prom_url = None

    def add_vm(self, name, uuid):
        m = Machine(self.base, name, uuid, self.helpers).start()
        self.machines[name] = m
        return m

    def start_exporter(self, extra=(), log_name="exporter.log", env=None):
        log = self.base / log_name
        args = [str(EXPORTER), "--listen", "127.0.0.1:0",
                "--socket", str(self.helpers / "*.sock"),
                "--enable", "task_clock", "--timeout", str(VM_TIMEOUT), *extra]
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, env=env,
                                stdout=open(log, "ab"), stderr=subprocess.STDOUT)
        m = wait_until("the exporter to listen",
                       lambda: proc.poll() is None and
                       re.search(r"listening on (https?://127\.0\.0\.1:\d+/)metrics",
                                 log.read_text()), timeout=10)
        return proc, m.group(1) + "metrics"

    def start_prometheus(self, target):
        port = free_port()
        cfg = self.base / "prometheus.yml"
        cfg.write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            "scrape_configs:\n  - job_name: qemu-perf\n    static_configs:\n"
            f"      - targets: ['{target}']\n")
        self.prometheus = subprocess.Popen(
            [PROMETHEUS, f"--config.file={cfg}",
             f"--storage.tsdb.path={self.base / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdin=subprocess.DEVNULL, stdout=open(self.base / "prometheus.log", "ab"),
            stderr=subprocess.STDOUT)
        self.prom_url = f"http://127.0.0.1:{port}"
        wait_until("Prometheus to be ready",
                   lambda: self.prometheus.poll() is None and
                   urllib.request.urlopen(self.prom_url + "/-/ready", timeout=2).status == 200,
                   timeout=30)

    def scrape(self, accept=None):
        req = urllib.request.Request(self.url, headers={"Accept": accept} if accept else {})
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.headers["Content-Type"], r.read().decode()

    def query(self, promql):
        q = urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(f"{self.prom_url}/api/v1/query?{q}", timeout=5) as r:
            body = json.load(r)
        assert body["status"] == "success", body
        return body["data"]["result"]

    def value(self, promql):
        """The single value of an instant query, or None if it has no result."""
        res = self.query(promql)
        assert len(res) <= 1, res
        return float(res[0]["value"][1]) if res else None

    def target(self):
        with urllib.request.urlopen(self.prom_url + "/api/v1/targets", timeout=5) as r:
            return json.load(r)["data"]["activeTargets"][0]

    def stop(self):
        for p in (self.prometheus, self.exporter):
            kill_proc(p, signal.SIGTERM)
        for m in self.machines.values():
            m.stop()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    require_tools()
    base, own = conftest.short_dir(tmp_path_factory.mktemp("exporter", numbered=True))
    f = Fleet(base)
    try:
        f.add_vm("vm-a", "aaaaaaaa-0000-4000-8000-000000000001")
        f.exporter, f.url = f.start_exporter()
        f.start_prometheus(urllib.parse.urlsplit(f.url).netloc)
        yield f
    finally:
        f.stop()
        if own:
            shutil.rmtree(base, ignore_errors=True)


def test_exposition_both_formats(fleet):
    """Both formats are served by Accept; promtool finds no problem in the
    0.0.4 text; the series carry domain/uuid/kind/vcpu and no thread id."""
    wait_until("vm-a's vCPU 0 task_clock",
               lambda: select(parse_samples(fleet.scrape()[1]),
                              "qemu_perf_task_clock_seconds_total", vcpu="0"))
    ctype, om = fleet.scrape(OPENMETRICS)
    assert ctype.startswith("application/openmetrics-text; version=1.0.0")
    assert om.endswith("# EOF\n")
    assert "# UNIT qemu_perf_task_clock_seconds seconds\n" in om
    assert "# TYPE qemu_perf_task_clock_seconds counter\n" in om
    ctype, text = fleet.scrape()
    assert ctype.startswith("text/plain; version=0.0.4")
    assert "# TYPE qemu_perf_task_clock_seconds_total counter\n" in text
    assert "# EOF" not in text

    check = subprocess.run([PROMTOOL, "check", "metrics"], input=text,
                           capture_output=True, text=True, timeout=30)
    assert check.returncode == 0 and check.stdout == "" and check.stderr == "", \
        f"promtool: rc={check.returncode}\n{check.stdout}{check.stderr}\n{text}"

    samples = parse_samples(text)
    series = select(samples, "qemu_perf_task_clock_seconds_total", domain="vm-a")
    uuid = ("uuid", "aaaaaaaa-0000-4000-8000-000000000001")
    kinds = set()
    for name, labels in series:
        keys = {k for k, _ in labels}
        assert uuid in labels
        assert not keys & {"tid", "thread_id", "thread", "pid"}, labels
        kinds.add(dict(labels)["kind"])
    assert {"vcpu", "main-loop", "other"} <= kinds, series
    assert select(samples, "qemu_perf_up", domain="vm-a") \
        and all(v == 1 for v in select(samples, "qemu_perf_up", domain="vm-a").values())


def test_vm_total_against_kernel(fleet):
    """Summed over kind, the exported task_clock grows as the kernel's CPU
    time of the whole QEMU process does (utime + stime of every thread)."""
    pid = fleet.machines["vm-a"].vm.pid

    def proc_cpu():
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / CLK_TCK

    def exported():
        s = select(parse_samples(fleet.scrape()[1]),
                   "qemu_perf_task_clock_seconds_total", domain="vm-a")
        return sum(s.values())

    e0, p0 = exported(), proc_cpu()
    time.sleep(3)
    e1, p1 = exported(), proc_cpu()
    assert p1 - p0 > 0.5, "vCPU 0 does not spin?"
    assert abs((e1 - e0) - (p1 - p0)) < 0.1 * (p1 - p0) + 0.05, \
        f"exported {e1 - e0:.3f} s, kernel {p1 - p0:.3f} s"


def test_prometheus_rate_of_spinning_vcpu(fleet):
    """Prometheus, scraping the exporter, sees vCPU 0 burn about 1 s/s,
    as the kernel accounts the vCPU thread over the same window."""
    m = fleet.machines["vm-a"]
    tid = vcpu0_tid(m.helper.listen)
    wait_until("Prometheus to store a few scrapes of vm-a",
               lambda: (fleet.value('count_over_time(qemu_perf_task_clock_seconds_total'
                                    '{domain="vm-a",vcpu="0"}[10s])') or 0) >= 4)
    cpu0, t0 = thread_cpu_seconds(m.vm.pid, tid), time.monotonic()
    time.sleep(6)
    cpu1, t1 = thread_cpu_seconds(m.vm.pid, tid), time.monotonic()
    kernel_rate = (cpu1 - cpu0) / (t1 - t0)
    rate = fleet.value('rate(qemu_perf_task_clock_seconds_total{domain="vm-a",vcpu="0"}[6s])')
    print(f"rate(task_clock{{vcpu=\"0\"}}) = {rate:.3f} s/s, kernel {kernel_rate:.3f} s/s")
    assert rate is not None
    # One spinning vCPU is 1 s/s on an idle host; on a shared one it gets
    # what the scheduler gives it, which the kernel's accounting says.
    assert abs(rate - kernel_rate) < 0.15, (rate, kernel_rate)
    assert rate < 1.1, rate
    if kernel_rate > 0.8:
        assert rate > 0.65, (rate, kernel_rate)
    t = fleet.target()
    assert t["health"] == "up" and t["lastError"] == "", t
    # Prometheus asked for OpenMetrics and got it (the exporter counts).
    assert (fleet.value('qemu_perf_exporter_scrapes_total{format="openmetrics-1.0.0"}')
            or 0) > 0


def test_second_vm_appears_without_restart(fleet):
    exporter_pid = fleet.exporter.pid
    fleet.add_vm("vm-b", "bbbbbbbb-0000-4000-8000-000000000002")
    wait_until("Prometheus to see vm-b up",
               lambda: fleet.value('qemu_perf_up{domain="vm-b"}') == 1)
    wait_until("vm-b's vCPU 0 task_clock in Prometheus",
               lambda: fleet.value('qemu_perf_task_clock_seconds_total'
                                   '{domain="vm-b",vcpu="0"}') is not None)
    assert fleet.exporter.poll() is None and fleet.exporter.pid == exporter_pid
    assert fleet.value('qemu_perf_exporter_sockets') == 2


def test_stopped_helper_is_down_alone(fleet):
    """A frozen helper: only its VM is up 0, the other keeps being scraped
    in time; after SIGCONT it is back."""
    b = fleet.machines["vm-b"]
    os.kill(b.helper.proc.pid, signal.SIGSTOP)
    try:
        text = wait_until("vm-b down in the exporter's output",
                          lambda: (lambda t: t if 'domain="vm-b"' in t and
                                   select(parse_samples(t), "qemu_perf_up",
                                          domain="vm-b").popitem()[1] == 0 else None)(
                              fleet.scrape()[1]))
        samples = parse_samples(text)
        assert list(select(samples, "qemu_perf_up", domain="vm-a").values()) == [1]
        assert select(samples, "qemu_perf_task_clock_seconds_total", domain="vm-a")
        assert not select(samples, "qemu_perf_task_clock_seconds_total", domain="vm-b")
        wait_until("Prometheus to see vm-b down",
                   lambda: fleet.value('qemu_perf_up{domain="vm-b"}') == 0)
        # Several scrapes later vm-a is still fresh and every scrape was in time.
        before = fleet.value('qemu_perf_exporter_scrapes_total{format="openmetrics-1.0.0"}')
        time.sleep(3)
        after = fleet.value('qemu_perf_exporter_scrapes_total{format="openmetrics-1.0.0"}')
        assert after - before >= 2, (before, after)
        assert fleet.value('qemu_perf_up{domain="vm-a"}') == 1
        assert fleet.value('min_over_time(up[3s])') == 1
        t = fleet.target()
        assert t["health"] == "up" and t["lastScrapeDuration"] < 1.0, t
        assert fleet.value('max_over_time(qemu_perf_scrape_duration_seconds'
                           '{domain="vm-a"}[3s])') < VM_TIMEOUT
        # A scraper that hangs up while its scrape waits for vm-b.
        host, port = urllib.parse.urlsplit(fleet.url).netloc.split(":")
        for _ in range(3):
            with socket.create_connection((host, int(port)), timeout=5) as s:
                s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(VM_TIMEOUT + 0.3)
        assert fleet.exporter.poll() is None
        assert 'qemu_perf_up{domain="vm-a"' in fleet.scrape()[1]
    finally:
        os.kill(b.helper.proc.pid, signal.SIGCONT)
    wait_until("vm-b up again", lambda: fleet.value('qemu_perf_up{domain="vm-b"}') == 1)


def test_stopped_qemu_still_scraped(fleet):
    """A frozen QEMU: its helper answers from what it holds, so the VM stays
    up and its counters are scraped; vCPU 0 burns nothing meanwhile."""
    b = fleet.machines["vm-b"]
    os.kill(b.vm.pid, signal.SIGSTOP)
    try:
        time.sleep(0.3)

        def vcpu0():
            s = parse_samples(fleet.scrape()[1])
            up = list(select(s, "qemu_perf_up", domain="vm-b").values())
            v = list(select(s, "qemu_perf_task_clock_seconds_total",
                            domain="vm-b", vcpu="0").values())
            return up, v

        up0, v0 = vcpu0()
        time.sleep(1.5)
        up1, v1 = vcpu0()
        assert up0 == [1] and up1 == [1]
        assert len(v0) == 1 and len(v1) == 1
        assert v1[0] - v0[0] < 0.05, (v0, v1)
        wait_until("Prometheus to keep vm-b up",
                   lambda: fleet.value('min_over_time(qemu_perf_up{domain="vm-b"}[2s])') == 1,
                   timeout=5)
    finally:
        os.kill(b.vm.pid, signal.SIGCONT)


def test_misbehaving_peer_is_down_alone(fleet):
    """Something on a matched socket that is not a helper (not JSON, no
    greeting, a reply nobody asked for, an unfinished line, a non-object):
    that socket is up 0, the exporter survives, vm-a is still scraped."""
    import threading
    greeting = b'{"QMP": {"version": {}, "capabilities": []}}\r\n'
    payloads = [b"hello, world\r\n", b'{"return": {}}\r\n',
                greeting + b'{"return": {}, "id": 77}\r\n',
                greeting + b'{"return": {}, "id": 1}\r\n[1, 2]\r\n',
                greeting + b'{"return": {}, "id": 1}\r\n{"return": [' + b"1, " * 5000]
    path = str(fleet.helpers / "liar.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(8)
    srv.settimeout(0.2)
    stop = threading.Event()
    served = []

    def serve():
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            with conn:
                conn.sendall(payloads[len(served) % len(payloads)])
                served.append(1)
                time.sleep(0.1)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        wait_until("every kind of nonsense served",
                   lambda: (fleet.scrape()[1] and len(served) >= len(payloads) + 1), timeout=30)
        samples = parse_samples(fleet.scrape()[1])
        assert list(select(samples, "qemu_perf_up", socket=path).values()) == [0]
        assert list(select(samples, "qemu_perf_up", domain="vm-a").values()) == [1]
        assert fleet.exporter.poll() is None
    finally:
        stop.set()
        t.join(5)
        srv.close()
        os.unlink(path)


def test_vm_that_goes_is_dropped(fleet):
    """The VM exits, its helper follows and removes its socket; the
    exporter drops the VM at the next scrape."""
    b = fleet.machines.pop("vm-b")
    try:
        b.vm.kill()
        b.helper.proc.wait(10)
        assert not Path(b.helper.listen).exists()
    finally:
        b.stop()
    _, text = fleet.scrape()
    samples = parse_samples(text)
    assert not [k for k in samples if ("domain", "vm-b") in k[1]], text
    assert samples[("qemu_perf_exporter_sockets", frozenset())] == 1
    assert list(select(samples, "qemu_perf_up", domain="vm-a").values()) == [1]


def test_unprivileged_in_the_socket_group(fleet):
    """The exporter as `nobody` scrapes a helper whose socket is 0660 in a
    group nobody is in, once it has that group, and only then: the group is
    all the access it needs (as the systemd unit runs it)."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to change users")
    import grp
    import pwd
    import tempfile
    nobody = pwd.getpwnam("nobody")
    group = grp.getgrnam("kvm" if "kvm" in [g.gr_name for g in grp.getgrall()] else "daemon")
    sock_dir = Path(tempfile.mkdtemp(prefix="qpe-", dir="/tmp"))
    os.chmod(sock_dir, 0o755)  # as RuntimeDirectory= makes /run/qemu-perf-helper
    vm_dir = fleet.base / "vm-c"
    vm_dir.mkdir()
    vm = conftest.VM(vm_dir, extra_args=["-name", "vm-c"]).start()
    helper = conftest.Helper(vm_dir, vm.proxied_path, listen=str(sock_dir / "vm-c.sock"))
    helper.args += ["--socket-mode", "0660", "--socket-group", group.gr_name]
    procs = []
    try:
        helper.start()
        for groups, expect_up in ((["--clear-groups"], 0), ([f"--groups={group.gr_gid}"], 1)):
            log = fleet.base / f"exporter-nobody-{expect_up}.log"
            proc = subprocess.Popen(
                ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", *groups,
                 "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs",
                 str(EXPORTER), "--listen", "127.0.0.1:0", "--socket", str(sock_dir / "*.sock"),
                 "--timeout", str(VM_TIMEOUT)],
                stdin=subprocess.DEVNULL, stdout=open(log, "wb"), stderr=subprocess.STDOUT)
            procs.append(proc)
            m = wait_until("the unprivileged exporter to listen",
                           lambda: proc.poll() is None and
                           re.search(r"listening on (http://127\.0\.0\.1:\d+/)metrics",
                                     log.read_text()), timeout=10)
            with urllib.request.urlopen(m.group(1) + "metrics", timeout=10) as r:
                samples = parse_samples(r.read().decode())
            up = select(samples, "qemu_perf_up", socket=str(sock_dir / "vm-c.sock"))
            assert list(up.values()) == [expect_up], (groups, up, log.read_text())
            kill_proc(proc, signal.SIGTERM)
    finally:
        for p in procs:
            kill_proc(p)
        helper.kill()
        vm.kill()
        shutil.rmtree(sock_dir, ignore_errors=True)


def test_tls_and_basic_auth(fleet, tmp_path):
    """A second exporter with TLS and basic auth: no password, a wrong one
    and plain HTTP are refused; the right one gets the metrics."""
    if not shutil.which("openssl"):
        pytest.skip("openssl not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    hashed = subprocess.run(["openssl", "passwd", "-6", "s3cret"], check=True,
                            capture_output=True, text=True, timeout=10).stdout.strip()
    users = tmp_path / "users"
    users.write_text(f"# prometheus\nprom:{hashed}\n")
    # In an ASan build, LeakSanitizer's tracer crashes at exit once
    # glib-networking (a dlopen()ed GIO module with thread-local storage)
    # has done a TLS handshake (GCC 12's libsanitizer); the exporter without
    # TLS is leak-checked in test_exporter_exits_cleanly.
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = ":".join(filter(None, [env.get("ASAN_OPTIONS"), "detect_leaks=0"]))
    proc, url = fleet.start_exporter(["--tls-cert", str(cert), "--tls-key", str(key),
                                      "--basic-auth-file", str(users)],
                                     log_name="exporter-tls.log", env=env)
    try:
        assert url.startswith("https://")
        ctx = ssl.create_default_context(cafile=str(cert))

        def get(user=None, password=None, u=url, context=ctx):
            req = urllib.request.Request(u)
            if user:
                import base64
                tok = base64.b64encode(f"{user}:{password}".encode()).decode()
                req.add_header("Authorization", f"Basic {tok}")
            try:
                with urllib.request.urlopen(req, timeout=10, context=context) as r:
                    return r.status, r.read().decode()
            except urllib.error.HTTPError as e:
                return e.code, ""

        assert get()[0] == 401
        assert get("prom", "wrong")[0] == 401
        assert get("nobody", "s3cret")[0] == 401
        status, body = get("prom", "s3cret")
        assert status == 200 and "qemu_perf_up{" in body
        assert get("prom", "s3cret")[0] == 200  # the remembered password
        with pytest.raises((urllib.error.URLError, ConnectionError, ssl.SSLError)):
            urllib.request.urlopen(url.replace("https://", "http://"), timeout=5).read()
    finally:
        kill_proc(proc, signal.SIGTERM)
    assert proc.returncode == 0, (fleet.base / "exporter-tls.log").read_text()


def test_exporter_exits_cleanly(fleet):
    """SIGTERM ends the exporter with status 0 (under ASan: no leak, after
    all the connections, timeouts and reconnections above)."""
    kill_proc(fleet.exporter, signal.SIGTERM, timeout=10)
    log = (fleet.base / "exporter.log").read_text()
    assert fleet.exporter.returncode == 0, log
    assert "Sanitizer" not in log and "CRITICAL" not in log, log
