#!/usr/bin/env bash
# Cross-checks `--find-capacity` with an independent tool: the rate loadgen
# finds, then the other tool rate-limited to that rate, and loadgen again at
# that rate, side by side (p50, p99, throughput and the ratios).
#
#   [RATE=R] [TOOL=oha|hey] loadgen/scripts/capacity-crosscheck.sh SNAPSHOT [SLO] [SECONDS] [ROUNDS]
#
# It starts dancu on SNAPSHOT (read-only, demo key, loopback; audit off
# unless AUDIT=buffered|durable, then a fresh log in a temporary directory)
# and sends `GET /v1/citizens/ID` for one ID sampled from the snapshot,
# which is all hey can send. Steps:
# 1. `dancu-loadgen --find-capacity --slo SLO` (default "p99<5ms", 5 s
#    steps): the highest open-model rate R that holds (RATE=R skips it);
# 2. ROUNDS (default 2) alternating rounds of SECONDS (default 20) each:
#    the tool at R, and `dancu-loadgen --rate R`;
# 3. medians and ratios of throughput, p50 and p99;
# 4. the bracket: the tool again at 1.1 x R. The SLO holding at R and
#    breaking at 1.1 x R as the tool measures it puts the tool's own
#    capacity within 10 % of loadgen's.
#
# The tool: oha when found (TOOL=oha, `oha` on PATH or OHA=/path/to/oha;
# not in Debian: `cargo install oha --locked`), else hey (apt-get install
# hey, done here when absent and run as root).
# - oha `-q R --latency-correction` paces all its connections together and
#   times each request from its intended send, as loadgen does: the same
#   open model, so its figures are comparable at any load.
# - hey: each of its C workers sends, waits for the answer, then waits for
#   its next tick of R/C per second; a tick that comes while an answer is
#   awaited is dropped, and hey times each request from its actual send. So
#   hey is open-model only while answers come back well within a worker's
#   period C/R.
# C is picked so that a worker's period is twice the SLO's limit
# (C = ceil(R x 2 x limit)), at most 900 (dancu lets one address hold 1,000
# connections by default); the script prints how many requests the tool
# fell short of R x SECONDS: many mean its figures hide queueing that
# loadgen's include, or that it could not keep up.
#
# With neither tool the script says so and stops (exit status 0: a skip,
# not a failure). Takes the shared CPU lock itself, once per run (do NOT
# wrap it in flock). Needs release builds of dancu-server, dancu-loadgen
# and dancu-data (target/release, or $BIN).
set -euo pipefail
snap=$1 slo=${2:-p99<5ms} secs=${3:-20} rounds=${4:-2}
bin=${BIN:-target/release}
lock=${LOCK:-/tmp/dancu-cpu.lock}
port=${PORT:-18492}
url=http://127.0.0.1:$port
key=dancu-demo-key

oha=${OHA:-$(command -v oha || true)}
tool=${TOOL:-}
if [ -z "$tool" ]; then
    if [ -n "$oha" ] && [ -x "$oha" ]; then tool=oha; else tool=hey; fi
fi
if [ "$tool" = oha ] && { [ -z "$oha" ] || [ ! -x "$oha" ]; }; then
    echo "SKIP: oha is not installed (cargo install oha --locked, then OHA=PATH); no cross-check made"
    exit 0
fi
if [ "$tool" = hey ] && ! command -v hey > /dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
        apt-get install -y hey > /dev/null 2>&1 || true
    fi
    if ! command -v hey > /dev/null; then
        echo "SKIP: neither oha nor hey is installed (Debian: apt-get install hey); no cross-check made"
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
if [ "$tool" = oha ]; then
    echo "2. at the found rate $rate/s: oha -c $conns -q $rate --latency-correction against loadgen --rate $rate, $rounds round(s) of ${secs}s"
else
    echo "2. at the found rate $rate/s: hey -c $conns -q $per_worker (per worker) against loadgen --rate $rate, $rounds round(s) of ${secs}s"
fi

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

