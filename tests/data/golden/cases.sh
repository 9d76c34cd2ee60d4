#!/usr/bin/env bash
# Golden outputs: replays fixed logs under fixed configs and prints one line
# "<case> <sha256>" per output (decision records, the stderr summary, what-if
# files). tests/data/golden/hashes.txt holds the expected lines; they change
# only with a stated reason (a commit that says why decisions moved).
#   cases.sh BIN [THREADS]
# Run from the repository root. Regenerate: cases.sh build/budgetd > tests/data/golden/hashes.txt
set -eu
bin=$1; thr=${2:-1}
g=tests/data/golden
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
h() { sha256sum | cut -d' ' -f1; }
for cfg in configs/sample.yaml configs/example.yaml configs/mode-collaborate.yaml configs/mode-delegate.yaml; do
  "$bin" replay -c "$cfg" bench/data/sample.jsonl.gz --threads "$thr" -o "$tmp/out" 2>"$tmp/err"
  echo "sample:$(basename "$cfg" .yaml):records $(h < "$tmp/out")"
  echo "sample:$(basename "$cfg" .yaml):summary $(h < "$tmp/err")"
done
for cfg in configs/minimal.yaml $g/loglog.yaml; do
  for log in clean late; do
    "$bin" replay -c "$cfg" "$g/$log.jsonl.gz" --threads "$thr" -o "$tmp/out" 2>"$tmp/err"
    echo "$log:$(basename "$cfg" .yaml):records $(h < "$tmp/out")"
    echo "$log:$(basename "$cfg" .yaml):summary $(h < "$tmp/err")"
  done
done
# whatif: few draws (the closed loop runs configs x draws engines), the
# thread count of the replays (its output must not depend on it)
"$bin" whatif -c configs/sample.yaml -c configs/mode-delegate.yaml bench/data/sample.jsonl.gz -o "$tmp/wi" \
  --draws 3 --threads "$thr" >/dev/null 2>&1
echo "whatif:sample:files $(cd "$tmp/wi" && cat summary.md whatif.json *.dat | h)"
"$bin" whatif -c configs/minimal.yaml -c $g/loglog.yaml $g/late.jsonl.gz -o "$tmp/wi2" \
  --draws 2 --threads "$thr" --no-plots >/dev/null 2>&1
echo "whatif:late:files $(cd "$tmp/wi2" && cat summary.md whatif.json *.dat | h)"
