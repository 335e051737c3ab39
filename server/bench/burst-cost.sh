#!/usr/bin/env bash
# The server's CPU per request for each operation of the burst profile and
# for its mix, beside the bare floor server (`dancu-loadgen floor`), at one
# open-model rate that every server sustains: where the burst's server time
# goes (issue 17: at 40 k/s the server is CPU-bound on the cores loadgen
# leaves, so its spike p99 is its CPU per request).
#
#   server/bench/burst-cost.sh [SNAPSHOT]
#
# For each of ROUNDS rounds, each target in turn — `floor`, then every
# server of BINS, the order rotated round by round so that no binary always
# meets the fresher box — is started (outside the lock: a large snapshot
# takes a while to read in) and, holding the shared CPU lock, driven by one
# dancu-loadgen per operation of OPS: `mix` is `profiles/burst.toml` at the
# constant RATE (its callers and keys, without the spike), any other word a
# single `--op` at RATE. The server's CPU (utime + stime from
# /proc/PID/stat, all threads) over each loadgen run, divided by the
# requests answered, is its CPU per request; idle time while loadgen reads
# its keys costs nothing. One line per run, then the median per target and
# operation and its ratio to the floor's.
#
# Knobs: BINS ("main=/tmp/spike6-bins/main new=target/release": NAME=DIR of
#   a dancu-server), LOADGEN (the dancu-loadgen that drives every target and
#   serves the floor; target/release/dancu-loadgen), RATE (20000), SECS (8),
#   ROUNDS (3), OPS ("mix qr get get_basic verify identify legacy"),
#   SERVER_ARGS (added to every dancu-server, e.g. "--memory warm" for the
#   100 M snapshot), FLOOR (1; 0 leaves the floor out, for an A/B of two
#   servers only), PORT (28611), LOCK (/tmp/dancu-cpu.lock).
# dancu runs read-only, audit off, in demo mode (key `dancu-demo-key`).
# Takes the shared CPU lock itself, once per target and round (do NOT wrap
# it in flock).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
snap=${1:-data/demo/demo-1m.snap}
[ -f "$snap" ] || { echo "no snapshot at $snap" >&2; exit 1; }
bins=${BINS:-main=/tmp/spike6-bins/main new=target/release}
loadgen=${LOADGEN:-target/release/dancu-loadgen}
rate=${RATE:-20000} secs=${SECS:-8} rounds=${ROUNDS:-3}
ops=${OPS:-mix qr get get_basic verify identify legacy}
port=${PORT:-28611} lock=${LOCK:-/tmp/dancu-cpu.lock}
read -ra server_args <<<"${SERVER_ARGS:-}"
url=http://127.0.0.1:$port
work=$(mktemp -d)
# start_server, stop_server, cpu_ticks; $server is the running server.
. loadgen/scripts/server-lib.sh
cleanup() { stop_server; rm -rf "$work"; }
trap cleanup EXIT

if [ "${FLOOR:-1}" = 0 ]; then read -ra targets <<<"$bins"; else read -ra targets <<<"floor $bins"; fi
lines=$work/lines
: >"$lines"
for round in $(seq 1 "$rounds"); do
    # Rotate the order: round r starts at target (r - 1) mod n.
    n=${#targets[@]} start=$(( (round - 1) % ${#targets[@]} ))
    for i in $(seq 0 $((n - 1))); do
        target=${targets[$(( (start + i) % n ))]}
        name=${target%%=*}
        if [ "$target" = floor ]; then
            cmd=("$loadgen" floor --listen "127.0.0.1:$port")
        else
            cmd=("${target#*=}/dancu-server" --snapshot "$snap" --no-verify --read-only --no-audit
                --listen "127.0.0.1:$port" "${server_args[@]}")
        fi
        start_server "$work/server.log" "${cmd[@]}"
        # One lock hold per target and round: every operation's run.
        flock "$lock" bash -c '
            server=$1 loadgen=$2 url=$3 snap=$4 rate=$5 secs=$6 out=$7; shift 7
            for op in "$@"; do
                if [ "$op" = mix ]; then what=(--profile loadgen/profiles/burst.toml)
                else what=(--op "$op"); fi
                a=$(awk "{print \$14 + \$15}" /proc/$server/stat)
                "$loadgen" --target "$url" --key dancu-demo-key --snapshot "$snap" "${what[@]}" \
                    --rate "$rate" --duration "${secs}s" -q --json | tail -1 > "$out.$op"
                b=$(awk "{print \$14 + \$15}" /proc/$server/stat)
                echo "$op $((b - a))" >> "$out.ticks"
            done
        ' _ "$server" "$loadgen" "$url" "$snap" "$rate" "$secs" "$work/run" $ops
        stop_server
        while read -r op ticks; do
            python3 - "$round" "$name" "$op" "$ticks" "$(getconf CLK_TCK)" "$work/run.$op" <<'PY' | tee -a "$lines"
import json, sys
round_, name, op, ticks, tck, path = sys.argv[1:7]
d = json.loads(open(path).read())
us = int(ticks) / int(tck) * 1e6 / max(d["requests"], 1)
print(f"{round_} {name} {op} {us:.2f} {d['requests']} {d['p50_us']} {d['p99_us']} {d['errors']}")
PY
        done <"$work/run.ticks"
        rm -f "$work"/run.*
    done
done

echo
echo "# median server CPU per request (us) at $rate/s, ${secs}s runs, $rounds round(s); x floor"
python3 - "$lines" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    _, name, op, us, *_ = line.split()
    runs.setdefault((name, op), []).append(float(us))
names = list(dict.fromkeys(n for n, _ in runs))
ops = list(dict.fromkeys(o for _, o in runs))
print("op".ljust(10) + "".join(n.rjust(17) for n in names))
for op in ops:
    floor = statistics.median(runs.get(("floor", op), [float("nan")]))
    cells = []
    for n in names:
        m = statistics.median(runs.get((n, op), [float("nan")]))
        ratio = f" ({m / floor:4.2f}x)" if n != "floor" and floor == floor else " " * 8
        cells.append(f"{m:7.2f}" + ratio)
    print(op.ljust(10) + "".join(c.rjust(17) for c in cells))
PY
