#!/usr/bin/env bash
# Compaction under load: a server whose change log holds CHANGES changes
# (replayed at start) serves wrk GETs (and batchGets) while POST
# /v1/admin/compact folds the log into the next generation and swaps it in.
# Prints wrk's non-2xx and socket errors (expected: none) and the compaction's
# figures. Usage: server/bench/compact-under-load.sh
# Knobs: SNAP (1 M demo), CHANGES (1000000), DURATION (40s).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
SNAP="${SNAP:-data/demo/demo-1m.snap}"
CHANGES="${CHANGES:-1000000}"
DURATION="${DURATION:-40s}"
PORT="${PORT:-28111}"
export BENCH_DIR="$ROOT/server/bench"
command -v wrk >/dev/null || apt-get install -y wrk >/dev/null
cargo build --release -p dancu-server --bin dancu-server --example sample-ids >&2
cargo build --release -p dancu-benches --bin register-bench >&2
BIN="$ROOT/target/release"
[ -f "$SNAP" ] || { echo "no snapshot at $SNAP (run the demo server once)" >&2; exit 1; }
TMP="$(mktemp -d)"
PID=""
cleanup() { [ -n "$PID" ] && kill -TERM "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
# The compacted generation is written beside the snapshot: work on a copy.
cp "$SNAP" "$TMP/base.snap"
export IDS_FILE="$TMP/ids.tsv"
"$BIN/examples/sample-ids" "$TMP/base.snap" 100000 7 >"$IDS_FILE"
"$BIN/register-bench" --snapshot "$TMP/base.snap" --changes "$CHANGES" --durable-changes 0 \
  --fill-log "$TMP/changes" >&2
"$BIN/dancu-server" --snapshot "$TMP/base.snap" --listen "127.0.0.1:$PORT" --changes "$TMP/changes" \
  --no-audit --compact-after 0 >"$TMP/server.log" 2>&1 &
PID=$!
for _ in $(seq 1 600); do curl -fs -o /dev/null "http://127.0.0.1:$PORT/readyz" && break; sleep 0.25; done
wrk -t2 -c64 -d"$DURATION" -s "$BENCH_DIR/get.lua" "http://127.0.0.1:$PORT" >"$TMP/wrk.out" &
WRK=$!
sleep 5
echo "compacting under load:"
curl -s -X POST -H 'Authorization: Bearer dancu-demo-key' "http://127.0.0.1:$PORT/v1/admin/compact"; echo
curl -s -H 'Authorization: Bearer dancu-demo-key' "http://127.0.0.1:$PORT/v1/snapshot" | head -c 300; echo
wait $WRK
cat "$TMP/wrk.out"
if grep -qE "Non-2xx|Socket errors" "$TMP/wrk.out"; then echo "FAILED REQUESTS DURING COMPACTION"; exit 1; fi
echo "no failed request during the compaction"
