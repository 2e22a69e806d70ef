"""Order and out-of-band as with QEMU (issue 11, items 8 and 9).

- exec-oob of the helper's own commands, which their schema entries do not
  mark allow-oob, is refused with QEMU's words for a command without
  allow-oob (QEMU's own answer for query-status is the reference);
- descriptors sent with a message the helper answers itself (or rejects)
  stay for a later getfd from the same recvmsg, as QEMU keeps them;
- events do not overtake replies in a client's queue.
"""

import json
import os

import pytest

import qmp


def test_exec_oob_of_own_command(env):
    d = env.direct(negotiate="oob")
    c = env.client(negotiate="oob")
    ref = d.cmd_raw("query-status", id="o1", oob=True)
    assert b"does not support OOB" in ref, ref
    for name in ("query-perf-events", "set-perf-events"):
        got = c.cmd_raw(name, {"events": []} if name == "set-perf-events" else None,
                        id="o1", oob=True)
        assert got == ref.replace(b"query-status", name.encode()), got
    # Without an id, as QEMU.
    ref = d.cmd_raw("query-status", oob=True)
    assert c.cmd_raw("query-perf-events", oob=True) == ref.replace(b"query-status",
                                                                 b"query-perf-events")
    # The schema says the same: no allow-oob on the helper's commands.
    schema = c.command("query-qmp-schema")
    own = [e for e in schema if e.get("meta-type") == "command"
           and e["name"] in ("query-perf-events", "set-perf-events")]
    assert len(own) == 2 and not any(e.get("allow-oob") for e in own), own
    # In-band still works.
    assert "return" in c.cmd("query-perf-events")


# -- descriptors ---------------------------------------------------------------

def pipe_ino(fd):
    return f"pipe:[{os.fstat(fd).st_ino}]"


# (first message, its reply kind): the helper answers or rejects these, QEMU
# too; either way the descriptor sent with them waits for the getfd after.
FIRST = [
    (b'{"execute": 1, "id": "a"}', "rejected"),
    (b'nonsense', "framing error"),
    (b'{"execute": "qmp_capabilities", "id": "a"}', "negotiation"),
    (b'{"execute": "query-perf-events", "id": "a"}', "own (helper) / query-status (QEMU)"),
]


@pytest.mark.parametrize("first,what", FIRST, ids=[w for _, w in FIRST])
def test_fd_waits_for_getfd_in_same_recvmsg(env, first, what):
    d, c = env.pair()
    getfd = b'{"execute": "getfd", "arguments": {"fdname": "kept"}, "id": "g"}'
    out = {}
    for name, cl, msg in (("direct", d, first.replace(b"query-perf-events", b"query-status")),
                          ("helper", c, first)):
        r, w = os.pipe()
        try:
            cl.send_with_fds(msg + getfd, [r])
            lines = cl.read_until_id("g", timeout=10)
            out[name] = json.loads(lines[-1])
            if out[name] == {"return": {}, "id": "g"}:
                assert pipe_ino(r) in qmp.proc_fds(env.vm.pid).values()
                assert cl.cmd("closefd", {"fdname": "kept"}) == {"return": {}}
        finally:
            os.close(r)
            os.close(w)
    assert out["direct"] == {"return": {}, "id": "g"}, out
    assert out["helper"] == out["direct"]


def test_fd_kept_across_recvmsg(env):
    """QEMU keeps a descriptor sent with query-status for a getfd sent
    later on its own; so does the helper with its own command."""
    d, c = env.pair()
    for cl, first in ((d, "query-status"), (c, "query-perf-events")):
        r, w = os.pipe()
        try:
            cl.send_with_fds(qmp.request(first, id="a"), [r])
            assert "return" in json.loads(cl.read_reply_raw())
            assert cl.cmd("getfd", {"fdname": "later"}, id="g") == {"return": {}, "id": "g"}
            assert cl.cmd("closefd", {"fdname": "later"}) == {"return": {}}
        finally:
            os.close(r)
            os.close(w)


# -- events after replies -----------------------------------------------------

def job_transcript(cl, tmp, job, before=b""):
    """blockdev-create answers once its job runs; the job's later status
    events follow the answer.  The lines up to "concluded", the answer to
    whatever @before sent left out."""
    cl.send_raw(before + qmp.request("blockdev-create", {
        "job-id": job, "options": {"driver": "file", "filename": str(tmp / f"{job}.img"),
                                   "size": 0}}, id=job))
    out, answers = [], 0
    while "concluded" not in out or answers < (2 if before else 1):
        obj = json.loads(cl.read_line(timeout=10))
        if qmp.is_event(obj):
            out.append(obj["data"]["status"])
        else:
            answers += 1
            if obj.get("id") == job:
                out.append("answer")
    assert cl.cmd("job-dismiss", {"id": job}) == {"return": {}}
    return out


def test_event_does_not_overtake_reply(env, tmp_path):
    """A client whose earlier query-perf-events (per-thread, thread labels
    stale after cont) still waits for QEMU sees blockdev-create's answer
    and its job's events in QEMU's order."""
    d, c = env.pair()
    ref = job_transcript(d, tmp_path, "jd")
    assert ref.index("answer") < ref.index("concluded"), ref
    for i in range(5):
        assert c.cmd("cont", id="c").get("id") == "c"
        got = job_transcript(c, tmp_path, f"j{i}",
                             before=qmp.request("query-perf-events", {"per-thread": True},
                                                id=f"q{i}"))
        assert got == ref, (i, got)
