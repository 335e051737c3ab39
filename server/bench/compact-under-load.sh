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
# shellcheck source=server/bench/lib.sh
. server/bench/lib.sh
need wrk wrk || { echo "wrk is missing and could not be installed" >&2; exit 1; }
cargo build --release -p dancu-server --bin dancu-server --example sample-ids >&2
cargo build --release -p dancu-benches --bin register-bench >&2
require_snapshot
# The compacted generation is written beside the snapshot: work in $TMP, on
# a hard link when the file system allows it (a snapshot is never written in
# place, and 100 M citizens are 16 GB to copy).
ln "$SNAP" "$TMP/base.snap" 2>/dev/null || cp "$SNAP" "$TMP/base.snap"
export IDS_FILE="$TMP/ids.tsv"
"$BIN/examples/sample-ids" "$TMP/base.snap" 100000 7 >"$IDS_FILE"
"$BIN/register-bench" --snapshot "$TMP/base.snap" --changes "$CHANGES" --durable-changes 0 \
  --fill-log "$TMP/changes" >&2
"$BIN/dancu-server" --snapshot "$TMP/base.snap" --listen "127.0.0.1:$PORT" --changes "$TMP/changes" \
  --no-audit --compact-after 0 "${BENCH_SERVER_ARGS[@]}" >"$TMP/server.log" 2>&1 &
PIDS+=($!)
SERVER=$!
wait_http "http://127.0.0.1:$PORT/readyz"
# The server's peak anonymous memory (its heap: the mapped snapshot is page
# cache, not counted), sampled every second.
( peak=0; while kill -0 "$SERVER" 2>/dev/null; do
    kb=$(awk '/^RssAnon:/ {print $2}' "/proc/$SERVER/status" 2>/dev/null || echo 0)
    [ "${kb:-0}" -gt "$peak" ] && { peak=$kb; echo "$peak" >"$TMP/peak-anon-kb"; }
    sleep 1
  done ) &
PIDS+=($!)
wrk -t2 -c64 -d"$DURATION" -s "$BENCH_DIR/get.lua" "http://127.0.0.1:$PORT" >"$TMP/wrk.out" &
WRK=$!
sleep 5
echo "compacting under load:"
curl -s -X POST -H 'Authorization: Bearer dancu-demo-key' "http://127.0.0.1:$PORT/v1/admin/compact"; echo
curl -s -H 'Authorization: Bearer dancu-demo-key' "http://127.0.0.1:$PORT/v1/snapshot" | head -c 300; echo
wait $WRK
cat "$TMP/wrk.out"
echo "server peak anonymous memory: $(( $(cat "$TMP/peak-anon-kb") / 1024 )) MiB"
if grep -qE "Non-2xx|Socket errors" "$TMP/wrk.out"; then echo "FAILED REQUESTS DURING COMPACTION"; exit 1; fi
echo "no failed request during the compaction"
