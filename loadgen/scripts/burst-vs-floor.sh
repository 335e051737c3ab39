#!/usr/bin/env bash
# The burst profile's spike against dancu with each audit mode, and against
# the bare floor server, one after the other on the same box: where the
# spike's tail comes from.
#
#   loadgen/scripts/burst-vs-floor.sh SNAPSHOT [SECONDS] [MODES]
#
# MODES (default "floor off buffered durable"): `floor` is
# `dancu-loadgen floor`; `off` is dancu with `--no-audit`; `buffered` and
# `durable` are dancu's `--audit-durability` with a fresh audit log under a
# temporary directory (deleted afterwards). dancu serves SNAPSHOT read-only
# in demo mode (key `dancu-demo-key`, loopback only). Each mode runs
# `profiles/burst.toml` for SECONDS (default 60: the spike is 10 % of the
# run, from 0.45 to 0.55) with keys sampled from SNAPSHOT, and prints the
# spike window's latency (`examples/window`), the whole run's generator
# figures and the server's CPU and major page faults over the run (a
# snapshot larger than the page cache can hold faults pages in from disk,
# each stalling one of the server's per-core runtimes).
#
# SERVER_ARGS adds flags to every dancu server, e.g. "--memory warm" to
# read the snapshot into memory at open (a production server's state after
# warm-up) rather than measure cold pages. LOADGEN_ARGS adds flags to every
# loadgen run (e.g. "--connect-rate 0" for an unbounded pool). TIMELINE=DIR
# keeps each mode's report.json, the server's /metrics at the end and a
# timeline (`server-timeline.sh`: the server's connections and per-thread
# CPU every half second) in DIR.
#
# Takes the shared CPU lock itself, once per mode, server start included (do
# NOT wrap it in flock).
# Needs release builds of dancu-server, dancu-loadgen and the window example:
#   cargo build --release -p dancu-server -p dancu-loadgen --example window
set -euo pipefail
snap=$1 secs=${2:-60} modes=${3:-floor off buffered durable}
bin=${BIN:-target/release}
lock=${LOCK:-/tmp/dancu-cpu.lock}
port=${PORT:-18491}
read -ra server_args <<<"${SERVER_ARGS:-}"
read -ra loadgen_args <<<"${LOADGEN_ARGS:-}"
url=http://127.0.0.1:$port
work=$(mktemp -d)
here=$(cd "$(dirname "$0")" && pwd)
. "$here/server-lib.sh"
cleanup() { stop_server; rm -rf "$work"; }
trap cleanup EXIT

for mode in $modes; do
    case $mode in
        floor) cmd=("$bin/dancu-loadgen" floor --listen "127.0.0.1:$port") ;;
        off) cmd=("$bin/dancu-server" --snapshot "$snap" --no-verify --read-only --no-audit --listen "127.0.0.1:$port"
                "${server_args[@]}") ;;
        buffered | durable)
            mkdir -p "$work/audit-$mode"
            cmd=("$bin/dancu-server" --snapshot "$snap" --no-verify --read-only --listen "127.0.0.1:$port"
                --audit "$work/audit-$mode/audit.log" --audit-durability "$mode" "${server_args[@]}") ;;
        *) echo "unknown mode $mode (floor, off, buffered, durable)" >&2; exit 2 ;;
    esac
    # The lock from before the server starts: `--memory warm` reads the
    # whole snapshot in, which would disturb whoever holds the lock.
    exec 9>>"$lock"
    flock 9
    start_server "$work/server-$mode.log" "${cmd[@]}"
    bash -c '
        a=$(awk "{print \$14 + \$15, \$12}" /proc/'"$server"'/stat)
        if [ -n "$5" ]; then '"$here"'/server-timeline.sh '"$server $port"' > "$4.timeline" & fi
        "$0" --target "$1" --key dancu-demo-key --snapshot "$2" --profile loadgen/profiles/burst.toml \
            --duration "$3s" -q --json --report "$4" "${@:6}" > "$4.out"
        b=$(awk "{print \$14 + \$15, \$12}" /proc/'"$server"'/stat)
        echo $(( ${b% *} - ${a% *} )) $(( ${b#* } - ${a#* } )) > "$4.cpu"
    ' "$bin/dancu-loadgen" "$url" "$snap" "$secs" "$work/report-$mode" "${TIMELINE:-}" "${loadgen_args[@]}"
    # The server's own view (per-route handler and queue-wait histograms).
    curl -s -m 5 -H "Authorization: Bearer dancu-demo-key" "$url/metrics" > "$work/report-$mode.metrics" || true
    stop_server
    exec 9>&-
    if [ -n "${TIMELINE:-}" ]; then
        keep="$TIMELINE/$mode-$(date +%H%M%S)"
        mkdir -p "$keep"
        cp "$work/report-$mode.timeline" "$work/report-$mode.metrics" "$work/report-$mode/report.json" "$keep/"
        echo "   kept   $keep (timeline, metrics, report.json)"
    fi
    spike=$("$bin/examples/window" "$work/report-$mode/report.json" 0.45 0.55)
    floor_base=$("$bin/examples/window" "$work/report-$mode/report.json" 0.1 0.45)
    tail -1 "$work/report-$mode.out" | python3 -c '
import json, sys
d = json.loads(sys.stdin.read())
mode, spike, base, counts, secs = sys.argv[1:6]
ticks, faults = (int(x) for x in counts.split())
srv = ticks / float(sys.argv[6]) / float(secs)
print(f"== {mode}")
print(f"   spike  {spike}")
print(f"   before {base}")
print("   run    p50 %s us  p99 %s us  max %s us  behind-schedule p99 %s us  peak connections %s  unsent %s  errors %s  shed %s"
      % (d["p50_us"], d["p99_us"], d["max_us"], d.get("behind_schedule_p99_us"), d.get("peak_connections"),
         d["unsent"], d["errors"], d.get("shed")))
print("   cpu    loadgen %s us/request, %s cores; server %.2f cores and %d major page faults over the run"
      % (d.get("cpu_us_per_request"), d.get("generator_cores"), srv, faults))
for w in d.get("warnings", []):
    print("   warn  ", w)
' "$mode" "$spike" "$floor_base" "$(cat "$work/report-$mode.cpu")" "$secs" "$(getconf CLK_TCK)"
    rm -rf "$work/audit-$mode"
done
