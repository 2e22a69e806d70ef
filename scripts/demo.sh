#!/usr/bin/env bash
# See qemu-perf-helper work: install what it needs, build it, start a small
# VM behind it (KVM when /dev/kvm is usable, else TCG), and talk QMP to it.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
[ -d build ] || meson setup build >/dev/null
ninja -C build >/dev/null

dir=$(mktemp -d /tmp/qph-demo.XXXXXX)
trap 'kill $helper 2>/dev/null || true; rm -rf "$dir"' EXIT

accel=tcg
if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then accel=kvm; fi
# A boot sector that spins forever keeps vCPU 0 busy, so counters move.
/usr/bin/python3 - "$dir/spin.img" <<'PY'
import sys
sector = bytearray(512); sector[0:2] = b"\xeb\xfe"; sector[510:512] = b"\x55\xaa"
open(sys.argv[1], "wb").write(sector)
PY

echo "== starting: qemu-perf-helper --listen $dir/qmp.sock -- qemu-system-x86_64 -accel $accel ..."
./build/helper/qemu-perf-helper --listen "$dir/qmp.sock" -- \
  qemu-system-x86_64 -accel "$accel" -M pc -m 64 -smp 2 -display none \
  -nodefaults -drive "file=$dir/spin.img,format=raw,if=floppy" &
helper=$!
for _ in $(seq 100); do [ -S "$dir/qmp.sock" ] && break; sleep 0.1; done

/usr/bin/python3 - "$dir/qmp.sock" <<'PY'
import json, socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile("rb")
def line():
    return f.readline().decode().rstrip("\r\n")
def ask(cmd, **args):
    msg = {"execute": cmd}
    if args: msg["arguments"] = args
    text = json.dumps(msg)
    print("->", text); s.sendall(text.encode())
    while True:
        reply = line()
        if '"event"' not in reply:
            print("<-", reply[:400] + (" ..." if len(reply) > 400 else ""))
            return json.loads(reply)
print("<-", line())
ask("qmp_capabilities")
ask("query-status")
ask("set-perf-events", events=[{"name": "task_clock", "enabled": True},
                               {"name": "context_switches", "enabled": True}])
time.sleep(2)
ask("query-perf-events", names=["task_clock", "context_switches"])
ask("set-perf-events", events=[{"name": "cpu_cycles", "enabled": True}])
ask("quit")
PY
wait $helper && echo "== helper exited with QEMU's status: 0"
