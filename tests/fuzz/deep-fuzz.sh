#!/bin/sh
# deep-fuzz.sh BUILD-FUZZ-DIR [TOTAL-EXECUTIONS] [WORK-DIR] [SLICE-SECONDS]
#
# Fuzzing depth, not CI: runs every libFuzzer target in turn, SLICE-SECONDS
# (default 600) at a time, until they have executed TOTAL-EXECUTIONS inputs
# together (default 100000000).  Round-robin slices give every target depth
# even when the run is stopped early.  The corpus each target grows is kept
# in WORK-DIR/corpus/TARGET (default WORK-DIR:
# ~/.cache/qemu-perf-helper/deep-fuzz, outside any build directory), so
# a second run starts where the first stopped; the seed corpus in
# tests/fuzz/corpus is read, never written.  A finding is kept as
# WORK-DIR/findings/TARGET/crash-* (copy it into tests/fuzz/regressions/ and
# fix the bug) and the target goes on in its next slice.  WORK-DIR/summary
# has one line per slice, the last line the totals.
#
# The machine is usually shared: run it as `nice -n 19 tests/fuzz/deep-fuzz.sh
# build-fuzz`.  Build first: CC=clang meson setup -Dfuzzing=true build-fuzz &&
# ninja -C build-fuzz.
set -u
build=${1:?usage: deep-fuzz.sh BUILD-FUZZ-DIR [TOTAL] [WORK-DIR] [SLICE]}
total=${2:-100000000}
work=${3:-${XDG_CACHE_HOME:-$HOME/.cache}/qemu-perf-helper/deep-fuzz}
slice=${4:-600}
here=$(cd "$(dirname "$0")" && pwd)
targets="framing splice json args"

for t in $targets; do
  if [ ! -x "$build/tests/fuzz/fuzz-$t" ]; then
    echo "deep-fuzz: $build/tests/fuzz/fuzz-$t is missing (build with -Dfuzzing=true)" >&2
    exit 2
  fi
  mkdir -p "$work/corpus/$t" "$work/findings/$t"
done
work=$(cd "$work" && pwd)
build=$(cd "$build" && pwd)
summary=$work/summary
done_runs=0
findings=0
start=$(date +%s)
echo "# deep-fuzz started $(date -u +%FT%TZ): target $total executions" >>"$summary"

while [ "$done_runs" -lt "$total" ]; do
  for t in $targets; do
    log=$work/last-$t.log
    # The working directory is the findings directory: libFuzzer writes
    # crash-*, leak-*, timeout-* and oom-* there.
    (cd "$work/findings/$t" &&
     ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
     UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
     "$build/tests/fuzz/fuzz-$t" -max_total_time="$slice" -max_len=65536 \
         -rss_limit_mb=2048 -timeout=20 -print_final_stats=1 \
         "$work/corpus/$t" "$here/corpus/$t") >"$log" 2>&1
    rc=$?
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" |
           grep -o '[0-9]*$' | tail -1)
    runs=${runs:-0}
    done_runs=$((done_runs + runs))
    verdict="no finding"
    if [ "$rc" -ne 0 ]; then
      findings=$((findings + 1))
      verdict="FINDING (exit $rc), see $work/findings/$t and $log"
      cp "$log" "$work/findings/$t/log-$(date +%s)"
    fi
    echo "$t: $runs executions in ${slice}s, corpus $(ls "$work/corpus/$t" | wc -l) inputs, $verdict" >>"$summary"
    [ "$done_runs" -ge "$total" ] && break
  done
done
echo "# total: $done_runs executions in $(( $(date +%s) - start ))s, $findings findings" >>"$summary"
tail -1 "$summary"
[ "$findings" -eq 0 ]
