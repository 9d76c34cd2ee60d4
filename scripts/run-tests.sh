#!/usr/bin/env bash
# Runs every Criterion test program (unit tests by module first, then
# integration, then the adapter conformance suite) and prints one closing
# line "N passed, N failed" over all of them. The list comes from the
# sources (tests/unit/**/test_*.c, tests/integration/test_*.c,
# tests/adapter/test_*.c), not from what lies in BUILD: a program that
# was not built counts as a failure, and a stale binary whose source is gone
# is never run. Run from the repository root. Exit status is non-zero when
# any program fails.
set -u
build=${1:-build}
export BUDGETD_BIN=${BUDGETD_BIN:-$build/budgetd}
if [ ! -d tests/unit ] || [ ! -d tests/integration ]; then
  echo "run-tests.sh: run from the repository root (no tests/unit here)" >&2
  exit 2
fi
progs=$( { find tests/unit -name 'test_*.c' | sort; find tests/integration -name 'test_*.c' | sort;
           [ -d tests/adapter ] && find tests/adapter -name 'test_*.c' | sort; } )
pass=0; fail=0; nprog=0; bad=()
for src in $progs; do
  t="$build/${src%.c}"
  nprog=$((nprog + 1))
  echo "== $t"
  if [ ! -x "$t" ]; then
    echo "not built: $t (from $src)"
    bad+=("$t"); fail=$((fail + 1))
    continue
  fi
  t0=$SECONDS
  out=$("$t" --jobs 2 2>&1); rc=$?
  printf '%s\n' "$out" | tail -n 40
  echo "-- $t: $((SECONDS - t0)) s"
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
echo "programs: $nprog"
echo "tests: $pass passed, $fail failed"
[ ${#bad[@]} -eq 0 ] && [ $fail -eq 0 ]
