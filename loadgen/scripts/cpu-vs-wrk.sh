#!/usr/bin/env bash
# CPU per request of the load generator itself: wrk (closed model) against
# dancu-loadgen's open model at the same rates, in one run.
#
#   KEY=dancu-demo-key loadgen/scripts/cpu-vs-wrk.sh URL ID [SECONDS] [CONNECTIONS] [THREADS]
#
# 1. wrk -cCONNECTIONS at full speed: the highest rate wrk reaches (W req/s).
# 2. wrk -c4: wrk at a lighter load (its rate is printed; wrk cannot pace).
# 3. dancu-loadgen open model at 20,000 req/s and at W req/s, same
#    connection cap and threads.
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

# cpu_ticks PID: utime + stime of a process (fields 14 and 15; the command
# name in field 2 has no spaces for these tools).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

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

wrk_run() { # connections
    local cpu rate
    cpu=$(measure "$work/wrk.out" -- wrk -t"$threads" -c"$1" -d"${secs}s" "${wrk_auth[@]}" "$url/v1/citizens/$id")
    rate=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.out")
    report "wrk closed -t$threads -c$1" "$rate" "$cpu"
    echo "$rate" > "$work/wrk.rate"
}

lg_run() { # rate
    local cpu rate
    cpu=$(measure "$work/lg.out" -- "$lg" --target "$url" "${lg_auth[@]}" --keys-id "$work/keys" \
        --op get --rate "$1" -c "$conns" -t "$threads" -d "${secs}s" -q --json)
    rate=$(tail -1 "$work/lg.out" | python3 -c 'import json,sys; print(json.loads(sys.stdin.read())["requests_per_s"])')
    report "dancu-loadgen open --rate $1" "$rate" "$cpu"
    tail -1 "$work/lg.out" | python3 -c '
import json, sys
d = json.loads(sys.stdin.read())
print("    p50 %s us  p99 %s us  behind-schedule p99 %s us  errors %s  unsent %s"
      % (d["p50_us"], d["p99_us"], d.get("behind_schedule_p99_us", "?"), d["errors"], d["unsent"]))'
}

wrk_run "$conns"
top=$(cut -d. -f1 "$work/wrk.rate")
wrk_run 4
lg_run 20000
lg_run "$top"
