#!/usr/bin/env bash
# HTTP benchmark of dancu-server, side by side with a bare hyper server.
#
# Builds both in release, starts both on loopback, and runs the same wrk
# command against each:
#   1. GET /v1/citizens/{id}, random IDs of the snapshot, keep-alive
#      (wrk -t2 -c64 -d10s): dancu vs bare, and the ratio;
#   2. the same with 16-deep pipelining;
#   3. POST /v1/citizens:batchGet with 1000 IDs (records/s), full records and
#      the basic projection;
#   4. POST /v1/citizens:batchVerify with 1000 claims (checks/s);
#   5. GET with the audit log off vs on (the cost of auditing).
# Every figure printed is read from wrk's output; nothing is estimated.
#
# Usage (from anywhere; paths are relative to the workspace root):
#   server/bench/http.sh                          # the 1 M demo snapshot
#   SNAP=data/bench/10m.snap server/bench/http.sh # any snapshot
# Knobs: SNAP, LAYOUT (per-core:2 | multi:2), DURATION (10s), CONNS (64),
#   DANCU_ARGS (extra server flags, e.g. "--memory hugepages"),
#   WRK_THREADS (2), PIPELINE (16), ROUNDS (1), AUDIT_ROUNDS (2),
#   ONLY (get,pipeline,batch,audit,layout).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
SNAP="${SNAP:-data/demo/demo-1m.snap}"
LAYOUT="${LAYOUT:-per-core:2}"
DURATION="${DURATION:-10s}"
CONNS="${CONNS:-64}"
WRK_THREADS="${WRK_THREADS:-2}"
PIPELINE="${PIPELINE:-16}"
ROUNDS="${ROUNDS:-1}"
AUDIT_ROUNDS="${AUDIT_ROUNDS:-2}"
ONLY="${ONLY:-get,pipeline,batch,audit}"
PORT="${PORT:-28080}"
BARE_PORT="${BARE_PORT:-28081}"
export BENCH_DIR="$ROOT/server/bench"

if ! command -v wrk >/dev/null; then
  echo "installing wrk" >&2
  (apt-get install -y wrk || (apt-get update && apt-get install -y wrk)) >/dev/null
fi

cargo build --release -p dancu-server --bin dancu-server --example bare-server --example sample-ids >&2
BIN="$ROOT/target/release"
TMP="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT

for p in "$PORT" "$BARE_PORT"; do
  if ss -ltn | awk '{print $4}' | grep -q ":$p\$"; then
    echo "port $p is in use; set PORT / BARE_PORT" >&2
    exit 1
  fi
done

wait_http() { # url
  for _ in $(seq 1 1200); do
    if curl -fs -o /dev/null "$1"; then return 0; fi
    sleep 0.25
  done
  echo "timed out waiting for $1" >&2
  return 1
}

if [ "$SNAP" = "data/demo/demo-1m.snap" ]; then
  # The server's demo mode builds the demo snapshot on first run, and
  # rebuilds one left by an older build (another format version).
  "$BIN/dancu-server" --data-dir data/demo --listen "127.0.0.1:$PORT" --no-audit >"$TMP/demo.log" 2>&1 &
  pid=$!
  wait_http "http://127.0.0.1:$PORT/healthz"
  kill -TERM "$pid"
  wait "$pid" || true
elif [ ! -f "$SNAP" ]; then
  echo "no snapshot at $SNAP" >&2
  exit 1
fi

export IDS_FILE="$TMP/ids.tsv"
"$BIN/examples/sample-ids" "$SNAP" 100000 7 >"$IDS_FILE"

