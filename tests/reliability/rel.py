"""Fixtures for the reliability and access tests: the functional suite's
VM and helper fixtures (tests/functional/conftest.py, imported under another
name), plus what these tests need on top.  This is deliberately not a
conftest.py: the functional tests import their conftest by name, and a
second module called conftest would shadow it when both folders run in one
pytest session.  Test files import the fixtures they use from here.

- helpers started with extra options or under a wrapper
  (QPH_HELPER_WRAPPER="valgrind --leak-check=full --error-exitcode=99"),
- /proc readings of a process: RSS, descriptors, capabilities.

Environment: as tests/functional (QPH_BUILD_DIR, QPH_HELPER, QPH_QEMU), and
QPH_HELPER_WRAPPER to run every helper of these tests under a wrapper.
"""

import importlib.util
import os
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

FUNCTIONAL = Path(__file__).resolve().parents[1] / "functional"
sys.path.insert(0, str(FUNCTIONAL))

_spec = importlib.util.spec_from_file_location("functional_conftest", FUNCTIONAL / "conftest.py")
fc = importlib.util.module_from_spec(_spec)
sys.modules["functional_conftest"] = fc
_spec.loader.exec_module(fc)

import qmp  # noqa: E402  (tests/functional/qmp.py)

def _sanitized():
    try:
        return b"__asan_init" in Path(fc.HELPER).read_bytes()
    except OSError:
        return False


# An ASan build keeps freed memory in quarantine and maps shadow memory:
# its RSS says nothing about the helper's own bounds, and valgrind cannot
# run it.  Those checks are skipped there (the plain build runs them).
SANITIZED = _sanitized()

# Re-exported fixtures of the functional suite.
short_tmp = fc.short_tmp

WRAPPER = shlex.split(os.environ.get("QPH_HELPER_WRAPPER", ""))


class Helper(fc.Helper):
    """The functional suite's helper, with extra options and an optional
    wrapper (valgrind) in front of the binary."""

    def __init__(self, dir, qemu_sock, listen=None, extra=(), wrapper=None):
        super().__init__(dir, qemu_sock, listen)
        self.args = list(WRAPPER if wrapper is None else wrapper) + self.args + list(extra)

    def start(self, timeout=None, **popen):
        if timeout is None:
            timeout = 60.0 if self.args[0] != str(fc.HELPER) else 10.0
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, **popen)
        try:
            qmp.wait_for_listening(self.listen, timeout, self.proc)
        except Exception as e:
            self.kill()
            raise RuntimeError(f"helper did not come up: {e}\n{self.log()}") from e
        return self

    @property
    def pid(self):
        return self.proc.pid


def require():
    if fc.SELFTEST:
        pytest.skip("needs the helper process; not meaningful in QPH_SELFTEST_DIRECT mode")
    fc.require_qemu()
    fc.require_helper_binary()


class Rig:
    """A VM and a helper in front of its proxied monitor."""

    def __init__(self, dir, extra=(), wrapper=None, spin=False):
        require()
        self.dir = Path(dir)
        self.vm = fc.VM(dir, spin=spin).start()
        self.helper = None
        self.clients = []
        try:
            self.helper = Helper(dir, self.vm.proxied_path, extra=extra, wrapper=wrapper).start()
        except Exception:
            self.vm.kill()
            raise

    def client(self, negotiate=True, timeout=qmp.DEFAULT_TIMEOUT):
        c = qmp.QMPClient(self.helper.listen, timeout=timeout)
        self.clients.append(c)
        if negotiate:
            c.negotiate()
        return c

    def direct(self):
        c = qmp.QMPClient(self.vm.direct_path)
        self.clients.append(c)
        c.negotiate()
        return c

    def close(self):
        for c in self.clients:
            c.close()
        self.clients = []
        if self.helper:
            self.helper.kill()
        self.vm.kill()


@pytest.fixture
def rig(short_tmp):
    r = Rig(short_tmp)
    yield r
    r.close()


@pytest.fixture(scope="module")
def shared_rig(tmp_path_factory):
    d, own = fc.short_dir(tmp_path_factory.mktemp("rel", numbered=True))
    r = Rig(d)
    yield r
    r.close()


# -- /proc ----------------------------------------------------------------------

def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def rss_kib(pid):
    return int(proc_status(pid)["VmRSS"].split()[0])


fds = qmp.proc_fds  # {fd: target} of a process


def perf_fds(pid):
    return [t for t in fds(pid).values() if "perf_event" in t]


# -- another client, during an attack -------------------------------------------

class Prober:
    """Another client of @rig timing query-status round trips in a thread
    while an attack runs.  A hang shows as an error (after @timeout s);
    latencies are only reported (check() returns the worst), never
    asserted: they belong in the benchmark."""

    def __init__(self, rig, timeout=30):
        self.c = rig.client()
        self.timeout = timeout
        self.latencies = []
        self.errors = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        i = 0
        while not self._stop.is_set():
            i += 1
            t0 = time.monotonic()
            try:
                r = self.c.cmd("query-status", id=f"probe-{i}", timeout=self.timeout)
                if r.get("id") != f"probe-{i}" or "return" not in r:
                    self.errors.append(r)
            except Exception as e:  # noqa: BLE001
                self.errors.append(repr(e))
                return
            self.latencies.append(time.monotonic() - t0)
            time.sleep(0.02)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join(60)

    def check(self, what):
        assert not self.errors, f"other client failed during {what}: {self.errors[:3]}"
        assert self.latencies, f"other client got no answer during {what}"
        worst = max(self.latencies)
        print(f"\n{what}: other client {len(self.latencies)} round trips, "
              f"worst {worst * 1000:.1f} ms")
        return worst
