"""The simulated resctrl, a real QEMU and the helper, for test_resctrl.py.

There is no RDT hardware here: tests/resctrl-sim/qph-resctrl-sim mounts a
FUSE filesystem that behaves like /sys/fs/resctrl for monitoring, and the
tests set the values it returns (and inject faults) over its control socket.
The QEMU threads it is given are real: the sim checks /proc like the kernel
checks its task list, so a thread that exits leaves every group.

Everything printed goes to pytest's captured output, so a failing test shows
the QMP transcript and the sim commands that led to it.
"""

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import conftest
import qmp

SIM = Path(os.environ.get("QPH_RESCTRL_SIM") or
           conftest.BUILD_DIR / "tests" / "resctrl-sim" / "qph-resctrl-sim")

# As the helper names its own groups (helper/resctrl-priv.h).
GROUP_PREFIX = "qemu-perf-helper-"

EVENT_FILES = {"cmt": "llc_occupancy", "mbmt": "mbm_total_bytes", "mbml": "mbm_local_bytes",
               "core_energy": "core_energy", "activity": "activity"}

# How the simulator plays each kernel the existing tests run against: one
# without counter assignment, and Linux 6.18+ in mbm_event mode (AMD ABMC).
SIM_MODES = {"old-kernel": (), "mbm_event": ("--mbm-assign-mode", "mbm_event")}


