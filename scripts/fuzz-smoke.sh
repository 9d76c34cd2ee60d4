#!/usr/bin/env bash
# Runs every fuzz target of BUILD/fuzz (make fuzz) for a few seconds from its
# seed corpus in tests/fuzz/corpus/NAME/. New inputs go to a temporary
# directory, never into the repository; a crash input is kept as
# BUILD/fuzz/crash-NAME-* for the report. Exit status non-zero when any
# target found something. FUZZ_SECONDS (default 8) is the time per target.
set -u
build=${1:-build-fuzz}
secs=${FUZZ_SECONDS:-8}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/scripts/lsan.supp}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
fail=0
for t in "$build"/fuzz/fuzz_*; do
  [ -x "$t" ] || continue
  name=$(basename "$t")
  seeds=tests/fuzz/corpus/${name#fuzz_}
  tmp=$(mktemp -d)
  echo "== $name ($secs s, seeds $seeds)"
  if ! "$t" "$tmp" "$seeds" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$build/fuzz/crash-$name-" -print_final_stats=1 >"$tmp.log" 2>&1; then
    tail -n 60 "$tmp.log"
    fail=1
  else
    grep -E '^stat::number_of_executed_units|^Done' "$tmp.log" | tr '\n' ' '; echo
  fi
  rm -rf "$tmp" "$tmp.log"
done
[ $fail -eq 0 ] && echo "fuzz smoke: no findings" || echo "fuzz smoke: FINDINGS (see above)"
exit $fail
