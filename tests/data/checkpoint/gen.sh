#!/usr/bin/env bash
# Stores one checkpoint blob per older version the engine still reads, each
# written by the engine that wrote that version: the last commit of main
# with that CK_VERSION is built in a temporary directory (git archive), and
# gen_ckpt.c, linked against it, writes portfolio p0's checkpoint after the
# first 300 of p0's lines of tests/data/golden/clean.jsonl.gz under
# configs/minimal.yaml. tests/unit/core/test_checkpoint_aged.c restores them.
#   tests/data/checkpoint/gen.sh [VERSION...]     (default: 4 5 6 7)
# Run from the repository root. v3-acme.ckpt came from the version 3 encoder
# by other means (tests/unit/regress/test_regress16_unit.c); a new version
# adds a line below with the last commit that writes the previous one.
set -eu
commit_of() {
  case $1 in
    4) echo 9026e13 ;;   # main before 56ca7c4 (delivery and fault state: v5)
    5) echo f47b345 ;;   # main before 6767635 (cycle length, kill actor and time: v6)
    6) echo 24f8382 ;;   # main before d756033 (the dedup store: v7)
    7) echo d756033 ;;   # the merge that introduced v7
    *) echo "no commit for version $1" >&2; exit 2 ;;
  esac
}
here=tests/data/checkpoint
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
zcat tests/data/golden/clean.jsonl.gz | grep '"portfolio":"p0"' > "$tmp/p0.jsonl"
pk="rdkafka gsl hiredis libcjson zlib yaml-0.1 libmicrohttpd"
for v in ${@:-4 5 6 7}; do
  c=$(commit_of "$v")
  mkdir "$tmp/$v"
  git archive "$c" | tar -x -C "$tmp/$v"
  make -C "$tmp/$v" -j2 build/libbudgetd.a >/dev/null
  cc -std=c11 -D_GNU_SOURCE -I"$tmp/$v/include" $(pkg-config --cflags $pk) "$here/gen_ckpt.c" \
     "$tmp/$v/build/libbudgetd.a" $(pkg-config --libs $pk) -lm -pthread -o "$tmp/$v/gen_ckpt"
  grep -q "define CK_VERSION ${v}u" "$tmp/$v/engine/core/checkpoint.c" || { echo "$c does not write v$v" >&2; exit 1; }
  "$tmp/$v/gen_ckpt" "$tmp/p0.jsonl" 300 "$here/v$v-p0.ckpt"
done
