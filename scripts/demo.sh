#!/usr/bin/env bash
# make demo: the live path on one machine. Starts the embedded Kafka
# (`budgetd broker`, librdkafka's mock cluster) and a redis-server on a unix
# socket in a temp dir, produces the bundled sample log with kcat (keyed by
# portfolio), runs `budgetd run` until the log is consumed, then prints the
# allocations and kill states read back from Redis. Cleans up on exit.
set -eu
bin=$(cd "$(dirname "${1:-build/budgetd}")" && pwd)/$(basename "${1:-build/budgetd}")
here=$(cd "$(dirname "$0")/.." && pwd)
log="$here/bench/data/sample.jsonl.gz"
tmp=$(mktemp -d /tmp/budgetd-demo.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

echo "== starting redis-server (unix socket in $tmp)"
redis-server --port 0 --unixsocket "$tmp/redis.sock" --dir "$tmp" --save "" --appendonly no \
  --daemonize no > "$tmp/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do redis-cli -s "$tmp/redis.sock" ping >/dev/null 2>&1 && break; sleep 0.1; done

echo "== starting the embedded broker: budgetd broker --partitions 4"
"$bin" broker --partitions 4 > "$tmp/broker.out" 2> "$tmp/broker.err" &
pids+=($!)
for _ in $(seq 50); do grep -q '^bootstrap=' "$tmp/broker.out" 2>/dev/null && break; sleep 0.1; done
boot=$(sed -n 's/^bootstrap=//p' "$tmp/broker.out" | head -n 1)
[ -n "$boot" ] || { echo "broker did not start" >&2; cat "$tmp/broker.err" >&2; exit 1; }
echo "   bootstrap=$boot"

# The sample guardrails, pointed at this broker and this redis.
sed -e "s#^redis:#kafka:\n  brokers: $boot\n  topic: channel-events\n  group: budgetd-demo\nredis:\n  url: unix://$tmp/redis.sock#" \
  "$here/configs/sample.yaml" > "$tmp/demo.yaml"
"$bin" check -c "$tmp/demo.yaml"

n=$(zcat "$log" | wc -l)
echo "== producing $n lines of $(basename "$log") with kcat (key = portfolio)"
zcat "$log" | awk '{ k = "?"; if (match($0, /"portfolio":"[^"]*"/)) k = substr($0, RSTART + 13, RLENGTH - 14); print k "\t" $0 }' \
  | kcat -P -b "$boot" -t channel-events -K $'\t' -X linger.ms=5 2> "$tmp/kcat.err"

echo "== budgetd run -c demo.yaml --event-time --idle-exit 3   (log: $tmp/run.log)"
"$bin" run -c "$tmp/demo.yaml" --event-time --idle-exit 3 2> "$tmp/run.log" || { cat "$tmp/run.log" >&2; exit 1; }
tail -n 1 "$tmp/run.log"

echo "== dead-letter topic (first 3, with reason headers)"
kcat -C -b "$boot" -t channel-events-dlq -c 3 -e -f '   %h  %s\n' 2>/dev/null || true

echo "== allocations in Redis (budgetd status)"
"$bin" status -c "$tmp/demo.yaml"
echo
echo "== the same keys with redis-cli: HGETALL budgetd:{acme-us}:alloc"
redis-cli -s "$tmp/redis.sock" HGETALL 'budgetd:{acme-us}:alloc' | paste - - | sed 's/^/   /'
