#!/bin/sh
# run-fuzz.sh FUZZER SECONDS SCRATCH-CORPUS SEED-CORPUS
# Run one libFuzzer target for a fixed time; any crash fails the test and
# leaves its input as crash-* in the build directory (copy it into
# tests/fuzz/regressions/TARGET/ and fix the bug).  Prints one TAP line.
set -u
fuzzer=$1 seconds=$2 scratch=$3 seeds=$4
mkdir -p "$scratch"
log=$(mktemp)
cd "$(dirname "$fuzzer")" || exit 1
echo "1..1"
if ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
   UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
   "$fuzzer" -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 \
       -timeout=20 -print_final_stats=1 "$scratch" "$seeds" >"$log" 2>&1; then
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
  echo "ok 1 - $(basename "$fuzzer"): ${runs:-?} executions in ${seconds}s, no finding"
  rm -f "$log"
  exit 0
fi
tail -60 "$log" | sed 's/^/# /'
echo "not ok 1 - $(basename "$fuzzer"): a finding (see crash-* in $(pwd))"
rm -f "$log"
exit 1
