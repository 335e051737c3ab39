#!/usr/bin/env bash
# What a server change costs a single GET: keep-alive GET throughput (wrk
# -t1 -c32, 5 s, no audit) of two server binaries in alternating rounds.
# Used for the issue-18 bookkeeping (queue-wait clock, admission).
# Usage: flock /tmp/dancu-cpu.lock server/bench/overload-cost.sh OLD_BIN NEW_BIN
# Knobs: SNAP (the 1 M demo), ROUNDS (3).
set -u
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
[ $# -eq 2 ] || { echo "usage: $0 OLD_BIN NEW_BIN" >&2; exit 2; }
SNAP="${SNAP:-$ROOT/data/demo/demo-1m.snap}"
ID=$("$ROOT/target/release/examples/sample-ids" "$SNAP" 1 7 2>/dev/null | cut -f1 | head -1)
ID="${ID:-001093878405}"
for round in $(seq 1 "${ROUNDS:-3}"); do
  for bin in "$1" "$2"; do
    "$bin" --snapshot "$SNAP" --listen 127.0.0.1:28195 --read-only --no-audit --no-verify >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 1 200); do curl -fs -o /dev/null http://127.0.0.1:28195/readyz && break; sleep 0.05; done
    r=$(wrk -t1 -c32 -d5s -H "Authorization: Bearer dancu-demo-key" "http://127.0.0.1:28195/v1/citizens/$ID" | awk '/Requests\/sec/ {print $2}')
    echo "round $round $bin $r"
    kill -TERM $pid; wait $pid 2>/dev/null
  done
done
