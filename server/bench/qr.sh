#!/usr/bin/env bash
# QR check vs verify over HTTP, in one run: POST /v1/qr:verify with chip-card
# QR texts built from sample records against POST /v1/citizens:verify
# claiming the same card fields (bench/qr.lua), in alternating rounds (qr
# first in odd rounds, verify first in even ones) on one server, so neither
# always gets the fresher machine. Prints each round and the ratio of the
# summed rates; every figure is read from wrk's output.
#
# Usage (paths relative to the workspace root; run it under the CPU lock):
#   flock /tmp/dancu-cpu.lock server/bench/qr.sh
# Knobs: SNAP (data/demo/demo-1m.snap), LAYOUT (per-core:2), DURATION (10s),
#   CONNS (64), WRK_THREADS (2), ROUNDS (4), PORT (28090).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
SNAP="${SNAP:-data/demo/demo-1m.snap}"
LAYOUT="${LAYOUT:-per-core:2}"
DURATION="${DURATION:-10s}"
CONNS="${CONNS:-64}"
WRK_THREADS="${WRK_THREADS:-2}"
ROUNDS="${ROUNDS:-4}"
PORT="${PORT:-28090}"
export BENCH_DIR="$ROOT/server/bench"
KEY="${DANCU_KEY:-dancu-demo-key}"

[ -f "$SNAP" ] || { echo "no snapshot at $SNAP" >&2; exit 1; }
cargo build --release -p dancu-server --bin dancu-server --example sample-ids >&2
BIN="$ROOT/target/release"
TMP="$(mktemp -d)"
PID=""
cleanup() {
  if [ -n "$PID" ]; then kill -TERM "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT

export IDS_FILE="$TMP/ids.tsv"
"$BIN/examples/sample-ids" "$SNAP" 100000 11 >"$IDS_FILE"

"$BIN/dancu-server" --snapshot "$SNAP" --listen "127.0.0.1:$PORT" --runtime "$LAYOUT" \
  --data-dir "$TMP" --audit "$TMP/bench.audit" >"$TMP/dancu.log" 2>&1 &
PID=$!
for _ in $(seq 1 1200); do
  curl -fs -o /dev/null "http://127.0.0.1:$PORT/readyz" && break
  sleep 0.25
done

# Both modes must answer 200 with "match":true, else the rates measure errors.
for mode in qr verify; do
  out="$(MODE=$mode wrk -t1 -c1 -d1s -s "$BENCH_DIR/qr.lua" "http://127.0.0.1:$PORT" 2>&1)"
  if echo "$out" | grep -q "non-2xx\|Non-2xx"; then echo "$mode: non-2xx answers" >&2; echo "$out" >&2; exit 1; fi
done
row="$(awk -F'\t' '$6 != "" { print; exit }' "$IDS_FILE")"
IFS=$'\t' read -r id name dob sex legacy address <<<"$row"
word=Nam; [ "$sex" = female ] && word="Nữ"
dmy="${dob:8:2}${dob:5:2}${dob:0:4}"
echo "sample answer: $(curl -s -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
  -d "{\"qr\":\"$id|$legacy|$name|$dmy|$word|$address|01072021\"}" "http://127.0.0.1:$PORT/v1/qr:verify")"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
run() { # mode → "req/s µs-server-CPU/req"
  local t0 t1 out
  t0=$(cpu_ticks "$PID")
  out="$(MODE=$1 wrk -t"$WRK_THREADS" -c"$CONNS" -d"$DURATION" -s "$BENCH_DIR/qr.lua" "http://127.0.0.1:$PORT")"
  t1=$(cpu_ticks "$PID")
  if echo "$out" | grep -q "Non-2xx"; then echo "WARNING: $1 had non-2xx responses" >&2; fi
  echo "$out" | awk -v ticks=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" '
    /Requests\/sec/ { rps = $2 } /requests in/ { n = $1 }
    END { printf "%s %.2f\n", rps, (n > 0 ? ticks / hz * 1e6 / n : 0) }'
}

echo "snapshot $SNAP, layout $LAYOUT, wrk -t$WRK_THREADS -c$CONNS -d$DURATION, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
sum_qr=0 sum_verify=0
for round in $(seq 1 "$ROUNDS"); do
  if [ $((round % 2)) -eq 1 ]; then order=(qr verify); else order=(verify qr); fi
  declare -A got=()
  for mode in "${order[@]}"; do got[$mode]="$(run "$mode")"; done
  q="${got[qr]}" v="${got[verify]}"
  echo "round $round (${order[*]}): qr ${q% *} req/s (${q#* } µs CPU/req), verify ${v% *} req/s (${v#* } µs CPU/req)"
  sum_qr=$(awk -v a="$sum_qr" -v b="${q% *}" 'BEGIN { print a + b }')
  sum_verify=$(awk -v a="$sum_verify" -v b="${v% *}" 'BEGIN { print a + b }')
done
awk -v q="$sum_qr" -v v="$sum_verify" -v n="$ROUNDS" \
  'BEGIN { printf "mean over %d rounds: qr %.0f req/s, verify %.0f req/s, qr/verify %.3f\n", n, q / n, v / n, q / v }'
