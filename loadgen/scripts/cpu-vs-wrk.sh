#!/usr/bin/env bash
# CPU per request of the load generator itself: wrk (closed model) against
# dancu-loadgen's open model at the same rates, in one run.
#
#   KEY=dancu-demo-key loadgen/scripts/cpu-vs-wrk.sh URL ID [SECONDS] [CONNECTIONS] [THREADS]
#
# wrk cannot pace, so it is measured closed at three loads and loadgen open
# at the rates wrk reached:
# 1. wrk -tTHREADS -cCONNECTIONS: the highest rate wrk reaches (W req/s);
# 2. wrk -t1 -c2 and -t1 -c1: wrk near 20,000 req/s (rates W2, W1);
# 3. dancu-loadgen open at 20,000, W2 and W req/s with the same connection
#    cap; its threads are its default for the rate (LG_THREADS to force).
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

wrk_run() { # threads connections
    local cpu rate
    cpu=$(measure "$work/wrk.out" -- wrk -t"$1" -c"$2" -d"${secs}s" "${wrk_auth[@]}" "$url/v1/citizens/$id")
    rate=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.out")
    report "wrk closed -t$1 -c$2" "$rate" "$cpu"
    echo "$rate" > "$work/wrk.rate"
}

lg_run() { # rate
    local cpu rate
    cpu=$(measure "$work/lg.out" -- "$lg" --target "$url" "${lg_auth[@]}" --keys-id "$work/keys" \
        --op get --rate "$1" -c "$conns" ${LG_THREADS:+-t "$LG_THREADS"} -d "${secs}s" -q --json)
    rate=$(tail -1 "$work/lg.out" | python3 -c 'import json,sys; print(json.loads(sys.stdin.read())["requests_per_s"])')
    report "dancu-loadgen open --rate $1" "$rate" "$cpu"
    tail -1 "$work/lg.out" | python3 -c '
import json, sys
d = json.loads(sys.stdin.read())
print("    %s thread(s)  p50 %s us  p99 %s us  behind-schedule p99 %s us  errors %s  unsent %s  self-check %s us/request %s"
      % (d.get("threads", "?"), d["p50_us"], d["p99_us"], d.get("behind_schedule_p99_us", "?"), d["errors"],
         d["unsent"], d.get("cpu_us_per_request", "?"), "; ".join(d.get("warnings", []))))'
}

wrk_run "$threads" "$conns"
top=$(cut -d. -f1 "$work/wrk.rate")
wrk_run 1 2
two=$(cut -d. -f1 "$work/wrk.rate")
wrk_run 1 1
lg_run 20000
lg_run "$two"
lg_run "$top"
