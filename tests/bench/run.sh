#!/usr/bin/env bash
# The benchmark in one command: build (in build-bench/ unless BUILD is set)
# and run tests/bench/bench.py against a real QEMU.  Not part of the test
# suite.  Extra arguments go to bench.py:
#   --quick          fewer rounds, about a minute
#   --update-docs    rewrite the generated part of docs/performance.md and
#                    docs/perf-latency.svg
#   --json FILE      keep the raw samples
# Needs root (or perf_event_paranoid <= 1 and access to /dev/kvm), socat and
# qemu-system-x86_64.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${BUILD:-build-bench}
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" >/dev/null
fi
ninja -C "$build" helper/qemu-perf-helper tests/bench/qph-bench \
  contrib/qemu-perf-stat/qemu-perf-stat tests/bench/qph-dep-cost-glib \
  tests/bench/qph-dep-cost-gio >/dev/null
exec /usr/bin/python3 tests/bench/bench.py --build "$build" "$@"
