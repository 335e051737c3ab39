#!/usr/bin/env bash
# dancu-loadgen through nginx (TLS, --ca) while the local cluster is
# disturbed; loadgen's own per-second timeline shows the blip.
#
#   deploy/loadgen-disturb.sh restart    # the primary: SIGTERM + start at
#                                        # 10 s, kill -9 + start at 22 s
#   deploy/loadgen-disturb.sh combined   # kill -9 f1 at 10 s and, while it
#                                        # is down, restart the primary;
#                                        # f1 back at 16 s; kill -9 + start
#                                        # of the primary at 24 s
#   deploy/loadgen-disturb.sh rolling    # a rolling restart: SIGTERM + start
#                                        # f1 at 8 s, f2 at 16 s; then a
#                                        # compaction of the primary through
#                                        # nginx at 24 s
#
# A cluster (deploy/local-cluster.sh up) takes, for DURATION (40 s), two
# loadgen processes through nginx at once, so that the timeline splits
# reads from writes: READ_RATE/s `get` (2,000) and WRITE_RATE/s `register`
# (100; loadgen does not retry, so a write refused while the primary is down
# is its blip). Beside them deploy/load-and-verify.py reads and writes with
# retries and checks that every write it had acknowledged is readable, with
# its name, on the primary and on both followers afterwards. At the end:
# every node holds the primary's last sequence, and the sequence grew over
# the run by at least loadgen's 201s plus the checker's acknowledged writes
# (more only if a write in flight at a kill -9 was made durable without its
# answer): no acknowledged write was lost.
#
# Prints the timeline (deploy/loadgen-timeline.py) and one JSON summary;
# exits 1 if a check failed. Reports stay in OUT (default a temp dir that is
# removed). Takes the shared CPU lock itself: do NOT wrap it in flock.
# Environment: as local-cluster.sh (DANCU_BIN, DANCU_SNAPSHOT), LOADGEN
# (target/release/dancu-loadgen), DURATION, READ_RATE, WRITE_RATE, OUT.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SCENARIO=${1:?usage: $0 restart|combined|rolling}
[[ $SCENARIO =~ ^(restart|combined|rolling)$ ]] || { echo "usage: $0 restart|combined|rolling" >&2; exit 2; }
CLUSTER="$ROOT/deploy/local-cluster.sh"
LOADGEN=${LOADGEN:-$ROOT/target/release/dancu-loadgen}
SNAPSHOT=${DANCU_SNAPSHOT:-$ROOT/data/demo/demo-1m.snap}
DURATION=${DURATION:-40}
READ_RATE=${READ_RATE:-2000}
WRITE_RATE=${WRITE_RATE:-100}
export CLUSTER_DIR=${CLUSTER_DIR:-$(mktemp -u /tmp/dancu-disturb.XXXXXX)}
WORK=$(mktemp -d)
OUT=${OUT:-$WORK/out}
mkdir -p "$OUT"
[[ -x $LOADGEN ]] || { echo "no $LOADGEN (cargo build --release -p dancu-loadgen)" >&2; exit 2; }
trap '"$CLUSTER" down >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT

exec 9>>/tmp/dancu-cpu.lock
flock 9
"$CLUSTER" up >/dev/null
# shellcheck disable=SC1091
source "$CLUSTER_DIR/env"

applied() { # the primary's last durable sequence
    curl -s -D - -o /dev/null -H "Authorization: Bearer $ADMIN_KEY" \
        "$PRIMARY_URL/v1/changes?after=0&limit=1" | tr -d '\r' |
        awk -F': ' 'tolower($1)=="x-dancu-applied"{print $2}'
}
follower_applied() { # URL
    curl -s "$1/readyz" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("applied",0))'
}
event() { echo "$(date +%s%3N) $*" >>"$OUT/events.txt"; }
at() { # seconds since the loadgen start, then the action
    local wait_s; wait_s=$(python3 -c "import time; print(max(0, $start_s + $1 - time.time()))")
    sleep "$wait_s"
}

stop_file=$WORK/stop
python3 "$ROOT/deploy/load-and-verify.py" "$stop_file" >"$OUT/load-and-verify.json" &
checker=$!
for _ in $(seq 300); do [[ -e $stop_file.started ]] && break; sleep 0.1; done
[[ -e $stop_file.started ]] || { echo "load-and-verify did not start" >&2; exit 1; }

common=(--target "$NGINX_URL" --ca "$CLUSTER_DIR/tls/ca.crt" --key "$ADMIN_KEY"
    --snapshot "$SNAPSHOT" --snapshot-sample 100000 --duration "${DURATION}s" -q --json)
"$LOADGEN" "${common[@]}" --op get --rate "$READ_RATE" --report "$OUT/reads" \
    >"$OUT/reads.json" 2>"$OUT/reads.err" &
reads=$!
"$LOADGEN" "${common[@]}" --op register --rate "$WRITE_RATE" --report "$OUT/writes" \
    >"$OUT/writes.json" 2>"$OUT/writes.err" &
writes=$!
# loadgen samples its keys before it starts the clock (about a second):
# the events are placed against its started_unix_ms afterwards.
start_s=$(date +%s.%N)
if [[ $SCENARIO == restart ]]; then
    at 10; event "stop p"; "$CLUSTER" stop p; event "start p"; "$CLUSTER" start p; event "p ready"
    at 22; event "kill9 p"; "$CLUSTER" kill9 p; event "start p"; "$CLUSTER" start p; event "p ready"
elif [[ $SCENARIO == rolling ]]; then
    at 8; event "stop f1"; "$CLUSTER" stop f1; event "start f1"; "$CLUSTER" start f1; event "f1 ready"
    at 16; event "stop f2"; "$CLUSTER" stop f2; event "start f2"; "$CLUSTER" start f2; event "f2 ready"
    at 24; event "compact p"
    curl -fsS -X POST --cacert "$CLUSTER_DIR/tls/ca.crt" -H "Authorization: Bearer $ADMIN_KEY" \
        "$NGINX_URL/v1/admin/compact" >"$OUT/compact.json"
    event "compacted"
else
    at 10; event "kill9 f1"; "$CLUSTER" kill9 f1
    event "stop p"; "$CLUSTER" stop p; event "start p"; "$CLUSTER" start p; event "p ready"
    at 16; event "start f1"; "$CLUSTER" start f1; event "f1 ready"
    at 24; event "kill9 p"; "$CLUSTER" kill9 p; event "start p"; "$CLUSTER" start p; event "p ready"
fi
status=0
wait "$reads" || { echo "loadgen (reads) exited $?" >&2; status=1; }
wait "$writes" || { echo "loadgen (writes) exited $?" >&2; status=1; }
touch "$stop_file"
# The checker's own exit status also asks that the primary's sequence grew
# by exactly its writes, which loadgen's writes break here: its JSON is
# judged by loadgen-timeline.py instead (reads, missing writes, writer).
wait "$checker" || true
after=$(applied)
for _ in $(seq 300); do
    f1=$(follower_applied "$F1_URL"); f2=$(follower_applied "$F2_URL")
    ((f1 >= after && f2 >= after)) && break
    sleep 0.1
done
exec 9>&-

python3 "$ROOT/deploy/loadgen-timeline.py" "$OUT" "$after" "$f1" "$f2" || status=1
echo "reports: $OUT (loadgen: reads/report.html, writes/report.html)"
exit "$status"
