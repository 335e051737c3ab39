# Summarises dancu's latency histograms from a /metrics scrape: for each
# family (request_duration, queue_wait, receive, service, audit_wait, write)
# and route, and for the audit commit path's stages (audit_stage: lane,
# write, fsync, wake, gate),
# summed over clients (BY=client splits them): requests, the bucket bounds
# that hold the median and the 99th percentile, and how many took over 5 ms
# and over 50 ms.
#   awk -f server/bench/histograms.awk metrics.txt
#   awk -v BY=client -f server/bench/histograms.awk metrics.txt
/^dancu_http_[a-z_]+_seconds_bucket\{|^dancu_audit_stage_seconds_bucket\{/ {
  family = $1; sub(/^dancu_(http_)?/, "", family); sub(/_seconds_bucket.*/, "", family)
  if (family == "audit_stage") {
    # The audit commit path's stages (one histogram each, no client).
    match($1, /stage="[^"]*"/); route = substr($1, RSTART + 7, RLENGTH - 8); client = "-"
  } else {
    match($1, /route="[^"]*"/); route = substr($1, RSTART + 7, RLENGTH - 8)
    match($1, /client="[^"]*"/); client = substr($1, RSTART + 8, RLENGTH - 9)
  }
  match($1, /le="[^"]*"/); le = substr($1, RSTART + 4, RLENGTH - 5)
  if (BY != "client") client = "(all)"
  key = family " " route " " client
  if (!(key in seen)) { seen[key] = 1; keys[++n] = key }
  if (!((key, le) in slot)) { slot[key, le] = ++nb[key]; bound[key, nb[key]] = le }
  cum[key, slot[key, le]] += $2
}
function at(key, q,    i, total) {
  total = cum[key, nb[key]]
  for (i = 1; i <= nb[key]; i++) if (cum[key, i] >= q * total) return bound[key, i]
  return "?"
}
function over(key, s,    i, total) {
  total = cum[key, nb[key]]
  for (i = 1; i <= nb[key]; i++) if (bound[key, i] == s) return total - cum[key, i]
  return "?"
}
END {
  printf "%-17s %-16s %-24s %9s %9s %9s %9s %9s\n", "family", "route", "client", "count", "p50<=s", "p99<=s", ">5ms", ">50ms"
  for (k = 1; k <= n; k++) {
    key = keys[k]; split(key, f, " ")
    total = cum[key, nb[key]]
    if (total == 0 || f[2] == "metrics" || f[2] == "readyz") continue
    printf "%-17s %-16s %-24s %9d %9s %9s %9s %9s\n", f[1], f[2], f[3], total, at(key, 0.5), at(key, 0.99), over(key, "0.005"), over(key, "0.05")
  }
}
