"""An upstream that is not a QMP monitor, or will not negotiate (issue 11,
item 7): in attach mode the helper exits with status 1 and an error that
says what the socket answered, within QPH_UPSTREAM_GREETING_S (10 s),
instead of waiting for ever without listening.

The not-QMP monitors are real: QEMU's human monitor, and a QMP monitor
that another client holds (QEMU greets one client at a time).  A server
that refuses negotiation or greets with something else cannot be had from
QEMU; a few lines of Python play it.
"""

import json
import os
import socket
import subprocess
import threading
import time

import pytest

from rel import fc, qmp, require, short_tmp  # noqa: F401 (fixture)


def run_helper(dir, qemu_sock, timeout=30):
    """The helper attached to @qemu_sock: (exit status, output, seconds)."""
    listen = str(dir / "helper.sock")
    t0 = time.monotonic()
    p = subprocess.run([str(fc.HELPER), "--qemu", qemu_sock, "--listen", listen],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    took = time.monotonic() - t0
    assert not os.path.exists(listen)
    return p.returncode, (p.stdout + p.stderr).decode(errors="replace"), took


def test_human_monitor(short_tmp):
    require()
    hmp = str(short_tmp / "hmp.sock")
    vm = fc.VM(short_tmp, extra_args=["-monitor", f"unix:{hmp},server=on,wait=off"]).start()
    try:
        qmp.wait_for_listening(hmp, 10, vm.proc)
        rc, out, took = run_helper(short_tmp, hmp)
    finally:
        vm.kill()
    print(f"\nHMP upstream: exit {rc} after {took:.2f} s: {out.strip()}")
    assert rc == 1
    assert "QEMU's monitor is not QMP: it sent 'QEMU " in out, out


def test_monitor_held_by_another_client(short_tmp):
    require()
    vm = fc.VM(short_tmp).start()
    try:
        holder = qmp.QMPClient(vm.proxied_path)  # QEMU greets only this one
        rc, out, took = run_helper(short_tmp, vm.proxied_path)
        holder.close()
    finally:
        vm.kill()
    print(f"\nheld monitor: exit {rc} after {took:.2f} s: {out.strip()}")
    assert rc == 1
    assert "did not greet and negotiate as QMP within 10 s" in out, out
    assert "it sent nothing" in out


class FakeMonitor:
    """A unix socket server that answers the first connection with
    @greeting and every request with @reply."""

    def __init__(self, path, greeting, reply=None):
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(1)
        self.greeting, self.reply = greeting, reply
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        conn, _ = self.srv.accept()
        with conn:
            conn.sendall(self.greeting)
            conn.settimeout(30)
            try:
                while conn.recv(4096):
                    if self.reply:
                        conn.sendall(self.reply)
            except OSError:
                pass

    def close(self):
        self.srv.close()


GREETING = (b'{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, '
            b'"package": ""}, "capabilities": []}}\r\n')


@pytest.mark.parametrize("greeting,reply,expect", [
    (GREETING, b'{"id": 1, "error": {"class": "GenericError", "desc": "no"}}\r\n',
     "QEMU refused the helper's capabilities negotiation: "
     '{"id": 1, "error": {"class": "GenericError", "desc": "no"}}'),
    (b'{"hello": "world"}\r\n', None,
     "its first message is not a QMP greeting: {\"hello\": \"world\"}"),
    (b"SSH-2.0-OpenSSH_9.2\r\n", None, "QEMU's monitor is not QMP: it sent 'SSH-2.0-OpenSSH_9.2"),
], ids=["refuses-negotiation", "json-not-qmp", "not-json"])
def test_fake_upstream(short_tmp, greeting, reply, expect):
    fc.require_helper_binary()
    path = str(short_tmp / "fake.sock")
    fake = FakeMonitor(path, greeting, reply)
    try:
        rc, out, took = run_helper(short_tmp, path)
    finally:
        fake.close()
    print(f"\n{expect[:30]}: exit {rc} after {took:.2f} s")
    assert rc == 1
    assert expect in out, out


def test_fd_mode_passes_a_human_monitor_through(short_tmp):
    """In the libvirt wrapper's fd mode the helper holds the VM's only
    monitor: one that is not QMP is logged and passed through as it is,
    to one client at a time, instead of being lost."""
    require()
    hmp = str(short_tmp / "hmp.sock")
    vm = fc.VM(short_tmp, extra_args=["-monitor", f"unix:{hmp},server=on,wait=off"]).start()
    listen_path = str(short_tmp / "libvirt.sock")
    lst = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    proc = None
    try:
        qmp.wait_for_listening(hmp, 10, vm.proc)
        lst.bind(listen_path)
        lst.listen(8)
        up.connect(hmp)
        log = short_tmp / "helper.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen([str(fc.HELPER), "--qemu-fd", str(up.fileno()),
                                     "--listen-fd", str(lst.fileno())],
                                    pass_fds=[up.fileno(), lst.fileno()],
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        up.close()
        lst.close()
        for _ in range(2):  # one client after the other
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.settimeout(10)
            c.connect(listen_path)
            buf = b""
            c.sendall(b"info status\r\n")
            while b"VM status" not in buf:
                chunk = c.recv(4096)
                assert chunk, buf
                buf += chunk
            c.close()
            assert proc.poll() is None
        text = log.read_text()
        print(f"\nfd mode, HMP upstream: {text.strip()}")
        assert "QEMU's monitor is not QMP" in text and "passing QEMU's monitor through" in text
    finally:
        if proc:
            fc.kill_proc(proc)
        vm.kill()


