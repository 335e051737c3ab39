#!/usr/bin/env bash
# Cross-checks `--find-capacity` with an independent tool: the rate loadgen
# finds, then `hey` rate-limited to that rate, and loadgen again at that
# rate, side by side (p50, p99, throughput and the ratios).
#
#   [RATE=R] loadgen/scripts/capacity-crosscheck.sh SNAPSHOT [SLO] [SECONDS] [ROUNDS]
#
# It starts dancu on SNAPSHOT (read-only, demo key, loopback; audit off
# unless AUDIT=buffered|durable, then a fresh log in a temporary directory)
# and sends `GET /v1/citizens/ID` for one ID sampled from the snapshot,
# which is all hey can send. Steps:
# 1. `dancu-loadgen --find-capacity --slo SLO` (default "p99<5ms", 5 s
#    steps): the highest open-model rate R that holds (RATE=R skips it);
# 2. ROUNDS (default 2) alternating rounds of SECONDS (default 20) each:
#    `hey -z SECONDS -c C -q R/C` and `dancu-loadgen --rate R`.
#
# How hey paces: each of its C workers sends, waits for the answer, then
# waits for its next tick of R/C per second; a tick that comes while an
# answer is awaited is dropped, and hey times each request from its actual
# send. So hey is open-model (and comparable to loadgen, which times from
# the intended send) only while answers come back well within a worker's
# period C/R. C is picked so that the period is twice the SLO's limit
# (C = ceil(R x 2 x limit)), at most 900 (dancu lets one address hold 1,000
# connections by default); the script prints how many ticks hey dropped
# (R x SECONDS minus what it sent): many dropped ticks mean hey's figures
# hide queueing that loadgen's include, or that hey could not keep up.
#
# hey is installed with apt-get when absent and the script runs as root;
# otherwise the script says so and stops (exit status 0: a skip, not a
# failure). Takes the shared CPU lock itself, once per run (do NOT wrap it
# in flock). Needs release builds of dancu-server, dancu-loadgen and
# dancu-data (target/release, or $BIN).
set -euo pipefail
snap=$1 slo=${2:-p99<5ms} secs=${3:-20} rounds=${4:-2}
bin=${BIN:-target/release}
lock=${LOCK:-/tmp/dancu-cpu.lock}
port=${PORT:-18492}
url=http://127.0.0.1:$port
key=dancu-demo-key

if ! command -v hey > /dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
        apt-get install -y hey > /dev/null 2>&1 || true
    fi
    if ! command -v hey > /dev/null; then
        echo "SKIP: hey is not installed (Debian: apt-get install hey); no cross-check made"
        exit 0
    fi
fi

work=$(mktemp -d)
. "$(dirname "$0")/server-lib.sh"
cleanup() { stop_server; rm -rf "$work"; }
trap cleanup EXIT

id=$("$bin/dancu-data" sample-keys --from "$snap" --n 1 --kind id)
echo "$id" > "$work/keys"
audit=(--no-audit)
if [ -n "${AUDIT:-}" ]; then
    audit=(--audit "$work/audit.log" --audit-durability "$AUDIT")
fi
start_server "$work/server.log" "$bin/dancu-server" --snapshot "$snap" --no-verify --read-only \
    "${audit[@]}" --listen "127.0.0.1:$port"

lg=("$bin/dancu-loadgen" --target "$url" --key "$key" --keys-id "$work/keys" --op get)
if [ -n "${RATE:-}" ]; then
    rate=$RATE
    echo "1. rate given: $rate/s (no search)"
else
    echo "1. --find-capacity --slo '$slo' (5 s steps) on GET /v1/citizens/$id, audit ${AUDIT:-off}"
    flock "$lock" "${lg[@]}" --find-capacity --slo "$slo" --step-duration 5s --json > "$work/search.out"
    grep -v '^{' "$work/search.out" | sed 's/^/   /'
    rate=$(tail -1 "$work/search.out" | python3 -c '
import json, sys
c = json.loads(sys.stdin.read()).get("capacity")
print(int(c) if c else 0)')
fi
if [ "$rate" = 0 ]; then
    echo "the search found no rate that held; nothing to cross-check"
    exit 1
fi
conns=$(python3 - "$slo" "$rate" <<'PY'
import math, re, sys
slo, rate = sys.argv[1], float(sys.argv[2])
m = re.search(r"<\s*([0-9.]+)\s*(us|ms|s)", slo)
limit = float(m.group(1)) * {"us": 1e-6, "ms": 1e-3, "s": 1.0}[m.group(2)] if m else 0.005
print(min(900, max(1, math.ceil(rate * 2 * limit))))
PY
)
per_worker=$(python3 -c "print(f'{$rate / $conns:.3f}')")
echo "2. at the found rate $rate/s: hey -c $conns -q $per_worker (per worker) against loadgen --rate $rate, $rounds round(s) of ${secs}s"

hey_round() {
    flock "$lock" hey -z "${secs}s" -c "$conns" -q "$per_worker" -H "Authorization: Bearer $key" \
        "$url/v1/citizens/$id" > "$work/hey.out"
    python3 - "$work/hey.out" "$rate" "$secs" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
rate, secs = float(sys.argv[2]), float(sys.argv[3])
rps = float(re.search(r"Requests/sec:\s*([0-9.]+)", text).group(1))
def pct(p):
    m = re.search(r"\b%s%%+ in ([0-9.]+) secs" % p, text)
    return float(m.group(1)) * 1e6 if m else float("nan")
codes = " ".join(re.findall(r"\[(\d+)\]\s+(\d+) responses", text) and
                 ["%s:%s" % c for c in re.findall(r"\[(\d+)\]\s+(\d+) responses", text)])
dropped = max(0.0, rate * secs - rps * secs)
print(f"hey {rps:.0f} {pct(50):.0f} {pct(99):.0f} {dropped:.0f} {codes or '-'}")
PY
}

lg_round() {
    flock "$lock" "${lg[@]}" --rate "$rate" -d "${secs}s" -q --json > "$work/lg.out"
    tail -1 "$work/lg.out" | python3 -c '
import json, sys
d = json.loads(sys.stdin.read())
print("loadgen %.0f %d %d %d %s" % (d["requests_per_s"], d["p50_us"], d["p99_us"], d["unsent"],
      " ".join("%s:%s" % kv for kv in d["statuses"].items()) or "-"))'
}

: > "$work/rounds"
for r in $(seq 1 "$rounds"); do
    hey_round | tee -a "$work/rounds" | sed "s/^/   round $r: /"
    lg_round | tee -a "$work/rounds" | sed "s/^/   round $r: /"
done
python3 - "$work/rounds" "$rate" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
rate = float(sys.argv[2])
def med(tool, col):
    return statistics.median(float(r[col]) for r in rows if r[0] == tool)
print("   (round columns: tool, req/s, p50 us, p99 us, dropped ticks (hey) or unsent (loadgen), statuses)")
print(f"3. medians at {rate:.0f}/s        {'req/s':>9} {'p50':>9} {'p99':>9}")
for tool in ("loadgen", "hey"):
    print(f"   {tool:<22} {med(tool, 1):>9.0f} {med(tool, 2):>7.0f}us {med(tool, 3):>7.0f}us")
for name, col in (("throughput", 1), ("p50", 2), ("p99", 3)):
    ratio = med("loadgen", col) / med("hey", col)
    verdict = "within 10 %" if abs(ratio - 1) <= 0.10 else "NOT within 10 %"
    print(f"   loadgen / hey {name:<10} {ratio:6.3f}  ({verdict})")
PY
