#!/usr/bin/env bash
# Where the helper's extra microseconds go: build (in build-bench/ unless
# BUILD is set) and run tests/bench/bench-profile.py (perf stat, perf record and
# callgrind on the helper and on socat while qph-bench drives them).  Not
# part of the test suite.  Extra arguments go to profile.py:
#   --update-docs    rewrite the profile section of docs/performance.md
#   --json FILE      keep the raw counts
# Needs root (or perf_event_paranoid <= 1), perf, valgrind, socat and
# qemu-system-x86_64.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${BUILD:-build-bench}
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" >/dev/null
fi
ninja -C "$build" helper/qemu-perf-helper tests/bench/qph-bench >/dev/null
exec /usr/bin/python3 tests/bench/bench-profile.py --build "$build" "$@"
