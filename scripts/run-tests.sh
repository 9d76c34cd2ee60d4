#!/usr/bin/env bash
# Runs every Criterion test program under BUILD/tests (unit first, then
# integration) and prints one closing line "N passed, N failed" over all of
# them. Exit status is non-zero when any program fails.
set -u
build=${1:-build}
export BUDGETD_BIN=${BUDGETD_BIN:-$build/budgetd}
pass=0; fail=0; bad=()
for t in $(ls "$build"/tests/unit/test_* "$build"/tests/integration/test_* 2>/dev/null | grep -v '\.d$'); do
  [ -x "$t" ] || continue
  echo "== $t"
  out=$("$t" --jobs 2 2>&1); rc=$?
  printf '%s\n' "$out" | tail -n 40
  line=$(printf '%s\n' "$out" | grep -a 'Synthesis:' | tail -n 1)
  p=$(printf '%s' "$line" | sed -n 's/.*Passing: *\([0-9]*\).*/\1/p')
  f=$(printf '%s' "$line" | sed -n 's/.*Failing: *\([0-9]*\).*/\1/p')
  c=$(printf '%s' "$line" | sed -n 's/.*Crashing: *\([0-9]*\).*/\1/p')
  pass=$((pass + ${p:-0})); fail=$((fail + ${f:-0} + ${c:-0}))
  if [ $rc -ne 0 ] || [ -z "$line" ]; then
    # a program that failed outside its tests (crash, sanitizer report at
    # exit) counts as one failure so the closing line never says 0 failed
    bad+=("$t"); [ $(( ${f:-0} + ${c:-0} )) -eq 0 ] && fail=$((fail + 1))
  fi
done
[ ${#bad[@]} -gt 0 ] && echo "failed programs: ${bad[*]}"
echo "tests: $pass passed, $fail failed"
[ ${#bad[@]} -eq 0 ] && [ $fail -eq 0 ]
