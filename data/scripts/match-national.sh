#!/usr/bin/env bash
# Bulk matching at national scale (issue 13): `dancu-data match` over
# ROWS planted rows against a format-5 snapshot of CITIZENS, with and
# without candidates, then with the `--expect` check (0 wrong, and the
# share of ID-less rows whose true ID is among the candidates); wall time
# and peak RSS of each command from /usr/bin/time. The snapshot is built
# at SNAP if missing (about 4 min and 17 GB at 100 M).
#
#   data/scripts/match-national.sh          # 100 M citizens, 10 M rows
#
# Takes the shared CPU lock for each step itself: do NOT wrap it in flock.
# Knobs: CITIZENS (100000000), ROWS (10000000), SNAP
# (data/bench/national-100m-f5.snap), WORK (a temp dir: rows, removed).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
CITIZENS="${CITIZENS:-100000000}"
ROWS="${ROWS:-10000000}"
SNAP="${SNAP:-data/bench/national-100m-f5.snap}"
WORK="${WORK:-$(mktemp -d)}"
trap 'rm -rf "$WORK"' EXIT
LOCK=/tmp/dancu-cpu.lock
B=target/release/dancu-data
timed() { flock "$LOCK" /usr/bin/time -f "%e s wall, %M KB peak RSS" "$@"; }

flock "$LOCK" cargo build --release -p dancu-data
if [ ! -f "$SNAP" ]; then
  mkdir -p "$(dirname "$SNAP")"
  echo "== building $CITIZENS citizens (format 5) at $SNAP"
  timed "$B" build --synthetic "$CITIZENS" --seed 1 --out "$SNAP" --no-progress
fi
echo "== sampling $ROWS planted rows"
timed "$B" match-sample --snapshot "$SNAP" --n "$ROWS" --out "$WORK/rows.ndjson" --expect "$WORK/expect.ndjson"
head -1000000 "$WORK/rows.ndjson" >"$WORK/rows-1m.ndjson"
for input in rows-1m rows; do
  for candidates in "" --candidates; do
    echo "== match $input ${candidates:-(no candidates)}"
    timed "$B" match --snapshot "$SNAP" --input "$WORK/$input.ndjson" --out "$WORK/out.ndjson" --no-progress $candidates
  done
done
echo "== match rows --candidates --expect"
timed "$B" match --snapshot "$SNAP" --input "$WORK/rows.ndjson" --out "$WORK/out.ndjson" --no-progress \
  --candidates --expect "$WORK/expect.ndjson"
