#!/usr/bin/env bash
# The short cluster test CI runs (about 15 s): a local cluster
# (deploy/local-cluster.sh, followers reading the feed through nginx's mTLS
# port) takes registrations through nginx, every one is readable on both
# followers; the feed port refuses a client without a certificate; a
# follower refuses a write naming the primary; a follower killed with
# SIGKILL is routed around by nginx, restarts and catches up; and the
# primary, restarted (SIGTERM) and then killed (SIGKILL) under reads through
# nginx and retried writes, loses no read and no acknowledged write
# (deploy/load-and-verify.py). Skips (exit 0) when nginx is not installed.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CLUSTER_DIR=${CLUSTER_DIR:-$(mktemp -u /tmp/dancu-cluster-test.XXXXXX)}
CLUSTER="$ROOT/deploy/local-cluster.sh"
if ! command -v nginx >/dev/null && [[ ! -x /usr/sbin/nginx ]]; then
    echo "cluster-test: SKIP: nginx is not installed (apt-get install nginx-light)"
    exit 0
fi
trap '"$CLUSTER" down >/dev/null' EXIT
"$CLUSTER" up >/dev/null
# shellcheck disable=SC1091
source "$CLUSTER_DIR/env"
fail() { echo "cluster-test: FAIL: $*" >&2; exit 1; }

python3 "$ROOT/deploy/measure-replication.py" 50 || fail "replication"

code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$CLUSTER_DIR/tls/ca.crt" \
    -H "Authorization: Bearer $FOLLOWER_KEY" "$FEED_URL/v1/changes?after=0&limit=1")
[[ $code == 400 ]] || fail "the feed port answered $code to a client without a certificate"

code=$(curl -s -o /tmp/cluster-test.$$ -w '%{http_code}' -X POST "$F1_URL/v1/citizens" \
    -H "Authorization: Bearer $ADMIN_KEY" -H 'X-Change-Reason: test' -d '{}')
grep -q not_primary /tmp/cluster-test.$$ && [[ $code == 421 ]] || fail "a follower took a write ($code)"
rm -f /tmp/cluster-test.$$

"$CLUSTER" kill9 f1
bad=0
for _ in $(seq 100); do
    c=$(curl -sk -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $ADMIN_KEY" "$NGINX_URL/v1/snapshot")
    [[ $c == 200 ]] || bad=$((bad + 1))
done
((bad == 0)) || fail "$bad of 100 reads through nginx failed with a follower down"
# A change while f1 is down (the probe then fails on reading f1: expected),
# so that the restart has something to catch up.
python3 "$ROOT/deploy/measure-replication.py" 1 >/dev/null 2>&1 && fail "f1 answered while dead" || true
"$CLUSTER" start f1
primary=$(curl -s -D - -o /dev/null -H "Authorization: Bearer $ADMIN_KEY" \
    "$PRIMARY_URL/v1/changes?after=0&limit=1" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-dancu-applied"{print $2}')
for _ in $(seq 100); do
    applied=$(curl -s "$F1_URL/readyz" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("applied",0))')
    [[ $applied -ge $primary ]] && break
    sleep 0.1
done
[[ $applied -ge $primary ]] || fail "f1 did not catch up ($applied < $primary)"

# The primary: a graceful restart, then SIGKILL and a start, while reads go
# through nginx and writes are retried with their Idempotency-Key.
stop=$CLUSTER_DIR/stop-load
python3 "$ROOT/deploy/load-and-verify.py" "$stop" >"$CLUSTER_DIR/load.json" &
load=$!
for _ in $(seq 300); do [[ -e $stop.started ]] && break; sleep 0.1; done
[[ -e $stop.started ]] || fail "the load did not start"
sleep "${PHASE_S:-1}"
"$CLUSTER" stop p
"$CLUSTER" start p
sleep "${PHASE_S:-1}"
"$CLUSTER" kill9 p
"$CLUSTER" start p
sleep "${PHASE_S:-1}"
touch "$stop"
wait "$load" || fail "primary restarts: $(cat "$CLUSTER_DIR/load.json")"
echo "cluster-test: primary restarts: $(cat "$CLUSTER_DIR/load.json")"
echo "cluster-test: ok (f1 caught up to $applied)"
