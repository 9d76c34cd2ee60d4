#!/usr/bin/env bash
# Reads decision records (JSON Lines) on stdin and prints, per portfolio, the
# last decision as a table. Uses only awk so it runs on a bare machine.
awk '
function field(s, k,   re, m) {
  re = "\"" k "\":(\"[^\"]*\"|[-0-9.]+|null)"
  if (match(s, re)) { m = substr(s, RSTART + length(k) + 3, RLENGTH - length(k) - 3); gsub(/"/, "", m); return m }
  return ""
}
{ pf = field($0, "portfolio"); last[pf] = $0; if (!(pf in seen)) { seen[pf] = 1; order[++n] = pf } }
END {
  for (i = 1; i <= n; i++) {
    r = last[order[i]]
    printf "\n%s  cycle %s  mode %s  status %s  path %s  budget %s  P(ROAS<floor) %s\n", order[i], field(r, "cycle"), field(r, "mode"), field(r, "status"), field(r, "path"), field(r, "budget"), field(r, "p_below_floor")
    if (r ~ /"kill":\{/) printf "  KILLED: %s\n", field(substr(r, index(r, "\"kill\":{")), "reason")
    printf "  %-12s %10s %10s %9s %17s  %s\n", "channel", "spend", "prev", "roas", "90% interval", "bound"
    s = r; sub(/.*"channels":\[/, "", s); sub(/\],"risk".*/, "", s)
    m = split(s, chs, /\},\{/)
    for (j = 1; j <= m; j++) {
      c = chs[j]
      printf "  %-12s %10s %10s %9s %8s-%-8s  %s\n", field(c, "channel"), field(c, "spend"), field(c, "prev"), field(c, "mean_roas"), field(c, "roas_lo"), field(c, "roas_hi"), field(c, "bound")
    }
  }
}'
