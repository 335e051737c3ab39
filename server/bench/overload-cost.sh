#!/usr/bin/env bash
# What the issue-18 bookkeeping costs a single GET: keep-alive GET
# throughput (wrk -t1 -c32, 5 s, no audit) of two server binaries in
# alternating rounds, /tmp/ovl/dancu-server-main and /tmp/ovl/dancu-server-b2
# (copies of the release binary of main and of this branch).
# Usage: flock /tmp/dancu-cpu.lock server/bench/overload-cost.sh
set -u
for round in 1 2 3; do
  for bin in main b2; do
    /tmp/ovl/dancu-server-$bin --snapshot /work/main/data/demo/demo-1m.snap --listen 127.0.0.1:28195 --read-only --no-audit --no-verify >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 1 200); do curl -fs -o /dev/null http://127.0.0.1:28195/readyz && break; sleep 0.05; done
    r=$(wrk -t1 -c32 -d5s -H "Authorization: Bearer dancu-demo-key" http://127.0.0.1:28195/v1/citizens/001093878405 | awk '/Requests\/sec/ {print $2}')
    echo "round $round $bin $r"
    kill -TERM $pid; wait $pid 2>/dev/null
  done
done
