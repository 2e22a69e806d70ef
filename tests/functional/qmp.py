"""A small raw QMP client for the functional tests.

Deliberately not a real QMP library: the tests need to see and send the exact
bytes on the wire (byte-at-a-time writes, malformed JSON, file descriptors in
the same sendmsg as a command) and compare what comes back byte for byte.
Every line received is kept raw (``bytes`` including the trailing CRLF);
events are collected apart from replies so a test can read "the next reply"
without caring about a STOP that arrived in between.
"""

import json
import os
import select
import socket
import time

DEFAULT_TIMEOUT = 10.0


class QMPTimeout(Exception):
    """No complete line arrived within the timeout."""


class QMPClosed(Exception):
    """The peer closed the connection."""


def encode(obj):
    """Serialize a request the way a typical client would (compact JSON)."""
    return json.dumps(obj, separators=(",", ":")).encode()


def request(name, args=None, id=None, oob=False, has_id=None):
    """Build the bytes of one request. ``has_id`` defaults to ``id is not None``."""
    req = {"exec-oob" if oob else "execute": name}
    if args is not None:
        req["arguments"] = args
    if has_id is None:
        has_id = id is not None
    if has_id:
        req["id"] = id
    return encode(req)


def parse(raw):
    """Parse one received line; None if it is not valid JSON (QEMU can
    write e.g. ``"id": inf``)."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None


def is_event(obj):
    return isinstance(obj, dict) and "event" in obj and "timestamp" in obj


def strip_timestamp(obj):
    """An event without its timestamp, for comparing two monitors' events."""
    return {k: v for k, v in obj.items() if k != "timestamp"}