DANCU_PID=""
start_dancu() { # extra args...
  # shellcheck disable=SC2086 # DANCU_ARGS is a list of flags
  "$BIN/dancu-server" --snapshot "$SNAP" --listen "127.0.0.1:$PORT" --runtime "$LAYOUT" \
    --data-dir "$TMP" --client-batches 1024 --batch-queue 1024 --queue-wait-budget-ms 60000 \
      ${DANCU_ARGS:-} "$@" >"$TMP/dancu.log" 2>&1 &
  DANCU_PID=$!
  PIDS+=("$DANCU_PID")
  wait_http "http://127.0.0.1:$PORT/readyz"
}
stop_dancu() {
  kill -TERM "$DANCU_PID"
  wait "$DANCU_PID" || true
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# wrk against the server with PID $1, printing wrk's output to stderr and
# "<requests/s> <server CPU µs per request>" on stdout. The CPU figure is
# the server's user+system time over the run divided by the requests wrk
# counted: robust to other load on the machine, unlike requests/s.
run_wrk() { # pid, url, env assignments for the script...
  local pid="$1" url="$2"; shift 2
  local out t0 t1
  t0=$(cpu_ticks "$pid")
  out="$(env "$@" wrk -t"$WRK_THREADS" -c"$CONNS" -d"$DURATION" -s "$BENCH_DIR/$SCRIPT" "$url")"
  t1=$(cpu_ticks "$pid")
  echo "$out" >&2
  if echo "$out" | grep -q "Non-2xx"; then echo "WARNING: non-2xx responses" >&2; fi
  echo "$out" | awk -v ticks=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" '
    /Requests\/sec/ { rps = $2 }
    /requests in/ { n = $1 }
    END { printf "%s %.2f\n", rps, (n > 0 ? ticks / hz * 1e6 / n : 0) }'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "n/a" }'; }
# "rps cpu" pairs: field 1 or 2.
rps() { echo "$1" | cut -d' ' -f1; }
cpu() { echo "$1" | cut -d' ' -f2; }
both() { echo "$(rps "$1") req/s ($(cpu "$1") µs server CPU/req)"; }
times() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", a * b }'; }

RESULTS="$TMP/results.txt"
: >"$RESULTS"
say() { echo "$*" | tee -a "$RESULTS"; }

say "snapshot: $SNAP ($(stat -c %s "$SNAP") bytes), layout $LAYOUT, wrk -t$WRK_THREADS -c$CONNS -d$DURATION ${DANCU_ARGS:-}"
say "machine: $(nproc) CPUs, $(uname -r), load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

"$BIN/examples/bare-server" "127.0.0.1:$BARE_PORT" "$LAYOUT" >"$TMP/bare.log" 2>&1 &
BARE_PID=$!
PIDS+=("$BARE_PID")
wait_http "http://127.0.0.1:$BARE_PORT/"

start_dancu --audit "$TMP/bench.audit"
# A benchmark of "not found" measures nothing: the sample IDs must be there.
first_id="$(head -1 "$IDS_FILE" | cut -f1)"
if ! curl -fs -o /dev/null -H "Authorization: Bearer ${DANCU_KEY:-dancu-demo-key}" \
  "http://127.0.0.1:$PORT/v1/citizens/$first_id"; then
  echo "GET /v1/citizens/$first_id (a sample ID) is not 200: the snapshot and this build disagree" >&2
  exit 1
fi

for round in $(seq 1 "$ROUNDS"); do
  if [[ ",$ONLY," == *",get,"* ]]; then
    SCRIPT=get.lua
    bare=$(run_wrk "$BARE_PID" "http://127.0.0.1:$BARE_PORT" PIPELINE=1)
    dancu=$(run_wrk "$DANCU_PID" "http://127.0.0.1:$PORT" PIPELINE=1)
    say "round $round GET keep-alive: bare $(both "$bare"), dancu $(both "$dancu"), ratio $(ratio "$(rps "$dancu")" "$(rps "$bare")")"
    dancu=$(run_wrk "$DANCU_PID" "http://127.0.0.1:$PORT" PIPELINE=1 QUERY=fields=id,full_name,date_of_birth,sex,nationality)
    say "round $round GET keep-alive, basic fields: dancu $(both "$dancu"), ratio $(ratio "$(rps "$dancu")" "$(rps "$bare")")"
  fi
  if [[ ",$ONLY," == *",pipeline,"* ]]; then
    SCRIPT=get.lua
    bare=$(run_wrk "$BARE_PID" "http://127.0.0.1:$BARE_PORT" PIPELINE="$PIPELINE")
    dancu=$(run_wrk "$DANCU_PID" "http://127.0.0.1:$PORT" PIPELINE="$PIPELINE")
    say "round $round GET pipelined x$PIPELINE: bare $(both "$bare"), dancu $(both "$dancu"), ratio $(ratio "$(rps "$dancu")" "$(rps "$bare")")"
    dancu=$(run_wrk "$DANCU_PID" "http://127.0.0.1:$PORT" PIPELINE="$PIPELINE" QUERY=fields=id,full_name,date_of_birth,sex,nationality)
    say "round $round GET pipelined x$PIPELINE, basic fields: dancu $(both "$dancu"), ratio $(ratio "$(rps "$dancu")" "$(rps "$bare")")"
  fi
done

if [[ ",$ONLY," == *",batch,"* ]]; then
  SCRIPT=batch.lua
  full=$(run_wrk "$DANCU_PID" "http://127.0.0.1:$PORT" MODE=get)
  say "batchGet 1000 (all fields): $(both "$full") = $(times "$(rps "$full")" 1000) records/s"
  basic=$(run_wrk "$DANCU_PID" "http://127.0.0.1:$PORT" MODE=get FIELDS=id,full_name,date_of_birth,sex,nationality)
  say "batchGet 1000 (basic fields): $(both "$basic") = $(times "$(rps "$basic")" 1000) records/s"
  verify=$(run_wrk "$DANCU_PID" "http://127.0.0.1:$PORT" MODE=verify)
  say "batchVerify 1000: $(both "$verify") = $(times "$(rps "$verify")" 1000) checks/s"
fi

if [[ ",$ONLY," == *",audit,"* ]]; then
  # Rounds alternate which half runs first (on/off, then off/on, ...), so
  # that neither setting always gets the fresher server or machine.
  audit_phase() { # on|off: measures GET, pipelined GET and batchGet
    stop_dancu
    if [ "$1" = on ]; then start_dancu --audit "$TMP/bench-$round.audit"; else start_dancu --no-audit; fi
    SCRIPT=get.lua run_wrk "$DANCU_PID" "http://127.0.0.1:$PORT" PIPELINE=1
    SCRIPT=get.lua run_wrk "$DANCU_PID" "http://127.0.0.1:$PORT" PIPELINE="$PIPELINE"
    SCRIPT=batch.lua run_wrk "$DANCU_PID" "http://127.0.0.1:$PORT" MODE=get FIELDS=id,full_name,date_of_birth,sex,nationality
  }
  declare -a sum_on=(0 0 0) sum_off=(0 0 0)
  names=("GET" "GET pipelined x$PIPELINE" "batchGet 1000 basic")
  for round in $(seq 1 "$AUDIT_ROUNDS"); do
    if [ $((round % 2)) -eq 1 ]; then order=(on off); else order=(off on); fi
    declare -A got=()
    for phase in "${order[@]}"; do
      # Not in a subshell: the phase's server must be the one stop_dancu stops.
      audit_phase "$phase" >"$TMP/phase.txt"
      mapfile -t lines <"$TMP/phase.txt"
      for i in 0 1 2; do got[$phase$i]="${lines[$i]}"; done
    done
    for i in 0 1 2; do
      on="${got[on$i]}" off="${got[off$i]}"
      sum_on[i]=$(awk -v a="${sum_on[i]}" -v b="$(rps "$on")" 'BEGIN { print a + b }')
      sum_off[i]=$(awk -v a="${sum_off[i]}" -v b="$(rps "$off")" 'BEGIN { print a + b }')
      say "audit round $round (${order[0]} first), ${names[i]}: on $(both "$on"), off $(both "$off"), on/off $(ratio "$(rps "$on")" "$(rps "$off")")"
    done
    unset got
  done
  for i in 0 1 2; do
    say "audit on/off over $AUDIT_ROUNDS rounds, ${names[i]}: $(ratio "${sum_on[i]}" "${sum_off[i]}")"
  done
fi
stop_dancu

if [[ ",$ONLY," == *",layout,"* ]]; then
  for layout in per-core:2 multi:2; do
    LAYOUT=$layout start_dancu --no-audit
    SCRIPT=get.lua
    a=$(run_wrk "$DANCU_PID" "http://127.0.0.1:$PORT" PIPELINE=1)
    b=$(run_wrk "$DANCU_PID" "http://127.0.0.1:$PORT" PIPELINE="$PIPELINE")
    say "layout $layout: GET $(both "$a"), pipelined x$PIPELINE $(both "$b")"
    stop_dancu
  done
fi

echo
echo "== summary =="
cat "$RESULTS"
