#!/usr/bin/env bash
# Durable writes over HTTP, side by side with Redis 7 with appendonly yes and
# appendfsync always (every write fsynced before the reply, as dancu's change
# log does), in alternating rounds in the same run:
#   - dancu: PATCH /v1/citizens/{id} (a move) over random IDs, wrk -c64;
#   - Redis: SET of a 500-byte value (the size of a change record), redis-benchmark -c64;
# and prints the ratio. Both fsync on the same disk. Redis comes from
# Debian's redis-server (installed if missing; skipped with a message when it
# cannot be).
#
# Usage: server/bench/writes.sh          (the 1 M demo snapshot)
# Knobs: SNAP, ROUNDS (3), DURATION (10s), CONNS (64), REQUESTS (redis, 200000),
#   DANCU_ARGS (extra server flags, e.g. "--no-audit").
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
SNAP="${SNAP:-data/demo/demo-1m.snap}"
ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-10s}"
CONNS="${CONNS:-64}"
REQUESTS="${REQUESTS:-200000}"
PORT="${PORT:-28090}"
REDIS_PORT="${REDIS_PORT:-28091}"
# shellcheck source=server/bench/lib.sh
. server/bench/lib.sh
need wrk wrk || { echo "wrk is not installed and could not be; cannot measure" >&2; exit 1; }
HAVE_REDIS=1
need redis-server redis-server || { HAVE_REDIS=0; echo "SKIP redis: redis-server not installed and apt-get failed" >&2; }

cargo_build -p dancu-server --bin dancu-server --example sample-ids

if [ ! -f "$SNAP" ]; then
  if [ "$SNAP" = "data/demo/demo-1m.snap" ]; then
    "$BIN/dancu-server" --data-dir data/demo --listen "127.0.0.1:$PORT" --read-only --no-audit >"$TMP/demo.log" 2>&1 &
    pid=$!
    wait_http "http://127.0.0.1:$PORT/healthz"
    kill -TERM "$pid"; wait "$pid" || true
  else
    echo "no snapshot at $SNAP" >&2; exit 1
  fi
fi
export IDS_FILE="$TMP/ids.tsv"
"$BIN/examples/sample-ids" "$SNAP" 100000 11 >"$IDS_FILE"

echo "snapshot $SNAP; $(nproc) CPUs; load at start $(cut -d' ' -f1-3 /proc/loadavg); disk of $TMP: $(df -h "$TMP" | awk 'NR==2{print $1}')"

dancu_round() {
  rm -rf "$TMP/changes" "$TMP/bench.audit"
  # shellcheck disable=SC2086 # DANCU_ARGS is a list of flags
  "$BIN/dancu-server" --snapshot "$SNAP" --listen "127.0.0.1:$PORT" --changes "$TMP/changes" \
    --audit "$TMP/bench.audit" --compact-after 0 ${DANCU_ARGS:-} >"$TMP/dancu.log" 2>&1 &
  local pid=$!
  wait_http "http://127.0.0.1:$PORT/readyz"
  local out
  out="$(wrk -t2 -c"$CONNS" -d"$DURATION" -s "$BENCH_DIR/patch.lua" "http://127.0.0.1:$PORT")"
  echo "$out" >&2
  if echo "$out" | grep -q "Non-2xx"; then echo "WARNING: non-2xx responses" >&2; fi
  kill -TERM "$pid"; wait "$pid" || true
  echo "$out" | awk '/Requests\/sec/ { print $2 }'
}

redis_round() {
  rm -rf "$TMP/redis"; mkdir -p "$TMP/redis"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$TMP/redis" --save '' \
    --appendonly yes --appendfsync always --daemonize no >"$TMP/redis.log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
  local out
  out="$(redis-benchmark -p "$REDIS_PORT" -t set -d 500 -c "$CONNS" -n "$REQUESTS" -r 1000000 -q 2>/dev/null | tr '\r' '\n' | grep '^SET' | tail -1)"
  echo "redis: $out" >&2
  kill -TERM "$pid"; wait "$pid" || true
  echo "$out" | awk '{ print $2 }'
}

echo "| round | dancu PATCH/s (durable) | Redis SET/s (appendfsync always) | ratio |"
echo "| --- | --- | --- | --- |"
for r in $(seq 1 "$ROUNDS"); do
  d="$(dancu_round)"
  if [ "$HAVE_REDIS" = 1 ]; then
    x="$(redis_round)"
    ratio="$(awk -v a="$d" -v b="$x" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')"
  else
    x="skipped"; ratio="n/a"
  fi
  echo "| $r | $d | $x | $ratio |"
done
