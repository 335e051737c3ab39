#!/usr/bin/env bash
# CPU per request of the load generator itself: wrk (closed model) against
# dancu-loadgen's open model at the same rates, in one run.
#
#   KEY=dancu-demo-key [ROUNDS=N] loadgen/scripts/cpu-vs-wrk.sh URL ID [SECONDS] [CONNECTIONS] [THREADS]
#
# wrk cannot pace, so it is measured closed and loadgen open at the rates
# wrk reached. Each of ROUNDS rounds (default 1) alternates the tools:
# 1. wrk -tTHREADS -cCONNECTIONS: the highest rate wrk reaches (W req/s),
#    then dancu-loadgen open at W req/s with the same connection cap;
# 2. wrk -t1 -c2: wrk at a moderate load (W2 req/s), then dancu-loadgen
#    open at W2 and at 20,000 req/s.
# loadgen's threads are its default for the rate (LG_THREADS to force).
# LOADGEN_B=PATH measures a second dancu-loadgen build (say, main's) at the
# same rates in the same rounds, the two builds taking turns at going first,
# so that an old and a new build meet the same minutes of a shared box.
# With more than one round, the medians per line and the ratio of
# loadgen's CPU per request to wrk's in the same round follow. The script
# does not take the shared CPU lock: wrap it in `flock`.
# Each tool's CPU is read from /proc/PID/stat (utime + stime, all threads)
# one second after it starts and one second before it ends, so start-up and
# tear-down are left out; CPU per request = CPU seconds / requests in that
# window (requests = the tool's own mean rate x the window). Both tools send
# `GET /v1/citizens/ID` on keep-alive connections. Needs wrk and a release
# build of dancu-loadgen (target/release/dancu-loadgen, or $LOADGEN).
set -euo pipefail
url=$1 id=$2 secs=${3:-10} conns=${4:-64} threads=${5:-2}
lg=${LOADGEN:-target/release/dancu-loadgen}
tick=$(getconf CLK_TCK)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "$id" > "$work/keys"
wrk_auth=() lg_auth=()
if [ -n "${KEY:-}" ]; then
    wrk_auth=(-H "Authorization: Bearer $KEY")
    lg_auth=(--key "$KEY")
fi

# cpu_ticks PID (from server-lib.sh): utime + stime of a process (fields 14
# and 15; the command name in field 2 has no spaces for these tools).
. "$(dirname "$0")/server-lib.sh"

# measure OUT -- CMD...: runs CMD, writes its stdout to OUT and prints the
# CPU seconds it used between 1 s after start and 1 s before the end.
measure() {
    local out=$1; shift 2
    "$@" > "$out" &
    local pid=$!
    sleep 1
    local a; a=$(cpu_ticks "$pid")
    sleep $((secs - 2))
    local b; b=$(cpu_ticks "$pid")
    wait "$pid"
    python3 -c "print(($b - $a) / $tick)"
}

report() { # name rate cpu_s
    python3 - "$@" "$secs" <<'PY'
import sys
name, rate, cpu, secs = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
window = secs - 2
per_req = cpu / (rate * window) * 1e6 if rate > 0 else float("nan")
print(f"{name:<34} {rate:>9.0f} req/s  {cpu / window:5.2f} cores  {per_req:6.2f} us CPU/request")
PY
}

wrk_run() { # threads connections
    local cpu rate
    cpu=$(measure "$work/wrk.out" -- wrk -t"$1" -c"$2" -d"${secs}s" "${wrk_auth[@]}" "$url/v1/citizens/$id")
    rate=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.out")
    report "wrk closed -t$1 -c$2" "$rate" "$cpu" | tee -a "$work/rows"
    echo "$rate" > "$work/wrk.rate"
}

lg_run() { # rate [label] [binary] [name]
    local cpu rate bin=${3:-$lg} name=${4:-dancu-loadgen}
    cpu=$(measure "$work/lg.out" -- "$bin" --target "$url" "${lg_auth[@]}" --keys-id "$work/keys" \
        --op get --rate "$1" -c "$conns" ${LG_THREADS:+-t "$LG_THREADS"} -d "${secs}s" -q --json)
    rate=$(tail -1 "$work/lg.out" | python3 -c 'import json,sys; print(json.loads(sys.stdin.read())["requests_per_s"])')
    report "$name open --rate ${2:-$1}" "$rate" "$cpu" | tee -a "$work/rows"
    tail -1 "$work/lg.out" | python3 -c '
import json, sys
d = json.loads(sys.stdin.read())
print("    %s thread(s)  p50 %s us  p99 %s us  behind-schedule p99 %s us  errors %s  unsent %s  self-check %s us/request %s"
      % (d.get("threads", "?"), d["p50_us"], d["p99_us"], d.get("behind_schedule_p99_us", "?"), d["errors"],
         d["unsent"], d.get("cpu_us_per_request", "?"), "; ".join(d.get("warnings", []))))'
}

: > "$work/rows"
rounds=${ROUNDS:-1}
# lg_both RATE LABEL: dancu-loadgen, and LOADGEN_B if given, in turn.
lg_both() {
    if [ -z "${LOADGEN_B:-}" ]; then
        lg_run "$1" "$2"
    elif [ $((round % 2)) = 1 ]; then
        lg_run "$1" "$2"
        lg_run "$1" "$2" "$LOADGEN_B" dancu-loadgen-B
    else
        lg_run "$1" "$2" "$LOADGEN_B" dancu-loadgen-B
        lg_run "$1" "$2"
    fi
}
for round in $(seq 1 "$rounds"); do
    [ "$rounds" = 1 ] || echo "round $round"
    wrk_run "$threads" "$conns"
    lg_both "$(cut -d. -f1 "$work/wrk.rate")" W
    wrk_run 1 2
    lg_both "$(cut -d. -f1 "$work/wrk.rate")" W2
    lg_both 20000 20000
done
[ "$rounds" = 1 ] && exit 0
# Medians per line over the rounds, and loadgen at W and W2 against the
# wrk run of the same round.
python3 - "$work/rows" "wrk closed -t$threads -c$conns" <<'PY'
import re, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    m = re.match(r"(.*?)\s+(\d+) req/s\s+([0-9.]+) cores\s+([0-9.]+) us", line)
    if m:
        rows.setdefault(m.group(1).strip(), []).append((float(m.group(2)), float(m.group(4))))
print("medians over the rounds:")
for name, v in rows.items():
    print(f"{name:<34} {statistics.median(r for r, _ in v):>9.0f} req/s  "
          f"{statistics.median(c for _, c in v):6.2f} us CPU/request")
for lg, wrk in (("dancu-loadgen open --rate W", sys.argv[2]),
                ("dancu-loadgen open --rate W2", "wrk closed -t1 -c2"),
                ("dancu-loadgen-B open --rate W", sys.argv[2]),
                ("dancu-loadgen-B open --rate W2", "wrk closed -t1 -c2")):
    if lg not in rows:
        continue
    ratios = [l[1] / w[1] for l, w in zip(rows[lg], rows[wrk])]
    print(f"{lg:<28} / {wrk}: per round {' '.join(f'{r:.2f}' for r in ratios)}, "
          f"median {statistics.median(ratios):.2f} x wrk")
PY
