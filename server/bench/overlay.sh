#!/usr/bin/env bash
# The read cost of the live register's overlay over HTTP: GET (keep-alive)
# and batchGet (1000 IDs) against two servers on the same snapshot, one
# with an empty change log and one whose log holds CHANGES changes (replayed
# into the overlay at start), in rounds whose order alternates; prints the
# ratio of each round and their median.
# Usage: server/bench/overlay.sh     Knobs: SNAP (1 M demo), CHANGES (1000000),
#   ROUNDS (3), DURATION (10s), CONNS (64).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
SNAP="${SNAP:-data/demo/demo-1m.snap}"
CHANGES="${CHANGES:-1000000}"
ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-10s}"
CONNS="${CONNS:-64}"
# shellcheck source=server/bench/lib.sh
. server/bench/lib.sh
need wrk wrk || { echo "wrk is missing and could not be installed" >&2; exit 1; }
cargo build --release -p dancu-server --bin dancu-server --example sample-ids >&2
cargo build --release -p dancu-benches --bin register-bench >&2
require_snapshot

export IDS_FILE="$TMP/ids.tsv"
"$BIN/examples/sample-ids" "$SNAP" 100000 7 >"$IDS_FILE"
echo "filling a change log with $CHANGES changes" >&2
"$BIN/register-bench" --snapshot "$SNAP" --changes "$CHANGES" --durable-changes 0 --fill-log "$TMP/full" >&2
start() { # port, changes dir
  "$BIN/dancu-server" --snapshot "$SNAP" --listen "127.0.0.1:$1" --changes "$2" --no-audit "${BENCH_SERVER_ARGS[@]}" \
    --compact-after 0 >"$TMP/server-$1.log" 2>&1 &
  PIDS+=($!)
  wait_http "http://127.0.0.1:$1/readyz"
}
start 28101 "$TMP/empty"
start 28102 "$TMP/full"
grep -h "replayed" "$TMP"/server-*.log >&2 || true
rps() { awk '/Requests\/sec/ { print $2 }'; }
run() { # port, script, env...
  local port="$1" script="$2"; shift 2
  env "$@" wrk -t2 -c"$CONNS" -d"$DURATION" -s "$BENCH_DIR/$script" "http://127.0.0.1:$port" | rps
}
echo "| round | GET empty | GET 1 M changes | ratio | batchGet empty (records/s) | batchGet 1 M changes | ratio |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
GET_RATIOS=() BATCH_RATIOS=()
for r in $(seq 1 "$ROUNDS"); do
  # The order alternates, so that neither server always runs second (on a
  # machine whose speed drifts, the later run of a pair is not the fresher).
  if [ $((r % 2)) = 1 ]; then
    g0=$(run 28101 get.lua); g1=$(run 28102 get.lua)
    b0=$(run 28101 batch.lua MODE=get); b1=$(run 28102 batch.lua MODE=get)
  else
    g1=$(run 28102 get.lua); g0=$(run 28101 get.lua)
    b1=$(run 28102 batch.lua MODE=get); b0=$(run 28101 batch.lua MODE=get)
  fi
  printf "| %s | %s | %s | %.3f | %.0f | %.0f | %.3f |\n" "$r" "$g0" "$g1" "$(echo "$g1 / $g0" | bc -l)" \
    "$(echo "$b0 * 1000" | bc -l)" "$(echo "$b1 * 1000" | bc -l)" "$(echo "$b1 / $b0" | bc -l)"
  GET_RATIOS+=("$(echo "$g1 / $g0" | bc -l)") BATCH_RATIOS+=("$(echo "$b1 / $b0" | bc -l)")
done
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.3f", m }'; }
echo "median ratio: GET $(median "${GET_RATIOS[@]}"), batchGet $(median "${BATCH_RATIOS[@]}") (1 M changes / empty)"