def fuse_problem():
    """Why the simulator cannot run here, or None."""
    try:
        fd = os.open("/dev/fuse", os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        return f"/dev/fuse is not usable ({e.strerror}): the resctrl simulator needs FUSE"
    os.close(fd)
    if not shutil.which("fusermount3"):
        return "fusermount3 not found (Debian: apt-get install fuse3): the resctrl simulator needs it"
    if not (SIM.is_file() and os.access(SIM, os.X_OK)):
        return (f"resctrl simulator {SIM} not built (it needs libfuse3-dev at configure "
                f"time; or set QPH_RESCTRL_SIM / QPH_BUILD_DIR)")
    return None


class Sim:
    """One qph-resctrl-sim mount and its control socket."""

    def __init__(self, dir, domains=3, rmids=8, args=()):
        self.dir = Path(dir)
        self.mount = self.dir / "resctrl"
        self.control = str(self.dir / "sim.sock")
        self.log_path = self.dir / "sim.log"
        self.args = [str(SIM), str(self.mount), "--control", self.control,
                     "--domains", str(domains), "--rmids", str(rmids), "--exit-with-parent",
                     *args]
        self.mbm_event = "mbm_event" in args
        self.proc = None

    def start(self, timeout=10.0):
        self.mount.mkdir(exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not (os.path.ismount(self.mount) and (self.mount / "info").is_dir()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"resctrl simulator did not mount {self.mount}:\n{self.log()}")
            time.sleep(0.01)
        qmp.wait_for_listening(self.control, timeout, self.proc)
        self.ok("ping")
        return self

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self):
        if self.proc is not None:
            conftest.kill_proc(self.proc, signal.SIGTERM)
        if os.path.ismount(self.mount):
            subprocess.run(["fusermount3", "-u", "-z", str(self.mount)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    # -- control socket ---------------------------------------------------

    def ctl(self, line):
        """Send one command, return the reply line (printed for the transcript)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5.0)
            s.connect(self.control)
            s.sendall(line.encode() + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(4096)
                if not chunk:
                    break
                buf += chunk
        reply = buf.decode().strip()
        print(f"sim> {line}\nsim< {reply}")
        return reply

    def ok(self, line):
        reply = self.ctl(line)
        assert reply == "ok", f"sim command {line!r} failed: {reply!r}"

    # -- the tree -----------------------------------------------------------

    def path(self, group="/"):
        return self.mount if group in ("/", "") else self.mount / group

    def mon_groups(self, ctrl="/"):
        d = self.path(ctrl) / "mon_groups"
        return sorted(os.listdir(d)) if d.is_dir() else []

    def tasks(self, group="/"):
        text = (self.path(group) / "tasks").read_text()
        return {int(t) for t in text.split()}

    def last_cmd_status(self):
        return (self.mount / "info" / "last_cmd_status").read_text().strip()

    def assignments(self, group="/"):
        """GROUP's mbm_L3_assignments as {file: {domain: "e" or "_"}}."""
        out = {}
        for line in (self.path(group) / "mbm_L3_assignments").read_text().splitlines():
            event, _, states = line.partition(":")
            out[event] = {int(d): s for d, s in (x.split("=") for x in states.split(";"))}
        return out

    def available(self):
        """info/L3_MON/available_mbm_cntrs as {domain: free counters}."""
        text = (self.mount / "info" / "L3_MON" / "available_mbm_cntrs").read_text().strip()
        return {int(d): int(n) for d, n in (x.split("=") for x in text.split(";"))}

    def write(self, group, name, text):
        """One write() of TEXT to GROUP/NAME, as echo does."""
        print(f"sim$ echo {text!r} > {group}/{name}")
        fd = os.open(self.path(group) / name, os.O_WRONLY)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)

    def mkdir(self, group):
        print(f"sim$ mkdir {group}")
        os.mkdir(self.path(group))

    def move(self, group, tids):
        """Write TIDs into GROUP/tasks one per write(), as the kernel wants."""
        fd = os.open(self.path(group) / "tasks", os.O_WRONLY)
        try:
            for t in sorted(tids):
                try:
                    os.write(fd, f"{t}\n".encode())
                except ProcessLookupError:
                    pass  # exited meanwhile
        finally:
            os.close(fd)
        print(f"sim$ echo <{len(tids)} tids> > {group}/tasks")


def threads(pid):
    """The threads of a process, now."""
    return {int(t) for t in os.listdir(f"/proc/{pid}/task")}


class TranscriptClient(qmp.QMPClient):
    """A QMP client that prints every command and reply it sees."""

    def cmd(self, name, args=None, **kw):
        print(f"-> {qmp.request(name, args).decode()}")
        reply = super().cmd(name, args, **kw)
        print(f"<- {reply}")
        return reply


class Rig:
    """The sim, one QEMU (two vCPUs) and a helper whose --resctrl-root is the
    sim's mount (or ``root`` if given)."""

    def __init__(self, dir, domains=3, rmids=8, root=None, sim=True, sim_args=()):
        self.dir = Path(dir)
        self.sim = Sim(self.dir, domains, rmids, sim_args) if sim else None
        self.root = str(root) if root is not None else (str(self.sim.mount) if sim else None)
        self.vm = None
        self.helper = None
        self.clients = []
        self.n_helpers = 0

    @property
    def pid(self):
        return self.vm.pid

    @property
    def group(self):
        """The helper's own group for this VM, relative to the mount."""
        return f"mon_groups/{GROUP_PREFIX}{self.vm.pid}"

    def start(self, before_helper=None):
        if self.sim:
            self.sim.start()
        self.vm = conftest.VM(self.dir, smp=2).start()
        if before_helper:
            before_helper(self)
        self.start_helper()
        return self

    def start_helper(self):
        """A (new) helper in attach mode on the VM's proxied monitor."""
        self.n_helpers += 1
        listen = str(self.dir / f"h{self.n_helpers}.sock")
        h = conftest.Helper(self.dir, self.vm.proxied_path, listen=listen)
        h.log_path = self.dir / f"helper{self.n_helpers}.log"
        h.args += ["--resctrl-root", self.root]
        self.helper = h.start()
        return h

    def client(self):
        c = TranscriptClient(self.helper.listen)
        self.clients.append(c)
        c.negotiate()
        return c

    def direct(self):
        c = TranscriptClient(self.vm.direct_path)
        self.clients.append(c)
        c.negotiate()
        return c

    def stop(self):
        for c in self.clients:
            c.close()
        if self.helper:
            self.helper.kill()
        if self.vm:
            self.vm.kill()
        if self.sim:
            self.sim.stop()


def set_events(c, **events):
    """set-perf-events with name=True/False, in the order given."""
    return c.cmd("set-perf-events",
                 {"events": [{"name": n, "enabled": e} for n, e in events.items()]})


def query(c, *names, per_thread=False):
    """query-perf-events for NAMES, as {name: info}."""
    args = {"names": list(names)}
    if per_thread:
        args["per-thread"] = True
    ret = c.command("query-perf-events", args)
    assert [i["name"] for i in ret] == list(names), ret
    return {i["name"]: i for i in ret}
