# Shared by the register's bench scripts (writes.sh, overlay.sh,
# compact-under-load.sh): sourced after ROOT is set and the working
# directory is the workspace root.

export BENCH_DIR="$ROOT/server/bench"
# The cargo profile of the binaries: release unless DANCU_PROFILE=dev (the
# debug builds CI already has, for a harness check rather than figures).
PROFILE="${DANCU_PROFILE:-release}"
if [ "$PROFILE" = dev ]; then BIN="$ROOT/target/debug"; else BIN="$ROOT/target/$PROFILE"; fi
cargo_build() { cargo build --profile "$PROFILE" "$@" >&2; }

# need COMMAND PACKAGE: installs PACKAGE from Debian if COMMAND is missing;
# fails (status 1) when it cannot.
need() {
  command -v "$1" >/dev/null && return 0
  echo "installing $2" >&2
  (apt-get install -y "$2" || (apt-get update && apt-get install -y "$2")) >/dev/null 2>&1 || true
  command -v "$1" >/dev/null
}

# A temporary directory and the background processes to stop on exit.
TMP="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT

# wait_http URL: until URL answers 2xx (5 minutes at most).
wait_http() {
  for _ in $(seq 1 1200); do
    curl -fs -o /dev/null "$1" && return 0
    sleep 0.25
  done
  echo "timed out waiting for $1" >&2
  return 1
}

# require_snapshot: the snapshot in $SNAP must exist.
require_snapshot() {
  [ -f "$SNAP" ] || { echo "no snapshot at $SNAP (run 'cargo run --release -p dancu-server' once)" >&2; exit 1; }
}

# Server flags for throughput benchmarks: wrk sends every batch with one key
# over 64 connections (×16 when pipelined), and issue 18's shedding (16
# batches per client, a 50 ms queue-wait budget) would answer many of them
# 503 at saturation. A benchmark measures throughput, not that policy
# (server/tests/integration/overload.rs tests it; overload.sh measures it).
# shellcheck disable=SC2034 # used by the scripts that source this file
BENCH_SERVER_ARGS=(--client-batches 1024 --batch-queue 1024 --queue-wait-budget-ms 60000)
