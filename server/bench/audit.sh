#!/usr/bin/env bash
# The cost of the audit log: GET keep-alive, GET pipelined and batchGet
# (1000 IDs, basic fields) with the audit log durable, buffered and off, in
# one run. Rounds rotate the order of the three modes (durable, buffered,
# off; then buffered, off, durable; ...), so that no mode always gets the
# fresher server or machine; the last lines are per-mode means over rounds,
# the ratios to off and the server's CPU per request (from /proc/PID/stat
# around each wrk run). Throughput figures are read from wrk's output. At
# the start, fsync-floor.py prints what one fdatasync costs on the audit
# directory's disk: the floor under every durable commit.
#
# Usage (from the workspace root, under the shared CPU lock):
#   flock /tmp/dancu-cpu.lock server/bench/audit.sh
# Knobs: SNAP (data/demo/demo-1m.snap, built by demo mode on first run),
#   ROUNDS (3), DURATION (5s), CONNS (64), WRK_THREADS (2), PIPELINE (16),
#   LAYOUT (per-core:2), PORT (28090), AUDIT_DIR (a temp dir: where the
#   logs are written, i.e. which disk is measured), BIN_DIR (binaries built
#   earlier, e.g. a copy of target/release: no build).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
SNAP="${SNAP:-data/demo/demo-1m.snap}"
ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-5s}"
CONNS="${CONNS:-64}"
WRK_THREADS="${WRK_THREADS:-2}"
PIPELINE="${PIPELINE:-16}"
LAYOUT="${LAYOUT:-per-core:2}"
PORT="${PORT:-28090}"
export BENCH_DIR="$ROOT/server/bench"
command -v wrk >/dev/null || { apt-get install -y wrk || (apt-get update && apt-get install -y wrk); } >/dev/null

if [ -n "${BIN_DIR:-}" ]; then
  BIN="$BIN_DIR"
else
  cargo build --release -p dancu-server --bin dancu-server --example sample-ids >&2
  BIN="$ROOT/target/release"
fi
TMP="$(mktemp -d)"
AUDIT_DIR="${AUDIT_DIR:-$TMP}"
PID=""
cleanup() {
  [ -n "$PID" ] && kill -TERM "$PID" 2>/dev/null
  wait 2>/dev/null
  [ -n "${KEEP_WRK:-}" ] && cp "$TMP/wrk.txt" "$KEEP_WRK"
  rm -rf "$TMP"
}
trap cleanup EXIT

wait_http() {
  for _ in $(seq 1 1200); do curl -fs -o /dev/null "$1" && return 0; sleep 0.25; done
  echo "timed out waiting for $1" >&2; return 1
}
start() { # args...
  "$BIN/dancu-server" --snapshot "$SNAP" --listen "127.0.0.1:$PORT" --runtime "$LAYOUT" \
    --data-dir "$TMP" --client-batches 1024 --batch-queue 1024 --queue-wait-budget-ms 60000 \
      "$@" >"$TMP/server.log" 2>&1 &
  PID=$!
  wait_http "http://127.0.0.1:$PORT/readyz"
}
stop() { kill -TERM "$PID"; wait "$PID" || true; PID=""; }

if [ ! -f "$SNAP" ]; then
  [ "$SNAP" = "data/demo/demo-1m.snap" ] || { echo "no snapshot at $SNAP" >&2; exit 1; }
  "$BIN/dancu-server" --data-dir data/demo --listen "127.0.0.1:$PORT" --no-audit >"$TMP/demo.log" 2>&1 &
  PID=$!; wait_http "http://127.0.0.1:$PORT/healthz"; stop
fi
export IDS_FILE="$TMP/ids.tsv"
"$BIN/examples/sample-ids" "$SNAP" 100000 7 >"$IDS_FILE"

server_ticks() { awk '{ print $14 + $15 }' "/proc/$PID/stat"; } # user + system
rps() { # script, env... -> "<requests/s> <non-2xx responses> <server CPU µs per request>"
  local script="$1"; shift
  local before; before="$(server_ticks)"
  env "$@" wrk -t"$WRK_THREADS" -c"$CONNS" -d"$DURATION" -s "$BENCH_DIR/$script" \
    "http://127.0.0.1:$PORT" 2>&1 | tee -a "$TMP/wrk.txt" | awk -v before="$before" \
      -v after_file="/proc/$PID/stat" -v hz="$(getconf CLK_TCK)" '
      /Requests\/sec/ { rps = $2 } /Non-2xx/ { bad = $NF } /non-2xx responses/ { bad = $2 }
      /requests in/ { n = $1 }
      END {
        getline stat < after_file; split(stat, f, " ")
        printf "%s %d %.1f\n", rps, bad, (n > 0 ? (f[14] + f[15] - before) / hz / n * 1e6 : 0)
      }'
}

modes=(durable buffered off)
names=("GET keep-alive" "GET pipelined x$PIPELINE" "batchGet 1000 basic")
declare -A sum=() cpu=()
echo "snapshot $SNAP, layout $LAYOUT, wrk -t$WRK_THREADS -c$CONNS -d$DURATION, audit dir $AUDIT_DIR"
echo "machine: $(nproc) CPUs, $(uname -r), load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
# What every durable commit pays the disk, measured in the same run.
python3 "$BENCH_DIR/fsync-floor.py" "$AUDIT_DIR" 2000
for round in $(seq 1 "$ROUNDS"); do
  for k in 0 1 2; do
    mode="${modes[$(( (round - 1 + k) % 3 ))]}"
    case "$mode" in
      off) start --no-audit ;;
      *) start --audit "$AUDIT_DIR/bench-$round-$mode.audit" --audit-durability "$mode" ;;
    esac
    got=(
      "$(rps get.lua PIPELINE=1)"
      "$(rps get.lua PIPELINE="$PIPELINE")"
      "$(rps batch.lua MODE=get FIELDS=id,full_name,date_of_birth,sex,nationality)"
    )
    syncs="$(curl -fs "http://127.0.0.1:$PORT/metrics" | awk '/^dancu_audit_fsyncs_total/ { print $2 }')"
    stop
    line="round $round $mode:"
    for i in 0 1 2; do
      set -- ${got[$i]}
      sum[$mode$i]=$(awk -v a="${sum[$mode$i]:-0}" -v b="$1" 'BEGIN { print a + b }')
      cpu[$mode$i]=$(awk -v a="${cpu[$mode$i]:-0}" -v b="$3" 'BEGIN { print a + b }')
      line="$line ${names[$i]} $1 req/s $3 µs CPU/req"
      [ "$2" = 0 ] || line="$line ($2 non-2xx!)"
      line="$line,"
    done
    echo "$line ${syncs:-0} fsyncs"
  done
done
echo "== means over $ROUNDS rounds (req/s), ratio to off, server CPU per request =="
for i in 0 1 2; do
  off="${sum[off$i]}"
  line="${names[$i]}:"
  for mode in "${modes[@]}"; do
    line="$line $mode $(awk -v a="${sum[$mode$i]}" -v c="${cpu[$mode$i]}" -v r="$ROUNDS" -v o="$off" \
      'BEGIN { printf "%.0f (%.3f, %.1f µs CPU/req)", a / r, a / o, c / r }')"
  done
  echo "$line"
done