class StrayErrorMonitor(FakeMonitor):
    """Greets and negotiates like QEMU, answers x-stray with an error that
    carries no id (as QEMU does for input it rejects before reading an
    id: "JSON token count limit exceeded"), and everything else in order
    with its id if it had one, as QEMU does."""

    def __init__(self, path):
        super().__init__(path, GREETING)

    def _run(self):
        import json
        conn, _ = self.srv.accept()
        buf = b""
        with conn:
            conn.sendall(self.greeting)
            conn.settimeout(30)
            dec = json.JSONDecoder()
            negotiated = False
            try:
                while True:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                    text = buf.decode()
                    while text.strip():
                        text = text.lstrip()
                        try:
                            req, end = dec.raw_decode(text)
                        except ValueError:
                            break
                        text = text[end:]
                        name = req.get("execute")
                        if name == "qmp_capabilities" and negotiated:
                            out = {"error": {
                                "class": "CommandNotFound",
                                "desc": "Capabilities negotiation is already complete, "
                                        "command ignored"}}
                        elif name == "x-stray":
                            out = {"error": {"class": "GenericError",
                                             "desc": "JSON token count limit exceeded"}}
                        else:
                            ret = [] if name.startswith("query-") else {}
                            out = {"return": ret}
                        if "id" in req and name != "x-stray":
                            out["id"] = req["id"]
                        negotiated = negotiated or name == "qmp_capabilities"
                        conn.sendall(json.dumps(out).encode() + b"\r\n")
                    buf = text.encode()
            except OSError:
                pass


def test_answer_without_id_does_not_strand_requests(short_tmp):
    """An answer without an id goes to the oldest in-band request in
    flight, as every in-band answer does (QEMU answers them in order): the
    client gets it as QEMU wrote it, without an id, and its next requests,
    and other clients', are answered.  Before issue 13 the helper matched
    answers by its own id: it took the id-less answer as the oldest
    request's but wrote the client's id into it, which QEMU had not."""
    fc.require_helper_binary()
    path = str(short_tmp / "fake.sock")
    fake = StrayErrorMonitor(path)
    h = fc.Helper(short_tmp, path).start()
    try:
        c = qmp.QMPClient(h.listen, timeout=10)
        c.negotiate()
        c.send_raw(qmp.request("x-stray", id="a") + qmp.request("x-stray", id="b")
                   + qmp.request("x-ok", id="c"))
        got = [c.read_reply_raw() for _ in range(3)]
        stray = (b'{"error": {"class": "GenericError", '
                 b'"desc": "JSON token count limit exceeded"}}\r\n')
        assert got == [stray, stray, b'{"return": {}, "id": "c"}\r\n'], got
        other = qmp.QMPClient(h.listen, timeout=10)
        other.negotiate()
        assert other.cmd("x-ok", id=1) == {"return": {}, "id": 1}
    finally:
        h.kill()
        fake.close()
