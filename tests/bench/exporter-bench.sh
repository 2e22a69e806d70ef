#!/usr/bin/env bash
# qemu-perf-exporter's cost in one command: build (in build-bench/ unless
# BUILD is set) and run tests/bench/exporter-bench.py, which starts 50
# small VMs behind helpers and scrapes a fresh exporter for 1, 10 and 50
# of them.  Not part of the test suite.  Extra arguments go to the script
# (--sizes 1,10,50 --rounds 50 --json FILE).
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${BUILD:-build-bench}
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" >/dev/null
fi
ninja -C "$build" helper/qemu-perf-helper contrib/qemu-perf-exporter/qemu-perf-exporter >/dev/null
exec /usr/bin/python3 tests/bench/exporter-bench.py --build "$build" "$@"
