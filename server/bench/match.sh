#!/usr/bin/env bash
# Bulk match over HTTP: a planted NDJSON dataset (`dancu-data match-sample`:
# exact, mismatched, unknown, malformed and ID-less rows) streamed to
# POST /v1/citizens:match with curl (-T: the upload is streamed, not loaded),
# results streamed back to a file and checked against the expectations.
# Prints rows/s with and without candidates, and the server's peak RSS
# (sampled every 0.2 s) while the stream runs, which stays flat if nothing
# holds the stream.
#
# Usage (paths relative to the workspace root; the script takes no lock
# itself, so run it under the CPU lock):
#   flock /tmp/dancu-cpu.lock server/bench/match.sh
# Knobs: SNAP (data/demo/demo-1m.snap), ROWS (2000000), LAYOUT (per-core:2),
#   AUDIT (durable|buffered), PORT (28091).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
SNAP="${SNAP:-data/demo/demo-1m.snap}"
ROWS="${ROWS:-2000000}"
LAYOUT="${LAYOUT:-per-core:2}"
AUDIT="${AUDIT:-durable}"
PORT="${PORT:-28091}"
KEY="${DANCU_KEY:-dancu-demo-key}"

# shellcheck source=server/bench/lib.sh
. server/bench/lib.sh
require_snapshot
cargo_build -p dancu-server --bin dancu-server -p dancu-data --bin dancu-data

"$BIN/dancu-data" match-sample --snapshot "$SNAP" --n "$ROWS" --out "$TMP/rows.ndjson" \
  --expect "$TMP/expect.csv" 2>/dev/null
"$BIN/dancu-server" --snapshot "$SNAP" --listen "127.0.0.1:$PORT" --runtime "$LAYOUT" \
  --data-dir "$TMP" --audit "$TMP/bench.audit" --audit-durability "$AUDIT" >"$TMP/dancu.log" 2>&1 &
PID=$!
PIDS+=("$PID")
wait_http "http://127.0.0.1:$PORT/readyz"

rss_kb() { awk '/VmRSS/ { print $2 }' "/proc/$PID/status"; }
run() { # query → "rows/s peak-RSS-MiB"
  local peak t0 t1 cpid
  peak=$(rss_kb)
  t0=$(date +%s.%N)
  curl -sf -X POST -T "$TMP/rows.ndjson" -H "Authorization: Bearer $KEY" \
    -H 'Content-Type: application/x-ndjson' -o "$TMP/out.ndjson" \
    "http://127.0.0.1:$PORT/v1/citizens:match$1" &
  cpid=$!
  while kill -0 "$cpid" 2>/dev/null; do
    r=$(rss_kb); [ "$r" -gt "$peak" ] && peak=$r
    sleep 0.2
  done
  wait "$cpid"
  t1=$(date +%s.%N)
  lines=$(wc -l <"$TMP/out.ndjson")
  [ "$lines" -eq "$ROWS" ] || { echo "got $lines result lines for $ROWS rows" >&2; tail -2 "$TMP/out.ndjson" >&2; exit 1; }
  awk -v n="$ROWS" -v t0="$t0" -v t1="$t1" -v p="$peak" 'BEGIN { printf "%.0f rows/s, server peak RSS %.0f MiB\n", n / (t1 - t0), p / 1024 }'
}

echo "snapshot $SNAP, $ROWS rows ($(du -h "$TMP/rows.ndjson" | cut -f1)), layout $LAYOUT, audit $AUDIT, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "server RSS before: $(( $(rss_kb) / 1024 )) MiB"
echo "without candidates: $(run "")"
echo "with candidates:    $(run "?candidates=true")"
# The streamed answers are the offline command's: same rows, same results.
"$BIN/dancu-data" match --snapshot "$SNAP" --input "$TMP/rows.ndjson" --out "$TMP/offline.ndjson" \
  --candidates --expect "$TMP/expect.csv" --no-progress | tail -3
# The route refuses what the offline command does not know of: a subject
# named twice in one block of rows (duplicate_subject) and a subject this
# client mismatched too often (too_many_mismatches). Every other line must
# be the same bytes.
paste -d '\t' "$TMP/out.ndjson" "$TMP/offline.ndjson" | awk -F '\t' '
  $1 != $2 { differ++; if ($1 ~ /"code":"(duplicate_subject|too_many_mismatches)"/) refused++; else if (!bad) bad = NR }
  END {
    printf "HTTP vs offline: %d of %d lines differ, %d of them refusals only the route makes\n", differ, NR, refused
    if (bad) { printf "line %d differs otherwise\n", bad; exit 1 }
  }' || { echo "WARNING: HTTP and offline results differ beyond the route's refusals" >&2; exit 1; }
