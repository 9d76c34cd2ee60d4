#!/usr/bin/env bash
# Redis memory per portfolio as a function of the decision stream's length
# (docs/OPERATIONS.md "Sizing"). For each MAXLEN: a fresh redis-server (temp
# dir, free port, no persistence), INFO memory used_memory before, `budgetd
# replay --redis` of one gen_events log (P portfolios x C channels x N
# one-hour cycles, 2 events per channel and cycle, dedup_window 1d) with
# redis.stream_maxlen MAXLEN, used_memory after; then one portfolio's keys
# by MEMORY USAGE, its stream's XLEN and its checkpoint's STRLEN.
# Prints `name: value unit` lines.
#   bench/redis_memory.sh [BUILD] [P] [C] [N] [MAXLEN...]
# defaults: build 100 5 300 10 100 1000. Run from the repository root.
set -eu
build=${1:-build}; P=${2:-100}; C=${3:-5}; N=${4:-300}
shift $(( $# < 4 ? $# : 4 ))
maxlens=${*:-10 100 1000}
tmp=$(mktemp -d); pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
"$build/bench/gen_events" -p "$P" -c "$C" -n "$N" -s 7 > "$tmp/log.jsonl"
events=$(grep -c '"channel"' "$tmp/log.jsonl")
echo "log: $P portfolios x $C channels x $N cycles, $events events"
rcli() { redis-cli -s "$tmp/r.sock" "$@"; }
used() { rcli INFO memory | sed -n 's/^used_memory:\([0-9]*\).*/\1/p'; }
for M in $maxlens; do
  rm -f "$tmp/r.sock"
  redis-server --port 0 --unixsocket "$tmp/r.sock" --save '' --appendonly no --dir "$tmp" \
      --daemonize no > "$tmp/redis.log" 2>&1 &
  pid=$!
  for _ in $(seq 50); do rcli PING >/dev/null 2>&1 && break; sleep 0.1; done
  printf 'v: 1\ncycle: 1h\ndefaults:\n  budget: 1000\nredis:\n  stream_maxlen: %s\n' "$M" > "$tmp/cfg.yaml"
  before=$(used)
  "$build/budgetd" replay -c "$tmp/cfg.yaml" "$tmp/log.jsonl" -o /dev/null --redis "unix://$tmp/r.sock" 2>/dev/null
  after=$(used)
  k="budgetd:{p0}"
  echo "maxlen_$M.used_memory_per_portfolio: $(( (after - before) / P )) bytes"
  echo "maxlen_$M.stream_entries: $(rcli XLEN "$k:decisions") entries"
  echo "maxlen_$M.stream_bytes: $(rcli MEMORY USAGE "$k:decisions" SAMPLES 0) bytes"
  echo "maxlen_$M.state_bytes: $(rcli MEMORY USAGE "$k:state") bytes (STRLEN $(rcli STRLEN "$k:state"))"
  echo "maxlen_$M.alloc_bytes: $(rcli MEMORY USAGE "$k:alloc") bytes"
  echo "maxlen_$M.fence_bytes: $(rcli MEMORY USAGE "$k:fence") bytes"
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
done
