#!/usr/bin/env bash
# make demo (replay edition): replays the bundled sample log through the
# engine and prints the final allocation of every portfolio.
set -eu
bin=${1:-build/budgetd}
here=$(cd "$(dirname "$0")/.." && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "== budgetd replay -c configs/sample.yaml bench/data/sample.jsonl.gz"
"$bin" replay -c "$here/configs/sample.yaml" "$here/bench/data/sample.jsonl.gz" -o "$out/decisions.jsonl"
echo "== $(wc -l < "$out/decisions.jsonl") decision records; the last one per portfolio:"
"$here/scripts/table.sh" < "$out/decisions.jsonl"
