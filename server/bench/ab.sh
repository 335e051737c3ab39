#!/usr/bin/env bash
# A/B of two (or more) dancu-server binaries under the same wrk load, the
# binaries alternating round after round so that neither always gets the
# fresher machine. For each binary, round and wrk script it prints wrk's
# requests/s and the server's CPU time per request (user + system from
# /proc/PID/stat over the run, divided by the requests wrk counted).
#
# Usage (from anywhere; build each binary first and copy it aside):
#   BINS="/tmp/dancu-old /tmp/dancu-new" server/bench/ab.sh
# Knobs: BINS (required), SNAP (data/demo/demo-1m.snap), ROUNDS (3),
#   DURATION (5s), CONNS (64), PORT (28080), DANCU_ARGS ("--no-audit"; the
#   throughput flags of lib.sh's BENCH_SERVER_ARGS, which binaries since
#   0ec8fb9 accept, are always added),
#   SPECS: ';'-separated "script ENV=value ..." runs, by default
#   "batch.lua MODE=get;get.lua PIPELINE=16".
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
: "${BINS:?set BINS to the server binaries to compare}"
SNAP="${SNAP:-data/demo/demo-1m.snap}"
ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-5s}"
CONNS="${CONNS:-64}"
PORT="${PORT:-28080}"
DANCU_ARGS="${DANCU_ARGS:---no-audit}"
SPECS="${SPECS:-batch.lua MODE=get;get.lua PIPELINE=16}"
# shellcheck source=server/bench/lib.sh
. server/bench/lib.sh
require_snapshot

cargo build --release -p dancu-server --example sample-ids >&2
export IDS_FILE="$TMP/ids.tsv"
"$ROOT/target/release/examples/sample-ids" "$SNAP" 100000 7 >"$IDS_FILE"

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
IFS=';' read -ra RUNS <<<"$SPECS"
for round in $(seq 1 "$ROUNDS"); do
  for bin in $BINS; do
    # shellcheck disable=SC2086 # DANCU_ARGS is a list of flags
    "$bin" --snapshot "$SNAP" --listen "127.0.0.1:$PORT" --data-dir "$TMP" $DANCU_ARGS \
      "${BENCH_SERVER_ARGS[@]}" >"$TMP/server.log" 2>&1 &
    PID=$!
    PIDS=("$PID")
    wait_http "http://127.0.0.1:$PORT/readyz"
    for run in "${RUNS[@]}"; do
      read -ra words <<<"$run"
      script="${words[0]}"
      t0=$(ticks "$PID")
      out="$(env "${words[@]:1}" wrk -t2 -c"$CONNS" -d"$DURATION" -s "$BENCH_DIR/$script" "http://127.0.0.1:$PORT" 2>&1)"
      t1=$(ticks "$PID")
      echo "$out" | awk -v ticks=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v bin="$bin" -v run="$run" -v round="$round" '
        /Requests\/sec/ { rps = $2 }
        /requests in/ { n = $1 }
        /Non-2xx|WARNING/ { bad = " " $0 }
        END { printf "round %d  %-28s %-40s %10.0f req/s %9.2f µs CPU/req%s\n", round, bin, run, rps, (n > 0 ? ticks / hz * 1e6 / n : 0), bad }'
    done
    kill -TERM "$PID"
    wait "$PID" 2>/dev/null || true
    PIDS=()
  done
done
