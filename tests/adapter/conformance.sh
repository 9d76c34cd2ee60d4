#!/usr/bin/env bash
# Runs the adapter conformance suite (docs/ADAPTERS.md) against any adapter:
#
#   tests/adapter/conformance.sh "CMD" [criterion options...]
#
# CMD is a shell command line that starts the adapter under test and keeps
# it running; the suite replaces {config} (a budgetd config naming the
# Redis server and prefix), {url}, {prefix}, {exec} (the command the
# adapter must run as `{exec} PORTFOLIO CHANNEL AMOUNT CYCLE`) and {name}
# (its name in the acknowledgement key PFX:{P}:ack:NAME). Example, the
# reference adapter:
#
#   tests/adapter/conformance.sh 'build/budgetd adapter -c {config} --exec {exec} --name {name} --poll 1'
#
# Without CMD the suite runs on the reference adapter (as `make test` does).
# BUDGETD_CONFORMANCE_WAIT=S bounds each wait (default 15 s); run from the
# repository root after `make`.
set -eu
build=${BUILD:-build}
prog="$build/tests/adapter/test_conformance"
[ -x "$prog" ] || { echo "conformance.sh: $prog is not built (run make)" >&2; exit 2; }
if [ $# -gt 0 ]; then
  export BUDGETD_ADAPTER_CMD="$1"
  shift
fi
export BUDGETD_BIN=${BUDGETD_BIN:-$build/budgetd}
exec "$prog" --jobs 1 "$@"
