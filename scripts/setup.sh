#!/usr/bin/env bash
# Installs every Debian package budgetd needs to build, test and demo.
# Idempotent: packages already present are skipped; apt-get runs only when
# something is missing. Must run as root (or with sudo available).
set -eu

pkgs=(build-essential pkg-config
      librdkafka-dev libgsl-dev libhiredis-dev libcriterion-dev
      libcjson-dev libcyaml-dev libmicrohttpd-dev zlib1g-dev
      redis-server redis-tools kcat gnuplot-nox
      clang libclang-rt-14-dev prometheus)   # clang + libclang-rt: make fuzz (libFuzzer); prometheus: promtool

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "setup: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
