#!/usr/bin/env bash
# loadgen's own CPU per request for bulk re-verification traffic
# (profiles/bulk-only.toml: batch bodies of 100–1,000 claims), for one or
# more loadgen binaries in alternating rounds against one dancu server.
#
#   loadgen/scripts/bulk-cpu.sh ROUNDS LOADGEN_A [LOADGEN_B ...]
#
# SERVER (default target/release/dancu-server) serves SNAP (default the
# 1 M demo) read-only with the audit off and admission limits lifted, so
# that every batch is served and only the generator's cost varies.
# Prints, per round and binary, loadgen's report fields: CPU µs per
# request, cores, behind-schedule p99, errors.
# Takes the shared CPU lock itself, once per loadgen run (do NOT wrap it).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=$1; shift
SERVER=${SERVER:-target/release/dancu-server}
SNAP=${SNAP:-data/demo/demo-1m.snap}
PORT=${PORT:-18681}
tmp=$(mktemp -d)
$SERVER --snapshot "$SNAP" --listen 127.0.0.1:$PORT --no-audit --read-only --no-verify \
  --client-batches 1024 --batch-queue 1024 --queue-wait-budget-ms 60000 >"$tmp/server.log" 2>&1 &
spid=$!
trap 'kill $spid; rm -rf "$tmp"' EXIT
for _ in $(seq 600); do curl -fs -o /dev/null http://127.0.0.1:$PORT/readyz && break; sleep 0.5; done
for r in $(seq "$ROUNDS"); do
  for lg in "$@"; do
    flock /tmp/dancu-cpu.lock "$lg" --target http://127.0.0.1:$PORT --key dancu-demo-key --snapshot "$SNAP" \
      --profile loadgen/profiles/bulk-only.toml ${LG_ARGS:-} -q --json >"$tmp/out.json" 2>"$tmp/err.txt" \
      || { echo "$lg failed:"; tail "$tmp/err.txt"; continue; }
    python3 -c "
import json, sys
d = json.load(open(sys.argv[1]))
print(sys.argv[2], 'round', sys.argv[3], {k: d[k] for k in ['cpu_us_per_request', 'generator_cores', 'requests', 'requests_per_s', 'behind_schedule_p99_us', 'p99_us', 'errors', 'shed']})
" "$tmp/out.json" "$lg" "$r"
  done
done
