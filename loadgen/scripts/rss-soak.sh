#!/usr/bin/env bash
# Memory over a long run: VmRSS of dancu-loadgen sampled every 10 s.
#
#   loadgen/scripts/rss-soak.sh URL DURATION [loadgen args...]
#
# e.g. loadgen/scripts/rss-soak.sh http://127.0.0.1:18091 10m --synthetic-keys 100000 \
#        --profile loadgen/profiles/steady.toml
set -euo pipefail
url=$1 duration=$2
shift 2
lg=${LOADGEN:-target/release/dancu-loadgen}
"$lg" --target "$url" -d "$duration" -q --json "$@" > /tmp/rss-soak.out 2>&1 &
pid=$!
start=$(date +%s)
while kill -0 "$pid" 2>/dev/null; do
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    fds=$(ls "/proc/$pid/fd" 2>/dev/null | wc -l)
    [ -n "$rss" ] && echo "t=$(( $(date +%s) - start ))s VmRSS=${rss} kB fds=${fds}"
    sleep 10
done
wait "$pid"
tail -1 /tmp/rss-soak.out