oha_round() {
    flock "$lock" "$oha" -z "${secs}s" -c "$conns" -q "$rate" --latency-correction --no-tui \
        --output-format json -H "Authorization: Bearer $key" "$url/v1/citizens/$id" > "$work/oha.out"
    python3 - "$work/oha.out" "$rate" "$secs" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
rate, secs = float(sys.argv[2]), float(sys.argv[3])
rps = d["summary"]["requestsPerSec"]
lat = d["latencyPercentiles"]
codes = " ".join("%s:%s" % kv for kv in d.get("statusCodeDistribution", {}).items())
short = max(0.0, rate * secs - rps * secs)
print(f"oha {rps:.0f} {lat['p50'] * 1e6:.0f} {lat['p99'] * 1e6:.0f} {short:.0f} {codes or '-'}")
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
    "${tool}_round" | tee -a "$work/rounds" | sed "s/^/   round $r: /"
    lg_round | tee -a "$work/rounds" | sed "s/^/   round $r: /"
done
python3 - "$work/rounds" "$rate" "$tool" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
rate, other = float(sys.argv[2]), sys.argv[3]
def med(tool, col):
    return statistics.median(float(r[col]) for r in rows if r[0] == tool)
print("   (round columns: tool, req/s, p50 us, p99 us, requests short of the rate (oha, hey) or unsent (loadgen), statuses)")
print(f"3. medians at {rate:.0f}/s        {'req/s':>9} {'p50':>9} {'p99':>9}")
for tool in ("loadgen", other):
    print(f"   {tool:<22} {med(tool, 1):>9.0f} {med(tool, 2):>7.0f}us {med(tool, 3):>7.0f}us")
for name, col in (("throughput", 1), ("p50", 2), ("p99", 3)):
    ratio = med("loadgen", col) / med(other, col)
    verdict = "within 10 %" if abs(ratio - 1) <= 0.10 else "NOT within 10 %"
    print(f"   loadgen / {other} {name:<10} {ratio:6.3f}  ({verdict})")
PY

# The bracket: the SLO's percentile as the other tool measures it, at R and
# at 1.1 x R. If it holds at R and breaks at 1.1 x R, the other tool's own
# capacity for the SLO lies within 10 % of loadgen's. (Each tool's absolute
# latency includes its own cost on the shared cores, so the two p50s need
# not agree; where each sees the SLO break is what a planner uses.)
found=$rate
rate=$(python3 -c "print(round($found * 1.1))")
if [ "$tool" = hey ]; then
    per_worker=$(python3 -c "print(f'{$rate / $conns:.3f}')")
fi
echo "4. the bracket: $tool at 1.1 x $found = $rate/s, $rounds round(s)"
: > "$work/above"
for r in $(seq 1 "$rounds"); do
    "${tool}_round" | tee -a "$work/above" | sed "s/^/   round $r: /"
done
python3 - "$work/rounds" "$work/above" "$slo" "$tool" "$found" "$rate" <<'PY'
import re, statistics, sys
at = [l.split() for l in open(sys.argv[1]) if l.split()[0] == sys.argv[4]]
above = [l.split() for l in open(sys.argv[2])]
slo, tool, found, higher = sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
m = re.search(r"p(\d+)\s*<\s*([0-9.]+)\s*(us|ms|s)", slo)
if not m or m.group(1) not in ("50", "99"):
    print(f"   (the SLO '{slo}' is not a p50 or p99 limit: no bracket verdict)")
    sys.exit(0)
col = 2 if m.group(1) == "50" else 3
limit_us = float(m.group(2)) * {"us": 1, "ms": 1e3, "s": 1e6}[m.group(3)]
held = statistics.median(float(r[col]) for r in at)
broke = statistics.median(float(r[col]) for r in above)
if held > limit_us:
    verdict = f"NOT bracketed: {tool} sees the SLO broken already at {found}/s (its capacity is below loadgen's)"
elif broke <= limit_us:
    verdict = f"NOT bracketed: {tool} sees the SLO still held at {higher}/s (its capacity is above loadgen's by 10 % or more, or the box sped up)"
else:
    verdict = "holds, then breaks: its capacity is within 10 % of loadgen's"
print(f"   {tool} p{m.group(1)}: {held:.0f}us at {found}/s, {broke:.0f}us at {higher}/s (limit {limit_us:.0f}us): {verdict}")
PY