class QMPClient:
    """One connection to a QMP server (QEMU's monitor or the helper).

    ``lines`` is the full transcript of received lines (raw bytes), ``events``
    the parsed events not yet consumed, ``event_lines`` their raw bytes.
    """

    def __init__(self, path, timeout=DEFAULT_TIMEOUT, read_greeting=True):
        self.path = path
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self._buf = b""
        self._eof = False
        self.lines = []
        self.events = []
        self.event_lines = []
        self.greeting_raw = None
        self.last_event_raw = None
        self.greeting = None
        if read_greeting:
            self.greeting_raw = self.read_line()
            self.greeting = parse(self.greeting_raw)

    # -- connection ---------------------------------------------------------

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- sending ------------------------------------------------------------

    def send_raw(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def send_bytewise(self, data, delay=0.0):
        """Send one byte per write (and per segment on a unix socket)."""
        if isinstance(data, str):
            data = data.encode()
        for i in range(len(data)):
            self.sock.sendall(data[i:i + 1])
            if delay:
                time.sleep(delay)

    def send_with_fds(self, data, fds):
        """Send ``data`` and ``fds`` (SCM_RIGHTS) in one sendmsg."""
        if isinstance(data, str):
            data = data.encode()
        sent = socket.send_fds(self.sock, [data], list(fds))
        if sent != len(data):
            # The fds went with the first chunk; send the rest plainly.
            self.sock.sendall(data[sent:])

    def shutdown_write(self):
        self.sock.shutdown(socket.SHUT_WR)

    # -- receiving ----------------------------------------------------------

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise QMPTimeout(
                f"no complete line from {self.path} in time; buffered {self._buf[:200]!r}")
        r, _, _ = select.select([self.sock], [], [], remaining)
        if not r:
            raise QMPTimeout(
                f"no complete line from {self.path} in time; buffered {self._buf[:200]!r}")
        chunk = self.sock.recv(65536)
        if not chunk:
            self._eof = True
            raise QMPClosed(f"{self.path} closed the connection; buffered {self._buf[:200]!r}")
        self._buf += chunk

    def read_line(self, timeout=None):
        """The next line, raw, CRLF included. Raises QMPTimeout / QMPClosed."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while b"\n" not in self._buf:
            if self._eof:
                raise QMPClosed(f"{self.path} closed the connection; buffered {self._buf[:200]!r}")
            self._fill(deadline)
        line, self._buf = self._buf.split(b"\n", 1)
        line += b"\n"
        self.lines.append(line)
        return line

    def read_message(self, timeout=None):
        """The next line and its parsed JSON object."""
        raw = self.read_line(timeout)
        return raw, parse(raw)

    def read_reply_raw(self, timeout=None):
        """The next non-event line, raw. Events met on the way are collected."""
        while True:
            raw, obj = self.read_message(timeout)
            if is_event(obj):
                self.events.append(obj)
                self.event_lines.append(raw)
                continue
            return raw

    def read_reply(self, timeout=None):
        return json.loads(self.read_reply_raw(timeout))

    def read_replies_raw(self, n, timeout=None):
        return [self.read_reply_raw(timeout) for _ in range(n)]

    def read_until_id(self, id, timeout=None):
        """All non-event lines up to and including the reply carrying ``id``."""
        out = []
        while True:
            raw = self.read_reply_raw(timeout)
            out.append(raw)
            obj = parse(raw)
            if isinstance(obj, dict) and "id" in obj and obj["id"] == id:
                return out

    def wait_event(self, name, timeout=None):
        """Wait for event ``name`` (consuming it); replies met meanwhile fail."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            for i, ev in enumerate(self.events):
                if ev["event"] == name:
                    self.last_event_raw = self.event_lines[i]
                    del self.events[i]
                    del self.event_lines[i]
                    return ev
            raw, obj = self.read_message(max(0.0, deadline - time.monotonic()))
            if not is_event(obj):
                raise AssertionError(f"unexpected non-event while waiting for {name}: {raw!r}")
            self.events.append(obj)
            self.event_lines.append(raw)

    def pending(self, timeout=0.2):
        """Bytes that arrive within ``timeout`` (without consuming lines)."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                self._fill(deadline)
        except QMPTimeout:
            pass
        except QMPClosed:
            pass
        return self._buf

    def drain_lines(self, timeout=0.2):
        """All complete lines arriving within ``timeout`` of quiet."""
        out = []
        while True:
            try:
                out.append(self.read_line(timeout))
            except (QMPTimeout, QMPClosed):
                return out

    def wait_closed(self, timeout=None):
        """Read until EOF; returns the lines received on the way."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        out = []
        while True:
            try:
                out.append(self.read_line(max(0.0, deadline - time.monotonic())))
            except QMPClosed:
                return out
            except ConnectionResetError:
                return out

    # -- commands -------------------------------------------------------------

    def cmd_raw(self, name, args=None, id=None, oob=False, has_id=None, timeout=None):
        self.send_raw(request(name, args, id, oob, has_id))
        return self.read_reply_raw(timeout)

    def cmd(self, name, args=None, id=None, oob=False, has_id=None, timeout=None):
        """Run one command, return its parsed reply (return or error object)."""
        return json.loads(self.cmd_raw(name, args, id, oob, has_id, timeout))

    def command(self, name, args=None, **kw):
        """Run one command and return its "return" value; fail on error."""
        reply = self.cmd(name, args, **kw)
        if "return" not in reply:
            raise AssertionError(f"{name} failed: {reply}")
        return reply["return"]

    def negotiate(self, oob=False):
        args = {"enable": ["oob"]} if oob else None
        reply = self.cmd("qmp_capabilities", args)
        if reply != {"return": {}}:
            raise AssertionError(f"qmp_capabilities failed: {reply}")
        return reply


def wait_for_path(path, timeout=10.0, proc=None):
    """Poll until ``path`` exists; fail early if ``proc`` exits meanwhile."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process {proc.args[0]} exited with {proc.returncode} "
                               f"before {path} appeared")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear within {timeout}s")
        time.sleep(0.01)


# -- comparing two servers ------------------------------------------------------

_sentinel_counter = [0]


def sentinel():
    """A fresh (request bytes, id) for a command that always succeeds."""
    _sentinel_counter[0] += 1
    sid = f"sentinel-{_sentinel_counter[0]}"
    return b'{"execute": "query-name", "id": "' + sid.encode() + b'"}', sid


def exchange(clients, data, bytewise=False, timeout=None):
    """Send ``data`` then a sentinel command to each client, and return, per
    client, the non-event lines received up to and including the sentinel's
    reply. All clients get the bytes before any is read, so the servers work
    in parallel."""
    req, sid = sentinel()
    for c in clients:
        if bytewise:
            c.send_bytewise(data + req)
        else:
            c.send_raw(data + req)
    return [c.read_until_id(sid, timeout) for c in clients]


def same_bytes(direct_lines, proxied_lines):
    """Assertion helper: a readable diff of two transcripts."""
    if direct_lines == proxied_lines:
        return True
    out = ["transcripts differ (direct vs through the helper):"]
    for i in range(max(len(direct_lines), len(proxied_lines))):
        d = direct_lines[i] if i < len(direct_lines) else None
        p = proxied_lines[i] if i < len(proxied_lines) else None
        mark = "  " if d == p else "!!"
        out.append(f"{mark} [{i}] direct: {d!r}")
        if d != p:
            out.append(f"{mark} [{i}] helper: {p!r}")
    raise AssertionError("\n".join(out))


def is_listening(path):
    """Whether a unix socket bound at ``path`` is listening (/proc/net/unix).

    A server's socket file appears at bind(), a moment before listen(); a
    connect() in between is refused."""
    try:
        with open("/proc/net/unix") as f:
            next(f)
            for line in f:
                fields = line.split()
                if len(fields) >= 8 and fields[7] == path and int(fields[3], 16) & 0x10000:
                    return True
    except OSError:
        return True  # cannot tell; let connect() decide
    return False


def wait_for_listening(path, timeout=10.0, proc=None):
    """Poll until ``path`` exists and is a listening socket."""
    wait_for_path(path, timeout, proc)
    deadline = time.monotonic() + timeout
    while not is_listening(path):
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process {proc.args[0]} exited with {proc.returncode} "
                               f"before {path} was listening")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} exists but is not listening after {timeout}s")
        time.sleep(0.005)


def proc_fds(pid):
    """{fd: readlink target} of process ``pid`` (entries that vanish are skipped)."""
    out = {}
    d = f"/proc/{pid}/fd"
    for name in os.listdir(d):
        try:
            out[int(name)] = os.readlink(f"{d}/{name}")
        except OSError:
            pass
    return out
